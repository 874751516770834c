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
* AOS coefficients: ``(pre, n, post)`` lines, one thread per cell;
* tridiagonal: ``(pre, n, post)`` views, coefficients ``(P, n, Q)`` broadcast
  over lines; one thread per line where lines run across the contiguous axis
  (``post > 1``: a warp reads 32 neighbouring lines at once), and for lines
  along the contiguous axis (``post == 1``) the ``*_rows`` kernels, which move
  32 × 32 tiles through shared memory so that both the loads and the stores
  are coalesced while each thread sweeps its own line.

Mapping and limits: :func:`pdediff.kernels.gpu.launch.launch_config` puts
``threadIdx.x`` on the last (contiguous) axis; every kernel loops grid-stride
so clipped grids still cover every cell.  Typing: every constant in a kernel
comes from the data's type (``zero``, ``one``, ``half`` arguments, as the CPU
kernels do), so float32 kernels compute in float32 only
(``tests/test_gpu_ptx.py`` checks the PTX).

Compiled lazily at the first launch, so importing this module needs neither a
GPU nor CUDA.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ..formulas import TAU_MAX, compile_formulas
from .launch import TILE

_ZERO32 = np.float32(0.0)
_TAU_MAX32 = np.float32(TAU_MAX)  # one * _TAU_MAX32 has the data's type
_TILE2 = (TILE, TILE + 1)  # one column of padding: a thread walking its row of the tile hits 32 banks


def _exp_neg(x):
    # exp(-inf) is already 0; NaN gives 0 as the CPU's exp_neg.  The zero is a float32 constant: a float32
    # kernel stays in float32, a float64 one widens it exactly.
    return math.exp(-x) if x == x else _ZERO32  # noqa: PLR0124 - x == x is False for NaN only


def _kernel(fn):
    # No launch bound: every launch uses 256-thread blocks (launch.BLOCK_THREADS), and even the 255-register
    # ceiling of one thread fits 256 of them in a 64K register file, so no build can fail to launch for
    # registers (a bound only made ptxas spill).
    return cuda.jit(fn)


_exp_neg_device = cuda.jit(device=True, inline=True)(_exp_neg)
#: The shared formulas as device functions (the hardware exp serves float32 and float64 alike; integer
#: ghost-cell signs, so no float64 value enters a float32 kernel).
F = compile_formulas(cuda.jit(device=True, inline=True), "pdediff.kernels.gpu.F", exp_neg=_exp_neg_device,
                     exp_neg32=_exp_neg_device, PLUS=1, MINUS=-1)


# ------------------------------------------------------------------------ heat
def _heat3(u, out, f0, f1, f2, dt, beta, c0, c1, c2, bc0, bc1, bc2, variable):
    """One explicit step of ``(n0, n1, n2)`` arrays; ``f*`` face diffusivities if ``variable`` (else unused)."""
    n0, n1, n2 = u.shape
    x0, y0, z0 = cuda.grid(3)
    sx, sy, sz = cuda.gridsize(3)
    for k in range(z0, n0, sz):
        for i in range(y0, n1, sy):
            for j in range(x0, n2, sx):
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
def _pm3(u, v, out, dt, ih0, ih1, ih2, kinv2, code, zero, one, half):
    """One explicit step on ``(C, n0, n1, n2)``: per face, channels share ``g(sum_c (dv/h)^2 / K^2)``;
    no flux through the boundary faces (Neumann).  ``out`` is written whole (``u`` plus the fluxes)."""
    C, n0, n1, n2 = u.shape
    x0, y0, z0 = cuda.grid(3)
    sx, sy, sz = cuda.gridsize(3)
    for k in range(z0, n0, sz):
        for i in range(y0, n1, sy):
            for j in range(x0, n2, sx):
                for ch in range(C):
                    out[ch, k, i, j] = u[ch, k, i, j]
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
                    s2 = zero
                    for ch in range(C):
                        d = (v[ch, kk, ii, jj] - v[ch, k, i, j]) * ih
                        s2 += d * d
                    gk = F.conductance(s2 * kinv2, code, one, half) * ih * ih
                    for ch in range(C):
                        out[ch, k, i, j] += dt * gk * (u[ch, kk, ii, jj] - u[ch, k, i, j])


def _face_weight(v, p, i, q, tau, ih, kinv2, code, zero, one, half):
    """``tau g`` of the face between cells ``i`` and ``i + 1`` of line ``(p, q)`` of ``v`` ``(C, pre, n, post)``."""
    s2 = zero
    for ch in range(v.shape[0]):
        d = (v[ch, p, i + 1, q] - v[ch, p, i, q]) * ih
        s2 += d * d
    return tau * F.conductance(s2 * kinv2, code, one, half)


def _aos_coefficients(v, a, b, c, tau, ih, kinv2, code, zero, one, half):
    """Lines of ``I - tau A(v)`` (Neumann) for ``v`` ``(C, pre, n, post)``: one thread per cell, which
    evaluates its two faces; ``b`` gets the row sum 1 and ``tau`` is capped at ``TAU_MAX``, as on the CPU."""
    _, pre, n, post = v.shape
    tau = min(tau, one * _TAU_MAX32)
    rows = post == 1  # lines along the contiguous axis: threadIdx.x walks along them
    N0, N1, N2 = (1, pre, n) if rows else (pre, n, post)
    x0, y0, z0 = cuda.grid(3)
    sx, sy, sz = cuda.gridsize(3)
    for aa in range(z0, N0, sz):
        for bb in range(y0, N1, sy):
            for xx in range(x0, N2, sx):
                if rows:
                    p, i, q = bb, xx, 0
                else:
                    p, i, q = aa, bb, xx
                wl = zero
                wr = zero
                if i > 0:
                    wl = _face_weight_device(v, p, i - 1, q, tau, ih, kinv2, code, zero, one, half)
                if i < n - 1:
                    wr = _face_weight_device(v, p, i, q, tau, ih, kinv2, code, zero, one, half)
                a[p, i, q] = zero - wl
                c[p, i, q] = zero - wr
                b[p, i, q] = one  # the row sum (the form tri_factor takes; 1 + wl + wr would lose its 1)


# --------------------------------------------------------------------- Thomas
def _tri_factor(a, b, c, cp, inv, one):
    """One thread per line ``(p, q)`` of the ``(P, n, Q)`` coefficients; ``threadIdx.x`` along ``q``.

    ``b`` holds the row sums ``a + b + c``: the subtraction-free form of :func:`pdediff.kernels.cpu.tridiag.factor`
    (``e_i = s_i - a_i e_{i-1} inv_{i-1}``, ``inv_i = 1 / (e_i - c_i)``, ``cp_i = c_i inv_i``), same operations.
    """
    P, n, Q = b.shape
    x0, y0, _ = cuda.grid(3)
    sx, sy, _ = cuda.gridsize(3)
    for p in range(y0, P, sy):
        for q in range(x0, Q, sx):
            e = b[p, 0, q]
            iv = one / (e - c[p, 0, q])
            inv[p, 0, q] = iv
            cp[p, 0, q] = c[p, 0, q] * iv
            for i in range(1, n):
                e = b[p, i, q] - a[p, i, q] * (e * iv)
                iv = one / (e - c[p, i, q])
                inv[p, i, q] = iv
                cp[p, i, q] = c[p, i, q] * iv


def _tri_solve(d, x, out, a, cp, inv, z, vn, qf, alpha, accumulate, cyclic):
    """One thread per line ``(p, q)`` of ``(pre, n, post)``; threads along ``q`` read coalesced."""
    pre, n, post = d.shape
    P = a.shape[0]
    Q = a.shape[2]
    x0, y0, _ = cuda.grid(3)
    sx, sy, _ = cuda.gridsize(3)
    for p in range(y0, pre, sy):
        for q in range(x0, post, sx):
            pa = p if P > 1 else 0
            qa = q if Q > 1 else 0
            xv = d[p, 0, q] * inv[pa, 0, qa]  # the running value stays in a register (fewer loads, registers)
            x[p, 0, q] = xv
            for i in range(1, n):
                xv = (d[p, i, q] - a[pa, i, qa] * xv) * inv[pa, i, qa]
                x[p, i, q] = xv
            for i in range(n - 2, -1, -1):
                xv = x[p, i, q] - cp[pa, i, qa] * xv
                x[p, i, q] = xv
            if cyclic:  # xv is x[0] now; the periodic closure of pdediff.kernels.cpu.tridiag
                f = (x[p, n - 1, q] + vn[pa, 0, qa] * xv) * qf[pa, 0, qa]
                x[p, n - 1, q] = _ZERO32  # z_{n-1} = 1: the loop then leaves x_{n-1} = f (and fits the registers)
                for i in range(n):
                    x[p, i, q] = x[p, i, q] + z[pa, i, qa] * f
            if accumulate:
                for i in range(n):
                    out[p, i, q] = out[p, i, q] + alpha * x[p, i, q]


def _make_row_kernels(dtype):
    """The tiled kernels for lines along the contiguous axis (``(lines, n)`` views), for one dtype.

    One warp owns :data:`TILE` lines.  Per chunk of :data:`TILE` columns it loads
    the tiles row by row (32 consecutive elements per load: coalesced), each
    thread sweeps its line through the tile in shared memory, and the warp
    stores the tile back row by row.  Shared-memory arrays need a compile-time
    dtype, hence one pair of kernels per dtype.
    """

    def tri_factor_rows(a, b, c, cp, inv, zero, one):
        """Thomas factors of ``(P, n)`` coefficient lines (the ``Q == 1`` case of :func:`tri_factor`; ``b``: row
        sums)."""
        ta = cuda.shared.array(_TILE2, dtype)
        tb = cuda.shared.array(_TILE2, dtype)
        tc = cuda.shared.array(_TILE2, dtype)
        P, n = b.shape
        t = cuda.threadIdx.x
        for p0 in range(cuda.blockIdx.x * TILE, P, cuda.gridDim.x * TILE):
            e_prev = zero
            iprev = zero
            for i0 in range(0, n, TILE):
                col = i0 + t
                for r in range(TILE):
                    if p0 + r < P and col < n:
                        ta[r, t] = a[p0 + r, col]
                        tb[r, t] = b[p0 + r, col]
                        tc[r, t] = c[p0 + r, col]
                cuda.syncthreads()
                if p0 + t < P:
                    for cc in range(min(TILE, n - i0)):
                        e = tb[t, cc]  # the row sum (see _tri_factor)
                        if i0 + cc > 0:
                            e = e - ta[t, cc] * (e_prev * iprev)
                        iprev = one / (e - tc[t, cc])
                        e_prev = e
                        ta[t, cc] = tc[t, cc] * iprev
                        tb[t, cc] = iprev
                cuda.syncthreads()
                for r in range(TILE):
                    if p0 + r < P and col < n:
                        cp[p0 + r, col] = ta[r, t]
                        inv[p0 + r, col] = tb[r, t]
                cuda.syncthreads()

    def tri_solve_rows(d, x, out, a, cp, inv, z, vn, qf, alpha, accumulate, cyclic, zero):
        """Solve ``(pre, n)`` lines with ``(P, n)`` factors, ``P`` 1 (shared) or ``pre``; as :func:`tri_solve`."""
        td = cuda.shared.array(_TILE2, dtype)
        t1 = cuda.shared.array(_TILE2, dtype)
        t2 = cuda.shared.array(_TILE2, dtype)
        tf = cuda.shared.array(TILE, dtype)
        pre, n = d.shape
        shared = a.shape[0] == 1
        t = cuda.threadIdx.x
        nchunks = (n + TILE - 1) // TILE
        for p0 in range(cuda.blockIdx.x * TILE, pre, cuda.gridDim.x * TILE):
            own = p0 + t < pre
            xprev = zero
            for i0 in range(0, n, TILE):  # forward sweep: x_i = (d_i - a_i x_{i-1}) inv_i
                col = i0 + t
                for r in range(TILE):
                    if p0 + r < pre and col < n:
                        pa = 0 if shared else p0 + r
                        td[r, t] = d[p0 + r, col]
                        t1[r, t] = a[pa, col]
                        t2[r, t] = inv[pa, col]
                cuda.syncthreads()
                if own:
                    for cc in range(min(TILE, n - i0)):
                        if i0 + cc == 0:
                            xprev = td[t, cc] * t2[t, cc]
                        else:
                            xprev = (td[t, cc] - t1[t, cc] * xprev) * t2[t, cc]
                        td[t, cc] = xprev
                cuda.syncthreads()
                for r in range(TILE):
                    if p0 + r < pre and col < n:
                        x[p0 + r, col] = td[r, t]
                cuda.syncthreads()
            xnext = zero
            xlast = zero
            for ci in range(nchunks - 1, -1, -1):  # backward sweep: x_i -= cp_i x_{i+1}
                i0 = ci * TILE
                col = i0 + t
                for r in range(TILE):
                    if p0 + r < pre and col < n:
                        pa = 0 if shared else p0 + r
                        td[r, t] = x[p0 + r, col]
                        t1[r, t] = cp[pa, col]
                cuda.syncthreads()
                if own:
                    for cc in range(min(TILE, n - i0) - 1, -1, -1):
                        if i0 + cc == n - 1:
                            xnext = td[t, cc]
                            xlast = xnext
                        else:
                            xnext = td[t, cc] - t1[t, cc] * xnext
                        td[t, cc] = xnext
                cuda.syncthreads()
                for r in range(TILE):
                    if p0 + r < pre and col < n:
                        x[p0 + r, col] = td[r, t]
                cuda.syncthreads()
            if cyclic or accumulate:  # elementwise, row by row (coalesced); the per-line factor via tf
                if own and cyclic:  # xnext is x_0, xlast x_{n-1}: the periodic closure of the CPU kernels
                    pa = 0 if shared else p0 + t
                    tf[t] = (xlast + vn[pa, 0] * xnext) * qf[pa, 0]
                cuda.syncthreads()
                for i0 in range(0, n, TILE):
                    col = i0 + t
                    for r in range(TILE):
                        if p0 + r < pre and col < n:
                            xv = x[p0 + r, col]
                            if cyclic:
                                pa = 0 if shared else p0 + r
                                xv = tf[r] if col == n - 1 else xv + z[pa, col] * tf[r]
                                x[p0 + r, col] = xv
                            if accumulate:
                                out[p0 + r, col] = out[p0 + r, col] + alpha * xv
                cuda.syncthreads()

    return _kernel(tri_factor_rows), _kernel(tri_solve_rows)


_face_weight_device = cuda.jit(device=True, inline=True)(_face_weight)
heat3 = _kernel(_heat3)
pm3 = _kernel(_pm3)
aos_coefficients = _kernel(_aos_coefficients)
tri_factor = _kernel(_tri_factor)
tri_solve = _kernel(_tri_solve)
#: ``{dtype: (tri_factor_rows, tri_solve_rows)}``
ROW_KERNELS = {np.dtype(t): _make_row_kernels(t) for t in (np.float32, np.float64)}

#: Every kernel by name, with its Python function (``tests/test_gpu_ptx.py`` compiles each to PTX).
KERNELS = {"heat3": _heat3, "pm3": _pm3, "aos_coefficients": _aos_coefficients, "tri_factor": _tri_factor,
           "tri_solve": _tri_solve}

from .tensor import TENSOR_KERNELS  # noqa: E402 - the tensor-diffusion kernels, one set per dtype
