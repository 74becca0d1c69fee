"""Active-learning frames: ML-LLG quenches with the current model, to be labelled exactly.

States that the learned dynamics visits but the training data lacks are where a model goes wrong
(DESIGN.md §7, step 2).  This runs quenches from random spins with a trained model at the demo's
settings and saves the frames as a (M, N, 3) ``.npy`` for a ``kind = "file"`` generate protocol.

    .venv/bin/python studies/triangular/ml_frames.py --model runs/triangular-J2-n0.25 \
        --L 18 --runs 8 --steps 200 --every 10 --out data/triangular-ml-frames-18.npy
"""

from __future__ import annotations

import argparse

import numpy as np

import itinerant as it
from itinerant.spins import random_spins


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--L", type=int, default=18)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    lat = it.Lattice.triangular(args.L)
    ff = it.MLForceField.load(args.model, lattice=lat)
    frames = []
    for r in range(args.runs):
        sim = it.LLG(ff, alpha=1.0, dt=1.0, integrator="rk4", seed=args.seed + r)
        traj = sim.run(random_spins(lat.N, args.seed + r), args.steps, save_every=args.every)
        frames.append(traj.spins[1:])
        print(f"run {r}: {len(traj.spins) - 1} frames, final E/N = {traj.energy[-1] / lat.N:.4f}", flush=True)
    np.save(args.out, np.concatenate(frames))


if __name__ == "__main__":
    main()
