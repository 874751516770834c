"""Implicit heat solver: Crank–Nicolson or backward Euler, ADI (Douglas) in 2-D/3-D."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._backend import backend_for
from .._validation import check_option, positive_step
from ..kernels.formulas import TAU_MAX
from .._overflow import check_unscaled, overflow_scale_for, underflow_scale_for
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
    For large steps in 1-D and with constant diffusivity it is evaluated in an
    equivalent form without ``dt L u`` (see :meth:`step`), accurate in float32 for any ``dt``;
    with a variable diffusivity in 2-D/3-D large steps run split into 1-D steps per axis
    (see :meth:`step`: the Douglas scheme is unstable there).
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
        Time step (any positive finite value; beyond ``theta dt D_max / h^2 = 2**100``
        the lines are fully coupled and the step acts as that).  ``None``: four times the explicit
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

    #: ``|dt L|`` (``4 dt D_max sum_a 1/h_a^2``, twice ``dt / dt_explicit_max``) above which a step runs in the
    #: combined form (see :meth:`step`): below it the Douglas form's rounding (relative to ``dt max|u| / h^2``)
    #: is the smaller, above it the combined form's (a few ulp of ``max|u|``, whatever ``dt``).
    COMBINED_ABOVE = 64.0

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

    def _run_dt(self, dt: float) -> float:
        """The time step the factorisations use: ``dt``, capped where ``theta dt D_max / h_min^2`` reaches
        :data:`~pdediff.kernels.formulas.TAU_MAX` (the lines are then fully coupled to working precision, and
        ``dt`` up to float64's maximum neither overflows ``r = theta dt / h^2`` nor the explicit operator)."""
        stiff = self.theta * self.diffusivity_max * max(1.0 / h**2 for h in self.grid.spacing)
        return min(dt, TAU_MAX / stiff) if math.isfinite(stiff) and stiff > 0 else dt

    def form(self, dt: float) -> tuple[float, str, float, float]:
        """How a step of ``dt`` runs: ``(dt used, form, growth, coupling)``.

        ``dt used``: ``dt`` capped where ``theta dt D_max / h_min^2`` reaches ``2**100`` (the lines are then
        coupled completely; nothing changes to working precision).  ``form``: ``"douglas"`` for
        ``|dt L| <= COMBINED_ABOVE`` (:meth:`_douglas_steps`), ``"combined"`` above it in 1-D and for a
        constant diffusivity (:meth:`_combined_step`, the same scheme), ``"split"`` above it for a variable
        diffusivity in 2-D/3-D (:meth:`_split_step`).  ``growth``: a bound on how far the form's
        intermediates exceed ``max|u|`` (for :func:`~pdediff._overflow.overflow_scale`).  ``coupling``: the
        largest ``theta dt D / h^2`` of the line systems (for :func:`~pdediff._overflow.underflow_scale_for`).
        """
        dt = self._run_dt(dt)
        ndim = self.grid.ndim
        stiffness = 4.0 * dt * self.diffusivity_max * sum(self._explicit._ih2)  # |dt L| <= stiffness
        coupling = self.theta * dt * self.diffusivity_max * max(self._explicit._ih2)
        if stiffness <= self.COMBINED_ABOVE:
            return dt, "douglas", 4.0 * (1.0 + stiffness), coupling
        # the combined form's sums of contractions; the split form's factors (2 S_a - I), each <= 3
        return dt, ("combined" if ndim == 1 or not self.variable else "split"), 4.0 * 3.0**ndim, coupling

    def value_scale(self, amax: float, dt: float) -> float:
        """The exact power of two a step of ``dt`` runs ``u`` scaled by, from ``amax = max|u|`` (1 almost always).

        Down near the dtype's maximum (:func:`~pdediff._overflow.overflow_scale_for`, with the form's growth),
        up where the line solves would reach subnormal numbers (tiny values at huge ``dt``:
        :func:`~pdediff._overflow.underflow_scale_for`).  The Dask executor uses the same rule.
        """
        _, _, growth, coupling = self.form(dt)
        scale = overflow_scale_for(amax, self.dtype, growth)
        return scale if scale != 1.0 else underflow_scale_for(amax, self.dtype, coupling)

    def slow_mixed_mode(self, dt: float) -> tuple[float, float]:
        """``(scheme, heat flow)``: what one step of ``dt`` leaves of the slowest mode varying along every axis.

        The mode takes each axis's smallest positive eigenvalue ``lambda_a`` of ``-L_a`` (axes of one cell
        left out; 1.0, 1.0 in 1-D or with fewer than two such axes) with the smallest diffusivity, in the
        form :meth:`form` picks; the heat flow leaves ``exp(-dt D sum_a lambda_a)`` of it.  With
        ``tau_a = dt D lambda_a``, ``s_a = 1 / (1 + theta tau_a)`` and ``q_a = tau_a s_a``, the Douglas
        (and combined) form keeps ``1 - sum_a q_a prod_{b != a} s_b``, which tends to 1 as every
        ``tau_a`` grows (backward Euler in 2-D: ``(1 + tau_x tau_y) / ((1 + tau_x)(1 + tau_y))``); the split
        form keeps ``prod_a (1 - q_a)``.
        """
        dt, form, _, _ = self.form(dt)
        D = float(np.min(self.diffusivity)) if self.variable else float(self.diffusivity)
        lams = [float(np.min(sym[sym > 0])) for n, sym in zip(self.grid.shape, self.grid.symbol("discrete"))
                if n > 1 and np.any(sym > 0)]
        if len(lams) < 2:
            return 1.0, 1.0
        taus = [dt * D * lam for lam in lams]
        s = [1.0 / (1.0 + self.theta * t) for t in taus]
        q = [1.0 / (1.0 / t + self.theta) for t in taus]  # t s, without overflow for any t
        if form == "split":
            keep = float(np.prod([1.0 - qa for qa in q]))
        else:
            keep = 1.0 - sum(q[a] * float(np.prod([s[b] for b in range(len(s)) if b != a])) for a in range(len(s)))
        return abs(keep), math.exp(-sum(taus))

    def step(self, u: Any, n: int = 1, *, dt: float | None = None) -> Any:
        """Advance ``u`` **in place** by ``n`` steps of ``dt`` (default :attr:`dt`); return ``u``.

        Accurate for every ``dt`` in float32 as in float64.  Small steps (``|dt L|``
        up to :attr:`COMBINED_ABOVE`) run in the Douglas form above, whose rounding
        is relative to the small increment ``dt L u``; larger ones, in 1-D and for
        a constant diffusivity, in the equivalent combined form of
        :meth:`_combined_step`, ``u + (1/theta) (S_0 (... (2 S_{d-1} u - u) ...) -
        ...)``, whose intermediates are all ``O(max|u|)`` (``S_a = (I - theta dt
        L_a)^{-1}``, factorised subtraction-free by ``tri_factor``) -- never ``dt L
        u``, whose rounding would swamp float32 from ``dt D / h^2 ~ 1e4`` on.  With
        a variable diffusivity in 2-D/3-D the axis operators do not commute: there
        the Douglas form is itself unstable at large steps (in 3-D its amplification
        exceeds 1 once ``D`` varies strongly) and needs ``dt L u``, so larger steps
        run split, one 1-D step per axis (:meth:`_split_step`): stable for any
        ``dt``, accurate in float32, and with backward Euler within the data's range.
        Values so large that the intermediates could overflow (``max|u|`` times the
        scheme's growth within ``2**8`` of the dtype's maximum) are scaled by a power
        of two first and back after, which is exact: any finite ``u`` runs without
        overflow, and the result is bit for bit that of the unscaled computation
        wherever that does not overflow.  Where the scheme's own overshoot (it has no
        maximum principle: 1.77x the input's maximum for 20 backward-Euler steps of
        ``dt = 10`` on random +-1 data) takes the exact result beyond the dtype's
        maximum, :class:`OverflowError` is raised (``u`` is then left scaled by a
        power of two) rather than an ``inf`` or a clipped value returned.  Values so
        small that the line solves at a huge ``dt`` would
        reach subnormal numbers are scaled up the same way (:meth:`value_scale`).
        """
        n, dt = self._step_args(u, n, dt)
        if n == 0:
            return u
        scale = self.value_scale(max(float(u.max()), -float(u.min())), dt)
        dt, form, growth, _ = self.form(dt)
        be = backend_for(u)
        systems = self.systems(dt, be)
        ndim = self.grid.ndim
        if scale != 1.0:
            u *= u.dtype.type(scale)
        # buffers: each sweep reads one and writes another (no aliasing: vectorises); the combined form needs
        # X (1-D), W and a scratch (2-D fused), X, W and a scratch (2-D), X, E, W and a scratch (3-D)
        fused2 = ndim == 2 and getattr(be, "heat_adi_combined", None) is not None
        need = {"douglas": 2, "split": 1, "combined": 1 if ndim == 1 else 2 if fused2 else ndim + 1}[form]
        work = self._work
        if work is None or (work and type(work[0]) is not type(u)):
            work = self._work = []
        while len(work) < need:
            work.append(be.xp.empty_like(u))
        if form == "combined":
            for _ in range(n):
                self._combined_step(u, systems, be, work)
        elif form == "split":
            for _ in range(n):
                self._split_step(u, systems, be, work)
        else:
            self._douglas_steps(u, n, dt, systems, be, work)
        if scale != 1.0:
            check_unscaled(u, scale, "implicit (ADI) heat step's")
            u *= u.dtype.type(1.0 / scale)
        return u

    def _axis_step(self, u: Any, X: Any, axis: int, system: TridiagonalSystem, be) -> None:
        """One 1-D theta step along ``axis`` in place: ``u = (1 - 1/theta) u + (1/theta) S_axis u`` (``X`` scratch).

        For theta = 1/2 that is ``2 S u - u`` (an exact doubling, one rounding), for theta = 1 ``S u``.
        """
        be.tri_solve(as_lines(u, axis), as_lines(X, axis), as_lines(u, axis), system)  # X = S u
        if self.theta == 1.0:
            u[...] = X
        else:
            inv_theta = 1.0 / self.theta
            X *= u.dtype.type(inv_theta)
            u *= u.dtype.type(1.0 - inv_theta)
            u += X

    def _split_step(self, u: Any, systems: list[TridiagonalSystem], be, work) -> None:
        """One step as a product of 1-D steps, ``u <- (1 - 1/theta) u + (1/theta) S_a u`` per axis (last first).

        For a variable diffusivity in 2-D/3-D at ``|dt L| >`` :attr:`COMBINED_ABOVE`: locally one-dimensional
        splitting.  Each factor is the 1-D scheme along one axis -- ``(2 S_a - I)`` (Crank–Nicolson, a symmetric
        matrix with eigenvalues in ``(-1, 1]``) or ``S_a`` (backward Euler, non-negative with row sums <= 1) --
        so the step is stable in the 2-norm for any ``dt`` and any diffusivity (backward Euler also keeps the
        data's range), where the Douglas form's amplification exceeds 1 in 3-D; every intermediate is
        ``O(max|u|)``.  Consistent (first order; for commuting operators in 2-D with Crank–Nicolson it *is*
        the Douglas/Peaceman–Rachford step).
        """
        for a in range(self.grid.ndim - 1, -1, -1):
            self._axis_step(u, work[0], a, systems[a], be)

    def _combined_step(self, u: Any, systems: list[TridiagonalSystem], be, work) -> None:
        """One step as combinations of line solves, for commuting axis operators (1-D, constant diffusivity).

        With ``S_a = (I - theta dt L_a)^{-1}`` and ``theta dt L_a = I - S_a^{-1}``, the Douglas
        increment ``S_0 ... S_{d-1} dt L u`` equals ``(1/theta) E`` where, sweeping the axes from the last
        (contiguous) one, ``X <- S_a X`` (from ``X = u``) and ``E <- S_a (E + X) - X`` (from ``E = 0``);
        in 1-D, ``u + E / theta = (1 - 1/theta) u + S u / theta``.  Unlike ``dt L u`` (of size
        ``dt max|u| / h^2``, whose rounding error no solve removes from the mean) every term is
        ``O(max|u|)``, so float32 keeps its precision at any ``dt``.  Same scheme, same number of line
        solves as the Douglas form in 1-D and 2-D (one more per step in 3-D).
        """
        ndim = self.grid.ndim
        inv_theta = 1.0 / self.theta
        last = ndim - 1
        fused = getattr(be, "heat_adi_combined", None) if ndim > 1 else None
        if fused is not None and ndim == 2:
            # one pass: X = S_1 u, W = 2 X - u and u -= X / theta (X itself is not stored: x = W, unwritten)
            W, Y = work[0], work[1]
            fused(u, W, W, systems[last], inv_theta, True)
            be.tri_solve(as_lines(W, 0), as_lines(Y, 0), as_lines(u, 0), systems[0], inv_theta, True)
            return
        X = work[0]
        E, W, Y = (work[1], work[2], work[3]) if ndim == 3 else (None, *work[1:3]) if ndim == 2 else (None,) * 3
        if fused is not None:  # 3-D: one pass for X = S_2 u and W = 2 X - u
            fused(u, W, X, systems[last], inv_theta, False)
            self._middle_axes_and_last(u, systems, be, X, E, W, Y)
            return
        if ndim == 1:
            self._axis_step(u, X, 0, systems[0], be)
            return
        be.tri_solve(as_lines(u, last), as_lines(X, last), as_lines(u, last), systems[last])  # X = S u
        W[...] = X  # W = E + X with E = X - u: 2 X - u
        W += X
        W -= u
        self._middle_axes_and_last(u, systems, be, X, E, W, Y)

    def _middle_axes_and_last(self, u: Any, systems: list[TridiagonalSystem], be, X, E, W, Y) -> None:
        """The sweeps after the first of :meth:`_combined_step` (given ``X`` and ``W = E + X``)."""
        ndim = self.grid.ndim
        inv_theta = 1.0 / self.theta
        for a in range(ndim - 2, 0, -1):
            be.tri_solve(as_lines(W, a), as_lines(E, a), as_lines(u, a), systems[a])  # E = S_a (E + X)
            E -= X
            be.tri_solve(as_lines(X, a), as_lines(Y, a), as_lines(u, a), systems[a])  # X = S_a X
            X, Y = Y, X
            W[...] = E
            W += X
        # u + (S_0 W - X) / theta: subtract X / theta, then the last solve adds S_0 W / theta into u
        if self.theta != 1.0:
            X *= u.dtype.type(inv_theta)
        u -= X
        be.tri_solve(as_lines(W, 0), as_lines(Y, 0), as_lines(u, 0), systems[0], inv_theta, True)

    def _douglas_steps(self, u: Any, n: int, dt: float, systems: list[TridiagonalSystem], be, work) -> None:
        """``n`` Douglas steps ``w = dt L u``, ``w = S_a w`` per axis, ``u += w`` (``|dt L| <=``
        :attr:`COMBINED_ABOVE`).

        The rounding error of ``dt L u`` is relative to ``dt max|u| / h^2``: below
        :attr:`COMBINED_ABOVE` that is smaller than the combined form's few ulp of ``max|u|``.
        """
        ndim = self.grid.ndim
        fused = getattr(be, "heat_adi_first", None) if ndim > 1 and not self.variable else None
        if fused is not None:
            # Constant coefficients: the axis operators commute, so the contiguous axis goes first, fused
            # with w = dt L u (one pass, see pdediff.kernels.cpu.adi); then the strided axes, the last
            # of them (axis 0) adding into u.
            coefs = tuple(dt * self.diffusivity * c for c in self._explicit._ih2)
            bcs = self._explicit._bcs
            for _ in range(n):
                w, v = work[0], work[1]
                fused(u, w, coefs, bcs, systems[-1])
                for a in range(ndim - 2, -1, -1):
                    last = a == 0
                    be.tri_solve(as_lines(w, a), as_lines(v, a), as_lines(u if last else w, a), systems[a], 1.0,
                                 last)
                    w, v = v, w
            return
        for _ in range(n):
            w, v = work[0], work[1]
            self._explicit.apply_operator(u, w, dt, beta=0.0)  # w = dt L u
            for a, sys_a in enumerate(systems):
                last = a == ndim - 1
                # The last sweep adds its solution into u directly (u += w).
                # (out is unused unless accumulating: pass the read-only input, never x itself,
                # so no two arguments alias when a simulator copies them separately)
                be.tri_solve(as_lines(w, a), as_lines(v, a), as_lines(u if last else w, a), sys_a, 1.0, last)
                w, v = v, w
