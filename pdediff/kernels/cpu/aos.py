"""Fused AOS line solves: conductances, Thomas factorisation and solve in one pass over the lines.

One term of the AOS Perona–Malik step (docs/conventions.rst §4) is
``out += alpha (I - tau A_a(v))^{-1} u`` along axis ``a``: a tridiagonal
system per line whose coefficients change every step.  Built from the
separate kernels it costs a coefficient pass, a factor pass (writing ``cp``
and ``1/den``) and a forward plus a backward solve pass, each over the whole
array; the factorisation's division chain along the contiguous axis, one line
at a time, alone took 3-4 explicit steps.  Here one forward sweep computes
each face conductance, the factor ``cp_i`` and the forward-substituted ``y_i``
together, and the backward sweep adds ``alpha x_i`` into ``out``, so ``u`` and
``v`` are read once and only ``cp`` and ``y`` (one cache-sized block of lines)
are written in between.

Lines along a strided axis (``post > 1``) are swept in blocks of ``_BLOCK``
columns, every loop running across the columns (vectorised).  Lines along the
contiguous axis are copied, ``_LANES`` at a time, into a transposed tile and
swept the same way, across the tile's lanes: the division and the recurrences
then run in vector lanes too.

The arithmetic is that of :func:`.perona_malik.aos_coefficients_mid` followed by
:func:`.tridiag.factor` and :func:`.tridiag.solve_mid`, in the same order:
``t_i = tau g_{i+1/2}``, ``a_i = -t_{i-1}``, ``c_i = -t_i`` and row sums 1;
``e_0 = 1``, ``inv_i = 1 / (e_i + t_i)``, ``cp_i = -t_i inv_i``,
``e_{i+1} = 1 + t_i (e_i inv_i)`` (the subtraction-free row-sum form of
:func:`.tridiag.factor`: accurate for any ``tau``, where ``1 + t`` would lose its
1 in float32 from ``tau ~ 1e7`` on), ``y_i = (d_i + t_{i-1} y_{i-1}) inv_i``;
``x_i = y_i - cp_i x_{i+1}`` (Neumann: no flux through the end faces).  Every
step adds non-negative multiples, so ``x`` stays within the range of ``d`` (to
rounding) whatever ``tau``: the maximum principle of AOS.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import register_kernel
from .perona_malik import _TAU_MAX32, apply_conductance

#: Columns per block of a strided-axis sweep: wide enough to vectorise and to amortise the per-row loop
#: overhead, narrow enough that a block's ``cp`` and ``y`` stay in the L2 cache.
_BLOCK = 256
#: Lines per transposed tile of a contiguous-axis sweep (four AVX2 vectors of float32, eight of float64).
_LANES = 32


@njit(cache=True, error_model="numpy")  # no ZeroDivisionError branch: the column loops vectorise
def _sweep(V, D, O, p, q0, q1, CP, Y, W, G, R, E, tau, ih, kinv2, code, one, half, alpha, accumulate):
    """Lines ``[:, p, :, q0:q1]`` of the ``(C, pre, n, post)`` arrays ``V`` (conductance) and ``D`` (right-hand
    side); ``accumulate``: ``O[:, p, :, q0:q1] += alpha x``, else ``x`` is left in ``Y`` (``(C, n, >= m)``).

    Scratch: ``CP`` ``(n, >= m)``, ``Y`` ``(C, n, >= m)``, rows ``W, G, R, E`` ``(>= m,)``.
    """
    C = D.shape[0]
    n = D.shape[2]
    m = q1 - q0
    zero = one - one
    tau = min(tau, one * _TAU_MAX32)  # formulas.TAU_MAX: an inf tau would give inf * 0 = NaN where g = 0
    g_lo = G[0:m]  # tau g of the face below row i (0: the Neumann end)
    w = W[0:m]  # tau g of the face above row i
    r = R[0:m]
    e = E[0:m]  # e_i = den_i - w_i (row-sum form of tridiag.factor): 1 + g_lo e_{i-1} / den_{i-1}
    for q in range(m):
        g_lo[q] = zero
        e[q] = one
    for i in range(n):
        if i < n - 1:
            for q in range(m):
                w[q] = zero
            for c in range(C):
                va, vb = V[c, p, i, q0:q1], V[c, p, i + 1, q0:q1]
                for q in range(m):
                    d = (vb[q] - va[q]) * ih
                    w[q] += d * d
            apply_conductance(w, m, kinv2, code, one, half)
            for q in range(m):
                w[q] = tau * w[q]
        else:
            for q in range(m):
                w[q] = zero
        cpi = CP[i, 0:m]
        for q in range(m):
            v = one / (e[q] + w[q])
            r[q] = v
            cpi[q] = -w[q] * v
            e[q] = one + w[q] * (e[q] * v)
        if i == 0:
            for c in range(C):
                di, yi = D[c, p, 0, q0:q1], Y[c, 0, 0:m]
                for q in range(m):
                    yi[q] = di[q] * r[q]
        else:
            for c in range(C):
                di, yi, ym = D[c, p, i, q0:q1], Y[c, i, 0:m], Y[c, i - 1, 0:m]
                for q in range(m):
                    yi[q] = (di[q] + g_lo[q] * ym[q]) * r[q]
        for q in range(m):
            g_lo[q] = w[q]
    for c in range(C):
        if accumulate:
            xl, ol = Y[c, n - 1, 0:m], O[c, p, n - 1, q0:q1]
            for q in range(m):
                ol[q] = ol[q] + alpha * xl[q]
        for i in range(n - 2, -1, -1):
            xi, xn, ci = Y[c, i, 0:m], Y[c, i + 1, 0:m], CP[i, 0:m]
            for q in range(m):
                xi[q] = xi[q] - ci[q] * xn[q]
            if accumulate:
                oi = O[c, p, i, q0:q1]
                for q in range(m):
                    oi[q] = oi[q] + alpha * xi[q]


@register_kernel("aos_axis", 0, "mid", error_model="numpy")
def aos_axis_mid(u, v, out, tau, ih, kinv2, code, one, half, alpha):
    """``out += alpha (I - tau A(v))^{-1} u`` along axis 2 of the ``(C, pre, n, post)`` arrays, ``post > 1``.

    Work items are ``(p, column block)`` pairs, each with its own scratch.
    """
    C, pre, n, post = u.shape
    nb = (post + _BLOCK - 1) // _BLOCK
    for t in prange(pre * nb):
        p = t // nb
        q0 = (t % nb) * _BLOCK
        q1 = min(q0 + _BLOCK, post)
        CP = np.empty((n, _BLOCK), dtype=u.dtype)
        Y = np.empty((C, n, _BLOCK), dtype=u.dtype)
        W = np.empty(_BLOCK, dtype=u.dtype)
        G = np.empty(_BLOCK, dtype=u.dtype)
        R = np.empty(_BLOCK, dtype=u.dtype)
        E = np.empty(_BLOCK, dtype=u.dtype)
        _sweep(v, u, out, p, q0, q1, CP, Y, W, G, R, E, tau, ih, kinv2, code, one, half, alpha, True)


@njit(cache=True, error_model="numpy")
def _gather(src, p0, p1, T):
    """``T[c, 0, i, k] = src[c, p0 + k, i]`` for the lines ``p0..p1`` of ``(C, pre, n)`` ``src`` (a partial tile
    repeats its last line)."""
    C, _, n = src.shape
    for c in range(C):
        for k in range(T.shape[3]):
            row = src[c, min(p0 + k, p1 - 1)]
            for i in range(n):
                T[c, 0, i, k] = row[i]


@register_kernel("aos_axis", 0, "last", error_model="numpy")
def aos_axis_last(u, v, out, tau, ih, kinv2, code, one, half, alpha, same):
    """As :func:`aos_axis_mid` along the contiguous last axis of ``(C, pre, n)`` arrays, in transposed tiles of
    ``_LANES`` lines (``same``: ``v`` is ``u``, gathered once)."""
    C, pre, n = u.shape
    nt = (pre + _LANES - 1) // _LANES
    for t in prange(nt):
        p0 = np.int64(t) * _LANES
        p1 = min(p0 + _LANES, pre)
        Ut = np.empty((C, 1, n, _LANES), dtype=u.dtype)
        _gather(u, p0, p1, Ut)
        if same:
            Vt = Ut
        else:
            Vt = np.empty((C, 1, n, _LANES), dtype=u.dtype)
            _gather(v, p0, p1, Vt)
        CP = np.empty((n, _LANES), dtype=u.dtype)
        Y = np.empty((C, n, _LANES), dtype=u.dtype)
        W = np.empty(_LANES, dtype=u.dtype)
        G = np.empty(_LANES, dtype=u.dtype)
        R = np.empty(_LANES, dtype=u.dtype)
        E = np.empty(_LANES, dtype=u.dtype)
        _sweep(Vt, Ut, Ut, 0, 0, _LANES, CP, Y, W, G, R, E, tau, ih, kinv2, code, one, half, alpha, False)
        for c in range(C):
            for k in range(p1 - p0):
                orow = out[c, p0 + k]
                for i in range(n):
                    orow[i] = orow[i] + alpha * Y[c, i, k]
