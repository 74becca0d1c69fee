"""MLForceField: autograd fields, symmetry covariance, strict locality, size transfer, model files.

The networks here are untrained (random weights with a non-trivial normalisation), which is enough
for every property tested: they hold for any weights.
"""

import json

import numpy as np
import pytest
import torch

import itinerant as it
from itinerant.models import MLForceField, ModelFileError
from itinerant.models import files as model_files
from itinerant.models import forcefield as ff_module
from itinerant.models.network import energy_and_fields
from itinerant.spins import random_rotation, random_spins

CUTOFF = 2.0


def _untrained(lattice, J=2.0, seed=0, **model_kw):
    model_kw = model_kw or {"filling": 0.25, "kT": 0.05}
    model = it.SDModel(lattice, t=(1.0,), J=J, **model_kw)
    ff = MLForceField.new(model, cutoff=CUTOFF, hidden=(16, 16), seed=seed)
    # A non-trivial normalisation, as after training.
    gen = torch.Generator().manual_seed(seed + 1)
    F = ff.net.n_features
    ff.net.set_normalisation(torch.randn(F, generator=gen, dtype=torch.float64) * 0.1,
                             torch.rand(F, generator=gen, dtype=torch.float64) + 0.5, -1.3, 0.7)
    ff._weights = {k: v.clone() for k, v in ff.net.state_dict().items()}
    return ff


@pytest.fixture(scope="module", params=["square", "triangular"])
def ff(request):
    return _untrained(it.Lattice.from_name(request.param, 8))


# ---------------------------------------------------------------------- fields
def test_fields_are_minus_gradient_of_energy_off_the_sphere(ff, rng):
    """h = -dE/dS for unconstrained 3-vectors (central differences of the model energy)."""
    desc = ff.descriptor(ff.lattice)
    s = random_spins(ff.lattice.N, rng) * rng.uniform(0.8, 1.2, size=(ff.lattice.N, 1))
    x = torch.as_tensor(s)
    _, h = energy_and_fields(ff.net, desc, x)
    energy = lambda y: float(ff.net(desc(y), y).sum())  # noqa: E731
    eps = 1e-6
    for i, c in [(0, 0), (5, 2), (17, 1), (ff.lattice.N - 1, 2)]:
        xp, xm = x.clone(), x.clone()
        xp[i, c] += eps
        xm[i, c] -= eps
        fd = -(energy(xp) - energy(xm)) / (2 * eps)
        assert abs(fd - h[i, c].item()) < 1e-7 * (1 + abs(fd))


def test_public_fields_match_energy_changes_on_the_sphere(ff, rng):
    """Public API: rotating spins on the sphere changes E by -h . dS (central differences)."""
    s = random_spins(ff.lattice.N, rng)
    E, h = ff.energy_and_fields(s)
    assert isinstance(E, float) and h.shape == (ff.lattice.N, 3) and h.dtype == np.float64
    d = rng.normal(size=s.shape)
    d -= (d * s).sum(-1, keepdims=True) * s  # tangent directions
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    eps = 1e-5
    fd = -(ff.energy(unit(s + eps * d)) - ff.energy(unit(s - eps * d))) / (2 * eps)
    assert fd == pytest.approx((h * d).sum(), rel=1e-7, abs=1e-9)
    assert ff.energy(s) == pytest.approx(E, rel=1e-14)
    assert ff.site_energies(s).sum() == pytest.approx(E, rel=1e-13)


def test_stack_equals_single_evaluations(ff, rng):
    S = np.stack([random_spins(ff.lattice.N, rng) for _ in range(3)])
    E, h = ff.energy_and_fields(S)
    assert E.shape == (3,) and h.shape == S.shape
    for k in range(3):
        Ek, hk = ff.energy_and_fields(S[k])
        assert Ek == pytest.approx(E[k], rel=1e-12)
        np.testing.assert_allclose(hk, h[k], rtol=1e-12, atol=1e-14)


def test_global_spin_rotation_covariance(ff, rng):
    """O(3) (proper and improper): E(RS) = E(S), h(RS) = R h(S), to float64 round-off."""
    s = random_spins(ff.lattice.N, rng)
    E, h = ff.energy_and_fields(s)
    scale = np.abs(h).max()
    for proper in (True, False):
        R = random_rotation(rng, proper=proper)
        E2, h2 = ff.energy_and_fields(s @ R.T)
        assert E2 == pytest.approx(E, rel=1e-12)
        assert np.abs(h2 - h @ R.T).max() < 1e-12 * scale


def test_lattice_symmetry_covariance(ff, rng):
    """Every point-group operation and translations: fields move with the sites."""
    lat = ff.lattice
    s = random_spins(lat.N, rng)
    E, h = ff.energy_and_fields(s)
    scale = np.abs(h).max()
    perms = [lat.point_operation(g) for g in range(len(lat.point_group))]
    perms += [lat.translation(1, 0), lat.translation(3, 5)]
    perms += [lat.translation(2, 7)[lat.point_operation(len(lat.point_group) - 1)]]
    for p in perms:
        E2, h2 = ff.energy_and_fields(lat.transform(s, p))
        assert E2 == pytest.approx(E, rel=1e-12)
        assert np.abs(h2 - lat.transform(h, p)).max() < 1e-12 * scale


def _min_image_distance(lat, i, j):
    d = lat.coords[j] - lat.coords[i]
    shifts = np.array([(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)]) * lat.L
    return np.linalg.norm(lat.cartesian(d[None, :] + shifts), axis=1).min()


@pytest.mark.parametrize("kind", ["square", "triangular"])
def test_strict_locality(kind, rng):
    """eps_i sees exactly the spins within r_c of i; h_i exactly the spins that share a
    neighbourhood with i (all within 2 r_c): changing any other spin leaves h_i bit-for-bit equal."""
    lat = it.Lattice.from_name(kind, 12)
    ff = _untrained(it.Lattice.from_name(kind, 8)).on(lat)
    s = random_spins(lat.N, rng)
    eps, (E, h) = ff.site_energies(s), ff.energy_and_fields(s)
    i = lat.site(3, 4)
    off = lat.offsets_within(CUTOFF)
    x, y = lat.coords[i]
    own = set(lat.site(x + off[:, 0], y + off[:, 1]).tolist())
    reach = {int(lat.site(x - a + c, y - b + d)) for a, b in off for c, d in off}
    counts = {"far": 0, "reach": 0, "own": 0}
    for j in range(lat.N):
        if j == i:
            continue
        s2 = s.copy()
        s2[j] = random_spins(1, rng)[0]
        eps2, (_, h2) = ff.site_energies(s2), ff.energy_and_fields(s2)
        if j in reach:
            assert _min_image_distance(lat, i, j) <= 2 * CUTOFF + 1e-9
            assert np.abs(h2[i] - h[i]).max() > 1e-12
            counts["reach"] += 1
        else:
            assert np.array_equal(h2[i], h[i]), j
            counts["far"] += 1
        if j in own:
            assert _min_image_distance(lat, i, j) <= CUTOFF + 1e-9
            assert eps2[i] != eps[i]
            counts["own"] += 1
        else:
            assert eps2[i] == eps[i]
    assert min(counts.values()) >= len(off) - 1


def test_any_lattice_size(rng):
    """A 2 x 2 tiling of an 8 x 8 configuration on 16 x 16: fields tile, energy is 4 times."""
    ff = _untrained(it.Lattice.square(8))
    s = random_spins(64, rng)
    E, h = ff.energy_and_fields(s)
    big = it.Lattice.square(16)
    x, y = big.coords.T
    tiled = s[(x % 8) + 8 * (y % 8)]
    E2, h2 = ff.energy_and_fields(tiled)
    assert E2 == pytest.approx(4 * E, rel=1e-12)
    np.testing.assert_allclose(h2, h[(x % 8) + 8 * (y % 8)], rtol=1e-11, atol=1e-13)
    assert ff.lattice.L == 8  # evaluating another size does not rebind
    assert ff.on(big).model.lattice == big


def test_chunked_evaluation_is_the_same(rng, tmp_path):
    """Large lattices are evaluated in chunks of centre sites: same energies and fields."""
    ff = _untrained(it.Lattice.triangular(8))
    ff.save(tmp_path / "m")
    chunked = MLForceField.load(tmp_path / "m", max_sites=7)
    S = np.stack([random_spins(100, rng) for _ in range(2)])  # 10 x 10
    E, h = ff.energy_and_fields(S)
    E2, h2 = chunked.energy_and_fields(S)
    np.testing.assert_allclose(E2, E, rtol=1e-13)
    np.testing.assert_allclose(h2, h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(chunked.site_energies(S), ff.site_energies(S), rtol=1e-13)
    assert chunked.site_energies(S[0]).shape == (100,)


def test_bad_sizes_lattices_and_spins(rng):
    ff = _untrained(it.Lattice.square(8))
    with pytest.raises(ValueError, match="too small"):
        ff.energy_and_fields(random_spins(16, rng))  # 4 x 4 < neighbourhood
    with pytest.raises(ValueError, match="do not form an L x L"):
        ff.energy_and_fields(random_spins(70, rng))
    with pytest.raises(ValueError, match="unit vectors"):
        ff.energy_and_fields(2 * random_spins(64, rng))
    with pytest.raises(ValueError, match="shape"):
        ff.energy_and_fields(np.ones((64, 2)))
    with pytest.raises(ValueError, match="triangular lattice"):
        ff.on(it.Lattice.triangular(8))
    E1 = ff.energy_and_fields(2 * random_spins(64, np.random.default_rng(3)), normalize=True)[0]
    E2 = ff.energy_and_fields(random_spins(64, np.random.default_rng(3)))[0]
    assert E1 == pytest.approx(E2, rel=1e-14)


def test_model_on_each_size():
    ff = _untrained(it.Lattice.triangular(8), filling=0.25, kT=0.0)
    assert ff.model == it.SDModel(it.Lattice.triangular(8), J=2.0, filling=0.25)
    assert ff.on(it.Lattice.triangular(10)).model.n_electrons == 50
    assert ff.on(it.Lattice.triangular(9)).model is None  # 0.25 * 162 electrons is no integer
    ff.check_model(it.SDModel(it.Lattice.triangular(12), J=2.0, filling=0.25))
    with pytest.raises(ValueError, match="J 2.0 vs 2.5"):
        ff.check_model(it.SDModel(it.Lattice.triangular(12), J=2.5, filling=0.25))


def test_float32_agrees_with_float64(ff, rng, tmp_path):
    ff.save(tmp_path / "m")
    f32 = MLForceField.load(tmp_path / "m", dtype="float32")
    s = random_spins(ff.lattice.N, rng)
    E, h = ff.energy_and_fields(s)
    E32, h32 = f32.energy_and_fields(s)
    assert f32.net.mlp[0].weight.dtype == torch.float32 and h32.dtype == np.float64
    assert E32 == pytest.approx(E, rel=1e-5)
    assert np.abs(h32 - h).max() < 1e-4 * np.abs(h).max()
    assert np.abs(h32 - h).max() > 0  # really a different precision
    with pytest.raises(ValueError, match="dtype"):
        MLForceField.load(tmp_path / "m", dtype="float16")


# ---------------------------------------------------------------------- model files
def test_save_load_round_trip(ff, rng, tmp_path):
    d = ff.save(tmp_path / "model")
    assert sorted(p.name for p in d.iterdir()) == ["metadata.json", "model.safetensors"]
    s = random_spins(ff.lattice.N, rng)
    E, h = ff.energy_and_fields(s)
    for path in (d, d / "metadata.json", d / "model.safetensors", str(d)):
        g = MLForceField.load(path)
        E2, h2 = g.energy_and_fields(s)
        assert E2 == E and np.array_equal(h2, h)
        assert g.lattice == ff.lattice and g.model == ff.model
    meta = json.loads((d / "metadata.json").read_text())
    assert meta["format_version"] == model_files.FORMAT_VERSION
    assert meta["lattice"] == ff.lattice.name and meta["model"]["J"] == 2.0
    assert meta["descriptor"]["cutoff"] == CUTOFF and meta["package_version"] == it.__version__
    # Saving again from the loaded model stores the same tensors and identity.
    g.save(tmp_path / "again")
    again, meta2 = model_files.read_model(tmp_path / "again")
    first, _ = model_files.read_model(d)
    assert sorted(again) == sorted(first)
    assert all(torch.equal(again[k], first[k]) for k in first)
    assert model_files.identity_hash(meta2) == model_files.identity_hash(meta)


def test_load_refuses_other_models(tmp_path):
    lat = it.Lattice.square(8)
    ff = _untrained(lat, J=4.0, filling=0.5, kT=0.1)
    d = ff.save(tmp_path / "m")
    ok = it.SDModel(it.Lattice.square(12), t=(1.0, 0.0), J=4.0, filling=0.5, kT=0.1)
    g = MLForceField.load(d, expect_model=ok)  # other size, trailing zero hopping: same model
    assert g.lattice == ok.lattice and g.model == it.SDModel(ok.lattice, J=4.0, filling=0.5, kT=0.1)
    bad = {"J 4.0 vs 3.0": dict(J=3.0, filling=0.5, kT=0.1),
           "kT 0.1 vs 0.0": dict(J=4.0, filling=0.5, kT=0.0),
           "filling 0.5 vs 0.25": dict(J=4.0, filling=0.25, kT=0.1),
           "fixed filling": dict(J=4.0, mu=0.0, kT=0.1),
           r"t \[1.0\] vs \[1.0, 0.2\]": dict(t=(1.0, 0.2), J=4.0, filling=0.5, kT=0.1)}
    for msg, kw in bad.items():
        with pytest.raises(ValueError, match=msg):
            MLForceField.load(d, expect_model=it.SDModel(lat, **kw))
    with pytest.raises(ValueError, match="lattice square vs triangular"):
        MLForceField.load(d, expect_model=it.SDModel(it.Lattice.triangular(8), J=4.0, filling=0.5,
                                                     kT=0.1))
    with pytest.raises(ValueError, match="cannot be used on the triangular lattice"):
        MLForceField.load(d, lattice=it.Lattice.triangular(8))


def test_load_refuses_damaged_newer_or_tampered_files(tmp_path):
    ff = _untrained(it.Lattice.square(8))
    d = ff.save(tmp_path / "m")
    meta_text = (d / "metadata.json").read_text()
    weights = (d / "model.safetensors").read_bytes()

    def restore():
        (d / "metadata.json").write_text(meta_text)
        (d / "model.safetensors").write_bytes(weights)

    def edit(fn):
        meta = json.loads(meta_text)
        fn(meta)
        (d / "metadata.json").write_text(json.dumps(meta))

    edit(lambda m: m.update(format_version=model_files.FORMAT_VERSION + 1))
    with pytest.raises(ModelFileError, match="newer than this itinerant"):
        MLForceField.load(d)
    edit(lambda m: m["model"].update(J=3.0))  # claims another model for the same weights
    with pytest.raises(ModelFileError, match="metadata was edited"):
        MLForceField.load(d)
    edit(lambda m: m["descriptor"].update(cutoff=3.0))
    with pytest.raises(ModelFileError, match="metadata was edited"):
        MLForceField.load(d)
    edit(lambda m: m.update(format="something-else"))
    with pytest.raises(ModelFileError, match="not an itinerant model file"):
        MLForceField.load(d)
    (d / "metadata.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        MLForceField.load(d)
    restore()
    edit(lambda m: m.setdefault("notes", "provenance and metrics may be edited"))
    MLForceField.load(d)
    restore()
    damaged = bytearray(weights)
    damaged[-5] ^= 0x01  # one bit of one weight
    (d / "model.safetensors").write_bytes(bytes(damaged))
    with pytest.raises(ModelFileError, match="SHA-256"):
        MLForceField.load(d)
    restore()
    (d / "model.safetensors").unlink()
    with pytest.raises(ModelFileError, match="model.safetensors is missing"):
        MLForceField.load(d)
    with pytest.raises(FileNotFoundError, match="no model file or shipped model"):
        MLForceField.load("no-such-model")


def test_load_refuses_a_model_whose_descriptor_changed(tmp_path):
    """A consistent file whose recorded descriptor output differs from what this version's
    descriptor computes (as after a change of the descriptor's definition) is refused."""
    ff = _untrained(it.Lattice.triangular(8))
    state, meta = model_files.read_model(ff.save(tmp_path / "m"))
    probe = meta["descriptor_probe"]
    assert len(probe["features"]) == ff.net.n_features
    meta = {k: v for k, v in meta.items() if k not in ("format", "format_version", "weights")}
    meta["descriptor_probe"] = {**probe, "features": probe["features"][:-1]}
    model_files.write_model(tmp_path / "fewer", state, meta)
    meta["descriptor_probe"] = {**probe, "features": [probe["features"][1], probe["features"][0],
                                                      *probe["features"][2:]]}
    model_files.write_model(tmp_path / "reordered", state, meta)
    for name in ("fewer", "reordered"):
        with pytest.raises(ModelFileError, match="descriptor computes other features"):
            MLForceField.load(tmp_path / name)


def test_shipped_models_by_name(tmp_path, monkeypatch, rng):
    assert isinstance(MLForceField.available(), list)
    for name in MLForceField.available():  # every shipped model loads and evaluates
        g = MLForceField.load(name)
        g.energy_and_fields(random_spins(g.lattice.N, rng))
    monkeypatch.setattr(ff_module, "SHIPPED", tmp_path)
    assert MLForceField.available() == []
    ff = _untrained(it.Lattice.square(8))
    ff.save(tmp_path / "toy-square")
    (tmp_path / "not-a-model").mkdir()
    assert MLForceField.available() == ["toy-square"]
    s = random_spins(64, rng)
    g = MLForceField.load("toy-square")
    assert np.array_equal(g.energy_and_fields(s)[1], ff.energy_and_fields(s)[1])
    with pytest.raises(FileNotFoundError, match=r"shipped models: \['toy-square'\]"):
        MLForceField.load("toy-triangular")
