"""LLG runs: trajectories in memory and in HDF5, attributes, checkpoints and resume, non-finite
values, seeds, the step API, analytic force fields, initial states and observables."""

import h5py
import numpy as np
import pytest

import itinerant as it
from itinerant.dynamics import NonFiniteError, checkpoint_path, initial_state, noise_variance
from itinerant.forcefields import Heisenberg, Zeeman, build_force_field
from itinerant.io import read_model
from itinerant.observables import recorders, scalar_chirality, staggered_magnetization, triangles
from itinerant.spins import neel, random_spins, tetrahedral


@pytest.fixture
def heis():
    lat = it.Lattice.square(4)
    return lat, Heisenberg(lat, J1=1.0, J2=0.2, field=(0.0, 0.1, 0.3))


class Failing:
    """Wraps a force field; raises (like a kill) or returns NaN after ``after`` evaluations."""

    def __init__(self, ff, after, mode="raise"):
        self.ff, self.after, self.mode, self.calls = ff, after, mode, 0
        self.lattice = ff.lattice

    def energy_and_fields(self, spins):
        self.calls += 1
        E, h = self.ff.energy_and_fields(spins)
        if self.calls > self.after:
            if self.mode == "raise":
                raise KeyboardInterrupt
            h = h.copy()
            h[3, 1] = np.nan
        return E, h


# ---------------------------------------------------------------------- trajectories and files


def test_memory_and_file_trajectories_are_identical(heis, tmp_path):
    lat, ff = heis
    s0 = random_spins(lat.N, 0)
    obs = recorders(["magnetization", "staggered_magnetization"], lat)
    a = it.LLG(ff, alpha=0.2, dt=0.05, kT=0.3, seed=4).run(s0, 50, save_every=5, observables=obs)
    b = it.LLG(ff, alpha=0.2, dt=0.05, kT=0.3, seed=4).run(s0, 50, save_every=5, observables=obs,
                                                          out=tmp_path / "t.h5")
    assert len(a) == len(b) == 11 and b.path == tmp_path / "t.h5"
    np.testing.assert_allclose(a.time, 0.25 * np.arange(11), rtol=0, atol=1e-15)
    for k in ("time", "spins", "energy", "magnetization", "staggered_magnetization"):
        np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(b.spins[0], s0)
    np.testing.assert_allclose(b["magnetization"], b.spins.mean(axis=1), atol=1e-15)
    np.testing.assert_allclose(b.energy, [ff.energy_and_fields(s)[0] for s in b.spins], atol=1e-12)
    assert set(b.observables) == {"magnetization", "staggered_magnetization"}
    with h5py.File(b.path) as h5:
        assert h5["spins"].shape == (11, lat.N, 3) and h5["time"].shape == (11,)
        attrs = dict(h5.attrs)
    assert attrs["alpha"] == 0.2 and attrs["dt"] == 0.05 and attrs["kT_spin"] == 0.3
    assert attrs["integrator"] == "heun" and attrs["seed"] == 4
    assert attrs["force_field"] == "heisenberg" and attrs["lattice"] == "square" and attrs["L"] == 4


def test_file_attributes_rebuild_the_model(tmp_path, one_thread):
    lat = it.Lattice.square(4)
    model = it.SDModel(lat, t=(1.0, -0.2), J=3.0, filling=0.5, kT=0.05)
    tr = it.LLG(it.ExactSolver(model), alpha=0.3, dt=0.05).run(random_spins(lat.N, 1), 4,
                                                               out=tmp_path / "x.h5")
    assert read_model(tr.path) == model
    assert tr.attrs["force_field"] == "exact" and tr.attrs["integrator"] == "rk4"
    assert it.Trajectory.load(tr.path).attrs["J"] == 3.0


def test_step_api_reproduces_run(heis):
    lat, ff = heis
    s = random_spins(lat.N, 2)
    tr = it.LLG(ff, alpha=0.1, dt=0.05, kT=0.2, seed=9).run(s, 20)
    sim = it.LLG(ff, alpha=0.1, dt=0.05, kT=0.2, seed=9)
    for k in range(20):
        s = sim.step(s)
    np.testing.assert_array_equal(s, tr.spins[-1])


def test_seeds(heis):
    lat, ff = heis
    s = random_spins(lat.N, 2)
    run = lambda seed: it.LLG(ff, alpha=0.1, dt=0.05, kT=0.2, seed=seed).run(s, 10).spins[-1]  # noqa: E731
    np.testing.assert_array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))
    sim = it.LLG(ff, alpha=0.1, dt=0.05, kT=0.2)
    assert isinstance(sim.seed, int) and sim.run(s, 1).attrs["seed"] == sim.seed


def test_noise_variance_is_the_fluctuation_dissipation_value():
    assert noise_variance(0.5, 0.2) == pytest.approx(2 * 0.5 * 0.2 / 1.25)
    assert noise_variance(0.0, 1.0) == 0.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(alpha=-0.1, dt=0.1), "alpha >= 0"),
    (dict(alpha=0.1, dt=0.0), "dt > 0"),
    (dict(alpha=0.1, dt=0.1, kT=-1.0), "kT >= 0"),
    (dict(alpha=0.0, dt=0.1, kT=0.5), "needs alpha > 0"),
    (dict(alpha=float("nan"), dt=0.1), "alpha must be a finite number"),
    (dict(alpha=0.1, dt=0.1, seed=-3), "seed"),
])
def test_bad_parameters_are_named(heis, kwargs, match):
    with pytest.raises(ValueError, match=match):
        it.LLG(heis[1], **kwargs)


def test_bad_run_arguments(heis, tmp_path):
    lat, ff = heis
    sim = it.LLG(ff, alpha=0.1, dt=0.1)
    with pytest.raises(ValueError, match="shape"):
        sim.run(random_spins(lat.N + 1, 0), 3)
    with pytest.raises(ValueError, match="save_every"):
        sim.run(random_spins(lat.N, 0), 3, save_every=0)
    with pytest.raises(TypeError, match="energy_and_fields"):
        it.LLG(object(), alpha=0.1, dt=0.1)


# ---------------------------------------------------------------------- checkpoints and resume


def test_resume_after_interruption_equals_uninterrupted_run(heis, tmp_path):
    lat, ff = heis
    s0 = random_spins(lat.N, 3)
    kw = dict(alpha=0.3, dt=0.04, kT=0.4, seed=11)
    run = dict(steps=60, save_every=4, checkpoint_every=7)
    ref = it.LLG(ff, **kw).run(s0, out=tmp_path / "ref.h5", **run)

    out = tmp_path / "cut.h5"
    with pytest.raises(KeyboardInterrupt):  # dies during step 31 (2 evaluations per step)
        it.LLG(Failing(ff, after=61), **kw).run(s0, out=out, **run)
    with h5py.File(out) as h5:
        assert h5["spins"].shape[0] == 8  # frames at steps 0, 4, ..., 28 were flushed
    assert it.dynamics.Checkpoint.load(checkpoint_path(out)).step == 28
    res = it.LLG(ff, **kw).run(random_spins(lat.N, 99), out=out, resume=True, **run)
    for k in ("time", "spins", "energy"):
        np.testing.assert_array_equal(res[k], ref[k])
    # Resuming a finished run changes nothing; resuming with more steps extends it.
    again = it.LLG(ff, **kw).run(s0, out=out, resume=True, **run)
    np.testing.assert_array_equal(again.spins, ref.spins)
    longer = it.LLG(ff, **kw).run(s0, out=out, resume=True, **{**run, "steps": 80})
    full = it.LLG(ff, **kw).run(s0, **{**run, "steps": 80})
    np.testing.assert_array_equal(longer.spins, full.spins)


def test_resume_without_a_seed_continues_the_checkpointed_noise(heis, tmp_path):
    lat, ff = heis
    s0 = random_spins(lat.N, 3)
    out = tmp_path / "s.h5"
    with pytest.raises(KeyboardInterrupt):
        first = it.LLG(Failing(ff, after=40), alpha=0.3, dt=0.04, kT=0.4)
        first.run(s0, 30, out=out, checkpoint_every=5)
    res = it.LLG(ff, alpha=0.3, dt=0.04, kT=0.4).run(s0, 30, out=out, resume=True)
    ref = it.LLG(ff, alpha=0.3, dt=0.04, kT=0.4, seed=first.seed).run(s0, 30)
    assert res.attrs["seed"] == first.seed
    np.testing.assert_array_equal(res.spins, ref.spins)


def test_killed_before_the_first_checkpoint_resumes_from_the_start(heis, tmp_path):
    lat, ff = heis
    s0 = random_spins(lat.N, 3)
    out = tmp_path / "early.h5"
    with pytest.raises(KeyboardInterrupt):
        it.LLG(Failing(ff, after=10), alpha=0.3, dt=0.04, kT=0.4, seed=2).run(s0, 30, out=out)
    assert it.dynamics.Checkpoint.load(checkpoint_path(out)).step == 0
    res = it.LLG(ff, alpha=0.3, dt=0.04, kT=0.4, seed=2).run(s0, 30, out=out, resume=True)
    ref = it.LLG(ff, alpha=0.3, dt=0.04, kT=0.4, seed=2).run(s0, 30)
    np.testing.assert_array_equal(res.spins, ref.spins)


def test_resume_refuses_other_settings_and_missing_checkpoints(heis, tmp_path):
    lat, ff = heis
    s0 = random_spins(lat.N, 3)
    out = tmp_path / "a.h5"
    it.LLG(ff, alpha=0.3, dt=0.04, seed=1).run(s0, 10, out=out)
    with pytest.raises(ValueError, match="already exists"):
        it.LLG(ff, alpha=0.3, dt=0.04, seed=1).run(s0, 10, out=out)
    with pytest.raises(ValueError, match=r"dt: checkpoint 0\.04, now 0\.05"):
        it.LLG(ff, alpha=0.3, dt=0.05, seed=1).run(s0, 10, out=out, resume=True)
    with pytest.raises(ValueError, match="beyond the requested 5 steps"):
        it.LLG(ff, alpha=0.3, dt=0.04, seed=1).run(s0, 5, out=out, resume=True)
    checkpoint_path(out).unlink()
    with pytest.raises(ValueError, match="no checkpoint"):
        it.LLG(ff, alpha=0.3, dt=0.04, seed=1).run(s0, 10, out=out, resume=True)
    tr = it.LLG(ff, alpha=0.3, dt=0.04, seed=1).run(s0, 3, out=out, overwrite=True)
    assert len(tr) == 4
    fresh = it.LLG(ff, alpha=0.3, dt=0.04, seed=1).run(s0, 3, out=tmp_path / "b.h5", resume=True)
    assert len(fresh) == 4  # nothing to resume: a fresh start


def test_non_finite_field_names_the_step_and_keeps_frames(heis, tmp_path):
    lat, ff = heis
    s0 = random_spins(lat.N, 3)
    sim = it.LLG(Failing(ff, after=21, mode="nan"), alpha=0.1, dt=0.05, integrator="sib")
    with pytest.raises(NonFiniteError, match="non-finite field at site 3 at step 11") as exc:
        sim.run(s0, 40, save_every=2, out=tmp_path / "nan.h5")
    assert exc.value.step == 11
    kept = exc.value.trajectory
    assert len(kept) == 6 and np.isfinite(kept.spins).all()  # steps 0, 2, ..., 10
    with h5py.File(tmp_path / "nan.h5") as h5:
        assert h5["spins"].shape[0] == 6
    sim = it.LLG(Failing(ff, after=0, mode="nan"), alpha=0.1, dt=0.05)
    with pytest.raises(NonFiniteError, match="at step 0") as exc:
        sim.run(s0, 5)
    assert len(exc.value.trajectory) == 0


def test_fields_of_the_wrong_shape_are_refused(heis):
    class Bad:
        def energy_and_fields(self, spins):
            return 0.0, np.zeros((3, 3))

    with pytest.raises(ValueError, match="fields of shape"):
        it.LLG(Bad(), alpha=0.1, dt=0.1).run(random_spins(16, 0), 2)


# ---------------------------------------------------------------------- force fields


def test_heisenberg_energy_and_fields(heis):
    lat, ff = heis
    s = random_spins(lat.N, 5)
    E, h = ff.energy_and_fields(s)
    b1, b2 = lat.bonds(1), lat.bonds(2)
    bond_sum = lambda b: np.einsum("ia,ia->", s[b[:, 0]], s[b[:, 1]])  # noqa: E731
    assert E == pytest.approx(-bond_sum(b1) - 0.2 * bond_sum(b2) - s.sum(0) @ [0, 0.1, 0.3], abs=1e-12)
    # h = -dE/dS by central differences (E is linear in each S_i)
    eps, i = 1e-6, 7
    for a in range(3):
        d = np.zeros_like(s)
        d[i, a] = eps
        grad = (_raw_energy(ff, s + d) - _raw_energy(ff, s - d)) / (2 * eps)
        assert -grad == pytest.approx(h[i, a], abs=1e-7)
    assert ff.settings() == {"J1": 1.0, "J2": 0.2, "field": [0.0, 0.1, 0.3]}


def _raw_energy(ff, s):
    return -0.5 * np.einsum("ia,ia->", s, ff._exchange @ s) - ff.field @ s.sum(0)


def test_zeeman():
    ff = Zeeman((0, 0, 2.0), n_sites=3)
    s = random_spins(3, 0)
    E, h = ff.energy_and_fields(s)
    assert E == pytest.approx(-2 * s[:, 2].sum()) and np.allclose(h, [0, 0, 2.0])
    with pytest.raises(ValueError, match="n_sites"):
        Zeeman((0, 0, 1.0))
    with pytest.raises(ValueError, match="shape"):
        Zeeman(np.ones((3, 2)))


def test_build_force_field(one_thread):
    lat = it.Lattice.square(4)
    model = it.SDModel(lat, J=2.0, filling=0.5)
    assert isinstance(build_force_field("heisenberg", lattice=lat, J1=-1.0), Heisenberg)
    assert isinstance(build_force_field("zeeman", lattice=lat, field=[0, 0, 1]), Zeeman)
    assert isinstance(build_force_field("exact", model), it.ExactSolver)
    assert build_force_field("heisenberg", model).lattice == lat
    with pytest.raises(ValueError, match="unknown force field 'dft'"):
        build_force_field("dft", model)
    with pytest.raises(ValueError, match="needs a model"):
        build_force_field("exact", lattice=lat)
    with pytest.raises(ValueError, match="bad settings for the 'heisenberg' force field"):
        build_force_field("heisenberg", lattice=lat, J3=1.0)
    with pytest.raises(ValueError, match="needs path"):
        build_force_field("ml", model)


# ---------------------------------------------------------------------- initial states and observables


def test_initial_states(tmp_path):
    lat = it.Lattice.triangular(4)
    a = initial_state("random", lat, np.random.default_rng(1))
    np.testing.assert_array_equal(a, initial_state({"state": "random", "seed": 1}, lat))
    np.testing.assert_array_equal(initial_state("tetrahedral", lat), tetrahedral(lat))
    np.testing.assert_array_equal(initial_state({"state": "tetrahedral", "chirality": -1}, lat),
                                  tetrahedral(lat, -1))
    fm = initial_state({"state": "ferromagnet", "direction": [1, 0, 0]}, lat)
    np.testing.assert_array_equal(fm, np.tile([1.0, 0, 0], (lat.N, 1)))
    noisy = initial_state({"state": "tetrahedral", "noise": 0.1, "seed": 2}, lat)
    np.testing.assert_allclose(np.linalg.norm(noisy, axis=1), 1.0)
    cos = np.einsum("ia,ia->i", noisy, tetrahedral(lat))
    assert 0.9 < cos.min() and cos.max() < 1.0
    np.save(tmp_path / "s.npy", a)
    np.testing.assert_array_equal(initial_state(str(tmp_path / "s.npy"), lat), a)
    with h5py.File(tmp_path / "t.h5", "w") as h5:
        h5["spins"] = np.stack([a, noisy])
    np.testing.assert_array_equal(initial_state({"file": tmp_path / "t.h5"}, lat), noisy)
    np.testing.assert_array_equal(initial_state({"file": tmp_path / "t.h5", "frame": 0}, lat), a)
    with pytest.raises(ValueError, match="frame 5 does not exist"):
        initial_state({"file": tmp_path / "t.h5", "frame": 5}, lat)
    with pytest.raises(ValueError, match="does not exist"):
        initial_state(str(tmp_path / "missing.npy"), lat)
    with pytest.raises(ValueError, match="Neel state is defined on the square lattice"):
        initial_state("neel", lat)
    with pytest.raises(ValueError, match="not both"):
        initial_state({"state": "random", "file": "x.npy"}, lat)
    with pytest.raises(ValueError, match="'chirality' does not apply"):
        initial_state({"state": "random", "chirality": 1}, lat)
    with pytest.raises(ValueError, match="unknown initial-state option"):
        initial_state({"state": "random", "colour": 1}, lat)
    with pytest.raises(ValueError, match="shape"):
        initial_state(str(tmp_path / "s.npy"), it.Lattice.triangular(6))


def test_observables():
    sq, tri = it.Lattice.square(4), it.Lattice.triangular(4)
    np.testing.assert_allclose(staggered_magnetization(neel(sq), sq), [0, 0, 1])
    t = triangles(tri)
    assert t.shape == (2 * tri.N, 3) and len({tuple(sorted(x)) for x in t}) == 2 * tri.N
    chi = 4 / (3 * np.sqrt(3))
    assert scalar_chirality(tetrahedral(tri), tri) == pytest.approx(chi)
    assert scalar_chirality(tetrahedral(tri, -1), tri) == pytest.approx(-chi)
    # every triangle of the tetrahedral state carries the same chirality
    s = tetrahedral(tri)
    per = np.einsum("ta,ta->t", s[t[:, 0]], np.cross(s[t[:, 1]], s[t[:, 2]]))
    np.testing.assert_allclose(per, chi)
    with pytest.raises(ValueError, match="unknown observable 'energy_density'"):
        recorders(["energy_density"], sq)
    with pytest.raises(ValueError, match="triangular lattice"):
        recorders(["scalar_chirality"], sq)
    with pytest.raises(ValueError, match="even L"):
        recorders(["staggered_magnetization"], it.Lattice.square(5))
