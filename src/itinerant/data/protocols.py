"""Sampling protocols of a data-generation run file, and the deterministic task list they expand to.

A run file (``itinerant generate RUN.toml``) has a ``[model]`` table, a ``[solver]`` table, a
top-level ``seed`` and one or more ``[[protocol]]`` entries, each selected by ``kind``:

``random``
    ``count`` configurations of independent, uniformly random spins.
``ordered``
    A named state of :data:`itinerant.spins.STATES`, ``count`` configurations per ``noise``
    amplitude; optionally cut into ``domains`` stripes alternating between the state and its
    partner (opposite chirality or opposite sublattice order, :func:`partner_state`), and turned
    by a random global O(3) rotation (``rotate``, on by default).
``quench``
    ``count`` LLG trajectories from random spins per spin temperature in ``kT_spin``, driven by
    the run's solver, with a frame stored every ``sample_every`` steps.
``file``
    Spins read from a ``.npy`` file or an HDF5 dataset (``path`` relative to the run file).

An optional ``[labels]`` table labels every snapshot at several chemical potentials from its one
diagonalisation (:meth:`itinerant.ExactSolver.grand_canonical`): ``mu = [...]`` absolute, or
``mu_offsets = [...]`` relative to each snapshot's own chemical potential (mu* solved at fixed
filling, the model's mu at fixed mu).  Each (snapshot, mu) pair is then one row of the data file,
with its ``mu``; without ``[labels]`` a snapshot is one row labelled in the model's own ensemble.

Every protocol becomes a list of :class:`Task` s: a batch of at most ``batch`` snapshots, or one
trajectory.  A task's random numbers come from ``SeedSequence(seed, spawn_key=(protocol, index))``,
so what a task produces depends on the run file alone, never on which worker runs it or when.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import (MODEL_SCHEMA, ConfigError, ListOf, Option, model_from_config, non_negative,
                      positive, validate)
from ..dynamics import DEFAULT_INTEGRATOR, STEPPERS, resolve_integrator
from ..lattice import Lattice
from ..spins import STATES, check_spins, random_rotation, random_spins

# ---------------------------------------------------------------------- run-file schema


def _all_non_negative(v) -> str | None:
    values = v if isinstance(v, list) else [v]
    if not values:
        return "must not be empty"
    bad = [x for x in values if x < 0]
    return f"must be >= 0, got {bad[0]}" if bad else None


def _seed_ok(v) -> str | None:
    return None if v >= 0 else f"must be a non-negative integer, got {v}"


_BATCH = Option(int, default=8, check=positive, help="snapshots per task")

PROTOCOLS = {
    "random": {
        "count": Option(int, check=positive, help="number of configurations"),
        "batch": _BATCH,
    },
    "ordered": {
        "state": Option(str, choices=tuple(STATES), help="ordered state"),
        "count": Option(int, check=positive, help="configurations per noise amplitude"),
        "noise": Option((float, list), default=[0.0], item=float, check=_all_non_negative,
                        help="Gaussian noise amplitude(s) added to each component, then renormalised"),
        "domains": Option(int, default=1, check=positive,
                          help="1 (single domain) or an even number of stripes"),
        "rotate": Option(bool, default=True, help="apply a random global O(3) rotation"),
        "batch": _BATCH,
    },
    "quench": {
        "count": Option(int, check=positive, help="trajectories per spin temperature"),
        "steps": Option(int, check=positive, help="LLG steps per trajectory"),
        "sample_every": Option(int, check=positive, help="steps between stored frames"),
        "alpha": Option(float, check=non_negative, help="Gilbert damping"),
        "dt": Option(float, check=positive, help="time step (units of 1/t1)"),
        "kT_spin": Option((float, list), default=[0.0], item=float, check=_all_non_negative,
                          help="spin temperature(s); 0 = deterministic"),
        "integrator": Option(str, default=DEFAULT_INTEGRATOR, choices=("auto", *STEPPERS),
                             help="auto: rk4 at kT_spin = 0, heun at kT_spin > 0"),
    },
    "file": {
        "path": Option(str, help=".npy file or HDF5 file, relative to the run file"),
        "dataset": Option(str, default="spins", help="HDF5 dataset holding (M, N, 3) spins"),
        "normalize": Option(bool, default=False, help="rescale spins to unit length"),
        "batch": _BATCH,
    },
}
"""Schemas of the ``[[protocol]]`` kinds (the ``kind`` key selects one)."""

SOLVER_SCHEMA = {
    "kind": Option(str, default="exact", choices=("exact", "kpm")),
    "device": Option(str, default=None, help="torch device of the solver, e.g. 'cuda'"),
    "settings": Option(dict, default={}, help="further solver settings (KPMSolver keywords)"),
}

def _labels_list(v) -> str | None:
    if not v:
        return "must not be empty"
    return None if len(set(v)) == len(v) else f"must not repeat a value, got {v}"


LABELS_SCHEMA = {
    "mu": Option(list, default=None, item=float, check=_labels_list,
                 help="absolute chemical potentials at which every snapshot is labelled"),
    "mu_offsets": Option(list, default=None, item=float, check=_labels_list,
                         help="chemical potentials relative to each snapshot's own mu (mu* at "
                              "fixed filling)"),
}
"""The optional ``[labels]`` table: labels at several chemical potentials (give one key)."""

CLUSTER_SCHEMA = {
    "kind": Option(str, default="local", choices=("local", "slurm", "pbs")),
    "workers": Option(int, default=None, check=non_negative, help="local: worker processes"),
    "queue": Option(str, default=None),
    "account": Option(str, default=None),
    "cores": Option(int, default=1, check=positive, help="cores per job"),
    "processes": Option(int, default=None, check=positive, help="worker processes per job"),
    "memory": Option(str, default="4GB", help="memory per job, e.g. '16GB'"),
    "walltime": Option(str, default="01:00:00"),
    "jobs": Option(int, default=1, check=positive, help="number of batch jobs"),
    "prologue": Option(list, default=[], item=str, help="shell lines run before the worker starts"),
    "interface": Option(str, default=None, help="network interface of the workers, e.g. 'ib0'"),
    "local_directory": Option(str, default=None),
}
"""The optional ``[cluster]`` table; it says where the run executes, not what it computes."""

RUN_SCHEMA = {
    "seed": Option(int, check=_seed_ok, help="seed of every random choice of the run"),
    "model": MODEL_SCHEMA,
    "solver": SOLVER_SCHEMA,
    "protocol": ListOf(tag="kind", variants=PROTOCOLS),
    "labels": LABELS_SCHEMA,
    "cluster": CLUSTER_SCHEMA,
}


# ---------------------------------------------------------------------- ordered states


def partner_state(name: str, lattice: Lattice) -> np.ndarray:
    """The state that forms domain walls with ``STATES[name]``: a degenerate, distinct order.

    Tetrahedral: the opposite scalar chirality.  120-degree spiral: the opposite vector chirality
    (the y components reversed).  Collinear states (ferromagnet, Neel, stripe): all spins reversed,
    i.e. the opposite magnetisation or the other sublattice order.
    """
    if name == "tetrahedral":
        return STATES[name](lattice, chirality=-1)
    base = STATES[name](lattice)
    if name == "spiral120":
        return base * np.array([1.0, -1.0, 1.0])
    return -base


def domain_pattern(name: str, lattice: Lattice, domains: int) -> np.ndarray:
    """``STATES[name]`` cut into ``domains`` stripes along a1 (walls at constant y), alternating
    with :func:`partner_state`; ``domains = 2`` gives two halves.  Shape (N, 3)."""
    base = STATES[name](lattice)
    if domains == 1:
        return base
    y = lattice.coords[:, 1]
    odd = (y * domains // lattice.L) % 2 == 1
    out = base.copy()
    out[odd] = partner_state(name, lattice)[odd]
    return out


def perturb(spins: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Add Gaussian noise of standard deviation ``noise`` to every component and renormalise
    (the definition of :func:`itinerant.dynamics.initial.initial_state`)."""
    if noise == 0:
        return spins
    s = spins + noise * rng.standard_normal(spins.shape)
    return s / np.linalg.norm(s, axis=1, keepdims=True)


# ---------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Task:
    """One unit of work: a batch of snapshots or one trajectory.

    ``id`` is the task's position in the run's task list (the key of resume and sorting);
    ``protocol`` the index of its ``[[protocol]]`` entry and ``index`` its number within it.
    ``params`` holds what the task computes (``n`` snapshots, ``noise``, ``kT_spin``, ...);
    ``spins`` the configurations of a ``file`` task.
    """

    id: int
    protocol: int
    index: int
    kind: str
    seed: int
    params: dict = field(default_factory=dict)
    spins: np.ndarray | None = field(default=None, repr=False, compare=False)

    def rng(self) -> np.random.Generator:
        """The task's random generator, a function of (run seed, protocol, index) only."""
        return np.random.default_rng(np.random.SeedSequence(self.seed,
                                                            spawn_key=(self.protocol, self.index)))


def _as_list(v) -> list:
    return list(v) if isinstance(v, list) else [v]


def _batches(count: int, batch: int):
    return [min(batch, count - k) for k in range(0, count, batch)]


def build_tasks(cfg: dict, file_spins: dict | None = None) -> list[Task]:
    """Expand a validated run file into its task list (same run file, same list)."""
    file_spins = file_spins or {}
    tasks: list[Task] = []
    for p, proto in enumerate(cfg["protocol"]):
        kind = proto["kind"]
        units: list[tuple[dict, np.ndarray | None]] = []
        if kind == "random":
            units = [({"n": n}, None) for n in _batches(proto["count"], proto["batch"])]
        elif kind == "ordered":
            units = [({"n": n, "noise": a}, None) for a in _as_list(proto["noise"])
                     for n in _batches(proto["count"], proto["batch"])]
        elif kind == "quench":
            units = [({"kT_spin": T}, None) for T in _as_list(proto["kT_spin"])
                     for _ in range(proto["count"])]
        elif kind == "file":
            s = file_spins[p]
            b = proto["batch"]
            units = [({"n": len(s[k:k + b])}, s[k:k + b]) for k in range(0, len(s), b)]
        for index, (params, spins) in enumerate(units):
            tasks.append(Task(len(tasks), p, index, kind, cfg["seed"], params, spins))
    return tasks


def make_spins(task: Task, proto: dict, lattice: Lattice, rng: np.random.Generator) -> np.ndarray:
    """The configurations (n, N, 3) of a ``random``, ``ordered`` or ``file`` task."""
    if task.kind == "random":
        return np.stack([random_spins(lattice.N, rng) for _ in range(task.params["n"])])
    if task.kind == "ordered":
        base = domain_pattern(proto["state"], lattice, proto["domains"])
        out = []
        for _ in range(task.params["n"]):
            s = base @ random_rotation(rng).T if proto["rotate"] else base
            out.append(perturb(s, task.params["noise"], rng))
        return np.stack(out)
    if task.kind == "file":
        return task.spins
    raise ValueError(f"task {task.id}: {task.kind!r} tasks do not produce independent snapshots")


# ---------------------------------------------------------------------- loading a run file


@dataclass
class Run:
    """A validated run file: its settings, model, task list and identity.

    ``hash`` identifies what the run computes (model, solver, seed, protocols and the contents of
    spin files; not the ``[cluster]`` table nor comments), and guards resuming into a file.
    """

    cfg: dict
    text: str
    model: object
    tasks: list[Task]
    hash: str
    path: Path | None = None

    @property
    def n_snapshots(self) -> int:
        return sum(snapshots_of(t, self.cfg) for t in self.tasks)

    @property
    def n_rows(self) -> int:
        """Rows of the data file: snapshots times the chemical potentials of ``[labels]``."""
        return self.n_snapshots * mu_count(self.cfg)


def snapshots_of(task: Task, cfg: dict) -> int:
    """Configurations a task produces (each labelled once per chemical potential of ``[labels]``)."""
    if task.kind == "quench":
        proto = cfg["protocol"][task.protocol]
        return proto["steps"] // proto["sample_every"] + 1
    return task.params["n"]


def rows_of(task: Task, cfg: dict) -> int:
    """Rows a task writes to the data file."""
    return snapshots_of(task, cfg) * mu_count(cfg)


def mu_labels(cfg: dict) -> dict | None:
    """``{"mu": [...]}`` or ``{"offsets": [...]}`` of a run's ``[labels]``; ``None`` without."""
    lab = cfg.get("labels") or {}
    if lab.get("mu") is not None:
        return {"mu": list(lab["mu"])}
    if lab.get("mu_offsets") is not None:
        return {"offsets": list(lab["mu_offsets"])}
    return None


def mu_count(cfg: dict) -> int:
    """Chemical potentials per snapshot: K of ``[labels]``, 1 without."""
    lab = mu_labels(cfg)
    return 1 if lab is None else len(next(iter(lab.values())))


def load_run(path: str | Path) -> Run:
    """Read, validate and expand a run file; every error is a ``ConfigError`` naming the field."""
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"run file {path} does not exist")
    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_run(data, text, base_dir=path.parent, path=path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_run(data: dict, text: str = "", base_dir: str | Path = ".", path: Path | None = None) -> Run:
    """Validate a parsed run file (see :func:`load_run`)."""
    cfg = validate(data, RUN_SCHEMA)
    if not cfg["protocol"]:
        raise ConfigError("protocol: the run file needs at least one [[protocol]] entry")
    model = model_from_config(cfg["model"])
    _check_solver(cfg["solver"])
    _check_labels(cfg)
    _check_cluster(cfg["cluster"])
    lattice = model.lattice
    file_spins, digests = {}, {}
    for p, proto in enumerate(cfg["protocol"]):
        where = f"[protocol[{p}]]"
        if proto["kind"] == "ordered":
            d = proto["domains"]
            if d > 1 and (d % 2 or d > lattice.L):
                raise ConfigError(f"{where} domains: must be 1 or an even number <= L = {lattice.L}, "
                                  f"got {d}")
            try:
                domain_pattern(proto["state"], lattice, d)
            except ValueError as exc:
                raise ConfigError(f"{where} state: {exc}") from None
        elif proto["kind"] == "quench":
            if proto["sample_every"] > proto["steps"]:
                raise ConfigError(f"{where} sample_every: {proto['sample_every']} is more than "
                                  f"steps = {proto['steps']}")
        elif proto["kind"] == "file":
            s = _read_spin_file(Path(base_dir) / proto["path"], proto, lattice, where)
            file_spins[p] = s
            digests[p] = hashlib.sha256(s.tobytes()).hexdigest()
    identity = {k: cfg[k] for k in ("seed", "model", "solver", "protocol")}
    identity["files"] = digests
    if mu_labels(cfg) is not None:  # absent from runs without [labels]: their hash is unchanged
        identity["labels"] = mu_labels(cfg)
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return Run(cfg, text, model, build_tasks(cfg, file_spins), digest, path)


SOLVER_SETTINGS = {"exact": ("max_batch",),
                   "kpm": ("moments", "vectors", "kernel", "estimator", "distance", "seed", "batch")}
"""Keys ``[solver] settings`` may hold (keyword arguments of ExactSolver / KPMSolver)."""


def _check_solver(solver: dict) -> None:
    known = SOLVER_SETTINGS[solver["kind"]]
    unknown = sorted(set(solver["settings"]) - set(known))
    if unknown:
        raise ConfigError(f"[solver] settings: unknown {solver['kind']}-solver setting(s) {unknown}; "
                          f"known: {list(known)}")


def _check_labels(cfg: dict) -> None:
    lab = cfg["labels"]
    if lab["mu"] is not None and lab["mu_offsets"] is not None:
        raise ConfigError("[labels] mu_offsets: give mu (absolute) or mu_offsets (relative to each "
                          "snapshot's own mu), not both")
    if mu_labels(cfg) is not None and cfg["solver"]["kind"] != "exact":
        raise ConfigError(f"[labels]: labels at several chemical potentials need the exact solver "
                          f"(one diagonalisation gives them all), not {cfg['solver']['kind']!r}")


def _check_cluster(cluster: dict) -> None:
    if cluster["kind"] in ("slurm", "pbs"):
        if cluster["workers"] is not None:
            raise ConfigError("[cluster] workers: applies to kind = 'local'; a batch cluster has "
                              "jobs * processes workers")
        procs = cluster["processes"]
        if procs is not None and procs > cluster["cores"]:
            raise ConfigError(f"[cluster] processes: {procs} is more than cores = {cluster['cores']}")
    else:
        extra = [k for k in ("queue", "account", "interface") if cluster[k] is not None]
        if extra:
            raise ConfigError(f"[cluster] {extra[0]}: only applies to kind = 'slurm' or 'pbs'")


def _read_spin_file(path: Path, proto: dict, lattice: Lattice, where: str) -> np.ndarray:
    from ..io import read_spins

    try:
        s = read_spins(path, proto["dataset"]) if path.suffix != ".npy" else read_spins(path)
        s = check_spins(s, lattice.N, normalize=proto["normalize"], batched=True)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"{where} path: {exc}") from None
    return s[None] if s.ndim == 2 else s


def solver_calls(run: Run) -> int:
    """Solver calls (one each: a ``2N x 2N`` diagonalisation for the exact solver) a run costs.

    A snapshot costs one.  A quench trajectory costs one at the start, ``evaluations`` per step
    (2 for SIB and Heun, 4 for RK4; see :data:`itinerant.dynamics.STEPPERS`) and one label per
    stored frame (``steps // sample_every + 1``).
    """
    calls = 0
    for task in run.tasks:
        if task.kind == "quench":
            proto = run.cfg["protocol"][task.protocol]
            name = resolve_integrator(proto["integrator"], task.params["kT_spin"])
            calls += 1 + proto["steps"] * STEPPERS[name].evaluations
        calls += snapshots_of(task, run.cfg)
    return calls
