"""Langevin thermostat: the Gaussian white-noise field of the stochastic LLG equation.

The LLG equation of DESIGN.md §2 with a stochastic field ``xi`` added to the exchange field,

    dS/dt = - S x (h + xi) - alpha S x (S x (h + xi)),
    < xi_a(t) xi_b(t') > = sigma^2 delta_ab delta(t - t'),

has the Boltzmann distribution ``exp(-E/kT)`` on the unit sphere as its stationary state when

    sigma^2 = 2 alpha kT / (1 + alpha^2).

Derivation (Stratonovich, one spin; the N-spin case is the same site by site).  Write
``X = [S x]`` (so ``-S x v = -X v``) and ``-alpha S x (S x v) = alpha P v`` with the tangent
projector ``P = 1 - S S^T``.  The equation is ``dS = B (h dt + sigma dW)`` with ``B = -X + alpha P``.
For ``|S| = 1``: ``X^T = -X``, ``-X^2 = P``, ``X P = P X = X``, hence

    B B^T = (-X + alpha P)(X + alpha P) = -X^2 + alpha (P X - X P) + alpha^2 P = (1 + alpha^2) P.

So the noise is an isotropic diffusion on the sphere with diffusion constant
``D = (1 + alpha^2) sigma^2 / 2``.  Its Stratonovich (noise-induced) drift
``sigma^2/2 sum_k (B_k . grad) B_k`` (``B_k`` the columns of ``B``) works out to
``-(1 + alpha^2) sigma^2 S``: radial only (it keeps ``|S| = 1`` in the Ito form), nothing along
the sphere.  The drift is the precession ``-S x h``, which
conserves ``E`` and the sphere's measure, plus the damping ``alpha P h = -alpha grad_S E``.  The
Fokker-Planck current of the density ``rho`` is then ``-alpha rho grad E - D grad rho`` (plus a
divergence-free precession part); it vanishes for ``rho ~ exp(-E/kT)`` iff ``D = alpha kT``, which
gives ``sigma^2 = 2 alpha kT / (1 + alpha^2)`` (the Einstein relation D = mobility * kT).
Equivalently: this LL form is the Gilbert equation with gyromagnetic ratio ``1 + alpha^2``, whose
noise variance is ``2 alpha kT / gamma`` (Brown 1963; Garcia-Palacios & Lazaro 1998).

Discretised with a step ``dt`` and the noise held fixed during the step, ``xi`` is drawn as
``sqrt(sigma^2 / dt) * N(0, 1)`` independently per site, component and step.
"""

from __future__ import annotations

import math

import numpy as np


def noise_variance(alpha: float, kT: float) -> float:
    """sigma^2 = 2 alpha kT / (1 + alpha^2): strength of the white-noise field (per unit time)."""
    if alpha < 0 or kT < 0:
        raise ValueError(f"alpha and kT must be >= 0, got alpha = {alpha}, kT = {kT}")
    return 2.0 * alpha * kT / (1.0 + alpha * alpha)


class ThermalNoise:
    """Noise fields for successive steps, drawn from one reproducible random generator.

    Parameters
    ----------
    alpha, kT, dt:
        Damping, spin temperature (units of t1) and time step.
    rng:
        A ``numpy.random.Generator``; its bit-generator state is what a checkpoint saves.
    """

    def __init__(self, alpha: float, kT: float, dt: float, rng: np.random.Generator) -> None:
        self.rng = rng
        self.scale = math.sqrt(noise_variance(alpha, kT) / dt)

    @property
    def active(self) -> bool:
        return self.scale > 0.0

    def draw(self, n_sites: int) -> np.ndarray | None:
        """The noise field for one step, shape (n_sites, 3), or ``None`` at zero temperature."""
        if not self.active:
            return None
        return self.scale * self.rng.standard_normal((n_sites, 3))
