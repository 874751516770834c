"""The first sweep of a constant-coefficient ADI step, fused, in both forms the implicit solver uses.

**Douglas form** (small time steps): explicit operator and contiguous-axis solve.

A Douglas ADI step (:class:`pdediff.heat.ImplicitHeatSolver`) is
``w = dt L u``, then ``w = (I - theta dt L_a)^{-1} w`` for every axis, then
``u += w``.  With constant coefficients the per-axis operators commute (each
acts on its own axis of a tensor grid, whatever the boundary), so the axes may
be swept in any order and the contiguous one goes first: for a tile of
``_LANES`` rows the explicit operator is evaluated row by row into ``w`` and
the tile is solved along the row at once, while it is still in L1/L2 --
one pass over memory instead of two (an operator pass and a solve pass), and
the tiles are independent, so they run in parallel.  The remaining (strided)
axes follow with :func:`.tridiag.solve_mid`, the last of them adding into ``u``.

The operator rows are :mod:`.stencil`'s (``beta = 0``) and the solve is
:func:`.tridiag._last_tile`, so each piece does the same arithmetic as the
unfused step; only the order of the axis solves differs (equal in exact
arithmetic, to rounding in floating point).

**Combined form** (large time steps): :class:`pdediff.heat.ImplicitHeatSolver` evaluates a
Douglas step for commuting axis operators without ``dt L u``: with ``S_a = (I - theta dt L_a)^{-1}``,
sweeping the axes from the contiguous one, ``X = S u``, ``W = 2 X - u``, then
per further axis ``E = S_a W - X``, ``X <- S_a X``, ``W = E + X``, and finally
``u <- u - X / theta + S_0 W / theta`` (2-D: ``u - X / theta + S_0 (2 X - u) /
theta``).  The first sweep here solves a tile of ``_LANES`` rows along the
contiguous axis (:func:`.tridiag._last_tile`) and, while the tile is in L1/L2,
writes ``W = 2 X - u`` and either ``u -= X / theta`` (2-D: ``X`` is then no
longer needed) or ``X`` itself (3-D): one pass over memory instead of a solve
pass and two or three elementwise passes.  The arithmetic is that of the
unfused step (``(X + X) - u``, ``u - X * (1/theta)``), bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._common import register_kernel
from .stencil import _row2_const, _row3_const
from .tridiag import _LANES, _last_tile


@register_kernel("adi_first", 2)
def adi_first2(u, w, a, cp, inv, z, vn, qf, dtd, c0, c1, bc0, bc1, cyclic):
    """``w = (I - r L_1)^{-1} (dtd (c0 D_0 + c1 D_1) u)`` for ``(n0, n1)`` arrays, rows in tiles of ``_LANES``.

    ``a, cp, inv`` ``(1, n1)``: the factorised axis-1 system shared by all rows;
    ``z, vn, qf``: its periodic closure (:mod:`.tridiag`) when ``cyclic``.
    """
    n0 = u.shape[0]
    zero = dtd - dtd
    nt = (n0 + _LANES - 1) // _LANES
    for t in prange(nt):
        r0 = np.int64(t) * _LANES
        r1 = min(r0 + _LANES, n0)
        for i in range(r0, r1):
            _row2_const(u, w, i, dtd, zero, c0, c1, bc0, bc1)
        _last_tile(w, w, w, a, cp, inv, z, vn, qf, r0, r1, dtd, False, cyclic)


@register_kernel("adi_first", 3)
def adi_first3(u, w, w2, a, cp, inv, z, vn, qf, dtd, c0, c1, c2, bc0, bc1, bc2, cyclic):
    """As :func:`adi_first2` for ``(n0, n1, n2)`` arrays, solving along axis 2; ``w2`` is ``w`` viewed as
    ``(n0 * n1, n2)`` rows (tiles may span planes)."""
    n0, n1 = u.shape[0], u.shape[1]
    R = n0 * n1
    zero = dtd - dtd
    nt = (R + _LANES - 1) // _LANES
    for t in prange(nt):
        r0 = np.int64(t) * _LANES
        r1 = min(r0 + _LANES, R)
        for r in range(r0, r1):
            _row3_const(u, w, r // n1, r % n1, dtd, zero, c0, c1, c2, bc0, bc1, bc2)
        _last_tile(w2, w2, w2, a, cp, inv, z, vn, qf, r0, r1, dtd, False, cyclic)


@register_kernel("adi_combined", 0)
def adi_combined(u, w, x, a, cp, inv, z, vn, qf, inv_theta, update_u, cyclic):
    """``X = S u`` along the rows of ``(R, n)`` ``u`` (factors ``a, cp, inv`` ``(1, n)``, shared by all rows;
    ``z, vn, qf`` the periodic closure when ``cyclic``), ``w = 2 X - u``; then ``u -= inv_theta X``
    (``update_u``) or ``x = X``.  Rows in tiles of ``_LANES``, in parallel."""
    R, n = u.shape
    nt = (R + _LANES - 1) // _LANES
    for t in prange(nt):
        r0 = np.int64(t) * _LANES
        r1 = min(r0 + _LANES, R)
        _last_tile(u, w, w, a, cp, inv, z, vn, qf, r0, r1, inv_theta, False, cyclic)  # w rows = X
        for r in range(r0, r1):
            ur, wr, xr = u[r], w[r], x[r]
            if update_u:
                for i in range(n):
                    xv = wr[i]
                    uv = ur[i]
                    wr[i] = (xv + xv) - uv
                    ur[i] = uv - xv * inv_theta
            else:
                for i in range(n):
                    xv = wr[i]
                    xr[i] = xv
                    wr[i] = (xv + xv) - ur[i]
