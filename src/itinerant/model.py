"""The s-d (classical Kondo-lattice) model: lattice, hoppings, coupling and electron ensemble.

    H = - sum_n t_n sum_{<ij>_n, s} (c+_is c_js + h.c.)  -  J sum_i S_i . (c+_i sigma c_i)

``t[n-1]`` is the hopping on the n-th neighbour shell, each bond counted once; sigma is the Pauli
vector, so a ferromagnet splits the bands by +-J.  The electrons are either at fixed filling
``n = N_e / (2N)`` (energy = free energy) or at fixed chemical potential ``mu`` (energy = grand
potential), at temperature ``kT >= 0`` (energies in units of t1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .lattice import Lattice


@dataclass(frozen=True)
class SDModel:
    """Parameters of the s-d model on a lattice; validated on construction.

    Parameters
    ----------
    lattice:
        The periodic lattice.
    t:
        Hoppings of the neighbour shells, ``(t1, t2, ...)``.
    J:
        s-d exchange coupling.
    filling:
        Fraction of the ``2N`` single-particle states occupied; ``filling * 2N`` must be an integer.
    mu:
        Chemical potential.  Give exactly one of ``filling`` and ``mu``.
    kT:
        Electron temperature, ``>= 0``.
    """

    lattice: Lattice
    t: tuple = (1.0,)
    J: float = 1.0
    filling: float | None = None
    mu: float | None = None
    kT: float = 0.0
    n_electrons: int = field(init=False, default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.lattice, Lattice):
            raise TypeError(f"lattice must be an itinerant.Lattice, got {type(self.lattice).__name__}")
        t = tuple(float(x) for x in np.atleast_1d(self.t))
        if len(t) == 0:
            raise ValueError("t needs at least the nearest-neighbour hopping t1")
        object.__setattr__(self, "t", t)
        for name in ("J", "kT"):
            v = float(getattr(self, name))
            if not math.isfinite(v):
                raise ValueError(f"{name} must be finite, got {v}")
            object.__setattr__(self, name, v)
        if not all(math.isfinite(x) for x in t):
            raise ValueError(f"hoppings must be finite, got {t}")
        if self.kT < 0:
            raise ValueError(f"kT must be >= 0, got {self.kT}")
        if (self.filling is None) == (self.mu is None):
            raise ValueError("give exactly one of filling=... (fixed electron number) and mu=... "
                             "(fixed chemical potential)")
        if self.mu is not None:
            mu = float(self.mu)
            if not math.isfinite(mu):
                raise ValueError(f"mu must be finite, got {mu}")
            object.__setattr__(self, "mu", mu)
        else:
            f = float(self.filling)
            if not 0.0 < f < 1.0:
                raise ValueError(f"filling must lie strictly between 0 and 1, got {f}")
            n_states = 2 * self.lattice.N
            ne = f * n_states
            nearest = int(round(ne))
            if abs(ne - nearest) > 1e-9 * n_states:
                raise ValueError(
                    f"filling {f} on {self.lattice} gives {ne:.6g} electrons, not an integer; the "
                    f"nearest integer is N_e = {nearest} (filling {nearest / n_states:.10g})")
            object.__setattr__(self, "filling", f)
            object.__setattr__(self, "n_electrons", nearest)
        # Every hopping shell must fit on the torus without wrapping onto itself.
        lat = self.lattice
        for n in range(1, len(t) + 1):
            if t[n - 1] != 0.0:
                lat.check_offsets_fit(np.vstack([[0, 0], lat.shell_offsets(n)]),
                                      f"hopping shell t{n}")

    @property
    def fixed_filling(self) -> bool:
        return self.filling is not None

    def with_lattice(self, lattice: Lattice) -> "SDModel":
        """The same parameters on another lattice (for fixed filling, N_e scales with N)."""
        return SDModel(lattice, t=self.t, J=self.J, filling=self.filling, mu=self.mu, kT=self.kT)

    def attrs(self) -> dict:
        """Attributes that rebuild this model, as stored in HDF5 and model files (DESIGN.md §4)."""
        a = {"lattice": self.lattice.name, "L": self.lattice.L, "t": list(self.t), "J": self.J,
             "kT": self.kT}
        if self.fixed_filling:
            a["filling"] = self.filling
        else:
            a["mu"] = self.mu
        return a

    @classmethod
    def from_attrs(cls, attrs) -> "SDModel":
        """Rebuild a model from :meth:`attrs` (a dict or HDF5 attribute mapping)."""
        lat = Lattice.from_name(str(attrs["lattice"]), int(attrs["L"]))
        filling = float(attrs["filling"]) if "filling" in attrs else None
        mu = float(attrs["mu"]) if "mu" in attrs else None
        return cls(lat, t=tuple(np.atleast_1d(attrs["t"])), J=float(attrs["J"]), filling=filling,
                   mu=mu, kT=float(attrs["kT"]))
