"""``itinerant --version`` and ``itinerant solve``."""

import subprocess
import sys

import h5py
import numpy as np
from typer.testing import CliRunner

import itinerant as it
from itinerant.cli import app
from itinerant.io import read_model
from itinerant.spins import random_spins

runner = CliRunner()


def test_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and it.__version__ in res.stdout


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "itinerant", "--version"], capture_output=True,
                         text=True, check=True)
    assert it.__version__ in out.stdout


def test_solve_writes_exact_fields(tmp_path, rng):
    lat = it.Lattice.triangular(6)
    stack = np.stack([random_spins(lat.N, rng) for _ in range(2)])
    np.save(tmp_path / "s.npy", stack)
    res = runner.invoke(app, ["solve", str(tmp_path / "s.npy"), "--lattice", "triangular", "--L", "6",
                              "--J", "2", "--filling", "0.25", "-o", str(tmp_path / "out.h5")])
    assert res.exit_code == 0, res.output
    model = it.SDModel(lat, J=2.0, filling=0.25)
    E, h = it.ExactSolver(model).energy_and_fields(stack)
    with h5py.File(tmp_path / "out.h5") as f:
        assert np.allclose(f["fields"][...], h) and np.allclose(f["energy"][...], E)
        assert f.attrs["lattice"] == "triangular" and f.attrs["L"] == 6 and f.attrs["J"] == 2.0
        assert read_model(f) == model
    assert f"{E[1]:.12f}" in res.stdout


def test_solve_reports_bad_input_cleanly(tmp_path):
    np.save(tmp_path / "s.npy", np.ones((36, 3)))
    res = runner.invoke(app, ["solve", str(tmp_path / "s.npy"), "--lattice", "square", "--L", "6",
                              "--J", "2", "--filling", "0.5"])
    assert res.exit_code == 2 and "unit vectors" in res.output and "site 0" in res.output
    res = runner.invoke(app, ["solve", str(tmp_path / "s.npy"), "--lattice", "square", "--L", "6",
                              "--J", "2", "--filling", "0.3"])
    assert res.exit_code == 2 and "nearest integer" in res.output
