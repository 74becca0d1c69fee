"""Benchmarks: how fast the force fields are; how close the learned one gets to the machine's limit.

Every measurement is a function that returns a *row* (a dict of JSON-able values); ``itinerant
bench`` (:mod:`itinerant.cli.bench`) runs them, prints a table and writes JSON with
:func:`machine_info`, so that results from different machines can be compared.

* :func:`bench_force_field`: time per ``energy_and_fields`` call of the exact solver, KPM or the
  learned model on an L x L lattice (best of k wall-clock times, also the CPU time of the call),
  site-evaluations per second N / time, and the peak memory of a call.
* :func:`bench_llg`: ML-LLG steps per second (and force evaluations per step).
* :func:`float32_accuracy`: the learned model's float32 fields against float64.
* :func:`matmul_peak`, :func:`copy_bandwidth`: the machine's dense-GEMM FLOP/s and memory bandwidth.
* :func:`flop_count`: FLOPs and bytes per site of the learned model's fast path (analytic GEMM
  count from the shapes, cross-checked with ``torch.utils.flop_counter``; element-wise operations
  and bytes moved counted by tracing one call).

Peak memory is measured in-process on Linux: free heap pages are returned to the OS
(``malloc_trim``), the high-water mark is reset (``/proc/self/clear_refs``) and the peak resident
set during the call, less the resident set before it, is reported ("vmhwm"); elsewhere the growth
of ``ru_maxrss`` (meaningful in a fresh process: :func:`run_isolated`).  On a GPU:
``torch.cuda.max_memory_allocated``.

Timings on a shared machine are noisy: rows record the load average, and the best of k is used.

    python -m itinerant.bench '{"what": "force_field", "solver": "ml", "lattice": "square",
                                "L": 64}'

runs one row in this process and prints it as JSON (used by :func:`run_isolated`).
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone

import numpy as np
import torch

from ._version import __version__

BENCH_MODELS = {
    "square": {"t": (1.0,), "J": 4.0, "filling": 0.5, "kT": 0.0},
    "triangular": {"t": (1.0,), "J": 2.0, "filling": 0.25, "kT": 0.0},
}
"""The s-d models benchmarked (DESIGN.md §6): costs do not depend on J; KPM's on kT through M."""

SOLVERS = ("exact", "kpm", "ml")


# ---------------------------------------------------------------------- machine
def machine_info() -> dict:
    """CPU model, cores, threads, torch and device: what a timing needs to be compared."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = {
        "cpu_model": cpu, "logical_cpus": os.cpu_count(), "usable_cpus": usable,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "parallel_backend": next((ln.split(":", 1)[1].strip() for ln in
                                  torch.__config__.parallel_info().splitlines()
                                  if ln.startswith("ATen parallel backend")), None),
        "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
        "itinerant": __version__, "platform": platform.platform(), "hostname": platform.node(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(cuda_device=p.name, cuda_memory_gb=round(p.total_memory / 2**30, 1),
                    cuda_capability=f"{p.major}.{p.minor}", cuda_version=torch.version.cuda)
    return info


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device="cpu") -> tuple[float, float]:
    """Wall and process CPU seconds of ``fn()``."""
    _sync(device)
    w, c = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - w, time.process_time() - c


def best_time(fn, repeat: int = 3, device="cpu", first: tuple | None = None,
              max_total: float = 20.0) -> dict:
    """Time ``fn()``: a warm-up call (or ``first`` = its (wall, CPU) seconds, if the caller made
    it), then up to ``repeat`` timed calls, fewer once they add up to ``max_total`` seconds.

    A warm-up slower than ``max_total / 2`` is the only measurement (large exact solves have
    nothing to warm up).  ``cpu_s`` is the process CPU time of the best call (all threads): on a
    busy machine it shows the work done when the wall time is inflated by waiting.
    """
    warm = _timed(fn, device) if first is None else tuple(first)
    if warm[0] > max_total / 2:
        times = [warm]
    else:
        times = [_timed(fn, device)]
        while len(times) < repeat and sum(t[0] for t in times) < max_total:
            times.append(_timed(fn, device))
    best = min(times)
    return {"best_s": best[0], "cpu_s": best[1], "median_s": statistics.median(t[0] for t in times),
            "first_s": warm[0], "repeats": len(times)}


# ---------------------------------------------------------------------- memory
def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for ln in fh:
                if ln.startswith(key + ":"):
                    return int(ln.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Return free heap to the OS and reset the peak RSS; False where that is not possible."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _status_kb("VmHWM") is not None
    except OSError:
        return False


def peak_memory(fn, device="cpu") -> tuple[float, str]:
    """Run ``fn()`` once; its peak memory in MiB above what was in use before, and the method."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20, "cuda_max_memory_allocated"
    if _reset_peak():
        before = _status_kb("VmRSS")
        fn()
        return (_status_kb("VmHWM") - before) / 1024, "vmhwm"
    import resource  # POSIX only

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 1024  # bytes on macOS, KiB on Linux
    return (after - before) * scale, "ru_maxrss"


# ---------------------------------------------------------------------- force fields
def bench_model(kind: str, L: int):
    """The benchmark s-d model (:data:`BENCH_MODELS`) on an L x L lattice."""
    from .lattice import Lattice
    from .model import SDModel

    if kind not in BENCH_MODELS:
        raise ValueError(f"unknown lattice {kind!r}; known: {sorted(BENCH_MODELS)}")
    p = BENCH_MODELS[kind]
    try:
        return SDModel(Lattice.from_name(kind, L), t=p["t"], J=p["J"], filling=p["filling"],
                       kT=p["kT"])
    except ValueError as exc:
        raise ValueError(f"benchmark size L = {L} on the {kind} lattice: {exc}") from None


def make_force_field(solver: str, kind: str, L: int, dtype: str = "float64", device="cpu",
                     model: str = "default", compile: bool = False, workers: int = 1):
    """A force field to time: ``"exact"``, ``"kpm"`` (default settings) or ``"ml"``.

    ``model`` (ML only): ``"default"`` is an untrained :class:`MLForceField` with the default
    architecture (descriptor cutoff ``DEFAULT_CUTOFF``, the network's default widths; its speed
    does not depend on the weights); otherwise a shipped model's name or a model path.
    ``workers`` (ML only): single-threaded worker processes (:mod:`itinerant.models.workers`).
    """
    from .electrons import ExactSolver, KPMSolver
    from .models import MLForceField
    from .models.fastpath import GPU_BLOCK

    sd = bench_model(kind, L)
    if solver == "exact":
        return ExactSolver(sd, device=device)
    if solver == "kpm":
        return KPMSolver(sd, device=device)
    if solver != "ml":
        raise ValueError(f"unknown solver {solver!r}; known: {SOLVERS}")
    opts = {"dtype": dtype, "device": device, "compile": compile, "workers": workers}
    if torch.device(device).type != "cpu":
        opts["max_sites"] = GPU_BLOCK
    if model == "default":
        from .descriptors import DEFAULT_CUTOFF

        return MLForceField.new(sd, DEFAULT_CUTOFF[kind], **opts)
    ff = MLForceField.load(model, lattice=sd.lattice, **opts)
    filling = ff.ensemble.get("filling") if ff.mu_conditioned else None
    if filling is not None:  # canonical mode at the nearest integer electron number on this lattice
        states = 2 * sd.lattice.N
        ff = MLForceField.load(model, lattice=sd.lattice, filling=round(filling * states) / states,
                               **opts)
    return ff


def _ensemble(ff) -> str | None:
    """A learned model's ensemble in words (mu-conditioned models), else None."""
    ens = getattr(ff, "ensemble", None) or {}
    if ens.get("filling") is not None:
        return f"canonical, N_e = {round(ens['filling'] * 2 * ff.lattice.N)}"
    if ens.get("mu") is not None:
        return f"grand canonical, mu = {ens['mu']:g}"
    return None


def _spins(N: int, seed: int = 0) -> np.ndarray:
    from .spins import random_spins

    return random_spins(N, np.random.default_rng(seed))


def _solver_dtype(solver: str, ff, dtype: str) -> str:
    if solver == "ml":
        return dtype
    if solver == "kpm":
        return str(ff.dtype).removeprefix("torch.")
    return "float64"


def bench_force_field(solver: str, lattice: str, L: int, dtype: str = "float64", device="cpu",
                      model: str = "default", repeat: int = 3, compile: bool = False,
                      memory: bool = True, workers: int = 1) -> dict:
    """Time ``energy_and_fields`` on one random configuration: a row.  With ``workers`` > 1 the
    peak memory is this process's only (the workers' is not counted)."""
    ff = make_force_field(solver, lattice, L, dtype, device, model, compile, workers)
    N = L * L
    s = _spins(N)
    load = _load()
    compile_s = _timed(lambda: ff.energy_and_fields(s), device)[0] if compile else None
    first, mem, method = None, None, None
    if memory:  # the first call: its peak memory, and its time as the warm-up

        def call():
            nonlocal first
            first = _timed(lambda: ff.energy_and_fields(s), device)

        mem, method = peak_memory(call, device)
    t = best_time(lambda: ff.energy_and_fields(s), repeat, device, first)
    row = {"what": "force_field", "solver": solver, "model": model if solver == "ml" else None,
           "lattice": lattice, "L": L, "N": N, "dtype": _solver_dtype(solver, ff, dtype),
           "device": str(device), "threads": torch.get_num_threads(), "compile": compile,
           "workers": workers, "ms": 1e3 * t["best_s"], "cpu_ms": 1e3 * t["cpu_s"],
           "median_ms": 1e3 * t["median_s"],
           "first_ms": 1e3 * t["first_s"], "repeats": t["repeats"],
           "site_evals_per_s": N / t["best_s"], "peak_mem_mb": mem, "mem_method": method,
           "load": load, "compile_s": compile_s, "ensemble": _ensemble(ff)}
    if solver == "kpm":
        row["settings"] = {k: v for k, v in ff.settings().items() if k != "spectral_half_width"}
    if solver == "ml":
        ff.close()
    return row


class _Counting:
    """A force field wrapper that counts ``energy_and_fields`` calls."""

    def __init__(self, ff) -> None:
        self.ff, self.calls = ff, 0

    def energy_and_fields(self, spins):
        self.calls += 1
        return self.ff.energy_and_fields(spins)

    def __getattr__(self, name):
        return getattr(self.ff, name)


def bench_llg(lattice: str, L: int, steps: int = 3, dtype: str = "float64", device="cpu",
              model: str = "default", compile: bool = False, dt: float = 0.05,
              alpha: float = 0.1, workers: int = 1) -> dict:
    """ML-LLG steps at kT_spin = 0, as in ``LLG.run`` (a step, then the fields at the new spins
    for the next one; integrator "auto" = RK4: 4 force evaluations per step): a row."""
    from .dynamics import LLG

    ff = _Counting(make_force_field("ml", lattice, L, dtype, device, model, compile, workers))
    sim = LLG(ff, alpha=alpha, dt=dt, kT=0.0, seed=0)
    s = _spins(L * L)
    _, h = sim.energy_and_fields(s)  # the run's initial evaluation (and warm-up)
    ff.calls = 0
    load = _load()

    def advance():
        nonlocal s, h
        for _ in range(steps):
            s = sim.step(s, h)
            _, h = sim.energy_and_fields(s)

    wall, cpu = _timed(advance, device)
    ff.close()
    evals = ff.calls / steps
    return {"what": "llg", "solver": "ml", "model": model, "lattice": lattice, "L": L, "N": L * L,
            "dtype": dtype, "device": str(device), "threads": torch.get_num_threads(),
            "compile": compile, "workers": workers, "integrator": sim.integrator, "dt": dt,
            "steps": steps, "evals_per_step": evals, "ms_per_step": 1e3 * wall / steps,
            "cpu_ms_per_step": 1e3 * cpu / steps, "steps_per_s": steps / wall,
            "ms_per_eval": 1e3 * wall / ff.calls, "load": load, "ensemble": _ensemble(ff.ff)}


def float32_accuracy(lattice: str, L: int, model: str = "default", device="cpu") -> dict:
    """float32 against float64 fields of the learned model: relative RMS difference; also the fast
    path against autograd (float64), which should be rounding."""
    ff64 = make_force_field("ml", lattice, L, "float64", device, model)
    ff32 = make_force_field("ml", lattice, L, "float32", device, model)
    s = _spins(L * L, seed=1)
    E64, h64 = ff64.energy_and_fields(s)
    E32, h32 = ff32.energy_and_fields(s)
    ff64.fast = False
    E_ag, h_ag = ff64.energy_and_fields(s)
    rms = lambda a: float(np.sqrt(np.mean(a * a)))  # noqa: E731
    return {"what": "accuracy", "model": model, "lattice": lattice, "L": L, "N": L * L,
            "fields_rel_rms_float32": rms(h32 - h64) / rms(h64),
            "energy_rel_float32": abs(E32 - E64) / abs(E64),
            "fields_rel_rms_fast_vs_autograd": rms(h64 - h_ag) / rms(h_ag),
            "energy_rel_fast_vs_autograd": abs(E64 - E_ag) / abs(E_ag)}


# ---------------------------------------------------------------------- machine limits
def matmul_peak(dtype: str = "float32", device="cpu", n: int = 2048, repeat: int = 3) -> dict:
    """Dense n x n matrix product: FLOP/s (2 n^3 per product), an estimate of the peak."""
    dt = getattr(torch, dtype)
    a = torch.randn(n, n, dtype=dt, device=device)
    b = torch.randn(n, n, dtype=dt, device=device)
    t = best_time(lambda: a @ b, repeat, device)
    return {"what": "peak", "kind": "matmul", "dtype": dtype, "device": str(device), "n": n,
            "threads": torch.get_num_threads(), "gflops": 2 * n**3 / t["best_s"] / 1e9,
            "load": _load()}


def copy_bandwidth(device="cpu", mib: int = 256, repeat: int = 3) -> dict:
    """Copy of a large array: bytes read + written per second (memory bandwidth)."""
    x = torch.empty(mib * 2**20 // 4, dtype=torch.float32, device=device).fill_(1.0)
    y = torch.empty_like(x)
    t = best_time(lambda: y.copy_(x), repeat, device)
    return {"what": "peak", "kind": "copy", "device": str(device), "mib": mib,
            "threads": torch.get_num_threads(), "gb_per_s": 2 * x.numel() * 4 / t["best_s"] / 1e9,
            "load": _load()}


# ---------------------------------------------------------------------- FLOPs and bytes
_VIEWS = {"view", "_unsafe_view", "reshape", "_reshape_alias", "slice", "select", "expand",
          "permute", "transpose", "t", "split", "split_with_sizes", "narrow", "as_strided",
          "alias", "unsqueeze", "squeeze", "detach", "lift_fresh", "empty", "empty_like",
          "empty_strided", "new_empty"}
"""Operations that move no data."""
_WRITES = {"zeros", "zeros_like", "new_zeros", "fill_", "zero_"}
"""Operations that only write their result."""
_MOVES = {"index_select", "cat", "stack", "index", "copy_", "clone", "_to_copy"}
"""Operations that move data without arithmetic."""
_GEMM = {"mm", "addmm", "addmm_", "bmm"}


def gemm_flops_per_site(net, descriptor) -> int:
    """Analytic GEMM FLOPs per site of the fast path (forward + backward), from the shapes:
    orbit bases ``4 n_orbits |G|^2``; layers ``2 w_in w_out`` forward, the same backward except
    the output layer (its gradient is a constant vector); the length channel ``2 H_1`` each way."""
    n_orb, n_g = descriptor.orbit_basis.shape[:2]
    widths = [net.n_features, *net.hidden, 1]
    fwd = sum(2 * a * b for a, b in zip(widths[:-1], widths[1:]))
    bwd = sum(2 * a * b for a, b in zip(widths[:-2], widths[1:-1])) if net.hidden else 2 * widths[0]
    length = 4 * widths[1] if net.length_channel else 0
    return 4 * n_orb * n_g * n_g + fwd + bwd + length


def flop_count(lattice: str, L: int = 32, dtype: str = "float32", model: str = "default") -> dict:
    """FLOPs and bytes per site of one fast-path call (see the module docstring): a row.

    ``gemm_flops_per_site`` is analytic; ``gemm_flops_counted`` comes from
    ``torch.utils.flop_counter.FlopCounterMode`` on a call.  ``elementwise_ops_per_site`` counts
    the outputs of all other arithmetic operations; ``bytes_per_site`` the bytes of every operand
    and result of every operation that touches data (gathers, scatters, copies, arithmetic) -- an
    upper bound on the memory traffic if nothing stayed in cache.
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    ff = make_force_field("ml", lattice, L, dtype, "cpu", model)
    lat = ff.lattice
    x = torch.as_tensor(_spins(lat.N)[None], dtype=ff.dtype)
    ev = ff._evaluator(lat)
    mu = None
    if ff.mu_conditioned:  # one pass at a fixed mu (the canonical mode makes several per evaluation)
        mu = torch.full((1, lat.N), float(np.mean(ff.mu_range)), dtype=ff.dtype)
    ev(ff.net, x, mu)

    counts = {"bytes": 0, "elementwise": 0, "gemm_bytes": 0}

    def nbytes(obj):
        if torch.is_tensor(obj):
            return obj.numel() * obj.element_size()
        if isinstance(obj, (list, tuple)):
            return sum(nbytes(o) for o in obj)
        return 0

    def numel(obj):
        if torch.is_tensor(obj):
            return obj.numel()
        if isinstance(obj, (list, tuple)):
            return max((numel(o) for o in obj), default=0)
        return 0

    class Trace(TorchDispatchMode):
        """Bytes of operands and results per operation; element counts of arithmetic."""

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            name = func.__name__.split(".")[0]
            if name in _VIEWS:
                return out
            if name in _WRITES:
                counts["bytes"] += nbytes(out)
                return out
            moved = nbytes(args) + nbytes(list(kwargs.values())) + nbytes(out)
            counts["bytes"] += moved
            if name in _GEMM:
                counts["gemm_bytes"] += moved
            elif name not in _MOVES:  # arithmetic, scatter-adds and reductions
                counts["elementwise"] += max(numel(args), numel(out))
            return out

    with Trace():
        ev(ff.net, x, mu)
    with FlopCounterMode(display=False) as fc:
        ev(ff.net, x, mu)
    N = lat.N
    gemm = gemm_flops_per_site(ff.net, ff.descriptor(lat))
    d = ff.descriptor(lat)
    return {"what": "flops", "model": model, "lattice": lattice, "L": L, "dtype": dtype,
            "n_features": d.n_features, "hidden": list(ff.net.hidden),
            "n_coefficients": int(d.n_coefficients), "gather_slots": len(d.slot_field),
            "gemm_flops_per_site": gemm, "gemm_flops_counted": fc.get_total_flops() / N,
            "elementwise_ops_per_site": counts["elementwise"] / N,
            "flops_per_site": gemm + counts["elementwise"] / N,
            "bytes_per_site": counts["bytes"] / N, "gemm_bytes_per_site": counts["gemm_bytes"] / N}


# ---------------------------------------------------------------------- rows by spec
def run_row(spec: dict) -> dict:
    """Run the measurement a spec names (``{"what": ..., **arguments}``) in this process."""
    spec = dict(spec)
    what = spec.pop("what")
    threads = spec.pop("threads", None)
    if threads:
        torch.set_num_threads(int(threads))
    funcs = {"force_field": bench_force_field, "llg": bench_llg, "accuracy": float32_accuracy,
             "matmul": matmul_peak, "copy": copy_bandwidth, "flops": flop_count}
    if what not in funcs:
        raise ValueError(f"unknown measurement {what!r}; known: {sorted(funcs)}")
    return funcs[what](**spec)


def run_isolated(spec: dict, timeout: float | None = None) -> dict:
    """Run one spec in a fresh Python process (clean memory high-water mark and caches)."""
    proc = subprocess.run([sys.executable, "-m", "itinerant.bench", json.dumps(spec)],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"benchmark {spec} failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def targets(rows: list[dict]) -> dict:
    """The issue's targets, evaluated on measured rows (None where a row is missing).

    * ``ml_vs_exact_30``: exact time / ML time at 30x30 (target >= 1000), per lattice and dtype;
    * ``growth_128_to_512``: ML time at 512x512 / at 128x128 (target <= 18; 16 is linear);
    * ``llg_step_256_s``: ML-LLG seconds per step at 256x256 (target < 1 s on 2 cores).
    """
    ff = [r for r in rows if r.get("what") == "force_field"]

    def key(r):
        return (f"{r['lattice']}/{r['model']}/{r['dtype']}/" + (
            f"{r['workers']} workers" if r.get("workers", 1) > 1 else f"{r.get('threads')} threads")
            + (" compiled" if r.get("compile") else ""))

    def find(solver, like, L):
        for r in ff:
            if r["solver"] == solver and r["L"] == L and r["lattice"] == like["lattice"] and (
                    r.get("threads") == like.get("threads")) and (solver != "ml" or (
                    r["dtype"], r["model"], r.get("compile"), r.get("workers", 1)) == (
                    like["dtype"], like["model"], like.get("compile"), like.get("workers", 1))):
                return r
        return None

    out = {"ml_vs_exact_30": {}, "growth_128_to_512": {}, "llg_step_256_s": {}}
    for r in ff:
        if r["solver"] != "ml":
            continue
        ex = find("exact", r, 30)
        if r["L"] == 30 and ex:
            out["ml_vs_exact_30"][key(r)] = ex["ms"] / r["ms"]
        a = find("ml", r, 128)
        if r["L"] == 512 and a:
            out["growth_128_to_512"][key(r)] = r["ms"] / a["ms"]
    for r in rows:
        if r.get("what") == "llg" and r["L"] == 256:
            out["llg_step_256_s"][key(r)] = r["ms_per_step"] / 1e3
    return out


def roofline(rows: list[dict]) -> list[dict]:
    """For every (eager) ML force-field row: achieved FLOP/s and bytes/s against the machine's
    measured matmul peak (same dtype, threads, device) and copy bandwidth.

    ``gflops`` = (GEMM + element-wise) FLOPs per site x site-evaluations per second;
    ``gbytes_per_s`` = traced bytes per site x sites per second, an upper bound on the memory
    traffic (operands re-read from cache count as if from memory).  The fraction nearer 1 names
    the bound; both well below 1 means operation overhead and latency bound the call.
    """
    flops = {(r["lattice"], r["model"], r["dtype"]): r for r in rows if r.get("what") == "flops"}
    peaks = {(r["kind"], r.get("dtype"), r["threads"], r["device"]): r for r in rows
             if r.get("what") == "peak"}
    out = []
    for r in rows:
        if r.get("what") != "force_field" or r["solver"] != "ml" or r.get("compile"):
            continue  # the traced counts are those of the eager fast path
        f = flops.get((r["lattice"], r["model"], r["dtype"]))
        if f is None:
            continue
        mm = peaks.get(("matmul", r["dtype"], r["threads"], r["device"]))
        bw = peaks.get(("copy", None, r["threads"], r["device"]))
        gflops = f["flops_per_site"] * r["site_evals_per_s"] / 1e9
        gbytes = f["bytes_per_site"] * r["site_evals_per_s"] / 1e9
        out.append({"lattice": r["lattice"], "model": r["model"], "L": r["L"], "dtype": r["dtype"],
                    "threads": r["threads"], "device": r["device"],
                    "flops_per_site": f["flops_per_site"], "bytes_per_site": f["bytes_per_site"],
                    "gflops": gflops,
                    "fraction_of_matmul_peak": gflops / mm["gflops"] if mm else None,
                    "gbytes_per_s": gbytes,
                    "fraction_of_copy_bandwidth": gbytes / bw["gb_per_s"] if bw else None})
    return out


def _main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m itinerant.bench '<JSON spec>'")
    print(json.dumps(run_row(json.loads(argv[0]))))


if __name__ == "__main__":
    _main(sys.argv[1:])
