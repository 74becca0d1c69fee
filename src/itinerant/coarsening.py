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
  several runs the fit uses the run-averaged ``log L`` and its standard error
  (:func:`aggregate_runs`; default window :func:`fit_window`, plot :func:`plot_lengths`).
"""

from __future__ import annotations

import warnings
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
    """``L(t) = A t^exponent`` fitted over ``window``; ``stderr`` is the slope's standard error.

    ``run_exponents`` holds the slope of each run when several were fitted (empty for one run).
    """

    exponent: float
    stderr: float
    prefactor: float
    window: tuple[float, float]
    points: int
    run_exponents: tuple[float, ...] = ()

    def __str__(self) -> str:
        runs = f", {len(self.run_exponents)} runs" if self.run_exponents else ""
        return (f"L ~ t^({self.exponent:.3f} +- {self.stderr:.3f}) over t in "
                f"[{self.window[0]:g}, {self.window[1]:g}] ({self.points} points{runs})")

    def as_dict(self) -> dict:
        """JSON-ready fields; non-finite numbers become None."""
        values = {"exponent": self.exponent, "stderr": self.stderr, "prefactor": self.prefactor}
        return {**{k: (v if np.isfinite(v) else None) for k, v in values.items()},
                "window": list(self.window), "points": self.points,
                "run_exponents": list(self.run_exponents)}


def fit_power_law(t, length, window=None) -> PowerLawFit:
    """Least-squares fit of ``log L = log A + p log t`` over ``window = (t_min, t_max)``.

    ``length`` is (T,) or (runs, T).  The fit is unweighted.  One run: the slope error comes from
    the residuals; the times of one run are correlated (L(t) is a smooth curve), so it
    underestimates the run-to-run uncertainty.  Several runs: ``exponent`` is the slope of the
    run-mean ``log L`` (equal to the mean of the per-run slopes), and ``stderr`` the standard error
    of the per-run slopes, ``std(p_r) / sqrt(runs)``, but never less than the residual error of the
    run-mean fit (with two or three runs the spread of the slopes is itself uncertain).  Weighting
    times by the across-run scatter of ``log L`` is avoided on purpose: with few runs that scatter is
    noise, and a few times where the runs happen to coincide would dominate the fit.
    """
    t = np.asarray(t, float)
    Ls = np.atleast_2d(np.asarray(length, float))
    lo, hi = window if window is not None else (t[t > 0].min(), t.max())
    sel = (t >= lo) & (t <= hi) & (t > 0) & np.all(np.isfinite(Ls) & (Ls > 0), axis=0)
    if sel.sum() < 3:
        raise ValueError(f"need at least 3 valid points in the window [{lo}, {hi}], got {sel.sum()}")
    x = np.log(t[sel])
    logs = np.log(Ls[:, sel])
    coef, cov = np.polyfit(x, logs.mean(axis=0), 1, cov=True)
    stderr = float(np.sqrt(cov[0, 0]))
    slopes: tuple[float, ...] = ()
    if Ls.shape[0] > 1:
        slopes = tuple(float(p) for p in np.polyfit(x, logs.T, 1)[0])
        stderr = max(stderr, float(np.std(slopes, ddof=1) / np.sqrt(len(slopes))))
    return PowerLawFit(exponent=float(coef[0]), stderr=stderr, prefactor=float(np.exp(coef[1])),
                       window=(float(lo), float(hi)), points=int(sel.sum()), run_exponents=slopes)


# ---------------------------------------------------------------------- several runs
WINDOW_RULE = ("from the first time the run-mean length reaches {min_length:g} lattice constants to "
               "the last time before it exceeds {max_fraction:g} of the system size")
"""The default fit window of :func:`fit_window`, in words (stored with results)."""


def fit_window(t, length, system_size: float, min_length: float = 2.0,
               max_fraction: float = 0.1) -> tuple[float, float]:
    """Default fit window: domains have formed (``L >= min_length``) and are still small compared
    with the system (``L <= max_fraction * system_size``), see :data:`WINDOW_RULE`.

    ``length`` is one curve (T,), e.g. the run mean.  Raises ``ValueError`` when the curve never
    enters that range.
    """
    t = np.asarray(t, float)
    ell = np.asarray(length, float)
    ok = np.isfinite(ell) & (t > 0)
    start = np.nonzero(ok & (ell >= min_length))[0]
    if len(start) == 0:
        raise ValueError(f"the domain size never reaches {min_length:g} lattice constants (largest "
                         f"{np.nanmax(ell) if ok.any() else float('nan'):.3g}); run longer or give "
                         "the fit window explicitly")
    i0 = start[0]
    too_big = np.nonzero(ok[i0:] & (ell[i0:] > max_fraction * system_size))[0]
    i1 = (i0 + too_big[0] - 1) if len(too_big) else np.nonzero(ok)[0][-1]
    if i1 <= i0:
        raise ValueError(f"the domain size jumps past {max_fraction:g} of the system size "
                         f"({system_size:g}) right after reaching {min_length:g}; use a larger "
                         "system or give the fit window explicitly")
    return float(t[i0]), float(t[i1])


def aggregate_runs(runs, quantities, length_keys, system_size: float, window=None,
                   min_length: float = 2.0, max_fraction: float = 0.1) -> dict:
    """Average per-run results over independent runs and fit ``L ~ t^p`` for each length.

    Parameters
    ----------
    runs:
        Dicts with a ``"time"`` array (T_r,) and arrays (T_r,) under ``quantities``.  The runs must
        share their times; frames beyond the shortest run are dropped.
    length_keys:
        The quantities that are domain lengths, fitted with :func:`fit_power_law`.
    system_size:
        Linear system size (lattice constants), for the default window (:func:`fit_window`, applied
        to the run mean of the first length).
    window:
        ``(t_min, t_max)`` of the fits; ``None``: the default window.

    Returns ``{"time", "mean": {q: (T,)}, "err": {q: (T,)}, "window", "window_rule", "fits":
    {key: PowerLawFit | None}, "fit_errors": {key: message}, "frames"}``; ``err`` is the standard
    error of the mean across runs (NaN for a single run).
    """
    runs = list(runs)
    if not runs:
        raise ValueError("no runs to aggregate")
    T = min(len(r["time"]) for r in runs)
    t = np.asarray(runs[0]["time"][:T], float)
    for k, r in enumerate(runs[1:], 1):
        if not np.allclose(r["time"][:T], t, rtol=1e-9, atol=1e-12):
            raise ValueError(f"run {k} ({r.get('path', '?')}) was recorded at other times than run 0; "
                             "runs must share dt and the frame interval")
    stack = {q: np.array([np.asarray(r[q], float)[:T] for r in runs]) for q in quantities}
    n = len(runs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: a length undefined in every run
        mean = {q: np.nanmean(v, axis=0) for q, v in stack.items()}
        err = {q: (np.nanstd(v, axis=0, ddof=1) / np.sqrt(np.isfinite(v).sum(axis=0)) if n > 1
                   else np.full(T, np.nan)) for q, v in stack.items()}
    rule = "given"
    fits, errors = {}, {}
    if window is None:
        rule = WINDOW_RULE.format(min_length=min_length, max_fraction=max_fraction)
        try:
            window = fit_window(t, mean[length_keys[0]], system_size, min_length, max_fraction)
        except ValueError as exc:
            window = None
            errors = {k: str(exc) for k in length_keys}
    if window is not None:
        window = (float(window[0]), float(window[1]))
        if not window[0] < window[1]:
            raise ValueError(f"the fit window must have t_min < t_max, got {window}")
        for key in length_keys:
            try:
                fits[key] = fit_power_law(t, stack[key], window)
            except ValueError as exc:
                errors[key] = str(exc)
    fits = {k: fits.get(k) for k in length_keys}
    return {"time": t, "mean": mean, "err": err, "window": window, "window_rule": rule,
            "fits": fits, "fit_errors": errors, "frames": T}


def _fitted_span(t, window) -> tuple[float, float]:
    """First and last frame time inside a fit window (where a fit line is drawn)."""
    inside = t[(t >= window[0]) & (t <= window[1]) & (t > 0)]
    return float(inside.min()), float(inside.max())


def plot_lengths(agg: dict, labels: dict, out, title: str = ""):
    """Domain lengths against time on log-log axes with the fits and t^(1/2), t^1 guide lines.

    ``agg``: :func:`aggregate_runs` output; ``labels``: ``{length key: legend label}``.  Writes the
    PNG ``out`` and returns its path.
    """
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = agg["time"]
    pos = t > 0
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for k, (key, label) in enumerate(labels.items()):
        color = f"C{k}"
        y, e = agg["mean"][key], agg["err"][key]
        ax.errorbar(t[pos], y[pos], None if np.all(np.isnan(e)) else e[pos], fmt="o", ms=3,
                    color=color, label=label)
        fit = agg["fits"].get(key)
        if fit is not None:
            tt = np.geomspace(*_fitted_span(t, fit.window), 50)
            ax.plot(tt, fit.prefactor * tt ** fit.exponent, "-", color=color, lw=2,
                    label=f"fit: $t^{{{fit.exponent:.3f} \\pm {fit.stderr:.3f}}}$")
    fit = next((f for f in agg["fits"].values() if f is not None), None)
    if fit is not None:
        t0, t1 = _fitted_span(t, fit.window)
        y0 = fit.prefactor * t0 ** fit.exponent
        tt = np.geomspace(t0, t[pos].max(), 50)
        ax.plot(tt, y0 * (tt / t0) ** 0.5, "k--", lw=1, label=r"$t^{1/2}$ (Allen-Cahn)")
        ax.plot(tt, y0 * (tt / t0), "k:", lw=1, label=r"$t^{1}$")
        ax.axvspan(t0, t1, color="0.9", zorder=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("time (1/t1)")
    ax.set_ylabel("domain size (lattice constants)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    out = Path(out)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
