"""KPM cost versus lattice size (expect O(N)), memory, and the size where KPM overtakes exact diagonalisation.

    .venv/bin/python benchmarks/kpm_scaling.py [--sizes 32 64 128 256 512] [--moments 64] [--distance 5]
        [--crossover 16 24 32] [--threads 1] [--json out.json]

Model: triangular lattice, J = 2, mu = -1, kT = 0.1, random spins.  Part 1 times one
``energy_and_fields`` call at fixed (modest) settings for each size, in a fresh process so that its
peak resident memory (ru_maxrss, minus the same process's memory before the solve) is the solve's
own.  The cost is ~3 M R sparse products, so it is also given per (moment x vector x site); the cost
of other settings is that figure times 3 M R N.  Part 2 times ExactSolver and KPMSolver with its
default settings (M = 4 a / kT, probing distance 8) at the ``--crossover`` sizes and fits
t_ED ~ N^3, t_KPM ~ N to find the crossover.  Same number of torch threads for both.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time
import warnings

import numpy as np

MODEL = dict(J=2.0, mu=-1.0, kT=0.1)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _run(kind: str, L: int, settings: dict | None, threads: int) -> dict:
    """One timed solve in this process; ``settings=None`` means the exact solver."""
    import torch

    import itinerant as it
    from itinerant.spins import random_spins

    torch.set_num_threads(threads)
    model = it.SDModel(it.Lattice.from_name(kind, L), **MODEL)
    s = random_spins(model.lattice.N, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # modest settings on purpose
        solver = it.ExactSolver(model) if settings is None else it.KPMSolver(model, **settings)
    before = _rss_mib()
    t0 = time.perf_counter()
    solver.energy_and_fields(s)
    t = time.perf_counter() - t0
    out = {"lattice": kind, "L": L, "N": L * L, "seconds": t, "rss_before_MiB": before,
           "rss_peak_MiB": _rss_mib()}
    if settings is not None:
        out.update(moments=solver.moments, vectors=solver.n_vectors)
    return out


def run_isolated(*args) -> dict:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_run, args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lattice", default="triangular", choices=("triangular", "square"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    ap.add_argument("--moments", type=int, default=64)
    ap.add_argument("--distance", type=float, default=5.0)
    ap.add_argument("--crossover", type=int, nargs="*", default=[16, 24, 32])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    kind = args.lattice
    settings = {"moments": args.moments, "distance": args.distance}
    rows = []

    print(f"Part 1: KPM {kind} {MODEL}, moments {args.moments}, probing distance {args.distance}, "
          f"{args.threads} thread(s)")
    print(f"{'L':>5} {'N':>8} {'R':>4} {'seconds':>9} {'ns/(M R N)':>11} {'peak MiB':>9} {'solve MiB':>9}")
    for L in args.sizes:
        r = run_isolated(kind, L, settings, args.threads)
        r["ns_per_MRN"] = 1e9 * r["seconds"] / (r["moments"] * r["vectors"] * r["N"])
        r["solve_MiB"] = r["rss_peak_MiB"] - r["rss_before_MiB"]
        rows.append({"part": "scaling", **r})
        print(f"{L:>5} {r['N']:>8} {r['vectors']:>4} {r['seconds']:>9.2f} {r['ns_per_MRN']:>11.2f} "
              f"{r['rss_peak_MiB']:>9.0f} {r['solve_MiB']:>9.0f}", flush=True)
    scal = [r for r in rows if r["part"] == "scaling"]
    if len(scal) > 1:
        p = np.polyfit(np.log([r["N"] for r in scal]), np.log([r["seconds"] for r in scal]), 1)[0]
        print(f"t ~ N^{p:.2f} over L = {args.sizes[0]}..{args.sizes[-1]}")

    if args.crossover:
        print(f"\nPart 2: exact vs KPM defaults, {kind} {MODEL}, {args.threads} thread(s)")
        print(f"{'L':>5} {'N':>6} {'exact s':>9} {'KPM s':>9} {'M':>5} {'R':>5}")
        ed, kp = [], []
        for L in args.crossover:
            e = run_isolated(kind, L, None, args.threads)
            k = run_isolated(kind, L, {}, args.threads)
            ed.append(e["seconds"])
            kp.append(k)
            rows.append({"part": "crossover", "exact_seconds": e["seconds"], **k})
            print(f"{L:>5} {L * L:>6} {e['seconds']:>9.2f} {k['seconds']:>9.2f} {k['moments']:>5} "
                  f"{k['vectors']:>5}", flush=True)
        # KPM default cost per (M R N) from the largest size, ED prefactor from the largest size.
        big = kp[-1]
        per = big["seconds"] / (big["moments"] * big["vectors"] * big["N"])
        c3 = ed[-1] / big["N"] ** 3
        n_star = np.sqrt(per * big["moments"] * big["vectors"] / c3)
        print(f"crossover (t_ED = c N^3 vs t_KPM = {per * 1e9:.2f} ns x M R N at M = {big['moments']}, "
              f"R = {big['vectors']}): N ~ {n_star:.0f}, L ~ {np.sqrt(n_star):.0f}")
        rows.append({"part": "crossover_estimate", "N": float(n_star), "L": float(np.sqrt(n_star))})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
