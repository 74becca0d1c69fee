"""Field and density accuracy of the square model on exact quench frames it was not trained on.

    .venv/bin/python studies/square/heldout.py results/square-exact-30/seed-11.h5 \
        [--model square-J6-n0.485] [--every 1]
    .venv/bin/python studies/square/heldout.py --data data/square-30.h5 [--model ...]

Reads exact LLG trajectories written by ``itinerant simulate`` (30x30: studies/square/
exact-quench-30.toml, kept out of every training file), re-solves each frame exactly (fields,
local densities, mu* at the file's fixed electron number) and compares the learned model in its
canonical mode (mu* solved from the model's own densities, docs/canonical.md): R^2 and RMSE of
the full field and of its part perpendicular to S_i, the energy per site, R^2 and MAE of n_i,
and mu*, for early (t < 5: random, metallic), forming (5 <= t < 20) and late (t >= 20: Neel
domains with FM clusters) frames.  ``--data`` takes the snapshots of a generated data file instead
(their labels at each snapshot's own mu*, i.e. at the file's electron number; snapshots without a
quench time, random and Neel states, form the group "static").
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import numpy as np

import itinerant as it
from itinerant.training.report import density_metrics, field_metrics

STAGES = (("early t < 5", 0.0, 5.0), ("forming 5 <= t < 20", 5.0, 20.0),
          ("late t >= 20", 20.0, np.inf))


def from_runs(paths, every: int):
    """Model, times, spins and exact canonical state of the frames of exact trajectory files."""
    model = it.io.read_model(paths[0])
    t, S = [], []
    for path in paths:
        traj = it.Trajectory.load(path)
        if str(traj.attrs.get("force_field")) != "exact":
            raise SystemExit(f"{path}: not an exact-solver trajectory")
        if it.io.read_model(path) != model:
            raise SystemExit(f"{path}: another model than {paths[0]}")
        t.append(np.asarray(traj.time)[::every])
        S.append(np.asarray(traj.spins)[::every])
    t, S = np.concatenate(t), np.concatenate(S)
    return model, t, S, it.ExactSolver(model).solve(S)


def from_data(path):
    """The same from a data file: the rows labelled at each snapshot's own mu*."""
    d = it.io.load_data(path, keys=("spins", "fields", "energy", "density", "mu", "canonical_mu",
                                    "time"))
    own = np.isclose(d["mu"], d["canonical_mu"], rtol=0, atol=1e-9)
    ref = SimpleNamespace(fields=d["fields"][own], density=d["density"][own], mu=d["mu"][own],
                          energy=d["energy"][own] + d["mu"][own] * d["model"].n_electrons)
    return d["model"], d["time"][own], d["spins"][own], ref


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", help="exact trajectory files (one lattice)")
    ap.add_argument("--data", help="a generated data file instead of trajectories")
    ap.add_argument("--model", default="square-J6-n0.485")
    ap.add_argument("--every", type=int, default=1, help="use every k-th frame")
    args = ap.parse_args()
    if args.data:
        model, t, S, ref = from_data(args.data)
    elif args.runs:
        model, t, S, ref = from_runs(args.runs, args.every)
    else:
        raise SystemExit("give exact trajectory files or --data")
    ml = it.MLForceField.load(args.model, lattice=model.lattice, filling=model.filling)
    E_ml, h_ml = ml.energy_and_fields(S)
    n_ml, mu_ml = ml.density(S), ml.chemical_potential(S)
    N = model.lattice.N
    print(f"{model.lattice}, N_e = {model.n_electrons}, {len(t)} frames, model {args.model}")
    print(f"{'frames':>20} {'n':>3} {'R2 full':>8} {'RMSE full':>10} {'R2 perp':>8} {'RMSE perp':>10} "
          f"{'|dE|/N':>8} {'R2 n_i':>7} {'MAE n_i':>8} {'|dmu*|':>7}")
    stages = [(name, (t >= lo) & (t < hi)) for name, lo, hi in STAGES]
    stages += [("static", np.isnan(t)), ("all", np.ones(len(t), bool))]
    for name, sel in stages:
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
