"""Perona–Malik kernels: the fused explicit step and the AOS coefficients (docs/conventions.rst §4).

Arrays carry a leading channel axis and are viewed as ``(C, rows, n)``: a 2-D
image ``(C, n0, n1)`` as is (1-D runs as ``(C, 1, n)``), a 3-D volume
``(C, n0, n1, n2)`` as ``(C, n0 * n1, n2)`` with ``nplane = n1`` rows per plane.  ``u`` is diffused; ``v`` (``u``
itself, or its Gaussian-smoothed copy for the Catté regularisation) feeds the
conductance.  Channels share one conductance per face, computed from the sum
of their squared differences (vector-valued diffusion).

Explicit step, per face between cells ``i`` and ``j`` along axis ``a``::

    s^2   = sum_c ((v_j - v_i) / h_a)^2
    flux  = g(s^2 / kappa^2) * (u_j - u_i) / h_a^2
    u_i  += dt * sum over the 2N faces of flux

Each face's conductance is evaluated once (not once per adjacent cell): the
kernels carry the fluxes of the previous row (2-D) or plane (3-D) forward.
Faces on the domain boundary carry no flux (Neumann).

Conductance codes: 0 exponential ``exp(-x)``, 1 rational ``1/(1+x)``,
2 Tukey ``0.5 (1-x)^2`` for ``x <= 1`` else 0, with ``x = s^2 / kappa^2``;
3 the exponential evaluated in float32 (float32 images).  The exponentials are
vectorisable polynomial approximations (:func:`exp_neg`, :func:`exp_neg32`)
tested against ``math.exp``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


_LN2_32_HI = 0.02166084938653512  # Cody–Waite split of ln2/32: hi has 32 significant bits, so n * hi is exact
_LN2_32_LO = 5.9631716539705866e-12
_INV_LN2_32 = 46.16624130844683  # 32 / ln 2
_XMAX64 = 708.0  # exp(-708) ~ 3.3e-308, just above float64's smallest normal
#: 2^(-n/32) for n up to 32 * 708 / ln 2: one gather replaces the 2^-k scaling and shrinks the
#: polynomial's interval to |r| <= ln2/64, where degree 6 suffices (truncation < 2e-17).
_POW2NEG = np.exp2(-np.arange(int(_XMAX64 * _INV_LN2_32) + 2) / 32.0)


@njit(cache=True, error_model="numpy", inline="always")  # inlined so the calling loop vectorises
def exp_neg(x):
    """``exp(-x)`` for ``x >= 0`` in float64, within a few ulp of ``math.exp``; 0 for ``x >= 708`` and NaN.

    Range reduction ``x = n ln2/32 + r`` (Cody–Waite), the degree-6 Taylor
    polynomial of ``exp(-r)`` for ``|r| <= ln2/64``, and ``2^(-n/32)`` from a
    table.  Unlike a libm call LLVM can vectorise it (no SVML here), which
    makes the exponential conductance nearly as fast as the rational one.
    Results that would be subnormal are flushed to zero (as with FTZ), since
    subnormal arithmetic, even in a discarded vector lane, costs ~100x.
    """
    # Clamp before the table lookup: NaN (a non-finite gradient) and x >= 708 map to the last entry and
    # negative x to the first, so no value can index outside the table.
    xc = x if x < _XMAX64 else _XMAX64
    xc = xc if xc > 0.0 else 0.0
    n = np.floor(xc * _INV_LN2_32 + 0.5)
    r = (xc - n * _LN2_32_HI) - n * _LN2_32_LO
    y = -r
    p = 1.0 / 720.0
    p = p * y + 1.0 / 120.0
    p = p * y + 1.0 / 24.0
    p = p * y + 1.0 / 6.0
    p = p * y + 0.5
    p = p * y + 1.0
    p = p * y + 1.0
    e = p * _POW2NEG[np.int32(n)]  # n >= 0
    return e if x < _XMAX64 else 0.0 * e  # NaN compares false: g(NaN) = 0


_F32 = np.float32
_LN2_HI32 = _F32(0.693359375)  # Cody–Waite split of ln 2 for float32 (cephes expf)
_LN2_LO32 = _F32(-2.12194440e-4)
_LOG2E32 = _F32(1.44269504088896341)
_POW2NEG32 = np.array([2.0 ** -n for n in range(151)], dtype=np.float32)  # 2^-150 rounds to 0
_E32 = tuple(_F32(1.0 / math.factorial(k)) for k in range(8))
_XMAX32 = _F32(87.0)  # exp(-87) ~ 1.6e-38, just above float32's smallest normal
_HALF32 = _F32(0.5)
_ZERO32 = _F32(0.0)


@njit(cache=True, error_model="numpy", inline="always")
def exp_neg32(x):
    """``exp(-x)`` for ``x >= 0`` in float32 arithmetic, within a few float32 ulp; vectorises 8 wide.

    Flushed to 0 for ``x >= 87`` (results below float32's normal range).

    Same reduction as :func:`exp_neg`; degree-7 Taylor polynomial (truncation
    below 2e-8 for ``|r| <= ln2/2``) and a table of ``2^-n``, ``n <= 150``.
    """
    xc = x if x < _XMAX32 else _XMAX32  # NaN -> XMAX: the table index stays in range (see exp_neg)
    xc = xc if xc > _ZERO32 else _ZERO32
    n = np.floor(xc * _LOG2E32 + _HALF32)
    r = (xc - n * _LN2_HI32) - n * _LN2_LO32
    y = -r
    p = _E32[7]
    p = p * y + _E32[6]
    p = p * y + _E32[5]
    p = p * y + _E32[4]
    p = p * y + _E32[3]
    p = p * y + _E32[2]
    p = p * y + _E32[1]
    p = p * y + _E32[0]
    e = p * _POW2NEG32[np.uint32(n)]
    return e if x < _XMAX32 else e - e  # flush to 0 below the normal range (a typed zero)


@njit(cache=True, error_model="numpy")  # no ZeroDivisionError check: the loops vectorise
def apply_conductance(g, m, kinv2, code, one, half):
    """``g[j] = g(g[j] * kinv2)`` for ``j < m`` (codes as above); one loop per code so each vectorises.

    A non-finite argument (NaN from non-finite data, or inf) gives ``g = 0``: no flux through that face.
    """
    big = one / (one - one)  # +inf of the data's type (error_model="numpy": no ZeroDivisionError)
    if code == 0:
        for j in range(m):
            g[j] = exp_neg(g[j] * kinv2)
    elif code == 3:  # exponential in float32 arithmetic (float32 images)
        for j in range(m):
            g[j] = exp_neg32(g[j] * kinv2)
    elif code == 1:
        for j in range(m):
            x = g[j] * kinv2
            g[j] = one / (one + x) if x < big else one - one  # NaN -> 0, like the other conductances
    else:
        zero = one - one
        for j in range(m):
            x = g[j] * kinv2
            t = one - x
            g[j] = half * t * t if x <= one else zero


@njit(cache=True, error_model="numpy")
def _flux1(va, vb, ua, ub, f, m, ih, ihs, kinv2, code, one, half):
    """One channel, fused: ``f = g(((vb - va) ih)^2 / K^2) * (ub - ua) * ih^2`` in a single pass."""
    big = one / (one - one)  # +inf: g = 0 for NaN and inf arguments, as in apply_conductance
    if code == 3:
        for j in range(m):
            d = (vb[j] - va[j]) * ih
            f[j] = exp_neg32(d * d * kinv2) * (ub[j] - ua[j]) * ihs
    elif code == 1:
        for j in range(m):
            d = (vb[j] - va[j]) * ih
            x = d * d * kinv2
            f[j] = (one / (one + x) if x < big else one - one) * (ub[j] - ua[j]) * ihs
    elif code == 0:
        for j in range(m):
            d = (vb[j] - va[j]) * ih
            f[j] = exp_neg(d * d * kinv2) * (ub[j] - ua[j]) * ihs
    else:
        zero = one - one
        for j in range(m):
            d = (vb[j] - va[j]) * ih
            x = d * d * kinv2
            t = one - x
            f[j] = (half * t * t if x <= one else zero) * (ub[j] - ua[j]) * ihs


@njit(cache=True, error_model="numpy")
def _flux(v, u, ra, oa, rb, ob, m, F, fr, fo, g, ih, kinv2, code, one, half):
    """Fluxes of ``m`` faces between the row segments ``[r, o:o+m]`` of ``(C, rows, L)`` arrays.

    Face ``j`` joins ``v[c, ra, oa + j]`` and ``v[c, rb, ob + j]``; its flux goes
    to ``F[c, fr, fo + j]``.  Every view is a contiguous 1-D slice of a
    C-contiguous array, so the loops vectorise.  One channel takes the fused
    single-pass path; several share one conductance from their summed squared
    differences.
    """
    C = v.shape[0]
    ihs = ih * ih
    if C == 1:
        _flux1(v[0, ra, oa : oa + m], v[0, rb, ob : ob + m], u[0, ra, oa : oa + m], u[0, rb, ob : ob + m],
               F[0, fr, fo : fo + m], m, ih, ihs, kinv2, code, one, half)
        return
    zero = one - one
    for j in range(m):
        g[j] = zero
    for c in range(C):
        va, vb = v[c, ra, oa : oa + m], v[c, rb, ob : ob + m]
        for j in range(m):
            d = (vb[j] - va[j]) * ih
            g[j] += d * d
    apply_conductance(g, m, kinv2, code, one, half)
    for c in range(C):
        ua, ub, f = u[c, ra, oa : oa + m], u[c, rb, ob : ob + m], F[c, fr, fo : fo + m]
        for j in range(m):
            f[j] = g[j] * (ub[j] - ua[j]) * ihs


@njit(cache=True, error_model="numpy")
def _pm_rows(u, v, out, r0, r1, nplane, dt, ihz, ihy, ihx, kinv2, code, one, half):
    """Explicit step for the rows ``r0..r1`` of ``(C, rows, n)`` arrays, rows = planes x ``nplane``.

    2-D: one plane (``nplane`` = number of rows, no z faces).  3-D: rows
    ``k * nplane + i``; the z fluxes of the previous plane and the y fluxes of
    the previous row are carried, so each face's conductance is evaluated once.
    ``r0`` must start a plane in 3-D.
    """
    C, R, n = u.shape
    nz = R // nplane
    zero = one - one
    has_z = nz > 1
    fz_prev = np.zeros((C, nplane if has_z else 1, n), dtype=u.dtype)
    fz_next = np.zeros((C, nplane if has_z else 1, n), dtype=u.dtype)
    fy_prev = np.zeros((C, 1, n), dtype=u.dtype)
    fy_next = np.zeros((C, 1, n), dtype=u.dtype)
    fx = np.zeros((C, 1, n + 1), dtype=u.dtype)  # fx[c, 0, j]: face between j-1 and j (0, n: boundary)
    g = np.empty(n + 1, dtype=u.dtype)
    m = n - 1
    k0 = r0 // nplane
    if has_z and k0 > 0:
        for i in range(nplane):
            _flux(v, u, (k0 - 1) * nplane + i, 0, k0 * nplane + i, 0, n, fz_prev, i, 0, g, ihz, kinv2, code,
                  one, half)
    i_first = r0 % nplane
    if i_first > 0:  # 2-D block starting inside the plane: the face above its first row
        _flux(v, u, r0 - 1, 0, r0, 0, n, fy_prev, 0, 0, g, ihy, kinv2, code, one, half)
    for r in range(r0, r1):
        k = r // nplane
        i = r % nplane
        if has_z and i == 0:
            if k < nz - 1:
                for ii in range(nplane):
                    _flux(v, u, k * nplane + ii, 0, (k + 1) * nplane + ii, 0, n, fz_next, ii, 0, g, ihz, kinv2,
                          code, one, half)
            else:
                fz_next[:, :, :] = zero
            fy_prev[:, :, :] = zero
        if i < nplane - 1:
            _flux(v, u, r, 0, r + 1, 0, n, fy_next, 0, 0, g, ihy, kinv2, code, one, half)
        else:
            fy_next[:, :, :] = zero
        _flux(v, u, r, 0, r, 1, m, fx, 0, 1, g, ihx, kinv2, code, one, half)
        zi = i if has_z else 0
        for c in range(C):
            row, o = u[c, r], out[c, r]
            yp, yn = fy_prev[c, 0], fy_next[c, 0]
            fa, fb = fx[c, 0, 0:n], fx[c, 0, 1 : n + 1]
            if has_z:
                zp, zn = fz_prev[c, zi], fz_next[c, zi]
                for j in range(n):
                    o[j] = row[j] + dt * ((zn[j] - zp[j]) + (yn[j] - yp[j]) + (fb[j] - fa[j]))
            else:
                for j in range(n):
                    o[j] = row[j] + dt * ((yn[j] - yp[j]) + (fb[j] - fa[j]))
        fy_prev, fy_next = fy_next, fy_prev
        if has_z and i == nplane - 1:
            fz_prev, fz_next = fz_next, fz_prev


@njit(cache=True, parallel=True)
def pm_par(u, v, out, nplane, dt, ihz, ihy, ihx, kinv2, code, one, half, nblocks):
    """Blocks of planes (3-D) or of rows (2-D, ``nplane`` = all rows) in parallel."""
    R = u.shape[1]
    nz = R // nplane
    units = nz if nz > 1 else R  # 3-D blocks start on plane boundaries
    step = nplane if nz > 1 else 1
    for b in prange(nblocks):
        a0 = b * units // nblocks
        a1 = (b + 1) * units // nblocks
        if a1 > a0:
            _pm_rows(u, v, out, a0 * step, a1 * step, nplane, dt, ihz, ihy, ihx, kinv2, code, one, half)


@njit(cache=True)
def pm_ser(u, v, out, nplane, dt, ihz, ihy, ihx, kinv2, code, one, half, nblocks):
    _pm_rows(u, v, out, 0, u.shape[1], nplane, dt, ihz, ihy, ihx, kinv2, code, one, half)


@njit(cache=True, parallel=True, error_model="numpy")
def aos_coefficients_mid(v, a, b, c, tau, ih, kinv2, code, one, half):
    """Tridiagonal lines of ``I - tau A_a(v)`` along axis 2 of ``v`` ``(C, pre, n, post)``, ``post > 1``.

    ``A_a x_i = (g_{i+1/2} (x_{i+1} - x_i) - g_{i-1/2} (x_i - x_{i-1})) / h^2`` with
    Neumann ends (``tau = m dt / h^2`` already includes ``1/h^2``); ``a, b, c``
    are ``(pre, n, post)``.  Vectorised across ``q``.
    """
    C, pre, n, post = v.shape
    zero = one - one
    for p in prange(pre):
        w = np.empty(post, dtype=v.dtype)
        a0, b0, cl = a[p, 0], b[p, 0], c[p, n - 1]
        for q in range(post):
            a0[q] = zero
            b0[q] = one
            cl[q] = zero
        for i in range(n - 1):
            for q in range(post):
                w[q] = zero
            for ch in range(C):
                va, vb = v[ch, p, i], v[ch, p, i + 1]
                for q in range(post):
                    d = (vb[q] - va[q]) * ih
                    w[q] += d * d
            apply_conductance(w, post, kinv2, code, one, half)
            ci, an, bi, bn = c[p, i], a[p, i + 1], b[p, i], b[p, i + 1]
            for q in range(post):
                t = tau * w[q]
                ci[q] = -t
                an[q] = -t
                bi[q] += t
                bn[q] = one + t


@njit(cache=True, parallel=True, error_model="numpy")
def aos_coefficients_last(v, a, b, c, tau, ih, kinv2, code, one, half):
    """As :func:`aos_coefficients_mid` along the contiguous last axis: ``v`` ``(C, pre, n)``, ``a, b, c`` ``(pre, n)``.

    The faces of a line are independent, so the loops vectorise along the line.
    """
    C, pre, n = v.shape
    zero = one - one
    m = n - 1
    for p in prange(pre):
        w = np.empty(max(m, 1), dtype=v.dtype)
        for j in range(m):
            w[j] = zero
        for ch in range(C):
            r = v[ch, p]
            lft, rgt = r[0:m], r[1:n]
            for j in range(m):
                d = (rgt[j] - lft[j]) * ih
                w[j] += d * d
        apply_conductance(w, m, kinv2, code, one, half)
        ap, bp, cp = a[p], b[p], c[p]
        for j in range(n):
            ap[j] = zero
            bp[j] = one
            cp[j] = zero
        a1, b0, b1, c0 = ap[1:n], bp[0:m], bp[1:n], cp[0:m]
        for j in range(m):
            t = tau * w[j]
            c0[j] = -t
            a1[j] = -t
            b0[j] += t
        for j in range(m):
            b1[j] += tau * w[j]
