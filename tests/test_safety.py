"""Reliability of the array API: no crash, no overflow, no silent dtype change, bounded work.

Each test reproduces a fault found on real scans (issue: "no crash, no silent data loss,
bounded memory and time") and covers its family: every conductance, method, dimension,
dtype and byte order.
"""

import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pdediff
from pdediff import StepLimitError
from pdediff.errors import ParameterError

CONDUCTANCES = ("exponential", "rational", "tukey")
METHODS = ("explicit", "aos")
SHAPES = {1: (23,), 2: (9, 11), 3: (5, 6, 7)}


# ----------------------------------------------------------------- kernels never crash
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("conductance", CONDUCTANCES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_non_finite_input_never_crashes(ndim, method, conductance, dtype, bad, rng):
    """Used to segfault (NaN -> out-of-range table index in the vectorised exp)."""
    u = rng.random(SHAPES[ndim]).astype(dtype)
    u.flat[u.size // 2] = bad
    out = pdediff.perona_malik(u, method=method, conductance=conductance, check_finite=False, num_iter=2)
    assert out.shape == u.shape and out.dtype == dtype
    # Non-finite values spread at most one cell per explicit step; far corners stay finite.
    if method == "explicit" and ndim >= 2:
        assert np.isfinite(out.flat[0])


@pytest.mark.parametrize("colour", [False, True])
def test_non_finite_colour_and_callable_never_crash(colour, rng):
    u = rng.random((8, 9, 3) if colour else (8, 9))
    u[2, 2] = np.nan
    pdediff.perona_malik(u, channel_axis=-1 if colour else None, check_finite=False, num_iter=2)
    pdediff.perona_malik(u, conductance=lambda s, k: 1 / (1 + (s / k) ** 2), channel_axis=-1 if colour else None,
                         check_finite=False, num_iter=2, kappa=0.5)


@pytest.mark.parametrize("scale", [1e25, 1e30, 3e38])
@pytest.mark.parametrize("conductance", CONDUCTANCES)
@pytest.mark.parametrize("method", METHODS)
def test_huge_float32_values_are_exactly_scaled(scale, conductance, method, rng):
    """Used to segfault at ~1e25 (d^2 overflowed, kinv2 underflowed: inf * 0 = NaN)."""
    base = rng.random((12, 13)).astype(np.float32) * 2 - 1
    e = int(np.floor(np.log2(scale)))
    u = base * np.float32(2.0**e)
    out, info = pdediff.perona_malik(u, method=method, conductance=conductance, return_info=True)
    ref, rinfo = pdediff.perona_malik(base, method=method, conductance=conductance, return_info=True)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, ref * np.float32(2.0**e))  # powers of two: bit for bit
    assert info.kappa == pytest.approx(rinfo.kappa * 2.0**e, rel=1e-12)


@pytest.mark.parametrize("dtype,tiny", [(np.float32, 1e-44), (np.float64, 1e-310)])
def test_subnormal_input_is_diffused_not_flushed(dtype, tiny, rng):
    u = (rng.random((10, 10)) * tiny).astype(dtype)
    out = pdediff.perona_malik(u, sigma=0.0, kappa=1e300, num_iter=3)
    spread = lambda x: np.std(x.astype(np.float64) / tiny)  # noqa: E731 - numpy's std underflows here
    assert np.isfinite(out).all() and spread(out) < spread(u)
    assert out.min() >= u.min() and out.max() <= u.max()


def test_spacing_is_nondimensionalised_exactly(rng):
    u = rng.random((10, 12))
    for h in (2.0**-40, 4.0, 2.0**60):
        np.testing.assert_array_equal(pdediff.perona_malik(u, spacing=h, sigma=0.0), pdediff.perona_malik(u, sigma=0.0))


def test_kappa_extremes(rng):
    """kappa=1e-300 raised ZeroDivisionError; now: no diffusion across any non-zero gradient."""
    u = rng.random((9, 10))
    for method in METHODS:
        np.testing.assert_array_equal(pdediff.perona_malik(u, kappa=1e-300, sigma=0.0, method=method), u)
        # g = 1 everywhere (a callable conductance: the array path, not the compiled one)
        heat = pdediff.perona_malik(u, kappa=1.0, conductance=lambda s, k: np.ones_like(s), method=method)
        np.testing.assert_allclose(pdediff.perona_malik(u, kappa=1e300, method=method), heat, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="kappa must be positive"):
        pdediff.perona_malik(u, kappa=float("nan"))
    with pytest.raises(pdediff.ParameterError, match="kappa must be a positive finite number.*solve_heat"):
        pdediff.perona_malik(u, kappa=float("inf"))


FLOAT_DTYPES = ["<f2", ">f2", "<f4", ">f4", "<f8", ">f8"]
INT_DTYPES = [f"{o}{k}{n}" for o in "<>" for k in "iu" for n in (1, 2, 4, 8)]


@st.composite
def images(draw):
    dtype = np.dtype(draw(st.sampled_from(FLOAT_DTYPES + INT_DTYPES)))
    ndim = draw(st.sampled_from([1, 2, 3]))
    shape = SHAPES[ndim]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype.kind == "f":
        finfo = np.finfo(dtype)
        mag = draw(st.sampled_from([1.0, 1e-30, 1e30, float(finfo.tiny) / 4, float(finfo.max) / 2]))
        mag = min(mag, float(finfo.max) / 2)
        u = (rng.uniform(-1.0, 1.0, shape) * mag).clip(-float(finfo.max), float(finfo.max)).astype(dtype)
        assert np.isfinite(u).all()
    else:
        info = np.iinfo(dtype)
        u = rng.integers(info.min, info.max, shape, dtype=dtype.newbyteorder("="), endpoint=True).astype(dtype)
    return u


@given(u=images(), method=st.sampled_from(METHODS), conductance=st.sampled_from(CONDUCTANCES))
def test_any_finite_input_gives_finite_output_within_its_range(u, method, conductance):
    out = pdediff.perona_malik(u, method=method, conductance=conductance, num_iter=2)
    expected = np.float64 if u.dtype.kind in "iu" or u.dtype.itemsize == 8 else np.float32
    assert out.dtype == expected and out.dtype.isnative
    assert np.isfinite(out).all()
    lo, hi = float(u.min()), float(u.max())
    slack = 1e-5 * max(abs(lo), abs(hi))  # rounding of the float32/float64 arithmetic
    assert lo - slack <= float(out.min()) and float(out.max()) <= hi + slack  # maximum principle


# ------------------------------------------------------------ byte order and float16
@pytest.mark.parametrize("dtype", [">f4", ">f8", ">i2", "<u2", ">u8"])
def test_any_byte_order_is_accepted_and_computed_natively(dtype, rng):
    native = (rng.random((8, 9)) * 100).astype(np.dtype(dtype).newbyteorder("="))
    swapped = native.astype(dtype)
    assert swapped.dtype.byteorder in (">", "<", "|", "=")
    for fn in (lambda x: pdediff.perona_malik(x), lambda x: pdediff.solve_heat(x, 1.5),
               lambda x: pdediff.solve_heat(x, 1.5, method="implicit")):
        a, b = fn(swapped), fn(native)
        assert a.dtype.isnative and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_float16_is_promoted_to_float32(rng):
    u = rng.random((10, 11)).astype(np.float16)
    out = pdediff.perona_malik(u)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, pdediff.perona_malik(u.astype(np.float32)))
    assert pdediff.solve_heat(u, 1.0).dtype == np.float32


# ---------------------------------------------------------------------- bounded work
def test_too_many_heat_steps_fail_fast_with_the_alternative():
    u = np.random.default_rng(0).random((16, 16))
    t0 = time.perf_counter()
    with pytest.raises(StepLimitError, match=r"4e\+12 time steps.*method='spectral'.*max_steps=None"):
        pdediff.solve_heat(u, 1e12, method="explicit")
    with pytest.raises(StepLimitError, match="implicit.*1e\\+15"):
        pdediff.solve_heat(u, 1e12, method="implicit", dt=1e-3)
    with pytest.raises(StepLimitError, match="more than max_steps=10"):
        pdediff.solve_heat(u, [1.0, 2.0, 3.0], method="explicit", max_steps=10)
    assert time.perf_counter() - t0 < 10.0  # raised before any step: not a timing claim
    assert issubclass(StepLimitError, ValueError)
    # Within the limit, or with the limit lifted, it runs; the spectral method never counts steps.
    pdediff.solve_heat(u, 2.5, method="explicit", max_steps=10)
    pdediff.solve_heat(u, 30.0, method="explicit", max_steps=None)
    pdediff.solve_heat(u, 1e12, max_steps=1)


@pytest.mark.parametrize("bad", [1.5, True, "10"])
def test_max_steps_is_validated(bad):
    with pytest.raises(TypeError, match="max_steps must be a positive integer or None"):
        pdediff.solve_heat(np.zeros(4), 1.0, max_steps=bad)
    with pytest.raises(TypeError, match="max_steps"):
        pdediff.perona_malik(np.zeros((4, 4)), max_steps=bad)


@pytest.mark.parametrize("bad", [0, -1, np.int64(0)])
def test_max_steps_value_is_a_parameter_error(bad):
    # An integer of the wrong value is a ValueError naming max_steps (it was a TypeError: the type was right).
    for call in (lambda: pdediff.solve_heat(np.zeros(4), 1.0, method="explicit", max_steps=bad),
                 lambda: pdediff.perona_malik(np.zeros((4, 4)), max_steps=bad)):
        with pytest.raises(ParameterError, match=r"max_steps must be a positive integer, or max_steps=None") as e:
            call()
        assert e.value.param == "max_steps"


def test_perona_malik_step_limit(rng):
    u = rng.random((8, 8))
    with pytest.raises(StepLimitError, match="dt=1e-12.*larger dt"):
        pdediff.perona_malik(u, dt=1e-12)
    with pytest.raises(StepLimitError, match="num_iter=1000000000.*aos"):
        pdediff.perona_malik(u, num_iter=10**9)
    assert pdediff.perona_malik(u, num_iter=20, max_steps=20).shape == u.shape


def test_huge_sigma_costs_one_transform_and_is_a_global_average(rng, monkeypatch):
    """--sigma 1e6 ran for over 10 minutes (a 8e6-tap convolution per axis per step)."""
    import scipy.ndimage

    def refuse(*a, **k):
        raise AssertionError("a wide Gaussian must not run as a convolution")

    monkeypatch.setattr(scipy.ndimage, "gaussian_filter", refuse)
    u = rng.random((64, 80)).astype(np.float32)
    out = pdediff.perona_malik(u, sigma=1e6, num_iter=2)
    # The smoothed image is constant, so every face conducts fully: two plain heat steps.
    np.testing.assert_allclose(out, pdediff.perona_malik(u, sigma=0.0, kappa=1e300, num_iter=2), atol=1e-6)


def test_wide_sigma_switches_to_the_exact_gaussian_continuously(rng):
    from scipy.ndimage import gaussian_filter

    from pdediff.anisotropic._steppers import SPECTRAL_SMOOTHING_MIN_PIXELS, make_smoother
    from pdediff.kernels.cpu.backend import CPU

    u = rng.random((1, 60, 70))
    for s in (SPECTRAL_SMOOTHING_MIN_PIXELS * 1.01, 10.0):
        fast = make_smoother(s, (1.0, 1.0), u.shape, u.dtype, CPU)(u)
        np.testing.assert_allclose(fast[0], gaussian_filter(u[0], s, mode="reflect"), atol=2e-4)


# --------------------------------------------------------------------------- torch
def test_torch_half_precision_is_computed_in_float32():
    torch = pytest.importorskip("torch")
    from pdediff.torch import heat_blur, perona_malik

    x = torch.rand(2, 1, 12, 10, dtype=torch.float32)
    for dt in (torch.float16, torch.bfloat16):
        xh = x.to(dt).requires_grad_(True)
        y = heat_blur(xh, 2.0)
        assert y.dtype == dt
        torch.testing.assert_close(y.float(), heat_blur(xh.detach().float(), 2.0), atol=1e-2, rtol=0)
        y.sum().backward()
        assert xh.grad.dtype == dt
        assert perona_malik(x.to(dt)).dtype == dt
    with pytest.raises(TypeError, match="float16, bfloat16, float32 or float64"):
        heat_blur(torch.zeros(2, 4, 4, dtype=torch.int32), 1.0)
