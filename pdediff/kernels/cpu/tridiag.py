"""Batched tridiagonal (Thomas) solves along one axis of an array.

Arrays are viewed as ``(pre, n, post)``: ``n`` unknowns per line, lines indexed
by ``(p, q)``.  The system of every line is
``a_i x_{i-1} + b_i x_i + c_i x_{i+1} = d_i`` (plus, for periodic lines, the
corner entries closed through the last cell, see below).
Systems are given by ``a``, ``c`` and the row sums ``s = a + b + c`` (:func:`factor`).

Coefficient arrays have shape ``(P, n, Q)`` with ``P`` in ``{1, pre}`` and ``Q``
in ``{1, post}``: one set shared by all lines (constant coefficients) or one
per line (variable diffusivity, AOS conductances).  The factorisation is done
once (:func:`factor`, subtraction-free for diffusion matrices); each solve is then a forward and a backward sweep.

Two solve kernels: :func:`solve_mid` for lines that are strided in memory
(``post > 1``, vectorised across ``q`` in cache-sized column blocks) and
:func:`solve_last` for contiguous lines (``post == 1``), which sweeps tiles of
8 lines together (eight independent dependency chains in registers, the
transposes fused into the sweeps' loads and stores; fewer than 8 lines: one at
a time).
Both optionally fuse ``out += alpha * x`` (ADI's final update, AOS's average;
into the backward sweep when there is no periodic correction) and the periodic closure.

Periodic lines (``cyclic``): the sweeps solve the open line ``T`` of cells
``0..n-2`` (the couplings to cell ``n-1`` moved into ``T``'s row sums, so
``cp_{n-2} = 0``), and with ``inv_{n-1} = 1`` the forward sweep leaves
``d_{n-1} + t_{n-2} y_{n-2}`` in row ``n-1``.  Then
``x_{n-1} = (that + vn y_0) qf`` (``vn`` the wrap-around coupling, ``qf = 1 /
(1 + t_{n-2} v_{n-2} + vn v_0)``, ``v = T^{-1} 1``) and ``x_i = y_i + z_i
x_{n-1}`` (``z = T^{-1}`` of the couplings to cell ``n-1``).  Every term is
non-negative for diffusion matrices: unlike a Sherman–Morrison correction, this
does not cancel when ``dt`` is large (built by
:meth:`pdediff.heat._operators.TridiagonalSystem.build`).

Inner loops run over 1-D row views indexed from 0: Numba then needs no
negative-index wrap-around and LLVM vectorises them (5x faster than indexing
the 3-D array directly).  ``d`` and ``x`` may alias, but distinct arrays let
LLVM skip its run-time overlap check.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import register_kernel

#: Lines per tile of the contiguous-axis solve.  Each line's running value lives in a scalar register
#: (the eight lanes are written out below): LLVM does not vectorise across lines here (the loads
#: are strided), but eight independent dependency chains keep the core busy, and the transposes
#: are fused with the sweeps (one load of ``d`` and one store of the result per element).
_LANES = 8


@njit(cache=True, error_model="numpy")  # no ZeroDivisionError branch: the q loops vectorise
def _factor_block(a, s, c, cp, inv, p, q0, q1):
    # Row-sum form (see factor): e_i = s_i - a_i e_{i-1} inv_{i-1}, den_i = e_i - c_i.
    n = s.shape[1]
    m = q1 - q0
    e = np.empty(m, dtype=inv.dtype)
    s0, c0, i0, p0 = s[p, 0, q0:q1], c[p, 0, q0:q1], inv[p, 0, q0:q1], cp[p, 0, q0:q1]
    for q in range(m):
        e[q] = s0[q]
        i0[q] = 1.0 / (s0[q] - c0[q])
        p0[q] = c0[q] * i0[q]
    for i in range(1, n):
        ai, si, ci = a[p, i, q0:q1], s[p, i, q0:q1], c[p, i, q0:q1]
        ii, pi, im = inv[p, i, q0:q1], cp[p, i, q0:q1], inv[p, i - 1, q0:q1]
        for q in range(m):
            eq = si[q] - ai[q] * (e[q] * im[q])
            e[q] = eq
            ii[q] = 1.0 / (eq - ci[q])
            pi[q] = ci[q] * ii[q]


@register_kernel("tri_factor", 0)
def factor(a, s, c, cp, inv):
    """Thomas factors of the ``(P, n, Q)`` systems ``a_i x_{i-1} + b_i x_i + c_i x_{i+1} = d_i`` given by their
    **row sums** ``s_i = a_i + b_i + c_i`` (``a_0`` and ``c_{n-1}`` are 0), over ``(p, q-block)`` work items.

    Writes ``inv_i = 1 / den_i`` and ``cp_i = c_i inv_i`` with ``den_i = b_i - a_i cp_{i-1}``, computed as
    ``den_i = e_i - c_i``, ``e_i = s_i - a_i e_{i-1} inv_{i-1}`` (``e_i = den_i + c_i``, algebraically the same).
    For the M-matrices of implicit diffusion (``a, c <= 0``, ``s >= 1``) every operation then adds
    non-negative terms: nothing cancels, so the factors are accurate to a few ulp for *any* time step,
    whereas ``b_i = 1 + tau (g_lo + g_up)`` loses its 1 once ``tau`` exceeds ``1/eps`` (float32: ``dt ~ 1e7``)
    and ``b - a cp`` then cancels to 0 (NaN results).  ``Q`` may be 1 or many.
    """
    P, n, Q = s.shape
    block = 256
    nb = (Q + block - 1) // block
    for t in prange(P * nb):
        p = t // nb
        q0 = (t % nb) * block
        _factor_block(a, s, c, cp, inv, p, q0, min(q0 + block, Q))


@njit(cache=True, inline="always")
def _add_row(out, x, p, i, q0, q1, alpha):
    oi, xi = out[p, i, q0:q1], x[p, i, q0:q1]
    for q in range(q1 - q0):
        oi[q] = oi[q] + alpha * xi[q]


@njit(cache=True)
def _mid_block(d, x, out, a, cp, inv, z, vn, qf, p, q0, q1, alpha, accumulate, cyclic):
    # Without the periodic correction, out += alpha x is fused into the backward sweep (each row added
    # while it is in L1), not a separate pass over the block.
    fuse = accumulate and not cyclic
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
        if fuse:
            _add_row(out, x, p, n - 1, q0, q1, alpha)
        for i in range(n - 2, -1, -1):
            ci = cp[pa, i, 0]
            xi = x[p, i, q0:q1]
            xn = x[p, i + 1, q0:q1]
            for q in range(m):
                xi[q] = xi[q] - ci * xn[q]
            if fuse:
                _add_row(out, x, p, i, q0, q1, alpha)
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
        if fuse:
            _add_row(out, x, p, n - 1, q0, q1, alpha)
        for i in range(n - 2, -1, -1):
            ci = cp[pa, i, q0:q1]
            xi = x[p, i, q0:q1]
            xn = x[p, i + 1, q0:q1]
            for q in range(m):
                xi[q] = xi[q] - ci[q] * xn[q]
            if fuse:
                _add_row(out, x, p, i, q0, q1, alpha)
    if cyclic:
        xl = x[p, n - 1, q0:q1]
        for q in range(m):
            qa = q0 + q if Q > 1 else 0
            xl[q] = (xl[q] + vn[pa, 0, qa] * x0[q]) * qf[pa, 0, qa]  # x_{n-1}
        for i in range(n - 1):
            xi = x[p, i, q0:q1]
            if Q == 1:
                zi = z[pa, i, 0]
                for q in range(m):
                    xi[q] = xi[q] + zi * xl[q]
            else:
                zr = z[pa, i, q0:q1]
                for q in range(m):
                    xi[q] = xi[q] + zr[q] * xl[q]
    if accumulate and cyclic:  # after the periodic correction, which needs the whole line
        for i in range(n):
            _add_row(out, x, p, i, q0, q1, alpha)


@register_kernel("tri_solve_mid", 0)
def solve_mid(d, x, out, a, cp, inv, z, vn, qf, block, alpha, accumulate, cyclic):
    """Strided lines (``post > 1``), in ``(p, column-block)`` work items."""
    pre, n, post = d.shape
    nb = (post + block - 1) // block
    for t in prange(pre * nb):
        p = t // nb
        q0 = (t % nb) * block
        _mid_block(d, x, out, a, cp, inv, z, vn, qf, p, q0, min(q0 + block, post), alpha, accumulate, cyclic)


@njit(cache=True, error_model="numpy")
def _tile8(D, Y, O, a, cp, inv, A, CP, INV, n, alpha, mode, shared):
    """Forward and backward Thomas sweeps of the 8 lines ``D[k, :]`` (``(8, n)``), together.

    ``shared``: coefficients ``a, cp, inv`` (1-D) shared by the lines, else
    per line ``A, CP, INV`` (``(8, n)``).  Forward results go to the tile
    ``Y[i, k]``; the backward sweep writes ``O[k, i] = x`` (``mode`` 0),
    ``O[k, i] += alpha x`` (``mode`` 1) or ``Y[i, k] = x`` (``mode`` 2).
    ``y_i = d_i inv_i - (a_i inv_i) y_{i-1}``: one multiply and one
    subtraction on the dependency chain.
    """
    if shared:
        v = inv[0]
        y0 = D[0, 0] * v; y1 = D[1, 0] * v; y2 = D[2, 0] * v; y3 = D[3, 0] * v
        y4 = D[4, 0] * v; y5 = D[5, 0] * v; y6 = D[6, 0] * v; y7 = D[7, 0] * v
    else:
        y0 = D[0, 0] * INV[0, 0]; y1 = D[1, 0] * INV[1, 0]; y2 = D[2, 0] * INV[2, 0]
        y3 = D[3, 0] * INV[3, 0]; y4 = D[4, 0] * INV[4, 0]; y5 = D[5, 0] * INV[5, 0]
        y6 = D[6, 0] * INV[6, 0]; y7 = D[7, 0] * INV[7, 0]
    Y[0, 0] = y0; Y[0, 1] = y1; Y[0, 2] = y2; Y[0, 3] = y3
    Y[0, 4] = y4; Y[0, 5] = y5; Y[0, 6] = y6; Y[0, 7] = y7
    for i in range(1, n):
        if shared:
            v = inv[i]
            g = a[i] * v
            y0 = D[0, i] * v - g * y0; y1 = D[1, i] * v - g * y1
            y2 = D[2, i] * v - g * y2; y3 = D[3, i] * v - g * y3
            y4 = D[4, i] * v - g * y4; y5 = D[5, i] * v - g * y5
            y6 = D[6, i] * v - g * y6; y7 = D[7, i] * v - g * y7
        else:
            y0 = D[0, i] * INV[0, i] - (A[0, i] * INV[0, i]) * y0
            y1 = D[1, i] * INV[1, i] - (A[1, i] * INV[1, i]) * y1
            y2 = D[2, i] * INV[2, i] - (A[2, i] * INV[2, i]) * y2
            y3 = D[3, i] * INV[3, i] - (A[3, i] * INV[3, i]) * y3
            y4 = D[4, i] * INV[4, i] - (A[4, i] * INV[4, i]) * y4
            y5 = D[5, i] * INV[5, i] - (A[5, i] * INV[5, i]) * y5
            y6 = D[6, i] * INV[6, i] - (A[6, i] * INV[6, i]) * y6
            y7 = D[7, i] * INV[7, i] - (A[7, i] * INV[7, i]) * y7
        Y[i, 0] = y0; Y[i, 1] = y1; Y[i, 2] = y2; Y[i, 3] = y3
        Y[i, 4] = y4; Y[i, 5] = y5; Y[i, 6] = y6; Y[i, 7] = y7
    for i in range(n - 1, -1, -1):
        if i < n - 1:  # x_{n-1} = y_{n-1}
            if shared:
                c = cp[i]
                y0 = Y[i, 0] - c * y0; y1 = Y[i, 1] - c * y1; y2 = Y[i, 2] - c * y2
                y3 = Y[i, 3] - c * y3; y4 = Y[i, 4] - c * y4; y5 = Y[i, 5] - c * y5
                y6 = Y[i, 6] - c * y6; y7 = Y[i, 7] - c * y7
            else:
                y0 = Y[i, 0] - CP[0, i] * y0; y1 = Y[i, 1] - CP[1, i] * y1
                y2 = Y[i, 2] - CP[2, i] * y2; y3 = Y[i, 3] - CP[3, i] * y3
                y4 = Y[i, 4] - CP[4, i] * y4; y5 = Y[i, 5] - CP[5, i] * y5
                y6 = Y[i, 6] - CP[6, i] * y6; y7 = Y[i, 7] - CP[7, i] * y7
        if mode == 0:
            O[0, i] = y0; O[1, i] = y1; O[2, i] = y2; O[3, i] = y3
            O[4, i] = y4; O[5, i] = y5; O[6, i] = y6; O[7, i] = y7
        elif mode == 1:
            O[0, i] += alpha * y0; O[1, i] += alpha * y1; O[2, i] += alpha * y2
            O[3, i] += alpha * y3; O[4, i] += alpha * y4; O[5, i] += alpha * y5
            O[6, i] += alpha * y6; O[7, i] += alpha * y7
        else:
            Y[i, 0] = y0; Y[i, 1] = y1; Y[i, 2] = y2; Y[i, 3] = y3
            Y[i, 4] = y4; Y[i, 5] = y5; Y[i, 6] = y6; Y[i, 7] = y7


@njit(cache=True, error_model="numpy")
def _padded(src, p0, p1):
    """Rows ``p0..p1`` of ``src`` in a ``(_LANES, n)`` array, the last row repeated (a partial tile)."""
    buf = np.empty((_LANES, src.shape[1]), dtype=src.dtype)
    for k in range(_LANES):
        r = min(p0 + k, p1 - 1)
        buf[k, :] = src[r, :]
    return buf


@njit(cache=True, error_model="numpy")
def _line_scalar(d, x, out, a, cp, inv, z, vn, qf, p, alpha, accumulate, cyclic):
    """One contiguous line by the plain Thomas sweeps (fewer lines than a tile: 1-D problems)."""
    n = d.shape[1]
    pa = min(p, a.shape[0] - 1)  # 0 for shared coefficients (min keeps one integer type)
    ar, cr, vr = a[pa], cp[pa], inv[pa]
    dr, xr = d[p], x[p]
    y = vr[0] * dr[0]
    xr[0] = y
    for i in range(1, n):
        y = dr[i] * vr[i] - (ar[i] * vr[i]) * y
        xr[i] = y
    for i in range(n - 2, -1, -1):
        y = xr[i] - cr[i] * y
        xr[i] = y
    if cyclic:
        f = (xr[n - 1] + vn[pa, 0] * xr[0]) * qf[pa, 0]
        xr[n - 1] = f
        zr = z[pa]
        for i in range(n - 1):
            xr[i] = xr[i] + zr[i] * f
    if accumulate:
        orow = out[p]
        for i in range(n):
            orow[i] = orow[i] + alpha * xr[i]


@njit(cache=True, error_model="numpy")
def _last_tile(d, x, out, a, cp, inv, z, vn, qf, p0, p1, alpha, accumulate, cyclic):
    # Lines p0..p1 (at most _LANES) of d (pre, n).  A full tile without the periodic correction writes
    # its result straight from the backward sweep; otherwise it stays in the tile Y for the correction
    # and is written back line by line.
    n = d.shape[1]
    m = p1 - p0
    full = m == _LANES
    shared = a.shape[0] == 1
    Y = np.empty((n, _LANES), dtype=d.dtype)
    D = d[p0:p1] if full else _padded(d, p0, p1)
    direct = full and not cyclic
    mode = (1 if accumulate else 0) if direct else 2
    O = (out[p0:p1] if accumulate else x[p0:p1]) if direct else D
    if shared:
        _tile8(D, Y, O, a[0], cp[0], inv[0], D, D, D, n, alpha, mode, True)
    elif full:
        _tile8(D, Y, O, a[0], a[0], a[0], a[p0:p1], cp[p0:p1], inv[p0:p1], n, alpha, mode, False)
    else:
        _tile8(D, Y, O, a[0], a[0], a[0], _padded(a, p0, p1), _padded(cp, p0, p1), _padded(inv, p0, p1), n,
               alpha, mode, False)
    if direct:
        return
    if cyclic:
        # The periodic closure (see the module docstring): x_{n-1} = (y_{n-1} + vn y_0) qf, x_i += z_i x_{n-1}.
        f = Y[n - 1]
        for k in range(_LANES):
            pa = min(p0 + k, p1 - 1, z.shape[0] - 1)
            f[k] = (f[k] + vn[pa, 0] * Y[0, k]) * qf[pa, 0]
        for i in range(n - 1):
            yi = Y[i]
            if shared:
                zi = z[0, i]
                for k in range(_LANES):
                    yi[k] = yi[k] + zi * f[k]
            else:
                for k in range(_LANES):
                    yi[k] = yi[k] + z[min(p0 + k, p1 - 1), i] * f[k]
    for k in range(m):
        if accumulate:
            orow = out[p0 + k]
            for i in range(n):
                orow[i] = orow[i] + alpha * Y[i, k]
        else:
            xrow = x[p0 + k]
            for i in range(n):
                xrow[i] = Y[i, k]


@register_kernel("tri_solve_last", 0)
def solve_last(d, x, out, a, cp, inv, z, vn, qf, block, alpha, accumulate, cyclic):
    """Contiguous lines (``post == 1``): tiles of ``_LANES`` lines (``block`` is ignored), or one line at
    a time when there are fewer lines than a tile."""
    pre = d.shape[0]
    if pre < _LANES:
        for p in prange(pre):
            # (prange indices may be unsigned: int64 keeps min() integer)
            _line_scalar(d, x, out, a, cp, inv, z, vn, qf, np.int64(p), alpha, accumulate, cyclic)
        return
    nb = (pre + _LANES - 1) // _LANES
    for t in prange(nb):
        p0 = np.int64(t) * _LANES
        _last_tile(d, x, out, a, cp, inv, z, vn, qf, p0, min(p0 + _LANES, pre), alpha, accumulate, cyclic)
