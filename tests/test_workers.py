"""The fast path in worker processes gives the in-process numbers, follows weight changes, and
reports a worker's failure as an error in the caller."""

import numpy as np
import pytest
import torch

import itinerant as it
from itinerant.models import MLForceField
from itinerant.models.fastpath import FastEvaluator
from itinerant.models.workers import WorkerPool
from itinerant.spins import random_spins


@pytest.fixture(scope="module")
def setup():
    lat = it.Lattice.triangular(8)
    model = it.SDModel(lat, t=(1.0,), J=2.0, mu=0.0)
    ff = MLForceField.new(model, 2.0, hidden=(8, 8), mu_range=(-1.0, 0.5), seed=3)
    pool = WorkerPool(ff.descriptor(lat), workers=2, block=16)
    yield lat, ff, pool
    pool.close()


def test_pool_equals_one_process(setup, rng):
    lat, ff, pool = setup
    desc = ff.descriptor(lat)
    for B in (1, 3):  # new shapes: new shared buffers
        s = torch.as_tensor(random_spins(B * lat.N, rng).reshape(B, lat.N, 3))
        mu = torch.as_tensor(rng.uniform(-1.0, 0.5, size=(B, lat.N)))
        for got, want in zip(pool(ff.net, s, mu), FastEvaluator(desc, 16)(ff.net, s, mu)):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-13)


def test_pool_follows_weight_changes_and_reports_errors(setup, rng):
    lat, ff, pool = setup
    s = torch.as_tensor(random_spins(lat.N, rng)[None])
    mu = torch.zeros(1, lat.N, dtype=torch.float64)
    E0 = pool(ff.net, s, mu)[0]
    with torch.no_grad():
        ff.net.energy_scale.mul_(2.0)
    try:
        E1 = pool(ff.net, s, mu)[0]
        np.testing.assert_allclose(E1 - ff.net.energy_shift * lat.N,
                                   2 * (E0 - ff.net.energy_shift * lat.N), rtol=1e-12)
    finally:
        with torch.no_grad():
            ff.net.energy_scale.mul_(0.5)
    with pytest.raises(RuntimeError, match="pass mu"):
        pool(ff.net, s)                      # the worker's ValueError, with its traceback
    np.testing.assert_allclose(pool(ff.net, s, mu)[0], E0, rtol=1e-13)   # still serving
    pool.close()
    np.testing.assert_allclose(pool(ff.net, s, mu)[0], E0, rtol=1e-13)   # restarted


def test_force_field_with_workers(rng):
    lat = it.Lattice.square(10)
    ff = MLForceField.new(it.SDModel(lat, J=4.0, filling=0.5), 2.0, hidden=(8,), seed=1)
    pooled = MLForceField(ff.net, ff.metadata, lat, workers=2, max_sites=40)
    s = random_spins(lat.N, rng)
    try:
        E0, h0 = ff.energy_and_fields(s)
        E1, h1 = pooled.energy_and_fields(s)
    finally:
        pooled.close()
    assert abs(E1 - E0) < 1e-12 * (1 + abs(E0))
    np.testing.assert_allclose(h1, h0, rtol=1e-11, atol=1e-12)
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="workers"):
            MLForceField(ff.net, ff.metadata, lat, workers=bad)
    with pytest.raises(ValueError, match="CPU"):
        MLForceField(ff.net, ff.metadata, lat, workers=2, device="cuda")
    with pytest.raises(ValueError, match="fast path"):
        MLForceField(ff.net, ff.metadata, lat, workers=2, fast=False)


def test_a_dead_worker_is_an_error_and_the_pool_restarts(setup, rng):
    lat, ff, pool = setup
    s = torch.as_tensor(random_spins(lat.N, rng)[None])
    mu = torch.zeros(1, lat.N, dtype=torch.float64)
    E0 = pool(ff.net, s, mu)[0]
    pool._procs[1].kill()
    pool._procs[1].join()
    with pytest.raises(RuntimeError, match="worker 1 died"):
        pool(ff.net, s, mu)
    np.testing.assert_allclose(pool(ff.net, s, mu)[0], E0, rtol=1e-13)
