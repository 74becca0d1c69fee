"""``itinerant demo [triangular]``: a quench from random spins with a shipped learned force field.

The main job of the README: LLG dynamics of a large lattice with a model trained on exact
solutions, then the analysis of the ordering (trajectory HDF5 and PNG figures in ``--out``).
Each demo is one :class:`Demo` entry of :data:`DEMOS`; a new lattice's demo is one more entry
(its shipped model, default size and LLG settings, and the analysis that turns its trajectory into
figures).  There is no fallback: without the shipped model the demo stops and names it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import typer

from ..analysis import square, triangular
from ..dynamics import LLG, initial_state
from ..lattice import Lattice
from ..models import MLForceField
from ..observables import recorders
from .app import app, console, run_guarded


@dataclass(frozen=True)
class Demo:
    """One demo: a quench from random spins at ``kT = 0`` and its analysis.

    ``model`` is the shipped model's name; ``frames`` the number of frames stored after the
    initial one (spread evenly over ``steps``); ``analyze`` is the lattice's
    ``analyze_cli(paths, out, window=None)`` (see :mod:`itinerant.cli.analyze`); ``ensemble``
    fixes the electrons' ensemble of a mu-conditioned model (``{"filling": ...}``: canonical, the
    chemical potential solved at every evaluation, docs/canonical.md), empty for other models.
    """

    lattice: str
    model: str
    L: int
    alpha: float
    dt: float
    steps: int
    frames: int
    integrator: str
    dtype: str
    observables: tuple[str, ...]
    analyze: Callable
    about: str
    ensemble: tuple = ()


DEMOS = {
    "triangular": Demo(
        lattice="triangular", model="triangular-J2-n0.25", L=96, alpha=1.0, dt=1.0, steps=400,
        frames=50, integrator="rk4", dtype="float32",
        observables=("scalar_chirality", "chirality_abs", "tetrahedral_order", "magnetization"),
        analyze=triangular.analyze_cli,
        about="tetrahedral (chiral) order on the triangular lattice, t1 = 1, J = 2, filling 1/4: "
              "domains of opposite scalar chirality form and coarsen"),
    "square": Demo(
        lattice="square", model="square-J6-n0.485", L=50, alpha=0.5, dt=0.1, steps=400,
        frames=40, integrator="rk4", dtype="float32",
        observables=("staggered_magnetization", "magnetization", "density", "chemical_potential"),
        analyze=square.analyze_cli, ensemble=(("filling", 0.485),),
        about="lightly hole-doped double-exchange magnet on the square lattice, t1 = 1, J = 6, "
              "filling 0.485 (fixed electron number): holes gather in ferromagnetic clusters "
              "inside a Neel background"),
}
"""The demos by name (the first is the default)."""


def load_demo_model(demo: Demo, lattice: Lattice, model: str | Path | None = None) -> MLForceField:
    """The demo's learned force field on ``lattice``: the shipped model, or ``model`` (name or path).

    A missing shipped model is a ``FileNotFoundError`` that names it.
    """
    name = demo.model if model is None else model
    try:
        return MLForceField.load(name, lattice=lattice, dtype=demo.dtype, **dict(demo.ensemble))
    except FileNotFoundError:
        if model is not None:
            raise
        have = MLForceField.available()
        raise FileNotFoundError(
            f"the {demo.lattice} demo needs the shipped model {demo.model!r}, which is not "
            f"installed (shipped models: {', '.join(have) if have else 'none'}); it is trained from "
            f"studies/{demo.lattice}/ (docs/studies/{demo.lattice}.md) and shipped in "
            f"src/itinerant/models/shipped/{demo.model}/, or pass --model with a trained model "
            "directory") from None


def run_demo(name: str = "triangular", out="demo-triangular", L: int | None = None,
             steps: int | None = None, alpha: float | None = None, dt: float | None = None,
             seed: int = 0, model: str | Path | None = None, force_field=None,
             progress: bool = True) -> dict:
    """Run a demo: quench, trajectory ``out/trajectory.h5``, then the lattice's analysis in ``out``.

    ``force_field``: use this force field (its ``lattice`` attribute fixes the lattice) instead of
    loading the demo's model; ``model``: a model name or directory instead of the shipped default.
    ``L``, ``steps``, ``alpha``, ``dt`` override the demo's settings.  An existing
    ``out/trajectory.h5`` is replaced.  Returns ``{"trajectory", "files", "report", "seconds"}``.
    """
    if name not in DEMOS:
        raise ValueError(f"unknown demo {name!r}; available: {sorted(DEMOS)}")
    if force_field is not None and model is not None:
        raise ValueError("give a force field or a model, not both")
    demo = DEMOS[name]
    demo = replace(demo, **{k: v for k, v in (("L", L), ("steps", steps), ("alpha", alpha),
                                              ("dt", dt)) if v is not None})
    if not isinstance(demo.L, int) or demo.L < 2:
        raise ValueError(f"L must be an integer >= 2, got {demo.L!r}")
    if not isinstance(demo.steps, int) or demo.steps < 1:
        raise ValueError(f"steps must be a positive integer, got {demo.steps!r}")
    if force_field is None:
        lattice = Lattice.from_name(demo.lattice, demo.L)
        force_field = load_demo_model(demo, lattice, model)
    else:
        lattice = getattr(force_field, "lattice", None)
        if not isinstance(lattice, Lattice) or lattice.name != demo.lattice:
            raise ValueError(f"the {name} demo needs a force field bound to a {demo.lattice} Lattice "
                             f"(its .lattice), got {lattice!r}")
        if L is not None and L != lattice.L:
            raise ValueError(f"L = {L} differs from the force field's lattice {lattice}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "trajectory.h5"
    sim = LLG(force_field, alpha=demo.alpha, dt=demo.dt, kT=0.0, integrator=demo.integrator,
              seed=seed)
    spins = initial_state({"state": "random", "seed": seed}, lattice)
    t0 = time.perf_counter()
    sim.run(spins, demo.steps, save_every=max(1, demo.steps // demo.frames), out=path,
            checkpoint_every=0, progress=progress, observables=recorders(demo.observables, lattice, force_field),
            attrs={"demo": name, "initial_state": "random", "initial_seed": seed}, overwrite=True)
    seconds = time.perf_counter() - t0
    summary = demo.analyze([path], out)
    return {"trajectory": path, "files": summary["files"], "report": summary["report"],
            "seconds": seconds}


@app.command()
def demo(
    which: str = typer.Argument(next(iter(DEMOS)), help=f"Which demo: {', '.join(DEMOS)}."),
    L: int = typer.Option(None, "--L", help="Linear lattice size (default: the demo's, 96)."),
    steps: int = typer.Option(None, "--steps", help="LLG steps (default: the demo's)."),
    out: Path = typer.Option(None, "--out", "-o", help="Output directory (default: demo-<which>)."),
    model: str = typer.Option(None, "--model", help="A trained model (name or directory) instead "
                                                    "of the shipped one."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random initial spins."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Quench from random spins with a shipped learned force field; trajectory and PNG figures."""

    def _run():
        if which in DEMOS:
            console.print(DEMOS[which].about, highlight=False)
        res = run_demo(which, out or f"demo-{which}", L=L, steps=steps, seed=seed, model=model,
                       progress=not quiet)
        console.print(f"LLG: {res['seconds']:.1f} s; trajectory {res['trajectory']}", highlight=False)
        for line in res["report"]:
            console.print(line, highlight=False)
        console.print(f"figures: {', '.join(str(f) for f in res['files'] if f.suffix == '.png')}",
                      highlight=False)

    run_guarded(_run)
