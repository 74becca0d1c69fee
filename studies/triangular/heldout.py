"""Field accuracy of a model on a fresh exact quench (not in any training file), by stage of the quench.

    .venv/bin/python studies/triangular/heldout.py [--model triangular-J2-n0.25] [--seed 7]

Exact LLG (RK4, alpha = 1, dt = 1) on 18x18 from random spins; every 10th frame, the learned
fields against the exact ones: R^2 and RMSE of all components together
(``itinerant.training.report.field_metrics``, the definitions of the training metrics) and of the
part perpendicular to S_i (the torque-generating part), for early (t < 40: random, metallic), ordering (40 <= t < 100)
and late (t >= 100: tetrahedral domains and walls) frames.
"""

from __future__ import annotations

import argparse

import numpy as np

import itinerant as it
from itinerant.spins import random_spins
from itinerant.training.report import field_metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="triangular-J2-n0.25")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--steps", type=int, default=150)
    args = ap.parse_args()
    lat = it.Lattice.triangular(18)
    model = it.SDModel(lat, t=(1.0,), J=2.0, filling=0.25)
    exact = it.ExactSolver(model)
    ml = it.MLForceField.load(args.model, lattice=lat, expect_model=model)
    traj = it.LLG(exact, alpha=1.0, dt=1.0, integrator="rk4").run(
        random_spins(lat.N, args.seed), args.steps, save_every=10)
    S = np.asarray(traj.spins)
    _, h_ex = exact.energy_and_fields(S)
    _, h_ml = ml.energy_and_fields(S)
    t = np.asarray(traj.time)
    print(f"{'frames':>22} {'n':>3} {'R2 full':>8} {'RMSE full':>10} {'R2 perp':>8} {'RMSE perp':>10}")
    for name, sel in (("early t < 40", t < 40), ("ordering 40 <= t < 100", (t >= 40) & (t < 100)),
                      ("late t >= 100", t >= 100), ("all", t >= 0)):
        f = field_metrics(h_ml[sel], h_ex[sel], S[sel])
        print(f"{name:>22} {sel.sum():3d} {f['full']['r2']:8.4f} {f['full']['rmse']:10.2e} "
              f"{f['perpendicular']['r2']:8.4f} {f['perpendicular']['rmse']:10.2e}")


if __name__ == "__main__":
    main()
