"""Point groups: classes, character tables, irrep matrices, projection operators, invariant tensors."""

import numpy as np
import pytest

import itinerant as it
from itinerant.symmetry import C4v, C6v, PointGroup, mirror, rotation

GROUPS = [C4v(), C6v(), PointGroup("C2v", [rotation(np.pi), mirror(0.0)]),
          PointGroup("C3v", [rotation(2 * np.pi / 3), mirror(0.0)])]
IDS = [g.name for g in GROUPS]


@pytest.mark.parametrize("G", GROUPS, ids=IDS)
def test_classes_partition_the_group_and_are_conjugation_closed(G):
    members = np.sort(np.concatenate(G.classes))
    assert np.array_equal(members, np.arange(G.order))
    assert list(G.classes[0]) == [0]
    for c in G.classes:
        for g in range(G.order):
            conj = {G.table[G.table[g, a], G.inverse[g]] for a in c}
            assert conj == set(c.tolist())


@pytest.mark.parametrize("G", GROUPS, ids=IDS)
def test_character_orthogonality_rows_and_columns(G):
    X = G.character_table
    sizes = G.class_sizes
    n = G.order
    assert X.shape == (len(G.classes), len(G.classes)), "as many irreps as classes"
    # Rows: sum_C |C| chi_a(C) chi_b(C)* = |G| delta_ab
    assert np.allclose((X * sizes) @ X.conj().T, n * np.eye(len(X)), atol=1e-10)
    # Columns: sum_a chi_a(C) chi_a(C')* = |G|/|C| delta_CC'
    assert np.allclose(X.conj().T @ X, np.diag(n / sizes), atol=1e-10)
    dims = X[:, 0].real
    assert np.isclose((dims ** 2).sum(), n)
    assert np.allclose(X[0], 1.0), "the trivial irrep comes first"


def test_known_character_tables():
    # Independent reference: the textbook tables (columns in the groups' class order).
    G = C4v()
    assert G.class_names == ["E", "2C4", "2sv", "C2", "2sd"]
    assert G.irrep_labels == ["A1", "A2", "B1", "B2", "E"]
    assert np.array_equal(G.character_table, [[1, 1, 1, 1, 1], [1, 1, -1, 1, -1], [1, -1, 1, 1, -1],
                                              [1, -1, -1, 1, 1], [2, 0, 0, -2, 0]])
    G = C6v()
    assert G.class_names == ["E", "2C6", "3sv", "2C3", "3sd", "C2"]
    assert G.irrep_labels == ["A1", "A2", "B1", "B2", "E1", "E2"]
    assert np.array_equal(G.character_table, [
        [1, 1, 1, 1, 1, 1], [1, 1, -1, 1, -1, 1], [1, -1, 1, 1, -1, -1], [1, -1, -1, 1, 1, -1],
        [2, 1, 0, -1, 0, -2], [2, -1, 0, -1, 0, 2]])
    # sigma_v contains the mirror across a1 (x axis).
    assert G.reference_mirror == G.index(mirror(0.0))
    assert "A1" in C6v().character_table_text()


@pytest.mark.parametrize("G", GROUPS, ids=IDS)
def test_irreps_are_orthogonal_homomorphisms_with_the_right_characters(G):
    for lab in G.irrep_labels:
        D = G.irrep(lab)
        d = G.irrep_dims[lab]
        assert D.shape == (G.order, d, d)
        assert np.allclose(np.einsum("aij,bjk->abik", D, D), D[G.table], atol=1e-12)
        assert np.allclose(D @ D.transpose(0, 2, 1), np.eye(d), atol=1e-12)
        assert np.allclose(np.einsum("gii->g", D), G.characters(lab), atol=1e-12)
    # Schur orthogonality of matrix elements: sum_g D^a_ij D^b_kl = |G|/d delta_ab delta_ik delta_jl
    for a in G.irrep_labels:
        for b in G.irrep_labels:
            M = np.einsum("gij,gkl->ijkl", G.irrep(a), G.irrep(b))
            if a != b:
                assert np.allclose(M, 0, atol=1e-10)
            else:
                d = G.irrep_dims[a]
                ref = np.einsum("ik,jl->ijkl", np.eye(d), np.eye(d)) * G.order / d
                assert np.allclose(M, ref, atol=1e-10)


@pytest.mark.parametrize("G,n", [(C4v(), 4), (C6v(), 6), (GROUPS[3], 3)], ids=["C4v", "C6v", "C3v"])
def test_two_dimensional_irreps_in_the_documented_basis(G, n):
    # E_k: rotation(theta) -> rotation(k theta), mirror(phi) -> mirror(k phi)  (Cartesian rep powers).
    E = [lab for lab in G.irrep_labels if G.irrep_dims[lab] == 2]
    for k, lab in enumerate(E, start=1):
        D = G.irrep(lab)
        for g, R in enumerate(G.elements):
            theta = np.arctan2(R[1, 0], R[0, 0])
            if np.linalg.det(R) > 0:
                ref = rotation(k * theta)
            else:
                ref = mirror(k * theta / 2)
            assert np.allclose(D[g], ref, atol=1e-12), (lab, g)
        assert np.allclose(D[G.reference_mirror], np.diag([1.0, -1.0]))
    if G.name == "C4v":
        assert np.allclose(G.irrep("E"), G.elements), "E of C4v is the Cartesian representation"


def _site_rep(kind, radius):
    lat = it.Lattice.from_name(kind, 12)
    off = lat.offsets_within(radius)
    return lat.point_group, lat.point_group_permutation(off)


@pytest.mark.parametrize("kind", ["square", "triangular"])
@pytest.mark.parametrize("signed", [False, True])
def test_projection_operators_complete_orthogonal_idempotent(kind, signed):
    G, perm = _site_rep(kind, 3.0)
    K = perm.shape[1]
    signs = G.det[:, None] if signed else None
    total = np.zeros((K, K))
    Ps = {}
    for lab in G.irrep_labels:
        Pab = G.projection_operators(perm, lab, signs)
        d = G.irrep_dims[lab]
        # P_ab P_cd = delta_bc P_ad
        prod = np.einsum("abij,cdjk->abcdik", Pab, Pab)
        ref = np.einsum("bc,adik->abcdik", np.eye(d), Pab)
        assert np.allclose(prod, ref, atol=1e-12)
        P = G.projector(perm, lab, signs)
        assert np.allclose(P @ P, P, atol=1e-12)
        assert np.allclose(P, P.T, atol=1e-12)
        assert np.isclose(np.trace(P), d * G.multiplicity(perm, lab, signs))
        Ps[lab] = P
        total += P
    assert np.allclose(total, np.eye(K), atol=1e-12)
    for a in Ps:
        for b in Ps:
            if a != b:
                assert np.allclose(Ps[a] @ Ps[b], 0, atol=1e-12)


@pytest.mark.parametrize("kind", ["square", "triangular"])
def test_irrep_basis_coefficients_transform_with_the_irrep_matrices(kind, rng):
    G, perm = _site_rep(kind, 2.5)
    R = G.permutation_matrices(perm)
    x = rng.normal(size=perm.shape[1])
    count = 0
    for lab in G.irrep_labels:
        B = G.irrep_basis(perm, lab)
        m, d, K = B.shape
        assert m == G.multiplicity(perm, lab)
        flat = B.reshape(m * d, K)
        assert np.allclose(flat @ flat.T, np.eye(m * d), atol=1e-12), "orthonormal"
        f = B @ x  # (m, d)
        D = G.irrep(lab)
        for g in range(G.order):
            assert np.allclose(B @ (R[g] @ x), f @ D[g].T, atol=1e-12)  # f_r -> D(g) f_r
        count += m * d
    assert count == perm.shape[1], "the irreps exhaust the representation"


def test_signed_representation_and_bad_input():
    G, perm = _site_rep("triangular", 1.0)
    # The uniform pseudoscalar pattern on the 6 nearest neighbours is A2 for signs = det(g).
    P = G.projector(perm, "A2", G.det[:, None])
    v = np.r_[0.0, np.ones(6)]
    assert np.allclose(P @ v, v)
    assert np.allclose(G.projector(perm, "A1") @ v, v)
    with pytest.raises(ValueError, match="representation"):
        G.permutation_matrices(perm[::-1])
    with pytest.raises(ValueError, match="shape"):
        G.permutation_matrices(perm[:3])
    with pytest.raises(ValueError, match="no irrep 'T2'"):
        G.irrep("T2")


@pytest.mark.parametrize("G", [C4v(), C6v()], ids=["C4v", "C6v"])
def test_invariant_tensors(G, rng):
    labels = G.irrep_labels
    for l1 in labels:
        for l2 in labels:
            for l3 in labels:
                T = G.invariant_tensors((l1, l2, l3))
                # Count from characters: multiplicity of A1 in the product.
                mult = np.mean(G.characters(l1) * G.characters(l2) * G.characters(l3))
                assert len(T) == round(mult)
                for t in T:
                    assert np.isclose(np.linalg.norm(t), 1.0)
                    for g in range(G.order):
                        D1, D2, D3 = (G.irrep(lab)[g] for lab in (l1, l2, l3))
                        assert np.allclose(np.einsum("abc,ai,bj,ck->ijk", t, D1, D2, D3), t)
    E = "E" if G.name == "C4v" else "E1"
    cross = G.invariant_tensors((E, E, "A2"))[0][:, :, 0]
    assert np.allclose(cross, np.array([[0, 1], [-1, 0]]) / np.sqrt(2)), "x cross y"
