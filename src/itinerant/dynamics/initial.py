"""Initial spin configurations for dynamics and data generation.

    initial_state("random", lattice, rng)
    initial_state("neel", lattice)                                  # any name in spins.STATES
    initial_state({"state": "tetrahedral", "chirality": -1, "noise": 0.1}, lattice, rng)
    initial_state({"file": "run.h5", "frame": -1}, lattice)          # .npy or HDF5 'spins'
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..lattice import Lattice
from ..spins import STATES, check_spins, random_spins

STATE_NAMES = ("random", *STATES)
"""What ``state`` may be: uniformly random spins or one of the ordered states of :data:`spins.STATES`."""

_STATE_OPTIONS = {"ferromagnet": ("direction",), "tetrahedral": ("chirality",)}
_KEYS = {"state", "file", "frame", "noise", "seed", "direction", "chirality"}


def initial_state(spec, lattice: Lattice, rng=None) -> np.ndarray:
    """Build an initial configuration ``(N, 3)`` of unit vectors.

    Parameters
    ----------
    spec:
        A state name (``"random"`` or a key of :data:`itinerant.spins.STATES`), a path to a spin
        file (``.npy`` or HDF5 with dataset ``spins``), or a dict (a run file's ``[initial]`` table)
        with ``state`` or ``file`` and optionally ``frame`` (which snapshot of a stacked file,
        default the last), ``noise`` (standard deviation of a Gaussian added to every component
        before renormalising, for perturbed ordered states), ``seed`` (used when ``rng`` is
        ``None``), ``direction`` (ferromagnet) and ``chirality`` (tetrahedral).
    lattice:
        The lattice the spins live on.
    rng:
        ``numpy.random.Generator`` or seed for ``random`` and ``noise``.
    """
    if isinstance(spec, (str, Path)):
        spec = {"state": str(spec)} if str(spec) in STATE_NAMES else {"file": spec}
    if not isinstance(spec, dict):
        raise ValueError(f"initial state must be a name, a file or a table, got {spec!r}")
    unknown = set(spec) - _KEYS
    if unknown:
        raise ValueError(f"unknown initial-state option(s) {sorted(unknown)}; known: {sorted(_KEYS)}")
    state, file = spec.get("state"), spec.get("file")
    if (state is None) == (file is None):
        raise ValueError("give an initial 'state' or a spin 'file' (exactly one, not both)")
    if rng is None:
        rng = spec.get("seed")
    rng = np.random.default_rng(rng)

    if file is not None:
        s = _read_frame(Path(file), spec.get("frame", -1), lattice.N)
    elif state == "random":
        s = random_spins(lattice.N, rng)
    elif state in STATES:
        options = {k: spec[k] for k in _STATE_OPTIONS.get(state, ()) if spec.get(k) is not None}
        s = STATES[state](lattice, **options)
    else:
        raise ValueError(f"unknown initial state {state!r}; known: {list(STATE_NAMES)}")
    for k in ("direction", "chirality"):
        if spec.get(k) is not None and k not in _STATE_OPTIONS.get(state, ()):
            raise ValueError(f"option {k!r} does not apply to the initial state {state or 'from a file'}")

    noise = spec.get("noise") or 0.0
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if noise > 0:
        s = s + noise * rng.standard_normal(s.shape)
        s = s / np.linalg.norm(s, axis=1, keepdims=True)
    return np.ascontiguousarray(s, dtype=np.float64)


def _read_frame(path: Path, frame: int, n_sites: int) -> np.ndarray:
    from ..io import read_spins

    try:
        s = np.asarray(read_spins(path), dtype=np.float64)
    except OSError as exc:  # missing or unreadable file
        raise ValueError(str(exc) if isinstance(exc, FileNotFoundError) else f"{path}: {exc}") from None
    if s.ndim == 3:
        if not -len(s) <= frame < len(s):
            raise ValueError(f"{path} holds {len(s)} snapshots; frame {frame} does not exist")
        s = s[frame]
    try:
        return check_spins(s, n_sites)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
