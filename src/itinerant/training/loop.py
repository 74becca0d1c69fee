"""Training a :class:`~itinerant.MLForceField` on exact data (``itinerant train``).

Loss per step (units of t1^2), over the snapshots of a batch:

    loss = mean over snapshots, sites, components of (h_model - h_exact)^2
           + energy_weight * mean over snapshots of ((E_model - E_exact) / N)^2
           + density_weight * mean over snapshots and sites of (n_model - n_exact)^2

The density term is for data labelled at several chemical potentials (a per-row ``mu``,
docs/generate.md): the network then takes mu as an input (a mu-conditioned model,
docs/canonical.md), E is the grand potential Omega(S, mu) of the row and n_i = -d eps_i / d mu the
local density, by automatic differentiation.

More precisely the field error d = h_model - h_exact enters as |d_perp|^2 + parallel_weight *
(d . S)^2, with d_perp its part perpendicular to S, the part that drives LLG.  The default
``parallel_weight = 1`` is the plain squared error of all components; 0 fits only d_perp.  The
parallel part of the exact field (J times the local moment) carries most of the variance of random
configurations, and with weight 1 it dominates the loss and slows the fit of the perpendicular part
(measured on square 8x8, J = 4: perpendicular R^2 0.92 with weight 1, 0.997 with weight 0 after the
same 30 epochs); a weight of order 0.01-0.1 fits both.  Adam with a learning-rate schedule
(``plateau``: ReduceLROnPlateau on the validation loss; ``cosine``: cosine decay over ``epochs``;
``constant``), early stopping on the validation loss (the best epoch's weights are kept), a
checkpoint after every epoch (written atomically; ``resume=True`` continues from it).  Batches of
epoch ``k`` are drawn from a generator seeded with ``(seed, k)``, the network is initialised from
``seed``, so a run and a resumed run give the same weights.

Data parallel: launched by ``torchrun`` (environment ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), every
process holds the data and the network wrapped in ``DistributedDataParallel`` (gloo on CPU, nccl
on CUDA); each global batch is split between the processes and the loss weighted so that the
averaged gradient is the single-process one.  Process 0 writes the checkpoints and outputs.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as tdist
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from ..config import ConfigError
from ..lattice import Lattice
from ..models.files import atomic_write_bytes
from ..models.forcefield import MLForceField, build_metadata
from ..models.network import SiteEnergyNet, energy_and_fields, site_energies
from .config import config_fingerprint, load_train_config
from .data import TEST, TRAIN, VALIDATION, TrainingData, load_training_data
from .report import density_metrics, energy_metrics, field_metrics, loss_plot, parity_plot

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "itinerant-train-checkpoint-1"
_DTYPES = {"float64": torch.float64, "float32": torch.float32}


# ---------------------------------------------------------------------- processes
@dataclass
class Processes:
    """This process's place in a data-parallel run (world 1, rank 0 when not distributed)."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0
    distributed: bool = False
    owns_group: bool = False

    @classmethod
    def from_env(cls, device_kind: str) -> "Processes":
        """Join the process group described by torchrun's environment variables, if any."""
        if "WORLD_SIZE" not in os.environ:
            return cls()
        world, rank = int(os.environ["WORLD_SIZE"]), int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", rank))
        owns = False
        if not tdist.is_initialized():
            if device_kind == "cuda":
                torch.cuda.set_device(local)
            tdist.init_process_group("nccl" if device_kind == "cuda" else "gloo",
                                     init_method="env://", world_size=world, rank=rank)
            owns = True
        return cls(world, rank, local, True, owns)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float], device) -> list[float]:
        """Sum a list of numbers over all processes."""
        t = torch.tensor(values, dtype=torch.float64, device=device)
        if self.distributed:
            tdist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.distributed:
            tdist.barrier()

    def close(self) -> None:
        if self.owns_group and tdist.is_initialized():
            tdist.destroy_process_group()


def _device(name: str, procs_local_rank: int | None = None) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("[training] device: CUDA was requested but is not available")
        if name == "cuda" and procs_local_rank is not None:
            return torch.device("cuda", procs_local_rank)
    return torch.device(name)


# ---------------------------------------------------------------------- public entry
def train(config, resume: bool = False, base_dir=None, console: Console | None = None):
    """Train a force field; returns ``(MLForceField, metrics)``.

    ``config`` is a run-file path or a dict (:data:`~itinerant.training.config.TRAIN_SCHEMA`).
    Writes to the output directory: ``model.safetensors`` + ``metadata.json`` (load with
    ``MLForceField.load(directory)``), ``metrics.json``, ``history.json``, ``run.json`` (the
    validated settings; plus a copy of the run file), ``parity.png``, ``loss.png`` and
    ``checkpoint.pt``.  In a data-parallel run every process returns the model; ``metrics`` is
    ``None`` except on process 0.
    """
    cfg = load_train_config(config, base_dir)
    kind = _device(cfg["training"]["device"]).type
    procs = Processes.from_env(kind)
    try:
        return Trainer(cfg, procs, console or Console(stderr=True)).run(resume)
    finally:
        procs.close()


# ---------------------------------------------------------------------- the trainer
class Trainer:
    """One training run: data, network, optimiser, schedule, checkpoints and outputs."""

    def __init__(self, cfg: dict, procs: Processes, console: Console) -> None:
        from ..descriptors import Descriptor

        self.cfg, self.procs, self.console = cfg, procs, console
        tr = cfg["training"]
        self.device = _device(tr["device"], procs.local_rank if procs.distributed else None)
        self.dtype = _DTYPES[tr["dtype"]]
        self.out = Path(cfg["output"]["directory"])
        sp = cfg["split"]
        self.data: TrainingData = load_training_data(cfg["data"]["files"], sp["validation"],
                                                     sp["test"], sp["seed"])
        self.fingerprint = config_fingerprint(cfg, [p["sha256"] for p in self.data.provenance])
        self.kind = self.data.model.lattice.name
        self.mu_input = self.data.has_mu
        self.use_density = self.mu_input and self.data.has_density
        if tr["density_weight"] > 0 and not self.use_density:
            raise ConfigError("[training] density_weight: needs data labelled at several chemical "
                              "potentials with finite densities (datasets 'mu' and 'density'; "
                              "generate [labels])")
        self.descriptors = {}
        dc = cfg["descriptor"]
        for L in self.data.groups:
            try:
                d = Descriptor(Lattice.from_name(self.kind, L), dc["cutoff"], **dc["options"])
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"[descriptor]: {exc}") from None
            self.descriptors[L] = d.to(self.device)
        n_features = {d.n_features for d in self.descriptors.values()}
        if len(n_features) != 1:
            raise ConfigError(f"[descriptor]: feature counts differ between lattice sizes "
                              f"{sorted(n_features)}")
        self.descriptor_config = next(iter(self.descriptors.values())).config()
        nw = cfg["network"]
        with torch.random.fork_rng(devices=[]):  # initial weights from the seed alone
            torch.manual_seed(tr["seed"])
            self.net = SiteEnergyNet(n_features.pop(), nw["hidden"], nw["activation"],
                                     nw["length_channel"],
                                     self.data.mu_range(TRAIN) if self.mu_input else None,
                                     ).to(device=self.device, dtype=self.dtype)
        self._set_normalisation()
        self.model = self.net
        if procs.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.net, device_ids=ids)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=tr["learning_rate"],
                                          weight_decay=tr["weight_decay"])
        self.plateau = None
        if tr["schedule"] == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, factor=tr["lr_factor"], patience=tr["lr_patience"],
                min_lr=tr["min_lr"])
        self.state = {"epoch": 0, "best_val": math.inf, "best_epoch": 0, "bad_epochs": 0,
                      "history": [], "elapsed_s": 0.0}
        self.best = {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    # ------------------------------------------------------------------ data helpers
    def _tensors(self, L: int, idx: np.ndarray):
        """Spins, fields, energies, and mu and densities (``None`` where not used) of rows idx."""
        g = self.data.groups[L]
        as_t = lambda a: torch.as_tensor(a[idx], dtype=self.dtype, device=self.device)  # noqa: E731
        mu = as_t(g.mu) if self.mu_input else None
        dens = as_t(g.density) if self.use_density else None
        return as_t(g.spins), as_t(g.fields), as_t(g.energy), mu, dens

    def _predict(self, net, L: int, s, mu, create_graph: bool = False):
        """Energy, fields and (mu-conditioned) densities of a batch."""
        if mu is None:
            E, h = energy_and_fields(net, self.descriptors[L], s, create_graph=create_graph)
            return E, h, None
        return energy_and_fields(net, self.descriptors[L], s, create_graph=create_graph, mu=mu)

    def _field_sse(self, d: torch.Tensor, spins: torch.Tensor) -> torch.Tensor:
        """sum |d_perp|^2 + parallel_weight * (d . S)^2 over a batch of field errors d."""
        par = (d * spins).sum(-1, keepdim=True)
        perp = d - par * spins
        return (perp * perp).sum() + self.cfg["training"]["parallel_weight"] * (par * par).sum()

    @torch.no_grad()
    def _set_normalisation(self) -> None:
        """Feature mean / std over all training sites; energy shift = mean energy per site;
        energy scale = RMS of the fitted field components (so the network's output is O(1))."""
        total, sq, count, e_site, h_sq, h_count = 0.0, 0.0, 0, [], 0.0, 0
        for L, g in self.data.groups.items():
            idx = g.indices(TRAIN)
            for k in range(0, len(idx), 64):
                s, h, e, _, _ = self._tensors(L, idx[k:k + 64])
                f = self.descriptors[L](s).double()
                total = total + f.sum((0, 1))
                sq = sq + (f * f).sum((0, 1))
                count += f.shape[0] * f.shape[1]
                e_site.append((e / (L * L)).double())
                h_sq += float(self._field_sse(h.double(), s.double()))
                h_count += h.numel()
        mean = total / count
        std = torch.sqrt(torch.clamp(sq / count - mean * mean, min=0.0))
        scale = math.sqrt(h_sq / h_count) if h_sq > 0 else 1.0
        mu_stats = {}
        if self.mu_input:
            mu = np.concatenate([g.mu[g.indices(TRAIN)] for g in self.data.groups.values()])
            mu_stats = {"mu_mean": float(mu.mean()), "mu_std": float(mu.std())}
        self.net.set_normalisation(mean, std, float(torch.cat(e_site).mean()), scale, **mu_stats)

    def _batches(self, epoch: int) -> list[tuple[int, np.ndarray]]:
        rng = np.random.default_rng([self.cfg["training"]["seed"], epoch])
        B = self.cfg["training"]["batch_size"]
        batches = []
        for L, g in self.data.groups.items():
            idx = rng.permutation(g.indices(TRAIN))
            batches += [(L, idx[k:k + B]) for k in range(0, len(idx), B)]
        return [batches[k] for k in rng.permutation(len(batches))]

    # ------------------------------------------------------------------ steps
    def _step(self, L: int, idx: np.ndarray) -> tuple[float, float, int, float]:
        """One optimiser step on a global batch; returns this process's (field SSE, energy SSE per
        site, snapshots, density SSE) for reporting."""
        world, rank = self.procs.world, self.procs.rank
        mine = np.array_split(idx, world)[rank]
        weight = 1.0
        if len(mine) == 0:  # keep the processes in step: a zero-weight pass on one snapshot
            mine, weight = idx[:1], 0.0
        s, h, e, mu, dens = self._tensors(L, mine)
        E, hp, n_pred = self._predict(self.model, L, s, mu, create_graph=True)
        field_sse = self._field_sse(hp - h, s)
        energy_sse = (((E - e) / (L * L)) ** 2).sum()
        density_sse = ((n_pred - dens) ** 2).sum() if dens is not None else field_sse.new_zeros(())
        n = len(idx)
        tr = self.cfg["training"]
        loss = weight * world * (field_sse / (n * L * L * 3) + tr["energy_weight"] * energy_sse / n
                                 + tr["density_weight"] * density_sse / (n * L * L))
        self.optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():
            # DDP flags the (1, width) output weight, whose double-backward gradient has
            # strides (1, 1) instead of (width, 1): the same layout for a dimension of size 1.
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view")
            loss.backward()
        self.optimizer.step()
        return (weight * field_sse.item(), weight * energy_sse.item(), int(weight) * len(mine),
                weight * density_sse.item())

    def _evaluate(self, part: int, shard: bool = True, keep: bool = False) -> dict:
        """Loss and errors on a split part (sharded over processes unless ``shard=False``);
        ``keep=True`` also returns the predictions (arrays over the whole part, process 0)."""
        field_sse = energy_sse = density_sse = 0.0
        n_snap = n_comp = 0
        kept = {k: [] for k in ("spins", "fields", "pred", "energy", "energy_pred", "n_sites",
                                "density", "density_pred")}
        for L, g in self.data.groups.items():
            idx = g.indices(part)
            if shard:
                idx = np.array_split(idx, self.procs.world)[self.procs.rank]
            for k in range(0, len(idx), 32):
                s, h, e, mu, dens = self._tensors(L, idx[k:k + 32])
                E, hp, n_pred = (None if x is None else x.detach()
                                 for x in self._predict(self.net, L, s, mu))
                field_sse += float(self._field_sse(hp - h, s))
                energy_sse += float((((E - e) / (L * L)) ** 2).sum())
                if dens is not None:
                    density_sse += float(((n_pred - dens) ** 2).sum())
                n_snap += len(s)
                n_comp += h.numel()
                if keep:  # fields as rows (M*N, 3), energies (M,), densities (M*N,)
                    for key, v in (("spins", s), ("fields", h), ("pred", hp)):
                        kept[key].append(v.detach().cpu().double().numpy().reshape(-1, 3))
                    for key, v in (("energy", e), ("energy_pred", E)):
                        kept[key].append(v.detach().cpu().double().numpy())
                    kept["n_sites"].append(np.full(len(s), L * L))
                    if dens is not None:
                        kept["density"].append(dens.cpu().double().numpy().reshape(-1))
                        kept["density_pred"].append(n_pred.cpu().double().numpy().reshape(-1))
        if shard:
            field_sse, energy_sse, density_sse, n_snap, n_comp = self.procs.sum(
                [field_sse, energy_sse, density_sse, n_snap, n_comp], self.device)
        tr = self.cfg["training"]
        n_sites = n_comp / 3
        out = {"loss": field_sse / n_comp + tr["energy_weight"] * energy_sse / n_snap
               + tr["density_weight"] * density_sse / n_sites,
               "field_rmse": math.sqrt(field_sse / n_comp),
               "energy_rmse_per_site": math.sqrt(energy_sse / n_snap)}
        if self.use_density:
            out["density_rmse"] = math.sqrt(density_sse / n_sites)
        if keep:
            out["arrays"] = kept
        return out

    def _lr(self, epoch: int) -> float:
        tr = self.cfg["training"]
        if tr["schedule"] == "cosine":
            return tr["min_lr"] + (tr["learning_rate"] - tr["min_lr"]) * 0.5 * (
                1 + math.cos(math.pi * min(epoch, tr["epochs"]) / tr["epochs"]))
        return self.optimizer.param_groups[0]["lr"]

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self) -> None:
        ck = {"format": CHECKPOINT_FORMAT, "fingerprint": self.fingerprint,
              "net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
              "plateau": self.plateau.state_dict() if self.plateau else None,
              "best": self.best, **self.state}
        tmp = self.out / f".{CHECKPOINT}.tmp"
        torch.save(ck, tmp)
        os.replace(tmp, self.out / CHECKPOINT)

    def _load_checkpoint(self) -> None:
        path = self.out / CHECKPOINT
        if not path.is_file():
            raise FileNotFoundError(f"cannot resume: {path} does not exist")
        ck = torch.load(path, map_location=self.device, weights_only=True)
        if ck.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a training checkpoint of this itinerant version")
        if ck["fingerprint"] != self.fingerprint:
            raise ValueError(f"cannot resume from {path}: the run file or the data changed since "
                             f"the checkpoint was written (only [training] epochs / device and "
                             f"[output] may change on resume)")
        self.net.load_state_dict(ck["net"])
        self.optimizer.load_state_dict(ck["optimizer"])
        if self.plateau is not None:
            self.plateau.load_state_dict(ck["plateau"])
        self.best = ck["best"]
        self.state = {k: ck[k] for k in self.state}

    # ------------------------------------------------------------------ the run
    def run(self, resume: bool):
        out = self.out
        if resume:
            self._load_checkpoint()
        elif (out / CHECKPOINT).exists():
            raise ValueError(f"{out} already holds a training run ({CHECKPOINT}); pass --resume "
                             f"(resume=True) to continue it or choose another output directory")
        if self.procs.main:
            out.mkdir(parents=True, exist_ok=True)
        self.procs.barrier()
        tr = self.cfg["training"]
        show = self.procs.main and self.cfg["output"]["progress"]
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=24),
                      MofNCompleteColumn(),
                      TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=self.console, disable=not show, transient=False) as bar:
            epochs = bar.add_task("epochs", total=tr["epochs"], completed=self.state["epoch"],
                                  info=self._info())
            steps = bar.add_task("batches", total=None, info="")
            while self.state["epoch"] < tr["epochs"] and not self._stopped():
                self._epoch(bar, steps)
                bar.update(epochs, completed=self.state["epoch"], info=self._info())
        self.net.load_state_dict(self.best)
        self._fit_energy_offset()
        return self._finish()

    @torch.no_grad()
    def _fit_energy_offset(self) -> None:
        """Shift eps_i by the constant that minimises the training energy error.

        The fields fix the energy only up to a constant per site; with ``energy_weight = 0``
        nothing else does.  The shift is the mean of (E_exact - E_model) / N over the training set
        (the least-squares optimum); it changes no field.
        """
        diff, n = 0.0, 0
        for L, g in self.data.groups.items():
            idx = g.indices(TRAIN)
            for k in range(0, len(idx), 64):
                s, _, e, mu, _ = self._tensors(L, idx[k:k + 64])
                E = site_energies(self.net, self.descriptors[L], s, mu=mu).sum(-1)
                diff += float(((e - E) / (L * L)).sum())
                n += len(idx[k:k + 64])
        self.energy_offset = diff / n
        self.net.energy_shift += self.energy_offset

    def _stopped(self) -> bool:
        patience = self.cfg["training"]["early_stopping"]
        return patience > 0 and self.state["bad_epochs"] >= patience

    def _info(self) -> str:
        if not self.state["history"]:
            return ""
        h = self.state["history"][-1]
        return (f"loss {h['train_loss']:.3e}  val {h['val_loss']:.3e}  "
                f"val field RMSE {h['val_field_rmse']:.3e}  lr {h['lr']:.1e}")

    def _epoch(self, bar, steps) -> None:
        t0 = time.perf_counter()
        epoch = self.state["epoch"]
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(epoch)
        lr = self.optimizer.param_groups[0]["lr"]
        self.net.train()
        batches = self._batches(epoch)
        bar.reset(steps, total=len(batches))
        field_sse = energy_sse = density_sse = 0.0
        n_snap = 0
        for L, idx in batches:
            f, e, n, d = self._step(L, idx)
            field_sse, energy_sse, n_snap = field_sse + f, energy_sse + e, n_snap + n
            density_sse += d
            bar.advance(steps)
        self.net.eval()
        field_sse, energy_sse, n_snap, density_sse = self.procs.sum(
            [field_sse, energy_sse, n_snap, density_sse], self.device)
        n_comp = sum(len(g.indices(TRAIN)) * g.spins.shape[1] * 3
                     for g in self.data.groups.values())
        tr = self.cfg["training"]
        train_loss = (field_sse / n_comp + tr["energy_weight"] * energy_sse / n_snap
                      + tr["density_weight"] * density_sse / (n_comp / 3))
        val = self._evaluate(VALIDATION)
        if self.plateau is not None:
            self.plateau.step(val["loss"])
        st = self.state
        st["epoch"] = epoch + 1
        st["elapsed_s"] += time.perf_counter() - t0
        st["history"].append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val["loss"],
                              "val_field_rmse": val["field_rmse"],
                              "val_energy_rmse_per_site": val["energy_rmse_per_site"], "lr": lr,
                              "seconds": time.perf_counter() - t0})
        if "density_rmse" in val:
            st["history"][-1]["val_density_rmse"] = val["density_rmse"]
        if val["loss"] < st["best_val"] * (1 - 1e-6):
            st["best_val"], st["best_epoch"], st["bad_epochs"] = val["loss"], epoch + 1, 0
            self.best = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        else:
            st["bad_epochs"] += 1
        if self.procs.main:
            self._save_checkpoint()
        self.procs.barrier()

    # ------------------------------------------------------------------ outputs
    def _finish(self):
        data, cfg, st = self.data, self.cfg, self.state
        sizes = sorted(data.groups)
        training = {
            "data": data.provenance, "sizes": sizes,
            "snapshots": {name: data.count(part) for name, part in
                          (("train", TRAIN), ("validation", VALIDATION), ("test", TEST))},
            "split": cfg["split"], "settings": cfg["training"],
            "epochs": st["epoch"], "best_epoch": st["best_epoch"],
            "stopped_early": self._stopped(), "seconds": round(st["elapsed_s"], 2),
            "processes": self.procs.world, "device": str(self.device),
            "energy_offset_fitted": self.energy_offset,
        }
        if self.mu_input:
            training["mu_conditioned"] = True
            training["mu_range"] = list(self.net.mu_range)
        meta = build_metadata(data.model, self.descriptor_config, self.net.config(),
                              training=training)
        ff = MLForceField(self.net.cpu(), meta, Lattice.from_name(self.kind, max(sizes)))
        self.net.to(self.device)
        if not self.procs.main:
            self.procs.barrier()
            return ff, None
        metrics = {"best_epoch": st["best_epoch"], "epochs": st["epoch"],
                   "parallel_weight": cfg["training"]["parallel_weight"],
                   "snapshots": training["snapshots"]}
        if self.mu_input:
            metrics.update(mu_conditioned=True, mu_range=list(self.net.mu_range),
                           density_weight=cfg["training"]["density_weight"])
        parts = [("validation", VALIDATION)] + ([("test", TEST)] if data.count(TEST) else [])
        for name, part in parts:
            ev = self._evaluate(part, shard=False, keep=True)
            a = {k: np.concatenate(v) for k, v in ev["arrays"].items() if v}
            metrics[name] = _part_metrics(a)
            last = a
        ff.metadata["metrics"] = metrics
        ff.save(self.out)
        out = self.out
        atomic_write_bytes(out / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
        atomic_write_bytes(out / "history.json", (json.dumps(st["history"], indent=1) + "\n")
                           .encode())
        atomic_write_bytes(out / "run.json", (json.dumps(cfg, indent=2) + "\n").encode())
        run_file = cfg.get("run_file")
        if run_file and Path(run_file).is_file() and Path(run_file).resolve() != \
                (out / "run.toml").resolve():
            shutil.copyfile(run_file, out / "run.toml")
        if cfg["output"]["plots"]:
            title = f"{parts[-1][0]} set, {self.kind} L={sizes}"
            parity_plot(out / "parity.png", last["pred"], last["fields"], last["spins"],
                        last["energy_pred"], last["energy"], last["n_sites"],
                        metrics[parts[-1][0]], title)
            loss_plot(out / "loss.png", st["history"])
        self.procs.barrier()
        ff.path = out
        return ff, metrics


def _part_metrics(a: dict) -> dict:
    out = {"snapshots": len(a["energy"]),
           "fields": field_metrics(a["pred"], a["fields"], a["spins"]),
           "energy": energy_metrics(a["energy_pred"], a["energy"], a["n_sites"])}
    if len(a.get("density", ())):
        out["density"] = density_metrics(a["density_pred"], a["density"])
    return out
