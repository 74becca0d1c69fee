"""Several independent ML-LLG quenches of one lattice, resumable, then their joint analysis.

    .venv/bin/python studies/quench_runs.py studies/triangular/coarsening.toml \
        --seeds 1 2 --L 256 --steps 1000 --out results/triangular-256 [--parallel 2]

Each seed is one run of the run file (``[initial] seed`` and ``[dynamics] seed`` set to it, ``L``
and ``steps`` overridden when given) written to ``OUT/run-SEED.h5``; ``--parallel`` runs go at
once, each in its own process with one torch thread.  A killed study is continued by the same
command: finished runs are kept, unfinished ones resume from their checkpoints.  At the end
``itinerant analyze OUT/run-*.h5 --out OUT`` writes the averaged L(t), the exponent fit and the
figures (``--window TMIN TMAX`` is passed on).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def run_one(cfg: dict, seed: int, out: Path) -> str:
    """Run (or resume, or skip when finished) one seed in a fresh one-thread process."""
    import h5py

    path = out / f"run-{seed}.h5"
    steps = cfg["dynamics"]["steps"]
    if path.exists():
        try:
            with h5py.File(path, "r") as h5:
                t_end = float(h5["time"][-1])
            if t_end >= steps * cfg["dynamics"]["dt"] - 1e-9:
                return f"seed {seed}: finished earlier ({path})"
        except (OSError, KeyError, IndexError):
            pass
    code = (
        "import json, sys, torch; torch.set_num_threads(1)\n"
        "from itinerant.cli.simulate import run_simulation\n"
        "cfg = json.loads(sys.argv[1])\n"
        "run_simulation(cfg, out=sys.argv[2], resume=sys.argv[3] == '1', progress=False)\n")
    run_cfg = copy.deepcopy(cfg)
    run_cfg["initial"]["seed"] = seed
    run_cfg["dynamics"]["seed"] = seed
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    resume = "1" if path.exists() else "0"
    log = out / f"run-{seed}.log"
    with open(log, "a") as fh:
        subprocess.run([sys.executable, "-c", code, json.dumps(run_cfg), str(path), resume],
                       env=env, stdout=fh, stderr=subprocess.STDOUT, check=True)
    return f"seed {seed}: done ({path})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_file")
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--L", type=int)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--model", help="a trained model (name or directory) instead of the run file's")
    ap.add_argument("--out", required=True)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--window", type=float, nargs=2)
    args = ap.parse_args()
    from itinerant.cli.simulate import load_simulation

    cfg = load_simulation(args.run_file)
    if args.L:
        cfg["model"]["L"] = args.L
    if args.steps:
        cfg["dynamics"]["steps"] = args.steps
    if args.model:
        cfg["force_field"]["path"] = args.model
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps({"run_file": args.run_file, "seeds": args.seeds,
                                                "config": cfg}, indent=1))
    with ThreadPoolExecutor(args.parallel) as pool:
        for line in pool.map(lambda s: run_one(cfg, s, out), args.seeds):
            print(line, flush=True)
    cmd = [sys.executable, "-m", "itinerant", "analyze",
           *[str(out / f"run-{s}.h5") for s in args.seeds], "--out", str(out)]
    if args.window:
        cmd += ["--window", *map(str, args.window)]
    subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
