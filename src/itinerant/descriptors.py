"""Symmetry-invariant descriptor of a site's spin neighbourhood (DESIGN.md §5).

For every site i the descriptor is a vector of F real numbers that depends only on the spins within
the cutoff ``r_c`` of i and is exactly invariant under

* global spin rotations O(3), including improper ones (time reversal S -> -S): it is built from the
  bond variables ``S_j . S_k`` and from *even* products of scalar chiralities
  ``chi_abc = S_a . (S_b x S_c)`` (which are odd under S -> -S);
* the site point group (C4v square, C6v triangular), which permutes the neighbourhood;
* lattice translations (every site uses the same construction).

Construction (docs/descriptor.md has the reasoning and the feature counts):

1. Neighbourhood: offsets ``o_0 = 0, o_1, ..., o_{K-1}`` with ``|o| <= r_c``
   (:meth:`Lattice.offsets_within`).
2. Variables: bonds from the centre to every neighbour, bonds of the shells ``bond_shells`` between
   two neighbours, and (``chirality=True``) the chiralities of the smallest triangles inside the
   neighbourhood, vertices counter-clockwise.  The point group permutes the bonds; it permutes the
   triangles with the sign ``det g`` (a mirror reverses the orientation), so the chiralities form a
   signed permutation representation.
3. Each orbit of variables is decomposed with the projection operators of
   :meth:`PointGroup.irrep_basis` into irrep coefficients ``f^Gamma_r`` (a d-vector per copy r) that
   all transform with the same real matrices ``D^Gamma(g)``.
4. Invariants.  "Sector" = bond (even under S -> -S) or chiral (odd); a chiral coefficient only ever
   appears multiplied by another chiral one.  The reference of irrep Gamma in a sector is its
   innermost copy (first orbit in order of distance from the centre).
   * ``linear``:   the A1 coefficients of the bond sector;
   * ``power``:    ``|f^Gamma_r|^2`` for every other copy;
   * ``phase``:    ``f^Gamma_r . f^Gamma_ref`` for every copy but the reference (not bond A1);
   * ``coupling``: ``T(f^Gamma_r, f^Gamma_ref, b^Gamma'_ref)`` for the 2D irreps and every
     ``Gamma' != A1`` in ``Gamma x Gamma`` (T: the invariant tensor, b: the bond-sector
     reference), e.g. ``(f_r x f_ref) b^A2_ref`` -- the relative orientation of the copy and the
     reference including its handedness;
   * ``frame``:    ``T(ref^Gamma1, ref^Gamma2, b^Gamma3_ref)`` for distinct irreps: the orientation
     of the reference frames of different irreps (and of the chiral sector) relative to each other.
   All are polynomials (degree <= 3) of the coefficients: smooth, no division by norms.

Evaluation is a fixed gather, one batched matrix product per orbit and three scatter-adds of
products of gathered coefficients, batched over all sites and leading batch dimensions, in the
dtype and on the device of the input spins.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from .lattice import Lattice

DEFAULT_CUTOFF = {"square": 4.0, "triangular": 4.0}
"""Default cutoff r_c per lattice, chosen from the locality study (docs/descriptor.md)."""


class Descriptor(torch.nn.Module):
    """Point-group and O(3) invariant descriptor of every site's neighbourhood.

    Parameters
    ----------
    lattice:
        The lattice; the precomputed gather indices are for its size ``L`` (the construction itself
        does not depend on ``L``, so descriptors for different L agree site by site).
    cutoff:
        Neighbourhood radius r_c in lattice constants (>= 1).
    bond_shells:
        Neighbour shells of the bonds between two neighbours (default ``(1,)``: nearest-neighbour
        bonds); the centre is always bonded to every neighbour.  ``()`` keeps only the centre bonds.
    chirality:
        Include the scalar chiralities of the smallest triangles; default ``None`` means yes on the
        triangular lattice (elementary triangles) and no on the square lattice.
    """

    def __init__(self, lattice: Lattice, cutoff: float, *, bond_shells=(1,), chirality=None):
        super().__init__()
        if not isinstance(lattice, Lattice):
            raise TypeError(f"lattice must be an itinerant.Lattice, got {type(lattice).__name__}")
        cutoff = float(cutoff)
        if not math.isfinite(cutoff) or cutoff < 1.0:
            raise ValueError(f"cutoff must be a finite distance >= 1 (nearest neighbours), got {cutoff}")
        shells = tuple(int(s) for s in bond_shells)
        if any(s < 1 for s in shells) or len(set(shells)) != len(shells):
            raise ValueError(f"bond_shells must be distinct shell numbers >= 1, got {bond_shells!r}")
        if chirality is None:
            chirality = lattice.name == "triangular"
        if not isinstance(chirality, (bool, np.bool_)):
            raise ValueError(f"chirality must be true, false or null, got {chirality!r}")
        self.lattice = lattice
        self.cutoff = cutoff
        self.bond_shells = shells
        self.chirality = bool(chirality)

        group = lattice.point_group
        offsets = lattice.offsets_within(cutoff)
        lattice.check_offsets_fit(offsets, f"the descriptor cutoff {cutoff:g}")
        self.offsets = offsets
        site_perm = lattice.point_group_permutation(offsets)
        radius = np.linalg.norm(lattice.cartesian(offsets), axis=1)

        bonds = self._bonds(offsets, radius)
        triangles = self._triangles(offsets, radius) if self.chirality else np.zeros((0, 3), int)
        orbits = _orbits(group, site_perm, bonds, triangles, radius)

        # Per-orbit change of basis, zero-padded to |G| members and coefficients.
        n_g = group.order
        gather = np.zeros((len(orbits), n_g), dtype=np.int64)
        W = np.zeros((len(orbits), n_g, n_g))
        copies = []
        for o, orb in enumerate(orbits):
            s = len(orb["members"])
            gather[o, :s] = orb["members"]
            row = 0
            for lab in group.irrep_labels:
                basis = group.irrep_basis(orb["perm"], lab, orb["signs"])
                m, d = basis.shape[:2]
                for r in range(m):
                    W[o, row:row + d, :s] = basis[r]
                    copies.append({"sector": orb["sector"], "irrep": lab, "orbit": o,
                                   "radius": orb["radius"], "index": o * n_g + row + np.arange(d)})
                    row += d
            assert row == s, "the irreps must exhaust each orbit"
        self.copies = copies
        self.orbits = [{k: v for k, v in orb.items() if k not in ("perm", "signs")} for orb in orbits]
        terms, self.feature_info = _invariants(group, copies)
        self.n_features = len(self.feature_info)
        self.n_variables = len(bonds) + len(triangles)
        self.n_coefficients = len(orbits) * n_g

        self.register_buffer("neighbors", torch.as_tensor(lattice.gather_indices(offsets)))
        self.register_buffer("bond_pairs", torch.as_tensor(bonds))
        self.register_buffer("triangles", torch.as_tensor(triangles))
        self.register_buffer("orbit_gather", torch.as_tensor(gather))
        self.register_buffer("orbit_basis", torch.as_tensor(W))
        for deg, (idx, coef, out) in terms.items():
            self.register_buffer(f"term{deg}_idx", torch.as_tensor(idx))
            self.register_buffer(f"term{deg}_coef", torch.as_tensor(coef))
            self.register_buffer(f"term{deg}_out", torch.as_tensor(out))

    # ------------------------------------------------------------------ configuration
    def config(self) -> dict:
        """JSON-serialisable settings that rebuild the descriptor on any large enough lattice."""
        return {"cutoff": self.cutoff, "bond_shells": list(self.bond_shells),
                "chirality": self.chirality}

    @classmethod
    def from_config(cls, lattice: Lattice, cfg: dict) -> "Descriptor":
        """Rebuild from :meth:`config` (for the same lattice type; any L that fits the cutoff)."""
        known = {"cutoff", "bond_shells", "chirality"}
        unknown = set(cfg) - known
        if unknown:
            raise ValueError(f"unknown descriptor settings {sorted(unknown)}; known: {sorted(known)}")
        if "cutoff" not in cfg:
            raise ValueError("descriptor settings need a 'cutoff'")
        opts = {k: v for k, v in cfg.items() if k != "cutoff"}
        return cls(lattice, cfg["cutoff"], **opts)

    def extra_repr(self) -> str:
        return (f"{self.lattice!r}, cutoff={self.cutoff:g}, bond_shells={self.bond_shells}, "
                f"chirality={self.chirality}, neighbours={len(self.offsets) - 1}, "
                f"variables={self.n_variables}, n_features={self.n_features}")

    # ------------------------------------------------------------------ evaluation
    def forward(self, spins: torch.Tensor, sites=None) -> torch.Tensor:
        """Descriptor of every site.

        ``spins`` (..., N, 3) gives (..., N, F) in the dtype and on the device of ``spins``
        (floating point).  ``sites`` (optional, 1D indices) restricts the centres, giving
        (..., len(sites), F) -- for evaluating a large lattice in chunks.
        """
        return self.invariants(self.coefficients(spins, sites))

    def variables(self, spins: torch.Tensor, sites=None) -> torch.Tensor:
        """Bond variables then chiralities of every neighbourhood, shape (..., N, n_variables)."""
        if not torch.is_tensor(spins) or not spins.is_floating_point():
            raise ValueError("spins must be a floating-point torch tensor of shape (..., N, 3)")
        if spins.ndim < 2 or spins.shape[-2:] != (self.lattice.N, 3):
            raise ValueError(f"spins must have shape (..., N = {self.lattice.N}, 3) for "
                             f"{self.lattice!r}, got {tuple(spins.shape)}")
        nbr = self.neighbors if sites is None else self.neighbors[torch.as_tensor(
            sites, device=self.neighbors.device)]
        s = spins[..., nbr, :]  # (..., n, K, 3)
        p = self.bond_pairs
        out = [torch.einsum("...c,...c->...", s[..., p[:, 0], :], s[..., p[:, 1], :])]
        if len(self.triangles):
            t = self.triangles
            a, b, c = s[..., t[:, 0], :], s[..., t[:, 1], :], s[..., t[:, 2], :]
            out.append(torch.einsum("...c,...c->...", a, torch.linalg.cross(b, c, dim=-1)))
        return torch.cat(out, dim=-1)

    def coefficients(self, spins: torch.Tensor, sites=None) -> torch.Tensor:
        """Irrep coefficients of every orbit, shape (..., N, n_coefficients); see :attr:`copies`."""
        v = self.variables(spins, sites)
        g = v[..., self.orbit_gather]  # (..., n, orbits, |G|)
        f = torch.einsum("...os,ocs->...oc", g, self.orbit_basis.to(v.dtype))
        return f.flatten(-2)

    def invariants(self, f: torch.Tensor) -> torch.Tensor:
        """The descriptor from irrep coefficients: (..., n_coefficients) -> (..., n_features)."""
        out = f.new_zeros(*f.shape[:-1], self.n_features)
        for deg in (1, 2, 3):
            idx, coef = getattr(self, f"term{deg}_idx"), getattr(self, f"term{deg}_coef")
            prod = coef.to(f.dtype) * f[..., idx[0]]
            for k in range(1, deg):
                prod = prod * f[..., idx[k]]
            out = out.index_add(-1, getattr(self, f"term{deg}_out"), prod)
        return out

    # ------------------------------------------------------------------ construction helpers
    def _bonds(self, offsets, radius) -> np.ndarray:
        """Pairs (j, k) of neighbourhood indices: centre bonds, then neighbour-neighbour bonds."""
        lat = self.lattice
        pairs = [(0, k) for k in range(1, len(offsets))]
        if self.bond_shells:
            dists = lat.shell_distances(max(self.bond_shells))[np.array(self.bond_shells) - 1]
            vec = lat.cartesian(offsets)
            sep = np.linalg.norm(vec[:, None] - vec[None], axis=-1)
            for j, k in zip(*np.triu_indices(len(offsets), 1)):
                if j > 0 and np.isclose(sep[j, k], dists, atol=1e-6).any():
                    pairs.append((j, k))
        key = [(round(max(radius[j], radius[k]), 9), round(min(radius[j], radius[k]), 9), j, k)
               for j, k in pairs]
        return np.array([p for _, p in sorted(zip(key, pairs))], dtype=np.int64)

    def _triangles(self, offsets, radius) -> np.ndarray:
        """Smallest triangles with all vertices in the neighbourhood, counter-clockwise."""
        lat = self.lattice
        vec = lat.cartesian(offsets)
        sep = np.linalg.norm(vec[:, None] - vec[None], axis=-1)
        K = len(offsets)
        for shell in range(1, 4):
            dmax = lat.shell_distances(shell)[-1] + 1e-6
            close = sep <= dmax
            tris = [(a, b, c) for a, b, c in itertools.combinations(range(K), 3)
                    if close[a, b] and close[b, c] and close[a, c]]
            if tris:
                break
        out = []
        for a, b, c in tris:
            u, w = vec[b] - vec[a], vec[c] - vec[a]
            out.append((a, b, c) if u[0] * w[1] - u[1] * w[0] > 0 else (a, c, b))
        key = [tuple(round(x, 9) for x in sorted(radius[list(t)], reverse=True)) + tuple(sorted(t))
               for t in out]
        return np.array([t for _, t in sorted(zip(key, out))], dtype=np.int64)


def _orbits(group, site_perm, bonds, triangles, radius) -> list[dict]:
    """Orbits of the variables (bonds, then triangles) under the point group.

    Each orbit: ``members`` (indices into the variable vector), ``perm`` (|G|, s) and ``signs``
    of its representation, ``sector`` and ``radius`` (largest vertex distance).
    """
    out = []
    n_b = len(bonds)
    for sector, items, offset in (("bond", bonds, 0), ("chiral", triangles, n_b)):
        lookup = {_canonical(t): k for k, t in enumerate(items)}
        # image[g, k] and sign[g, k] of variable k under element g.
        image = np.empty((group.order, len(items)), dtype=np.int64)
        sign = np.ones((group.order, len(items)))
        for g in range(group.order):
            for k, t in enumerate(items):
                mapped = site_perm[g][t]
                image[g, k] = lookup[_canonical(mapped)]
                if sector == "chiral":
                    sign[g, k] = group.det[g]
        seen = np.zeros(len(items), dtype=bool)
        for k in range(len(items)):
            if seen[k]:
                continue
            members = list(dict.fromkeys(image[:, k].tolist()))  # images in group order
            seen[members] = True
            pos = {v: j for j, v in enumerate(members)}
            perm = np.array([[pos[image[g, v]] for v in members] for g in range(group.order)])
            signs = sign[:, members]
            out.append({"sector": sector, "members": np.array(members) + offset, "perm": perm,
                        "signs": signs, "radius": float(radius[items[k]].max()),
                        "shape": [int(x) for x in items[k]]})
    return out


def _canonical(t) -> tuple:
    """Bonds are unordered pairs; triangles are sets of three sites (orientation via signs)."""
    return tuple(sorted(int(x) for x in t))


def _invariants(group, copies):
    """Polynomial invariants of the irrep coefficients, as monomial terms per degree.

    Returns ``terms = {deg: (idx (deg, n_terms), coef (n_terms,), out (n_terms,))}`` and the list
    ``info`` describing each feature.
    """
    labels = group.irrep_labels
    dims = group.irrep_dims
    refs = {}
    for c in copies:
        refs.setdefault((c["sector"], c["irrep"]), c)
    feats = []  # (kind, [(idx tuple, coef)], info)

    def add(kind, monos, info):
        feats.append((kind, monos, info))

    def contract(T, *copies_):
        monos = []
        for abc in zip(*np.nonzero(T)):
            monos.append((tuple(int(c["index"][a]) for c, a in zip(copies_, abc)), float(T[abc])))
        return monos

    def describe(c):
        return {"sector": c["sector"], "irrep": c["irrep"], "orbit": c["orbit"],
                "radius": round(c["radius"], 6)}

    for c in copies:
        if c["sector"] == "bond" and c["irrep"] == "A1":
            add("linear", [((int(c["index"][0]),), 1.0)], [describe(c)])
    for c in copies:
        if not (c["sector"] == "bond" and c["irrep"] == "A1"):
            add("power", [((int(i), int(i)), 1.0) for i in c["index"]], [describe(c)])
    for c in copies:
        ref = refs[(c["sector"], c["irrep"])]
        if c is ref or (c["sector"] == "bond" and c["irrep"] == "A1"):
            continue
        add("phase", [((int(i), int(j)), 1.0) for i, j in zip(c["index"], ref["index"])],
            [describe(c), describe(ref)])

    seen = set()
    tensors = {}

    def tensor(l1, l2, l3):
        key = (l1, l2, l3)
        if key not in tensors:
            tensors[key] = group.invariant_tensors(key)
        return tensors[key]

    def add_triple(kind, c1, c2, c3):
        for n, T in enumerate(tensor(c1["irrep"], c2["irrep"], c3["irrep"])):
            key = (tuple(sorted((id(c1), id(c2), id(c3)))), frozenset(
                [c1["irrep"], c2["irrep"], c3["irrep"]]), n)
            if key in seen:
                continue
            monos = contract(T, c1, c2, c3)
            if _vanishes(monos):
                continue
            seen.add(key)
            add(kind, monos, [describe(c1), describe(c2), describe(c3)])

    bond_refs = [refs[("bond", lab)] for lab in labels if lab != "A1" and ("bond", lab) in refs]
    for c in copies:
        if dims[c["irrep"]] < 2:
            continue
        ref = refs[(c["sector"], c["irrep"])]
        for b in bond_refs:
            add_triple("coupling", c, ref, b)
    for sector in ("bond", "chiral"):
        own = [refs[(sector, lab)] for lab in labels if (sector, lab) in refs
               and not (sector == "bond" and lab == "A1")]
        for c1, c2 in itertools.combinations(own, 2):
            for b in bond_refs:
                add_triple("frame", c1, c2, b)

    terms = {1: [], 2: [], 3: []}
    for f, (_, monos, _) in enumerate(feats):
        for idx, coef in monos:
            terms[len(idx)].append((idx, coef, f))
    packed = {}
    for deg, lst in terms.items():
        idx = np.array([t[0] for t in lst], dtype=np.int64).reshape(-1, deg).T.copy()
        packed[deg] = (idx, np.array([t[1] for t in lst]), np.array([t[2] for t in lst],
                                                                    dtype=np.int64))
    info = [{"kind": kind, "copies": inf} for kind, _, inf in feats]
    return packed, info


def _vanishes(monos) -> bool:
    """True if a polynomial (list of monomials) is identically zero (e.g. x cross x)."""
    acc = {}
    for idx, coef in monos:
        key = tuple(sorted(idx))
        acc[key] = acc.get(key, 0.0) + coef
    return all(abs(v) < 1e-12 for v in acc.values())
