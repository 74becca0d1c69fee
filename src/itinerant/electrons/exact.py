"""Exact diagonalisation of the s-d model: energy, exchange fields and densities.

One call diagonalises the ``2N x 2N`` Hamiltonian (LAPACK ``zheevd`` through ``torch.linalg.eigh``,
complex128), occupies the levels (:mod:`.occupation`) and evaluates the site-diagonal blocks of the
one-body density matrix ``G[is, is'] = <c+_is c_is'> = sum_n f_n conj(psi_n(is)) psi_n(is')``.
From them, by Hellmann-Feynman,

    h_i = -dE/dS_i = J <c+_i sigma c_i>,     n_i = <c+_i c_i>.

:meth:`ExactSolver.grand_canonical` labels one diagonalisation at several chemical potentials:
the grand potential Omega(S, mu_k), its fields -dOmega/dS_i and the densities n_i(S, mu_k) =
-d omega_i / d mu for every mu_k, from the same levels and eigenvectors (docs/canonical.md).

Cost O(N^3) time and O(N^2) memory per configuration; runs on a GPU by passing ``device="cuda"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..model import SDModel
from ..spins import check_spins
from .hamiltonian import hopping_matrix, onsite_blocks, spin_expectation
from .occupation import fermi, grand_potential, occupy
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


@dataclass
class GrandCanonicalState:
    """Labels of configurations at several chemical potentials, from one diagonalisation each.

    Arrays are numpy float64 with a leading (M,) snapshot axis if batched, then (K,) over the
    chemical potentials.

    Attributes
    ----------
    mu:            the chemical potentials mu_k, shape (..., K).
    energy:        grand potential Omega(S, mu_k) at the model's kT, shape (..., K).
    fields:        h_i = -dOmega/dS_i at fixed mu_k, shape (..., K, N, 3).
    density:       n_i(S, mu_k), shape (..., K, N); sum_i n_i = -dOmega/dmu.
    canonical_mu:  the model's own chemical potential of each snapshot: mu* solving
                   N(S, mu*) = N_e for fixed filling (mid-gap at kT = 0, as :class:`ElectronState`),
                   the model's mu for fixed mu; shape (...).
    """

    mu: np.ndarray
    energy: np.ndarray
    fields: np.ndarray
    density: np.ndarray
    canonical_mu: np.ndarray | float


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

    def grand_canonical(self, spins, mu=None, *, offsets=None,
                        normalize: bool = False) -> GrandCanonicalState:
        """Grand potential, fields and densities at several chemical potentials (one diagonalisation
        per configuration, at the model's kT).

        Give exactly one of

        * ``mu``: absolute chemical potentials, shape (K,) (the same for every configuration) or
          (M, K) (one row per configuration of a stack);
        * ``offsets``: shape (K,), relative to each configuration's own :attr:`canonical_mu
          <GrandCanonicalState.canonical_mu>` (mu* at fixed filling, the model's mu at fixed mu).

        At every mu_k the occupations are those of ``SDModel(..., mu=mu_k)`` (at kT = 0 a step,
        1/2 on a level exactly at mu_k, :func:`~.occupation.fermi`), so the result equals a fresh
        fixed-mu solve for each mu_k.  ``spins`` (N, 3) or (M, N, 3); see
        :class:`GrandCanonicalState` for the shapes.
        """
        s = check_spins(spins, self.lattice.N, normalize=normalize, batched=True)
        single = s.ndim == 2
        stack = s[None] if single else s
        mu_arr = _mu_table(mu, offsets, len(stack), single)
        parts = [self._grand_batch(stack[k:k + self.max_batch],
                                   None if mu_arr is None else mu_arr[k:k + self.max_batch],
                                   offsets)
                 for k in range(0, len(stack), self.max_batch)]
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        if single:
            out = {k: v[0] for k, v in out.items()}
            out["canonical_mu"] = float(out["canonical_mu"])
        return GrandCanonicalState(**out)

    # ------------------------------------------------------------------ kernel
    def _diagonalise(self, spins: np.ndarray):
        """Levels (B, 2N) and eigenvectors (B, 2N, 2N) of a stack of configurations (any vectors)."""
        N = self.lattice.N
        S = torch.as_tensor(spins, dtype=torch.float64, device=self.device)
        H = self._H0.expand(len(S), -1, -1).clone()
        H4 = H.view(len(S), N, 2, N, 2)
        H4[:, self._diag, :, self._diag, :] += onsite_blocks(S, self.model.J).transpose(0, 1)
        return torch.linalg.eigh(H)

    def _site_blocks(self, U: torch.Tensor, f: torch.Tensor):
        """Spin density (..., N, 3) and density (..., N) from eigenvectors U (B, 2N, 2N) and
        occupations f (B, ..., 2N): G_i[s, s'] = sum_n f_n conj(U[is, n]) U[is', n]."""
        B, N = U.shape[0], self.lattice.N
        U4 = U.view(B, N, 2, 2 * N)
        if f.ndim == 2:
            G = torch.einsum("bisn,bitn,bn->bist", U4.conj(), U4, f.to(U.dtype))
        else:
            fk = f.reshape(B, -1, 2 * N).to(U.dtype)
            G = torch.einsum("bisn,bitn,bkn->bkist", U4.conj(), U4, fk)
            G = G.reshape(B, *f.shape[1:-1], N, 2, 2)
        return spin_expectation(G), torch.diagonal(G, dim1=-2, dim2=-1).sum(-1).real

    def _solve_batch(self, spins: np.ndarray) -> dict:
        m = self.model
        e, U = self._diagonalise(spins)
        f, mu, energy = occupy(e, m.kT, n_electrons=m.n_electrons, mu=m.mu)
        spin_density, density = self._site_blocks(U, f)
        return {
            "energy": energy.cpu().numpy(),
            "fields": (m.J * spin_density).cpu().numpy(),
            "density": density.cpu().numpy(),
            "spin_density": spin_density.cpu().numpy(),
            "mu": mu.cpu().numpy(),
            "levels": e.cpu().numpy(),
        }

    def _grand_batch(self, spins: np.ndarray, mu: np.ndarray | None, offsets=None) -> dict:
        """:meth:`grand_canonical` on a stack of any vectors: ``mu`` (B, K), or ``None`` and
        ``offsets`` (K,) relative to the canonical mu of each configuration."""
        m = self.model
        e, U = self._diagonalise(spins)
        _, mu_c, _ = occupy(e, m.kT, n_electrons=m.n_electrons, mu=m.mu)
        if mu is None:
            mu_t = mu_c[:, None] + torch.as_tensor(np.asarray(offsets, dtype=np.float64),
                                                   device=e.device)[None]
        else:
            mu_t = torch.tensor(np.asarray(mu), dtype=torch.float64, device=e.device)
        f = fermi(e[:, None, :], mu_t[..., None], m.kT)                       # (B, K, 2N)
        omega = grand_potential(e[:, None, :], mu_t[..., None], m.kT)          # (B, K)
        spin_density, density = self._site_blocks(U, f)
        return {"mu": mu_t.cpu().numpy(), "energy": omega.cpu().numpy(),
                "fields": (m.J * spin_density).cpu().numpy(), "density": density.cpu().numpy(),
                "canonical_mu": mu_c.cpu().numpy()}


def _mu_table(mu, offsets, n_configs: int, single: bool) -> np.ndarray | None:
    """Check the chemical potentials of :meth:`ExactSolver.grand_canonical`: ``mu`` as (M, K), or
    ``None`` when ``offsets`` are given (returned as is after the checks)."""
    if (mu is None) == (offsets is None):
        raise ValueError("give exactly one of mu=[...] (absolute chemical potentials) and "
                         "offsets=[...] (relative to each configuration's own mu)")
    values = np.asarray(mu if mu is not None else offsets, dtype=np.float64)
    name = "mu" if mu is not None else "offsets"
    if not np.isfinite(values).all():
        raise ValueError(f"{name} must be finite, got {values}")
    if offsets is not None:
        if values.ndim != 1 or len(values) == 0:
            raise ValueError(f"offsets must be a non-empty list (K,), got shape {values.shape}")
        return None
    if values.ndim == 1 and len(values):
        return np.array(np.broadcast_to(values, (n_configs, len(values))))
    if values.ndim == 2 and not single and values.shape[0] == n_configs and values.shape[1]:
        return values
    want = "(K,)" if single else f"(K,) or ({n_configs}, K)"
    raise ValueError(f"mu must have shape {want}, got {values.shape}")
