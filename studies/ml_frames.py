"""Active-learning frames: ML-LLG quenches with the current model, to be labelled exactly.

States that the learned dynamics visits but the training data lacks are where a model goes wrong
(DESIGN.md §7, step 2).  This runs quenches from random spins with a trained model at a demo's
settings (``itinerant.cli.demo.DEMOS``: alpha, dt, integrator, and the square demo's fixed
electron number through the canonical mode) and saves the frames as a (M, N, 3) ``.npy`` for a
``kind = "file"`` generate protocol.  Run r starts from ``random_spins(N, seed + r)``.

    .venv/bin/python studies/ml_frames.py --demo triangular --model runs/triangular-J2-n0.25 \
        --L 18 --runs 8 --steps 200 --every 10 --out data/triangular-ml-frames-18.npy
    .venv/bin/python studies/ml_frames.py --demo square --model square-J6-n0.485 \
        --L 30 --runs 4 --steps 400 --every 20 --out data/square-ml-frames-30.npy
"""

from __future__ import annotations

import argparse

import numpy as np

import itinerant as it
from itinerant.cli.demo import DEMOS
from itinerant.spins import random_spins


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", choices=sorted(DEMOS), default="triangular")
    ap.add_argument("--model", required=True, help="model name or directory")
    ap.add_argument("--L", type=int, default=18)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    demo = DEMOS[args.demo]
    lat = it.Lattice.from_name(demo.lattice, args.L)
    ff = it.MLForceField.load(args.model, lattice=lat, **dict(demo.ensemble))
    frames = []
    for r in range(args.runs):
        sim = it.LLG(ff, alpha=demo.alpha, dt=demo.dt, integrator=demo.integrator, seed=args.seed + r)
        traj = sim.run(random_spins(lat.N, args.seed + r), args.steps, save_every=args.every)
        frames.append(traj.spins[1:])
        print(f"run {r}: {len(traj.spins) - 1} frames, final E/N = {traj.energy[-1] / lat.N:.4f}", flush=True)
    np.save(args.out, np.concatenate(frames))


if __name__ == "__main__":
    main()
