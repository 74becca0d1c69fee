"""Training data: HDF5 data sets read with :func:`itinerant.io.load_data`, checked, split, grouped.

Several files may be combined when they hold the same model (lattice kind, t, J, filling | mu, kT);
lattice sizes may differ.  Snapshots of one size are stacked into one group, since a batch is
evaluated with one descriptor.  The train / validation / test split is by snapshot, drawn with a
seeded generator, so it is the same on every run and in every process.

Data labelled at several chemical potentials (a per-row ``mu`` dataset, docs/generate.md) train a
mu-conditioned model: every file must then have ``mu``, their models may differ in filling | mu
(the rows' ``mu`` define the labels), and the split is by *configuration*: all rows of one spin
configuration (its labels at every mu) fall into the same set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import load_data
from ..models.files import model_parameters, parameter_differences, sha256_file


@dataclass
class Group:
    """All snapshots of one lattice size: arrays (M, N, 3), (M, N, 3), (M,), numpy float64;
    ``mu`` (M,) for data labelled at several chemical potentials and ``density`` (M, N) where
    every file has finite densities (else ``None``)."""

    L: int
    spins: np.ndarray
    fields: np.ndarray
    energy: np.ndarray
    mu: np.ndarray | None = None
    density: np.ndarray | None = None
    split: np.ndarray = field(default=None)  # per snapshot: 0 train, 1 validation, 2 test

    def indices(self, part: int) -> np.ndarray:
        return np.flatnonzero(self.split == part)


TRAIN, VALIDATION, TEST = 0, 1, 2
PARTS = {"train": TRAIN, "validation": VALIDATION, "test": TEST}


@dataclass
class TrainingData:
    """Snapshots grouped by lattice size, the common model and the files' provenance."""

    groups: dict[int, Group]
    model: object  # SDModel of the first file
    provenance: list[dict]

    def count(self, part: int) -> int:
        return sum(len(g.indices(part)) for g in self.groups.values())

    @property
    def has_mu(self) -> bool:
        """True for data labelled at several chemical potentials (per-row ``mu``)."""
        return next(iter(self.groups.values())).mu is not None

    @property
    def has_density(self) -> bool:
        return all(g.density is not None for g in self.groups.values())

    def mu_range(self, part: int = TRAIN) -> tuple[float, float]:
        """Smallest and largest ``mu`` of a split part (data with ``mu``)."""
        mu = np.concatenate([g.mu[g.indices(part)] for g in self.groups.values()])
        return float(mu.min()), float(mu.max())


def load_training_data(paths, validation: float, test: float, seed: int) -> TrainingData:
    """Read, check and split the data files (see the module docstring).

    Raises ``ValueError`` naming the file for a missing file, a file without the datasets
    ``spins``, ``fields``, ``energy``, inconsistent shapes, non-finite values, or a model that
    differs from the first file's.
    """
    if not paths:
        raise ValueError("no training data files given")
    by_size: dict[int, list] = {}
    provenance, first = [], None
    for p in map(Path, paths):
        if not p.is_file():
            raise FileNotFoundError(f"training data file {p} does not exist")
        d = load_data(p, optional=("mu", "density"))
        model = d["model"]
        if first is None:
            first = (p, model, "mu" in d)
        else:
            if ("mu" in d) != first[2]:
                with_mu, without = (p, first[0]) if "mu" in d else (first[0], p)
                raise ValueError(f"{with_mu} is labelled at several chemical potentials (dataset "
                                 f"'mu') and {without} is not; a training run uses one kind")
            diffs = parameter_differences(first[1], model, ensemble=not first[2])
            if diffs:
                raise ValueError(f"{p} holds data for another model than {first[0]}: "
                                 + "; ".join(diffs) + " (all data files must share the model)")
        N, M = model.lattice.N, len(d["energy"])
        for k, shape in (("spins", (M, N, 3)), ("fields", (M, N, 3)), ("energy", (M,))):
            if d[k].shape != shape:
                raise ValueError(f"{p}: dataset {k!r} has shape {d[k].shape}, expected {shape} "
                                 f"for {M} snapshots on {model.lattice}")
            if not np.isfinite(d[k]).all():
                raise ValueError(f"{p}: dataset {k!r} contains NaN or inf")
        if "mu" in d:
            if d["mu"].shape != (M,) or not np.isfinite(d["mu"]).all():
                raise ValueError(f"{p}: dataset 'mu' must hold {M} finite values, got shape "
                                 f"{d['mu'].shape}")
        if "density" in d and (d["density"].shape != (M, N) or not np.isfinite(d["density"]).all()):
            del d["density"]  # no usable densities (e.g. a solver without them)
        if M == 0:
            raise ValueError(f"{p} holds no snapshots")
        by_size.setdefault(model.lattice.L, []).append(d)
        provenance.append({"file": str(p), "sha256": sha256_file(p), "snapshots": M,
                           "L": model.lattice.L, "solver": str(d["attrs"].get("solver", "")),
                           "version": str(d["attrs"].get("version", ""))})
    def stacked(ds, key):
        if not all(key in d for d in ds):
            return None
        return np.concatenate([d[key] for d in ds]).astype(np.float64)

    groups = {L: Group(L, *(stacked(ds, k) for k in ("spins", "fields", "energy", "mu", "density")))
              for L, ds in sorted(by_size.items())}
    _split(groups, validation, test, seed)
    data = TrainingData(groups, first[1], provenance)
    if data.count(TRAIN) == 0 or data.count(VALIDATION) == 0:
        raise ValueError(f"{sum(len(g.energy) for g in groups.values())} snapshots are too few for "
                         f"the split (validation {validation}, test {test}): the training or "
                         f"validation set is empty")
    return data


def _split(groups: dict[int, Group], validation: float, test: float, seed: int) -> None:
    """Assign every snapshot to train / validation / test (fractions of the total, at least one
    snapshot in a set whose fraction is > 0).  With per-row ``mu`` the unit is a configuration:
    the rows of identical spins share their set."""
    sizes = [len(g.energy) for g in groups.values()]
    if next(iter(groups.values())).mu is None:
        unit = np.arange(sum(sizes))
    else:
        parts, offset = [], 0
        for g in groups.values():
            c = _configurations(g.spins)
            parts.append(c + offset)
            offset += int(c.max()) + 1
        unit = np.concatenate(parts)
    total = int(unit.max()) + 1
    order = np.random.default_rng(seed).permutation(total)
    n_test = max(1, round(test * total)) if test > 0 else 0
    n_val = max(1, round(validation * total)) if validation > 0 else 0
    labels = np.full(total, TRAIN)
    labels[order[:n_test]] = TEST
    labels[order[n_test:n_test + n_val]] = VALIDATION
    labels = labels[unit]
    start = 0
    for g, m in zip(groups.values(), sizes):
        g.split = labels[start:start + m]
        start += m


def _configurations(spins: np.ndarray) -> np.ndarray:
    """Index of each row's spin configuration (rows with identical spins share it), (M,)."""
    keys = {}
    return np.array([keys.setdefault(s.tobytes(), len(keys)) for s in spins], dtype=np.int64)


def parameters_of(data: TrainingData) -> dict:
    """The model parameters (no size) the data stand for."""
    return model_parameters(data.model)
