"""``solve_heat`` on Dask arrays: explicit (halo exchange every k steps), implicit ADI and spectral (one
axis at a time, that axis in one chunk).

Each form is the in-memory solver's (:class:`~pdediff.ImplicitHeatSolver.form`): the Douglas form for
``|dt L| <= COMBINED_ABOVE``, above it the combined form (1-D, constant diffusivity) or the split form
(variable diffusivity in 2-D/3-D), so float32 is accurate at every ``dt`` here too.  Values near the
dtype's maximum are scaled by an exact power of two (:func:`~pdediff._overflow.overflow_scale`): per chunk
for the explicit and spectral methods (each chunk's work is self-contained), by one global factor for the
implicit method (its intermediates cross chunks; ``max|u|`` is computed when the method is called).
"""

from __future__ import annotations

import numpy as np

from .._backend import backend_for
from .._operators import TridiagonalSystem, as_lines, constant_faces, face_diffusivities
from .._overflow import check_unscaled, overflow_scale
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
    # as ExplicitHeatSolver.step: values near the dtype's maximum run on an exactly scaled copy (per chunk)
    scale = overflow_scale(u, 8.0)
    if scale != 1.0:
        u *= u.dtype.type(scale)
    a, b = u, backend_for(u).xp.empty_like(u)
    for _ in range(k):  # ping-pong, returning whichever buffer holds the result (no copy back)
        solver.apply_operator(a, b, dt)
        a, b = b, a
    if scale != 1.0:
        a *= a.dtype.type(1.0 / scale)
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


def _system(shape, axis: int, r: float, diffusivity, D, bc: str, dtype, be) -> TridiagonalSystem:
    """The factorised lines of ``I - r L_axis`` for a chunk holding ``axis`` whole."""
    if D is None:
        F = constant_faces(shape[axis], diffusivity, bc).reshape(1, -1, 1)
    else:
        F = as_lines(face_diffusivities(np.asarray(D, dtype=np.float64), axis, bc), axis)
    return TridiagonalSystem.build(F, r, bc, dtype, be)


def _solve_block(w, D=None, *, axis, r, diffusivity, bc):
    """``(I - r L_axis)^{-1} w`` for a chunk holding ``axis`` whole (the lines are independent)."""
    be = backend_for(w)
    w = block_copy(w)
    system = _system(w.shape, axis, r, diffusivity, D, bc, w.dtype, be)
    x = be.xp.empty_like(w)
    be.tri_solve(as_lines(w, axis), as_lines(x, axis), as_lines(w, axis), system, 1.0, False)
    return x


def _split_block(u, D=None, *, axis, r, theta, diffusivity, bc):
    """One 1-D theta step along ``axis`` (held whole): ``(1 - 1/theta) u + (1/theta) S u`` (the split form,
    and the whole combined form in 1-D), rounded as :meth:`pdediff.ImplicitHeatSolver._axis_step` rounds it."""
    be = backend_for(u)
    u = block_copy(u)
    system = _system(u.shape, axis, r, diffusivity, D, bc, u.dtype, be)
    x = be.xp.empty_like(u)
    be.tri_solve(as_lines(u, axis), as_lines(x, axis), as_lines(u, axis), system)
    if theta == 1.0:
        return x
    x *= u.dtype.type(1.0 / theta)
    u *= u.dtype.type(1.0 - 1.0 / theta)
    u += x
    return u


def _combined_block(z, *, axis, r, diffusivity, bc, first):
    """A sweep of the combined form (constant diffusivity, 2-D/3-D) along ``axis`` (held whole).

    ``first``: ``z`` is ``u``; returns the stack ``[X, W]`` with ``X = S u`` and ``W = 2 X - u``.
    Otherwise ``z`` is ``[X, W]`` (``W = E + X``); returns ``[S X, E' + S X]`` with ``E' = S W - X``
    (the recurrence of :meth:`pdediff.ImplicitHeatSolver._combined_step`).
    """
    be = backend_for(z)
    xp = be.xp
    shape = z.shape if first else z.shape[1:]
    system = _system(shape, axis, r, diffusivity, None, bc, z.dtype, be)
    out = xp.empty((2,) + tuple(shape), dtype=z.dtype)
    if first:
        u = block_copy(z)
        X = out[0]
        be.tri_solve(as_lines(u, axis), as_lines(X, axis), as_lines(u, axis), system)
        W = out[1]
        W[...] = X
        W += X
        W -= u
        return out
    X, W = block_copy(z[0]), block_copy(z[1])
    E = out[1]
    be.tri_solve(as_lines(W, axis), as_lines(E, axis), as_lines(W, axis), system)  # E = S W
    E -= X
    be.tri_solve(as_lines(X, axis), as_lines(out[0], axis), as_lines(X, axis), system)  # X = S X
    E += out[0]  # W = E + X
    return out


def _implicit(u, D, n: int, dt: float, solver: ImplicitHeatSolver, chunks):
    """``n`` steps as :meth:`pdediff.ImplicitHeatSolver.step` takes them, in the same form, chunk by chunk."""
    require_dask()
    import dask
    from dask.array.utils import meta_from_array

    g = solver.grid
    scale_dt = dt
    dt, form, _, _ = solver.form(dt)
    periodic = g.boundary == "periodic"
    common = {"diffusivity": solver.diffusivity if D is None else None, "bc": g.boundary}
    rs = [solver.theta * dt / h**2 for h in g.spacing]
    # one power of two for the whole array (the intermediates cross chunks: ImplicitHeatSolver.value_scale, down
    # near the dtype's maximum, up for tiny values at huge dt), from max|u| computed now (as
    # kappa="auto" is): a lazy one would make every chunk of the graph wait, in memory, for the reduction
    hi, lo = dask.compute(u.max(), u.min())
    scale = solver.value_scale(max(float(hi), -float(lo)), scale_dt)
    if scale != 1.0:
        u = u * u.dtype.type(scale)
    for _ in range(n):
        if form == "douglas":  # w = dt L u, one solve per axis, u += w
            arrays = [u] if D is None else [u, D.rechunk(u.chunks)]
            w = overlap_apply(_operator_block, arrays, {ax: 1 for ax in range(u.ndim)}, periodic,
                              u.dtype, dt=dt, spacing=g.spacing, **common)
            for a in range(g.ndim):
                w = whole_along(w, a, chunks)
                arrays = [w] if D is None else [w, D.rechunk(w.chunks)]
                w = arrays[0].map_blocks(_solve_block, *arrays[1:], dtype=u.dtype, meta=u._meta, axis=a,
                                         r=rs[a], **common)
            u = u.rechunk(w.chunks) + w
        elif form == "split" or g.ndim == 1:  # one 1-D step per axis, the last axis first
            for a in range(g.ndim - 1, -1, -1):
                u = whole_along(u, a, chunks)
                arrays = [u] if D is None else [u, D.rechunk(u.chunks)]
                u = arrays[0].map_blocks(_split_block, *arrays[1:], dtype=u.dtype, meta=u._meta, axis=a, r=rs[a],
                                         theta=solver.theta, **common)
        else:  # combined, constant diffusivity: X, W = E + X carried as a stack [X, W] (a leading axis of 2)
            last = g.ndim - 1
            ua = whole_along(u, last, chunks)
            meta2 = meta_from_array(u._meta, ndim=u.ndim + 1)
            z = ua.map_blocks(_combined_block, dtype=u.dtype, meta=meta2, new_axis=0,
                              chunks=((2,),) + ua.chunks, axis=last, r=rs[last], first=True, **common)
            stack_chunks = ((2,),) + tuple(chunks)
            for a in range(last - 1, 0, -1):
                z = whole_along(z, a + 1, stack_chunks, fixed=(0,))
                z = z.map_blocks(_combined_block, dtype=u.dtype, meta=meta2, axis=a, r=rs[a], first=False,
                                 **common)
            # u + (S_0 W - X) / theta, rounded as in memory: u - X / theta, then + S_0 W / theta
            z = whole_along(z, 1, stack_chunks, fixed=(0,))
            t = z[1].map_blocks(_solve_block, dtype=u.dtype, meta=u._meta, axis=0, r=rs[0], **common)
            inv = u.dtype.type(1.0 / solver.theta)
            x = z[0] if solver.theta == 1.0 else z[0] * inv
            u = (u.rechunk(t.chunks) - x) + (t if solver.theta == 1.0 else t * inv)
    if scale == 1.0:
        return u
    return u.map_blocks(_unscale_block, dtype=u.dtype, meta=u._meta, scale=scale)


def _unscale_block(block, *, scale: float):
    """A chunk of the scaled result divided by ``scale``; OverflowError where that leaves the dtype's range."""
    check_unscaled(block, scale, "implicit (ADI) heat step's")
    return block * block.dtype.type(1.0 / scale)


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
    # as SpectralHeatSolver: values whose transform could overflow run on an exactly scaled copy (per chunk;
    # orthonormal coefficients reach sqrt(n) max|u| along the axis, the butterflies' partial sums a few times that)
    scale = overflow_scale(u, 4.0 * np.sqrt(float(n)))
    if scale != 1.0:
        u = u * u.dtype.type(scale)
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
    out = out.astype(u.dtype, copy=False)
    if scale != 1.0:
        out *= out.dtype.type(1.0 / scale)
    return out


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
