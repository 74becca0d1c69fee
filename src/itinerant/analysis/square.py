"""Ferromagnetic clusters in a Neel background on the square lattice (docs/studies/square.md).

Study 2: the lightly hole-doped double-exchange (s-d) magnet on the square lattice (t1 = 1, J = 6,
filling n = 0.485 < 1/2).  The doped holes gather into ferromagnetic (FM) clusters inside a Neel
(checkerboard antiferromagnetic) background.  This module measures that, frame by frame.

Definitions (lattice conventions of DESIGN.md §2: site ``i = x + L*y`` at ``r_i = (x, y)``; spins
are unit vectors, so every observable below is dimensionless):

* Bonds: every nearest-neighbour bond once, as the bond from site ``(x, y)`` to ``(x+1, y)``
  (direction ``d = 0``) or to ``(x, y+1)`` (``d = 1``), periodic: ``2N`` bonds.  The bond field
  ``b[d, x, y] = S_i . S_j`` has shape (2, L, L), indexed like :func:`itinerant.coarsening.as_grid`.
* Nearest-neighbour correlation ``<S_i . S_j>_nn``: the mean of the bond field over the ``2N`` bonds
  (-1 in the Neel state, +1 in a ferromagnet).
* FM bond: ``S_i . S_j > threshold`` (strictly; default ``threshold = 0``, i.e. an angle below 90
  degrees).  FM-bond fraction: the number of FM bonds over ``2N``.
* FM cluster: a connected component of the graph whose vertices are the sites and whose edges are
  the FM bonds, on the torus (a cluster that crosses the periodic boundary is one cluster).  A site
  without any FM bond belongs to no cluster, so every cluster has at least 2 sites.  Per frame:
  the number of clusters ``N_c``, their sizes ``s`` (sites), the number-average size
  ``<s>_n = sum s / N_c``, the weight-average size ``<s>_w = sum s^2 / sum s`` (the mean size of the
  cluster that a randomly picked cluster site belongs to), the largest size ``s_max``, the fraction
  of sites in clusters ``sum s / N``, and the size distribution ``n_s`` (number of clusters of
  ``s`` sites; ``sum_s s n_s = sum s``).  Without clusters the two averages are undefined (NaN)
  and ``s_max = 0``.  All are invariant under global O(3) spin rotations (they depend on the
  ``S_i . S_j`` only).
* Staggered magnetisation ``m_s = (1/N) sum_i (-1)^(x_i + y_i) S_i`` (even L) and its length
  ``|m_s|`` (1 in the Neel state); staggered structure factor
  ``S(Q)/N = (1/N^2) sum_a |sum_i S_i^a exp(-i Q . r_i)|^2 = |m_s|^2`` at ``Q = (pi, pi)``, with
  ``S(q) = (1/N) sum_a |sum_i S_i^a exp(-i q . r_i)|^2`` (``sum_q S(q) = N``); 1 in the Neel state.
* Neel field (for maps): ``phi_i = (-1)^(x_i + y_i) S_i . u`` with ``u`` the principal axis of the
  staggered tensor ``(1/N) sum_i n_i n_i^T``, ``n_i = (-1)^(x_i + y_i) S_i``, its sign chosen so
  that ``sum_i phi_i >= 0``.  Neel domains of opposite staggered vector have ``phi = +-1``; a
  collinear FM cluster shows up as a checkerboard of ``+-1``.
* Electron density: ``n_i = <c+_i c_i>``, electrons per site summed over spin, in ``[0, 2]`` — the
  ``density`` of :class:`itinerant.ExactSolver` and ``KPMSolver`` (``solve(...).density``) and of
  data files.  The filling of DESIGN.md is ``n = N_e / (2N)``, so half filling (n = 1/2) is one
  electron per site.  Hole density per site ``h_i = 1 - n_i`` (in ``[-1, 1]``; negative on sites
  with more than one electron); ``sum_i h_i = N - N_e = N (1 - 2n)``, e.g. ``0.03 N`` holes at
  n = 0.485.  Holes in clusters: ``sum_{i in clusters} h_i / sum_i h_i``.

Per trajectory, :func:`analyze_trajectory` gives these against time; :func:`analyze_runs` averages
independent runs (:func:`itinerant.coarsening.aggregate_runs`); :func:`analyze_cli` writes the
table, JSON and figures of ``itinerant analyze`` for square-lattice trajectories.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from .. import coarsening
from ..coarsening import as_grid
from ..lattice import Lattice
from .common import fits_json, json_list, lattice_spins, map_frames, read_lattice, write_csv

DEFAULT_THRESHOLD = 0.0
"""A bond is ferromagnetic when ``S_i . S_j > threshold``; 0 means an angle below 90 degrees."""


# ---------------------------------------------------------------------- configurations
def bond_partners(lattice: Lattice) -> np.ndarray:
    """Site ``j`` of the bond ``(i, j)`` in each direction, shape (2, N) in site order ``i``.

    Row 0: ``j = (x+1, y)``; row 1: ``j = (x, y+1)`` (periodic).  Together: each of the ``2N``
    nearest-neighbour bonds once.
    """
    x, y = lattice.coords.T
    return np.stack([lattice.site(x + 1, y), lattice.site(x, y + 1)])


def bond_field(spins, lattice: Lattice) -> np.ndarray:
    """``S_i . S_j`` on every nearest-neighbour bond, shape (..., 2, L, L), dimensionless.

    ``[..., 0, x, y]``: the bond from ``(x, y)`` to ``(x+1, y)``; ``[..., 1, x, y]``: to
    ``(x, y+1)``.  ``spins``: (N, 3) or a stack (..., N, 3).
    """
    s = lattice_spins(spins, lattice, "square")
    j = bond_partners(lattice)
    dots = np.einsum("...ia,...dia->...di", s, s[..., j, :])  # (..., 2, N)
    return as_grid(dots, lattice.L)


def nn_correlation(spins, lattice: Lattice) -> np.ndarray:
    """``<S_i . S_j>`` over the ``2N`` nearest-neighbour bonds, shape (...); -1 Neel, +1 FM."""
    return bond_field(spins, lattice).mean(axis=(-3, -2, -1))


def fm_bonds(spins, lattice: Lattice, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Boolean mask of the ferromagnetic bonds ``S_i . S_j > threshold``, shape (..., 2, L, L)."""
    return bond_field(spins, lattice) > _check_threshold(threshold)


def fm_bond_fraction(spins, lattice: Lattice, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Fraction of the ``2N`` bonds that are ferromagnetic (:func:`fm_bonds`), shape (...)."""
    return fm_bonds(spins, lattice, threshold).mean(axis=(-3, -2, -1))


def _check_threshold(threshold) -> float:
    t = float(threshold)
    if not -1.0 <= t < 1.0:
        raise ValueError(f"the FM-bond threshold on S_i . S_j must lie in [-1, 1), got {threshold}")
    return t


# ---------------------------------------------------------------------- clusters
@dataclass
class Clusters:
    """FM clusters of one configuration (see the module docstring).

    Attributes
    ----------
    labels:  (N,) int, site order ``i = x + L*y``: the cluster of each site, ``-1`` for a site
             without FM bonds.  Clusters are numbered 0, 1, ... by decreasing size (ties: by their
             smallest site index).
    sizes:   (N_c,) int, the number of sites of each cluster (all >= 2), decreasing.
    n_sites: N, the number of lattice sites.
    bonds:   the number of FM bonds.
    """

    labels: np.ndarray
    sizes: np.ndarray
    n_sites: int
    bonds: int

    @property
    def count(self) -> int:
        """Number of clusters ``N_c``."""
        return int(len(self.sizes))

    @property
    def sites(self) -> int:
        """Number of sites in clusters, ``sum s``."""
        return int(self.sizes.sum())

    @property
    def largest(self) -> int:
        """Size of the largest cluster (sites); 0 without clusters."""
        return int(self.sizes[0]) if len(self.sizes) else 0

    @property
    def mean_number(self) -> float:
        """Number-average size ``sum s / N_c`` (sites); NaN without clusters."""
        return float(self.sizes.mean()) if len(self.sizes) else float("nan")

    @property
    def mean_weight(self) -> float:
        """Weight-average size ``sum s^2 / sum s`` (sites); NaN without clusters."""
        s = self.sizes.astype(np.float64)
        return float((s ** 2).sum() / s.sum()) if len(s) else float("nan")

    @property
    def site_fraction(self) -> float:
        """Fraction of the sites that belong to a cluster, ``sum s / N``."""
        return self.sites / self.n_sites

    def histogram(self) -> np.ndarray:
        """Size distribution: (N+1,) ints, entry ``s`` = number of clusters of ``s`` sites
        (:func:`size_histogram`)."""
        return size_histogram(self.sizes, self.n_sites)

    def grid(self, L: int) -> np.ndarray:
        """``labels`` as an (L, L) grid indexed [x, y]."""
        return as_grid(self.labels, L)


def label_clusters(bonds, lattice: Lattice) -> Clusters:
    """Periodic connected components of the sites joined by the bonds marked in ``bonds``.

    ``bonds``: boolean (2, L, L) bond mask laid out like :func:`bond_field` (e.g. :func:`fm_bonds`).
    The graph is built on the torus (``scipy.sparse.csgraph.connected_components``), so a cluster
    crossing the boundary of the ``L x L`` cell is one cluster.  Sites without a marked bond are
    not clusters.
    """
    if not isinstance(lattice, Lattice) or lattice.name != "square":
        raise ValueError(f"this analysis needs a square Lattice, got {lattice!r}")
    mask = np.asarray(bonds)
    if mask.shape != (2, lattice.L, lattice.L) or mask.dtype != bool:
        raise ValueError(f"bonds must be a boolean array of shape (2, {lattice.L}, {lattice.L}), "
                         f"got {mask.dtype} {mask.shape}")
    N = lattice.N
    on = mask.swapaxes(-1, -2).reshape(2, N)  # back to site order i = x + L*y
    partners = bond_partners(lattice)
    d, i = np.nonzero(on)
    j = partners[d, i]
    graph = sp.coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(N, N))
    _, comp = connected_components(graph, directed=False)
    comp_sizes = np.bincount(comp)
    # Components of one site are sites without a marked bond (a bond joins two distinct sites).
    keep = np.nonzero(comp_sizes >= 2)[0]
    first_site = np.full(len(comp_sizes), N)
    np.minimum.at(first_site, comp, np.arange(N))
    order = keep[np.lexsort((first_site[keep], -comp_sizes[keep]))]
    new_label = np.full(len(comp_sizes), -1, dtype=np.int64)
    new_label[order] = np.arange(len(order))
    return Clusters(labels=new_label[comp], sizes=comp_sizes[order].astype(np.int64), n_sites=N,
                    bonds=int(len(i)))


def fm_clusters(spins, lattice: Lattice, threshold: float = DEFAULT_THRESHOLD) -> Clusters:
    """FM clusters of one configuration (N, 3): :func:`label_clusters` of :func:`fm_bonds`."""
    s = lattice_spins(spins, lattice, "square")
    if s.ndim != 2:
        raise ValueError(f"fm_clusters takes one configuration (N, 3), got shape {s.shape}")
    return label_clusters(fm_bonds(s, lattice, threshold), lattice)


def size_histogram(sizes, n_sites: int) -> np.ndarray:
    """Cluster-size distribution ``n_s``: (n_sites + 1,) ints, entry ``s`` = number of clusters of
    ``s`` sites.  ``sum n_s`` is the number of clusters and ``sum s n_s`` the number of sites in
    clusters; entries 0 and 1 are 0 for :class:`Clusters` sizes."""
    sizes = np.asarray(sizes, dtype=np.int64)
    if sizes.size and (sizes.min() < 0 or sizes.max() > n_sites):
        raise ValueError(f"cluster sizes must lie in [0, {n_sites}]")
    return np.bincount(sizes, minlength=n_sites + 1)


# ---------------------------------------------------------------------- Neel order
def _stagger_signs(lattice: Lattice) -> np.ndarray:
    """``(-1)^(x + y)``, shape (N,); even L (as :func:`itinerant.observables.staggered_magnetization`)."""
    if lattice.L % 2:
        raise ValueError(f"the staggered magnetization needs an even L, got L = {lattice.L}")
    return 1.0 - 2.0 * (lattice.coords.sum(axis=1) % 2)


def staggered_vector(spins, lattice: Lattice) -> np.ndarray:
    """``m_s = (1/N) sum_i (-1)^(x+y) S_i``, shape (..., 3); the Neel state along ``u`` gives ``u``."""
    s = lattice_spins(spins, lattice, "square")
    return np.einsum("i,...ia->...a", _stagger_signs(lattice), s) / lattice.N


def staggered_moment(spins, lattice: Lattice) -> np.ndarray:
    """``|m_s|``, shape (...), in [0, 1]: 1 in the Neel state, ~ 1/sqrt(N) for random spins."""
    return np.linalg.norm(staggered_vector(spins, lattice), axis=-1)


def staggered_structure_factor(spins, lattice: Lattice) -> np.ndarray:
    """``S(pi, pi) / N = (1/N^2) sum_a |sum_i S_i^a exp(-i Q . r_i)|^2 = |m_s|^2``, shape (...).

    1 in the Neel state, 0 in a ferromagnet, ~ 1/N for random spins.
    """
    return (staggered_vector(spins, lattice) ** 2).sum(axis=-1)


def neel_axis(spins, lattice: Lattice) -> np.ndarray:
    """Principal axis ``u`` (3,) of the staggered tensor ``(1/N) sum_i n_i n_i^T`` of one
    configuration, ``n_i = (-1)^(x+y) S_i``; sign chosen so that ``sum_i n_i . u >= 0``."""
    s = lattice_spins(spins, lattice, "square")
    if s.ndim != 2:
        raise ValueError(f"neel_axis takes one configuration (N, 3), got shape {s.shape}")
    n = _stagger_signs(lattice)[:, None] * s
    _, vecs = np.linalg.eigh(n.T @ n / lattice.N)
    u = vecs[:, -1]
    return -u if (n @ u).sum() < 0 else u


def neel_map(spins, lattice: Lattice, axis=None) -> np.ndarray:
    """Neel field ``phi_i = (-1)^(x+y) S_i . u`` of one configuration, shape (L, L) indexed [x, y],
    in [-1, 1]; ``u`` = ``axis`` (normalised) or :func:`neel_axis`."""
    s = lattice_spins(spins, lattice, "square")
    u = neel_axis(s, lattice) if axis is None else np.asarray(axis, float) / np.linalg.norm(axis)
    return as_grid(_stagger_signs(lattice) * (s @ u), lattice.L)


# ---------------------------------------------------------------------- electron density
def _check_density(density, lattice: Lattice) -> np.ndarray:
    n = np.asarray(density, dtype=np.float64)
    if n.ndim < 1 or n.shape[-1] != lattice.N:
        raise ValueError(f"density must have shape (..., {lattice.N}) for {lattice}, got {n.shape}")
    return n


def density_map(density, lattice: Lattice) -> np.ndarray:
    """Electron density ``n_i`` (..., N) (electrons per site, in [0, 2]) as a grid (..., L, L)
    indexed [x, y]."""
    return as_grid(_check_density(density, lattice), lattice.L)


def hole_density(density) -> np.ndarray:
    """Hole density ``h_i = 1 - n_i`` per site from the electron density (any shape); 0 at half
    filling, ``sum_i h_i = N - N_e``."""
    return 1.0 - np.asarray(density, dtype=np.float64)


def hole_map(density, lattice: Lattice) -> np.ndarray:
    """Hole density ``1 - n_i`` as a grid (..., L, L) indexed [x, y]."""
    return as_grid(hole_density(_check_density(density, lattice)), lattice.L)


def holes_in_clusters(density, clusters: Clusters) -> float:
    """Fraction of the holes on cluster sites, ``sum_{i in clusters} h_i / sum_i h_i``.

    ``density``: (N,) electrons per site of the configuration ``clusters`` was labelled from.  NaN
    when the total hole number ``sum_i h_i`` is zero (half filling).
    """
    h = hole_density(density)
    if h.shape != clusters.labels.shape:
        raise ValueError(f"density must have shape {clusters.labels.shape}, got {h.shape}")
    total = h.sum()
    if abs(total) < 1e-9 * len(h):
        return float("nan")
    return float(h[clusters.labels >= 0].sum() / total)


# ---------------------------------------------------------------------- trajectories
QUANTITIES = ("energy", "nn_correlation", "fm_fraction", "cluster_count", "cluster_mean",
              "cluster_mean_weight", "cluster_largest", "cluster_site_fraction", "staggered_sf",
              "staggered_moment")
"""Per-frame results of :func:`analyze_trajectory` (besides ``time``), averaged over runs."""

DEFINITIONS = {
    "energy": "energy per site (force field), units of t1",
    "nn_correlation": "<S_i . S_j> over the 2N nearest-neighbour bonds (-1 Neel, +1 FM)",
    "fm_fraction": "fraction of the 2N bonds with S_i . S_j > threshold",
    "cluster_count": "number of FM clusters: periodic connected components of sites joined by FM "
                     "bonds, sites without FM bonds excluded",
    "cluster_mean": "number-average cluster size sum s / N_c (sites); undefined without clusters",
    "cluster_mean_weight": "weight-average cluster size sum s^2 / sum s (sites); undefined without "
                           "clusters",
    "cluster_largest": "sites in the largest FM cluster (0 without clusters)",
    "cluster_site_fraction": "fraction of the sites that belong to an FM cluster",
    "staggered_sf": "S(pi, pi) / N = |m_s|^2 (1 in the Neel state)",
    "staggered_moment": "|m_s| = |(1/N) sum_i (-1)^(x+y) S_i| (1 in the Neel state)",
    "holes_in_clusters": "sum over cluster sites of (1 - n_i) / sum over all sites of (1 - n_i), "
                         "n_i = electrons per site (file dataset 'density')",
    "cluster_radius": "sqrt(cluster_mean_weight), linear size of a typical cluster (lattice "
                      "constants)",
}
"""What each quantity is, as stored in ``analysis.json``."""


def frame_observables(spins, lattice: Lattice, threshold: float = DEFAULT_THRESHOLD,
                      density=None) -> dict:
    """All per-frame observables of one configuration (N, 3) as floats (:data:`QUANTITIES` but
    ``energy``), plus ``"cluster_sizes"`` (the :class:`Clusters` sizes) and, with ``density``
    (N,), ``"holes_in_clusters"``."""
    s = lattice_spins(spins, lattice, "square")
    b = bond_field(s, lattice)
    cl = label_clusters(b > _check_threshold(threshold), lattice)
    out = {
        "nn_correlation": float(b.mean()),
        "fm_fraction": cl.bonds / (2 * lattice.N),
        "cluster_count": float(cl.count),
        "cluster_mean": cl.mean_number,
        "cluster_mean_weight": cl.mean_weight,
        "cluster_largest": float(cl.largest),
        "cluster_site_fraction": cl.site_fraction,
        "staggered_sf": float(staggered_structure_factor(s, lattice)),
        "staggered_moment": float(staggered_moment(s, lattice)),
        "cluster_sizes": cl.sizes,
    }
    if density is not None:
        out["holes_in_clusters"] = holes_in_clusters(_check_density(density, lattice), cl)
    return out


def analyze_trajectory(path, threshold: float = DEFAULT_THRESHOLD, every: int = 1) -> dict:
    """Observables of a square-lattice trajectory file along time (frames read one at a time).

    The file holds ``spins`` (F, N, 3), ``time`` (F,), ``energy`` (F,) and the root attributes
    ``lattice = "square"`` and ``L`` (:mod:`itinerant.io`); an optional ``density`` dataset (F, N)
    of electrons per site adds ``holes_in_clusters``.

    Returns ``{"time" (units 1/t1), "energy" (per site, units t1), "nn_correlation",
    "fm_fraction", "cluster_count", "cluster_mean", "cluster_mean_weight", "cluster_largest",
    "cluster_site_fraction", "staggered_sf", "staggered_moment", "cluster_radius" (sqrt of the
    weight-average size)}`` as float arrays (F',) over the analysed frames, ``"cluster_sizes"`` (a
    list of F' int arrays), ``"holes_in_clusters"`` (F',) if the file has densities, and ``"L"``,
    ``"path"``, ``"threshold"``.  ``every`` analyses every ``every``-th frame (the last one always).
    The lattice size must be even (staggered order).
    """
    path = Path(path)
    lattice = read_lattice(path)
    if lattice.name != "square":
        raise ValueError(f"{path} holds a {lattice.name}-lattice trajectory; this analysis is for "
                         "the square lattice")
    if not isinstance(every, (int, np.integer)) or every < 1:
        raise ValueError(f"every must be a positive integer, got {every!r}")
    threshold = _check_threshold(threshold)
    _stagger_signs(lattice)  # even L
    with h5py.File(path, "r") as h5:
        missing = [k for k in ("time", "spins", "energy") if k not in h5]
        if missing:
            raise ValueError(f"{path}: not a trajectory file (missing datasets {missing})")
        n = len(h5["time"])
        if n == 0:
            raise ValueError(f"{path}: the trajectory has no frames")
        has_density = "density" in h5
        if has_density and h5["density"].shape[1:] != (lattice.N,):
            raise ValueError(f"{path}: dataset 'density' has shape {h5['density'].shape}, expected "
                             f"(frames, {lattice.N})")
        frames = np.unique(np.append(np.arange(0, n, every), n - 1))
        if has_density and len(h5["density"]) < n:
            raise ValueError(f"{path}: dataset 'density' has fewer frames than 'time'")
        time = h5["time"][...][frames]
        energy = h5["energy"][...][frames] / lattice.N
        rows = []
        for f in frames:
            dens = h5["density"][f] if has_density else None
            rows.append(frame_observables(h5["spins"][f], lattice, threshold, dens))
    out = {"time": np.asarray(time, float), "energy": np.asarray(energy, float)}
    scalar_keys = [k for k in rows[0] if k != "cluster_sizes"]
    out.update({k: np.array([r[k] for r in rows], dtype=float) for k in scalar_keys})
    out["cluster_sizes"] = [r["cluster_sizes"] for r in rows]
    out["cluster_radius"] = np.sqrt(out["cluster_mean_weight"])
    out.update(L=lattice.L, path=str(path), threshold=threshold)
    return out


def analyze_runs(paths, threshold: float = DEFAULT_THRESHOLD, every: int = 1, window=None) -> dict:
    """Analyse independent runs of the same lattice size and frame times; mean and standard error.

    Returns :func:`itinerant.coarsening.aggregate_runs` of the per-run results: ``"time"``,
    ``"mean"`` and ``"err"`` (standard error of the mean across runs; NaN for one run) of every
    :data:`QUANTITIES` entry (and ``holes_in_clusters`` when every run has densities); plus
    ``"runs"`` (the :func:`analyze_trajectory` dicts), ``"L"``, ``"threshold"``.

    ``window = (t_min, t_max)`` additionally fits ``cluster_radius ~ t^p`` over that window
    (:func:`itinerant.coarsening.fit_power_law`; ``"fits"``, ``"fit_errors"``), a measure of
    whether cluster coarsening has frozen (p -> 0); without a window nothing is fitted and
    ``"fits"`` is empty.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no trajectory files given")
    runs = [analyze_trajectory(p, threshold=threshold, every=every) for p in paths]
    sizes = {r["L"] for r in runs}
    if len(sizes) > 1:
        raise ValueError(f"the runs have different lattice sizes {sorted(sizes)}; analyse them separately")
    L = runs[0]["L"]
    quantities = list(QUANTITIES)
    if all("holes_in_clusters" in r for r in runs):
        quantities.append("holes_in_clusters")
    if window is None:
        # No exponent to fit: no length keys, and an all-times window so that aggregate_runs does
        # not look for its default coarsening window; only its averaging is used.
        agg = coarsening.aggregate_runs(runs, quantities, (), system_size=L,
                                        window=(-math.inf, math.inf))
        agg.update(window=None, window_rule=None, fits={}, fit_errors={})
    else:
        agg = coarsening.aggregate_runs(runs, quantities + ["cluster_radius"], ("cluster_radius",),
                                        system_size=L, window=window)
        del agg["mean"]["cluster_radius"], agg["err"]["cluster_radius"]
    agg.update(runs=runs, L=L, threshold=float(threshold))
    return agg


def mean_size_distribution(agg: dict, frame: int = -1) -> dict:
    """Run-averaged cluster-size distribution at one analysed frame (default: the last).

    Returns ``{"size": s (sizes present, >= 2), "clusters_per_site": <n_s>/N}`` (arrays, the mean
    over runs of the number of clusters of ``s`` sites divided by N), ``"time"``.
    """
    runs = agg["runs"]
    N = agg["L"] ** 2
    k = frame % agg["frames"]
    hist = np.mean([size_histogram(r["cluster_sizes"][k], N) for r in runs], axis=0) / N
    s = np.nonzero(hist)[0]
    return {"size": s, "clusters_per_site": hist[s], "time": float(agg["time"][k])}


# ---------------------------------------------------------------------- figures
def _symlog_time(ax, t):
    """Logarithmic time axis above the first non-zero frame time (linear below, shows t = 0)."""
    ax.set_xscale("symlog", linthresh=max(t[1] if len(t) > 1 else 1.0, 1e-3))


def plot_observables(agg: dict, out) -> Path:
    """Observables against time (run mean +- standard error; logarithmic time axis above the first
    non-zero time): energy per site; ``<S_i.S_j>``, FM-bond fraction, ``|m_s|`` and
    ``S(pi,pi)/N``; cluster sizes (number-average, weight-average, largest); number of clusters
    per site and the fraction of sites (and holes, if present) in clusters.  Writes the PNG ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, m, e = agg["time"], agg["mean"], agg["err"]
    N = agg["L"] ** 2
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    (a1, a2), (a3, a4) = axes
    a1.errorbar(t, m["energy"], e["energy"], color="k", lw=1)
    a1.set_ylabel("energy per site (t1)")
    for key, label in (("nn_correlation", r"$\langle S_i\cdot S_j\rangle_{nn}$"),
                       ("fm_fraction", f"FM bonds ($S_i\\cdot S_j > {agg['threshold']:g}$)"),
                       ("staggered_moment", r"$|m_s|$"),
                       ("staggered_sf", r"$S(\pi,\pi)/N$")):
        a2.errorbar(t, m[key], e[key], label=label, lw=1)
    a2.set_ylim(-1.05, 1.05)
    a2.axhline(0, color="0.8", lw=0.5)
    a2.legend(fontsize=8)
    for key, label in (("cluster_mean", r"$\langle s\rangle_n = \sum s / N_c$"),
                       ("cluster_mean_weight", r"$\langle s\rangle_w = \sum s^2 / \sum s$"),
                       ("cluster_largest", r"$s_{max}$")):
        y = np.where(m[key] > 0, m[key], np.nan)  # no clusters: nothing to draw on a log axis
        a3.errorbar(t, y, e[key], label=label, lw=1)
    a3.set_yscale("log")
    a3.set_ylabel("cluster size (sites)")
    a3.legend(fontsize=8)
    a4.errorbar(t, m["cluster_count"] / N, e["cluster_count"] / N, label="clusters per site", lw=1)
    a4.errorbar(t, m["cluster_site_fraction"], e["cluster_site_fraction"],
                label="fraction of sites in clusters", lw=1)
    if "holes_in_clusters" in m:
        a4.errorbar(t, m["holes_in_clusters"], e["holes_in_clusters"],
                    label="fraction of holes in clusters", lw=1)
    a4.legend(fontsize=8)
    for ax in (a3, a4):
        ax.set_xlabel("time (1/t1)")
    for ax in axes.ravel():
        _symlog_time(ax, t)
    fig.suptitle(f"{len(agg['runs'])} run(s), {agg['L']}x{agg['L']} square lattice")
    out = Path(out)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def _bond_segments(mask) -> np.ndarray:
    """Line segments (K, 2, 2) of the marked bonds of a (2, L, L) mask, in site coordinates
    (a bond across the boundary runs from x = L-1 to x = L and is clipped by the axes)."""
    segs = []
    for d, (dx, dy) in enumerate(((1, 0), (0, 1))):
        x, y = np.nonzero(mask[d])
        segs.append(np.stack([np.stack([x, y], -1), np.stack([x + dx, y + dy], -1)], axis=1))
    return np.concatenate(segs).astype(float)


def plot_maps(path, out, frames=None, count: int = 4, threshold: float = DEFAULT_THRESHOLD) -> Path:
    """Maps at several frames of one trajectory (default: about ``count`` frames spread in log time).

    Top row: the Neel field ``phi`` (:func:`neel_map`, red/blue = the two Neel domains; FM regions
    are checkerboards) with the FM bonds drawn on top (black).  Second row, if the file has a
    ``density`` dataset: the hole density ``1 - n_i`` with the FM bonds.  Writes the PNG ``out``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    lattice = read_lattice(path)
    L = lattice.L
    with h5py.File(path, "r") as h5:
        n = len(h5["time"])
        frames = map_frames(n, count) if frames is None else list(frames)
        times = h5["time"][...][frames]
        spins = [h5["spins"][f] for f in frames]
        holes = [hole_map(h5["density"][f], lattice) for f in frames] if "density" in h5 else None
    rows = 1 if holes is None else 2
    fig, axes = plt.subplots(rows, len(frames), figsize=(3.6 * len(frames), 3.4 * rows),
                             squeeze=False)
    hmax = max(float(np.abs(h).max()) for h in holes) if holes is not None else 1.0
    extent = (-0.5, L - 0.5, -0.5, L - 0.5)
    lw = max(0.3, min(2.0, 60.0 / L))
    for k, (t, s) in enumerate(zip(times, spins)):
        b = fm_bonds(s, lattice, threshold)
        cl = label_clusters(b, lattice)
        segs = _bond_segments(b)
        ax = axes[0, k]
        im = ax.imshow(neel_map(s, lattice).T, origin="lower", extent=extent, cmap="RdBu_r",
                       vmin=-1, vmax=1, interpolation="nearest")
        ax.add_collection(LineCollection(segs, colors="k", linewidths=lw))
        ax.set_title(f"t = {t:.4g}: {cl.count} clusters, largest {cl.largest}", fontsize=9)
        if holes is not None:
            ax2 = axes[1, k]
            imh = ax2.imshow(holes[k].T, origin="lower", extent=extent, cmap="PuOr_r",
                             vmin=-hmax, vmax=hmax, interpolation="nearest")
            ax2.add_collection(LineCollection(segs, colors="k", linewidths=0.5 * lw, alpha=0.6))
        for a in axes[:, k]:
            a.set_xlim(extent[:2])
            a.set_ylim(extent[2:])
            a.set_aspect("equal")
            a.set_xticks([])
            a.set_yticks([])
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8,
                 label=r"Neel field $(-1)^{x+y} S_i\cdot u$; lines: FM bonds")
    if holes is not None:
        fig.colorbar(imh, ax=axes[1].tolist(), shrink=0.8, label=r"hole density $1 - n_i$")
    fig.suptitle(f"{L}x{L} square lattice, FM bonds: $S_i\\cdot S_j > {threshold:g}$")
    out = Path(out)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


# ---------------------------------------------------------------------- itinerant analyze
def analyze_cli(paths, out, window=None, level: float = 0.5, ising: bool = False, every: int = 1,
                threshold: float = DEFAULT_THRESHOLD) -> dict:
    """Everything ``itinerant analyze`` writes for square-lattice trajectories.

    Files in ``out``: ``observables.csv`` (per time: run means and standard errors of
    :data:`QUANTITIES`), ``analysis.json`` (definitions, threshold, means, errors, the size
    distribution of the last frame, the optional fit), ``observables.png``
    (:func:`plot_observables`) and ``maps.png`` (:func:`plot_maps` of the first run).  ``window``
    fits ``cluster_radius ~ t^p`` over it.  ``level`` and ``ising`` belong to the triangular
    analysis and must keep their defaults.  Returns ``{"files", "report", "analysis"}``.
    """
    if level != 0.5 or ising:
        raise ValueError("--level and --ising set the chirality domain size of the triangular "
                         "analysis; they do not apply to square-lattice trajectories")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    agg = analyze_runs(paths, threshold=threshold, every=every, window=window)
    files = [write_csv(agg, out / "observables.csv"), _write_json(agg, out / "analysis.json")]
    files.append(plot_observables(agg, out / "observables.png"))
    files.append(plot_maps(paths[0], out / "maps.png", threshold=threshold))
    m = agg["mean"]
    report = [f"{len(agg['runs'])} run(s), {agg['L']}x{agg['L']} square lattice, t up to "
              f"{agg['time'][-1]:.6g}, FM bond: S_i.S_j > {agg['threshold']:g}",
              "last frame (run mean): "
              f"<S_i.S_j>_nn = {m['nn_correlation'][-1]:.4f}, FM bonds {m['fm_fraction'][-1]:.4f}, "
              f"clusters {m['cluster_count'][-1]:.4g}, <s>_w = {m['cluster_mean_weight'][-1]:.4g}, "
              f"largest {m['cluster_largest'][-1]:.4g}, |m_s| = {m['staggered_moment'][-1]:.4f}, "
              f"S(pi,pi)/N = {m['staggered_sf'][-1]:.4f}"]
    for key, fit in agg["fits"].items():
        report.append(f"{key}: {fit}" if fit is not None else f"{key}: no fit ({agg['fit_errors'][key]})")
    return {"files": files, "report": report, "analysis": agg}


def _write_json(agg: dict, path: Path) -> Path:
    dist = mean_size_distribution(agg)
    keys = list(agg["mean"]) + list(agg["fits"])
    doc = {
        "lattice": "square", "L": agg["L"], "runs": [r["path"] for r in agg["runs"]],
        "threshold": agg["threshold"],
        "definitions": {
            **{k: DEFINITIONS[k] for k in keys},
            "fm_bond": f"S_i . S_j > {agg['threshold']:g} on a nearest-neighbour bond",
            "err": "standard error of the mean across runs (null for one run)",
            "size_distribution": "run mean of the number of clusters of s sites per lattice site, "
                                 "at the last analysed frame",
        },
        "time": agg["time"].tolist(),
        "mean": {k: json_list(v) for k, v in agg["mean"].items()},
        "err": {k: json_list(v) for k, v in agg["err"].items()},
        "size_distribution": {"time": dist["time"], "size": dist["size"].tolist(),
                              "clusters_per_site": dist["clusters_per_site"].tolist()},
        "window": list(agg["window"]) if agg["window"] is not None else None,
        "fits": fits_json(agg["fits"]),
        "fit_errors": agg["fit_errors"],
    }
    path.write_text(json.dumps(doc, indent=1, allow_nan=False))
    return path
