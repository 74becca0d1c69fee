"""HDF5 files: training data and trajectories (DESIGN.md §4).

A data file holds ``spins`` (M, N, 3), ``fields`` (M, N, 3), ``energy`` (M,) (data labelled at
several chemical potentials also ``mu`` (M,), the energy then being the grand potential at that
mu; docs/generate.md) and root attributes that rebuild the model (``lattice``, ``L``, ``t``,
``J``, ``filling`` | ``mu``, ``kT``), the solver settings and the package version.  Trajectories
hold ``spins`` (frames, N, 3), ``time``, ``energy`` and the integrator settings.  Rows are appended and flushed as they are produced, so a killed run
keeps everything written before the kill.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from ._version import __version__
from .model import SDModel


def write_attrs(h5: h5py.File, attrs: dict) -> None:
    """Store attributes; ``None`` values are skipped, dicts are stored as JSON text."""
    for k, v in attrs.items():
        if v is None:
            continue
        if isinstance(v, dict):
            v = json.dumps(v)
        elif isinstance(v, (list, tuple)):
            v = np.asarray(v, dtype=float)
        h5.attrs[k] = v


def model_attrs(model: SDModel, **extra) -> dict:
    """Root attributes of a file produced with ``model``: model, package version and ``extra``."""
    return {**model.attrs(), "version": __version__, **extra}


def read_model(path_or_file) -> SDModel:
    """Rebuild the :class:`SDModel` recorded in a data or trajectory file's attributes."""
    if isinstance(path_or_file, (str, Path)):
        with h5py.File(path_or_file, "r") as h5:
            return SDModel.from_attrs(dict(h5.attrs))
    return SDModel.from_attrs(dict(path_or_file.attrs))


class RowWriter:
    """Append rows to resizable HDF5 datasets and flush after every append.

    Parameters
    ----------
    h5:
        An open, writable ``h5py.File`` (or group).
    shapes:
        ``{name: per-row shape}``, e.g. ``{"spins": (N, 3), "energy": ()}``; existing datasets are
        reused (appending continues after their current length).
    dtype:
        Storage dtype (float64 by default).
    """

    def __init__(self, h5, shapes: dict, dtype=np.float64, chunk_rows: int = 1) -> None:
        self.h5 = h5
        self.names = list(shapes)
        for name, shape in shapes.items():
            if name not in h5:
                h5.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                                  chunks=(chunk_rows, *shape) if shape else (max(chunk_rows, 256),))
            elif h5[name].shape[1:] != tuple(shape):
                raise ValueError(f"dataset {name!r} has rows of shape {h5[name].shape[1:]}, "
                                 f"expected {tuple(shape)}")

    def __len__(self) -> int:
        return min(self.h5[n].shape[0] for n in self.names)

    def truncate(self, rows: int) -> None:
        """Cut every dataset to ``rows`` rows (drop a partly written tail)."""
        for n in self.names:
            self.h5[n].resize(rows, axis=0)

    def append(self, **rows) -> None:
        """Append one row per dataset (all datasets at once), then flush to disk."""
        if set(rows) != set(self.names):
            raise ValueError(f"append needs exactly {self.names}, got {sorted(rows)}")
        n = len(self)
        self.truncate(n)
        for name, value in rows.items():
            ds = self.h5[name]
            ds.resize(n + 1, axis=0)
            ds[n] = value
        self.h5.flush()


def load_data(path, keys=("spins", "fields", "energy"), optional=()) -> dict:
    """Read a data file into memory: arrays for ``keys`` plus ``attrs`` and the rebuilt ``model``;
    the datasets ``optional`` (e.g. ``mu``, ``density``) too where the file has them."""
    with h5py.File(path, "r") as h5:
        missing = [k for k in keys if k not in h5]
        if missing:
            raise ValueError(f"{path}: not an itinerant data file (missing datasets {missing})")
        out = {k: h5[k][...] for k in keys}
        out.update({k: h5[k][...] for k in optional if k in h5 and k not in out})
        out["attrs"] = dict(h5.attrs)
    out["model"] = SDModel.from_attrs(out["attrs"])
    return out


def read_spins(path, dataset: str = "spins") -> np.ndarray:
    """Spins from a ``.npy`` file or an HDF5 file's dataset ``dataset``: (N, 3) or (M, N, 3)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"spin file {path} does not exist")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    with h5py.File(path, "r") as h5:
        if dataset not in h5:
            raise ValueError(f"{path} has no dataset {dataset!r} (it has {sorted(h5)})")
        return h5[dataset][...]
