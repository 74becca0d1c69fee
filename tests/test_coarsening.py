"""Domain-size estimators and the coarsening-exponent fit on fields with known answers."""

import numpy as np
import pytest

import itinerant as it
from itinerant.coarsening import (as_grid, correlation_function, crossing_length, fit_power_law,
                                  structure_factor_length)

SQUARE = np.eye(2)


def test_as_grid_follows_site_order():
    L = 4
    v = np.arange(L * L)
    g = as_grid(v, L)
    x, y = 3, 1
    assert g[x, y] == x + L * y


def test_correlation_of_stripes_is_a_triangle_wave():
    L, w = 64, 8
    x = np.arange(L)
    phi = np.where((x // w) % 2 == 0, 1.0, -1.0)[:, None] * np.ones((L, L))
    r, C = correlation_function(phi, SQUARE)
    assert C[0] == pytest.approx(1.0)
    # Along x, C(dx) = 1 - dx/(w/2)... for an Ising stripe pattern C(dx) = 1 - 2 dx / w; the radial
    # average mixes in the flat y direction, so the half-crossing lies beyond w/4.
    assert w / 4 < crossing_length(r, C) < w


def test_domain_length_scales_with_pattern():
    rng = np.random.default_rng(0)
    L = 128

    def blobs(scale):
        noise = rng.normal(size=(L, L))
        k = np.fft.fftfreq(L)
        k2 = k[:, None] ** 2 + k[None, :] ** 2
        return np.sign(np.fft.ifft2(np.fft.fft2(noise) * np.exp(-k2 * (2 * np.pi * scale) ** 2 / 2)).real)

    lengths = [crossing_length(*correlation_function(blobs(s), SQUARE)) for s in (2, 4, 8)]
    ratios = np.array(lengths[1:]) / np.array(lengths[:-1])
    assert np.all(np.abs(ratios - 2) < 0.4)
    ls = [structure_factor_length(blobs(s), SQUARE) for s in (2, 4, 8)]
    assert np.all(np.diff(ls) > 0)


def test_triangular_basis_distances():
    lat = it.Lattice.triangular(16)
    phi = np.cos(np.pi * lat.coords[:, 0])  # alternating along a1
    r, C = correlation_function(as_grid(phi, 16), lat.basis)
    assert C[np.argmin(np.abs(r - 1.0))] < 0  # nearest neighbours include anti-aligned pairs


def test_power_law_fit_recovers_exponent():
    rng = np.random.default_rng(1)
    t = np.logspace(0, 3, 30)
    runs = 3.0 * t ** 0.5 * np.exp(rng.normal(scale=0.05, size=(8, 30)))
    fit = fit_power_law(t, runs, window=(10, 1000))
    assert abs(fit.exponent - 0.5) < 3 * fit.stderr + 0.01
    assert 0 < fit.stderr < 0.05
    with pytest.raises(ValueError, match="at least 3"):
        fit_power_law(t, runs, window=(500, 600))


def test_power_law_fit_error_from_run_to_run_scatter():
    """Two smooth runs with exponents 0.50 and 0.55 that cross at t = 100: the exponent is their
    mean and its error the spread of the slopes, not the (vanishing) scatter of log L near t = 100."""
    t = np.logspace(1, 3, 40)
    runs = np.stack([t ** 0.5, 100.0 ** -0.05 * t ** 0.55])
    fit = fit_power_law(t, runs)
    assert fit.exponent == pytest.approx(0.525, abs=1e-9)
    assert fit.run_exponents == pytest.approx((0.50, 0.55), abs=1e-9)
    assert fit.stderr == pytest.approx(0.025, rel=1e-6)


def test_power_law_fit_single_run_residual_error():
    t = np.logspace(1, 3, 40)
    wiggle = 1 + 0.05 * np.sin(np.log(t) * 3)
    fit = fit_power_law(t, 2.0 * t ** 0.6 * wiggle)
    assert abs(fit.exponent - 0.6) < 0.02
    assert 0 < fit.stderr < 0.02
    assert fit.run_exponents == ()
    assert fit.as_dict()["run_exponents"] == []
