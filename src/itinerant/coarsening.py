"""Domain growth: correlation functions, characteristic lengths and coarsening exponents.

The analysis of a quench works on a real scalar order-parameter field ``phi`` living on the sites of a
periodic Bravais grid (for example the scalar chirality of the up-triangles of a triangular lattice,
or the local staggered magnetisation of a square lattice), shape (L, L) indexed ``[x, y]`` (see
:func:`as_grid` for per-site arrays in the site order ``i = x + L*y``).

Definitions
-----------
* Correlation function ``C(r) = <phi(x) phi(x + r)> / <phi^2>`` (periodic, via FFT), averaged over all
  displacements ``r = dx*a1 + dy*a2`` (minimum image) in radial bins of width ``dr``.
* Domain size ``L_C``: the smallest distance where ``C(r)`` falls to ``level`` (1/2 by default),
  linear interpolation between bins.
* Structure-factor length ``L_S = 2 pi / <|k|>`` with ``<|k|> = sum_k |k| S(k) / sum_k S(k)`` over
  ``k != 0``, ``S(k) = |phi_k|^2``.
* Coarsening exponent: least-squares slope of ``log L`` against ``log t`` over a stated window; with
  several runs the fit uses the run-averaged ``log L`` and its standard error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def as_grid(values: np.ndarray, L: int) -> np.ndarray:
    """Per-site values (..., N) in site order ``i = x + L*y`` as a grid (..., L, L) indexed [x, y]."""
    values = np.asarray(values)
    return values.reshape(*values.shape[:-1], L, L).swapaxes(-1, -2)


def _min_image_distance(L: int, basis: np.ndarray) -> np.ndarray:
    """|dx*a1 + dy*a2| minimised over periodic images, shape (L, L) indexed [dx, dy]."""
    d = np.arange(L)
    best = np.full((L, L), np.inf)
    for sx in (-L, 0, L):
        for sy in (-L, 0, L):
            dx, dy = np.meshgrid(d + sx, d + sy, indexing="ij")
            v = dx[..., None] * basis[:, 0] + dy[..., None] * basis[:, 1]
            best = np.minimum(best, np.linalg.norm(v, axis=-1))
    return best


def correlation_function(grid: np.ndarray, basis: np.ndarray, dr: float = 1.0):
    """Radially averaged correlation ``C(r)`` of a periodic field.

    Parameters
    ----------
    grid:  field (..., L, L) indexed [x, y]; leading axes are averaged (e.g. several fields).
    basis: 2x2 matrix with columns a1, a2 (``Lattice.basis``).
    dr:    radial bin width (lattice constants).

    Returns ``(r, C)``: bin centres up to L/2 and the normalised correlation, ``C(0) = 1``.
    """
    g = np.asarray(grid, dtype=float)
    L = g.shape[-1]
    fk = np.fft.fft2(g)
    corr = np.fft.ifft2(np.abs(fk) ** 2).real / (L * L)
    corr = corr.reshape(-1, L, L).mean(axis=0)
    if corr[0, 0] <= 0:
        raise ValueError("the field is identically zero: no correlation function")
    corr /= corr[0, 0]
    dist = _min_image_distance(L, np.asarray(basis, float))
    rmax = L / 2
    edges = np.arange(-dr / 2, rmax + dr, dr)
    idx = np.digitize(dist.ravel(), edges) - 1
    ok = (idx >= 0) & (dist.ravel() <= rmax)
    sums = np.bincount(idx[ok], weights=corr.ravel()[ok], minlength=len(edges) - 1)
    counts = np.bincount(idx[ok], minlength=len(edges) - 1)
    keep = counts > 0
    r = 0.5 * (edges[:-1] + edges[1:])
    r[0] = 0.0
    return r[keep], sums[keep] / counts[keep]


def crossing_length(r: np.ndarray, C: np.ndarray, level: float = 0.5) -> float:
    """Smallest ``r`` with ``C(r) = level`` (linear interpolation); ``nan`` if never reached."""
    below = np.nonzero(C <= level)[0]
    if len(below) == 0:
        return float("nan")
    k = below[0]
    if k == 0:
        return 0.0
    r0, r1, c0, c1 = r[k - 1], r[k], C[k - 1], C[k]
    return float(r0 + (c0 - level) * (r1 - r0) / (c0 - c1))


def structure_factor_length(grid: np.ndarray, basis: np.ndarray) -> float:
    """``2 pi / <|k|>`` from the structure factor of a periodic field (mean removed)."""
    g = np.asarray(grid, dtype=float)
    L = g.shape[-1]
    g = g - g.mean(axis=(-2, -1), keepdims=True)
    S = (np.abs(np.fft.fft2(g)) ** 2).reshape(-1, L, L).mean(axis=0)
    m = np.fft.fftfreq(L) * L
    m1, m2 = np.meshgrid(m, m, indexing="ij")
    recip = 2 * np.pi * np.linalg.inv(np.asarray(basis, float)).T  # columns b1, b2
    k = np.linalg.norm(m1[..., None] * recip[:, 0] / L + m2[..., None] * recip[:, 1] / L, axis=-1)
    mask = k > 0
    if S[mask].sum() == 0:
        return float("inf")
    return float(2 * np.pi / ((k[mask] * S[mask]).sum() / S[mask].sum()))


@dataclass
class PowerLawFit:
    """``L(t) = A t^exponent`` fitted over ``window``; ``stderr`` is the slope's standard error."""

    exponent: float
    stderr: float
    prefactor: float
    window: tuple[float, float]
    points: int

    def __str__(self) -> str:
        return (f"L ~ t^({self.exponent:.3f} +- {self.stderr:.3f}) over t in "
                f"[{self.window[0]:g}, {self.window[1]:g}] ({self.points} points)")


def fit_power_law(t, length, window=None, sigma=None) -> PowerLawFit:
    """Least-squares fit of ``log L = log A + p log t`` over ``window = (t_min, t_max)``.

    ``length`` is (T,) or (runs, T); with several runs the mean of ``log L`` is fitted, weighted by
    its standard error across runs, and the slope error includes the run-to-run scatter.
    ``sigma`` optionally gives the standard error of ``log L`` per time for a single run.
    """
    t = np.asarray(t, float)
    Ls = np.atleast_2d(np.asarray(length, float))
    lo, hi = window if window is not None else (t[t > 0].min(), t.max())
    sel = (t >= lo) & (t <= hi) & (t > 0) & np.all(np.isfinite(Ls) & (Ls > 0), axis=0)
    if sel.sum() < 3:
        raise ValueError(f"need at least 3 valid points in the window [{lo}, {hi}], got {sel.sum()}")
    x = np.log(t[sel])
    logs = np.log(Ls[:, sel])
    y = logs.mean(axis=0)
    if Ls.shape[0] > 1:
        s = logs.std(axis=0, ddof=1) / np.sqrt(Ls.shape[0])
        s = np.where(s > 0, s, np.median(s[s > 0]) if (s > 0).any() else 1.0)
    elif sigma is not None:
        s = np.asarray(sigma, float)[sel]
    else:
        s = None
    w = None if s is None else 1 / s
    coef, cov = np.polyfit(x, y, 1, w=w, cov="unscaled" if s is not None else True)
    return PowerLawFit(exponent=float(coef[0]), stderr=float(np.sqrt(cov[0, 0])),
                       prefactor=float(np.exp(coef[1])), window=(float(lo), float(hi)),
                       points=int(sel.sum()))
