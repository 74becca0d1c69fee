"""Square-lattice analysis (study 2): bond field, FM bonds and periodic FM clusters, staggered order,
density maps, trajectories and ``itinerant analyze`` — checked against explicit sums, hand-made
states with known answers, a brute-force periodic union-find and global O(3) rotations."""

import json

import h5py
import numpy as np
import pytest
from scipy import ndimage
from typer.testing import CliRunner

import itinerant as it
from itinerant.analysis import square as sq
from itinerant.cli import app
from itinerant.coarsening import as_grid
from itinerant.forcefields import Heisenberg
from itinerant.spins import ferromagnet, neel, random_rotation, random_spins

runner = CliRunner()

X, Z = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])


def _block(lat, x0, y0, k, direction, background=None):
    """Neel state along z with the k x k block of sites x0..x0+k-1, y0..y0+k-1 (periodic) set to
    ``direction``; returns spins and the block's site indices."""
    s = neel(lat) if background is None else background.copy()
    xs, ys = np.meshgrid(np.arange(x0, x0 + k), np.arange(y0, y0 + k), indexing="ij")
    sites = lat.site(xs.ravel(), ys.ravel())
    s[sites] = np.asarray(direction, float) / np.linalg.norm(direction)
    return s, sites


def _union_find_clusters(spins, lat, threshold=0.0):
    """Brute force: periodic union-find over the 4 neighbours of every site; sorted sizes >= 2."""
    L = lat.L
    parent = list(range(lat.N))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for x in range(L):
        for y in range(L):
            i = x + L * y
            for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                j = (x + dx) % L + L * ((y + dy) % L)
                if spins[i] @ spins[j] > threshold:
                    parent[find(i)] = find(j)
    roots = np.array([find(i) for i in range(lat.N)])
    sizes = np.bincount(roots)
    return sorted(sizes[sizes >= 2].tolist(), reverse=True)


def _noisy(s, rng, amount):
    s = s + amount * rng.normal(size=s.shape)
    return s / np.linalg.norm(s, axis=1, keepdims=True)


# ---------------------------------------------------------------------- bonds
def test_bond_field_matches_explicit_loop(rng):
    L = 6
    lat = it.Lattice.square(L)
    s = random_spins(lat.N, rng)
    b = sq.bond_field(s, lat)
    assert b.shape == (2, L, L)
    for x in range(L):
        for y in range(L):
            i = x + L * y
            assert b[0, x, y] == pytest.approx(s[i] @ s[(x + 1) % L + L * y], abs=1e-14)
            assert b[1, x, y] == pytest.approx(s[i] @ s[x + L * ((y + 1) % L)], abs=1e-14)
    # every bond once: 2N bonds, the same set as Lattice.bonds
    pairs = {tuple(sorted(p)) for p in lat.bonds(1)}
    j = sq.bond_partners(lat)
    assert {tuple(sorted((i, j[d, i]))) for d in range(2) for i in range(lat.N)} == pairs
    assert sq.nn_correlation(s, lat) == pytest.approx(np.mean([s[a] @ s[c] for a, c in pairs]))
    stack = np.stack([s, neel(lat)])
    assert np.allclose(sq.bond_field(stack, lat), np.stack([b, -np.ones((2, L, L))]))
    assert np.allclose(sq.nn_correlation(stack, lat), [b.mean(), -1])
    frac = sq.fm_bond_fraction(s, lat, threshold=0.3)
    assert frac == pytest.approx(np.mean([s[a] @ s[c] > 0.3 for a, c in pairs]))


def test_input_checks(rng):
    with pytest.raises(ValueError, match="square"):
        sq.bond_field(random_spins(16, rng), it.Lattice.triangular(4))
    with pytest.raises(ValueError, match="shape"):
        sq.bond_field(np.zeros((10, 3)), it.Lattice.square(4))
    with pytest.raises(ValueError, match="even L"):
        sq.staggered_moment(random_spins(25, rng), it.Lattice.square(5))
    with pytest.raises(ValueError, match="threshold"):
        sq.fm_bonds(random_spins(16, rng), it.Lattice.square(4), threshold=1.0)
    with pytest.raises(ValueError, match="one configuration"):
        sq.fm_clusters(np.stack([random_spins(16, rng)] * 2), it.Lattice.square(4))


# ---------------------------------------------------------------------- known states
def test_neel_state(rng):
    lat = it.Lattice.square(8)
    for s in (neel(lat), neel(lat) @ random_rotation(rng).T, -neel(lat)):
        assert sq.staggered_moment(s, lat) == pytest.approx(1.0)
        assert sq.staggered_structure_factor(s, lat) == pytest.approx(1.0)
        assert sq.nn_correlation(s, lat) == pytest.approx(-1.0)
        assert sq.fm_bond_fraction(s, lat) == 0.0
        cl = sq.fm_clusters(s, lat)
        assert cl.count == 0 and cl.sites == 0 and cl.largest == 0 and cl.bonds == 0
        assert np.all(cl.labels == -1) and np.isnan(cl.mean_number) and np.isnan(cl.mean_weight)
        assert cl.histogram().sum() == 0
        assert np.allclose(np.abs(sq.neel_map(s, lat)), 1.0) and np.allclose(sq.neel_map(s, lat), 1.0)


def test_ferromagnet_is_one_periodic_cluster(rng):
    lat = it.Lattice.square(8)
    s = ferromagnet(lat, rng.normal(size=3))
    assert sq.fm_bond_fraction(s, lat) == 1.0
    assert sq.nn_correlation(s, lat) == pytest.approx(1.0)
    assert sq.staggered_moment(s, lat) == pytest.approx(0.0, abs=1e-15)
    assert sq.staggered_structure_factor(s, lat) == pytest.approx(0.0, abs=1e-15)
    cl = sq.fm_clusters(s, lat)
    assert cl.count == 1 and cl.largest == lat.N and cl.bonds == 2 * lat.N
    assert np.all(cl.labels == 0) and cl.site_fraction == 1.0
    assert cl.mean_number == lat.N and cl.mean_weight == lat.N


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("corner", [(1, 2), (5, 0)])
def test_fm_block_in_neel_background(k, corner):
    """A k x k block along x in a Neel state along z: the boundary bonds have S_i . S_j = 0 (not
    FM), so the cluster is the block: k^2 sites, 2k(k-1) bonds.  Along +z instead (k even): on each
    side k/2 outside neighbours point up, so k^2 + 2k sites joined by 2k^2 bonds."""
    L = 12
    lat = it.Lattice.square(L)
    s, block = _block(lat, *corner, k, X)
    cl = sq.fm_clusters(s, lat)
    assert cl.count == 1 and cl.largest == k * k and cl.bonds == 2 * k * (k - 1)
    assert set(np.nonzero(cl.labels == 0)[0]) == set(block.tolist())
    assert sq.fm_bond_fraction(s, lat) == pytest.approx(2 * k * (k - 1) / (2 * lat.N))
    s, block = _block(lat, *corner, k, Z)
    cl = sq.fm_clusters(s, lat)
    assert cl.count == 1 and cl.largest == k * k + 2 * k and cl.bonds == 2 * k * k
    assert set(block.tolist()) < set(np.nonzero(cl.labels == 0)[0])
    # staggered moment: the block's spins count +-1 along z; for even k it cancels to 0 in the block
    assert sq.staggered_moment(s, lat) == pytest.approx(1 - k * k / lat.N)


def test_threshold_is_a_parameter():
    """Block at 60 degrees from the Neel axis: boundary bonds have S_i . S_j = +-1/2."""
    lat = it.Lattice.square(12)
    s, _ = _block(lat, 3, 3, 4, [np.sqrt(3) / 2, 0, 0.5])
    assert sq.fm_clusters(s, lat, threshold=0.6).largest == 16
    assert sq.fm_clusters(s, lat, threshold=0.4).largest == 16 + 8
    assert sq.fm_clusters(s, lat).largest == 16 + 8  # default 0
    assert sq.fm_bond_fraction(s, lat, 0.6) == pytest.approx(24 / (2 * lat.N))
    assert sq.DEFAULT_THRESHOLD == 0.0
    # strictly greater: bonds exactly at the threshold are not FM
    assert sq.fm_clusters(_block(lat, 3, 3, 4, X)[0], lat, threshold=0.0).largest == 16


@pytest.mark.parametrize("corner", [(10, 3), (3, 10), (10, 10)])
def test_cluster_across_the_periodic_boundary_is_one_cluster(corner):
    L, k = 12, 4
    lat = it.Lattice.square(L)
    s, block = _block(lat, *corner, k, X)
    cl = sq.fm_clusters(s, lat)
    assert cl.count == 1 and cl.largest == k * k and cl.bonds == 2 * k * (k - 1)
    # a non-periodic labelling of the same sites splits the block (2 or 4 pieces)
    site_mask = as_grid((cl.labels >= 0).astype(int), L)
    pieces = ndimage.label(site_mask)[1]
    assert pieces == (4 if corner == (10, 10) else 2)


def test_ring_around_the_torus():
    """A row of spins along x in a Neel state along z: L sites joined by L bonds (one of them
    across the boundary) form one ring-shaped cluster."""
    L = 10
    lat = it.Lattice.square(L)
    s = neel(lat)
    row = lat.site(np.arange(L), 4)
    s[row] = X
    cl = sq.fm_clusters(s, lat)
    assert cl.count == 1 and cl.largest == L and cl.bonds == L
    assert sq.fm_bond_fraction(s, lat) == pytest.approx(L / (2 * lat.N))


def test_clusters_match_brute_force_and_histogram(rng):
    lat = it.Lattice.square(10)
    for amount in (0.6, 1.5, 100.0):  # noisy Neel states, near-random spins
        s = _noisy(neel(lat), rng, amount)
        s, _ = _block(lat, 8, 8, 4, X, background=s)
        for threshold in (0.0, 0.5):
            cl = sq.fm_clusters(s, lat, threshold)
            assert cl.sizes.tolist() == _union_find_clusters(s, lat, threshold)
            assert np.all(np.diff(cl.sizes) <= 0) and np.all(cl.sizes >= 2)
            assert np.array_equal(np.bincount(cl.labels[cl.labels >= 0], minlength=cl.count), cl.sizes)
            # FM bonds join sites of one cluster; every cluster site has an FM bond
            b = sq.fm_bonds(s, lat, threshold).swapaxes(-1, -2).reshape(2, lat.N)
            j = sq.bond_partners(lat)
            d, i = np.nonzero(b)
            assert np.all(cl.labels[i] == cl.labels[j[d, i]]) and np.all(cl.labels[i] >= 0)
            assert set(np.nonzero(cl.labels >= 0)[0]) == set(i) | set(j[d, i])
            assert cl.bonds == len(i) == round(sq.fm_bond_fraction(s, lat, threshold) * 2 * lat.N)
            hist = cl.histogram()
            sizes = np.arange(len(hist))
            assert len(hist) == lat.N + 1 and hist[0] == hist[1] == 0
            assert (sizes * hist).sum() == cl.sites == round(cl.site_fraction * lat.N)
            assert hist.sum() == cl.count
            assert cl.mean_number == pytest.approx(cl.sites / cl.count)
            assert cl.mean_weight == pytest.approx((sizes ** 2 * hist).sum() / cl.sites)
            assert cl.largest == sizes[hist > 0].max()


def test_observables_are_o3_invariant(rng):
    lat = it.Lattice.square(12)
    s, _ = _block(lat, 10, 5, 4, X, background=_noisy(neel(lat), rng, 0.4))
    s = _noisy(s, rng, 0.2)
    ref = sq.frame_observables(s, lat, threshold=0.2)
    cl = sq.fm_clusters(s, lat, threshold=0.2)
    assert cl.count >= 1
    proper = random_rotation(rng, proper=True)
    improper = proper @ np.diag([1.0, 1.0, -1.0])
    assert np.linalg.det(improper) == pytest.approx(-1)
    for R in (proper, improper, -np.eye(3)):
        r = s @ R.T
        assert np.allclose(sq.bond_field(r, lat), sq.bond_field(s, lat), atol=1e-13)
        got = sq.frame_observables(r, lat, threshold=0.2)
        for key, value in ref.items():
            assert np.allclose(got[key], value, rtol=1e-12, atol=1e-13), key
        c2 = sq.fm_clusters(r, lat, threshold=0.2)
        assert np.array_equal(c2.labels, cl.labels) and np.array_equal(c2.sizes, cl.sizes)
        assert np.allclose(sq.staggered_vector(r, lat), sq.staggered_vector(s, lat) @ R.T)
        assert np.allclose(sq.neel_map(r, lat), sq.neel_map(s, lat), atol=1e-12)


def test_staggered_structure_factor_matches_direct_sum(rng):
    lat = it.Lattice.square(8)
    s = _noisy(neel(lat), rng, 0.8)
    Q = np.array([np.pi, np.pi])
    amp = (np.exp(-1j * lat.positions @ Q)[:, None] * s).sum(axis=0)
    direct = (np.abs(amp) ** 2).sum() / lat.N  # S(Q)
    assert sq.staggered_structure_factor(s, lat) == pytest.approx(direct / lat.N, rel=1e-12)
    assert sq.staggered_moment(s, lat) == pytest.approx(np.sqrt(direct / lat.N), rel=1e-12)
    m = it.observables.staggered_magnetization(s, lat)
    assert np.allclose(sq.staggered_vector(s, lat), m)
    values = [sq.staggered_structure_factor(random_spins(lat.N, rng), lat) for _ in range(200)]
    assert np.mean(values) == pytest.approx(1 / lat.N, rel=0.2)  # random spins: 1/N


# ---------------------------------------------------------------------- densities
def test_density_maps_follow_the_solver_convention(rng):
    """One hole on 4x4 (N_e = 15 of 2N = 32 states): n_i in [0, 2] electrons per site, sum 15;
    hole density 1 - n_i sums to N (1 - 2 n) = 1."""
    L = 4
    lat = it.Lattice.square(L)
    model = it.SDModel(lat, t=(1.0,), J=6.0, filling=15 / 32)
    s, _ = _block(lat, 0, 0, 2, Z, background=_noisy(neel(lat), rng, 0.1))
    n = it.ExactSolver(model).density(s)
    assert n.shape == (lat.N,) and np.all((n >= 0) & (n <= 2))
    assert n.sum() == pytest.approx(15)
    h = sq.hole_density(n)
    assert h.sum() == pytest.approx(lat.N * (1 - 2 * model.filling))
    assert h.sum() == pytest.approx(1.0)
    grid, holes = sq.density_map(n, lat), sq.hole_map(n, lat)
    assert grid.shape == holes.shape == (L, L)
    for x in range(L):
        for y in range(L):
            assert grid[x, y] == n[x + L * y] and holes[x, y] == pytest.approx(1 - n[x + L * y])
    cl = sq.fm_clusters(s, lat)
    frac = sq.holes_in_clusters(n, cl)
    assert frac == pytest.approx(h[cl.labels >= 0].sum())
    assert sq.holes_in_clusters(n, sq.fm_clusters(ferromagnet(lat), lat)) == pytest.approx(1.0)
    assert np.isnan(sq.holes_in_clusters(np.ones(lat.N), cl))  # half filling: no holes
    with pytest.raises(ValueError, match="density"):
        sq.density_map(np.ones(5), lat)


# ---------------------------------------------------------------------- trajectories and CLI
def _llg_trajectory(path, seed, L=8, steps=40, save_every=10):
    """Antiferromagnetic Heisenberg (J1 = -1) LLG quench from random spins, written by the package."""
    lat = it.Lattice.square(L)
    sim = it.LLG(Heisenberg(lat, J1=-1.0), alpha=0.5, dt=0.05, seed=seed)
    sim.run(random_spins(lat.N, np.random.default_rng(seed)), steps=steps, save_every=save_every,
            out=path)
    return path


def test_analyze_trajectory_of_an_llg_run(tmp_path):
    path = _llg_trajectory(tmp_path / "a.h5", seed=1)
    res = sq.analyze_trajectory(path)
    lat = it.Lattice.square(8)
    with h5py.File(path) as h5:
        assert h5.attrs["lattice"] == "square"
        spins, energy, time = h5["spins"][...], h5["energy"][...], h5["time"][...]
    assert len(res["time"]) == 5 and np.allclose(res["time"], time)
    assert np.allclose(res["energy"], energy / lat.N)
    for f in range(5):
        ref = sq.frame_observables(spins[f], lat)
        for key in sq.QUANTITIES[1:]:
            assert res[key][f] == pytest.approx(ref[key], nan_ok=True), key
        assert np.array_equal(res["cluster_sizes"][f], ref["cluster_sizes"])
    # the antiferromagnet relaxes: E = sum_bonds S_i . S_j = 2N <S_i.S_j>_nn, falling
    assert np.allclose(res["energy"], 2 * res["nn_correlation"])
    assert np.all(np.diff(res["energy"]) < 0) and res["fm_fraction"][-1] < res["fm_fraction"][0]
    assert np.allclose(res["cluster_radius"], np.sqrt(res["cluster_mean_weight"]), equal_nan=True)
    assert "holes_in_clusters" not in res and res["threshold"] == 0.0
    assert np.allclose(sq.analyze_trajectory(path, every=3)["time"], time[[0, 3, 4]])
    with pytest.raises(ValueError, match="triangular"):
        from test_analysis_triangular import write_stripe_trajectory

        sq.analyze_trajectory(write_stripe_trajectory(tmp_path / "t.h5", L=8, domains=(2,)))


def _add_density(path, rng):
    with h5py.File(path, "r+") as h5:
        F, N = h5["spins"].shape[:2]
        n = 1 + 0.1 * rng.normal(size=(F, N))
        n -= (n.mean(axis=1, keepdims=True) - (1 - 2 / N))  # two holes
        h5.create_dataset("density", data=n)
    return n


def test_runs_average_density_and_fit(tmp_path, rng):
    paths = [_llg_trajectory(tmp_path / f"r{k}.h5", seed=k) for k in range(3)]
    agg = sq.analyze_runs(paths)
    runs = [sq.analyze_trajectory(p) for p in paths]
    for key in sq.QUANTITIES:
        stack = np.array([r[key] for r in runs])
        assert np.allclose(agg["mean"][key], np.nanmean(stack, axis=0), equal_nan=True), key
    assert np.all(agg["err"]["nn_correlation"] > 0)
    assert agg["fits"] == {} and agg["window"] is None and "holes_in_clusters" not in agg["mean"]
    assert set(agg["mean"]) == set(sq.QUANTITIES)
    fitted = sq.analyze_runs(paths, window=(0.5, 2.0))
    assert set(fitted["fits"]) == {"cluster_radius"}
    assert (fitted["fits"]["cluster_radius"] is not None) or fitted["fit_errors"]["cluster_radius"]
    dist = sq.mean_size_distribution(agg)
    N = 64
    expected = np.mean([sq.size_histogram(r["cluster_sizes"][-1], N) for r in runs], axis=0)
    assert np.allclose((dist["size"] * dist["clusters_per_site"]).sum() * N,
                       (np.arange(N + 1) * expected).sum())
    # a density dataset adds the holes in clusters (only when every run has one)
    dens = [_add_density(p, rng) for p in paths]
    res = sq.analyze_trajectory(paths[0])
    with h5py.File(paths[0]) as h5:
        cl = sq.fm_clusters(h5["spins"][-1], it.Lattice.square(8))
    h = 1 - dens[0][-1]
    assert res["holes_in_clusters"][-1] == pytest.approx(h[cl.labels >= 0].sum() / h.sum())
    assert "holes_in_clusters" in sq.analyze_runs(paths)["mean"]
    out = sq.plot_maps(paths[0], tmp_path / "maps.png")
    assert out.stat().st_size > 10_000


def test_cli_analyze_square(tmp_path):
    paths = [_llg_trajectory(tmp_path / f"r{k}.h5", seed=k) for k in range(2)]
    out = tmp_path / "out"
    res = runner.invoke(app, ["analyze", *map(str, paths), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "square lattice" in res.output and "S(pi,pi)/N" in res.output
    for name in ("observables.csv", "analysis.json", "observables.png", "maps.png"):
        assert (out / name).stat().st_size > 0, name
    agg = sq.analyze_runs(paths)
    rows = (out / "observables.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[:3] == ["time", "energy", "energy_err"] and len(rows) == 1 + 5
    for q in sq.QUANTITIES:
        assert q in header and f"{q}_err" in header
    last = dict(zip(header, rows[-1].split(",")))
    assert float(last["fm_fraction"]) == pytest.approx(agg["mean"]["fm_fraction"][-1], rel=1e-9)
    assert float(last["nn_correlation_err"]) == pytest.approx(agg["err"]["nn_correlation"][-1],
                                                              rel=1e-9)
    doc = json.loads((out / "analysis.json").read_text())
    assert doc["lattice"] == "square" and doc["L"] == 8 and len(doc["runs"]) == 2
    assert doc["threshold"] == 0.0 and doc["fits"] == {} and doc["window"] is None
    assert np.allclose(doc["mean"]["staggered_sf"], agg["mean"]["staggered_sf"])
    assert set(doc["definitions"]) >= set(sq.QUANTITIES)
    # the threshold option
    res = runner.invoke(app, ["analyze", str(paths[0]), "-o", str(tmp_path / "o2"), "--threshold",
                              "0.5", "--window", "0.5", "2"])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "o2" / "analysis.json").read_text())
    ref = sq.analyze_trajectory(paths[0], threshold=0.5)
    assert doc["threshold"] == 0.5 and np.allclose(doc["mean"]["fm_fraction"], ref["fm_fraction"])
    assert "cluster_radius" in doc["fits"] and "cluster_radius" in res.output
    # options of the other analysis are errors
    res = runner.invoke(app, ["analyze", str(paths[0]), "-o", str(tmp_path / "o3"), "--ising"])
    assert res.exit_code == 2 and "do not apply to square" in " ".join(res.output.split())
    from test_analysis_triangular import write_stripe_trajectory

    tri = write_stripe_trajectory(tmp_path / "tri.h5", L=24, domains=(4, 2))
    res = runner.invoke(app, ["analyze", str(tri), "-o", str(tmp_path / "o4"), "--threshold", "0.2"])
    assert res.exit_code == 2 and "--threshold" in res.output and "triangular" in res.output
    assert not (tmp_path / "o4").exists()
