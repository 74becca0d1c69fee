"""The ``itinerant train`` run file: schema, validation and defaults.

    [data]
    files = ["data/square-8.h5"]        # HDF5 data sets (DESIGN.md §4); paths relative to the run file

    [split]                              # by snapshot, reproducible
    validation = 0.1
    test = 0.1
    seed = 0

    [descriptor]
    cutoff = 2.0                         # neighbourhood radius (lattice constants)
    [descriptor.options]                 # passed to itinerant.descriptors.Descriptor

    [network]
    hidden = [64, 64]
    activation = "silu"
    length_channel = true

    [training]
    epochs = 200
    batch_size = 8                       # snapshots per step (global, over all processes)
    learning_rate = 1e-3
    schedule = "plateau"                 # plateau | cosine | constant
    early_stopping = 30                  # epochs without validation improvement; 0 = off
    parallel_weight = 1.0                # weight of the field error along S (0: perpendicular only)
    energy_weight = 0.0
    density_weight = 0.0                 # data with per-row mu: weight of the local-density error
    seed = 0
    dtype = "float64"
    device = "auto"

    [output]
    directory = "runs/square-8"          # relative to the run file
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

from ..config import ConfigError, Option, load_run_file, non_negative, positive, validate
from ..models.network import ACTIVATIONS


def _fraction(v) -> str | None:
    return None if 0.0 <= v < 1.0 else f"must lie in [0, 1), got {v}"


def _non_empty(v) -> str | None:
    return None if len(v) > 0 else "needs at least one entry"


def _widths(v) -> str | None:
    return None if all(x > 0 for x in v) else f"layer widths must be positive, got {v}"


TRAIN_SCHEMA = {
    "data": {
        "files": Option(list, item=str, check=_non_empty,
                        help="HDF5 data files with spins, fields, energy; same model parameters"),
    },
    "split": {
        "validation": Option(float, default=0.1, check=_fraction),
        "test": Option(float, default=0.1, check=_fraction),
        "seed": Option(int, default=0),
    },
    "descriptor": {
        "cutoff": Option(float, check=positive, help="neighbourhood radius in lattice constants"),
        "options": Option(dict, default={}),
    },
    "network": {
        "hidden": Option(list, default=[64, 64], item=int, check=_widths),
        "activation": Option(str, default="silu", choices=tuple(ACTIVATIONS)),
        "length_channel": Option(bool, default=True),
    },
    "training": {
        "epochs": Option(int, default=200, check=positive),
        "batch_size": Option(int, default=8, check=positive),
        "learning_rate": Option(float, default=1e-3, check=positive),
        "weight_decay": Option(float, default=0.0, check=non_negative),
        "schedule": Option(str, default="plateau", choices=("plateau", "cosine", "constant")),
        "lr_factor": Option(float, default=0.5, check=lambda v: None if 0 < v < 1
                            else f"must lie in (0, 1), got {v}"),
        "lr_patience": Option(int, default=10, check=non_negative),
        "min_lr": Option(float, default=1e-6, check=non_negative),
        "early_stopping": Option(int, default=30, check=non_negative),
        "parallel_weight": Option(float, default=1.0, check=non_negative,
                                  help="weight of the field error along S; 1 = all components"),
        "energy_weight": Option(float, default=0.0, check=non_negative),
        "density_weight": Option(float, default=0.0, check=non_negative,
                                 help="weight of the local-density error n_i (data with per-row mu)"),
        "seed": Option(int, default=0),
        "dtype": Option(str, default="float64", choices=("float64", "float32")),
        "device": Option(str, default="auto"),
    },
    "output": {
        "directory": Option(str, help="output directory for the model, metrics and plots"),
        "progress": Option(bool, default=True),
        "plots": Option(bool, default=True),
    },
}
"""Schema of the ``itinerant train`` run file (see the module docstring)."""

RESUMABLE_KEYS = {("training", "epochs"), ("training", "device")}

LATER_DEFAULTS = {("training", "density_weight"): 0.0}
"""Settings added after runs were first checkpointed: left out of the fingerprint at their
default, so those runs still resume."""
"""Settings that may change when a run is resumed, besides ``[output]`` and the data files' paths
(the data are identified by their content hashes); everything else must match the checkpoint."""


def load_train_config(config, base_dir: str | Path | None = None) -> dict:
    """Validate a run (a TOML path or a dict); resolve relative paths.

    Paths in a run file are relative to the file's directory; in a dict, relative to ``base_dir``
    (default: the working directory).  The returned dict has every default filled in and records
    ``run_file`` (the source path or ``None``).
    """
    if isinstance(config, (str, Path)):
        path = Path(config)
        cfg = load_run_file(path, TRAIN_SCHEMA)
        base = path.resolve().parent
        source = str(path)
    elif isinstance(config, dict):
        cfg = validate(copy.deepcopy({k: v for k, v in config.items() if k != "run_file"}),
                       TRAIN_SCHEMA)
        base = Path(base_dir or ".").resolve()
        source = config.get("run_file")
    else:
        raise TypeError(f"config must be a run-file path or a dict, got {type(config).__name__}")
    if cfg["split"]["validation"] + cfg["split"]["test"] >= 1.0:
        raise ConfigError("[split]: validation + test must leave snapshots for training, got "
                          f"{cfg['split']['validation']} + {cfg['split']['test']}")
    if cfg["split"]["validation"] == 0.0:
        raise ConfigError("[split] validation: must be > 0 (early stopping and the learning-rate "
                          "schedule use the validation set)")
    if cfg["training"]["device"] not in ("auto", "cpu") and not cfg["training"]["device"].startswith(
            "cuda"):
        raise ConfigError(f"[training] device: expected auto, cpu or cuda[:k], got "
                          f"{cfg['training']['device']!r}")
    cfg["data"]["files"] = [str(_resolve(base, f)) for f in cfg["data"]["files"]]
    cfg["output"]["directory"] = str(_resolve(base, cfg["output"]["directory"]))
    cfg["run_file"] = source
    return cfg


def _resolve(base: Path, p: str) -> Path:
    q = Path(p).expanduser()
    return (q if q.is_absolute() else base / q).resolve()


def config_fingerprint(cfg: dict, data_hashes: list[str]) -> str:
    """Hash of what defines a training run: the settings that may not change on resume and the
    content hashes of the data files (in order)."""
    reduced = {sec: {k: v for k, v in val.items() if (sec, k) not in RESUMABLE_KEYS
                     and not ((sec, k) in LATER_DEFAULTS and v == LATER_DEFAULTS[(sec, k)])}
               for sec, val in cfg.items() if isinstance(val, dict) and sec not in ("output", "data")}
    reduced["data"] = list(data_hashes)
    return hashlib.sha256(json.dumps(reduced, sort_keys=True).encode()).hexdigest()
