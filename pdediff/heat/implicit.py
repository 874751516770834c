"""Implicit heat solver: Crank–Nicolson or backward Euler, ADI (Douglas) in 2-D/3-D."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._backend import backend_for
from .._validation import check_option, positive_step
from ._base import _HeatSolverBase
from ._operators import TridiagonalSystem, as_lines, constant_faces, face_diffusivities
from .explicit import ExplicitHeatSolver

__all__ = ["ImplicitHeatSolver"]

SCHEMES = ("crank-nicolson", "backward-euler")


class ImplicitHeatSolver(_HeatSolverBase):
    """Unconditionally stable implicit stepper (Crank–Nicolson or backward Euler).

    One step of the Douglas ADI scheme with ``theta = 1/2`` (Crank–Nicolson) or
    ``theta = 1`` (backward Euler)::

        w = dt L u
        w = (I - theta dt L_a)^{-1} w      for each axis a
        u = u + w

    which is the factored scheme ``prod_a (I - theta dt L_a) (u^{n+1} - u^n) = dt L u^n``.
    In 1-D it *is* Crank–Nicolson / backward Euler, solved exactly by Thomas.
    In 2-D/3-D it differs from the unsplit scheme by the splitting term
    ``theta^2 dt^2 sum_{a<b} L_a L_b (u^{n+1} - u^n) + ...``, which is
    ``O(dt^3)`` per step, so the scheme keeps its order (2 for Crank–Nicolson,
    1 for backward Euler).  With ``theta = 1/2`` in 2-D it equals Peaceman–Rachford.

    Parameters
    ----------
    shape, dtype, diffusivity, spacing, boundary
        As for :class:`ExplicitHeatSolver`.
    dt : float, optional
        Time step (any positive value).  ``None``: four times the explicit
        stability limit, where Crank–Nicolson still damps the highest grid mode
        by a factor 0.6 per step.  Factorisations are cached per ``dt``.
    scheme : {"crank-nicolson", "backward-euler"}
        Time discretisation.

    Examples
    --------
    >>> import numpy as np
    >>> from pdediff import ImplicitHeatSolver
    >>> solver = ImplicitHeatSolver((128,), dt=0.5, boundary="dirichlet")
    >>> u = np.sin(np.pi * (np.arange(128) + 0.5) / 128)
    >>> u = solver.step(u, 4)
    """

    def __init__(self, shape, dtype=np.float64, *, diffusivity: Any = 1.0, spacing: Any = 1.0,
                 boundary: str = "neumann", dt: float | None = None,
                 scheme: str = "crank-nicolson") -> None:
        super().__init__(shape, dtype, diffusivity=diffusivity, spacing=spacing, boundary=boundary)
        self.scheme = check_option("scheme", scheme, SCHEMES)
        self.theta = 0.5 if self.scheme == "crank-nicolson" else 1.0
        self._explicit = ExplicitHeatSolver(shape, self.dtype, diffusivity=self.diffusivity,
                                            spacing=spacing, boundary=boundary)
        self.dt_explicit_max = self._explicit.dt_max
        self.dt = self.check_dt(dt) if dt is not None else 4.0 * self.dt_explicit_max
        self._systems: dict[tuple[int, float], list[TridiagonalSystem]] = {}
        self._work: Any = None

    def check_dt(self, dt: Any) -> float:
        """Validate a time step (any positive finite value: the scheme is unconditionally stable)."""
        return positive_step(dt)

    def _axis_faces(self, axis: int) -> np.ndarray:
        """Face diffusivities along ``axis`` as ``(P, n + 1, Q)``."""
        g = self.grid
        if not self.variable:
            return constant_faces(g.shape[axis], self.diffusivity, g.boundary).reshape(1, -1, 1)
        return as_lines(face_diffusivities(self.diffusivity, axis, g.boundary), axis)

    def systems(self, dt: float, backend) -> list[TridiagonalSystem]:
        """The factorised per-axis systems ``I - theta dt L_a`` (cached per dt and backend)."""
        key = (id(backend), dt)
        if key not in self._systems:
            if len(self._systems) > 8:
                self._systems.clear()
            g = self.grid
            self._systems[key] = [
                TridiagonalSystem.build(self._axis_faces(a), self.theta * dt / g.spacing[a] ** 2,
                                        g.boundary, self.dtype, backend)
                for a in range(g.ndim)
            ]
        return self._systems[key]

    def step(self, u: Any, n: int = 1, *, dt: float | None = None) -> Any:
        """Advance ``u`` **in place** by ``n`` steps of ``dt`` (default :attr:`dt`); return ``u``."""
        n, dt = self._step_args(u, n, dt)
        be = backend_for(u)
        systems = self.systems(dt, be)
        work = self._work
        if work is None or type(work[0]) is not type(u):
            # two buffers: each sweep reads one and writes the other (no aliasing: vectorises)
            work = self._work = (be.xp.empty_like(u), be.xp.empty_like(u))
        ndim = self.grid.ndim
        fused = getattr(be, "heat_adi_first", None) if ndim > 1 and not self.variable else None
        if fused is not None:
            # Constant coefficients: the axis operators commute, so the contiguous axis goes first, fused
            # with w = dt L u (one pass, see pdediff.kernels.cpu.adi); then the strided axes, the last
            # of them (axis 0) adding into u.
            coefs = tuple(dt * self.diffusivity * c for c in self._explicit._ih2)
            bcs = self._explicit._bcs
            for _ in range(n):
                w, v = work
                fused(u, w, coefs, bcs, systems[-1])
                for a in range(ndim - 2, -1, -1):
                    last = a == 0
                    be.tri_solve(as_lines(w, a), as_lines(v, a), as_lines(u if last else w, a), systems[a], 1.0,
                                 last)
                    w, v = v, w
            return u
        for _ in range(n):
            w, v = work
            self._explicit.apply_operator(u, w, dt, beta=0.0)  # w = dt L u
            for a, sys_a in enumerate(systems):
                last = a == ndim - 1
                # The last sweep adds its solution into u directly (u += w).
                # (out is unused unless accumulating: pass the read-only input, never x itself,
                # so no two arguments alias when a simulator copies them separately)
                be.tri_solve(as_lines(w, a), as_lines(v, a), as_lines(u if last else w, a), sys_a, 1.0, last)
                w, v = v, w
        return u
