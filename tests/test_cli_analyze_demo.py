"""``itinerant analyze`` and ``itinerant demo``: outputs, dispatch, errors, and the demo's model path."""

import json

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import itinerant as it
from itinerant.cli import app
from itinerant.analysis import triangular as tr
from itinerant.cli import analyze as analyze_mod
from itinerant.cli.demo import DEMOS, run_demo
from itinerant.io import RowWriter, write_attrs
from itinerant.models import forcefield as ff_module
from itinerant.spins import random_spins

from test_analysis_triangular import write_stripe_trajectory

runner = CliRunner()


def test_analyze_writes_tables_and_figures(tmp_path):
    paths = [write_stripe_trajectory(tmp_path / f"r{k}.h5", L=48, domains=(12, 8, 6, 4), noise=0.1,
                                     seed=k) for k in range(2)]
    out = tmp_path / "out"
    res = runner.invoke(app, ["analyze", *map(str, paths), "--out", str(out), "--window", "5", "1000"])
    assert res.exit_code == 0, res.output
    assert "length_corr: L ~ t^(" in res.output
    for name in ("lengths.csv", "analysis.json", "domain_growth.png", "evolution.png",
                 "chirality_maps.png"):
        assert (out / name).stat().st_size > 0, name
    doc = json.loads((out / "analysis.json").read_text())
    assert doc["window"] == [5, 1000] and doc["window_rule"] == "given" and len(doc["runs"]) == 2
    fit = doc["fits"]["length_corr"]
    direct = tr.analyze_runs(paths, window=(5, 1000))["fits"]["length_corr"]
    assert fit["exponent"] == pytest.approx(direct.exponent, rel=1e-12) and fit["points"] == 4
    assert fit["stderr"] == pytest.approx(direct.stderr, rel=1e-12) and 0.3 < fit["exponent"] < 0.6
    rows = (out / "lengths.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[:3] == ["time", "energy", "energy_err"] and "length_corr_err" in header
    assert len(rows) == 1 + 5
    first = dict(zip(header, rows[-1].split(",")))
    assert float(first["time"]) == 144 and float(first["length_corr_err"]) > 0


def test_analyze_default_window(tmp_path):
    path = write_stripe_trajectory(tmp_path / "a.h5", L=48, domains=(16, 12, 8, 6))
    out = tmp_path / "out"
    res = runner.invoke(app, ["analyze", str(path), "-o", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "analysis.json").read_text())
    lengths = np.array(doc["mean"]["length_corr"])
    t = np.array(doc["time"])
    assert doc["window"][0] == t[np.argmax(lengths >= 2)] and "system size" in doc["window_rule"]
    assert doc["window"][1] == t[-1]  # L_C stays below 48/10
    assert doc["err"]["length_corr"] == [None] * len(t)  # one run: no error bars


def _square_trajectory(path):
    lat = it.Lattice.square(8)
    with h5py.File(path, "w") as h5:
        write_attrs(h5, {"lattice": "square", "L": 8})
        w = RowWriter(h5, {"time": (), "spins": (lat.N, 3), "energy": ()})
        w.append(time=0.0, spins=random_spins(lat.N, 0), energy=0.0)
    return path


def test_analyze_errors(tmp_path):
    sq = _square_trajectory(tmp_path / "sq.h5")
    res = runner.invoke(app, ["analyze", str(sq), "-o", str(tmp_path / "sq")])
    assert res.exit_code == 0, res.output
    assert {"observables.csv", "analysis.json"} <= {p.name for p in (tmp_path / "sq").iterdir()}
    a = write_stripe_trajectory(tmp_path / "a.h5", L=24, domains=(4, 2))
    b = write_stripe_trajectory(tmp_path / "b.h5", L=48, domains=(8, 4))
    res = runner.invoke(app, ["analyze", str(a), str(b), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "different lattices" in res.output
    res = runner.invoke(app, ["analyze", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no trajectory file" in res.output
    res = runner.invoke(app, ["analyze", str(a), "-o", str(tmp_path / "o"), "--window", "10", "5"])
    assert res.exit_code == 2 and "t_min < t_max" in res.output
    assert set(analyze_mod.ANALYSES) == {"triangular", "square"}


# ---------------------------------------------------------------------- demo
@pytest.fixture
def no_shipped_models(tmp_path, monkeypatch):
    empty = tmp_path / "shipped"
    empty.mkdir()
    monkeypatch.setattr(ff_module, "SHIPPED", empty)


def test_demo_without_the_shipped_model_names_it(tmp_path, no_shipped_models):
    res = runner.invoke(app, ["demo", "--out", str(tmp_path / "d")])
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "'triangular-J2-n0.25'" in text and "not installed" in text
    with pytest.raises(FileNotFoundError, match="triangular-J2-n0.25"):
        run_demo(out=tmp_path / "d")
    assert not (tmp_path / "d" / "trajectory.h5").exists()


def test_demo_defaults():
    d = DEMOS["triangular"]
    assert (d.lattice, d.model, d.L) == ("triangular", "triangular-J2-n0.25", 96)
    assert next(iter(DEMOS)) == "triangular"


@pytest.fixture
def tiny_model(tmp_path):
    """An untrained (random-weight) force field of the demo's model, saved as a model directory."""
    model = it.SDModel(it.Lattice.triangular(12), t=(1.0,), J=2.0, filling=0.25)
    ff = it.MLForceField.new(model, cutoff=1.0, hidden=(8,), seed=3)
    return ff.save(tmp_path / "tiny")


def test_demo_runs_with_a_model_directory(tmp_path, tiny_model):
    out = tmp_path / "demo"
    res = runner.invoke(app, ["demo", "triangular", "--L", "12", "--steps", "4", "--model",
                              str(tiny_model), "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    for name in ("trajectory.h5", "chirality_maps.png", "domain_growth.png", "evolution.png",
                 "lengths.csv", "analysis.json"):
        assert (out / name).is_file(), name
    d = DEMOS["triangular"]
    with h5py.File(out / "trajectory.h5") as h5:
        assert h5.attrs["demo"] == "triangular" and h5.attrs["lattice"] == "triangular"
        assert h5.attrs["L"] == 12 and h5.attrs["alpha"] == d.alpha and h5.attrs["dt"] == d.dt
        assert h5.attrs["integrator"] == d.integrator and h5.attrs["force_field"] == "ml"
        assert h5["spins"].shape == (5, 144, 3) and h5["tetrahedral_order"].shape == (5, 3, 3)
        assert np.allclose(h5["time"][...], d.dt * np.arange(5))
        s0 = h5["spins"][0]
    assert np.allclose(s0, random_spins(144, np.random.default_rng(0)))  # seed 0
    # running again replaces the trajectory
    res = runner.invoke(app, ["demo", "--L", "12", "--steps", "2", "--model", str(tiny_model),
                              "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    with h5py.File(out / "trajectory.h5") as h5:
        assert len(h5["time"]) == 3


def test_demo_with_an_explicit_force_field(tmp_path):
    lat = it.Lattice.triangular(12)
    exact = it.ExactSolver(it.SDModel(lat, t=(1.0,), J=2.0, filling=0.25))
    res = run_demo(out=tmp_path / "d", steps=2, force_field=exact, progress=False)
    traj = it.Trajectory.load(res["trajectory"])
    assert traj.attrs["force_field"] == exact.name and len(traj) == 3
    E0, _ = exact.energy_and_fields(traj.spins[0])
    assert traj.energy[0] == pytest.approx(E0, rel=1e-12)
    with pytest.raises(ValueError, match="differs"):
        run_demo(out=tmp_path / "d", L=24, steps=1, force_field=exact)
    with pytest.raises(ValueError, match="triangular Lattice"):
        run_demo(out=tmp_path / "d", steps=1,
                 force_field=it.ExactSolver(it.SDModel(it.Lattice.square(4), J=2.0, filling=0.5)))
    with pytest.raises(ValueError, match="unknown demo"):
        run_demo("hexagonal", out=tmp_path / "d")


def test_demo_settings_order_a_small_lattice_with_the_exact_solver(tmp_path):
    """The demo's alpha, dt and integrator, with exact fields on 8x8: random spins reach the
    tetrahedral state (the physics the shipped model stands in for) within 120 steps."""
    from itinerant.spins import tetrahedral

    lat = it.Lattice.triangular(8)
    exact = it.ExactSolver(it.SDModel(lat, t=(1.0,), J=2.0, filling=0.25))
    res = run_demo(out=tmp_path / "d", steps=120, force_field=exact, progress=False, seed=0)
    traj = it.Trajectory.load(res["trajectory"])
    assert traj["chirality_abs"][0] < 0.6 * tr.CHI0
    assert traj["chirality_abs"][-1] > 0.99 * tr.CHI0
    assert tr.order_magnitude(traj["tetrahedral_order"][-1]) > 0.99
    E_tet, _ = exact.energy_and_fields(tetrahedral(lat))
    assert traj.energy[-1] == pytest.approx(E_tet, abs=1e-3 * lat.N)
    assert np.all(np.diff(traj.energy) < 1e-9)  # damped, kT = 0: the energy never rises


def test_square_demo_with_the_exact_solver(tmp_path):
    """The square demo's pipeline (canonical electrons, density and mu* per frame, the square
    analysis) with the exact solver standing in for the shipped model: N_e = 97 on 10x10."""
    d = DEMOS["square"]
    assert (d.lattice, d.model, dict(d.ensemble)) == ("square", "square-J6-n0.485", {"filling": 0.485})
    lat = it.Lattice.square(10)
    exact = it.ExactSolver(it.SDModel(lat, t=(1.0,), J=6.0, filling=0.485))
    res = run_demo("square", out=tmp_path / "sq", steps=3, force_field=exact, progress=False)
    for name in ("trajectory.h5", "observables.csv", "analysis.json", "observables.png", "maps.png"):
        assert (tmp_path / "sq" / name).is_file(), name
    with h5py.File(res["trajectory"]) as h5:
        assert h5.attrs["demo"] == "square" and h5.attrs["alpha"] == d.alpha
        dens = h5["density"][...]
        assert dens.shape == (4, lat.N) and np.allclose(dens.sum(1), 97, atol=1e-8)
        assert h5["chemical_potential"].shape == (4,)
