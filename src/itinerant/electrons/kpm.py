"""Kernel polynomial method (KPM): energy and exact-gradient exchange fields in O(N M R).

The energy is the Chebyshev estimate of the grand potential (fixed mu) or of the free energy
F = Omega + mu N_e with mu solved from the same moments (fixed filling), DESIGN.md §2:

    Omega_est = sum_{m<M} w_m mu_m,   mu_m = (1/P) sum_r <r| T_m(X) |r>,   X = H / a,

with coefficients w_m = g_m c^g_m (:mod:`.chebyshev`) and a stochastic trace over R vectors |r>
(P independent sign patterns, below).
The fields are the exact gradient of this estimate (for the same vectors) with respect to the on-site
2x2 blocks: writing x_m = T_m(X) r and y_k = sum_{n>k} w_n U_{n-1-k}(X) r (Chebyshev polynomials of
the second kind), a first-order change of X gives

    dOmega_est = sum_r [ y_0^+ dX x_0 + 2 sum_{k>=1} y_k^+ dX x_k ],

so the on-site blocks of the one-body density matrix are G_i[s, s'] = (1/a) sum_k c'_k conj(y_k(is))
x_k(is') and h_i = J Tr(sigma G_i) (Barros & Kato, PRB 88, 235101 (2013)).  y obeys the backward
recursion y_k = w_{k+1} r + 2 X y_{k+1} - y_{k+2}, and the x_k are regenerated backwards from the last
two, x_{k-1} = 2 X x_k - x_{k+1}, so memory is O(N R) (no stored Chebyshev vectors); cost about
3 M sparse products.  At fixed filling dF/dmu = N_e - N_est(mu) = 0 at the solved mu, so the fields
are the fixed-mu gradient.

Trace estimators (``estimator=``).  Every vector is a sign pattern on one set of sites in one spin
component, v(i, s') = delta_{s s'} [colour_i = c] eps_i with random eps_i = +-1 shared by both spin
components, so sum_s v v^+ = (p p^T) x 1_2 commutes with global spin rotations and is real: the
estimated energy is exactly invariant under O(3) spin rotations (time reversal included) and the
fields rotate with the spins.  Unbiased: E[sum v v^+] = 1.

* ``"probing"``: sites are coloured so that sites sharing a colour are farther apart than
  ``distance``; one vector per (colour, spin).  The error of a local quantity comes only from
  density-matrix elements between sites beyond ``distance`` (Tang & Saad's probing, with random
  signs); ``vectors`` independent sign patterns average it further.
* ``"random"``: one colour, ``vectors`` sign patterns (2 vectors each), variance ~ 1 / vectors.
* ``"exact"``: every site its own colour: the full basis (2N vectors), for tests.

The Hamiltonian is a torch sparse CSR matrix, products batched over vectors, so a GPU
(``device="cuda"``) runs the same code.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..lattice import Lattice
from ..model import SDModel
from ..spins import check_spins
from .chebyshev import KERNELS, FermiSeries, jackson_resolution
from .hamiltonian import hopping_matrix, onsite_blocks, spin_expectation
from .solver import ElectronSolver

ESTIMATORS = ("probing", "random", "exact")
SPECTRAL_MARGIN = 0.01
"""Relative safety margin on the rigorous spectral bound."""
JACKSON_MOMENTS_PER_A_OVER_KT = 4.0
"""Jackson kernel: M >= this * a / kT (resolution pi a / M ~ 0.8 kT) keeps the kernel's error in the
fields below ~0.3% and in the energy below ~3e-4 (measured, docs/kpm.md)."""
PLAIN_MOMENTS_PER_A_OVER_KT = 1.5
"""No kernel: the series error ~ exp(-pi kT M / a); M >= this * a / kT keeps the fields within ~1e-3."""


@dataclass
class KPMState:
    """Everything one KPM solve gives.  Arrays are numpy float64; leading (M,) if batched.

    Attributes
    ----------
    energy:      free energy (fixed filling) or grand potential (fixed mu) estimate, units of t1.
    fields:      exchange fields h_i = -dE/dS_i of that estimate, shape (..., N, 3).
    density:     electron density n_i per site (0..2), shape (..., N).
    spin_density: <c+_i sigma c_i>, shape (..., N, 3).
    mu:          chemical potential (solved from the moments for fixed filling).
    moments:     Chebyshev moments mu_m = Tr T_m(H / a) (estimated), shape (..., moments).
    """

    energy: np.ndarray | float
    fields: np.ndarray
    density: np.ndarray
    spin_density: np.ndarray
    mu: np.ndarray | float
    moments: np.ndarray


def spectral_half_width(model: SDModel) -> float:
    """Rigorous bound on |e|: max_i sum_j |T_ij| + |J| (|S_i| = 1), times (1 + SPECTRAL_MARGIN)."""
    T = hopping_matrix(model)
    row = np.abs(T).sum(axis=1).max() if T.nnz else 0.0
    return (float(row) + abs(model.J)) * (1.0 + SPECTRAL_MARGIN)


def probing_colours(lattice: Lattice, distance: float) -> np.ndarray:
    """Colour of every site, shape (N,), such that sites of one colour are farther apart than ``distance``.

    The colours are the cosets of a superlattice Lambda (sites of one colour differ by a vector of
    Lambda), chosen among all superlattices compatible with the torus (L Z^2 in Lambda) as the one
    with the fewest colours whose shortest vector is longer than ``distance``.  In Hermite normal
    form Lambda = {n (A, 0) + m (B, D)} (lattice coordinates) with A | L, D | L and
    (L / D) B = 0 mod A; the colour of (x, y) is ((x - B floor(y / D)) mod A) + A (y mod D).
    When no superlattice is long enough (distance >= L) every site gets its own colour.
    """
    L = lattice.L
    metric = lattice.basis.T @ lattice.basis
    divisors = [q for q in range(1, L + 1) if L % q == 0]
    best = (L * L, -1.0, (L, 0, L))
    for A in divisors:
        for D in divisors:
            if A * D > best[0]:
                continue
            for B in range(0, A, A // math.gcd(A, L // D)):
                short = _shortest_vector(np.array([A, 0]), np.array([B, D]), metric)
                if short > distance + 1e-9 and (A * D, -short) < (best[0], -best[1]):
                    best = (A * D, short, (A, B, D))
    A, B, D = best[2]
    x, y = lattice.coords.T
    return np.mod(x - B * (y // D), A) + A * np.mod(y, D)


def _shortest_vector(u: np.ndarray, v: np.ndarray, metric: np.ndarray) -> float:
    """Length of the shortest nonzero vector of the 2D lattice spanned by u, v (Lagrange-Gauss)."""
    norm = lambda w: float(w @ metric @ w)  # noqa: E731
    while True:
        if norm(u) > norm(v):
            u, v = v, u
        k = int(round(float(u @ metric @ v) / norm(u)))
        if k == 0:
            return math.sqrt(norm(u))
        v = v - k * u


class KPMSolver(ElectronSolver):
    """Kernel-polynomial force field for an :class:`~itinerant.SDModel`.

    Parameters
    ----------
    model:
        The s-d model (lattice, hoppings, J, filling or mu, kT).
    moments:
        Number of Chebyshev moments M.  ``None``: enough for the model's kT (see
        :meth:`recommended_moments`), at least 128; 1024 at kT = 0.
    vectors:
        Number of independent random sign patterns: ``"random"``: 2 x vectors vectors (default 32);
        ``"probing"``: repeats of the colouring with fresh signs (default 1); unused by ``"exact"``.
    kernel:
        ``"jackson"`` (default) or ``"none"`` (kT > 0 only).
    estimator:
        ``"probing"`` (default), ``"random"`` or ``"exact"``.
    distance:
        Probing distance: sites sharing a probing colour are farther apart than this (lattice
        constants; default 8: 128 colours on the triangular and 64 on the square lattice when L is
        a multiple of 16).  The number of vectors is 2 x vectors x (number of colours); the colours
        number between about distance^2 and 2 distance^2, fewer when L has many divisors.
    seed:
        Seed of the random signs; the vectors are fixed for the solver's lifetime, so the energy is a
        smooth function of the spins and the fields are its exact gradient.
    device, dtype:
        Torch device and complex dtype (``torch.complex128`` default; ``complex64`` for speed on GPUs;
        names as strings are accepted).
    batch:
        Largest number of vectors propagated together (memory ~ 6 x 2N x batch complex numbers,
        plus 2 x 2N x R for the stored end vectors).
    """

    name = "kpm"

    def __init__(self, model: SDModel, moments: int | None = None, vectors: int | None = None,
                 kernel: str = "jackson", estimator: str = "probing", distance: float = 8.0,
                 seed: int = 0, device: str | torch.device = "cpu",
                 dtype: torch.dtype | str = torch.complex128, batch: int = 128):
        if not isinstance(model, SDModel):
            raise TypeError(f"model must be an itinerant.SDModel, got {type(model).__name__}")
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}; known: {KERNELS}")
        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; known: {ESTIMATORS}")
        if kernel == "none" and model.kT == 0:
            raise ValueError("kernel='none' needs kT > 0 (the step function's series does not "
                             "converge); use kernel='jackson'")
        dtype = {"complex128": torch.complex128, "complex64": torch.complex64}.get(dtype, dtype)
        if dtype not in (torch.complex128, torch.complex64):
            raise ValueError(f"dtype must be torch.complex128 or torch.complex64 (or their names), "
                             f"got {dtype!r}")
        if vectors is None:
            vectors = 32 if estimator == "random" else 1
        for what, v, lo in (("vectors", vectors, 1), ("batch", batch, 1), ("seed", seed, 0)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{what} must be an integer >= {lo}, got {v!r}")
        if not (isinstance(distance, (int, float, np.number)) and math.isfinite(distance)
                and distance >= 1):
            raise ValueError(f"distance must be a number >= 1 (lattice constants), got {distance!r}")
        self.model = model
        self.lattice = model.lattice
        self.kernel, self.estimator = kernel, estimator
        self.distance, self.seed, self.batch = float(distance), int(seed), int(batch)
        self.device, self.dtype = torch.device(device), dtype
        self.half_width = spectral_half_width(model)
        if moments is None:
            moments = self.recommended_moments()
        if not isinstance(moments, (int, np.integer)) or isinstance(moments, bool) or moments < 2:
            raise ValueError(f"moments must be an integer >= 2, got {moments!r}")
        self.moments = int(moments)
        self._check_resolution()
        self.series = FermiSeries(self.half_width, model.kT, self.moments, kernel)

        N = self.lattice.N
        if estimator == "probing":
            self.colours = probing_colours(self.lattice, self.distance)
        elif estimator == "random":
            self.colours = np.zeros(N, dtype=np.int64)
        else:
            self.colours, vectors = np.arange(N), 1
        self.n_colours = int(self.colours.max()) + 1
        self.n_patterns = int(vectors)
        self.n_vectors = 2 * self.n_colours * self.n_patterns
        self._weight = 1.0 / self.n_patterns
        self._build_pattern()

    # ------------------------------------------------------------------ settings
    def recommended_moments(self) -> int:
        """Moments for the model's kT: c * a / kT (c from the kernel), at least 128; 1024 at kT = 0."""
        need = self._moments_needed()
        return 1024 if need is None else max(128, need)

    def _moments_needed(self) -> int | None:
        """c * a / kT (None at kT = 0): fewer moments do not resolve the Fermi function."""
        if self.model.kT == 0:
            return None
        c = JACKSON_MOMENTS_PER_A_OVER_KT if self.kernel == "jackson" else PLAIN_MOMENTS_PER_A_OVER_KT
        return int(math.ceil(c * self.half_width / self.model.kT))

    def _check_resolution(self) -> None:
        kT, M, a = self.model.kT, self.moments, self.half_width
        need = self._moments_needed()
        jackson = self.kernel == "jackson"
        if need is not None and M < need:
            what = (f"the Jackson kernel resolves energies only to pi*a/M = {jackson_resolution(M, a):.3g}"
                    if jackson else
                    f"the series error is ~exp(-pi*kT*M/a) = {math.exp(-math.pi * kT * M / a):.2g}")
            warnings.warn(f"moments={M} are too few for kT={kT} (spectral half-width a={a:.4g}): "
                          f"{what}; raise moments to >= {need}", stacklevel=3)

    def settings(self) -> dict:
        """Solver name and accuracy settings, stored with generated data."""
        s = {"solver": self.name, "moments": self.moments, "kernel": self.kernel,
             "estimator": self.estimator, "n_vectors": self.n_vectors, "sign_patterns": self.n_patterns,
             "seed": self.seed,
             "spectral_half_width": self.half_width}
        if self.estimator == "probing":
            s["probe_distance"] = self.distance
        return s

    # ------------------------------------------------------------------ public API
    def solve(self, spins, normalize: bool = False) -> KPMState:
        """Energy, fields, densities, mu and moments; see :class:`KPMState`."""
        s = check_spins(spins, self.lattice.N, normalize=normalize, batched=True)
        if s.ndim == 2:
            return KPMState(**self._solve_one(s))
        parts = [self._solve_one(x) for x in s]
        return KPMState(**{k: np.stack([p[k] for p in parts]) for k in parts[0]})


    # ------------------------------------------------------------------ Hamiltonian
    def _build_pattern(self) -> None:
        """CSR pattern of X = H / a: hopping entries kron(T, 1) then the on-site 2x2 blocks."""
        N = self.lattice.N
        T = hopping_matrix(self.model).tocoo()
        rows = [2 * T.row[:, None] + np.arange(2), np.repeat(2 * np.arange(N), 4) + np.tile([0, 0, 1, 1], N)]
        cols = [2 * T.col[:, None] + np.arange(2), np.repeat(2 * np.arange(N), 4) + np.tile([0, 1, 0, 1], N)]
        rows = np.concatenate([r.ravel() for r in rows])
        cols = np.concatenate([c.ravel() for c in cols])
        order = np.lexsort((cols, rows))
        dev = self.device
        self._order = torch.as_tensor(order, device=dev)
        self._crow = torch.as_tensor(np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=2 * N))]),
                                     device=dev)
        self._col = torch.as_tensor(cols[order], device=dev)
        self._hop = torch.as_tensor(np.repeat(T.data, 2) / self.half_width, dtype=self.dtype, device=dev)

    def _scaled_hamiltonian(self, spins: np.ndarray) -> torch.Tensor:
        S = torch.as_tensor(spins, dtype=torch.float64, device=self.device)
        blocks = onsite_blocks(S, self.model.J).to(self.dtype).reshape(-1) / self.half_width
        values = torch.cat([self._hop, blocks])[self._order]
        N2 = 2 * self.lattice.N
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(self._crow, self._col, values, size=(N2, N2),
                                           check_invariants=False)

    # ------------------------------------------------------------------ trace vectors
    def _vectors(self, k0: int, k1: int) -> torch.Tensor:
        """Columns k0..k1-1 of the trace-estimator vectors, shape (2N, k1 - k0).

        Column q = 2 (pattern * n_colours + colour) + spin holds the signs of pattern ``pattern`` on
        the sites of colour ``colour`` in spin component ``spin``.
        """
        N, C = self.lattice.N, self.n_colours
        q = np.arange(k0, k1)
        pattern, colour, spin = q // (2 * C), (q // 2) % C, q % 2
        members = np.argsort(self.colours, kind="stable")
        start = np.searchsorted(self.colours[members], np.arange(C + 1))
        rows, cols, vals = [], [], []
        for p in np.unique(pattern):
            signs = np.random.default_rng([self.seed, int(p)]).choice([-1.0, 1.0], N)
            for j in np.flatnonzero(pattern == p):
                sites = members[start[colour[j]] : start[colour[j] + 1]]
                rows.append(2 * sites + spin[j])
                cols.append(np.full(len(sites), j))
                vals.append(signs[sites])
        v = torch.zeros(2 * N, k1 - k0, dtype=self.dtype, device=self.device)
        rows, cols = (torch.as_tensor(np.concatenate(a), device=self.device) for a in (rows, cols))
        v[rows, cols] = torch.as_tensor(np.concatenate(vals), dtype=self.dtype, device=self.device)
        return v

    def _chunks(self):
        return [(k, min(k + self.batch, self.n_vectors)) for k in range(0, self.n_vectors, self.batch)]

    # ------------------------------------------------------------------ kernel
    def _solve_one(self, spins: np.ndarray) -> dict:
        m, M, N = self.model, self.moments, self.lattice.N
        X = self._scaled_hamiltonian(spins)
        rdt = torch.float64 if self.dtype == torch.complex128 else torch.float32

        # Forward: moments mu_m = sum_r r^+ T_m(X) r; keep the last two Chebyshev vectors.
        mom = torch.zeros(M, dtype=rdt, device=self.device)
        ends = []
        for k0, k1 in self._chunks():
            r = self._vectors(k0, k1)
            x_prev, x = r, X @ r
            mom[0] += torch.vdot(r.reshape(-1), r.reshape(-1)).real
            mom[1] += torch.vdot(r.reshape(-1), x.reshape(-1)).real
            for n in range(2, M):
                x_prev, x = x, torch.addmm(x_prev, X, x, beta=-1, alpha=2)
                mom[n] += torch.vdot(r.reshape(-1), x.reshape(-1)).real
            ends.append((x_prev, x))  # (x_{M-2}, x_{M-1})
        moments = self._weight * mom.double().cpu().numpy()

        # Thermodynamics from the moments.
        if m.fixed_filling:
            mu = self.series.solve_mu(moments, m.n_electrons)
        else:
            mu = m.mu
        _, w = self.series.coefficients(mu)
        energy = float(w @ moments) + (mu * m.n_electrons if m.fixed_filling else 0.0)

        # Backward on stacked Z_k = [x_k | y_k] (2N, 2R):  Z_{k-1} = 2 X Z_k - Z_{k+1} + [0 | w_k r]
        # (x regenerated backwards, y_k = w_{k+1} r + 2 X y_{k+1} - y_{k+2}), accumulating
        # G_i[s, s'] += c'_k conj(y_k(is)) x_k(is'), c'_0 = 1, c'_k = 2.
        G = torch.zeros(N, 2, 2, dtype=self.dtype, device=self.device)
        for (k0, k1), (x_before, x_last) in zip(self._chunks(), ends):
            r = self._vectors(k0, k1)
            R = k1 - k0
            Z_next = torch.cat([x_last, torch.zeros_like(r)], dim=1)     # Z_{M-1}
            Z = torch.cat([x_before, float(w[M - 1]) * r], dim=1)        # Z_{M-2}
            del x_before, x_last
            for k in range(M - 2, -1, -1):
                Z4 = Z.view(N, 2, 2, R)                                   # (site, spin, x|y, r)
                G += (2.0 if k else 1.0) * torch.einsum("isr,itr->ist", Z4[:, :, 1].conj(), Z4[:, :, 0])
                if k == 0:
                    break
                Z_next = torch.addmm(Z_next, X, Z, beta=-1, alpha=2)
                Z_next[:, R:].add_(r, alpha=float(w[k]))
                Z, Z_next = Z_next, Z
        ends.clear()
        G = G.to(torch.complex128) * (self._weight / self.half_width)
        spin_density = spin_expectation(G)
        density = torch.diagonal(G, dim1=-2, dim2=-1).sum(-1).real
        return {
            "energy": energy,
            "fields": (m.J * spin_density).cpu().numpy(),
            "density": density.cpu().numpy(),
            "spin_density": spin_density.cpu().numpy(),
            "mu": float(mu),
            "moments": moments,
        }
