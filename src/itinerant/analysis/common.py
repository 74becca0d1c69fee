"""Pieces every lattice's analysis shares: checked spins, the lattice of a trajectory file, the
frames a map shows, and the CSV / JSON forms of run averages."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np

from ..lattice import Lattice


def lattice_spins(spins, lattice: Lattice, kind: str, what: str = "this analysis") -> np.ndarray:
    """``spins`` as float64 of shape (..., N, 3) for a ``kind`` ("square" | "triangular") lattice;
    ``what`` names the analysis in the error for another lattice or shape."""
    if not isinstance(lattice, Lattice) or lattice.name != kind:
        raise ValueError(f"{what} needs a {kind} Lattice, got {lattice!r}")
    s = np.asarray(spins, dtype=np.float64)
    if s.ndim < 2 or s.shape[-2:] != (lattice.N, 3):
        raise ValueError(f"spins must have shape (..., {lattice.N}, 3) for {lattice}, got {s.shape}")
    return s


def read_lattice(path) -> Lattice:
    """The lattice a trajectory file's ``lattice`` and ``L`` attributes describe."""
    with h5py.File(path, "r") as h5:
        attrs = dict(h5.attrs)
    missing = [k for k in ("lattice", "L") if k not in attrs]
    if missing:
        raise ValueError(f"{path}: the file lacks the root attribute(s) {missing} naming its lattice")
    name = attrs["lattice"]
    return Lattice.from_name(name.decode() if isinstance(name, bytes) else str(name), int(attrs["L"]))


def map_frames(n_frames: int, count: int = 4) -> list[int]:
    """About ``count`` frame indices spread evenly in log(frame), the first and last included."""
    if n_frames <= count:
        return list(range(n_frames))
    idx = np.unique(np.rint(np.geomspace(1, n_frames, count)).astype(int) - 1)
    return sorted(set(idx.tolist()) | {n_frames - 1})


def write_csv(agg: dict, path: Path) -> Path:
    """Run averages ``agg`` (``time``, ``mean``, ``err``) as CSV: time, then each quantity and its
    error."""
    keys = list(agg["mean"])
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time"] + [f"{k}{s}" for k in keys for s in ("", "_err")])
        for i, t in enumerate(agg["time"]):
            w.writerow([f"{t:.10g}"] + [f"{agg[s][k][i]:.10g}" for k in keys for s in ("mean", "err")])
    return path


def json_list(values) -> list:
    """Floats for JSON, undefined values (NaN: not defined yet, one run's error) as null."""
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, float)]


def fits_json(fits: dict) -> dict:
    """``{key: PowerLawFit | None}`` for JSON (:meth:`~itinerant.coarsening.PowerLawFit.as_dict`)."""
    return {k: (v.as_dict() if v is not None else None) for k, v in fits.items()}
