"""The run-time chemical-potential solve of a mu-conditioned force field (docs/canonical.md).

A force field whose local energies depend on the chemical potential, eps_i(S, mu), defines the grand
potential Omega(S, mu) = sum_i eps_i and the electron number N(S, mu) = -dOmega/dmu.  At fixed
electron number N_e the energy is E(S) = Omega(S, mu*) + mu* N_e with N(S, mu*) = N_e, and by the
envelope theorem its fields are the fixed-mu fields at mu*.  :func:`solve_chemical_potential`
finds mu* for one configuration from evaluations of N(mu): it starts at a guess (the previous
configuration's mu*), steps with the previous slope dN/dmu (or a fixed fraction of the allowed
range), extrapolates by secants until N_e is bracketed, then closes the bracket with the Illinois
variant of regula falsi.  It never assumes more than continuity of N(mu) inside the allowed range,
and it fails with :class:`ChemicalPotentialError` when N_e cannot be bracketed there.
"""

from __future__ import annotations

import math
from typing import Callable


class ChemicalPotentialError(ValueError):
    """The electron number N_e cannot be reached within the allowed range of mu."""


def solve_chemical_potential(count: Callable, target: float, guess: float, bounds, tol: float,
                             slope: float | None = None, max_evaluations: int = 60):
    """Chemical potential mu in ``bounds`` with ``|N(mu) - target| <= tol``.

    Parameters
    ----------
    count:
        ``count(mu) -> (N, payload)``: the electron number at mu and anything computed with it
        (the energy and fields), returned for the accepted mu so that nothing is evaluated twice.
    target:
        The electron number N_e.
    guess:
        Starting point (clipped into ``bounds``), e.g. the previous configuration's mu*.
    bounds:
        ``(lo, hi)``: the range of mu that may be evaluated.
    tol:
        Tolerance on ``|N - N_e|``.
    slope:
        An estimate of dN/dmu (> 0) for the first step, e.g. from the previous solve.

    Returns ``(mu, payload, slope, evaluations)``: the accepted mu, its payload, the last secant
    slope dN/dmu (for the next solve) and the number of evaluations of ``count``.
    """
    lo, hi = (float(b) for b in bounds)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"bounds must be finite with lo <= hi, got {bounds!r}")
    if not (tol > 0 and math.isfinite(target)):
        raise ValueError(f"need a finite target and tol > 0, got {target}, {tol}")
    seen: dict[float, float] = {}
    evaluations = 0

    def f(x):
        nonlocal evaluations
        if evaluations >= max_evaluations:
            raise ChemicalPotentialError(
                f"no chemical potential with |N - N_e| <= {tol:.3g} (N_e = {target:g}) after "
                f"{max_evaluations} evaluations; last mu = {x:.10g}")
        n, payload = count(x)
        evaluations += 1
        n = float(n)
        if not math.isfinite(n):
            raise ChemicalPotentialError(f"the electron number at mu = {x:.10g} is {n}")
        seen[x] = n
        return n - target, payload

    def cannot_bracket():
        ends = ", ".join(f"N({x:.6g}) = {n:.8g}" for x, n in sorted(seen.items()))
        return ChemicalPotentialError(
            f"cannot bracket N_e = {target:g} electrons for mu in the allowed range "
            f"[{lo:.6g}, {hi:.6g}] (the range of chemical potentials the force field was trained "
            f"on): {ends}.  The configuration or the filling lies outside what the model has "
            f"learned; train it with a wider range of mu (generate [labels] mu_offsets)")

    a = min(max(float(guess), lo), hi)
    fa, pa = f(a)
    if abs(fa) <= tol:
        return a, pa, slope, evaluations
    width = hi - lo
    if width == 0:
        raise cannot_bracket()
    if slope is not None and slope > 0 and math.isfinite(slope):
        step = -fa / slope
    else:
        step = -math.copysign(0.05 * width, fa)

    # Bracketing: secant extrapolation (overshooting a little) while N - N_e keeps its sign.
    while True:
        b = min(max(a + step, lo), hi)
        if b == a:
            raise cannot_bracket()
        fb, pb = f(b)
        if abs(fb) <= tol:
            return b, pb, _slope(a, fa, b, fb, slope), evaluations
        if (fa < 0) != (fb < 0):
            break
        s = (fb - fa) / (b - a)
        last = abs(b - a)
        if s > 0:
            # Newton-like with the secant slope, 20 % beyond, between 1x and 4x the last step.
            size = min(max(1.2 * abs(fb) / s, last), 4 * last)
        else:  # N(mu) not increasing here: keep walking, doubling the step
            size = 2 * last
        step = -math.copysign(size, fb)
        a, fa, pa = b, fb, pb

    # Illinois regula falsi on the bracket [a, b].
    side = 0
    for _ in range(max_evaluations):
        x = (a * fb - b * fa) / (fb - fa)
        if not (min(a, b) < x < max(a, b)):
            x = 0.5 * (a + b)
        if x in (a, b) or abs(b - a) <= 1e-14 * max(1.0, abs(a), abs(b)):
            break
        fx, px = f(x)
        if abs(fx) <= tol:
            return x, px, _slope(a, fa, b, fb, slope), evaluations
        if (fx < 0) == (fb < 0):
            b, fb, pb = x, fx, px
            if side == -1:
                fa *= 0.5
            side = -1
        else:
            a, fa, pa = x, fx, px
            if side == +1:
                fb *= 0.5
            side = +1
    raise ChemicalPotentialError(
        f"N(mu) jumps across N_e = {target:g} at mu = {0.5 * (a + b):.12g} "
        f"(N = {seen.get(a, float('nan')):.10g} and {seen.get(b, float('nan')):.10g} on either "
        f"side): no mu gives |N - N_e| <= {tol:.3g}")


def _slope(a, fa, b, fb, previous):
    s = (fb - fa) / (b - a) if b != a else float("nan")
    return s if s > 0 and math.isfinite(s) else previous
