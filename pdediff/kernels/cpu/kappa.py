"""Median and MAD of the face-gradient magnitudes, fused: no magnitude is ever stored.

The magnitude of the face between cells ``i`` and ``j`` along axis ``a`` is
``s = sqrt(sum_c ((v_j - v_i) / h_a)^2)`` (differences and squares in float64).
The robust kappa estimate (:func:`pdediff.anisotropic.kappa.estimate_kappa`)
needs the median of all ``s`` and the median of ``|s - median|``; selecting
them by sorting a pooled copy costs several float64 copies of the image.
Here both are NumPy's medians (the mean of the two middle values for even
counts) of the float32-rounded magnitudes ``f = float32(s)``, selected exactly
by a *radix select* over the IEEE bit patterns of float32 values -- for
non-negative floats the unsigned bit patterns sort like the values -- in two
passes over ``v``, the magnitudes recomputed on the fly in each pass:

1. TOP: a histogram of the top 16 bits of every key (65 536 bins) gives the
   bins holding the ranks ``(n - 1) // 2`` and ``n // 2``;
2. LOW: a histogram of the low 16 bits of the keys in those (at most two) bins
   gives the two order statistics exactly.  Only the squared magnitudes inside
   a window around those bins (:func:`windows`) are looked at: the square root
   of the others is skipped.

Two more passes select the MAD from the keys of ``float32(|f - median|)``; the
deviations being computed from ``f``, ties stay ties (MAD 0 exactly when more
than half the rounded magnitudes equal the median).  Against NumPy on the
unrounded ``s`` the median is within 2^-24 relatively, the MAD within about
``2^-23 (median + MAD)`` (relative 1e-7 unless the magnitudes cluster far
tighter around their median than image gradients do).  NaN magnitudes (NaN input with ``check_finite=False``)
are skipped: arithmetic NaNs are quiet, so their keys land above ``+inf``'s
bin (``0x7F80``) and :func:`select_bins` counts bins up to ``0x7F80`` only;
``+inf`` counts as a value.

Arrays are viewed as ``(C, rows, n)`` as in :mod:`.perona_malik`: a 3-D volume
``(C, n0, n1, n2)`` as ``(C, n0 * n1, n2)`` with ``nplane = n1`` rows per plane,
2-D ``(C, n0, n1)`` as is (``nplane = n0``), 1-D as ``(C, 1, n)``.  Row ``r``
owns its x faces, the y faces to row ``r + 1`` and the z faces to row
``r + nplane``, so any block of rows can be processed on its own: the parallel
driver gives each block its own histogram row, summed afterwards.

``scale`` (a power of two, 1 unless float64 magnitudes leave float32's range,
:func:`float32_scale`) multiplies every magnitude before rounding; ``center``
is in scaled units.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import kernel_builds, register_kernel

#: Bins of one histogram: the 16-bit halves of a float32 key.
NBINS = 1 << 16
#: Top-16-bit bin of +inf; larger bins hold NaN keys (skipped).
INF_BIN = 0x7F80

# pass kinds
TOP, LOW, SUM = 0, 1, 2
#: LOW passes count the candidates of this many faces at a time (vectorised) and scan only the chunks
#: that hold one: 1024² float32 LOW pass 2.05 -> 1.21 ms with 32 (64: 1.25, 128: 1.32, whole rows: 2.05).
LOW_CHUNK = 32

#: Fewer cells than this run on one thread.  Measured on the 2-core development
#: machine (float32, whole estimate): serial 0.32 ms vs parallel 0.40 ms at 128²,
#: 0.76 vs 0.59 ms at 256², 0.98 vs 0.71 ms at 32³, 5.1 vs 2.8 ms at 64³ -- each
#: pass zeroes and sums a 0.5-1 MB histogram per block, so threads pay later
#: than for the stencils (:data:`._common.PARALLEL_MIN_CELLS`).
PARALLEL_MIN_CELLS = 1 << 15


@njit(cache=True, error_model="numpy")
def _sq(va, vb, acc, m, ih, first):
    """``acc[j] (+)= ((vb[j] - va[j]) * ih)^2`` in float64 (contiguous views: vectorises)."""
    if first:
        for j in range(m):
            d = (np.float64(vb[j]) - np.float64(va[j])) * ih
            acc[j] = d * d
    else:
        for j in range(m):
            d = (np.float64(vb[j]) - np.float64(va[j])) * ih
            acc[j] += d * d


@njit(cache=True, error_model="numpy")
def _emit(acc, fb, keys, m, kind, dev, scale, center, b0, b1, win, hist, stats):
    """Magnitudes ``sqrt(acc[:m])`` into this block's histogram row ``hist`` (or sums into ``stats``).

    ``dev``: key ``|s - center|`` instead of ``s``.  ``kind`` TOP: histogram of
    the key's top 16 bits; LOW: of the low 16 bits of the keys whose top bits
    are ``b0`` (bins ``0..NBINS-1``) or ``b1`` (``NBINS..2 NBINS-1``), looking
    only at the squared magnitudes inside the windows ``win[0]..win[1]`` and
    ``win[2]..win[3]`` (a superset of those keys, from :func:`windows`: saves
    the square root of all others); SUM: ``stats[0] += s``, ``stats[1] += 1``
    over non-NaN ``s`` (unscaled).
    """
    if kind == SUM:
        tot = 0.0
        cnt = 0.0
        for j in range(m):
            s = np.sqrt(acc[j])
            ok = not np.isnan(s)
            tot += s if ok else 0.0
            cnt += 1.0 if ok else 0.0
        stats[0] += tot
        stats[1] += cnt
        return
    if kind == LOW:
        w0, w1, w2, w3 = win[0], win[1], win[2], win[3]
        for c0 in range(0, m, LOW_CHUNK):  # chunks: a vectorised count, then a scan up to the last candidate
            c1 = min(c0 + LOW_CHUNK, m)
            hits = 0
            for j in range(c0, c1):
                a = acc[j]
                hits += (((a >= w0) & (a <= w1)) | ((a >= w2) & (a <= w3))) * 1  # bitwise: no branch
            j = c0
            while hits > 0:
                a = acc[j]
                j += 1
                if ((a >= w0) & (a <= w1)) | ((a >= w2) & (a <= w3)):
                    hits -= 1
                    x = np.float32(np.sqrt(a) * scale)
                    fb[0] = np.float32(np.abs(np.float64(x) - center)) if dev else x
                    k = np.int64(keys[0])
                    t = k >> 16
                    if t == b0:
                        hist[k & 0xFFFF] += 1
                    elif t == b1:
                        hist[NBINS + (k & 0xFFFF)] += 1
        return
    if dev:
        for j in range(m):
            fb[j] = np.float32(np.abs(np.float64(np.float32(np.sqrt(acc[j]) * scale)) - center))
    else:
        for j in range(m):
            fb[j] = np.float32(np.sqrt(acc[j]) * scale)
    for j in range(m):
        hist[keys[j] >> 16] += 1


@njit(cache=True, error_model="numpy")
def _range(acc, m, stats):
    """``stats[2] = min`` positive and ``stats[3] = max`` finite of ``acc[:m]`` (squared magnitudes)."""
    lo = stats[2]
    hi = stats[3]
    for j in range(m):
        a = acc[j]
        if a > 0.0 and a < lo:
            lo = a
        if a > hi and a < np.inf:
            hi = a
    stats[2] = lo
    stats[3] = hi


@njit(cache=True, error_model="numpy")
def _rows(v, r0, r1, nplane, ihz, ihy, ihx, kind, dev, scale, center, b0, b1, win, track, hist, stats):
    """One pass over the faces owned by rows ``r0..r1`` of the ``(C, rows, n)`` array ``v``."""
    C, R, n = v.shape
    nz = R // nplane
    acc = np.empty(max(n, 1), dtype=np.float64)
    fb = np.empty(max(n, 1), dtype=np.float32)
    keys = fb.view(np.uint32)
    hist[: NBINS if kind == TOP else hist.size] = 0
    stats[0] = 0.0
    stats[1] = 0.0
    stats[2] = np.inf
    stats[3] = 0.0
    for r in range(r0, r1):
        k = r // nplane
        i = r - k * nplane
        for face in range(3):
            if face == 0:  # x: (r, j) - (r, j + 1)
                if n < 2:
                    continue
                m, rb, ob, ih = n - 1, r, 1, ihx
            elif face == 1:  # y: (r, j) - (r + 1, j) inside a plane
                if i >= nplane - 1:
                    continue
                m, rb, ob, ih = n, r + 1, 0, ihy
            else:  # z: (r, j) - (r + nplane, j)
                if k >= nz - 1:
                    continue
                m, rb, ob, ih = n, r + nplane, 0, ihz
            for c in range(C):
                _sq(v[c, r, 0:m], v[c, rb, ob : ob + m], acc, m, ih, c == 0)
            if C == 0:
                acc[:m] = 0.0
            if track:
                _range(acc, m, stats)
            _emit(acc, fb, keys, m, kind, dev, scale, center, b0, b1, win, hist, stats)


@njit(cache=True)
def _reduce(hist, stats, kind):
    """Sum the blocks' histograms (the part ``kind`` uses) and sums into row 0, min/max their ranges."""
    h0 = hist[0]
    w = NBINS if kind == TOP else hist.shape[1]
    for b in range(1, hist.shape[0]):
        hb = hist[b]
        for j in range(w):
            h0[j] += hb[j]
        stats[0, 0] += stats[b, 0]
        stats[0, 1] += stats[b, 1]
        stats[0, 2] = min(stats[0, 2], stats[b, 2])
        stats[0, 3] = max(stats[0, 3], stats[b, 3])


@register_kernel("kappa_pass", 0)
def face_pass(v, nplane, ihz, ihy, ihx, kind, dev, scale, center, b0, b1, win, track, hist, stats):
    """One pass in ``hist.shape[0]`` blocks of rows; block ``b`` fills ``hist[b]`` and ``stats[b]``.

    The totals end up in ``hist[0]`` and ``stats[0]`` (``stats``: sum and count of
    the magnitudes for SUM; min positive and max finite squared magnitude when tracking).
    """
    R = v.shape[1]
    nb = hist.shape[0]
    for b in prange(nb):
        _rows(v, b * R // nb, (b + 1) * R // nb, nplane, ihz, ihy, ihx, kind, dev, scale, center, b0, b1, win,
              track, hist[b], stats[b])
    _reduce(hist, stats, kind)


# -- the host-side driver --------------------------------------------------------------------------


def median_mad(v3, nplane, ihz, ihy, ihx, nblocks, pick=None):
    """``(median, mad, mean)`` of the face magnitudes of the ``(C, rows, n)`` array ``v3`` (module docstring).

    Four passes (five on float64 input whose magnitudes leave float32's range,
    one more for ``mean``, computed only when ``mad`` is 0, else NaN);
    ``nblocks > 1`` runs them on that many blocks of rows in parallel.  No
    non-NaN magnitude: ``(nan, nan, nan)``.  ``pick(kind)``: the build of the pass
    kernel to run for a pass of ``kind`` (the threading policy's choice,
    :func:`._common.kernel`, per kind since the passes cost differently); default:
    the threaded build for ``nblocks > 1``.  Every build and block count gives
    the same histograms, so the same result.
    """
    nan = float("nan")
    if pick is None:
        builds = kernel_builds("kappa_pass", 0, "")
        fixed = builds.parallel if nblocks > 1 else builds.serial

        def pick(kind):
            return fixed
    hist = np.empty((nblocks, 2 * NBINS), dtype=np.int64)
    stats = np.empty((nblocks, 4), dtype=np.float64)
    nowin = np.zeros(4)

    def run(kind, dev=False, scale=1.0, center=0.0, b0=-1, b1=-1, win=nowin, track=False):
        pick(kind)(v3, nplane, ihz, ihy, ihx, kind, dev, float(scale), float(center), int(b0), int(b1), win, track,
                   hist, stats)

    def select(dev, scale, center, track=False):
        """The median of the (scaled) keys: TOP pass, bins, LOW pass, order statistics."""
        run(TOP, dev, scale, center, track=track)
        if track:  # float64 magnitudes may leave float32's range: rescale and count again
            scale = float32_scale(np.sqrt(stats[0, 2]), np.sqrt(stats[0, 3]))
            if scale != 1.0:
                run(TOP, dev, scale, center)
        n, b0, b1, r0, r1 = select_bins(hist[0])
        if n == 0:
            return nan, scale
        run(LOW, dev, scale, center, b0, b1 if b1 != b0 else -1, windows(b0, b1, dev, scale, center))
        q0, q1 = select_keys(hist[0], b0, b1, r0, r1)
        return 0.5 * (q0 + q1), scale

    med, scale = select(False, 1.0, 0.0, track=v3.dtype == np.float64)
    if np.isnan(med):
        return nan, nan, nan
    mad, _ = select(True, scale, med)
    mean = nan
    if not mad > 0:
        run(SUM)
        mean = float(stats[0, 0] / stats[0, 1]) if stats[0, 1] > 0 else nan
    return med / scale, mad / scale, mean


# -- reading off the order statistics (compiled too: the host-side NumPy equivalent costs ~1 ms) -----


@njit(cache=True)
def select_bins(hist):
    """From the top-16-bit histogram ``hist[:NBINS]``: ``(n, b0, b1, r0, r1)``.

    ``n`` counts the non-NaN keys (bins up to +inf's), ``b0``/``b1`` are the bins
    holding the ranks ``(n - 1) // 2`` and ``n // 2`` and ``r0``/``r1`` those
    ranks within their bins.  ``n == 0``: nothing to select (the rest is 0).
    """
    n = 0
    for b in range(INF_BIN + 1):
        n += hist[b]
    if n == 0:
        return 0, 0, 0, 0, 0
    ra, rb = (n - 1) // 2, n // 2
    b0, b1, r0, r1 = -1, -1, 0, 0
    cum = 0
    for b in range(INF_BIN + 1):
        c = hist[b]
        if b0 < 0 and cum + c > ra:
            b0, r0 = b, ra - cum
        if cum + c > rb:
            b1, r1 = b, rb - cum
            break
        cum += c
    return n, b0, b1, r0, r1


@njit(cache=True)
def select_keys(hist, b0, b1, r0, r1):
    """The two order statistics, as float32 values, from the low-16-bit histogram ``hist``.

    ``hist[:NBINS]`` counts bin ``b0``'s keys, ``hist[NBINS:]`` bin ``b1``'s (empty when ``b1 == b0``).
    """
    keys = np.zeros(2, dtype=np.uint32)
    for q in range(2):
        b, r = (b0, r0) if q == 0 else (b1, r1)
        off = 0 if b == b0 else NBINS
        cum = 0
        for lo in range(NBINS):
            cum += hist[off + lo]
            if cum > r:
                keys[q] = np.uint32((b << 16) | lo)
                break
    vals = keys.view(np.float32)
    return np.float64(vals[0]), np.float64(vals[1])


def float32_scale(smin: float, smax: float) -> float:
    """Power of two bringing the positive finite magnitudes ``[smin, smax]`` into float32's normal range.

    1 when they already fit (always, in practice, for float32 images).  When
    the range is wider than float32's, the largest values are kept finite and
    the smallest lose precision (they still sort correctly).
    """
    if not (smax > 0 and np.isfinite(smax)):
        return 1.0
    if smax < 2.0**126 and smin >= 2.0**-126:
        return 1.0
    e_hi = 126 - int(np.ceil(np.log2(smax)))  # smax * 2^e_hi <= 2^126
    e_lo = -126 - int(np.floor(np.log2(smin)))  # smin * 2^e_lo >= 2^-126
    e = e_lo if (e_lo <= e_hi and e_lo > 0) else e_hi
    return float(2.0 ** min(max(e, -1000), 1000))


def windows(b0: int, b1: int, dev: bool, scale: float, center: float) -> np.ndarray:
    """Windows ``[w0, w1]``, ``[w2, w3]`` of squared unscaled magnitudes holding every key in bins ``b0..b1``.

    The keys of bins ``b0..b1`` are the float32 values ``x`` in ``[lo, hi)``;
    ``x = float32(s)`` (scaled) or, for ``dev``, ``float32(|float32(s) - center|)``.
    So ``s`` lies in ``[lo, hi]`` or in ``[center - hi, center - lo]`` and
    ``[center + lo, center + hi]`` up to float32 rounding, and ``s^2`` in the
    squares of those intervals, widened by 1e-6 relatively (rounding moves
    them by ~1e-7).  An unused second window is empty (``w2 > w3``).
    """
    keys = np.array([b0 << 16, min((b1 + 1) << 16, 0x7F800000)], dtype=np.uint32)
    lo, hi = (float(x) for x in keys.view(np.float32))
    if (b1 + 1) << 16 > 0x7F800000:  # up to and including +inf
        hi = np.inf
    if not dev:
        intervals = [(lo, hi)]
    elif not np.isfinite(center):
        intervals = [(0.0, np.inf)]  # no useful window around an infinite median
    elif center < lo:
        intervals = [(center + lo, center + hi)]
    else:
        intervals = [(max(center - hi, 0.0), center - lo), (center + lo, center + hi)]
    w = [1.0, -1.0, 1.0, -1.0]
    with np.errstate(over="ignore"):
        for i, (a, b) in enumerate(intervals):
            w[2 * i] = np.float64(a / scale) ** 2 * (1.0 - 1e-6)  # NumPy floats: inf on overflow
            w[2 * i + 1] = np.float64(b / scale) ** 2 * (1.0 + 1e-6)
    return np.array(w, dtype=np.float64)
