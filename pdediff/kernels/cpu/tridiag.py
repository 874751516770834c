"""Batched tridiagonal (Thomas) solves along one axis of an array.

Arrays are viewed as ``(pre, n, post)``: ``n`` unknowns per line, lines indexed
by ``(p, q)``.  The system of every line is
``a_i x_{i-1} + b_i x_i + c_i x_{i+1} = d_i`` (plus, for periodic lines, the
corner entries handled by Sherman–Morrison, see :mod:`pdediff.heat.implicit`).

Coefficient arrays have shape ``(P, n, Q)`` with ``P`` in ``{1, pre}`` and ``Q``
in ``{1, post}``: one set shared by all lines (constant coefficients) or one
per line (variable diffusivity, AOS conductances).  The factorisation is done
once (:func:`factor`); each solve is then a forward and a backward sweep.

Two solve kernels: :func:`solve_mid` for lines that are strided in memory
(``post > 1``, vectorised across ``q`` in cache-sized column blocks) and
:func:`solve_last` for contiguous lines (``post == 1``), which interleaves a
block of lines so the sweep's serial dependency chain does not stall the core.
Both optionally fuse ``out += alpha * x`` (ADI's final update, AOS's average)
and the periodic correction ``x -= z * (x_0 + vn * x_{n-1}) * q``.
"""

from __future__ import annotations

from numba import njit, prange


@njit(cache=True)
def factor(a, b, c, cp, inv):
    """LU (Thomas) factors: ``inv_i = 1/(b_i - a_i cp_{i-1})``, ``cp_i = c_i inv_i``."""
    P, n, Q = b.shape
    for p in range(P):
        for q in range(Q):
            den = b[p, 0, q]
            inv[p, 0, q] = 1.0 / den
            cp[p, 0, q] = c[p, 0, q] / den
            for i in range(1, n):
                den = b[p, i, q] - a[p, i, q] * cp[p, i - 1, q]
                inv[p, i, q] = 1.0 / den
                cp[p, i, q] = c[p, i, q] / den


@njit(cache=True)
def _mid_block(d, x, out, a, cp, inv, z, vn, qf, p, q0, q1, alpha, accumulate, cyclic):
    n = d.shape[1]
    P = a.shape[0]
    Q = a.shape[2]
    pa = p if P > 1 else 0
    for q in range(q0, q1):
        qa = q if Q > 1 else 0
        x[p, 0, q] = d[p, 0, q] * inv[pa, 0, qa]
    for i in range(1, n):
        for q in range(q0, q1):
            qa = q if Q > 1 else 0
            x[p, i, q] = (d[p, i, q] - a[pa, i, qa] * x[p, i - 1, q]) * inv[pa, i, qa]
    for i in range(n - 2, -1, -1):
        for q in range(q0, q1):
            qa = q if Q > 1 else 0
            x[p, i, q] = x[p, i, q] - cp[pa, i, qa] * x[p, i + 1, q]
    if cyclic:
        for q in range(q0, q1):
            qa = q if Q > 1 else 0
            f = (x[p, 0, q] + vn[pa, 0, qa] * x[p, n - 1, q]) * qf[pa, 0, qa]
            for i in range(n):
                x[p, i, q] = x[p, i, q] - z[pa, i, qa] * f
    if accumulate:
        for i in range(n):
            for q in range(q0, q1):
                out[p, i, q] = out[p, i, q] + alpha * x[p, i, q]


@njit(cache=True, parallel=True)
def solve_mid_par(d, x, out, a, cp, inv, z, vn, qf, block, alpha, accumulate, cyclic):
    pre, n, post = d.shape
    nb = (post + block - 1) // block
    for t in prange(pre * nb):
        p = t // nb
        q0 = (t % nb) * block
        _mid_block(d, x, out, a, cp, inv, z, vn, qf, p, q0, min(q0 + block, post), alpha, accumulate, cyclic)


@njit(cache=True)
def solve_mid_ser(d, x, out, a, cp, inv, z, vn, qf, block, alpha, accumulate, cyclic):
    pre, n, post = d.shape
    nb = (post + block - 1) // block
    for t in range(pre * nb):
        p = t // nb
        q0 = (t % nb) * block
        _mid_block(d, x, out, a, cp, inv, z, vn, qf, p, q0, min(q0 + block, post), alpha, accumulate, cyclic)


@njit(cache=True)
def _last_block(d, x, out, a, cp, inv, z, vn, qf, p0, p1, alpha, accumulate, cyclic):
    # d, x, out: (pre, n); coefficients (P, n).  Lines p0..p1 are swept together.
    n = d.shape[1]
    P = a.shape[0]
    for p in range(p0, p1):
        pa = p if P > 1 else 0
        x[p, 0] = d[p, 0] * inv[pa, 0]
    for i in range(1, n):
        for p in range(p0, p1):
            pa = p if P > 1 else 0
            x[p, i] = (d[p, i] - a[pa, i] * x[p, i - 1]) * inv[pa, i]
    for i in range(n - 2, -1, -1):
        for p in range(p0, p1):
            pa = p if P > 1 else 0
            x[p, i] = x[p, i] - cp[pa, i] * x[p, i + 1]
    if cyclic or accumulate:
        for p in range(p0, p1):
            pa = p if P > 1 else 0
            if cyclic:
                f = (x[p, 0] + vn[pa, 0] * x[p, n - 1]) * qf[pa, 0]
                for i in range(n):
                    x[p, i] = x[p, i] - z[pa, i] * f
            if accumulate:
                for i in range(n):
                    out[p, i] = out[p, i] + alpha * x[p, i]


@njit(cache=True, parallel=True)
def solve_last_par(d, x, out, a, cp, inv, z, vn, qf, block, alpha, accumulate, cyclic):
    pre = d.shape[0]
    nb = (pre + block - 1) // block
    for t in prange(nb):
        p0 = t * block
        _last_block(d, x, out, a, cp, inv, z, vn, qf, p0, min(p0 + block, pre), alpha, accumulate, cyclic)


@njit(cache=True)
def solve_last_ser(d, x, out, a, cp, inv, z, vn, qf, block, alpha, accumulate, cyclic):
    pre = d.shape[0]
    nb = (pre + block - 1) // block
    for t in range(nb):
        p0 = t * block
        _last_block(d, x, out, a, cp, inv, z, vn, qf, p0, min(p0 + block, pre), alpha, accumulate, cyclic)
