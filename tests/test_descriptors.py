"""The symmetry-invariant descriptor: exact invariance, separation, gradients, API."""

import json

import numpy as np
import pytest
import torch

import itinerant as it
from itinerant.descriptors import DEFAULT_CUTOFF, Descriptor
from itinerant.spins import random_rotation, random_spins, spiral120, tetrahedral

CASES = [("square", 9, 3.0, {}), ("triangular", 9, 3.0, {}),
         ("square", 7, 2.3, {"chirality": True, "bond_shells": (1, 2)})]
IDS = ["square", "triangular", "square-chiral-2shells"]


def _desc(kind, L, rc, opts):
    lat = it.Lattice.from_name(kind, L)
    return lat, Descriptor(lat, rc, **opts)


def _apply(d, spins):
    return d(torch.as_tensor(spins)).numpy()


def _symmetry_ops(lat, rng, n_rot=3):
    """(site permutation, spin rotation) pairs: every point-group element about a random site
    combined with a random O(3) matrix, pure translations, and pure spin rotations."""
    ops = []
    c = lat.coords[rng.integers(lat.N)]
    to0, back = lat.translation(-c[0], -c[1]), lat.translation(c[0], c[1])
    for g in range(len(lat.point_group)):
        perm = back[lat.point_operation(g)[to0]]  # about site c: i -> back(g(to0(i)))
        ops.append((perm, random_rotation(rng)))
    for dx, dy in [(1, 0), (0, 1), (2, 3)]:
        ops.append((lat.translation(dx, dy), np.eye(3)))
    for k in range(n_rot):
        R = random_rotation(rng)
        if k == 0 and np.linalg.det(R) > 0:
            R = -R  # make sure an improper rotation is tested
        ops.append((np.arange(lat.N), R))
    return ops


def invariance_error(fn, lat, spins, rng):
    """Largest relative change of ``fn`` (spins (N,3) -> (N,F)) under the symmetry operations,
    comparing site i of the original with site perm[i] of the transformed configuration."""
    x = fn(spins)
    scale = np.abs(x).max()
    err = 0.0
    for perm, R in _symmetry_ops(lat, rng):
        y = fn(lat.transform(spins @ R.T, perm))
        err = max(err, np.abs(y[perm] - x).max() / scale)
    return err


@pytest.mark.parametrize("kind,L,rc,opts", CASES, ids=IDS)
def test_exactly_invariant(kind, L, rc, opts, rng):
    lat, d = _desc(kind, L, rc, opts)
    for spins in (random_spins(lat.N, rng), random_spins(lat.N, rng)):
        assert invariance_error(lambda s: _apply(d, s), lat, spins, rng) < 1e-12


@pytest.mark.parametrize("kind,L,rc,opts", CASES[:2], ids=IDS[:2])
def test_broken_probes_are_rejected(kind, L, rc, opts, rng):
    """The invariance test guards something: descriptors with one symmetrisation step removed fail."""
    lat, d = _desc(kind, L, rc, opts)
    spins = random_spins(lat.N, rng)
    E = "E" if kind == "square" else "E1"
    ecopy = next(c for c in d.copies if c["irrep"] == E and c["sector"] == "bond")
    eref = [c for c in d.copies if c["irrep"] == E and c["sector"] == "bond"][1]
    a2 = next(c for c in d.copies if c["irrep"] == "A2" and c["sector"] == "bond")
    b1 = next(c for c in d.copies if c["irrep"] == "B1" and c["sector"] == "bond")

    def coeffs(s):
        return d.coefficients(torch.as_tensor(s)).numpy()

    def cross_with(c1, c2, one_d):
        def fn(s):
            f = coeffs(s)
            x, y = f[:, c1["index"]], f[:, c2["index"]]
            return ((x[:, 0] * y[:, 1] - x[:, 1] * y[:, 0]) * f[:, one_d["index"][0]])[:, None]
        return fn

    probes = {
        "raw bond variables": lambda s: d.variables(torch.as_tensor(s)).numpy(),
        "raw irrep coefficients": coeffs,
        "E power without summing components": lambda s: coeffs(s)[:, ecopy["index"][:1]] ** 2,
        "E x E -> A2 contracted with the B1 reference": cross_with(ecopy, eref, b1),
    }
    for name, fn in probes.items():
        assert invariance_error(fn, lat, spins, rng) > 1e-3, name
    # ... while the correct contraction passes the same test.
    assert invariance_error(cross_with(ecopy, eref, a2), lat, spins, rng) < 1e-12


@pytest.mark.parametrize("kind,L,rc,opts", CASES, ids=IDS)
def test_variables_match_a_direct_evaluation(kind, L, rc, opts, rng):
    lat, d = _desc(kind, L, rc, opts)
    s = random_spins(lat.N, rng)
    nb = s[lat.gather_indices(d.offsets)]  # (N, K, 3)
    bonds = np.einsum("nkc,nkc->nk", nb[:, d.bonds[:, 0]], nb[:, d.bonds[:, 1]])
    a, b, c = (nb[:, d.triangles[:, k]] for k in range(3))
    chi = np.einsum("nkc,nkc->nk", a, np.cross(b, c))
    assert np.allclose(_apply_vars(d, s), np.concatenate([bonds, chi], axis=1), atol=1e-14)
    if opts.get("chirality") or kind == "triangular":
        assert len(d.triangles) > 0
        vec = lat.cartesian(d.offsets)
        u, w = vec[d.triangles[:, 1]] - vec[d.triangles[:, 0]], vec[d.triangles[:, 2]] - vec[
            d.triangles[:, 0]]
        assert (u[:, 0] * w[:, 1] - u[:, 1] * w[:, 0] > 0).all(), "counter-clockwise"


def _apply_vars(d, spins):
    return d.variables(torch.as_tensor(spins)).numpy()


def test_chirality_sign_under_mirrors(rng):
    """Chiralities transform with det(g): the uniform-chirality (A2) coefficient flips under a mirror,
    so the chiral coefficients themselves are not invariant, only their even products are."""
    lat, d = _desc("triangular", 8, 2.0, {})
    spins = tetrahedral(lat)
    a2 = next(c for c in d.copies if c["irrep"] == "A2" and c["sector"] == "chiral")
    f = d.coefficients(torch.as_tensor(spins)).numpy()[:, a2["index"][0]]
    m = lat.point_group.reference_mirror
    p = lat.point_operation(m)
    g = d.coefficients(torch.as_tensor(lat.transform(spins, p))).numpy()[:, a2["index"][0]]
    assert np.abs(f).min() > 0.1
    assert np.allclose(g[p], -f, atol=1e-12)
    # Reversing the spins also flips it (time reversal) ...
    h = d.coefficients(torch.as_tensor(-spins)).numpy()[:, a2["index"][0]]
    assert np.allclose(h, -f, atol=1e-12)
    # ... and the descriptor sees both chiralities of the tetrahedral state alike, at every site.
    x = _apply(d, tetrahedral(lat, +1))
    y = _apply(d, tetrahedral(lat, -1))
    assert np.allclose(x, y, atol=1e-12) and np.allclose(x, x[0], atol=1e-12)


def test_chiral_sector_vanishes_for_coplanar_states():
    lat, d = _desc("triangular", 12, 3.0, {})
    chiral = [k for k, f in enumerate(d.feature_info)
              if any(c["sector"] == "chiral" for c in f["copies"])]
    assert chiral
    x = _apply(d, spiral120(lat))
    assert np.abs(x[:, chiral]).max() < 1e-12
    assert np.abs(_apply(d, tetrahedral(lat))[:, chiral]).max() > 0.1


@pytest.mark.parametrize("kind", ["square", "triangular"])
def test_separates_configurations_that_are_not_symmetry_related(kind, rng):
    lat, d = _desc(kind, 9, 3.0, {})
    a, b = random_spins(lat.N, rng), random_spins(lat.N, rng)
    xa, xb = _apply(d, a), _apply(d, b)
    assert np.abs(xa - xb).max(axis=1).min() > 1e-2 * np.abs(xa).max()
    # A shear (x, y) -> (x + y, y) maps the lattice onto itself but is no isometry.
    x, y = lat.coords.T
    shear = lat.site(x + y, y)
    xs = _apply(d, lat.transform(a, shear))
    assert np.abs(xs[shear] - xa).max(axis=1).min() > 1e-2 * np.abs(xa).max()
    # Reversing only the spins farther than 1.5 from the centre is not a symmetry either.
    inner = lat.gather_indices(lat.offsets_within(1.5))[0]
    c = -a
    c[inner] = a[inner]
    assert np.abs(_apply(d, c)[0] - xa[0]).max() > 1e-2 * np.abs(xa).max()


def _tangent_rank(d, lat, spins, fn):
    """Rank of d fn(site 0) / d(neighbourhood spins along their tangent planes)."""
    nb = lat.gather_indices(d.offsets)[0]
    T = np.zeros((2 * len(nb), lat.N, 3))
    for k, site in enumerate(nb):
        a = np.cross(spins[site], [1.0, 0.0, 0.0]) if abs(spins[site, 0]) < 0.9 else \
            np.cross(spins[site], [0.0, 1.0, 0.0])
        a /= np.linalg.norm(a)
        T[2 * k, site], T[2 * k + 1, site] = a, np.cross(spins[site], a)
    J = torch.autograd.functional.jacobian(fn, torch.as_tensor(spins)).numpy()
    sv = np.linalg.svd(np.einsum("fnc,tnc->ft", J, T), compute_uv=False)
    return int((sv > 1e-9 * sv[0]).sum()), len(nb)


@pytest.mark.parametrize("kind", ["square", "triangular"])
def test_descriptor_is_locally_complete(kind, rng):
    """The K unit spins of a neighbourhood have 2K degrees of freedom, 3 of which are the global
    rotation.  The descriptor's Jacobian has rank 2K - 3: near a generic configuration it tells
    apart every change that is not a global rotation.  Centre bonds alone would not (rank K - 1)."""
    lat = it.Lattice.from_name(kind, 9)
    spins = random_spins(lat.N, rng)
    d = Descriptor(lat, 3.0)
    rank, K = _tangent_rank(d, lat, spins, lambda s: d(s, sites=[0])[0])
    assert rank == 2 * K - 3
    star = Descriptor(lat, 3.0, bond_shells=(), chirality=False)
    rank, K = _tangent_rank(star, lat, spins, lambda s: star(s, sites=[0])[0])
    assert rank == K - 1


@pytest.mark.parametrize("kind", ["square", "triangular"])
def test_relative_orientation_between_copies_is_kept(kind, rng):
    """Rotating the shells beyond r0 about the centre keeps every copy's power spectrum; only the
    relative-phase (and coupling) invariants tell the two configurations apart."""
    lat = it.Lattice.from_name(kind, 9)
    d = Descriptor(lat, 3.0, bond_shells=(), chirality=False)  # each orbit within one shell
    spins = random_spins(lat.N, rng)
    g = 1  # the 90 / 60 degree rotation
    rotated = lat.transform(spins, lat.point_operation(g))
    inner = lat.gather_indices(lat.offsets_within(1.5))[0]
    rotated[inner] = spins[inner]
    x, y = _apply(d, spins)[0], _apply(d, rotated)[0]
    kinds = np.array([f["kind"] for f in d.feature_info])
    for k in ("linear", "power"):
        assert np.allclose(x[kinds == k], y[kinds == k], atol=1e-12)
    rel = kinds == "phase"
    assert np.abs(x[rel] - y[rel]).max() > 1e-2 * np.abs(x).max()


def test_descriptor_is_independent_of_L(rng):
    """Site by site, the descriptor depends only on the neighbourhood, not on the torus size."""
    rc = 3.0
    small, large = it.Lattice.triangular(9), it.Lattice.triangular(14)
    off = small.offsets_within(rc)
    spins_large = random_spins(large.N, rng)
    spins_small = random_spins(small.N, rng)
    spins_small[small.gather_indices(off)[0]] = spins_large[large.gather_indices(off)[0]]
    d_small = Descriptor(small, rc)
    d_large = Descriptor.from_config(large, json.loads(json.dumps(d_small.config())))
    assert d_large.n_features == d_small.n_features
    assert np.allclose(_apply(d_small, spins_small)[0], _apply(d_large, spins_large)[0], atol=1e-12)


@pytest.mark.parametrize("kind,L,rc", [("square", 5, 2.0), ("triangular", 5, 2.0)])
def test_gradient_matches_finite_differences(kind, L, rc, rng):
    lat = it.Lattice.from_name(kind, L)
    d = Descriptor(lat, rc)
    spins = torch.tensor(random_spins(lat.N, rng), requires_grad=True)
    w = torch.as_tensor(rng.normal(size=(d.n_features, 3)))
    sites = [0, 7, 13]
    assert torch.autograd.gradcheck(lambda s: d(s)[sites] @ w, (spins,), eps=1e-6, atol=1e-7)
    assert torch.autograd.gradcheck(d, (spins,), eps=1e-6, atol=1e-7, fast_mode=True)
    # Field-matching losses differentiate the fields again (create_graph=True).
    assert torch.autograd.gradgradcheck(lambda s: d(s)[sites] @ w, (spins,), eps=1e-6, atol=1e-6,
                                        fast_mode=True)


def test_batches_dtypes_sites_and_devices(rng):
    lat, d = _desc("triangular", 9, 2.5, {})
    stack = np.stack([random_spins(lat.N, rng) for _ in range(6)]).reshape(2, 3, lat.N, 3)
    x = d(torch.as_tensor(stack))
    assert x.shape == (2, 3, lat.N, d.n_features) and x.dtype == torch.float64
    assert torch.allclose(x[1, 2], d(torch.as_tensor(stack[1, 2])), atol=1e-13)
    x32 = d(torch.as_tensor(stack, dtype=torch.float32))
    assert x32.dtype == torch.float32
    assert torch.allclose(x32.double(), x, rtol=1e-4, atol=1e-4 * x.abs().max())
    sites = torch.tensor([4, 0, 17])
    assert torch.allclose(d(torch.as_tensor(stack), sites=sites), x[..., sites, :], atol=1e-13)
    assert d.state_dict() == {}, "nothing L-dependent is saved with a model"
    if torch.cuda.is_available():
        dc = Descriptor(lat, 2.5).to("cuda")
        xc = dc(torch.as_tensor(stack, device="cuda"))
        assert xc.device.type == "cuda"
        assert torch.allclose(xc.cpu(), x, atol=1e-12)
    d.to("cpu").to(torch.float32)  # in place: the constants become float32
    assert d(torch.as_tensor(stack[0, 0], dtype=torch.float32)).dtype == torch.float32


def test_config_and_counts():
    lat = it.Lattice.square(12)
    d = Descriptor(lat, DEFAULT_CUTOFF["square"])
    cfg = d.config()
    assert set(cfg) == {"cutoff", "bond_shells", "chirality"} and "L" not in cfg
    assert json.loads(json.dumps(cfg)) == cfg
    assert Descriptor.from_config(lat, cfg).n_features == d.n_features
    # The irrep decomposition is complete: one coefficient per variable, one A1 copy per orbit.
    dims = lat.point_group.irrep_dims
    assert sum(dims[c["irrep"]] for c in d.copies) == d.n_variables
    n_linear = sum(f["kind"] == "linear" for f in d.feature_info)
    assert n_linear == sum(o["sector"] == "bond" for o in d.orbits)
    assert len(d.feature_info) == d.n_features == d(torch.zeros(lat.N, 3)).shape[-1]
    assert "n_features" in repr(d)


def test_bad_input_is_refused():
    lat = it.Lattice.square(6)
    with pytest.raises(ValueError, match="cutoff"):
        Descriptor(lat, 0.5)
    with pytest.raises(ValueError, match="too small"):
        Descriptor(lat, 4.0)
    with pytest.raises(ValueError, match="bond_shells"):
        Descriptor(lat, 2.0, bond_shells=(0,))
    with pytest.raises(ValueError, match="chirality"):
        Descriptor(lat, 2.0, chirality="yes")
    with pytest.raises(ValueError, match="unknown descriptor settings.*'L'"):
        Descriptor.from_config(lat, {"cutoff": 2.0, "L": 6})
    d = Descriptor(lat, 2.0)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., N = 36, 3\)"):
        d(torch.zeros(35, 3))
    with pytest.raises(ValueError, match="torch tensor"):
        d(np.zeros((36, 3)))
