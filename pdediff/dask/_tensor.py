"""``tensor_diffusion`` on Dask arrays: every step on chunks extended by a halo, sub-steps set globally.

A step of :func:`pdediff.tensor_diffusion` at a cell reads the links of the cells within the stencil's
reach ``R`` of it, and each of those links comes from the tensor of a cell, which reads the image within
``r_sigma + 1 + r_rho`` cells (Gaussian of std ``sigma``, central differences, Gaussian of std ``rho``;
``r = int(4 std / h + 0.5)`` as SciPy truncates).  Each step therefore exchanges a halo of
``R + r_sigma + 1 + r_rho`` cells per axis, ``R`` the cap of
:func:`pdediff.anisotropic.tensor.stencil_reach` (``ceil(sqrt(1 / lam_min) max(h) / min(h))`` in 2-D,
1.5 times that in 3-D; a chunk whose links reach further raises).  The number of sub-steps depends on
the largest ``-A_xx`` over the whole grid, so a step first reduces that maximum over all chunks
(lazily: one reduction per step), then steps every chunk: the result equals the in-memory one to
rounding.  The reduction is a barrier: every chunk of a step is computed before the next step starts.
"""

from __future__ import annotations

import numpy as np

from ..anisotropic.tensor import block_diag_max, block_step, smoothed_block, stencil_reach
from ..kernels.cpu.tensor import EED_GRAD
from ._core import overlap_apply, require_dask

__all__ = ["run_tensor_diffusion", "smoothed", "value_range", "halo_depth"]

#: scipy.ndimage.gaussian_filter's default truncation (also pdediff's compiled Gaussian).
_TRUNCATE = 4.0


def halo_depth(setup) -> tuple[int, ...]:
    """Halo (cells) per spatial axis of one step (see the module's docstring)."""
    reach = stencil_reach(setup, len(setup.spacing))
    out = []
    for h in setup.spacing:
        r_s = int(_TRUNCATE * setup.sigma / h + 0.5)
        r_r = 0 if setup.mode == EED_GRAD else int(_TRUNCATE * setup.rho / h + 0.5)
        out.append(reach + r_s + 1 + r_r)
    return tuple(out)


def value_range(u) -> tuple[float, float]:
    """``(nanmin, nanmax)`` of a Dask array, computed now (one pass)."""
    da = require_dask()
    lo, hi = da.compute(da.nanmin(u), da.nanmax(u))
    return float(lo), float(hi)


def smoothed(u, sigma: float, spacing: tuple[float, ...], boundary: str):
    """The ``(C, *spatial)`` Dask array ``u`` smoothed chunk by chunk as in memory (lazy)."""
    if sigma == 0:
        return u
    depth = {0: 0, **{a + 1: int(_TRUNCATE * sigma / h + 0.5) for a, h in enumerate(spacing)}}
    return overlap_apply(smoothed_block, [u], depth, boundary == "periodic", u.dtype, sigma=sigma,
                         spacing=tuple(spacing), bc=boundary)


def run_tensor_diffusion(u, setup, n_iter: int):
    """``n_iter`` steps of the ``(C, *spatial)`` Dask array ``u`` (channels in one chunk); lazy."""
    da = require_dask()
    depth = halo_depth(setup)
    periodic = setup.boundary == "periodic"
    for ax, d in enumerate(depth):  # a halo wider than a chunk: that axis in one chunk
        a = ax + 1
        if len(u.chunks[a]) > 1 and d > min(u.chunks[a]):
            u = u.rechunk({a: -1})
    dep = {0: 0, **{ax + 1: (d if len(u.chunks[ax + 1]) > 1 else 0) for ax, d in enumerate(depth)}}
    bnd = {a: ("periodic" if periodic else "none") for a in range(u.ndim)}
    for _ in range(n_iter):
        ov = da.overlap.overlap(u, depth=dep, boundary=bnd)
        ones = tuple((1,) * len(c) for c in ov.chunks)
        dmax = da.map_blocks(_diag_block, ov, dtype=np.float64, chunks=ones, setup=setup, dep=dep,
                             periodic=periodic).max()
        stepped = da.map_blocks(_step_block, ov, dmax, dtype=u.dtype, chunks=ov.chunks, setup=setup)
        u = da.overlap.trim_internal(stepped, dep, boundary=bnd)
    return u


def _diag_block(b, *, setup, dep, periodic, block_info=None):
    """``max(-A_xx)`` over the cells a chunk owns, as a one-cell block."""
    info = block_info[0]
    loc, num = info["chunk-location"], info["num-chunks"]
    owned = []
    for a in range(1, b.ndim):
        d = dep.get(a, 0)
        lo = d if d and (periodic or loc[a] > 0) else 0
        hi = d if d and (periodic or loc[a] < num[a] - 1) else 0
        owned.append(slice(lo, b.shape[a] - hi))
    return np.full((1,) * b.ndim, block_diag_max(b, setup, tuple(owned)))


def _step_block(b, dmax, *, setup):
    return block_step(b, setup, float(np.asarray(dmax).reshape(())))
