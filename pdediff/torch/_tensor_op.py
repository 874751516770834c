"""``tensor_diffusion`` as a differentiable torch operator on ``(N, C, H, W)`` and ``(N, C, D, H, W)`` tensors.

Every step is written in torch operations, so autograd differentiates it: the Gaussian smoothings
(SciPy's kernel and boundary modes), the structure tensor, the diffusion tensor, the Selling weights
``w_k = -<b_i, D b_j>`` (linear in ``D``) and the symmetric flux scatter.  What is piecewise constant
in the input is taken from a detached copy: the Selling superbase (the integer offsets, found by the
compiled reduction of :mod:`pdediff.kernels.cpu.tensor`) and the number of sub-steps, so the
gradient is exact wherever they do not change (almost everywhere).  The result equals the NumPy
:func:`pdediff.tensor_diffusion` to rounding; see docs/tensor_diffusion.rst.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..anisotropic.tensor import (DEFAULT_ALPHA, DEFAULT_C, DEFAULT_NUM_ITER, DEFAULT_RHO_CED, DEFAULT_SIGMA,
                                  EED_DT_FACTOR, EED_KAPPA_FACTOR, EED_MIN_DIFFUSIVITY, GREY_RANGE,
                                  TENSOR_CONDUCTANCES, check_kind_options, too_anisotropic_error)
from ..catalogue import TENSOR_KINDS
from ..errors import ParameterError, StabilityError
from ..kernels.cpu.gaussian import gaussian_weights
from ..kernels.cpu.tensor import selling_bases3, selling_offsets2
from .ops import _check_tensor

__all__ = ["tensor_diffusion"]

_BOUNDARIES = ("neumann", "periodic", "dirichlet")


def tensor_diffusion(
    x: torch.Tensor,
    *,
    kind: str = "eed",
    num_iter: int | None = None,
    dt: float | None = None,
    kappa: float | str = "auto",
    sigma: float | None = None,
    rho: float | None = None,
    alpha: float | None = None,
    C: float | None = None,
    conductance: str = "weickert",
    spacing: float | tuple[float, ...] = 1.0,
    boundary: str = "neumann",
) -> torch.Tensor:
    r"""Differentiable tensor diffusion (Weickert's EED/CED) of ``(N, C, H, W)`` images or ``(N, C, D, H, W)``
    volumes.

    The same scheme as :func:`pdediff.tensor_diffusion` (explicit steps of
    :math:`u_t = \nabla\cdot(D\,\nabla u)` on Selling's non-negative stencil), per image
    ``n`` one tensor shared by its ``C`` channels, written in torch operations so that
    gradients flow to ``x`` (usable as a forward degradation or inside a loss).

    Parameters
    ----------
    x : torch.Tensor, shape (N, C, H, W) or (N, C, D, H, W)
        float32 or float64 (float16/bfloat16 computed in float32), any device (the integer offsets are
        found on the CPU).  3-D: EED and CED as the NumPy function has them (CED's line-like variant:
        ``lambda`` along the eigenvector of the smallest eigenvalue of ``J_rho``).
    kind, num_iter, dt, kappa, sigma, rho, alpha, C, conductance, spacing, boundary
        As in :func:`pdediff.tensor_diffusion` (``spacing``: one value or one per spatial axis,
        ``(h_H, h_W)`` or ``(h_D, h_H, h_W)``); an option of the other kind (``alpha``/``C`` for
        EED, ``kappa``/``conductance`` for CED) is refused.
        ``kappa="auto"`` is estimated per call from the detached input (no gradient through it).
        Default ``dt``: ``EED_DT_FACTOR * dt_max`` (0.8) for EED, ``dt_max`` for CED; default
        ``num_iter``: the diffusion time ``15 dt_max`` (EED) or ``50 dt_max`` (CED).

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as ``x``.

    Raises
    ------
    TypeError
        ``x`` not a floating-point ``torch.Tensor``.
    ParameterError
        ``x`` not 4-D or 5-D, unknown ``kind``/``conductance``/``boundary``, parameters out of range.
    StabilityError
        ``dt`` above the stability limit ``1 / (2 sum 1/h^2)``.

    Notes
    -----
    The Selling offsets and the sub-step count are piecewise constant functions of the input,
    taken from a detached copy; the weights, fluxes, smoothings and tensors are differentiated.
    The grey-value factor ``255 / (max - min)`` is differentiated through ``amax``/``amin`` (it
    cancels for EED with ``rho = 0``).  In 3-D the eigenvalues and eigenvector projectors of ``J_rho``
    are the compiled kernels' closed forms (trigonometric eigenvalues, the projector from the largest
    cross product of two rows of ``J - mu I``, its averages over an eigenspace where an eigenvalue is
    double), so the result equals the NumPy function's; their derivatives are infinite where two
    eigenvalues meet, and taken as zero there (a set of measure zero).

    Examples
    --------
    >>> import torch
    >>> from pdediff.torch import tensor_diffusion
    >>> vol = torch.rand(1, 1, 8, 10, 12, dtype=torch.float64, requires_grad=True)
    >>> out = tensor_diffusion(vol, kind="ced", num_iter=2)
    >>> out.shape, bool(out.min() >= vol.min() and out.max() <= vol.max())
    (torch.Size([1, 1, 8, 10, 12]), True)
    >>> out.sum().backward(); vol.grad.shape
    torch.Size([1, 1, 8, 10, 12])
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor; got {type(x).__name__}")
    if x.ndim not in (4, 5):
        raise ParameterError(f"{{x}} must have shape (N, C, H, W) or (N, C, D, H, W); got {tuple(x.shape)}",
                             param="x")
    _check_tensor(x, x.ndim - 2)  # as heat_blur and perona_malik: an empty tensor refused
    if not bool(torch.isfinite(x).all()):  # one NaN spreads through the smoothing and the tensors
        raise ParameterError("{x} must be finite (no NaN or inf)", param="x")
    if x.dtype in (torch.float16, torch.bfloat16):  # computed in float32 (half overflows at 65504), cast back
        return tensor_diffusion(x.float(), kind=kind, num_iter=num_iter, dt=dt, kappa=kappa, sigma=sigma, rho=rho,
                                alpha=alpha, C=C, conductance=conductance, spacing=spacing,
                                boundary=boundary).to(x.dtype)
    kind = _choice("kind", kind, TENSOR_KINDS)
    cond = _choice("conductance", conductance, TENSOR_CONDUCTANCES)
    boundary = _choice("boundary", boundary, _BOUNDARIES)
    check_kind_options(kind, alpha=alpha, C=C, kappa=kappa, conductance=cond)  # the other kind's: refused
    alpha = DEFAULT_ALPHA if alpha is None else alpha
    C = DEFAULT_C if C is None else C
    nd = x.ndim - 2
    h = (float(spacing),) * nd if np.ndim(spacing) == 0 else tuple(float(v) for v in spacing)
    if len(h) != nd or not all(v > 0 and math.isfinite(v) for v in h):
        raise ParameterError(f"{{spacing}} must be one positive number or {nd}, one per spatial axis; got "
                             f"{spacing!r}", param="spacing")
    sigma_ = DEFAULT_SIGMA * min(h) if sigma is None else _nonneg("sigma", sigma)
    rho_ = (DEFAULT_RHO_CED * min(h) if kind == "ced" else 0.0) if rho is None else _nonneg("rho", rho)
    if not 0 < alpha <= 1:
        raise ParameterError(f"{{alpha}} must lie in (0, 1]; got {alpha!r}", param="alpha")
    if not C > 0:
        raise ParameterError(f"{{C}} must be positive; got {C!r}", param="C")
    dt_max = 1.0 / (2.0 * sum(1.0 / v**2 for v in h))
    dt_ = dt_max * (EED_DT_FACTOR if kind == "eed" else 1.0) if dt is None else float(dt)
    if not dt_ > 0:
        raise ParameterError(f"{{dt}} must be positive; got {dt!r}", param="dt")
    if dt_ > dt_max * (1 + 1e-12):
        raise StabilityError(f"{{dt={dt_:.6g}}} exceeds the stability limit {dt_max:.6g}", param="dt")
    if num_iter is None:
        n_iter = max(1, int(round(DEFAULT_NUM_ITER[kind] * dt_max / dt_)))
    elif isinstance(num_iter, (bool, float)) or int(num_iter) != num_iter or num_iter < 0:
        raise ParameterError(f"{{num_iter}} must be a non-negative integer; got {num_iter!r}",
                             param="num_iter")
    else:
        n_iter = int(num_iter)

    if x.numel() == 0:  # no image, channel or cell: nothing diffuses (as torch's own operators on empty tensors)
        return x.clone()
    N = x.shape[0]
    # Values near the type's maximum or its smallest normal number run scaled by an exact power of two per image
    # (as the NumPy function does: the grey-range factor and squared gradients overflow there; 3e38 gave NaN)
    sc = _power_of_two_scales(x)
    if sc is not None:
        x = x * sc
    span = (x.detach().flatten(1).amax(1) - x.detach().flatten(1).amin(1))
    lo, hi = x.flatten(1).amin(1), x.flatten(1).amax(1)
    per_image = (N,) + (1,) * nd  # a factor per image, broadcast over the spatial axes
    gs = torch.where(span > 0, GREY_RANGE / torch.where(span > 0, hi - lo, torch.ones_like(hi)),
                     torch.ones_like(hi)).view(per_image)
    kinv2 = None
    if kind == "eed":
        if kappa == "auto":
            from ..anisotropic.kappa import estimate_kappa

            v = _gauss(x.detach().double(), sigma_, h, boundary).cpu().numpy()
            kap = [EED_KAPPA_FACTOR * estimate_kappa(v[n], h, "exponential") for n in range(N)]
            kappa_t = torch.tensor(kap, dtype=x.dtype, device=x.device).view(per_image)
        else:
            if not (isinstance(kappa, (int, float)) and not isinstance(kappa, bool) and 0 < kappa < math.inf):
                raise ParameterError(f"{{kappa}} must be a positive finite number or 'auto' (an infinite kappa "
                                     f"would be linear diffusion: use heat_blur); got {kappa!r}", param="kappa")
            kappa_t = torch.full(per_image, float(kappa), dtype=torch.float64, device=x.device)
            if sc is not None:
                kappa_t = kappa_t * sc.view(per_image).double()
        # per image, clamped: a huge kappa (its square inf) gives 0, a tiny one (its square 0) the largest value
        k2 = (kappa_t.double() * gs.double()) ** 2
        kinv2 = torch.where(torch.isinf(k2), torch.zeros_like(k2),
                            1.0 / k2.clamp(min=1.0 / torch.finfo(x.dtype).max)).to(x.dtype)
    grad_mode = kind == "eed" and rho_ == 0 and x.shape[1] == 1
    u = x
    for _ in range(n_iter):
        u = _step(u, kind, grad_mode, cond, kinv2, gs, sigma_, rho_, alpha, C, h, boundary, dt_)
    return u if sc is None else u / sc


def _power_of_two_scales(x: torch.Tensor) -> torch.Tensor | None:
    """Per image, the power of two that brings ``max|x|`` into [0.5, 1) where it lies beyond the thresholds of
    :func:`pdediff.tensor_diffusion` (``SCALED_ABOVE``/``SCALED_BELOW`` per dtype), else 1; ``None`` when no image
    needs one."""
    from .._plan import scale_for
    from ..anisotropic.tensor import SCALED_ABOVE, SCALED_BELOW

    if x.dtype not in (torch.float32, torch.float64) or x.numel() == 0:
        return None
    dt = np.dtype(np.float32 if x.dtype == torch.float32 else np.float64)
    amax = x.detach().abs().flatten(1).amax(1).double().cpu().numpy()
    above, below = SCALED_ABOVE[dt], SCALED_BELOW[dt]
    scales = [scale_for(float(a), dt) if math.isfinite(a) and (a > above or 0.0 < a < below) else 1.0 for a in amax]
    if all(v == 1.0 for v in scales):
        return None
    return torch.tensor(scales, dtype=x.dtype, device=x.device).view((-1,) + (1,) * (x.ndim - 1))


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.lower() not in allowed:
        choices = ", ".join(map(repr, allowed))
        raise ParameterError(f"{{{name}}} must be one of {choices}; got {value!r}", param=name)
    return value.lower()


def _nonneg(name: str, value: Any) -> float:
    v = float(value)
    if not (v >= 0 and math.isfinite(v)):
        raise ParameterError(f"{{{name}}} must be a non-negative number; got {value!r}", param=name)
    return v


def _index(n: int, pad: int, boundary: str, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices of a line of ``n`` cells padded by ``pad`` per side, and a mask (False: Dirichlet's
    zeros)."""
    i = torch.arange(-pad, n + pad, device=device)
    if boundary == "periodic":
        return i % n, torch.ones_like(i, dtype=torch.bool)
    if boundary == "neumann":  # SciPy's "reflect": half-sample symmetric, period 2n
        j = i % (2 * n)
        return torch.where(j < n, j, 2 * n - 1 - j), torch.ones_like(i, dtype=torch.bool)
    inside = (i >= 0) & (i < n)
    return i.clamp(0, n - 1), inside


def _gauss(v: torch.Tensor, std: float, h: tuple[float, ...], boundary: str) -> torch.Tensor:
    """``scipy.ndimage.gaussian_filter`` of the last ``len(h)`` axes (std in physical units; the boundary's
    mode)."""
    if std == 0:
        return v
    for ax, ha in zip(range(-len(h), 0), h):
        w = gaussian_weights(std / ha, np.float64)
        r = len(w) - 1
        if r == 0:
            continue
        n = v.shape[ax]
        idx, inside = _index(n, r, boundary, v.device)
        p = v.index_select(ax, idx)
        if boundary == "dirichlet":
            shape = [1] * v.ndim
            shape[ax] = -1
            p = p * inside.view(shape).to(v.dtype)
        k = torch.tensor(np.concatenate([w[::-1], w[1:]]), dtype=v.dtype, device=v.device)
        out = 0
        for t in range(2 * r + 1):
            out = out + k[t] * p.narrow(ax, t, n)
        v = out
    return v


def _shift(v: torch.Tensor, offset: tuple[int, ...], boundary: str) -> torch.Tensor:
    """``v`` at ``x + offset`` over its last ``len(offset)`` axes, with the structure tensor's ghost cells
    (edge cell, wrap, 0)."""
    out, mask = v, None
    for ax, d in zip(range(-len(offset), 0), offset):
        if d == 0:
            continue
        n = v.shape[ax]
        ii = torch.arange(n, device=v.device) + d
        if boundary == "periodic":
            out = out.index_select(ax, ii % n)
            continue
        out = out.index_select(ax, ii.clamp(0, n - 1))
        if boundary == "dirichlet":
            shape = [1] * len(offset)
            shape[ax] = -1
            m = ((ii >= 0) & (ii < n)).view(shape)
            mask = m if mask is None else mask & m
    if mask is not None:
        out = out * mask.to(v.dtype)
    return out


def _conductance(x: torch.Tensor, cond: str) -> torch.Tensor:
    if cond == "weickert":
        x2 = x * x
        z = 3.31488 / torch.where(x2 > 0, x2 * x2, torch.ones_like(x2))
        ok = (x2 > 0) & (z < 700.0)
        return torch.where(ok, 1.0 - torch.exp(-torch.where(ok, z, torch.zeros_like(z))), torch.ones_like(x))
    if cond == "exponential":
        return torch.where(x < 700.0, torch.exp(-x.clamp(max=700.0)), torch.zeros_like(x))
    return 1.0 / (1.0 + x)


def _pairs(nd: int) -> list[tuple[int, int]]:
    """The upper-triangle index pairs of a symmetric ``nd`` x ``nd`` tensor, in the kernels' component order
    (2-D: 00, 01, 11; 3-D: 00, 01, 02, 11, 12, 22)."""
    return [(a, b) for a in range(nd) for b in range(a, nd)]


def _gradient(v: torch.Tensor, h: tuple[float, ...], boundary: str) -> list[torch.Tensor]:
    """Central differences along each spatial axis, physical units."""
    nd = len(h)
    unit = [tuple(int(a == b) for b in range(nd)) for a in range(nd)]
    return [(_shift(v, unit[a], boundary) - _shift(v, tuple(-e for e in unit[a]), boundary)) * (0.5 / h[a])
            for a in range(nd)]


def _tensor(u, kind, grad_mode, cond, kinv2, gs, sigma, rho, alpha, C, h, boundary):
    """The diffusion tensor's components in :func:`_pairs` order, each (N, *spatial), physical units, as
    :func:`pdediff.tensor_diffusion` builds it."""
    nd = len(h)
    v = _gauss(u, sigma, h, boundary)
    if not grad_mode:
        v = v * gs.unsqueeze(1)
    g = _gradient(v, h, boundary)
    if grad_mode:
        g = [ga[:, 0] for ga in g]
        s = sum(ga * ga for ga in g)
        pos = s > 0
        gg = _conductance(s * (kinv2 * gs * gs), cond).clamp(min=EED_MIN_DIFFUSIVITY)
        t = torch.where(pos, (gg - 1.0) / torch.where(pos, s, torch.ones_like(s)), torch.zeros_like(s))
        return [float(a == b) + t * g[a] * g[b] for a, b in _pairs(nd)]
    J = [_gauss((g[a] * g[b]).sum(1), rho, h, boundary) for a, b in _pairs(nd)]
    if nd == 3:
        return _tensor3(J, kind, cond, kinv2, alpha, C)
    a, b, c = J
    d = a - c
    r2 = d * d + 4.0 * b * b
    pos = r2 > 0
    r = torch.sqrt(torch.where(pos, r2, torch.ones_like(r2)))
    p00 = torch.where(pos, 0.5 * (1.0 + d / r), torch.full_like(r, 0.5))
    p01 = torch.where(pos, b / r, torch.zeros_like(r))
    p11 = torch.where(pos, 0.5 * (1.0 - d / r), torch.full_like(r, 0.5))
    if kind == "eed":
        mu1 = 0.5 * (a + c + torch.where(pos, r, torch.zeros_like(r)))
        t = _conductance(mu1 * kinv2, cond).clamp(min=EED_MIN_DIFFUSIVITY) - 1.0
        return [1.0 + t * p00, t * p01, 1.0 + t * p11]
    z = C / torch.where(pos, r2, torch.ones_like(r2))
    live = pos & (z < 700.0)
    lam = torch.where(live, alpha + (1.0 - alpha) * torch.exp(-torch.where(live, z, torch.zeros_like(z))),
                      torch.full_like(z, alpha))
    t = lam - alpha
    return [alpha + t * (1.0 - p00), -t * p01, alpha + t * (1.0 - p11)]


def _safe(mask: torch.Tensor, value: torch.Tensor, fill: float = 1.0) -> torch.Tensor:
    """``value`` where ``mask``, else ``fill``: the operand of a division or root taken only where ``mask``
    (so that neither the result nor its gradient is NaN where the other branch is selected)."""
    return torch.where(mask, value, torch.full_like(value, fill))


def _eigen3(a00, a01, a02, a11, a12, a22):
    """Eigenvalues ``mu1 >= mu2 >= mu3`` per cell, :func:`pdediff.kernels.cpu.tensor.eigen_sym3` in torch."""
    p1 = a01 * a01 + a02 * a02 + a12 * a12
    q = (a00 + a11 + a22) / 3.0
    b00, b11, b22 = a00 - q, a11 - q, a22 - q
    p2 = b00 * b00 + b11 * b11 + b22 * b22 + 2.0 * p1
    diag = (p1 == 0) | (p2 == 0)
    srt = torch.sort(torch.stack([a00, a11, a22]), dim=0, descending=True).values
    p = torch.sqrt(_safe(~diag, p2) / 6.0)
    ip = 1.0 / p
    c00, c11, c22 = b00 * ip, b11 * ip, b22 * ip
    c01, c02, c12 = a01 * ip, a02 * ip, a12 * ip
    det = c00 * (c11 * c22 - c12 * c12) - c01 * (c01 * c22 - c12 * c02) + c02 * (c01 * c12 - c11 * c02)
    r = 0.5 * det
    inner = (r > -1.0) & (r < 1.0)
    phi = torch.where(inner, torch.acos(_safe(inner, r, 0.0)) / 3.0,
                      torch.where(r <= -1.0, torch.full_like(r, math.pi / 3.0), torch.zeros_like(r)))
    mu1 = q + 2.0 * p * torch.cos(phi)
    mu3 = q + 2.0 * p * torch.cos(phi + 2.0 * math.pi / 3.0)
    mu2 = 3.0 * q - mu1 - mu3
    return (torch.where(diag, srt[0], mu1), torch.where(diag, srt[1], mu2), torch.where(diag, srt[2], mu3))


def _pick(cands):
    """Per cell the candidate ``(x, y, z, n)`` with the largest ``n`` (the first on ties, as the kernel's
    ``if n1 > n`` chain)."""
    x, y, z, n = cands[0]
    for xc, yc, zc, nc in cands[1:]:
        take = nc > n
        x, y, z, n = (torch.where(take, xc, x), torch.where(take, yc, y), torch.where(take, zc, z),
                      torch.where(take, nc, n))
    return x, y, z, n


def _projector3(a00, a01, a02, a11, a12, a22, mu, scale):
    """The projector on the eigenspace of ``mu``, :func:`pdediff.kernels.cpu.tensor.projector3` in torch
    (the six components in :func:`_pairs` order)."""
    m00, m11, m22 = a00 - mu, a11 - mu, a22 - mu
    rows = ((a01 * a12 - a02 * m11, a02 * a01 - m00 * a12, m00 * m11 - a01 * a01),  # cross products of the
            (a01 * m22 - a02 * a12, a02 * a02 - m00 * m22, m00 * a12 - a01 * a02),  # rows of A - mu I
            (m11 * m22 - a12 * a12, a12 * a02 - a01 * m22, a01 * a12 - m11 * a02))
    x, y, z, n = _pick([(cx, cy, cz, cx * cx + cy * cy + cz * cz) for cx, cy, cz in rows])
    tol = 1e-5 * scale * scale
    single = (n > tol * tol) & (n > 0)
    inv = 1.0 / _safe(single, n)
    simple = [x * x * inv, x * y * inv, x * z * inv, y * y * inv, y * z * inv, z * z * inv]
    rx, ry, rz, rn = _pick([(m00, a01, a02, m00 * m00 + a01 * a01 + a02 * a02),
                            (a01, m11, a12, a01 * a01 + m11 * m11 + a12 * a12),
                            (a02, a12, m22, a02 * a02 + a12 * a12 + m22 * m22)])
    double = (rn > (1e-5 * scale) ** 2) & (rn > 0)
    ri = 1.0 / _safe(double, rn)
    plane = [0.5 * (1.0 - rx * rx * ri), -0.5 * rx * ry * ri, -0.5 * rx * rz * ri, 0.5 * (1.0 - ry * ry * ri),
             -0.5 * ry * rz * ri, 0.5 * (1.0 - rz * rz * ri)]
    third = [1.0 / 3.0, 0.0, 0.0, 1.0 / 3.0, 0.0, 1.0 / 3.0]
    return [torch.where(single, sv, torch.where(double, pv, torch.full_like(pv, tv)))
            for sv, pv, tv in zip(simple, plane, third)]


def _tensor3(J, kind, cond, kinv2, alpha, C):
    """EED's and CED's 3-D tensors from the structure tensor ``J`` (six components), as the kernel's
    ``_tensor3``: EED ``I + (g(mu1) - 1) P1``; CED ``alpha I + (lambda - alpha) P3``."""
    mu1, _, mu3 = _eigen3(*J)
    spread = mu1 - mu3
    if kind == "eed":
        P = _projector3(*J, mu1, spread)
        t = _conductance(mu1 * kinv2, cond).clamp(min=EED_MIN_DIFFUSIVITY) - 1.0
        base = 1.0
    else:
        P = _projector3(*J, mu3, spread)
        pos = spread > 0
        z = torch.where(pos, C / _safe(pos, spread * spread), torch.full_like(spread, math.inf))
        live = z < 700.0
        lam = torch.where(live, alpha + (1.0 - alpha) * torch.exp(-torch.where(live, z, torch.zeros_like(z))),
                          torch.full_like(z, alpha))
        t = lam - alpha
        base = alpha
    return [(base if a == b else 0.0) + t * pc for (a, b), pc in zip(_pairs(3), P)]


def _links(d: list[torch.Tensor], nd: int, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Selling's links of the index-unit tensors ``d`` (components in :func:`_pairs` order, each (N, *spatial)):
    integer offsets (N, *spatial, K, nd) from the detached copy's superbase, and the weights
    ``-<b_i, D b_j>`` (N, *spatial, K), differentiable in ``d``.  A failed reduction: the NumPy function's
    error, with its advice for ``kind``."""
    dd = torch.stack(d).detach().double().cpu().numpy()
    shape = dd.shape[1:]
    if nd == 2:
        offs = np.empty(shape + (3, 2), dtype=np.int64)
        bad = selling_offsets2(np.ascontiguousarray(dd), offs)
        if bad:
            raise too_anisotropic_error(int(bad), kind)
        o = torch.from_numpy(offs).to(d[0].device)
        # b_k from the offsets o_ij = b_k^perp: b = (o[1], -o[0]); the pairs (0,1), (0,2), (1,2) -> k = 2, 1, 0
        b = torch.stack([o[..., 1], -o[..., 0]], -1).to(d[0].dtype)  # (..., 3, 2): b2, b1, b0
        pairs = [(2, 1), (2, 0), (1, 0)]
    else:
        bases = np.empty(shape + (4, 3), dtype=np.int64)
        bad = selling_bases3(np.ascontiguousarray(dd), bases)
        if bad:
            raise too_anisotropic_error(int(bad), kind)
        bi = torch.from_numpy(bases).to(d[0].device)
        pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
        rest = [tuple(m for m in range(4) if m not in p) for p in pairs]
        o = torch.stack([torch.linalg.cross(bi[..., k, :], bi[..., l, :]) for k, l in rest], -2)
        b = bi.to(d[0].dtype)
    full = {}
    for (a, c), comp in zip(_pairs(nd), d):
        full[a, c] = full[c, a] = comp

    def q(i, j):
        return -sum(b[..., i, a] * full[a, c] * b[..., j, c] for a in range(nd) for c in range(nd))

    w = torch.stack([q(i, j) for i, j in pairs], -1).clamp(min=0.0)
    return o, w


def _step(u, kind, grad_mode, cond, kinv2, gs, sigma, rho, alpha, C, h, boundary, dt):
    """One explicit step (with the NumPy function's sub-steps) of ``u`` (N, C, *spatial)."""
    N, Ch = u.shape[:2]
    spatial = tuple(u.shape[2:])
    nd = len(spatial)
    D = _tensor(u, kind, grad_mode, cond, kinv2, gs, sigma, rho, alpha, C, h, boundary)
    d = [comp / (h[a] * h[c]) for (a, c), comp in zip(_pairs(nd), D)]
    o, w = _links(d, nd, kind)
    # the links as index pairs on the flattened (N, *spatial) grid, both signs
    cells = int(np.prod(spatial))
    pos = torch.meshgrid(*[torch.arange(n, device=u.device) for n in spatial], indexing="ij")
    pos = [p.unsqueeze(0).unsqueeze(-1) for p in pos]  # (1, *spatial, 1)
    base = (torch.arange(N, device=u.device) * cells).view((N,) + (1,) * nd + (1,))
    strides = [int(np.prod(spatial[a + 1:])) for a in range(nd)]
    x_flat = base + sum(p * st for p, st in zip(pos, strides))
    src, dst, wt, ghost_src, ghost_w = [], [], [], [], []
    for s in (1, -1):
        y = [p + s * o[..., a] for a, p in enumerate(pos)]
        inside = torch.ones_like(y[0], dtype=torch.bool)
        if boundary != "periodic":
            for ya, n in zip(y, spatial):
                inside = inside & (ya >= 0) & (ya < n)
        y_flat = base + sum((ya % n) * st for ya, n, st in zip(y, spatial, strides))
        xf = x_flat.expand_as(y_flat)
        src.append(xf[inside])
        dst.append(y_flat[inside])
        wt.append(0.5 * w[inside])
        if boundary == "dirichlet":
            out_ = ~inside
            ghost_src.append(xf[out_])
            ghost_w.append(w[out_])
    src, dst, wt = torch.cat(src), torch.cat(dst), torch.cat(wt)
    size = N * cells
    diag = torch.zeros(size, dtype=torch.float64, device=u.device)
    wd = wt.detach().double()
    diag.index_add_(0, src, wd).index_add_(0, dst, wd)
    if ghost_src:
        gsrc, gw = torch.cat(ghost_src), torch.cat(ghost_w)
        diag.index_add_(0, gsrc, gw.detach().double())
    # sub-steps per image, as the NumPy function takes them for each image on its own
    dmax = diag.view(N, cells).amax(1).cpu().numpy() if size else np.zeros(N)
    m = [max(1, math.ceil(dt * float(v) / (1.0 + 1e-9))) for v in dmax]
    perm = (1, 0) + tuple(range(2, 2 + nd))
    flat = u.permute(perm).reshape(Ch, size)
    for k in range(max(m, default=0)):
        fl = wt * (flat[:, dst] - flat[:, src])
        acc = torch.zeros_like(flat).index_add(1, src, fl).index_add(1, dst, -fl)
        if ghost_src:
            acc = acc.index_add(1, gsrc, -gw * flat[:, gsrc])
        if all(mn == m[0] for mn in m):
            flat = flat + (dt / m[0]) * acc
        else:
            f = torch.tensor([dt / mn if k < mn else 0.0 for mn in m], dtype=u.dtype, device=u.device)
            flat = flat + f.repeat_interleave(cells).view(1, size) * acc
    return flat.reshape((Ch, N) + spatial).permute(perm)
