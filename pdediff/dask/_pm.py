"""``perona_malik`` on Dask arrays: explicit steps with a halo exchange every k steps, AOS one axis at a
time, the automatic kappa as one global exact median/MAD.

Every chunk is processed as the in-memory function processes the whole image: scaled by a power of two
so that its values lie below 1 (chosen per chunk: the scaling is exact, so the result is the same as
with the in-memory function's global factor, and overflow is excluded just the same).
"""

from __future__ import annotations

import math

import numpy as np

from .._backend import backend_for
from .._plan import (
    PeronaMalikPlan,
    callable_conductance,
    intensity_scale,
    inverse_square,
    kappa_from_spread,
    prepare_perona_malik,
    scale_for,
)
from .._steppers import SPECTRAL_SMOOTHING_MIN_PIXELS, aos_term, make_smoother, make_stepper
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
from ._heat import _spectral

__all__ = ["run_perona_malik", "perona_malik_dask", "estimate_kappa_dask"]

#: scipy.ndimage.gaussian_filter's default truncation: the Catté convolution reaches int(4 sigma + 0.5) cells.
_TRUNCATE = 4.0


def run_perona_malik(image, plan: PeronaMalikPlan, steps_per_exchange_: int | None = None):
    """Carry out a :class:`~pdediff._plan.PeronaMalikPlan` on a prepared Dask ``image``.

    Returns ``(lazy result with image's chunks, kappa used)``; ``kappa="auto"`` is computed now.
    ``steps_per_exchange_``: explicit steps between halo exchanges (automatic when ``None``; for tests).
    """
    da = require_dask()
    ch = plan.channel_axis
    chunks = image.chunks
    u = image[None] if ch is None else da.moveaxis(image, ch, 0)
    u = u.rechunk({0: -1})  # channels share one conductance: all of them in every chunk
    h, c, hs, sigma, n = plan.spacing, plan.length_scale, plan.scaled_spacing, plan.sigma, plan.num_iter
    ndim = len(h)
    smoothing = _Smoothing(sigma, h, c, u.dtype)
    if plan.kappa is None:
        # as in memory: measured on the image scaled by the global power of two a (max |a u| in [0.5, 1)) with
        # the dimensionless lengths, then brought back; exact, and safe near the type's limits (3e38 float32)
        a = _global_intensity_scale(u)
        kappa_s = estimate_kappa_dask(u * u.dtype.type(a), hs, plan.kappa_conductance,
                                      _Smoothing(sigma * c, hs, 1.0, u.dtype))
        kappa_ = kappa_s * c / a
    else:
        kappa_ = plan.kappa
    common = {"hs": hs, "c": c, "dts": plan.scaled_dt, "kappa": kappa_, "code": plan.code,
              "g_fn": plan.conductance_fn}
    if n > 0 and plan.method == "explicit" and not smoothing.spectral:
        # k steps per exchange: each step reads 1 + R cells around a cell (R the Catté radius)
        radius = [1 + r for r in smoothing.radius]
        k = steps_per_exchange_ or steps_per_exchange(u.chunks, range(1, u.ndim), max(radius), n)
        done = 0
        while done < n:
            kk = min(k, n - done)
            depth = {0: 0, **{ax + 1: kk * radius[ax] for ax in range(ndim)}}
            u = overlap_apply(_explicit_block, [u], depth, False, u.dtype, k=kk, sigma_s=sigma * c, **common)
            done += kk
    elif n > 0 and plan.method == "explicit":  # wide Catté smoothing: spectral, one step per exchange
        for _ in range(n):
            v = smoothing.apply(u)
            u = overlap_apply(_explicit_block, [u, v.rechunk(u.chunks)], {ax: 1 for ax in range(1, u.ndim)}, False,
                              u.dtype, k=1, sigma_s=None, **common)
    elif n > 0:
        for _ in range(n):
            v = smoothing.apply(u)
            out = None
            for a in range(ndim):
                ua = whole_along(u, a + 1, u.chunks, fixed=(0,))
                part = ua.map_blocks(_aos_axis_block, v.rechunk(ua.chunks), dtype=u.dtype, meta=u._meta, axis=a,
                                     m=ndim, **common)
                out = part if out is None else out.rechunk(part.chunks) + part
            u = out
    out = u[0] if ch is None else da.moveaxis(u, 0, ch)
    return restore_chunks(out, chunks), kappa_


def perona_malik_dask(image, *, num_iter, kappa, conductance, dt, sigma, method, spacing, channel_axis,
                      check_finite, max_steps, return_info, steps_per_exchange_: int | None = None):
    """:func:`pdediff.perona_malik` for a Dask ``image``, with the explicit method's steps per halo exchange
    settable (``steps_per_exchange_``); checks and plans exactly as the front door does."""
    from ..anisotropic.perona_malik import PeronaMalikResult
    u, plan = prepare_perona_malik(prepare_input, image, num_iter=num_iter, kappa=kappa, conductance=conductance, dt=dt,
                                   sigma=sigma, method=method, spacing=spacing, channel_axis=channel_axis,
                                   check_finite=check_finite, max_steps=max_steps)
    out, kappa_ = run_perona_malik(u, plan, steps_per_exchange_)
    if not return_info:
        return out
    return out, PeronaMalikResult.from_plan(plan, kappa_)


class _Smoothing:
    """The Catté pre-smoothing of a ``(C, *spatial)`` Dask array, as the in-memory function smooths."""

    def __init__(self, sigma: float, h, c: float, dtype) -> None:
        self.sigma, self.h, self.c, self.dtype = sigma, tuple(h), c, dtype
        sig = tuple(sigma / x for x in h)
        self.spectral = sigma > 0 and max(sig) > SPECTRAL_SMOOTHING_MIN_PIXELS
        self.radius = [int(_TRUNCATE * s + 0.5) if sigma > 0 else 0 for s in sig]

    def apply(self, u):
        if self.sigma == 0:
            return u
        if self.spectral:  # exact Gaussian = heat flow for t = sigma^2 / 2 (Neumann), one axis at a time
            solver = SpectralHeatSolver(u.shape[1:], self.dtype, spacing=self.h)
            return _spectral(u, min(self.sigma / 2.0 * self.sigma, 1e300), solver, lead=1)
        depth = {0: 0, **{ax + 1: r for ax, r in enumerate(self.radius)}}
        hs = tuple(x * self.c for x in self.h)
        return overlap_apply(_smooth_block, [u], depth, False, u.dtype, sigma_s=self.sigma * self.c, hs=hs)


def _smooth_block(u, *, sigma_s, hs):
    """The Catté smoothing of a chunk with its halo, on the chunk scaled by its power of two (as in memory,
    where the whole image is smoothed scaled: exact, and no overflow near the type's maximum)."""
    be = backend_for(u)
    a, u = _scaled(u)
    v = make_smoother(sigma_s, hs, u.shape, u.dtype, be)(u)
    if a != 1.0:
        v *= v.dtype.type(1.0 / a)
    return v


def _scaled(u, *more):
    """Copies of a chunk (and of companions) times the chunk's power-of-two intensity scale."""
    xp = backend_for(u).xp
    a = intensity_scale(u, xp)
    t = u.dtype.type(a)
    return a, xp.ascontiguousarray(u * t), *(xp.ascontiguousarray(x * t) for x in more)


def _explicit_block(u, v=None, *, k, sigma_s, hs, c, dts, kappa, code, g_fn):
    """``k`` explicit steps of a ``(C, *spatial)`` chunk with its halo (Catté smoothing inside unless ``v``)."""
    be = backend_for(u)
    xp = be.xp
    if v is None:
        a, u = _scaled(u)
        smooth = make_smoother(sigma_s, hs, u.shape, u.dtype, be)
    else:
        a, u, v = _scaled(u, v)
    kinv2 = inverse_square(kappa * a / c, u.dtype)
    g = None if g_fn is None else callable_conductance(g_fn, c / a, kappa, xp)
    stepper = make_stepper(u, hs, dts, kinv2, code, g, "explicit", be)
    buf = xp.empty_like(u)
    for _ in range(k):
        stepper(u, smooth(u) if v is None else v, buf)
        u, buf = buf, u
    if a != 1.0:
        u *= u.dtype.type(1.0 / a)
    return u


def _aos_axis_block(u, v, *, axis, m, hs, c, dts, kappa, code, g_fn):
    """``(1/m) (I - m dt A_axis(v))^{-1} u`` for a chunk holding ``axis`` whole: one term of the AOS sum."""
    be = backend_for(u)
    xp = be.xp
    a, u, v = _scaled(u, v)
    kinv2 = inverse_square(kappa * a / c, u.dtype)
    g = None if g_fn is None else callable_conductance(g_fn, c / a, kappa, xp)
    out = xp.zeros_like(u)
    aos_term(be, u, v, out, axis, m * dts / hs[axis] ** 2, hs[axis], kinv2, code, g, 1.0 / m)
    if a != 1.0:
        out *= out.dtype.type(1.0 / a)
    return out


# ----------------------------------------------------------------------------- automatic kappa
_TOP = 1 << 16


def _global_intensity_scale(u) -> float:
    """:func:`pdediff._plan.intensity_scale` of the whole Dask array (one pass)."""
    import dask

    da = require_dask()
    hi, lo = (float(x) for x in dask.compute(u.max(), u.min()))
    amax = max(abs(hi), abs(lo))
    if not math.isfinite(amax):  # the finite values set the scale, as in memory
        amax = float(da.where(da.isfinite(u), abs(u), 0).max().compute())
    return scale_for(amax, u.dtype)


def _face_blocks(u, smoothing, h):
    """Per chunk, a delayed array of the float32 face-gradient magnitudes the chunk *owns* (the faces to
    its upper neighbours included, those to its lower ones left to them): every face once, all axes.

    Each task smooths its chunk with a halo (Catté, unless ``smoothing`` is spectral: then ``u`` is
    smoothed first by :meth:`_Smoothing.apply`) and measures the faces itself, one task per chunk.
    """
    from dask import delayed

    da = require_dask()
    if smoothing.spectral:
        v, radius, sigma_s = smoothing.apply(u), [0] * len(h), 0.0
    else:
        v, radius, sigma_s = u, smoothing.radius, smoothing.sigma * smoothing.c
    need = {a + 1: radius[a] + 1 for a in range(len(h))}
    v = _min_chunks(v, need)  # chunks thinner than the halo are merged with a neighbour first
    depth = {0: 0, **{ax: (d if len(v.chunks[ax]) > 1 else 0) for ax, d in need.items()}}
    ov = da.overlap.overlap(v, depth=depth, boundary={ax: "none" for ax in range(v.ndim)}) if any(
        depth.values()) else v
    nb = v.numblocks
    hs = tuple(x * smoothing.c for x in h)
    out = []
    for idx, blk in zip(np.ndindex(*nb), ov.to_delayed().ravel()):
        lower = tuple(depth[a] if idx[a] > 0 else 0 for a in range(v.ndim))
        upper = tuple(depth[a] if idx[a] < nb[a] - 1 else 0 for a in range(v.ndim))
        out.append(delayed(_owned_magnitudes)(blk, lower, upper, sigma_s, hs, tuple(h)))
    return out


def _min_chunks(v, need: dict[int, int]):
    """``v`` with every chunk along ``ax`` at least ``need[ax]`` cells (the axis whole if it is shorter)."""
    from dask.array.overlap import ensure_minimum_chunksize

    spec = {}
    for ax, d in need.items():
        c = v.chunks[ax]
        if len(c) > 1 and min(c) < d:
            spec[ax] = -1 if v.shape[ax] <= 2 * d else ensure_minimum_chunksize(d, c)
    return v.rechunk(spec) if spec else v


def _owned_magnitudes(b, lower, upper, sigma_s, hs, h):
    """float32 magnitudes ``sqrt(sum_c ((v_j - v_i)/h_a)^2)`` (float64 differences) of the faces a chunk
    owns, from the chunk ``b`` with halos ``lower``/``upper`` cells wide (smoothed here if ``sigma_s``)."""
    b = np.asarray(b)
    if sigma_s > 0:
        b = make_smoother(sigma_s, hs, b.shape, b.dtype, backend_for(b))(np.ascontiguousarray(b))
    core = tuple(slice(lo, b.shape[ax] - up) for ax, (lo, up) in enumerate(zip(lower, upper)))
    out = []
    for a, ha in enumerate(h):
        ax = a + 1
        sl = list(core)
        stop = b.shape[ax] - upper[ax] + (1 if upper[ax] else 0)  # one cell of the upper halo: its face
        sl[ax] = slice(lower[ax], stop)
        w = b[tuple(sl)].astype(np.float64)
        if w.shape[ax] < 2:
            continue
        d = np.diff(w, axis=ax) * (1.0 / ha)
        out.append(np.sqrt((d * d).sum(axis=0)).astype(np.float32).ravel())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _keys(s):
    # non-negative float32 values sort like their unsigned bit patterns; NaN keys lie above +inf's
    return np.ascontiguousarray(s).view(np.uint32)


def _deviations(s, center):
    return s if center is None else np.abs(s.astype(np.float64) - center).astype(np.float32)


def _top_hist(s, center=None):
    return np.bincount(_keys(_deviations(s, center)) >> 16, minlength=_TOP).astype(np.int64)


def _low_hist(s, bins, center=None):
    k = _keys(_deviations(s, center))
    return np.stack([np.bincount(k[(k >> 16) == b] & 0xFFFF, minlength=_TOP).astype(np.int64) for b in bins])


def _sum_count(s):
    f = s[~np.isnan(s)].astype(np.float64)
    return np.array([f.sum(), f.size], dtype=np.float64)


def _pass(blocks, fn, *args):
    """One streaming pass: ``fn`` on the magnitudes of every chunk, summed by a tree reduction (a few
    histograms in memory at a time, whatever the number of chunks)."""
    import dask
    from dask import delayed

    da = require_dask()
    shape = {"_top_hist": (_TOP,), "_sum_count": (2,)}.get(fn.__name__) or (len(args[0]), _TOP)
    dtype = np.float64 if fn is _sum_count else np.int64
    parts = [da.from_delayed(delayed(fn)(b, *args), shape=shape, dtype=dtype)[None] for b in blocks]
    (total,) = dask.compute(da.concatenate(parts).sum(axis=0, split_every=4))
    return total


def _select(blocks, center=None):
    """NumPy's median (mean of the two middle values) of the float32 values (``|s - center|`` if given)."""
    top = _pass(blocks, _top_hist, center)
    valid = top[: 0x7F80 + 1]  # NaN keys (above +inf's bin) are left out, as in memory
    n = int(valid.sum())
    if n == 0:
        return math.nan
    ranks = ((n - 1) // 2, n // 2)
    cum = np.cumsum(valid)
    bins = sorted({int(np.searchsorted(cum, r, side="right")) for r in ranks})
    low = _pass(blocks, _low_hist, bins, center)
    vals = []
    for r in ranks:
        b = int(np.searchsorted(cum, r, side="right"))
        before = int(cum[b - 1]) if b > 0 else 0
        row = low[bins.index(b)]
        j = int(np.searchsorted(np.cumsum(row), r - before, side="right"))
        vals.append(float(np.array([(b << 16) | j], dtype=np.uint32).view(np.float32)[0]))
    return 0.5 * (vals[0] + vals[1])


def estimate_kappa_dask(v, spacing, conductance: str = "exponential", smoothing=None) -> float:
    """:func:`pdediff.estimate_kappa` of a ``(C, *spatial)`` Dask array, computed now.

    ``smoothing``: a :class:`_Smoothing` applied to ``v`` chunk by chunk first (the Catté smoothing of
    :func:`perona_malik`).  The exact medians of the float32-rounded magnitudes by radix select, as in
    memory, in four streaming passes (top and low 16 bits of the median, then of the MAD) plus one for the mean when
    the MAD is 0: each pass reads every chunk once and keeps only 65 536-bin histograms, so the
    memory stays that of a few chunks whatever the image's size.
    """
    spatial = v.shape[1:]
    if max(spatial, default=1) < 2:
        return 1.0
    if smoothing is None:  # v is already the image that feeds the conductance
        smoothing = _Smoothing(0.0, tuple(spacing), 1.0, v.dtype)
    blocks = _face_blocks(v, smoothing, tuple(spacing))
    med = _select(blocks)
    mad = _select(blocks, med) if math.isfinite(med) else math.nan
    mean = math.nan
    if not 1.4826 * mad > 0:  # the mean is needed only then (one more pass)
        total, count = _pass(blocks, _sum_count)
        mean = total / count if count else math.nan
    return kappa_from_spread(mad, mean, conductance)
