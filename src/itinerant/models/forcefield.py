"""The machine-learning force field: a trained local-energy model with the solvers' interface.

    ff = MLForceField.load("square-J4")            # a shipped model, or a directory path
    E, h = ff.energy_and_fields(spins)              # float, (N, 3); or (M,), (M, N, 3) for a stack

E = sum_i eps_i(descriptor_i) and h = -dE/dS by automatic differentiation (the gradient with respect
to the unconstrained 3-vectors; LLG uses the part perpendicular to S).  The descriptor is local, so
one model works on every L x L lattice of the kind it was trained on that is large enough for its
cutoff; the descriptor for each size is built once and cached.

A *mu-conditioned* model (trained on labels at several chemical potentials, docs/canonical.md)
has eps_i(descriptor_i, mu): Omega(S, mu) = sum_i eps_i, n_i = -d eps_i / d mu.  It simulates

* fixed filling (canonical): every evaluation solves N(S, mu*) = sum_i n_i = N_e for mu* and
  returns E = Omega(S, mu*) + mu* N_e and the fields at mu* (by the envelope theorem, -dE/dS);
* fixed mu: Omega(S, mu) and its fields.

    ff = MLForceField.load("runs/square-mu", expect_model=it.SDModel(lat, J=6.0, filling=0.485))
    E, h = ff.energy_and_fields(spins); ff.last_mu; ff.density(spins)
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch

from .._version import __version__
from ..lattice import Lattice
from ..model import SDModel
from ..spins import check_spins
from . import fastpath, files
from .fastpath import FastEvaluator
from .workers import WorkerPool
from .canonical import solve_chemical_potential
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
        Compile the fast path with ``torch.compile`` (its blocks and field table, and on lattices
        up to 48 x 48 the gradient through the fields; seconds to tens of seconds per block shape;
        1.1-3.4x faster on one CPU thread, slower with two threads: use ``workers`` for more
        cores; docs/performance.md).
    workers:
        CPU only: evaluate the fast path in this many single-threaded worker processes, each a
        share of the lattice (:mod:`itinerant.models.workers`; one per core; with ``compile`` the
        fastest CPU set-up for large lattices).  1 (default): in this process, with torch's threads.
    filling, mu:
        Mu-conditioned models only: the ensemble simulated, fixed ``filling`` (canonical: mu* is
        solved at every evaluation) or fixed chemical potential ``mu``; at most one.  Default: the
        training data's model.
    electron_tolerance:
        Canonical mode: mu* is accepted when ``|N(S, mu*) - N_e| <= electron_tolerance * N``.
    mu_margin:
        Mu-conditioned models: evaluating at a mu outside the training range ``mu_range`` warns, and
        more than ``mu_margin * (width of the range, at least 1)`` outside it is an error.
    """

    name = "ml"

    def __init__(self, net: SiteEnergyNet, metadata: dict, lattice: Lattice | None = None,
                 dtype="float64", device="cpu", max_batch: int = 64,
                 max_sites: int = 16384, fast: bool = True, compile: bool = False,
                 workers: int = 1, filling: float | None = None, mu: float | None = None,
                 electron_tolerance: float = 1e-6, mu_margin: float = 0.25) -> None:
        self.metadata = copy.deepcopy(metadata)
        self.parameters = model_parameters({**metadata["model"], "lattice": metadata["lattice"]})
        self.lattice_name = self.parameters["lattice"]
        self.dtype = _dtype(dtype)
        self.device = torch.device(device)
        self.max_batch = int(max_batch)
        self.max_sites = int(max_sites)
        self.fast, self.compile = bool(fast), bool(compile)
        self._evaluators: dict[int, FastEvaluator | WorkerPool] = {}
        if self.max_batch < 1 or self.max_sites < 1:
            raise ValueError(f"max_batch and max_sites must be >= 1, got {max_batch}, {max_sites}")
        if int(workers) != workers or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        if workers > 1 and self.device.type != "cpu":
            raise ValueError(f"workers > 1 evaluates on CPU cores; device is {self.device}")
        self.workers = int(workers)
        self.path = None
        self._weights = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        self.net = copy.deepcopy(net).to(device=self.device, dtype=self.dtype).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        if self.workers > 1 and not (self.fast and fastpath.supports(self.net)):
            raise ValueError("workers > 1 evaluates the fast path, which this force field does not "
                             "use (fast=False, or a network the fast path does not support)")
        self._descriptors: dict[int, torch.nn.Module] = {}
        if lattice is None:
            sizes = metadata.get("training", {}).get("sizes") or [metadata["model"].get("L")]
            lattice = Lattice.from_name(self.lattice_name, int(max(s for s in sizes if s)))
        self.lattice = self._check_lattice(lattice)
        self.descriptor(self.lattice)  # fails early if the lattice is too small
        if not (electron_tolerance > 0 and mu_margin >= 0):
            raise ValueError(f"need electron_tolerance > 0 and mu_margin >= 0, got "
                             f"{electron_tolerance}, {mu_margin}")
        self.electron_tolerance = float(electron_tolerance)
        self.mu_margin = float(mu_margin)
        self.ensemble = self._ensemble(filling, mu)
        self.last_mu = None
        """Chemical potential of the last evaluation (mu-conditioned models): float, or (M,)."""
        self._warm: dict[int, tuple[float, float | None]] = {}  # L -> (mu*, dN/dmu)

    # ------------------------------------------------------------------ construction and files
    @classmethod
    def new(cls, model: SDModel, cutoff: float, descriptor_options: dict | None = None,
            hidden=(64, 64), activation: str = "silu", length_channel: bool = True,
            seed: int = 0, mu_range=None, **kwargs) -> "MLForceField":
        """An untrained force field for ``model`` (random weights from ``seed``, no normalisation);
        ``mu_range=(lo, hi)`` makes it mu-conditioned."""
        from ..descriptors import Descriptor

        desc = Descriptor(model.lattice, cutoff, **(descriptor_options or {}))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = SiteEnergyNet(desc.n_features, hidden, activation, length_channel,
                                mu_range).double()
        return cls(net, build_metadata(model, desc.config(), net.config()), model.lattice, **kwargs)

    @classmethod
    def load(cls, name_or_path: str | Path, expect_model: SDModel | None = None,
             lattice: Lattice | None = None, **kwargs) -> "MLForceField":
        """Load a shipped model by name or a model directory / file by path.

        ``expect_model``: refuse (``ValueError``) unless the file is for this model's lattice kind,
        t, J, filling | mu and kT; the force field is then bound to ``expect_model.lattice``.  For
        a mu-conditioned model filling | mu are not compared: the force field simulates
        ``expect_model``'s ensemble (canonical at its filling, or at its mu).
        ``lattice``: bind to this lattice (its kind must match).  Other keyword arguments go to the
        constructor (``dtype``, ``device``, ``max_batch``, ``max_sites``, ``fast``, ``compile``,
        ``workers``, ``filling``, ``mu``, ``electron_tolerance``, ``mu_margin``).
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
            if net.mu_input and "filling" not in kwargs and "mu" not in kwargs:
                kwargs.update(filling=expect_model.filling, mu=expect_model.mu)
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
    def mu_conditioned(self) -> bool:
        """True if the local energies take the chemical potential as an input."""
        return self.net.mu_input

    @property
    def mu_range(self) -> tuple[float, float] | None:
        """The range of chemical potentials seen in training (mu-conditioned models)."""
        return self.net.mu_range

    @property
    def model(self) -> SDModel | None:
        """The s-d model this force field stands for on :attr:`lattice` (a mu-conditioned model:
        in its :attr:`ensemble`).

        ``None`` when the model has fixed filling and that filling gives a non-integer electron
        number on this lattice size.
        """
        p = {**self.parameters, **self._ensemble_parameters()}
        try:
            return SDModel(self.lattice, t=tuple(p["t"]), J=p["J"], filling=p.get("filling"),
                           mu=p.get("mu"), kT=p["kT"])
        except ValueError:
            return None

    def with_ensemble(self, filling: float | None = None, mu: float | None = None) -> "MLForceField":
        """The same mu-conditioned force field at fixed ``filling`` (canonical) or fixed ``mu``."""
        other = copy.copy(self)
        other.ensemble = self._ensemble(filling, mu)
        other._warm = {}
        other.last_mu = None
        return other

    def _ensemble(self, filling, mu) -> dict:
        if filling is not None and mu is not None:
            raise ValueError("give at most one of filling=... and mu=...")
        if not self.mu_conditioned:
            if filling is not None or mu is not None:
                raise ValueError("this force field has no chemical-potential input: it simulates "
                                 f"the ensemble it was trained in ({_describe(self.parameters)})")
            return {}
        if filling is not None:
            f = float(filling)
            if not 0.0 < f < 1.0:
                raise ValueError(f"filling must lie strictly between 0 and 1, got {f}")
            return {"filling": f}
        if mu is not None:
            m = float(mu)
            self._check_mu(np.array([m]))
            return {"mu": m}
        return {k: self.parameters[k] for k in ("filling", "mu") if k in self.parameters}

    def _ensemble_parameters(self) -> dict:
        """Parameters that replace filling | mu of the training data (mu-conditioned models)."""
        if not self.ensemble:
            return {}
        return {"filling": self.ensemble.get("filling"), "mu": self.ensemble.get("mu")}

    def on(self, lattice: Lattice) -> "MLForceField":
        """The same force field bound to ``lattice`` (same kind, large enough for the cutoff)."""
        other = copy.copy(self)
        other._warm = dict(self._warm)
        other.lattice = self._check_lattice(lattice)
        other.descriptor(other.lattice)
        return other

    def check_model(self, model, what: str = "this force field") -> None:
        """Raise ``ValueError`` unless ``model`` (SDModel or data-file attributes) is the model this
        force field was trained for (lattice kind, t, J, filling | mu, kT; any size; filling | mu
        not compared for a mu-conditioned model)."""
        _check_parameters(self.metadata, model, what)

    def settings(self) -> dict:
        """Solver name and model identity, stored with data produced by this force field."""
        out = {"solver": self.name, "ml_model": str(self.path or ""),
               "ml_weights_sha256": self.metadata.get("weights", {}).get("sha256", "")}
        if self.mu_conditioned:
            out.update(ml_mu_range=list(self.mu_range),
                       ml_ensemble="canonical" if "filling" in self.ensemble else "grand canonical",
                       ml_electron_tolerance=self.electron_tolerance)
        return out

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

    def _evaluator(self, lat: Lattice) -> FastEvaluator | WorkerPool:
        """The (cached) fast-path evaluator for an ``L x L`` lattice (a pool of worker processes
        when ``workers > 1``)."""
        if lat.L not in self._evaluators:
            opts = {"compile": self.compile, "max_block": self.max_sites}
            self._evaluators[lat.L] = (
                WorkerPool(self.descriptor(lat), self.workers, **opts) if self.workers > 1
                else FastEvaluator(self.descriptor(lat), **opts))
        return self._evaluators[lat.L]

    def close(self) -> None:
        """Stop this force field's worker processes, if any (``workers > 1``); later calls
        start new ones."""
        for evaluator in self._evaluators.values():
            if isinstance(evaluator, WorkerPool):
                evaluator.close()

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

        A mu-conditioned model returns, at fixed filling, E = Omega(S, mu*) + mu* N_e with mu*
        solved from N(S, mu*) = N_e (the free energy, as the exact solver at fixed filling) and the
        fields at mu*; at fixed mu, Omega(S, mu).  :attr:`last_mu` holds the mu used.
        """
        if self.mu_conditioned:
            st = self._ensemble_state(spins, normalize)
            return st["energy"], st["fields"]
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
        if self.mu_conditioned:
            return self.energy_and_fields(spins, normalize)[0]
        eps = self.site_energies(spins, normalize)
        return eps.sum(-1).item() if eps.ndim == 1 else eps.sum(-1)

    def site_energies(self, spins, normalize: bool = False) -> np.ndarray:
        """Local energies eps_i, shape (N,) or (M, N); they sum to the energy -- for a
        mu-conditioned model, the grand-potential densities eps_i(S, mu) at the ensemble's mu (mu*
        at fixed filling), which sum to Omega(S, mu)."""
        mu = None
        if self.mu_conditioned:
            mu = np.atleast_1d(self._ensemble_state(spins, normalize)["mu"])
        s, lat, single = self._prepare(spins, normalize)
        desc = self.descriptor(lat)
        out = []
        with torch.no_grad():
            for k0, x in zip(range(0, len(s), self._batch_size(lat)), self._batches(s, lat)):
                m = None if mu is None else self._site_mu(mu[k0:k0 + len(x)], lat)
                if lat.N <= self.max_sites:
                    parts = [site_energies(self.net, desc, x, mu=m)]
                else:
                    parts = [site_energies(self.net, desc, x,
                                           torch.arange(k, min(k + self.max_sites, lat.N),
                                                        device=self.device), mu=m)
                             for k in range(0, lat.N, self.max_sites)]
                out.append(torch.cat(parts, -1).cpu().double().numpy())
        eps = np.concatenate(out)
        return eps[0] if single else eps

    # ------------------------------------------------------------------ chemical potential
    def grand_potential(self, spins, mu, normalize: bool = False):
        """Omega(S, mu), fields -dOmega/dS and densities n_i = -d eps_i/d mu at the given ``mu``
        (a number, or one per configuration of a stack); mu-conditioned models only.

        ``spins`` (N, 3) gives ``(float, (N, 3), (N,))``; a stack (M, N, 3) gives
        ``((M,), (M, N, 3), (M, N))``.
        """
        self._need_mu("grand_potential")
        s, lat, single = self._prepare(spins, normalize)
        mu = np.array(np.broadcast_to(np.asarray(mu, dtype=np.float64), (len(s),)))
        self._check_mu(mu)
        out = self._evaluate_stack(s, lat, mu)
        if single:
            return out[0][0].item(), out[1][0], out[2][0]
        return out

    def density(self, spins, normalize: bool = False) -> np.ndarray:
        """Local electron density n_i = -d eps_i / d mu at the ensemble's mu (mu* at fixed
        filling), shape (N,) or (M, N); mu-conditioned models only."""
        self._need_mu("density")
        return self._ensemble_state(spins, normalize)["density"]

    def chemical_potential(self, spins, normalize: bool = False):
        """The chemical potential of the ensemble: mu* solved at fixed filling, the fixed mu
        otherwise (float, or (M,) for a stack); mu-conditioned models only."""
        self._need_mu("chemical_potential")
        return self._ensemble_state(spins, normalize)["mu"]

    def _need_mu(self, what: str) -> None:
        if not self.mu_conditioned:
            raise ValueError(f"{what} needs a mu-conditioned force field (trained on labels at "
                             f"several chemical potentials, docs/canonical.md); this one is not")

    def _check_mu(self, mu: np.ndarray) -> None:
        """Warn for mu outside the training range, fail beyond the margin."""
        lo, hi = self.mu_range
        margin = self.mu_margin * max(hi - lo, 1.0)
        out = np.maximum(lo - mu, mu - hi)
        if not np.isfinite(mu).all() or (out > margin).any():
            bad = float(mu[np.argmax(np.where(np.isfinite(mu), out, np.inf))])
            raise ValueError(f"mu = {bad:.6g} lies far outside the range of chemical potentials this "
                             f"force field was trained on, [{lo:.6g}, {hi:.6g}] (allowed margin "
                             f"{margin:.3g}): its energies and fields there are extrapolations")
        if (out > 0).any():
            bad = float(mu[np.argmax(out)])
            warnings.warn(f"mu = {bad:.6g} lies outside the range of chemical potentials this force "
                          f"field was trained on, [{lo:.6g}, {hi:.6g}]", RuntimeWarning,
                          stacklevel=3)

    def _site_mu(self, mu, lat: Lattice) -> torch.Tensor:
        """Per-configuration mu values as a per-site tensor (B, N)."""
        m = torch.as_tensor(np.asarray(mu, dtype=np.float64), dtype=self.dtype, device=self.device)
        return m[:, None].expand(len(m), lat.N).contiguous()

    def _evaluate(self, x: torch.Tensor, lat: Lattice, mu: np.ndarray):
        """Omega (B,), fields (B, N, 3), densities (B, N) of a batch at per-configuration mu."""
        m = self._site_mu(mu, lat)
        if self.fast and fastpath.supports(self.net):
            e, grad, dmu = self._evaluator(lat)(self.net, x, m)
            f, n = -grad, -dmu
        else:
            e, f, n = energy_and_fields(self.net, self.descriptor(lat), x, chunk=self.max_sites,
                                        mu=m)
        as_np = lambda t: t.detach().cpu().double().numpy()  # noqa: E731
        return as_np(e), as_np(f), as_np(n)

    def _evaluate_stack(self, s: np.ndarray, lat: Lattice, mu: np.ndarray):
        parts = [self._evaluate(x, lat, mu[k:k + len(x)])
                 for k, x in zip(range(0, len(s), self._batch_size(lat)), self._batches(s, lat))]
        return tuple(np.concatenate([p[j] for p in parts]) for j in range(3))

    def _ensemble_state(self, spins, normalize: bool) -> dict:
        """Energy, fields, density and mu in the ensemble (canonical: mu* solved per configuration)."""
        s, lat, single = self._prepare(spins, normalize)
        if "mu" in self.ensemble:
            mu = np.full(len(s), self.ensemble["mu"])
            energy, fields, density = self._evaluate_stack(s, lat, mu)
        else:
            n_e = self._electrons(lat)
            rows = [self._canonical(torch.as_tensor(x[None], dtype=self.dtype, device=self.device),
                                    lat, n_e) for x in s]
            mu = np.array([r[0] for r in rows])
            energy, fields, density = (np.concatenate([r[k] for r in rows]) for k in (1, 2, 3))
            energy = energy + mu * n_e  # E = Omega(mu*) + mu* N_e
        self.last_mu = float(mu[0]) if single else mu
        out = {"energy": energy, "fields": fields, "density": density, "mu": mu}
        if single:
            out = {k: (v[0].item() if v.ndim == 1 else v[0]) for k, v in out.items()}
        return out

    def _electrons(self, lat: Lattice) -> int:
        f = self.ensemble["filling"]
        ne = f * 2 * lat.N
        if abs(ne - round(ne)) > 1e-9 * 2 * lat.N:
            raise ValueError(f"filling {f} on {lat} gives {ne:.6g} electrons, not an integer")
        return int(round(ne))

    def _canonical(self, x: torch.Tensor, lat: Lattice, n_electrons: int):
        """mu*, Omega (1,), fields (1, N, 3), densities (1, N) of one configuration at fixed N_e."""
        guess, slope = self._warm.get(lat.L, (float(self.net.mu_mean), None))

        def count(mu):
            out = self._evaluate(x, lat, np.array([mu]))
            return float(out[2].sum()), out

        mu, out, slope, _ = solve_chemical_potential(count, n_electrons, guess, self.mu_range,
                                                     self.electron_tolerance * lat.N, slope)
        self._warm[lat.L] = (mu, slope)
        return (mu, *out)

    def _batch_size(self, lat: Lattice) -> int:
        return max(1, min(self.max_batch, self.max_sites // lat.N))

    def _batches(self, s: np.ndarray, lat: Lattice):
        """Snapshots as tensors, as many at a time as ``max_batch`` and ``max_sites`` allow."""
        per = self._batch_size(lat)
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
        p = self.parameters
        if self.mu_conditioned:
            p = {**{k: v for k, v in p.items() if k not in ("filling", "mu")}, **self.ensemble}
        mu = (f", mu-conditioned on [{self.mu_range[0]:.6g}, {self.mu_range[1]:.6g}]"
              if self.mu_conditioned else "")
        return (f"MLForceField({_describe(p)}{mu}, cutoff={self.cutoff}, "
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
    mu_conditioned = meta.get("network", {}).get("mu_range") is not None
    diffs = parameter_differences(mine, model, ensemble=not mu_conditioned)
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
