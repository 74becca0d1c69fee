"""Exact diagonalisation of the s-d model: energy, exchange fields and densities.

One call diagonalises the ``2N x 2N`` Hamiltonian (LAPACK ``zheevd`` through ``torch.linalg.eigh``,
complex128), occupies the levels (:mod:`.occupation`) and evaluates the site-diagonal blocks of the
one-body density matrix ``G[is, is'] = <c+_is c_is'> = sum_n f_n conj(psi_n(is)) psi_n(is')``.
From them, by Hellmann-Feynman,

    h_i = -dE/dS_i = J <c+_i sigma c_i>,     n_i = <c+_i c_i>.

Cost O(N^3) time and O(N^2) memory per configuration; runs on a GPU by passing ``device="cuda"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..model import SDModel
from ..spins import check_spins
from .hamiltonian import hopping_matrix, onsite_blocks, spin_expectation
from .occupation import occupy
from .solver import ElectronSolver


@dataclass
class ElectronState:
    """Everything one exact solve gives.  Arrays are numpy float64; leading (M,) if batched.

    Attributes
    ----------
    energy:      free energy (fixed filling) or grand potential (fixed mu), units of t1.
    fields:      exchange fields h_i = -dE/dS_i, shape (..., N, 3).
    density:     electron density n_i per site (0..2), shape (..., N).
    spin_density: <c+_i sigma c_i>, shape (..., N, 3).
    mu:          chemical potential (solved for fixed filling; mid-gap at kT = 0).
    levels:      single-particle energies, ascending, shape (..., 2N).
    """

    energy: np.ndarray | float
    fields: np.ndarray
    density: np.ndarray
    spin_density: np.ndarray
    mu: np.ndarray | float
    levels: np.ndarray


class ExactSolver(ElectronSolver):
    """Exact-diagonalisation force field for an :class:`~itinerant.SDModel`.

    Parameters
    ----------
    model:
        The s-d model (lattice, hoppings, J, filling or mu, kT).
    device:
        Torch device for the diagonalisation (``"cpu"`` default; ``"cuda"`` runs unchanged).
    max_batch:
        Largest number of configurations diagonalised in one batched call (memory control).
    """

    name = "exact"

    def __init__(self, model: SDModel, device: str | torch.device = "cpu", max_batch: int = 16):
        self.model = model
        self.lattice = model.lattice
        self.device = torch.device(device)
        self.max_batch = int(max_batch)
        N = self.lattice.N
        T = torch.as_tensor(hopping_matrix(model).toarray(), dtype=torch.float64)
        self._H0 = torch.kron(T, torch.eye(2, dtype=torch.float64)).to(torch.complex128).to(self.device)
        self._diag = torch.arange(N, device=self.device)

    def settings(self) -> dict:
        """Solver name and accuracy settings, stored with generated data."""
        return {"solver": self.name}

    # ------------------------------------------------------------------ public API
    def solve(self, spins, normalize: bool = False) -> ElectronState:
        """Full electronic state (energy, fields, densities, mu, levels); see :class:`ElectronState`."""
        s = check_spins(spins, self.lattice.N, normalize=normalize, batched=True)
        single = s.ndim == 2
        stack = s[None] if single else s
        parts = [self._solve_batch(stack[k : k + self.max_batch])
                 for k in range(0, len(stack), self.max_batch)]
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        if single:
            out = {k: (v[0].item() if v.ndim == 1 else v[0]) for k, v in out.items()}
        return ElectronState(**out)

    # ------------------------------------------------------------------ kernel
    def _solve_batch(self, spins: np.ndarray) -> dict:
        m = self.model
        N = self.lattice.N
        S = torch.as_tensor(spins, dtype=torch.float64, device=self.device)
        H = self._H0.expand(len(S), -1, -1).clone()
        H4 = H.view(len(S), N, 2, N, 2)
        H4[:, self._diag, :, self._diag, :] += onsite_blocks(S, m.J).transpose(0, 1)
        e, U = torch.linalg.eigh(H)
        f, mu, energy = occupy(e, m.kT, n_electrons=m.n_electrons, mu=m.mu)
        # G_i[s, s'] = sum_n f_n conj(U[is, n]) U[is', n]
        U4 = U.view(len(S), N, 2, 2 * N)
        G = torch.einsum("bisn,bitn,bn->bist", U4.conj(), U4, f.to(U.dtype))
        spin_density = spin_expectation(G)
        density = torch.diagonal(G, dim1=-2, dim2=-1).sum(-1).real
        return {
            "energy": energy.cpu().numpy(),
            "fields": (m.J * spin_density).cpu().numpy(),
            "density": density.cpu().numpy(),
            "spin_density": spin_density.cpu().numpy(),
            "mu": mu.cpu().numpy(),
            "levels": e.cpu().numpy(),
        }
