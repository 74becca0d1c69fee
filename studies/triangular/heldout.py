"""Field accuracy of a model on a fresh exact quench (not in any training file), by stage of the quench.

    .venv/bin/python studies/triangular/heldout.py [--model triangular-J2-n0.25] [--seed 7]
    .venv/bin/python studies/triangular/heldout.py --data data/triangular-thermal-18.h5

Exact LLG (RK4, alpha = 1, dt = 1) on 18x18 from random spins; every 10th frame, the learned
fields against the exact ones: R^2 and RMSE of all components together
(``itinerant.training.report.field_metrics``, the definitions of the training metrics) and of the
part perpendicular to S_i (the torque-generating part), for early (t < 40: random, metallic), ordering (40 <= t < 100)
and late (t >= 100: tetrahedral domains and walls) frames.  ``--data`` evaluates the snapshots of
a generated data file instead (e.g. the thermal quenches of generate-thermal-18.toml), by the same
stages of their quench time and by spin temperature.
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
    ap.add_argument("--data", help="a generated data file to evaluate instead of a fresh quench")
    args = ap.parse_args()
    lat = it.Lattice.triangular(18)
    model = it.SDModel(lat, t=(1.0,), J=2.0, filling=0.25)
    groups = []
    if args.data:
        d = it.io.load_data(args.data, keys=("spins", "fields", "time"), optional=("kT_spin",))
        if d["model"] != model:
            raise SystemExit(f"{args.data}: data for {d['model']}, not {model}")
        S, h_ex, t = d["spins"], d["fields"], d["time"]
        kT = d.get("kT_spin", np.zeros(len(t)))
        groups = [(f"kT_spin = {k:g}", kT == k) for k in np.unique(kT)]
    else:
        exact = it.ExactSolver(model)
        traj = it.LLG(exact, alpha=1.0, dt=1.0, integrator="rk4").run(
            random_spins(lat.N, args.seed), args.steps, save_every=10)
        S = np.asarray(traj.spins)
        _, h_ex = exact.energy_and_fields(S)
        t = np.asarray(traj.time)
    ml = it.MLForceField.load(args.model, lattice=lat, expect_model=model)
    _, h_ml = ml.energy_and_fields(S)
    print(f"{'frames':>22} {'n':>3} {'R2 full':>8} {'RMSE full':>10} {'R2 perp':>8} {'RMSE perp':>10}")
    for name, sel in (("early t < 40", t < 40), ("ordering 40 <= t < 100", (t >= 40) & (t < 100)),
                      ("late t >= 100", t >= 100), *groups, ("all", t >= 0)):
        if not sel.any():
            continue
        f = field_metrics(h_ml[sel], h_ex[sel], S[sel])
        print(f"{name:>22} {sel.sum():3d} {f['full']['r2']:8.4f} {f['full']['rmse']:10.2e} "
              f"{f['perpendicular']['r2']:8.4f} {f['perpendicular']['rmse']:10.2e}")


if __name__ == "__main__":
    main()
