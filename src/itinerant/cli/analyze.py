"""``itinerant analyze TRAJ.h5 [more.h5 ...] --out DIR``: order parameters and domain growth.

The trajectories' ``lattice`` attribute selects the analysis (:data:`ANALYSES`); several files are
independent runs of one lattice size, averaged with error bars.  Each analysis is a function
``analyze_cli(paths, out, window=None, level=0.5, ising=False, every=1, ...) -> {"files", "report"}``
that writes its PNG figures and its tables (CSV and JSON) into ``out``:

* ``triangular``: chirality domains and their growth L(t) (:mod:`itinerant.analysis.triangular`);
* ``square``: ferromagnetic clusters in the Neel background, staggered order, nearest-neighbour
  correlations (:mod:`itinerant.analysis.square`); ``--threshold`` sets the FM-bond threshold.

An option that the selected analysis does not take (``--threshold`` for triangular trajectories) is
an error, not silently ignored.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import typer

from ..analysis import square, triangular
from ..analysis.common import read_lattice
from .app import app, console, run_guarded

ANALYSES = {"triangular": triangular.analyze_cli, "square": square.analyze_cli}
"""Analysis of each lattice kind, by the trajectory file's ``lattice`` attribute."""


def analyze_files(paths, out, window=None, **options) -> dict:
    """Check that the files are trajectories of one lattice and run its analysis."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("give at least one trajectory file")
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"no trajectory file {p}")
    lattices = {p: read_lattice(p) for p in paths}
    kinds = {(lat.name, lat.L) for lat in lattices.values()}
    if len(kinds) > 1:
        listing = ", ".join(f"{p}: {lat.name} L = {lat.L}" for p, lat in lattices.items())
        raise ValueError(f"the files are runs of different lattices ({listing}); analyse each "
                         "lattice and size separately")
    name = next(iter(kinds))[0]
    if name not in ANALYSES:
        raise ValueError(f"no analysis for {name}-lattice trajectories; available: {sorted(ANALYSES)}")
    if window is not None:
        lo, hi = (float(w) for w in window)
        if not 0 <= lo < hi:
            raise ValueError(f"--window needs 0 <= t_min < t_max, got {lo:g} {hi:g}")
        window = (lo, hi)
    analysis = ANALYSES[name]
    accepted = inspect.signature(analysis).parameters
    foreign = [k for k in options if k not in accepted]
    if foreign:
        raise ValueError(f"option(s) {', '.join('--' + k for k in foreign)} do not apply to "
                         f"{name}-lattice trajectories")
    return analysis(paths, Path(out), window=window, **options)


@app.command()
def analyze(
    trajectories: list[Path] = typer.Argument(..., help="Trajectory HDF5 files (independent runs)."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for the figures and tables."),
    window: tuple[float, float] = typer.Option(
        None, "--window", help="Fit window t_min t_max of the coarsening exponent (triangular "
                               "default: from domain size 2 to a tenth of the system size; square: "
                               "the cluster radius, fitted only when a window is given)."),
    level: float = typer.Option(0.5, "--level", help="Correlation level that defines L_C."),
    ising: bool = typer.Option(False, "--ising", help="Correlate sign(chirality) instead of chirality."),
    every: int = typer.Option(1, "--every", help="Analyse every n-th frame (the last one always)."),
    threshold: float = typer.Option(
        None, "--threshold", help="Square lattice: a bond is ferromagnetic when S_i.S_j > THRESHOLD "
                                  "(default 0)."),
) -> None:
    """Order parameters, structure factor and domain size L(t) of trajectories; PNGs, CSV, JSON."""

    def _run():
        options = {} if threshold is None else {"threshold": threshold}
        summary = analyze_files(trajectories, out, window=window, level=level, ising=ising,
                                every=every, **options)
        for line in summary["report"]:
            console.print(line, highlight=False)
        console.print(f"wrote {', '.join(str(f) for f in summary['files'])}", highlight=False)

    run_guarded(_run)
