"""Gaussian DDPM (Ho et al. 2020) and the noise-prediction machinery blurring diffusion shares."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ...catalogue import BETA_SCHEDULE_ALIASES, BETA_SCHEDULES
from ...errors import ParameterError
from ._base import (
    CLEAN,
    ForwardProcess,
    StepOutput,
    _as_timesteps,
    _bcast,
    _check_sample,
    _randn,
    _transition_levels,
    check_real,
    train_timesteps,
)

__all__ = ["GaussianDiffusion"]


def beta_schedule_name(schedule: Any) -> str:
    """pdediff's name of a beta schedule (diffusers' names accepted: ``"squaredcos_cap_v2"`` is ``"cosine"``)."""
    name = BETA_SCHEDULE_ALIASES.get(schedule, schedule) if isinstance(schedule, str) else schedule
    if name not in BETA_SCHEDULES:
        names = ", ".join(map(repr, BETA_SCHEDULES + tuple(BETA_SCHEDULE_ALIASES)))
        raise ParameterError(f"{{beta_schedule}} must be one of {names}; got {schedule!r}", param="beta_schedule")
    return name


def _betas(schedule: str, K: int, beta_start: float, beta_end: float) -> np.ndarray:
    schedule = beta_schedule_name(schedule)
    if schedule == "linear":
        return np.linspace(beta_start, beta_end, K, dtype=np.float64)
    if schedule == "scaled_linear":  # diffusers' "scaled_linear": linear in sqrt(beta)
        return np.linspace(beta_start**0.5, beta_end**0.5, K, dtype=np.float64) ** 2
    if schedule == "cosine_logsnr":
        return _betas_from_abar(_abar_cosine_logsnr(K))
    # cosine: Nichol & Dhariwal 2021, as diffusers' "squaredcos_cap_v2"
    def abar(t):
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return np.array([min(1 - abar((i + 1) / K) / abar(i / K), 0.999) for i in range(K)])


#: Range of the log signal-to-noise ratio of the ``"cosine_logsnr"`` schedule (Hoogeboom & Salimans' defaults).
LOGSNR_RANGE = (-10.0, 10.0)


def _abar_cosine_logsnr(K: int) -> np.ndarray:
    r"""Hoogeboom & Salimans' truncated cosine schedule: :math:`\bar\alpha` of timesteps ``0 .. K-1``.

    With :math:`s = (t+1)/K`, :math:`\log\mathrm{SNR}(s) = -2\log\tan(\phi_{\min} s + \phi_0)`,
    :math:`\phi_0 = \arctan e^{-\ell_{\max}/2}`, :math:`\phi_{\min} = \arctan e^{-\ell_{\min}/2} - \phi_0`,
    so the log-SNR runs from (just below) :math:`\ell_{\max} = 10` to :math:`\ell_{\min} = -10` at the last
    timestep, and :math:`\bar\alpha = \mathrm{sigmoid}(\log\mathrm{SNR})`.  Nichol & Dhariwal's cosine
    instead ends at :math:`\beta = 0.999` (:math:`\log\mathrm{SNR} \approx -16.6` at ``K = 200``), where the
    first reverse step multiplies any error of the predicted noise by
    :math:`\sqrt{\bar\alpha_{K-2}/\bar\alpha_{K-1}} \approx 32`.
    """
    lo, hi = LOGSNR_RANGE
    s = (np.arange(K, dtype=np.float64) + 1) / K
    phi0 = math.atan(math.exp(-0.5 * hi))
    phi = math.atan(math.exp(-0.5 * lo)) - phi0
    logsnr = -2.0 * np.log(np.tan(phi * s + phi0))
    return 1.0 / (1.0 + np.exp(-logsnr))


def _betas_from_abar(abar: np.ndarray) -> np.ndarray:
    """``beta_t = 1 - abar_t / abar_{t-1}`` (``abar_{-1} = 1``)."""
    return 1.0 - abar / np.concatenate([[1.0], abar[:-1]])


def _check_betas(beta_start: Any, beta_end: Any) -> None:
    """``0 < beta_start <= beta_end < 1``."""
    start = check_real(beta_start, "beta_start", lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    end = check_real(beta_end, "beta_end", lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    if start > end:
        raise ParameterError(f"need {{beta_start}} <= {{beta_end}}; got {start}, {end}", param="beta_start")


def _schedule(schedule: str, K: int, beta_start: float, beta_end: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``betas`` and their ``alphas_cumprod`` (float64 tensors, one entry per timestep ``0 .. K-1``)."""
    betas = torch.from_numpy(_betas(schedule, K, beta_start, beta_end))
    return betas, torch.cumprod(1.0 - betas, 0)


class _NoisePrediction(ForwardProcess):
    """Processes whose model predicts the noise and whose prior is white Gaussian noise.

    Subclasses set ``betas`` and ``alphas_cumprod`` with :func:`_schedule`.
    """

    timestep_spacing = "leading"  # diffusers' DDPMScheduler default
    betas: torch.Tensor
    alphas_cumprod: torch.Tensor

    def _abar(self, t: torch.Tensor) -> torch.Tensor:
        """``alpha_bar`` per timestep, with ``t = -1`` (clean, after the last step) giving 1."""
        out = torch.ones(t.shape, dtype=torch.float64)
        ok = t > CLEAN
        out[ok] = self.alphas_cumprod[t[ok]]
        return out

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        """The noise: ε-prediction."""
        return noise

    def sample_prior(self, n_or_data: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        """White Gaussian noise shaped like ``n`` training images (or like the batch passed)."""
        like = self._prior_images(n_or_data, generator)
        return _randn(like.shape, like, generator)


class GaussianDiffusion(_NoisePrediction):
    r"""DDPM (Ho et al. 2020): :math:`x_t = \sqrt{\bar\alpha_t} x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon`.

    The baseline every study compares with.  ε-prediction; ancestral sampling
    with the posterior variance :math:`\tilde\beta_t`, strided when
    ``set_timesteps(n)`` asks for fewer steps (as diffusers' DDPMScheduler).

    Parameters
    ----------
    num_train_timesteps : int
        ``K``; timesteps are ``0 .. K-1``; at most
        :data:`~pdediff.torch.processes._base.MAX_TRAIN_TIMESTEPS`.
    beta_schedule : {"linear", "scaled_linear", "cosine", "cosine_logsnr"}
        Linear from ``beta_start`` to ``beta_end`` (Ho et al.), linear in
        :math:`\sqrt\beta` (diffusers' ``"scaled_linear"``), the cosine
        schedule of Nichol & Dhariwal (2021), also accepted under diffusers'
        name ``"squaredcos_cap_v2"`` (stored as ``"cosine"``), or the cosine
        schedule with its log-SNR confined to ``[-10, 10]`` (Hoogeboom &
        Salimans; :func:`_abar_cosine_logsnr`).
    beta_start, beta_end : float
        First and last beta of the linear schedules, ``0 < beta_start <=
        beta_end < 1`` (the cosine schedule does not use them).

    Raises
    ------
    ~pdediff.errors.ParameterError
        A value out of range, named in the message.
    """

    def __init__(self, num_train_timesteps: int = 1000, beta_schedule: str = "linear",
                 beta_start: float = 1e-4, beta_end: float = 0.02) -> None:
        K = train_timesteps(num_train_timesteps)
        beta_schedule = beta_schedule_name(beta_schedule)
        _check_betas(beta_start, beta_end)
        self.beta_schedule = beta_schedule
        self.beta_start, self.beta_end = float(beta_start), float(beta_end)
        self.betas, self.alphas_cumprod = _schedule(beta_schedule, K, beta_start, beta_end)
        super().__init__(num_train_timesteps=K, beta_schedule=beta_schedule,
                         beta_start=beta_start, beta_end=beta_end)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        """``x_t`` for timesteps in ``[0, K-1]`` (a scalar or one per sample)."""
        _check_sample(x0)
        t = _as_timesteps(timesteps, x0.shape[0], self.t_min, self.t_max)
        ab = _bcast(self._abar(t), x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def forward_transition(self, sample: torch.Tensor, timestep: int, next_timestep: int,
                           generator: torch.Generator | None = None, *,
                           pred_original_sample: torch.Tensor | None = None) -> torch.Tensor:
        r"""Draw :math:`x_s \sim q(x_s \mid x_t)` for ``next_timestep`` ``s`` > ``timestep`` ``t``.

        The forward chain is Markov with :math:`q(x_t \mid x_{t-1}) =
        \mathcal N(\sqrt{1-\beta_t}\,x_{t-1}, \beta_t I)`; composing the steps
        ``t+1 .. s`` gives :math:`x_s = \sqrt{\bar\alpha_s/\bar\alpha_t}\,x_t +
        \sqrt{1-\bar\alpha_s/\bar\alpha_t}\,\varepsilon` (:math:`\bar\alpha_{-1} = 1`:
        from the clean image it is :meth:`add_noise`), so applied to samples of
        :math:`q(x_t \mid x_0)` it yields samples of :math:`q(x_s \mid x_0)`.  This is
        RePaint's resampling jump (:func:`pdediff.torch.repaint`).  ``pred_original_sample``
        is not used (the transition depends on ``x_t`` only).
        """
        t, s = _transition_levels(self, sample, timestep, next_timestep)
        ab_t = float(self.alphas_cumprod[t]) if t > CLEAN else 1.0
        ratio = float(self.alphas_cumprod[s]) / ab_t
        return math.sqrt(ratio) * sample + math.sqrt(1 - ratio) * _randn(sample.shape, sample, generator)

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> StepOutput:
        """One ancestral step from a scheduled ``timestep``; the last one (to clean) adds no noise."""
        t = int(timestep)
        prev = self.previous_timestep(t)
        ab_t = float(self.alphas_cumprod[t])
        ab_p = float(self.alphas_cumprod[prev]) if prev > CLEAN else 1.0
        beta_t = 1 - ab_t / ab_p
        x0 = (sample - math.sqrt(1 - ab_t) * model_output) / math.sqrt(ab_t)
        c0 = math.sqrt(ab_p) * beta_t / (1 - ab_t)
        ct = math.sqrt(1 - beta_t) * (1 - ab_p) / (1 - ab_t)
        mean = c0 * x0 + ct * sample
        if prev > CLEAN:
            var = max((1 - ab_p) / (1 - ab_t) * beta_t, 1e-20)
            mean = mean + math.sqrt(var) * _randn(sample.shape, sample, generator)
        return StepOutput(mean, x0)
