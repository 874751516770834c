"""``solve_heat`` on Dask arrays: explicit (halo exchange every k steps), implicit ADI and spectral (one
axis at a time, that axis in one chunk)."""

from __future__ import annotations

import numpy as np

from .._backend import backend_for
from .._operators import TridiagonalSystem, as_lines, constant_faces, face_diffusivities
from .._plan import HeatPlan, prepare_heat
from ..heat.explicit import ExplicitHeatSolver
from ..heat.implicit import ImplicitHeatSolver
from ..heat.spectral import SpectralHeatSolver
from ._core import (
    block_copy,
    prepare_input,
    overlap_apply,
    require_dask,
    restore_chunks,
    steps_per_exchange,
    whole_along,
)

__all__ = ["run_heat", "solve_heat_dask"]


def run_heat(u, plan: HeatPlan, steps_per_exchange_: int | None = None):
    """Carry out a :class:`~pdediff._plan.HeatPlan` on a prepared Dask ``u``: a lazy Dask array.

    ``steps_per_exchange_``: explicit steps between halo exchanges (automatic when ``None``; for tests).
    """
    da = require_dask()
    chunks = u.chunks
    solver = plan.solver
    if plan.method == "spectral":
        outs = [u.copy() if tk == 0.0 else restore_chunks(_spectral(u, tk, solver), chunks) for tk in plan.times]
        return da.stack(outs) if plan.sequence else outs[0]
    D = None
    if solver.variable:
        D = da.from_array(np.asarray(solver.diffusivity, dtype=plan.dtype), chunks=chunks)
    outs = []
    for n, dt_k in plan.steps:
        if n:
            if plan.method == "explicit":
                u = _explicit(u, D, n, dt_k, solver, steps_per_exchange_)
            else:
                u = _implicit(u, D, n, dt_k, solver, chunks)
        outs.append(restore_chunks(u, chunks))
    return da.stack(outs) if plan.sequence else outs[0]


def solve_heat_dask(u0, t, *, method, diffusivity, spacing, boundary, dt, scheme, spectrum, check_finite,
                    max_steps, steps_per_exchange_: int | None = None):
    """:func:`pdediff.solve_heat` for a Dask ``u0``, with the explicit method's steps per halo exchange
    settable (``steps_per_exchange_``); checks and plans exactly as the front door does."""
    u, plan = prepare_heat(prepare_input, u0, t, method=method, diffusivity=diffusivity, spacing=spacing,
                           boundary=boundary, dt=dt, scheme=scheme, spectrum=spectrum, check_finite=check_finite,
                           max_steps=max_steps)
    return run_heat(u, plan, steps_per_exchange_)


# ----------------------------------------------------------------------------- explicit
def _explicit_block(u, D=None, *, k, dt, diffusivity, spacing, bc, fresh=False):
    """``k`` explicit steps of a chunk with its halo (wrong cells at halo edges never reach the chunk).

    ``fresh``: the chunk was just assembled with its halo (a private array): stepped in place, no copy.
    """
    if not (fresh and getattr(u, "base", 0) is None and u.flags.c_contiguous and u.flags.writeable):
        u = block_copy(u)
    solver = ExplicitHeatSolver(u.shape, u.dtype, diffusivity=diffusivity if D is None else np.asarray(D),
                                spacing=spacing, boundary=bc)
    solver.check_dt(dt)
    a, b = u, backend_for(u).xp.empty_like(u)
    for _ in range(k):  # ping-pong, returning whichever buffer holds the result (no copy back)
        solver.apply_operator(a, b, dt)
        a, b = b, a
    return a


def _explicit(u, D, n: int, dt: float, solver, k: int | None):
    g = solver.grid
    k = k or steps_per_exchange(u.chunks, range(u.ndim), 1, n)
    done = 0
    while done < n:
        kk = min(k, n - done)
        arrays = [u] if D is None else [u, D.rechunk(u.chunks)]
        u = overlap_apply(_explicit_block, arrays, {ax: kk for ax in range(u.ndim)}, g.boundary == "periodic",
                          u.dtype, k=kk, dt=dt, diffusivity=solver.diffusivity if D is None else None,
                          spacing=g.spacing, bc=g.boundary, fresh=True)
        done += kk
    return u


# ----------------------------------------------------------------------------- implicit (ADI)
def _operator_block(u, D=None, *, dt, diffusivity, spacing, bc):
    """``dt L u`` of a chunk with a one-cell halo."""
    u = block_copy(u)
    solver = ExplicitHeatSolver(u.shape, u.dtype, diffusivity=diffusivity if D is None else np.asarray(D),
                                spacing=spacing, boundary=bc)
    out = backend_for(u).xp.empty_like(u)
    return solver.apply_operator(u, out, dt, beta=0.0)


def _solve_block(w, D=None, *, axis, r, diffusivity, bc):
    """``(I - r L_axis)^{-1} w`` for a chunk holding ``axis`` whole (the lines are independent)."""
    be = backend_for(w)
    w = block_copy(w)
    if D is None:
        F = constant_faces(w.shape[axis], diffusivity, bc).reshape(1, -1, 1)
    else:
        F = as_lines(face_diffusivities(np.asarray(D, dtype=np.float64), axis, bc), axis)
    system = TridiagonalSystem.build(F, r, bc, w.dtype, be)
    x = be.xp.empty_like(w)
    be.tri_solve(as_lines(w, axis), as_lines(x, axis), as_lines(w, axis), system, 1.0, False)
    return x


def _implicit(u, D, n: int, dt: float, solver: ImplicitHeatSolver, chunks):
    """Douglas ADI as in :class:`~pdediff.ImplicitHeatSolver`: ``w = dt L u``, one solve per axis, ``u += w``."""
    g = solver.grid
    common = {"diffusivity": solver.diffusivity if D is None else None, "bc": g.boundary}
    for _ in range(n):
        arrays = [u] if D is None else [u, D.rechunk(u.chunks)]
        w = overlap_apply(_operator_block, arrays, {ax: 1 for ax in range(u.ndim)}, g.boundary == "periodic",
                          u.dtype, dt=dt, spacing=g.spacing, **common)
        for a in range(g.ndim):
            w = whole_along(w, a, chunks)
            arrays = [w] if D is None else [w, D.rechunk(w.chunks)]
            w = arrays[0].map_blocks(_solve_block, *arrays[1:], dtype=u.dtype, meta=u._meta, axis=a,
                                     r=solver.theta * dt / g.spacing[a] ** 2, **common)
        u = u.rechunk(w.chunks) + w
    return u


# ----------------------------------------------------------------------------- spectral
def _spectral_axis_block(u, *, axis, t, diffusivity, symbol, boundary, ndim):
    """The exact heat flow along one axis (held whole) of a chunk: transform, decay, inverse transform.

    The ``ndim`` separable factors of :class:`~pdediff.SpectralHeatSolver` commute, so applying one per
    axis, each between its own 1-D transform pair, is the same operator.
    """
    be = backend_for(u)
    xp, f, kw = be.xp, be.fft, be.fft_kwargs
    real = np.float32 if u.dtype == np.float32 else np.float64
    symbol = np.asarray(symbol, dtype=np.float64)
    if boundary == "periodic":  # a full FFT symbol on all but the last axis: rfft keeps k = 0..n/2
        symbol = symbol[: u.shape[axis] // 2 + 1]
    fac = np.exp(-diffusivity * t * symbol)
    tiny = float(np.finfo(real).tiny) ** (1.0 / ndim)  # the same flush as the in-memory solver
    fac = np.where(fac < tiny, 0.0, fac).astype(real)
    shape = [1] * u.ndim
    shape[axis] = -1
    fac = xp.asarray(fac.reshape(shape))
    n = u.shape[axis]
    if boundary == "neumann":
        c = f.dct(u, type=2, axis=axis, norm="ortho", **kw)
        c *= fac
        out = f.idct(c, type=2, axis=axis, norm="ortho", overwrite_x=True, **kw)
    elif boundary == "dirichlet":
        c = f.dst(u, type=2, axis=axis, norm="ortho", **kw)
        c *= fac
        out = f.idst(c, type=2, axis=axis, norm="ortho", overwrite_x=True, **kw)
    else:
        c = f.rfft(u, axis=axis, **kw)
        c *= fac
        out = f.irfft(c, n=n, axis=axis, overwrite_x=True, **kw)
    return out.astype(u.dtype, copy=False)


def _spectral(u, t: float, solver: SpectralHeatSolver, *, lead: int = 0):
    """Heat flow for time ``t`` of the last ``solver.grid.ndim`` axes of ``u`` (``lead`` batch axes first)."""
    g = solver.grid
    chunks = u.chunks
    for a in range(g.ndim):
        ax = lead + a
        u = whole_along(u, ax, chunks, fixed=tuple(range(lead)))
        u = u.map_blocks(_spectral_axis_block, dtype=u.dtype, meta=u._meta, axis=ax, t=t,
                         diffusivity=solver.diffusivity, symbol=solver.symbols[a], boundary=g.boundary, ndim=g.ndim)
    return u
