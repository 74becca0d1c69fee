"""What every electron solver shares: the force-field methods derived from its ``solve``."""

from __future__ import annotations

import numpy as np


class ElectronSolver:
    """Base of the electron solvers; a subclass provides ``solve(spins, normalize)``.

    ``solve`` returns a state with ``energy``, ``fields`` and ``density`` (per configuration for a
    stack (M, N, 3)); the force-field interface follows from it.
    """

    def solve(self, spins, normalize: bool = False):
        raise NotImplementedError

    def energy_and_fields(self, spins, normalize: bool = False):
        """Energy and exchange fields.

        ``spins`` (N, 3) gives ``(float, ndarray (N, 3))``; a stack (M, N, 3) gives
        ``(ndarray (M,), ndarray (M, N, 3))``.
        """
        st = self.solve(spins, normalize=normalize)
        return st.energy, st.fields

    def density(self, spins, normalize: bool = False) -> np.ndarray:
        """Local electron density n_i, shape (N,) (or (M, N) for a stack)."""
        return self.solve(spins, normalize=normalize).density

    def chemical_potential(self, spins, normalize: bool = False):
        """Chemical potential: solved for fixed filling, the model's for fixed mu (float or (M,))."""
        return self.solve(spins, normalize=normalize).mu
