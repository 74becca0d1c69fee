"""Finite-size effects on the exact fields: the same local environments on lattices of different size.

A configuration of an ``L x L`` lattice tiled ``k x k`` times onto a ``kL x kL`` lattice has the same
local environment around every site; only the momentum sampling of the electrons differs.  The
relative RMS difference of the fields between the two solves is the finite-size error of training
data taken at size ``L``.

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
        errs = []
        for _ in range(samples):
            s = random_spins(lat.N, rng) if kind == "random" else noisy_order(lat, rng, 0.3)
            big_lat, big_s = tile(lat, s, k)
            big = it.ExactSolver(it.SDModel(big_lat, J=p["J"], filling=p["filling"]))
            h_small = small.energy_and_fields(s)[1]
            h_big = big.energy_and_fields(big_s)[1]
            x, y = lat.coords.T
            h_big = h_big[big_lat.site(x, y)]
            errs.append(np.sqrt(((h_small - h_big) ** 2).mean() / (h_big ** 2).mean()))
        out[kind] = (float(np.mean(errs)), float(np.std(errs)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", choices=sorted(STUDIES), default="triangular")
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 12, 16])
    ap.add_argument("--tile", type=int, default=2)
    ap.add_argument("--samples", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    print(f"{args.study}: relative RMS field difference, L vs {args.tile}L (same local environments)")
    print(f"{'L':>4} {'random':>18} {'ordered+noise':>18}")
    for L in args.sizes:
        r = compare(args.study, L, args.tile, args.samples, rng)
        print(f"{L:>4} " + " ".join(f"{m:>10.2e} +- {s:.0e}" for m, s in r.values()), flush=True)


if __name__ == "__main__":
    main()
