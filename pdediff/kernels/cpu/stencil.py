"""Explicit (forward Euler) heat-equation step on the cell-centred grid.

``out = beta * u + dtd * sum_a ih2_a * (F_a^- (u_a^- - u) + F_a^+ (u_a^+ - u))`` where
``u_a^±`` are the neighbours along axis ``a`` (ghost cells per boundary,
docs/conventions.rst §2), ``ih2_a = 1/h_a^2`` and ``F`` the face diffusivities (1 for the
constant-coefficient kernels, whose ``dtd`` already holds ``dt * D``).

Kernels are written for 2-D and 3-D arrays; a 1-D problem runs as a ``(1, n)``
array with ``ih2_0 = 0`` (adding ``+0`` leaves every value unchanged).  Each
kernel exists as a parallel (``prange``) and a serial driver sharing one row
routine; :func:`pdediff.kernels.cpu._common.use_parallel` picks one.
All scalars arrive in the array's dtype so float32 stays float32.
"""

from __future__ import annotations

from numba import njit, prange

from ._common import hi, lo

# --------------------------------------------------------------------------- 2-D


@njit(cache=True)
def _row2_const(u, out, i, dtd, beta, c0, c1, bc0, bc1):
    n0, n1 = u.shape
    im, sm = lo(i, n0, bc0)
    ip, sp = hi(i, n0, bc0)
    negm = sm < 0
    negp = sp < 0
    # Interior: 1-D views indexed from 0 so LLVM vectorises (no wrap-around checks).
    m = n1 - 2
    if m > 0:
        ctr = u[i, 1 : n1 - 1]
        lft = u[i, 0 : n1 - 2]
        rgt = u[i, 2:n1]
        dn = u[im, 1 : n1 - 1]
        up = u[ip, 1 : n1 - 1]
        o = out[i, 1 : n1 - 1]
        for j in range(m):
            c = ctr[j]
            vm = dn[j]
            vp = up[j]
            vm = -vm if negm else vm
            vp = -vp if negp else vp
            s = c0 * ((vm - c) + (vp - c)) + c1 * ((lft[j] - c) + (rgt[j] - c))
            o[j] = beta * c + dtd * s
    for j in (0, n1 - 1):
        jm, tm = lo(j, n1, bc1)
        jp, tp = hi(j, n1, bc1)
        c = u[i, j]
        vm = u[im, j]
        vp = u[ip, j]
        vm = -vm if negm else vm
        vp = -vp if negp else vp
        wm = u[i, jm]
        wp = u[i, jp]
        wm = -wm if tm < 0 else wm
        wp = -wp if tp < 0 else wp
        s = c0 * ((vm - c) + (vp - c)) + c1 * ((wm - c) + (wp - c))
        out[i, j] = beta * c + dtd * s


@njit(cache=True, parallel=True)
def heat2_const_par(u, out, dtd, beta, c0, c1, bc0, bc1):
    for i in prange(u.shape[0]):
        _row2_const(u, out, i, dtd, beta, c0, c1, bc0, bc1)


@njit(cache=True)
def heat2_const_ser(u, out, dtd, beta, c0, c1, bc0, bc1):
    for i in range(u.shape[0]):
        _row2_const(u, out, i, dtd, beta, c0, c1, bc0, bc1)


@njit(cache=True)
def _row2_var(u, out, i, f0, f1, dt, beta, c0, c1, bc0, bc1):
    # f0: faces along axis 0, shape (n0 + 1, n1); f1: along axis 1, shape (n0, n1 + 1).
    n0, n1 = u.shape
    im, sm = lo(i, n0, bc0)
    ip, sp = hi(i, n0, bc0)
    negm = sm < 0
    negp = sp < 0
    for j in range(n1):
        jm, tm = lo(j, n1, bc1)
        jp, tp = hi(j, n1, bc1)
        c = u[i, j]
        vm = u[im, j]
        vp = u[ip, j]
        vm = -vm if negm else vm
        vp = -vp if negp else vp
        wm = u[i, jm]
        wp = u[i, jp]
        wm = -wm if tm < 0 else wm
        wp = -wp if tp < 0 else wp
        s = c0 * (f0[i, j] * (vm - c) + f0[i + 1, j] * (vp - c)) + c1 * (
            f1[i, j] * (wm - c) + f1[i, j + 1] * (wp - c)
        )
        out[i, j] = beta * c + dt * s


@njit(cache=True, parallel=True)
def heat2_var_par(u, out, f0, f1, dt, beta, c0, c1, bc0, bc1):
    for i in prange(u.shape[0]):
        _row2_var(u, out, i, f0, f1, dt, beta, c0, c1, bc0, bc1)


@njit(cache=True)
def heat2_var_ser(u, out, f0, f1, dt, beta, c0, c1, bc0, bc1):
    for i in range(u.shape[0]):
        _row2_var(u, out, i, f0, f1, dt, beta, c0, c1, bc0, bc1)


# --------------------------------------------------------------------------- 3-D


@njit(cache=True)
def _row3_const(u, out, k, i, dtd, beta, c0, c1, c2, bc0, bc1, bc2):
    n0, n1, n2 = u.shape
    km, rm = lo(k, n0, bc0)
    kp, rp = hi(k, n0, bc0)
    im, sm = lo(i, n1, bc1)
    ip, sp = hi(i, n1, bc1)
    nkm = rm < 0
    nkp = rp < 0
    nim = sm < 0
    nip = sp < 0
    m = n2 - 2
    if m > 0:
        ctr = u[k, i, 1 : n2 - 1]
        lft = u[k, i, 0 : n2 - 2]
        rgt = u[k, i, 2:n2]
        zdn = u[km, i, 1 : n2 - 1]
        zup = u[kp, i, 1 : n2 - 1]
        dn = u[k, im, 1 : n2 - 1]
        up = u[k, ip, 1 : n2 - 1]
        o = out[k, i, 1 : n2 - 1]
        for j in range(m):
            c = ctr[j]
            zm = zdn[j]
            zp = zup[j]
            zm = -zm if nkm else zm
            zp = -zp if nkp else zp
            vm = dn[j]
            vp = up[j]
            vm = -vm if nim else vm
            vp = -vp if nip else vp
            s = c0 * ((zm - c) + (zp - c)) + c1 * ((vm - c) + (vp - c)) + c2 * ((lft[j] - c) + (rgt[j] - c))
            o[j] = beta * c + dtd * s
    for j in (0, n2 - 1):
        jm, tm = lo(j, n2, bc2)
        jp, tp = hi(j, n2, bc2)
        c = u[k, i, j]
        zm = u[km, i, j]
        zp = u[kp, i, j]
        zm = -zm if nkm else zm
        zp = -zp if nkp else zp
        vm = u[k, im, j]
        vp = u[k, ip, j]
        vm = -vm if nim else vm
        vp = -vp if nip else vp
        wm = u[k, i, jm]
        wp = u[k, i, jp]
        wm = -wm if tm < 0 else wm
        wp = -wp if tp < 0 else wp
        s = c0 * ((zm - c) + (zp - c)) + c1 * ((vm - c) + (vp - c)) + c2 * ((wm - c) + (wp - c))
        out[k, i, j] = beta * c + dtd * s


@njit(cache=True, parallel=True)
def heat3_const_par(u, out, dtd, beta, c0, c1, c2, bc0, bc1, bc2):
    n0, n1 = u.shape[0], u.shape[1]
    for ki in prange(n0 * n1):
        _row3_const(u, out, ki // n1, ki % n1, dtd, beta, c0, c1, c2, bc0, bc1, bc2)


@njit(cache=True)
def heat3_const_ser(u, out, dtd, beta, c0, c1, c2, bc0, bc1, bc2):
    n0, n1 = u.shape[0], u.shape[1]
    for ki in range(n0 * n1):
        _row3_const(u, out, ki // n1, ki % n1, dtd, beta, c0, c1, c2, bc0, bc1, bc2)


@njit(cache=True)
def _row3_var(u, out, k, i, f0, f1, f2, dt, beta, c0, c1, c2, bc0, bc1, bc2):
    n0, n1, n2 = u.shape
    km, rm = lo(k, n0, bc0)
    kp, rp = hi(k, n0, bc0)
    im, sm = lo(i, n1, bc1)
    ip, sp = hi(i, n1, bc1)
    for j in range(n2):
        jm, tm = lo(j, n2, bc2)
        jp, tp = hi(j, n2, bc2)
        c = u[k, i, j]
        zm = u[km, i, j]
        zp = u[kp, i, j]
        zm = -zm if rm < 0 else zm
        zp = -zp if rp < 0 else zp
        vm = u[k, im, j]
        vp = u[k, ip, j]
        vm = -vm if sm < 0 else vm
        vp = -vp if sp < 0 else vp
        wm = u[k, i, jm]
        wp = u[k, i, jp]
        wm = -wm if tm < 0 else wm
        wp = -wp if tp < 0 else wp
        s = (
            c0 * (f0[k, i, j] * (zm - c) + f0[k + 1, i, j] * (zp - c))
            + c1 * (f1[k, i, j] * (vm - c) + f1[k, i + 1, j] * (vp - c))
            + c2 * (f2[k, i, j] * (wm - c) + f2[k, i, j + 1] * (wp - c))
        )
        out[k, i, j] = beta * c + dt * s


@njit(cache=True, parallel=True)
def heat3_var_par(u, out, f0, f1, f2, dt, beta, c0, c1, c2, bc0, bc1, bc2):
    n0, n1 = u.shape[0], u.shape[1]
    for ki in prange(n0 * n1):
        _row3_var(u, out, ki // n1, ki % n1, f0, f1, f2, dt, beta, c0, c1, c2, bc0, bc1, bc2)


@njit(cache=True)
def heat3_var_ser(u, out, f0, f1, f2, dt, beta, c0, c1, c2, bc0, bc1, bc2):
    n0, n1 = u.shape[0], u.shape[1]
    for ki in range(n0 * n1):
        _row3_var(u, out, ki // n1, ki % n1, f0, f1, f2, dt, beta, c0, c1, c2, bc0, bc1, bc2)
