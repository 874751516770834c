"""Float32 at any time step, and values up to the dtype's maximum (issue 20, items 2 and 3).

* Implicit heat (1-D Crank–Nicolson / backward Euler, 2-D/3-D ADI with constant
  diffusivity) against the scheme's exact modal solution (its amplification factor
  per eigenmode, evaluated stably in float64): float32 and float64 both to their
  precision, for every ``dt`` up to float64's maximum.  Before the fix float32 gave
  NaN from ``dt ~ 1e7`` on (``1 + dt L`` lost its 1) and float64 from ``dt ~ 1e16``.
* The maximum principle of AOS Perona–Malik and 1-D backward Euler for any ``dt``,
  and AOS float32 against float64 -- through the NumPy, torch and Dask entry points.
* Heat solvers on any finite input: the result for ``u * 2**k`` is the result for
  ``u`` times ``2**k``, bit for bit, up to the dtype's maximum (before: inf/NaN).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
from hypothesis import given, settings
from hypothesis import strategies as st

import pdediff
from pdediff.grid import axis_symbol

F32_MAX = float(np.finfo(np.float32).max)
DTYPES = st.sampled_from([np.float32, np.float64])
SHAPES = st.lists(st.integers(1, 7), min_size=1, max_size=3).map(tuple)
#: Time steps log-uniform from 1e-3 to float64's maximum (any positive finite dt is accepted).
DTS = st.tuples(st.floats(1.0, 9.99), st.integers(-3, 307)).map(lambda t: min(t[0] * 10.0 ** t[1], 1.79e308))
BOUNDARIES = st.sampled_from(["neumann", "dirichlet", "periodic"])
SCHEMES = st.sampled_from(["crank-nicolson", "backward-euler"])


def _field(seed: int, shape, dtype, magnitude: float) -> np.ndarray:
    """Values of both signs, ``|u|`` in ``[magnitude / 2**10, magnitude]`` (no subnormals)."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(2.0**-10, 1.0, shape) * rng.choice([-1.0, 1.0], shape)
    return (u * magnitude).astype(dtype)


def _transform(boundary: str):
    if boundary == "neumann":
        return (lambda u: scipy.fft.dctn(u, type=2, norm="ortho"), lambda c: scipy.fft.idctn(c, type=2, norm="ortho"))
    if boundary == "dirichlet":
        return (lambda u: scipy.fft.dstn(u, type=2, norm="ortho"), lambda c: scipy.fft.idstn(c, type=2, norm="ortho"))
    return (lambda u: scipy.fft.fftn(u), lambda c: scipy.fft.ifftn(c).real)


def _modal_step(u: np.ndarray, dt: float, theta: float, boundary: str) -> np.ndarray:
    """One step of the Douglas scheme (1-D: Crank–Nicolson / backward Euler) with D = h = 1, exactly per mode.

    Amplification ``1 - sum_a q_a prod_{b != a} s_b`` with ``s_a = 1 / (1 + theta dt lambda_a)`` and
    ``q_a = dt lambda_a s_a`` (written so that no term overflows or cancels for any dt).
    """
    fwd, inv = _transform(boundary)
    lams = [axis_symbol(n, 1.0, boundary, "discrete") for n in u.shape]
    grids = np.meshgrid(*lams, indexing="ij")
    with np.errstate(over="ignore", divide="ignore"):
        s = [1.0 / (1.0 + theta * dt * lam) for lam in grids]
        q = [np.where(lam > 0, 1.0 / (1.0 / (dt * lam) + theta), 0.0) for lam in grids]
    g = np.ones_like(grids[0])
    for a in range(u.ndim):
        term = q[a].copy()
        for b in range(u.ndim):
            if b != a:
                term *= s[b]
        g -= term
    return inv(fwd(u) * g)


@given(st.integers(0, 2**32 - 1), SHAPES, DTYPES, DTS, SCHEMES, BOUNDARIES, st.floats(1e-30, 1e30))
@settings(max_examples=60)
def test_implicit_step_equals_the_exact_scheme_at_any_dt(seed, shape, dtype, dt, scheme, boundary, magnitude):
    u = _field(seed, shape, dtype, magnitude)
    solver = pdediff.ImplicitHeatSolver(shape, dtype, boundary=boundary, scheme=scheme)
    theta = 0.5 if scheme == "crank-nicolson" else 1.0
    want = _modal_step(u.astype(np.float64), dt, theta, boundary)
    got = solver.step(u.copy(), dt=dt)
    assert np.all(np.isfinite(got))
    amax = float(np.abs(u).max())
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * amax)


@given(st.integers(0, 2**32 - 1), st.integers(1, 40), DTYPES, DTS, st.sampled_from(["neumann", "dirichlet"]),
       st.floats(1e-30, 1e30))
def test_backward_euler_1d_keeps_the_range_for_any_dt(seed, n, dtype, dt, boundary, magnitude):
    """``(I - dt L)^{-1}`` is a non-negative matrix with row sums <= 1: the maximum principle, for every dt."""
    u = _field(seed, (n,), dtype, magnitude)
    got = pdediff.solve_heat(u, dt, method="implicit", dt=dt, scheme="backward-euler", boundary=boundary)
    lo, hi = float(u.min()), float(u.max())
    if boundary == "dirichlet":  # the boundary value 0 is part of the bounds
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    slack = 8 * n * np.finfo(dtype).eps * float(np.abs(u).max())
    assert lo - slack <= float(got.min()) and float(got.max()) <= hi + slack


def _pm_image(seed: int, shape, dtype, magnitude: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u = rng.random(shape)
    u[tuple(slice(0, max(1, s // 2)) for s in shape)] += 1.0  # an edge, so that conductances vary
    return (u * magnitude).astype(dtype)


@given(st.integers(0, 2**32 - 1), st.lists(st.integers(2, 9), min_size=1, max_size=3).map(tuple), DTS,
       st.sampled_from(["exponential", "rational", "tukey"]), st.floats(1e-30, F32_MAX / 4))
@settings(max_examples=40)
def test_aos_float32_equals_float64_and_keeps_the_range(seed, shape, dt, conductance, magnitude):
    u = _pm_image(seed, shape, np.float32, magnitude)
    kw = {"method": "aos", "dt": dt, "num_iter": 2, "conductance": conductance}
    got = pdediff.perona_malik(u, **kw)
    want = pdediff.perona_malik(u.astype(np.float64), **kw)
    assert np.all(np.isfinite(got))
    span = float(u.max()) - float(u.min())
    # the maximum principle, to rounding
    slack = 1e-6 * float(np.abs(u).max())
    assert float(u.min()) - slack <= float(got.min()) and float(got.max()) <= float(u.max()) + slack
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * span + slack)


@pytest.mark.parametrize("dt", [1e5, 1e9, 1e30, 1e300])
def test_aos_through_torch_and_dask(dt):
    """The torch bridge and Dask run the same kernels: finite and inside the input's range at any dt."""
    u = _pm_image(7, (24, 20), np.float32, 255.0)
    want = pdediff.perona_malik(u.astype(np.float64), method="aos", dt=dt, num_iter=3, kappa=20.0)
    torch = pytest.importorskip("torch")
    from pdediff.torch import perona_malik as torch_pm

    got = torch_pm(torch.from_numpy(u.copy()), method="aos", dt=dt, num_iter=3, kappa=20.0).numpy()
    assert float(got.min()) >= float(u.min()) - 1e-4 and float(got.max()) <= float(u.max()) + 1e-4
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)
    da = pytest.importorskip("dask.array")
    lazy = pdediff.perona_malik(da.from_array(u, chunks=(12, 10)), method="aos", dt=dt, num_iter=3, kappa=20.0)
    got = np.asarray(lazy.compute())
    assert np.all(np.isfinite(got))
    assert float(got.min()) >= float(u.min()) - 1e-4 and float(got.max()) <= float(u.max()) + 1e-4


METHODS = st.sampled_from(["explicit", "implicit", "spectral"])


@given(st.integers(0, 2**32 - 1), SHAPES, DTYPES, METHODS, BOUNDARIES, st.integers(0, 12), st.booleans())
def test_heat_results_scale_exactly_up_to_the_dtype_maximum(seed, shape, dtype, method, boundary, j, variable):
    """``solve_heat(u * 2**k) == solve_heat(u) * 2**k`` bit for bit, for ``max|u * 2**k|`` up to the dtype's
    maximum (``k = emax - j``, where intermediates overflowed before): the solvers scale by exact powers of
    two where values are large (no inf, no NaN), and ``u`` itself (``k = 0``) runs unscaled."""
    k = (127 if dtype == np.float32 else 1023) - j
    u = _field(seed, shape, dtype, 1.0)
    kw = {"method": method, "boundary": boundary}
    if variable and method != "spectral":
        kw["diffusivity"] = np.random.default_rng(seed).uniform(0.5, 2.0, shape)
    base = pdediff.solve_heat(u, 0.7, **kw)
    factor = dtype(2.0**k)  # |u| <= 1, so max|u * factor| <= 2**k <= the dtype's maximum
    big = pdediff.solve_heat(u * factor, 0.7, **kw)
    assert np.all(np.isfinite(big))
    np.testing.assert_array_equal(big, base * factor)


@pytest.mark.parametrize("method", ["explicit", "implicit", "spectral"])
@pytest.mark.parametrize("value", [1e36, 3e38])
def test_camera_like_image_of_huge_values(method, value):
    """The issue's case: ``np.where(camera > 128, 1e36, -1e36)`` in float32 (all NaN before), and +-3e38."""
    rng = np.random.default_rng(3)
    cam = rng.random((512, 512)) * 255  # the camera's size: its spectral coefficients reach 5e38 at 1e36
    cam[80:240, 60:400] = 250.0
    u = np.where(cam > 128, value, -value).astype(np.float32)
    got = pdediff.solve_heat(u, 1.0, method=method)
    assert np.all(np.isfinite(got))
    want = pdediff.solve_heat(u.astype(np.float64) / value, 1.0, method=method) * value
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * value)
    # within the input's range (Neumann); the spectral method's continuous eigenvalues (and Crank–Nicolson at
    # the default 4 dt_max) are not positivity-preserving by a few ppm, in float64 as well: that much slack
    bound = float(np.float32(value)) * (1 + 2e-5)
    assert -bound <= float(got.min()) and float(got.max()) <= bound


def test_scaling_is_skipped_for_ordinary_values():
    """Values far from overflow take the unscaled computation itself (bit for bit what it was)."""
    from pdediff.heat._base import overflow_scale

    u = np.full((4, 4), 1e30, np.float32)
    assert overflow_scale(u, 8.0) == 1.0
    assert overflow_scale(np.full((4, 4), 3e38, np.float32), 8.0) == 2.0**-11
    assert overflow_scale(np.array([np.nan, 1e38], np.float32), 8.0) == 1.0
    assert math.isfinite(overflow_scale(np.full(3, 1.7e308), 1e30))


@pytest.mark.parametrize("method", ["spectral", "explicit", "implicit"])
@pytest.mark.parametrize("sign", ["constant", "alternating"])
def test_float64_near_its_maximum_is_finite(method, sign):
    """1e308 in float64 (found by a fresh-eyes test: all NaN, because max|u| * growth overflowed the
    scale computation itself)."""
    u = np.full((8, 8), 1e308)
    if sign == "alternating":
        u[::2] *= -1
    r = pdediff.solve_heat(u, 1.0, method=method)
    assert np.isfinite(r).all()
    tol = 1e-9 * 1e308
    assert u.min() - tol <= r.min() and r.max() <= u.max() + tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backend_abs_max_equals_numpy(dtype):
    """CPUBackend.abs_max (one fused integer-max pass, the overflow scaling's scan) equals max(|max u|, |min u|)
    exactly, with the threaded and the serial build; NaN wins over inf, inf over every finite value; -0 is 0."""
    from pdediff.kernels.cpu._common import kernel_builds
    from pdediff.kernels.cpu.backend import CPU

    rng = np.random.default_rng(3)
    fmax = float(np.finfo(dtype).max)
    for u in (rng.standard_normal(10007).astype(dtype) * dtype(1e3),  # a size no block count divides
              -np.abs(rng.standard_normal((70, 90))).astype(dtype),  # the largest magnitude negative
              np.array([-0.0, 0.0], dtype), np.array([fmax, -fmax, 1.0], dtype),
              rng.standard_normal((5, 6, 7)).astype(dtype)[:, ::2]):  # not contiguous: NumPy's path
        assert CPU.abs_max(u) == max(float(u.max()), -float(u.min()))
    u = rng.standard_normal(5000).astype(dtype)
    u[17] = -np.inf
    assert CPU.abs_max(u) == np.inf
    u[4000] = np.nan
    assert np.isnan(CPU.abs_max(u))
    assert CPU.abs_max(np.zeros(0, dtype)) == 0.0
    ut = np.uint32 if dtype == np.float32 else np.uint64
    bits = (rng.standard_normal(9999).astype(dtype) * dtype(7)).view(ut)
    mask = ut(np.iinfo(ut).max >> 1)
    k = kernel_builds("abs_max_bits", 0, "")
    expect = (bits & mask).max()
    for nblocks in (1, 3, 8):
        assert k.serial(bits, mask, nblocks) == expect
        assert k.parallel(bits, mask, nblocks) == expect
