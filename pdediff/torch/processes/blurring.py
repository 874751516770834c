"""Blurring diffusion (Hoogeboom & Salimans, ICLR 2023), in the DCT basis of the Neumann heat flow."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..ops import dct, idct, laplacian_eigenvalues
from ._base import (
    CLEAN,
    StepOutput,
    _as_timesteps,
    _bcast,
    _check_sample,
    _randn,
    _transition_levels,
    check_real,
    train_timesteps,
)
from .gaussian import _NoisePrediction, _schedule, beta_schedule_name

__all__ = ["BlurringDiffusion"]


class BlurringDiffusion(_NoisePrediction):
    r"""Blurring diffusion (Hoogeboom & Salimans, ICLR 2023), in DCT space.

    With :math:`u = V^T x` the orthonormal DCT-II (Neumann heat eigenbasis),
    :math:`u_t = \alpha_t \odot u_0 + \sigma_t \varepsilon` per frequency, where
    :math:`\alpha_t = a_t d_t`, :math:`d_t = (1-d_{\min}) e^{-\lambda \tau_t} + d_{\min}`,
    :math:`\tau_t = \sigma_B(s)^2/2`, :math:`\sigma_B(s) = \sigma_{B,\max}\sin^2(\pi s/2)`
    with :math:`s = (t+1)/K` for timestep ``t`` in ``0 .. K-1``, and
    :math:`a_t = \sqrt{\bar\alpha_t}`, :math:`\sigma_t = \sqrt{1-\bar\alpha_t}` from
    the paper's cosine schedule with log-SNR confined to :math:`[-10, 10]`
    (``beta_schedule="cosine_logsnr"``).  ε-prediction; the reverse step uses
    the per-frequency Gaussian posterior, so its noise is coloured.  With
    ``sigma_blur_max = 0`` every :math:`d_t = 1` and the process *is*
    ``GaussianDiffusion`` with the same ``beta_schedule``.

    Why the truncated schedule: Nichol & Dhariwal's cosine (``"cosine"``)
    caps the last :math:`\beta` at 0.999, so :math:`\bar\alpha_{K-1} \approx 6\cdot10^{-8}`
    at ``K = 200`` and the first reverse step multiplies an error of the
    predicted noise by :math:`\sqrt{\bar\alpha_{K-2}/\bar\alpha_{K-1}} \approx 32`
    (in every frequency, the mean brightness included): a learned model's
    small errors there became saturated white samples.  The truncated schedule
    bounds that gain by 1.7 (see the ablation in ``docs/learned_diffusion.rst``).

    Parameters
    ----------
    num_train_timesteps : int
        ``K``; timesteps are ``0 .. K-1``.
    sigma_blur_max : float
        Blur (pixels) of the last timestep, ``>= 0``.
    min_scale : float
        :math:`d_{\min}`, the smallest per-frequency attenuation, in ``(0, 1]``
        (0 would erase the high frequencies and divide by zero in the reverse
        step: NaN samples).
    beta_schedule : {"cosine_logsnr", "cosine", "linear", "scaled_linear"}
        Schedule of :math:`a_t, \sigma_t` (as :class:`GaussianDiffusion`;
        ``"squaredcos_cap_v2"`` is ``"cosine"``).  The linear ones use
        :class:`GaussianDiffusion`'s default ``beta_start`` and ``beta_end``.

    Raises
    ------
    ~pdediff.errors.ParameterError
        A value out of range, named in the message.
    """

    def __init__(self, num_train_timesteps: int = 1000, sigma_blur_max: float = 20.0, min_scale: float = 0.001,
                 beta_schedule: str = "cosine_logsnr") -> None:
        K = train_timesteps(num_train_timesteps)
        check_real(sigma_blur_max, "sigma_blur_max", lo=0.0)
        check_real(min_scale, "min_scale", lo=0.0, hi=1.0, lo_open=True)
        beta_schedule = beta_schedule_name(beta_schedule)
        self.sigma_blur_max, self.beta_schedule = float(sigma_blur_max), beta_schedule
        self.betas, self.alphas_cumprod = _schedule(beta_schedule, K, 1e-4, 0.02)
        s = (np.arange(K) + 1) / K
        #: diffusion time of every timestep ``0 .. K-1``
        self.blur_times = (self.sigma_blur_max * np.sin(s * np.pi / 2) ** 2) ** 2 / 2
        self.min_scale = float(min_scale)
        self._lam: dict = {}
        super().__init__(num_train_timesteps=K, sigma_blur_max=sigma_blur_max, min_scale=min_scale,
                         beta_schedule=beta_schedule)

    def _lambda(self, shape, x: torch.Tensor) -> torch.Tensor:
        """Eigenvalues of ``-Δ`` per DCT coefficient (float64, on ``x``'s device), cached per shape."""
        key = (tuple(shape), x.device)
        if key not in self._lam:
            lam = torch.from_numpy(laplacian_eigenvalues(tuple(shape)))
            self._lam[key] = lam.to(device=x.device, dtype=torch.float64)
        return self._lam[key]

    def _alpha_sigma(self, t: torch.Tensor, x: torch.Tensor):
        """Per-frequency ``alpha`` (N, 1, H, W) and scalar ``sigma`` (N, 1, 1, 1); ``t = -1`` is clean."""
        lam = self._lambda(x.shape[-2:], x)
        ab = self._abar(t)
        tau = torch.zeros(t.shape, dtype=torch.float64)
        ok = t > CLEAN
        tau[ok] = torch.from_numpy(self.blur_times)[t[ok]]
        # d = (1 - d_min) e^{-lam tau} + d_min, written so that tau = 0 (clean, or no blur) gives 1 exactly
        d = 1 + (1 - self.min_scale) * torch.expm1(-lam[None] * tau.to(lam.device)[:, None, None])
        alpha = ab.sqrt().to(lam.device)[:, None, None] * d
        sigma = (1 - ab).sqrt()
        return alpha[:, None].to(x.dtype), _bcast(sigma, x)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        """``x_t = V (alpha_t ⊙ V^T x0) + sigma_t * noise`` for timesteps in ``[0, K-1]``."""
        _check_sample(x0)
        t = _as_timesteps(timesteps, x0.shape[0], self.t_min, self.t_max)
        alpha, sigma = self._alpha_sigma(t, x0)
        return idct(alpha * dct(x0)) + sigma * noise

    def forward_transition(self, sample: torch.Tensor, timestep: int, next_timestep: int,
                           generator: torch.Generator | None = None, *,
                           pred_original_sample: torch.Tensor | None = None) -> torch.Tensor:
        r"""Draw :math:`x_s \sim q(x_s \mid x_t)` for ``next_timestep`` ``s`` > ``timestep`` ``t``.

        Per DCT coefficient the process is a Gaussian chain (Hoogeboom &
        Salimans, eq. 5): :math:`u_s = \alpha_{s|t} u_t + \sigma_{s|t}\varepsilon` with
        :math:`\alpha_{s|t} = \alpha_s/\alpha_t` and
        :math:`\sigma_{s|t}^2 = \sigma_s^2 - \alpha_{s|t}^2\sigma_t^2` (≥ 0: both
        :math:`a_t` and :math:`d_t` decrease with ``t``), so composed with
        :math:`q(x_t \mid x_0)` it gives :math:`q(x_s \mid x_0)`; from ``t = -1``
        (:math:`\alpha = 1, \sigma = 0`) it is :meth:`add_noise`.  The noise is
        white noise drawn in pixel space and coloured per frequency, as in :meth:`step`.
        ``pred_original_sample`` is not used (the transition depends on ``x_t`` only).
        """
        t, s = _transition_levels(self, sample, timestep, next_timestep)
        n = sample.shape[0]
        a_t, s_t = self._alpha_sigma(torch.full((n,), t), sample)
        a_s, s_s = self._alpha_sigma(torch.full((n,), s), sample)
        a_st = a_s / a_t
        std = (s_s**2 - a_st**2 * s_t**2).clamp_min(0).sqrt()
        u = a_st * dct(sample) + std * dct(_randn(sample.shape, sample, generator))
        return idct(u)

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> StepOutput:
        """One step of the per-frequency Gaussian posterior; the last one (to clean) adds no noise."""
        t = int(timestep)
        prev = self.previous_timestep(t)
        n = sample.shape[0]
        a_t, s_t = self._alpha_sigma(torch.full((n,), t), sample)
        a_s, s_s = self._alpha_sigma(torch.full((n,), prev), sample)
        z = dct(sample)
        eps = dct(model_output)
        x0 = (z - s_t * eps) / a_t
        a_ts = a_t / a_s
        var_ts = s_t**2 - a_ts**2 * s_s**2
        mean = (a_ts * s_s**2 / s_t**2) * z + (a_s * var_ts / s_t**2) * x0
        if prev > CLEAN:
            std = (var_ts * s_s**2 / s_t**2).clamp_min(0).sqrt()  # per frequency: coloured noise
            # white noise drawn in pixel space, then transformed: the same draws as GaussianDiffusion
            mean = mean + std * dct(_randn(sample.shape, sample, generator))
        return StepOutput(idct(mean), idct(x0))
