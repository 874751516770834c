"""Tensor-diffusion kernels (EED/CED): structure tensor, diffusion tensor, Selling stencil, explicit step.

One explicit step of ``u_t = div(D grad u)`` runs in three compiled passes
(docs/tensor_diffusion.rst):

1. :func:`structure2` / :func:`structure3`: the structure-tensor components
   ``J_ab = sum_c d_a v_c d_b v_c`` of the (Gaussian-smoothed) image ``v`` by
   central differences in physical units (ghost cells per boundary: the edge
   cell for Neumann, the far side for periodic, 0 for Dirichlet).
2. :func:`links2` / :func:`links3`: per voxel the diffusion tensor ``D`` (EED:
   ``I + (g(mu_1) - 1) P_1``; CED: ``alpha I + (lambda - alpha) P`` with ``P`` the
   projector on the flow direction), expressed in index units
   ``D_idx = H^-1 D H^-1``, and its Selling decomposition
   ``D_idx = sum_k rho_k e_k e_k^T`` (``rho_k >= 0``, ``e_k`` integer offsets) by
   the obtuse-superbase reduction: 3 links in 2-D, 6 in 3-D.
3. :func:`apply2` / :func:`apply3`: ``acc = A u`` with ``A`` the symmetric
   matrix of the energy ``1/2 sum_x sum_k rho_k(x) ((u(x+e_k)-u(x))^2 + (u(x-e_k)-u(x))^2) / 2``:
   every voxel sends the flux ``rho_k / 2 (u(y) - u(x))`` to itself and its
   negative to ``y = x +- e_k``.  Off-diagonals are non-negative and rows sum
   to 0, so mass is conserved and ``u + dt A u`` is a convex combination for
   ``dt <= 1 / max(-A_xx)`` (the diagonal is accumulated on request).

In 2-D the step runs on :func:`stencil2` (the links split into four dense planes of
8-neighbourhood links, closed form for diagonally dominant tensors, Selling's flips from a table of
superbases (:func:`selling_table2`) for the others, and per-row lists of longer links),
:func:`gather2` (``u + dt A u`` gathered per cell: each cell sums its own links and those its
neighbours send it, and writes its short links' ``-A_xx`` to a plane) and :func:`long2` (the long
links, scattered, their share of ``-A_xx`` added to that plane, whose maximum decides whether the
step stands or is redone in sub-steps); 3-D uses the passes 2-3 above.

Accumulation is in float64 whatever the data type.  In the 2-D gather (the hot loop) this costs
little: the pass is bound by memory traffic (four weight planes, ``u``, ``out`` and the diagonal
plane), and a float32-arithmetic version measured 48 vs 51 ms at 2048² (one thread), so the float64
sums stay.  The scatter runs in
parallel over chunks of the outermost axis; a chunk's fluxes into cells of
other chunks go to a private halo buffer that is added afterwards, so no two
threads write the same cell.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..formulas import DIRICHLET, NEUMANN, PERIODIC
from ._common import exp_neg

__all__ = ["EED_GRAD", "EED", "CED", "WEICKERT", "EXPONENTIAL", "RATIONAL", "MAX_REDUCTION_STEPS",
           "conductance", "eigen_sym2", "eigen_sym3", "projector3", "selling2", "selling3", "structure2",
           "structure3", "links2", "links3", "apply2", "apply3", "finish", "NEUMANN", "DIRICHLET", "PERIODIC",
           "selling2_gauss", "selling_table2", "SELLING_TABLE_SIZE", "stencil2", "gather2", "long2", "diag2", "selling_offsets2"]

#: Tensor modes: EED from the gradient of a grey image (rank-1 structure tensor, no eigen-decomposition),
#: EED from a structure tensor, CED from a structure tensor.
EED_GRAD, EED, CED = 0, 1, 2
#: EED conductances of ``x = |grad u_sigma|^2 / kappa^2`` (or ``mu_1 / kappa^2``).
WEICKERT, EXPONENTIAL, RATIONAL = 0, 1, 2
#: Cap on the superbase flips of one voxel.  Each flip lowers the superbase's energy by a lattice
#: amount, so the loop ends; the number of flips grows like the square root of the tensor's
#: condition number in the worst directions (about 30 for 1000, 100 for 10^4).  Reaching the cap
#: means a tensor far beyond the anisotropy the filters produce (or a non-finite one) and is reported.
MAX_REDUCTION_STEPS = 4096
_OFFSET_MAX = 32767  # offsets are stored as int16


@njit(cache=True, inline="always", error_model="numpy")
def conductance(x, code):
    """EED diffusivity across an edge, ``g(x)`` of ``x = s / kappa^2 >= 0`` (``s`` the squared gradient)."""
    if code == WEICKERT:
        x2 = x * x
        z = 3.31488 / (x2 * x2)
        if not z < 700.0:  # exp(-z) would underflow (libm's slow path): g = 1 (also for x = 0)
            return 1.0
        return 1.0 - math.exp(-z)
    if code == EXPONENTIAL:
        return math.exp(-x) if x < 700.0 else 0.0
    return 1.0 / (1.0 + x)


# ----------------------------------------------------------------------------- eigen-decompositions


@njit(cache=True, inline="always", error_model="numpy")
def eigen_sym2(a, b, c):
    """Eigen-decomposition of ``[[a, b], [b, c]]``: ``mu1 >= mu2`` and the projector ``P = v1 v1^T``.

    Closed form without trigonometry: ``r = mu1 - mu2 = sqrt((a-c)^2 + 4 b^2)``,
    ``P = 1/2 [[1 + (a-c)/r, 2b/r], [2b/r, 1 - (a-c)/r]]``; for ``r = 0`` (every direction an
    eigenvector) ``P = I/2``, the average over directions, so the tensor stays rotation-equivariant.
    Returns ``(mu1, mu2, p00, p01, p11)``.
    """
    d = a - c
    r = math.sqrt(d * d + 4.0 * b * b)
    s = a + c
    mu1 = 0.5 * (s + r)
    mu2 = 0.5 * (s - r)
    if r > 0.0:
        return mu1, mu2, 0.5 * (1.0 + d / r), b / r, 0.5 * (1.0 - d / r)
    return mu1, mu2, 0.5, 0.0, 0.5


@njit(cache=True, inline="always", error_model="numpy")
def eigen_sym3(a00, a01, a02, a11, a12, a22):
    """Eigenvalues ``mu1 >= mu2 >= mu3`` of a symmetric 3x3 matrix (trigonometric method).

    ``A = q I + p B`` with ``q = tr A / 3``, ``p = sqrt(tr((A - qI)^2) / 6)``; the eigenvalues of
    ``B`` are ``2 cos(phi + 2 pi k / 3)`` with ``phi = acos(det(B) / 2) / 3``.  A diagonal matrix
    (``p = 0`` off the diagonal) is sorted directly.
    """
    p1 = a01 * a01 + a02 * a02 + a12 * a12
    q = (a00 + a11 + a22) / 3.0
    b00, b11, b22 = a00 - q, a11 - q, a22 - q
    p2 = b00 * b00 + b11 * b11 + b22 * b22 + 2.0 * p1
    if p1 == 0.0 or p2 == 0.0:
        x, y, z = a00, a11, a22
        if x < y:
            x, y = y, x
        if y < z:
            y, z = z, y
        if x < y:
            x, y = y, x
        return x, y, z
    p = math.sqrt(p2 / 6.0)
    ip = 1.0 / p
    c00, c11, c22 = b00 * ip, b11 * ip, b22 * ip
    c01, c02, c12 = a01 * ip, a02 * ip, a12 * ip
    det = c00 * (c11 * c22 - c12 * c12) - c01 * (c01 * c22 - c12 * c02) + c02 * (c01 * c12 - c11 * c02)
    r = 0.5 * det
    if r <= -1.0:
        phi = math.pi / 3.0
    elif r >= 1.0:
        phi = 0.0
    else:
        phi = math.acos(r) / 3.0
    mu1 = q + 2.0 * p * math.cos(phi)
    mu3 = q + 2.0 * p * math.cos(phi + 2.0 * math.pi / 3.0)
    mu2 = 3.0 * q - mu1 - mu3
    return mu1, mu2, mu3


@njit(cache=True, inline="always", error_model="numpy")
def projector3(a00, a01, a02, a11, a12, a22, mu, scale):
    """Projector ``P = v v^T`` on the eigenspace of the eigenvalue ``mu`` of a symmetric 3x3 matrix.

    ``v`` is the largest cross product of two rows of ``A - mu I`` (normalised).  If ``mu`` is a
    double eigenvalue (all cross products below ``1e-5 scale^2``; ``scale`` the eigenvalue spread)
    the eigenspace is the plane orthogonal to the largest row ``r``, and ``P = (I - r r^T) / 2``, the
    average over that plane; if the matrix is a multiple of ``I``, ``P = I / 3``.  The averages keep
    the tensor a continuous, rotation-equivariant function of ``A`` where the eigenvector is undefined.
    Returns ``(p00, p01, p02, p11, p12, p22)``.
    """
    m00, m11, m22 = a00 - mu, a11 - mu, a22 - mu
    # rows r0 = (m00, a01, a02), r1 = (a01, m11, a12), r2 = (a02, a12, m22)
    x0 = a01 * a12 - a02 * m11
    y0 = a02 * a01 - m00 * a12
    z0 = m00 * m11 - a01 * a01
    n0 = x0 * x0 + y0 * y0 + z0 * z0
    x1 = a01 * m22 - a02 * a12
    y1 = a02 * a02 - m00 * m22
    z1 = m00 * a12 - a01 * a02
    n1 = x1 * x1 + y1 * y1 + z1 * z1
    x2 = m11 * m22 - a12 * a12
    y2 = a12 * a02 - a01 * m22
    z2 = a01 * a12 - m11 * a02
    n2 = x2 * x2 + y2 * y2 + z2 * z2
    x, y, z, n = x0, y0, z0, n0
    if n1 > n:
        x, y, z, n = x1, y1, z1, n1
    if n2 > n:
        x, y, z, n = x2, y2, z2, n2
    tol = 1e-5 * scale * scale
    if n > tol * tol and n > 0.0:
        inv = 1.0 / n
        return x * x * inv, x * y * inv, x * z * inv, y * y * inv, y * z * inv, z * z * inv
    # double eigenvalue: largest row of A - mu I spans the orthogonal complement of the eigenplane
    r0 = m00 * m00 + a01 * a01 + a02 * a02
    r1 = a01 * a01 + m11 * m11 + a12 * a12
    r2 = a02 * a02 + a12 * a12 + m22 * m22
    x, y, z, n = m00, a01, a02, r0
    if r1 > n:
        x, y, z, n = a01, m11, a12, r1
    if r2 > n:
        x, y, z, n = a02, a12, m22, r2
    if n > (1e-5 * scale) ** 2 and n > 0.0:
        inv = 1.0 / n
        return (0.5 * (1.0 - x * x * inv), -0.5 * x * y * inv, -0.5 * x * z * inv, 0.5 * (1.0 - y * y * inv),
                -0.5 * y * z * inv, 0.5 * (1.0 - z * z * inv))
    third = 1.0 / 3.0
    return third, 0.0, 0.0, third, 0.0, third


# ----------------------------------------------------------------------------- Selling reduction


@njit(cache=True, inline="always", error_model="numpy")
def _q2(d00, d01, d11, x0, x1, y0, y1):
    return x0 * (d00 * y0 + d01 * y1) + x1 * (d01 * y0 + d11 * y1)


@njit(cache=True, inline="always", error_model="numpy")
def _flips2(d00, d01, d11, x0, y0, x1, y1, x2, y2, steps, cap):
    """Selling's flips of the superbase ``(b0, b1, b2)`` until it is obtuse for ``D`` (see :func:`selling2`).

    Counts on from ``steps``; returns ``(steps, q01, q02, q12, x0, y0, x1, y1, x2, y2)`` with the last
    ``q_ij = <b_i, D b_j>``, ``steps = -1`` once ``cap`` is reached (then the ``q`` of the state before the
    last flip).  Inlined: the one loop of :func:`selling2`, :func:`selling2_gauss` and :func:`_selling2_table`.
    """
    while True:
        q01 = _q2(d00, d01, d11, x0, y0, x1, y1)
        q02 = _q2(d00, d01, d11, x0, y0, x2, y2)
        q12 = _q2(d00, d01, d11, x1, y1, x2, y2)
        if q01 > 0.0:
            x2, y2 = x0 - x1, y0 - y1
            x0, y0 = -x0, -y0
        elif q02 > 0.0:
            x1, y1 = x0 - x2, y0 - y2
            x0, y0 = -x0, -y0
        elif q12 > 0.0:
            x0, y0 = x1 - x2, y1 - y2
            x1, y1 = -x1, -y1
        else:
            break
        steps += 1
        if steps >= cap:
            steps = -1
            break
    return steps, q01, q02, q12, x0, y0, x1, y1, x2, y2


@njit(cache=True, inline="always", error_model="numpy")
def _decomposition2(steps, q01, q02, q12, x0, y0, x1, y1, x2, y2):
    """``(steps, w0, w1, w2, o0x, o0y, o1x, o1y, o2x, o2y)``: weights ``-q_ij`` and offsets ``b_k^perp``."""
    X0, Y0, X1, Y1 = np.int64(x0), np.int64(y0), np.int64(x1), np.int64(y1)
    X2, Y2 = np.int64(x2), np.int64(y2)
    return steps, -q01, -q02, -q12, -Y2, X2, -Y1, X1, -Y0, X0


@njit(cache=True, error_model="numpy")
def selling2(d00, d01, d11):
    """Selling decomposition of a 2x2 SPD matrix ``D`` (index units): ``D = sum_k w_k o_k o_k^T``.

    The superbase ``(b0, b1, b2)``, ``b0 + b1 + b2 = 0``, starts at ``((1,0), (0,1), (-1,-1))``; while a
    pair has ``<b_i, D b_j> > 0`` it becomes ``(-b_i, b_j, b_i - b_j)`` (the third vector replaced),
    which lowers ``sum |b|_D^2`` by ``4 <b_i, D b_j>``.  Then ``w_ij = -<b_i, D b_j> >= 0`` and
    ``o_ij = b_k^perp``.  Returns ``(steps, w0, w1, w2, o0x, o0y, o1x, o1y, o2x, o2y)`` for the pairs
    (0,1), (0,2), (1,2); ``steps = -1`` if :data:`MAX_REDUCTION_STEPS` was reached.
    """
    # the superbase in float64 (small integers, exact): no int -> float conversions in the loop
    x0, y0, x1, y1, x2, y2 = 1.0, 0.0, 0.0, 1.0, -1.0, -1.0
    steps, q01, q02, q12, x0, y0, x1, y1, x2, y2 = _flips2(d00, d01, d11, x0, y0, x1, y1, x2, y2, 0,
                                                           MAX_REDUCTION_STEPS)
    return _decomposition2(steps, q01, q02, q12, x0, y0, x1, y1, x2, y2)


@njit(cache=True, error_model="numpy")
def selling2_gauss(d00, d01, d11):
    """:func:`selling2` by Lagrange–Gauss reduction: the same decomposition in O(log condition) steps.

    The basis ``(b0, b1)`` is reduced for the norm of ``D`` (``b1 -= round(<b0, b1> / |b0|^2) b0``,
    swapped while ``|b1| < |b0|``); a reduced basis with ``<b0, b1> <= 0`` (``b1`` negated if needed)
    gives the obtuse superbase ``(b0, b1, -b0 - b1)`` (``|<b0, b1>| <= |b0|^2 / 2 <= |b1|^2 / 2``),
    which :func:`selling2`'s flips then confirm (normally with no flip).  The obtuse superbase is unique
    up to sign where all three weights are positive, so both functions agree to rounding.
    """
    x0, y0, x1, y1 = 1.0, 0.0, 0.0, 1.0
    n0 = _q2(d00, d01, d11, x0, y0, x0, y0)
    n1 = _q2(d00, d01, d11, x1, y1, x1, y1)
    if n1 < n0:
        x0, y0, x1, y1, n0, n1 = x1, y1, x0, y0, n1, n0
    steps = 0
    while n0 > 0.0:
        k = math.floor(_q2(d00, d01, d11, x0, y0, x1, y1) / n0 + 0.5)
        if k != 0.0:
            x1, y1 = x1 - k * x0, y1 - k * y0
            n1 = _q2(d00, d01, d11, x1, y1, x1, y1)
        if n1 >= n0:
            break
        x0, y0, x1, y1, n0, n1 = x1, y1, x0, y0, n1, n0
        steps += 1
        if steps >= MAX_REDUCTION_STEPS or not math.isfinite(n0):
            return -1, 0.0, 0.0, 0.0, 0, 0, 0, 0, 0, 0
    if _q2(d00, d01, d11, x0, y0, x1, y1) > 0.0:
        x1, y1 = -x1, -y1
    x2, y2 = -x0 - x1, -y0 - y1
    # rounding near ties: finish with Selling's flips
    steps, q01, q02, q12, x0, y0, x1, y1, x2, y2 = _flips2(d00, d01, d11, x0, y0, x1, y1, x2, y2, steps,
                                                           MAX_REDUCTION_STEPS)
    if steps < 0:
        return -1, 0.0, 0.0, 0.0, 0, 0, 0, 0, 0, 0
    return _decomposition2(steps, q01, q02, q12, x0, y0, x1, y1, x2, y2)


#: Side of :func:`selling_table2`'s grid over the anisotropy disk.
SELLING_TABLE_SIZE = 256


@njit(cache=True, error_model="numpy")
def selling_table2(n):
    """Obtuse superbases of the 2x2 SPD matrices on an ``n x n`` grid over the anisotropy disk, ``(n, n, 4)`` int8.

    Selling's superbase of ``D`` depends on ``D`` only up to a positive factor, i.e. on
    ``(a, b) = ((d00 - d11), 2 d01) / (d00 + d11)``, a point of the unit disk.  Entry ``[p, q]`` holds
    ``(x0, y0, x1, y1)`` (``b2 = -b0 - b1``) of the matrix at the centre of cell ``(p, q)`` of the grid on
    ``[-1, 1]^2`` (points outside the disk pulled in to radius 0.995), from :func:`selling2_gauss`; a
    matrix in the same cell has that superbase or one a few of Selling's flips away
    (:func:`_selling2_table`).
    """
    tab = np.zeros((n, n, 4), np.int8)
    for p in range(n):
        for q in range(n):
            a = -1.0 + (p + 0.5) * 2.0 / n
            b = -1.0 + (q + 0.5) * 2.0 / n
            r = math.sqrt(a * a + b * b)
            if r > 0.995:
                a, b = a * 0.995 / r, b * 0.995 / r
            steps, w0, w1, w2, a0, b0, a1, b1, a2, b2 = selling2_gauss(1.0 + a, b, 1.0 - a)
            big = max(max(abs(a0), abs(b0)), max(max(abs(a1), abs(b1)), max(abs(a2), abs(b2))))
            if steps < 0 or big > 127:
                tab[p, q, 0], tab[p, q, 3] = 1, 1  # the canonical superbase: the flips start from there
                continue
            # offsets are the perpendiculars (-y, x) of the third vector: o01 = b2^perp, o02 = b1^perp, o12 = b0^perp
            tab[p, q, 0], tab[p, q, 1] = b2, -a2
            tab[p, q, 2], tab[p, q, 3] = b1, -a1
    return tab


@njit(cache=True, inline="always", error_model="numpy")
def _selling2_table(d00, d01, d11, tab):
    """:func:`selling2_gauss` started from the superbase :func:`selling_table2` holds for ``D``'s cell of the
    anisotropy disk: Selling's flips from there (none for most matrices, a few near a cell's region
    borders), :func:`selling2_gauss` if they do not finish within 16 (or ``tr D <= 0``).  The obtuse
    superbase is unique up to sign where all weights are positive, so the result is the same.
    """
    tr = d00 + d11
    if not tr > 0.0:
        return selling2_gauss(d00, d01, d11)
    n = tab.shape[0]
    ia = min(max(np.int64((d00 - d11) / tr * (0.5 * n) + 0.5 * n), 0), n - 1)
    ib = min(max(np.int64(2.0 * d01 / tr * (0.5 * n) + 0.5 * n), 0), n - 1)
    x0, y0 = np.float64(tab[ia, ib, 0]), np.float64(tab[ia, ib, 1])
    x1, y1 = np.float64(tab[ia, ib, 2]), np.float64(tab[ia, ib, 3])
    x2, y2 = -x0 - x1, -y0 - y1
    steps, q01, q02, q12, x0, y0, x1, y1, x2, y2 = _flips2(d00, d01, d11, x0, y0, x1, y1, x2, y2, 0, 16)
    if steps < 0:
        return selling2_gauss(d00, d01, d11)
    return _decomposition2(steps, q01, q02, q12, x0, y0, x1, y1, x2, y2)


@njit(cache=True, inline="always", error_model="numpy")
def _q3(d, x, y):
    return (x[0] * (d[0] * y[0] + d[1] * y[1] + d[2] * y[2])
            + x[1] * (d[1] * y[0] + d[3] * y[1] + d[4] * y[2])
            + x[2] * (d[2] * y[0] + d[4] * y[1] + d[5] * y[2]))


@njit(cache=True, error_model="numpy")
def selling3(d, w, o, b):
    """Selling decomposition of a 3x3 SPD matrix ``d = (d00, d01, d02, d11, d12, d22)`` (index units).

    The superbase ``(b0..b3)``, summing to 0, starts at ``(e1, e2, e3, -e1-e2-e3)``; while a pair has
    ``<b_i, D b_j> > 0``: ``b_k += b_i``, ``b_l += b_i``, ``b_i = -b_i``.  Then for the six pairs
    ``w_ij = -<b_i, D b_j> >= 0`` and ``o_ij = b_k x b_l``.  Writes ``w`` (6,) and ``o`` (6, 3); returns
    the number of flips, or -1 if :data:`MAX_REDUCTION_STEPS` was reached.  ``b`` is a (4, 3) int64
    workspace (the superbase).
    """
    for i in range(4):
        for a in range(3):
            b[i, a] = 0
    b[0, 0] = b[1, 1] = b[2, 2] = 1
    b[3, 0] = b[3, 1] = b[3, 2] = -1
    steps = 0
    while True:
        flipped = False
        for i in range(4):
            for j in range(i + 1, 4):
                if _q3(d, b[i], b[j]) > 0.0:
                    for k in range(4):
                        if k != i and k != j:
                            for a in range(3):
                                b[k, a] += b[i, a]
                    for a in range(3):
                        b[i, a] = -b[i, a]
                    flipped = True
                    break
            if flipped:
                break
        if not flipped:
            break
        steps += 1
        if steps >= MAX_REDUCTION_STEPS:
            return -1
    p = 0
    for i in range(4):
        for j in range(i + 1, 4):
            k = -1
            for m in range(4):
                if m != i and m != j:
                    if k < 0:
                        k = m
                    else:
                        l = m  # noqa: E741
            w[p] = -_q3(d, b[i], b[j])
            o[p, 0] = b[k, 1] * b[l, 2] - b[k, 2] * b[l, 1]
            o[p, 1] = b[k, 2] * b[l, 0] - b[k, 0] * b[l, 2]
            o[p, 2] = b[k, 0] * b[l, 1] - b[k, 1] * b[l, 0]
            p += 1
    return steps


# ----------------------------------------------------------------------------- structure tensor


@njit(cache=True, inline="always")
def _at2(v, c, i, j, n0, n1, bc):
    """``v[c, i, j]`` with ``i``/``j`` at most one cell outside: ghost cells per boundary."""
    if 0 <= i < n0 and 0 <= j < n1:
        return np.float64(v[c, i, j])
    if bc == PERIODIC:
        return np.float64(v[c, i % n0, j % n1])
    if bc == NEUMANN:
        return np.float64(v[c, min(max(i, 0), n0 - 1), min(max(j, 0), n1 - 1)])
    return 0.0


@njit(cache=True, inline="always")
def _at3(v, c, k, i, j, n0, n1, n2, bc):
    if 0 <= k < n0 and 0 <= i < n1 and 0 <= j < n2:
        return np.float64(v[c, k, i, j])
    if bc == PERIODIC:
        return np.float64(v[c, k % n0, i % n1, j % n2])
    if bc == NEUMANN:
        return np.float64(v[c, min(max(k, 0), n0 - 1), min(max(i, 0), n1 - 1), min(max(j, 0), n2 - 1)])
    return 0.0


@njit(cache=True, parallel=True, error_model="numpy")
def structure2(v, h0, h1, bc, J):
    """``J[0] = sum_c (d0 v_c)^2``, ``J[1] = sum_c d0 v_c d1 v_c``, ``J[2] = sum_c (d1 v_c)^2``.

    ``v`` is (C, n0, n1); ``J`` (3, n0, n1).
    """
    C, n0, n1 = v.shape
    f0, f1 = 0.5 / h0, 0.5 / h1
    for i_ in prange(n0):
        i = np.int64(i_)  # a signed index: i +- 1 stays an integer
        for j in range(n1):
            s00 = s01 = s11 = 0.0
            for c in range(C):
                g0 = (_at2(v, c, i + 1, j, n0, n1, bc) - _at2(v, c, i - 1, j, n0, n1, bc)) * f0
                g1 = (_at2(v, c, i, j + 1, n0, n1, bc) - _at2(v, c, i, j - 1, n0, n1, bc)) * f1
                s00 += g0 * g0
                s01 += g0 * g1
                s11 += g1 * g1
            J[0, i, j] = s00
            J[1, i, j] = s01
            J[2, i, j] = s11


@njit(cache=True, parallel=True, error_model="numpy")
def structure3(v, h0, h1, h2, bc, J):
    """The six components ``(00, 01, 02, 11, 12, 22)`` of ``sum_c grad v_c grad v_c^T``.

    ``v`` is (C, n0, n1, n2); ``J`` (6, n0, n1, n2).
    """
    C, n0, n1, n2 = v.shape
    f0, f1, f2 = 0.5 / h0, 0.5 / h1, 0.5 / h2
    for k_ in prange(n0):
        k = np.int64(k_)  # a signed index: i +- 1 stays an integer
        for i in range(n1):
            for j in range(n2):
                s00 = s01 = s02 = s11 = s12 = s22 = 0.0
                for c in range(C):
                    g0 = (_at3(v, c, k + 1, i, j, n0, n1, n2, bc)
                          - _at3(v, c, k - 1, i, j, n0, n1, n2, bc)) * f0
                    g1 = (_at3(v, c, k, i + 1, j, n0, n1, n2, bc)
                          - _at3(v, c, k, i - 1, j, n0, n1, n2, bc)) * f1
                    g2 = (_at3(v, c, k, i, j + 1, n0, n1, n2, bc)
                          - _at3(v, c, k, i, j - 1, n0, n1, n2, bc)) * f2
                    s00 += g0 * g0
                    s01 += g0 * g1
                    s02 += g0 * g2
                    s11 += g1 * g1
                    s12 += g1 * g2
                    s22 += g2 * g2
                J[0, k, i, j] = s00
                J[1, k, i, j] = s01
                J[2, k, i, j] = s02
                J[3, k, i, j] = s11
                J[4, k, i, j] = s12
                J[5, k, i, j] = s22


# ----------------------------------------------------------------------------- tensors and links


@njit(cache=True, inline="always", error_model="numpy")
def _tensor2(mode, f, i, j, n0, n1, h0, h1, bc, cond, kinv2, gmin, alpha, cstar):
    """The diffusion tensor ``(D00, D01, D11)`` (physical units) of cell ``(i, j)``."""
    if mode == EED_GRAD:
        if 0 < i < n0 - 1 and 0 < j < n1 - 1:  # interior: no ghost cells
            g0 = (np.float64(f[0, i + 1, j]) - np.float64(f[0, i - 1, j])) * (0.5 / h0)
            g1 = (np.float64(f[0, i, j + 1]) - np.float64(f[0, i, j - 1])) * (0.5 / h1)
        else:
            g0 = (_at2(f, 0, i + 1, j, n0, n1, bc) - _at2(f, 0, i - 1, j, n0, n1, bc)) * (0.5 / h0)
            g1 = (_at2(f, 0, i, j + 1, n0, n1, bc) - _at2(f, 0, i, j - 1, n0, n1, bc)) * (0.5 / h1)
        s = g0 * g0 + g1 * g1
        if not s > 0.0:
            return 1.0, 0.0, 1.0
        gg = max(conductance(s * kinv2, cond), gmin)
        t = (gg - 1.0) / s
        return 1.0 + t * g0 * g0, t * g0 * g1, 1.0 + t * g1 * g1
    a, b, c = np.float64(f[0, i, j]), np.float64(f[1, i, j]), np.float64(f[2, i, j])
    mu1, mu2, p00, p01, p11 = eigen_sym2(a, b, c)
    if mode == EED:
        t = max(conductance(mu1 * kinv2, cond), gmin) - 1.0
        return 1.0 + t * p00, t * p01, 1.0 + t * p11
    r = mu1 - mu2
    z = cstar / (r * r) if r > 0.0 else math.inf
    lam = alpha + (1.0 - alpha) * math.exp(-z) if z < 700.0 else alpha  # no underflowing exp (slow path)
    t = lam - alpha  # along the flow: I - P
    return alpha + t * (1.0 - p00), -t * p01, alpha + t * (1.0 - p11)


@njit(cache=True, parallel=True, error_model="numpy")
def links2(f, mode, cond, kinv2, gmin, alpha, cstar, h0, h1, bc, W, O, reach, span):
    """Selling links of every cell of a 2-D grid: weights ``W`` (n0, n1, 3), offsets ``O`` (n0, n1, 3, 2).

    ``f`` is the smoothed grey image (1, n0, n1) for ``mode = EED_GRAD``, else the structure tensor
    (3, n0, n1).  ``reach[i]`` receives the largest ``|offset_0|`` of row ``i`` (halo size of the
    scatter), ``span[i]`` the largest ``|offset|_inf`` (links of positive weight).  A non-finite
    tensor gets zero weights (no flux).  The reduction is :func:`selling2`'s flips, and
    :func:`selling2_gauss` (the same decomposition, as :func:`stencil2` uses) where the flips reach their
    cap.  Returns the number of cells whose reduction failed (offsets beyond int16).
    """
    n0, n1 = W.shape[0], W.shape[1]
    ih0, ih1 = 1.0 / h0, 1.0 / h1
    bad = np.zeros(n0, np.int64)
    for i_ in prange(n0):
        i = np.int64(i_)  # a signed index: i +- 1 stays an integer
        rmax = 0
        smax = 0
        for j in range(n1):
            D00, D01, D11 = _tensor2(mode, f, i, j, n0, n1, h0, h1, bc, cond, kinv2, gmin, alpha, cstar)
            d00, d01, d11 = D00 * ih0 * ih0, D01 * ih0 * ih1, D11 * ih1 * ih1
            if not (math.isfinite(d00) and math.isfinite(d01) and math.isfinite(d11)):
                for p in range(3):
                    W[i, j, p] = 0.0
                    O[i, j, p, 0] = 0
                    O[i, j, p, 1] = 0
                continue
            steps, w0, w1, w2, a0, b0, a1, b1, a2, b2 = selling2(d00, d01, d11)
            if steps < 0:  # beyond the flips' cap: the same decomposition in O(log condition) steps
                steps, w0, w1, w2, a0, b0, a1, b1, a2, b2 = selling2_gauss(d00, d01, d11)
            big = max(max(abs(a0), abs(b0)), max(max(abs(a1), abs(b1)), max(abs(a2), abs(b2))))
            if steps < 0 or big > _OFFSET_MAX:
                bad[i] += 1
                w0 = w1 = w2 = 0.0
                a0 = b0 = a1 = b1 = a2 = b2 = 0
            W[i, j, 0] = max(w0, 0.0)
            W[i, j, 1] = max(w1, 0.0)
            W[i, j, 2] = max(w2, 0.0)
            O[i, j, 0, 0], O[i, j, 0, 1] = a0, b0
            O[i, j, 1, 0], O[i, j, 1, 1] = a1, b1
            O[i, j, 2, 0], O[i, j, 2, 1] = a2, b2
            if w0 > 0.0:
                rmax = max(rmax, abs(a0))
                smax = max(smax, max(abs(a0), abs(b0)))
            if w1 > 0.0:
                rmax = max(rmax, abs(a1))
                smax = max(smax, max(abs(a1), abs(b1)))
            if w2 > 0.0:
                rmax = max(rmax, abs(a2))
                smax = max(smax, max(abs(a2), abs(b2)))
        reach[i] = rmax
        span[i] = smax
    return bad.sum()


@njit(cache=True, inline="always", error_model="numpy")
def _tensor3(mode, f, k, i, j, n0, n1, n2, h0, h1, h2, bc, cond, kinv2, gmin, alpha, cstar, D):
    """The diffusion tensor of cell ``(k, i, j)`` into ``D`` = (00, 01, 02, 11, 12, 22), physical units."""
    if mode == EED_GRAD:
        g0 = (_at3(f, 0, k + 1, i, j, n0, n1, n2, bc) - _at3(f, 0, k - 1, i, j, n0, n1, n2, bc)) * (0.5 / h0)
        g1 = (_at3(f, 0, k, i + 1, j, n0, n1, n2, bc) - _at3(f, 0, k, i - 1, j, n0, n1, n2, bc)) * (0.5 / h1)
        g2 = (_at3(f, 0, k, i, j + 1, n0, n1, n2, bc) - _at3(f, 0, k, i, j - 1, n0, n1, n2, bc)) * (0.5 / h2)
        s = g0 * g0 + g1 * g1 + g2 * g2
        t = 0.0
        if s > 0.0:
            t = (max(conductance(s * kinv2, cond), gmin) - 1.0) / s
        D[0], D[1], D[2] = 1.0 + t * g0 * g0, t * g0 * g1, t * g0 * g2
        D[3], D[4], D[5] = 1.0 + t * g1 * g1, t * g1 * g2, 1.0 + t * g2 * g2
        return
    a00, a01, a02 = np.float64(f[0, k, i, j]), np.float64(f[1, k, i, j]), np.float64(f[2, k, i, j])
    a11, a12, a22 = np.float64(f[3, k, i, j]), np.float64(f[4, k, i, j]), np.float64(f[5, k, i, j])
    mu1, mu2, mu3 = eigen_sym3(a00, a01, a02, a11, a12, a22)
    spread = mu1 - mu3
    if mode == EED:
        p = projector3(a00, a01, a02, a11, a12, a22, mu1, spread)
        t = max(conductance(mu1 * kinv2, cond), gmin) - 1.0
        base = 1.0
    else:
        p = projector3(a00, a01, a02, a11, a12, a22, mu3, spread)
        z = cstar / (spread * spread) if spread > 0.0 else math.inf
        lam = alpha + (1.0 - alpha) * math.exp(-z) if z < 700.0 else alpha
        t = lam - alpha
        base = alpha
    D[0], D[1], D[2] = base + t * p[0], t * p[1], t * p[2]
    D[3], D[4], D[5] = base + t * p[3], t * p[4], base + t * p[5]


@njit(cache=True, parallel=True, error_model="numpy")
def links3(f, mode, cond, kinv2, gmin, alpha, cstar, h0, h1, h2, bc, W, O, reach, span):
    """Selling links of every cell of a 3-D grid: ``W`` (n0, n1, n2, 6), ``O`` (n0, n1, n2, 6, 3).

    As :func:`links2`; ``f`` is (1, ...) for ``EED_GRAD``, else the six structure-tensor components.
    ``reach[k]`` is the largest ``|offset_0|`` in plane ``k``, ``span[k]`` the largest ``|offset|_inf``.
    """
    n0, n1, n2 = W.shape[0], W.shape[1], W.shape[2]
    ih = np.array([1.0 / h0, 1.0 / h1, 1.0 / h2])
    bad = np.zeros(n0, np.int64)
    for k_ in prange(n0):
        k = np.int64(k_)  # a signed index: i +- 1 stays an integer
        D = np.empty(6)
        d = np.empty(6)
        w = np.empty(6)
        o = np.empty((6, 3), np.int64)
        b = np.empty((4, 3), np.int64)
        rmax = 0
        smax = 0
        for i in range(n1):
            for j in range(n2):
                _tensor3(mode, f, k, i, j, n0, n1, n2, h0, h1, h2, bc, cond, kinv2, gmin, alpha, cstar, D)
                d[0], d[1], d[2] = D[0] * ih[0] * ih[0], D[1] * ih[0] * ih[1], D[2] * ih[0] * ih[2]
                d[3], d[4], d[5] = D[3] * ih[1] * ih[1], D[4] * ih[1] * ih[2], D[5] * ih[2] * ih[2]
                ok = True
                for q in range(6):
                    if not math.isfinite(d[q]):
                        ok = False
                if ok:
                    ok = selling3(d, w, o, b) >= 0
                    if not ok:
                        bad[k] += 1
                for p in range(6):
                    fits = max(abs(o[p, 0]), max(abs(o[p, 1]), abs(o[p, 2]))) <= _OFFSET_MAX
                    if ok and fits:
                        W[k, i, j, p] = max(w[p], 0.0)
                        for a in range(3):
                            O[k, i, j, p, a] = o[p, a]
                        if W[k, i, j, p] > 0.0:
                            rmax = max(rmax, abs(o[p, 0]))
                            smax = max(smax, max(abs(o[p, 0]), max(abs(o[p, 1]), abs(o[p, 2]))))
                    else:
                        if ok:
                            bad[k] += 1
                        W[k, i, j, p] = 0.0
                        for a in range(3):
                            O[k, i, j, p, a] = 0
        reach[k] = rmax
        span[k] = smax
    return bad.sum()


# ----------------------------------------------------------------------------- the operator A u


@njit(cache=True, parallel=True, error_model="numpy")
def apply2(u, W, O, R, bc, acc, diag, with_diag, nchunks):
    """``acc = A u`` (C, n0, n1) float64 from the links ``W``/``O``; with ``with_diag`` also ``diag = -A_xx``.

    ``R`` bounds ``|offset_0|`` over all links (the halo of a chunk).  Neumann: links that leave the
    grid are dropped; periodic: wrapped; Dirichlet: they reach a ghost cell of value 0 with the full
    weight ``rho_k`` (the ghost carries the cell's own tensor).
    """
    C, n0, n1 = u.shape
    K = W.shape[2]
    halo = np.zeros((nchunks, C, 2 * R, n1))
    hdiag = np.zeros((nchunks, 2 * R, n1))
    acc[:] = 0.0
    if with_diag:
        diag[:] = 0.0
    for t_ in prange(nchunks):
        t = np.int64(t_)  # a signed index: i +- 1 stays an integer
        r0 = t * n0 // nchunks
        r1 = (t + 1) * n0 // nchunks
        loc = np.empty(C)  # the cell's own fluxes, summed in registers and stored once
        for i in range(r0, r1):
            for j in range(n1):
                for c in range(C):
                    loc[c] = 0.0
                dloc = 0.0
                for p in range(K):
                    w = np.float64(W[i, j, p])
                    if not w > 0.0:
                        continue
                    half = 0.5 * w
                    oi, oj = np.int64(O[i, j, p, 0]), np.int64(O[i, j, p, 1])
                    for s in (-1, 1):
                        yi, yj = i + s * oi, j + s * oj
                        yiw, yjw = yi, yj
                        if not (0 <= yi < n0 and 0 <= yj < n1):
                            if bc == NEUMANN:
                                continue
                            if bc == DIRICHLET:
                                for c in range(C):
                                    loc[c] -= w * np.float64(u[c, i, j])
                                dloc += w
                                continue
                            yiw, yjw = yi % n0, yj % n1
                        own = r0 <= yi < r1
                        q = yi - r0 + R if yi < r0 else yi - r1 + R
                        for c in range(C):
                            fl = half * (np.float64(u[c, yiw, yjw]) - np.float64(u[c, i, j]))
                            loc[c] += fl
                            if own:
                                acc[c, yi, yjw] -= fl
                            else:
                                halo[t, c, q, yjw] -= fl
                        if with_diag:
                            dloc += half
                            if own:
                                diag[yi, yjw] += half
                            else:
                                hdiag[t, q, yjw] += half
                for c in range(C):
                    acc[c, i, j] += loc[c]
                if with_diag:
                    diag[i, j] += dloc
    for t in range(nchunks):
        r0 = t * n0 // nchunks
        r1 = (t + 1) * n0 // nchunks
        for q in range(2 * R):
            yi = r0 - R + q if q < R else r1 + q - R
            if not 0 <= yi < n0:
                if bc != PERIODIC:
                    continue
                yi = yi % n0
            for j in range(n1):
                for c in range(C):
                    acc[c, yi, j] += halo[t, c, q, j]
                if with_diag:
                    diag[yi, j] += hdiag[t, q, j]


@njit(cache=True, parallel=True, error_model="numpy")
def apply3(u, W, O, R, bc, acc, diag, with_diag, nchunks):
    """:func:`apply2` on a 3-D grid: ``u``/``acc`` (C, n0, n1, n2), chunks of planes, halo of ``R`` planes."""
    C, n0, n1, n2 = u.shape
    K = W.shape[3]
    halo = np.zeros((nchunks, C, 2 * R, n1, n2))
    hdiag = np.zeros((nchunks, 2 * R, n1, n2))
    acc[:] = 0.0
    if with_diag:
        diag[:] = 0.0
    for t_ in prange(nchunks):
        t = np.int64(t_)  # a signed index: i +- 1 stays an integer
        r0 = t * n0 // nchunks
        r1 = (t + 1) * n0 // nchunks
        loc = np.empty(C)  # the cell's own fluxes, summed in registers and stored once
        for k in range(r0, r1):
            for i in range(n1):
                for j in range(n2):
                    for c in range(C):
                        loc[c] = 0.0
                    dloc = 0.0
                    for p in range(K):
                        w = np.float64(W[k, i, j, p])
                        if not w > 0.0:
                            continue
                        half = 0.5 * w
                        ok = np.int64(O[k, i, j, p, 0])
                        oi, oj = np.int64(O[k, i, j, p, 1]), np.int64(O[k, i, j, p, 2])
                        for s in (-1, 1):
                            yk, yi, yj = k + s * ok, i + s * oi, j + s * oj
                            ykw, yiw, yjw = yk, yi, yj
                            if not (0 <= yk < n0 and 0 <= yi < n1 and 0 <= yj < n2):
                                if bc == NEUMANN:
                                    continue
                                if bc == DIRICHLET:
                                    for c in range(C):
                                        loc[c] -= w * np.float64(u[c, k, i, j])
                                    dloc += w
                                    continue
                                ykw, yiw, yjw = yk % n0, yi % n1, yj % n2
                            own = r0 <= yk < r1
                            q = yk - r0 + R if yk < r0 else yk - r1 + R
                            for c in range(C):
                                fl = half * (np.float64(u[c, ykw, yiw, yjw]) - np.float64(u[c, k, i, j]))
                                loc[c] += fl
                                if own:
                                    acc[c, yk, yiw, yjw] -= fl
                                else:
                                    halo[t, c, q, yiw, yjw] -= fl
                            if with_diag:
                                dloc += half
                                if own:
                                    diag[yk, yiw, yjw] += half
                                else:
                                    hdiag[t, q, yiw, yjw] += half
                    for c in range(C):
                        acc[c, k, i, j] += loc[c]
                    if with_diag:
                        diag[k, i, j] += dloc
    for t in range(nchunks):
        r0 = t * n0 // nchunks
        r1 = (t + 1) * n0 // nchunks
        for q in range(2 * R):
            yk = r0 - R + q if q < R else r1 + q - R
            if not 0 <= yk < n0:
                if bc != PERIODIC:
                    continue
                yk = yk % n0
            for i in range(n1):
                for j in range(n2):
                    for c in range(C):
                        acc[c, yk, i, j] += halo[t, c, q, i, j]
                    if with_diag:
                        diag[yk, i, j] += hdiag[t, q, i, j]


@njit(cache=True, parallel=True, error_model="numpy")
def finish(u, acc, dt, out):
    """``out = u + dt * acc`` on flat views (rounded once to ``out``'s type)."""
    for m in prange(u.size):
        out[m] = np.float64(u[m]) + dt * acc[m]


# ----------------------------------------------------------------------------- 2-D: gathered stencil
#
# In 2-D the Selling decomposition of a tensor with |d01| <= min(d00, d11) (index units) is, in
# closed form, ``(d00 - |d01|) e0 e0^T + (d11 - |d01|) e1 e1^T + |d01| (1, sgn d01)(1, sgn d01)^T``:
# all links inside the 8-neighbourhood.  Conversely a Selling stencil whose links are all inside the
# 8-neighbourhood is of this form.  :func:`stencil2` stores every cell's short links as four dense
# weight planes ``S[d]`` for the directions ``(1, 0), (0, 1), (1, 1), (1, -1)`` (d = 0..3); the few
# links longer than one cell (tensors that are not diagonally dominant: strongly anisotropic and
# oblique) go to a per-row list.  :func:`gather2` then sums each cell's fluxes over its own links and
# the links its neighbours send to it, ``(S_d(x) + S_d(x +- d)) / 2 (u(x +- d) - u(x))``, writing
# ``u + dt A u`` directly (no scatter, no float64 accumulator); :func:`long2` adds the long links.


@njit(cache=True, inline="always")
def _short_dir(a, b):
    """Direction index 0..3 of the offset ``+-(a, b)`` with ``|a|, |b| <= 1``, not both 0."""
    if a < 0 or (a == 0 and b < 0):
        a, b = -a, -b
    if a == 0:
        return 1
    if b == 0:
        return 0
    return 2 if b > 0 else 3


@njit(cache=True, inline="always", error_model="numpy")
def _eed_tensor(g0, g1, s, gg, ih00, ih01, ih11):
    """The index-unit EED tensor of gradient ``(g0, g1)``, ``s = |g|^2``, diffusivity ``gg`` across."""
    t = (gg - 1.0) / (s if s > 0.0 else 1.0)  # s = 0: gg = 1, t = 0 (D = I)
    return (1.0 + t * g0 * g0) * ih00, (t * g0 * g1) * ih01, (1.0 + t * g1 * g1) * ih11


@njit(cache=True, error_model="numpy")
def _eed_row(f, i, j0, j1, c0, c1, ih00, ih01, ih11, cond, kinv2, gmin, T0, T1, T2):
    """Index-unit EED tensors ``(T0, T1, T2)[j]`` of interior cells ``(i, j0 <= j < j1)`` from the gradient of
    the smoothed image ``f`` (1, n0, n1): :func:`_tensor2`'s ``EED_GRAD`` branch without branches
    (:func:`conductance` with :func:`exp_neg`, within a few ulp; ``exp_neg(inf) = 0``: ``g(0) = 1``),
    one loop per conductance, so each vectorises (written out: through a helper taking the code,
    LLVM did not vectorise them, 4x slower).  A non-finite gradient gives a non-finite tensor (the
    caller's scalar path redoes it).
    """
    if cond == WEICKERT:
        for j in range(j0, j1):
            g0 = (np.float64(f[0, i + 1, j]) - np.float64(f[0, i - 1, j])) * c0
            g1 = (np.float64(f[0, i, j + 1]) - np.float64(f[0, i, j - 1])) * c1
            s = g0 * g0 + g1 * g1
            x = s * kinv2
            x2 = x * x
            gg = max(1.0 - exp_neg(3.31488 / (x2 * x2)), gmin)
            T0[j], T1[j], T2[j] = _eed_tensor(g0, g1, s, gg, ih00, ih01, ih11)
    elif cond == EXPONENTIAL:
        for j in range(j0, j1):
            g0 = (np.float64(f[0, i + 1, j]) - np.float64(f[0, i - 1, j])) * c0
            g1 = (np.float64(f[0, i, j + 1]) - np.float64(f[0, i, j - 1])) * c1
            s = g0 * g0 + g1 * g1
            gg = max(exp_neg(s * kinv2), gmin)
            T0[j], T1[j], T2[j] = _eed_tensor(g0, g1, s, gg, ih00, ih01, ih11)
    else:
        for j in range(j0, j1):
            g0 = (np.float64(f[0, i + 1, j]) - np.float64(f[0, i - 1, j])) * c0
            g1 = (np.float64(f[0, i, j + 1]) - np.float64(f[0, i, j - 1])) * c1
            s = g0 * g0 + g1 * g1
            gg = max(1.0 / (1.0 + s * kinv2), gmin)
            T0[j], T1[j], T2[j] = _eed_tensor(g0, g1, s, gg, ih00, ih01, ih11)


@njit(cache=True, parallel=True, error_model="numpy")
def stencil2(f, mode, cond, kinv2, gmin, alpha, cstar, h0, h1, bc, S, LJ, LW, LO, nlong, reach, span, tab):
    """The Selling links of every cell of a 2-D grid, split into dense short links and listed long ones.

    ``f`` as in :func:`links2`.  Writes ``S`` (4, n0, n1): the weights of the links ``+-(1, 0)``,
    ``+-(0, 1)``, ``+-(1, 1)``, ``+-(1, -1)``; links with ``|offset|_inf >= 2`` of row ``i`` go to
    ``LJ[i, m]`` (column), ``LW[i, m]`` (weight), ``LO[i, m]`` (offset), ``m < nlong[i]`` (capacity
    ``3 n1`` per row); ``reach[i]`` the largest ``|offset_0|`` of those.  ``span[i]`` receives the
    largest ``|offset|_inf`` of a positive link in row
    ``i``.  Returns the number of cells whose reduction failed (their links are dropped).

    Per row, three loops: the index-unit tensors (vectorised for EED from the gradient in the
    interior, :func:`_eed_row`), the closed-form short links of every cell (vectorised), then a scan
    that redoes the cells that are not diagonally dominant (or not finite) by the Lagrange–Gauss
    reduction.
    """
    n0, n1 = S.shape[1], S.shape[2]
    ih0, ih1 = 1.0 / h0, 1.0 / h1
    ih00, ih01, ih11 = ih0 * ih0, ih0 * ih1, ih1 * ih1
    c0, c1 = 0.5 / h0, 0.5 / h1
    bad = np.zeros(n0, np.int64)
    nch = min(n0, 64)
    for t_ in prange(nch):
        T0 = np.empty(n1)
        T1 = np.empty(n1)
        T2 = np.empty(n1)
        for i_ in range(t_ * n0 // nch, (t_ + 1) * n0 // nch):
            i = np.int64(i_)  # a signed index: i +- 1 stays an integer
            fast = mode == EED_GRAD and 0 < i < n0 - 1 and n1 >= 3
            if fast:
                _eed_row(f, i, 1, n1 - 1, c0, c1, ih00, ih01, ih11, cond, kinv2, gmin, T0, T1, T2)
            for j in range(n1):
                if fast and 0 < j < n1 - 1:
                    continue
                D00, D01, D11 = _tensor2(mode, f, i, j, n0, n1, h0, h1, bc, cond, kinv2, gmin, alpha, cstar)
                T0[j], T1[j], T2[j] = D00 * ih00, D01 * ih01, D11 * ih11
            for j in range(n1):  # the closed form (wrong for the cells the scan below redoes)
                d00, d01, d11 = T0[j], T1[j], T2[j]
                ab = abs(d01)
                S[0, i, j] = d00 - ab
                S[1, i, j] = d11 - ab
                S[2, i, j] = max(d01, 0.0)
                S[3, i, j] = max(-d01, 0.0)
            smax = 0
            rmax = 0
            nl = 0
            for j in range(n1):
                d00, d01, d11 = T0[j], T1[j], T2[j]
                ab = abs(d01)
                if ab <= d00 and ab <= d11:  # diagonally dominant: the closed form (finite by the test)
                    if smax == 0 and (d00 > ab or d11 > ab or ab > 0.0):
                        smax = 1
                    continue
                S[0, i, j] = S[1, i, j] = S[2, i, j] = S[3, i, j] = 0.0
                if fast and 0 < j < n1 - 1 and not (math.isfinite(d00) and math.isfinite(d01)
                                                    and math.isfinite(d11)):
                    # a non-finite gradient: the scalar tensor (D = I where |grad|^2 is NaN)
                    D00, D01, D11 = _tensor2(mode, f, i, j, n0, n1, h0, h1, bc, cond, kinv2, gmin, alpha,
                                             cstar)
                    d00, d01, d11 = D00 * ih00, D01 * ih01, D11 * ih11
                    ab = abs(d01)
                    if ab <= d00 and ab <= d11:
                        S[0, i, j], S[1, i, j] = d00 - ab, d11 - ab
                        S[2, i, j], S[3, i, j] = max(d01, 0.0), max(-d01, 0.0)
                        if d00 > ab or d11 > ab or ab > 0.0:
                            smax = max(smax, 1)
                        continue
                if not (math.isfinite(d00) and math.isfinite(d01) and math.isfinite(d11)):
                    continue
                steps, w0, w1, w2, a0, b0, a1, b1, a2, b2 = _selling2_table(d00, d01, d11, tab)
                big = max(max(abs(a0), abs(b0)), max(max(abs(a1), abs(b1)), max(abs(a2), abs(b2))))
                if steps < 0 or big > _OFFSET_MAX:
                    bad[i] += 1
                    continue
                for p in range(3):
                    w = w0 if p == 0 else (w1 if p == 1 else w2)
                    a = a0 if p == 0 else (a1 if p == 1 else a2)
                    b = b0 if p == 0 else (b1 if p == 1 else b2)
                    if not w > 0.0:
                        continue
                    r = max(abs(a), abs(b))
                    smax = max(smax, r)
                    if r <= 1:
                        S[_short_dir(a, b), i, j] += w
                    else:
                        LJ[i, nl] = j
                        LW[i, nl] = w
                        LO[i, nl, 0] = a
                        LO[i, nl, 1] = b
                        nl += 1
                        rmax = max(rmax, abs(a))
            nlong[i] = nl
            reach[i] = rmax
            span[i] = smax
    return bad.sum()


@njit(cache=True, inline="always")
def _link2(S, d, i, j, di, dj, n0, n1, bc):
    """Coefficient of ``u(y) - u(x)``, ``y = (i + di, j + dj)``, for the short direction ``d``.

    Returns ``(coef, yi, yj, ghost)``: ``ghost`` for a Dirichlet ghost cell (value 0, weight
    ``S_d(x)``: the ghost carries the cell's own tensor); Neumann drops links that leave the grid.
    """
    yi, yj = i + di, j + dj
    if 0 <= yi < n0 and 0 <= yj < n1:
        return 0.5 * (np.float64(S[d, i, j]) + np.float64(S[d, yi, yj])), yi, yj, False
    if bc == NEUMANN:
        return 0.0, i, j, False
    if bc == DIRICHLET:
        return np.float64(S[d, i, j]), i, j, True
    yi, yj = yi % n0, yj % n1
    return 0.5 * (np.float64(S[d, i, j]) + np.float64(S[d, yi, yj])), yi, yj, False


@njit(cache=True, inline="always")
def _edge_cell2(u, S, i, j, n0, n1, bc, dt, out):
    """:func:`gather2` for one cell next to the boundary; returns its ``-A_xx`` (short links)."""
    C = u.shape[0]
    dg = 0.0
    for c in range(C):
        ux = np.float64(u[c, i, j])
        a = 0.0
        for q in range(8):
            d = q >> 1
            s = 1 if (q & 1) == 0 else -1
            di = s if d != 1 else 0
            dj = 0 if d == 0 else (s if d != 3 else -s)
            co, yi, yj, ghost = _link2(S, d, i, j, di, dj, n0, n1, bc)
            uy = 0.0 if ghost else np.float64(u[c, yi, yj])
            a += co * (uy - ux)
            if c == 0:
                dg += co
        out[c, i, j] = ux + dt * a
    return dg


@njit(cache=True, inline="always", error_model="numpy")
def _gather_row1(u, S, i, n1, dt, out, dg):
    """:func:`gather2` for the interior cells of row ``i`` of a one-channel grid, their ``-A_xx`` (short
    links) into ``dg[1:n1-1]``.  The same sums in the same order as the channel loop of :func:`gather2`;
    no ``max`` reduction inside the loop (it keeps LLVM from vectorising it: 5x slower, measured).
    """
    for j in range(1, n1 - 1):
        s0 = np.float64(S[0, i, j])
        s1 = np.float64(S[1, i, j])
        s2 = np.float64(S[2, i, j])
        s3 = np.float64(S[3, i, j])
        cn = 0.5 * (s0 + np.float64(S[0, i - 1, j]))
        cs = 0.5 * (s0 + np.float64(S[0, i + 1, j]))
        cw = 0.5 * (s1 + np.float64(S[1, i, j - 1]))
        ce = 0.5 * (s1 + np.float64(S[1, i, j + 1]))
        cnw = 0.5 * (s2 + np.float64(S[2, i - 1, j - 1]))
        cse = 0.5 * (s2 + np.float64(S[2, i + 1, j + 1]))
        cne = 0.5 * (s3 + np.float64(S[3, i - 1, j + 1]))
        csw = 0.5 * (s3 + np.float64(S[3, i + 1, j - 1]))
        dg[j] = ((cn + cs) + (cw + ce)) + ((cnw + cse) + (cne + csw))
        ux = np.float64(u[0, i, j])
        a = (cn * (np.float64(u[0, i - 1, j]) - ux) + cs * (np.float64(u[0, i + 1, j]) - ux)
             + cw * (np.float64(u[0, i, j - 1]) - ux) + ce * (np.float64(u[0, i, j + 1]) - ux)
             + cnw * (np.float64(u[0, i - 1, j - 1]) - ux)
             + cse * (np.float64(u[0, i + 1, j + 1]) - ux)
             + cne * (np.float64(u[0, i - 1, j + 1]) - ux) + csw * (np.float64(u[0, i + 1, j - 1]) - ux))
        out[0, i, j] = ux + dt * a


@njit(cache=True, parallel=True, error_model="numpy")
def gather2(u, S, bc, dt, out, dg, with_diag):
    """``out = u + dt A u`` for the short links ``S`` of :func:`stencil2`; with ``with_diag`` also
    ``dg = -A_xx`` of the short links per cell (``dg`` (n0, n1) float64; :func:`long2` then adds the long
    links' share, so ``dg.max()`` is the step's ``max(-A_xx)``).

    Each cell sums its own links and those its neighbours send to it, ``(S_d(x) + S_d(y)) / 2
    (u(y) - u(x))`` for ``y = x +- d``; interior cells without branches (the loop vectorises).
    ``u`` and ``out`` (C, n0, n1) must not overlap.
    """
    C, n0, n1 = u.shape
    nch = min(n0, 64)  # chunks of rows: one scratch row each (the diagonal when it is not kept)
    for t_ in prange(nch):
        scratch = np.empty(n1)
        for i_ in range(t_ * n0 // nch, (t_ + 1) * n0 // nch):
            d = dg[i_] if with_diag else scratch
            _gather_row(u, S, np.int64(i_), n0, n1, bc, dt, out, d)


@njit(cache=True, inline="always", error_model="numpy")
def _gather_row(u, S, i, n0, n1, bc, dt, out, dg):
    """:func:`gather2` for row ``i``; its ``-A_xx`` (short links) into the row ``dg``."""
    C = u.shape[0]
    if i == 0 or i == n0 - 1 or n1 < 3:
        for j in range(n1):
            dg[j] = _edge_cell2(u, S, i, j, n0, n1, bc, dt, out)
        return
    dg[0] = _edge_cell2(u, S, i, 0, n0, n1, bc, dt, out)
    dg[n1 - 1] = _edge_cell2(u, S, i, n1 - 1, n0, n1, bc, dt, out)
    if C == 1:  # grey: no channel loop inside, so the loop over the row vectorises
        _gather_row1(u, S, i, n1, dt, out, dg)
        return
    for j in range(1, n1 - 1):
        s0 = np.float64(S[0, i, j])
        s1 = np.float64(S[1, i, j])
        s2 = np.float64(S[2, i, j])
        s3 = np.float64(S[3, i, j])
        cn = 0.5 * (s0 + np.float64(S[0, i - 1, j]))
        cs = 0.5 * (s0 + np.float64(S[0, i + 1, j]))
        cw = 0.5 * (s1 + np.float64(S[1, i, j - 1]))
        ce = 0.5 * (s1 + np.float64(S[1, i, j + 1]))
        cnw = 0.5 * (s2 + np.float64(S[2, i - 1, j - 1]))
        cse = 0.5 * (s2 + np.float64(S[2, i + 1, j + 1]))
        cne = 0.5 * (s3 + np.float64(S[3, i - 1, j + 1]))
        csw = 0.5 * (s3 + np.float64(S[3, i + 1, j - 1]))
        dg[j] = ((cn + cs) + (cw + ce)) + ((cnw + cse) + (cne + csw))
        for c in range(C):
            ux = np.float64(u[c, i, j])
            a = (cn * (np.float64(u[c, i - 1, j]) - ux) + cs * (np.float64(u[c, i + 1, j]) - ux)
                 + cw * (np.float64(u[c, i, j - 1]) - ux) + ce * (np.float64(u[c, i, j + 1]) - ux)
                 + cnw * (np.float64(u[c, i - 1, j - 1]) - ux)
                 + cse * (np.float64(u[c, i + 1, j + 1]) - ux)
                 + cne * (np.float64(u[c, i - 1, j + 1]) - ux) + csw * (np.float64(u[c, i + 1, j - 1]) - ux))
            out[c, i, j] = ux + dt * a


@njit(cache=True, inline="always")
def _short_diag2(S, i, j, n0, n1, bc):
    """``-A_xx`` of the short links at cell ``(i, j)`` (as summed in :func:`gather2`)."""
    dg = 0.0
    for q in range(8):
        d = q >> 1
        s = 1 if (q & 1) == 0 else -1
        di = s if d != 1 else 0
        dj = 0 if d == 0 else (s if d != 3 else -s)
        co, yi, yj, ghost = _link2(S, d, i, j, di, dj, n0, n1, bc)
        dg += co
    return dg


@njit(cache=True, parallel=True, error_model="numpy")
def long2(u, LJ, LW, LO, nlong, R, bc, dt, out, ldiag, with_flux, with_diag, nchunks):
    """With ``with_flux`` add the long links' fluxes ``dt A_long u`` to ``out``; with ``with_diag`` add their
    ``-A_xx`` to ``ldiag``.

    In parallel over ``nchunks`` chunks of rows; fluxes into rows of other chunks go to a private
    halo of ``R`` rows per side (``R`` bounds ``|offset_0|`` of the long links), added afterwards.
    """
    C, n0, n1 = u.shape
    halo = np.zeros((nchunks, C, 2 * R if with_flux else 0, n1))
    hdiag = np.zeros((nchunks, 2 * R if with_diag else 0, n1))
    for t_ in prange(nchunks):
        t = np.int64(t_)
        r0 = t * n0 // nchunks
        r1 = (t + 1) * n0 // nchunks
        for i in range(r0, r1):
            for m in range(nlong[i]):
                j = np.int64(LJ[i, m])
                w = np.float64(LW[i, m])
                half = 0.5 * w
                oi, oj = np.int64(LO[i, m, 0]), np.int64(LO[i, m, 1])
                ia, ib, ja, jb = i - oi, i + oi, j - oj, j + oj
                if (C == 1 and r0 <= min(ia, ib) and max(ia, ib) < r1 and 0 <= min(ja, jb)
                        and max(ja, jb) < n1):
                    # a grey image, both ends inside the grid and the chunk (nearly every link): the
                    # two fluxes without the boundary and halo cases or a channel loop
                    if with_flux:
                        ux = np.float64(u[0, i, j])
                        fa = dt * half * (np.float64(u[0, ia, ja]) - ux)
                        fb = dt * half * (np.float64(u[0, ib, jb]) - ux)
                        out[0, i, j] += fa + fb
                        out[0, ia, ja] -= fa
                        out[0, ib, jb] -= fb
                    if with_diag:
                        ldiag[i, j] += w
                        ldiag[ia, ja] += half
                        ldiag[ib, jb] += half
                    continue
                for s in (-1, 1):
                    yi, yj = i + s * oi, j + s * oj
                    yiw, yjw = yi, yj
                    if not (0 <= yi < n0 and 0 <= yj < n1):
                        if bc == NEUMANN:
                            continue
                        if bc == DIRICHLET:
                            if with_flux:
                                for c in range(C):
                                    out[c, i, j] -= dt * w * np.float64(u[c, i, j])
                            if with_diag:
                                ldiag[i, j] += w
                            continue
                        yiw, yjw = yi % n0, yj % n1
                    own = r0 <= yi < r1
                    q = yi - r0 + R if yi < r0 else yi - r1 + R
                    for c in range(C if with_flux else 0):
                        fl = dt * half * (np.float64(u[c, yiw, yjw]) - np.float64(u[c, i, j]))
                        out[c, i, j] += fl
                        if own:
                            out[c, yi, yjw] -= fl
                        else:
                            halo[t, c, q, yjw] -= fl
                    if with_diag:
                        ldiag[i, j] += half
                        if own:
                            ldiag[yi, yjw] += half
                        else:
                            hdiag[t, q, yjw] += half
    for t in range(nchunks):
        r0 = t * n0 // nchunks
        r1 = (t + 1) * n0 // nchunks
        for q in range(2 * R):
            yi = r0 - R + q if q < R else r1 + q - R
            if not 0 <= yi < n0:
                if bc != PERIODIC:
                    continue
                yi = yi % n0
            for j in range(n1):
                if with_flux:
                    for c in range(C):
                        out[c, yi, j] += halo[t, c, q, j]
                if with_diag:
                    ldiag[yi, j] += hdiag[t, q, j]


@njit(cache=True, parallel=True, error_model="numpy")
def diag2(S, LJ, LW, LO, nlong, bc, out):
    """``out = -A_xx`` (n0, n1) float64 per cell for the links of :func:`stencil2` (short and long)."""
    n0, n1 = out.shape
    for i_ in prange(n0):
        i = np.int64(i_)
        for j in range(n1):
            out[i, j] = _short_diag2(S, i, j, n0, n1, bc)
    for i_ in range(n0):
        i = np.int64(i_)
        for m in range(nlong[i]):
            j = np.int64(LJ[i, m])
            half = 0.5 * np.float64(LW[i, m])
            oi, oj = np.int64(LO[i, m, 0]), np.int64(LO[i, m, 1])
            for s in (-1, 1):
                yi, yj = i + s * oi, j + s * oj
                if not (0 <= yi < n0 and 0 <= yj < n1):
                    if bc == NEUMANN:
                        continue
                    if bc == DIRICHLET:
                        out[i, j] += 2.0 * half
                        continue
                    yi, yj = yi % n0, yj % n1
                out[i, j] += half
                out[yi, yj] += half


@njit(cache=True, parallel=True, error_model="numpy")
def selling_offsets2(d, offs):
    """Selling offsets of the index-unit tensors ``d`` (3, N, H, W) into ``offs`` (N, H, W, 3, 2).

    The links (pairs (0,1), (0,2), (1,2)) of :func:`selling2_gauss`; a non-finite tensor gets zero
    offsets.  Returns the number of failed reductions.
    """
    N, H, W = d.shape[1], d.shape[2], d.shape[3]
    bad = np.zeros(N * H, np.int64)
    for r in prange(N * H):
        n, i = r // H, r % H
        for j in range(W):
            a, b, c = d[0, n, i, j], d[1, n, i, j], d[2, n, i, j]
            for p in range(3):
                offs[n, i, j, p, 0] = 0
                offs[n, i, j, p, 1] = 0
            if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
                continue
            steps, w0, w1, w2, a0, b0, a1, b1, a2, b2 = selling2_gauss(a, b, c)
            if steps < 0:
                bad[r] += 1
                continue
            offs[n, i, j, 0, 0], offs[n, i, j, 0, 1] = a0, b0
            offs[n, i, j, 1, 0], offs[n, i, j, 1, 1] = a1, b1
            offs[n, i, j, 2, 0], offs[n, i, j, 2, 1] = a2, b2
    return bad.sum()


@njit(cache=True, parallel=True, error_model="numpy")
def selling_bases3(d, bases):
    """Selling superbases of the index-unit 3-D tensors ``d`` (6, N, D, H, W) into ``bases`` (N, D, H, W, 4, 3).

    The superbase :func:`selling3` ends with (its links: pairs ``(i, j)`` in the order (0,1), (0,2), (0,3),
    (1,2), (1,3), (2,3), offset ``b_k x b_l`` of the two others); a non-finite tensor gets a zero superbase.
    Returns the number of failed reductions plus the number of offsets beyond the int16 range that
    :func:`links3` refuses, so that a caller refuses exactly what :func:`links3` refuses.
    """
    N, D, H, W = d.shape[1], d.shape[2], d.shape[3], d.shape[4]
    bad = np.zeros(N * D, np.int64)
    for r in prange(N * D):
        n, k = r // D, r % D
        dd = np.empty(6)
        w = np.empty(6)
        o = np.empty((6, 3), np.int64)
        b = np.empty((4, 3), np.int64)
        for i in range(H):
            for j in range(W):
                ok = True
                for q in range(6):
                    dd[q] = d[q, n, k, i, j]
                    if not math.isfinite(dd[q]):
                        ok = False
                if ok and selling3(dd, w, o, b) < 0:
                    bad[r] += 1
                    ok = False
                for p in range(6):
                    if ok and max(abs(o[p, 0]), max(abs(o[p, 1]), abs(o[p, 2]))) > _OFFSET_MAX:
                        bad[r] += 1
                for m in range(4):
                    for a in range(3):
                        bases[n, k, i, j, m, a] = b[m, a] if ok else 0
    return bad.sum()
