"""Finite-size effects on the exact fields: the same local environments on lattices of different size.

A configuration of an ``L x L`` lattice tiled ``k x k`` times onto a ``kL x kL`` lattice has the same
local environment around every site; only the momentum sampling of the electrons differs.  The
difference of the fields between the two solves is the finite-size error of training data taken at
size ``L``.  Printed per ensemble: the relative RMS difference of the full field, and the absolute
RMS differences of the full field and of its part perpendicular to the spin (the torque, which
drives LLG), in the units of the model's test errors (docs/studies/*.md).

    .venv/bin/python benchmarks/finite_size.py --study triangular --sizes 8 12 16 --tile 2
    .venv/bin/python benchmarks/finite_size.py --study square --sizes 10 20 --tile 2
"""

from __future__ import annotations

import argparse

import numpy as np

import itinerant as it
from itinerant.spins import random_spins

STUDIES = {
    "triangular": dict(lattice="triangular", J=2.0, filling=0.25),
    "square": dict(lattice="square", J=6.0, filling=0.485),
}


def tile(lattice: it.Lattice, spins: np.ndarray, k: int) -> tuple[it.Lattice, np.ndarray]:
    big = it.Lattice.from_name(lattice.name, k * lattice.L)
    x, y = big.coords.T
    return big, spins[lattice.site(x, y)]


def noisy_order(lattice: it.Lattice, rng, noise: float) -> np.ndarray:
    from itinerant.spins import STATES
    base = STATES["tetrahedral" if lattice.name == "triangular" else "neel"](lattice)
    s = base + noise * rng.normal(size=base.shape)
    return s / np.linalg.norm(s, axis=1, keepdims=True)


def compare(study: str, L: int, k: int, samples: int, rng) -> dict:
    p = STUDIES[study]
    lat = it.Lattice.from_name(p["lattice"], L)
    small = it.ExactSolver(it.SDModel(lat, J=p["J"], filling=p["filling"]))
    out = {}
    for kind in ("random", "ordered+noise"):
        errs, full, perp = [], [], []
        for _ in range(samples):
            s = random_spins(lat.N, rng) if kind == "random" else noisy_order(lat, rng, 0.3)
            big_lat, big_s = tile(lat, s, k)
            big = it.ExactSolver(it.SDModel(big_lat, J=p["J"], filling=p["filling"]))
            h_small = small.energy_and_fields(s)[1]
            h_big = big.energy_and_fields(big_s)[1]
            x, y = lat.coords.T
            h_big = h_big[big_lat.site(x, y)]
            d = h_small - h_big
            d_perp = d - (d * s).sum(axis=1, keepdims=True) * s
            errs.append(np.sqrt((d ** 2).mean() / (h_big ** 2).mean()))
            full.append(np.sqrt((d ** 2).sum(axis=1).mean()))
            perp.append(np.sqrt((d_perp ** 2).sum(axis=1).mean()))
        out[kind] = {name: (float(np.mean(v)), float(np.std(v)))
                     for name, v in (("relative", errs), ("|dh|", full), ("|dh_perp|", perp))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", choices=sorted(STUDIES), default="triangular")
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 12, 16])
    ap.add_argument("--tile", type=int, default=2)
    ap.add_argument("--samples", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    print(f"{args.study}: RMS field difference, L vs {args.tile}L (same local environments), "
          f"mean +- std over {args.samples} configurations")
    print(f"{'L':>4} {'ensemble':>14} {'relative':>18} {'|dh|':>18} {'|dh_perp|':>18}")
    for L in args.sizes:
        for kind, r in compare(args.study, L, args.tile, args.samples, rng).items():
            print(f"{L:>4} {kind:>14} " + " ".join(f"{m:>10.2e} +- {s:.0e}" for m, s in r.values()),
                  flush=True)


if __name__ == "__main__":
    main()
