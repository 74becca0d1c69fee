"""An exact-solver LLG quench of the lightly doped square lattice, with the study's observables.

    .venv/bin/python studies/square/exact_quench.py [--L 12] [--ne 140] [--dt 0.1] [--steps 400]

t1 = 1, J = 6, electron kT = 0, N_e electrons (12x12: N_e = 140 of 288 states, 4 holes, filling
0.486); RK4, alpha = 0.5, from random spins (seed 1).  Prints per frame the energy per site,
<S.S>_nn, the FM-bond fraction, the staggered moment, the number and largest size of the FM
clusters and the chemical potential mu* (itinerant.analysis.square).  One core, ~5 min at 12x12.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import itinerant as it
from itinerant.analysis import square as sq
from itinerant.spins import random_spins


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--L", type=int, default=12)
    ap.add_argument("--ne", type=int, default=140)
    ap.add_argument("--dt", type=float, default=0.1)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    lat = it.Lattice.square(args.L)
    exact = it.ExactSolver(it.SDModel(lat, t=(1.0,), J=6.0, filling=args.ne / (2 * lat.N)))
    t0 = time.perf_counter()
    traj = it.LLG(exact, alpha=0.5, dt=args.dt, integrator="rk4", seed=0).run(
        random_spins(lat.N, args.seed), args.steps, save_every=max(1, args.steps // 20))
    print(f"{time.perf_counter() - t0:.0f} s")
    mu = np.atleast_1d(exact.solve(np.asarray(traj.spins)).mu)
    for t, s, E, m in zip(traj.time, traj.spins, traj.energy, mu):
        c = sq.fm_clusters(s, lat)
        print(f"t = {t:6.2f}  E/N = {E / lat.N:.4f}  nn = {sq.nn_correlation(s, lat):+.3f}  "
              f"FM = {sq.fm_bond_fraction(s, lat):.3f}  m_s = {sq.staggered_moment(s, lat):.3f}  "
              f"clusters = {c.count}  largest = {c.largest}  mu* = {m:.3f}")


if __name__ == "__main__":
    main()
