"""Inverse heat dissipation (IHDM; Rissanen, Heinonen & Solin, ICLR 2023)."""

from __future__ import annotations

from typing import Any

import torch

from ._base import (
    CLEAN,
    ForwardProcess,
    StepOutput,
    _as_timesteps,
    _check_sample,
    _log_sigmas,
    _randn,
    _transition_levels,
    check_real,
    heat_levels,
    heat_transition,
    train_timesteps,
)

__all__ = ["HeatDissipation"]


class HeatDissipation(ForwardProcess):
    r"""Inverse heat dissipation (Rissanen, Heinonen & Solin, ICLR 2023).

    :math:`x_t = F(\tau_t) x_0 + \sigma\varepsilon` with :math:`F` the heat flow
    (Neumann, continuous spectrum, :func:`pdediff.torch.heat_blur`),
    :math:`\tau_t = \sigma_{B,t}^2 / 2` and :math:`\sigma_{B,t}` log-spaced from
    ``sigma_blur_min`` (timestep 0) to ``sigma_blur_max`` (timestep ``K-1``);
    :math:`\tau_{-1} = 0` is the clean image.  The model predicts the residual
    :math:`F(\tau_{t-1}) x_0 - x_t`; sampling adds ``delta`` noise after every
    step but the last.  The prior is blurred training images (timestep
    ``K-1``) plus ``delta`` noise.  Every timestep ``0..K-1`` is trained —
    including ``K-1``, where sampling starts (the published code, which counts
    levels ``1..K``, trains ``1..K-1`` only).

    Parameters
    ----------
    num_train_timesteps : int
        ``K``; timesteps are ``0 .. K-1``.
    sigma_blur_min, sigma_blur_max : float
        Blur (pixels) of timesteps 0 and ``K-1``, ``0 < sigma_blur_min <= sigma_blur_max``.
    training_noise : float
        ``sigma`` (default 0.01), ``>= 0``.
    sampling_noise : float, optional
        ``delta`` (default ``1.25 * training_noise``), ``>= 0``.

    Raises
    ------
    ~pdediff.errors.ParameterError
        A value out of range, named in the message.
    """

    timestep_spacing = "linspace"  # the prior lives at K-1: start there

    def __init__(self, num_train_timesteps: int = 100, sigma_blur_min: float = 0.5, sigma_blur_max: float = 20.0,
                 training_noise: float = 0.01, sampling_noise: float | None = None) -> None:
        K = train_timesteps(num_train_timesteps)
        #: blur width (pixels) and diffusion time of every timestep ``0 .. K-1``
        self.sigmas = _log_sigmas(sigma_blur_min, sigma_blur_max, K)
        check_real(training_noise, "training_noise", lo=0.0)
        if sampling_noise is not None:
            check_real(sampling_noise, "sampling_noise", lo=0.0)
        self.sigma_blur_min, self.sigma_blur_max = float(sigma_blur_min), float(sigma_blur_max)
        self.blur_times = self.sigmas**2 / 2
        delta = 1.25 * training_noise if sampling_noise is None else float(sampling_noise)
        self.training_noise, self.sampling_noise = float(training_noise), delta
        super().__init__(num_train_timesteps=K, sigma_blur_min=sigma_blur_min, sigma_blur_max=sigma_blur_max,
                         training_noise=training_noise, sampling_noise=delta)

    def blur(self, x0: torch.Tensor, timesteps: Any) -> torch.Tensor:
        """``F(tau_t) x0`` per sample, ``timesteps`` in ``-1 .. K-1`` (``-1``: clean)."""
        return heat_levels(x0, self.blur_times, timesteps)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        """``x_t = F(tau_t) x0 + sigma * noise`` for timesteps in ``[0, K-1]``."""
        _check_sample(x0)
        t = _as_timesteps(timesteps, x0.shape[0], self.t_min, self.t_max)
        return self.blur(x0, t) + self.training_noise * noise

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        """The residual ``F(tau_{t-1}) x0 - x_t`` (``tau_{-1} = 0``: the last step lands on ``x0``)."""
        t = _as_timesteps(timesteps, x0.shape[0], self.t_min, self.t_max)
        return self.blur(x0, t - 1) - self.add_noise(x0, noise, t)

    def forward_transition(self, sample: torch.Tensor, timestep: int, next_timestep: int,
                           generator: torch.Generator | None = None, *,
                           pred_original_sample: torch.Tensor | None = None) -> torch.Tensor:
        r"""Draw ``x_s`` from ``x_t`` (``s`` > ``t``) so that :math:`q(x_t \mid x_0)` becomes :math:`q(x_s \mid x_0)`.

        The heat semigroup gives :math:`F(\tau_s) = F(\tau_s - \tau_t)F(\tau_t)`,
        so :math:`x_s = F(\tau_s - \tau_t)\,x_t + \eta`: the deterministic part is
        exactly the blur of level ``s``.  Blurring ``x_t`` also blurs its noise
        :math:`\sigma\varepsilon`; :math:`\eta` is the Gaussian noise that
        completes it to white noise of standard deviation ``training_noise``
        again: per coefficient ``k`` of the orthonormal DCT (the heat flow's
        eigenbasis), variance :math:`\sigma^2(1 - e^{-2\lambda_k(\tau_s-\tau_t)})`;
        from the clean image (``t = -1``, no noise) it is :math:`\sigma^2` and
        the transition is :meth:`add_noise`.  Used by RePaint's resampling jumps;
        ``pred_original_sample`` is not used (the transition depends on ``x_t`` only).
        """
        t, s = _transition_levels(self, sample, timestep, next_timestep)
        sigma = self.training_noise
        return heat_transition(sample, self.blur_times, t, s, (sigma if t > CLEAN else 0.0, sigma), generator)

    def sample_prior(self, n_or_data: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training images (or the batch passed) blurred to timestep ``K-1``, plus ``delta`` noise."""
        x0 = self._prior_images(n_or_data, generator)
        top = self.blur(x0, torch.full((x0.shape[0],), self.t_max))
        return top + self.sampling_noise * _randn(x0.shape, x0, generator)

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> StepOutput:
        """``x_t + residual``, plus ``delta`` noise unless this is the last step (to clean)."""
        t = int(timestep)
        prev = self.previous_timestep(t)
        # The model's residual gives F(tau_{t-1}) x0.  With a strided schedule (fewer
        # steps than levels) it stands in for the next scheduled level: an
        # approximation; the published sampler visits every level (the default).
        mean = sample + model_output
        out = mean
        if prev > CLEAN:
            out = mean + self.sampling_noise * _randn(sample.shape, sample, generator)
        return StepOutput(out, mean)
