"""Observables of spin configurations, recorded per frame along trajectories.

Each observable is a function ``f(spins, lattice) -> ndarray`` of fixed shape for a given lattice,
for spins ``(N, 3)``.  :data:`OBSERVABLES` names them for run files; :func:`recorders` binds a list
of names to a lattice, giving the ``{name: f(spins)}`` mapping that :meth:`itinerant.LLG.run` records.

:data:`ELECTRON_OBSERVABLES` are properties of the electrons, evaluated by the force field itself
(``f(spins, force_field)``): the local density ``density`` (N,) and the ``chemical_potential`` ()
-- of an electron solver, or of a mu-conditioned machine-learning force field (mu* at fixed
filling, docs/canonical.md).  Each costs one more evaluation per recorded frame.
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


def local_density(spins, force_field) -> np.ndarray:
    """The force field's local electron density n_i, shape (N,)."""
    return np.asarray(force_field.density(spins), dtype=float)


def chemical_potential(spins, force_field) -> np.ndarray:
    """The force field's chemical potential (solved at fixed filling), shape ()."""
    return np.asarray(force_field.chemical_potential(spins), dtype=float)


ELECTRON_OBSERVABLES = {"density": local_density, "chemical_potential": chemical_potential}
"""Observables computed by the force field (``f(spins, force_field)``), by name."""


def recorders(names, lattice: Lattice, force_field=None) -> dict:
    """``{name: f(spins)}`` for the named observables on ``lattice``; checks they apply to it.

    :data:`ELECTRON_OBSERVABLES` need the ``force_field`` (an electron solver or a mu-conditioned
    learned model).
    """
    out = {}
    for name in names:
        if name in ELECTRON_OBSERVABLES:
            if not callable(getattr(force_field, "density", None)) or (
                    getattr(force_field, "mu_conditioned", True) is False):
                what = getattr(force_field, "name", type(force_field).__name__)
                raise ValueError(f"the observable {name!r} needs a force field with electrons (an "
                                 f"electron solver or a mu-conditioned ml model), not {what!r}")
            f = partial(ELECTRON_OBSERVABLES[name], force_field=force_field)
            out[name] = f
            continue
        if name not in OBSERVABLES:
            raise ValueError(f"unknown observable {name!r}; known: "
                             f"{sorted(OBSERVABLES) + sorted(ELECTRON_OBSERVABLES)}")
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
