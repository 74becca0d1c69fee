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

Shapes: features (..., N, F), spins (..., N, 3), site energies (..., N), energies (...,).
Units: energies and fields in units of t1.
"""

from __future__ import annotations

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

    Buffers (set from training data with :meth:`set_normalisation`, stored in model files):
    ``feature_mean``, ``feature_std`` (F,), ``energy_shift``, ``energy_scale`` (scalars):
    ``eps_i = energy_shift + energy_scale * MLP(...)``.
    """

    def __init__(self, n_features: int, hidden=(64, 64), activation: str = "silu",
                 length_channel: bool = True) -> None:
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
        widths = [self.n_features + self.length_channel, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(widths[-1], 1))
        self.mlp = nn.Sequential(*layers)
        self.register_buffer("feature_mean", torch.zeros(self.n_features))
        self.register_buffer("feature_std", torch.ones(self.n_features))
        self.register_buffer("energy_shift", torch.zeros(()))
        self.register_buffer("energy_scale", torch.ones(()))

    def config(self) -> dict:
        """JSON-able settings that rebuild the (untrained) network."""
        return {"n_features": self.n_features, "hidden": list(self.hidden),
                "activation": self.activation, "length_channel": self.length_channel}

    @classmethod
    def from_config(cls, cfg: dict) -> "SiteEnergyNet":
        return cls(cfg["n_features"], cfg["hidden"], cfg["activation"], cfg["length_channel"])

    @torch.no_grad()
    def set_normalisation(self, mean, std, energy_shift: float, energy_scale: float) -> None:
        """Feature standardisation and output scale; features with ``std ~ 0`` are only centred."""
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

    def forward(self, features: torch.Tensor, spins: torch.Tensor) -> torch.Tensor:
        """Site energies eps_i, shape (..., N), from features (..., N, F) and spins (..., N, 3)."""
        x = (features - self.feature_mean) / self.feature_std
        if self.length_channel:
            x = torch.cat([x, (spins * spins).sum(-1, keepdim=True) - 1.0], dim=-1)
        return self.energy_shift + self.energy_scale * self.mlp(x).squeeze(-1)


def site_energies(net, descriptor, spins: torch.Tensor, sites=None) -> torch.Tensor:
    """eps_i for spins (..., N, 3): shape (..., N), or (..., len(sites)) for the centres ``sites``.

    ``net`` may be a DDP wrapper of the network.
    """
    if sites is None:
        return net(descriptor(spins), spins)
    return net(descriptor(spins, sites), spins[..., sites, :])


def energy_and_fields(net, descriptor, spins: torch.Tensor, create_graph: bool = False,
                      chunk: int | None = None):
    """Total energy (...,) and fields h = -dE/dS (..., N, 3) by automatic differentiation.

    ``create_graph=True`` keeps the graph of the fields, so a loss on them can be back-propagated to
    the network parameters (training).  ``chunk``: evaluate the site energies of at most this many
    centres at a time and accumulate their gradients (bounded memory on large lattices; the
    result is the same).  ``spins`` is not modified.
    """
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
