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
def _taps(dst, w, c, a1, b1, a2, b2, a3, b3, a4, b4, r, m):
    """``dst[j] = w0 c[j] + sum_{k<=r} w_k (a_k[j] + b_k[j])`` for ``j < m``, in that order of summation.

    Radii up to 4 (``sigma <= 1.1``, the Catté default is 3) in one loop: every tap in registers, one
    store per element, instead of one read-modify-write pass per tap; the sums are the same, in the
    same order, as tap-by-tap accumulation.  Larger radii return ``False`` (the caller loops over taps).
    """
    if r == 0:
        for j in range(m):
            dst[j] = w[0] * c[j]
    elif r == 1:
        w0, w1 = w[0], w[1]
        for j in range(m):
            dst[j] = w0 * c[j] + w1 * (a1[j] + b1[j])
    elif r == 2:
        w0, w1, w2 = w[0], w[1], w[2]
        for j in range(m):
            dst[j] = w0 * c[j] + w1 * (a1[j] + b1[j]) + w2 * (a2[j] + b2[j])
    elif r == 3:
        w0, w1, w2, w3 = w[0], w[1], w[2], w[3]
        for j in range(m):
            dst[j] = w0 * c[j] + w1 * (a1[j] + b1[j]) + w2 * (a2[j] + b2[j]) + w3 * (a3[j] + b3[j])
    elif r == 4:
        w0, w1, w2, w3, w4 = w[0], w[1], w[2], w[3], w[4]
        for j in range(m):
            dst[j] = (w0 * c[j] + w1 * (a1[j] + b1[j]) + w2 * (a2[j] + b2[j]) + w3 * (a3[j] + b3[j])
                      + w4 * (a4[j] + b4[j]))
    else:
        return False
    return True


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _sum_rows(src, i, n0, w, dst):
    """``dst`` = the taps ``w`` along axis 0 of the 2-D ``src`` around row ``i`` (half-sample reflection)."""
    r = w.shape[0] - 1
    c = src[i]
    m = c.shape[0]
    if r <= 4:
        a1 = src[_reflect(i - 1, n0)] if r >= 1 else c
        b1 = src[_reflect(i + 1, n0)] if r >= 1 else c
        a2 = src[_reflect(i - 2, n0)] if r >= 2 else c
        b2 = src[_reflect(i + 2, n0)] if r >= 2 else c
        a3 = src[_reflect(i - 3, n0)] if r >= 3 else c
        b3 = src[_reflect(i + 3, n0)] if r >= 3 else c
        a4 = src[_reflect(i - 4, n0)] if r >= 4 else c
        b4 = src[_reflect(i + 4, n0)] if r >= 4 else c
        _taps(dst, w, c, a1, b1, a2, b2, a3, b3, a4, b4, r, m)
        return
    w0 = w[0]
    for j in range(m):
        dst[j] = w0 * c[j]
    for k in range(1, r + 1):
        a = src[_reflect(i - k, n0)]
        b = src[_reflect(i + k, n0)]
        wk = w[k]
        for j in range(m):
            dst[j] += wk * (a[j] + b[j])


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _rows(src, dst, i0, i1, wy, wx, buf):
    """Output rows ``i0..i1`` of the y-then-x smoothing of the 2-D ``src`` into ``dst``.

    ``buf`` holds ``n1 + 2 rx`` values: the y-smoothed row with reflected ends.
    """
    n0, n1 = src.shape
    rx = wx.shape[0] - 1
    mid = buf[rx : rx + n1]
    for i in range(i0, i1):
        _sum_rows(src, i, n0, wy, mid)
        for k in range(1, rx + 1):  # reflected ends of the row
            buf[rx - k] = mid[_reflect(-k, n1)]
            buf[rx + n1 - 1 + k] = mid[_reflect(n1 - 1 + k, n1)]
        o = dst[i]
        if rx <= 4:
            _taps(o, wx, mid,
                  buf[rx - 1 : rx - 1 + n1] if rx >= 1 else mid, buf[rx + 1 : rx + 1 + n1] if rx >= 1 else mid,
                  buf[rx - 2 : rx - 2 + n1] if rx >= 2 else mid, buf[rx + 2 : rx + 2 + n1] if rx >= 2 else mid,
                  buf[rx - 3 : rx - 3 + n1] if rx >= 3 else mid, buf[rx + 3 : rx + 3 + n1] if rx >= 3 else mid,
                  buf[rx - 4 : rx - 4 + n1] if rx >= 4 else mid, buf[rx + 4 : rx + 4 + n1] if rx >= 4 else mid,
                  rx, n1)
            continue
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


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _plane_yx(plane, yp, dst, wy, wx):
    """The y then x taps (radii <= 4) of a ``(n1, n2)`` plane into ``dst``, in whole-plane loops.

    Volume rows are short (128-256 cells) and :func:`_rows` pays its loop and slicing overhead per
    row; here the y taps of the interior rows run as one loop over the flat plane (row ``i +- k``
    is cell ``f +- k n2``), the edge rows by :func:`_sum_rows`; the x taps run over the flat
    y-smoothed plane too (cell ``f +- k``), and the ``rx`` cells at each row end, whose neighbours
    the flat loop took from the adjacent rows, are recomputed with the reflected ends.  Each cell
    is the same sum in the same order as in :func:`_rows`.
    """
    n1, n2 = plane.shape
    ry = wy.shape[0] - 1
    rx = wx.shape[0] - 1
    P = n1 * n2
    src = plane.reshape(P)
    ysm = yp.reshape(P)
    out = dst.reshape(P)
    for i in range(min(ry, n1)):
        _sum_rows(plane, i, n1, wy, yp[i])
    for i in range(max(n1 - ry, ry), n1):
        _sum_rows(plane, i, n1, wy, yp[i])
    if n1 > 2 * ry:
        lo, m = ry * n2, (n1 - 2 * ry) * n2
        _taps(ysm[lo : lo + m], wy, src[lo : lo + m],
              src[lo - n2 : lo - n2 + m] if ry >= 1 else src, src[lo + n2 : lo + n2 + m] if ry >= 1 else src,
              src[lo - 2 * n2 : lo - 2 * n2 + m] if ry >= 2 else src,
              src[lo + 2 * n2 : lo + 2 * n2 + m] if ry >= 2 else src,
              src[lo - 3 * n2 : lo - 3 * n2 + m] if ry >= 3 else src,
              src[lo + 3 * n2 : lo + 3 * n2 + m] if ry >= 3 else src,
              src[lo - 4 * n2 : lo - 4 * n2 + m] if ry >= 4 else src,
              src[lo + 4 * n2 : lo + 4 * n2 + m] if ry >= 4 else src, ry, m)
    m = P - 2 * rx
    _taps(out[rx : rx + m], wx, ysm[rx : rx + m],
          ysm[rx - 1 : rx - 1 + m] if rx >= 1 else ysm, ysm[rx + 1 : rx + 1 + m] if rx >= 1 else ysm,
          ysm[rx - 2 : rx - 2 + m] if rx >= 2 else ysm, ysm[rx + 2 : rx + 2 + m] if rx >= 2 else ysm,
          ysm[rx - 3 : rx - 3 + m] if rx >= 3 else ysm, ysm[rx + 3 : rx + 3 + m] if rx >= 3 else ysm,
          ysm[rx - 4 : rx - 4 + m] if rx >= 4 else ysm, ysm[rx + 4 : rx + 4 + m] if rx >= 4 else ysm, rx, m)
    for i in range(n1):  # row ends: the taps with the half-sample reflection of their own row
        row, o = yp[i], dst[i]
        for e in range(2 * rx):
            j = e if e < rx else n2 - 2 * rx + e
            acc = wx[0] * row[j]
            for k in range(1, rx + 1):
                acc = acc + wx[k] * (row[_reflect(j - k, n2)] + row[_reflect(j + k, n2)])
            o[j] = acc


@register_kernel("gaussian", 3, error_model="numpy", fastmath={"contract"})
def gaussian3(u, out, wz, wy, wx, nblocks):
    """As :func:`gaussian2` for ``(C, n0, n1, n2)`` volumes: z sum of a plane into a buffer, then y and x."""
    C, n0, n1, n2 = u.shape
    rx = wx.shape[0] - 1
    for b in prange(C * nblocks):
        c = b // nblocks
        blk = b % nblocks
        k0 = blk * n0 // nblocks
        k1 = (blk + 1) * n0 // nblocks
        if k1 > k0:
            plane = np.empty((n1, n2), dtype=u.dtype)
            yplane = np.empty((n1, n2), dtype=u.dtype)
            buf = np.empty(n2 + 2 * rx, dtype=u.dtype)
            src = u[c].reshape((n0, n1 * n2))  # planes as flat rows: the z taps run over a whole plane
            flat = plane.reshape(n1 * n2)
            for k in range(k0, k1):
                _sum_rows(src, k, n0, wz, flat)
                if rx <= 4 and wy.shape[0] <= 5 and n2 > 2 * rx:
                    _plane_yx(plane, yplane, out[c, k], wy, wx)
                else:
                    _rows(plane, out[c, k], 0, n1, wy, wx, buf)
