"""ML-LLG against exact LLG from the same random states: energy and chirality along the relaxation.

    .venv/bin/python studies/triangular/validate.py [--L 18] [--steps 150] [--seeds 3 4 ... 10]
                                                    [--model triangular-J2-n0.25]

Both runs use the demo's deterministic settings (RK4, alpha = 1, dt = 1, kT = 0); the learned run's
energies are re-evaluated with the exact solver, so the two energy curves are on the same scale.
Writes docs/studies/figures/triangular-validation.png and prints, per seed and for the seed mean,
the largest differences and the ordering time t_order (first time <|chi|> reaches ORDERED of the
tetrahedral value).

Acceptance (a model is shipped only if it passes): for the seed-mean curves, the final exact
energies agree within ENERGY_TOL per site, the final <|chi|> within CHI_TOL of chi0, and the
ordering times within ORDER_TOL (relative) -- the learned dynamics must order, at the right
speed, into a state of the right energy.
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

CHI0 = 4 / (3 * np.sqrt(3))
ORDERED = 0.75
ENERGY_TOL = 2e-3
CHI_TOL = 0.1
ORDER_TOL = 0.25


def ordering_time(t: np.ndarray, chi: np.ndarray) -> float:
    """First time <|chi|>/chi0 reaches ORDERED (linear interpolation); NaN if never."""
    r = chi / CHI0
    k = np.flatnonzero(r >= ORDERED)
    if len(k) == 0:
        return float("nan")
    k = k[0]
    if k == 0:
        return float(t[0])
    return float(t[k - 1] + (ORDERED - r[k - 1]) / (r[k] - r[k - 1]) * (t[k] - t[k - 1]))


def relax(ff, exact, lat, s0, steps):
    """(time, exact E per site, <|chi|>) along an RK4 alpha = 1 dt = 1 quench with ``ff``."""
    traj = it.LLG(ff, alpha=1.0, dt=1.0, integrator="rk4", seed=0).run(s0, steps, save_every=5)
    E = np.array([exact.energy_and_fields(s)[0] for s in traj.spins]) / lat.N
    chi = np.array([chirality_abs(s, lat) for s in traj.spins])
    return traj.time, E, chi


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--L", type=int, default=18)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--model", default="triangular-J2-n0.25")
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5, 6, 7, 8, 9, 10])
    ap.add_argument("--out", default="docs/studies/figures/triangular-validation.png")
    args = ap.parse_args()
    lat = it.Lattice.triangular(args.L)
    model = it.SDModel(lat, t=(1.0,), J=2.0, filling=0.25)
    exact = it.ExactSolver(model)
    ml = it.MLForceField.load(args.model, lattice=lat, expect_model=model)
    curves = {"exact": [], "ML": []}
    for seed in args.seeds:
        s0 = random_spins(lat.N, seed)
        for name, ff in (("exact", exact), ("ML", ml)):
            t0 = time.perf_counter()
            curves[name].append(relax(ff, exact, lat, s0, args.steps))
            t, E, chi = curves[name][-1]
            print(f"seed {seed} {name:5s}: final E/N = {E[-1]:.5f}, <|chi|>/chi0 = {chi[-1] / CHI0:.3f}, "
                  f"t_order = {ordering_time(t, chi):.1f}  ({time.perf_counter() - t0:.1f} s)", flush=True)
    t = curves["exact"][0][0]
    mean = {name: (np.mean([c[1] for c in runs], 0), np.mean([c[2] for c in runs], 0))
            for name, runs in curves.items()}
    (Ee, ce), (Em, cm) = mean["exact"], mean["ML"]
    te, tm = ordering_time(t, ce), ordering_time(t, cm)
    checks = {
        "final energy": (abs(Em[-1] - Ee[-1]), ENERGY_TOL),
        "final <|chi|>/chi0": (abs(cm[-1] - ce[-1]) / CHI0, CHI_TOL),
        "ordering time (relative)": (abs(tm - te) / te if np.isfinite(tm + te) else np.inf, ORDER_TOL),
    }
    print(f"seed mean: max |E_ML - E_exact| = {np.abs(Em - Ee).max():.2e} per site, "
          f"max |<|chi|>_ML - <|chi|>_exact| / chi0 = {np.abs(cm - ce).max() / CHI0:.3f}, "
          f"t_order exact {te:.1f}, ML {tm:.1f}")
    ok = True
    for name, (value, tol) in checks.items():
        ok &= value <= tol
        print(f"  {name:26s} {value:.3g} (tolerance {tol}) {'ok' if value <= tol else 'FAIL'}")
    print("PASS" if ok else "FAIL")

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for name, color in (("exact", "k"), ("ML", "C1")):
        for k, (tt, E, chi) in enumerate(curves[name]):
            style = "-" if name == "exact" else "--"
            label = f"{name}" if k == 0 else None
            ax[0].plot(tt, E, style, color=color, alpha=0.8, label=label)
            ax[1].plot(tt, chi / CHI0, style, color=color, alpha=0.8, label=label)
    ax[0].set(xlabel="t", ylabel="exact energy per site",
              title=f"triangular {args.L}x{args.L}, J = 2, n = 1/4, seeds {args.seeds}")
    ax[1].set(xlabel="t", ylabel="<|chi|> / chi0", title="RK4, alpha = 1, dt = 1, same initial states")
    ax[1].axhline(ORDERED, color="0.6", lw=0.8, ls=":")
    ax[0].legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
