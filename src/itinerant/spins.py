"""Spin configurations: validation and standard states.

Spins are arrays of shape (N, 3) (or a stack (M, N, 3)) of unit vectors, float64, site order of
:class:`itinerant.Lattice`.
"""

from __future__ import annotations

import numpy as np

from .lattice import Lattice

UNIT_TOL = 1e-6


def check_spins(spins, n_sites: int, normalize: bool = False, batched: bool = False) -> np.ndarray:
    """Validate a spin configuration and return it as float64.

    Raises ``ValueError`` for a wrong shape, non-finite entries, or spins that are not unit vectors
    (naming the first offending site) unless ``normalize=True``, which rescales them.
    ``batched=True`` also accepts a stack (M, N, 3).
    """
    s = np.asarray(spins, dtype=np.float64)
    ok_shapes = [(n_sites, 3)] + ([("M", n_sites, 3)] if batched else [])
    if not (s.shape == (n_sites, 3) or (batched and s.ndim == 3 and s.shape[1:] == (n_sites, 3))):
        want = " or ".join(str(x).replace("'", "") for x in ok_shapes)
        raise ValueError(f"spins must have shape {want}, got {s.shape}")
    bad = ~np.isfinite(s).all(axis=-1)
    if bad.any():
        where = np.argwhere(bad)[0]
        raise ValueError(f"spins contain NaN or inf at {_site_name(where)}")
    norm = np.linalg.norm(s, axis=-1)
    if normalize:
        if (norm == 0).any():
            raise ValueError(f"cannot normalize a zero spin at {_site_name(np.argwhere(norm == 0)[0])}")
        return s / norm[..., None]
    off = np.abs(norm - 1.0) > UNIT_TOL
    if off.any():
        where = np.argwhere(off)[0]
        raise ValueError(f"spins must be unit vectors: |S| = {norm[tuple(where)]:.8g} at "
                         f"{_site_name(where)} (pass normalize=True to rescale)")
    return s


def _site_name(where) -> str:
    return f"site {where[-1]}" if len(where) == 1 else f"snapshot {where[0]}, site {where[-1]}"


def random_spins(n_sites: int, rng=None) -> np.ndarray:
    """Spins drawn uniformly from the unit sphere, shape (n_sites, 3)."""
    rng = np.random.default_rng(rng)
    v = rng.normal(size=(n_sites, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def random_rotation(rng=None, proper: bool = False) -> np.ndarray:
    """A Haar-random orthogonal 3x3 matrix (improper half of the time unless ``proper``)."""
    rng = np.random.default_rng(rng)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if proper and np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def ferromagnet(lattice: Lattice, direction=(0.0, 0.0, 1.0)) -> np.ndarray:
    d = np.asarray(direction, float)
    return np.tile(d / np.linalg.norm(d), (lattice.N, 1))


def neel(lattice: Lattice) -> np.ndarray:
    """Checkerboard antiferromagnet along z (square lattice, even L)."""
    _require(lattice, "square", 2, "Neel")
    x, y = lattice.coords.T
    s = np.zeros((lattice.N, 3))
    s[:, 2] = (-1.0) ** (x + y)
    return s


def stripe(lattice: Lattice) -> np.ndarray:
    """Collinear stripe: ferromagnetic rows along a1, alternating along a2 (even L)."""
    _require(lattice, lattice.name, 2, "stripe")
    s = np.zeros((lattice.N, 3))
    s[:, 2] = (-1.0) ** lattice.coords[:, 1]
    return s


def spiral120(lattice: Lattice) -> np.ndarray:
    """The coplanar 120-degree three-sublattice state of the triangular lattice (L divisible by 3)."""
    _require(lattice, "triangular", 3, "120-degree")
    x, y = lattice.coords.T
    phi = 2 * np.pi / 3 * np.mod(x - y, 3)
    return np.stack([np.cos(phi), np.sin(phi), np.zeros_like(phi)], axis=1)


def tetrahedral(lattice: Lattice, chirality: int = +1) -> np.ndarray:
    """The four-sublattice tetrahedral (all-out) state of the triangular lattice (even L).

    The four sublattices (x mod 2, y mod 2) carry the four corners of a regular tetrahedron;
    ``chirality = -1`` gives the state of opposite scalar chirality (one spin component flipped).
    """
    _require(lattice, "triangular", 2, "tetrahedral")
    corners = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) / np.sqrt(3)
    if chirality not in (1, -1):
        raise ValueError("chirality must be +1 or -1")
    if chirality < 0:
        corners = corners * np.array([1, 1, -1])
    x, y = lattice.coords.T
    return corners[np.mod(x, 2) + 2 * np.mod(y, 2)].copy()


def _require(lattice: Lattice, name: str, period: int, state: str) -> None:
    if lattice.name != name:
        raise ValueError(f"the {state} state is defined on the {name} lattice, not {lattice.name}")
    if lattice.L % period:
        raise ValueError(f"the {state} state needs L divisible by {period}, got L = {lattice.L}")


STATES = {"ferromagnet": ferromagnet, "neel": neel, "stripe": stripe, "spiral120": spiral120,
          "tetrahedral": tetrahedral}
"""Named ordered states, each a function of the lattice."""
