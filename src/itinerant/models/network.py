"""The local-energy network: E = sum_i eps_i, eps_i = shift + scale * MLP(x_i).

The input of site ``i`` is its descriptor ``d_i`` (shape (F,), from :mod:`itinerant.descriptors`),
standardised with the training-set mean and standard deviation, and optionally the *length
channel* ``|S_i|^2 - 1``.  It is zero on unit spins, so it changes no energy of a physical
configuration; it lets the network represent the exact field's component along S_i,
``h_i . S_i = J S_i . <sigma_i>`` (J times the local moment, the derivative of the s-d energy with
respect to the length of S_i).  Without it that component is tied to the derivatives along the
bond invariants ``S_j . S_k``, and fitting all components spoils the transverse field that drives
LLG (measured, square 8x8, J = 4, half filling, 30 epochs: transverse R^2 = -16 without the
channel, 0.92 with it).

*Chemical-potential input* (``mu_range`` given): the network also takes the chemical potential,
standardised, ``(mu - mu_mean) / mu_std``, as one more input of every site, so ``eps_i(d_i, mu)`` is
a grand-potential density: Omega(S, mu) = sum_i eps_i and n_i = -d eps_i / d mu (per-site mu
tensors make that derivative per site).  ``mu_range`` is the interval of chemical potentials seen in
training (docs/canonical.md).

Shapes: features (..., N, F), spins (..., N, 3), site energies (..., N), energies (...,);
mu (...,) per configuration or (..., N) per site.
Units: energies and fields in units of t1.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS = {"silu": nn.SiLU, "tanh": nn.Tanh, "softplus": nn.Softplus, "gelu": nn.GELU}
"""Smooth activations (the fields are derivatives of the energy, so the network must be smooth)."""


class SiteEnergyNet(nn.Module):
    """Multilayer perceptron from a site's (standardised) descriptor to its local energy eps_i.

    Parameters
    ----------
    n_features:
        Descriptor length F.
    hidden:
        Widths of the hidden layers.
    activation:
        One of :data:`ACTIVATIONS`.
    length_channel:
        Feed ``|S_i|^2 - 1`` as an extra input (see the module docstring).

    mu_range:
        ``(mu_min, mu_max)``: take the chemical potential as an input (see the module docstring);
        ``None`` (default): no mu input.

    Buffers (set from training data with :meth:`set_normalisation`, stored in model files):
    ``feature_mean``, ``feature_std`` (F,), ``energy_shift``, ``energy_scale`` (scalars):
    ``eps_i = energy_shift + energy_scale * MLP(...)``; with a mu input also ``mu_mean``,
    ``mu_std`` (scalars).
    """

    def __init__(self, n_features: int, hidden=(64, 64), activation: str = "silu",
                 length_channel: bool = True, mu_range=None) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; known: {sorted(ACTIVATIONS)}")
        hidden = [int(h) for h in hidden]
        if int(n_features) < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"layer widths must be positive, got n_features={n_features}, "
                             f"hidden={hidden}")
        self.n_features = int(n_features)
        self.hidden = hidden
        self.activation = activation
        self.length_channel = bool(length_channel)
        self.mu_range = _mu_range(mu_range)
        widths = [self.n_features + self.length_channel + self.mu_input, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(widths[-1], 1))
        self.mlp = nn.Sequential(*layers)
        self.register_buffer("feature_mean", torch.zeros(self.n_features))
        self.register_buffer("feature_std", torch.ones(self.n_features))
        self.register_buffer("energy_shift", torch.zeros(()))
        self.register_buffer("energy_scale", torch.ones(()))
        if self.mu_input:
            lo, hi = self.mu_range
            self.register_buffer("mu_mean", torch.full((), 0.5 * (lo + hi)))
            self.register_buffer("mu_std", torch.full((), max(0.5 * (hi - lo), 1e-3)))

    @property
    def mu_input(self) -> bool:
        """True if the network takes the chemical potential as an input."""
        return self.mu_range is not None

    def config(self) -> dict:
        """JSON-able settings that rebuild the (untrained) network."""
        cfg = {"n_features": self.n_features, "hidden": list(self.hidden),
               "activation": self.activation, "length_channel": self.length_channel}
        if self.mu_input:
            cfg["mu_range"] = list(self.mu_range)
        return cfg

    @classmethod
    def from_config(cls, cfg: dict) -> "SiteEnergyNet":
        return cls(cfg["n_features"], cfg["hidden"], cfg["activation"], cfg["length_channel"],
                   cfg.get("mu_range"))

    @torch.no_grad()
    def set_normalisation(self, mean, std, energy_shift: float, energy_scale: float,
                          mu_mean: float | None = None, mu_std: float | None = None) -> None:
        """Feature standardisation and output scale; features with ``std ~ 0`` are only centred.

        ``mu_mean``, ``mu_std``: standardisation of the mu input (networks with one; a ``mu_std``
        near 0, a single chemical potential, keeps the default scale).
        """
        mean = torch.as_tensor(mean, dtype=self.feature_mean.dtype)
        std = torch.as_tensor(std, dtype=self.feature_std.dtype)
        if mean.shape != (self.n_features,) or std.shape != (self.n_features,):
            raise ValueError(f"normalisation needs shape ({self.n_features},), got {tuple(mean.shape)}"
                             f" and {tuple(std.shape)}")
        if not energy_scale > 0:
            raise ValueError(f"energy_scale must be > 0, got {energy_scale}")
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(torch.where(std > 1e-8 * (1 + mean.abs()), std, torch.ones_like(std)))
        self.energy_shift.fill_(float(energy_shift))
        self.energy_scale.fill_(float(energy_scale))
        if self.mu_input:
            if mu_mean is not None:
                self.mu_mean.fill_(float(mu_mean))
            if mu_std is not None and mu_std > 1e-8 * (1 + abs(float(self.mu_mean))):
                self.mu_std.fill_(float(mu_std))
        elif mu_mean is not None or mu_std is not None:
            raise ValueError("this network has no mu input to standardise")

    def forward(self, features: torch.Tensor, spins: torch.Tensor,
                mu: torch.Tensor | None = None) -> torch.Tensor:
        """Site energies eps_i, shape (..., N), from features (..., N, F) and spins (..., N, 3);
        ``mu`` (per site (..., N), or broadcastable to it) for a network with a mu input."""
        x = (features - self.feature_mean) / self.feature_std
        if self.length_channel:
            x = torch.cat([x, (spins * spins).sum(-1, keepdim=True) - 1.0], dim=-1)
        if self.mu_input:
            if mu is None:
                raise ValueError("this network takes the chemical potential as an input: pass mu")
            m = torch.as_tensor(mu, dtype=x.dtype, device=x.device)
            m = torch.broadcast_to(m, x.shape[:-1])
            x = torch.cat([x, ((m - self.mu_mean) / self.mu_std)[..., None]], dim=-1)
        elif mu is not None:
            raise ValueError("this network has no chemical-potential input; do not pass mu")
        return self.energy_shift + self.energy_scale * self.mlp(x).squeeze(-1)


def _mu_range(mu_range):
    if mu_range is None:
        return None
    lo, hi = (float(x) for x in mu_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"mu_range must be two finite numbers lo <= hi, got {mu_range!r}")
    return (lo, hi)


def site_mu(mu, spins: torch.Tensor) -> torch.Tensor:
    """A chemical potential per configuration (shape ``spins.shape[:-2]``, or a scalar) or per
    site (``spins.shape[:-1]``) as a per-site tensor of shape ``spins.shape[:-1]``."""
    m = torch.as_tensor(mu, dtype=spins.dtype, device=spins.device)
    if m.shape == spins.shape[:-1]:
        return m
    if m.ndim == 0 or m.shape == spins.shape[:-2]:
        return m.reshape(*m.shape, 1).expand(spins.shape[:-1])
    raise ValueError(f"mu must have shape {tuple(spins.shape[:-2])} (per configuration) or "
                     f"{tuple(spins.shape[:-1])} (per site), got {tuple(m.shape)}")


def site_energies(net, descriptor, spins: torch.Tensor, sites=None, mu=None) -> torch.Tensor:
    """eps_i for spins (..., N, 3): shape (..., N), or (..., len(sites)) for the centres ``sites``.

    ``net`` may be a DDP wrapper of the network.  ``mu``: per configuration or per site
    (:func:`site_mu`), for a network with a mu input.
    """
    if mu is not None:
        mu = site_mu(mu, spins)
    if sites is None:
        return net(descriptor(spins), spins) if mu is None else net(descriptor(spins), spins, mu)
    if mu is None:
        return net(descriptor(spins, sites), spins[..., sites, :])
    return net(descriptor(spins, sites), spins[..., sites, :], mu[..., sites])


def energy_and_fields(net, descriptor, spins: torch.Tensor, create_graph: bool = False,
                      chunk: int | None = None, mu=None):
    """Total energy (...,) and fields h = -dE/dS (..., N, 3) by automatic differentiation.

    ``create_graph=True`` keeps the graph of the fields, so a loss on them can be back-propagated to
    the network parameters (training).  ``chunk``: evaluate the site energies of at most this many
    centres at a time and accumulate their gradients (bounded memory on large lattices; the
    result is the same).  ``spins`` is not modified.

    With ``mu`` (a network with a mu input; per configuration or per site) the energy is the grand
    potential Omega(S, mu) and a third result is returned: the densities n_i = -d eps_i / d mu,
    shape (..., N).
    """
    if mu is not None:
        return _grand_energy_fields(net, descriptor, spins, mu, create_graph, chunk)
    s = spins.detach().requires_grad_(True)
    N = s.shape[-2]
    with torch.enable_grad():
        if chunk is None or N <= chunk:
            energy = site_energies(net, descriptor, s).sum(-1)
            (grad,) = torch.autograd.grad(energy.sum(), s, create_graph=create_graph)
            return energy, -grad
        energy, grad = 0.0, torch.zeros_like(s)
        for start in range(0, N, chunk):
            sites = torch.arange(start, min(start + chunk, N), device=s.device)
            e = site_energies(net, descriptor, s, sites).sum(-1)
            (g,) = torch.autograd.grad(e.sum(), s, create_graph=create_graph)
            energy, grad = energy + (e if create_graph else e.detach()), grad + g
        return energy, -grad


def _grand_energy_fields(net, descriptor, spins, mu, create_graph, chunk):
    """Omega (...,), h (..., N, 3) and n (..., N) at per-site chemical potentials (autograd)."""
    s = spins.detach().requires_grad_(True)
    m = site_mu(mu, s).detach().clone().requires_grad_(True)
    N = s.shape[-2]
    with torch.enable_grad():
        if chunk is None or N <= chunk:
            energy = site_energies(net, descriptor, s, mu=m).sum(-1)
            gs, gm = torch.autograd.grad(energy.sum(), (s, m), create_graph=create_graph)
            return energy, -gs, -gm
        energy, gs, gm = 0.0, torch.zeros_like(s), torch.zeros_like(m)
        for start in range(0, N, chunk):
            sites = torch.arange(start, min(start + chunk, N), device=s.device)
            e = site_energies(net, descriptor, s, sites, mu=m).sum(-1)
            a, b = torch.autograd.grad(e.sum(), (s, m), create_graph=create_graph)
            energy = energy + (e if create_graph else e.detach())
            gs, gm = gs + a, gm + b
        return energy, -gs, -gm
