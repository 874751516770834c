"""Fused separable Gaussian smoothing (the Catté pre-smoothing of Perona–Malik), 1-D to 3-D.

The result is ``scipy.ndimage.gaussian_filter(u, sigma, mode="reflect", truncate=4.0)``
of each channel: the same normalised weights ``exp(-x^2 / (2 sigma^2))`` on
``|x| <= int(4 sigma + 0.5)`` cells (:func:`gaussian_weights`), the same
half-sample reflection ``d c b a | a b c d | d c b a`` (repeated when the
kernel is wider than the axis), the same axis order.  Arithmetic is in the
data's dtype: float32 images are smoothed with float32 weights and float32
accumulation (SciPy accumulates in float64 and rounds after each axis), which
keeps the vector width at 8 lanes; the two agree to a few float32 ulp of
``max|u|`` (tested to 1e-6 relative).  float64 agrees to rounding.

Fusion: SciPy makes one pass over memory per axis (plus float64 line
buffers).  Here each output row is produced in one go: the weighted sum of the
``2 r + 1`` input rows around it along y (contiguous, vectorised across the
row) goes into a small row buffer with reflected ends, then the x taps run
along that buffer into the output row.  In 3-D the z sum of a plane is first
formed into a plane buffer (cache-resident at the sizes that matter), then
treated as above.  So the input is read once and the output written once;
rows (2-D) or planes (3-D) are split over threads in the parallel build.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import register_kernel

__all__ = ["TRUNCATE", "gaussian_weights"]

#: scipy.ndimage.gaussian_filter's default: the kernel reaches ``int(TRUNCATE * sigma + 0.5)`` cells.
TRUNCATE = 4.0


def gaussian_weights(sigma: float, dtype, truncate: float = TRUNCATE) -> np.ndarray:
    """Half of SciPy's normalised Gaussian kernel: ``w[k]`` for offsets ``k = 0..r``, ``r = int(truncate sigma + 0.5)``.

    Computed in float64 exactly as ``scipy.ndimage._filters._gaussian_kernel1d``
    (then cast to ``dtype``); ``sigma <= 1e-15`` (an axis SciPy skips) gives ``[1]``.
    """
    sigma = float(sigma)
    if sigma <= 1e-15:
        return np.ones(1, dtype=dtype)
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    phi = phi / phi.sum()
    return np.ascontiguousarray(phi[radius:], dtype=dtype)


@njit(cache=True, inline="always")
def _reflect(i, n):
    """Index ``i`` (any integer) folded into ``0..n-1`` by half-sample reflection, period ``2 n``."""
    i = i % (2 * n)  # Python semantics in Numba: non-negative for n > 0
    return i if i < n else 2 * n - 1 - i


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _rows(src, dst, i0, i1, wy, wx, buf):
    """Output rows ``i0..i1`` of the y-then-x smoothing of the 2-D ``src`` into ``dst``.

    ``buf`` holds ``n1 + 2 rx`` values: the y-smoothed row with reflected ends.
    """
    n0, n1 = src.shape
    ry = wy.shape[0] - 1
    rx = wx.shape[0] - 1
    mid = buf[rx : rx + n1]
    for i in range(i0, i1):
        row = src[i]
        w0 = wy[0]
        for j in range(n1):
            mid[j] = w0 * row[j]
        for k in range(1, ry + 1):
            a = src[_reflect(i - k, n0)]
            b = src[_reflect(i + k, n0)]
            wk = wy[k]
            for j in range(n1):
                mid[j] += wk * (a[j] + b[j])
        for k in range(1, rx + 1):  # reflected ends of the row
            buf[rx - k] = mid[_reflect(-k, n1)]
            buf[rx + n1 - 1 + k] = mid[_reflect(n1 - 1 + k, n1)]
        o = dst[i]
        w0 = wx[0]
        for j in range(n1):
            o[j] = w0 * mid[j]
        for k in range(1, rx + 1):
            a = buf[rx - k : rx - k + n1]
            b = buf[rx + k : rx + k + n1]
            wk = wx[k]
            for j in range(n1):
                o[j] += wk * (a[j] + b[j])


@register_kernel("gaussian", 2, error_model="numpy")
def gaussian2(u, out, wy, wx, nblocks):
    """``out[c]`` = Gaussian of ``u[c]`` for ``(C, n0, n1)`` arrays; ``nblocks`` row blocks per channel."""
    C, n0, n1 = u.shape
    rx = wx.shape[0] - 1
    for b in prange(C * nblocks):
        c = b // nblocks
        blk = b % nblocks
        i0 = blk * n0 // nblocks
        i1 = (blk + 1) * n0 // nblocks
        if i1 > i0:
            buf = np.empty(n1 + 2 * rx, dtype=u.dtype)
            _rows(u[c], out[c], i0, i1, wy, wx, buf)


@register_kernel("gaussian", 3, error_model="numpy", fastmath={"contract"})
def gaussian3(u, out, wz, wy, wx, nblocks):
    """As :func:`gaussian2` for ``(C, n0, n1, n2)`` volumes: z sum of a plane into a buffer, then y and x."""
    C, n0, n1, n2 = u.shape
    rz = wz.shape[0] - 1
    rx = wx.shape[0] - 1
    for b in prange(C * nblocks):
        c = b // nblocks
        blk = b % nblocks
        k0 = blk * n0 // nblocks
        k1 = (blk + 1) * n0 // nblocks
        if k1 > k0:
            plane = np.empty((n1, n2), dtype=u.dtype)
            buf = np.empty(n2 + 2 * rx, dtype=u.dtype)
            src = u[c]
            w0 = wz[0]
            for k in range(k0, k1):
                for i in range(n1):  # z taps row by row: the row being summed stays in L1
                    p, s = plane[i], src[k, i]
                    for j in range(n2):
                        p[j] = w0 * s[j]
                    for m in range(1, rz + 1):
                        a = src[_reflect(k - m, n0), i]
                        bb = src[_reflect(k + m, n0), i]
                        wm = wz[m]
                        for j in range(n2):
                            p[j] += wm * (a[j] + bb[j])
                _rows(plane, out[c, k], 0, n1, wy, wx, buf)
