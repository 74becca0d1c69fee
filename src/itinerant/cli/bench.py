"""``itinerant bench``: speed of the exact solver, KPM and the learned force field; ML-LLG steps.

    itinerant bench                                   # the full CPU benchmark (minutes)
    itinerant bench --quick --json quick.json         # seconds: small sizes, a smoke test
    itinerant bench --solvers ml --sizes 256,512,1024 --device cuda --dtype float32

Prints tables (site-evaluations per second = N / time per ``energy_and_fields`` call, ms per call,
CPU ms, peak memory; ML-LLG steps per second; FLOP/s and bytes/s of the learned model against the
machine's measured matmul peak and copy bandwidth; the issue's targets) and writes everything with
the machine's description to ``--json``.  The measurements are :mod:`itinerant.bench`.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .app import app, console, run_guarded

QUICK = {"sizes": [10, 12], "exact": [8], "kpm": [8], "llg": [10], "llg_steps": 1, "repeat": 1,
         "flops_L": 10, "accuracy_L": 10, "matmul_n": 256, "copy_mib": 16}
"""The ``--quick`` plan (square lattice only)."""


def _ints(text: str, what: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None
    if any(x < 1 for x in out):
        raise ValueError(f"{what} must be positive, got {text!r}")
    return out


def _choices(text: str, known, what: str) -> list[str]:
    out = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in out if x not in known]
    if bad or not out:
        raise ValueError(f"unknown {what} {bad or text!r}; known: {', '.join(known)}")
    return out


def plan(solvers, sizes, lattices, dtypes, device, threads, exact_max, kpm_sizes, llg_sizes,
         llg_steps, models, compile, repeat, quick, workers=(1,)) -> list[dict]:
    """The list of measurement specs (see :func:`itinerant.bench.run_row`)."""
    q = QUICK if quick else {}
    specs = []

    def ml(spec):
        """A learned-model measurement: eager, compiled (``compile``), in each worker count."""
        for w in workers:
            for c in (False, True) if compile else (False,):
                specs.append({**spec, **({"compile": True} if c else {}),
                              **({"workers": w} if w > 1 else {})})

    for th in threads:
        common = {"threads": th}
        for dt in ("float32", "float64"):
            if dt in dtypes or dt == "float64" and "exact" in solvers:
                specs.append({"what": "matmul", "dtype": dt, "device": device,
                              "n": q.get("matmul_n", 2048), **common})
        specs.append({"what": "copy", "device": device, "mib": q.get("copy_mib", 256), **common})
        for kind in lattices:
            ff = {"lattice": kind, "device": device, "repeat": repeat, **common}
            if "exact" in solvers:
                for L in q.get("exact", [L for L in sizes if L <= exact_max]):
                    specs.append({"what": "force_field", "solver": "exact", "L": L, **ff})
            if "kpm" in solvers:
                for L in q.get("kpm", kpm_sizes):
                    specs.append({"what": "force_field", "solver": "kpm", "L": L, **ff})
            if "ml" not in solvers:
                continue
            for m in models.get(kind, []):
                for dt in dtypes:
                    for L in sizes:
                        ml({"what": "force_field", "solver": "ml", "L": L, "dtype": dt,
                            "model": m, **ff})
                    for L in q.get("llg", llg_sizes):
                        ml({"what": "llg", "lattice": kind, "L": L, "dtype": dt, "model": m,
                            "device": device, "steps": q.get("llg_steps", llg_steps), **common})
                    if device == "cpu":
                        specs.append({"what": "flops", "lattice": kind, "L": q.get("flops_L", 32),
                                      "dtype": dt, "model": m, **common})
                if th == threads[0]:
                    specs.append({"what": "accuracy", "lattice": kind, "model": m,
                                  "L": q.get("accuracy_L", 64), "device": device, **common})
    return specs


def _fmt(x, digits=3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:.3e}"
    return str(x)


def _threads(row: dict) -> str:
    """Threads of a row: torch's, or "P x 1" for P single-threaded worker processes."""
    w = row.get("workers", 1)
    return f"{w} x 1" if w > 1 else str(row["threads"])


def tables(result: dict):
    """Rich tables of a result (machine, force fields, LLG, roofline, targets)."""
    from rich.table import Table

    rows = result["rows"]
    m = result["machine"]
    out = []
    t = Table(title=f"force fields: {m['cpu_model']}, {m['usable_cpus']} CPUs, torch {m['torch']}")
    for c in ("solver", "model", "lattice", "L", "N", "dtype", "thr", "ms/call", "CPU ms",
              "site-evals/s", "peak MiB", "load"):
        left = c in ("solver", "model", "lattice", "dtype")
        t.add_column(c, justify="left" if left else "right")
    for r in rows:
        if r["what"] == "force_field":
            t.add_row(r["solver"] + (" (compiled)" if r.get("compile") else ""), _model(r),
                      r["lattice"], str(r["L"]), str(r["N"]), r["dtype"], _threads(r),
                      _fmt(r["ms"]), _fmt(r["cpu_ms"]), f"{r['site_evals_per_s']:.3g}",
                      _fmt(r["peak_mem_mb"]), _fmt(r["load"], 2))
    out.append(t)
    llg = [r for r in rows if r["what"] == "llg"]
    if llg:
        t = Table(title="ML-LLG (kT_spin = 0)")
        for c in ("model", "lattice", "L", "dtype", "thr", "integrator", "evals/step", "ms/step",
                  "CPU ms/step", "steps/s", "ms/eval", "load"):
            t.add_column(c)
        for r in llg:
            t.add_row(_model(r) + (" (compiled)" if r.get("compile") else ""), r["lattice"],
                      str(r["L"]), r["dtype"], _threads(r),
                      r["integrator"], _fmt(r["evals_per_step"]), _fmt(r["ms_per_step"]),
                      _fmt(r["cpu_ms_per_step"]), _fmt(r["steps_per_s"]), _fmt(r["ms_per_eval"]),
                      _fmt(r["load"], 2))
        out.append(t)
    peaks = [r for r in rows if r["what"] == "peak"]
    flops = [r for r in rows if r["what"] == "flops"]
    if peaks or flops:
        t = Table(title="machine limits and the learned model's work per site")
        t.add_column("what")
        t.add_column("value")
        for r in peaks:
            if r["kind"] == "matmul":
                t.add_row(f"matmul {r['n']}^2 {r['dtype']}, {r['threads']} thr",
                          f"{r['gflops']:.1f} GFLOP/s")
            else:
                t.add_row(f"copy {r['mib']} MiB, {r['threads']} thr", f"{r['gb_per_s']:.1f} GB/s")
        for r in flops:
            t.add_row(f"{r['lattice']} {r['model']} {r['dtype']}: FLOP/site (GEMM analytic | "
                      f"counted; element-wise)",
                      f"{r['gemm_flops_per_site']:.0f} | {r['gemm_flops_counted']:.0f}; "
                      f"{r['elementwise_ops_per_site']:.0f}")
            t.add_row(f"{r['lattice']} {r['model']} {r['dtype']}: bytes/site (all ops | GEMM)",
                      f"{r['bytes_per_site']:.0f} | {r['gemm_bytes_per_site']:.0f}")
        out.append(t)
    roof = result.get("roofline", [])
    if roof:
        t = Table(title="learned model: achieved rates (bytes: upper bound, no cache reuse)")
        for c in ("lattice", "model", "L", "dtype", "thr", "GFLOP/s", "of matmul peak", "GB/s",
                  "of copy bandwidth"):
            t.add_column(c)
        for r in roof:
            t.add_row(r["lattice"], r["model"], str(r["L"]), r["dtype"], str(r["threads"]),
                      _fmt(r["gflops"]), _fmt(r["fraction_of_matmul_peak"], 2),
                      _fmt(r["gbytes_per_s"]), _fmt(r["fraction_of_copy_bandwidth"], 2))
        out.append(t)
    acc = [r for r in rows if r["what"] == "accuracy"]
    tg = result.get("targets", {})
    t = Table(title="accuracy and targets")
    t.add_column("what")
    t.add_column("value")
    for r in acc:
        t.add_row(f"{r['lattice']} {r['model']} L={r['L']}: fields rel. RMS float32 - float64",
                  _fmt(r["fields_rel_rms_float32"], 2))
        t.add_row(f"{r['lattice']} {r['model']} L={r['L']}: fields rel. RMS fast path - autograd",
                  _fmt(r["fields_rel_rms_fast_vs_autograd"], 2))
    names = {"ml_vs_exact_30": "exact / ML time at 30x30 (target >= 1000)",
             "growth_128_to_512": "ML time 512^2 / 128^2 (target <= 18)",
             "llg_step_256_s": "ML-LLG s/step at 256^2 (target < 1 s)"}
    for key, label in names.items():
        for k, v in tg.get(key, {}).items():
            t.add_row(f"{label}: {k}", _fmt(v))
    out.append(t)
    return out


@app.command()
def bench(
    solvers: str = typer.Option("exact,kpm,ml", help="Comma list of exact, kpm, ml."),
    sizes: str = typer.Option("30,64,128,256,512",
                              help="Lattice sizes L of the learned model (and of exact up to "
                                   "--exact-max-L)."),
    lattice: str = typer.Option("square,triangular", help="Comma list of square, triangular."),
    dtype: str = typer.Option("float64,float32", help="Learned model's dtypes (comma list)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    threads: str = typer.Option(None, help="Torch CPU threads, comma list (default: torch's, "
                                           "which follows OMP_NUM_THREADS)."),
    exact_max: int = typer.Option(30, "--exact-max-L", help="Largest L of the exact solver."),
    kpm_sizes: str = typer.Option("30", "--kpm-sizes", help="Sizes L of the KPM solver."),
    llg_sizes: str = typer.Option("64,256", "--llg-sizes", help="Sizes L of ML-LLG runs."),
    llg_steps: int = typer.Option(2, "--llg-steps", help="Steps per ML-LLG timing."),
    model: str = typer.Option(None, help="Learned models: 'default' (untrained, default "
                                         "architecture) and/or shipped names or paths, comma list "
                                         "(default: 'default' and every shipped model)."),
    compile: bool = typer.Option(False, "--compile",
                                 help="Also time the torch.compile'd fast path (slow to compile)."),
    workers: str = typer.Option("1", help="Learned model: worker-process counts, comma list; "
                                          "P > 1 = P single-threaded processes (CPU)."),
    repeat: int = typer.Option(3, help="Timed calls per measurement (best is reported)."),
    isolate: bool = typer.Option(None, "--isolate/--no-isolate",
                                 help="Each measurement in a fresh process (default: yes; no "
                                      "with --quick)."),
    json_out: Path = typer.Option(None, "--json", help="Write the results and machine info here."),
    quick: bool = typer.Option(False, "--quick", help="Seconds: small sizes, square lattice."),
) -> None:
    """Benchmark the force fields and ML-LLG; print tables, write JSON."""

    def _run():
        import torch
        from rich.console import Console

        from .. import bench as B
        from ..models import MLForceField

        solver_list = _choices(solvers, B.SOLVERS, "solvers")
        lattices = ["square"] if quick else _choices(lattice, sorted(B.BENCH_MODELS), "lattice")
        dtypes = _choices(dtype, ("float64", "float32"), "dtype")
        if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
            raise ValueError(f"device must be cpu or cuda, got {device!r}")
        if device != "cpu" and not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is available to torch")
        worker_list = _ints(workers, "workers")
        if device != "cpu" and max(worker_list) > 1:
            raise ValueError("--workers > 1 runs CPU processes; not with --device cuda")
        thread_list = _ints(threads, "threads") if threads else [torch.get_num_threads()]
        size_list = QUICK["sizes"] if quick else _ints(sizes, "sizes")
        if llg_steps < 1 or repeat < 1:
            raise ValueError("--llg-steps and --repeat must be >= 1")
        if model:
            names = [m.strip() for m in model.split(",") if m.strip()]
        else:
            names = ["default"] + ([] if quick else MLForceField.available())
        models = {}
        for name in names:
            kinds = lattices if name == "default" else [
                MLForceField.load(name).lattice_name]
            for kind in kinds:
                if kind in lattices:
                    models.setdefault(kind, []).append(name)
        specs = plan(solver_list, size_list, lattices, dtypes, device, thread_list, exact_max,
                     _ints(kpm_sizes, "kpm sizes"), _ints(llg_sizes, "llg sizes"), llg_steps,
                     models, compile, QUICK["repeat"] if quick else repeat, quick, worker_list)
        separate = (not quick) if isolate is None else isolate
        info = B.machine_info()
        console.print(f"{len(specs)} measurements on {info['cpu_model']} ({info['usable_cpus']} "
                      f"CPUs, load {info['load_average'][0]:.1f}), "
                      f"{'each in a fresh process' if separate else 'in this process'}",
                      highlight=False)
        rows = []
        for k, spec in enumerate(specs, 1):
            label = " ".join(f"{v}" for key, v in spec.items() if key not in ("device", "repeat"))
            with console.status(f"[{k}/{len(specs)}] {label}"):
                rows.append(B.run_isolated(spec) if separate else B.run_row(spec))
            console.print(f"[{k}/{len(specs)}] {label}: {_summary(rows[-1])}", highlight=False)
        result = {"machine": info, "command": {
            "solvers": solver_list, "sizes": size_list, "lattices": lattices, "dtypes": dtypes,
            "device": device, "threads": thread_list, "quick": quick, "isolate": separate,
            "repeat": QUICK["repeat"] if quick else repeat, "models": models,
            "bench_models": {k: {**v, "t": list(v["t"])} for k, v in B.BENCH_MODELS.items()}},
            "rows": rows, "roofline": B.roofline(rows), "targets": B.targets(rows)}
        out = Console()
        if not out.is_terminal:  # files and pipes: wide enough for the tables
            out = Console(width=160)
        for t in tables(result):
            out.print(t)
        if json_out is not None:
            json_out.write_text(json.dumps(result, indent=1))
            console.print(f"wrote {json_out}")

    run_guarded(_run)


def _model(r: dict) -> str:
    """The model column: name, and the ensemble of a mu-conditioned model."""
    return (r["model"] or "") + (f" ({r['ensemble']})" if r.get("ensemble") else "")


def _summary(r: dict) -> str:
    if r["what"] == "force_field":
        return f"{r['ms']:.4g} ms/call, {r['site_evals_per_s']:.3g} site-evals/s"
    if r["what"] == "llg":
        return f"{r['ms_per_step']:.4g} ms/step ({r['evals_per_step']:g} evaluations)"
    if r["what"] == "peak":
        if r["kind"] == "matmul":
            return f"{r['gflops']:.1f} GFLOP/s"
        return f"{r['gb_per_s']:.1f} GB/s"
    if r["what"] == "flops":
        return f"{r['flops_per_site']:.0f} FLOP/site, {r['bytes_per_site']:.0f} B/site"
    return f"float32 fields rel. RMS {r['fields_rel_rms_float32']:.2g}"
