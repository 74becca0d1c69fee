"""Fixed electron number from a local grand-canonical model (docs/canonical.md).

(a) exact labels at several chemical potentials from one diagonalisation; (b) the envelope identity
on the exact solver; (c) a tiny mu-conditioned model generated, trained and run canonically: its
fields are -dE/dS of E = Omega(mu*) + mu* N_e and sum_i n_i(mu*) = N_e; (d) its invariances;
(e) bad input.
"""

import json
import warnings

import h5py
import numpy as np
import pytest

import itinerant as it
from itinerant.config import ConfigError
from itinerant.data import DataFile, generate, load_run, run_task
from itinerant.data.generate import file_attrs, solver_for
from itinerant.models import MLForceField
from itinerant.models.canonical import ChemicalPotentialError, solve_chemical_potential
from itinerant.spins import STATES, random_rotation, random_spins
from itinerant.training import train
from itinerant.training.data import TEST, TRAIN, VALIDATION, load_training_data

ENSEMBLES = [dict(filling=0.375, kT=0.0), dict(filling=0.375, kT=0.2), dict(mu=-0.4, kT=0.0),
             dict(mu=-0.4, kT=0.2)]


def _model(kind, L=4, J=2.0, t=(1.0, 0.3), **ens):
    return it.SDModel(it.Lattice.from_name(kind, L), t=t, J=J, **ens)


def _fresh(model, mu):
    """A fixed-mu solver for the same model parameters."""
    return it.ExactSolver(it.SDModel(model.lattice, t=model.t, J=model.J, mu=float(mu), kT=model.kT))


# ---------------------------------------------------------------------- (a) exact labels
@pytest.mark.parametrize("ens", ENSEMBLES, ids=lambda e: "-".join(f"{k}{v}" for k, v in e.items()))
@pytest.mark.parametrize("kind", ["square", "triangular"])
def test_labels_at_several_mu_equal_fresh_fixed_mu_solves(kind, ens, rng):
    model = _model(kind, **ens)
    solver = it.ExactSolver(model, max_batch=2)
    S = np.stack([random_spins(model.lattice.N, rng) for _ in range(3)])
    offsets = [-0.5, 0.0, 0.25]
    st = solver.grand_canonical(S, offsets=offsets)
    own = solver.solve(S)
    assert st.energy.shape == (3, 3) and st.fields.shape == (3, 3, 16, 3)
    assert st.density.shape == (3, 3, 16) and st.mu.shape == (3, 3)
    np.testing.assert_array_equal(st.canonical_mu, own.mu)  # mu* (fixed filling) or the model's mu
    np.testing.assert_allclose(st.mu, own.mu[:, None] + np.array(offsets)[None], atol=1e-14)
    absolute = solver.grand_canonical(S, mu=st.mu)  # per-snapshot table (M, K)
    np.testing.assert_allclose(absolute.fields, st.fields, atol=1e-13)
    for m in range(3):
        for k in range(3):
            fresh = _fresh(model, st.mu[m, k]).solve(S[m])
            assert abs(fresh.energy - st.energy[m, k]) < 1e-11
            np.testing.assert_allclose(st.fields[m, k], fresh.fields, atol=1e-11)
            np.testing.assert_allclose(st.density[m, k], fresh.density, atol=1e-11)
    one = solver.grand_canonical(S[1], mu=[st.mu[1, 2], -1.0])  # one configuration
    assert isinstance(one.canonical_mu, float) and one.fields.shape == (2, 16, 3)
    np.testing.assert_allclose(one.fields[0], st.fields[1, 2], atol=1e-13)


@pytest.mark.parametrize("kT", [0.0, 0.2])
@pytest.mark.parametrize("kind", ["square", "triangular"])
def test_labels_are_derivatives_of_the_grand_potential(kind, kT, rng):
    """h_i = -dOmega/dS_i at fixed mu (central differences of unconstrained vectors, as
    test_exact does for one mu) and sum_i n_i = -dOmega/dmu."""
    model = _model(kind, filling=0.375, kT=kT)
    solver = it.ExactSolver(model, max_batch=512)
    s = random_spins(model.lattice.N, rng)
    mu = np.array([-0.9, 0.3])
    st = solver.grand_canonical(s, mu=mu)
    N, eps = model.lattice.N, 1e-5
    steps = np.zeros((N * 3, N, 3))
    steps.reshape(N * 3, N * 3)[np.arange(N * 3), np.arange(N * 3)] = eps
    table = np.broadcast_to(mu, (N * 3, 2))
    Ep = solver._grand_batch(s + steps, table)["energy"]
    Em = solver._grand_batch(s - steps, table)["energy"]
    fd = -(Ep - Em).T.reshape(2, N, 3) / (2 * eps)
    assert np.abs(fd - st.fields).max() < 1e-7 * max(1.0, np.abs(st.fields).max())
    if kT > 0:  # at kT = 0 Omega(mu) is piecewise linear: its slope is the number of levels below
        d = 1e-5
        up = solver.grand_canonical(s, mu=mu + d).energy
        down = solver.grand_canonical(s, mu=mu - d).energy
        np.testing.assert_allclose(-(up - down) / (2 * d), st.density.sum(-1), rtol=1e-8)
    else:
        np.testing.assert_allclose(st.density.sum(-1), [(np.sort(np.linalg.eigvalsh(
            it.electrons.hamiltonian.dense_hamiltonian(model, s))) < m).sum() for m in mu])


def test_grand_canonical_bad_arguments(rng):
    solver = it.ExactSolver(_model("square", filling=0.375))
    s = random_spins(16, rng)
    with pytest.raises(ValueError, match="exactly one of mu"):
        solver.grand_canonical(s)
    with pytest.raises(ValueError, match="exactly one of mu"):
        solver.grand_canonical(s, mu=[0.0], offsets=[0.0])
    with pytest.raises(ValueError, match=r"mu must have shape \(K,\)"):
        solver.grand_canonical(s, mu=[[0.0, 1.0]])
    with pytest.raises(ValueError, match=r"\(2, K\)"):
        solver.grand_canonical(np.stack([s, s]), mu=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="finite"):
        solver.grand_canonical(s, offsets=[0.0, np.nan])


# ---------------------------------------------------------------------- (b) envelope identity
@pytest.mark.parametrize("kind,filling", [("square", 32 / 72), ("triangular", 0.25)])
def test_envelope_identity_of_the_exact_solver(kind, filling, rng):
    """At kT = 0.1 (mu* unique): the fixed-filling fields equal the fixed-mu fields at mu = mu*,
    and F = Omega(mu*) + mu* N_e -- the construction docs/canonical.md builds on."""
    model = it.SDModel(it.Lattice.from_name(kind, 6), t=(1.0,), J=4.0, filling=filling, kT=0.1)
    canonical = it.ExactSolver(model)
    for s in (random_spins(36, rng), STATES["ferromagnet"](model.lattice) * 0.8
              + 0.2 * random_spins(36, rng)):
        s = s / np.linalg.norm(s, axis=1, keepdims=True)
        st = canonical.solve(s)
        at_mu = _fresh(model, st.mu).solve(s)
        assert abs(at_mu.density.sum() - model.n_electrons) < 1e-9
        np.testing.assert_allclose(at_mu.fields, st.fields, atol=1e-10)
        assert at_mu.energy + st.mu * model.n_electrons == pytest.approx(st.energy, abs=1e-9)
        # ... and only there: another mu gives other fields.
        assert np.abs(_fresh(model, st.mu + 0.3).solve(s).fields - st.fields).max() > 1e-2


# ---------------------------------------------------------------------- (c) a tiny model
RUN = """
seed = 7
[model]
lattice = "square"
L = 6
J = 6.0
filling = 0.4861111111111111     # N_e = 35 of 72 states: one hole below half filling
kT = 0.0
[labels]
mu_offsets = [-0.3, -0.15, 0.0, 0.15, 0.3]
[[protocol]]
kind = "random"
count = 14
[[protocol]]
kind = "ordered"
state = "neel"
count = 12
noise = [0.3]
[[protocol]]
kind = "quench"
count = 1
steps = 4
sample_every = 2
alpha = 0.5
dt = 0.05
[[protocol]]
kind = "file"
path = "frames.npy"
"""
N_E = 35
MODEL = it.SDModel(it.Lattice.square(6), t=(1.0,), J=6.0, filling=N_E / 72)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    d = tmp_path_factory.mktemp("canonical")
    frames = np.stack([random_spins(36, 100 + k) for k in range(3)])
    np.save(d / "frames.npy", frames)
    (d / "run.toml").write_text(RUN)
    generate(d / "run.toml", d / "data.h5", workers=0, progress=False)
    return d


@pytest.fixture(scope="module")
def trained(generated):
    cfg = {"data": {"files": [str(generated / "data.h5")]},
           "split": {"validation": 0.15, "test": 0.15, "seed": 1},
           "descriptor": {"cutoff": 2.0}, "network": {"hidden": [16, 16]},
           "training": {"epochs": 40, "batch_size": 8, "learning_rate": 3e-3,
                        "energy_weight": 1.0, "density_weight": 1.0, "parallel_weight": 0.1},
           "output": {"directory": str(generated / "model"), "progress": False, "plots": False}}
    ff, metrics = train(cfg)
    return generated / "model", metrics, cfg


def test_generated_rows_are_exact_labels_at_each_mu(generated):
    run = load_run(generated / "run.toml")
    K = 5
    with h5py.File(generated / "data.h5", "r") as h5:
        assert h5["mu"].shape == h5["canonical_mu"].shape == h5["energy"].shape == (run.n_rows,)
        assert run.n_rows == K * run.n_snapshots == K * (14 + 12 + 3 + 3)
        np.testing.assert_allclose(h5["mu"][...] - h5["canonical_mu"][...],
                                   np.tile([-0.3, -0.15, 0.0, 0.15, 0.3], run.n_snapshots),
                                   atol=1e-12)
        np.testing.assert_array_equal(h5.attrs["labels_mu_offsets"], [-0.3, -0.15, 0.0, 0.15, 0.3])
        assert h5.attrs["filling"] == MODEL.filling  # the attributes still rebuild the model
        spins, protocol = h5["spins"][...], h5["protocol"][...]
        np.testing.assert_array_equal(spins[protocol == 3][::K], np.load(generated / "frames.npy"))
        assert sorted(set(protocol)) == [0, 1, 2, 3]  # every protocol labelled at every mu
        exact = it.ExactSolver(MODEL)
        for row in (0, 7, int(np.flatnonzero(protocol == 2)[-1]), len(spins) - 1):
            st = exact.solve(spins[row])
            fresh = _fresh(MODEL, h5["mu"][row]).solve(spins[row])
            assert h5["canonical_mu"][row] == pytest.approx(st.mu, abs=1e-12)
            np.testing.assert_allclose(h5["fields"][row], fresh.fields, atol=1e-10)
            np.testing.assert_allclose(h5["density"][row], fresh.density, atol=1e-10)
            assert abs(h5["energy"][row] - fresh.energy) < 1e-9
        # Offset 0: the canonical labels (kT = 0, mu* mid-gap).
        zero = np.flatnonzero(np.isclose(h5["mu"][...], h5["canonical_mu"][...]))
        st = exact.solve(spins[zero[:4]])
        np.testing.assert_allclose(h5["energy"][zero[:4]] + st.mu * N_E, st.energy, atol=1e-9)
        np.testing.assert_allclose(h5["density"][zero[:4]].sum(-1), N_E, atol=1e-9)
        np.testing.assert_allclose(h5["fields"][zero[:4]], st.fields, atol=1e-10)


def test_resume_with_labels_equals_a_straight_run(generated, tmp_path):
    run = load_run(generated / "run.toml")
    out = tmp_path / "partial.h5"
    with DataFile(out, run, file_attrs(run, solver_for(run.cfg))) as data:
        data.write(run_task(run.tasks[2], run.cfg, threads=1))
        half = run_task(run.tasks[0], run.cfg, threads=1)["rows"]
        for k in range(7):  # an unfinished task: part of its (snapshot, mu) rows
            data.floats.append(**{n: half[n][k] for n in data.floats.names})
            data.ints.append(task=0, protocol=0, sample=k)
    with DataFile(out, run, {}) as data:
        assert data.done == {2} and 0 not in data.h5["task"][...]
    assert generate(generated / "run.toml", out, workers=0, progress=False).complete
    with h5py.File(out, "r") as a, h5py.File(generated / "data.h5", "r") as b:
        assert sorted(a) == sorted(b)
        for name in a:
            np.testing.assert_array_equal(a[name][...], b[name][...], err_msg=name)
    # The labels are part of the run's identity.
    other = generated / "other.toml"
    other.write_text(RUN.replace("mu_offsets = [-0.3,", "mu_offsets = [-0.4,"))
    assert load_run(other).hash != run.hash
    with pytest.raises(ValueError, match="different run file"):
        generate(other, out, workers=0, progress=False)


def test_training_data_split_keeps_configurations_together(generated):
    d = load_training_data([generated / "data.h5"], 0.15, 0.15, 1)
    g = d.groups[6]
    assert d.has_mu and d.has_density and g.mu.shape == (160,)
    for part in (TRAIN, VALIDATION, TEST):
        rows = g.indices(part)
        assert len(rows) % 5 == 0 and len(rows) > 0
        assert all(np.array_equal(g.spins[r], g.spins[r - r % 5]) for r in rows)
        assert set((rows // 5).tolist()) == {r // 5 for r in rows if r % 5 == 0}


def test_trained_model_metrics_and_metadata(trained):
    out, metrics, _ = trained
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["mu_conditioned"] and metrics["density_weight"] == 1.0
    test = metrics["test"]
    assert set(test["density"]) == {"r2", "mae", "rmse"} and test["density"]["mae"] < 0.1
    assert np.isfinite(test["fields"]["perpendicular"]["r2"])
    assert test["fields"]["full"]["r2"] > 0.9
    ff = MLForceField.load(out)
    lo, hi = ff.mu_range
    assert ff.mu_conditioned and ff.metadata["training"]["mu_range"] == [lo, hi]
    assert ff.metadata["network"]["mu_range"] == [lo, hi] == metrics["mu_range"]
    with h5py.File(out.parent / "data.h5", "r") as h5:
        assert lo >= h5["mu"][...].min() and hi <= h5["mu"][...].max()
    assert ff.ensemble == {"filling": MODEL.filling} and ff.model == MODEL
    history = json.loads((out / "history.json").read_text())
    assert "val_density_rmse" in history[-1]
    # The trained mu range is part of the model's identity: editing it is caught.
    from itinerant.models import ModelFileError

    copy = out.parent / "edited"
    copy.mkdir()
    for name in ("model.safetensors", "metadata.json"):
        (copy / name).write_bytes((out / name).read_bytes())
    meta = json.loads((copy / "metadata.json").read_text())
    meta["network"]["mu_range"] = [lo - 1.0, hi]
    (copy / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="metadata was edited"):
        MLForceField.load(copy)


def _tangent_fd(ff, s, rng, eps=1e-5):
    d = rng.normal(size=s.shape)
    d -= (d * s).sum(-1, keepdims=True) * s
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    return d, -(ff.energy(unit(s + eps * d)) - ff.energy(unit(s - eps * d))) / (2 * eps)


def test_canonical_fields_are_the_gradient_of_the_free_energy(trained, rng):
    """E = Omega(mu*) + mu* N_e with N(S, mu*) = N_e: -dE/dS (finite differences along the sphere,
    mu* re-solved at every point) equals the fields at mu*; sum_i n_i(mu*) = N_e."""
    ff = MLForceField.load(trained[0], expect_model=MODEL, electron_tolerance=1e-12)
    assert ff.ensemble == {"filling": MODEL.filling}
    for s in (random_spins(36, rng), STATES["neel"](MODEL.lattice)):
        s = s + 0.2 * rng.normal(size=s.shape)
        s /= np.linalg.norm(s, axis=1, keepdims=True)
        E, h = ff.energy_and_fields(s)
        mu = ff.last_mu
        n = ff.density(s)
        assert n.shape == (36,) and abs(n.sum() - N_E) <= 1e-12 * 36
        Omega, h_mu, n_mu = ff.grand_potential(s, mu)
        assert E == pytest.approx(Omega + mu * N_E, rel=1e-13)
        np.testing.assert_allclose(h, h_mu, atol=1e-12)
        assert ff.chemical_potential(s) == pytest.approx(mu, abs=1e-9)
        d, fd = _tangent_fd(ff, s, rng)
        assert fd == pytest.approx((h * d).sum(), rel=1e-6, abs=1e-8)
        # Not the field at any other mu: the constraint matters.
        assert np.abs(ff.grand_potential(s, mu + 0.1)[1] - h).max() > 1e-4
    # The default tolerance (1e-6 N) and a stack of configurations.
    loose = MLForceField.load(trained[0], expect_model=MODEL)
    S = np.stack([random_spins(36, rng) for _ in range(3)])
    E, h = loose.energy_and_fields(S)
    assert loose.last_mu.shape == (3,)
    np.testing.assert_allclose(loose.density(S).sum(-1), N_E, atol=1e-6 * 36)
    for k in range(3):
        Ek, hk = ff.energy_and_fields(S[k])
        assert Ek == pytest.approx(E[k], rel=1e-9) and np.abs(hk - h[k]).max() < 1e-5
    # The autograd path gives the same numbers as the fast path.
    slow = MLForceField.load(trained[0], expect_model=MODEL, fast=False, electron_tolerance=1e-12)
    Es, hs = slow.energy_and_fields(S[0])
    Ef, hf = ff.energy_and_fields(S[0])
    assert Es == pytest.approx(Ef, rel=1e-12) and np.abs(hs - hf).max() < 1e-10


def test_fixed_mu_mode_and_other_fillings(trained, rng):
    out = trained[0]
    lo, hi = MLForceField.load(out).mu_range
    mu = 0.5 * (lo + hi)
    ff = MLForceField.load(out, expect_model=it.SDModel(MODEL.lattice, J=6.0, mu=mu))
    assert ff.ensemble == {"mu": mu} and ff.model.mu == mu
    s = random_spins(36, rng)
    E, h = ff.energy_and_fields(s)
    Omega, h2, n = ff.grand_potential(s, mu)
    assert E == Omega and np.array_equal(h, h2) and ff.last_mu == mu
    np.testing.assert_array_equal(ff.density(s), n)
    assert ff.site_energies(s).sum() == pytest.approx(Omega, rel=1e-12)
    d, fd = _tangent_fd(ff, s, rng)
    assert fd == pytest.approx((h * d).sum(), rel=1e-6, abs=1e-8)
    # The same filling on a larger lattice (N_e = 140 on 12 x 12), and on one where it is no
    # integer number of electrons (8 x 8).
    big = ff.on(it.Lattice.square(12)).with_ensemble(filling=MODEL.filling)
    tiled = np.tile(s.reshape(6, 6, 3), (2, 2, 1)).reshape(-1, 3)
    E12, h12 = big.energy_and_fields(tiled)
    assert abs(big.density(tiled).sum() - 140) <= 1e-6 * 144
    assert big.model.n_electrons == 140
    with pytest.raises(ValueError, match="not an integer"):
        big.energy_and_fields(random_spins(64, rng))


def test_simulate_in_canonical_mode_stores_density_and_mu(trained, tmp_path):
    from itinerant.cli.simulate import run_simulation, validate_run

    cfg = validate_run({
        "model": {"lattice": "square", "L": 6, "J": 6.0, "filling": MODEL.filling},
        "force_field": {"kind": "ml", "path": str(trained[0])},
        "initial": {"state": "neel", "noise": 0.2, "seed": 1},
        "dynamics": {"alpha": 0.5, "dt": 0.05, "steps": 6, "save_every": 2, "integrator": "sib"},
        "output": {"observables": ["density", "chemical_potential"]}})
    traj = run_simulation(cfg, out=tmp_path / "traj.h5", progress=False)
    assert traj["density"].shape == (4, 36) and traj["chemical_potential"].shape == (4,)
    np.testing.assert_allclose(traj["density"].sum(-1), N_E, atol=1e-6 * 36)
    a = traj.attrs
    assert a["filling"] == MODEL.filling
    assert json.loads(a["force_field_settings"])["ml_ensemble"] == "canonical"
    ff = MLForceField.load(trained[0], expect_model=MODEL)
    E = [ff.energy_and_fields(s)[0] for s in traj.spins]
    np.testing.assert_allclose(traj.energy, E, rtol=1e-9)
    assert np.diff(traj.energy).max() < 1e-6  # damped dynamics at fixed N_e lowers the energy


# ---------------------------------------------------------------------- (d) invariances
@pytest.mark.parametrize("mode", ["canonical", "fixed-mu"])
def test_spin_rotation_and_lattice_symmetry(trained, mode, rng):
    ff = MLForceField.load(trained[0], expect_model=MODEL, electron_tolerance=1e-12)
    if mode == "fixed-mu":
        ff = ff.with_ensemble(mu=float(np.mean(ff.mu_range)))
    lat = MODEL.lattice
    s = random_spins(lat.N, rng)
    E, h = ff.energy_and_fields(s)
    mu = ff.last_mu
    scale = np.abs(h).max()
    for proper in (True, False):
        R = random_rotation(rng, proper=proper)
        E2, h2 = ff.energy_and_fields(s @ R.T)
        assert E2 == pytest.approx(E, rel=1e-12) and ff.last_mu == pytest.approx(mu, abs=1e-10)
        assert np.abs(h2 - h @ R.T).max() < 1e-9 * scale
    perms = [lat.point_operation(g) for g in range(len(lat.point_group))]
    perms += [lat.translation(1, 0), lat.translation(2, 5)]
    n = ff.density(s)
    for p in perms:
        t = lat.transform(s, p)
        E2, h2 = ff.energy_and_fields(t)
        assert E2 == pytest.approx(E, rel=1e-12)
        assert np.abs(h2 - lat.transform(h, p)).max() < 1e-9 * scale
        np.testing.assert_allclose(ff.density(t), lat.transform(n, p), atol=1e-9)


# ---------------------------------------------------------------------- (e) bad input
def test_mu_outside_the_training_range(trained, rng):
    ff = MLForceField.load(trained[0])
    lo, hi = ff.mu_range
    s = random_spins(36, rng)
    with pytest.raises(ValueError, match="far outside the range of chemical potentials"):
        ff.grand_potential(s, hi + 5.0)
    with pytest.raises(ValueError, match="far outside"):
        MLForceField.load(trained[0], expect_model=it.SDModel(MODEL.lattice, J=6.0, mu=lo - 5))
    with pytest.warns(RuntimeWarning, match="outside the range"):
        ff.grand_potential(s, hi + 0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ff.grand_potential(s, hi)


def test_canonical_solve_that_cannot_bracket(trained, rng):
    ff = MLForceField.load(trained[0], expect_model=MODEL)
    s = random_spins(36, rng)
    for filling in (0.25, 0.75):
        with pytest.raises(ChemicalPotentialError, match="cannot bracket N_e"):
            ff.with_ensemble(filling=filling).energy_and_fields(s)
    ff.energy_and_fields(s)  # still fine at its own filling


def test_chemical_potential_solver():
    calls = []

    def linear(mu):
        calls.append(mu)
        return 10.0 + 4.0 * mu, {"mu": mu}

    mu, payload, slope, n = solve_chemical_potential(linear, 12.0, 0.0, (-1.0, 1.0), 1e-10)
    assert mu == pytest.approx(0.5) and payload == {"mu": mu} and slope == pytest.approx(4.0)
    assert n == len(calls) <= 4
    calls.clear()  # a good warm start needs one evaluation
    assert solve_chemical_potential(linear, 12.0, 0.5, (-1, 1), 1e-10, slope=4.0)[3] == 1
    # Non-monotone but continuous: found by bracketing.
    wavy = lambda mu: (np.tanh(3 * mu) + 0.3 * np.sin(9 * mu), None)  # noqa: E731
    mu = solve_chemical_potential(wavy, 0.9, -0.8, (-1, 1), 1e-12)[0]
    assert abs(wavy(mu)[0] - 0.9) <= 1e-12
    with pytest.raises(ChemicalPotentialError, match="cannot bracket N_e = 20"):
        solve_chemical_potential(linear, 20.0, 0.0, (-1.0, 1.0), 1e-10)
    step = lambda mu: (5.0 if mu < 0.1 else 6.0, None)  # noqa: E731
    with pytest.raises(ChemicalPotentialError, match="jumps across N_e = 5.5"):
        solve_chemical_potential(step, 5.5, 0.0, (-1.0, 1.0), 1e-6)


def test_models_without_mu_and_other_misuse(trained, generated, tmp_path, rng):
    plain = MLForceField.new(MODEL, cutoff=2.0, hidden=(4,))
    s = random_spins(36, rng)
    for call in (plain.density, plain.chemical_potential, lambda x: plain.grand_potential(x, 0.0)):
        with pytest.raises(ValueError, match="needs a mu-conditioned force field"):
            call(s)
    with pytest.raises(ValueError, match="no chemical-potential input"):
        plain.with_ensemble(mu=0.0)
    assert "mu_range" not in plain.net.config() and not plain.mu_conditioned
    # The mu-conditioned model still refuses other model parameters (not filling | mu).
    for kw, msg in ((dict(J=5.0, filling=0.5), "J 6.0 vs 5.0"),
                    (dict(J=6.0, filling=0.5, kT=0.1), "kT 0.0 vs 0.1")):
        with pytest.raises(ValueError, match=msg):
            MLForceField.load(trained[0], expect_model=it.SDModel(MODEL.lattice, **kw))
    with pytest.raises(ValueError, match="lattice square vs triangular"):
        MLForceField.load(trained[0], expect_model=it.SDModel(it.Lattice.triangular(6), J=6.0,
                                                              filling=0.25))
    # Training: a density weight needs labels at several mu; data of both kinds do not mix.
    from test_training import write_data

    old = write_data(tmp_path / "plain.h5", 6, 6, J=6.0, filling=0.5, kT=0.0)
    cfg = json.loads(json.dumps(trained[2]))
    cfg["output"]["directory"] = str(tmp_path / "x")
    cfg["data"]["files"] = [str(old)]
    with pytest.raises(ConfigError, match="density_weight: needs data labelled at several"):
        train(cfg)
    with pytest.raises(ValueError, match="labelled at several chemical potentials"):
        load_training_data([generated / "data.h5", old], 0.2, 0.2, 0)


def test_labels_table_validation(tmp_path):
    base = RUN.split("[[protocol]]")[0] + '[[protocol]]\nkind = "random"\ncount = 1\n'
    cases = [("mu_offsets = [-0.3, -0.15, 0.0, 0.15, 0.3]", "mu = [0.1]\nmu_offsets = [0.0]",
              r"give mu \(absolute\) or mu_offsets"),
             ("mu_offsets = [-0.3, -0.15, 0.0, 0.15, 0.3]", "mu_offsets = []", "must not be empty"),
             ("mu_offsets = [-0.3, -0.15, 0.0, 0.15, 0.3]", "mu_offsets = [0.1, 0.1]", "repeat"),
             ("mu_offsets = [-0.3, -0.15, 0.0, 0.15, 0.3]", "mu_ofsets = [0.1]", "did you mean"),
             ("kT = 0.0", 'kT = 0.5\n[solver]\nkind = "kpm"', "need the exact solver")]
    for old, new, msg in cases:
        path = tmp_path / "run.toml"
        assert old in base
        path.write_text(base.replace(old, new))
        with pytest.raises(ConfigError, match=msg):
            load_run(path)
    # Absolute chemical potentials, for a fixed-mu model.
    path.write_text(base.replace("filling = 0.4861111111111111", "mu = -5.3")
                    .replace("mu_offsets = [-0.3, -0.15, 0.0, 0.15, 0.3]", "mu = [-5.4, -5.2]"))
    run = load_run(path)
    rows = run_task(run.tasks[0], run.cfg, threads=1)["rows"]
    np.testing.assert_array_equal(rows["mu"], [-5.4, -5.2])
    np.testing.assert_array_equal(rows["canonical_mu"], [-5.3, -5.3])


def test_command_line(generated, tmp_path):
    from typer.testing import CliRunner

    from itinerant.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["generate", str(generated / "run.toml"), "--out",
                              str(tmp_path / "x.h5"), "--dry-run"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["generate", str(generated / "run.toml"), "--out",
                              str(generated / "data.h5"), "--workers", "0"])  # complete: resumes
    assert res.exit_code == 0, res.output
    assert "160 rows (32 snapshots x 5 chemical potentials)" in " ".join(res.output.split())
    run = tmp_path / "train.toml"
    run.write_text(f'[data]\nfiles = ["{generated / "data.h5"}"]\n[descriptor]\ncutoff = 2.0\n'
                   '[network]\nhidden = [8]\n[training]\nepochs = 2\ndensity_weight = 0.5\n'
                   '[output]\ndirectory = "out"\n')
    res = runner.invoke(app, ["train", str(run), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "density MAE" in " ".join(res.output.split())
    assert MLForceField.load(tmp_path / "out").mu_conditioned
    assert (tmp_path / "out" / "parity.png").is_file()
