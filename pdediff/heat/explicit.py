"""Explicit (forward Euler, FTCS) heat solver."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._backend import backend_for
from .._validation import positive_step
from ..errors import StabilityError
from .._overflow import overflow_limit
from ._base import _HeatSolverBase, overflow_scale
from ._operators import face_diffusivities

__all__ = ["ExplicitHeatSolver"]


class ExplicitHeatSolver(_HeatSolverBase):
    """Forward-Euler stepper for ``u_t = div(D grad u)``, built once per grid.

    Parameters
    ----------
    shape : tuple of int
        Grid shape (1–3 axes).
    dtype : {numpy.float32, numpy.float64}
        The dtype of the arrays it advances.
    diffusivity : float or ndarray
        Positive constant, or one value per cell (face values are harmonic means).
    spacing : float or sequence of float
        Cell width per axis (physical units).
    boundary : {"neumann", "dirichlet", "periodic"}
        Boundary condition (docs/conventions.rst §2).
    dt : float, optional
        Default time step; ``None`` takes the stability limit :attr:`dt_max`.

    Notes
    -----
    Stable for ``dt <= dt_max = 1 / (2 D_max sum_a 1/h_a^2)``.  For Neumann and
    periodic boundaries every step at or below the limit is a convex combination
    of neighbours, so the discrete maximum principle holds; with Dirichlet
    boundaries the edge cells need ``dt <= 2/3 dt_max`` (the ghost ``-u`` adds
    ``1/h^2`` to their diagonal; ``1/2 dt_max`` on an axis of a single cell) for
    the same guarantee, with the boundary value 0 included in the bounds.

    Examples
    --------
    >>> import numpy as np
    >>> from pdediff import ExplicitHeatSolver
    >>> solver = ExplicitHeatSolver((64, 64), np.float32)
    >>> u = np.zeros((64, 64), np.float32); u[32, 32] = 1.0
    >>> u = solver.step(u, 10)          # advances in place by 10 * dt_max
    >>> float(u.sum())                  # Neumann conserves mass
    1.0
    """

    def __init__(self, shape, dtype=np.float64, *, diffusivity: Any = 1.0, spacing: Any = 1.0,
                 boundary: str = "neumann", dt: float | None = None) -> None:
        super().__init__(shape, dtype, diffusivity=diffusivity, spacing=spacing, boundary=boundary)
        g = self.grid
        self.dt_max = g.explicit_dt_limit(self.diffusivity_max)
        self.dt = self.check_dt(dt) if dt is not None else self.dt_max
        self._ih2 = tuple(1.0 / h**2 for h in g.spacing)
        self._bcs = (g.bc_code,) * g.ndim
        if self.variable:
            D = self.diffusivity
            self._faces = tuple(face_diffusivities(D, a, g.boundary).astype(self.dtype) for a in range(g.ndim))
        else:
            self._faces = None
        self._faces_on: dict[int, tuple] = {}  # face diffusivities per backend (device copies made once)
        self._buf: np.ndarray | None = None

    def check_dt(self, dt: float) -> float:
        """Validate a time step against the stability limit; return it as float."""
        dt = positive_step(dt)
        # A relative slack of 1e-12 lets t / ceil(t / dt_max) through despite rounding.
        if dt > self.dt_max * (1 + 1e-12):
            raise StabilityError(
                f"{{dt={dt:.6g}}} exceeds the explicit stability limit dt_max = 1/(2 D_max sum 1/h^2) "
                f"= {self.dt_max:.6g} for this grid and diffusivity; use {{dt}} <= {self.dt_max:.6g}, "
                "{dt=None}, or {method='implicit'}/'spectral'",
                param="dt",
            )
        return dt

    def apply_operator(self, u: Any, out: Any, dt: float, beta: float = 1.0) -> Any:
        """``out = beta * u + dt * L u`` (``L`` the discrete ``div(D grad .)``) in one kernel pass."""
        be = backend_for(u)
        # dt / h^2 formed in float64 and handed over as one coefficient per axis: O(1) at the stability
        # limit, so float32 kernels never see 1/h^2 itself (which overflows float32 for h < 1e-19).
        scale = dt if self.variable else dt * self.diffusivity
        coefs = tuple(scale * c for c in self._ih2)
        faces = None
        if self._faces is not None:
            faces = self._faces_on.get(id(be))
            if faces is None:
                faces = self._faces_on[id(be)] = tuple(be.asarray(f) for f in self._faces)
        be.heat_step(u, out, 1.0, coefs, self._bcs, beta, faces)
        return out

    def step(self, u: Any, n: int = 1, *, dt: float | None = None) -> Any:
        """Advance ``u`` **in place** by ``n`` steps of ``dt`` (default :attr:`dt`); return ``u``.

        With constant diffusivity on a backend that offers ``heat_steps`` (the CPU), ``n > 1`` steps run
        temporally blocked where that pays on the machine (the field and its scratch array larger than
        the threads' share of the last-level cache, read at run time) -- several steps per pass over
        memory, bit for bit the same result as ``n`` single steps (:mod:`pdediff.kernels.cpu.blocked`);
        ``n = 1``, and the odd step of an odd count run unblocked, is written into ``u`` in one pass
        (``heat_step_inplace``, :mod:`pdediff.kernels.cpu.inplace`), bit for bit the step into a copy.
        Any finite ``u`` runs without overflow: values near the dtype's maximum are scaled by a power of
        two and back (exact; where no scaling is needed the computation is the unscaled one, bit for bit).
        With ``n >= 2`` the check that decides it is made by the first step itself, taken out of place
        (:meth:`~pdediff.kernels.cpu.backend.CPUBackend.heat_step_amax`): no pass of its own.
        """
        n, dt = self._step_args(u, n, dt)
        if n == 0:
            return u
        if n >= 2 and self._faces is None and self._advance_checked(u, n, dt):
            return u
        # Within the stability limit a step is a convex combination of neighbours (plus, with Dirichlet
        # boundaries, a bounded overshoot) formed from differences of at most 2 max|u|: values within a
        # factor of 2**11 of the dtype's maximum are scaled by an exact power of two and back.
        scale = overflow_scale(u, 8.0)
        if scale != 1.0:
            u *= u.dtype.type(scale)
            self._advance(u, n, dt)
            u *= u.dtype.type(1.0 / scale)
            return u
        return self._advance(u, n, dt)

    def _advance_checked(self, u: Any, n: int, dt: float) -> bool:
        """Several constant-coefficient steps whose first scans ``u`` for the overflow check (no pass of its
        own) where the backend offers it; ``False`` -- ``u`` untouched -- where it does not or scaling is needed."""
        be = backend_for(u)
        if getattr(be, "heat_steps", None) is None:
            return False
        buf = self._buffer(u, be)
        coefs = tuple(dt * self.diffusivity * c for c in self._ih2)
        a = be.heat_steps(u, buf, n, 1.0, coefs, self._bcs, amax_limit=overflow_limit(u.dtype, 8.0))
        if a is None:
            return False
        if a is not u:
            u[...] = a
        return True

    def _buffer(self, u: Any, be) -> Any:
        buf = self._buf
        if buf is None or type(buf) is not type(u) or buf.shape != u.shape or buf.dtype != u.dtype:
            buf = self._buf = be.xp.empty_like(u)
        return buf

    def _advance(self, u: Any, n: int, dt: float) -> Any:
        be = backend_for(u)
        buf = self._buffer(u, be)
        coefs = tuple(dt * self.diffusivity * c for c in self._ih2) if self._faces is None else None
        # A single step in place where the backend can (a rolling line buffer: one memory pass, no copy of
        # the result back into u), bit for bit the step into buf; the backend's heat_steps does the same for
        # the odd step of an odd count it does not block.
        inplace = getattr(be, "heat_step_inplace", None) if self._faces is None and n == 1 else None
        if inplace is not None:
            inplace(u, 1.0, coefs, self._bcs)
            return u
        # Several steps per memory pass (temporal blocking) where the backend offers it: the same
        # operations in the same order, so the result equals n single steps bit for bit.
        multi = getattr(be, "heat_steps", None) if self._faces is None and n > 1 else None
        if multi is not None:
            a = multi(u, buf, n, 1.0, coefs, self._bcs)
        else:
            a, b = u, buf
            for _ in range(n):
                self.apply_operator(a, b, dt)
                a, b = b, a
        if a is not u:
            u[...] = a
        return u
