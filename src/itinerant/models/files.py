"""Model files: safetensors weights + JSON metadata in one directory (DESIGN.md §4).

    <dir>/model.safetensors   network parameters and normalisation buffers (no code runs on load)
    <dir>/metadata.json       format, lattice, model parameters, descriptor and network settings,
                              training-data provenance, metrics, package version

The weights file's header carries the SHA-256 of the metadata's *identity* (format version, lattice,
model parameters, descriptor and network settings), and the metadata carries the SHA-256 of the
weights file, so editing either one alone is detected on load.  Provenance and metrics may be
edited freely.  Files are written atomically (temporary file + rename).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT = "itinerant-mlff"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
METADATA = "metadata.json"
IDENTITY_KEYS = ("format", "format_version", "lattice", "model", "descriptor", "network",
                 "descriptor_probe")
"""Metadata entries that define what the weights mean; bound to the weights file by a hash."""


class ModelFileError(ValueError):
    """A model file that cannot be used (missing, damaged, tampered with, or for another model)."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def identity_hash(metadata: dict) -> str:
    """SHA-256 of the canonical JSON of the metadata's identity entries."""
    ident = {k: metadata.get(k) for k in IDENTITY_KEYS}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_model(directory: str | Path, state: dict[str, torch.Tensor], metadata: dict) -> Path:
    """Write weights and metadata into ``directory`` (created if needed); returns the directory.

    ``metadata`` must hold the identity entries; ``format``, ``format_version`` and the hashes are
    filled in here.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **metadata}
    missing = [k for k in IDENTITY_KEYS if meta.get(k) is None]
    if missing:
        raise ValueError(f"model metadata lacks {missing}")
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{WEIGHTS}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION),
                                          "identity_sha256": identity_hash(meta)})
        digest = sha256_file(tmp)
        os.replace(tmp, d / WEIGHTS)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    meta["weights"] = {"file": WEIGHTS, "sha256": digest}
    atomic_write_bytes(d / METADATA, (json.dumps(meta, indent=2, default=_json_default) + "\n")
                       .encode())
    return d


def read_model(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read and verify a model directory (or its ``metadata.json`` / ``model.safetensors``).

    Returns ``(state_dict, metadata)``.  Raises :class:`ModelFileError` for missing files, a format
    newer than this package understands, and weights or metadata that do not belong together.
    """
    p = Path(path)
    d = p.parent if p.is_file() else p
    meta_path, weights_path = d / METADATA, d / WEIGHTS
    for f in (meta_path, weights_path):
        if not f.is_file():
            raise ModelFileError(f"model directory {d} is incomplete: {f.name} is missing "
                                 f"(a model needs {METADATA} and {WEIGHTS})")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{meta_path}: not an itinerant model file (format is "
                             f"{meta.get('format') if isinstance(meta, dict) else None!r}, "
                             f"expected {FORMAT!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{meta_path}: invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{d}: model file format version {version} is newer than this itinerant understands "
            f"(up to {FORMAT_VERSION}); it was written by itinerant "
            f"{meta.get('package_version', '?')}; upgrade itinerant to load it")
    recorded = (meta.get("weights") or {}).get("sha256")
    actual = sha256_file(weights_path)
    if recorded != actual:
        raise ModelFileError(f"{weights_path}: SHA-256 {actual[:16]}... does not match the one "
                             f"recorded in {METADATA} ({str(recorded)[:16]}...): the weights were "
                             f"modified or belong to another model")
    try:
        state = load_file(weights_path)
        from safetensors import safe_open

        with safe_open(weights_path, framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{weights_path}: cannot read weights ({exc})") from None
    if header.get("identity_sha256") != identity_hash(meta):
        changed = ", ".join(IDENTITY_KEYS[2:6])
        raise ModelFileError(f"{meta_path}: the model identity ({changed}) differs from the one the "
                             f"weights were saved with: the metadata was edited")
    return state, meta


# ---------------------------------------------------------------------- model parameters
def model_parameters(model_or_attrs) -> dict:
    """The physics that a force field stands for: lattice kind, t, J, filling | mu, kT (no size).

    Accepts an :class:`~itinerant.SDModel`, its ``attrs()`` or HDF5 attributes.  Trailing zero
    hoppings are dropped, so ``t = (1,)`` and ``t = (1, 0)`` are the same model.
    """
    a = model_or_attrs.attrs() if hasattr(model_or_attrs, "attrs") else dict(model_or_attrs)
    t = [float(x) for x in (a["t"] if hasattr(a["t"], "__len__") else [a["t"]])]
    while len(t) > 1 and t[-1] == 0.0:
        t.pop()
    out = {"lattice": str(a["lattice"]), "t": t, "J": float(a["J"]), "kT": float(a["kT"])}
    if a.get("filling") is not None:
        out["filling"] = float(a["filling"])
    if a.get("mu") is not None:
        out["mu"] = float(a["mu"])
    return out


def parameter_differences(a, b, rtol: float = 1e-9, ensemble: bool = True) -> list[str]:
    """Human-readable differences between two models' parameters (empty when they agree).

    ``ensemble=False`` leaves filling | mu out of the comparison (models that take the chemical
    potential as an input, and data labelled at several chemical potentials).
    """
    pa, pb = model_parameters(a), model_parameters(b)
    diffs = []
    if pa["lattice"] != pb["lattice"]:
        diffs.append(f"lattice {pa['lattice']} vs {pb['lattice']}")
    if len(pa["t"]) != len(pb["t"]) or not all(_close(x, y, rtol) for x, y in zip(pa["t"], pb["t"])):
        diffs.append(f"t {pa['t']} vs {pb['t']}")
    for k in ("J", "kT", "filling", "mu") if ensemble else ("J", "kT"):
        if (k in pa) != (k in pb):
            have = "filling" if "filling" in pa else "mu"
            other = "filling" if "filling" in pb else "mu"
            diffs.append(f"fixed {have} ({pa[have]}) vs fixed {other} ({pb[other]})")
            break
        if k in pa and not _close(pa[k], pb[k], rtol):
            diffs.append(f"{k} {pa[k]} vs {pb[k]}")
    return diffs


def _close(x: float, y: float, rtol: float) -> bool:
    return math.isclose(x, y, rel_tol=rtol, abs_tol=1e-12)


def _json_default(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot store {type(obj).__name__} in model metadata")
