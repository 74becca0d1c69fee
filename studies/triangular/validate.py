"""ML-LLG against exact LLG from the same random state: energy and chirality along the relaxation.

    .venv/bin/python studies/triangular/validate.py [--L 18] [--steps 150] [--model triangular-J2-n0.25]

Both runs use the demo's deterministic settings (RK4, alpha = 1, dt = 1, kT = 0); the learned run's
energies are re-evaluated with the exact solver, so the two energy curves are on the same scale.
Writes docs/studies/figures/triangular-validation.png and prints the largest differences.
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import itinerant as it  # noqa: E402
from itinerant.analysis.triangular import chirality_abs  # noqa: E402
from itinerant.spins import random_spins  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--L", type=int, default=18)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--model", default="triangular-J2-n0.25")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", default="docs/studies/figures/triangular-validation.png")
    args = ap.parse_args()
    lat = it.Lattice.triangular(args.L)
    model = it.SDModel(lat, t=(1.0,), J=2.0, filling=0.25)
    exact = it.ExactSolver(model)
    ml = it.MLForceField.load(args.model, lattice=lat, expect_model=model)
    s0 = random_spins(lat.N, args.seed)
    curves = {}
    for name, ff in (("exact", exact), ("ML", ml)):
        t0 = time.perf_counter()
        traj = it.LLG(ff, alpha=1.0, dt=1.0, integrator="rk4", seed=0).run(s0, args.steps, save_every=5)
        E = np.array([exact.energy_and_fields(s)[0] for s in traj.spins]) / lat.N
        chi = np.array([chirality_abs(s, lat) for s in traj.spins])
        curves[name] = (traj.time, E, chi)
        print(f"{name}: {time.perf_counter() - t0:.1f} s")
    t, Ee, ce = curves["exact"]
    _, Em, cm = curves["ML"]
    print(f"max |E_ML - E_exact| per site = {np.abs(Em - Ee).max():.2e}; "
          f"max | |chi|_ML - |chi|_exact | = {np.abs(cm - ce).max():.3f} "
          f"(tetrahedral |chi| = {4 / (3 * np.sqrt(3)):.3f})")
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for name, style in (("exact", "k-"), ("ML", "C1--")):
        tt, E, chi = curves[name]
        ax[0].plot(tt, E, style, label=name)
        ax[1].plot(tt, chi, style, label=name)
    ax[0].set(xlabel="t", ylabel="exact energy per site", title=f"triangular {args.L}x{args.L}, J = 2, n = 1/4")
    ax[1].set(xlabel="t", ylabel="mean |scalar chirality|", title="RK4, alpha = 1, dt = 1, same initial state")
    ax[0].legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
