"""Training-data generation: run a run file's tasks (serially or on Dask) and stream them into HDF5.

    summary = generate("run.toml", "data.h5", workers=2)

The data file (DESIGN.md §4) holds one row per snapshot:

    spins (M, N, 3), fields (M, N, 3), energy (M,), density (M, N)    exact (or KPM) labels
    task, protocol, sample (M,) int64                                 provenance: which task made
                                                                      the row, from which protocol
    time, kT_spin, noise (M,)                                         LLG time and spin temperature
                                                                      (quench), noise amplitude
                                                                      (ordered); NaN otherwise
    completed (K,) int64                                              ids of the finished tasks

With a ``[labels]`` table (labels at several chemical potentials) a row is one (snapshot, mu)
pair, snapshot-major within a task, with two more datasets

    mu (M,)             the chemical potential of the row's labels (energy = Omega at mu)
    canonical_mu (M,)   the snapshot's own chemical potential (mu* at fixed filling)

and root attributes that rebuild the model, the solver settings, the package version, the run
file's text and hash.  Rows are appended as tasks finish, in any order; a task counts as done
once its id is in ``completed``, so after a kill the same command discards the rows of unfinished
tasks and runs only those.  When every task is done the rows are sorted by (task, sample), which
makes the file independent of the number of workers and of interruptions.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import h5py
import numpy as np

from ..config import ConfigError
from ..io import RowWriter, model_attrs, write_attrs
from ..spins import random_spins
from .cluster import check_options, connect
from .protocols import (Run, Task, load_run, make_spins, mu_count, mu_labels, rows_of,
                        solver_calls)

FLOAT_ROWS = ("spins", "fields", "energy", "density", "time", "kT_spin", "noise", "mu",
              "canonical_mu")
INT_ROWS = ("task", "protocol", "sample")


# ---------------------------------------------------------------------- one task (on a worker)


@lru_cache(maxsize=4)
def _solver(key: str):
    """The labelling solver of a run, built once per worker process."""
    from ..config import model_from_config
    from ..forcefields import build_force_field

    spec = json.loads(key)
    model = model_from_config(spec["model"])
    solver = spec["solver"]
    settings = dict(solver["settings"])
    if solver["device"] is not None:
        settings["device"] = solver["device"]
    return build_force_field(solver["kind"], model, **settings)


def solver_for(cfg: dict):
    """The solver that labels a run's snapshots (and drives its quenches)."""
    try:
        return _solver(json.dumps({"model": cfg["model"], "solver": cfg["solver"]}, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[solver]: {exc}") from None


def run_task(task: Task, cfg: dict, threads: int | None = None) -> dict:
    """Produce and label one task's snapshots; returns the rows as arrays plus ``task`` and ``seconds``.

    ``threads`` pins torch's intra-op threads (1 on Dask workers, where parallelism comes from the
    workers).
    """
    if threads is not None:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    start = time.perf_counter()
    solver = solver_for(cfg)
    lattice = solver.model.lattice
    proto = cfg["protocol"][task.protocol]
    rng = task.rng()
    nan = np.nan
    if task.kind == "quench":
        spins, t = _quench(task, proto, solver, rng)
        extra = {"time": t, "kT_spin": np.full(len(t), task.params["kT_spin"]), "noise": nan}
    else:
        spins = make_spins(task, proto, lattice, rng)
        extra = {"time": nan, "kT_spin": nan, "noise": task.params.get("noise", nan)}
    m = len(spins)
    labels = mu_labels(cfg)
    if labels is None:
        energy, fields, density = label(solver, spins)
        rows = {"spins": spins, "fields": fields, "energy": energy, "density": density}
        rows.update({k: np.broadcast_to(np.asarray(v, float), (m,)) for k, v in extra.items()})
    else:  # one row per (snapshot, mu), snapshot-major
        st = solver.grand_canonical(spins, **labels)
        K = st.mu.shape[1]
        rows = {"spins": np.repeat(spins, K, axis=0), "fields": st.fields.reshape(m * K, -1, 3),
                "energy": st.energy.reshape(-1), "density": st.density.reshape(m * K, -1),
                "mu": st.mu.reshape(-1), "canonical_mu": np.repeat(st.canonical_mu, K)}
        rows.update({k: np.repeat(np.broadcast_to(np.asarray(v, float), (m,)), K)
                     for k, v in extra.items()})
    rows = {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in rows.items()}
    return {"task": task.id, "protocol": task.protocol, "rows": rows,
            "seconds": time.perf_counter() - start}


def label(solver, spins: np.ndarray):
    """Energies (M,), fields (M, N, 3) and densities (M, N) of a stack of configurations.

    Uses the solver's ``solve`` (exact: one batched call); a force field without one gives NaN
    densities.
    """
    if callable(getattr(solver, "solve", None)):
        st = solver.solve(spins)
        return np.atleast_1d(st.energy), st.fields, st.density
    pairs = [solver.energy_and_fields(s) for s in spins]
    energy = np.array([e for e, _ in pairs], dtype=float)
    fields = np.stack([h for _, h in pairs])
    return energy, fields, np.full(spins.shape[:2], np.nan)


def _quench(task: Task, proto: dict, solver, rng: np.random.Generator):
    """One LLG trajectory from random spins; returns the frames (F, N, 3) and their times (F,)."""
    from ..dynamics import LLG

    start = random_spins(solver.model.lattice.N, rng)
    llg = LLG(solver, alpha=proto["alpha"], dt=proto["dt"], kT=task.params["kT_spin"],
              integrator=proto["integrator"], seed=int(rng.integers(2**63)))
    traj = llg.run(start, proto["steps"], save_every=proto["sample_every"])
    return np.asarray(traj.spins), np.asarray(traj.time, dtype=float)


# ---------------------------------------------------------------------- the data file


class DataFile:
    """The HDF5 output of a run, created fresh or reopened to resume.

    Reopening checks that the file was written for the same run (its hash), drops the rows of
    tasks that never finished, and reports the finished ones in :attr:`done`.
    """

    def __init__(self, path: str | Path, run: Run, attrs: dict, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.run = run
        n_sites = run.model.lattice.N
        if self.path.exists() and not overwrite:
            self.h5 = self._reopen()
        else:
            self.h5 = h5py.File(self.path, "w")
            write_attrs(self.h5, attrs)
            self.h5.attrs["complete"] = False
        shapes = {"spins": (n_sites, 3), "fields": (n_sites, 3), "energy": (), "density": (n_sites,),
                  "time": (), "kT_spin": (), "noise": ()}
        if mu_labels(run.cfg) is not None:
            shapes.update(mu=(), canonical_mu=())
        self.floats = RowWriter(self.h5, shapes, dtype=np.float64)
        self.ints = RowWriter(self.h5, {k: () for k in INT_ROWS}, dtype=np.int64)
        self.completed = RowWriter(self.h5, {"completed": ()}, dtype=np.int64)
        self.done = set(self.completed.h5["completed"][...].tolist())

    def _reopen(self) -> h5py.File:
        try:
            h5 = h5py.File(self.path, "a")
        except OSError as exc:
            raise ValueError(f"cannot reopen {self.path} to resume: {exc}") from None
        found = h5.attrs.get("run_hash")
        if found is None:
            h5.close()
            raise ValueError(f"{self.path} exists and was not written by itinerant generate; "
                             "choose another --out or pass --overwrite")
        if str(found) != self.run.hash:
            h5.close()
            raise ValueError(f"{self.path} holds data of a different run file (hash {str(found)[:12]}, "
                             f"this run {self.run.hash[:12]}); choose another --out or pass "
                             "--overwrite")
        _drop_unfinished(h5, self.run)
        return h5

    def write(self, result: dict) -> None:
        """Append a finished task's rows, then mark the task done."""
        rows = result["rows"]
        for k in range(len(rows["energy"])):
            self.floats.append(**{name: rows[name][k] for name in self.floats.names})
            self.ints.append(task=result["task"], protocol=result["protocol"], sample=k)
        self.completed.append(completed=result["task"])
        self.done.add(result["task"])

    def finish(self) -> bool:
        """If every task is done: sort rows by (task, sample), mark the file complete."""
        if len(self.done) < len(self.run.tasks):
            return False
        _sort(self.h5)
        self.h5.attrs["complete"] = True
        self.h5.flush()
        return True

    def close(self) -> None:
        self.h5.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _row_names(h5) -> list[str]:
    return [n for n in (*FLOAT_ROWS, *INT_ROWS) if n in h5]


def _drop_unfinished(h5: h5py.File, run: Run) -> None:
    """Keep only rows of tasks listed in ``completed`` with all their rows present."""
    names = _row_names(h5)
    if "completed" not in h5 or "task" not in h5:
        return
    n_rows = min(h5[n].shape[0] for n in names)
    task = h5["task"][:n_rows]
    done = h5["completed"][...]
    counts = np.bincount(task, minlength=len(run.tasks))
    whole = np.array([counts[t] == rows_of(run.tasks[t], run.cfg) for t in done], dtype=bool)
    done = np.unique(done[whole])
    keep = np.isin(task, done)
    if len(done) != h5["completed"].shape[0]:
        h5["completed"].resize(len(done), axis=0)
        h5["completed"][...] = done
    n_keep = int(keep.sum())
    if keep[:n_keep].all():  # the usual case: unfinished rows form the tail
        for n in names:
            h5[n].resize(n_keep, axis=0)
    else:
        for n in names:
            data = h5[n][:n_rows][keep]
            h5[n].resize(n_keep, axis=0)
            h5[n][...] = data
    h5.flush()


def _sort(h5: h5py.File) -> None:
    """Reorder every row dataset by (task, sample) and ``completed`` ascending."""
    order = np.lexsort((h5["sample"][...], h5["task"][...]))
    if (order != np.arange(len(order))).any():
        for n in _row_names(h5):
            h5[n][...] = h5[n][...][order]
    h5["completed"][...] = np.sort(h5["completed"][...])


def sort_rows(path: str | Path) -> None:
    """Sort a data file's rows by (task, sample), e.g. to compare a partial file with another."""
    with h5py.File(path, "a") as h5:
        _sort(h5)


# ---------------------------------------------------------------------- the driver


def estimate(run: Run, repeats: int = 2) -> dict:
    """Cost of a run: solver calls (:func:`~.protocols.solver_calls`) times the single-thread time
    of one call, measured here on random spins (median of ``repeats`` after a warm-up call).

    Returns ``tasks``, ``snapshots``, ``rows`` (of the data file), ``solves``,
    ``seconds_per_solve`` and ``core_hours``.
    """
    import torch

    solver = solver_for(run.cfg)
    spins = random_spins(run.model.lattice.N, np.random.default_rng(0))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        solver.energy_and_fields(spins)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            solver.energy_and_fields(spins)
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    per = float(np.median(times))
    calls = solver_calls(run)
    return {"tasks": len(run.tasks), "snapshots": run.n_snapshots, "rows": run.n_rows,
            "solves": calls,
            "seconds_per_solve": per, "core_hours": calls * per / 3600}



@dataclass
class Summary:
    """What a call of :func:`generate` did."""

    path: Path
    tasks: int            # tasks of the run
    ran: int              # tasks run by this call (the rest were already in the file)
    rows: int             # rows in the file (snapshots x chemical potentials of [labels])
    complete: bool
    wall_seconds: float
    task_seconds: float   # summed compute time of the tasks run: core-seconds with 1 thread/task
    mu_count: int = 1     # chemical potentials per snapshot ([labels]); 1 without


def file_attrs(run: Run, solver) -> dict:
    """Root attributes of a run's data file (with ``[labels]`` also ``labels_mu`` or
    ``labels_mu_offsets``)."""
    labels = mu_labels(run.cfg) or {}
    return model_attrs(run.model, **solver.settings(), generator="itinerant generate",
                       run_file=run.text, run_hash=run.hash, run_seed=run.cfg["seed"],
                       n_tasks=len(run.tasks), protocols=json.dumps(run.cfg["protocol"]),
                       labels_mu=labels.get("mu"), labels_mu_offsets=labels.get("offsets"))


def generate(run_file, out, *, workers: int | None = None, scheduler: str | None = None,
             threads_per_worker: int = 1, overwrite: bool = False, console=None,
             progress: bool = True) -> Summary:
    """Run (or resume) the data-generation run ``run_file`` into the HDF5 file ``out``.

    ``workers=0`` runs serially in this process (torch with ``threads_per_worker`` threads);
    ``workers=N`` on a LocalCluster of N processes with ``threads_per_worker`` threads each;
    ``scheduler`` connects to a running Dask scheduler; otherwise the run file's ``[cluster]``
    table decides (a LocalCluster with one worker per CPU by default).  The run file is validated
    completely before any work starts.
    """
    check_options(workers, scheduler, threads_per_worker)
    say = console.print if console is not None else print
    run = run_file if isinstance(run_file, Run) else load_run(run_file)
    start = time.perf_counter()
    solver = solver_for(run.cfg)
    ran, task_seconds = 0, 0.0
    with DataFile(out, run, file_attrs(run, solver), overwrite=overwrite) as data:
        todo = [t for t in run.tasks if t.id not in data.done]
        K = mu_count(run.cfg)
        labelled = f" x {K} chemical potentials" if mu_labels(run.cfg) is not None else ""
        say(f"{len(run.tasks)} tasks, {run.n_snapshots} snapshots{labelled} of "
            f"{run.model.lattice}; {len(run.tasks) - len(todo)} already in {data.path}")
        if todo:
            with connect(run.cfg["cluster"], workers, scheduler, threads_per_worker, say) as client:
                bar = _progress(console, progress, len(run.tasks), len(run.tasks) - len(todo))
                with bar or nullcontext():
                    for result in _execute(todo, run.cfg, client, threads_per_worker):
                        data.write(result)
                        ran += 1
                        task_seconds += result["seconds"]
                        if bar is not None:
                            bar.advance(bar.task_ids[0])
        complete = data.finish()
        rows = data.floats.h5["energy"].shape[0]
    return Summary(Path(out), len(run.tasks), ran, rows, complete, time.perf_counter() - start,
                   task_seconds, mu_count(run.cfg))


def _execute(tasks: list[Task], cfg: dict, client, threads: int = 1):
    """Yield task results as they finish: in order (serial, with ``threads`` torch threads) or in
    completion order (Dask, one torch thread per task)."""
    if client is None:
        import torch

        before = torch.get_num_threads()
        try:
            for task in tasks:
                yield run_task(task, cfg, threads=threads)
        finally:
            torch.set_num_threads(before)
        return
    from distributed import as_completed

    futures = client.map(run_task, tasks, cfg=cfg, threads=1, pure=False)
    for future, result in as_completed(futures, with_results=True):
        yield result
        future.release()


def _progress(console, enabled: bool, total: int, done: int):
    if not enabled:
        return None
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    bar = Progress(TextColumn("tasks"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn(), console=console)
    bar.add_task("tasks", total=total, completed=done)
    return bar
