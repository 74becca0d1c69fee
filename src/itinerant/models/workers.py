"""The fast path evaluated by worker processes, each taking a share of the blocks.

PyTorch operators and compiled graphs run with Python's GIL held, so two threads of one process
cannot evaluate two blocks at once, and a compiled block gains nothing from a second intra-op
thread (its fused loops become slower: docs/performance.md).  :class:`WorkerPool` therefore runs
``P`` processes with one thread each and its own :class:`~itinerant.models.fastpath.FastEvaluator`
(compiled or not).  A call copies the spins into shared memory; worker p evaluates the p-th
contiguous share of the blocks and writes the energy of its centre sites and their full gradient
dE/dS into its own shared output; the pool sums the P outputs.  Each worker builds the field
table and takes the gradient through the fields for the whole lattice (a few per cent of a call).

Workers are started with the ``spawn`` method (safe with OpenMP and threads; a script that uses
them needs the usual ``if __name__ == "__main__":`` guard) on the first call, and stopped by
:meth:`WorkerPool.close`, when the pool is garbage-collected, or when the main process exits.

    pool = WorkerPool(descriptor, workers=2, compile=True)
    energy, grad = pool(net, spins)          # as FastEvaluator: (B,), (B, N, 3)
"""

from __future__ import annotations

import copy
import time
import traceback
import weakref

import torch
import torch.multiprocessing as mp

from .fastpath import FastEvaluator


def _serve(conn, descriptor, compile: bool, max_block, block, threads: int) -> None:
    """A worker's loop: messages ``("net", net)``, ``("buffers", ...)``, ``("eval", part)``,
    ``None`` (stop); every message but ``None`` is answered ``("ok", seconds)`` (of evaluation) or
    ``("error", text)``."""
    torch.set_num_threads(threads)
    evaluator = FastEvaluator(descriptor, block=block, compile=compile, max_block=max_block)
    net = spins = mu = out = None
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the main process has gone
            return
        if msg is None:
            return
        try:
            kind, start = msg[0], time.perf_counter()
            if kind == "net":
                net = msg[1]
            elif kind == "buffers":
                spins, mu, out = msg[1:]
            elif kind == "eval":
                result = evaluator(net, spins, mu, part=msg[1])
                for dst, src in zip(out, result):
                    dst.copy_(src)
            else:
                raise ValueError(f"unknown message {kind!r}")
            conn.send(("ok", time.perf_counter() - start))
        except Exception:  # reported to the main process, which raises
            conn.send(("error", traceback.format_exc()))


def _stop(conns, procs) -> None:
    for conn in conns:
        try:
            conn.send(None)
        except (OSError, ValueError):
            pass
    for proc in procs:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.terminate()


class WorkerPool:
    """A :class:`~itinerant.models.fastpath.FastEvaluator` spread over worker processes.

    Parameters
    ----------
    descriptor:
        The descriptor of the lattice (as for :class:`FastEvaluator`).
    workers:
        Number of processes ``P >= 1``; each evaluates a contiguous ``1/P`` of the blocks.
    threads:
        Torch threads per worker (1: one worker per core is the intended use).
    compile, block, max_block:
        As for :class:`FastEvaluator`, in every worker.

    Call it as a :class:`FastEvaluator`: ``pool(net, spins[, mu])`` with CPU tensors.  The
    network is sent to the workers again whenever its weights have changed since the last call.
    """

    def __init__(self, descriptor, workers: int, compile: bool = False, block: int | None = None,
                 max_block: int | None = None, threads: int = 1) -> None:
        if int(workers) != workers or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        if int(threads) != threads or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        if descriptor.neighbors.device.type != "cpu":
            raise ValueError("worker processes evaluate on the CPU; the descriptor is on "
                             f"{descriptor.neighbors.device}")
        self.descriptor = descriptor
        self.workers, self.threads = int(workers), int(threads)
        self._options = (bool(compile), max_block, block)
        self._conns: list = []
        self._procs: list = []
        self._net_key = self._net = None
        self._buffers_key = None
        self._buffers = None
        self.busy_seconds: list[float] = []
        """Seconds each worker spent evaluating in the last call (the rest of a call's time is
        communication and summing)."""

    # ------------------------------------------------------------------ lifetime
    def start(self) -> None:
        """Start the worker processes (done by the first call)."""
        if self._procs:
            return
        ctx = mp.get_context("spawn")
        compile, max_block, block = self._options
        for _ in range(self.workers):
            here, there = ctx.Pipe()
            proc = ctx.Process(target=_serve, daemon=True, args=(
                there, self.descriptor, compile, max_block, block, self.threads))
            proc.start()
            there.close()
            self._conns.append(here)
            self._procs.append(proc)
        self._finalizer = weakref.finalize(self, _stop, self._conns, self._procs)

    def close(self) -> None:
        """Stop the workers (a later call starts new ones)."""
        if self._procs:
            self._finalizer()
        self._conns, self._procs = [], []
        self._net_key = self._net = self._buffers_key = self._buffers = None

    # ------------------------------------------------------------------ evaluation
    def __call__(self, net, spins: torch.Tensor, mu: torch.Tensor | None = None):
        """``(E (B,), dE/dS (B, N, 3)[, dE/dmu (B, N)])``, as :class:`FastEvaluator`."""
        if spins.device.type != "cpu":
            raise ValueError(f"worker processes evaluate CPU tensors, got {spins.device}")
        self.start()
        key = (id(net),) + tuple((id(t), t._version)
                                 for t in net.state_dict(keep_vars=True).values())
        if key != self._net_key:
            sent = copy.deepcopy(net).cpu()
            self._broadcast(lambda p: ("net", sent))
            self._net_key, self._net = key, net   # held: its ids cannot be reused meanwhile
        spins_buf, mu_buf, outs = self._shared(spins, mu)
        spins_buf.copy_(spins.detach())
        if mu is not None:
            mu_buf.copy_(mu.detach().to(spins.dtype).reshape(mu_buf.shape))
        self._broadcast(lambda p: ("eval", (p, self.workers)))
        result = [sum(parts[k] for parts in outs) for k in range(len(outs[0]))]
        return tuple(result)

    def _shared(self, spins, mu):
        """Shared-memory input and per-worker output tensors for this call's shapes (kept)."""
        B, N = spins.shape[0], spins.shape[1]
        key = (B, N, spins.dtype, mu is not None)
        if key != self._buffers_key:
            def zeros(*shape, dtype=spins.dtype):
                return torch.zeros(*shape, dtype=dtype).share_memory_()

            spins_buf = zeros(B, N, 3)
            mu_buf = zeros(B, N) if mu is not None else None
            outs = [(zeros(B, dtype=torch.float64), zeros(B, N, 3))
                    + ((zeros(B, N),) if mu is not None else ())
                    for _ in range(self.workers)]
            self._broadcast(lambda p: ("buffers", spins_buf, mu_buf, outs[p]))
            self._buffers_key, self._buffers = key, (spins_buf, mu_buf, outs)
        return self._buffers

    def _broadcast(self, message) -> None:
        """Send ``message(p)`` to every worker p, then wait for all the answers."""
        def died(p):
            code = self._procs[p].exitcode
            self.close()
            return RuntimeError(f"fast-path worker {p} died (exit code {code})")

        for p, conn in enumerate(self._conns):
            try:
                conn.send(message(p))
            except OSError:
                raise died(p) from None
        errors, busy = [], []
        for p, conn in enumerate(self._conns):
            try:
                status, detail = conn.recv()
            except (EOFError, OSError):
                raise died(p) from None
            if status == "error":
                errors.append(f"worker {p}:\n{detail}")
            else:
                busy.append(detail)
        self.busy_seconds = busy
        if errors:
            self._net_key = self._buffers_key = None   # resend state next time
            raise RuntimeError("fast-path worker failed\n" + "\n".join(errors))
