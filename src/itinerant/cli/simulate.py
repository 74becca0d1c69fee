"""``itinerant simulate RUN.toml``: LLG dynamics with any force field, streamed to HDF5, resumable.

A run file (paths are relative to the working directory)::

    [model]                      # the s-d model (config.MODEL_SCHEMA); needed by exact and kpm
    lattice = "square"
    L = 8
    J = 6.0
    filling = 0.5

    [lattice]                    # instead of [model], for force fields without electrons
    kind = "square"
    L = 32

    [force_field]
    kind = "exact"               # exact | kpm | ml | heisenberg | zeeman
    path = "name-or-file"        # ml only: a shipped model's name or a model file
    [force_field.settings]       # passed to the force field (heisenberg: J1, J2, field; ...)

    [initial]
    state = "random"             # random | ferromagnet | neel | stripe | spiral120 | tetrahedral
    # file = "start.h5"          # or spins from a .npy / HDF5 file (frame = -1: the last one)
    seed = 1
    noise = 0.0                  # Gaussian tilt added to an ordered state

    [dynamics]
    alpha = 0.1
    dt = 0.05
    kT = 0.0                     # spin temperature of the Langevin thermostat
    integrator = "auto"          # auto | sib | heun | rk4
    steps = 2000
    save_every = 20
    checkpoint_every = 1000
    seed = 7                     # noise seed (drawn and recorded when absent)

    [output]
    file = "run.h5"
    observables = ["staggered_magnetization"]   # also "density", "chemical_potential"

With ``kind = "ml"`` and a mu-conditioned model (trained on labels at several chemical
potentials), ``[model]`` chooses the ensemble: ``filling`` simulates fixed electron number (mu*
solved at every evaluation, docs/canonical.md), ``mu`` a fixed chemical potential.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.markup import escape

from ..config import (MODEL_SCHEMA, ConfigError, Option, load_run_file, model_from_config, non_negative,
                      positive, validate)
from ..dynamics import LLG, NonFiniteError, STATE_NAMES, STEPPERS, initial_state
from ..forcefields import FORCE_FIELDS, NEEDS_MODEL, build_force_field
from ..lattice import Lattice
from ..observables import ELECTRON_OBSERVABLES, OBSERVABLES, recorders
from .app import app, console, fail, run_guarded


def _vector3(v) -> str | None:
    return None if len(v) == 3 else f"must have 3 components, got {len(v)}"


LATTICE_SCHEMA = {
    "kind": Option(str, choices=("square", "triangular")),
    "L": Option(int, check=positive),
}

SETTINGS_SCHEMAS = {
    "heisenberg": {"J1": Option(float, default=1.0), "J2": Option(float, default=0.0),
                   "field": Option(list, default=[0.0, 0.0, 0.0], item=float, check=_vector3)},
    "zeeman": {"field": Option(list, item=float, check=_vector3)},
    "exact": {"device": Option(str, default="cpu"), "max_batch": Option(int, default=16, check=positive)},
}
"""Settings of the force fields this module knows; ``kpm`` and ``ml`` settings go to their constructors."""

RUN_SCHEMA = {
    "model": Option(dict, default=None, help="the s-d model (lattice, L, t, J, filling | mu, kT)"),
    "lattice": Option(dict, default=None, help="kind and L, when there is no [model]"),
    "force_field": {
        "kind": Option(str, choices=FORCE_FIELDS),
        "path": Option(str, default=None, help="ml: a shipped model's name or a model file"),
        "settings": Option(dict, default={}),
    },
    "initial": {
        "state": Option(str, default=None, choices=STATE_NAMES),
        "file": Option(str, default=None),
        "frame": Option(int, default=-1),
        "noise": Option(float, default=0.0, check=non_negative),
        "seed": Option(int, default=None, check=non_negative),
        "direction": Option(list, default=None, item=float, check=_vector3),
        "chirality": Option(int, default=None, choices=(1, -1)),
    },
    "dynamics": {
        "alpha": Option(float, check=non_negative, help="Gilbert damping"),
        "dt": Option(float, check=positive, help="time step"),
        "kT": Option(float, default=0.0, check=non_negative),
        "integrator": Option(str, default="auto", choices=("auto", *STEPPERS)),
        "steps": Option(int, check=non_negative, help="number of steps"),
        "save_every": Option(int, default=1, check=positive),
        "checkpoint_every": Option(int, default=1000, check=non_negative),
        "seed": Option(int, default=None, check=non_negative),
    },
    "output": {
        "file": Option(str, default=None),
        "observables": Option(list, default=[], item=str),
    },
}
"""Schema of a ``simulate`` run file (tables ``[model]``/``[lattice]`` are checked separately)."""


def validate_run(data: dict) -> dict:
    """Validate a parsed run file; returns it with defaults filled in and the sub-tables checked."""
    return _check_run(validate(data, RUN_SCHEMA))


def _check_run(cfg: dict) -> dict:
    ff = cfg["force_field"]
    if cfg["model"] is not None:
        cfg["model"] = validate(cfg["model"], MODEL_SCHEMA, ["model"])
    if cfg["lattice"] is not None:
        cfg["lattice"] = validate(cfg["lattice"], LATTICE_SCHEMA, ["lattice"])
        if cfg["model"] is not None:
            raise ConfigError("[lattice]: the lattice is given by [model]; remove [lattice]")
    kind = ff["kind"]
    if kind in NEEDS_MODEL and cfg["model"] is None:
        raise ConfigError(f"[model]: missing required table: the {kind!r} force field solves the "
                          "electrons of an s-d model")
    if cfg["model"] is None and cfg["lattice"] is None:
        raise ConfigError(f"[lattice]: missing required table: the {kind!r} force field needs a "
                          "lattice ([lattice] kind and L, or a [model] table)")
    if kind in SETTINGS_SCHEMAS:
        ff["settings"] = validate(ff["settings"], SETTINGS_SCHEMAS[kind], ["force_field", "settings"])
    if kind == "ml" and ff["path"] is None:
        raise ConfigError("[force_field] path: missing required value: the 'ml' force field needs a "
                          "shipped model's name or a model file")
    if kind != "ml" and ff["path"] is not None:
        raise ConfigError(f"[force_field] path: only the 'ml' force field reads a model file, not {kind!r}")
    ini = cfg["initial"]
    if ini["state"] is not None and ini["file"] is not None:
        raise ConfigError("[initial] file: give a state or a file, not both")
    if ini["state"] is None and ini["file"] is None:
        ini["state"] = "random"
    dyn = cfg["dynamics"]
    if dyn["kT"] > 0 and dyn["alpha"] == 0:
        raise ConfigError("[dynamics] kT: a spin temperature needs damping alpha > 0 (the noise "
                          "strength is 2 alpha kT / (1 + alpha^2))")
    for k, name in enumerate(cfg["output"]["observables"]):
        if name not in OBSERVABLES and name not in ELECTRON_OBSERVABLES:
            raise ConfigError(f"[output] observables[{k}]: unknown observable {name!r}; known: "
                              f"{sorted(OBSERVABLES) + sorted(ELECTRON_OBSERVABLES)}")
    return cfg


def load_simulation(path) -> dict:
    """Read and validate a ``simulate`` run file (messages name the file and the key)."""
    cfg = load_run_file(path, RUN_SCHEMA)
    try:
        return _check_run(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def build_run(cfg: dict):
    """The lattice, force field, initial spins and :class:`LLG` of a validated run file."""
    model = model_from_config(cfg["model"]) if cfg["model"] is not None else None
    lattice = model.lattice if model is not None else Lattice.from_name(cfg["lattice"]["kind"],
                                                                        cfg["lattice"]["L"])
    ff_cfg = cfg["force_field"]
    settings = dict(ff_cfg["settings"])
    if ff_cfg["path"] is not None:
        settings["path"] = ff_cfg["path"]
    try:
        ff = build_force_field(ff_cfg["kind"], model=model, lattice=lattice, **settings)
    except ValueError as exc:
        raise ConfigError(f"[force_field]: {exc}") from None
    try:
        spins = initial_state(cfg["initial"], lattice)
    except ValueError as exc:
        raise ConfigError(f"[initial]: {exc}") from None
    dyn = cfg["dynamics"]
    sim = LLG(ff, alpha=dyn["alpha"], dt=dyn["dt"], kT=dyn["kT"], integrator=dyn["integrator"],
              seed=dyn["seed"])
    return lattice, ff, spins, sim


def run_simulation(cfg: dict, out=None, resume: bool = False, overwrite: bool = False,
                   progress: bool = True):
    """Run a validated run file; returns the :class:`~itinerant.Trajectory` (backed by the file)."""
    out = out if out is not None else cfg["output"]["file"]
    if out is None:
        raise ConfigError("[output] file: missing required value (or pass --out)")
    lattice, ff, spins, sim = build_run(cfg)
    try:
        observables = recorders(cfg["output"]["observables"], lattice, ff)
    except ValueError as exc:
        raise ConfigError(f"[output] observables: {exc}") from None
    settings = {**(ff.settings() if callable(getattr(ff, "settings", None)) else {}),
                **cfg["force_field"]["settings"]}
    if cfg["force_field"]["path"] is not None:
        settings["path"] = cfg["force_field"]["path"]
    attrs = {"force_field": cfg["force_field"]["kind"], "force_field_settings": settings,
             "run_config": json.dumps({**cfg, "dynamics": {**cfg["dynamics"], "seed": sim.seed}})}
    if cfg["model"] is None:
        attrs.update(lattice=lattice.name, L=lattice.L)
    dyn = cfg["dynamics"]
    return sim.run(spins, dyn["steps"], save_every=dyn["save_every"], out=out,
                   checkpoint_every=dyn["checkpoint_every"], resume=resume, progress=progress,
                   observables=observables, attrs=attrs, overwrite=overwrite)


_HELP = ("Run LLG spin dynamics as a run file describes; stream frames to HDF5, checkpoint, resume."
         "\n\n"
         "Run-file tables: [model] (or [lattice] for analytic force fields), [force_field] (kind = "
         "exact, kpm, ml, heisenberg or zeeman, with [force_field.settings]), [initial], [dynamics] "
         "(alpha, dt, kT, integrator, steps, save_every, checkpoint_every, seed) and [output] (file, "
         "observables).  Examples: examples/simulate-*.toml.")


@app.command(help=escape(_HELP))
def simulate(
    run_file: Path = typer.Argument(..., help="TOML run file."),
    out: Path = typer.Option(None, "--out", "-o",
                             help=escape("Trajectory file (overrides [output] file).")),
    resume: bool = typer.Option(False, "--resume", help="Continue a killed run from its checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing trajectory file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Run LLG spin dynamics as a run file describes (help text: ``_HELP``)."""

    def _run():
        cfg = load_simulation(run_file)
        t0 = time.perf_counter()
        try:
            traj = run_simulation(cfg, out=out, resume=resume, overwrite=overwrite,
                                  progress=not quiet)
        except NonFiniteError as exc:
            kept = exc.trajectory
            fail(f"{exc}; the {len(kept)} frames written before it are kept in {kept.path}", code=3)
        n = len(traj)
        console.print(f"wrote {traj.path}: {n} frames to t = {traj.time[-1]:.6g}, energy "
                      f"{traj.energy[-1]:.10g} ({time.perf_counter() - t0:.1f} s)", highlight=False)

    run_guarded(_run)
