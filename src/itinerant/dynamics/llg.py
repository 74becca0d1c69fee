"""Landau-Lifshitz-Gilbert dynamics with any force field; trajectories in memory or streamed to HDF5.

    sim  = LLG(force_field, alpha=0.1, dt=0.02, kT=0.05, seed=1)
    traj = sim.run(spins, steps=10_000, save_every=100, out="run.h5")
    traj.time, traj.spins, traj.energy          # (F,), (F, N, 3), (F,)

Equation (DESIGN.md §2; dimensionless time, units of t1):

    dS_i/dt = - S_i x (h_i + xi_i) - alpha S_i x (S_i x (h_i + xi_i)),   h_i = -dE/dS_i,

with the white-noise field ``xi`` of :mod:`.noise` at the spin temperature ``kT``.  Frames are
taken every ``save_every`` steps, starting with the initial state, at times ``step * dt``.
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np

from ..io import RowWriter, model_attrs, write_attrs
from ..spins import check_spins
from .checkpoint import Checkpoint, checkpoint_path
from .integrators import get_stepper
from .noise import ThermalNoise
from .progress import progress_bar

DEFAULT_INTEGRATOR = "auto"
"""``"auto"``: RK4 for deterministic runs (kT = 0), Heun for stochastic ones (kT > 0).

Chosen from ``benchmarks/integrator_accuracy.py`` (tables in its docstring): without noise RK4
reaches a given accuracy with 4-6x fewer force evaluations than the second-order schemes; with
noise every scheme is weak order 1, and Heun has the smallest temperature bias per evaluation
(RK4 costs twice as much per step and had the largest bias at equal dt).
"""


def resolve_integrator(name: str, kT: float) -> str:
    """The integrator ``name`` stands for (``"auto"`` resolved by temperature)."""
    if name == "auto":
        return "rk4" if kT == 0 else "heun"
    get_stepper(name)
    return name


class NonFiniteError(FloatingPointError):
    """A force field returned, or an integrator produced, NaN or infinity.

    ``step`` is the step at which it happened; ``trajectory`` holds the frames recorded before it.
    """

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step
        self.trajectory = None


class Trajectory:
    """Frames of an LLG run.

    Attributes
    ----------
    time:       (F,) simulated times.
    spins:      (F, N, 3) spin configurations.
    energy:     (F,) force-field energies.
    observables: ``{name: (F, ...)}`` recorded observables.
    attrs:      run attributes (model, force field, integrator settings).
    path:       the HDF5 file, if the frames live in one (then arrays are read on first access).
    """

    _CORE = ("time", "spins", "energy")

    def __init__(self, time=None, spins=None, energy=None, observables=None, attrs=None, path=None):
        self.path = None if path is None else Path(path)
        self._data = {}
        if path is None:
            self._data = {"time": np.asarray(time, float), "spins": np.asarray(spins, float),
                          "energy": np.asarray(energy, float)}
            self._data.update({k: np.asarray(v) for k, v in (observables or {}).items()})
            self.attrs = dict(attrs or {})
        else:
            with h5py.File(self.path, "r") as h5:
                missing = [k for k in self._CORE if k not in h5]
                if missing:
                    raise ValueError(f"{path}: not a trajectory file (missing datasets {missing})")
                self.attrs = dict(h5.attrs)
                self._names = [k for k in h5 if isinstance(h5[k], h5py.Dataset)]

    @classmethod
    def load(cls, path) -> "Trajectory":
        """Open a trajectory file; datasets are read when first used."""
        return cls(path=path)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._data:
            if self.path is None:
                raise KeyError(f"no dataset {name!r} in this trajectory")
            with h5py.File(self.path, "r") as h5:
                if name not in h5:
                    raise KeyError(f"{self.path} has no dataset {name!r} (it has {sorted(h5)})")
                self._data[name] = h5[name][...]
        return self._data[name]

    time = property(lambda self: self["time"])
    spins = property(lambda self: self["spins"])
    energy = property(lambda self: self["energy"])

    @property
    def observables(self) -> dict:
        names = self._names if self.path is not None else list(self._data)
        return {k: self[k] for k in names if k not in self._CORE}

    def __len__(self) -> int:
        return len(self.time)

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        return f"Trajectory(frames={len(self)}{where})"


class LLG:
    """Integrator of the (stochastic) LLG equation for a force field.

    Parameters
    ----------
    force_field:
        Any object with ``energy_and_fields(spins) -> (E, h)``: ``spins`` (N, 3) unit vectors,
        ``E`` a float, ``h = -dE/dS`` an (N, 3) array (numpy, or anything ``np.asarray`` takes).
    alpha:
        Gilbert damping, ``>= 0``.
    dt:
        Time step (units of 1/t1, gyromagnetic ratio 1).
    kT:
        Spin temperature of the Langevin thermostat (``kT_spin``; 0 = deterministic).  Needs
        ``alpha > 0``: the noise strength is ``2 alpha kT / (1 + alpha^2)``.
    integrator:
        ``"sib"`` (semi-implicit midpoint), ``"heun"`` (Depondt-Mertens), ``"rk4"``, or ``"auto"``
        (default: ``rk4`` at ``kT = 0``, ``heun`` at ``kT > 0``; see :data:`DEFAULT_INTEGRATOR`).
    seed:
        Seed of the noise generator; drawn from the OS when ``None`` and recorded in ``seed``.
    """

    def __init__(self, force_field, alpha: float, dt: float, kT: float = 0.0,
                 integrator: str = DEFAULT_INTEGRATOR, seed: int | None = None) -> None:
        if not callable(getattr(force_field, "energy_and_fields", None)):
            raise TypeError("force_field must have a method energy_and_fields(spins) -> (E, h)")
        for name, v in (("alpha", alpha), ("dt", dt), ("kT", kT)):
            if not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if alpha < 0 or kT < 0 or dt <= 0:
            raise ValueError(f"need alpha >= 0, kT >= 0 and dt > 0; got alpha = {alpha}, kT = {kT}, "
                             f"dt = {dt}")
        if kT > 0 and alpha == 0:
            raise ValueError("kT > 0 needs alpha > 0: the thermostat's noise strength is "
                             "2 alpha kT / (1 + alpha^2), so without damping there is no bath")
        self.force_field = force_field
        self.alpha, self.dt, self.kT = float(alpha), float(dt), float(kT)
        self.integrator = resolve_integrator(integrator, self.kT)
        self.stepper = get_stepper(self.integrator)
        self._seed_drawn = seed is None
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.noise = ThermalNoise(self.alpha, self.kT, self.dt, self.rng)
        self._step_index = 0

    # ------------------------------------------------------------------ one step
    def energy_and_fields(self, spins) -> tuple[float, np.ndarray]:
        """The force field's energy and fields, checked to be finite (else :class:`NonFiniteError`)."""
        E, h = self.force_field.energy_and_fields(spins)
        E, h = float(E), np.asarray(h, dtype=np.float64)
        if h.shape != np.shape(spins):
            raise ValueError(f"the force field returned fields of shape {h.shape} for spins of shape "
                             f"{np.shape(spins)}")
        if not (math.isfinite(E) and np.isfinite(h).all()):
            what = "energy" if not math.isfinite(E) else f"field at site {np.argwhere(~np.isfinite(h))[0, 0]}"
            raise NonFiniteError(f"non-finite {what} at step {self._step_index}", self._step_index)
        return E, h

    def _fields(self, spins) -> np.ndarray:
        return self.energy_and_fields(spins)[1]

    def step(self, spins, h=None) -> np.ndarray:
        """Advance ``spins`` (N, 3) by one time step, drawing fresh noise; returns the new spins.

        ``h`` are the fields at ``spins`` if already known (saves one evaluation).  Errors name
        the step by its running count (steps taken by this object, or by the current run).
        """
        if h is None:
            h = self._fields(spins)
        self._step_index += 1
        xi = self.noise.draw(len(spins))
        new = self.stepper.step(spins, h, self._fields, self.dt, self.alpha, xi)
        if not np.isfinite(new).all():
            site = np.argwhere(~np.isfinite(new))[0, 0]
            raise NonFiniteError(f"non-finite spin at site {site} at step {self._step_index}",
                                 self._step_index)
        return new

    # ------------------------------------------------------------------ runs
    def settings(self) -> dict:
        """Integrator settings stored with trajectories (DESIGN.md §4)."""
        return {"alpha": self.alpha, "dt": self.dt, "kT_spin": self.kT, "integrator": self.integrator,
                "seed": self.seed}

    def file_attrs(self) -> dict:
        """Root attributes of a trajectory file: model (if any), force field and integrator."""
        ff = self.force_field
        if getattr(ff, "model", None) is not None:
            attrs = model_attrs(ff.model)
        else:
            from .._version import __version__

            lat = getattr(ff, "lattice", None)
            attrs = {"version": __version__}
            if lat is not None:
                attrs.update(lattice=lat.name, L=lat.L)
        attrs["force_field"] = getattr(ff, "name", type(ff).__name__)
        if callable(getattr(ff, "settings", None)):
            attrs["force_field_settings"] = ff.settings()
        return {**attrs, **self.settings()}

    def run(self, spins, steps: int, save_every: int = 1, out=None, checkpoint_every: int | None = 1000,
            resume: bool = False, progress: bool = False, observables: dict | None = None,
            attrs: dict | None = None, overwrite: bool = False) -> Trajectory:
        """Integrate ``steps`` steps from ``spins`` and return the frames.

        Parameters
        ----------
        spins:
            Initial configuration (N, 3), unit vectors.  Ignored when resuming from a checkpoint.
        steps:
            Total number of steps of the run (counted from the initial state, also when resuming).
        save_every:
            A frame is recorded every ``save_every`` steps (and the initial state).
        out:
            HDF5 file to stream frames to (flushed after each); the returned trajectory then reads
            it lazily.  Without ``out`` the frames are kept in memory.
        checkpoint_every:
            With ``out``: write ``<out>.checkpoint.npz`` at the start, every this many steps and
            at the end (``None`` or 0: only at the start and the end).
        resume:
            Continue from the checkpoint of ``out``: the file is cut back to the checkpoint's
            frames and the run continues so that the result equals an uninterrupted run.  Without a
            checkpoint (and no ``out`` file yet) the run starts fresh.  An LLG made without a seed
            adopts the checkpointed run's seed.
        progress:
            Show a Rich progress bar (simulated time, steps/s, ETA) on stderr.
        observables:
            ``{name: f(spins) -> array}`` recorded at every frame (see :mod:`itinerant.observables`).
        attrs:
            Extra root attributes for the file (added to :meth:`file_attrs`).
        overwrite:
            Replace an existing ``out`` file instead of refusing.
        """
        if not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        if not isinstance(save_every, (int, np.integer)) or save_every < 1:
            raise ValueError(f"save_every must be a positive integer, got {save_every!r}")
        checkpoint_every = int(checkpoint_every or 0)
        if checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {checkpoint_every}")
        spins = check_spins(spins, self._n_sites(spins))
        observables = dict(observables or {})

        def run_settings():
            return {**self.settings(), "save_every": int(save_every), "n_sites": len(spins),
                    "observables": sorted(observables)}

        start, writer, h5 = 0, None, None
        if out is not None:
            out = Path(out)
            ckpt_file = checkpoint_path(out)
            if resume and ckpt_file.exists():
                ckpt = Checkpoint.load(ckpt_file)
                if self._seed_drawn:  # no seed given: continue the checkpointed run's noise
                    self.seed = int(ckpt.settings.get("seed", self.seed))
                ckpt.check_settings(run_settings(), ckpt_file)
                if ckpt.step > steps:
                    raise ValueError(f"cannot resume: the checkpoint {ckpt_file} is at step {ckpt.step}, "
                                     f"beyond the requested {steps} steps")
                start, spins = ckpt.step, ckpt.spins
                self.rng.bit_generator.state = ckpt.rng_state
            elif out.exists() and (resume or not overwrite):
                why = (f"there is no checkpoint {ckpt_file} to resume from" if resume
                       else "pass overwrite=True (--overwrite) to replace it or resume=True (--resume)")
                raise ValueError(f"trajectory file {out} already exists; {why}")
            elif ckpt_file.exists():
                ckpt_file.unlink()  # a stale checkpoint of a file that is being replaced

        self._step_index = start
        shapes = {"time": (), "spins": spins.shape, "energy": ()}
        shapes.update({k: np.shape(f(spins)) for k, f in observables.items()})
        frames = {k: [] for k in shapes}

        def record(step, s, energy):
            row = {"time": step * self.dt, "spins": s, "energy": energy,
                   **{k: f(s) for k, f in observables.items()}}
            if writer is not None:
                writer.append(**row)
            else:
                for k, v in row.items():
                    frames[k].append(v)

        def save_checkpoint(step, s):
            Checkpoint(step, s, self.rng.bit_generator.state, run_settings()).save(ckpt_file)

        try:
            E, h = self.energy_and_fields(spins)
            if out is not None:
                h5 = h5py.File(out, "r+" if start > 0 else "w")
                if start == 0:
                    write_attrs(h5, {**self.file_attrs(), **(attrs or {})})
                writer = RowWriter(h5, shapes)
                if start > 0:
                    keep = start // save_every + 1
                    if len(writer) < keep:
                        raise ValueError(f"cannot resume: {out} holds {len(writer)} frames, fewer than "
                                         f"the {keep} written before the checkpoint at step {start}")
                    writer.truncate(keep)
            if start == 0:
                record(0, spins, E)
                if out is not None:
                    save_checkpoint(0, spins)  # resumable from the first frame on
            with progress_bar(steps, start, self.dt, enabled=progress) as update:
                for k in range(start + 1, steps + 1):
                    spins = self.step(spins, h)  # advances self._step_index to k
                    E, h = self.energy_and_fields(spins)
                    if k % save_every == 0:
                        record(k, spins, E)
                    if out is not None and checkpoint_every and k % checkpoint_every == 0:
                        save_checkpoint(k, spins)
                    update(k)
            if out is not None and not (checkpoint_every and steps % checkpoint_every == 0 and steps > start):
                save_checkpoint(steps, spins)
        except NonFiniteError as exc:
            if writer is None:
                exc.trajectory = self._in_memory(frames, observables)
            else:
                h5.close()
                h5 = None
                exc.trajectory = Trajectory.load(out)
            raise
        finally:
            if h5 is not None:
                h5.close()
        if out is not None:
            return Trajectory.load(out)
        return self._in_memory(frames, observables)

    def _n_sites(self, spins) -> int:
        ff = self.force_field
        for n in (getattr(getattr(ff, "lattice", None), "N", None), getattr(ff, "n_sites", None)):
            if n is not None:
                return int(n)
        return len(spins)

    def _in_memory(self, frames: dict, observables: dict) -> Trajectory:
        arr = {k: np.asarray(v, dtype=float) for k, v in frames.items()}
        return Trajectory(arr["time"], arr["spins"], arr["energy"],
                          observables={k: arr[k] for k in observables},
                          attrs=self.file_attrs())


__all__ = ["LLG", "Trajectory", "NonFiniteError", "DEFAULT_INTEGRATOR", "resolve_integrator"]
