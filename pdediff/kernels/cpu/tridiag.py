"""Batched tridiagonal (Thomas) solves along one axis of an array.

Arrays are viewed as ``(pre, n, post)``: ``n`` unknowns per line, lines indexed
by ``(p, q)``.  The system of every line is
``a_i x_{i-1} + b_i x_i + c_i x_{i+1} = d_i`` (plus, for periodic lines, the
corner entries handled by Sherman–Morrison, see :mod:`pdediff.heat.implicit`).

Coefficient arrays have shape ``(P, n, Q)`` with ``P`` in ``{1, pre}`` and ``Q``
in ``{1, post}``: one set shared by all lines (constant coefficients) or one
per line (variable diffusivity, AOS conductances).  The factorisation is done
once (:func:`factor`); each solve is then a forward and a backward sweep.

Two solve kernels: :func:`solve_mid` for lines that are strided in memory
(``post > 1``, vectorised across ``q`` in cache-sized column blocks) and
:func:`solve_last` for contiguous lines (``post == 1``), which interleaves a
block of lines so the sweep's serial dependency chain does not stall the core.
Both optionally fuse ``out += alpha * x`` (ADI's final update, AOS's average)
and the periodic correction ``x -= z * (x_0 + vn * x_{n-1}) * q``.

Inner loops run over 1-D row views indexed from 0: Numba then needs no
negative-index wrap-around and LLVM vectorises them (5x faster than indexing
the 3-D array directly).  ``d`` and ``x`` may alias, but distinct arrays let
LLVM skip its run-time overlap check.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import register_kernel


@njit(cache=True, error_model="numpy")  # no ZeroDivisionError branch: the q loops vectorise
def _factor_block(a, b, c, cp, inv, p, q0, q1):
    n = b.shape[1]
    b0, c0, i0, p0 = b[p, 0, q0:q1], c[p, 0, q0:q1], inv[p, 0, q0:q1], cp[p, 0, q0:q1]
    for q in range(q1 - q0):
        i0[q] = 1.0 / b0[q]
        p0[q] = c0[q] * i0[q]
    for i in range(1, n):
        ai, bi, ci = a[p, i, q0:q1], b[p, i, q0:q1], c[p, i, q0:q1]
        ii, pi, pm = inv[p, i, q0:q1], cp[p, i, q0:q1], cp[p, i - 1, q0:q1]
        for q in range(q1 - q0):
            ii[q] = 1.0 / (bi[q] - ai[q] * pm[q])
            pi[q] = ci[q] * ii[q]


@register_kernel("tri_factor", 0)
def factor(a, b, c, cp, inv):
    """LU (Thomas) factors ``inv_i = 1/(b_i - a_i cp_{i-1})``, ``cp_i = c_i inv_i`` of ``(P, n, Q)`` arrays,
    over ``(p, q-block)`` work items (``Q`` may be 1 or many)."""
    P, n, Q = b.shape
    block = 256
    nb = (Q + block - 1) // block
    for t in prange(P * nb):
        p = t // nb
        q0 = (t % nb) * block
        _factor_block(a, b, c, cp, inv, p, q0, min(q0 + block, Q))


@njit(cache=True)
def _mid_block(d, x, out, a, cp, inv, z, vn, qf, p, q0, q1, alpha, accumulate, cyclic):
    n = d.shape[1]
    P = a.shape[0]
    Q = a.shape[2]
    pa = p if P > 1 else 0
    m = q1 - q0
    x0 = x[p, 0, q0:q1]
    d0 = d[p, 0, q0:q1]
    if Q == 1:
        # Coefficients shared by the block: scalars, so the q loops vectorise.
        i0 = inv[pa, 0, 0]
        for q in range(m):
            x0[q] = d0[q] * i0
        for i in range(1, n):
            ai = a[pa, i, 0]
            ii = inv[pa, i, 0]
            xi = x[p, i, q0:q1]
            xm = x[p, i - 1, q0:q1]
            di = d[p, i, q0:q1]
            for q in range(m):
                xi[q] = (di[q] - ai * xm[q]) * ii
        for i in range(n - 2, -1, -1):
            ci = cp[pa, i, 0]
            xi = x[p, i, q0:q1]
            xn = x[p, i + 1, q0:q1]
            for q in range(m):
                xi[q] = xi[q] - ci * xn[q]
    else:
        v0 = inv[pa, 0, q0:q1]
        for q in range(m):
            x0[q] = d0[q] * v0[q]
        for i in range(1, n):
            ai = a[pa, i, q0:q1]
            ii = inv[pa, i, q0:q1]
            xi = x[p, i, q0:q1]
            xm = x[p, i - 1, q0:q1]
            di = d[p, i, q0:q1]
            for q in range(m):
                xi[q] = (di[q] - ai[q] * xm[q]) * ii[q]
        for i in range(n - 2, -1, -1):
            ci = cp[pa, i, q0:q1]
            xi = x[p, i, q0:q1]
            xn = x[p, i + 1, q0:q1]
            for q in range(m):
                xi[q] = xi[q] - ci[q] * xn[q]
    if cyclic:
        f = np.empty(m, dtype=x.dtype)
        xl = x[p, n - 1, q0:q1]
        for q in range(m):
            qa = q0 + q if Q > 1 else 0
            f[q] = (x0[q] + vn[pa, 0, qa] * xl[q]) * qf[pa, 0, qa]
        for i in range(n):
            xi = x[p, i, q0:q1]
            if Q == 1:
                zi = z[pa, i, 0]
                for q in range(m):
                    xi[q] = xi[q] - zi * f[q]
            else:
                zr = z[pa, i, q0:q1]
                for q in range(m):
                    xi[q] = xi[q] - zr[q] * f[q]
    if accumulate:
        for i in range(n):
            xi = x[p, i, q0:q1]
            oi = out[p, i, q0:q1]
            for q in range(m):
                oi[q] = oi[q] + alpha * xi[q]


@register_kernel("tri_solve_mid", 0)
def solve_mid(d, x, out, a, cp, inv, z, vn, qf, block, alpha, accumulate, cyclic):
    """Strided lines (``post > 1``), in ``(p, column-block)`` work items."""
    pre, n, post = d.shape
    nb = (post + block - 1) // block
    for t in prange(pre * nb):
        p = t // nb
        q0 = (t % nb) * block
        _mid_block(d, x, out, a, cp, inv, z, vn, qf, p, q0, min(q0 + block, post), alpha, accumulate, cyclic)


@njit(cache=True)
def _last_block(d, x, out, a, cp, inv, z, vn, qf, p0, p1, alpha, accumulate, cyclic):
    # Contiguous lines p0..p1 of d (pre, n) are transposed into a small (1, n, B)
    # buffer, solved there with the vectorised strided sweep, and written back.
    n = d.shape[1]
    B = p1 - p0
    P = a.shape[0]
    T = np.empty((1, n, B), dtype=d.dtype)
    X = np.empty((1, n, B), dtype=d.dtype)  # distinct from T so the sweeps vectorise
    for k in range(B):
        row = d[p0 + k]
        for i in range(n):
            T[0, i, k] = row[i]
    if P == 1:
        _mid_block(T, X, X, a.reshape(1, n, 1), cp.reshape(1, n, 1), inv.reshape(1, n, 1),
                   z.reshape(z.shape[0], z.shape[1], 1), vn.reshape(vn.shape[0], vn.shape[1], 1),
                   qf.reshape(qf.shape[0], qf.shape[1], 1), 0, 0, B, alpha, False, cyclic)
    else:
        # Per-line coefficients: transpose them too, then the Q > 1 path applies.
        A = np.empty((1, n, B), dtype=d.dtype)
        C = np.empty((1, n, B), dtype=d.dtype)
        V = np.empty((1, n, B), dtype=d.dtype)
        for k in range(B):
            for i in range(n):
                A[0, i, k] = a[p0 + k, i]
                C[0, i, k] = cp[p0 + k, i]
                V[0, i, k] = inv[p0 + k, i]
        if cyclic:
            Z = np.empty((1, n, B), dtype=d.dtype)
            VN = np.empty((1, 1, B), dtype=d.dtype)
            QF = np.empty((1, 1, B), dtype=d.dtype)
            for k in range(B):
                VN[0, 0, k] = vn[p0 + k, 0]
                QF[0, 0, k] = qf[p0 + k, 0]
                for i in range(n):
                    Z[0, i, k] = z[p0 + k, i]
            _mid_block(T, X, X, A, C, V, Z, VN, QF, 0, 0, B, alpha, False, True)
        else:
            _mid_block(T, X, X, A, C, V, A, A, A, 0, 0, B, alpha, False, False)
    for k in range(B):
        if accumulate:
            orow = out[p0 + k]
            for i in range(n):
                orow[i] = orow[i] + alpha * X[0, i, k]
        else:
            xrow = x[p0 + k]
            for i in range(n):
                xrow[i] = X[0, i, k]


@register_kernel("tri_solve_last", 0)
def solve_last(d, x, out, a, cp, inv, z, vn, qf, block, alpha, accumulate, cyclic):
    """Contiguous lines (``post == 1``), in blocks of ``block`` lines."""
    pre = d.shape[0]
    nb = (pre + block - 1) // block
    for t in prange(nb):
        p0 = t * block
        _last_block(d, x, out, a, cp, inv, z, vn, qf, p0, min(p0 + block, pre), alpha, accumulate, cyclic)
