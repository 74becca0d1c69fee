"""Tetrahedral order on the triangular lattice and its coarsening (docs/studies/triangular.md).

Definitions (lattice conventions of DESIGN.md §2: ``r_i = x a1 + y a2``, ``i = x + L*y``):

* Scalar chirality of an elementary triangle, vertices counter-clockwise,
  ``chi = S_i . (S_j x S_k)``: up triangles ``(r, r + a1, r + a2)`` and down triangles
  ``(r + a1, r + a1 + a2, r + a2)`` (:func:`itinerant.observables.triangles`), each set on an
  ``L x L`` grid indexed by ``r``.  The tetrahedral state has ``chi = +-4 / (3 sqrt 3)`` (:data:`CHI0`)
  on every triangle; the sign is the domain's chirality.  ``chi`` is invariant under proper global
  spin rotations and changes sign under improper ones (and under time reversal S -> -S).
* Tetrahedral order parameter: the three M-point components
  ``Delta_eta = (1/N) sum_i S_i exp(i M_eta . r_i)`` with ``M_1 = b1/2``, ``M_2 = b2/2``,
  ``M_3 = (b1 + b2)/2`` (``a_i . b_j = 2 pi delta_ij``), i.e. the real sign patterns ``(-1)^x``,
  ``(-1)^y``, ``(-1)^(x+y)`` (even L).  The perfect tetrahedral state has three mutually orthogonal
  vectors of length ``1/sqrt 3``, so ``|Delta|^2 = sum_eta |Delta_eta|^2 = 1``; a random state has
  ``|Delta|^2 ~ 3/N``.  (For any spins, ``|m|^2 + |Delta|^2 <= 1`` with ``m`` the magnetisation.)
* Spin structure factor ``S(q) = (1/N) sum_a |sum_i S_i^a exp(-i q . r_i)|^2`` on the grid
  ``q = (m1 b1 + m2 b2) / L``; ``sum_q S(q) = N``.  Its M-point weight
  ``sum_eta S(M_eta) / N = |Delta|^2``.
* Domain size from the chirality field ``phi`` (the up and down grids, or ``sign(chi)`` with
  ``ising=True``): ``L_C``, where the radially averaged correlation ``C(r)`` first falls to 1/2, and
  ``L_S = 2 pi / <|k|>`` from its structure factor (:mod:`itinerant.coarsening`).

Per trajectory, :func:`analyze_trajectory` gives these against time; :func:`analyze_runs` averages
independent runs and fits the coarsening exponent; :func:`analyze_cli` writes the figures and tables
of ``itinerant analyze``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np

from .. import coarsening
from ..coarsening import as_grid, correlation_function, crossing_length, structure_factor_length
from ..lattice import Lattice
from ..observables import triangles
from .common import fits_json, json_list, lattice_spins, map_frames, read_lattice, write_csv

CHI0 = 4.0 / (3.0 * math.sqrt(3.0))
"""|chirality| of every triangle of the perfect tetrahedral state."""

M_POINTS = ((1, 0), (0, 1), (1, 1))
"""The three M points as ``M_eta = (u b1 + v b2) / 2``; on the q grid they sit at ``(u, v) * L/2``."""


# ---------------------------------------------------------------------- configurations
def chirality_field(spins, lattice: Lattice) -> np.ndarray:
    """Scalar chirality of every elementary triangle, shape (..., 2, L, L).

    ``[..., 0, x, y]``: the up triangle at ``r = x a1 + y a2``; ``[..., 1, x, y]``: the down triangle
    ``(r + a1, r + a1 + a2, r + a2)``.  ``spins``: (N, 3) or a stack (..., N, 3).
    """
    s = lattice_spins(spins, lattice, "triangular", "tetrahedral-order analysis")
    tri = triangles(lattice)
    a, b, c = (s[..., tri[:, k], :] for k in range(3))
    chi = np.einsum("...a,...a->...", a, np.cross(b, c))  # (..., 2N): up triangles, then down
    return as_grid(chi.reshape(*chi.shape[:-1], 2, lattice.N), lattice.L)


def chirality_abs(spins, lattice: Lattice) -> np.ndarray:
    """Mean ``|chi|`` over the 2N triangles, shape (...): local tetrahedral order of either sign."""
    return np.abs(chirality_field(spins, lattice)).mean(axis=(-3, -2, -1))


def _m_signs(lattice: Lattice) -> np.ndarray:
    """``exp(i M_eta . r_i) = (-1)^(u x + v y)``, shape (3, N); needs even L."""
    if lattice.L % 2:
        raise ValueError(f"the M points lie on the momentum grid only for even L, got L = {lattice.L}")
    x, y = lattice.coords.T
    return np.array([(-1.0) ** (u * x + v * y) for u, v in M_POINTS])


def order_parameter(spins, lattice: Lattice) -> np.ndarray:
    """The three M-point vectors ``Delta_eta`` (rows), shape (..., 3, 3); even L.

    Normalised so that the perfect tetrahedral state has three orthogonal rows of length
    ``1/sqrt 3`` (total ``|Delta| = 1``, :func:`order_magnitude`).
    """
    s = lattice_spins(spins, lattice, "triangular", "tetrahedral-order analysis")
    return np.einsum("ei,...ia->...ea", _m_signs(lattice), s) / lattice.N


def tetrahedral_order(spins, lattice: Lattice) -> np.ndarray:
    """Per-frame observable: :func:`order_parameter` of one configuration, shape (3, 3)."""
    return order_parameter(spins, lattice)


def order_magnitude(delta) -> np.ndarray:
    """``|Delta| = sqrt(sum_eta |Delta_eta|^2)`` of order parameters (..., 3, 3), shape (...)."""
    d = np.asarray(delta, dtype=np.float64)
    return np.sqrt((d ** 2).sum(axis=(-2, -1)))


def structure_factor(spins, lattice: Lattice) -> np.ndarray:
    """Spin structure factor ``S(q)``, shape (..., L, L) indexed ``[m1, m2]``, ``q = (m1 b1 + m2 b2)/L``.

    ``S(q) = (1/N) sum_a |sum_i S_i^a exp(-i q . r_i)|^2``, so that ``sum_q S(q) = N`` for unit spins.
    """
    s = lattice_spins(spins, lattice, "triangular", "tetrahedral-order analysis")
    grid = as_grid(np.swapaxes(s, -1, -2), lattice.L)  # (..., 3, L, L) indexed [a, x, y]
    fk = np.fft.fft2(grid)  # sum_xy exp(-2 pi i (m1 x + m2 y)/L) = exp(-i q . r)
    return (np.abs(fk) ** 2).sum(axis=-3) / lattice.N


def m_point_weight(spins, lattice: Lattice) -> np.ndarray:
    """``sum_eta S(M_eta) / N``, shape (...): 1 for the perfect tetrahedral state (= ``|Delta|^2``)."""
    _m_signs(lattice)  # checks that L is even
    S = structure_factor(spins, lattice)
    h = lattice.L // 2
    return sum(S[..., u * h, v * h] for u, v in M_POINTS) / lattice.N


def domain_lengths(chi, lattice: Lattice, level: float = 0.5, ising: bool = False) -> tuple[float, float]:
    """``(L_C, L_S)`` of one chirality field (2, L, L) (:func:`chirality_field` of one frame).

    ``L_C``: where ``C(r)`` of the field (both triangle grids averaged) first falls to ``level``
    (``nan`` if it never does); ``L_S = 2 pi / <|k|>`` of its structure factor.  ``ising=True``
    uses ``sign(chi)``, which removes the amplitude fluctuations inside domains.
    """
    phi = np.asarray(chi, dtype=np.float64)
    if phi.shape != (2, lattice.L, lattice.L):
        raise ValueError(f"chirality field must have shape (2, {lattice.L}, {lattice.L}), got {phi.shape}")
    if ising:
        phi = np.sign(phi)
    if not np.any(phi):
        return float("nan"), float("nan")
    r, C = correlation_function(phi, lattice.basis)
    return crossing_length(r, C, level), structure_factor_length(phi, lattice.basis)


# ---------------------------------------------------------------------- trajectories
QUANTITIES = ("energy", "chirality", "chirality_abs", "order", "length_corr", "length_sf")
"""Per-frame results of :func:`analyze_trajectory` (besides ``time``)."""


def analyze_trajectory(path, level: float = 0.5, ising: bool = False, every: int = 1) -> dict:
    """Tetrahedral order and domain size along a trajectory file (frames read one at a time).

    Returns ``{"time", "energy" (per site), "chirality" (mean chi), "chirality_abs" (mean |chi|),
    "order" (|Delta|), "order_parameter" (F, 3, 3), "length_corr" (L_C), "length_sf" (L_S)}``
    as arrays over the analysed frames, plus ``"L"`` and ``"path"``.  ``every`` analyses every
    ``every``-th frame (the last one always).
    """
    path = Path(path)
    lattice = read_lattice(path)
    if lattice.name != "triangular":
        raise ValueError(f"{path} holds a {lattice.name}-lattice trajectory; this analysis is for "
                         "the triangular lattice")
    if not isinstance(every, (int, np.integer)) or every < 1:
        raise ValueError(f"every must be a positive integer, got {every!r}")
    if not 0 < level < 1:
        raise ValueError(f"the correlation level must lie in (0, 1), got {level}")
    with h5py.File(path, "r") as h5:
        missing = [k for k in ("time", "spins", "energy") if k not in h5]
        if missing:
            raise ValueError(f"{path}: not a trajectory file (missing datasets {missing})")
        n = len(h5["time"])
        if n == 0:
            raise ValueError(f"{path}: the trajectory has no frames")
        frames = np.unique(np.append(np.arange(0, n, every), n - 1))
        time = h5["time"][...][frames]
        energy = h5["energy"][...][frames] / lattice.N
        rows = {k: [] for k in ("chirality", "chirality_abs", "order_parameter", "length_corr",
                                "length_sf")}
        for f in frames:
            s = h5["spins"][f]
            chi = chirality_field(s, lattice)
            lc, ls = domain_lengths(chi, lattice, level, ising)
            rows["chirality"].append(chi.mean())
            rows["chirality_abs"].append(np.abs(chi).mean())
            rows["order_parameter"].append(order_parameter(s, lattice))
            rows["length_corr"].append(lc)
            rows["length_sf"].append(ls)
    out = {"time": time, "energy": energy, **{k: np.asarray(v) for k, v in rows.items()}}
    out["order"] = order_magnitude(out["order_parameter"])
    out.update(L=lattice.L, path=str(path))
    return out


def analyze_runs(paths, window=None, level: float = 0.5, ising: bool = False, every: int = 1) -> dict:
    """Analyse independent runs of the same lattice and times; average and fit ``L ~ t^p``.

    Returns :func:`itinerant.coarsening.aggregate_runs` of the per-run results (means, standard
    errors, the fits of ``length_corr`` and ``length_sf`` over ``window``) plus ``"runs"``, the
    per-run dicts of :func:`analyze_trajectory`.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no trajectory files given")
    runs = [analyze_trajectory(p, level=level, ising=ising, every=every) for p in paths]
    sizes = {r["L"] for r in runs}
    if len(sizes) > 1:
        raise ValueError(f"the runs have different lattice sizes {sorted(sizes)}; analyse them separately")
    agg = coarsening.aggregate_runs(runs, QUANTITIES, ("length_corr", "length_sf"),
                                    system_size=runs[0]["L"], window=window)
    agg["runs"] = runs
    agg["L"] = runs[0]["L"]
    return agg


# ---------------------------------------------------------------------- figures
def _chirality_triangulation(L: int):
    """Triangles of an unwrapped (L+1) x (L+1) point grid, ordered like :func:`chirality_field`."""
    import matplotlib.tri as mtri

    lat = Lattice.triangular(L + 1)
    pos = lat.positions
    x, y = np.meshgrid(np.arange(L), np.arange(L), indexing="ij")
    p = lambda dx, dy: (x + dx) + (L + 1) * (y + dy)  # noqa: E731  (point index on the big grid)
    up = np.stack([p(0, 0), p(1, 0), p(0, 1)], axis=-1).reshape(-1, 3)
    down = np.stack([p(1, 0), p(1, 1), p(0, 1)], axis=-1).reshape(-1, 3)
    return mtri.Triangulation(pos[:, 0], pos[:, 1], np.concatenate([up, down]))


def plot_chirality_maps(path, out, frames=None, count: int = 4) -> Path:
    """Chirality of every triangle at several frames of a trajectory (default: spread in log time)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lattice = read_lattice(path)
    with h5py.File(path, "r") as h5:
        n = len(h5["time"])
        frames = map_frames(n, count) if frames is None else list(frames)
        times = h5["time"][...][frames]
        chis = [chirality_field(h5["spins"][f], lattice) for f in frames]
    tri = _chirality_triangulation(lattice.L)
    fig, axes = plt.subplots(1, len(frames), figsize=(3.6 * len(frames), 3.4), squeeze=False)
    for ax, t, chi in zip(axes[0], times, chis):
        # facecolors in Triangulation order: all up triangles (site order), then all down ones
        face = np.concatenate([chi[0].ravel(), chi[1].ravel()])
        im = ax.tripcolor(tri, facecolors=face, cmap="RdBu_r", vmin=-CHI0, vmax=CHI0)
        ax.set_aspect("equal")
        ax.set_axis_off()
        ax.set_title(f"t = {t:.4g}")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label=r"$\chi = S_i\cdot(S_j\times S_k)$")
    fig.suptitle(f"scalar chirality, {lattice.L}x{lattice.L} triangular lattice")
    out = Path(out)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def plot_evolution(agg: dict, out) -> Path:
    """Energy per site and ``<|chi|>``, ``|<chi>|``, ``|Delta|`` against time (mean +- error)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = agg["time"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6, 6), sharex=True)
    ax1.errorbar(t, agg["mean"]["energy"], agg["err"]["energy"], color="k", lw=1)
    ax1.set_ylabel("energy per site")
    ax2.errorbar(t, agg["mean"]["chirality_abs"] / CHI0, agg["err"]["chirality_abs"] / CHI0,
                 label=r"$\langle|\chi|\rangle / \chi_0$")
    ax2.errorbar(t, np.abs(agg["mean"]["chirality"]) / CHI0, agg["err"]["chirality"] / CHI0,
                 label=r"$|\langle\chi\rangle| / \chi_0$")
    ax2.errorbar(t, agg["mean"]["order"], agg["err"]["order"], label=r"$|\Delta|$ (M points)")
    ax2.set_ylim(-0.02, 1.05)
    ax2.set_xlabel("time (1/t1)")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.set_xscale("symlog", linthresh=max(t[1] if len(t) > 1 else 1.0, 1e-3))
    fig.suptitle(f"{len(agg['runs'])} run(s), L = {agg['L']}")
    out = Path(out)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


# ---------------------------------------------------------------------- itinerant analyze
def analyze_cli(paths, out, window=None, level: float = 0.5, ising: bool = False,
                every: int = 1) -> dict:
    """Everything ``itinerant analyze`` writes for triangular-lattice trajectories.

    Files in ``out``: ``lengths.csv`` (per time: run means and standard errors), ``analysis.json``
    (definitions, fits and windows, per-run arrays), ``domain_growth.png`` (L(t) log-log with the
    fitted exponent and t^(1/2), t^1 guides), ``evolution.png`` (energy, chirality, order) and
    ``chirality_maps.png`` (the first run at several times).  Returns ``{"files": [...], "report":
    [lines]}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    agg = analyze_runs(paths, window=window, level=level, ising=ising, every=every)
    files = [write_csv(agg, out / "lengths.csv"), _write_json(agg, out / "analysis.json", level, ising)]
    labels = {"length_corr": f"$L_C$: C(r) = {level:g}", "length_sf": r"$L_S = 2\pi/\langle|k|\rangle$"}
    files.append(coarsening.plot_lengths(agg, labels, out / "domain_growth.png",
                                         title=f"chirality domains, L = {agg['L']}, "
                                               f"{len(agg['runs'])} run(s)"))
    files.append(plot_evolution(agg, out / "evolution.png"))
    files.append(plot_chirality_maps(paths[0], out / "chirality_maps.png"))
    report = [f"{len(agg['runs'])} run(s), L = {agg['L']}, t up to {agg['time'][-1]:.6g}"]
    for key, fit in agg["fits"].items():
        report.append(f"{key}: {fit}" if fit is not None else f"{key}: no fit ({agg['fit_errors'][key]})")
    return {"files": files, "report": report, "analysis": agg}


def _write_json(agg: dict, path: Path, level: float, ising: bool) -> Path:
    doc = {
        "lattice": "triangular", "L": agg["L"], "runs": [r["path"] for r in agg["runs"]],
        "definitions": {
            "chirality": "S_i . (S_j x S_k) per elementary triangle, counter-clockwise; "
                         f"perfect tetrahedral state +-{CHI0:.6f}",
            "order": "|Delta| = sqrt(sum_eta |(1/N) sum_i S_i exp(i M_eta . r_i)|^2); 1 in the "
                     "perfect tetrahedral state",
            "length_corr": f"first r where the radially averaged chirality correlation falls to {level}"
                           + (" (field sign(chi))" if ising else ""),
            "length_sf": "2 pi / <|k|> of the chirality structure factor (k != 0)",
            "energy": "energy per site (force field), units of t1",
            "fit": "least squares of the run-mean log L against log t over the window, weighted by "
                   "the standard error of log L across runs (one run: unweighted)",
        },
        "window": list(agg["window"]) if agg["window"] is not None else None,
        "window_rule": agg["window_rule"],
        "fits": fits_json(agg["fits"]),
        "fit_errors": agg["fit_errors"],
        "time": agg["time"].tolist(),
        "mean": {k: json_list(v) for k, v in agg["mean"].items()},
        "err": {k: json_list(v) for k, v in agg["err"].items()},
    }
    path.write_text(json.dumps(doc, indent=1, allow_nan=False))
    return path
