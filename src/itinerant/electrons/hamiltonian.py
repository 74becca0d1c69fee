"""The single-particle Hamiltonian of the s-d model.

Basis ordering: the state ``(i, s)`` (site i, spin s in {up, down}) has index ``2*i + s``, so the
Hamiltonian is an ``N x N`` grid of 2x2 spin blocks:

    H = kron(T, 1_2) + blockdiag_i( -J S_i . sigma ),     T_ij = -sum_n t_n [j in shell n of i]

``T`` is real symmetric; the on-site blocks are the only spin-dependent part.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from ..model import SDModel

PAULI = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=np.complex128)
"""The Pauli matrices sigma^x, sigma^y, sigma^z, shape (3, 2, 2)."""


def hopping_matrix(model: SDModel) -> sp.csr_matrix:
    """The real symmetric hopping matrix ``T`` (N x N, sparse): ``T_ij = -t_n`` for an n-th shell bond."""
    lat = model.lattice
    rows, cols, vals = [], [], []
    for n, t in enumerate(model.t, start=1):
        if t == 0.0:
            continue
        b = lat.bonds(n)
        rows += [b[:, 0], b[:, 1]]
        cols += [b[:, 1], b[:, 0]]
        vals += [np.full(len(b), -t)] * 2
    if not rows:
        return sp.csr_matrix((lat.N, lat.N))
    T = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(lat.N, lat.N))
    return T.tocsr()  # duplicates (none for valid L) would be summed


def onsite_blocks(spins, J: float):
    """The on-site 2x2 blocks ``-J S_i . sigma``, shape (..., N, 2, 2), complex.

    Works on numpy arrays and torch tensors (differentiable in torch).
    """
    if isinstance(spins, torch.Tensor):
        pauli = torch.as_tensor(PAULI, device=spins.device)
        return -J * torch.einsum("...ia,ast->...ist", spins.to(pauli.dtype), pauli)
    return -J * np.einsum("...ia,ast->...ist", spins, PAULI)


def spin_expectation(G_blocks):
    """``m^a = sum_{ss'} sigma^a_{ss'} G_{ss'}`` for blocks ``G[s, s'] = <c+_s c_s'>``, shape (..., 3).

    ``G_blocks`` has shape (..., 2, 2); the result is real.
    """
    if isinstance(G_blocks, torch.Tensor):
        pauli = torch.as_tensor(PAULI, device=G_blocks.device)
        return torch.einsum("ast,...st->...a", pauli, G_blocks).real
    return np.einsum("ast,...st->...a", PAULI, G_blocks).real


def dense_hamiltonian(model: SDModel, spins) -> np.ndarray:
    """The full ``2N x 2N`` Hamiltonian as a dense numpy array (for tests and small systems)."""
    N = model.lattice.N
    T = hopping_matrix(model).toarray()
    H = np.kron(T, np.eye(2)).astype(np.complex128)
    blocks = onsite_blocks(np.asarray(spins, float), model.J)
    H4 = H.reshape(N, 2, N, 2)
    ar = np.arange(N)
    H4[ar, :, ar, :] += blocks
    return H
