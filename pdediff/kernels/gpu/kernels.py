"""numba.cuda kernels: the same numerics as :mod:`pdediff.kernels.cpu`, one thread per cell or per line.

They operate in place on device arrays (CuPy arrays on a GPU; NumPy arrays
under Numba's CUDA simulator, ``NUMBA_ENABLE_CUDASIM=1``, which is how CI
checks them on the CPU against the CPU kernels).  Boundary codes, ghost cells
and array layouts follow the CPU kernels exactly:

* heat steps: ``(n0, n1)`` or ``(n0, n1, n2)`` arrays (1-D as ``(1, n)`` with ``ih2_0 = 0``);
* Perona–Malik: a leading channel axis, ``(C, n0, n1)`` or ``(C, n0, n1, n2)``;
* tridiagonal: ``(pre, n, post)`` views, coefficients ``(P, n, Q)`` broadcast over lines.

Compiled lazily at the first launch, so importing this module needs neither a
GPU nor CUDA.
"""

from __future__ import annotations

import math

from numba import cuda


@cuda.jit(device=True, inline=True)
def _nb(i, n, bc, side):
    """Neighbour index and sign (ghost cells) of cell ``i`` on ``side`` -1 / +1."""
    j = i + side
    if 0 <= j < n:
        return j, 1.0
    if bc == 2:
        return (j + n) % n, 1.0
    if bc == 1:
        return i, -1.0
    return i, 1.0


@cuda.jit(device=True, inline=True)
def _val(v, s):
    return -v if s < 0 else v


# ------------------------------------------------------------------------ heat
@cuda.jit
def heat2_const(u, out, dtd, beta, c0, c1, bc0, bc1):
    i, j = cuda.grid(2)
    n0, n1 = u.shape
    if i >= n0 or j >= n1:
        return
    c = u[i, j]
    im, sm = _nb(i, n0, bc0, -1)
    ip, sp = _nb(i, n0, bc0, 1)
    jm, tm = _nb(j, n1, bc1, -1)
    jp, tp = _nb(j, n1, bc1, 1)
    s = c0 * ((_val(u[im, j], sm) - c) + (_val(u[ip, j], sp) - c)) + c1 * (
        (_val(u[i, jm], tm) - c) + (_val(u[i, jp], tp) - c)
    )
    out[i, j] = beta * c + dtd * s


@cuda.jit
def heat3_const(u, out, dtd, beta, c0, c1, c2, bc0, bc1, bc2):
    k, i, j = cuda.grid(3)
    n0, n1, n2 = u.shape
    if k >= n0 or i >= n1 or j >= n2:
        return
    c = u[k, i, j]
    km, rm = _nb(k, n0, bc0, -1)
    kp, rp = _nb(k, n0, bc0, 1)
    im, sm = _nb(i, n1, bc1, -1)
    ip, sp = _nb(i, n1, bc1, 1)
    jm, tm = _nb(j, n2, bc2, -1)
    jp, tp = _nb(j, n2, bc2, 1)
    s = (
        c0 * ((_val(u[km, i, j], rm) - c) + (_val(u[kp, i, j], rp) - c))
        + c1 * ((_val(u[k, im, j], sm) - c) + (_val(u[k, ip, j], sp) - c))
        + c2 * ((_val(u[k, i, jm], tm) - c) + (_val(u[k, i, jp], tp) - c))
    )
    out[k, i, j] = beta * c + dtd * s


@cuda.jit
def heat2_var(u, out, f0, f1, dt, beta, c0, c1, bc0, bc1):
    i, j = cuda.grid(2)
    n0, n1 = u.shape
    if i >= n0 or j >= n1:
        return
    c = u[i, j]
    im, sm = _nb(i, n0, bc0, -1)
    ip, sp = _nb(i, n0, bc0, 1)
    jm, tm = _nb(j, n1, bc1, -1)
    jp, tp = _nb(j, n1, bc1, 1)
    s = c0 * (f0[i, j] * (_val(u[im, j], sm) - c) + f0[i + 1, j] * (_val(u[ip, j], sp) - c)) + c1 * (
        f1[i, j] * (_val(u[i, jm], tm) - c) + f1[i, j + 1] * (_val(u[i, jp], tp) - c)
    )
    out[i, j] = beta * c + dt * s


@cuda.jit
def heat3_var(u, out, f0, f1, f2, dt, beta, c0, c1, c2, bc0, bc1, bc2):
    k, i, j = cuda.grid(3)
    n0, n1, n2 = u.shape
    if k >= n0 or i >= n1 or j >= n2:
        return
    c = u[k, i, j]
    km, rm = _nb(k, n0, bc0, -1)
    kp, rp = _nb(k, n0, bc0, 1)
    im, sm = _nb(i, n1, bc1, -1)
    ip, sp = _nb(i, n1, bc1, 1)
    jm, tm = _nb(j, n2, bc2, -1)
    jp, tp = _nb(j, n2, bc2, 1)
    s = (
        c0 * (f0[k, i, j] * (_val(u[km, i, j], rm) - c) + f0[k + 1, i, j] * (_val(u[kp, i, j], rp) - c))
        + c1 * (f1[k, i, j] * (_val(u[k, im, j], sm) - c) + f1[k, i + 1, j] * (_val(u[k, ip, j], sp) - c))
        + c2 * (f2[k, i, j] * (_val(u[k, i, jm], tm) - c) + f2[k, i, j + 1] * (_val(u[k, i, jp], tp) - c))
    )
    out[k, i, j] = beta * c + dt * s


# ------------------------------------------------------------------ Perona–Malik
@cuda.jit(device=True, inline=True)
def _g(x, code):
    if not x < math.inf:  # NaN (non-finite data) or inf: no flux through the face, as on the CPU
        return 0.0
    if code == 0 or code == 3:
        return math.exp(-x)
    if code == 1:
        return 1.0 / (1.0 + x)
    if x <= 1.0:
        t = 1.0 - x
        return 0.5 * t * t
    return 0.0


@cuda.jit
def pm2(u, v, out, dt, ih0, ih1, kinv2, code):
    """One explicit step on ``(C, n0, n1)``: per face, channels share g(sum_c (dv/h)^2 / K^2)."""
    i, j = cuda.grid(2)
    C, n0, n1 = u.shape
    if i >= n0 or j >= n1:
        return
    for side in range(4):
        if side == 0:
            ii, jj, ih = i - 1, j, ih0
        elif side == 1:
            ii, jj, ih = i + 1, j, ih0
        elif side == 2:
            ii, jj, ih = i, j - 1, ih1
        else:
            ii, jj, ih = i, j + 1, ih1
        if ii < 0 or ii >= n0 or jj < 0 or jj >= n1:
            continue  # Neumann: no flux through the boundary face
        s2 = 0.0
        for c in range(C):
            d = (v[c, ii, jj] - v[c, i, j]) * ih
            s2 += d * d
        gk = _g(s2 * kinv2, code) * ih * ih
        for c in range(C):
            out[c, i, j] += dt * gk * (u[c, ii, jj] - u[c, i, j])


@cuda.jit
def pm3(u, v, out, dt, ih0, ih1, ih2, kinv2, code):
    k, i, j = cuda.grid(3)
    C, n0, n1, n2 = u.shape
    if k >= n0 or i >= n1 or j >= n2:
        return
    for side in range(6):
        kk, ii, jj = k, i, j
        if side == 0:
            kk, ih = k - 1, ih0
        elif side == 1:
            kk, ih = k + 1, ih0
        elif side == 2:
            ii, ih = i - 1, ih1
        elif side == 3:
            ii, ih = i + 1, ih1
        elif side == 4:
            jj, ih = j - 1, ih2
        else:
            jj, ih = j + 1, ih2
        if kk < 0 or kk >= n0 or ii < 0 or ii >= n1 or jj < 0 or jj >= n2:
            continue
        s2 = 0.0
        for c in range(C):
            d = (v[c, kk, ii, jj] - v[c, k, i, j]) * ih
            s2 += d * d
        gk = _g(s2 * kinv2, code) * ih * ih
        for c in range(C):
            out[c, k, i, j] += dt * gk * (u[c, kk, ii, jj] - u[c, k, i, j])


@cuda.jit
def aos_coefficients(v, a, b, c, tau, ih, kinv2, code):
    """One thread per line of ``v`` ``(C, pre, n, post)``: lines of ``I - tau A(v)`` (Neumann)."""
    t = cuda.grid(1)
    C, pre, n, post = v.shape
    if t >= pre * post:
        return
    p = t // post
    q = t % post
    a[p, 0, q] = 0.0
    c[p, n - 1, q] = 0.0
    b[p, 0, q] = 1.0
    for i in range(n - 1):
        s2 = 0.0
        for ch in range(C):
            d = (v[ch, p, i + 1, q] - v[ch, p, i, q]) * ih
            s2 += d * d
        w = tau * _g(s2 * kinv2, code)
        c[p, i, q] = -w
        a[p, i + 1, q] = -w
        b[p, i, q] += w
        b[p, i + 1, q] = 1.0 + w


# --------------------------------------------------------------------- Thomas
@cuda.jit
def tri_factor(a, b, c, cp, inv):
    """One thread per line of the ``(P, n, Q)`` coefficients."""
    t = cuda.grid(1)
    P, n, Q = b.shape
    if t >= P * Q:
        return
    p = t // Q
    q = t % Q
    den = b[p, 0, q]
    inv[p, 0, q] = 1.0 / den
    cp[p, 0, q] = c[p, 0, q] / den
    for i in range(1, n):
        den = b[p, i, q] - a[p, i, q] * cp[p, i - 1, q]
        inv[p, i, q] = 1.0 / den
        cp[p, i, q] = c[p, i, q] / den


@cuda.jit
def tri_solve(d, x, out, a, cp, inv, z, vn, qf, alpha, accumulate, cyclic):
    """One thread per line ``(p, q)`` of ``(pre, n, post)``; threads along ``q`` read coalesced."""
    t = cuda.grid(1)
    pre, n, post = d.shape
    if t >= pre * post:
        return
    p = t // post
    q = t % post
    P = a.shape[0]
    Q = a.shape[2]
    pa = p if P > 1 else 0
    qa = q if Q > 1 else 0
    x[p, 0, q] = d[p, 0, q] * inv[pa, 0, qa]
    for i in range(1, n):
        x[p, i, q] = (d[p, i, q] - a[pa, i, qa] * x[p, i - 1, q]) * inv[pa, i, qa]
    for i in range(n - 2, -1, -1):
        x[p, i, q] = x[p, i, q] - cp[pa, i, qa] * x[p, i + 1, q]
    if cyclic:
        f = (x[p, 0, q] + vn[pa, 0, qa] * x[p, n - 1, q]) * qf[pa, 0, qa]
        for i in range(n):
            x[p, i, q] = x[p, i, q] - z[pa, i, qa] * f
    if accumulate:
        for i in range(n):
            out[p, i, q] = out[p, i, q] + alpha * x[p, i, q]
