"""``itinerant simulate``: run files, validation messages, output files, and resume after a real kill."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import itinerant as it
from itinerant.cli import app
from itinerant.cli.simulate import build_run, load_simulation, run_simulation
from itinerant.config import ConfigError
from itinerant.dynamics import Checkpoint, checkpoint_path

runner = CliRunner()
EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("simulate-*.toml"))

RUN = """
[lattice]
kind = "square"
L = 4

[force_field]
kind = "heisenberg"
[force_field.settings]
J1 = 1.0
field = [0.0, 0.0, 0.2]

[initial]
state = "random"
seed = 3

[dynamics]
alpha = 0.3
dt = 0.05
kT = 0.2
steps = 40
save_every = 4
checkpoint_every = 10
seed = 5

[output]
file = "out.h5"
observables = ["magnetization", "staggered_magnetization"]
"""


def write(tmp_path, text, name="run.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_cli_runs_a_run_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["simulate", str(write(tmp_path, RUN)), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "wrote out.h5: 11 frames to t = 2" in " ".join(res.output.split())
    tr = it.Trajectory.load(tmp_path / "out.h5")
    assert tr.spins.shape == (11, 16, 3) and tr["staggered_magnetization"].shape == (11, 3)
    a = tr.attrs
    assert (a["force_field"], a["lattice"], a["L"]) == ("heisenberg", "square", 4)
    assert (a["integrator"], a["seed"], a["alpha"], a["kT_spin"]) == ("heun", 5, 0.3, 0.2)
    assert json.loads(a["force_field_settings"])["field"] == [0.0, 0.0, 0.2]
    assert json.loads(a["run_config"])["dynamics"]["alpha"] == 0.3
    assert checkpoint_path(tmp_path / "out.h5").exists()
    # the same run from Python gives the same frames
    cfg = load_simulation(tmp_path / "run.toml")
    again = run_simulation(cfg, out=tmp_path / "again.h5", progress=False)
    np.testing.assert_array_equal(again.spins, tr.spins)
    # an existing file is not replaced silently
    res = runner.invoke(app, ["simulate", str(tmp_path / "run.toml"), "-q"])
    assert res.exit_code == 2 and "already exists" in " ".join(res.output.split())
    res = runner.invoke(app, ["simulate", str(tmp_path / "run.toml"), "-q", "--overwrite", "--out", "o2.h5"])
    assert res.exit_code == 0 and (tmp_path / "o2.h5").exists()


def test_exact_solver_run_file_records_the_model(tmp_path, one_thread):
    text = RUN.replace('[lattice]\nkind = "square"\nL = 4',
                       '[model]\nlattice = "square"\nL = 4\nJ = 4.0\nfilling = 0.5')
    text = text.replace('kind = "heisenberg"\n[force_field.settings]\nJ1 = 1.0\nfield = [0.0, 0.0, 0.2]',
                        'kind = "exact"').replace("steps = 40", "steps = 8")
    tr = run_simulation(load_simulation(write(tmp_path, text)), out=tmp_path / "x.h5", progress=False)
    assert it.io.read_model(tr.path) == it.SDModel(it.Lattice.square(4), J=4.0, filling=0.5)
    assert tr.attrs["force_field"] == "exact" and len(tr) == 3


def test_learned_force_field_run_file(tmp_path, one_thread):
    """kind = "ml": a model file (untrained weights suffice here) drives LLG on a larger lattice,
    checked against the run's [model]."""
    from itinerant.models import MLForceField

    small = it.SDModel(it.Lattice.square(4), J=2.0, filling=0.5)
    path = MLForceField.new(small, cutoff=1.0, hidden=(8,)).save(tmp_path / "model")
    text = f"""
[model]
lattice = "square"
L = 6
J = 2.0
filling = 0.5
[force_field]
kind = "ml"
path = "{path}"
[dynamics]
alpha = 0.1
dt = 0.05
steps = 4
[output]
file = "{tmp_path / 'ml.h5'}"
"""
    res = runner.invoke(app, ["simulate", str(write(tmp_path, text)), "-q"])
    assert res.exit_code == 0, res.output
    tr = it.Trajectory.load(tmp_path / "ml.h5")
    assert tr.spins.shape == (5, 36, 3) and tr.attrs["force_field"] == "ml" and tr.attrs["L"] == 6
    assert np.all(np.diff(tr.energy) < 0)
    res = runner.invoke(app, ["simulate", str(write(tmp_path, text.replace("J = 2.0", "J = 3.0"))),
                              "-q", "--out", str(tmp_path / "other.h5")])
    assert res.exit_code == 2 and "[force_field]" in res.output and "J" in res.output


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_are_valid(path):
    cfg = load_simulation(path)
    lattice, ff, spins, sim = build_run(cfg)
    assert spins.shape == (lattice.N, 3) and sim.dt > 0


BAD = [
    ("dt = 0.05", "dtt = 0.05", "[dynamics] dtt: unknown key (did you mean 'dt'?)"),
    ("steps = 40", 'steps = "many"', "[dynamics] steps: expected int, got str"),
    ("alpha = 0.3\n", "", "[dynamics] alpha: missing required value"),
    ("steps = 40", "steps = -1", "[dynamics] steps: must be >= 0"),
    ('kind = "heisenberg"', 'kind = "dft"', "[force_field] kind: 'dft' is not one of"),
    ('kind = "heisenberg"', 'kind = "exact"', "[model]: missing required table"),
    ('kind = "heisenberg"', 'kind = "ml"', "[force_field] path: missing required value"),
    ("J1 = 1.0", "J3 = 1.0", "[force_field.settings] J3: unknown key"),
    ("field = [0.0, 0.0, 0.2]", "field = [0.0, 0.2]",
     "[force_field.settings] field: must have 3 components"),
    ('"magnetization", "staggered', '"magnetisation", "staggered',
     "[output] observables[0]: unknown observable"),
    ('state = "random"', 'state = "random"\nfile = "s.npy"',
     "[initial] file: give a state or a file, not both"),
    ('state = "random"', 'state = "spiral"', "[initial] state: 'spiral' is not one of"),
    ("alpha = 0.3", "alpha = 0.0", "[dynamics] kT: a spin temperature needs damping alpha > 0"),
    ("seed = 5", 'integrator = "euler"', "[dynamics] integrator: 'euler' is not one of"),
    ('[lattice]\nkind = "square"\nL = 4', '[model]\nlattice = "square"\nL = 4\nfilling = 0.5',
     "[model] J: missing required value"),
    ('[lattice]\nkind = "square"\nL = 4', "", "[lattice]: missing required table"),
    ("L = 4", "L = 4\n[model]\nlattice = \"square\"\nL = 4\nJ = 1.0\nfilling = 0.5", "remove [lattice]"),
    ("[dynamics]", "[dynamic]", "dynamic: unknown key (did you mean 'dynamics'?)"),
]


@pytest.mark.parametrize("old, new, message", BAD, ids=[b[2][:40] for b in BAD])
def test_bad_run_files_name_the_key(tmp_path, old, new, message):
    assert old in RUN
    path = write(tmp_path, RUN.replace(old, new, 1))
    with pytest.raises(ConfigError) as exc:
        load_simulation(path)
    assert message in str(exc.value) and str(path) in str(exc.value)


def test_cli_reports_bad_files_without_traceback(tmp_path):
    res = runner.invoke(app, ["simulate", str(write(tmp_path, RUN.replace("dt = 0.05", "dt = 0.0")))])
    assert res.exit_code == 2 and "[dynamics] dt: must be > 0" in " ".join(res.output.split())
    res = runner.invoke(app, ["simulate", str(tmp_path / "missing.toml")])
    assert res.exit_code == 2 and "does not exist" in " ".join(res.output.split())
    text = RUN.replace('"magnetization", "staggered_magnetization"', '"scalar_chirality"')
    res = runner.invoke(app, ["simulate", str(write(tmp_path, text)), "--out", str(tmp_path / "c.h5")])
    assert res.exit_code == 2 and "triangular lattice" in " ".join(res.output.split())
    text = RUN.replace('state = "random"', f'file = "{tmp_path / "none.npy"}"')
    res = runner.invoke(app, ["simulate", str(write(tmp_path, text)), "--out", str(tmp_path / "c.h5")])
    assert res.exit_code == 2 and "[initial]" in res.output
    assert "does not exist" in " ".join(res.output.split())


def test_cli_stops_on_non_finite_fields_and_keeps_frames(tmp_path, monkeypatch):
    from itinerant.forcefields import Heisenberg

    calls, original = [0], Heisenberg.energy_and_fields

    def poisoned(self, spins):
        calls[0] += 1
        E, h = original(self, spins)
        return (float("nan"), h) if calls[0] > 30 else (E, h)

    monkeypatch.setattr(Heisenberg, "energy_and_fields", poisoned)
    res = runner.invoke(app, ["simulate", str(write(tmp_path, RUN)), "-q", "--out", str(tmp_path / "n.h5")])
    text = " ".join(res.output.split())
    assert res.exit_code == 3 and "non-finite energy at step 15" in text  # 2 evaluations per step
    assert "the 4 frames written before it are kept" in text
    assert len(it.Trajectory.load(tmp_path / "n.h5")) == 4  # steps 0, 4, 8, 12


# ---------------------------------------------------------------------- kill and resume

LONG = (RUN.replace("L = 4", "L = 8").replace("steps = 40", "steps = 6000")
        .replace("save_every = 4", "save_every = 100")
        .replace("checkpoint_every = 10", "checkpoint_every = 500"))


def test_resume_after_kill_reproduces_the_uninterrupted_run(tmp_path):
    run_file = write(tmp_path, LONG)
    out = tmp_path / "out.h5"
    ckpt = checkpoint_path(out)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "itinerant", "simulate", str(run_file), "-q"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if ckpt.exists() and Checkpoint.load(ckpt).step >= 2000:
                break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        output = proc.communicate()[0].decode()
    assert proc.returncode == -signal.SIGKILL, output  # really killed, not finished
    killed_at = Checkpoint.load(ckpt).step
    assert 2000 <= killed_at < 6000

    cfg = load_simulation(run_file)
    resumed = run_simulation(cfg, out=out, resume=True, progress=False)
    straight = run_simulation(cfg, out=tmp_path / "straight.h5", progress=False)
    assert len(resumed) == len(straight) == 61
    for k in ("time", "spins", "energy", "magnetization", "staggered_magnetization"):
        np.testing.assert_array_equal(resumed[k], straight[k])


def test_cli_resume_extends_a_finished_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner.invoke(app, ["simulate", str(write(tmp_path, RUN)), "-q"])
    longer = write(tmp_path, RUN.replace("steps = 40", "steps = 60"), "longer.toml")
    res = runner.invoke(app, ["simulate", str(longer), "-q", "--resume"])
    assert res.exit_code == 0, res.output
    straight = run_simulation(load_simulation(longer), out=tmp_path / "s.h5", progress=False)
    np.testing.assert_array_equal(it.Trajectory.load(tmp_path / "out.h5").spins, straight.spins)
    changed = write(tmp_path, RUN.replace("dt = 0.05", "dt = 0.04"), "changed.toml")
    res = runner.invoke(app, ["simulate", str(changed), "-q", "--resume"])
    assert res.exit_code == 2 and "run settings differ" in " ".join(res.output.split())
