"""Training (``itinerant train``): data checks, split, outputs, reproducibility, resume, DDP, CLI."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import itinerant as it
from itinerant.cli import app
from itinerant.config import ConfigError
from itinerant.io import RowWriter, model_attrs, write_attrs
from itinerant.models import MLForceField
from itinerant.models.files import read_model
from itinerant.spins import STATES, random_spins
from itinerant.training import load_train_config, train
from itinerant.training.data import TEST, TRAIN, VALIDATION, load_training_data


def write_data(path, L, n, J=4.0, filling=0.5, kT=0.1, seed=0, lattice="square"):
    """Exact data: random spins and noisy ordered states, in the io.load_data layout."""
    lat = it.Lattice.from_name(lattice, L)
    model = it.SDModel(lat, t=(1.0,), J=J, filling=filling, kT=kT)
    solver = it.ExactSolver(model)
    rng = np.random.default_rng(seed)
    ordered = [STATES["ferromagnet"](lat), STATES["stripe"](lat)]
    S = []
    for k in range(n):
        s = random_spins(lat.N, rng) if k % 2 == 0 else ordered[k % 4 // 2] + 0.5 * rng.normal(
            size=(lat.N, 3))
        S.append(s / np.linalg.norm(s, axis=1, keepdims=True))
    E, h = solver.energy_and_fields(np.stack(S))
    with h5py.File(path, "w") as f:
        write_attrs(f, model_attrs(model, **solver.settings()))
        w = RowWriter(f, {"spins": (lat.N, 3), "fields": (lat.N, 3), "energy": ()})
        for k in range(n):
            w.append(spins=S[k], fields=h[k], energy=E[k])
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    return {"small": write_data(d / "sq6.h5", 6, 24),
            "other_size": write_data(d / "sq8.h5", 8, 8, seed=1),
            "other_J": write_data(d / "sq6-J3.h5", 6, 4, J=3.0, seed=2)}


def config(data_files, out, **training):
    return {"data": {"files": [str(p) for p in data_files]},
            "split": {"validation": 0.2, "test": 0.2, "seed": 1},
            "descriptor": {"cutoff": 1.5},
            "network": {"hidden": [8, 8]},
            "training": {"epochs": 3, "batch_size": 4, "learning_rate": 3e-3, **training},
            "output": {"directory": str(out), "progress": False, "plots": False}}


def weights(out):
    return read_model(out)[0]


def same_weights(a, b, atol=0.0):
    return sorted(a) == sorted(b) and all(
        torch.allclose(a[k], b[k], rtol=0, atol=atol) if atol else torch.equal(a[k], b[k])
        for k in a)


# ---------------------------------------------------------------------- data and split
def test_split_is_reproducible_disjoint_and_by_snapshot(data):
    d1 = load_training_data([data["small"], data["other_size"]], 0.2, 0.2, seed=5)
    d2 = load_training_data([data["small"], data["other_size"]], 0.2, 0.2, seed=5)
    d3 = load_training_data([data["small"], data["other_size"]], 0.2, 0.2, seed=6)
    assert sorted(d1.groups) == [6, 8]
    assert [d1.count(p) for p in (TRAIN, VALIDATION, TEST)] == [20, 6, 6]
    assert all(np.array_equal(d1.groups[L].split, d2.groups[L].split) for L in (6, 8))
    assert any(not np.array_equal(d1.groups[L].split, d3.groups[L].split) for L in (6, 8))
    assert [p["snapshots"] for p in d1.provenance] == [24, 8]
    assert all(len(p["sha256"]) == 64 for p in d1.provenance)


def test_data_files_must_share_the_model(data, tmp_path):
    with pytest.raises(ValueError, match="another model.*J 4.0 vs 3.0"):
        load_training_data([data["small"], data["other_J"]], 0.2, 0.2, 0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_training_data([tmp_path / "missing.h5"], 0.2, 0.2, 0)
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["spins"] = np.zeros((2, 36, 3))
    with pytest.raises(ValueError, match="not an itinerant data file"):
        load_training_data([tmp_path / "bad.h5"], 0.2, 0.2, 0)
    with pytest.raises(ValueError, match="too few"):
        load_training_data([data["other_J"]], 0.5, 0.4, 0)  # 4 snapshots: 2 test, 2 validation
    assert load_training_data([data["other_J"]], 0.25, 0.0, 0).count(VALIDATION) == 1


def test_run_file_validation(data, tmp_path):
    base = config([data["small"]], tmp_path / "out")
    for change, msg in [
        (lambda c: c["training"].update(epoch=3), r"\[training\] epoch: unknown key.*'epochs'"),
        (lambda c: c["training"].update(learning_rate=-1.0), r"\[training\] learning_rate"),
        (lambda c: c["training"].update(schedule="linear"), r"\[training\] schedule"),
        (lambda c: c["split"].update(validation=0.6, test=0.5), r"\[split\]"),
        (lambda c: c["split"].update(validation=0.0), r"\[split\] validation"),
        (lambda c: c["network"].update(activation="relu"), r"\[network\] activation"),
        (lambda c: c["network"].update(hidden=[8, 0]), r"\[network\] hidden"),
        (lambda c: c["descriptor"].pop("cutoff"), r"\[descriptor\] cutoff: missing"),
        (lambda c: c["data"].update(files=[]), r"\[data\] files"),
        (lambda c: c["training"].update(device="tpu"), r"\[training\] device"),
    ]:
        cfg = json.loads(json.dumps(base))
        change(cfg)
        with pytest.raises(ConfigError, match=msg):
            load_train_config(cfg)
    cfg = json.loads(json.dumps(base))
    cfg["descriptor"]["options"] = {"no_such_option": 1}
    with pytest.raises(ConfigError, match=r"\[descriptor\]"):
        train(cfg)
    run = tmp_path / "run.toml"
    run.write_text('[data]\nfiles = ["d.h5"]\n[descriptor]\ncutoff = 1.5\n'
                   '[output]\ndirectory = "out"\n')
    cfg = load_train_config(run)
    assert cfg["data"]["files"] == [str(tmp_path / "d.h5")]  # relative to the run file
    assert cfg["output"]["directory"] == str(tmp_path / "out")
    assert cfg["training"]["epochs"] == 200 and cfg["training"]["parallel_weight"] == 1.0


# ---------------------------------------------------------------------- training runs
@pytest.fixture(scope="module")
def reference_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "ref"
    cfg = config([data["small"], data["other_size"]], out, epochs=4, energy_weight=0.1)
    cfg["output"]["plots"] = True
    ff, metrics = train(cfg)
    return out, ff, metrics, cfg


def test_outputs_and_metrics(reference_run, rng):
    out, ff, metrics, cfg = reference_run
    for name in ("model.safetensors", "metadata.json", "metrics.json", "history.json", "run.json",
                 "parity.png", "loss.png", "checkpoint.pt"):
        assert (out / name).is_file(), name
    assert json.loads((out / "metrics.json").read_text()) == metrics
    test = metrics["test"]
    assert test["snapshots"] == metrics["snapshots"]["test"] == 6
    for part in ("full", "perpendicular"):
        for key in ("rmse", "r2", "rmse_x", "r2_x", "rmse_y", "r2_y", "rmse_z", "r2_z"):
            assert np.isfinite(test["fields"][part][key])
    assert set(test["energy"]) == {"mae_per_site", "rmse_per_site", "mae"}
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    loaded = MLForceField.load(out)
    assert loaded.lattice == it.Lattice.square(8)  # the largest training size
    s = random_spins(36, rng)
    assert np.array_equal(loaded.energy_and_fields(s)[1], ff.energy_and_fields(s)[1])
    meta = loaded.metadata
    assert meta["training"]["sizes"] == [6, 8] and meta["training"]["epochs"] == 4
    assert [d["snapshots"] for d in meta["training"]["data"]] == [24, 8]
    assert meta["metrics"]["test"] == test


def test_metrics_match_an_independent_evaluation(reference_run):
    out, ff, metrics, cfg = reference_run
    d = load_training_data(cfg["data"]["files"], 0.2, 0.2, 1)
    pred, true, E_err = [], [], []
    for L, g in d.groups.items():
        idx = g.indices(TEST)
        if len(idx):
            E, h = ff.energy_and_fields(g.spins[idx])
            pred.append(h.reshape(-1, 3))
            true.append(g.fields[idx].reshape(-1, 3))
            E_err.append(np.abs(E - g.energy[idx]) / (L * L))
    pred, true = np.concatenate(pred), np.concatenate(true)
    m = metrics["test"]["fields"]["full"]
    assert m["rmse_y"] == pytest.approx(np.sqrt(((pred[:, 1] - true[:, 1]) ** 2).mean()), rel=1e-9)
    r2 = 1 - ((pred[:, 2] - true[:, 2]) ** 2).sum() / ((true[:, 2] - true[:, 2].mean()) ** 2).sum()
    assert m["r2_z"] == pytest.approx(r2, rel=1e-9)
    assert metrics["test"]["energy"]["mae_per_site"] == pytest.approx(
        np.concatenate(E_err).mean(), rel=1e-9)


def test_same_seed_same_model_and_resume_equals_uninterrupted(reference_run, tmp_path):
    out, _, _, cfg = reference_run
    again = json.loads(json.dumps(cfg))
    again["output"].update(directory=str(tmp_path / "again"), plots=False)
    train(again)
    assert same_weights(weights(out), weights(tmp_path / "again"))
    # Two epochs, then resume to four: identical to four epochs in one go.
    part = json.loads(json.dumps(again))
    part["output"]["directory"] = str(tmp_path / "resumed")
    part["training"]["epochs"] = 2
    train(part)
    with pytest.raises(ValueError, match="already holds a training run"):
        train(part)
    part["training"]["epochs"] = 4
    _, metrics = train(part, resume=True)
    assert metrics["epochs"] == 4
    assert same_weights(weights(out), weights(tmp_path / "resumed"))
    history = json.loads((tmp_path / "resumed" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    # Resuming with other settings, or without a checkpoint, is refused.
    part["training"]["learning_rate"] = 1e-2
    with pytest.raises(ValueError, match="changed since the checkpoint"):
        train(part, resume=True)
    part["output"]["directory"] = str(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(part, resume=True)


def test_early_stopping_and_schedules(data, tmp_path):
    cfg = config([data["small"]], tmp_path / "stop", epochs=20, learning_rate=1e-13,
                 early_stopping=2)
    _, metrics = train(cfg)
    assert metrics["epochs"] == 3 and metrics["best_epoch"] == 1  # no progress at lr 1e-13
    assert MLForceField.load(tmp_path / "stop").metadata["training"]["stopped_early"]
    cfg = config([data["small"]], tmp_path / "cos", epochs=4, schedule="cosine",
                 learning_rate=1e-2, min_lr=1e-4)
    train(cfg)
    lrs = [h["lr"] for h in json.loads((tmp_path / "cos" / "history.json").read_text())]
    expect = [1e-4 + (1e-2 - 1e-4) * 0.5 * (1 + np.cos(np.pi * k / 4)) for k in range(4)]
    np.testing.assert_allclose(lrs, expect, rtol=1e-12)


def test_float32_training(data, tmp_path, rng):
    ff, metrics = train(config([data["small"]], tmp_path / "f32", epochs=2, dtype="float32"))
    state = weights(tmp_path / "f32")
    assert all(v.dtype == torch.float32 for v in state.values())
    loaded = MLForceField.load(tmp_path / "f32")  # evaluated in float64 by default
    s = random_spins(36, rng)
    E, h = loaded.energy_and_fields(s)
    E32, h32 = MLForceField.load(tmp_path / "f32", dtype="float32").energy_and_fields(s)
    assert E32 == pytest.approx(E, rel=1e-5) and np.abs(h32 - h).max() < 1e-4 * np.abs(h).max()
    assert np.isfinite(metrics["test"]["fields"]["full"]["rmse"])


def test_perpendicular_loss_ignores_the_parallel_field(data, tmp_path):
    """With parallel_weight = 0, adding any field component along S to the data changes nothing."""
    src = load_training_data([data["small"]], 0.2, 0.2, 1)
    g = src.groups[6]
    shifted = tmp_path / "shifted.h5"
    with h5py.File(data["small"], "r") as f, h5py.File(shifted, "w") as out:
        for k, v in f.attrs.items():
            out.attrs[k] = v
        out["spins"], out["energy"] = f["spins"][...], f["energy"][...]
        c = np.random.default_rng(0).normal(size=g.energy.shape + (36, 1))
        out["fields"] = f["fields"][...] + c * f["spins"][...]
    _, m1 = train(config([data["small"]], tmp_path / "a", epochs=2, parallel_weight=0.0))
    _, m2 = train(config([shifted], tmp_path / "b", epochs=2, parallel_weight=0.0))
    assert same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"), atol=1e-10)
    assert m1["test"]["fields"]["perpendicular"]["rmse"] == pytest.approx(
        m2["test"]["fields"]["perpendicular"]["rmse"], rel=1e-8)


# ---------------------------------------------------------------------- data parallel
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_path_with_one_process(data, tmp_path, monkeypatch):
    """The torchrun code path (process group, DistributedDataParallel) with WORLD_SIZE = 1 gives
    the single-process model."""
    plain = config([data["small"]], tmp_path / "plain", epochs=2)
    train(plain)
    for k, v in {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": str(_free_port())}.items():
        monkeypatch.setenv(k, v)
    ff, metrics = train(config([data["small"]], tmp_path / "ddp", epochs=2))
    assert not torch.distributed.is_initialized()  # the group is closed again
    assert MLForceField.load(tmp_path / "ddp").metadata["training"]["processes"] == 1
    assert same_weights(weights(tmp_path / "plain"), weights(tmp_path / "ddp"), atol=1e-12)


def test_torchrun_two_processes_equal_one(data, tmp_path):
    """``torchrun --nproc-per-node=2 -m itinerant train``: two CPU processes (gloo) split each
    batch and average gradients; the model equals the single-process one."""
    base = config([data["small"]], tmp_path / "one", epochs=2)
    train(base)
    run = tmp_path / "run.toml"
    run.write_text(f'[data]\nfiles = ["{data["small"]}"]\n[split]\nvalidation = 0.2\ntest = 0.2\n'
                   'seed = 1\n[descriptor]\ncutoff = 1.5\n[network]\nhidden = [8, 8]\n'
                   '[training]\nepochs = 2\nbatch_size = 4\nlearning_rate = 3e-3\n'
                   f'[output]\ndirectory = "{tmp_path / "two"}"\nprogress = false\nplots = false\n')
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2",
                           f"--master-port={_free_port()}", "-m", "itinerant", "train", str(run)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wrote" in proc.stderr  # process 0 reports
    assert MLForceField.load(tmp_path / "two").metadata["training"]["processes"] == 2
    assert same_weights(weights(tmp_path / "one"), weights(tmp_path / "two"), atol=1e-10)


# ---------------------------------------------------------------------- command line
def test_cli_train(data, tmp_path):
    run = tmp_path / "run.toml"
    run.write_text(f'[data]\nfiles = ["{Path(data["small"]).name}"]\n[descriptor]\ncutoff = 1.5\n'
                   '[network]\nhidden = [8]\n[training]\nepochs = 2\n'
                   '[output]\ndirectory = "ignored"\nplots = false\n')
    run.with_name(Path(data["small"]).name).write_bytes(Path(data["small"]).read_bytes())
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(run), "--out", str(tmp_path / "cli"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "test set" in res.output and "R^2" in res.output
    assert (tmp_path / "cli" / "run.toml").read_text() == run.read_text()
    assert not (tmp_path / "ignored").exists()
    res = runner.invoke(app, ["train", str(run), "--out", str(tmp_path / "cli")])
    assert res.exit_code == 2 and "--resume" in res.output
    res = runner.invoke(app, ["train", str(run), "--out", str(tmp_path / "cli"), "--resume"])
    assert res.exit_code == 0, res.output
    run.write_text('[data]\nfiles = ["x.h5"]\n[descriptor]\ncutof = 1.5\n')
    res = runner.invoke(app, ["train", str(run)])
    assert res.exit_code == 2 and "did you mean 'cutoff'" in res.output
