"""Discrete diffusion operators on the cell-centred grid (shared layer: solvers and both executors).

* :func:`face_diffusivities`: harmonic-mean face values of a diffusivity array,
  with the boundary faces set by the boundary condition (docs/conventions.rst §3).
* :class:`TridiagonalSystem`: the factorised lines of ``I - r L_a`` along one
  axis (``L_a`` the 1-D flux-form operator), ready for batched Thomas solves;
  periodic lines carry a closure through their last cell.  Used by ADI (heat) and
  AOS (Perona–Malik), in memory and on Dask chunks.
* :func:`as_lines`, :func:`constant_faces`: the ``(pre, n, post)`` line view
  the tridiagonal kernels take, and the faces of a constant diffusivity.

NumPy only at build time (coefficients are formed on the host); the factors
live on the backend given to :meth:`TridiagonalSystem.build`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .kernels.formulas import TAU_MAX

__all__ = ["TridiagonalSystem", "as_lines", "constant_faces", "face_diffusivities"]


def face_diffusivities(D: np.ndarray, axis: int, boundary: str) -> np.ndarray:
    """Face values along ``axis``: shape ``n_axis + 1`` there, index ``i`` = lower face of cell ``i``.

    Interior faces: harmonic mean ``2 D_i D_{i+1} / (D_i + D_{i+1})``.  Boundary
    faces: 0 (Neumann, no flux), the adjacent cell's value (Dirichlet, ghost
    mirrored), the harmonic mean of the two end cells (periodic).
    """
    Dm = np.moveaxis(D, axis, 0)
    n = Dm.shape[0]
    F = np.empty((n + 1,) + Dm.shape[1:], dtype=D.dtype)
    F[1:n] = 2.0 * Dm[:-1] * Dm[1:] / (Dm[:-1] + Dm[1:])
    if boundary == "neumann":
        F[0] = 0.0
        F[n] = 0.0
    elif boundary == "dirichlet":
        F[0] = Dm[0]
        F[n] = Dm[n - 1]
    else:
        F[0] = F[n] = 2.0 * Dm[0] * Dm[n - 1] / (Dm[0] + Dm[n - 1])
    return np.ascontiguousarray(np.moveaxis(F, 0, axis))


def constant_faces(n: int, D: float, boundary: str) -> np.ndarray:
    """Face diffusivities of a constant ``D`` along an axis of ``n`` cells."""
    F = np.full(n + 1, float(D))
    if boundary == "neumann":
        F[0] = F[n] = 0.0
    return F


def as_lines(x: Any, axis: int) -> Any:
    """View a C-contiguous array as ``(pre, n, post)`` with ``n`` along ``axis``."""
    shape = x.shape
    pre = int(np.prod(shape[:axis], dtype=np.int64))
    post = int(np.prod(shape[axis + 1 :], dtype=np.int64))
    return x.reshape(pre, shape[axis], post)


@dataclass
class TridiagonalSystem:
    """Thomas factors of ``I - r L_a`` for a batch of lines, shape ``(P, n, Q)``.

    ``a``: sub-diagonal; ``cp``, ``inv``: the LU factors; for periodic lines
    ``z``, ``vn``, ``qf``: the closure through the last cell (``None`` otherwise).
    """

    a: Any
    cp: Any
    inv: Any
    z: Any = None
    vn: Any = None
    qf: Any = None

    @classmethod
    def build(cls, F: np.ndarray, r: float, boundary: str, dtype, backend) -> TridiagonalSystem:
        """Factor ``I - r L`` where ``L x_i = F_i (x_{i-1} - x_i) + F_{i+1} (x_{i+1} - x_i)``.

        ``F``: face coefficients of shape ``(P, n + 1, Q)`` (already divided by
        nothing: ``r`` carries ``theta * dt / h^2``).  The couplings ``t = r F``
        (capped at :data:`~pdediff.kernels.formulas.TAU_MAX`, which any ``dt``
        reaching it leaves unchanged to working precision) and the row sums
        ``1 + `` the boundary terms are formed in float64 on the host, then
        factorised in ``dtype`` on ``backend`` by the subtraction-free row-sum
        form of ``tri_factor``: no ``1 + t`` is ever rounded, so every ``dt``
        gives accurate factors in float32 as in float64.  Periodic lines get the
        closure data ``z``, ``vn``, ``qf`` of :mod:`pdediff.kernels.cpu.tridiag`
        (an open line plus one cell, non-negative throughout) instead of a
        Sherman–Morrison correction, which cancels catastrophically at large ``dt``.
        """
        F = np.asarray(F, dtype=np.float64)
        n = F.shape[1] - 1
        with np.errstate(over="ignore", invalid="ignore"):
            T = np.where(F > 0, np.minimum(float(r) * F, TAU_MAX), 0.0)
        lo, up = T[:, :-1, :], T[:, 1:, :]
        a = -lo
        c = -up
        s = np.ones_like(lo)  # row sums a + b + c: 1, plus what the boundary adds to the diagonal
        if boundary == "dirichlet":
            # ghost = -cell: the face flux F (-u - u) doubles the diagonal share.
            s[:, 0, :] += 2.0 * lo[:, 0, :]
            s[:, n - 1, :] += 2.0 * up[:, n - 1, :]
        cyclic = boundary == "periodic" and n > 1
        if boundary == "periodic" and n == 1:
            a[:] = 0.0
            c[:] = 0.0
        if boundary != "periodic":
            a[:, 0, :] = 0.0
            c[:, n - 1, :] = 0.0
        xp = backend.xp
        if cyclic:
            # The open line T of cells 0..n-2, closed through cell n-1 by the tridiagonal kernels (see
            # pdediff.kernels.cpu.tridiag): the couplings to cell n-1 (t_w through the wrap-around face,
            # t_{n-2} through face n-1) move into T's row sums; row n-1 keeps a_{n-1} = -t_{n-2}, with
            # inv_{n-1} = 1 so that the forward sweep leaves d_{n-1} + t_{n-2} y_{n-2} there.
            t_w = lo[:, :1, :].copy()
            t_l = up[:, n - 2 : n - 1, :].copy()
            a[:, 0, :] = 0.0
            c[:, n - 2 :, :] = 0.0
            s[:, :1, :] += t_w
            s[:, n - 2 : n - 1, :] += t_l
        a_d, s_d, c_d = (xp.asarray(np.ascontiguousarray(v), dtype=dtype) for v in (a, s, c))
        cp = xp.empty_like(s_d)
        inv = xp.empty_like(s_d)
        backend.tri_factor(a_d, s_d, c_d, cp, inv)
        out = cls(a_d, cp, inv)
        if cyclic:
            inv[:, n - 1, :] = 1.0
            cp[:, n - 1, :] = 0.0
            # v = T^{-1} 1 and z = T^{-1} (couplings to cell n-1): non-negative solves, nothing cancels
            rhs = np.zeros((2,) + s.shape)
            rhs[0, :, : n - 1, :] = 1.0
            rhs[1, :, :1, :] = t_w
            rhs[1, :, n - 2 : n - 1, :] += t_l
            sol = []
            for k in range(2):
                dk = xp.asarray(np.ascontiguousarray(rhs[k]), dtype=dtype)
                xk = xp.empty_like(dk)
                backend.tri_solve(dk, xk, dk, out)  # (out unused: the input, not aliasing xk)
                xk[:, n - 1, :] = 1.0  # z_{n-1}: unused by the CPU kernels; the GPU's adds 1 * x_{n-1} to a zero
                sol.append(xk)
            vh = np.asarray(sol[0].get() if hasattr(sol[0], "get") else sol[0], dtype=np.float64)
            qf_h = 1.0 / (1.0 + t_l * vh[:, n - 2 : n - 1, :] + t_w * vh[:, :1, :])
            out.z = sol[1]
            out.vn = xp.asarray(t_w, dtype=dtype)
            out.qf = xp.asarray(qf_h, dtype=dtype)
        return out
