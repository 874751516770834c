"""Explicit (forward Euler) heat-equation step on the cell-centred grid.

``out = beta * u + dtd * sum_a ih2_a * (F_a^- (u_a^- - u) + F_a^+ (u_a^+ - u))`` where
``u_a^±`` are the neighbours along axis ``a`` (ghost cells per boundary,
docs/conventions.rst §2), ``ih2_a = 1/h_a^2`` and ``F`` the face diffusivities (1 for the
constant-coefficient kernels, whose ``dtd`` already holds ``dt * D``).

The boundary rule, ghost cells and flux form come from
:mod:`pdediff.kernels.formulas` (compiled as :data:`._common.F`).  Per
dimension there is one row routine for each coefficient kind: Numba needs the
2-D and 3-D loops written out, and the constant-coefficient rows keep a
branch-free interior loop over contiguous 1-D views so that LLVM vectorises
it (the edges and the variable-coefficient rows use the shared cell
formulas).  A 1-D problem runs as a ``(1, n)`` array with ``ih2_0 = 0`` (the
backend adapts the shape).  Each driver is registered once and compiled
serial and parallel (:func:`._common.register_kernel`).  All scalars arrive in
the array's dtype so float32 stays float32.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import F, register_kernel

# --------------------------------------------------------------------------- 2-D


@njit(cache=True)
def _row2_const(u, out, i, dtd, beta, c0, c1, bc0, bc1):
    n0, n1 = u.shape
    im, sm = F.neighbour(i, n0, bc0, -1)
    ip, sp = F.neighbour(i, n0, bc0, 1)
    # Interior: 1-D views indexed from 0 so LLVM vectorises (no wrap-around checks).
    m = n1 - 2
    if m > 0:
        ctr, lft, rgt = u[i, 1 : n1 - 1], u[i, 0 : n1 - 2], u[i, 2:n1]
        dn, up, o = u[im, 1 : n1 - 1], u[ip, 1 : n1 - 1], out[i, 1 : n1 - 1]
        for j in range(m):
            c = ctr[j]
            s = c0 * F.second_difference(c, F.ghost(dn[j], sm), F.ghost(up[j], sp)) + c1 * F.second_difference(
                c, lft[j], rgt[j])
            o[j] = beta * c + dtd * s
    for j in (0, n1 - 1):
        c, vm, vp, wm, wp = F.around2(u, i, j, bc0, bc1)
        out[i, j] = beta * c + dtd * (c0 * F.second_difference(c, vm, vp) + c1 * F.second_difference(c, wm, wp))


@njit(cache=True)
def _row2_var(u, out, i, f0, f1, dt, beta, c0, c1, bc0, bc1):
    # f0: faces along axis 0, shape (n0 + 1, n1); f1: along axis 1, shape (n0, n1 + 1).
    for j in range(u.shape[1]):
        c, vm, vp, wm, wp = F.around2(u, i, j, bc0, bc1)
        s = c0 * F.axis_flux(c, vm, vp, f0[i, j], f0[i + 1, j]) + c1 * F.axis_flux(c, wm, wp, f1[i, j], f1[i, j + 1])
        out[i, j] = beta * c + dt * s


@register_kernel("heat", 2, "const")
def heat2_const(u, out, dtd, beta, c0, c1, bc0, bc1):
    for i in prange(u.shape[0]):
        _row2_const(u, out, i, dtd, beta, c0, c1, bc0, bc1)


@register_kernel("heat", 2, "var")
def heat2_var(u, out, f0, f1, dt, beta, c0, c1, bc0, bc1):
    for i in prange(u.shape[0]):
        _row2_var(u, out, i, f0, f1, dt, beta, c0, c1, bc0, bc1)


# --------------------------------------------------------------------------- 3-D


@njit(cache=True)
def _row3_const(u, out, k, i, dtd, beta, c0, c1, c2, bc0, bc1, bc2):
    n0, n1, n2 = u.shape
    km, rm = F.neighbour(k, n0, bc0, -1)
    kp, rp = F.neighbour(k, n0, bc0, 1)
    im, sm = F.neighbour(i, n1, bc1, -1)
    ip, sp = F.neighbour(i, n1, bc1, 1)
    m = n2 - 2
    if m > 0:
        ctr, lft, rgt = u[k, i, 1 : n2 - 1], u[k, i, 0 : n2 - 2], u[k, i, 2:n2]
        zdn, zup = u[km, i, 1 : n2 - 1], u[kp, i, 1 : n2 - 1]
        dn, up, o = u[k, im, 1 : n2 - 1], u[k, ip, 1 : n2 - 1], out[k, i, 1 : n2 - 1]
        for j in range(m):
            c = ctr[j]
            s = (c0 * F.second_difference(c, F.ghost(zdn[j], rm), F.ghost(zup[j], rp))
                 + c1 * F.second_difference(c, F.ghost(dn[j], sm), F.ghost(up[j], sp))
                 + c2 * F.second_difference(c, lft[j], rgt[j]))
            o[j] = beta * c + dtd * s
    for j in (0, n2 - 1):
        c, zm, zp, vm, vp, wm, wp = F.around3(u, k, i, j, bc0, bc1, bc2)
        s = c0 * F.second_difference(c, zm, zp) + c1 * F.second_difference(c, vm, vp) + c2 * F.second_difference(
            c, wm, wp)
        out[k, i, j] = beta * c + dtd * s


@njit(cache=True)
def _row3_var(u, out, k, i, f0, f1, f2, dt, beta, c0, c1, c2, bc0, bc1, bc2):
    for j in range(u.shape[2]):
        c, zm, zp, vm, vp, wm, wp = F.around3(u, k, i, j, bc0, bc1, bc2)
        s = (c0 * F.axis_flux(c, zm, zp, f0[k, i, j], f0[k + 1, i, j])
             + c1 * F.axis_flux(c, vm, vp, f1[k, i, j], f1[k, i + 1, j])
             + c2 * F.axis_flux(c, wm, wp, f2[k, i, j], f2[k, i, j + 1]))
        out[k, i, j] = beta * c + dt * s


@njit(cache=True, inline="always")
def plane_interior3(P, Pm, Pp, O, n2, m, rm, rp, dtd, beta, c0, c1, c2):
    """The interior rows of a 3-D plane in one flat loop: ``P``, its neighbour planes ``Pm``, ``Pp`` (ghost
    signs ``rm``, ``rp``) and the output ``O`` as flat contiguous ``(n1 n2,)`` views, ``m = (n1 - 2) n2`` cells
    from row 1 on.  The row ends are visited too, with x neighbours from the adjacent rows: callers recompute
    them.  Shared by :func:`_plane3_const` and the in-place step (:mod:`.inplace`); inlined, so the loop over
    views indexed from 0 vectorises."""
    lo = n2  # first cell of row 1
    ctr, lft, rgt = P[lo : lo + m], P[lo - 1 : lo - 1 + m], P[lo + 1 : lo + 1 + m]
    zdn, zup = Pm[lo : lo + m], Pp[lo : lo + m]
    dn, up, o = P[lo - n2 : lo - n2 + m], P[lo + n2 : lo + n2 + m], O[lo : lo + m]
    for j in range(m):
        c = ctr[j]
        s = (c0 * F.second_difference(c, F.ghost(zdn[j], rm), F.ghost(zup[j], rp))
             + c1 * F.second_difference(c, dn[j], up[j])
             + c2 * F.second_difference(c, lft[j], rgt[j]))
        o[j] = beta * c + dtd * s


@njit(cache=True)
def _plane3_const(u, out, uf, of, k, dtd, beta, c0, c1, c2, bc0, bc1, bc2):
    """Plane ``k`` of the 3-D step: the cells of the interior rows in one loop over the plane, then the
    edge rows and the row ends by :func:`_row3_const`'s formulas.

    Volume rows are short (128-256 cells), and a loop per row pays its call and slicing overhead
    ``n0 n1`` times per step.  ``uf``, ``of`` are ``(n0, n1 n2)`` views; inside a plane the y neighbours
    of cell ``f`` are ``f -+ n2`` and the x neighbours ``f -+ 1``.  The flat loop also visits the row
    ends, whose x neighbours it takes from the adjacent rows: those cells are recomputed afterwards.
    Each cell is the same expression as in :func:`_row3_const` (an interior y neighbour's ghost sign
    is ``+``, a no-op), so the results are bit for bit the same.
    """
    n0, n1, n2 = u.shape
    km, rm = F.neighbour(k, n0, bc0, -1)
    kp, rp = F.neighbour(k, n0, bc0, 1)
    m = (n1 - 2) * n2
    if m > 0 and n2 > 2:
        plane_interior3(uf[k], uf[km], uf[kp], of[k], n2, m, rm, rp, dtd, beta, c0, c1, c2)
        for i in range(1, n1 - 1):  # the row ends
            for j in (0, n2 - 1):
                c, zm, zp, vm, vp, wm, wp = F.around3(u, k, i, j, bc0, bc1, bc2)
                s = c0 * F.second_difference(c, zm, zp) + c1 * F.second_difference(c, vm, vp) + \
                    c2 * F.second_difference(c, wm, wp)
                out[k, i, j] = beta * c + dtd * s
        _row3_const(u, out, k, 0, dtd, beta, c0, c1, c2, bc0, bc1, bc2)
        _row3_const(u, out, k, n1 - 1, dtd, beta, c0, c1, c2, bc0, bc1, bc2)
    else:
        for i in range(n1):
            _row3_const(u, out, k, i, dtd, beta, c0, c1, c2, bc0, bc1, bc2)


@register_kernel("heat", 3, "const")
def heat3_const(u, out, uf, of, dtd, beta, c0, c1, c2, bc0, bc1, bc2):
    """``uf``, ``of``: ``u`` and ``out`` viewed as ``(n0, n1 n2)`` (the same memory)."""
    n0 = u.shape[0]
    for k in prange(n0):
        _plane3_const(u, out, uf, of, k, dtd, beta, c0, c1, c2, bc0, bc1, bc2)


# --------------------------------------------------------------------------- a step that also scans its input
# The solvers' overflow check needs max|u| before the steps it protects; a separate scan is one more pass over
# memory (15-25 % of a 1024^2 step).  These drivers take the first of several steps out of place and scan each row
# (plane) of the input while it is still in cache: the step is the one above, bit for bit.


@njit(cache=True)
def _bits_max(seg, mask):
    """``max(seg & mask)`` of an unsigned view of floats: the largest magnitude's bits (see :func:`abs_max_bits`)."""
    m = mask ^ mask
    for j in range(seg.shape[0]):
        m = max(m, seg[j] & mask)
    return m


@register_kernel("heat_amax", 2, "const")
def heat2_const_amax(u, out, bits, part, mask, dtd, beta, c0, c1, bc0, bc1):
    """:func:`heat2_const`, and ``part[i]``: the largest magnitude bits of row ``i`` of ``u`` (``bits``: ``u``
    viewed as unsigned integers of its width, ``mask`` clearing the sign bit)."""
    for i in prange(u.shape[0]):
        _row2_const(u, out, i, dtd, beta, c0, c1, bc0, bc1)
        part[i] = _bits_max(bits[i], mask)


@register_kernel("heat_amax", 3, "const")
def heat3_const_amax(u, out, uf, of, bits, part, mask, dtd, beta, c0, c1, c2, bc0, bc1, bc2):
    """:func:`heat3_const`, and ``part[k]`` for plane ``k`` as :func:`heat2_const_amax` (``bits``: ``(n0, n1 n2)``)."""
    for k in prange(u.shape[0]):
        _plane3_const(u, out, uf, of, k, dtd, beta, c0, c1, c2, bc0, bc1, bc2)
        part[k] = _bits_max(bits[k], mask)


@register_kernel("heat", 3, "var")
def heat3_var(u, out, f0, f1, f2, dt, beta, c0, c1, c2, bc0, bc1, bc2):
    n0, n1 = u.shape[0], u.shape[1]
    for ki in prange(n0 * n1):
        _row3_var(u, out, ki // n1, ki % n1, f0, f1, f2, dt, beta, c0, c1, c2, bc0, bc1, bc2)


# --------------------------------------------------------------------------- magnitude scan


@register_kernel("abs_max_bits", 0)
def abs_max_bits(bits, mask, nblocks):
    """The largest ``bits & mask`` of a flat unsigned-integer view ``bits`` of a float array (``mask``
    clears the sign bit), in one pass: for IEEE floats the order of the magnitude bits is the order of
    the magnitudes, with +inf above every finite value and NaN above +inf.  An integer maximum vectorises
    without NaN handling (``max(u), min(u)`` are two passes, each slower)."""
    n = bits.shape[0]
    part = np.zeros(nblocks, dtype=bits.dtype)
    for b in prange(nblocks):
        lo = b * n // nblocks
        hi = (b + 1) * n // nblocks
        seg = bits[lo:hi]  # indexed from 0: no negative-index fix-up, so the loop vectorises
        m = mask ^ mask  # 0 of the mask's type
        for j in range(seg.shape[0]):
            m = max(m, seg[j] & mask)
        part[b] = m
    return part.max()
