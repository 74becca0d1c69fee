"""Locality of the exchange field: how much does h_i change when the spins beyond distance r move?

For a fixed centre site i, a base configuration S and a radius r, every spin farther than r from i
(minimum-image distance on the torus) is redrawn from the same ensemble, and the exact solver gives
|h_i(S') - h_i(S)|.  The decay of this change with r is the error floor of any local model with
cutoff r and is what the descriptor's default cutoff is chosen from (docs/descriptor.md).

Two ensembles per lattice: fully random spins (paramagnet), and the lattice's ordered state with
Gaussian noise (amplitude ``NOISE`` per component, then normalised; the redrawn far spins get fresh
noise), which is closer to the late-time coarsening configurations.

Study parameters (DESIGN.md §6): triangular t1 = 1, J = 2, filling 1/4; square t1 = 1, J = 6,
filling 0.485; L = 20 makes both fillings integer electron numbers (200 and 388), kT = 0.  The square
model is also run at fixed chemical potential (the mean mu of near-Neel states at filling 0.485).

    .venv/bin/python benchmarks/locality.py            # 306 solves at L = 20 -> docs/figures/locality.png
                                                       # ~5 min on an idle 2-core machine (55 min
                                                       # measured on an overloaded shared one)
    .venv/bin/python benchmarks/locality.py --quick    # small smoke run (L = 8), no plot unless --out
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

import itinerant as it
from itinerant.spins import STATES, random_spins

CASES = {
    "triangular": dict(lattice="triangular", t=(1.0,), J=2.0, filling=0.25, ordered="tetrahedral"),
    "square": dict(lattice="square", t=(1.0,), J=6.0, filling=0.485, ordered="neel"),
    # The same square-lattice model at the fixed chemical potential of the near-Neel states at
    # filling 0.485 (grand canonical): separates the locality of the electrons from the global
    # constraint N_e = const, which decides where the doped holes go.
    "square, fixed mu": dict(lattice="square", t=(1.0,), J=6.0, mu="from filling 0.485",
                             ordered="neel"),
}
NOISE = 0.3
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "figures" / "locality.png"


def min_image_distance(lattice: it.Lattice, centre: int) -> np.ndarray:
    """Distance of every site from ``centre`` on the torus (shortest periodic image), shape (N,)."""
    d = lattice.coords - lattice.coords[centre]
    best = np.full(lattice.N, np.inf)
    for n, m in itertools.product((-1, 0, 1), repeat=2):
        r = lattice.cartesian(d + lattice.L * np.array([n, m]))
        best = np.minimum(best, np.linalg.norm(r, axis=1))
    return best


def draw(lattice: it.Lattice, ensemble: str, ordered: str, rng) -> np.ndarray:
    """One configuration of ``ensemble`` ("random" or "ordered")."""
    if ensemble == "random":
        return random_spins(lattice.N, rng)
    s = STATES[ordered](lattice) + NOISE * rng.normal(size=(lattice.N, 3))
    return s / np.linalg.norm(s, axis=1, keepdims=True)


def build_model(case: dict, L: int, rng) -> it.SDModel:
    lat = it.Lattice.from_name(case["lattice"], L)
    if "filling" in case:
        return it.SDModel(lat, t=case["t"], J=case["J"], filling=case["filling"])
    # mu: the mean chemical potential of a few ordered + noise states at the given filling.
    filling = float(case["mu"].split()[-1])
    fixed_n = it.SDModel(lat, t=case["t"], J=case["J"], filling=filling)
    states = np.array([draw(lat, "ordered", case["ordered"], rng) for _ in range(3)])
    mu = float(np.mean(it.ExactSolver(fixed_n).solve(states).mu))
    return it.SDModel(lat, t=case["t"], J=case["J"], mu=mu)


def study(kind: str, L: int, radii, n_base: int, n_redraw: int, seed: int = 0) -> dict:
    """|delta h_centre| for every ensemble, radius, base and redraw; also the mean |h_centre|."""
    case = CASES[kind]
    rng = np.random.default_rng(seed)
    model = build_model(case, L, rng)
    lat = model.lattice
    solver = it.ExactSolver(model)
    centre = 0
    dist = min_image_distance(lat, centre)
    out = {}
    for ensemble in ("random", "ordered"):
        dh = np.empty((len(radii), n_base, n_redraw))
        hnorm = []
        for b in range(n_base):
            base = draw(lat, ensemble, case["ordered"], rng)
            stack = [base]
            for r in radii:
                far = dist > r + 1e-9
                for _ in range(n_redraw):
                    s = base.copy()
                    s[far] = draw(lat, ensemble, case["ordered"], rng)[far]
                    stack.append(s)
            _, h = solver.energy_and_fields(np.array(stack))
            h0 = h[:, centre]
            hnorm.append(np.linalg.norm(h0[0]))
            dh[:, b, :] = np.linalg.norm(h0[1:] - h0[0], axis=1).reshape(len(radii), n_redraw)
        out[ensemble] = {"dh": dh, "h": float(np.mean(hnorm))}
    return {"model": model, "radii": np.asarray(radii, float), "results": out}


def report(kind: str, res: dict) -> None:
    m = res["model"]
    ensemble = (f"filling = {m.filling} (N_e = {m.n_electrons})" if m.fixed_filling
                else f"mu = {m.mu:.4f}")
    print(f"\n{kind}: L = {m.lattice.L}, t = {m.t}, J = {m.J}, {ensemble}, kT = {m.kT}")
    print(f"{'r':>5} " + " ".join(f"{e + ' mean':>14} {'max':>9}" for e in res["results"]))
    for k, r in enumerate(res["radii"]):
        cols = []
        for e, v in res["results"].items():
            d = v["dh"][k].ravel()
            cols.append(f"{d.mean():14.3e} {d.max():9.2e}")
        print(f"{r:5.2f} " + " ".join(cols))
    for e, v in res["results"].items():
        print(f"  mean |h_centre| ({e}) = {v['h']:.3f}")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.6 * len(results), 4.0), sharey=True)
    for ax, (kind, res) in zip(np.atleast_1d(axes), results.items()):
        m, r = res["model"], res["radii"]
        for (e, v), colour in zip(res["results"].items(), ("C0", "C3")):
            d = v["dh"].reshape(len(r), -1)
            label = "random spins" if e == "random" else f"{CASES[kind]['ordered']} + noise"
            ax.semilogy(r, d.mean(1), "o-", color=colour, label=f"{label} (mean)")
            ax.fill_between(r, d.min(1), d.max(1), color=colour, alpha=0.2, lw=0)
            ax.semilogy(np.repeat(r, d.shape[1]), d.ravel(), ".", color=colour, ms=3, alpha=0.6)
            ax.axhline(v["h"], color=colour, ls=":", lw=1)
        ens = f"n={m.filling:g}" if m.fixed_filling else f"mu={m.mu:.3f}"
        ax.set_title(f"{m.lattice.name} L={m.lattice.L}: t1={m.t[0]:g}, J={m.J:g}, {ens}")
        ax.set_xlabel("r (spins beyond r redrawn)")
        ax.grid(True, which="both", alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel(r"$|\delta h_i|$  (band: min-max; dotted: mean $|h_i|$)")
    np.atleast_1d(axes)[0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    print(f"\nwrote {path}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny smoke run (L = 8)")
    p.add_argument("--out", type=Path, default=None, help=f"PNG path (default {DEFAULT_OUT})")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.quick:
        L, radii, n_base, n_redraw = 8, [1, 2, 3], 1, 1
        # L = 8: filling 0.25 -> 32 electrons; square 0.485 would not be integer, use 62/128.
        CASES["square"] = dict(CASES["square"], filling=62 / 128)
        CASES["square, fixed mu"] = dict(CASES["square, fixed mu"], mu="from filling 0.484375")
    else:
        L, radii, n_base, n_redraw = 20, [1, 2, 3, 4, 5, 6, 7, 8], 3, 2
    results = {}
    t0 = time.perf_counter()
    for kind in CASES:
        results[kind] = study(kind, L, radii, n_base, n_redraw, seed=a.seed)
        report(kind, results[kind])
    print(f"\n{len(CASES) * 2 * (len(radii) * n_base * n_redraw + n_base)} exact solves "
          f"in {time.perf_counter() - t0:.0f} s")
    if a.out is not None or not a.quick:
        plot(results, a.out or DEFAULT_OUT)


if __name__ == "__main__":
    main()
