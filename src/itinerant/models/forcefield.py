"""The machine-learning force field: a trained local-energy model with the solvers' interface.

    ff = MLForceField.load("square-J4")            # a shipped model, or a directory path
    E, h = ff.energy_and_fields(spins)              # float, (N, 3); or (M,), (M, N, 3) for a stack

E = sum_i eps_i(descriptor_i) and h = -dE/dS by automatic differentiation (the gradient with respect
to the unconstrained 3-vectors; LLG uses the part perpendicular to S).  The descriptor is local, so
one model works on every L x L lattice of the kind it was trained on that is large enough for its
cutoff; the descriptor for each size is built once and cached.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import torch

from .._version import __version__
from ..lattice import Lattice
from ..model import SDModel
from ..spins import check_spins
from . import fastpath, files
from .fastpath import FastEvaluator
from .files import ModelFileError, model_parameters, parameter_differences
from .network import SiteEnergyNet, energy_and_fields, site_energies

SHIPPED = Path(__file__).parent / "shipped"
"""Directory of the models that ship with the package, one sub-directory per model name."""

_DTYPES = {"float64": torch.float64, "float32": torch.float32,
           torch.float64: torch.float64, torch.float32: torch.float32}


def _dtype(dtype) -> torch.dtype:
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    return _DTYPES[dtype]


class MLForceField:
    """A learned local-energy force field for one s-d model (lattice kind, t, J, filling | mu, kT).

    Parameters
    ----------
    net:
        The trained :class:`~itinerant.models.network.SiteEnergyNet` (copied).
    metadata:
        Model-file metadata; needs ``lattice``, ``model`` (parameters), ``descriptor`` (the
        descriptor's ``config()``) and ``network``.
    lattice:
        The lattice the force field is bound to (its kind must match); default: the largest
        training size.  It sets :attr:`model`; :meth:`energy_and_fields` accepts any size.
    dtype:
        ``"float64"`` (default) or ``"float32"`` arithmetic; results are returned as float64.
    device:
        Torch device (``"cpu"``, ``"cuda"``).
    max_batch:
        Snapshots evaluated together when a stack is passed (memory control).
    max_sites:
        Largest number of site energies evaluated in one pass; larger lattices are evaluated in
        chunks of centre sites with the gradients accumulated (bounded memory, same result).
    fast:
        Evaluate :meth:`energy_and_fields` with the autograd-free fast path
        (:mod:`itinerant.models.fastpath`: same numbers to rounding, time and memory linear in N);
        ``False`` uses autograd through the descriptor and network.
    compile:
        Wrap the fast path's per-block computation in ``torch.compile`` (compiles for seconds to
        tens of seconds per block shape; measured 1.6x faster on one CPU thread, not faster with
        two threads on a shared machine: docs/performance.md).
    """

    name = "ml"

    def __init__(self, net: SiteEnergyNet, metadata: dict, lattice: Lattice | None = None,
                 dtype="float64", device="cpu", max_batch: int = 64,
                 max_sites: int = 16384, fast: bool = True, compile: bool = False) -> None:
        self.metadata = copy.deepcopy(metadata)
        self.parameters = model_parameters({**metadata["model"], "lattice": metadata["lattice"]})
        self.lattice_name = self.parameters["lattice"]
        self.dtype = _dtype(dtype)
        self.device = torch.device(device)
        self.max_batch = int(max_batch)
        self.max_sites = int(max_sites)
        self.fast, self.compile = bool(fast), bool(compile)
        self._evaluators: dict[int, FastEvaluator] = {}
        if self.max_batch < 1 or self.max_sites < 1:
            raise ValueError(f"max_batch and max_sites must be >= 1, got {max_batch}, {max_sites}")
        self.path = None
        self._weights = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        self.net = copy.deepcopy(net).to(device=self.device, dtype=self.dtype).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self._descriptors: dict[int, torch.nn.Module] = {}
        if lattice is None:
            sizes = metadata.get("training", {}).get("sizes") or [metadata["model"].get("L")]
            lattice = Lattice.from_name(self.lattice_name, int(max(s for s in sizes if s)))
        self.lattice = self._check_lattice(lattice)
        self.descriptor(self.lattice)  # fails early if the lattice is too small

    # ------------------------------------------------------------------ construction and files
    @classmethod
    def new(cls, model: SDModel, cutoff: float, descriptor_options: dict | None = None,
            hidden=(64, 64), activation: str = "silu", length_channel: bool = True,
            seed: int = 0, **kwargs) -> "MLForceField":
        """An untrained force field for ``model`` (random weights from ``seed``, no normalisation)."""
        from ..descriptors import Descriptor

        desc = Descriptor(model.lattice, cutoff, **(descriptor_options or {}))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = SiteEnergyNet(desc.n_features, hidden, activation, length_channel).double()
        return cls(net, build_metadata(model, desc.config(), net.config()), model.lattice, **kwargs)

    @classmethod
    def load(cls, name_or_path: str | Path, expect_model: SDModel | None = None,
             lattice: Lattice | None = None, **kwargs) -> "MLForceField":
        """Load a shipped model by name or a model directory / file by path.

        ``expect_model``: refuse (``ValueError``) unless the file is for this model's lattice kind,
        t, J, filling | mu and kT; the force field is then bound to ``expect_model.lattice``.
        ``lattice``: bind to this lattice (its kind must match).  Other keyword arguments go to the
        constructor (``dtype``, ``device``, ``max_batch``, ``max_sites``, ``fast``, ``compile``).
        """
        path = _resolve(name_or_path)
        state, meta = files.read_model(path)
        _check_probe(meta, path)
        try:
            net = SiteEnergyNet.from_config(meta["network"])
            net.to(state["energy_scale"].dtype)  # keep the stored precision
            net.load_state_dict(state)
        except (KeyError, TypeError, RuntimeError) as exc:
            raise ModelFileError(f"{path}: weights do not fit the network described in its "
                                 f"metadata ({str(exc).splitlines()[0]})") from None
        if expect_model is not None:
            _check_parameters(meta, expect_model, f"model {path}")
            lattice = lattice or expect_model.lattice
        ff = cls(net, meta, lattice=lattice, **kwargs)
        ff.path = path
        return ff

    @staticmethod
    def available() -> list[str]:
        """Names of the models shipped with the package."""
        if not SHIPPED.is_dir():
            return []
        return sorted(p.name for p in SHIPPED.iterdir() if (p / files.METADATA).is_file())

    def save(self, path: str | Path, **extra_metadata) -> Path:
        """Write the model directory ``path``: the weights as trained (whatever :attr:`dtype`)."""
        meta = {**self.metadata, **extra_metadata, "package_version": __version__}
        for k in ("format", "format_version", "weights"):
            meta.pop(k, None)
        return files.write_model(path, self._weights, meta)

    # ------------------------------------------------------------------ lattice and model
    @property
    def cutoff(self) -> float:
        return float(self.metadata["descriptor"]["cutoff"])

    @property
    def model(self) -> SDModel | None:
        """The s-d model this force field stands for on :attr:`lattice`.

        ``None`` when the training model has fixed filling and that filling gives a non-integer
        electron number on this lattice size.
        """
        p = self.parameters
        try:
            return SDModel(self.lattice, t=tuple(p["t"]), J=p["J"], filling=p.get("filling"),
                           mu=p.get("mu"), kT=p["kT"])
        except ValueError:
            return None

    def on(self, lattice: Lattice) -> "MLForceField":
        """The same force field bound to ``lattice`` (same kind, large enough for the cutoff)."""
        other = copy.copy(self)
        other.lattice = self._check_lattice(lattice)
        other.descriptor(other.lattice)
        return other

    def check_model(self, model, what: str = "this force field") -> None:
        """Raise ``ValueError`` unless ``model`` (SDModel or data-file attributes) is the model this
        force field was trained for (lattice kind, t, J, filling | mu, kT; any size)."""
        _check_parameters(self.metadata, model, what)

    def settings(self) -> dict:
        """Solver name and model identity, stored with data produced by this force field."""
        return {"solver": self.name, "ml_model": str(self.path or ""),
                "ml_weights_sha256": self.metadata.get("weights", {}).get("sha256", "")}

    def _check_lattice(self, lattice: Lattice) -> Lattice:
        if not isinstance(lattice, Lattice):
            raise TypeError(f"lattice must be an itinerant.Lattice, got {type(lattice).__name__}")
        if lattice.name != self.lattice_name:
            raise ValueError(f"this force field was trained on the {self.lattice_name} lattice and "
                             f"cannot be used on the {lattice.name} lattice")
        return lattice

    def descriptor(self, lattice_or_L) -> torch.nn.Module:
        """The (cached) descriptor module for an ``L x L`` lattice of this kind."""
        from ..descriptors import Descriptor

        L = lattice_or_L.L if isinstance(lattice_or_L, Lattice) else int(lattice_or_L)
        if L not in self._descriptors:
            lat = Lattice.from_name(self.lattice_name, L)
            try:
                d = Descriptor.from_config(lat, self.metadata["descriptor"])
            except ValueError as exc:
                raise ValueError(f"the force field's descriptor (cutoff {self.cutoff}) does not fit "
                                 f"on {lat}: {exc}") from None
            if d.n_features != self.net.n_features:
                raise ModelFileError(f"descriptor gives {d.n_features} features, the network "
                                     f"expects {self.net.n_features}")
            self._descriptors[L] = d.to(self.device)
        return self._descriptors[L]

    def _evaluator(self, lat: Lattice) -> FastEvaluator:
        """The (cached) fast-path evaluator for an ``L x L`` lattice."""
        if lat.L not in self._evaluators:
            self._evaluators[lat.L] = FastEvaluator(self.descriptor(lat), compile=self.compile,
                                                     max_block=self.max_sites)
        return self._evaluators[lat.L]

    def _lattice_for(self, n_sites: int) -> Lattice:
        if n_sites == self.lattice.N:
            return self.lattice
        L = math.isqrt(n_sites)
        if L * L != n_sites or L < 2:
            raise ValueError(f"{n_sites} spins do not form an L x L {self.lattice_name} lattice")
        return Lattice.from_name(self.lattice_name, L)

    # ------------------------------------------------------------------ evaluation
    def energy_and_fields(self, spins, normalize: bool = False):
        """Energy and fields h = -dE/dS (units of t1).

        ``spins`` (N, 3) gives ``(float, ndarray (N, 3))``; a stack (M, N, 3) gives
        ``(ndarray (M,), ndarray (M, N, 3))``.  The lattice size follows from N.
        """
        s, lat, single = self._prepare(spins, normalize)
        desc = self.descriptor(lat)
        E, h = [], []
        for x in self._batches(s, lat):
            if self.fast and fastpath.supports(self.net):
                e, grad = self._evaluator(lat)(self.net, x)
                f = -grad
            else:
                e, f = energy_and_fields(self.net, desc, x, chunk=self.max_sites)
            E.append(e.detach().cpu().double().numpy())
            h.append(f.detach().cpu().double().numpy())
        E, h = np.concatenate(E), np.concatenate(h)
        return (E[0].item(), h[0]) if single else (E, h)

    def energy(self, spins, normalize: bool = False):
        """Energy only (float, or (M,) for a stack)."""
        eps = self.site_energies(spins, normalize)
        return eps.sum(-1).item() if eps.ndim == 1 else eps.sum(-1)

    def site_energies(self, spins, normalize: bool = False) -> np.ndarray:
        """Local energies eps_i, shape (N,) or (M, N); they sum to the energy."""
        s, lat, single = self._prepare(spins, normalize)
        desc = self.descriptor(lat)
        out = []
        with torch.no_grad():
            for x in self._batches(s, lat):
                if lat.N <= self.max_sites:
                    parts = [site_energies(self.net, desc, x)]
                else:
                    parts = [site_energies(self.net, desc, x,
                                           torch.arange(k, min(k + self.max_sites, lat.N),
                                                        device=self.device))
                             for k in range(0, lat.N, self.max_sites)]
                out.append(torch.cat(parts, -1).cpu().double().numpy())
        eps = np.concatenate(out)
        return eps[0] if single else eps

    def _batches(self, s: np.ndarray, lat: Lattice):
        """Snapshots as tensors, as many at a time as ``max_batch`` and ``max_sites`` allow."""
        per = max(1, min(self.max_batch, self.max_sites // lat.N))
        for k in range(0, len(s), per):
            yield torch.as_tensor(s[k:k + per], dtype=self.dtype, device=self.device)

    def _prepare(self, spins, normalize: bool):
        arr = np.asarray(spins)
        if arr.ndim not in (2, 3) or arr.shape[-1] != 3:
            raise ValueError(f"spins must have shape (N, 3) or (M, N, 3), got {arr.shape}")
        lat = self._lattice_for(arr.shape[-2])
        s = check_spins(arr, lat.N, normalize=normalize, batched=True)
        single = s.ndim == 2
        return (s[None] if single else s), lat, single

    def __repr__(self) -> str:
        return (f"MLForceField({_describe(self.parameters)}, cutoff={self.cutoff}, "
                f"lattice={self.lattice!r}, dtype={str(self.dtype).removeprefix('torch.')})")


def build_metadata(model: SDModel, descriptor_config: dict, network_config: dict,
                   **extra) -> dict:
    """Metadata identity entries for a force field of ``model`` (the training size is recorded)."""
    params = model_parameters(model)
    kind = params.pop("lattice")
    return {"lattice": kind, "model": {**params, "L": model.lattice.L},
            "descriptor": dict(descriptor_config), "network": dict(network_config),
            "descriptor_probe": descriptor_probe(kind, descriptor_config),
            "package_version": __version__, **extra}


def descriptor_probe(lattice_name: str, descriptor_config: dict) -> dict:
    """The descriptor of site 0 of a fixed random configuration on the smallest lattice that fits.

    Stored in model files and recomputed on load: a descriptor whose definition changed since the
    model was trained (other features, other order) is caught instead of feeding the network
    wrong inputs.
    """
    from ..descriptors import Descriptor
    from ..spins import random_spins

    key = json.dumps([lattice_name, descriptor_config], sort_keys=True)
    if key in _PROBES:
        return copy.deepcopy(_PROBES[key])
    for L in range(3, 64):
        try:
            d = Descriptor.from_config(Lattice.from_name(lattice_name, L), descriptor_config)
            break
        except ValueError as exc:
            if "too small" not in str(exc):
                raise
    spins = torch.as_tensor(random_spins(L * L, np.random.default_rng(0)))
    with torch.no_grad():
        f = d(spins)[0]
    _PROBES[key] = {"L": L, "seed": 0, "site": 0, "features": f.tolist()}
    return copy.deepcopy(_PROBES[key])


_PROBES: dict[str, dict] = {}


def _check_probe(meta: dict, path) -> None:
    stored = meta.get("descriptor_probe")
    if stored is None:
        raise ModelFileError(f"{path}: the metadata lacks descriptor_probe")
    now = descriptor_probe(meta["lattice"], meta["descriptor"])
    a, b = np.asarray(stored["features"]), np.asarray(now["features"])
    if a.shape != b.shape or np.abs(a - b).max() > 1e-9 * (1 + np.abs(a).max()):
        raise ModelFileError(
            f"{path}: this itinerant's descriptor computes other features for the model's "
            f"descriptor settings {meta['descriptor']} than the one the model was trained with "
            f"({len(b)} features now, {len(a)} then, or different values); retrain the model "
            f"with this version (its run file is in the model directory)")


def _check_parameters(meta: dict, model, what: str) -> None:
    mine = model_parameters({**meta["model"], "lattice": meta["lattice"]})
    diffs = parameter_differences(mine, model)
    if diffs:
        raise ValueError(f"{what} was trained for {_describe(mine)}, not for "
                         f"{_describe(model_parameters(model))}: " + "; ".join(diffs))


def _describe(p: dict) -> str:
    dens = f"filling={p['filling']}" if "filling" in p else f"mu={p['mu']}"
    return f"{p['lattice']} t={p['t']} J={p['J']} {dens} kT={p['kT']}"


def _resolve(name_or_path) -> Path:
    p = Path(name_or_path)
    if p.exists():
        return p
    if isinstance(name_or_path, str) and "/" not in name_or_path and (SHIPPED / name_or_path).is_dir():
        return SHIPPED / name_or_path
    known = MLForceField.available()
    raise FileNotFoundError(f"no model file or shipped model {str(name_or_path)!r}; shipped models: "
                            f"{known if known else 'none'}")
