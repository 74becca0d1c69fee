"""Force fields: anything with ``energy_and_fields(spins) -> (E, h)``, and a registry for run files.

A force field maps spins ``(N, 3)`` to the energy ``E`` (float, units of t1) and the fields
``h_i = -dE/dS_i`` (``(N, 3)`` ndarray).  The electron solvers and learned models are force fields;
this module adds simple analytic ones (used in tests and as cheap references) and
:func:`build_force_field`, which builds any of them from a run file's ``[force_field]`` table.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .lattice import Lattice
from .spins import check_spins


class Heisenberg:
    """Classical Heisenberg model with nearest and next-nearest neighbour exchange and a field.

        E = - J1 sum_<ij>_1 S_i.S_j - J2 sum_<ij>_2 S_i.S_j - field . sum_i S_i

    (each bond once; ``J > 0`` ferromagnetic), with fields
    ``h_i = J1 sum_{j in nn(i)} S_j + J2 sum_{j in nnn(i)} S_j + field``.
    """

    name = "heisenberg"

    def __init__(self, lattice: Lattice, J1: float = 1.0, J2: float = 0.0, field=(0.0, 0.0, 0.0)):
        if not isinstance(lattice, Lattice):
            raise TypeError(f"lattice must be an itinerant.Lattice, got {type(lattice).__name__}")
        self.lattice = lattice
        self.J1, self.J2 = float(J1), float(J2)
        self.field = _vector(field, "field")
        # Exchange matrix A_ij = J_n for an n-th neighbour pair (symmetric, sparse): h = A S + field.
        N = lattice.N
        A = sp.csr_matrix((N, N))
        for n, J in ((1, self.J1), (2, self.J2)):
            if J != 0.0:
                nbr = lattice.neighbors(n)
                rows = np.repeat(np.arange(N), nbr.shape[1])
                A = A + sp.csr_matrix((np.full(nbr.size, J), (rows, nbr.ravel())), shape=(N, N))
        self._exchange = A.tocsr()

    def settings(self) -> dict:
        return {"J1": self.J1, "J2": self.J2, "field": self.field.tolist()}

    def energy_and_fields(self, spins):
        s = check_spins(spins, self.lattice.N)
        exchange = self._exchange @ s
        # Every bond appears twice in sum_i S_i . exchange_i.
        energy = -0.5 * np.einsum("ia,ia->", s, exchange) - self.field @ s.sum(axis=0)
        return float(energy), exchange + self.field


class Zeeman:
    """Independent spins in a static field: ``E = - sum_i field_i . S_i``, ``h_i = field_i``.

    ``field`` is one vector (3,) for every site, or one per site (N, 3); ``n_sites`` (or
    ``lattice``) fixes N when a single vector is given.
    """

    name = "zeeman"

    def __init__(self, field, n_sites: int | None = None, lattice: Lattice | None = None):
        f = np.asarray(field, dtype=np.float64)
        if lattice is not None:
            n_sites = lattice.N
        self.lattice = lattice
        if f.shape == (3,):
            if n_sites is None:
                raise ValueError("Zeeman needs n_sites (or a lattice) when field is a single vector")
            f = np.tile(f, (int(n_sites), 1))
        elif f.ndim != 2 or f.shape[1] != 3 or (n_sites is not None and f.shape[0] != n_sites):
            raise ValueError(f"field must have shape (3,) or (N, 3), got {f.shape}")
        if not np.isfinite(f).all():
            raise ValueError("field must be finite")
        self.fields = f
        self.n_sites = len(f)

    def settings(self) -> dict:
        uniform = bool((self.fields == self.fields[0]).all())
        return {"field": (self.fields[0] if uniform else self.fields).tolist()}

    def energy_and_fields(self, spins):
        s = check_spins(spins, self.n_sites)
        return float(-np.einsum("ia,ia->", self.fields, s)), self.fields.copy()


def _vector(v, name: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.shape != (3,) or not np.isfinite(a).all():
        raise ValueError(f"{name} must be a finite 3-vector, got {v!r}")
    return a


# ---------------------------------------------------------------------- registry
FORCE_FIELDS = ("exact", "kpm", "ml", "heisenberg", "zeeman")
"""Force-field kinds a run file can name."""

NEEDS_MODEL = ("exact", "kpm")
"""Kinds that solve the electrons and therefore need an s-d model."""


def build_force_field(kind: str, model=None, lattice: Lattice | None = None, **settings):
    """Build a force field by kind.

    Parameters
    ----------
    kind:
        ``"exact"`` (:class:`~itinerant.ExactSolver`), ``"kpm"`` (``KPMSolver``), ``"ml"``
        (a learned model, ``MLForceField.load(path)``), ``"heisenberg"`` or ``"zeeman"``.
    model:
        The :class:`~itinerant.SDModel` (required for ``exact`` and ``kpm``).
    lattice:
        The lattice (the model's lattice by default); required for the analytic kinds.
    settings:
        Passed to the constructor: solver accuracy settings (``exact``: ``device``,
        ``max_batch``; ``kpm``: see ``KPMSolver``); for ``ml`` the ``path`` (a shipped model's
        name or a model file) and loader options (``dtype``, ``device``, ``electron_tolerance``,
        ...); ``J1``, ``J2``, ``field`` for ``heisenberg``; ``field`` for ``zeeman``.

    A mu-conditioned ``ml`` model simulates ``model``'s ensemble: canonical (mu* solved at every
    evaluation) at a filling, grand canonical at a mu (docs/canonical.md).
    """
    if kind not in FORCE_FIELDS:
        raise ValueError(f"unknown force field {kind!r}; known: {list(FORCE_FIELDS)}")
    if lattice is None and model is not None:
        lattice = model.lattice
    if kind in NEEDS_MODEL and model is None:
        raise ValueError(f"the {kind!r} force field solves the electrons and needs a model "
                         "(the [model] table of a run file)")
    try:
        if kind == "exact":
            from .electrons.exact import ExactSolver

            return ExactSolver(model, **settings)
        if kind == "kpm":
            from .electrons.kpm import KPMSolver

            return KPMSolver(model, **settings)
        if kind == "ml":
            from .models import MLForceField

            settings = dict(settings)
            if "path" not in settings:
                raise ValueError("the 'ml' force field needs path = <shipped model name or file>")
            # Checked against the run's model (if any) and bound to the simulation lattice.
            return MLForceField.load(settings.pop("path"), expect_model=model, lattice=lattice,
                                     **settings)
        if lattice is None:
            raise ValueError(f"the {kind!r} force field needs a lattice")
        if kind == "heisenberg":
            return Heisenberg(lattice, **settings)
        return Zeeman(settings.pop("field", (0.0, 0.0, 0.0)), lattice=lattice, **settings)
    except TypeError as exc:  # an unknown setting
        raise ValueError(f"bad settings for the {kind!r} force field: {exc}") from None
