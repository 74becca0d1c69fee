"""``itinerant generate``: training data from a run file's sampling protocols, on Dask, into HDF5."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from .app import app, console, run_guarded


@app.command()
def generate(
    run_file: Path = typer.Argument(..., help=escape("TOML run file: [model], [solver], [[protocol]], "
                                                     "seed; optional [cluster].")),
    out: Path = typer.Option(..., "--out", "-o", help="HDF5 data file (resumed if it exists)."),
    workers: int = typer.Option(None, "--workers", "-w",
                                help="LocalCluster with N worker processes; 0 runs serially here."),
    scheduler: str = typer.Option(None, "--scheduler",
                                  help="Address of a running Dask scheduler, e.g. tcp://host:8786."),
    threads_per_worker: int = typer.Option(1, "--threads-per-worker",
                                           help="Dask threads per worker (serial run: torch threads)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start afresh instead of resuming."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Validate, count tasks and solves, time one solve, estimate "
                                      "core-hours; compute nothing else."),
) -> None:
    """Generate labelled snapshots (spins, exact fields, energy, density) with Dask.

    Re-running the same command after an interruption completes only the missing tasks.
    """
    from ..data import generate as run_generate
    from ..data import load_run
    from ..data.generate import estimate

    def _run():
        if dry_run:
            run = load_run(run_file)
            e = estimate(run)
            n = 2 * run.model.lattice.N
            console.print(f"{e['tasks']} tasks, {e['snapshots']} snapshots, {e['solves']} solves of "
                          f"the {n} x {n} Hamiltonian ({run.cfg['solver']['kind']}); one solve takes "
                          f"{e['seconds_per_solve']:.3g} s on one thread here: about "
                          f"{e['core_hours']:.3g} core-hours", highlight=False)
            return
        s = run_generate(run_file, out, workers=workers, scheduler=scheduler,
                         threads_per_worker=threads_per_worker, overwrite=overwrite,
                         console=console, progress=progress)
        state = "complete" if s.complete else "incomplete"
        what = (f"{s.rows} snapshots" if s.mu_count == 1 else
                f"{s.rows} rows ({s.rows // s.mu_count} snapshots x {s.mu_count} chemical potentials)")
        console.print(f"wrote {s.path}: {what}, {state} ({s.ran} of {s.tasks} tasks run "
                      f"now, {s.task_seconds:.1f} task-seconds in {s.wall_seconds:.1f} s wall)",
                      highlight=False)

    run_guarded(_run)
