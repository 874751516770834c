"""Heat flow and Perona–Malik on torch tensors, through pdediff's kernels (DLPack, no copies).

Public: :func:`heat_blur`, :func:`perona_malik` (re-exported by :mod:`pdediff.torch`).

Internal API of :mod:`pdediff.torch` (used by :mod:`pdediff.torch.processes`;
documented and stable within the package, not re-exported):

* :func:`spectral_solver`: the cached :class:`~pdediff.SpectralHeatSolver`
  for a spatial shape, dtype and grid;
* :func:`dct`, :func:`idct`: the orthonormal DCT-II over the last spatial axes
  of a tensor (the Neumann heat eigenbasis) and its inverse;
* :func:`laplacian_eigenvalues`: the eigenvalue of ``-Δ`` for every coefficient
  that :func:`dct` returns, so that ``F(t)`` multiplies coefficient ``k`` by
  ``exp(-D λ_k t)``.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from .._backend import backend_for
from .._validation import BOUNDARIES, check_option, positive_per_axis
from ..heat.spectral import SPECTRA, SpectralHeatSolver
from ._dlpack import from_array, to_array

__all__ = ["heat_blur", "perona_malik"]  # plus the internal API above: spectral_solver, dct, idct, ...


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
def _cached_solver(shape: tuple[int, ...], dtype: str, boundary: str, diffusivity: float,
                   spacing: tuple[float, ...], spectrum: str) -> SpectralHeatSolver:
    return SpectralHeatSolver(shape, np.dtype(dtype), diffusivity=diffusivity, spacing=spacing,
                              boundary=boundary, spectrum=spectrum)


def _dtype_name(dtype: Any) -> str:
    if isinstance(dtype, torch.dtype):
        return str(dtype).replace("torch.", "")
    return np.dtype(dtype).name


def spectral_solver(
    shape: tuple[int, ...],
    dtype: Any,
    *,
    boundary: str = "neumann",
    diffusivity: float = 1.0,
    spacing: float | Any = 1.0,
    spectrum: str = "continuous",
) -> SpectralHeatSolver:
    """The :class:`~pdediff.SpectralHeatSolver` for a spatial ``shape``, built once and cached.

    Internal API of :mod:`pdediff.torch` (what :func:`heat_blur` and the forward
    processes share).  ``dtype`` is a torch or NumPy float32/float64 dtype;
    ``spacing`` a positive number or one per axis.  The solver's ``forward`` /
    ``inverse`` act on NumPy or CuPy arrays (see :func:`dct` for tensors) and its
    ``symbols`` are the per-axis eigenvalues of ``-d²/dx²``.  The cache keeps the
    64 most recent solvers (``spectral_solver.cache_info()``, ``.cache_clear()``).
    """
    shape = tuple(int(n) for n in shape)
    spacing = positive_per_axis(spacing, "spacing", len(shape))
    return _cached_solver(shape, _dtype_name(dtype), boundary, float(diffusivity), spacing, spectrum)


spectral_solver.cache_info = _cached_solver.cache_info  # type: ignore[attr-defined]
spectral_solver.cache_clear = _cached_solver.cache_clear  # type: ignore[attr-defined]


def _check_full_precision(x: torch.Tensor, name: str = "x") -> None:
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64; got {x.dtype}")


def dct(x: torch.Tensor, *, spatial_dims: int = 2) -> torch.Tensor:
    """Orthonormal DCT-II over the last ``spatial_dims`` axes of a float32/float64 tensor (internal API).

    The eigenbasis of the Neumann heat flow: ``heat_blur(x, t)`` is
    ``idct(exp(-laplacian_eigenvalues(...) * t) * dct(x))``.  Same device as
    ``x``; not differentiable.
    """
    _check_tensor(x, spatial_dims)
    _check_full_precision(x)
    s = spectral_solver(x.shape[x.ndim - spatial_dims :], x.dtype)
    x = x.detach().contiguous()
    return from_array(s.forward(to_array(x)), x)


def idct(c: torch.Tensor, *, spatial_dims: int = 2) -> torch.Tensor:
    """Inverse of :func:`dct` (internal API); ``c`` is not modified."""
    _check_tensor(c, spatial_dims, "c")
    _check_full_precision(c, "c")
    s = spectral_solver(c.shape[c.ndim - spatial_dims :], c.dtype)
    # the inverse transform may overwrite its input: hand it a copy
    c = c.detach().contiguous().clone()
    return from_array(s.inverse(to_array(c)), c)


def laplacian_eigenvalues(shape: tuple[int, ...], *, boundary: str = "neumann", spacing: float | Any = 1.0,
                          spectrum: str = "continuous") -> np.ndarray:
    """Eigenvalue ``λ_k`` of ``-Δ`` for every spectral coefficient, float64, shaped like the coefficients.

    Internal API: for ``boundary="neumann"`` the coefficients are :func:`dct`'s,
    of the spatial ``shape``, and ``F(t)`` multiplies coefficient ``k`` by
    ``exp(-D λ_k t)``.
    """
    syms = spectral_solver(shape, np.float64, boundary=boundary, spacing=spacing, spectrum=spectrum).symbols
    nd = len(syms)
    return sum(np.asarray(s, dtype=np.float64).reshape((-1,) + (1,) * (nd - 1 - a))
               for a, s in enumerate(syms))


def _apply(solver, x: torch.Tensor, times: np.ndarray) -> torch.Tensor:
    x = x.contiguous()
    y = solver.evolve(to_array(x), times)
    return from_array(y, x)


def _generator(solver, y: torch.Tensor) -> torch.Tensor:
    """``L y = D Δ y``, the heat flow's generator with the solver's boundary, spacing and spectrum."""
    y = y.detach().contiguous()
    arr = to_array(y)
    be = backend_for(arr)
    c = solver.forward(arr, be)
    nd = len(solver.symbols)
    lam = sum(np.asarray(sym, dtype=np.float64).reshape((-1,) + (1,) * (nd - 1 - a))
              for a, sym in enumerate(solver.symbols))
    real = np.float32 if y.dtype == torch.float32 else np.float64
    c = c * be.xp.asarray((-solver.diffusivity * lam).astype(real))
    return from_array(solver.inverse(c, be).astype(solver.dtype, copy=False), y)


class _HeatBlur(torch.autograd.Function):
    """``F(t) x``; gradients for ``x`` (the same blur: ``F(t)`` is self-adjoint) and for ``t``."""

    @staticmethod
    def forward(ctx, x, t, times, solver):  # noqa: D102
        y = _apply(solver, x, times)
        ctx.times, ctx.solver = times, solver
        ctx.t_shape = None if t is None else tuple(t.shape)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # noqa: D102
        gx = gt = None
        grad = grad.contiguous()
        if ctx.needs_input_grad[0]:
            # The heat semigroup is self-adjoint (orthonormal transform, real symbol): F(t)^T = F(t).
            gx = _apply(ctx.solver, grad, ctx.times)
        if ctx.needs_input_grad[1]:
            # d/dt F(t) x = L F(t) x = L y: the gradient of item b is <grad_b, L y_b>, summed over the
            # batch axes that t was broadcast along.
            (y,) = ctx.saved_tensors
            nd = len(ctx.solver.symbols)
            per_item = (grad * _generator(ctx.solver, y)).sum(dim=tuple(range(y.ndim - nd, y.ndim)))
            k = len(ctx.t_shape)
            gt = per_item.sum(dim=tuple(range(k, per_item.ndim))) if per_item.ndim > k else per_item
            gt = gt.reshape(ctx.t_shape)
        return gx, gt, None, None


def heat_blur(
    x: torch.Tensor,
    t: float | torch.Tensor,
    *,
    boundary: str = "neumann",
    diffusivity: float = 1.0,
    spacing: float | Any = 1.0,
    spatial_dims: int = 2,
    spectrum: str = "continuous",
    check_finite: bool = True,
) -> torch.Tensor:
    r"""Heat flow :math:`F(t)x = e^{t D \Delta} x` over the last ``spatial_dims`` axes of a tensor.

    Computed by pdediff's spectral solver (DCT-II / DST-II / FFT, exact in
    time): one batched transform for the whole tensor, one time per item.  CPU
    tensors reach the Numba/SciPy path and CUDA tensors the GPU path without a
    copy (DLPack).  Differentiable in ``x`` (the operator is self-adjoint, so
    the backward pass is the same blur of the incoming gradient) and in a
    tensor ``t`` (:math:`\partial_t F(t)x = D\Delta F(t)x`, contracted with
    the incoming gradient); once (no second derivatives).

    Parameters
    ----------
    x : Tensor, shape ``(..., *spatial)``
        float32 or float64; float16/bfloat16 are computed in float32 and the
        result cast back.  Rectangular spatial shapes are fine.
    t : float or Tensor
        Diffusion time (length² of ``spacing``'s unit for unit diffusivity;
        pixels² by default), scalar or one per leading item: shape
        ``x.shape[:k]`` for some ``k`` up to the number of leading axes (e.g.
        ``(batch,)`` for per-sample training times).
    boundary : {"neumann", "dirichlet", "periodic"}
        Neumann (default) is the half-sample reflection used by IHDM.
    diffusivity : float
        Positive constant ``D``.
    spacing : float or sequence of float
        Grid spacing in physical units, one number or one per spatial axis
        (e.g. ``(3.0, 1.0, 1.0)`` for 3 mm slices), as for
        :func:`pdediff.solve_heat`.  Default 1: pixels.
    spatial_dims : {1, 2, 3}
        How many trailing axes are spatial.
    spectrum : {"continuous", "discrete"}
        ``"continuous"``: IHDM's operator, equal to a Gaussian blur of
        ``sigma = sqrt(2 D t)`` (in ``spacing``'s units) under half-sample
        reflection; ``"discrete"``: the exact solution of the
        5-point-stencil semi-discrete system.
    check_finite : bool
        Refuse ``x`` holding NaN or inf (``ValueError``; one such value spreads over every output value of
        the spectral blur).  ``False`` skips the check (one reduction over ``x``, a device sync on GPU).

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
    >>> z = heat_blur(x, 2.0, spacing=(0.5, 2.0))   # physical units: 0.5 per row, 2 per column
    >>> z.shape
    torch.Size([4, 1, 16, 24])
    """
    _check_tensor(x, spatial_dims)
    boundary = check_option("boundary", boundary, BOUNDARIES)
    spectrum = check_option("spectrum", spectrum, SPECTRA)
    if check_finite and not bool(torch.isfinite(x).all()):  # one NaN spreads over the whole transform
        raise ValueError("x must be finite (no NaN or inf): a single one spreads over every value of the spectral "
                         "blur; pass check_finite=False to skip this check")
    batch = tuple(x.shape[: x.ndim - spatial_dims])
    times = _batch_times(t, batch)
    shape = tuple(x.shape[x.ndim - spatial_dims :])
    if x.dtype in _HALF:  # differentiable casts around the float32 computation
        return heat_blur(x.float(), t, boundary=boundary, diffusivity=diffusivity, spacing=spacing,
                         spatial_dims=spatial_dims, spectrum=spectrum, check_finite=False).to(x.dtype)
    solver = spectral_solver(shape, x.dtype, boundary=boundary, diffusivity=float(diffusivity),
                             spacing=spacing, spectrum=spectrum)
    t_grad = t if isinstance(t, torch.Tensor) and t.requires_grad else None
    return _HeatBlur.apply(x, t_grad, times, solver)


def _channel_axis(channel_axis: Any, ndim: int, lead: int) -> int | None:
    """``channel_axis`` as a non-negative leading axis, or None."""
    if channel_axis is None:
        return None
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, numbers.Integral):
        raise TypeError(f"channel_axis must be an integer axis or None; got {channel_axis!r}")
    ax = int(channel_axis) + ndim if channel_axis < 0 else int(channel_axis)
    if not 0 <= ax < lead:
        raise ValueError(
            f"channel_axis={channel_axis} must name one of the {lead} leading (non-spatial) axes of a tensor "
            f"with {ndim} axes; the last {ndim - lead} are spatial"
        )
    return ax


def _pm_conductance(x: torch.Tensor, conductance: str) -> torch.Tensor:
    """``g`` of ``x = s^2 / kappa^2``, as pdediff's kernels evaluate it (differentiable torch ops)."""
    if conductance == "rational":
        return 1.0 / (1.0 + x)
    if conductance == "tukey":
        return torch.where(x <= 1.0, 0.5 * (1.0 - x) ** 2, torch.zeros_like(x))
    return torch.exp(-x)


def _pm_explicit(u: torch.Tensor, *, spatial_dims: int, channels: bool, num_iter: int, dt: float, kappa: float,
                 conductance: str, spacing: tuple[float, ...]) -> torch.Tensor:
    """The explicit Perona–Malik scheme of :func:`pdediff.perona_malik` (``sigma=0``) in torch operations.

    ``u`` is ``(..., [C,] *spatial)``, channels (sharing one conductance) just
    before the spatial axes when ``channels``.  Per face between cells ``i``
    and ``j`` along axis ``a``: ``d = (u_j - u_i) / h_a``, flux
    ``g(|d|^2 / kappa^2) d / h_a``, ``u_i += dt * sum``; no flux through the
    boundary (Neumann).  Used for the backward pass: autograd differentiates
    these steps.
    """
    kinv2 = 0.0 if math.isinf(kappa) else 1.0 / (kappa * kappa)
    for _ in range(num_iter):
        change = torch.zeros_like(u)
        for a in range(spatial_dims):
            dim = u.ndim - spatial_dims + a
            n = u.shape[dim]
            if n < 2:
                continue
            d = torch.diff(u, dim=dim) / spacing[a]
            d2 = d * d
            if channels:
                d2 = d2.sum(dim=u.ndim - spatial_dims - 1, keepdim=True)
            flux = _pm_conductance(d2 * kinv2, conductance) * d / spacing[a]
            pad = [0, 0] * (u.ndim - 1 - dim)
            change = change + torch.nn.functional.pad(flux, pad + [0, 1]) - torch.nn.functional.pad(flux, pad + [1, 0])
        u = u + dt * change
    return u


class _PeronaMalik(torch.autograd.Function):
    """pdediff's kernels forward; backward through the same explicit steps recomputed in torch operations."""

    @staticmethod
    def forward(ctx, x, run, reference):  # noqa: D102
        ctx.reference = reference
        ctx.save_for_backward(x)
        return run(x.detach())

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # noqa: D102
        (x,) = ctx.saved_tensors
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            (gx,) = torch.autograd.grad(ctx.reference(xr), xr, grad)
        return gx, None, None


def _differentiable_options(kwargs: dict) -> None:
    """Refuse, with the option to change, what the differentiable path does not cover (never a silent zero)."""
    why = None
    method, sigma, kappa = kwargs.get("method", "explicit"), kwargs.get("sigma"), kwargs.get("kappa", "auto")
    if method != "explicit":
        why = f"method={method!r} (only 'explicit' has a backward pass here)"
    elif sigma is None or sigma != 0:
        why = (f"sigma={sigma!r}" + (" (the default, 0.8 cells)" if sigma is None else "") +
               ": the pre-smoothed conductance has no backward pass here; pass sigma=0")
    elif isinstance(kappa, str):
        why = f"kappa={kappa!r}: the estimated kappa depends on the input; pass a number"
    elif callable(kwargs.get("conductance")):
        why = "a callable conductance; use 'exponential', 'rational' or 'tukey'"
    if why is not None:
        raise ValueError(f"pdediff.torch.perona_malik: x requires grad, but the result would not be differentiable "
                         f"with {why}; or pass x.detach() (no gradient)")


def perona_malik(x: torch.Tensor, *, spatial_dims: int = 2, channel_axis: int | None = None,
                 **kwargs: Any) -> torch.Tensor:
    """:func:`pdediff.perona_malik` on a batch of tensors, one conductance field per sample.

    Parameters
    ----------
    x : Tensor, shape ``(*leading, *spatial)``, e.g. ``(N, C, H, W)`` or ``(N, H, W)``
        float32 or float64; float16/bfloat16 computed in float32 and cast back.
    spatial_dims : {1, 2, 3}
        How many trailing axes are spatial.
    channel_axis : int, optional
        As in :func:`pdediff.perona_malik`: the axis of ``x`` that holds
        channels sharing one conductance (vector-valued diffusion), e.g. ``1``
        for ``(N, C, H, W)`` colour images; it must be a leading (non-spatial)
        axis, negative values count from the end.  Default ``None``: no
        channel axis, every leading axis is a batch axis and each
        ``x[n, c]`` is diffused on its own (as :func:`pdediff.perona_malik`
        treats an image without ``channel_axis``).
    **kwargs
        Any other option of :func:`pdediff.perona_malik` (``num_iter``,
        ``kappa``, ``conductance``, ``dt``, ``sigma``, ``method``,
        ``spacing``, ``max_steps``).

    Returns
    -------
    Tensor
        Same shape, dtype and device.  Differentiable in ``x`` (once) for the
        classic scheme: ``method="explicit"``, ``sigma=0``, a numeric
        ``kappa`` and a named conductance; the forward pass runs pdediff's
        kernels, the backward pass differentiates the same explicit steps
        recomputed in torch operations (memory: one copy of ``x`` per step).

    Raises
    ------
    ValueError
        ``x`` requires grad (and grad mode is on) with options outside the
        differentiable scheme: the message names the option to change, or
        pass ``x.detach()``.  Never a result that silently drops the gradient.
    """
    from ..anisotropic import perona_malik as pm

    _check_tensor(x, spatial_dims)
    for bad in ("return_info", "progress"):
        if bad in kwargs:
            raise TypeError(f"{bad} is not supported by pdediff.torch.perona_malik (it returns a tensor)")
    lead = x.ndim - spatial_dims
    ax = _channel_axis(channel_axis, x.ndim, lead)
    if x.dtype in _HALF:
        y = perona_malik(x.float(), spatial_dims=spatial_dims, channel_axis=channel_axis, **kwargs)
        return y.to(x.dtype)
    grad = torch.is_grad_enabled() and x.requires_grad
    if grad:
        _differentiable_options(kwargs)
    infos = []

    def run(xd: torch.Tensor) -> torch.Tensor:
        xc = xd
        if ax is not None:  # channels just before the spatial axes: (..., C, *spatial)
            xc = xc.movedim(ax, lead - 1)
        xc = xc.contiguous()
        arr = to_array(xc)
        per = arr.reshape((-1,) + tuple(arr.shape[lead - 1 if ax is not None else lead :]))
        out = backend_for(arr).xp.empty_like(per)
        for i in range(per.shape[0]):
            out[i], info = pm(per[i], channel_axis=0 if ax is not None else None, return_info=True, **kwargs)
            if i == 0:
                infos.append(info)
        y = from_array(out.reshape(arr.shape), xd)
        if ax is not None:
            y = y.movedim(lead - 1, ax).contiguous()
        return y

    if not grad:
        return run(x.detach())

    def reference(xr: torch.Tensor) -> torch.Tensor:
        info = infos[0]
        u = xr.movedim(ax, lead - 1) if ax is not None else xr
        u = _pm_explicit(u, spatial_dims=spatial_dims, channels=ax is not None, num_iter=int(info.num_iter),
                         dt=float(info.dt), kappa=float(info.kappa), conductance=str(info.conductance),
                         spacing=tuple(float(h) for h in info.spacing))
        return u.movedim(lead - 1, ax) if ax is not None else u

    return _PeronaMalik.apply(x, run, reference)
