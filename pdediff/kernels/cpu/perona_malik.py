"""Perona–Malik kernels: the fused explicit step and the AOS coefficients (DESIGN.md §4).

Arrays carry a leading channel axis: ``(C, n0, n1)`` in 2-D (1-D runs as
``(C, 1, n)``) and ``(C, n0, n1, n2)`` in 3-D.  ``u`` is diffused; ``v`` (``u``
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
2 Tukey ``0.5 (1-x)^2`` for ``x <= 1`` else 0, with ``x = s^2 / kappa^2``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True)
def conductance(x, code, one, half):
    """g as a function of ``x = (s / kappa)^2`` (typed constants keep float32 in float32)."""
    if code == 0:
        return math.exp(-x)
    if code == 1:
        return one / (one + x)
    t = one - x
    return half * t * t if x <= one else x - x  # x - x: a typed zero


@njit(cache=True)
def _pm2_block(u, v, out, i0, i1, dt, ih0, ih1, kinv2, code, one, half):
    C, n0, n1 = u.shape
    zero = one - one
    fy_prev = np.zeros((C, n1), dtype=u.dtype)
    fy_next = np.zeros((C, n1), dtype=u.dtype)
    fx = np.zeros((C, n1 + 1), dtype=u.dtype)
    g = np.empty(n1 + 1, dtype=u.dtype)
    ih0s, ih1s = ih0 * ih0, ih1 * ih1
    if i0 > 0:  # flux between rows i0-1 and i0, for this block's first row
        for j in range(n1):
            g[j] = zero
        for c in range(C):
            va, vb = v[c, i0 - 1], v[c, i0]
            for j in range(n1):
                d = (vb[j] - va[j]) * ih0
                g[j] += d * d
        for j in range(n1):
            g[j] = conductance(g[j] * kinv2, code, one, half)
        for c in range(C):
            ua, ub, f = u[c, i0 - 1], u[c, i0], fy_prev[c]
            for j in range(n1):
                f[j] = g[j] * (ub[j] - ua[j]) * ih0s
    for i in range(i0, i1):
        # faces between rows i and i+1
        if i < n0 - 1:
            for j in range(n1):
                g[j] = zero
            for c in range(C):
                va, vb = v[c, i], v[c, i + 1]
                for j in range(n1):
                    d = (vb[j] - va[j]) * ih0
                    g[j] += d * d
            for j in range(n1):
                g[j] = conductance(g[j] * kinv2, code, one, half)
            for c in range(C):
                ua, ub, f = u[c, i], u[c, i + 1], fy_next[c]
                for j in range(n1):
                    f[j] = g[j] * (ub[j] - ua[j]) * ih0s
        else:
            fy_next[:, :] = zero
        # faces within row i: fx[c, j] is the face between j-1 and j (0 and n1: boundary)
        m = n1 - 1
        for j in range(m):
            g[j] = zero
        for c in range(C):
            r = v[c, i]
            lft, rgt = r[0:m], r[1:n1]
            for j in range(m):
                d = (rgt[j] - lft[j]) * ih1
                g[j] += d * d
        for j in range(m):
            g[j] = conductance(g[j] * kinv2, code, one, half)
        for c in range(C):
            r = u[c, i]
            lft, rgt = r[0:m], r[1:n1]
            f = fx[c, 1:n1]
            for j in range(m):
                f[j] = g[j] * (rgt[j] - lft[j]) * ih1s
        for c in range(C):
            r, o, fp, fn = u[c, i], out[c, i], fy_prev[c], fy_next[c]
            fa, fb = fx[c, 0:n1], fx[c, 1 : n1 + 1]
            for j in range(n1):
                o[j] = r[j] + dt * ((fn[j] - fp[j]) + (fb[j] - fa[j]))
        fy_prev, fy_next = fy_next, fy_prev


@njit(cache=True, parallel=True)
def pm2_par(u, v, out, dt, ih0, ih1, kinv2, code, one, half, nblocks):
    n0 = u.shape[1]
    for b in prange(nblocks):
        i0 = b * n0 // nblocks
        i1 = (b + 1) * n0 // nblocks
        _pm2_block(u, v, out, i0, i1, dt, ih0, ih1, kinv2, code, one, half)


@njit(cache=True)
def pm2_ser(u, v, out, dt, ih0, ih1, kinv2, code, one, half, nblocks):
    _pm2_block(u, v, out, 0, u.shape[1], dt, ih0, ih1, kinv2, code, one, half)


@njit(cache=True)
def _plane_faces(u, v, ka, kb, fz, g, ih, kinv2, code, one, half):
    """Fluxes of the faces between planes ``ka`` and ``kb`` into ``fz`` (C, n1, n2)."""
    C, n0, n1, n2 = u.shape
    zero = one - one
    ihs = ih * ih
    for i in range(n1):
        for j in range(n2):
            g[j] = zero
        for c in range(C):
            va, vb = v[c, ka, i], v[c, kb, i]
            for j in range(n2):
                d = (vb[j] - va[j]) * ih
                g[j] += d * d
        for j in range(n2):
            g[j] = conductance(g[j] * kinv2, code, one, half)
        for c in range(C):
            ua, ub, f = u[c, ka, i], u[c, kb, i], fz[c, i]
            for j in range(n2):
                f[j] = g[j] * (ub[j] - ua[j]) * ihs


@njit(cache=True)
def _pm3_block(u, v, out, k0, k1, dt, ih0, ih1, ih2, kinv2, code, one, half):
    C, n0, n1, n2 = u.shape
    zero = one - one
    fz_prev = np.zeros((C, n1, n2), dtype=u.dtype)
    fz_next = np.zeros((C, n1, n2), dtype=u.dtype)
    fy_prev = np.zeros((C, n2), dtype=u.dtype)
    fy_next = np.zeros((C, n2), dtype=u.dtype)
    fx = np.zeros((C, n2 + 1), dtype=u.dtype)
    g = np.empty(n2 + 1, dtype=u.dtype)
    ih1s, ih2s = ih1 * ih1, ih2 * ih2
    if k0 > 0:
        _plane_faces(u, v, k0 - 1, k0, fz_prev, g, ih0, kinv2, code, one, half)
    for k in range(k0, k1):
        if k < n0 - 1:
            _plane_faces(u, v, k, k + 1, fz_next, g, ih0, kinv2, code, one, half)
        else:
            fz_next[:, :, :] = zero
        fy_prev[:, :] = zero
        for i in range(n1):
            if i < n1 - 1:
                for j in range(n2):
                    g[j] = zero
                for c in range(C):
                    va, vb = v[c, k, i], v[c, k, i + 1]
                    for j in range(n2):
                        d = (vb[j] - va[j]) * ih1
                        g[j] += d * d
                for j in range(n2):
                    g[j] = conductance(g[j] * kinv2, code, one, half)
                for c in range(C):
                    ua, ub, f = u[c, k, i], u[c, k, i + 1], fy_next[c]
                    for j in range(n2):
                        f[j] = g[j] * (ub[j] - ua[j]) * ih1s
            else:
                fy_next[:, :] = zero
            m = n2 - 1
            for j in range(m):
                g[j] = zero
            for c in range(C):
                r = v[c, k, i]
                lft, rgt = r[0:m], r[1:n2]
                for j in range(m):
                    d = (rgt[j] - lft[j]) * ih2
                    g[j] += d * d
            for j in range(m):
                g[j] = conductance(g[j] * kinv2, code, one, half)
            for c in range(C):
                r = u[c, k, i]
                lft, rgt = r[0:m], r[1:n2]
                f = fx[c, 1:n2]
                for j in range(m):
                    f[j] = g[j] * (rgt[j] - lft[j]) * ih2s
            for c in range(C):
                r, o = u[c, k, i], out[c, k, i]
                zp, zn, yp, yn = fz_prev[c, i], fz_next[c, i], fy_prev[c], fy_next[c]
                fa, fb = fx[c, 0:n2], fx[c, 1 : n2 + 1]
                for j in range(n2):
                    o[j] = r[j] + dt * ((zn[j] - zp[j]) + (yn[j] - yp[j]) + (fb[j] - fa[j]))
            fy_prev, fy_next = fy_next, fy_prev
        fz_prev, fz_next = fz_next, fz_prev


@njit(cache=True, parallel=True)
def pm3_par(u, v, out, dt, ih0, ih1, ih2, kinv2, code, one, half, nblocks):
    n0 = u.shape[1]
    for b in prange(nblocks):
        k0 = b * n0 // nblocks
        k1 = (b + 1) * n0 // nblocks
        _pm3_block(u, v, out, k0, k1, dt, ih0, ih1, ih2, kinv2, code, one, half)


@njit(cache=True)
def pm3_ser(u, v, out, dt, ih0, ih1, ih2, kinv2, code, one, half, nblocks):
    _pm3_block(u, v, out, 0, u.shape[1], dt, ih0, ih1, ih2, kinv2, code, one, half)


@njit(cache=True, parallel=True)
def aos_coefficients(v, a, b, c, tau, ih, kinv2, code, one, half):
    """Tridiagonal lines of ``I - tau A_a(v)`` along axis 1 of ``v`` viewed as ``(C, pre, n, post)``.

    ``A_a x_i = (g_{i+1/2} (x_{i+1} - x_i) - g_{i-1/2} (x_i - x_{i-1})) / h^2`` with
    Neumann ends; ``a, b, c`` are ``(pre, n, post)``; ``tau = m dt / h^2``.
    """
    C, pre, n, post = v.shape
    zero = one - one
    for p in prange(pre):
        for q in range(post):
            a[p, 0, q] = zero
            c[p, n - 1, q] = zero
            b[p, 0, q] = one
        for i in range(n - 1):
            for q in range(post):
                s2 = zero
                for ch in range(C):
                    d = (v[ch, p, i + 1, q] - v[ch, p, i, q]) * ih
                    s2 += d * d
                w = tau * conductance(s2 * kinv2, code, one, half)
                c[p, i, q] = -w
                a[p, i + 1, q] = -w
                b[p, i, q] += w
                b[p, i + 1, q] = one + w
