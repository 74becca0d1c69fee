"""Inference fast path: energy and fields of a :class:`SiteEnergyNet` on a :class:`Descriptor`.

The same numbers as :func:`itinerant.models.network.energy_and_fields` (to rounding), without
autograd and in time and memory linear in N:

1. Per-site fields (bond products ``S_x . S_{x+d}`` and triangle chiralities) for a window of
   lattice rows (the whole lattice, or the rows one share of the blocks needs), from shifted views
   of the periodically padded spin grid; stored field-major with ``R`` extra rows on each side (the
   neighbourhood's reach in y), so that the gather indices of a block of whole lattice rows are the
   same for every block up to a constant offset (one precomputed index per block shape).
2. Blocks of centre sites (whole lattice rows, or whole snapshots of a stack): a 1D gather of the
   neighbourhood's fields, one batched product with the orbit bases (irrep coefficients), a gather
   of the monomial factors, scatter-adds into the features (one per degree), and the MLP with the feature
   standardisation folded into its first layer.
3. The backward pass written out (the network's weights are constants): the MLP's chain rule, the
   monomials' product rule, scatter-adds into the coefficients, the transposed orbit bases, one
   1D scatter-add into the field table, and the fields' derivatives with rolls.

Everything is "quantities x sites": (rows, n) tensors whose rows are contiguous over the block's n
centre sites, so every gather, scatter and product moves long rows and every matrix product is a
plain GEMM.  Memory: the field table (F_fields x N) plus a few (rows x block) work arrays.

A network with a chemical-potential input (``SiteEnergyNet(mu_range=...)``) takes per-site mu
values (B, N) as one more input row, like the length channel, and the call also returns the
derivative dE/dmu_i (B, N) (= -n_i, the local density).

Shapes: spins (B, N, 3) -> energy (B,), gradient dE/dS (B, N, 3), in the spins' dtype and device.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATION_DERIVATIVES = ("silu", "tanh", "softplus", "gelu")
"""Activations whose derivative :func:`_activation_and_slope` knows (all of network.ACTIVATIONS)."""

CPU_WORK_BYTES = 32 << 20
"""On a CPU a block's work arrays are kept near this size (cache-sized; block sizes 256-4096 were
measured, docs/performance.md): the block is the power of two closest to it, within [256, 4096]."""
COMPILED_GRADIENT_SITES = 48 * 48
"""Largest lattice whose gradient through the fields is compiled (``compile=True``)."""
GPU_BLOCK = 1 << 18
"""Centre sites per block on a GPU (large enough to fill it)."""


def supports(net) -> bool:
    """True if the fast path can evaluate ``net`` (a plain :class:`SiteEnergyNet`)."""
    layers = list(getattr(net, "mlp", []))
    linear = [m for m in layers if isinstance(m, nn.Linear)]
    return (getattr(net, "activation", None) in ACTIVATION_DERIVATIVES and len(linear) >= 1
            and linear[-1].out_features == 1 and len(layers) == 2 * len(linear) - 1)


def _activation_and_slope(name: str, z: torch.Tensor):
    """``act(z)`` and ``act'(z)`` for the network's smooth activations (torch's definitions)."""
    if name == "silu":
        sig = torch.sigmoid(z)
        a = z * sig
        return a, sig + a * (1 - sig)
    if name == "tanh":
        a = torch.tanh(z)
        return a, 1 - a * a
    if name == "softplus":  # beta = 1, threshold = 20, as nn.Softplus
        return nn.functional.softplus(z), torch.where(z > 20, 1.0, torch.sigmoid(z)).to(z.dtype)
    if name == "gelu":  # exact (erf) form, as nn.GELU
        cdf = 0.5 * (1 + torch.erf(z * (1 / math.sqrt(2))))
        return z * cdf, cdf + z * torch.exp(-0.5 * z * z) * (1 / math.sqrt(2 * math.pi))
    raise ValueError(f"no derivative for activation {name!r}; known: {ACTIVATION_DERIVATIVES}")


def _wrap_add(out: torch.Tensor, x: torch.Tensor, dim: int, start: int) -> torch.Tensor:
    """``out`` += ``x`` along ``dim`` at the periodic positions ``(start + j) mod L`` (``L`` =
    ``out``'s length there), by slices (no scatter: ``torch.compile`` makes scatters slow loops)."""
    L, n, j = out.shape[dim], x.shape[dim], 0
    while j < n:
        site = (start + j) % L
        width = min(L - site, n - j)
        out.narrow(dim, site, width).add_(x.narrow(dim, j, width))
        j += width
    return out


def _fold_periodic(x: torch.Tensor, dim: int, pad: int, L: int) -> torch.Tensor:
    """Adjoint of periodic padding: ``x`` has ``L + 2 pad`` entries along ``dim``, entry j standing
    for site ``(j - pad) mod L``; returns the sums per site (``L`` entries along ``dim``)."""
    shape = list(x.shape)
    shape[dim] = L
    return _wrap_add(x.new_zeros(shape), x, dim, -pad)


class FastEvaluator:
    """Energy and gradient of ``E = sum_i eps_i`` for one descriptor (one lattice size).

    Parameters
    ----------
    descriptor:
        The :class:`~itinerant.descriptors.Descriptor` (its buffers give the construction).
    block:
        Centre sites evaluated together (rounded to whole lattice rows, or whole snapshots of a
        stack when a snapshot is smaller); default :meth:`default_block`.
    max_block:
        Upper bound on the default block (memory control).
    compile:
        Wrap the per-block computation and the field table in ``torch.compile`` (one
        compilation per block shape), and the gradient through the fields on lattices of at most
        :data:`COMPILED_GRADIENT_SITES` sites; best with one CPU thread
        (:mod:`itinerant.models.workers` uses more cores).

    Call it as ``evaluator(net, spins)``: the network's weights are read on every call (cheap), so
    changing them in place is always seen.
    """

    def __init__(self, descriptor, block: int | None = None, compile: bool = False,
                 max_block: int | None = None) -> None:
        d = descriptor
        self.descriptor = d
        self.lattice = d.lattice
        dev = d.neighbors.device
        if block is not None and (int(block) != block or block < 1):
            raise ValueError(f"block must be a positive integer, got {block!r}")
        self.block = None if block is None else int(block)
        self.max_block = max_block
        L = self.lattice.L
        off = torch.as_tensor(d.offsets, device=dev)
        self.reach = int(off[:, 1].abs().max())            # R: extra table rows on each side
        self.n_fields = int(d.n_fields)
        self.disp = [tuple(int(v) for v in x) for x in d.field_disp]
        self.shapes = [tuple(tuple(int(v) for v in uv) for uv in x) for x in d.field_shapes]
        geometry = [abs(int(v)) for v in d.field_disp.ravel()] + [
            abs(int(v)) for v in d.field_shapes.ravel()]
        self.reach_xy = max(geometry, default=0)           # padding of the spins for the fields
        self.x_wrap = torch.arange(-self.reach_xy, L + self.reach_xy, device=dev) % L
        # Flat position, in one snapshot's table (n_fields, H, L) of H rows, of slot s of the
        # centre (x, y): field * H * L + (y - y_first + R + oy) * L + (x + ox) mod L.
        anchor = off[d.slot_anchor]                         # (slots, 2)
        self._slot_field = d.slot_field.to(dev)
        self._slot_dy = anchor[:, 1] + self.reach
        self._slot_dx = anchor[:, 0]
        self._rows: dict[tuple[int, int, int], tuple[torch.Tensor, int]] = {}
        self._y_index: dict[tuple[int, int], torch.Tensor] = {}
        # Monomials: factor rows [i1 | a2 b2 | a3 b3 c3] of the coefficients, their features.
        self.n_terms = [int(getattr(d, f"term{k}_idx").shape[1]) for k in (1, 2, 3)]
        self.factors = torch.cat([d.term1_idx[0], d.term2_idx[0], d.term2_idx[1],
                                  d.term3_idx[0], d.term3_idx[1], d.term3_idx[2]])
        self.term_feature = torch.cat([d.term1_out, d.term2_out, d.term3_out])
        self._index_parts = (d.term1_idx[0], d.term2_idx, d.term3_idx,
                             d.term1_out, d.term2_out, d.term3_out)
        self._coef3 = None if d._unit_coef[3] else d.term3_coef[:, None]
        self.compile = bool(compile)
        wrap = (lambda fn: torch.compile(fn, dynamic=False)) if compile else (lambda fn: fn)
        self._body, self._to_table = wrap(self._block), wrap(self._table)
        # Compiled, the gradient through the fields is faster only on small lattices (0.52 vs 0.88
        # ms at 30x30, 5.5 vs 1.2 ms at 128x128, one thread): inductor copies the padded array for
        # every in-place accumulation into a view of it.
        small = L * L <= COMPILED_GRADIENT_SITES
        self._to_gradient = wrap(self._gradient) if small else self._gradient

    # ------------------------------------------------------------------ public
    def work_rows(self, hidden) -> int:
        """Rows of n-long work arrays one block keeps (gathers, coefficients, monomial factors,
        features, layers; forward and backward): bytes per centre site / itemsize."""
        d = self.descriptor
        slots, C = len(d.slot_field), int(d.n_coefficients)
        return 2 * (slots + C + len(self.factors) + len(self.term_feature) + d.n_features
                    + 2 * sum(hidden))

    def default_block(self, hidden, dtype, device) -> int:
        """Block size: :data:`GPU_BLOCK` on a GPU; on a CPU see :data:`CPU_WORK_BYTES`."""
        if torch.device(device).type != "cpu":
            return GPU_BLOCK
        per_site = self.work_rows(hidden) * torch.finfo(dtype).bits // 8
        return int(min(4096, max(256, 2 ** round(math.log2(CPU_WORK_BYTES / per_site)))))

    def blocks(self, net, spins: torch.Tensor) -> list[tuple[int, int, int, int]]:
        """The blocks of centre sites of a call, in order: ``(b0, kb, y0, ny)`` = snapshots
        ``b0 .. b0 + kb - 1``, lattice rows ``y0 .. y0 + ny - 1`` of each."""
        B, L, N = spins.shape[0], self.lattice.L, self.lattice.N
        block = self.block or min(self.default_block(net.hidden, spins.dtype, spins.device),
                                  self.max_block or GPU_BLOCK)
        k = max(1, min(B, block // N)) if N <= block else 1
        ny = L if N <= block else max(1, block // L)
        return [(b0, min(k, B - b0), y0, min(ny, L - y0))
                for b0 in range(0, B, k) for y0 in range(0, L, ny)]

    def __call__(self, net, spins: torch.Tensor, mu: torch.Tensor | None = None,
                 part: tuple[int, int] = (0, 1)):
        """``(E (B,), dE/dS (B, N, 3))`` for spins (B, N, 3); sums of site energies in float64.

        ``mu`` (B, N): per-site chemical potentials, for a network with a mu input; then the result
        is ``(E, dE/dS, dE/dmu (B, N))``.

        ``part = (p, P)``: only the p-th of P contiguous shares of :meth:`blocks` (the site
        energies of those centres and their full gradient); the P parts sum to the whole.
        """
        B, N = spins.shape[0], self.lattice.N
        if (mu is None) == bool(getattr(net, "mu_input", False)):
            raise ValueError("pass mu (B, N) exactly when the network takes a chemical potential")
        p, n_parts = part
        if not 0 <= p < n_parts:
            raise ValueError(f"part must be (p, P) with 0 <= p < P, got {part!r}")
        L = self.lattice.L
        s_sites = spins.detach().reshape(B, N, 3)
        energy = torch.zeros(B, dtype=torch.float64, device=spins.device)
        grad = torch.zeros_like(s_sites)
        mu_sites = None if mu is None else mu.detach().to(spins.dtype).reshape(B, N)
        g_mu = None if mu is None else torch.zeros_like(mu_sites)
        blocks = self.blocks(net, spins)
        share = blocks[len(blocks) * p // n_parts:len(blocks) * (p + 1) // n_parts]
        if not share:
            return (energy, grad, g_mu) if mu is not None else (energy, grad)
        # The window: snapshots b_lo..b_hi-1 and rows y_lo..y_hi-1 of each hold the share.
        b_lo, b_hi = share[0][0], share[-1][0] + share[-1][1]
        y_lo, y_hi = ((share[0][2], share[-1][2] + share[-1][3]) if b_hi - b_lo == 1 else (0, L))
        weights = self._weights(net, spins.dtype)
        y_index = self._window_rows(y_lo, y_hi)
        padded, table = self._to_table(s_sites[b_lo:b_hi], y_index)
        g_table = torch.zeros_like(table)
        H = y_hi - y_lo + 2 * self.reach
        snap = self.n_fields * H * L
        for b0, kb, y0, nyb in share:
            rows, span = self._block_rows(kb, nyb, H)
            start = (b0 - b_lo) * snap + (y0 - y_lo) * L
            src = table[start:start + span]
            g = src.index_select(0, rows)
            sites = s_sites[b0:b0 + kb, y0 * L:(y0 + nyb) * L].reshape(-1, 3)
            length = (sites * sites).sum(-1)[None] - 1.0
            mu_row = (None if mu is None
                      else mu_sites[b0:b0 + kb, y0 * L:(y0 + nyb) * L].reshape(1, -1))
            e, dg, dlength, dmu = self._body(g, length, mu_row, *weights)
            energy[b0:b0 + kb] += e.reshape(kb, -1).sum(1, dtype=torch.float64)
            g_table[start:start + span].scatter_add_(0, rows, dg.reshape(-1))
            grad[b0:b0 + kb, y0 * L:(y0 + nyb) * L] += (
                2 * sites * dlength.reshape(-1, 1)).reshape(kb, -1, 3)
            if mu is not None:
                g_mu[b0:b0 + kb, y0 * L:(y0 + nyb) * L] = dmu.reshape(kb, -1)
        grad[b_lo:b_hi] += self._to_gradient(padded, g_table, y_lo)
        return (energy, grad, g_mu) if mu is not None else (energy, grad)

    # ------------------------------------------------------------------ pieces
    def _weights(self, net, dtype):
        """Weights with the feature (and mu) standardisation folded into the first layer."""
        linear = [m for m in net.mlp if isinstance(m, nn.Linear)]
        F = net.n_features
        W1 = linear[0].weight.detach().to(dtype)
        std, mean = net.feature_std.to(dtype), net.feature_mean.to(dtype)
        W1f = W1[:, :F] / std
        b1 = linear[0].bias.detach().to(dtype) - W1f @ mean
        w_len = W1[:, F:F + 1] if net.length_channel else torch.zeros_like(W1[:, :1])
        w_mu = None
        if getattr(net, "mu_input", False):
            c = F + int(net.length_channel)
            w_mu = (W1[:, c:c + 1] / net.mu_std.to(dtype)).contiguous()
            b1 = b1 - w_mu[:, 0] * net.mu_mean.to(dtype)
        mats = [W1f.contiguous()] + [m.weight.detach().to(dtype) for m in linear[1:]]
        biases = [b1[:, None]] + [m.bias.detach().to(dtype)[:, None] for m in linear[1:]]
        scale = net.energy_scale.detach().to(dtype)
        shift = net.energy_shift.detach().to(dtype)
        return (tuple(mats), tuple(biases), w_len.contiguous(), w_mu, scale, shift, net.activation)

    def _block_rows(self, k: int, ny: int, H: int) -> tuple[torch.Tensor, int]:
        """Flat positions (slots x sites), in a table of ``H`` rows per field, of a block of ``k``
        snapshots x ``ny`` rows, relative to the block's first site; and the length they span."""
        key = (k, ny, H)
        if key not in self._rows:
            L = self.lattice.L
            dev = self._slot_field.device
            y = torch.arange(ny, device=dev).repeat_interleave(L)
            x = torch.arange(L, device=dev).repeat(ny)
            one = (self._slot_field[:, None] * (H * L) + (y[None] + self._slot_dy[:, None]) * L
                   + (x[None] + self._slot_dx[:, None]) % L)                        # (slots, ny*L)
            snap = self.n_fields * H * L
            rows = one[:, None, :] + snap * torch.arange(k, device=dev)[None, :, None]
            rows = rows.reshape(-1)
            self._rows[key] = (rows, int(rows.max()) + 1)
        return self._rows[key]

    def _block(self, g, length, mu, mats, biases, w_len, w_mu, scale, shift, activation):
        """One block: gathered fields g (slots*n,), length channel (1, n), chemical potentials mu
        (1, n) or None -> e (n,), dg, dlength, dmu (None without mu)."""
        d = self.descriptor
        n = length.shape[1]
        n_g = d.orbit_basis.shape[-1]
        W = d.orbit_basis.to(g.dtype)
        f = torch.bmm(W, g.reshape(-1, n_g, n)).reshape(-1, n)        # irrep coefficients (C, n)
        T1, T2, T3 = self.n_terms
        x = f.index_select(0, self.factors)
        x1, a2, b2, a3, b3, c3 = torch.split(x, [T1, T2, T2, T3, T3, T3])
        ab3 = a3 * b3
        p3 = ab3 * c3 if self._coef3 is None else ab3 * c3 * self._coef3.to(g.dtype)
        i1, i2, i3, o1, o2, o3 = self._index_parts
        feat = f.new_zeros(mats[0].shape[1], n).index_add_(0, o1, x1)
        feat.index_add_(0, o2, a2 * b2).index_add_(0, o3, p3)
        # MLP forward, keeping the slopes of the activations.
        z = torch.addmm(biases[0], mats[0], feat).addmm_(w_len, length)
        if w_mu is not None:
            z.addmm_(w_mu, mu)
        slopes = []
        for W_k, b_k in zip(mats[1:], biases[1:]):
            a, slope = _activation_and_slope(activation, z)
            slopes.append(slope)
            z = torch.addmm(b_k, W_k, a)
        e = shift + scale * z[0]
        # Backward: dE/dz of each layer, down to the features and the length channel.
        dz = scale.reshape(1, 1)
        for k in range(len(mats) - 1, 0, -1):
            dz = slopes[k - 1] * (mats[k].T @ dz)
        dz = dz.expand(-1, n)                                           # (H_1, n)
        dfeat = mats[0].T @ dz                                          # (F, n)
        dlength = w_len.T @ dz                                          # (1, n)
        dmu = None if w_mu is None else w_mu.T @ dz                     # (1, n)
        dmono = dfeat.index_select(0, self.term_feature)
        d1, d2, d3 = torch.split(dmono, [T1, T2, T3])
        if self._coef3 is not None:
            d3 = d3 * self._coef3.to(g.dtype)
        d3c = d3 * c3
        df = torch.zeros_like(f).index_add_(0, i1, d1)
        df.index_add_(0, i2[0], d2 * b2).index_add_(0, i2[1], d2 * a2)
        df.index_add_(0, i3[0], d3c * b3).index_add_(0, i3[1], d3c * a3)
        df.index_add_(0, i3[2], d3 * ab3)
        dg = torch.bmm(W.transpose(1, 2), df.reshape(-1, n_g, n))
        return e, dg, dlength, dmu

    def _window_rows(self, y_lo: int, y_hi: int) -> torch.Tensor:
        """Lattice rows (mod L) of the spins that the table of rows ``y_lo - R .. y_hi + R - 1``
        needs: ``R + R_xy`` more on each side of the window (cached)."""
        key = (y_lo, y_hi)
        if key not in self._y_index:
            pad = self.reach + self.reach_xy
            self._y_index[key] = torch.arange(y_lo - pad, y_hi + pad,
                                              device=self.x_wrap.device) % self.lattice.L
        return self._y_index[key]

    def _table(self, spins, y_index):
        """Spins (B, N, 3) and the window's spin rows -> the padded spin window (B, 3, H + 2 R_xy,
        L + 2 R_xy) and the flat field table (B * n_fields * H * L,) of its H inner rows."""
        B, L = spins.shape[0], self.lattice.L
        grid = spins.reshape(B, L, L, 3).permute(0, 3, 1, 2)               # (B, 3, y, x)
        padded = grid.index_select(2, y_index).index_select(3, self.x_wrap)
        return padded, self._fields(padded).reshape(-1)

    def _gradient(self, padded, g_table, y_lo: int):
        """dE/dS (B, N, 3) through the fields, from dE/d(table) (flat) and the padded spin window
        of :meth:`_table` (its first row is lattice row ``y_lo - R - R_xy``)."""
        B, L, r = padded.shape[0], self.lattice.L, self.reach_xy
        H = padded.shape[2] - 2 * r
        g_padded = self._fields_backward(padded, g_table.reshape(B, self.n_fields, H, L))
        g_rows = _fold_periodic(g_padded, -1, r, L)                         # (B, 3, H + 2r, L)
        grad = _wrap_add(g_rows.new_zeros(B, 3, L, L), g_rows, 2, y_lo - self.reach - r)
        return grad.permute(0, 2, 3, 1).reshape(B, L * L, 3)

    def _view(self, padded, d):
        """``out[..., y, x] = padded[..., y + dy, x + dx]`` over the window's inner region."""
        r = self.reach_xy
        H, W = padded.shape[-2] - 2 * r, padded.shape[-1] - 2 * r
        return padded[..., r + d[1]:r + d[1] + H, r + d[0]:r + d[0] + W]

    def _fields(self, padded):
        """Per-site fields (B, n_fields, H, L) of the inner region of a padded spin window."""
        s = self._view(padded, (0, 0))
        out = [(s * self._view(padded, d)).sum(1) for d in self.disp]
        for u, w in self.shapes:
            cr = torch.linalg.cross(self._view(padded, u), self._view(padded, w), dim=1)
            out.append((s * cr).sum(1))
        return torch.stack(out, 1)

    def _fields_backward(self, padded, g):
        """dE/d(padded spin window) from dE/dfields g (B, n_fields, H, L) of its inner region.

        A field ``phi(x) = S_x . S_{x+d}`` sends ``g(x) S_{x+d}`` to x and ``g(x) S_x`` to
        x + d: accumulated at the shifted view of the padded array.
        """
        g_padded = torch.zeros_like(padded)
        s, g_s = self._view(padded, (0, 0)), self._view(g_padded, (0, 0))
        for k, d in enumerate(self.disp):
            gk = g[:, k:k + 1]
            g_s.addcmul_(gk, self._view(padded, d))
            self._view(g_padded, d).addcmul_(gk, s)
        for m, (u, w) in enumerate(self.shapes):
            gk = g[:, len(self.disp) + m:len(self.disp) + m + 1]
            su, sw = self._view(padded, u), self._view(padded, w)
            g_s.addcmul_(gk, torch.linalg.cross(su, sw, dim=1))
            self._view(g_padded, u).addcmul_(gk, torch.linalg.cross(sw, s, dim=1))
            self._view(g_padded, w).addcmul_(gk, torch.linalg.cross(s, su, dim=1))
        return g_padded
