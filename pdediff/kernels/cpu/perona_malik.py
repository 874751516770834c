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

import numpy as np
from numba import njit, prange

from ..formulas import EXPONENTIAL, EXPONENTIAL32, RATIONAL, TAU_MAX, TUKEY
from ._common import F, exp_neg, exp_neg32, register_kernel  # noqa: F401 - exp_neg*: tested here

#: :data:`~pdediff.kernels.formulas.TAU_MAX` as a float32 constant: ``one * _TAU_MAX32`` has the data's type.
_TAU_MAX32 = np.float32(TAU_MAX)

# Each conductance runs in a loop of its own, with the code a compile-time constant, so LLVM
# folds the branches of F.conductance away and vectorises every loop.


@njit(cache=True, error_model="numpy")  # no ZeroDivisionError check: the loops vectorise
def apply_conductance(g, m, kinv2, code, one, half):
    """``g[j] = g(g[j] * kinv2)`` for ``j < m``; a non-finite argument gives 0 (no flux)."""
    if code == EXPONENTIAL:
        for j in range(m):
            g[j] = F.conductance(g[j] * kinv2, EXPONENTIAL, one, half)
    elif code == EXPONENTIAL32:
        for j in range(m):
            g[j] = F.conductance(g[j] * kinv2, EXPONENTIAL32, one, half)
    elif code == RATIONAL:
        for j in range(m):
            g[j] = F.conductance(g[j] * kinv2, RATIONAL, one, half)
    else:
        for j in range(m):
            g[j] = F.conductance(g[j] * kinv2, TUKEY, one, half)


@njit(cache=True, error_model="numpy", inline="always")
def _face_flux(va, vb, ua, ub, ih, ihs, kinv2, code, one, half):
    d = (vb - va) * ih
    return F.conductance(d * d * kinv2, code, one, half) * (ub - ua) * ihs


@njit(cache=True, error_model="numpy")
def _flux1(va, vb, ua, ub, f, m, ih, ihs, kinv2, code, one, half):
    """One channel, fused: ``f = g(((vb - va) ih)^2 / K^2) * (ub - ua) * ih^2`` in a single pass."""
    if code == EXPONENTIAL32:
        for j in range(m):
            f[j] = _face_flux(va[j], vb[j], ua[j], ub[j], ih, ihs, kinv2, EXPONENTIAL32, one, half)
    elif code == RATIONAL:
        for j in range(m):
            f[j] = _face_flux(va[j], vb[j], ua[j], ub[j], ih, ihs, kinv2, RATIONAL, one, half)
    elif code == EXPONENTIAL:
        for j in range(m):
            f[j] = _face_flux(va[j], vb[j], ua[j], ub[j], ih, ihs, kinv2, EXPONENTIAL, one, half)
    else:
        for j in range(m):
            f[j] = _face_flux(va[j], vb[j], ua[j], ub[j], ih, ihs, kinv2, TUKEY, one, half)


@njit(cache=True, error_model="numpy")
def _flux(v, u, ra, oa, rb, ob, m, flux, fr, fo, g, ih, kinv2, code, one, half):
    """Fluxes of ``m`` faces between the row segments ``[r, o:o+m]`` of ``(C, rows, L)`` arrays.

    Face ``j`` joins ``v[c, ra, oa + j]`` and ``v[c, rb, ob + j]``; its flux goes
    to ``flux[c, fr, fo + j]``.  Every view is a contiguous 1-D slice of a
    C-contiguous array, so the loops vectorise.  One channel takes the fused
    single-pass path; several share one conductance from their summed squared
    differences.
    """
    C = v.shape[0]
    ihs = ih * ih
    if C == 1:
        _flux1(v[0, ra, oa : oa + m], v[0, rb, ob : ob + m], u[0, ra, oa : oa + m], u[0, rb, ob : ob + m],
               flux[0, fr, fo : fo + m], m, ih, ihs, kinv2, code, one, half)
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
        ua, ub, f = u[c, ra, oa : oa + m], u[c, rb, ob : ob + m], flux[c, fr, fo : fo + m]
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


@njit(cache=True, error_model="numpy")
def _pm_planes(u, v, out, k0, k1, nplane, n, nz, dt, ihz, ihy, ihx, kinv2, code, one, half):
    """The explicit step of planes ``k0..k1`` of a volume, a whole plane per loop (3-D, as :func:`_pm_rows`).

    The rows of a volume are short (128-256 cells), so :func:`_pm_rows`' four loops per row pay
    their call and slicing overhead ~16k times per step; here each loop runs over a whole plane
    of ``P = nplane * n`` contiguous cells.  ``u``, ``v``, ``out`` are ``(C, 1, nz * P)`` flat
    views.  y faces pair cell ``f`` with ``f + n``; x faces pair ``f`` with ``f + 1``, and the
    ones that would cross a row end are zeroed after the loop.  Every face is the same
    floating-point expression as in :func:`_pm_rows` and the update sums in the same order, so
    the results are bit for bit the same (``tests/test_temporal_blocking.py`` compares the two).
    """
    C = u.shape[0]
    P = nplane * n
    zero = one - one
    fz_prev = np.zeros((C, 1, P), dtype=u.dtype)
    fz_next = np.zeros((C, 1, P), dtype=u.dtype)
    fy = np.zeros((C, 1, P + n), dtype=u.dtype)  # fy[f]: face between f - n and f (0 on the plane's edges)
    fx = np.zeros((C, 1, P + 1), dtype=u.dtype)  # fx[f]: face between f - 1 and f (0 across row ends)
    g = np.empty(P + 1, dtype=u.dtype)
    if k0 > 0:
        _flux(v, u, 0, (k0 - 1) * P, 0, k0 * P, P, fz_prev, 0, 0, g, ihz, kinv2, code, one, half)
    for k in range(k0, k1):
        base = k * P
        if k < nz - 1:
            _flux(v, u, 0, base, 0, base + P, P, fz_next, 0, 0, g, ihz, kinv2, code, one, half)
        else:
            fz_next[:, :, :] = zero
        if nplane > 1:
            _flux(v, u, 0, base, 0, base + n, P - n, fy, 0, n, g, ihy, kinv2, code, one, half)
        if P > 1:
            _flux(v, u, 0, base, 0, base + 1, P - 1, fx, 0, 1, g, ihx, kinv2, code, one, half)
        for c in range(C):
            for i in range(1, nplane):
                fx[c, 0, i * n] = zero
        for c in range(C):
            row, o = u[c, 0, base : base + P], out[c, 0, base : base + P]
            yp, yn = fy[c, 0, 0:P], fy[c, 0, n : P + n]
            fa, fb = fx[c, 0, 0:P], fx[c, 0, 1 : P + 1]
            zp, zn = fz_prev[c, 0], fz_next[c, 0]
            for j in range(P):
                o[j] = row[j] + dt * ((zn[j] - zp[j]) + (yn[j] - yp[j]) + (fb[j] - fa[j]))
        fz_prev, fz_next = fz_next, fz_prev


@register_kernel("perona_malik", 0)
def pm_step(u, v, out, nplane, dt, ihz, ihy, ihx, kinv2, code, one, half, nblocks):
    """Blocks of planes (3-D) or of rows (2-D, ``nplane`` = all rows), in parallel in the parallel build."""
    C, R, n = u.shape
    nz = R // nplane
    units = nz if nz > 1 else R  # 3-D blocks start on plane boundaries
    step = nplane if nz > 1 else 1
    uf, vf, of = u.reshape((C, 1, R * n)), v.reshape((C, 1, R * n)), out.reshape((C, 1, R * n))  # 3-D: flat planes
    for b in prange(nblocks):
        a0 = b * units // nblocks
        a1 = (b + 1) * units // nblocks
        if a1 > a0:
            if nz > 1:
                _pm_planes(uf, vf, of, a0, a1, nplane, n, nz, dt, ihz, ihy, ihx, kinv2, code, one, half)
            else:
                _pm_rows(u, v, out, a0 * step, a1 * step, nplane, dt, ihz, ihy, ihx, kinv2, code, one, half)


@register_kernel("aos_coefficients", 0, "mid", error_model="numpy")
def aos_coefficients_mid(v, a, b, c, tau, ih, kinv2, code, one, half):
    """Tridiagonal lines of ``I - tau A_a(v)`` along axis 2 of ``v`` ``(C, pre, n, post)``, ``post > 1``.

    ``A_a x_i = (g_{i+1/2} (x_{i+1} - x_i) - g_{i-1/2} (x_i - x_{i-1})) / h^2`` with
    Neumann ends (``tau = m dt / h^2`` already includes ``1/h^2``); ``a, c`` (the
    off-diagonals ``-tau g``) and ``b`` are ``(pre, n, post)``, ``b`` holding the
    **row sums**, all exactly 1 (the form :func:`.tridiag.factor` takes: the
    diagonal ``1 + tau (g_lo + g_up)`` would lose its 1 in float32 for large
    ``tau``).  ``tau`` is capped at ``2**100`` (:data:`pdediff.kernels.formulas.TAU_MAX`).  Vectorised across ``q``.
    """
    C, pre, n, post = v.shape
    zero = one - one
    tau = min(tau, one * _TAU_MAX32)
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
            ci, an, bn = c[p, i], a[p, i + 1], b[p, i + 1]
            for q in range(post):
                t = tau * w[q]
                ci[q] = -t
                an[q] = -t
                bn[q] = one


@register_kernel("aos_coefficients", 0, "last", error_model="numpy")
def aos_coefficients_last(v, a, b, c, tau, ih, kinv2, code, one, half):
    """As :func:`aos_coefficients_mid` along the contiguous last axis: ``v`` ``(C, pre, n)``, ``a, b, c`` ``(pre, n)``
    (``b``: the row sums, 1).

    The faces of a line are independent, so the loops vectorise along the line.
    """
    C, pre, n = v.shape
    zero = one - one
    tau = min(tau, one * _TAU_MAX32)
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
        a1, c0 = ap[1:n], cp[0:m]
        for j in range(m):
            t = tau * w[j]
            c0[j] = -t
            a1[j] = -t
