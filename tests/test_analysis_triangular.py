"""Tetrahedral-order analysis: chirality field, M-point order parameter, structure factor, domain
sizes and their growth, checked against explicit sums, known states and stripe patterns."""

import h5py
import numpy as np
import pytest

import itinerant as it
from itinerant.analysis import triangular as tr
from itinerant.coarsening import aggregate_runs, fit_window
from itinerant.data.protocols import domain_pattern
from itinerant.io import RowWriter, write_attrs
from itinerant.spins import random_rotation, random_spins, tetrahedral


def _reflection():
    return np.diag([1.0, 1.0, -1.0])


def _rotation(rng):
    return random_rotation(rng, proper=True)


# ---------------------------------------------------------------------- chirality
def test_chirality_field_matches_explicit_loop(rng):
    L = 6
    lat = it.Lattice.triangular(L)
    s = random_spins(lat.N, rng)
    chi = tr.chirality_field(s, lat)
    assert chi.shape == (2, L, L)
    pos = lat.positions
    for x in range(L):
        for y in range(L):
            idx = lambda dx, dy: (x + dx) % L + L * ((y + dy) % L)  # noqa: E731
            for k, verts in enumerate([[(0, 0), (1, 0), (0, 1)], [(1, 0), (1, 1), (0, 1)]]):
                i, j, m = (idx(*v) for v in verts)
                # counter-clockwise in the plane (unwrapped Cartesian positions)
                p = [np.array([x + dx, y + dy]) @ lat.basis.T for dx, dy in verts]
                u, v = p[1] - p[0], p[2] - p[0]
                assert u[0] * v[1] - u[1] * v[0] > 0
                assert chi[k, x, y] == pytest.approx(s[i] @ np.cross(s[j], s[m]), abs=1e-14)
    assert np.allclose(pos[1] - pos[0], lat.a1)
    # a stack gives the same per frame
    stack = np.stack([s, -s])
    assert np.allclose(tr.chirality_field(stack, lat), np.stack([chi, -chi]))


@pytest.mark.parametrize("c", [1, -1])
def test_tetrahedral_state_has_uniform_chirality(c):
    lat = it.Lattice.triangular(8)
    chi = tr.chirality_field(tetrahedral(lat, c), lat)
    assert tr.CHI0 == pytest.approx(4 / (3 * np.sqrt(3)))
    assert np.allclose(chi, c * tr.CHI0, atol=1e-14)
    assert tr.chirality_abs(tetrahedral(lat, c), lat) == pytest.approx(tr.CHI0)


def test_random_spins_mean_absolute_chirality(rng):
    """Three independent uniform unit vectors: E|a . (b x c)| = E|cos| E|sin| = (1/2)(pi/4)."""
    lat = it.Lattice.triangular(64)
    values = [tr.chirality_abs(random_spins(lat.N, rng), lat) for _ in range(4)]
    assert np.mean(values) == pytest.approx(np.pi / 8, rel=0.01)


def test_chirality_under_global_rotations(rng):
    lat = it.Lattice.triangular(8)
    s = random_spins(lat.N, rng)
    chi = tr.chirality_field(s, lat)
    R = _rotation(rng)
    assert np.allclose(tr.chirality_field(s @ R.T, lat), chi, atol=1e-13)
    assert np.allclose(tr.chirality_field(s @ (R @ _reflection()).T, lat), -chi, atol=1e-13)
    assert np.allclose(tr.chirality_field(-s, lat), -chi, atol=1e-13)  # time reversal


# ---------------------------------------------------------------------- order parameter
def _delta_explicit(s, lat):
    """(1/N) sum_i S_i exp(i M . r_i) with complex exponentials and Cartesian M points."""
    b = 2 * np.pi * np.linalg.inv(lat.basis).T  # columns b1, b2
    ms = [b[:, 0] / 2, b[:, 1] / 2, (b[:, 0] + b[:, 1]) / 2]
    return np.array([(np.exp(1j * lat.positions @ M)[:, None] * s).mean(axis=0) for M in ms])


@pytest.mark.parametrize("c", [1, -1])
def test_order_parameter_of_tetrahedral_state(rng, c):
    lat = it.Lattice.triangular(8)
    R = random_rotation(rng)
    s = tetrahedral(lat, c) @ R.T
    s = _translate(lat, s, 1, 0)
    D = tr.order_parameter(s, lat)
    assert np.allclose(D, _delta_explicit(s, lat).real, atol=1e-14)
    assert np.allclose(_delta_explicit(s, lat).imag, 0, atol=1e-14)
    gram = D @ D.T
    assert np.allclose(gram, np.eye(3) / 3, atol=1e-14)  # orthogonal, equal norms 1/sqrt 3
    assert tr.order_magnitude(D) == pytest.approx(1.0)


def _translate(lat, s, dx, dy):
    return it.Lattice.transform(s, lat.translation(dx, dy))


def test_order_parameter_small_for_random_spins_and_invariant(rng):
    lat = it.Lattice.triangular(16)
    mags = []
    for _ in range(20):
        s = random_spins(lat.N, rng)
        D = tr.order_parameter(s, lat)
        mags.append(tr.order_magnitude(D) ** 2)
        R = random_rotation(rng)
        D2 = tr.order_parameter(s @ R.T, lat)
        assert np.allclose(D2 @ D2.T, D @ D.T, atol=1e-14)  # Gram matrix: O(3) invariant
    assert np.mean(mags) == pytest.approx(3 / lat.N, rel=0.35)


def test_order_parameter_needs_even_L():
    lat = it.Lattice.triangular(9)
    with pytest.raises(ValueError, match="even L"):
        tr.order_parameter(random_spins(lat.N, 0), lat)
    with pytest.raises(ValueError, match="triangular"):
        tr.order_parameter(random_spins(16, 0), it.Lattice.square(4))
    with pytest.raises(ValueError, match="shape"):
        tr.chirality_field(np.zeros((10, 3)), it.Lattice.triangular(4))


# ---------------------------------------------------------------------- structure factor
def test_structure_factor_matches_direct_sum(rng):
    lat = it.Lattice.triangular(6)
    s = random_spins(lat.N, rng)
    S = tr.structure_factor(s, lat)
    b = 2 * np.pi * np.linalg.inv(lat.basis).T
    for m1, m2 in [(0, 0), (1, 0), (2, 5), (3, 3)]:
        q = (m1 * b[:, 0] + m2 * b[:, 1]) / lat.L
        amp = (np.exp(-1j * lat.positions @ q)[:, None] * s).sum(axis=0)
        assert S[m1, m2] == pytest.approx((np.abs(amp) ** 2).sum() / lat.N, rel=1e-12)
    assert S.sum() == pytest.approx(lat.N)
    R = random_rotation(rng)
    assert np.allclose(tr.structure_factor(s @ R.T, lat), S, atol=1e-12)


@pytest.mark.parametrize("c", [1, -1])
def test_structure_factor_peaks_at_the_m_points(c):
    L = 12
    lat = it.Lattice.triangular(L)
    S = tr.structure_factor(tetrahedral(lat, c), lat)
    peaks = {tuple(p) for p in np.argwhere(S > 1e-9)}
    assert peaks == {(L // 2, 0), (0, L // 2), (L // 2, L // 2)}
    assert np.allclose([S[p] for p in peaks], lat.N / 3)
    assert tr.m_point_weight(tetrahedral(lat, c), lat) == pytest.approx(1.0)


def test_m_point_weight_is_order_parameter_squared(rng):
    lat = it.Lattice.triangular(10)
    s = domain_pattern("tetrahedral", lat, 2) + 0.3 * rng.normal(size=(lat.N, 3))
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    w = tr.m_point_weight(s, lat)
    assert w == pytest.approx(tr.order_magnitude(tr.order_parameter(s, lat)) ** 2, rel=1e-12)
    assert 0.05 < w < 1


# ---------------------------------------------------------------------- domains
def test_halves_of_opposite_chirality(rng):
    L = 24
    lat = it.Lattice.triangular(L)
    s = domain_pattern("tetrahedral", lat, 2) @ random_rotation(rng, proper=True).T
    chi = tr.chirality_field(s, lat)
    # rows of triangles away from the two walls (y = L/2 - 1 and y = L - 1 carry the walls)
    assert np.allclose(chi[:, :, : L // 2 - 1], tr.CHI0)
    assert np.allclose(chi[:, :, L // 2: L - 1], -tr.CHI0)


@pytest.mark.parametrize("domains", [2, 4])
def test_stripe_domain_length(domains):
    """Stripes of width w rows (w sqrt(3)/2 across): the radially averaged correlation of an ideal
    stripe pattern is 1 - (4 r / pi) / w_perp for r < w_perp, so L_C = (pi/8) w_perp."""
    L = 48
    lat = it.Lattice.triangular(L)
    w_perp = L / domains * np.sqrt(3) / 2
    lc, ls = tr.domain_lengths(tr.chirality_field(domain_pattern("tetrahedral", lat, domains), lat),
                               lat)
    assert lc == pytest.approx(np.pi / 8 * w_perp, rel=0.1)
    assert w_perp < ls < 2 * w_perp


def test_domain_lengths_scale_with_width_and_ignore_rotations(rng):
    L = 48
    lat = it.Lattice.triangular(L)
    lengths = []
    for domains in (2, 4, 8):
        s = domain_pattern("tetrahedral", lat, domains)
        chi = tr.chirality_field(s, lat)
        lc, ls = tr.domain_lengths(chi, lat)
        R = random_rotation(rng)
        lc2, ls2 = tr.domain_lengths(tr.chirality_field(s @ R.T, lat), lat)
        assert (lc2, ls2) == pytest.approx((lc, ls), rel=1e-9)
        lengths.append(lc)
    ratios = np.array(lengths[:-1]) / np.array(lengths[1:])
    assert np.all(np.abs(ratios - 2) < 0.25)
    # a uniform state has no domains: C(r) never falls to 1/2
    lc, _ = tr.domain_lengths(tr.chirality_field(tetrahedral(lat), lat), lat)
    assert np.isnan(lc)


def test_ising_option_ignores_the_amplitude(rng):
    """sign(chi): L_C of stripes is unchanged by a positive amplitude modulation (for the raw field
    the modulation decorrelates at short distances and shortens L_C)."""
    L = 48
    lat = it.Lattice.triangular(L)
    clean = tr.chirality_field(domain_pattern("tetrahedral", lat, 4), lat)
    modulated = clean * rng.uniform(0.1, 1.0, size=clean.shape)
    lc_clean = tr.domain_lengths(clean, lat)[0]
    assert tr.domain_lengths(modulated, lat, ising=True)[0] == pytest.approx(lc_clean, rel=1e-12)
    assert tr.domain_lengths(modulated, lat)[0] < 0.9 * lc_clean


# ---------------------------------------------------------------------- trajectories
def write_stripe_trajectory(path, L=96, exponent=0.5, noise=0.0, seed=0, domains=(12, 8, 6, 4)):
    """Frames: random spins at t = 0, then stripes of width w = L/d at t = w^(1/exponent)."""
    rng = np.random.default_rng(seed)
    lat = it.Lattice.triangular(L)
    frames = [(0.0, random_spins(lat.N, rng))]
    for d in domains:
        s = domain_pattern("tetrahedral", lat, d) @ random_rotation(rng).T
        if noise:
            s = s + noise * rng.normal(size=s.shape)
            s /= np.linalg.norm(s, axis=1, keepdims=True)
        frames.append(((L / d) ** (1 / exponent), s))
    with h5py.File(path, "w") as h5:
        write_attrs(h5, {"lattice": "triangular", "L": L, "alpha": 0.1, "dt": 0.1})
        w = RowWriter(h5, {"time": (), "spins": (lat.N, 3), "energy": ()})
        for t, s in frames:
            w.append(time=t, spins=s, energy=-1.5 * lat.N * (1 - np.exp(-t)))
    return path


def test_analyze_trajectory_recovers_the_growth_law(tmp_path):
    path = write_stripe_trajectory(tmp_path / "a.h5", exponent=0.5)
    res = tr.analyze_trajectory(path)
    assert res["L"] == 96 and len(res["time"]) == 5
    assert np.allclose(res["time"], [0, 64, 144, 256, 576])
    assert res["energy"][0] == 0 and res["energy"][-1] == pytest.approx(-1.5 * (1 - np.exp(-576)))
    assert res["chirality_abs"][-1] == pytest.approx(tr.CHI0 * (1 - 4 / 96), rel=1e-9)  # walls: 0
    assert res["order"][0] < 0.1 and res["order_parameter"].shape == (5, 3, 3)
    assert np.all(np.diff(res["length_corr"]) > 0) and np.all(np.diff(res["length_sf"]) > 0)
    agg = tr.analyze_runs([path], window=(5, 1000))
    fit = agg["fits"]["length_corr"]
    # stripes of 8 to 24 rows: L_C / width drifts from 0.43 to 0.42 (lattice walls), hence ~0.475
    assert fit.exponent == pytest.approx(0.5, abs=0.04) and fit.points == 4
    # the same frames at t = w (exponent 1)
    agg1 = tr.analyze_runs([write_stripe_trajectory(tmp_path / "b.h5", exponent=1.0)], window=(2, 30))
    assert agg1["fits"]["length_corr"].exponent == pytest.approx(1.0, abs=0.08)


def test_several_runs_give_error_bars(tmp_path):
    paths = [write_stripe_trajectory(tmp_path / f"r{k}.h5", noise=0.15, seed=k) for k in range(3)]
    agg = tr.analyze_runs(paths, window=(5, 1000))
    assert len(agg["runs"]) == 3
    err = agg["err"]["length_corr"]
    assert np.all(err[1:] > 0) and np.all(np.isfinite(err[1:]))
    assert agg["fits"]["length_corr"].stderr > 0
    assert agg["fits"]["length_corr"].exponent == pytest.approx(0.5, abs=0.08)
    every = tr.analyze_trajectory(paths[0], every=4)
    assert np.allclose(every["time"], [0, 576])


def test_runs_must_share_times(tmp_path):
    a = write_stripe_trajectory(tmp_path / "a.h5", exponent=0.5)
    b = write_stripe_trajectory(tmp_path / "b.h5", exponent=1.0)
    with pytest.raises(ValueError, match="other times"):
        tr.analyze_runs([a, b])


def test_fit_window_rule():
    t = np.arange(0, 100.0)
    ell = 0.5 * np.sqrt(t)  # reaches 2 at t = 16, 4.8 (= 0.1 * 48) at t = 92.16
    assert fit_window(t, ell, 48) == (16.0, 92.0)
    with pytest.raises(ValueError, match="never reaches"):
        fit_window(t, 0.1 * np.sqrt(t), 48)
    runs = [{"time": t, "x": ell}]
    agg = aggregate_runs(runs, ["x"], ["x"], system_size=48)
    assert agg["window"] == (16.0, 92.0)
    assert agg["fits"]["x"].exponent == pytest.approx(0.5, abs=1e-9)
    assert np.all(np.isnan(agg["err"]["x"]))
    short = aggregate_runs([{"time": t, "x": 0.1 * np.sqrt(t)}], ["x"], ["x"], system_size=48)
    assert short["fits"]["x"] is None and "never reaches" in short["fit_errors"]["x"]


def test_figures(tmp_path):
    path = write_stripe_trajectory(tmp_path / "a.h5", L=24, domains=(8, 6, 4, 2))
    out = tr.plot_chirality_maps(path, tmp_path / "maps.png")
    assert out.stat().st_size > 10_000
    assert tr.map_frames(100, 4) == [0, 4, 21, 99]
    assert tr.map_frames(3, 4) == [0, 1, 2]
