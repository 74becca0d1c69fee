"""The KPM solver against exact diagonalisation, finite differences of its own estimate, and symmetry."""

import contextlib
import math
import warnings

import numpy as np
import pytest
import torch

import itinerant as it
from itinerant.electrons.chebyshev import FermiSeries, quadrature_coefficients, step_coefficients
from itinerant.electrons.hamiltonian import dense_hamiltonian
from itinerant.electrons.kpm import probing_colours, spectral_half_width
from itinerant.spins import random_rotation, random_spins


def _model(kind="triangular", L=6, J=2.0, **ens):
    ens = ens or dict(mu=-1.0, kT=0.1)
    return it.SDModel(it.Lattice.from_name(kind, L), J=J, **ens)


def _errors(kpm_state, exact_state):
    dE = abs(kpm_state.energy - exact_state.energy) / abs(exact_state.energy)
    dh = np.linalg.norm(kpm_state.fields - exact_state.fields) / np.linalg.norm(exact_state.fields)
    return dE, dh


# ---------------------------------------------------------------------- convergence to ED
@pytest.mark.parametrize("kernel, ens, moments, final", [
    ("none", dict(mu=-1.0, kT=0.1), (50, 100, 200, 400), 3e-8),
    ("none", dict(filling=0.25, kT=0.1), (50, 100, 200, 400), 3e-8),
    ("jackson", dict(mu=-1.0, kT=0.1), (50, 100, 200, 400), 4e-3),
    ("jackson", dict(filling=0.25, kT=0.1), (50, 100, 200, 400), 4e-3),
    ("jackson", dict(filling=0.25, kT=0.0), (64, 256, 1024), 1e-2),
])
def test_exact_trace_converges_to_ed(kernel, ens, moments, final, rng):
    """Full-basis trace: energy, fields and densities approach ED as the moments grow.

    Without a kernel the error falls exponentially (exp(-pi kT M / a)) to round-off; the Jackson
    kernel's broadening pi a / M gives a power law, and at kT = 0 the smoothed step converges slowly.
    """
    model = _model(**ens)
    s = random_spins(model.lattice.N, rng)
    ref = it.ExactSolver(model).solve(s)
    errs = []
    for M in moments:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # too few moments for kT on purpose
            st = it.KPMSolver(model, moments=M, estimator="exact", kernel=kernel).solve(s)
        dE, dh = _errors(st, ref)
        dn = np.abs(st.density - ref.density).max()
        errs.append((dE, dh, dn))
    errs = np.array(errs)
    print(kernel, ens, "\n", errs)
    assert np.all(np.diff(errs[:, 1]) < 0), f"field error does not fall: {errs[:, 1]}"
    assert np.all(np.diff(errs[:, 2]) < 0), f"density error does not fall: {errs[:, 2]}"
    assert errs[-1, 0] < final and errs[-1, 1] < final and errs[-1, 2] < final
    assert errs[0, 1] > 10 * errs[-1, 1]


@contextlib.contextmanager
def _no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ---------------------------------------------------------------------- default accuracy
@pytest.mark.parametrize("kind", ["triangular", "square"])
def test_default_settings_on_12x12(kind, rng):
    """Defaults (Jackson kernel, M = 4 a / kT, probing distance 8) against ED, J = 2, mu = -1, kT = 0.1.

    On the 12x12 torus the square lattice's distance-8 colouring has 72 colours (144 of the 288
    basis vectors); the triangular lattice has no superlattice longer than 8 that fits, so its
    default is the full trace there (see the next test for genuine probing on it).
    """
    model = _model(kind, L=12, J=2.0, mu=-1.0, kT=0.1)
    kpm = it.KPMSolver(model)
    exact = it.ExactSolver(model)
    # (the clean ferromagnet is the hardest case for probing: see docs/kpm.md for its errors)
    for s in (random_spins(model.lattice.N, rng), it.spins.STATES["stripe"](model.lattice)):
        dE, dh = _errors(kpm.solve(s), exact.solve(s))
        print(kind, kpm.settings(), f"dE {dE:.2e} dh {dh:.2e}")
        assert dE < 1e-3
        assert dh < 0.02


@pytest.mark.parametrize("kind, distance, n_vectors", [("triangular", 5, 72), ("square", 5, 72)])
def test_probing_on_12x12(kind, distance, n_vectors, rng):
    """Probing with far fewer vectors than the basis (2N = 288): random spins within 2% / 1e-3."""
    model = _model(kind, L=12, J=2.0, mu=-1.0, kT=0.1)
    kpm = it.KPMSolver(model, distance=distance)
    assert kpm.n_vectors == n_vectors
    s = random_spins(model.lattice.N, rng)
    dE, dh = _errors(kpm.solve(s), it.ExactSolver(model).solve(s))
    print(kind, distance, f"dE {dE:.2e} dh {dh:.2e}")
    assert dE < 1e-3 and dh < 0.02


# ---------------------------------------------------------------------- exact gradient of the estimate
@pytest.mark.parametrize("estimator, kernel, ens, moments", [
    ("random", "jackson", dict(filling=0.25, kT=0.1), 60),
    ("random", "jackson", dict(filling=0.25, kT=0.0), 60),
    ("random", "jackson", dict(mu=-1.0, kT=0.1), 30),
    ("probing", "none", dict(filling=0.375, kT=0.3), 40),
])
def test_fields_are_gradient_of_the_estimate(estimator, kernel, ens, moments, rng):
    """h_i = -dE_est/dS_i for the fixed random vectors (central differences, every component).

    Includes fixed filling, where mu moves with the spins: dF/dmu = N_e - N_est(mu) = 0 at the
    solved mu, so the fixed-mu adjoint gives the total derivative.
    """
    model = _model("triangular", L=4, **ens)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few moments on purpose: the estimate is what is tested
        kpm = it.KPMSolver(model, moments=moments, estimator=estimator, vectors=2, distance=1,
                           kernel=kernel, seed=7)
    s = random_spins(model.lattice.N, rng)
    E, h = kpm.energy_and_fields(s)
    eps = 1e-5
    fd = np.zeros_like(h)
    for i in range(model.lattice.N):
        for a in range(3):
            d = np.zeros_like(s)
            d[i, a] = eps
            # the kernel accepts any vectors; the public API insists on unit spins
            fd[i, a] = -(kpm._solve_one(s + d)["energy"] - kpm._solve_one(s - d)["energy"]) / (2 * eps)
    assert np.abs(fd - h).max() < 1e-7 * np.abs(h).max()
    # the vectors are fixed: a second call gives the same numbers
    E2, h2 = kpm.energy_and_fields(s)
    assert E2 == E and np.array_equal(h2, h)


# ---------------------------------------------------------------------- symmetry and consistency
@pytest.mark.parametrize("estimator", ["probing", "random"])
def test_estimate_is_o3_invariant(estimator, rng):
    """Sign patterns shared by both spin components: E(Q S) = E(S), h(Q S) = Q h(S) for Q in O(3)."""
    model = _model("square", L=6, filling=0.25, kT=0.2)
    kpm = it.KPMSolver(model, estimator=estimator, distance=2, vectors=4)
    s = random_spins(model.lattice.N, rng)
    E, h = kpm.energy_and_fields(s)
    for proper in (True, False):
        Q = random_rotation(rng, proper=proper)
        if not proper and np.linalg.det(Q) > 0:
            Q = -Q
        E2, h2 = kpm.energy_and_fields(s @ Q.T)
        assert abs(E2 - E) < 1e-11 * abs(E)
        assert np.abs(h2 - h @ Q.T).max() < 1e-11


def test_stack_normalize_and_settings(rng, tmp_path):
    """A stack equals separate calls; normalize rescales; settings are storable HDF5 attributes."""
    import h5py

    from itinerant.io import model_attrs, write_attrs

    model = _model("triangular", L=6, filling=0.25, kT=0.1)
    kpm = it.KPMSolver(model, distance=2)
    s = np.stack([random_spins(model.lattice.N, rng) for _ in range(2)])
    st = kpm.solve(s)
    assert st.energy.shape == (2,) and st.fields.shape == (2, 36, 3) and st.moments.shape[0] == 2
    for k in range(2):
        E, h = kpm.energy_and_fields(s[k])
        assert isinstance(E, float) and E == st.energy[k] and np.array_equal(h, st.fields[k])
    E3, h3 = kpm.energy_and_fields(3.0 * s[0], normalize=True)
    assert np.isclose(E3, st.energy[0], rtol=1e-12, atol=0) and np.allclose(h3, st.fields[0], atol=1e-12)
    # fixed filling: the density of the estimate holds about N_e electrons, mu inside the band
    assert abs(st.density[0].sum() - model.n_electrons) < 0.01 * model.n_electrons
    settings = kpm.settings()
    assert settings["solver"] == "kpm" and settings["moments"] == kpm.moments
    with h5py.File(tmp_path / "x.h5", "w") as f:
        write_attrs(f, model_attrs(model, **settings))
        assert f.attrs["estimator"] == "probing" and f.attrs["n_vectors"] == kpm.n_vectors


def test_interchangeable_with_exact_solver(rng):
    """Same call signature and output types as ExactSolver (a force field for LLG and generate)."""
    model = _model("square", L=4, mu=0.0, kT=0.5)
    s = random_spins(model.lattice.N, rng)
    E0, h0 = it.ExactSolver(model).energy_and_fields(s)
    E1, h1 = it.KPMSolver(model, estimator="exact", kernel="none").energy_and_fields(s)
    assert type(E1) is type(E0) and h1.shape == h0.shape and h1.dtype == h0.dtype
    assert abs(E1 - E0) < 1e-10 * abs(E0) and np.abs(h1 - h0).max() < 1e-10


def test_complex64_runs_and_is_close(rng):
    model = _model("triangular", L=6, mu=-1.0, kT=0.2)
    s = random_spins(model.lattice.N, rng)
    a = it.KPMSolver(model, distance=2).solve(s)
    b = it.KPMSolver(model, distance=2, dtype="complex64").solve(s)
    assert abs(a.energy - b.energy) < 1e-4 * abs(a.energy)
    assert np.linalg.norm(a.fields - b.fields) < 1e-3 * np.linalg.norm(a.fields)


# ---------------------------------------------------------------------- pieces
@pytest.mark.parametrize("kind, L, distance", [("triangular", 12, 5), ("square", 12, 3),
                                               ("triangular", 13, 3), ("square", 10, 2.5)])
def test_probing_colours_separate_sites(kind, L, distance):
    """Sites sharing a colour are farther apart than ``distance`` (tiling and greedy colourings)."""
    lat = it.Lattice.from_name(kind, L)
    colour = probing_colours(lat, distance)
    near = lat.gather_indices(lat.offsets_within(distance)[1:])
    assert not np.any(colour[near] == colour[:, None])
    assert colour.max() + 1 < lat.N


@pytest.mark.parametrize("kind", ["square", "triangular"])
def test_spectral_bound_is_rigorous(kind, rng):
    model = it.SDModel(it.Lattice.from_name(kind, 6), t=(1.0, -0.4), J=3.0, mu=0.0)
    a = spectral_half_width(model)
    for s in (random_spins(model.lattice.N, rng), it.spins.ferromagnet(model.lattice)):
        e = np.linalg.eigvalsh(dense_hamiltonian(model, s))
        assert np.abs(e).max() <= a / 1.01 + 1e-12


def test_chebyshev_coefficients():
    """Closed-form step coefficients = fine quadrature; kT -> 0 limit; dOmega/dmu = -N."""
    M, K, x_mu = 64, 2**18, 0.3
    nodes = np.cos(np.pi * (np.arange(K) + 0.5) / K)
    cf, cg = step_coefficients(M, x_mu)
    qf, qg = quadrature_coefficients(np.stack([(nodes < x_mu) * 1.0, np.minimum(nodes - x_mu, 0.0)]), M)
    assert np.abs(cf - qf).max() < 1e-4 and np.abs(cg - qg).max() < 1e-8
    a, mu = 4.0, 1.2
    s0 = FermiSeries(a, 0.0, M, "jackson")
    s1 = FermiSeries(a, 1e-4, M, "jackson")
    for c0, c1 in zip(s0.coefficients(mu), s1.coefficients(mu)):
        assert np.abs(c0 - c1).max() < 1e-5
    for s in (s0, FermiSeries(a, 0.3, M, "none")):
        d = 1e-6
        dg = (s.coefficients(mu + d)[1] - s.coefficients(mu - d)[1]) / (2 * d)
        assert np.abs(dg + s.coefficients(mu)[0]).max() < 1e-8


# ---------------------------------------------------------------------- bad input
def test_bad_spins_are_refused():
    model = _model("square", L=4, mu=0.0, kT=0.5)
    kpm = it.KPMSolver(model, distance=1)
    s = it.spins.ferromagnet(model.lattice)
    with pytest.raises(ValueError, match="shape"):
        kpm.energy_and_fields(s[:-1])
    bad = s.copy()
    bad[3] *= 1.1
    with pytest.raises(ValueError, match="unit vectors.*site 3"):
        kpm.energy_and_fields(bad)
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        kpm.energy_and_fields(bad)


@pytest.mark.parametrize("kwargs, match", [
    (dict(kernel="lorentz"), "unknown kernel"),
    (dict(estimator="hutch"), "unknown estimator"),
    (dict(moments=1), "moments must be an integer >= 2"),
    (dict(moments=100.5), "moments must be an integer"),
    (dict(vectors=0), "vectors must be an integer >= 1"),
    (dict(distance=0.5), "distance must be a number >= 1"),
    (dict(distance=float("nan")), "distance must be a number"),
    (dict(dtype=torch.float64), "dtype must be"),
    (dict(seed=-1), "seed must be an integer >= 0"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        it.KPMSolver(_model("square", L=4, mu=0.0, kT=0.5), **kwargs)


def test_no_kernel_needs_temperature():
    with pytest.raises(ValueError, match="kernel='none' needs kT > 0"):
        it.KPMSolver(_model("square", L=4, mu=0.0, kT=0.0), kernel="none")


@pytest.mark.parametrize("kernel", ["jackson", "none"])
def test_too_few_moments_warns_what_to_raise(kernel):
    model = _model("triangular", L=4, mu=-1.0, kT=0.05)
    a = spectral_half_width(model)
    need = math.ceil((4.0 if kernel == "jackson" else 1.5) * a / 0.05)
    with pytest.warns(UserWarning, match=f"moments=100 are too few for kT=0.05.*raise moments to >= {need}"):
        it.KPMSolver(model, moments=100, kernel=kernel)
    with _no_warning():
        it.KPMSolver(model, kernel=kernel)  # the default is enough
