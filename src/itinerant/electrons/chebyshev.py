"""Chebyshev expansions of the Fermi function and the grand potential (kernel polynomial method).

The Hamiltonian is rescaled to ``X = H / a`` with spectrum inside [-1, 1] (``a`` = half-width bound,
energies in units of t1).  A function of the levels is expanded as

    phi(e = a x) = sum_{m<M} c_m T_m(x),     Tr phi(H) ~ sum_m g_m c_m mu_m,     mu_m = Tr T_m(X),

with damping factors ``g_m`` of the kernel (Weisse et al., Rev. Mod. Phys. 78, 275 (2006)):

* ``"jackson"``: g_m > 0, a positive kernel; the smoothed density of states is a sum of bumps of width
  ``sigma ~ pi a / M`` around each level, so the step function at kT = 0 is well defined;
* ``"none"``: g_m = 1, the truncated series of a smooth function, exponentially convergent for kT > 0
  (coefficients fall like exp(-pi kT m / a)), not allowed at kT = 0 (Gibbs oscillations).

The two functions expanded are the occupation f(e) = 1/(exp((e - mu)/kT) + 1) and the grand-potential
density g(e) = -kT ln(1 + exp(-(e - mu)/kT)) (kT = 0: (e - mu) step(mu - e)); dg/dmu = -f holds for the
coefficients too, so the Chebyshev estimates obey dOmega/dmu = -N exactly.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft
from scipy.optimize import brentq

KERNELS = ("jackson", "none")


def kernel_damping(kernel: str, M: int) -> np.ndarray:
    """Damping factors g_m, m = 0..M-1, of ``kernel`` (``"jackson"`` or ``"none"``)."""
    if kernel == "none":
        return np.ones(M)
    if kernel == "jackson":
        q = math.pi / (M + 1)
        m = np.arange(M)
        return ((M - m + 1) * np.cos(q * m) + np.sin(q * m) / math.tan(q)) / (M + 1)
    raise ValueError(f"unknown kernel {kernel!r}; known: {KERNELS}")


def jackson_resolution(M: int, half_width: float) -> float:
    """Energy resolution pi a / M of the Jackson kernel at the band centre (its Gaussian width)."""
    return math.pi * half_width / M


def step_coefficients(M: int, x_mu: float):
    """Chebyshev coefficients of f(x) = step(x_mu - x) and g(x) = (x - x_mu) step(x_mu - x) on [-1, 1].

    Exact (no quadrature): with x = cos(theta), x_mu = cos(phi) and I_m = int_phi^pi cos(m theta),
    c^f_m = (2 - delta_m0) I_m / pi and c^g_m = (2 - delta_m0) [(I_{m+1} + I_{|m-1|})/2 - x_mu I_m] / pi.
    """
    phi = math.acos(min(1.0, max(-1.0, x_mu)))
    m = np.arange(M + 1)
    I = np.empty(M + 1)
    I[0] = math.pi - phi
    I[1:] = -np.sin(m[1:] * phi) / m[1:]
    norm = np.where(m[:M] == 0, 1.0, 2.0) / math.pi
    cf = norm * I[:M]
    below = np.concatenate([[I[1]], I[: M - 1]])  # I_{|m-1|}
    cg = norm * (0.5 * (I[1 : M + 1] + below) - x_mu * I[:M])
    return cf, cg


def quadrature_coefficients(values: np.ndarray, M: int) -> np.ndarray:
    """Chebyshev coefficients c_0..c_{M-1} from values at the K Chebyshev-Gauss nodes (DCT-II).

    ``values[k] = phi(cos(pi (k + 1/2) / K))``; aliasing error ~ |c_{2K-M}|.
    """
    K = values.shape[-1]
    c = scipy.fft.dct(values, type=2, axis=-1)[..., :M] / K
    c[..., 0] *= 0.5
    return c


class FermiSeries:
    """Occupation and grand-potential expansions at temperature ``kT`` on the spectrum [-a, a].

    Parameters
    ----------
    half_width: the scale ``a`` (energies e = a x).
    kT: electron temperature (>= 0).
    M: number of Chebyshev moments.
    kernel: ``"jackson"`` or ``"none"``.
    """

    def __init__(self, half_width: float, kT: float, M: int, kernel: str):
        self.a, self.kT, self.M = float(half_width), float(kT), int(M)
        self.damping = kernel_damping(kernel, self.M)
        if self.kT > 0:
            # Enough nodes that aliasing (coefficients ~ exp(-pi kT m / a)) is below 1e-16.
            K = max(4 * self.M, int(math.ceil(12 * self.a / self.kT)), 256)
            self.K = scipy.fft.next_fast_len(K)
            self.nodes = self.a * np.cos(math.pi * (np.arange(self.K) + 0.5) / self.K)

    def coefficients(self, mu: float):
        """Kernel-damped coefficients ``(c^f, c^g)`` of f and g (energy units) at chemical potential mu."""
        if self.kT == 0:
            cf, cg = step_coefficients(self.M, mu / self.a)
            cg = self.a * cg
        else:
            z = -(self.nodes - mu) / self.kT
            f = 0.5 * (1.0 + np.tanh(0.5 * z))
            g = -self.kT * np.logaddexp(0.0, z)
            cf, cg = quadrature_coefficients(np.stack([f, g]), self.M)
        return self.damping * cf, self.damping * cg

    def number(self, moments: np.ndarray, mu: float) -> float:
        """Electron number estimate sum_m g_m c^f_m mu_m."""
        return float(self.coefficients(mu)[0] @ moments)

    def solve_mu(self, moments: np.ndarray, n_electrons: float) -> float:
        """Chemical potential with ``number(moments, mu) == n_electrons`` (Brent's method).

        The Jackson-damped number is monotone in mu (positive kernel); the undamped one is up to
        exponentially small ripples.
        """
        pad = 40 * self.kT
        lo, hi = -self.a - pad, self.a + pad
        fn = lambda mu: self.number(moments, mu) - n_electrons  # noqa: E731
        if fn(lo) >= 0 or fn(hi) <= 0:
            raise ValueError(f"cannot place {n_electrons} electrons: the estimated total number of "
                             f"states is {moments[0]:.6g}")
        return brentq(fn, lo, hi, xtol=1e-14 * self.a, maxiter=500)
