"""The chunk-layout helpers of the Dask executor, and its lazy input checks.

:func:`is_dask_array` is :func:`pdediff._arrays.is_dask_array`, re-exported.
"""

from __future__ import annotations

import math
from typing import Any

from .._arrays import is_dask_array
from ..errors import ParameterError

__all__ = ["is_dask_array", "require_dask"]


def require_dask():
    """``dask.array``, or an :class:`ImportError` naming the extra that installs it."""
    try:
        import dask.array as da
    except ImportError:
        raise ImportError(
            "Dask arrays need the optional 'dask' dependencies: pip install \"pdediff[dask]\""
        ) from None
    return da


def finite_block(b: Any, name: str) -> Any:
    """A chunk, unchanged, after checking it holds no NaN/inf (the check runs when the chunk is computed)."""
    from .._backend import backend_for

    from .._validation import not_finite

    if not bool(backend_for(b).xp.isfinite(b).all()):
        raise not_finite(name)
    return b


def float_input(x: Any, name: str, ndim: tuple[int, ...], check_finite: bool):
    """Validate a Dask array argument lazily: dtype and shape now, finiteness per chunk when computed."""
    from .._validation import _ndims, float_dtype_of

    dtype = float_dtype_of(x.dtype, name)
    if x.ndim not in ndim:
        raise ParameterError(f"{{{name}}} must have {_ndims(ndim)} dimensions; got shape {tuple(x.shape)}",
                             param=name)
    if any(s == 0 for s in x.shape) or any(math.isnan(s) for s in x.shape):
        raise ParameterError(f"{{{name}}} must not be empty and must have known chunk sizes; got shape "
                             f"{tuple(x.shape)}", param=name)
    x = x.astype(dtype)
    if check_finite:
        x = x.map_blocks(finite_block, name, dtype=dtype, meta=x._meta)
    return x


def prepare_input(x: Any, name: str, *, ndim: tuple[int, ...], check_finite: bool):
    """The Dask executor's array checks (:meth:`pdediff._dispatch.Executor.prepare`): Dask importable,
    then :func:`float_input`."""
    require_dask()
    return float_input(x, name, ndim, check_finite)


def restore_chunks(x, chunks):
    """``x`` rechunked to ``chunks`` unless it already has them."""
    return x if x.chunks == chunks else x.rechunk(chunks)


def whole_along(x, axis: int, like_chunks: tuple[tuple[int, ...], ...], fixed: tuple[int, ...] = ()):
    """``x`` with ``axis`` in one chunk, the other axes split so a chunk holds about as much as one of
    ``like_chunks`` (the caller's layout): the memory of a block stays that of the caller's chunks."""
    shape = x.shape
    target = [max(c) for c in like_chunks]
    target[axis] = shape[axis]
    grow = shape[axis] / max(max(like_chunks[axis]), 1)
    spec = {}
    for ax in sorted((a for a in range(x.ndim) if a != axis and a not in fixed), key=lambda a: -target[a]):
        if grow <= 1:
            break
        new = max(1, int(target[ax] // grow))
        grow /= target[ax] / new
        target[ax] = new
    for ax in range(x.ndim):
        spec[ax] = -1 if ax == axis or ax in fixed else target[ax]
    return x.rechunk(spec)


def steps_per_exchange(chunks, axes, radius: int, n: int) -> int:
    """Steps between halo exchanges: balances the redundant halo work (``2 k r / c`` per chunked axis and
    step) against one exchange per ``k`` steps; never a halo wider than a chunk."""
    split = [a for a in axes if len(chunks[a]) > 1]
    if not split or n <= 1:
        return max(n, 1)
    c = min(min(chunks[a]) for a in split)
    # an exchange costs about three passes over a chunk (assembling the halo, buffers): k ~ sqrt(3c / (2 d r))
    k = round(math.sqrt(3.0 * c / (2.0 * len(split) * radius)))
    return int(max(1, min(n, k, max(c // radius, 1))))


def overlap_apply(fn, arrays, depth: dict[int, int], periodic: bool, dtype, **kwargs):
    """``fn`` on the chunks of ``arrays`` (aligned) extended by ``depth`` cells per axis, halos trimmed.

    Axes held in one chunk get no halo: the kernel's own boundary rule is then the physical one.  Other
    axes get neighbour data, wrapped around for periodic boundaries (real data, so no convention of
    Dask's fill modes is involved); at a non-periodic outer edge there is no halo and the kernel's
    boundary rule applies.  A halo wider than a chunk makes Dask merge chunks first; one as wide as
    the axis puts that axis in one chunk.
    """
    da = require_dask()
    x = arrays[0]
    dep = {}
    for ax, d in depth.items():
        if len(x.chunks[ax]) > 1 and d > 0:
            if d >= x.shape[ax] // 2:
                arrays = [a.rechunk({ax: -1}) for a in arrays]
                x = arrays[0]
                continue
            dep[ax] = d
    if not dep:  # no halo: the chunks are the caller's (or shared) arrays, never to be modified
        kwargs.pop("fresh", None)
        return da.map_blocks(fn, *arrays, dtype=dtype, meta=x._meta, **kwargs)
    full = {ax: dep.get(ax, 0) for ax in range(x.ndim)}
    bnd = {ax: ("periodic" if periodic else "none") for ax in range(x.ndim)}
    return da.map_overlap(fn, *arrays, depth=full, boundary=bnd, trim=True, align_arrays=True, allow_rechunk=True,
                          dtype=dtype, meta=x._meta, **kwargs)


def block_copy(b, dtype=None):
    """A writable C-contiguous copy of a chunk on its own device (chunks may be read-only memory maps)."""
    from .._backend import backend_for

    xp = backend_for(b).xp
    return xp.array(b, dtype=dtype or b.dtype, copy=True, order="C")
