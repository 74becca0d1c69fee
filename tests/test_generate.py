"""``itinerant generate``: protocols, determinism across worker counts, kill-and-resume, labels."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import itinerant as it
from itinerant.cli import app
from itinerant.config import ConfigError
from itinerant.data import DataFile, generate, load_run, run_task
from itinerant.data.generate import file_attrs, solver_for
from itinerant.data.protocols import domain_pattern, partner_state
from itinerant.io import read_model
from itinerant.spins import STATES, random_spins

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "generate-square-small.toml"

SMALL = """
seed = 11
[model]
lattice = "square"
L = 6
J = 3.0
filling = 0.5
[[protocol]]
kind = "random"
count = 5
batch = 2
[[protocol]]
kind = "ordered"
state = "neel"
count = 2
noise = [0.0, 0.2]
domains = 2
[[protocol]]
kind = "quench"
count = 1
steps = 20
sample_every = 5
alpha = 0.2
dt = 0.05
kT_spin = [0.0, 0.1]
[[protocol]]
kind = "file"
path = "start.npy"
batch = 2
"""

# Tasks of a few tenths of a second each (one thread), for the kill test.
SLOW = """
seed = 5
[model]
lattice = "triangular"
L = 10
J = 2.0
filling = 0.25
[[protocol]]
kind = "random"
count = 40
batch = 4
[[protocol]]
kind = "ordered"
state = "tetrahedral"
count = 8
noise = [0.05]
domains = 2
batch = 4
"""


def write_run(directory: Path, text: str, name: str = "run.toml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if "start.npy" in text and not (directory / "start.npy").exists():
        np.save(directory / "start.npy", np.stack([random_spins(36, k) for k in range(3)]))
    path = directory / name
    path.write_text(text)
    return path


def assert_same_file(a, b):
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert sorted(fa) == sorted(fb)
        for name in fa:
            np.testing.assert_array_equal(fa[name][...], fb[name][...], err_msg=name)
        assert sorted(fa.attrs) == sorted(fb.attrs)
        for name in fa.attrs:
            assert np.array_equal(fa.attrs[name], fb.attrs[name]), name


@pytest.fixture(scope="module")
def scheduler():
    """Address of a LocalCluster of two single-threaded worker processes, shared by the tests."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The SMALL run generated serially: (run file, data file)."""
    d = tmp_path_factory.mktemp("small")
    run = write_run(d, SMALL)
    generate(run, d / "serial.h5", workers=0, progress=False)
    return run, d / "serial.h5"


# ---------------------------------------------------------------------- protocols and tasks


def test_task_list_and_seeds_are_deterministic(tmp_path):
    run = load_run(write_run(tmp_path, SMALL))
    # random: 5 in batches of 2; ordered: 2 noise levels x 1 batch; quench: 2 temperatures; file: 2
    assert [t.kind for t in run.tasks] == ["random"] * 3 + ["ordered"] * 2 + ["quench"] * 2 + ["file"] * 2
    assert [t.id for t in run.tasks] == list(range(9))
    assert [t.params.get("n") for t in run.tasks[:3]] == [2, 2, 1]
    assert [t.params["kT_spin"] for t in run.tasks[5:7]] == [0.0, 0.1]
    assert run.n_snapshots == 5 + 4 + 2 * 5 + 3
    again = load_run(run.path)
    assert again.hash == run.hash
    a, b = run_task(run.tasks[1], run.cfg, threads=1), run_task(again.tasks[1], again.cfg, threads=1)
    np.testing.assert_array_equal(a["rows"]["spins"], b["rows"]["spins"])
    # Different tasks draw different numbers.
    c = run_task(run.tasks[0], run.cfg, threads=1)
    assert not np.allclose(a["rows"]["spins"], c["rows"]["spins"][:2])


def test_hash_ignores_comments_and_cluster_but_not_content(tmp_path):
    base = load_run(write_run(tmp_path, SMALL)).hash
    assert load_run(write_run(tmp_path, "# a comment\n" + SMALL + "\n[cluster]\nworkers = 3\n",
                              "b.toml")).hash == base
    assert load_run(write_run(tmp_path, SMALL.replace("count = 5", "count = 6"), "c.toml")).hash != base
    np.save(tmp_path / "start.npy", np.stack([random_spins(36, k + 9) for k in range(3)]))
    assert load_run(tmp_path / "run.toml").hash != base  # the spin file's contents count


def test_ordered_states_domains_and_partners():
    tri, sq = it.Lattice.triangular(8), it.Lattice.square(8)

    def chirality(s, lat):  # mean scalar chirality on up-triangles (i, i + a1, i + a2)
        x, y = lat.coords.T
        j, k = lat.site(x + 1, y), lat.site(x, y + 1)
        return np.einsum("ia,ia->i", s, np.cross(s[j], s[k]))

    chi = chirality(STATES["tetrahedral"](tri), tri)
    assert np.allclose(chi, chi[0]) and abs(chi[0]) > 0.3
    np.testing.assert_allclose(chirality(partner_state("tetrahedral", tri), tri), -chi)
    # Two halves of opposite chirality, walls at y = 0 and y = L/2.
    halves = chirality(domain_pattern("tetrahedral", tri, 2), tri)
    y = tri.coords[:, 1]
    inside = (y != tri.L // 2 - 1) & (y != tri.L - 1)  # triangles that do not straddle a wall
    np.testing.assert_allclose(halves[inside], np.where(y < tri.L // 2, chi[0], -chi[0])[inside])
    # Neel stripes: the staggered moment alternates every L/4 rows.
    neel = domain_pattern("neel", sq, 4)
    stag = neel[:, 2] * (-1.0) ** sq.coords.sum(1)
    np.testing.assert_array_equal(stag, np.where((sq.coords[:, 1] // 2) % 2 == 0, 1.0, -1.0))
    np.testing.assert_array_equal(partner_state("ferromagnet", sq), -STATES["ferromagnet"](sq))


def test_ordered_snapshots_are_rotated_noisy_states(tmp_path):
    text = SMALL.split("[[protocol]]")[0] + """
[[protocol]]
kind = "ordered"
state = "neel"
count = 3
noise = [0.0, 0.3]
"""
    run = load_run(write_run(tmp_path, text))
    clean, noisy = (run_task(t, run.cfg, threads=1)["rows"]["spins"] for t in run.tasks)
    sign = (-1.0) ** run.model.lattice.coords.sum(1)
    for s in clean:  # a rotated Neel state: S_i = sign_i n for one unit vector n
        n = s[0]
        np.testing.assert_allclose(s, sign[:, None] * n, atol=1e-12)
    assert len({tuple(np.round(s[0], 6)) for s in clean}) == 3  # three different rotations
    dev = np.arccos(np.clip(np.abs(np.einsum("mia,mia->mi", noisy, noisy[:, :1] * sign[None, :, None])),
                            -1, 1))
    assert 0.1 < np.median(dev) < 1.0
    np.testing.assert_allclose(np.linalg.norm(noisy, axis=-1), 1.0)


def test_solver_call_count_matches_the_work_done(tmp_path, monkeypatch):
    from itinerant.data.protocols import solver_calls

    run = load_run(write_run(tmp_path, SMALL))
    calls = []
    solve = it.ExactSolver.solve

    def counting(self, spins, normalize=False):
        calls.append(1 if np.ndim(spins) == 2 else len(spins))
        return solve(self, spins, normalize)

    monkeypatch.setattr(it.ExactSolver, "solve", counting)
    for task in run.tasks:
        run_task(task, run.cfg, threads=1)
    # 5 + 4 + 3 snapshots; quenches of 20 steps with 5 frames, integrator "auto":
    # RK4 at kT_spin = 0 (1 + 4 * 20 + 5 solves), Heun at kT_spin = 0.1 (1 + 2 * 20 + 5)
    assert sum(calls) == solver_calls(run) == 12 + 86 + 46


def test_kpm_solver_labels_the_snapshots(tmp_path):
    pytest.importorskip("itinerant.electrons.kpm")
    text = SMALL.split("[[protocol]]")[0].replace("filling = 0.5", "filling = 0.5\nkT = 0.5") + """
[solver]
kind = "kpm"
settings = {moments = 256, kernel = "none", estimator = "exact"}
[[protocol]]
kind = "random"
count = 2
"""
    out = tmp_path / "kpm.h5"
    generate(write_run(tmp_path, text), out, workers=0, progress=False)
    with h5py.File(out, "r") as h5:
        assert h5.attrs["solver"] == "kpm" and h5.attrs["moments"] == 256
        exact = it.ExactSolver(read_model(h5)).solve(h5["spins"][...])
        np.testing.assert_allclose(h5["fields"][...], exact.fields, atol=1e-6)
        np.testing.assert_allclose(h5["density"][...], exact.density, atol=1e-6)
    bad = write_run(tmp_path, text.replace("moments = 256", "momnts = 256"), "bad.toml")
    with pytest.raises(ConfigError, match=r"\[solver\] settings: unknown kpm-solver setting"):
        load_run(bad)


# ---------------------------------------------------------------------- validation


BAD = [
    ('kind = "random"', 'kind = "randm"', "[protocol[0]] kind: unknown kind 'randm'"),
    ('lattice = "square"\n', "", "[model] lattice: missing required value"),
    ("kT_spin = [0.0, 0.1]", "kT_spin = [0.0, -0.1]", "[protocol[2]] kT_spin: must be >= 0"),
    ("filling = 0.5", "filling = 0.5\nkT = -0.01", "[model] kT: must be >= 0"),
    ("count = 5", "cout = 5", "[protocol[0]] cout: unknown key (did you mean 'count'?)"),
    ('state = "neel"', 'state = "tetrahedral"', "[protocol[1]] state: the tetrahedral state is defined"),
    ("domains = 2", "domains = 3", "[protocol[1]] domains: must be 1 or an even number"),
    ("sample_every = 5", "sample_every = 50", "[protocol[2]] sample_every"),
    ("dt = 0.05", "dt = 0.0", "[protocol[2]] dt: must be > 0"),
    ('path = "start.npy"', 'path = "missing.npy"', "[protocol[3]] path: spin file"),
    ("seed = 11", "", "seed: missing required value"),
]


@pytest.mark.parametrize("old,new,message", BAD, ids=[b[2].split(":")[0] for b in BAD])
def test_malformed_run_file_fails_before_any_work(tmp_path, old, new, message):
    assert old in SMALL
    run = write_run(tmp_path, SMALL.replace(old, new, 1))
    out = tmp_path / "out.h5"
    with pytest.raises(ConfigError) as exc:
        generate(run, out, workers=0, progress=False)
    assert message in str(exc.value)
    assert not out.exists()
    res = runner.invoke(app, ["generate", str(run), "--out", str(out), "--workers", "0"])
    assert res.exit_code == 2 and not out.exists()
    assert message in " ".join(res.output.split())


def test_spin_file_of_the_wrong_lattice_is_refused(tmp_path):
    run = write_run(tmp_path, SMALL)
    np.save(tmp_path / "start.npy", np.stack([random_spins(49, 0)]))
    with pytest.raises(ConfigError, match=r"\[protocol\[3\]\] path: spins must have shape"):
        load_run(run)


# ---------------------------------------------------------------------- the data file


def test_file_layout_and_fields_equal_a_fresh_exact_solve(small):
    run_file, path = small
    run = load_run(run_file)
    with h5py.File(path, "r") as h5:
        M, N = run.n_snapshots, 36
        assert h5["spins"].shape == h5["fields"].shape == (M, N, 3)
        assert h5["energy"].shape == h5["time"].shape == (M,) and h5["density"].shape == (M, N)
        assert h5.attrs["complete"] and h5.attrs["run_hash"] == run.hash
        assert h5.attrs["run_file"] == run_file.read_text() and h5.attrs["solver"] == "exact"
        assert h5.attrs["version"] == it.__version__
        np.testing.assert_array_equal(h5["completed"][...], np.arange(len(run.tasks)))
        task, protocol = h5["task"][...], h5["protocol"][...]
        assert (np.diff(task) >= 0).all()
        np.testing.assert_array_equal(protocol, [run.tasks[t].protocol for t in task])
        quench = protocol == 2
        np.testing.assert_allclose(h5["time"][quench], np.tile([0, 0.25, 0.5, 0.75, 1.0], 2))
        np.testing.assert_array_equal(h5["kT_spin"][quench], np.repeat([0.0, 0.1], 5))
        assert np.isnan(h5["time"][~quench]).all()
        np.testing.assert_array_equal(h5["noise"][protocol == 1], [0, 0, 0.2, 0.2])
        # The file rows are the spin file's configurations.
        np.testing.assert_array_equal(h5["spins"][protocol == 3], np.load(run_file.parent / "start.npy"))
        model = read_model(h5)
        assert model == run.model
        exact = it.ExactSolver(model)
        for row in (0, 5, int(np.flatnonzero(quench)[-1]), M - 1):  # random, ordered, quench, file
            st = exact.solve(h5["spins"][row])
            np.testing.assert_allclose(h5["fields"][row], st.fields, atol=1e-10)
            np.testing.assert_allclose(h5["density"][row], st.density, atol=1e-10)
            assert abs(h5["energy"][row] - st.energy) < 1e-9
        # A zero-temperature quench lowers the energy monotonically.
        e0 = h5["energy"][quench][:5]
        assert (np.diff(e0) < 0).all()


def test_two_workers_give_the_same_file_as_a_serial_run(small, scheduler, tmp_path):
    run_file, serial = small
    summary = generate(run_file, tmp_path / "two.h5", scheduler=scheduler, progress=False)
    assert summary.complete and summary.ran == summary.tasks == 9
    assert_same_file(serial, tmp_path / "two.h5")


def test_resume_drops_unfinished_tasks_and_refuses_other_runs(small, tmp_path):
    """Out-of-order finished tasks plus half a task in the file: resuming completes it exactly."""
    run_file, serial = small
    run = load_run(run_file)
    out = tmp_path / "partial.h5"
    with DataFile(out, run, file_attrs(run, solver_for(run.cfg))) as data:
        data.write(run_task(run.tasks[6], run.cfg, threads=1))
        half = run_task(run.tasks[5], run.cfg, threads=1)["rows"]
        for k in range(2):  # two of its five rows, never marked completed
            data.floats.append(**{n: half[n][k] for n in data.floats.names})
            data.ints.append(task=5, protocol=2, sample=k)
        for t in (2, 0):
            data.write(run_task(run.tasks[t], run.cfg, threads=1))
    with DataFile(out, run, {}) as data:  # reopening drops the unfinished rows
        assert data.done == {0, 2, 6} and len(data.floats) == len(data.ints) == 5 + 1 + 2
        assert 5 not in data.h5["task"][...]
    summary = generate(run_file, out, workers=0, progress=False)
    assert summary.ran == 6 and summary.complete
    assert_same_file(serial, out)
    again = generate(run_file, out, workers=0, progress=False)
    assert again.ran == 0
    other = write_run(tmp_path, SMALL.replace("seed = 11", "seed = 12"), "other.toml")
    with pytest.raises(ValueError, match="different run file"):
        generate(other, out, workers=0, progress=False)


def _completed_tasks(path: Path) -> int:
    try:
        with h5py.File(path, "r", locking=False) as h5:
            return h5["completed"].shape[0]
    except (OSError, KeyError, RuntimeError, ValueError):  # not created yet, or caught mid-write
        return 0


def test_killed_run_resumes_to_the_uninterrupted_result(scheduler, tmp_path):
    """SIGKILL a run on two workers part-way; finishing it serially equals an uninterrupted run."""
    run_file = write_run(tmp_path, SLOW)
    n_tasks = len(load_run(run_file).tasks)
    out = tmp_path / "killed.h5"
    proc = subprocess.Popen([sys.executable, "-m", "itinerant", "generate", str(run_file), "--out",
                             str(out), "--scheduler", scheduler, "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while _completed_tasks(out) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no task finished in time"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    done = _completed_tasks(out)
    assert 2 <= done < n_tasks
    with h5py.File(out, "r") as h5:
        assert not h5.attrs["complete"]
    res = runner.invoke(app, ["generate", str(run_file), "--out", str(out), "--workers", "0",
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    assert f"{done} already in" in res.output and "complete" in res.output
    generate(run_file, tmp_path / "straight.h5", scheduler=scheduler, progress=False)
    assert_same_file(out, tmp_path / "straight.h5")


# ---------------------------------------------------------------------- command line and clusters


def test_example_run_file_is_valid():
    run = load_run(EXAMPLE)
    assert run.n_snapshots >= 4 and run.model.lattice.name == "square"


def test_cli_reports_and_resumes(tmp_path):
    text = SMALL.split("[[protocol]]")[0] + '[[protocol]]\nkind = "random"\ncount = 3\n'
    run = write_run(tmp_path, text)
    out = tmp_path / "cli.h5"
    res = runner.invoke(app, ["generate", str(run), "--out", str(out), "--dry-run"])
    assert res.exit_code == 0 and "1 tasks, 3 snapshots, 3 solves" in " ".join(res.output.split())
    assert "core-hours" in res.output and not out.exists()
    res = runner.invoke(app, ["generate", str(run), "--out", str(out), "--workers", "0"])
    assert res.exit_code == 0, res.output
    assert "3 snapshots, complete" in " ".join(res.output.split())
    res = runner.invoke(app, ["generate", str(run), "--out", str(out), "--workers", "0"])
    assert res.exit_code == 0 and "0 of 1 tasks run now" in " ".join(res.output.split())
    res = runner.invoke(app, ["generate", str(run), "--out", str(out), "--workers", "1",
                              "--scheduler", "tcp://127.0.0.1:1"])
    assert res.exit_code == 2 and "not both" in " ".join(res.output.split())
    other = write_run(tmp_path, text.replace("seed = 11", "seed = 12"), "other.toml")
    res = runner.invoke(app, ["generate", str(other), "--out", str(out), "--workers", "0"])
    assert res.exit_code == 2 and "different run file" in " ".join(res.output.split())
    res = runner.invoke(app, ["generate", str(other), "--out", str(out), "--workers", "0",
                              "--overwrite"])
    assert res.exit_code == 0
    with h5py.File(out, "r") as h5:
        assert h5.attrs["run_seed"] == 12 and h5.attrs["complete"]


def test_local_cluster_of_the_requested_size():
    from itinerant.data.cluster import connect

    said = []
    with connect({"kind": "local", "workers": None}, workers=1, say=said.append) as client:
        assert len(client.scheduler_info()["workers"]) == 1
    assert said and said[0].startswith("dask dashboard: http")
    with connect({"kind": "local", "workers": 3}, workers=0) as client:
        assert client is None  # serial


def test_slurm_cluster_from_the_run_file():
    from itinerant.data.cluster import jobqueue_cluster
    from itinerant.data.protocols import CLUSTER_SCHEMA
    from itinerant.config import validate

    cfg = validate({"kind": "slurm", "queue": "short", "account": "phys", "cores": 8,
                    "memory": "16GB", "walltime": "02:00:00", "jobs": 4,
                    "prologue": ["source ~/venv/bin/activate"]}, CLUSTER_SCHEMA)
    cluster = jobqueue_cluster(cfg)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p short", "#SBATCH -A phys", "#SBATCH -t 02:00:00",
                 "source ~/venv/bin/activate", "--nworkers 8", "--nthreads 1"):
        assert line in script, (line, script)
