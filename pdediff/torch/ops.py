"""Heat flow and Perona–Malik on torch tensors, through pdediff's kernels (DLPack, no copies)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from .._backend import backend_for
from .._validation import BOUNDARIES, check_option
from ..heat.spectral import SPECTRA, SpectralHeatSolver
from ._dlpack import from_array, to_array

__all__ = ["heat_blur", "perona_malik"]


#: Half-precision tensors are computed in float32 and returned in their own dtype.
_HALF = (torch.float16, torch.bfloat16)


def _check_tensor(x: Any, spatial_dims: int, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float64) + _HALF:
        raise TypeError(f"{name} must be a float16, bfloat16, float32 or float64 tensor; got {x.dtype}")
    if isinstance(spatial_dims, bool) or spatial_dims not in (1, 2, 3):
        raise ValueError(f"spatial_dims must be 1, 2 or 3; got {spatial_dims!r}")
    if x.ndim < spatial_dims:
        raise ValueError(f"{name} must have at least spatial_dims={spatial_dims} dimensions; got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} must not be empty; got shape {tuple(x.shape)}")


def _batch_times(t: Any, batch: tuple[int, ...]) -> np.ndarray:
    """Times broadcast to the batch shape: a scalar, or one per leading item (a prefix of ``batch``)."""
    if isinstance(t, torch.Tensor):
        if t.is_floating_point() is False and t.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"t must be a real number or tensor; got dtype {t.dtype}")
        tt = t.detach().to("cpu", torch.float64).numpy()
    else:
        try:
            tt = np.asarray(t, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"t must be a number or a tensor of times; got {t!r}") from None
    if not np.all(np.isfinite(tt)) or np.any(tt < 0):
        raise ValueError("t must be non-negative and finite")
    if tt.ndim > len(batch) or tuple(tt.shape) != tuple(batch[: tt.ndim]):
        raise ValueError(
            f"t must be a scalar or have the leading shape of x's batch {batch} (e.g. one time per sample); "
            f"got shape {tuple(tt.shape)}"
        )
    return np.array(np.broadcast_to(tt.reshape(tt.shape + (1,) * (len(batch) - tt.ndim)), batch))


@functools.lru_cache(maxsize=64)
def _solver(shape: tuple[int, ...], dtype: str, boundary: str, diffusivity: float, spectrum: str):
    return SpectralHeatSolver(shape, np.dtype(dtype), diffusivity=diffusivity, boundary=boundary, spectrum=spectrum)


def _apply(solver, x: torch.Tensor, times: np.ndarray) -> torch.Tensor:
    x = x.contiguous()
    y = solver.evolve(to_array(x), times)
    return from_array(y, x)


class _HeatBlur(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, times, solver):  # noqa: D102
        ctx.times, ctx.solver = times, solver
        return _apply(solver, x, times)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        # The heat semigroup is self-adjoint (orthonormal transform, real symbol): F(t)^T = F(t).
        return _apply(ctx.solver, grad, ctx.times), None, None


def heat_blur(
    x: torch.Tensor,
    t: float | torch.Tensor,
    *,
    boundary: str = "neumann",
    diffusivity: float = 1.0,
    spatial_dims: int = 2,
    spectrum: str = "continuous",
) -> torch.Tensor:
    r"""Heat flow :math:`F(t)x = e^{t D \Delta} x` over the last ``spatial_dims`` axes of a tensor.

    Computed by pdediff's spectral solver (DCT-II / DST-II / FFT, exact in
    time): one batched transform for the whole tensor, one time per item.  CPU
    tensors reach the Numba/SciPy path and CUDA tensors the GPU path without a
    copy (DLPack).  Differentiable in ``x`` (the operator is self-adjoint, so
    the backward pass is the same blur of the incoming gradient); not in ``t``.

    Parameters
    ----------
    x : Tensor, shape ``(..., *spatial)``
        float32 or float64; float16/bfloat16 are computed in float32 and the
        result cast back.  Rectangular spatial shapes are fine.
    t : float or Tensor
        Diffusion time (pixels² for unit diffusivity), scalar or one per
        leading item: shape ``x.shape[:k]`` for some ``k`` up to the number of
        leading axes (e.g. ``(batch,)`` for per-sample training times).
    boundary : {"neumann", "dirichlet", "periodic"}
        Neumann (default) is the half-sample reflection used by IHDM.
    diffusivity : float
        Positive constant ``D``.
    spatial_dims : {1, 2, 3}
        How many trailing axes are spatial.
    spectrum : {"continuous", "discrete"}
        ``"continuous"``: IHDM's operator, equal to a Gaussian blur of
        ``sigma = sqrt(2 D t)`` under half-sample reflection; ``"discrete"``:
        the exact solution of the 5-point-stencil semi-discrete system.

    Returns
    -------
    Tensor
        Same shape, dtype and device as ``x``.

    Examples
    --------
    >>> import torch
    >>> from pdediff.torch import heat_blur
    >>> x = torch.rand(4, 1, 16, 24, dtype=torch.float64)
    >>> y = heat_blur(x, torch.tensor([0.0, 1.0, 2.0, 4.0]))
    >>> torch.allclose(y[0], x[0]), torch.allclose(y.mean((-1, -2)), x.mean((-1, -2)))
    (True, True)
    """
    _check_tensor(x, spatial_dims)
    boundary = check_option("boundary", boundary, BOUNDARIES)
    spectrum = check_option("spectrum", spectrum, SPECTRA)
    batch = tuple(x.shape[: x.ndim - spatial_dims])
    times = _batch_times(t, batch)
    shape = tuple(x.shape[x.ndim - spatial_dims :])
    if x.dtype in _HALF:  # differentiable casts around the float32 computation
        return heat_blur(x.float(), t, boundary=boundary, diffusivity=diffusivity, spatial_dims=spatial_dims,
                         spectrum=spectrum).to(x.dtype)
    solver = _solver(shape, str(x.dtype).replace("torch.", ""), boundary, float(diffusivity), spectrum)
    return _HeatBlur.apply(x, times, solver)


@torch.no_grad()
def perona_malik(x: torch.Tensor, *, spatial_dims: int = 2, channels: bool | None = None, **kwargs: Any) -> torch.Tensor:
    """:func:`pdediff.perona_malik` on a batch of tensors, one conductance field per sample.

    Parameters
    ----------
    x : Tensor, shape ``(N, C, *spatial)`` or ``(N, *spatial)`` (or any leading axes)
        float32 or float64; float16/bfloat16 computed in float32 and cast back.
    spatial_dims : {1, 2, 3}
        How many trailing axes are spatial.
    channels : bool, optional
        Whether the axis before the spatial ones holds channels that share one
        conductance (vector-valued diffusion).  Default: True when ``x`` has
        at least two leading axes.
    **kwargs
        Any option of :func:`pdediff.perona_malik` (``num_iter``, ``kappa``,
        ``conductance``, ``dt``, ``sigma``, ``scheme``, ``spacing``).

    Returns
    -------
    Tensor
        Same shape, dtype and device.  Not differentiable (the nonlinear
        scheme has no adjoint here): the result carries no gradient.
    """
    from ..anisotropic import perona_malik as pm

    _check_tensor(x, spatial_dims)
    for bad in ("channel_axis", "return_info", "progress"):
        if bad in kwargs:
            raise TypeError(f"{bad} is set by pdediff.torch.perona_malik itself; do not pass it")
    lead = x.ndim - spatial_dims
    if channels is None:
        channels = lead >= 2
    if channels and lead < 1:
        raise ValueError("channels=True needs a channel axis before the spatial axes")
    if x.dtype in _HALF:
        return perona_malik(x.float(), spatial_dims=spatial_dims, channels=channels, **kwargs).to(x.dtype)
    xc = x.detach().contiguous()
    arr = to_array(xc)
    per = arr.reshape((-1,) + tuple(arr.shape[lead - 1 if channels else lead :]))
    out = backend_for(arr).xp.empty_like(per)
    for i in range(per.shape[0]):
        out[i] = pm(per[i], channel_axis=0 if channels else None, **kwargs)
    return from_array(out.reshape(arr.shape), x)
