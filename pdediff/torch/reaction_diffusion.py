"""Trainable nonlinear reaction–diffusion (TNRD): Perona–Malik with learned filters and influence functions.

Chen and Pock's model [CP17]_ runs ``T`` stages of

.. math:: u_t = u_{t-1} - \\sum_k K_{t,k}^\\top \\varphi_{t,k}(K_{t,k} u_{t-1}) - \\lambda_t (u_{t-1} - f),

with ``f`` the noisy image, learned filters ``K_{t,k}`` (``m`` cells per
axis, applied as correlations over a symmetrically padded image: pdediff's
Neumann boundary) and learned influence functions ``phi_{t,k}``.  With the
forward differences along each axis as filters and ``phi(s) = dt s g(s^2 /
kappa^2)`` one stage *is* one explicit Perona–Malik step
(:func:`pdediff.perona_malik` with ``sigma=0``); :meth:`ReactionDiffusion.from_perona_malik`
builds exactly that model, and training moves away from it.

Choices (documented in docs/learned_denoisers.rst):

* ``K^T`` is the exact adjoint of "pad symmetrically, then correlate": a
  transposed convolution followed by folding the padded border back onto the
  cells it copied.  Each stage is therefore a gradient step on the energy
  ``sum_k rho_k(K_k u) + lambda/2 |u - f|^2`` with ``rho_k' = phi_k``.
* Filters are zero-mean by default (``zero_mean=True``, as in the paper):
  the stored weights are projected (their mean subtracted) at every use, so a
  constant image gives zero responses (and is a fixed point of every stage
  whose influence functions vanish at 0, as the Perona–Malik term does).
* ``phi_k(s) = sum_j w_{kj} exp(-(s - mu_j)^2 / (2 gamma^2)) + a_k s g(s^2 / kappa^2)``:
  a mixture of ``num_rbf`` Gaussians with centres ``mu_j`` evenly spread
  over ``[-rbf_range, rbf_range]`` (``gamma`` their spacing) plus an exact
  Perona–Malik term with a learned weight ``a_k`` and a fixed ``kappa`` and
  conductance.  The PM initialisation sets ``w = 0``, ``a = dt``: exact, not
  fitted, so the untrained model reproduces pdediff's step to rounding.
* Intensities: the model works in the units of its input; the defaults
  (``rbf_range=1``, ``kappa=0.1``) and :func:`train_reaction_diffusion`
  assume images in ``[0, 1]`` (noise levels as fractions of that range).
  Unit spacing.

References
----------
.. [CP17] Y. Chen, T. Pock, "Trainable nonlinear reaction diffusion: a flexible
   framework for fast and effective image restoration", IEEE TPAMI 39(6), 2017.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import pickle
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from ..catalogue import CONDUCTANCES
from ..errors import CheckpointError, ParameterError
from ..io import atomic_path
from ..kernels.cpu.lookup import interpolate_rows

__all__ = ["ReactionDiffusion", "train_reaction_diffusion", "plot_reaction_diffusion", "ReactionDiffusionTraining"]

_CONV = {2: F.conv2d, 3: F.conv3d}
_CONV_T = {2: F.conv_transpose2d, 3: F.conv_transpose3d}
#: What a training checkpoint of :func:`train_reaction_diffusion` holds (tensors and plain values only).
_CKPT_KEYS = ("kind", "config", "model", "optimizer", "generator", "losses", "step", "settings")
_KIND = "pdediff.ReactionDiffusion"


def _int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ParameterError(f"{{{name}}} must be an integer >= {minimum}; got {value!r}", param=name)
    return int(value)


def _positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise ParameterError(f"{{{name}}} must be a finite {kind} number; got {value!r}", param=name)
    return v


def _conductance(x: torch.Tensor, name: str) -> torch.Tensor:
    """Perona–Malik ``g`` of ``x = s^2 / kappa^2`` (pdediff's three named conductances)."""
    if name == "rational":
        return 1.0 / (1.0 + x)
    if name == "tukey":
        return torch.where(x <= 1.0, 0.5 * (1.0 - x) ** 2, torch.zeros_like(x))
    return torch.exp(-x)


def _symmetric_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices of a symmetric (edge-repeating, ``numpy.pad(mode="symmetric")``) padding by ``pad`` of ``n`` cells."""
    i = torch.arange(-pad, n + pad, device=device)
    period = 2 * n
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - 1 - i, i)


#: Gaussians farther than this many widths from a response are left out of the mixture (each would add at most
#: ``exp(-0.5 * 7.5^2) < 7e-13`` of its weight): every response meets the ``2 * _RBF_REACH + 1`` nearest centres.
_RBF_REACH = 7
#: The inference table (float32, no gradients): grid cells per Gaussian width (and per ``kappa``); linear
#: interpolation's error is at most ``h^2 / 8 max|phi''|``, about ``3e-5`` of a Gaussian's weight.
_TABLE_CELLS = 64
#: ... its half-width covers the Perona–Malik term to ``_PM_REACH kappa`` (``s exp(-s^2/kappa^2)`` is below
#: ``1e-15 kappa`` beyond), and a table longer than ``_TABLE_MAX`` entries per filter is not built.
_PM_REACH = 7
_TABLE_MAX = 1 << 17


class _RBFMixture(torch.autograd.Function):
    """``sum_j w[k, j] exp(-(s - mu_j)^2 / (2 gamma^2))``, ``mu_j = lo + j gamma``, over filter axis 1 of ``s``.

    Only the ``2 * _RBF_REACH + 1`` centres nearest each response, with two
    ``exp`` per response (the others by the recurrence
    ``E_{d+1} = E_d exp(delta - d - 1/2)``), forward and backward
    (recomputed), so time and memory stay a few passes over ``s`` whatever
    ``num_rbf`` is.
    """

    @staticmethod
    def _terms(s, w, lo, gamma):
        K = _RBF_REACH
        P = 2 * K + 1
        n, J = w.shape
        st = s.transpose(0, 1).reshape(n, -1)
        z = (st - lo) * (1.0 / gamma)
        j0 = torch.clamp(torch.round(z), -K - 1, J + K)
        outside = (z < -K - 1) | (z > J + K) | ~torch.isfinite(z)
        delta = torch.where(outside, torch.zeros_like(z), z - j0)  # in [-1/2, 1/2]; weights there are all 0
        idx = j0.long() + P
        wp = F.pad(w, (P, P))
        e0 = torch.exp(-0.5 * delta * delta)
        up = torch.exp(delta - 0.5)  # E_{d+1} / E_d = up * exp(-d)
        down = math.exp(-1.0) / up  # E_{-(d+1)} / E_{-d} = down * exp(-d)
        terms = [(0, e0)]
        eu, ed = e0, e0
        for d in range(K):
            eu = eu * up * math.exp(-d)
            ed = ed * down * math.exp(-d)
            terms += [(d + 1, eu), (-(d + 1), ed)]
        return st, delta, idx, wp, terms

    @staticmethod
    def forward(ctx, s, w, lo, gamma):  # noqa: D102
        ctx.save_for_backward(s, w)
        ctx.lo, ctx.gamma = lo, gamma
        st, _, idx, wp, terms = _RBFMixture._terms(s, w, lo, gamma)
        out = torch.zeros_like(st)
        for d, e in terms:
            out = out + wp.gather(1, idx + d) * e
        shape = (s.shape[1], s.shape[0]) + tuple(s.shape[2:])
        return out.reshape(shape).transpose(0, 1).contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # noqa: D102
        s, w = ctx.saved_tensors
        st, delta, idx, wp, terms = _RBFMixture._terms(s, w, ctx.lo, ctx.gamma)
        g = grad.transpose(0, 1).reshape(st.shape)
        gs = torch.zeros_like(st)
        gwp = torch.zeros_like(wp)
        for d, e in terms:
            i = idx + d
            gs = gs - wp.gather(1, i) * e * (delta - d)
            gwp.scatter_add_(1, i, g * e)
        P = 2 * _RBF_REACH + 1
        shape = (s.shape[1], s.shape[0]) + tuple(s.shape[2:])
        gs = (gs * g * (1.0 / ctx.gamma)).reshape(shape).transpose(0, 1)
        return gs, gwp[:, P:P + w.shape[1]], None, None


class ReactionDiffusion(torch.nn.Module):
    """Trainable nonlinear reaction–diffusion (Chen & Pock's TNRD), 2-D or 3-D.

    Parameters
    ----------
    ndim : {2, 3}
        Spatial dimensions (``conv2d`` or ``conv3d``).
    stages : int
        Number of reaction–diffusion stages ``T`` (>= 1).
    filters : int
        Filters per stage ``N_k`` (>= 1).
    filter_size : int
        Cells per axis ``m`` of each filter (>= 2; odd sizes are centred).
    num_rbf : int
        Gaussians per influence function (>= 1), centres evenly spread over
        ``[-rbf_range, rbf_range]``, width their spacing.
    rbf_range : float
        Half-width of the centres' range, in intensity units (filter responses
        beyond it get only the Gaussians' tails and the Perona–Malik term).
    kappa : float
        Edge threshold of the exact Perona–Malik term of every influence
        function (intensity units per cell).
    conductance : {"exponential", "rational", "tukey"}
        Conductance ``g`` of that term.
    zero_mean : bool
        Project every filter onto zero mean at each use (as in the paper).
    seed : int
        Seed of the random initial filters (zero-mean, unit-norm; their
        influence functions start at zero, so the untrained model is the
        identity).
    dtype : torch.float32 or torch.float64
        The parameters' type (``model.double()`` after construction would
        round ``dt`` through float32: build float64 models with ``dtype``).

    Notes
    -----
    Parameters per stage: ``filters`` ``(N, 1, m, ..., m)``, ``rbf_weights``
    ``(N, num_rbf)``, ``pm_weights`` ``(N,)`` and ``reaction`` (``lambda``,
    a scalar), in :class:`torch.nn.ParameterList` s of length ``stages``.
    :meth:`forward` takes ``(*leading, *spatial)`` tensors.  Save and load
    with :meth:`save` / :meth:`load` (tensors only; nothing pickled).
    """

    def __init__(self, ndim: int = 2, stages: int = 5, filters: int = 24, filter_size: int = 5, *,
                 num_rbf: int = 63, rbf_range: float = 1.0, kappa: float = 0.1,
                 conductance: str = "exponential", zero_mean: bool = True, seed: int = 0,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if isinstance(ndim, bool) or not isinstance(ndim, numbers.Integral):
            raise TypeError(f"ndim must be an integer (2 or 3); got {type(ndim).__name__} {ndim!r}")
        if ndim not in (2, 3):
            raise ParameterError(f"{{ndim}} must be 2 or 3; got {ndim!r}", param="ndim")
        stages = _int(stages, "stages", 1)
        filters = _int(filters, "filters", 1)
        filter_size = _int(filter_size, "filter_size", 2)
        num_rbf = _int(num_rbf, "num_rbf", 1)
        rbf_range = _positive(rbf_range, "rbf_range")
        kappa = _positive(kappa, "kappa")
        if not isinstance(conductance, str):
            raise TypeError(f"conductance must be one of {', '.join(CONDUCTANCES)}; got {conductance!r}")
        if conductance not in CONDUCTANCES:
            raise ParameterError(f"{{conductance}} must be one of {', '.join(CONDUCTANCES)}; got {conductance!r}",
                                 param="conductance")
        if not isinstance(zero_mean, bool):
            raise TypeError(f"zero_mean must be a bool; got {zero_mean!r}")
        seed = _int(seed, "seed", 0)
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64; got {dtype!r}")
        self.config = {"ndim": int(ndim), "stages": stages, "filters": filters, "filter_size": filter_size,
                       "num_rbf": num_rbf, "rbf_range": rbf_range, "kappa": kappa, "conductance": conductance,
                       "zero_mean": zero_mean, "seed": seed}
        gen = torch.Generator().manual_seed(seed)
        shape = (filters, 1) + (filter_size,) * ndim
        ws = []
        for _ in range(stages):
            w = torch.randn(shape, generator=gen, dtype=torch.float64)
            w = w - w.flatten(1).mean(1).view(-1, *([1] * (ndim + 1)))
            w = w / w.flatten(1).norm(dim=1).view(-1, *([1] * (ndim + 1)))
            ws.append(torch.nn.Parameter(w.to(dtype)))
        self.filters = torch.nn.ParameterList(ws)
        self.rbf_weights = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(filters, num_rbf, dtype=dtype))
                                                   for _ in range(stages)])
        self.pm_weights = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(filters, dtype=dtype)) for _ in range(stages)])
        self.reaction = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros((), dtype=dtype)) for _ in range(stages)])
        #: Evaluate the influence functions by a lookup table in float32 without gradients (inference):
        #: within ``1e-4`` of the exact evaluation on ``[0, 1]`` images; ``False`` always evaluates them exactly.
        self.lookup = True
        self._tables: dict = {}  # stage -> (parameter versions, table): rebuilt when the weights change
        self.register_buffer("centres", torch.linspace(-rbf_range, rbf_range, num_rbf, dtype=torch.float64),
                             persistent=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_perona_malik(cls, kappa: float, dt: float, *, conductance: str = "exponential", stages: int = 1,
                          ndim: int = 2, filters: int | None = None, filter_size: int = 3, **kwargs: Any
                          ) -> ReactionDiffusion:
        """A model whose every stage is one explicit Perona–Malik step (``sigma=0``, unit spacing).

        Parameters
        ----------
        kappa : float
            Edge threshold, intensity units per cell (as :func:`pdediff.perona_malik`'s ``kappa``).
        dt : float
            Time step of each stage (``<= 1 / (2 ndim)`` for a stable explicit step).
        conductance : {"exponential", "rational", "tukey"}
            As :func:`pdediff.perona_malik`'s.
        stages : int
            Number of stages (each one more Perona–Malik step).
        ndim : {2, 3}
            Spatial dimensions.
        filters : int, optional
            Filters per stage, at least ``ndim`` (default ``ndim``): the first
            ``ndim`` are the forward differences along each axis with
            ``phi(s) = dt s g(s^2 / kappa^2)``; any others are random
            zero-mean filters whose influence functions start at zero.
        filter_size : int
            Cells per axis of each filter (>= 2; the difference sits at the centre).
        **kwargs
            ``num_rbf``, ``rbf_range``, ``zero_mean``, ``seed``, ``dtype`` of :class:`ReactionDiffusion`
            (``dtype=torch.float64`` for a float64 model equal to pdediff's float64 step).

        Returns
        -------
        ReactionDiffusion
            With ``lambda = 0``; ``model(u)`` equals
            ``pdediff.perona_malik(u, num_iter=stages, method="explicit", sigma=0, kappa=kappa, dt=dt,
            conductance=conductance)`` to rounding.
        """
        dt = _positive(dt, "dt")
        filters = ndim if filters is None else filters
        model = cls(ndim, stages, filters, filter_size, kappa=kappa, conductance=conductance, **kwargs)
        if filters < ndim:
            raise ParameterError(f"{{filters}} must be at least {{ndim}} ({ndim}) for the Perona–Malik "
                                 f"initialisation; got {filters!r}", param="filters")
        c = (filter_size - 1) // 2
        with torch.no_grad():
            for t in range(model.config["stages"]):
                w = model.filters[t]
                for a in range(ndim):
                    w[a].zero_()
                    centre = [0] + [c] * ndim
                    w[a][tuple(centre)] = -1.0
                    centre[1 + a] += 1
                    w[a][tuple(centre)] = 1.0
                model.pm_weights[t][:ndim] = dt
        return model

    # ------------------------------------------------------------------ the operator
    def _filters(self, t: int, dtype: torch.dtype) -> torch.Tensor:
        w = self.filters[t].to(dtype)
        if self.config["zero_mean"]:
            w = w - w.flatten(1).mean(1).view(-1, *([1] * (w.ndim - 1)))
        return w

    def influence(self, t: int, s: torch.Tensor) -> torch.Tensor:
        """``phi_{t,k}(s)`` of every filter ``k`` of stage ``t``: ``s`` ``(B, N, ...)`` -> same shape.

        Parameters
        ----------
        t : int
            Stage, ``0 <= t < stages``.
        s : Tensor
            Filter responses, the filter axis second.

        Returns
        -------
        Tensor
            The influence functions' values, same shape and dtype as ``s``.
        """
        cfg = self.config
        n = s.shape[1]
        view = (1, n) + (1,) * (s.ndim - 2)
        a = self.pm_weights[t].to(s.dtype).view(view)
        out = a * s * _conductance(s * s * (1.0 / (cfg["kappa"] * cfg["kappa"])), cfg["conductance"])
        return out + _RBFMixture.apply(s, self.rbf_weights[t].to(s.dtype), -cfg["rbf_range"], self._gamma())

    def _gamma(self) -> float:
        cfg = self.config
        return (2 * cfg["rbf_range"] / (cfg["num_rbf"] - 1)) if cfg["num_rbf"] > 1 else cfg["rbf_range"]

    def _table(self, t: int, device: torch.device) -> tuple[torch.Tensor, float, float, bool] | None:
        """Stage ``t``'s influence functions tabulated for :meth:`_influence_table` (``None``: too fine a grid).

        Returns ``(table, start, 1 / h, with_pm)``: ``table`` ``(N, n)``, each cell ``phi_k(start + i h)``
        and the difference to the next cell as two float32 packed in one float64; ``with_pm`` says whether the Perona–Malik term is in it (exponential
        and Tukey conductances, negligible beyond the grid) or must be added exactly (rational, whose
        ``kappa^2 / s`` tail is not).
        """
        key = (t, str(device), self.rbf_weights[t]._version, self.pm_weights[t]._version,
               self.rbf_weights[t].data_ptr(), self.pm_weights[t].data_ptr())
        cached = self._tables.get(t)
        if cached is not None and cached[0] == key:
            return cached[1]
        cfg = self.config
        gamma, kappa = self._gamma(), cfg["kappa"]
        with_pm = cfg["conductance"] != "rational"
        half = cfg["rbf_range"] + (_RBF_REACH + 1) * gamma
        h = gamma / _TABLE_CELLS
        if with_pm:
            half = max(half, _PM_REACH * kappa)
            h = min(h, kappa / _TABLE_CELLS)
        n = int(math.ceil(2 * half / h)) + 1
        if n > _TABLE_MAX:
            self._tables[t] = (key, None)
            return None
        grid = torch.linspace(-half, half, n, dtype=torch.float64, device=device)
        N = self.filters[t].shape[0]
        s = grid.view(1, 1, n).expand(1, N, n)
        w = self.rbf_weights[t].detach().to(device, torch.float64)
        phi = _RBFMixture.apply(s, w, -cfg["rbf_range"], gamma)[0]
        if with_pm:
            a = self.pm_weights[t].detach().to(device, torch.float64).view(N, 1)
            phi = phi + a * s[0] * _conductance(s[0] * s[0] * (1.0 / (kappa * kappa)), cfg["conductance"])
        v = phi.to(torch.float32)
        slope = torch.zeros_like(v)
        slope[:, :-1] = v[:, 1:] - v[:, :-1]
        packed = torch.stack([v, slope], dim=2).contiguous().view(torch.float64).view(N, n)
        table = (packed, -half, (n - 1) / (2 * half), with_pm)
        self._tables[t] = (key, table)
        return table

    def _influence_table(self, t: int, s: torch.Tensor, table: tuple) -> torch.Tensor:
        """``phi`` of responses ``s`` ``(B, N, L)`` by linear interpolation in the table of :meth:`_table`.

        One gather per response: each table cell holds its value and the slope to the next, packed in
        8 bytes (float32 inference, no gradients).
        """
        packed, start, inv_h, with_pm = table
        B, N, _ = s.shape
        n = packed.shape[1]
        if s.device.type == "cpu":  # one fused compiled pass (pdediff.kernels.cpu.lookup)
            pair = packed.view(torch.float32).view(N, n, 2)
            out = torch.empty_like(s)
            interpolate_rows(s.contiguous().numpy(), pair[..., 0].contiguous().numpy(),
                             pair[..., 1].contiguous().numpy(), float(start), float(inv_h), out.numpy())
        else:
            out = self._interpolate(s, packed, start, inv_h)
        if not with_pm:
            cfg = self.config
            a = self.pm_weights[t].to(s.dtype).view(1, N, 1)
            out = out + a * s * _conductance(s * s * (1.0 / (cfg["kappa"] * cfg["kappa"])), cfg["conductance"])
        return out

    @staticmethod
    def _interpolate(s: torch.Tensor, packed: torch.Tensor, start: float, inv_h: float) -> torch.Tensor:
        """The table lookup in tensor operations (any device): the reference of the compiled CPU kernel."""
        B, N, _ = s.shape
        n = packed.shape[1]
        z = torch.mul(s, inv_h).add_(-start * inv_h).clamp_(0.0, n - 1.0)
        i0 = z.long()  # floor (z >= 0); the last cell's slope is 0, so i0 = n - 1 needs no clamp
        z.frac_()  # the fraction, in [0, 1)
        pair = packed.unsqueeze(0).expand(B, N, n).gather(2, i0).view(torch.float32)
        return torch.addcmul(pair[..., 0::2], z, pair[..., 1::2]).view(B, N, -1)

    def _pad(self, u: torch.Tensor) -> torch.Tensor:
        m = self.config["filter_size"]
        lo, hi = (m - 1) // 2, m // 2
        for a in range(self.config["ndim"]):
            dim = u.ndim - self.config["ndim"] + a
            n = u.shape[dim]
            idx = _symmetric_index(n, max(lo, hi), u.device)[max(lo, hi) - lo: max(lo, hi) + n + hi]
            u = u.index_select(dim, idx)
        return u

    def _unpad(self, v: torch.Tensor, spatial: Sequence[int]) -> torch.Tensor:
        """The adjoint of :meth:`_pad`: every padded cell's value added onto the cell it copied."""
        m = self.config["filter_size"]
        lo, hi = (m - 1) // 2, m // 2
        for a in reversed(range(self.config["ndim"])):
            dim = v.ndim - self.config["ndim"] + a
            n = spatial[a]
            idx = _symmetric_index(n, max(lo, hi), v.device)[max(lo, hi) - lo: max(lo, hi) + n + hi]
            shape = list(v.shape)
            shape[dim] = n
            v = torch.zeros(shape, dtype=v.dtype, device=v.device).index_add(dim, idx, v)
        return v

    def stage(self, t: int, u: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """One stage ``u - sum_k K_k^T phi_k(K_k u) - lambda (u - f)`` on ``(B, 1, *spatial)`` tensors.

        Parameters
        ----------
        t : int
            Stage, ``0 <= t < stages``.
        u, f : Tensor, shape ``(B, 1, *spatial)``
            The current estimate and the noisy image, float32 or float64.

        Returns
        -------
        Tensor
            The next estimate, same shape and dtype.
        """
        nd = self.config["ndim"]
        w = self._filters(t, u.dtype)
        table = self._table(t, u.device) if self._fast(u) else None
        if table is None:
            r = _CONV[nd](self._pad(u), w)
            back = _CONV_T[nd](self.influence(t, r), w)
        elif nd == 2:  # inference in 2-D: K and K^T as matrix products with unfold/fold (single-channel
            # convolutions are several times slower in oneDNN), phi from the table
            m = self.config["filter_size"]
            wm = w.reshape(w.shape[0], -1)
            padded = self._pad(u)
            r = wm @ F.unfold(padded, m)  # (B, N, cells)
            back = F.fold(wm.t() @ self._influence_table(t, r, table), padded.shape[2:], m)
        else:
            r = _CONV[nd](self._pad(u), w)
            shape = r.shape
            back = _CONV_T[nd](self._influence_table(t, r.flatten(2), table).view(shape), w)
        diffusion = self._unpad(back, u.shape[2:])
        return u - diffusion - self.reaction[t].to(u.dtype) * (u - f)

    def _fast(self, u: torch.Tensor) -> bool:
        """Whether :meth:`stage` evaluates ``phi`` by table: float32 with gradients off and ``lookup`` on."""
        return self.lookup and u.dtype == torch.float32 and not torch.is_grad_enabled()

    def forward(self, x: torch.Tensor, *, stages: int | None = None) -> torch.Tensor:
        """Denoise ``x``: run the stages with ``f = x`` and ``u_0 = x``.

        Parameters
        ----------
        x : Tensor, shape ``(*leading, *spatial)``
            float32 or float64, ``ndim`` trailing spatial axes of any size
            (symmetric padding mirrors the image as often as a filter needs);
            every leading index is one image.
        stages : int, optional
            Run only the first ``stages`` stages (greedy training); default all.

        Returns
        -------
        Tensor
            Same shape, dtype and device.
        """
        nd = self.config["ndim"]
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
        if x.ndim < nd:
            raise ParameterError(f"{{x}} must have at least {nd} (spatial) axes; got shape {tuple(x.shape)}",
                                 param="x")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor; got {x.dtype}")
        T = self.config["stages"] if stages is None else _int(stages, "stages", 1)
        if T > self.config["stages"]:
            raise ParameterError(f"{{stages}} must be at most the model's {self.config['stages']}; got {T}",
                                 param="stages")
        lead = x.shape[:-nd]
        f = x.reshape((-1, 1) + tuple(x.shape[-nd:]))
        u = f
        for t in range(T):
            u = self.stage(t, u, f)
        return u.reshape(tuple(lead) + tuple(x.shape[-nd:]))

    # ------------------------------------------------------------------ inspection
    def components(self, stage: int = 0, *, grid: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The filters and influence functions of one stage, as NumPy arrays (for plots).

        Parameters
        ----------
        stage : int
            Stage, ``0 <= stage < stages``.
        grid : array of float, optional
            Filter responses at which to sample ``phi``; default 401 points over
            ``[-1.2 rbf_range, 1.2 rbf_range]``.

        Returns
        -------
        filters : ndarray, shape ``(N, m, ..., m)``, float64
            The filters as applied (zero-mean projected if ``zero_mean``).
        s : ndarray, shape ``(G,)``, float64
            The grid.
        phi : ndarray, shape ``(N, G)``, float64
            ``phi_k(s)``.
        """
        stage = _int(stage, "stage", 0)
        if stage >= self.config["stages"]:
            raise ParameterError(f"{{stage}} must be below the model's {self.config['stages']} stages; got {stage}",
                                 param="stage")
        r = self.config["rbf_range"]
        s = np.linspace(-1.2 * r, 1.2 * r, 401) if grid is None else np.asarray(grid, dtype=np.float64).ravel()
        with torch.no_grad():
            w = self._filters(stage, torch.float64)[:, 0].cpu().numpy()
            st = torch.as_tensor(s, dtype=torch.float64).view(1, 1, -1).expand(1, w.shape[0], -1)
            phi = self.influence(stage, st.to(self.centres.device))[0].cpu().numpy()
        return w, s, phi

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> None:
        """Write the model (config and weights: tensors and plain values only) atomically to ``path``."""
        _save({"kind": _KIND, "config": dict(self.config), "model": self.state_dict()}, os.fspath(path))

    @classmethod
    def load(cls, path: str | os.PathLike, *, map_location: str | torch.device | None = "cpu") -> ReactionDiffusion:
        """Read a model written by :meth:`save` (or a training checkpoint) without running code from the file.

        Parameters
        ----------
        path : path-like
            The file.
        map_location : str or torch.device, optional
            Where the tensors are loaded.

        Returns
        -------
        ReactionDiffusion

        Raises
        ------
        CheckpointError
            Missing, corrupt or foreign file, or one holding pickled code
            (loaded with ``torch.load(weights_only=True)``, which refuses it
            before running anything).
        """
        state = _load(os.fspath(path), map_location, ("kind", "config", "model"))
        return _from_state(state, os.fspath(path))


def _from_state(state: dict, path: str) -> ReactionDiffusion:
    cfg = state["config"]
    try:
        model = ReactionDiffusion(cfg["ndim"], cfg["stages"], cfg["filters"], cfg["filter_size"],
                                  num_rbf=cfg["num_rbf"], rbf_range=cfg["rbf_range"], kappa=cfg["kappa"],
                                  conductance=cfg["conductance"], zero_mean=cfg["zero_mean"], seed=cfg["seed"],
                                  dtype=state["model"]["filters.0"].dtype)
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} does not hold a valid ReactionDiffusion model: "
                              f"{str(exc).strip().splitlines()[0]}") from None
    return model


def _save(obj: dict, path: str) -> None:
    """Write ``obj`` atomically: a ``.npz`` (a model: kind, config, tensors; no pickle at all) or a torch file."""
    if path.endswith(".npz"):
        if set(obj) != {"kind", "config", "model"}:
            raise ValueError("only a model (kind, config, tensors) is written as .npz; checkpoints are torch files")
        arrays = {"kind": np.frombuffer(obj["kind"].encode(), np.uint8),
                  "config": np.frombuffer(json.dumps(obj["config"]).encode(), np.uint8)}
        arrays.update({f"model/{k}": v.detach().cpu().numpy() for k, v in obj["model"].items()})
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        return
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(obj, f)


def _load_npz(path: str, map_location: Any) -> dict:
    """A model written as ``.npz`` by :func:`_save`, read with ``allow_pickle=False`` (plain arrays only)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            kind = bytes(z["kind"]).decode()
            config = json.loads(bytes(z["config"]).decode())
            model = {k[len("model/"):]: torch.from_numpy(np.array(z[k])).to(map_location or "cpu")
                     for k in z.files if k.startswith("model/")}
    except (ValueError, KeyError, OSError, EOFError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "pickled" in msg:  # numpy's advice to load it unsafely is not for a weights file
            msg = "not a .npz archive of plain arrays"
        raise CheckpointError(f"{path} is corrupt or not a pdediff model file ({msg})") from None
    return {"kind": kind, "config": config, "model": model}


def _load(path: str, map_location: Any, keys: Sequence[str], *, kind: str = _KIND) -> dict:
    """``torch.load(weights_only=True)`` with pdediff's errors: a file holding code is refused, never run."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path} does not exist")
    if path.endswith(".npz"):
        state = _load_npz(path, map_location)
        if state["kind"] != kind or any(k not in state for k in keys):
            raise CheckpointError(f"{path} is not a pdediff {kind.split('.')[-1]} file")
        return state
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Unsupported global" in text or "GLOBAL" in text:
            raise CheckpointError(f"{path} contains pickled code (objects other than tensors and plain containers) "
                                  f"and was not loaded: pdediff loads with weights_only=True and never runs code "
                                  f"from a file") from None
        raise CheckpointError(f"{path} is corrupt or not a torch file; not loaded") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, AttributeError, KeyError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is corrupt or not a torch file ({msg})") from None
    if not isinstance(state, dict) or state.get("kind") != kind or any(k not in state for k in keys):
        raise CheckpointError(f"{path} is not a pdediff {kind.split('.')[-1]} file")
    return state

class _Checkpoint:
    """A training run's ``checkpoint.pt`` in ``checkpoint_dir`` (none when that is ``None``): resumed when present
    (refused when written with other settings or another model config), rewritten by :meth:`save`; shared by
    :func:`train_reaction_diffusion` and the CNN denoiser's trainer."""

    def __init__(self, checkpoint_dir, kind: str, label: str, model, opt, gen, settings: dict, result) -> None:
        self.kind, self.model, self.opt, self.gen, self.settings, self.result = kind, model, opt, gen, settings, result
        self.path = None
        if checkpoint_dir is None:
            return
        os.makedirs(checkpoint_dir, exist_ok=True)
        ckpt = self.path = os.path.join(os.fspath(checkpoint_dir), "checkpoint.pt")
        if not os.path.exists(ckpt):
            return
        state = _load(ckpt, "cpu", _CKPT_KEYS, kind=kind)
        if not isinstance(state["settings"], dict) or not isinstance(state["config"], dict):
            raise CheckpointError(f"{ckpt} is not a pdediff {label} training checkpoint")
        changed = {k: (state["settings"].get(k), v) for k, v in settings.items()
                   if k != "steps" and state["settings"].get(k) != v}
        if state["config"] != model.config:
            changed["model"] = (state["config"], model.config)
        if changed:
            name = next(iter(changed))
            raise CheckpointError(f"{ckpt} was written with other settings ("
                                  + "; ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in changed.items())
                                  + f"); use another checkpoint_dir (first: {name})")
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            gen.set_state(state["generator"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{ckpt} does not fit this model: {str(exc).splitlines()[0]}") from None
        result.losses = [float(v) for v in state["losses"].tolist()]
        result.step = int(state["step"])

    def save(self) -> None:
        if self.path is not None:
            _save({"kind": self.kind, "config": dict(self.model.config), "model": self.model.state_dict(),
                   "optimizer": self.opt.state_dict(), "generator": self.gen.get_state(),
                   "losses": torch.tensor(self.result.losses, dtype=torch.float64), "step": int(self.result.step),
                   "settings": self.settings}, self.path)


# ---------------------------------------------------------------------- training
@dataclass
class ReactionDiffusionTraining:
    """What :func:`train_reaction_diffusion` returns: the loss (MSE) per step and the steps done."""

    losses: list[float] = field(default_factory=list)
    step: int = 0


def _as_images(images: Any, ndim: int) -> list[torch.Tensor]:
    if isinstance(images, (np.ndarray, torch.Tensor)):
        images = [images]
    if not isinstance(images, Sequence) or isinstance(images, (str, bytes)) or not len(images):
        raise TypeError("images must be a non-empty sequence of arrays")
    out = []
    for i, im in enumerate(images):
        a = torch.as_tensor(np.asarray(im.detach().cpu() if isinstance(im, torch.Tensor) else im),
                            dtype=torch.float32)
        if a.ndim != ndim:
            raise ParameterError(f"{{images}}[{i}] must have {ndim} axes for a {ndim}-D model; got shape "
                                 f"{tuple(a.shape)}", param="images")
        if not bool(torch.isfinite(a).all()):
            raise ParameterError(f"{{images}}[{i}] holds NaN or inf", param="images")
        out.append(a)
    return out


def _batch(images: list[torch.Tensor], B: int, p: int, levels: tuple[float, float], gen: torch.Generator,
           ndim: int, *, with_sigma: bool = False) -> tuple[torch.Tensor, ...]:
    """``B`` random patches (random image, corner, flips, rot90) and their noisy copies, drawn from ``gen``.

    The last ``ndim`` axes of each image are spatial (a leading channel axis is kept); ``with_sigma`` also
    returns each patch's noise standard deviation, shape ``(B, 1, ..., 1)``.
    """
    clean = []
    for _ in range(B):
        im = images[int(torch.randint(len(images), (1,), generator=gen))]
        lead = im.ndim - ndim
        corner = [int(torch.randint(n - p + 1, (1,), generator=gen)) for n in im.shape[lead:]]
        patch = im[(slice(None),) * lead + tuple(slice(c, c + p) for c in corner)]
        flips = [lead + a for a in range(ndim) if int(torch.randint(2, (1,), generator=gen))]
        if flips:
            patch = patch.flip(flips)
        patch = torch.rot90(patch, int(torch.randint(4, (1,), generator=gen)), (patch.ndim - 2, patch.ndim - 1))
        clean.append(patch)
    clean_t = torch.stack(clean)
    sigma = levels[0] + (levels[1] - levels[0]) * torch.rand((B,) + (1,) * (clean_t.ndim - 1), generator=gen)
    noisy = clean_t + sigma * torch.randn(clean_t.shape, generator=gen)
    return (clean_t, noisy, sigma) if with_sigma else (clean_t, noisy)


def _schedule(step: int, steps: int, stages: int, greedy: float) -> int:
    """The stage trained greedily at ``step`` (``-1``: joint training of all stages)."""
    g = int(round(greedy * steps))
    if step >= g:
        return -1
    return min(stages - 1, step * stages // max(g, 1))


def train_reaction_diffusion(
    model: ReactionDiffusion,
    images: Sequence[Any],
    *,
    noise_levels: tuple[float, float] = (0.0, 0.25),
    steps: int = 2000,
    batch_size: int = 16,
    patch_size: int = 48,
    lr: float = 1e-2,
    greedy: float = 0.5,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    progress: bool = False,
    stop_at: int | None = None,
) -> ReactionDiffusionTraining:
    """Train a :class:`ReactionDiffusion` model to denoise: greedy (stage by stage), then joint.

    Each step draws ``batch_size`` random ``patch_size`` patches of random
    images (random flips along each axis and a random rot90 in the last two
    axes), adds Gaussian noise of a standard deviation drawn uniformly from
    ``noise_levels``, and takes one Adam step on the mean squared error
    between the model's output and the clean patch.  The first ``greedy``
    fraction of the steps trains stage 0 alone (on the output of one stage),
    then stage 1 on the output of two (stage 0 fixed), and so on; the rest
    trains all stages jointly.

    Parameters
    ----------
    model : ReactionDiffusion
        Trained in place, in its parameters' dtype and on their device.
    images : sequence of arrays, each with ``model.config["ndim"]`` axes
        Clean training images, intensities in the model's units (the defaults
        assume ``[0, 1]``); each at least ``patch_size`` cells per axis.
    noise_levels : (float, float)
        Range ``(low, high)`` of the noise's standard deviation, intensity units
        (default 0 to 0.25: 0–25 % of a ``[0, 1]`` range).
    steps : int
        Total optimiser steps (including those already in a checkpoint).  A
        resume with a larger ``steps`` extends the run; the remaining steps
        follow the greedy/joint schedule of the new total.
    batch_size, patch_size : int
        Patches per step and their cells per axis.
    lr : float
        Adam's learning rate.
    greedy : float
        Fraction of the steps spent on greedy stage-by-stage training, in ``[0, 1]``.
    seed : int
        Seeds every random draw (patches, augmentation, noise): a run is
        reproducible, and a resumed run continues the same sequence.
    checkpoint_dir : path-like, optional
        Folder of ``checkpoint.pt`` (tensors and plain values only, written
        atomically every ``checkpoint_every`` steps and at the end).  If it
        exists, training resumes from it bit for bit (the settings must match).
    checkpoint_every : int
        Steps between checkpoints.
    stop_at : int, optional
        Stop after this step (a checkpoint is written there) although the schedule is ``steps`` long: a
        later call with a larger ``stop_at`` (or none) continues the same run, bit for bit.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    ReactionDiffusionTraining
        ``losses`` (one MSE per step, all steps so far) and ``step``.

    Raises
    ------
    TypeError
        ``model`` is not a :class:`ReactionDiffusion`, or an argument has the wrong type.
    ParameterError
        A value out of range (the message names it).
    CheckpointError
        The checkpoint is corrupt, holds code, or was written with other settings.
    """
    if not isinstance(model, ReactionDiffusion):
        raise TypeError(f"model must be a ReactionDiffusion; got {type(model).__name__}")
    nd = model.config["ndim"]
    if not isinstance(noise_levels, Sequence) or len(noise_levels) != 2:
        raise TypeError(f"noise_levels must be a pair (low, high); got {noise_levels!r}")
    lo, hi = (_positive(v, "noise_levels", allow_zero=True) for v in noise_levels)
    if lo > hi:
        raise ParameterError(f"{{noise_levels}} must be (low, high) with low <= high; got {noise_levels!r}",
                             param="noise_levels")
    steps = _int(steps, "steps", 0)
    B = _int(batch_size, "batch_size", 1)
    p = _int(patch_size, "patch_size", 2)
    lr = _positive(lr, "lr")
    greedy = _positive(greedy, "greedy", allow_zero=True)
    if greedy > 1:
        raise ParameterError(f"{{greedy}} must be in [0, 1]; got {greedy!r}", param="greedy")
    seed = _int(seed, "seed", 0)
    every = _int(checkpoint_every, "checkpoint_every", 1)
    data = _as_images(images, nd)
    for i, im in enumerate(data):
        if min(im.shape) < p:
            raise ParameterError(f"{{patch_size}} ({p}) exceeds images[{i}]'s shape {tuple(im.shape)}",
                                 param="patch_size")
    settings = {"noise_levels": [lo, hi], "steps": steps, "batch_size": B, "patch_size": p, "lr": lr,
                "greedy": greedy, "seed": seed, "num_images": len(data),
                "image_shapes": [list(im.shape) for im in data],
                "image_sums": [float(im.double().sum()) for im in data]}
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    result = ReactionDiffusionTraining()
    save = _Checkpoint(checkpoint_dir, _KIND, "ReactionDiffusion", model, opt, gen, settings, result).save

    end = steps if stop_at is None else min(steps, _int(stop_at, "stop_at", 0))
    iterator = range(result.step, end)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="train ReactionDiffusion", initial=result.step, total=end, disable=None)
    T = model.config["stages"]
    model.train()
    for step in iterator:
        clean, noisy = _batch(data, B, p, (lo, hi), gen, nd)
        clean, noisy = clean.to(device, dtype), noisy.to(device, dtype)
        active = _schedule(step, steps, T, greedy)
        f = noisy.unsqueeze(1)
        if active < 0:
            out = model(noisy)
        else:
            with torch.no_grad():
                u = f
                for t in range(active):
                    u = model.stage(t, u, f)
            out = model.stage(active, u, f)[:, 0]
        loss = F.mse_loss(out, clean)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training diverged at step {step}: the loss is {float(loss)} "
                                     f"(a learning rate too large?); nothing was updated")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        result.losses.append(float(loss.detach()))
        result.step = step + 1
        if result.step % every == 0:
            save()
        if progress and hasattr(iterator, "set_postfix"):
            iterator.set_postfix(loss=f"{result.losses[-1]:.2e}", stage="all" if active < 0 else active)
    save()
    model.eval()
    return result


# ---------------------------------------------------------------------- plotting
def plot_reaction_diffusion(model: ReactionDiffusion, stage: int = 0, *, max_filters: int = 24) -> Any:
    """A matplotlib figure of one stage's filters (top) and influence functions (below each).

    Parameters
    ----------
    model : ReactionDiffusion
    stage : int
        Stage to show.
    max_filters : int
        Show at most this many filters (the first ones).

    Returns
    -------
    matplotlib.figure.Figure
        3-D filters are shown by their central slice along the first axis.
    """
    import matplotlib.pyplot as plt

    if not isinstance(model, ReactionDiffusion):
        raise TypeError(f"model must be a ReactionDiffusion; got {type(model).__name__}")
    n_max = _int(max_filters, "max_filters", 1)
    w, s, phi = model.components(stage)
    n = min(n_max, w.shape[0])
    cols = min(n, 8)
    rows = -(-n // cols)
    fig, axes = plt.subplots(2 * rows, cols, figsize=(1.6 * cols, 3.0 * rows), squeeze=False)
    for k in range(rows * cols):
        r, c = divmod(k, cols)
        top, bottom = axes[2 * r, c], axes[2 * r + 1, c]
        if k >= n:
            top.axis("off")
            bottom.axis("off")
            continue
        img = w[k] if w.ndim == 3 else w[k][w.shape[1] // 2]
        top.imshow(img, cmap="gray")
        top.set_xticks([])
        top.set_yticks([])
        top.set_title(f"K{k}", fontsize=8)
        bottom.plot(s, phi[k], lw=1)
        bottom.axhline(0, color="0.7", lw=0.5)
        bottom.tick_params(labelsize=6)
    fig.suptitle(f"TNRD stage {stage}: filters and influence functions phi(s)", fontsize=9)
    fig.tight_layout()
    return fig
