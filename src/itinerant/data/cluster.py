"""Where a data-generation run executes: in this process, a LocalCluster, a running Dask scheduler,
or a SLURM / PBS cluster through dask-jobqueue.  Every path yields a ``distributed.Client`` (or
``None`` for the serial run), and the same task code runs on all of them.
"""

from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager


def jobqueue_cluster(cfg: dict):
    """A ``SLURMCluster`` or ``PBSCluster`` from a validated ``[cluster]`` table (no jobs started).

    Each batch job runs ``processes`` worker processes (default: one per core, one thread each).
    """
    try:
        from dask_jobqueue import PBSCluster, SLURMCluster
    except ImportError:  # pragma: no cover - optional dependency
        raise ValueError("[cluster] kind = 'slurm' / 'pbs' needs dask-jobqueue "
                         "(pip install 'itinerant[cluster]')") from None
    cls = {"slurm": SLURMCluster, "pbs": PBSCluster}[cfg["kind"]]
    options = {
        "queue": cfg["queue"],
        "account": cfg["account"],
        "cores": cfg["cores"],
        "processes": cfg["processes"] or cfg["cores"],
        "memory": cfg["memory"],
        "walltime": cfg["walltime"],
        "job_script_prologue": list(cfg["prologue"]),
        "interface": cfg["interface"],
        "local_directory": cfg["local_directory"],
    }
    return cls(**{k: v for k, v in options.items() if v is not None})


def check_options(workers: int | None, scheduler: str | None, threads_per_worker: int) -> None:
    """Refuse contradictory or impossible execution options (before any work starts)."""
    if workers is not None and scheduler is not None:
        raise ValueError("give either --workers or --scheduler, not both")
    if workers is not None and workers < 0:
        raise ValueError(f"--workers must be >= 0, got {workers}")
    if threads_per_worker < 1:
        raise ValueError(f"--threads-per-worker must be >= 1, got {threads_per_worker}")


@contextmanager
def connect(cluster_cfg: dict, workers: int | None = None, scheduler: str | None = None,
            threads_per_worker: int = 1, say=print):
    """Yield a Dask client for a run, or ``None`` to run serially in this process.

    Precedence: ``scheduler`` (address of a running scheduler), then ``workers`` (a LocalCluster of
    that many processes; ``0`` = serial), then the run file's ``[cluster]`` table (``local`` with
    ``workers``, default one per CPU; ``slurm`` / ``pbs`` with ``jobs`` batch jobs).
    ``say`` receives the dashboard address.
    """
    check_options(workers, scheduler, threads_per_worker)
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler is None:
        kind = "local" if workers is not None else cluster_cfg["kind"]
        if kind == "local":
            n = workers if workers is not None else cluster_cfg["workers"]
            if n is None:
                n = os.cpu_count() or 1
            if n == 0:
                yield None
                return
            # Worker processes get OMP/MKL/OpenBLAS_NUM_THREADS=1 from Dask's nanny settings;
            # the tasks also pin torch to one thread.
            cluster = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker,
                                   processes=True)
        else:
            cluster = jobqueue_cluster(cluster_cfg)
            cluster.scale(jobs=cluster_cfg["jobs"])
    client = Client(scheduler) if scheduler is not None else Client(cluster)
    try:
        hint = "" if importlib.util.find_spec("bokeh") else " (install bokeh to view it)"
        say(f"dask dashboard: {client.dashboard_link}{hint}")
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
