"""``itinerant bench``: the --quick run, its JSON schema, and the measurement helpers."""

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from itinerant import bench
from itinerant.cli import app

FORCE_FIELD_KEYS = {"what", "solver", "model", "lattice", "L", "N", "dtype", "device", "threads",
                    "compile", "ms", "cpu_ms", "median_ms", "first_ms", "repeats",
                    "site_evals_per_s", "peak_mem_mb", "mem_method", "load"}
LLG_KEYS = {"what", "model", "lattice", "L", "N", "dtype", "threads", "integrator", "steps",
            "evals_per_step", "ms_per_step", "cpu_ms_per_step", "steps_per_s", "ms_per_eval"}
FLOP_KEYS = {"gemm_flops_per_site", "gemm_flops_counted", "elementwise_ops_per_site",
             "flops_per_site", "bytes_per_site", "gemm_bytes_per_site"}
MACHINE_KEYS = {"cpu_model", "logical_cpus", "usable_cpus", "torch_threads", "torch", "numpy",
                "python", "itinerant", "date", "load_average", "cuda", "OMP_NUM_THREADS"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    res = CliRunner().invoke(app, ["bench", "--quick", "--threads", "1", "--json", str(out)])
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text()), res.output


def test_quick_json_schema(quick):
    result, _ = quick
    assert MACHINE_KEYS <= set(result["machine"])
    assert result["machine"]["torch"] == torch.__version__
    assert result["command"]["quick"] and result["command"]["threads"] == [1]
    rows = result["rows"]
    ff = [r for r in rows if r["what"] == "force_field"]
    assert {r["solver"] for r in ff} == {"exact", "kpm", "ml"}
    for r in ff:
        assert FORCE_FIELD_KEYS <= set(r), FORCE_FIELD_KEYS - set(r)
        assert r["N"] == r["L"] ** 2 and r["threads"] == 1
        assert r["ms"] > 0 and r["median_ms"] >= r["ms"]
        assert math.isclose(r["site_evals_per_s"], r["N"] / (r["ms"] / 1e3))
        assert r["peak_mem_mb"] is not None and r["peak_mem_mb"] >= 0
    assert {r["dtype"] for r in ff if r["solver"] == "ml"} == {"float32", "float64"}
    (llg,) = [r for r in rows if r["what"] == "llg" and r["dtype"] == "float64"]
    assert LLG_KEYS <= set(llg)
    assert llg["integrator"] == "rk4" and llg["evals_per_step"] == 4
    flops = [r for r in rows if r["what"] == "flops"]
    assert flops and all(FLOP_KEYS <= set(r) for r in flops)
    kinds = {(r["kind"], r.get("dtype")) for r in rows if r["what"] == "peak"}
    assert {("matmul", "float32"), ("matmul", "float64"), ("copy", None)} <= kinds
    (acc,) = [r for r in rows if r["what"] == "accuracy"]
    assert 0 < acc["fields_rel_rms_float32"] < 1e-4
    assert acc["fields_rel_rms_fast_vs_autograd"] < 1e-12
    assert len(result["roofline"]) == len([r for r in ff if r["solver"] == "ml"])
    assert set(result["targets"]) == {"ml_vs_exact_30", "growth_128_to_512", "llg_step_256_s"}


def test_quick_prints_tables(quick):
    _, output = quick
    for title in ("force fields", "ML-LLG", "achieved rates", "accuracy and targets"):
        assert title in output


def test_gemm_flops_match_the_flop_counter():
    """The analytic GEMM count agrees with torch's FlopCounterMode (up to the length channel's
    in-place product, which the counter does not see)."""
    for kind in ("square", "triangular"):
        r = bench.flop_count(kind, 12, "float64")
        assert abs(r["gemm_flops_per_site"] - r["gemm_flops_counted"]) <= 2 * 64 + 1
        assert r["bytes_per_site"] > r["gemm_bytes_per_site"] > 0


def test_targets_from_rows():
    def ff(solver, L, ms, compile=False):
        return {"what": "force_field", "solver": solver, "lattice": "square", "L": L, "ms": ms,
                "dtype": "float64", "model": "default" if solver == "ml" else None, "threads": 2,
                "compile": compile}

    rows = [ff("exact", 30, 9000.0), ff("ml", 30, 3.0), ff("ml", 128, 50.0), ff("ml", 512, 850.0),
            ff("ml", 128, 40.0, True), ff("ml", 512, 400.0, True),
            {"what": "llg", "lattice": "square", "model": "default", "dtype": "float64", "L": 256,
             "ms_per_step": 700.0, "threads": 2}]
    t = bench.targets(rows)
    key = "square/default/float64/2 threads"
    assert t["ml_vs_exact_30"] == {key: 3000.0}
    assert t["growth_128_to_512"] == {key: 17.0, key + " compiled": 10.0}
    assert t["llg_step_256_s"] == {key: 0.7}


def test_best_time_and_peak_memory():
    calls = []
    t = bench.best_time(lambda: calls.append(1), repeat=3)
    assert len(calls) == 4 and t["repeats"] == 3 and t["best_s"] <= t["median_s"]
    mib, method = bench.peak_memory(lambda: torch.ones(64 * 2**20 // 8, dtype=torch.float64))
    if method == "vmhwm":
        assert 50 < mib < 200


def test_bad_options_are_clear_errors():
    runner = CliRunner()
    for args, msg in ((["--solvers", "ml,dft"], "unknown solvers"),
                      (["--dtype", "float16"], "unknown dtype"),
                      (["--sizes", "30,x"], "sizes"),
                      (["--lattice", "kagome"], "unknown lattice"),
                      (["--workers", "0"], "workers")):
        res = runner.invoke(app, ["bench", *args])
        assert res.exit_code == 2 and msg in res.output, res.output
    with pytest.raises(ValueError, match="L = 9"):
        bench.bench_model("triangular", 9)


def test_shipped_mu_conditioned_model_runs_canonically_at_any_size():
    """The square model was trained at N_e = 248 of 512 states (filling 0.484375), which is no
    integer electron number on 30x30; the benchmark times it at the nearest one (872 of 1800)."""
    row = bench.bench_force_field("ml", "square", 30, model="square-J6-n0.485", repeat=1, memory=False)
    assert row["ensemble"] == "canonical, N_e = 872"
    assert row["site_evals_per_s"] > 0
    assert bench.bench_force_field("ml", "square", 12, repeat=1, memory=False)["ensemble"] is None


def test_worker_rows():
    """``--workers 1,2``: every learned-model measurement in both set-ups (and compiled with
    ``--compile``), labelled apart in the targets; a 2-worker LLG row is a real measurement."""
    from itinerant.cli.bench import plan

    specs = plan(["exact", "ml"], [30], ["square"], ["float32"], "cpu", [2], 30, [], [64], 1,
                 {"square": ["default"]}, True, 1, False, workers=[1, 2])
    ml = [(s["what"], s.get("compile", False), s.get("workers", 1)) for s in specs
          if s["what"] in ("llg", "force_field") and s.get("solver", "ml") == "ml"]
    assert sorted(ml) == sorted((w, c, k) for w in ("force_field", "llg") for c in (False, True)
                                for k in (1, 2))
    assert all("workers" not in s for s in specs if s.get("solver") == "exact")
    row = bench.bench_llg("square", 10, steps=1, workers=2)
    assert row["workers"] == 2 and row["evals_per_step"] == 4
    key = bench.targets([{**row, "L": 256}])["llg_step_256_s"]
    assert list(key) == ["square/default/float64/2 workers"]
