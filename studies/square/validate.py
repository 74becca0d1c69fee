"""ML-LLG against exact LLG from the same random states: the study's observables along a quench.

    .venv/bin/python studies/square/validate.py [--L 20] [--steps 400] [--seeds 11 12]
                                                [--model square-J6-n0.485]
    .venv/bin/python studies/square/validate.py --exact-run results/square-exact-30/seed-11.h5

``--exact-run`` takes exact trajectories written by ``itinerant simulate`` (30x30:
studies/square/exact-quench-30.toml, hours per run) instead of running the exact solver here; the
learned run starts from each file's first frame with the file's alpha, dt and frame interval, and
is compared over the frames the file holds (a run still in progress is compared so far).

Square lattice t1 = 1, J = 6, electron kT = 0, fixed electron number N_e = round(0.485 * 2 L^2)
(L = 20: 388, L = 30: 873); RK4, alpha = 0.5, dt = 0.1 (the training quenches' settings).  The
learned force field runs in its canonical mode (mu* solved at every evaluation, docs/canonical.md).
Both runs' energies are re-evaluated with the exact solver.  Prints, per seed and for the seed
mean, the energy per site, <S_i.S_j>_nn, the FM-bond fraction, the weighted FM-cluster size
<s>_w, the staggered moment and mu* at the end, and the largest differences along the run; writes
docs/studies/figures/square-validation.png.

Acceptance: for the seed-mean curves, |delta E| <= ENERGY_TOL per site, |delta <S.S>_nn| <= NN_TOL
and |delta FM fraction| <= FM_TOL at every saved time after T_FORMED (after the first few time
units of random relaxation, where independent chaotic runs decorrelate).
"""

from __future__ import annotations

import argparse
import json
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import itinerant as it  # noqa: E402
from itinerant.analysis import square as sq  # noqa: E402
from itinerant.spins import random_spins  # noqa: E402

ENERGY_TOL = 5e-3
NN_TOL = 0.05
FM_TOL = 0.03
T_FORMED = 5.0
FILLING = 0.485


def relax(ff, exact, lat, s0, steps, dt, save_every=None, alpha=0.5):
    """Observables along an RK4 quench with ``ff`` (dict of arrays over frames); energies and mu*
    re-evaluated with the exact solver."""
    traj = it.LLG(ff, alpha=alpha, dt=dt, integrator="rk4", seed=0).run(
        s0, steps, save_every=save_every or max(1, steps // 40))
    st = exact.solve(np.asarray(traj.spins))
    return observe(traj.time, traj.spins, lat, st.energy, st.mu)


OBSERVED = {"nn": "nn_correlation", "fm": "fm_fraction", "ms": "staggered_moment",
            "sw": "cluster_mean_weight"}
"""Compared observables (short name -> :func:`itinerant.analysis.square.frame_observables` key)."""


def observe(t, spins, lat, energy, mu) -> dict:
    """The compared observables of frames ``spins`` (F, N, 3) with exact ``energy`` and ``mu``."""
    frames = [sq.frame_observables(s, lat) for s in spins]
    return {"t": np.asarray(t), "E": np.atleast_1d(energy) / lat.N, "mu": np.atleast_1d(mu),
            **{k: np.array([f[key] for f in frames]) for k, key in OBSERVED.items()}}


def exact_reference(path, model) -> tuple[dict, dict]:
    """Observables of an exact trajectory file of ``model`` and the settings (and the initial
    state's seed) to repeat its run."""
    traj = it.Trajectory.load(path)
    a = traj.attrs
    if str(a.get("force_field")) != "exact":
        raise ValueError(f"{path}: force field {a.get('force_field')!r}, not the exact solver")
    found = it.io.read_model(path)
    if found != model:
        raise ValueError(f"{path}: a run of {found}, expected {model}")
    dt, t = float(a["dt"]), np.asarray(traj.time)
    every = int(round((t[1] - t[0]) / dt))
    mu = traj.observables.get("chemical_potential", np.full(len(t), np.nan))
    run = {"s0": traj.spins[0], "steps": every * (len(t) - 1), "dt": dt, "save_every": every,
           "alpha": float(a["alpha"]), "seed": json.loads(a["run_config"])["initial"].get("seed")}
    return observe(t, traj.spins, model.lattice, traj.energy, mu), run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--L", type=int, default=20)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--dt", type=float, default=0.1)
    ap.add_argument("--model", default="square-J6-n0.485")
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12])
    ap.add_argument("--exact-run", nargs="+", default=None,
                    help="exact trajectory files to compare with (their L overrides --L)")
    ap.add_argument("--out", default="docs/studies/figures/square-validation.png")
    args = ap.parse_args()
    if args.exact_run:
        model = it.io.read_model(args.exact_run[0])
        lat, args.L = model.lattice, model.lattice.L
    else:
        lat = it.Lattice.square(args.L)
        model = it.SDModel(lat, t=(1.0,), J=6.0, filling=round(FILLING * 2 * lat.N) / (2 * lat.N))
    n_e = model.n_electrons
    exact = it.ExactSolver(model)
    ml = it.MLForceField.load(args.model, lattice=lat, expect_model=model)
    runs, used = {"exact": [], "ML": []}, []
    cases = ([(path, None) for path in args.exact_run] if args.exact_run
             else [(None, seed) for seed in args.seeds])
    for path, seed in cases:
        if path is not None:
            ref, run = exact_reference(path, model)
            seed = run["seed"]
        used.append(seed)
        for name, ff in (("exact", exact), ("ML", ml)):
            t0 = time.perf_counter()
            if path is None:
                r = relax(ff, exact, lat, random_spins(lat.N, seed), args.steps, args.dt)
            elif name == "exact":
                r = ref
            else:
                r = relax(ff, exact, lat, run["s0"], run["steps"], run["dt"], run["save_every"],
                          run["alpha"])
            runs[name].append(r)
            print(f"seed {seed} {name:5s} (N_e = {n_e}): E/N = {r['E'][-1]:.4f}, nn = {r['nn'][-1]:+.3f}, "
                  f"FM = {r['fm'][-1]:.3f}, <s>_w = {r['sw'][-1]:.1f}, m_s = {r['ms'][-1]:.3f}, "
                  f"exact mu* = {r['mu'][-1]:.3f}  ({time.perf_counter() - t0:.1f} s)", flush=True)
    n = min(len(r["t"]) for rs in runs.values() for r in rs)  # exact runs still in progress
    t = runs["exact"][0]["t"][:n]
    mean = {name: {k: np.mean([r[k][:n] for r in rs], 0) for k in ("E", "mu", *OBSERVED)}
            for name, rs in runs.items()}
    late = t >= T_FORMED
    if not late.any():
        raise SystemExit(f"no frames after t = {T_FORMED:g} to compare (the runs reach t = {t[-1]:g})")
    ok = True
    for key, tol in (("E", ENERGY_TOL), ("nn", NN_TOL), ("fm", FM_TOL)):
        d = np.abs(mean["ML"][key] - mean["exact"][key])[late].max()
        ok &= d <= tol
        print(f"  max |delta {key}| for t >= {T_FORMED:g}: {d:.3g} (tolerance {tol}) "
              f"{'ok' if d <= tol else 'FAIL'}")
    for key, what in (("sw", "weighted FM cluster size"), ("ms", "staggered moment")):
        d = mean["ML"][key] - mean["exact"][key]
        print(f"  not a criterion: {what} (seed mean) for t >= {T_FORMED:g}: ML - exact "
              f"{d[late].min():+.3g} to {d[late].max():+.3g}; at t = {t[-1]:g}: "
              f"{mean['ML'][key][-1]:.3g} (ML), {mean['exact'][key][-1]:.3g} (exact)")
    print("PASS" if ok else "FAIL")

    labels = {"E": "exact energy per site", "nn": "<S_i . S_j>_nn", "fm": "FM-bond fraction",
              "sw": "weighted FM cluster size <s>_w", "ms": "staggered moment"}
    fig, axes = plt.subplots(1, len(labels), figsize=(20, 3.8))
    for ax, key in zip(axes, labels):
        for name, color, style in (("exact", "k", "-"), ("ML", "C1", "--")):
            for k, r in enumerate(runs[name]):
                ax.plot(r["t"], r[key], style, color=color, alpha=0.8, label=name if k == 0 else None)
        ax.set(xlabel="t", ylabel=labels[key], yscale="log" if key == "sw" else "linear")
    axes[0].legend()
    fig.suptitle(f"square {args.L}x{args.L}, J = 6, N_e = {n_e}, RK4 alpha = 0.5 dt = {args.dt}, "
                 f"same initial states (seeds {used})")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
