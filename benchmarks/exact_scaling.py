"""Time one exact solve (energy + fields) versus lattice size; expect O(N^3).

    .venv/bin/python benchmarks/exact_scaling.py [--sizes 12 18 24 30] [--repeat 3] [--json out.json]

Prints a table (seconds per solve, best of ``--repeat``) and the fitted exponent of t ~ N^p.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import itinerant as it
from itinerant.spins import random_spins


def time_solve(kind: str, L: int, repeat: int) -> float:
    lat = it.Lattice.from_name(kind, L)
    model = it.SDModel(lat, t=(1.0,), J=2.0, mu=0.0)
    solver = it.ExactSolver(model)
    s = random_spins(lat.N, 0)
    solver.energy_and_fields(s)  # warm-up
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        solver.energy_and_fields(s)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[12, 18, 24, 30])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    print(f"{'lattice':>11} {'L':>4} {'N':>6} {'seconds':>9}")
    for kind in ("square", "triangular"):
        times = []
        for L in args.sizes:
            t = time_solve(kind, L, args.repeat)
            times.append(t)
            rows.append({"lattice": kind, "L": L, "N": L * L, "seconds": t})
            print(f"{kind:>11} {L:>4} {L * L:>6} {t:>9.3f}", flush=True)
        p = np.polyfit(np.log(np.array(args.sizes) ** 2), np.log(times), 1)[0]
        print(f"{kind}: t ~ N^{p:.2f} over L = {args.sizes[0]}..{args.sizes[-1]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
