"""Periodic two-dimensional Bravais lattices.

Conventions (``DESIGN.md`` §2): an ``L x L`` torus with primitive vectors ``a1``, ``a2``; the site at
integer coordinates ``(x, y)`` has index ``i = x + L*y`` and position ``x*a1 + y*a2``.  Neighbour
*offsets* are integer pairs ``(dx, dy)`` in lattice coordinates; shells group offsets by distance.

Symmetry operations act on configurations by moving sites: an operation is a site permutation ``p``
that carries site ``i`` to site ``p[i]``.  A scalar field ``f`` (or a spin field in a spin-orbit-free
model, whose spins do not turn with the lattice) is carried to ``f_new[p] = f`` (see
:meth:`Lattice.transform`).  Everything lattice-specific lives here, so a new lattice is a new
constructor, not a change in the solvers.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from .symmetry import C4v, C6v, PointGroup

_DIST_TOL = 1e-8


class Lattice:
    """Periodic ``L x L`` Bravais lattice.

    Parameters
    ----------
    name:
        Lattice name stored in data and model files (``"square"`` or ``"triangular"``).
    L:
        Linear size; the lattice has ``N = L*L`` sites.
    a1, a2:
        Primitive vectors (Cartesian, lattice constant 1).
    point_group:
        The site point group, as Cartesian 2x2 matrices; each element must map the Bravais lattice
        onto itself.
    """

    def __init__(self, name: str, L: int, a1, a2, point_group: PointGroup) -> None:
        if not isinstance(L, (int, np.integer)) or isinstance(L, bool):
            raise TypeError(f"L must be an integer, got {L!r}")
        if L < 2:
            raise ValueError(f"L must be at least 2, got {L}")
        self.name = name
        self.L = int(L)
        self.N = self.L * self.L
        self.a1 = np.asarray(a1, dtype=float)
        self.a2 = np.asarray(a2, dtype=float)
        self.basis = np.column_stack([self.a1, self.a2])  # columns a1, a2
        self.point_group = point_group
        # Point-group elements in lattice coordinates: integer matrices A^-1 R A.
        inv = np.linalg.inv(self.basis)
        lat = np.einsum("ab,gbc,cd->gad", inv, point_group.elements, self.basis)
        self.point_group_int = np.rint(lat).astype(np.int64)
        if not np.allclose(lat, self.point_group_int, atol=1e-9):
            raise ValueError(f"point group {point_group.name} does not preserve the {name} lattice")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def square(cls, L: int) -> "Lattice":
        """Square lattice, a1 = (1, 0), a2 = (0, 1), point group C4v."""
        return cls("square", L, (1.0, 0.0), (0.0, 1.0), C4v())

    @classmethod
    def triangular(cls, L: int) -> "Lattice":
        """Triangular lattice, a1 = (1, 0), a2 = (1/2, sqrt(3)/2), point group C6v."""
        return cls("triangular", L, (1.0, 0.0), (0.5, np.sqrt(3) / 2), C6v())

    @classmethod
    def from_name(cls, name: str, L: int) -> "Lattice":
        """Build a lattice from its stored name (``"square"`` or ``"triangular"``)."""
        builders = {"square": cls.square, "triangular": cls.triangular}
        if name not in builders:
            raise ValueError(f"unknown lattice {name!r}; known: {sorted(builders)}")
        return builders[name](L)

    def __repr__(self) -> str:
        return f"Lattice.{self.name}({self.L})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Lattice) and (self.name, self.L) == (other.name, other.L)

    def __hash__(self) -> int:
        return hash((self.name, self.L))

    # ------------------------------------------------------------------ sites
    @cached_property
    def coords(self) -> np.ndarray:
        """Integer coordinates ``(x, y)`` of every site, shape (N, 2), row ``i = x + L*y``."""
        i = np.arange(self.N)
        return np.stack([i % self.L, i // self.L], axis=1)

    @cached_property
    def positions(self) -> np.ndarray:
        """Cartesian positions ``x*a1 + y*a2``, shape (N, 2)."""
        return self.coords @ self.basis.T

    def site(self, x, y) -> np.ndarray:
        """Index of the site at integer coordinates ``(x, y)``, wrapped periodically."""
        return np.mod(x, self.L) + self.L * np.mod(y, self.L)

    def cartesian(self, offsets) -> np.ndarray:
        """Cartesian vectors of integer offsets, shape (..., 2)."""
        return np.asarray(offsets) @ self.basis.T

    # ------------------------------------------------------------------ neighbour shells
    def offsets_within(self, radius: float) -> np.ndarray:
        """All offsets with ``|r| <= radius``, the origin first, ordered by distance then angle.

        Shape (K, 2), integer lattice coordinates.  This ordering is independent of ``L``.
        """
        n = int(np.ceil(2 * radius)) + 2
        g = np.arange(-n, n + 1)
        cand = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
        vec = self.cartesian(cand)
        dist = np.linalg.norm(vec, axis=1)
        keep = dist <= radius + _DIST_TOL
        cand, vec, dist = cand[keep], vec[keep], dist[keep]
        angle = np.mod(np.arctan2(vec[:, 1], vec[:, 0]), 2 * np.pi)
        order = np.lexsort((np.round(angle, 9), np.round(dist, 9)))
        return cand[order]

    def shell_distances(self, n_shells: int) -> np.ndarray:
        """Distances of the first ``n_shells`` neighbour shells (shell 1 = nearest neighbours)."""
        radius = 1.0
        while True:
            d = np.linalg.norm(self.cartesian(self.offsets_within(radius)), axis=1)
            uniq = np.unique(np.round(d, 9))[1:]
            if len(uniq) >= n_shells:
                return uniq[:n_shells]
            radius *= 1.5

    def shell_offsets(self, shell: int) -> np.ndarray:
        """Offsets of neighbour shell ``shell`` (1-based), ordered by angle; shape (z, 2)."""
        if shell < 1:
            raise ValueError(f"shell must be >= 1, got {shell}")
        r = self.shell_distances(shell)[-1]
        off = self.offsets_within(r)
        d = np.linalg.norm(self.cartesian(off), axis=1)
        return off[np.abs(d - r) < 1e-6]

    def check_offsets_fit(self, offsets, what: str = "the requested neighbourhood") -> None:
        """Raise ``ValueError`` if distinct ``offsets`` alias to the same site on this torus.

        ``offsets`` should include the origin when the centre site is part of the neighbourhood.
        """
        off = np.asarray(offsets)
        sites = self.site(off[:, 0], off[:, 1])
        if len(np.unique(sites)) < len(sites):
            reach = int(np.abs(off).max())
            raise ValueError(
                f"L = {self.L} is too small for {what} on the {self.name} lattice: offsets reaching "
                f"{reach} lattice spacings wrap onto each other; use L >= {2 * reach + 1}"
            )

    def neighbors(self, shell: int = 1) -> np.ndarray:
        """Site indices of the ``shell``-th neighbours of every site, shape (N, z)."""
        off = self.shell_offsets(shell)
        self.check_offsets_fit(np.vstack([[0, 0], off]), f"neighbour shell {shell}")
        return self.gather_indices(off)

    def gather_indices(self, offsets) -> np.ndarray:
        """``idx[i, k]`` = site at ``coords[i] + offsets[k]``, shape (N, K).  No aliasing check."""
        off = np.asarray(offsets)
        c = self.coords
        return self.site(c[:, None, 0] + off[None, :, 0], c[:, None, 1] + off[None, :, 1])

    def bonds(self, shell: int = 1) -> np.ndarray:
        """Every bond of shell ``shell`` once, as pairs ``(i, j)``, shape (N*z/2, 2)."""
        off = self.shell_offsets(shell)
        # Keep one offset of each +-d pair: the lexicographically positive one.
        half = off[(off[:, 1] > 0) | ((off[:, 1] == 0) & (off[:, 0] > 0))]
        self.check_offsets_fit(np.vstack([[0, 0], off]), f"neighbour shell {shell}")
        j = self.gather_indices(half)
        i = np.broadcast_to(np.arange(self.N)[:, None], j.shape)
        return np.stack([i.ravel(), j.ravel()], axis=1)

    # ------------------------------------------------------------------ symmetry
    def point_group_permutation(self, offsets) -> np.ndarray:
        """How each point-group element permutes a set of offsets (a neighbourhood).

        Returns ``perm`` of shape (|G|, K) with ``g . offsets[k] == offsets[perm[g, k]]``.
        Raises ``ValueError`` if the set is not closed under the group.
        """
        off = np.asarray(offsets, dtype=np.int64)
        lookup = {tuple(o): k for k, o in enumerate(off)}
        perm = np.empty((len(self.point_group_int), len(off)), dtype=np.int64)
        for g, R in enumerate(self.point_group_int):
            for k, o in enumerate(off @ R.T):
                if tuple(o) not in lookup:
                    raise ValueError("offset set is not closed under the point group")
                perm[g, k] = lookup[tuple(o)]
        return perm

    def translation(self, dx: int, dy: int) -> np.ndarray:
        """Site permutation of the translation by ``dx*a1 + dy*a2``: ``i -> p[i]``."""
        c = self.coords
        return self.site(c[:, 0] + dx, c[:, 1] + dy)

    def point_operation(self, g: int) -> np.ndarray:
        """Site permutation of point-group element ``g`` about site 0: ``i -> p[i]``."""
        R = self.point_group_int[g]
        c = self.coords @ R.T
        return self.site(c[:, 0], c[:, 1])

    def space_group_permutations(self):
        """Iterate over ``(g, dx, dy, perm)`` for every element of the lattice's space group."""
        for g in range(len(self.point_group_int)):
            pg = self.point_operation(g)
            for dy in range(self.L):
                for dx in range(self.L):
                    yield g, dx, dy, self.translation(dx, dy)[pg]

    @staticmethod
    def transform(field, perm) -> np.ndarray:
        """Carry a per-site field (N, ...) along a site permutation: ``out[perm[i]] = field[i]``."""
        field = np.asarray(field)
        out = np.empty_like(field)
        out[perm] = field
        return out
