"""Field and density accuracy of the square model on exact quench frames it was not trained on.

    .venv/bin/python studies/square/heldout.py results/square-exact-30/seed-11.h5 \
        [--model square-J6-n0.485] [--every 1]

Reads exact LLG trajectories written by ``itinerant simulate`` (30x30: studies/square/
exact-quench-30.toml, kept out of every training file), re-solves each frame exactly (fields,
local densities, mu* at the file's fixed electron number) and compares the learned model in its
canonical mode (mu* solved from the model's own densities, docs/canonical.md): R^2 and RMSE of
the full field and of its part perpendicular to S_i, the energy per site, R^2 and MAE of n_i,
and mu*, for early (t < 5: random, metallic), forming (5 <= t < 20) and late (t >= 20: Neel
domains with FM clusters) frames.
"""

from __future__ import annotations

import argparse

import numpy as np

import itinerant as it
from itinerant.training.report import density_metrics, field_metrics

STAGES = (("early t < 5", 0.0, 5.0), ("forming 5 <= t < 20", 5.0, 20.0),
          ("late t >= 20", 20.0, np.inf), ("all", 0.0, np.inf))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="exact trajectory files (one lattice)")
    ap.add_argument("--model", default="square-J6-n0.485")
    ap.add_argument("--every", type=int, default=1, help="use every k-th frame")
    args = ap.parse_args()
    model = it.io.read_model(args.runs[0])
    exact = it.ExactSolver(model)
    ml = it.MLForceField.load(args.model, lattice=model.lattice, filling=model.filling)
    t, S = [], []
    for path in args.runs:
        traj = it.Trajectory.load(path)
        if str(traj.attrs.get("force_field")) != "exact":
            raise SystemExit(f"{path}: not an exact-solver trajectory")
        if it.io.read_model(path) != model:
            raise SystemExit(f"{path}: another model than {args.runs[0]}")
        t.append(np.asarray(traj.time)[::args.every])
        S.append(np.asarray(traj.spins)[::args.every])
    t, S = np.concatenate(t), np.concatenate(S)
    ref = exact.solve(S)
    E_ml, h_ml = ml.energy_and_fields(S)
    n_ml, mu_ml = ml.density(S), ml.chemical_potential(S)
    N = model.lattice.N
    print(f"{model.lattice}, N_e = {model.n_electrons}, {len(t)} frames to t = {t.max():g}, model {args.model}")
    print(f"{'frames':>20} {'n':>3} {'R2 full':>8} {'RMSE full':>10} {'R2 perp':>8} {'RMSE perp':>10} "
          f"{'|dE|/N':>8} {'R2 n_i':>7} {'MAE n_i':>8} {'|dmu*|':>7}")
    for name, lo, hi in STAGES:
        sel = (t >= lo) & (t < hi)
        if not sel.any():
            continue
        f = field_metrics(h_ml[sel], ref.fields[sel], S[sel])
        d = density_metrics(n_ml[sel], ref.density[sel])
        dE = np.abs(E_ml[sel] - ref.energy[sel]).mean() / N
        dmu = np.abs(mu_ml[sel] - ref.mu[sel]).mean()
        print(f"{name:>20} {sel.sum():3d} {f['full']['r2']:8.4f} {f['full']['rmse']:10.2e} "
              f"{f['perpendicular']['r2']:8.4f} {f['perpendicular']['rmse']:10.2e} {dE:8.1e} "
              f"{d['r2']:7.3f} {d['mae']:8.1e} {dmu:7.3f}", flush=True)


if __name__ == "__main__":
    main()
