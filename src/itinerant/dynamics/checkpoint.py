"""Checkpoints of a running LLG integration: spins, step and random-generator state.

A checkpoint is a small ``.npz`` file written atomically (temporary file in the same directory,
``fsync``, ``os.replace``), so a kill at any moment leaves either the previous or the new
checkpoint, never a partial one.  Together with the run settings it records, it is all that is
needed to continue a run bit for bit: the spins are stored exactly (float64) and the noise
generator's bit-generator state is restored.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Checkpoint:
    """State of an integration after ``step`` steps.

    ``rng_state`` is ``numpy.random.Generator.bit_generator.state`` (a dict); ``settings`` are the
    run's settings, compared on resume so a run is never continued with different physics.
    """

    step: int
    spins: np.ndarray
    rng_state: dict
    settings: dict

    def save(self, path: str | Path) -> None:
        """Write atomically to ``path``."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, step=np.int64(self.step), spins=self.spins,
                         rng_state=np.array(json.dumps(self.rng_state)),
                         settings=np.array(json.dumps(self.settings)))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | Path) -> "Checkpoint":
        with np.load(path, allow_pickle=False) as z:
            return cls(step=int(z["step"]), spins=z["spins"].copy(),
                       rng_state=json.loads(str(z["rng_state"])),
                       settings=json.loads(str(z["settings"])))

    def check_settings(self, settings: dict, path) -> None:
        """Raise ``ValueError`` naming every setting that differs from the checkpointed run."""
        saved = json.loads(json.dumps(self.settings))
        now = json.loads(json.dumps(settings))
        diff = [f"{k}: checkpoint {saved.get(k)!r}, now {now.get(k)!r}"
                for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
        if diff:
            raise ValueError(f"cannot resume from {path}: the run settings differ ("
                             + "; ".join(diff) + ")")


def checkpoint_path(out: str | Path) -> Path:
    """Where the checkpoint of the trajectory file ``out`` lives: ``<out>.checkpoint.npz``."""
    out = Path(out)
    return out.with_name(out.name + ".checkpoint.npz")
