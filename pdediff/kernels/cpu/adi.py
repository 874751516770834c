"""The first sweep of a constant-coefficient ADI step in combined form, fused with its elementwise updates.

:class:`pdediff.heat.ImplicitHeatSolver` evaluates a Douglas step for commuting
axis operators without ``dt L u``: with ``S_a = (I - theta dt L_a)^{-1}``,
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
from .tridiag import _LANES, _last_tile


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
