"""Discrete diffusion operators on the cell-centred grid (shared layer: solvers and both executors).

* :func:`face_diffusivities`: harmonic-mean face values of a diffusivity array,
  with the boundary faces set by the boundary condition (docs/conventions.rst §3).
* :class:`TridiagonalSystem`: the factorised lines of ``I - r L_a`` along one
  axis (``L_a`` the 1-D flux-form operator), ready for batched Thomas solves;
  periodic lines carry a Sherman–Morrison correction.  Used by ADI (heat) and
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
    ``z``, ``vn``, ``qf``: Sherman–Morrison data (``None`` otherwise).
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
        nothing: ``r`` carries ``theta * dt / h^2``).  Coefficients are formed
        in float64 on the host, then factorised in ``dtype`` on ``backend``.
        """
        F = np.asarray(F, dtype=np.float64)
        n = F.shape[1] - 1
        lo, up = F[:, :-1, :], F[:, 1:, :]
        a = -r * lo
        c = -r * up
        b = 1.0 + r * (lo + up)
        if boundary == "dirichlet":
            # ghost = -cell: the face flux F (-u - u) doubles the diagonal share.
            b[:, 0, :] += r * lo[:, 0, :]
            b[:, n - 1, :] += r * up[:, n - 1, :]
        cyclic = boundary == "periodic" and n > 1
        if boundary == "periodic" and n == 1:
            a[:] = 0.0
            c[:] = 0.0
            b[:] = 1.0
        if boundary != "periodic":
            a[:, 0, :] = 0.0
            c[:, n - 1, :] = 0.0
        xp = backend.xp
        if cyclic:
            # Sherman–Morrison: A = A' + u v^T with u = (g, 0.., c_{n-1}), v = (1, 0.., a_0/g).
            g = -b[:, :1, :].copy()
            a0 = a[:, :1, :].copy()
            cn = c[:, n - 1 : n, :].copy()
            b[:, :1, :] -= g
            b[:, n - 1 : n, :] -= a0 * cn / g
            a[:, 0, :] = 0.0
            c[:, n - 1, :] = 0.0
            vn_h = a0 / g
        a_d, b_d, c_d = (xp.asarray(np.ascontiguousarray(v), dtype=dtype) for v in (a, b, c))
        cp = xp.empty_like(b_d)
        inv = xp.empty_like(b_d)
        backend.tri_factor(a_d, b_d, c_d, cp, inv)
        out = cls(a_d, cp, inv)
        if cyclic:
            u = np.zeros_like(b)
            u[:, :1, :] = g
            u[:, n - 1 : n, :] = cn
            ud = xp.asarray(u, dtype=dtype)
            zd = xp.empty_like(ud)
            backend.tri_solve(ud, zd, ud, out)  # z = A'^{-1} u (out unused: the input, not aliasing z)
            zh = np.asarray(zd.get() if hasattr(zd, "get") else zd, dtype=np.float64)
            qf_h = 1.0 / (1.0 + zh[:, :1, :] + vn_h * zh[:, n - 1 : n, :])
            out.z = zd
            out.vn = xp.asarray(vn_h, dtype=dtype)
            out.qf = xp.asarray(qf_h, dtype=dtype)
        return out
