"""numba.cuda kernels: the same numerics as :mod:`pdediff.kernels.cpu`, one thread per cell or per line.

They operate in place on device arrays (CuPy arrays on a GPU; NumPy arrays
under Numba's CUDA simulator, ``NUMBA_ENABLE_CUDASIM=1``, which is how CI
checks them on the CPU against the CPU kernels).  The boundary rule, ghost
cells, flux form and conductances are :mod:`pdediff.kernels.formulas`
compiled as device functions (:data:`F`), so they cannot drift from the CPU's.
Layouts (the backend adapts 1-D and 2-D problems to them):

* heat step: ``(n0, n1, n2)`` arrays, a 1-D or 2-D problem padded with leading
  axes of one cell whose ``ih2`` is 0;
* Perona–Malik: ``(C, n0, n1, n2)``, padded the same way;
* tridiagonal: ``(pre, n, post)`` views, coefficients ``(P, n, Q)`` broadcast over lines.

Compiled lazily at the first launch, so importing this module needs neither a
GPU nor CUDA.
"""

from __future__ import annotations

import math

from numba import cuda

from ..formulas import compile_formulas


def _exp_neg(x):
    return math.exp(-x) if x < math.inf else 0.0  # NaN -> 0, as the CPU's exp_neg


_exp_neg_device = cuda.jit(device=True, inline=True)(_exp_neg)
#: The shared formulas as device functions (the hardware exp serves float32 and float64 alike).
F = compile_formulas(cuda.jit(device=True, inline=True), "pdediff.kernels.gpu.F", exp_neg=_exp_neg_device,
                     exp_neg32=_exp_neg_device)


@cuda.jit(device=True, inline=True)
def _thread_line(shape):
    """The line ``(p, q)`` of a ``(pre, n, post)`` array that this thread owns; ``(-1, -1)`` past the end."""
    t = cuda.grid(1)
    if t >= shape[0] * shape[2]:
        return -1, -1
    return t // shape[2], t % shape[2]


# ------------------------------------------------------------------------ heat
@cuda.jit
def heat3(u, out, f0, f1, f2, dt, beta, c0, c1, c2, bc0, bc1, bc2, variable):
    """One explicit step of ``(n0, n1, n2)`` arrays; ``f*`` face diffusivities if ``variable`` (else unused)."""
    k, i, j = cuda.grid(3)
    n0, n1, n2 = u.shape
    if k >= n0 or i >= n1 or j >= n2:
        return
    c, zm, zp, vm, vp, wm, wp = F.around3(u, k, i, j, bc0, bc1, bc2)
    if variable:
        s = (c0 * F.axis_flux(c, zm, zp, f0[k, i, j], f0[k + 1, i, j])
             + c1 * F.axis_flux(c, vm, vp, f1[k, i, j], f1[k, i + 1, j])
             + c2 * F.axis_flux(c, wm, wp, f2[k, i, j], f2[k, i, j + 1]))
    else:
        s = (c0 * F.second_difference(c, zm, zp) + c1 * F.second_difference(c, vm, vp)
             + c2 * F.second_difference(c, wm, wp))
    out[k, i, j] = beta * c + dt * s


# ------------------------------------------------------------------ Perona–Malik
@cuda.jit
def pm3(u, v, out, dt, ih0, ih1, ih2, kinv2, code):
    """One explicit step on ``(C, n0, n1, n2)``, ``out`` holding ``u`` on entry: per face, channels share
    ``g(sum_c (dv/h)^2 / K^2)``; no flux through the boundary faces (Neumann)."""
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
        gk = F.conductance(s2 * kinv2, code, 1.0, 0.5) * ih * ih
        for c in range(C):
            out[c, k, i, j] += dt * gk * (u[c, kk, ii, jj] - u[c, k, i, j])


@cuda.jit
def aos_coefficients(v, a, b, c, tau, ih, kinv2, code):
    """One thread per line of ``v`` ``(C, pre, n, post)``: lines of ``I - tau A(v)`` (Neumann)."""
    C, pre, n, post = v.shape
    p, q = _thread_line(a.shape)
    if p < 0:
        return
    a[p, 0, q] = 0.0
    c[p, n - 1, q] = 0.0
    b[p, 0, q] = 1.0
    for i in range(n - 1):
        s2 = 0.0
        for ch in range(C):
            d = (v[ch, p, i + 1, q] - v[ch, p, i, q]) * ih
            s2 += d * d
        w = tau * F.conductance(s2 * kinv2, code, 1.0, 0.5)
        c[p, i, q] = -w
        a[p, i + 1, q] = -w
        b[p, i, q] += w
        b[p, i + 1, q] = 1.0 + w


# --------------------------------------------------------------------- Thomas
@cuda.jit
def tri_factor(a, b, c, cp, inv):
    """One thread per line of the ``(P, n, Q)`` coefficients."""
    n = b.shape[1]
    p, q = _thread_line(b.shape)
    if p < 0:
        return
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
    n = d.shape[1]
    p, q = _thread_line(d.shape)
    if p < 0:
        return
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
