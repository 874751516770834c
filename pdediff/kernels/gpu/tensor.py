"""numba.cuda kernels of the explicit EED/CED tensor-diffusion step (the numerics of
:mod:`pdediff.kernels.cpu.tensor`).

One thread per cell, grid-stride loops over the C-ordered spatial index space
(:func:`pdediff.kernels.gpu.launch.launch_config`):

* ``structure2`` / ``structure3``: the structure-tensor components of the
  smoothed image (central differences, ghost cells per boundary), as
  :func:`pdediff.kernels.cpu.tensor.structure2` / ``structure3``;
* ``links2`` (and ``tensors3`` then ``selling3`` in 3-D): per cell the diffusion tensor (EED from the
  gradient or from the structure tensor, CED), in index units, and its
  Selling decomposition into non-negative weights ``W`` and integer offsets
  ``O`` (int16), with the same flips from the same superbase as
  :func:`pdediff.kernels.cpu.tensor.links2` / ``links3`` (so the same offsets
  in the same order); ``bad`` counts a cell's failed reductions;
* ``apply2`` / ``apply3``: ``out = u + dt A u`` as a *gather*: each cell sums
  the fluxes of its own links and of the links of cells within the per-axis
  reach ``R`` that end at it (``z + s e = x``, matched on the offset itself, so
  a periodic wrap that maps several window cells onto one is counted once per
  link), and with ``with_diag`` writes ``-A_xx`` to ``dg``.  No atomics: every
  thread writes its own cell only, so results do not depend on scheduling.
  Boundaries as :func:`pdediff.kernels.cpu.tensor.apply2`: Neumann drops links
  that leave the grid, periodic wraps them, Dirichlet sends them to a ghost of
  value 0 with the full weight.  In 2-D the gather also adds ``0 * (u(y) - u(x))``
  over the 8 neighbours, as the CPU's 2-D gather does, so that NaN/inf input
  (``check_finite=False``) spreads to the same cells.

Typing: one set of kernels per dtype (:data:`TENSOR_KERNELS`), every constant
of the data's type (closure constants), so float32 kernels compute in float32
only (``tests/test_gpu_ptx.py`` checks the PTX); the CPU kernels compute the
tensors and sums in float64, so float32 results agree to a few ulp of the
data's range (float64: to rounding).  Compiled lazily at the first launch.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ..cpu.tensor import CED, EED, EED_GRAD, EXPONENTIAL, MAX_REDUCTION_STEPS, WEICKERT
from ..formulas import DIRICHLET, NEUMANN, PERIODIC

__all__ = ["TENSOR_KERNELS", "OFFSET_MAX"]

#: Offsets are stored as int16 (as on the CPU).
OFFSET_MAX = 32767
_ = (EED, CED)  # the modes other than EED_GRAD are told apart by ``mode == EED``


def _make_tensor_kernels(dtype):  # noqa: C901 - one closure per dtype, the kernels and their device functions
    """The tensor kernels for one dtype, every constant of that type (see the module docstring)."""
    t = np.dtype(dtype).type
    ZERO, ONE, HALF, THREE, FOUR, SIX = t(0.0), t(1.0), t(0.5), t(3.0), t(4.0), t(6.0)
    WEICKERT_C, EXP_CAP, INF = t(3.31488), t(700.0), t(np.inf)
    PROJ_TOL, THIRD = t(1e-5), t(1.0 / 3.0)
    PI_3, TWO_PI_3 = t(math.pi / 3.0), t(2.0 * math.pi / 3.0)
    device = cuda.jit(device=True, inline=True)

    @device
    def conductance(x, code):
        if code == WEICKERT:
            x2 = x * x
            z = WEICKERT_C / (x2 * x2)
            if not z < EXP_CAP:
                return ONE
            return ONE - math.exp(-z)
        if code == EXPONENTIAL:
            return math.exp(-x) if x < EXP_CAP else ZERO
        return ONE / (ONE + x)

    @device
    def eigen_sym2(a, b, c):
        d = a - c
        r = math.sqrt(d * d + FOUR * b * b)
        s = a + c
        mu1 = HALF * (s + r)
        mu2 = HALF * (s - r)
        if r > ZERO:
            return mu1, mu2, HALF * (ONE + d / r), b / r, HALF * (ONE - d / r)
        return mu1, mu2, HALF, ZERO, HALF

    @device
    def eigen_sym3(a00, a01, a02, a11, a12, a22):
        """:func:`pdediff.kernels.cpu.tensor.eigen_sym3` (float64 kernels; float32 ones use
        :func:`eigen_jacobi3`, and libdevice's ``cosf`` would bring a float64 slow path into their PTX)."""
        p1 = a01 * a01 + a02 * a02 + a12 * a12
        q = (a00 + a11 + a22) / THREE
        b00, b11, b22 = a00 - q, a11 - q, a22 - q
        p2 = b00 * b00 + b11 * b11 + b22 * b22 + (p1 + p1)
        if p1 == ZERO or p2 == ZERO:
            x, y, z = a00, a11, a22
            if x < y:
                x, y = y, x
            if y < z:
                y, z = z, y
            if x < y:
                x, y = y, x
            return x, y, z
        p = math.sqrt(p2 / SIX)
        ip = ONE / p
        c00, c11, c22 = b00 * ip, b11 * ip, b22 * ip
        c01, c02, c12 = a01 * ip, a02 * ip, a12 * ip
        det = c00 * (c11 * c22 - c12 * c12) - c01 * (c01 * c22 - c12 * c02) + c02 * (c01 * c12 - c11 * c02)
        r = HALF * det
        if r <= -ONE:
            phi = PI_3
        elif r >= ONE:
            phi = ZERO
        else:
            phi = math.acos(r) / THREE
        mu1 = q + (p + p) * math.cos(phi)
        mu3 = q + (p + p) * math.cos(phi + TWO_PI_3)
        mu2 = THREE * q - mu1 - mu3
        return mu1, mu2, mu3

    JACOBI_BIG = t(1e15)

    @device
    def rotate(app, aqq, apq, arp, arq):
        """One Jacobi rotation zeroing ``a_pq`` of a symmetric 3x3 matrix: new ``(a_pp, a_qq, a_rp, a_rq)``."""
        if apq == ZERO:
            return app, aqq, arp, arq
        diff = aqq - app
        if abs(diff) > JACOBI_BIG * abs(apq):  # theta^2 would overflow: t = 1 / (2 theta)
            tt = apq / diff
        else:
            theta = diff / (apq + apq)
            at = abs(theta)
            tt = ONE / (at + math.sqrt(theta * theta + ONE))
            if theta < ZERO:
                tt = -tt
        c = ONE / math.sqrt(tt * tt + ONE)
        sn = tt * c
        return app - tt * apq, aqq + tt * apq, c * arp - sn * arq, sn * arp + c * arq

    @device
    def eigen_jacobi3(a00, a01, a02, a11, a12, a22):
        """Eigenvalues ``mu1 >= mu2 >= mu3`` by cyclic Jacobi rotations (float32 kernels): backward stable, so
        a double eigenvalue stays double to rounding, where the trigonometric method of :func:`eigen_sym3`
        loses half the digits (``acos`` near ``+-1``: ~3e-4 of the spread in float32, which then decides the
        double-eigenvalue test of :func:`projector3` otherwise than the CPU's float64)."""
        for _ in range(8):
            if a01 == ZERO and a02 == ZERO and a12 == ZERO:
                break
            a00, a11, a02, a12 = rotate(a00, a11, a01, a02, a12)
            a01 = ZERO
            a00, a22, a01, a12 = rotate(a00, a22, a02, a01, a12)
            a02 = ZERO
            a11, a22, a01, a02 = rotate(a11, a22, a12, a01, a02)
            a12 = ZERO
        x, y, z = a00, a11, a22
        if x < y:
            x, y = y, x
        if y < z:
            y, z = z, y
        if x < y:
            x, y = y, x
        return x, y, z

    eigen3 = eigen_jacobi3 if np.dtype(dtype) == np.float32 else eigen_sym3

    @device
    def projector3(a00, a01, a02, a11, a12, a22, mu, scale):
        m00, m11, m22 = a00 - mu, a11 - mu, a22 - mu
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
        tol = PROJ_TOL * scale * scale
        if n > tol * tol and n > ZERO:
            inv = ONE / n
            return x * x * inv, x * y * inv, x * z * inv, y * y * inv, y * z * inv, z * z * inv
        r0 = m00 * m00 + a01 * a01 + a02 * a02
        r1 = a01 * a01 + m11 * m11 + a12 * a12
        r2 = a02 * a02 + a12 * a12 + m22 * m22
        x, y, z, n = m00, a01, a02, r0
        if r1 > n:
            x, y, z, n = a01, m11, a12, r1
        if r2 > n:
            x, y, z, n = a02, a12, m22, r2
        ts = PROJ_TOL * scale
        if n > ts * ts and n > ZERO:
            inv = ONE / n
            return (HALF * (ONE - x * x * inv), -HALF * x * y * inv, -HALF * x * z * inv,
                    HALF * (ONE - y * y * inv), -HALF * y * z * inv, HALF * (ONE - z * z * inv))
        return THIRD, ZERO, ZERO, THIRD, ZERO, THIRD

    @device
    def q2(d00, d01, d11, x0, x1, y0, y1):
        return x0 * (d00 * y0 + d01 * y1) + x1 * (d01 * y0 + d11 * y1)

    @device
    def selling2(d00, d01, d11):
        """:func:`pdediff.kernels.cpu.tensor.selling2`: ``(steps, w0, w1, w2, o0x, o0y, o1x, o1y, o2x, o2y)``."""
        x0, y0, x1, y1, x2, y2 = ONE, ZERO, ZERO, ONE, -ONE, -ONE
        steps = 0
        while True:
            q01 = q2(d00, d01, d11, x0, y0, x1, y1)
            q02 = q2(d00, d01, d11, x0, y0, x2, y2)
            q12 = q2(d00, d01, d11, x1, y1, x2, y2)
            if q01 > ZERO:
                x2, y2 = x0 - x1, y0 - y1
                x0, y0 = -x0, -y0
            elif q02 > ZERO:
                x1, y1 = x0 - x2, y0 - y2
                x0, y0 = -x0, -y0
            elif q12 > ZERO:
                x0, y0 = x1 - x2, y1 - y2
                x1, y1 = -x1, -y1
            else:
                break
            steps += 1
            if steps >= MAX_REDUCTION_STEPS:
                steps = -1
                break
        return (steps, -q01, -q02, -q12, -int(y2), int(x2), -int(y1), int(x1), -int(y0), int(x0))

    @device
    def q3(d, b, i, j):
        return (b[i, 0] * (d[0] * b[j, 0] + d[1] * b[j, 1] + d[2] * b[j, 2])
                + b[i, 1] * (d[1] * b[j, 0] + d[3] * b[j, 1] + d[4] * b[j, 2])
                + b[i, 2] * (d[2] * b[j, 0] + d[4] * b[j, 1] + d[5] * b[j, 2]))

    @device
    def selling3(d, w, o, b):
        """:func:`pdediff.kernels.cpu.tensor.selling3` (the superbase ``b`` in the data's type: small integers)."""
        for i in range(4):
            for a in range(3):
                b[i, a] = ZERO
        b[0, 0] = ONE
        b[1, 1] = ONE
        b[2, 2] = ONE
        b[3, 0] = -ONE
        b[3, 1] = -ONE
        b[3, 2] = -ONE
        steps = 0
        while True:
            flipped = False
            for i in range(4):
                for j in range(i + 1, 4):
                    if q3(d, b, i, j) > ZERO:
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
                l = -1  # noqa: E741
                for m in range(4):
                    if m != i and m != j:
                        if k < 0:
                            k = m
                        else:
                            l = m  # noqa: E741
                w[p] = -q3(d, b, i, j)
                o[p, 0] = int(b[k, 1] * b[l, 2] - b[k, 2] * b[l, 1])
                o[p, 1] = int(b[k, 2] * b[l, 0] - b[k, 0] * b[l, 2])
                o[p, 2] = int(b[k, 0] * b[l, 1] - b[k, 1] * b[l, 0])
                p += 1
        return steps

    @device
    def at2(v, c, i, j, n0, n1, bc):
        if 0 <= i < n0 and 0 <= j < n1:
            return v[c, i, j]
        if bc == PERIODIC:
            return v[c, i % n0, j % n1]
        if bc == NEUMANN:
            return v[c, min(max(i, 0), n0 - 1), min(max(j, 0), n1 - 1)]
        return ZERO

    @device
    def at3(v, c, k, i, j, n0, n1, n2, bc):
        if 0 <= k < n0 and 0 <= i < n1 and 0 <= j < n2:
            return v[c, k, i, j]
        if bc == PERIODIC:
            return v[c, k % n0, i % n1, j % n2]
        if bc == NEUMANN:
            return v[c, min(max(k, 0), n0 - 1), min(max(i, 0), n1 - 1), min(max(j, 0), n2 - 1)]
        return ZERO

    @device
    def tensor2(mode, f, i, j, n0, n1, h0, h1, bc, cond, kinv2, gmin, alpha, cstar):
        if mode == EED_GRAD:
            g0 = (at2(f, 0, i + 1, j, n0, n1, bc) - at2(f, 0, i - 1, j, n0, n1, bc)) * (HALF / h0)
            g1 = (at2(f, 0, i, j + 1, n0, n1, bc) - at2(f, 0, i, j - 1, n0, n1, bc)) * (HALF / h1)
            s = g0 * g0 + g1 * g1
            if not s > ZERO:
                return ONE, ZERO, ONE
            gg = max(conductance(s * kinv2, cond), gmin)
            tt = (gg - ONE) / s
            return ONE + tt * g0 * g0, tt * g0 * g1, ONE + tt * g1 * g1
        a, b, c = f[0, i, j], f[1, i, j], f[2, i, j]
        mu1, mu2, p00, p01, p11 = eigen_sym2(a, b, c)
        if mode == EED:
            tt = max(conductance(mu1 * kinv2, cond), gmin) - ONE
            return ONE + tt * p00, tt * p01, ONE + tt * p11
        r = mu1 - mu2
        z = cstar / (r * r) if r > ZERO else INF
        lam = alpha + (ONE - alpha) * math.exp(-z) if z < EXP_CAP else alpha
        tt = lam - alpha
        return alpha + tt * (ONE - p00), -tt * p01, alpha + tt * (ONE - p11)

    @device
    def tensor3(mode, f, k, i, j, n0, n1, n2, h0, h1, h2, bc, cond, kinv2, gmin, alpha, cstar, D):
        if mode == EED_GRAD:
            g0 = (at3(f, 0, k + 1, i, j, n0, n1, n2, bc) - at3(f, 0, k - 1, i, j, n0, n1, n2, bc)) * (HALF / h0)
            g1 = (at3(f, 0, k, i + 1, j, n0, n1, n2, bc) - at3(f, 0, k, i - 1, j, n0, n1, n2, bc)) * (HALF / h1)
            g2 = (at3(f, 0, k, i, j + 1, n0, n1, n2, bc) - at3(f, 0, k, i, j - 1, n0, n1, n2, bc)) * (HALF / h2)
            s = g0 * g0 + g1 * g1 + g2 * g2
            tt = ZERO
            if s > ZERO:
                tt = (max(conductance(s * kinv2, cond), gmin) - ONE) / s
            D[0], D[1], D[2] = ONE + tt * g0 * g0, tt * g0 * g1, tt * g0 * g2
            D[3], D[4], D[5] = ONE + tt * g1 * g1, tt * g1 * g2, ONE + tt * g2 * g2
            return
        a00, a01, a02 = f[0, k, i, j], f[1, k, i, j], f[2, k, i, j]
        a11, a12, a22 = f[3, k, i, j], f[4, k, i, j], f[5, k, i, j]
        mu1, mu2, mu3 = eigen3(a00, a01, a02, a11, a12, a22)
        spread = mu1 - mu3
        if mode == EED:
            tt = max(conductance(mu1 * kinv2, cond), gmin) - ONE
            base = ONE
            mu = mu1
        else:
            z = cstar / (spread * spread) if spread > ZERO else INF
            lam = alpha + (ONE - alpha) * math.exp(-z) if z < EXP_CAP else alpha
            tt = lam - alpha
            base = alpha
            mu = mu3
        # one projector call for both modes (two inlined copies cost ptxas registers)
        p0, p1, p2, p3, p4, p5 = projector3(a00, a01, a02, a11, a12, a22, mu, spread)
        D[0], D[1], D[2] = base + tt * p0, tt * p1, tt * p2
        D[3], D[4], D[5] = base + tt * p3, tt * p4, base + tt * p5

    def structure2(v, h0, h1, bc, J):
        """``J`` (3, n0, n1): ``sum_c`` of the products of the central differences of ``v`` (C, n0, n1)."""
        C, n0, n1 = v.shape
        f0, f1 = HALF / h0, HALF / h1
        x0, y0, _ = cuda.grid(3)
        sx, sy, _ = cuda.gridsize(3)
        for i in range(y0, n0, sy):
            for j in range(x0, n1, sx):
                s00 = ZERO
                s01 = ZERO
                s11 = ZERO
                for c in range(C):
                    g0 = (at2(v, c, i + 1, j, n0, n1, bc) - at2(v, c, i - 1, j, n0, n1, bc)) * f0
                    g1 = (at2(v, c, i, j + 1, n0, n1, bc) - at2(v, c, i, j - 1, n0, n1, bc)) * f1
                    s00 += g0 * g0
                    s01 += g0 * g1
                    s11 += g1 * g1
                J[0, i, j] = s00
                J[1, i, j] = s01
                J[2, i, j] = s11

    def structure3(v, h0, h1, h2, bc, J):
        """``J`` (6, n0, n1, n2): components ``(00, 01, 02, 11, 12, 22)`` for ``v`` (C, n0, n1, n2)."""
        C, n0, n1, n2 = v.shape
        f0, f1, f2 = HALF / h0, HALF / h1, HALF / h2
        x0, y0, z0 = cuda.grid(3)
        sx, sy, sz = cuda.gridsize(3)
        for k in range(z0, n0, sz):
            for i in range(y0, n1, sy):
                for j in range(x0, n2, sx):
                    s00 = ZERO
                    s01 = ZERO
                    s02 = ZERO
                    s11 = ZERO
                    s12 = ZERO
                    s22 = ZERO
                    for c in range(C):
                        g0 = (at3(v, c, k + 1, i, j, n0, n1, n2, bc) - at3(v, c, k - 1, i, j, n0, n1, n2, bc)) * f0
                        g1 = (at3(v, c, k, i + 1, j, n0, n1, n2, bc) - at3(v, c, k, i - 1, j, n0, n1, n2, bc)) * f1
                        g2 = (at3(v, c, k, i, j + 1, n0, n1, n2, bc) - at3(v, c, k, i, j - 1, n0, n1, n2, bc)) * f2
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

    def links2(f, mode, cond, kinv2, gmin, alpha, cstar, h0, h1, bc, W, O, bad):
        """Selling links ``W`` (n0, n1, 3), ``O`` (n0, n1, 3, 2) int16 and ``bad`` (n0, n1) int32 per cell."""
        n0, n1 = W.shape[0], W.shape[1]
        ih0, ih1 = ONE / h0, ONE / h1
        x0, y0, _ = cuda.grid(3)
        sx, sy, _ = cuda.gridsize(3)
        for i in range(y0, n0, sy):
            for j in range(x0, n1, sx):
                D00, D01, D11 = tensor2(mode, f, i, j, n0, n1, h0, h1, bc, cond, kinv2, gmin, alpha, cstar)
                d00, d01, d11 = D00 * ih0 * ih0, D01 * ih0 * ih1, D11 * ih1 * ih1
                bad[i, j] = 0
                if not (math.isfinite(d00) and math.isfinite(d01) and math.isfinite(d11)):
                    for p in range(3):
                        W[i, j, p] = ZERO
                        O[i, j, p, 0] = 0
                        O[i, j, p, 1] = 0
                    continue
                steps, w0, w1, w2, a0, b0, a1, b1, a2, b2 = selling2(d00, d01, d11)
                big = max(max(abs(a0), abs(b0)), max(max(abs(a1), abs(b1)), max(abs(a2), abs(b2))))
                if steps < 0 or big > OFFSET_MAX:
                    bad[i, j] = 1
                    w0 = ZERO
                    w1 = ZERO
                    w2 = ZERO
                    a0 = b0 = a1 = b1 = a2 = b2 = 0
                W[i, j, 0] = max(w0, ZERO)
                W[i, j, 1] = max(w1, ZERO)
                W[i, j, 2] = max(w2, ZERO)
                O[i, j, 0, 0] = a0
                O[i, j, 0, 1] = b0
                O[i, j, 1, 0] = a1
                O[i, j, 1, 1] = b1
                O[i, j, 2, 0] = a2
                O[i, j, 2, 1] = b2

    def tensors3(f, mode, cond, kinv2, gmin, alpha, cstar, h0, h1, h2, bc, W):
        """The index-unit diffusion tensors ``(d00, d01, d02, d11, d12, d22)`` of every cell into ``W``
        (n0, n1, n2, 6), which :func:`selling3_cells` then decomposes in place (two kernels: one would need
        more than 128 registers per thread in float64)."""
        n0, n1, n2 = W.shape[0], W.shape[1], W.shape[2]
        ih0, ih1, ih2 = ONE / h0, ONE / h1, ONE / h2
        D = cuda.local.array(6, dtype)
        x0, y0, z0 = cuda.grid(3)
        sx, sy, sz = cuda.gridsize(3)
        for k in range(z0, n0, sz):
            for i in range(y0, n1, sy):
                for j in range(x0, n2, sx):
                    tensor3(mode, f, k, i, j, n0, n1, n2, h0, h1, h2, bc, cond, kinv2, gmin, alpha, cstar, D)
                    W[k, i, j, 0] = D[0] * ih0 * ih0
                    W[k, i, j, 1] = D[1] * ih0 * ih1
                    W[k, i, j, 2] = D[2] * ih0 * ih2
                    W[k, i, j, 3] = D[3] * ih1 * ih1
                    W[k, i, j, 4] = D[4] * ih1 * ih2
                    W[k, i, j, 5] = D[5] * ih2 * ih2

    def selling3_cells(W, O, bad):
        """Selling links of the tensors :func:`tensors3` left in ``W``: weights into ``W`` (n0, n1, n2, 6),
        int16 offsets ``O`` (n0, n1, n2, 6, 3), failures ``bad`` (n0, n1, n2) int32, as
        :func:`pdediff.kernels.cpu.tensor.links3`."""
        n0, n1, n2 = W.shape[0], W.shape[1], W.shape[2]
        d = cuda.local.array(6, dtype)
        w = cuda.local.array(6, dtype)
        o = cuda.local.array((6, 3), np.int32)
        b = cuda.local.array((4, 3), dtype)
        x0, y0, z0 = cuda.grid(3)
        sx, sy, sz = cuda.gridsize(3)
        for k in range(z0, n0, sz):
            for i in range(y0, n1, sy):
                for j in range(x0, n2, sx):
                    ok = True
                    for q in range(6):
                        d[q] = W[k, i, j, q]
                        if not math.isfinite(d[q]):
                            ok = False
                    nb = 0
                    if ok:
                        ok = selling3(d, w, o, b) >= 0
                        if not ok:
                            nb += 1
                    for p in range(6):
                        if ok and max(abs(o[p, 0]), max(abs(o[p, 1]), abs(o[p, 2]))) <= OFFSET_MAX:
                            W[k, i, j, p] = max(w[p], ZERO)
                            for a in range(3):
                                O[k, i, j, p, a] = o[p, a]
                        else:
                            if ok:
                                nb += 1
                            W[k, i, j, p] = ZERO
                            for a in range(3):
                                O[k, i, j, p, a] = 0
                    bad[k, i, j] = nb

    def apply2(u, W, O, R0, R1, bc, dt, out, dg, with_diag):
        """``out = u + dt A u`` (C, n0, n1) gathered per cell; with ``with_diag`` ``dg = -A_xx`` (n0, n1).

        ``R0``, ``R1``: the largest ``|offset_a|`` of a link of positive weight."""
        C, n0, n1 = u.shape
        K = W.shape[2]
        x0, y0, _ = cuda.grid(3)
        sx, sy, _ = cuda.gridsize(3)
        for i in range(y0, n0, sy):
            for j in range(x0, n1, sx):
                for c in range(C):
                    ux = u[c, i, j]
                    a = ZERO
                    dd = ZERO
                    for p in range(K):  # the cell's own links, both ends
                        w = W[i, j, p]
                        if not w > ZERO:
                            continue
                        hw = HALF * w
                        oi, oj = O[i, j, p, 0], O[i, j, p, 1]
                        for sg in range(2):
                            s = 2 * sg - 1
                            yi, yj = i + s * oi, j + s * oj
                            if not (0 <= yi < n0 and 0 <= yj < n1):
                                if bc == NEUMANN:
                                    continue
                                if bc == DIRICHLET:
                                    a -= w * ux
                                    dd += w
                                    continue
                                yi, yj = yi % n0, yj % n1
                            a += hw * (u[c, yi, yj] - ux)
                            dd += hw
                    for di in range(-R0, R0 + 1):  # links of the cells around that end here
                        zi = i + di
                        if not 0 <= zi < n0:
                            if bc != PERIODIC:
                                continue
                            zi = zi % n0
                        for dj in range(-R1, R1 + 1):
                            zj = j + dj
                            if not 0 <= zj < n1:
                                if bc != PERIODIC:
                                    continue
                                zj = zj % n1
                            for p in range(K):
                                w = W[zi, zj, p]
                                if not w > ZERO:
                                    continue
                                oi, oj = O[zi, zj, p, 0], O[zi, zj, p, 1]
                                if (oi == di and oj == dj) or (oi == -di and oj == -dj):
                                    hw = HALF * w
                                    a += hw * (u[c, zi, zj] - ux)
                                    dd += hw
                    for q in range(8):  # the CPU's 2-D gather: 0 * (u(y) - u(x)) over the 8 neighbours
                        di = 1 if q < 3 else (0 if q < 5 else -1)  # (NaN/inf input spreads as there)
                        dj = (q % 3) - 1 if q < 3 else ((q - 3) * 2 - 1 if q < 5 else (q - 5) - 1)
                        yi, yj = i + di, j + dj
                        if not (0 <= yi < n0 and 0 <= yj < n1):
                            if bc != PERIODIC:
                                continue
                            yi, yj = yi % n0, yj % n1
                        a += ZERO * (u[c, yi, yj] - ux)
                    out[c, i, j] = ux + dt * a
                    if with_diag and c == 0:
                        dg[i, j] = dd

    def apply3(u, W, O, R0, R1, R2, bc, dt, out, dg, with_diag):
        """:func:`apply2` on (C, n0, n1, n2) arrays: ``O`` (n0, n1, n2, 6, 3), reach ``R0, R1, R2``."""
        C, n0, n1, n2 = u.shape
        K = W.shape[3]
        x0, y0, z0 = cuda.grid(3)
        sx, sy, sz = cuda.gridsize(3)
        for k in range(z0, n0, sz):
            for i in range(y0, n1, sy):
                for j in range(x0, n2, sx):
                    for c in range(C):
                        ux = u[c, k, i, j]
                        a = ZERO
                        dd = ZERO
                        for p in range(K):
                            w = W[k, i, j, p]
                            if not w > ZERO:
                                continue
                            hw = HALF * w
                            ok, oi, oj = O[k, i, j, p, 0], O[k, i, j, p, 1], O[k, i, j, p, 2]
                            for sg in range(2):
                                s = 2 * sg - 1
                                yk, yi, yj = k + s * ok, i + s * oi, j + s * oj
                                if not (0 <= yk < n0 and 0 <= yi < n1 and 0 <= yj < n2):
                                    if bc == NEUMANN:
                                        continue
                                    if bc == DIRICHLET:
                                        a -= w * ux
                                        dd += w
                                        continue
                                    yk, yi, yj = yk % n0, yi % n1, yj % n2
                                a += hw * (u[c, yk, yi, yj] - ux)
                                dd += hw
                        for dk in range(-R0, R0 + 1):
                            zk = k + dk
                            if not 0 <= zk < n0:
                                if bc != PERIODIC:
                                    continue
                                zk = zk % n0
                            for di in range(-R1, R1 + 1):
                                zi = i + di
                                if not 0 <= zi < n1:
                                    if bc != PERIODIC:
                                        continue
                                    zi = zi % n1
                                for dj in range(-R2, R2 + 1):
                                    zj = j + dj
                                    if not 0 <= zj < n2:
                                        if bc != PERIODIC:
                                            continue
                                        zj = zj % n2
                                    for p in range(K):
                                        w = W[zk, zi, zj, p]
                                        if not w > ZERO:
                                            continue
                                        ok, oi, oj = O[zk, zi, zj, p, 0], O[zk, zi, zj, p, 1], O[zk, zi, zj, p, 2]
                                        if ((ok == dk and oi == di and oj == dj)
                                                or (ok == -dk and oi == -di and oj == -dj)):
                                            hw = HALF * w
                                            a += hw * (u[c, zk, zi, zj] - ux)
                                            dd += hw
                        out[c, k, i, j] = ux + dt * a
                        if with_diag and c == 0:
                            dg[k, i, j] = dd

    fns = {"tensor_structure2": structure2, "tensor_structure3": structure3, "tensor_links2": links2,
           "tensor_tensors3": tensors3, "tensor_selling3": selling3_cells, "tensor_apply2": apply2,
           "tensor_apply3": apply3}
    return {name: cuda.jit(fn) for name, fn in fns.items()}


#: ``{dtype: {name: kernel}}`` for float32 and float64 (``tests/test_gpu_ptx.py`` compiles each to PTX).
TENSOR_KERNELS = {np.dtype(t): _make_tensor_kernels(t) for t in (np.float32, np.float64)}
