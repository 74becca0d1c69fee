"""Occupations, chemical potential and thermodynamic energy of a set of single-particle levels.

Given levels ``e`` (shape (..., K), ascending), :func:`occupy` returns the occupations ``f``, the
chemical potential and the energy of DESIGN.md §2:

* fixed filling, kT = 0: the lowest N_e levels; a degenerate shell at the Fermi level is filled
  evenly (the kT -> 0+ limit), which leaves the energy unchanged and makes the fields the symmetric
  limit of the finite-temperature ones.  Energy: sum of the lowest N_e levels.
* fixed filling, kT > 0: mu solved so that sum f = N_e; energy = free energy F = Omega + mu N_e.
* fixed mu: energy = grand potential Omega = -kT sum ln(1 + exp(-(e - mu)/kT)),
  at kT = 0: sum over e < mu of (e - mu).

All functions take and return torch tensors (float64), batched over leading dimensions.
"""

from __future__ import annotations

import torch

DEGENERACY_TOL = 1e-10


def fermi(e: torch.Tensor, mu, kT: float) -> torch.Tensor:
    """Fermi function 1/(exp((e - mu)/kT) + 1); a step (1/2 at e == mu) when kT = 0."""
    if kT == 0:
        return (e < mu).to(e.dtype) + 0.5 * (e == mu).to(e.dtype)
    return torch.sigmoid(-(e - mu) / kT)


def grand_potential(e: torch.Tensor, mu, kT: float) -> torch.Tensor:
    """Omega(mu) = -kT sum ln(1 + exp(-(e - mu)/kT)) over the last axis."""
    if kT == 0:
        return torch.clamp(e - mu, max=0.0).sum(-1)
    x = -(e - mu) / kT
    return -kT * torch.logaddexp(torch.zeros_like(x), x).sum(-1)


def solve_mu(e: torch.Tensor, n_electrons: int, kT: float, tol: float = 1e-13) -> torch.Tensor:
    """Chemical potential with ``sum f(e; mu) = n_electrons`` at ``kT > 0``, shape e.shape[:-1].

    Bisection (monotone, always converges) followed by Newton polish; ``e`` ascending.
    """
    lo = e[..., 0] - 50 * kT - 1.0
    hi = e[..., -1] + 50 * kT + 1.0
    mu = 0.5 * (lo + hi)
    for _ in range(200):
        mu = 0.5 * (lo + hi)
        n = fermi(e, mu[..., None], kT).sum(-1)
        too_many = n > n_electrons
        hi = torch.where(too_many, mu, hi)
        lo = torch.where(too_many, lo, mu)
        if torch.max(hi - lo) < tol * max(1.0, kT):
            break
    for _ in range(3):  # Newton: dN/dmu = sum f(1-f)/kT
        f = fermi(e, mu[..., None], kT)
        dn = (f * (1 - f)).sum(-1) / kT
        step = (f.sum(-1) - n_electrons) / torch.clamp(dn, min=1e-300)
        mu = torch.where(dn > 1e-12, mu - step, mu)
    return mu


def occupy(e: torch.Tensor, kT: float, n_electrons: int | None = None, mu: float | None = None):
    """Occupations ``f`` (same shape as ``e``), chemical potential and energy (shape e.shape[:-1]).

    Give exactly one of ``n_electrons`` (fixed filling) and ``mu`` (fixed chemical potential).
    ``e`` must be sorted ascending along the last axis.
    """
    if (n_electrons is None) == (mu is None):
        raise ValueError("give exactly one of n_electrons and mu")
    if mu is not None:
        mu_t = torch.full(e.shape[:-1], float(mu), dtype=e.dtype, device=e.device)
        return fermi(e, mu_t[..., None], kT), mu_t, grand_potential(e, mu_t[..., None], kT)
    K = e.shape[-1]
    if not 0 < n_electrons < K:
        raise ValueError(f"n_electrons must lie in 1..{K - 1}, got {n_electrons}")
    if kT > 0:
        mu_t = solve_mu(e, n_electrons, kT)
        f = fermi(e, mu_t[..., None], kT)
        return f, mu_t, grand_potential(e, mu_t[..., None], kT) + mu_t * n_electrons
    # kT = 0: fill the lowest levels, spreading a degenerate Fermi shell evenly.
    e_f = e[..., n_electrons - 1 : n_electrons]
    tol = DEGENERACY_TOL * torch.clamp(e.abs().amax(-1, keepdim=True), min=1.0)
    below = e < e_f - tol
    shell = (e - e_f).abs() <= tol
    n_below = below.sum(-1, keepdim=True).to(e.dtype)
    n_shell = shell.sum(-1, keepdim=True).to(e.dtype)
    f = below.to(e.dtype) + shell.to(e.dtype) * (n_electrons - n_below) / n_shell
    mu_t = 0.5 * (e[..., n_electrons - 1] + e[..., n_electrons])
    return f, mu_t, (f * e).sum(-1)
