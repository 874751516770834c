"""The fused Numba Gaussian (Catté smoothing) against scipy.ndimage.gaussian_filter, and exact cases."""

import numpy as np
import pytest
import scipy.ndimage as ndi

from pdediff.anisotropic._steppers import make_smoother
from pdediff.kernels.cpu import gaussian
from pdediff.kernels.cpu._common import kernel_builds
from pdediff.kernels.cpu.backend import CPU

# float32 is computed in float32 (SciPy: float64 per axis), so it agrees to a few ulp of max|u|
TOL = {np.float32: 1e-6, np.float64: 1e-13}


def _scipy(u, sigma):
    return np.stack([ndi.gaussian_filter(u[c].astype(np.float64), sigma, mode="reflect", truncate=4.0)
                     for c in range(u.shape[0])])


def _close(got, ref, dtype):
    scale = max(np.abs(ref).max(), 1e-300)
    assert np.abs(got.astype(np.float64) - ref).max() <= TOL[dtype] * scale


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1,), (2,), (37,), (1, 9), (3, 5), (61, 70), (2, 3, 4), (13, 17, 19), (1, 7, 9)])
@pytest.mark.parametrize("sigma", [0.8, 0.3, 1.7])
def test_equals_scipy(rng, shape, dtype, sigma):
    """Sizes that are not multiples of anything, axes shorter than the kernel (repeated reflection)."""
    u = rng.standard_normal((2, *shape)).astype(dtype)
    sig = tuple(sigma * (1 + 0.25 * a) for a in range(len(shape)))  # a different sigma per axis
    got = CPU.gaussian_filter(u, sig)
    assert got.dtype == dtype and got.shape == u.shape
    _close(got, _scipy(u, sig), dtype)


@pytest.mark.parametrize("sig", [(0.0, 0.9), (0.9, 0.0), (0.0, 0.0, 1.1), (2.0, 0.0, 0.0), (1e-16, 3.9)])
def test_axes_without_smoothing(rng, sig):
    """sigma 0 (or <= 1e-15, which SciPy skips) leaves that axis alone."""
    u = rng.standard_normal((1, *(11,) * len(sig)))
    _close(CPU.gaussian_filter(u, sig), _scipy(u, sig), np.float64)


def test_weights_are_scipys(rng):
    """The weights are the response to a unit impulse of SciPy's gaussian_filter1d (same truncation)."""
    for s in (0.3, 0.8, 1.0, 2.6):
        w = gaussian.gaussian_weights(s, np.float64)
        r = len(w) - 1
        assert r == int(4.0 * s + 0.5)
        delta = np.zeros(4 * r + 3)
        delta[2 * r + 1] = 1.0
        ref = ndi.gaussian_filter1d(delta, s, mode="constant")
        np.testing.assert_allclose(w, ref[2 * r + 1 : 3 * r + 2], rtol=1e-14, atol=1e-17)
    np.testing.assert_array_equal(gaussian.gaussian_weights(0.0, np.float32), [1.0])


@pytest.mark.parametrize("shape", [(1, 50), (1, 23, 31), (2, 9, 10, 11)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_cases(rng, shape, dtype):
    """A constant stays constant; reflection conserves the sum; a linear ramp away from borders stays."""
    sig = (0.8,) * (len(shape) - 1)
    c = np.full(shape, 3.5, dtype=dtype)
    np.testing.assert_allclose(CPU.gaussian_filter(c, sig), c, rtol=4 * np.finfo(dtype).eps)
    u = rng.random(shape).astype(np.float64)
    np.testing.assert_allclose(CPU.gaussian_filter(u, sig).sum(), u.sum(), rtol=1e-12)
    ramp = np.broadcast_to(np.arange(shape[-1], dtype=np.float64), shape).copy()
    out = CPU.gaussian_filter(ramp, sig)
    np.testing.assert_allclose(out[..., 4:-4], ramp[..., 4:-4], rtol=1e-13, atol=1e-12)  # symmetric kernel


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_and_parallel_builds_identical(rng, ndim, dtype):
    """Any block count, either build: the same bits (the blocks only split the output rows/planes)."""
    u = rng.standard_normal((2,) + (23, 19, 17)[:ndim]).astype(dtype)
    w = [gaussian.gaussian_weights(s, dtype) for s in (0.8, 1.3, 0.5)[:ndim]]
    k = kernel_builds("gaussian", ndim, "")
    ref = np.empty_like(u)
    k.serial(u, ref, *w, 1)
    for build, nb in ((k.serial, 5), (k.parallel, 1), (k.parallel, 7), (k.parallel, 23)):
        out = np.empty_like(u)
        build(u, out, *w, nb)
        np.testing.assert_array_equal(out, ref)


def test_out_argument_and_fallback(rng):
    u = rng.standard_normal((1, 12, 13))
    out = np.empty_like(u)
    assert CPU.gaussian_filter(u, (0.8, 0.8), out=out) is out
    _close(out, _scipy(u, (0.8, 0.8)), np.float64)
    for bad in (np.empty((1, 12, 12)), np.empty_like(u, dtype=np.float32), u, np.empty((1, 13, 12)).T):
        with pytest.raises(ValueError, match="out must be"):
            CPU.gaussian_filter(u, (0.8, 0.8), out=bad)
    # 4 spatial axes (no kernel for them) still go through SciPy
    v = rng.standard_normal((1, 4, 5, 6, 7))
    _close(CPU.gaussian_filter(v, (0.8,) * 4), _scipy(v, (0.8,) * 4), np.float64)


def test_smoother_reuses_its_buffer(rng):
    """make_smoother: physical sigma / spacing in pixels, one output buffer for all calls."""
    u = rng.standard_normal((1, 20, 30)).astype(np.float32)
    smooth = make_smoother(1.0, (1.0, 2.0), u.shape, u.dtype, CPU)
    a = smooth(u)
    _close(a, _scipy(u, (1.0, 0.5)), np.float32)
    b = smooth(2 * u)
    assert b is a  # same buffer, new content
    _close(b, _scipy(2 * u, (1.0, 0.5)), np.float32)
    v = rng.standard_normal((1, 8, 9))  # another shape/dtype: a new buffer
    _close(smooth(v), _scipy(v, (1.0, 0.5)), np.float64)
