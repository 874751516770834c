"""The explicit heat step in place, in one memory pass (constant coefficients, 1-D to 3-D).

``u = beta u + dtd L u`` written into ``u`` itself without an array-sized
scratch copy: a rolling line buffer.  Each worker owns a block of rows (2-D)
or planes (3-D) and walks it in order; row ``i`` is computed into a small
buffer from the *original* rows ``i - 1, i, i + 1`` (row ``i - 1`` is still
unwritten at that moment), and only then is the finished row ``i - 1``
written back.  The rows just outside a block -- the neighbours that another
worker overwrites concurrently, and with periodic boundaries the wrapped
neighbours of the first and last rows -- are saved before the parallel
region (two rows or planes per block).

Each cell is the same expression, in the same operation order, as the
out-of-place kernels of :mod:`.stencil` (through the row routines of
:mod:`.blocked`, :func:`.blocked._row2` / :func:`.blocked._row3`, whose
equality with them is tested), so the result equals the out-of-place step bit
for bit (``tests/test_inplace_step.py``).  This replaces a step into a
scratch array followed by a copy back into ``u`` (an extra full pass: the
copy cost as much as the step itself).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._common import F, register_kernel
from .blocked import _row2, _row3
from .stencil import plane_interior3

__all__ = ["heat2_inplace", "heat3_inplace"]


@njit(cache=True, inline="always")
def _block(b, nblocks, n):
    return b * n // nblocks, (b + 1) * n // nblocks


@njit(cache=True, inline="always")
def _copy(dst, src):
    """``dst[:] = src`` for C-contiguous 1-D views as a plain loop (a slice assignment checks for overlap and
    may go through a temporary: measured as costly as the step itself)."""
    for j in range(dst.shape[0]):
        dst[j] = src[j]


@njit(cache=True)
def _save_edges(u, saved, nblocks, bc0):
    """``saved[b, 0]``, ``saved[b, 1]``: the original neighbours (rows of ``u``'s first axis) below the first and
    above the last unit of block ``b`` (a unit's own copy where the neighbour is its ghost: never read)."""
    n0 = u.shape[0]
    for b in range(nblocks):
        r0, r1 = _block(b, nblocks, n0)
        if r1 > r0:
            im, _ = F.neighbour(r0, n0, bc0, -1)
            ip, _ = F.neighbour(r1 - 1, n0, bc0, 1)
            saved[b, 0] = u[im]
            saved[b, 1] = u[ip]


@register_kernel("heat_inplace", 2, "const")
def heat2_inplace(u, saved, nblocks, dtd, beta, c0, c1, bc0, bc1):
    """One step of ``(n0, n1)`` ``u`` in place; ``saved`` ``(nblocks, 2, n1)`` scratch for the block edges."""
    n0, n1 = u.shape
    _save_edges(u, saved, nblocks, bc0)
    for b in prange(nblocks):
        r0, r1 = _block(b, nblocks, n0)
        if r1 > r0:
            res = np.empty((2, n1), dtype=u.dtype)
            for i in range(r0, r1):
                im, sm = F.neighbour(i, n0, bc0, -1)
                ip, sp = F.neighbour(i, n0, bc0, 1)
                dn = u[i] if im == i else (saved[b, 0] if i == r0 else u[im])
                up = u[i] if ip == i else (saved[b, 1] if i == r1 - 1 else u[ip])
                _row2(u[i], dn, up, sm, sp, res[(i - r0) % 2], dtd, beta, c0, c1, bc1)
                if i > r0:
                    _copy(u[i - 1], res[(i - 1 - r0) % 2])
            _copy(u[r1 - 1], res[(r1 - 1 - r0) % 2])


@njit(cache=True)
def _plane3(P, Pm, Pp, rm, rp, O, dtd, beta, c0, c1, c2, bc1, bc2):
    """Plane ``O`` of the 3-D step from the plane ``P`` and its neighbours ``Pm``, ``Pp`` (ghost signs ``rm``,
    ``rp``), all C-contiguous ``(n1, n2)``: the cells of :func:`.stencil._plane3_const` -- the interior rows in
    one flat loop over the plane, then the row ends and the edge rows by :func:`.blocked._row3`'s formulas."""
    n1, n2 = P.shape
    m = (n1 - 2) * n2
    if m > 0 and n2 > 2:
        plane_interior3(P.reshape(-1), Pm.reshape(-1), Pp.reshape(-1), O.reshape(-1), n2, m, rm, rp, dtd, beta, c0,
                        c1, c2)
        for i in range(1, n1 - 1):  # the row ends (the flat loop took their x neighbours from adjacent rows)
            for j in (0, n2 - 1):
                jm, tm = F.neighbour(j, n2, bc2, -1)
                jp, tp = F.neighbour(j, n2, bc2, 1)
                c = P[i, j]
                zm, zp = F.ghost(Pm[i, j], rm), F.ghost(Pp[i, j], rp)
                vm, vp = P[i - 1, j], P[i + 1, j]
                wm, wp = F.ghost(P[i, jm], tm), F.ghost(P[i, jp], tp)
                s = c0 * F.second_difference(c, zm, zp) + c1 * F.second_difference(c, vm, vp) + \
                    c2 * F.second_difference(c, wm, wp)
                O[i, j] = beta * c + dtd * s
        step = max(n1 - 1, 1)  # rows 0 and n1 - 1 only
    else:
        step = 1  # every row
    for i in range(0, n1, step):
        im, sm = F.neighbour(i, n1, bc1, -1)
        ip, sp = F.neighbour(i, n1, bc1, 1)
        _row3(P[i], Pm[i], Pp[i], rm, rp, P[im], P[ip], sm, sp, O[i], dtd, beta, c0, c1, c2, bc2)


@register_kernel("heat_inplace", 3, "const")
def heat3_inplace(u, saved, nblocks, dtd, beta, c0, c1, c2, bc0, bc1, bc2):
    """One step of ``(n0, n1, n2)`` ``u`` in place, a rolling pair of planes per block of planes;
    ``saved`` ``(nblocks, 2, n1, n2)`` scratch for the block edges."""
    n0, n1, n2 = u.shape
    _save_edges(u, saved, nblocks, bc0)
    for b in prange(nblocks):
        k0, k1 = _block(b, nblocks, n0)
        if k1 > k0:
            res = np.empty((2, n1, n2), dtype=u.dtype)
            for k in range(k0, k1):
                km, rm = F.neighbour(k, n0, bc0, -1)
                kp, rp = F.neighbour(k, n0, bc0, 1)
                Pm = u[k] if km == k else (saved[b, 0] if k == k0 else u[km])
                Pp = u[k] if kp == k else (saved[b, 1] if k == k1 - 1 else u[kp])
                _plane3(u[k], Pm, Pp, rm, rp, res[(k - k0) % 2], dtd, beta, c0, c1, c2, bc1, bc2)
                if k > k0:
                    _copy(u[k - 1].reshape(-1), res[(k - 1 - k0) % 2].reshape(-1))
            _copy(u[k1 - 1].reshape(-1), res[(k1 - 1 - k0) % 2].reshape(-1))
