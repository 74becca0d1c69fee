"""Observables of spin configurations, recorded per frame along trajectories.

Each observable is a function ``f(spins, lattice) -> ndarray`` of fixed shape for a given lattice,
for spins ``(N, 3)``.  :data:`OBSERVABLES` names them for run files; :func:`recorders` binds a list
of names to a lattice, giving the ``{name: f(spins)}`` mapping that :meth:`itinerant.LLG.run` records.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .lattice import Lattice


def magnetization(spins, lattice: Lattice | None = None) -> np.ndarray:
    """Mean spin ``m = (1/N) sum_i S_i``, shape (3,)."""
    return np.asarray(spins).mean(axis=0)


def staggered_magnetization(spins, lattice: Lattice) -> np.ndarray:
    """Neel order parameter ``(1/N) sum_i (-1)^(x_i + y_i) S_i``, shape (3,) (even L)."""
    if lattice.L % 2:
        raise ValueError(f"the staggered magnetization needs an even L, got L = {lattice.L}")
    sign = 1.0 - 2.0 * (lattice.coords.sum(axis=1) % 2)
    return (sign[:, None] * np.asarray(spins)).mean(axis=0)


def triangles(lattice: Lattice) -> np.ndarray:
    """The elementary triangles of a triangular lattice, counter-clockwise, shape (2N, 3).

    Up triangles ``(r, r + a1, r + a2)`` and down triangles ``(r + a1, r + a1 + a2, r + a2)``.
    """
    if lattice.name != "triangular":
        raise ValueError(f"elementary triangles are defined on the triangular lattice, not {lattice.name}")
    x, y = lattice.coords.T
    s = lattice.site
    up = np.stack([s(x, y), s(x + 1, y), s(x, y + 1)], axis=1)
    down = np.stack([s(x + 1, y), s(x + 1, y + 1), s(x, y + 1)], axis=1)
    return np.concatenate([up, down])


def scalar_chirality(spins, lattice: Lattice) -> np.ndarray:
    """Mean scalar chirality ``S_i . (S_j x S_k)`` over the elementary triangles, shape ().

    The tetrahedral state has ``+-4 / (3 sqrt 3)`` on every triangle.
    """
    s = np.asarray(spins)
    t = triangles(lattice)
    return np.asarray(np.einsum("ta,ta->t", s[t[:, 0]], np.cross(s[t[:, 1]], s[t[:, 2]])).mean())


OBSERVABLES = {
    "magnetization": magnetization,
    "staggered_magnetization": staggered_magnetization,
    "scalar_chirality": scalar_chirality,
}
"""Observables by name, as run files give them."""


def recorders(names, lattice: Lattice) -> dict:
    """``{name: f(spins)}`` for the named observables on ``lattice``; checks they apply to it."""
    out = {}
    for name in names:
        if name not in OBSERVABLES:
            raise ValueError(f"unknown observable {name!r}; known: {sorted(OBSERVABLES)}")
        f = partial(OBSERVABLES[name], lattice=lattice)
        f(np.tile([0.0, 0.0, 1.0], (lattice.N, 1)))  # raises here if it does not apply to the lattice
        out[name] = f
    return out


def _analysis_observable(module: str, name: str):
    """An observable implemented in ``itinerant.analysis.<module>`` (imported on first use, which
    keeps this module free of an import cycle with the analysis package)."""
    def observable(spins, lattice: Lattice) -> np.ndarray:
        from importlib import import_module

        return getattr(import_module(f"itinerant.analysis.{module}"), name)(spins, lattice)

    observable.__name__ = name
    observable.__doc__ = f"See :func:`itinerant.analysis.{module}.{name}`."
    return observable


OBSERVABLES.update({
    "chirality_abs": _analysis_observable("triangular", "chirality_abs"),          # shape ()
    "tetrahedral_order": _analysis_observable("triangular", "tetrahedral_order"),  # (3, 3)
})
