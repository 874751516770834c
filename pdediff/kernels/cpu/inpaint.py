"""Matrix-free harmonic inpainting: the masked Laplace system and its preconditioned conjugate gradients.

The unknowns are the masked pixels, numbered in flat (C) order.  For each one
the setup kernel stores, per axis and side, what lies across the face: another
unknown (its number), a known pixel (its value, folded into the right-hand
side ``b`` with the face weight) or the image border (nothing: Neumann).  The
row of unknown ``i`` is ``d_i x_i - sum_faces w_a x_j = b_i`` with
``d_i = sum_faces w_a``: pdediff's cell-centred Laplacian ``-L[M, M]`` with face
weights ``w_a = 1 / h_a^2`` (divided by their largest, which leaves the
solution unchanged and keeps ``b`` far from overflow).

Images are read and written in place through element offsets (strides), so
any layout (channel axis first, last or in the middle) is solved without
copying the image.  All channels share the neighbour table and are solved
together, one column each; every kernel is serial (the O(n_missing) sweeps
are memory-bound, and symmetric Gauss–Seidel is sequential by nature).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["harmonic_pcg", "harmonic_setup", "harmonic_store", "known_finite"]


@njit(cache=True)
def harmonic_setup(mflat, flat, shape, sstrides, estrides, cstride, nch, w, data):
    """Neighbour table, diagonal and right-hand side of the masked Laplace system.

    ``mflat``: flattened bool mask (True = unknown), ``flat`` its True positions (ascending); ``shape``/``sstrides``: spatial shape and C-order
    strides (in pixels) of the mask; ``estrides``/``cstride``: element strides of the spatial axes and
    of the channel axis in the 1-D ``data``; ``w``: face weight per axis.  Returns ``(offsets, nbr, diag,
    b, scale)``: ``nbr[i, 2a]`` / ``nbr[i, 2a + 1]`` the unknown across the lower / upper face along
    axis ``a``, or ``n`` where there is none; ``b`` ``(nch, n)`` float64 of the data times
    ``scale``, a power of two that puts the largest known value used in [0.5, 1) (no overflow, exact to undo).
    """
    ndim = shape.size
    n = flat.size
    idx = np.empty(mflat.size, dtype=np.int32)  # only read at masked pixels
    for j in range(n):
        idx[flat[j]] = j
    nbr = np.full((n, 2 * ndim), n, dtype=np.int64)  # n: no unknown there (x[n] = 0)
    # known neighbours: element offset of the neighbour, or -1
    known = np.full((n, 2 * ndim), -1, dtype=np.int64)
    offsets = np.empty(n, dtype=np.int64)
    diag = np.zeros(n)
    amax = 0.0
    for i in range(n):
        p = flat[i]
        o = 0
        for a in range(ndim):
            o += ((p // sstrides[a]) % shape[a]) * estrides[a]
        offsets[i] = o
        for a in range(ndim):
            c = (p // sstrides[a]) % shape[a]
            for side in range(2):
                if side == 0 and c == 0 or side == 1 and c == shape[a] - 1:
                    continue  # the image border: no face, no flux
                q = p - sstrides[a] if side == 0 else p + sstrides[a]
                diag[i] += w[a]
                if mflat[q]:
                    nbr[i, 2 * a + side] = idx[q]
                else:
                    qo = o - estrides[a] if side == 0 else o + estrides[a]
                    known[i, 2 * a + side] = qo
                    for ch in range(nch):
                        v = abs(float(data[qo + ch * cstride]))
                        amax = max(amax, v)
    scale = 1.0
    if amax > 0.0 and math.isfinite(amax):
        scale = 2.0 ** min(max(-math.frexp(amax)[1], -1000), 1000)
    b = np.zeros((nch, n))
    for i in range(n):
        for k in range(2 * ndim):
            qo = known[i, k]
            if qo >= 0:
                wk = w[k // 2]
                for ch in range(nch):
                    b[ch, i] += wk * (float(data[qo + ch * cstride]) * scale)
    return offsets, nbr, diag, b, scale


@njit(cache=True)
def _matvec(nbr, w, diag, x, out):
    """``out = A x`` for ``x`` ``(nch, n + 1)`` whose last column is 0 (where absent neighbours point)."""
    nch = x.shape[0]
    n = diag.size
    K = nbr.shape[1]
    for ch in range(nch):
        xc, oc = x[ch], out[ch]
        for i in range(n):
            s = diag[i] * xc[i]
            for k in range(K):
                s -= w[k] * xc[nbr[i, k]]
            oc[i] = s


@njit(cache=True)
def _precondition(nbr, w, f, r, z, jacobi):
    """``z = M^{-1} r``: Jacobi (``jacobi``), else SSOR in the flat order, where the lower-face
    neighbours (even slots) are exactly the unknowns numbered before ``i`` (absent ones point at the
    zero last column, so the sweeps need no branch).  ``f = omega / diag``.  The channel loop is inside:
    its independent recurrences overlap in the core instead of waiting on each other."""
    nch = r.shape[0]
    n = f.size
    K = nbr.shape[1]
    if jacobi:
        for ch in range(nch):
            rc, zc = r[ch], z[ch]
            for i in range(n):
                zc[i] = rc[i] * f[i]
        return
    for i in range(n):  # forward sweep: (D / omega - L) z = r
        fi = f[i]
        for ch in range(nch):
            s = r[ch, i]
            for k in range(0, K, 2):
                s += w[k] * z[ch, nbr[i, k]]
            z[ch, i] = s * fi
    for i in range(n - 1, -1, -1):  # backward sweep: (D / omega - U) z = (D / omega) z
        fi = f[i]
        for ch in range(nch):
            s = 0.0
            for k in range(1, K, 2):
                s += w[k] * z[ch, nbr[i, k]]
            z[ch, i] += s * fi


@njit(cache=True)
def _dot(a, b, n):
    s = 0.0
    for i in range(n):
        s += a[i] * b[i]
    return s


@njit(cache=True)
def _relative(rr, bb):
    worst = 0.0
    for ch in range(rr.size):
        rel = math.sqrt(rr[ch] / bb[ch]) if bb[ch] > 0.0 else math.sqrt(rr[ch])
        if not rel <= worst:  # NaN propagates
            worst = rel
    return worst


@njit(cache=True)
def _true_residual(nbr, w, diag, b, x, r, q, rr):
    nch, n = b.shape
    _matvec(nbr, w, diag, x, q)
    for ch in range(nch):
        for i in range(n):
            r[ch, i] = b[ch, i] - q[ch, i]
        rr[ch] = _dot(r[ch], r[ch], n)


@njit(cache=True)
def harmonic_pcg(nbr, w, diag, b, x, tol, max_iter, omega):
    """Preconditioned conjugate gradients on ``A x = b`` for every row of ``b`` ``(nch, n)`` (a channel
    each), from the start ``x`` ``(nch, n + 1)`` (updated in place; its last column must be 0).

    ``nbr`` ``(n, 2 ndim)``: the unknown across each face, ``n`` where there is none; ``w`` the weight
    of each slot.  Stops when the true relative residual ``|b - A x| / |b|`` of every channel is at
    most ``tol`` or after ``max_iter`` iterations; returns ``(iterations, residual)``, the largest
    relative residual over the channels (a recursive residual below ``tol`` is confirmed by the true
    one before stopping; on a mismatch CG restarts from the true residual).
    """
    nch, n = b.shape
    jacobi = omega == 0.0
    f = np.empty(n)
    for i in range(n):
        f[i] = (1.0 if jacobi else omega) / diag[i]
    r = np.zeros((nch, n + 1))
    z = np.zeros((nch, n + 1))
    p = np.zeros((nch, n + 1))
    q = np.zeros((nch, n + 1))
    bb = np.empty(nch)
    rr = np.empty(nch)
    rz = np.empty(nch)
    for ch in range(nch):
        bb[ch] = _dot(b[ch], b[ch], n)
    it = 0
    restart = True
    while True:
        if restart:
            _true_residual(nbr, w, diag, b, x, r, q, rr)
            rel = _relative(rr, bb)
            if rel <= tol or it >= max_iter or not math.isfinite(rel):
                return it, rel
            _precondition(nbr, w, f, r, z, jacobi)
            for ch in range(nch):
                rz[ch] = _dot(r[ch], z[ch], n)
                p[ch, :n] = z[ch, :n]
            restart = False
        _matvec(nbr, w, diag, p, q)
        for ch in range(nch):
            pq = _dot(p[ch], q[ch], n)
            # a channel already solved exactly (r = 0) has pq = 0: it stays put
            alpha = rz[ch] / pq if pq > 0.0 else 0.0
            xc, rc, pc, qc = x[ch], r[ch], p[ch], q[ch]
            for i in range(n):
                xc[i] += alpha * pc[i]
                rc[i] -= alpha * qc[i]
            rr[ch] = _dot(rc, rc, n)
        it += 1
        rel = _relative(rr, bb)
        if rel <= tol or it >= max_iter or not math.isfinite(rel):
            if it >= max_iter or not math.isfinite(rel):
                _true_residual(nbr, w, diag, b, x, r, q, rr)
                return it, _relative(rr, bb)
            restart = True  # confirm with the true residual (recursive residuals drift)
            continue
        _precondition(nbr, w, f, r, z, jacobi)
        for ch in range(nch):
            rz_new = _dot(r[ch], z[ch], n)
            beta = rz_new / rz[ch] if rz[ch] > 0.0 else 0.0
            rz[ch] = rz_new
            pc, zc = p[ch], z[ch]
            for i in range(n):
                pc[i] = zc[i] + beta * pc[i]


@njit(cache=True)
def harmonic_store(x, offsets, cstride, inv_scale, data):
    """Write the solution ``x`` ``(nch, >= n)`` divided by the setup's scale into ``data`` at ``offsets``."""
    nch = x.shape[0]
    for i in range(offsets.size):
        o = offsets[i]
        for ch in range(nch):
            data[o + ch * cstride] = x[ch, i] * inv_scale


@njit(cache=True)
def known_finite(mflat, sstrides, shape, estrides, cstride, nch, data):
    """True when every known pixel (``mflat`` False) of ``data`` is finite, in every channel."""
    ndim = shape.size
    for p in range(mflat.size):
        if mflat[p]:
            continue
        o = 0
        for a in range(ndim):
            o += ((p // sstrides[a]) % shape[a]) * estrides[a]
        for ch in range(nch):
            if not math.isfinite(data[o + ch * cstride]):
                return False
    return True
