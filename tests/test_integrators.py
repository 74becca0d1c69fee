"""LLG integrators: exact building blocks, norm preservation, convergence order, energy behaviour,
damped Larmor precession against the analytic solution."""

import numpy as np
import pytest

import itinerant as it
from itinerant.dynamics import STEPPERS, get_stepper
from itinerant.dynamics.integrators import cayley, cross, llg_rhs, rotate
from itinerant.forcefields import Heisenberg, Zeeman
from itinerant.spins import random_spins

NAMES = sorted(STEPPERS)


def _skew(v):
    return np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])


def test_cayley_solves_the_implicit_midpoint_equation():
    rng = np.random.default_rng(0)
    s, om, dt = random_spins(20, rng), 3 * rng.normal(size=(20, 3)), 0.3
    new = cayley(s, om, dt)
    for i in range(20):  # (1 - dt/2 [om x]) S' = (1 + dt/2 [om x]) S
        A = _skew(om[i]) * dt / 2
        np.testing.assert_allclose(np.linalg.solve(np.eye(3) - A, (np.eye(3) + A) @ s[i]), new[i],
                                   atol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(new, axis=1), 1.0, atol=1e-15)


def test_rotate_is_the_matrix_exponential():
    from scipy.linalg import expm

    rng = np.random.default_rng(1)
    s, om = random_spins(10, rng), 2 * rng.normal(size=(10, 3))
    om[0] = 0.0
    new = rotate(s, om, 0.7)
    for i in range(10):
        np.testing.assert_allclose(expm(0.7 * _skew(om[i])) @ s[i], new[i], atol=1e-14)


def test_rhs_is_the_llg_equation_of_the_design():
    rng = np.random.default_rng(2)
    s, H = random_spins(5, rng), rng.normal(size=(5, 3))
    expected = -np.cross(s, H) - 0.3 * np.cross(s, np.cross(s, H))
    np.testing.assert_allclose(llg_rhs(s, H, 0.3), expected, atol=1e-15)
    np.testing.assert_allclose(cross(s, H), np.cross(s, H), atol=1e-15)


def test_unknown_integrator_is_named():
    with pytest.raises(ValueError, match="unknown integrator 'euler'"):
        get_stepper("euler")
    ff = Zeeman((0, 0, 1.0), n_sites=2)
    with pytest.raises(ValueError, match="euler"):
        it.LLG(ff, alpha=0.1, dt=0.1, integrator="euler")


@pytest.mark.parametrize("name", NAMES)
def test_norm_preserved_to_round_off_after_long_noisy_run(name):
    """10 000 steps with strong fields and noise: |S| = 1 to round-off for every integrator.

    Rounding adds at most ~eps per step (a random walk in practice), so the bound is steps * eps.
    """
    lat = it.Lattice.square(4)
    ff = Heisenberg(lat, J1=2.0, J2=-1.0, field=(0.3, 0.0, 1.0))
    sim = it.LLG(ff, alpha=0.2, dt=0.05, kT=1.0, integrator=name, seed=3)
    s = random_spins(lat.N, 4)
    E, h = sim.energy_and_fields(s)
    steps = 10_000
    for _ in range(steps):
        s = sim.step(s, h)
        E, h = sim.energy_and_fields(s)
    assert np.abs(np.linalg.norm(s, axis=1) - 1.0).max() < steps * np.finfo(float).eps


def _heisenberg_problem():
    lat = it.Lattice.square(4)
    return lat, Heisenberg(lat, J1=1.0, J2=-0.3, field=(0.0, 0.0, 0.5)), random_spins(lat.N, 7)


def _integrate(ff, s, alpha, dt, name, t_end):
    sim = it.LLG(ff, alpha=alpha, dt=dt, integrator=name)
    E0, h = sim.energy_and_fields(s)
    energies = [E0]
    for _ in range(int(round(t_end / dt))):
        s = sim.step(s, h)
        E, h = sim.energy_and_fields(s)
        energies.append(E)
    return s, np.array(energies)


def _slope(x, y):
    return np.polyfit(np.log(x), np.log(y), 1)[0]


@pytest.mark.parametrize("name", NAMES)
def test_convergence_order_and_energy_conservation(name):
    """alpha = 0, kT = 0: trajectory error and energy drift shrink at the integrator's order."""
    lat, ff, s0 = _heisenberg_problem()
    t_end = 2.0
    ref, _ = _integrate(ff, s0, 0.0, 2e-3, "rk4", t_end)
    dts = [0.1, 0.05, 0.025] if name != "rk4" else [0.2, 0.1, 0.05]
    errors, drifts = [], []
    for dt in dts:
        s, E = _integrate(ff, s0, 0.0, dt, name, t_end)
        errors.append(np.abs(s - ref).max())
        drifts.append(np.abs(E - E[0]).max())
    order = STEPPERS[name].order
    assert order - 0.25 < _slope(dts, errors) < order + 0.6, (dts, errors)
    assert _slope(dts, drifts) > order - 0.25, (dts, drifts)
    assert drifts[-1] < 1e-3 * abs(_integrate(ff, s0, 0.0, 0.1, "rk4", 0.0)[1][0])


@pytest.mark.parametrize("name", NAMES)
def test_energy_bounded_over_long_conservative_run(name):
    """alpha = 0: over 100 time units the energy stays within a small band (no runaway)."""
    lat, ff, s0 = _heisenberg_problem()
    _, E = _integrate(ff, s0, 0.0, 0.02, name, 100.0)
    assert np.abs(E - E[0]).max() < 1e-3 * lat.N  # |E| / N is about 2


@pytest.mark.parametrize("name", NAMES)
def test_damped_energy_never_increases(name):
    lat, ff, s0 = _heisenberg_problem()
    _, E = _integrate(ff, s0, 0.1, 0.05, name, 60.0)
    assert (np.diff(E) <= 1e-12 * lat.N).all(), np.diff(E).max()
    assert E[-1] < E[0] - 1.0


def larmor(theta0, phi0, h, alpha, t):
    """One spin in a field h along z: tan(theta/2) decays as exp(-alpha h t), phi = phi0 + h t."""
    theta = 2 * np.arctan(np.tan(theta0 / 2) * np.exp(-alpha * h * t))
    phi = phi0 + h * t
    return np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1)


@pytest.mark.parametrize("name", NAMES)
def test_damped_larmor_precession(name):
    h, alpha, t_end = 2.0, 0.15, 5.0
    theta0 = np.linspace(0.2, 3.0, 8)
    phi0 = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    s0 = larmor(theta0, phi0, h, alpha, 0.0)
    ff = Zeeman((0.0, 0.0, h), n_sites=len(s0))
    errors = []
    for dt in (0.02, 0.01):
        tr = it.LLG(ff, alpha=alpha, dt=dt, integrator=name).run(s0, int(round(t_end / dt)),
                                                               save_every=50)
        exact = larmor(theta0[None], phi0[None], h, alpha, tr.time[:, None])
        errors.append(np.abs(tr.spins - exact).max())
    tol = {2: 2e-3, 4: 1e-7}[STEPPERS[name].order]
    assert errors[1] < tol, errors
    assert np.log2(errors[0] / errors[1]) > STEPPERS[name].order - 0.3
