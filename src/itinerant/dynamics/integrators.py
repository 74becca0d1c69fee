"""Norm-preserving integrators of the (stochastic) Landau-Lifshitz-Gilbert equation.

The equation (DESIGN.md §2, dimensionless time) is

    dS/dt = - S x H - alpha S x (S x H),        H = h(S) + xi,

which is a rotation of every spin about its own precession vector:

    dS/dt = Omega x S,        Omega = H + alpha S x H.

Each integrator is a plain function (JAX-MD style)

    new_spins = step(spins, h, fields, dt, alpha, xi)

of the spins ``(N, 3)``, the fields ``h = h(spins)`` already known at the start of the step, a
function ``fields(spins) -> (N, 3)`` that evaluates the fields at other points, the time step, the
damping and a noise field ``xi`` (``(N, 3)`` or ``None``).  The noise is held fixed during the step,
so every scheme here converges to the Stratonovich solution (Wong-Zakai), which is the
interpretation under which the thermostat of :mod:`.noise` gives the Boltzmann distribution.

Intermediate points of a step are not exactly unit vectors; ``fields`` is then called with the
normalised point, which is a smooth extension of the equation off the sphere and keeps each
scheme's order.  ``STEPPERS[name].evaluations`` is the number of field evaluations a step costs
(counting the one at the start of the step, which the caller reuses from the previous step).

References: J. H. Mentink et al., J. Phys.: Condens. Matter 22, 176001 (2010) (semi-implicit
midpoint scheme, SIB); P. Depondt and F. G. Mertens, J. Phys.: Condens. Matter 21, 336005 (2009)
(Heun with rotations).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

FieldFn = Callable[[np.ndarray], np.ndarray]


# ---------------------------------------------------------------------- building blocks
def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross product of (N, 3) arrays (``np.cross`` without its axis handling overhead)."""
    out = np.empty_like(a)
    out[:, 0] = a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1]
    out[:, 1] = a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2]
    out[:, 2] = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    return out


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)[:, None]


def _sinc(x: np.ndarray) -> np.ndarray:
    """sin(x)/x, 1 at x = 0."""
    out = np.ones_like(x)
    np.divide(np.sin(x), x, out=out, where=x != 0)
    return out


def precession_vector(spins: np.ndarray, H: np.ndarray, alpha: float) -> np.ndarray:
    """Omega = H + alpha S x H, so that the LLG right-hand side is Omega x S.  Shapes (N, 3)."""
    if alpha == 0.0:
        return H
    return H + alpha * cross(spins, H)


def llg_rhs(spins: np.ndarray, H: np.ndarray, alpha: float) -> np.ndarray:
    """dS/dt = -S x H - alpha S x (S x H) for effective fields ``H`` (N, 3)."""
    return cross(precession_vector(spins, H, alpha), spins)


def cayley(spins: np.ndarray, omega: np.ndarray, dt: float) -> np.ndarray:
    """Solve ``S' = S + dt Omega x (S + S')/2`` for fixed ``Omega`` (the Cayley transform).

    With ``a = dt Omega / 2`` the solution is
    ``S' = [(1 - a^2) S + 2 a x S + 2 (a.S) a] / (1 + a^2)``, a rotation: ``|S'| = |S|`` exactly.
    """
    a = 0.5 * dt * omega
    a2 = _dot(a, a)
    return ((1.0 - a2) * spins + 2.0 * cross(a, spins) + 2.0 * _dot(a, spins) * a) / (1.0 + a2)


def rotate(spins: np.ndarray, omega: np.ndarray, dt: float) -> np.ndarray:
    """Rotate each spin about ``omega`` by the angle ``|omega| dt`` (Rodrigues), ``exp(dt [omega x]) S``."""
    theta = dt * np.sqrt(_dot(omega, omega))
    c1 = dt * _sinc(theta)  # dt sin(theta)/theta
    c2 = 0.5 * dt * dt * _sinc(0.5 * theta) ** 2  # dt^2 (1 - cos theta)/theta^2, no cancellation
    return np.cos(theta) * spins + c1 * cross(omega, spins) + c2 * _dot(omega, spins) * omega


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _with_noise(h: np.ndarray, xi) -> np.ndarray:
    return h if xi is None else h + xi


# ---------------------------------------------------------------------- schemes
def sib_step(spins, h, fields: FieldFn, dt: float, alpha: float, xi=None) -> np.ndarray:
    """Semi-implicit midpoint step (Mentink et al. 2010, "SIB"), 2 field evaluations.

    Predictor: Cayley step with Omega at ``S_n``.  Corrector: Cayley step with Omega at the
    midpoint ``M = (S_n + S~)/2``, i.e. ``S_{n+1} = S_n + dt Omega(M) x (S_n + S_{n+1})/2``.
    Second order for deterministic dynamics, norm preserving to round-off, Stratonovich-consistent.
    """
    pred = cayley(spins, precession_vector(spins, _with_noise(h, xi), alpha), dt)
    mid = 0.5 * (spins + pred)
    H_mid = _with_noise(fields(_unit(mid)), xi)
    return cayley(spins, precession_vector(mid, H_mid, alpha), dt)


def heun_step(spins, h, fields: FieldFn, dt: float, alpha: float, xi=None) -> np.ndarray:
    """Heun scheme with rotations (Depondt & Mertens 2009), 2 field evaluations.

    Predictor ``S~ = R(Omega(S_n) dt) S_n``; corrector ``S_{n+1} = R((Omega(S_n) + Omega(S~)) dt/2) S_n``
    with ``R`` the exact rotation.  Second order, norm preserving, Stratonovich-consistent.
    """
    om0 = precession_vector(spins, _with_noise(h, xi), alpha)
    pred = rotate(spins, om0, dt)
    om1 = precession_vector(pred, _with_noise(fields(pred), xi), alpha)
    return rotate(spins, 0.5 * (om0 + om1), dt)


def rk4_step(spins, h, fields: FieldFn, dt: float, alpha: float, xi=None) -> np.ndarray:
    """Classical Runge-Kutta step followed by projection onto |S| = 1; 4 field evaluations.

    Fourth order for deterministic dynamics (the reference); with the noise held fixed it is a
    Stratonovich scheme of weak order 1 like the others.
    """
    def f(s, hs):
        return llg_rhs(s, _with_noise(hs, xi), alpha)

    k1 = f(spins, h)
    s2 = spins + 0.5 * dt * k1
    k2 = f(s2, fields(_unit(s2)))
    s3 = spins + 0.5 * dt * k2
    k3 = f(s3, fields(_unit(s3)))
    s4 = spins + dt * k3
    k4 = f(s4, fields(_unit(s4)))
    return _unit(spins + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4))


@dataclass(frozen=True)
class Stepper:
    """An integrator: its step function, field evaluations per step and deterministic order."""

    name: str
    step: Callable
    evaluations: int
    order: int


STEPPERS = {
    "sib": Stepper("sib", sib_step, evaluations=2, order=2),
    "heun": Stepper("heun", heun_step, evaluations=2, order=2),
    "rk4": Stepper("rk4", rk4_step, evaluations=4, order=4),
}
"""The integrators by name."""


def get_stepper(name: str) -> Stepper:
    if name not in STEPPERS:
        raise ValueError(f"unknown integrator {name!r}; known: {sorted(STEPPERS)}")
    return STEPPERS[name]
