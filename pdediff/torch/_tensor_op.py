"""``tensor_diffusion`` as a differentiable torch operator on ``(N, C, H, W)`` tensors (2-D EED/CED).

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
                                  TENSOR_CONDUCTANCES, check_kind_options)
from ..catalogue import TENSOR_KINDS
from ..errors import ParameterError, StabilityError
from ..kernels.cpu.gaussian import gaussian_weights
from ..kernels.cpu.tensor import selling_offsets2

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
    spacing: float | tuple[float, float] = 1.0,
    boundary: str = "neumann",
) -> torch.Tensor:
    r"""Differentiable tensor diffusion (Weickert's EED/CED) of ``(N, C, H, W)`` images.

    The same scheme as :func:`pdediff.tensor_diffusion` (explicit steps of
    :math:`u_t = \nabla\cdot(D\,\nabla u)` on Selling's non-negative stencil), per image
    ``n`` one tensor shared by its ``C`` channels, written in torch operations so that
    gradients flow to ``x`` (usable as a forward degradation or inside a loss).

    Parameters
    ----------
    x : torch.Tensor, shape (N, C, H, W)
        float32 or float64, any device (the integer offsets are found on the CPU).
    kind, num_iter, dt, kappa, sigma, rho, alpha, C, conductance, spacing, boundary
        As in :func:`pdediff.tensor_diffusion` (``spacing``: one value or ``(h_H, h_W)``); an
        option of the other kind (``alpha``/``C`` for EED, ``kappa``/``conductance`` for CED) is refused.
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
        ``x`` not 4-D, unknown ``kind``/``conductance``/``boundary``, parameters out of range.
    StabilityError
        ``dt`` above the stability limit ``1 / (2 sum 1/h^2)``.

    Notes
    -----
    The Selling offsets and the sub-step count are piecewise constant functions of the input,
    taken from a detached copy; the weights, fluxes, smoothings and tensors are differentiated.
    The grey-value factor ``255 / (max - min)`` is differentiated through ``amax``/``amin`` (it
    cancels for EED with ``rho = 0``).
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor; got {type(x).__name__}")
    if x.ndim != 4:
        raise ParameterError(f"{{x}} must have shape (N, C, H, W); got {tuple(x.shape)}", param="x")
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
    h = (float(spacing),) * 2 if np.ndim(spacing) == 0 else tuple(float(v) for v in spacing)
    if len(h) != 2 or not all(v > 0 and math.isfinite(v) for v in h):
        raise ParameterError(f"{{spacing}} must be one or two positive numbers; got {spacing!r}",
                             param="spacing")
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

    N = x.shape[0]
    # Values near the type's maximum or its smallest normal number run scaled by an exact power of two per image
    # (as the NumPy function does: the grey-range factor and squared gradients overflow there; 3e38 gave NaN)
    sc = _power_of_two_scales(x)
    if sc is not None:
        x = x * sc
    span = (x.detach().flatten(1).amax(1) - x.detach().flatten(1).amin(1))
    lo, hi = x.flatten(1).amin(1), x.flatten(1).amax(1)
    gs = torch.where(span > 0, GREY_RANGE / torch.where(span > 0, hi - lo, torch.ones_like(hi)),
                     torch.ones_like(hi)).view(N, 1, 1)
    kinv2 = None
    if kind == "eed":
        if kappa == "auto":
            from ..anisotropic.kappa import estimate_kappa

            v = _gauss(x.detach().double(), sigma_, h, boundary).cpu().numpy()
            kap = [EED_KAPPA_FACTOR * estimate_kappa(v[n], h, "exponential") for n in range(N)]
            kappa_t = torch.tensor(kap, dtype=x.dtype, device=x.device).view(N, 1, 1)
        else:
            if not (isinstance(kappa, (int, float)) and kappa > 0):
                raise ParameterError(f"{{kappa}} must be positive or 'auto'; got {kappa!r}", param="kappa")
            kappa_t = torch.full((N, 1, 1), float(kappa), dtype=torch.float64, device=x.device)
            if sc is not None:
                kappa_t = kappa_t * sc.view(N, 1, 1).double()
        # per image, clamped: an infinite kappa is the heat equation, a tiny one (its square 0) the largest value
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
    return torch.tensor(scales, dtype=x.dtype, device=x.device).view(-1, 1, 1, 1)


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


def _gauss(v: torch.Tensor, std: float, h: tuple[float, float], boundary: str) -> torch.Tensor:
    """``scipy.ndimage.gaussian_filter`` of the last two axes (std in physical units; the boundary's mode)."""
    if std == 0:
        return v
    for ax, ha in ((-2, h[0]), (-1, h[1])):
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


def _shift(v: torch.Tensor, di: int, dj: int, boundary: str) -> torch.Tensor:
    """``v`` at ``(i + di, j + dj)`` with the structure tensor's ghost cells (edge cell, wrap, 0)."""
    H, W = v.shape[-2:]
    ii = torch.arange(H, device=v.device) + di
    jj = torch.arange(W, device=v.device) + dj
    if boundary == "periodic":
        return v.index_select(-2, ii % H).index_select(-1, jj % W)
    out = v.index_select(-2, ii.clamp(0, H - 1)).index_select(-1, jj.clamp(0, W - 1))
    if boundary == "dirichlet":
        mask = ((ii >= 0) & (ii < H)).view(-1, 1) & ((jj >= 0) & (jj < W)).view(1, -1)
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


def _tensor(u, kind, grad_mode, cond, kinv2, gs, sigma, rho, alpha, C, h, boundary):
    """``(D00, D01, D11)``, each (N, H, W), physical units, as :func:`pdediff.tensor_diffusion` builds it."""
    v = _gauss(u, sigma, h, boundary)
    if not grad_mode:
        v = v * gs.unsqueeze(1)
    g0 = (_shift(v, 1, 0, boundary) - _shift(v, -1, 0, boundary)) * (0.5 / h[0])
    g1 = (_shift(v, 0, 1, boundary) - _shift(v, 0, -1, boundary)) * (0.5 / h[1])
    if grad_mode:
        g0, g1 = g0[:, 0], g1[:, 0]
        s = g0 * g0 + g1 * g1
        pos = s > 0
        gg = _conductance(s * (kinv2 * gs * gs), cond).clamp(min=EED_MIN_DIFFUSIVITY)
        t = torch.where(pos, (gg - 1.0) / torch.where(pos, s, torch.ones_like(s)), torch.zeros_like(s))
        return 1.0 + t * g0 * g0, t * g0 * g1, 1.0 + t * g1 * g1
    a = _gauss((g0 * g0).sum(1), rho, h, boundary)
    b = _gauss((g0 * g1).sum(1), rho, h, boundary)
    c = _gauss((g1 * g1).sum(1), rho, h, boundary)
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
        return 1.0 + t * p00, t * p01, 1.0 + t * p11
    z = C / torch.where(pos, r2, torch.ones_like(r2))
    live = pos & (z < 700.0)
    lam = torch.where(live, alpha + (1.0 - alpha) * torch.exp(-torch.where(live, z, torch.zeros_like(z))),
                      torch.full_like(z, alpha))
    t = lam - alpha
    return alpha + t * (1.0 - p00), -t * p01, alpha + t * (1.0 - p11)


def _step(u, kind, grad_mode, cond, kinv2, gs, sigma, rho, alpha, C, h, boundary, dt):
    """One explicit step (with the NumPy function's sub-steps) of ``u`` (N, C, H, W)."""
    N, Ch, H, W = u.shape
    D00, D01, D11 = _tensor(u, kind, grad_mode, cond, kinv2, gs, sigma, rho, alpha, C, h, boundary)
    d00, d01, d11 = D00 / h[0] ** 2, D01 / (h[0] * h[1]), D11 / h[1] ** 2
    # the superbase (integer offsets) from a detached copy; the weights -<b_i, D b_j> differentiably
    dd = torch.stack([d00, d01, d11]).detach().double().cpu().numpy()
    offs = np.empty((N, H, W, 3, 2), dtype=np.int64)
    if selling_offsets2(np.ascontiguousarray(dd), offs):
        raise ParameterError("the diffusion tensor is too anisotropic for the stencil; raise {alpha}",
                             param="alpha")
    o = torch.from_numpy(offs).to(u.device)
    # b_k from the offsets o_ij = b_k^perp: b = (o[1], -o[0]); the pairs (0,1), (0,2), (1,2) -> k = 2, 1, 0
    bx, by = o[..., 1].to(u.dtype), -o[..., 0].to(u.dtype)  # (N, H, W, 3): b2, b1, b0

    def q(i, j):
        return -(bx[..., i] * (d00 * bx[..., j] + d01 * by[..., j])
                 + by[..., i] * (d01 * bx[..., j] + d11 * by[..., j]))

    w = torch.stack([q(2, 1), q(2, 0), q(1, 0)], -1).clamp(min=0.0)  # weights of links o[..., 0..2]
    # the links as index pairs on the flattened (N, H, W) grid, both signs
    n_idx = torch.arange(N, device=u.device).view(N, 1, 1, 1)
    ii = torch.arange(H, device=u.device).view(1, H, 1, 1)
    jj = torch.arange(W, device=u.device).view(1, 1, W, 1)
    src, dst, wt, ghost_src, ghost_w = [], [], [], [], []
    for s in (1, -1):
        yi, yj = ii + s * o[..., 0], jj + s * o[..., 1]
        inside = (yi >= 0) & (yi < H) & (yj >= 0) & (yj < W)
        if boundary == "periodic":
            inside = torch.ones_like(inside)
        yi, yj = yi % H, yj % W
        x_flat = (n_idx * H + ii) * W + jj
        y_flat = (n_idx * H + yi) * W + yj
        x_flat = x_flat.expand_as(yi)
        src.append(x_flat[inside])
        dst.append(y_flat[inside])
        wt.append(0.5 * w[inside])
        if boundary == "dirichlet":
            out_ = ~inside
            ghost_src.append(x_flat[out_])
            ghost_w.append(w[out_])
    src, dst, wt = torch.cat(src), torch.cat(dst), torch.cat(wt)
    size = N * H * W
    diag = torch.zeros(size, dtype=torch.float64, device=u.device)
    wd = wt.detach().double()
    diag.index_add_(0, src, wd).index_add_(0, dst, wd)
    if ghost_src:
        gsrc, gw = torch.cat(ghost_src), torch.cat(ghost_w)
        diag.index_add_(0, gsrc, gw.detach().double())
    # sub-steps per image, as the NumPy function takes them for each image on its own
    dmax = diag.view(N, H * W).amax(1).cpu().numpy() if size else np.zeros(N)
    m = [max(1, math.ceil(dt * float(v) / (1.0 + 1e-9))) for v in dmax]
    flat = u.permute(1, 0, 2, 3).reshape(Ch, size)
    for k in range(max(m, default=0)):
        fl = wt * (flat[:, dst] - flat[:, src])
        acc = torch.zeros_like(flat).index_add(1, src, fl).index_add(1, dst, -fl)
        if ghost_src:
            acc = acc.index_add(1, gsrc, -gw * flat[:, gsrc])
        if all(mn == m[0] for mn in m):
            flat = flat + (dt / m[0]) * acc
        else:
            f = torch.tensor([dt / mn if k < mn else 0.0 for mn in m], dtype=u.dtype, device=u.device)
            flat = flat + f.repeat_interleave(H * W).view(1, size) * acc
    return flat.reshape(Ch, N, H, W).permute(1, 0, 2, 3)
