"""The exact solver against independent calculations: finite differences, band sums, symmetry."""

import numpy as np
import pytest

import itinerant as it
from itinerant.electrons.hamiltonian import dense_hamiltonian
from itinerant.spins import STATES, random_rotation, random_spins

CONVENTIONS = [
    dict(filling=0.25, kT=0.0),
    dict(filling=0.25, kT=0.2),
    dict(mu=-0.7, kT=0.0),
    dict(mu=-0.7, kT=0.2),
]


def _model(kind, L=6, t=(1.0,), J=1.5, **ens):
    return it.SDModel(it.Lattice.from_name(kind, L), t=t, J=J, **ens)


@pytest.mark.parametrize("ens", CONVENTIONS, ids=lambda e: "-".join(f"{k}{v}" for k, v in e.items()))
@pytest.mark.parametrize("t", [(1.0,), (1.0, -0.3)], ids=["t1", "t1t2"])
@pytest.mark.parametrize("kind", ["square", "triangular"])
def test_fields_are_minus_energy_gradient(kind, t, ens, rng):
    """Every component of h_i equals the central difference -dE/dS_i^a (unconstrained vectors)."""
    model = _model(kind, t=t, **ens)
    solver = it.ExactSolver(model, max_batch=512)
    s = random_spins(model.lattice.N, rng)
    E, h = solver.energy_and_fields(s)
    N, eps = model.lattice.N, 1e-5
    steps = np.zeros((N * 3, N, 3))
    steps.reshape(N * 3, N * 3)[np.arange(N * 3), np.arange(N * 3)] = eps
    # The solver kernel accepts any vectors S_i; the public API insists on unit spins.
    Ep = solver._solve_batch(s + steps)["energy"]
    Em = solver._solve_batch(s - steps)["energy"]
    fd = -(Ep - Em).reshape(N, 3) / (2 * eps)
    assert np.abs(fd - h).max() < 1e-7 * max(1.0, np.abs(h).max())
    assert np.isclose(solver._solve_batch(s[None])["energy"][0], E)


def test_tangent_gradient_through_public_api(rng):
    """Rotating one spin by a small angle changes E by -h . dS (unit spins throughout)."""
    model = _model("triangular", L=6, filling=0.25)
    solver = it.ExactSolver(model)
    s = random_spins(model.lattice.N, rng)
    _, h = solver.energy_and_fields(s)
    for i in (0, 17, 35):
        axis = np.cross(s[i], rng.normal(size=3))
        axis /= np.linalg.norm(axis)
        eps = 1e-5

        def rotated(angle):
            out = s.copy()
            v = s[i]
            out[i] = v * np.cos(angle) + np.cross(axis, v) * np.sin(angle)
            return out

        dE = (solver.energy_and_fields(rotated(eps))[0] - solver.energy_and_fields(rotated(-eps))[0])
        assert np.isclose(dE / (2 * eps), -h[i] @ np.cross(axis, s[i]), atol=1e-7)


def _band_energies(model):
    """Ferromagnet levels e_k -+ J from the analytic dispersion e_k = -sum_n t_n sum_d cos(k.d)."""
    lat = model.lattice
    m = np.stack(np.meshgrid(np.arange(lat.L), np.arange(lat.L), indexing="ij"), -1).reshape(-1, 2)
    ek = np.zeros(lat.N)
    for n, t in enumerate(model.t, start=1):
        d = lat.shell_offsets(n)
        ek -= t * np.cos(2 * np.pi * (m @ d.T) / lat.L).sum(axis=1)
    return np.sort(np.concatenate([ek - model.J, ek + model.J]))


@pytest.mark.parametrize("kind,filling,t", [
    ("square", 0.25, (1.0,)), ("square", 0.5, (1.0, 0.2)), ("triangular", 0.25, (1.0,)),
    ("triangular", 0.75, (1.0, -0.1, 0.05)),
])
def test_ferromagnet_energy_equals_band_sum(kind, filling, t):
    model = _model(kind, L=8, t=t, J=2.0, filling=filling)
    E, h = it.ExactSolver(model).energy_and_fields(STATES["ferromagnet"](model.lattice))
    levels = _band_energies(model)
    assert np.isclose(E, levels[: model.n_electrons].sum(), rtol=1e-12, atol=1e-10)
    # Free energy at kT > 0 from the same analytic levels.
    hot = _model(kind, L=8, t=t, J=2.0, filling=filling, kT=0.3)
    F = it.ExactSolver(hot).energy_and_fields(STATES["ferromagnet"](hot.lattice))[0]
    from scipy.optimize import brentq
    fermi = lambda mu: (1 / (np.exp((levels - mu) / 0.3) + 1)).sum() - hot.n_electrons  # noqa: E731
    mu = brentq(fermi, levels[0] - 10, levels[-1] + 10, xtol=1e-14)
    omega = -0.3 * np.logaddexp(0, -(levels - mu) / 0.3).sum()
    assert np.isclose(F, omega + mu * hot.n_electrons, rtol=1e-11)
    # A uniform ferromagnet along z has fields along z only, equal on every site.
    assert np.allclose(h[:, :2], 0, atol=1e-12) and np.allclose(h[:, 2], h[0, 2])


def test_hamiltonian_matches_definition(rng):
    """Dense H: hermitian, hopping -t on bonds, on-site block -J S.sigma."""
    model = _model("square", L=4, t=(1.0, 0.3), J=2.0, filling=0.5)
    s = random_spins(16, rng)
    H = dense_hamiltonian(model, s)
    assert np.allclose(H, H.conj().T)
    i, j = 0, model.lattice.site(1, 0)
    assert np.allclose(H[2 * i:2 * i + 2, 2 * j:2 * j + 2], -1.0 * np.eye(2))
    k = model.lattice.site(1, 1)
    assert np.allclose(H[2 * i:2 * i + 2, 2 * k:2 * k + 2], -0.3 * np.eye(2))
    sx, sy, sz = s[0]
    block = -2.0 * np.array([[sz, sx - 1j * sy], [sx + 1j * sy, -sz]])
    assert np.allclose(H[:2, :2], block)
    # Solver levels equal numpy's eigenvalues of the same matrix.
    levels = it.ExactSolver(model).solve(s).levels
    assert np.allclose(levels, np.linalg.eigvalsh(H))


def test_known_ground_state_orders():
    tri = it.SDModel(it.Lattice.triangular(12), t=(1.0,), J=2.0, filling=0.25)
    solver = it.ExactSolver(tri)
    E = {name: solver.energy_and_fields(STATES[name](tri.lattice))[0]
         for name in ("tetrahedral", "ferromagnet", "spiral120", "stripe")}
    assert E["tetrahedral"] < min(E["ferromagnet"], E["spiral120"], E["stripe"]) - 1.0
    sq = it.SDModel(it.Lattice.square(12), t=(1.0,), J=6.0, filling=0.5)
    solver = it.ExactSolver(sq)
    e_neel = solver.energy_and_fields(STATES["neel"](sq.lattice))[0]
    e_fm = solver.energy_and_fields(STATES["ferromagnet"](sq.lattice))[0]
    assert e_neel < e_fm - 0.1 * sq.lattice.N
    # At J = 6 >> t the Neel energy per site approaches -J - 2 t^2/J * (z/2)... bounded by -J.
    assert e_neel / sq.lattice.N < -6.0


@pytest.mark.parametrize("ens", CONVENTIONS[:2] + CONVENTIONS[3:])
def test_spin_rotation_invariance(ens, rng):
    model = _model("triangular", L=6, J=2.0, **ens)
    solver = it.ExactSolver(model)
    s = random_spins(model.lattice.N, rng)
    E, h = solver.energy_and_fields(s)
    for k in range(3):
        R = random_rotation(rng)
        E2, h2 = solver.energy_and_fields(s @ R.T)
        assert np.isclose(E2, E, rtol=1e-12, atol=1e-11)
        assert np.allclose(h2, h @ R.T, atol=1e-10)


@pytest.mark.parametrize("kind", ["square", "triangular"])
def test_lattice_symmetry_covariance(kind, rng):
    model = _model(kind, L=6, t=(1.0, 0.4), J=2.0, filling=0.25, kT=0.05)
    solver = it.ExactSolver(model)
    lat = model.lattice
    s = random_spins(lat.N, rng)
    E, h = solver.energy_and_fields(s)
    ops = [lat.translation(1, 0), lat.translation(2, 5)]
    ops += [lat.point_operation(g) for g in range(len(lat.point_group))]
    for p in ops:
        E2, h2 = solver.energy_and_fields(lat.transform(s, p))
        assert np.isclose(E2, E, rtol=1e-12)
        assert np.allclose(h2, lat.transform(h, p), atol=1e-10)


def test_zero_temperature_limit_of_free_energy(rng):
    lat = it.Lattice.square(6)
    s = random_spins(lat.N, rng)
    E0 = it.ExactSolver(it.SDModel(lat, J=3.0, filling=0.375)).energy_and_fields(s)[0]
    errs = [abs(it.ExactSolver(it.SDModel(lat, J=3.0, filling=0.375, kT=kT)).energy_and_fields(s)[0]
                - E0) for kT in (0.1, 0.03, 0.01, 0.001)]
    assert all(b < a for a, b in zip(errs, errs[1:]))
    assert errs[-1] < 1e-8


def test_densities_and_batch(rng):
    model = _model("square", L=6, J=2.0, filling=0.25, kT=0.1)
    solver = it.ExactSolver(model, max_batch=2)
    stack = np.stack([random_spins(36, rng) for _ in range(5)])
    st = solver.solve(stack)
    assert st.fields.shape == (5, 36, 3) and st.energy.shape == (5,)
    assert np.allclose(st.density.sum(axis=1), model.n_electrons)
    assert np.allclose(st.fields, model.J * st.spin_density)
    single = solver.solve(stack[3])
    assert np.isclose(single.energy, st.energy[3]) and np.allclose(single.fields, st.fields[3])
    assert isinstance(single.energy, float)
    assert np.all((st.density >= 0) & (st.density <= 2))


def test_degenerate_fermi_shell_is_filled_evenly():
    """Ferromagnet at a filling inside a degenerate shell: E is the band sum, fields symmetric."""
    model = _model("square", L=4, J=1.0, filling=3 / 32)  # 3 electrons, shell of 4 at e = -2 - J
    st = it.ExactSolver(model).solve(STATES["ferromagnet"](model.lattice))
    assert np.isclose(st.density.sum(), 3.0)
    assert np.allclose(st.density, 3 / 16)
    assert np.isclose(st.energy, _band_energies(model)[:3].sum())


class TestBadInput:
    model = it.SDModel(it.Lattice.square(4), J=1.0, filling=0.5)

    def test_wrong_shape(self):
        with pytest.raises(ValueError, match=r"shape \(16, 3\)"):
            it.ExactSolver(self.model).energy_and_fields(np.ones((15, 3)))

    def test_nan(self):
        s = STATES["ferromagnet"](self.model.lattice)
        s[5, 1] = np.nan
        with pytest.raises(ValueError, match="NaN or inf at site 5"):
            it.ExactSolver(self.model).energy_and_fields(s)

    def test_non_unit_names_site_and_normalize(self):
        s = STATES["ferromagnet"](self.model.lattice)
        s[7] *= 1.1
        with pytest.raises(ValueError, match="unit vectors.*site 7.*normalize=True"):
            it.ExactSolver(self.model).energy_and_fields(s)
        E, _ = it.ExactSolver(self.model).energy_and_fields(s, normalize=True)
        assert np.isclose(E, it.ExactSolver(self.model).energy_and_fields(
            STATES["ferromagnet"](self.model.lattice))[0])

    def test_non_integer_electron_number(self):
        with pytest.raises(ValueError, match="nearest integer is N_e = 10"):
            it.SDModel(it.Lattice.square(4), J=1.0, filling=0.31)

    def test_both_or_neither(self):
        with pytest.raises(ValueError, match="exactly one of filling"):
            it.SDModel(it.Lattice.square(4), J=1.0, filling=0.5, mu=0.0)
        with pytest.raises(ValueError, match="exactly one of filling"):
            it.SDModel(it.Lattice.square(4), J=1.0)

    def test_other_parameters(self):
        with pytest.raises(ValueError, match="kT must be >= 0"):
            it.SDModel(it.Lattice.square(4), J=1.0, mu=0.0, kT=-1)
        with pytest.raises(ValueError, match="between 0 and 1"):
            it.SDModel(it.Lattice.square(4), J=1.0, filling=1.0)
        with pytest.raises(ValueError, match="J must be finite"):
            it.SDModel(it.Lattice.square(4), J=float("nan"), filling=0.5)
