"""Lattice geometry, neighbour shells and symmetry permutations."""

import numpy as np
import pytest

import itinerant as it


@pytest.mark.parametrize("kind,z,dists", [
    ("square", [4, 4, 4], [1.0, np.sqrt(2), 2.0]),
    ("triangular", [6, 6, 6], [1.0, np.sqrt(3), 2.0]),
])
def test_shells(kind, z, dists):
    lat = it.Lattice.from_name(kind, 8)
    assert np.allclose(lat.shell_distances(3), dists)
    for n in (1, 2, 3):
        off = lat.shell_offsets(n)
        assert len(off) == z[n - 1]
        assert np.allclose(np.linalg.norm(lat.cartesian(off), axis=1), dists[n - 1])
        nb = lat.neighbors(n)
        assert nb.shape == (lat.N, z[n - 1])
        assert len(np.unique(nb[0])) == z[n - 1]
        bonds = lat.bonds(n)
        assert len(bonds) == lat.N * z[n - 1] // 2
        pairs = {tuple(sorted(b)) for b in bonds}
        assert len(pairs) == len(bonds), "every bond exactly once"


def test_indexing_and_positions():
    lat = it.Lattice.triangular(5)
    assert lat.site(2, 3) == 2 + 5 * 3
    assert lat.site(-1, 5) == 4
    assert np.allclose(lat.positions[lat.site(1, 1)], [1.5, np.sqrt(3) / 2])
    assert np.array_equal(lat.coords[7], [2, 1])


def test_nearest_neighbour_offsets_match_design():
    sq = {tuple(o) for o in it.Lattice.square(6).shell_offsets(1)}
    assert sq == {(1, 0), (-1, 0), (0, 1), (0, -1)}
    tri = {tuple(o) for o in it.Lattice.triangular(6).shell_offsets(1)}
    assert tri == {(1, 0), (-1, 0), (0, 1), (0, -1), (1, -1), (-1, 1)}


@pytest.mark.parametrize("kind,order", [("square", 8), ("triangular", 12)])
def test_point_group_permutes_neighbourhoods(kind, order):
    lat = it.Lattice.from_name(kind, 9)
    off = lat.offsets_within(3.0)
    perm = lat.point_group_permutation(off)
    assert perm.shape == (order, len(off))
    assert (perm[:, 0] == 0).all(), "the centre is fixed"
    for p in perm:
        assert sorted(p) == list(range(len(off)))
    # Distances are preserved.
    d = np.linalg.norm(lat.cartesian(off), axis=1)
    assert np.allclose(d[perm], d[None, :])
    # Composition matches the group's multiplication table.
    G = lat.point_group
    for a in range(order):
        for b in range(order):
            ab = G.table[a, b]
            assert np.array_equal(perm[a][perm[b]], perm[ab])  # (ab).o = a.(b.o)


def test_space_group_permutations_preserve_bonds():
    lat = it.Lattice.triangular(6)
    bonds = {tuple(sorted(b)) for b in lat.bonds(1)}
    count = 0
    for g, dx, dy, p in lat.space_group_permutations():
        mapped = {tuple(sorted((p[i], p[j]))) for i, j in bonds}
        assert mapped == bonds
        count += 1
    assert count == 12 * 36


def test_too_small_lattice_is_refused():
    with pytest.raises(ValueError, match="too small"):
        it.Lattice.square(2).neighbors(1)
    with pytest.raises(ValueError, match="too small.*L >= 5"):
        it.SDModel(it.Lattice.square(4), t=(1.0, 0.0, 0.5), J=1.0, filling=0.5)
    with pytest.raises(TypeError, match="integer"):
        it.Lattice.square(4.5)
    with pytest.raises(ValueError, match="unknown lattice"):
        it.Lattice.from_name("kagome", 6)
