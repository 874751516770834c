"""Accuracy against the analytic modes of docs/conventions.rst §3 and observed convergence orders."""

import numpy as np
import pytest
from common import BOUNDARIES, DTYPES

import pdediff
from pdediff import analytic

T = 0.02
SIZES = {1: (16, 32, 64), 2: (12, 24, 48), 3: (8, 16, 32)}


def _shape(n, ndim):
    return (n, n + n // 2, n)[:ndim]  # rectangular: unequal axes, unit domain per axis


def _error(method, boundary, ndim, n, dtype=np.float64, **kw):
    shape = _shape(n, ndim)
    h = tuple(1.0 / s for s in shape)
    u0 = analytic.mode(shape, spacing=h, boundary=boundary).astype(dtype)
    exact = analytic.mode_solution(shape, T, spacing=h, boundary=boundary)
    u = pdediff.solve_heat(u0, T, method=method, spacing=h, boundary=boundary, **kw)
    return np.abs(u - exact).max() / np.abs(exact).max(), u


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_spectral_is_exact(boundary, ndim, dtype):
    err, u = _error("spectral", boundary, ndim, SIZES[ndim][1], dtype)
    assert u.dtype == dtype
    assert err <= (1e-10 if dtype == np.float64 else 1e-6)


def _orders(errors):
    e = np.asarray(errors)
    return np.log2(e[:-1] / e[1:])


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize(
    "method,scheme,order",
    [("explicit", None, 2.0), ("implicit", "crank-nicolson", 2.0), ("implicit", "backward-euler", 1.0)],
)
def test_observed_convergence_order(method, scheme, order, boundary, ndim):
    """Three refinements; dt ~ h^2 (explicit) or dt ~ h (implicit), so the observed order is the scheme's."""
    errors = []
    for n in SIZES[ndim]:
        h = 1.0 / n
        if method == "explicit":
            kw = {"dt": None}  # the stability limit: proportional to h^2
        else:
            kw = {"dt": T * h, "scheme": scheme}  # n steps: dt proportional to h
        errors.append(_error(method, boundary, ndim, n, **kw)[0])
    orders = _orders(errors)
    assert np.all(np.abs(orders - order) < 0.3), (errors, orders)


@pytest.mark.parametrize("method", ["explicit", "implicit"])
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_float32_matches_float64(method, boundary, ndim):
    n = SIZES[ndim][1]
    e64, u64 = _error(method, boundary, ndim, n, np.float64)
    e32, u32 = _error(method, boundary, ndim, n, np.float32)
    assert u32.dtype == np.float32
    assert np.abs(u32 - u64).max() / np.abs(u64).max() < 2e-5


@pytest.mark.parametrize("scheme,time_order", [(None, 1), ("crank-nicolson", 2), ("backward-euler", 1)])
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_time_error_against_discrete_spectrum(scheme, time_order, boundary, ndim, rng):
    """Against the semi-discrete exact solution only the time error remains: it shrinks as dt^order."""
    shape = _shape(SIZES[ndim][0], ndim)
    # smooth random data (asymptotic regime of every mode present)
    u0 = pdediff.solve_heat(rng.standard_normal(shape), 2.0, boundary=boundary)
    exact = pdediff.solve_heat(u0, 1.0, boundary=boundary, spectrum="discrete")
    method = "explicit" if scheme is None else "implicit"
    dt0 = 1.0 / (2 * ndim) / 2 if method == "explicit" else 0.25
    errs = []
    for dt in (dt0, dt0 / 2, dt0 / 4):
        kw = {"dt": dt} if scheme is None else {"dt": dt, "scheme": scheme}
        u = pdediff.solve_heat(u0, 1.0, method=method, boundary=boundary, **kw)
        errs.append(np.abs(u - exact).max())
    orders = _orders(errs)
    assert np.all(np.abs(orders - time_order) < 0.3), (errs, orders)
    assert errs[-1] < 0.05 * np.abs(u0).max()


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_methods_agree_on_refined_grid(boundary):
    """Explicit, implicit and spectral discretise the same problem (docs/conventions.rst §2)."""
    shape = (40, 56)
    h = (1 / 40, 1 / 56)
    x = np.meshgrid(*[(np.arange(n) + 0.5) * hh for n, hh in zip(shape, h)], indexing="ij")
    u0 = np.exp(-((x[0] - 0.4) ** 2 + (x[1] - 0.55) ** 2) / 0.02)
    us = [pdediff.solve_heat(u0, 0.01, method=m, spacing=h, boundary=boundary)
          for m in ("spectral", "explicit", "implicit")]
    assert np.abs(us[1] - us[0]).max() < 5e-3
    assert np.abs(us[2] - us[0]).max() < 5e-3


def test_time_sequence_snapshots(rng):
    u0 = rng.standard_normal((10, 12))
    ts = [0.0, 0.3, 0.3, 1.1]
    for method in ("spectral", "explicit", "implicit"):
        snaps = pdediff.solve_heat(u0, ts, method=method)
        assert snaps.shape == (4, 10, 12)
        np.testing.assert_array_equal(snaps[0], u0)
        np.testing.assert_allclose(snaps[1], snaps[2])
        # each interval is stepped on its own: restarting from a snapshot reproduces the next one
        np.testing.assert_allclose(snaps[3], pdediff.solve_heat(snaps[1], 0.8, method=method), atol=1e-12)


def test_gaussian_blur_equivalence():
    """Away from the boundary, heat flow for t equals a Gaussian blur of sigma = sqrt(2 D t)."""
    from scipy.ndimage import gaussian_filter

    u0 = np.zeros((129, 129))
    u0[64, 64] = 1.0
    t, D = 3.0, 1.5
    u = pdediff.solve_heat(u0, t, diffusivity=D)
    g = gaussian_filter(u0, analytic.gaussian_sigma(t, D), mode="reflect", truncate=8)
    assert np.abs(u - g).max() < 2e-3 * u.max()
    assert analytic.time_for_sigma(analytic.gaussian_sigma(t, D), D) == pytest.approx(t)


def test_integer_images_are_promoted_without_rescaling():
    u0 = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    u = pdediff.solve_heat(u0, 0.0)
    assert u.dtype == np.float64
    np.testing.assert_allclose(u, u0.astype(float))
    assert pdediff.solve_heat(u0, 1.0).mean() == pytest.approx(u0.mean())
