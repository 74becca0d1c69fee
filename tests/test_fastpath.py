"""The inference fast path equals autograd through the descriptor and network (to rounding)."""

import numpy as np
import pytest
import torch

import itinerant as it
from itinerant.models import MLForceField
from itinerant.models.fastpath import FastEvaluator, supports
from itinerant.models.network import energy_and_fields
from itinerant.spins import random_spins


def _net(lattice, cutoff, seed=0, **net_kw):
    model = it.SDModel(lattice, t=(1.0,), J=2.0, mu=0.0)
    ff = MLForceField.new(model, cutoff, seed=seed, **net_kw)
    gen = torch.Generator().manual_seed(seed + 1)
    F = ff.net.n_features
    ff.net.set_normalisation(torch.randn(F, generator=gen, dtype=torch.float64) * 0.1,
                             torch.rand(F, generator=gen, dtype=torch.float64) + 0.5, -1.3, 0.7)
    return ff


def _reference(net, desc, s):
    return [t.detach() for t in energy_and_fields(net, desc, s)]


def _stack(N, M, rng):
    """M configurations of N spins with lengths near 1 (the length channel is exercised)."""
    s = random_spins(M * N, rng).reshape(M, N, 3)
    return torch.as_tensor(s * rng.uniform(0.9, 1.1, size=(M, N, 1)))


@pytest.mark.parametrize("kind", ["square", "triangular"])
@pytest.mark.parametrize("L, cutoff, net_kw", [
    (8, 2.0, {"hidden": (16, 16)}),
    (9, 3.0, {"hidden": (8,), "activation": "tanh", "length_channel": False}),
    (7, 2.0, {"hidden": (5, 6, 7), "activation": "softplus"}),
    (6, 2.0, {"hidden": (), "activation": "gelu"}),
])
def test_fast_path_equals_autograd(kind, L, cutoff, net_kw, rng):
    """Energies and gradients of a stack, for blocks of part of a row, rows, and snapshots."""
    lat = it.Lattice.from_name(kind, L)
    ff = _net(lat, cutoff, **net_kw)
    desc = ff.descriptor(lat)
    s = _stack(lat.N, 3, rng)
    E0, h0 = _reference(ff.net, desc, s)
    for block in (5, 2 * L + 1, lat.N, 2 * lat.N, 10**6):
        E1, grad = FastEvaluator(desc, block)(ff.net, s)
        np.testing.assert_allclose(E1.numpy(), E0.numpy(), rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(-grad.numpy(), h0.numpy(), rtol=1e-11, atol=1e-12)


def test_default_cutoff_and_weight_changes(rng):
    """The default descriptor on a lattice larger than a block; in-place weight changes are seen."""
    lat = it.Lattice.square(20)
    ff = _net(lat, 4.0)
    desc = ff.descriptor(lat)
    s = _stack(lat.N, 1, rng)
    ev = FastEvaluator(desc, 64)
    for _ in range(2):
        E0, h0 = _reference(ff.net, desc, s)
        E1, grad = ev(ff.net, s)
        np.testing.assert_allclose(E1.numpy(), E0.numpy(), rtol=1e-13)
        np.testing.assert_allclose(-grad.numpy(), h0.numpy(), rtol=1e-11, atol=1e-12)
        with torch.no_grad():
            ff.net.mlp[0].weight.mul_(1.5)
            ff.net.energy_scale.fill_(2.0)


def test_float32_matches_float64(rng):
    lat = it.Lattice.triangular(10)
    ff = _net(lat, 2.0)
    desc = ff.descriptor(lat)
    s = _stack(lat.N, 2, rng)
    E0, h0 = _reference(ff.net, desc, s)
    net32 = ff.net.float()
    E1, grad = FastEvaluator(desc.float())(net32, s.float())
    assert E1.dtype == torch.float64 and grad.dtype == torch.float32
    np.testing.assert_allclose(E1.numpy(), E0.numpy(), rtol=1e-5)
    assert (-grad.double() - h0).norm() / h0.norm() < 1e-5


def test_force_field_uses_fast_path_with_same_results(rng):
    lat = it.Lattice.square(8)
    ff = _net(lat, 2.0)
    slow = MLForceField(ff.net, ff.metadata, lat, fast=False)
    assert ff.fast and supports(ff.net) and not slow.fast
    s = random_spins(lat.N, rng)
    E0, h0 = slow.energy_and_fields(s)
    E1, h1 = ff.energy_and_fields(s)
    assert abs(E1 - E0) < 1e-12 * (1 + abs(E0))
    np.testing.assert_allclose(h1, h0, rtol=1e-11, atol=1e-12)
    assert 8 in ff._evaluators


def test_bad_block_is_refused():
    desc = _net(it.Lattice.square(6), 2.0).descriptor(it.Lattice.square(6))
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="block"):
            FastEvaluator(desc, bad)


@pytest.mark.parametrize("kind,net_kw", [
    ("square", {"hidden": (8, 8)}),
    ("triangular", {"hidden": (6,), "activation": "tanh", "length_channel": False}),
])
def test_fast_path_with_a_mu_input_equals_autograd(kind, net_kw, rng):
    """A mu-conditioned network: energies, gradients and dE/dmu_i (= -n_i) at per-site mu, also
    when a block holds part of a row, and n_i equal to finite differences of eps_i in mu_i."""
    lat = it.Lattice.from_name(kind, 7)
    ff = _net(lat, 2.0, mu_range=(-1.0, 0.5), **net_kw)
    ff.net.set_normalisation(ff.net.feature_mean, ff.net.feature_std, -1.3, 0.7, mu_mean=-0.2,
                             mu_std=0.4)
    desc = ff.descriptor(lat)
    s = _stack(lat.N, 3, rng)
    mu = torch.as_tensor(rng.uniform(-1.0, 0.5, size=(3, lat.N)))
    E0, h0, n0 = (t.detach() for t in energy_and_fields(ff.net, desc, s, mu=mu))
    for block in (5, lat.N, 10**6):
        E1, grad, dmu = FastEvaluator(desc, block)(ff.net, s, mu)
        np.testing.assert_allclose(E1.numpy(), E0.numpy(), rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(-grad.numpy(), h0.numpy(), rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(-dmu.numpy(), n0.numpy(), rtol=1e-11, atol=1e-13)
    eps, i = 1e-6, 11
    up, down = mu.clone(), mu.clone()
    up[:, i] += eps
    down[:, i] -= eps
    site = lambda m: ff.net(desc(s), s, m)[:, i].detach()  # noqa: E731
    np.testing.assert_allclose(-(site(up) - site(down)) / (2 * eps), n0[:, i], rtol=1e-7)
    with pytest.raises(ValueError, match="pass mu"):
        FastEvaluator(desc)(ff.net, s)
    with pytest.raises(ValueError, match="pass mu"):
        FastEvaluator(desc)(_net(lat, 2.0).net, s, mu)


def test_compiled_fast_path_equals_autograd(rng):
    """``compile=True`` (table, blocks and gradient through ``torch.compile``) gives the same
    numbers, with blocks of rows, a stack and a mu input (triangular: bond and chirality fields)."""
    lat = it.Lattice.triangular(6)
    ff = _net(lat, 2.0, hidden=(8, 8), mu_range=(-1.0, 0.5))
    desc = ff.descriptor(lat)
    s = _stack(lat.N, 2, rng)
    mu = torch.as_tensor(rng.uniform(-1.0, 0.5, size=(2, lat.N)))
    E0, h0, n0 = (t.detach() for t in energy_and_fields(ff.net, desc, s, mu=mu))
    E1, grad, dmu = FastEvaluator(desc, 2 * lat.L, compile=True)(ff.net, s, mu)
    np.testing.assert_allclose(E1.numpy(), E0.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(-grad.numpy(), h0.numpy(), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(-dmu.numpy(), n0.numpy(), rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("B, block", [(1, 9), (1, 18), (3, 18), (3, 81)])
def test_parts_sum_to_the_whole(B, block, rng):
    """``part=(p, P)`` evaluates a contiguous share of the blocks (a window of rows, or of
    snapshots, also one that crosses from one snapshot into the next); the P parts add up to the
    whole call, also for P larger than the number of blocks."""
    lat = it.Lattice.triangular(9)
    ff = _net(lat, 3.0, hidden=(8,), mu_range=(-1.0, 0.5))
    desc = ff.descriptor(lat)
    s = _stack(lat.N, B, rng)
    mu = torch.as_tensor(rng.uniform(-1.0, 0.5, size=(B, lat.N)))
    ev = FastEvaluator(desc, block)
    whole = ev(ff.net, s, mu)
    E0, h0, n0 = (t.detach() for t in energy_and_fields(ff.net, desc, s, mu=mu))
    np.testing.assert_allclose(-whole[1].numpy(), h0.numpy(), rtol=1e-11, atol=1e-12)
    n_blocks = len(ev.blocks(ff.net, s))
    for P in (2, 3, 7, n_blocks + 2):
        parts = [ev(ff.net, s, mu, part=(p, P)) for p in range(P)]
        for k, name in enumerate(("energy", "gradient", "dE/dmu")):
            total = sum(part[k] for part in parts)
            np.testing.assert_allclose(total.numpy(), whole[k].numpy(), rtol=1e-12, atol=1e-12,
                                       err_msg=f"{name}, {P} parts")
    with pytest.raises(ValueError, match="part"):
        ev(ff.net, s, mu, part=(2, 2))
