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

Evaluation: a few dozen per-site fields (``S_x . S_{x+delta}`` per bond direction, triangle
chiralities per shape), one gather of all orbits of all sites, one batched matrix product with the
per-orbit bases, and three gather / scatter-add passes for the degree 1-3 invariants -- batched over
all sites and leading batch dimensions, in the dtype and on the device of the input spins.
Shapes: spins (..., N, 3) -> descriptor (..., N, n_features); spins are dimensionless unit
vectors, so are all features.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from .lattice import Lattice

DEFAULT_CUTOFF = {"square": 4.0, "triangular": 5.0}
"""Default cutoff r_c per lattice, chosen from the locality study (benchmarks/locality.py,
docs/descriptor.md §4): beyond it, redrawing all farther spins changes the field at the centre by
< 0.2 % of |h| in near-ordered states (triangular tetrahedral, filling 1/4; square near-Neel at
fixed mu) and by ~2 % (triangular) / < 1 % (square) in random states."""


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
            raise ValueError(f"cutoff must be a finite distance >= 1 (nearest neighbours), "
                             f"got {cutoff}")
        shells = tuple(int(s) for s in bond_shells)
        if any(s < 1 for s in shells) or len(set(shells)) != len(shells):
            raise ValueError(f"bond_shells must be distinct shell numbers >= 1, "
                             f"got {bond_shells!r}")
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
        self.bonds = bonds
        """Bond variables as pairs (j, k) of neighbourhood indices, shape (n_bonds, 2)."""
        self.triangles = triangles
        """Chirality triangles (a, b, c), counter-clockwise, shape (n_triangles, 3)."""
        self.copies = copies
        """Irrep copies: sector, irrep, orbit, radius and ``index`` of the d coefficients."""
        self.orbits = [{k: v for k, v in orb.items() if k not in ("perm", "signs")}
                       for orb in orbits]
        terms, self.feature_info = _invariants(group, copies)
        self.n_features = len(self.feature_info)
        self.n_variables = len(bonds) + len(triangles)
        self.n_coefficients = len(orbits) * n_g

        # Translation invariance: every variable is a per-site "field" (S_x . S_{x+delta} for a
        # displacement delta, or the chirality of a triangle shape anchored at x) read at an anchor
        # site x = i + o_anchor.  The fields are computed once per site, then gathered.
        anchor, field, disp, shapes = _fields(offsets, bonds, triangles)
        self.n_fields = len(disp) + len(shapes)
        self.field_disp, self.field_shapes = disp, shapes
        """Field geometry: displacements d of the bond fields (n_disp, 2), then the triangle
        shapes (u, w) of the chirality fields (n_shapes, 2, 2), in lattice coordinates."""
        slot = gather.ravel()
        buffers = {
            "neighbors": lattice.gather_indices(offsets),        # (N, K) sites i + o_k
            "disp_sites": lattice.gather_indices(disp).reshape(lattice.N, len(disp)),
            "shape_sites": lattice.gather_indices(shapes.reshape(-1, 2)).reshape(
                lattice.N, len(shapes), 2),
            "var_anchor": anchor, "var_field": field,
            "slot_anchor": anchor[slot], "slot_field": field[slot],   # (orbits * |G|,)
            "orbit_basis": W,
        }
        self._unit_coef = {deg: bool(np.all(t[1] == 1.0)) for deg, t in terms.items()}
        for deg, (idx, coef, out) in terms.items():
            buffers.update({f"term{deg}_idx": idx, f"term{deg}_coef": coef, f"term{deg}_out": out})
        # Buffers follow .to(device); they are rebuilt from config(), so they stay out of the
        # state_dict (which then does not depend on L).
        for name, value in buffers.items():
            self.register_buffer(name, torch.as_tensor(value), persistent=False)

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
            raise ValueError(f"unknown descriptor settings {sorted(unknown)}; "
                             f"known: {sorted(known)}")
        if "cutoff" not in cfg:
            raise ValueError("descriptor settings need a 'cutoff'")
        opts = {k: v for k, v in cfg.items() if k != "cutoff"}
        return cls(lattice, cfg["cutoff"], **opts)

    def extra_repr(self) -> str:
        return (f"{self.lattice!r}, cutoff={self.cutoff:g}, bond_shells={self.bond_shells}, "
                f"chirality={self.chirality}, neighbours={len(self.offsets) - 1}, "
                f"variables={self.n_variables}, n_features={self.n_features}")

    # ------------------------------------------------------------------ evaluation
    # Internally everything is "row-major over quantities, batch last": (rows, B) tensors whose
    # rows are (site, field), (coefficient, site) or (feature, site), so that every gather and
    # scatter moves contiguous rows of length B.
    def forward(self, spins: torch.Tensor, sites=None) -> torch.Tensor:
        """Descriptor of every site.

        ``spins`` (..., N, 3) gives (..., N, F) in the dtype and on the device of ``spins``
        (floating point).  ``sites`` (optional, 1D indices) restricts the centres, giving
        (..., len(sites), F) -- for evaluating a large lattice in chunks.
        """
        table, batch = self._field_table(spins)
        nbr = self._centres(sites)
        f = self._coefficients(table, nbr)
        return self._to_batch_last(self._invariants(f), batch, len(nbr))

    def variables(self, spins: torch.Tensor, sites=None) -> torch.Tensor:
        """Bond variables then chiralities of every neighbourhood, shape (..., N, n_variables)."""
        table, batch = self._field_table(spins)
        nbr = self._centres(sites)
        rows = (nbr[:, self.var_anchor] * self.n_fields + self.var_field).T  # (V, n)
        v = table.index_select(0, rows.reshape(-1)).reshape(len(rows), -1)
        return self._to_batch_last(v, batch, len(nbr))

    def coefficients(self, spins: torch.Tensor, sites=None) -> torch.Tensor:
        """Irrep coefficients, shape (..., N, n_coefficients); entry ``copy["index"]`` of
        :attr:`copies` holds the d components of that copy (zero-padded orbits leave zeros)."""
        table, batch = self._field_table(spins)
        nbr = self._centres(sites)
        return self._to_batch_last(self._coefficients(table, nbr), batch, len(nbr))

    def invariants(self, f: torch.Tensor) -> torch.Tensor:
        """The descriptor from irrep coefficients: (..., n_coefficients) -> (..., n_features)."""
        lead = f.shape[:-1]
        rows = f.reshape(-1, f.shape[-1]).T
        return self._invariants(rows).T.reshape(*lead, self.n_features)

    def _field_table(self, spins):
        """Per-site fields, shape (N * n_fields, B), rows (site, field); and the batch shape."""
        if not torch.is_tensor(spins) or not spins.is_floating_point():
            raise ValueError("spins must be a floating-point torch tensor of shape (..., N, 3)")
        N = self.lattice.N
        if spins.ndim < 2 or spins.shape[-2:] != (N, 3):
            raise ValueError(f"spins must have shape (..., N = {N}, 3) for {self.lattice!r}, "
                             f"got {tuple(spins.shape)}")
        batch = spins.shape[:-2]
        s = spins.reshape(-1, N, 3).permute(1, 2, 0)  # (N, 3, B)
        fields = [torch.einsum("ncb,nkcb->nkb", s, s[self.disp_sites])]
        if self.shape_sites.shape[1]:
            u, w = s[self.shape_sites[..., 0]], s[self.shape_sites[..., 1]]  # (N, shapes, 3, B)
            fields.append(torch.einsum("ncb,nkcb->nkb", s, torch.linalg.cross(u, w, dim=2)))
        table = torch.cat(fields, dim=1)
        return table.reshape(N * self.n_fields, -1), batch

    def _centres(self, sites) -> torch.Tensor:
        if sites is None:
            return self.neighbors
        idx = torch.as_tensor(sites, device=self.neighbors.device).reshape(-1)
        if idx.dtype not in (torch.int32, torch.int64) or len(idx) and (
                idx.min() < 0 or idx.max() >= self.lattice.N):
            raise ValueError(f"sites must be integer indices in [0, N = {self.lattice.N})")
        return self.neighbors[idx]

    def _coefficients(self, table, nbr) -> torch.Tensor:
        """(N * n_fields, B) -> (n_coefficients, n * B)."""
        n, B = len(nbr), table.shape[1]
        rows = nbr[:, self.slot_anchor].T * self.n_fields + self.slot_field[:, None]  # (slots, n)
        g = table.index_select(0, rows.reshape(-1))
        n_g = self.orbit_basis.shape[-1]
        g = g.reshape(-1, n_g, n * B)  # (orbits, |G|, n * B)
        return torch.bmm(self.orbit_basis.to(table.dtype), g).reshape(-1, n * B)

    def _invariants(self, f) -> torch.Tensor:
        """(n_coefficients, M) -> (n_features, M)."""
        out = f.new_zeros(self.n_features, f.shape[1])
        for deg in (1, 2, 3):
            idx, coef = getattr(self, f"term{deg}_idx"), getattr(self, f"term{deg}_coef")
            prod = f.index_select(0, idx[0])
            for k in range(1, deg):
                prod = prod * f.index_select(0, idx[k])
            if not self._unit_coef[deg]:
                prod = prod * coef.to(f.dtype)[:, None]
            out = out.index_add(0, getattr(self, f"term{deg}_out"), prod)
        return out

    @staticmethod
    def _to_batch_last(x, batch, n) -> torch.Tensor:
        """(rows, n * B) -> (*batch, n, rows)."""
        return x.reshape(x.shape[0], n, -1).permute(2, 1, 0).reshape(*batch, n, x.shape[0])

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


def _fields(offsets, bonds, triangles):
    """Anchor (neighbourhood index) and field index of every variable, and the field geometry.

    A bond (j, k) is ``S_x . S_{x+delta}`` with ``delta = o_k - o_j`` taken in the half plane
    ``dy > 0 or (dy == 0 and dx > 0)`` and anchor x the bond's first site in that direction.  A
    triangle (a, b, c), counter-clockwise, is ``S_x . (S_{x+u} x S_{x+w})`` for the cyclic rotation
    of its vertices with the lexicographically smallest ``(u, w)``; anchor x its first vertex.
    Returns ``anchor (V,)``, ``field (V,)``, ``disp (n_disp, 2)`` and ``shapes (n_shapes, 2, 2)``.
    """
    off = np.asarray(offsets)
    anchor, field, disp, shapes = [], [], {}, {}
    for j, k in bonds:
        d = off[k] - off[j]
        if not (d[1] > 0 or (d[1] == 0 and d[0] > 0)):
            d, j = -d, k
        anchor.append(j)
        field.append(disp.setdefault(tuple(int(x) for x in d), len(disp)))
    for t in triangles:
        rotations = [(t[r], t[(r + 1) % 3], t[(r + 2) % 3]) for r in range(3)]
        keys = [tuple(int(x) for x in np.r_[off[b] - off[a], off[c] - off[a]])
                for a, b, c in rotations]
        r = min(range(3), key=keys.__getitem__)
        anchor.append(rotations[r][0])
        field.append(("shape", shapes.setdefault(keys[r], len(shapes))))
    n_disp = len(disp)
    field = [n_disp + f[1] if isinstance(f, tuple) else f for f in field]
    disp_arr = np.array(list(disp), dtype=np.int64).reshape(-1, 2)
    shape_arr = np.array(list(shapes), dtype=np.int64).reshape(-1, 2, 2)
    return (np.array(anchor, dtype=np.int64), np.array(field, dtype=np.int64), disp_arr, shape_arr)


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
