"""Cold diffusion (Bansal et al., NeurIPS 2023) with pdediff's operators as the degradation."""

from __future__ import annotations

from typing import Any

import torch

from ...errors import ParameterError
from ..ops import perona_malik
from ._base import (
    CLEAN,
    ForwardProcess,
    StepOutput,
    _as_timesteps,
    _check_sample,
    _log_sigmas,
    _randn,
    _transition_levels,
    check_integer,
    check_real,
    heat_levels,
    train_timesteps,
)

__all__ = ["ColdDiffusion"]

OPERATORS = ("heat", "perona_malik")

#: Spacing of the stacking axis in :func:`_pm_batch`: its inverse square (1e-200) vanishes next to the image
#: axes' 1 (exactly 0 in float32), so no flux and no gradient couples two stacked images.
_UNCOUPLED = 1e100


def _pm_batch(x: torch.Tensor, n_iter: int, kappa: float) -> torch.Tensor:
    """``n_iter`` explicit Perona–Malik steps of every image of ``x`` ``(N, C, H, W)``, each on its own.

    The batch is stacked as one volume ``(C, N, H, W)`` whose stacking axis has a spacing so large that
    nothing diffuses along it; channels share one conductance per image, as with ``channel_axis=1``.
    """
    vol = x.movedim(1, 0).contiguous()
    y = perona_malik(vol[None], spatial_dims=3, channel_axis=1, num_iter=n_iter, kappa=kappa, sigma=0.0,
                     spacing=(_UNCOUPLED, 1.0, 1.0))[0]
    return y.movedim(0, 1).contiguous()


class ColdDiffusion(ForwardProcess):
    r"""Cold diffusion (Bansal et al., NeurIPS 2023) with pdediff's operators as the degradation.

    ``operator="heat"``: :math:`D(x_0, t) = F(\tau_t) x_0` with the IHDM blur
    schedule (:class:`HeatDissipation`'s :math:`\tau_t`); ``operator="perona_malik"``:
    :math:`(t+1) \cdot` ``iters_per_level`` explicit Perona–Malik iterations
    (nonlinear; ``kappa`` fixed; channels share one conductance).  Timesteps are
    ``0 .. K-1`` and :math:`D(x_0, -1) = x_0`.  The model predicts :math:`x_0`;
    sampling is Bansal et al.'s Algorithm 2,
    :math:`x_{s} = x_t - D(\hat x_0, t) + D(\hat x_0, s)` with ``s`` the next
    scheduled timestep (``-1`` after the last), plus ``sampling_noise``
    Gaussian noise after every step but the last (noise-added cold sampling;
    0: Algorithm 2 as published).  The prior is the fully degraded training
    data itself: a draw is :math:`D(x_0, K-1)` of a random training image plus
    Gaussian noise of standard deviation ``prior_noise`` (a Gaussian kernel
    density estimate of the distribution the sampler starts from, as IHDM's
    prior).  Perona–Malik keeps edges, so its fully degraded images need not
    be constant, and a prior over constant images (per-image channel means,
    Bansal et al.'s mixture for blur, this class's prior before) does not
    match them: ``tests/test_process_priors.py`` checks every process's prior
    against its fully degraded data with a kernel two-sample test.

    Parameters
    ----------
    num_train_timesteps : int
        ``K``; timesteps are ``0 .. K-1``.
    operator : {"heat", "perona_malik"}
        The degradation.
    sigma_blur_min, sigma_blur_max : float
        Blur (pixels) of timesteps 0 and ``K-1`` (``operator="heat"``).
    iters_per_level : int
        Perona–Malik iterations per timestep (``operator="perona_malik"``).
    kappa : float
        Perona–Malik edge threshold.
    prior_noise, training_noise, sampling_noise : float
        Standard deviations of the noise added to the prior, to training
        samples, and after every sampling step but the last.

    Every number is checked: ``0 < sigma_blur_min <= sigma_blur_max``,
    ``iters_per_level >= 1``, ``kappa > 0``, noise
    ``>= 0``.

    Raises
    ------
    ~pdediff.errors.ParameterError
        A value out of range, named in the message.
    """

    timestep_spacing = "linspace"  # the prior lives at K-1: start there

    def __init__(self, num_train_timesteps: int = 50, operator: str = "heat", sigma_blur_min: float = 0.5,
                 sigma_blur_max: float = 20.0, iters_per_level: int = 2, kappa: float = 0.1,
                 prior_noise: float = 0.002, training_noise: float = 0.0, sampling_noise: float = 0.0) -> None:
        if operator not in OPERATORS:
            raise ParameterError(f"{{operator}} must be 'heat' or 'perona_malik'; got {operator!r}", param="operator")
        K = train_timesteps(num_train_timesteps)
        _log_sigmas(sigma_blur_min, sigma_blur_max, 1)  # checks both
        check_integer(iters_per_level, "iters_per_level", 1)
        check_real(kappa, "kappa", lo=0.0, lo_open=True)
        check_real(sampling_noise, "sampling_noise", lo=0.0)
        check_real(prior_noise, "prior_noise", lo=0.0)
        check_real(training_noise, "training_noise", lo=0.0)
        self.operator = operator
        self.sigma_blur_min, self.sigma_blur_max = float(sigma_blur_min), float(sigma_blur_max)
        self.iters_per_level = int(iters_per_level)
        self.kappa = float(kappa)
        self.prior_noise, self.training_noise = float(prior_noise), float(training_noise)
        self.sampling_noise = float(sampling_noise)
        #: diffusion time of every timestep ``0 .. K-1`` (``operator="heat"``)
        self.blur_times = _log_sigmas(self.sigma_blur_min, self.sigma_blur_max, K) ** 2 / 2
        #: the fully degraded training images ``D(data, K-1)`` (:meth:`fit`)
        self.prior_top: torch.Tensor | None = None
        super().__init__(num_train_timesteps=K, operator=operator, sigma_blur_min=sigma_blur_min,
                         sigma_blur_max=sigma_blur_max, iters_per_level=iters_per_level, kappa=kappa,
                         prior_noise=prior_noise, training_noise=training_noise, sampling_noise=sampling_noise)

    def degrade(self, x0: torch.Tensor, timesteps: Any) -> torch.Tensor:
        """``D(x0, t)`` per sample, ``timesteps`` in ``-1 .. K-1`` (``-1``: clean)."""
        if self.operator == "heat":
            return heat_levels(x0, self.blur_times, timesteps)
        k = _as_timesteps(timesteps, x0.shape[0], CLEAN, self.t_max).cpu()
        out = x0.detach().clone()
        # Level by level, every sample still below its level takes ``iters_per_level`` more steps: the same
        # explicit iterations as (k+1) * iters_per_level steps image by image (fixed kappa and dt, no
        # smoothing), but one batched call per level instead of one per image.
        for level in range(int(k.max()) + 1):
            active = torch.nonzero(k >= level).flatten()
            if active.numel():
                out[active] = _pm_batch(out[active], self.iters_per_level, self.kappa)
        return out

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        """``x_t = D(x0, t) + training_noise * noise`` for timesteps in ``[0, K-1]``."""
        _check_sample(x0)
        t = _as_timesteps(timesteps, x0.shape[0], self.t_min, self.t_max)
        return self.degrade(x0, t) + self.training_noise * noise

    def forward_transition(self, sample: torch.Tensor, timestep: int, next_timestep: int,
                           generator: torch.Generator | None = None, *,
                           pred_original_sample: torch.Tensor | None = None) -> torch.Tensor:
        r"""Re-degrade the clean estimate to level ``s``: ``D(pred_original_sample, s) + training_noise * noise``.

        The degradation is deterministic, and the states of Algorithm 2
        (:math:`x_s = x_t - D(\hat x_0, t) + D(\hat x_0, s)`) are in general not
        :math:`D(x_0, t)` for any image :math:`x_0`, so no map of ``x_t`` alone is
        a transition of the forward process for them.  What is consistent is the
        forward marginal given the current clean estimate :math:`\hat x_0`:
        :math:`x_s = D(\hat x_0, s)` (:meth:`add_noise` of :math:`\hat x_0`, with
        ``training_noise`` noise when it is set).  On the degradation manifold
        (``x_t = D(x_0, t)`` with :math:`\hat x_0 = x_0`) it equals the semigroup
        step, :math:`F(\tau_s - \tau_t)x_t` for the heat operator or
        ``(s - t) * iters_per_level`` more Perona–Malik iterations.  Used by
        RePaint's resampling jumps.  Here ``pred_original_sample`` is required
        (``ValueError`` without it, or of another shape than ``sample``), the
        result does not depend on ``sample`` (checked for shape only), and the
        generator draws only when ``training_noise > 0``.
        """
        _, s = _transition_levels(self, sample, timestep, next_timestep)
        if pred_original_sample is None:
            raise ValueError("ColdDiffusion.forward_transition needs pred_original_sample (the clean estimate to "
                             "re-degrade): the deterministic process has no transition from x_t alone")
        _check_sample(pred_original_sample, "pred_original_sample")
        if pred_original_sample.shape != sample.shape:
            raise ValueError(f"pred_original_sample must have the shape of sample {tuple(sample.shape)}; got "
                             f"{tuple(pred_original_sample.shape)}")
        x0 = pred_original_sample.to(sample.dtype)
        out = self.degrade(x0, torch.full((x0.shape[0],), s))
        if self.training_noise > 0:
            out = out + self.training_noise * _randn(x0.shape, x0, generator)
        return out

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        """The clean image: ``x0``-prediction."""
        return x0

    def fit(self, data: torch.Tensor) -> ColdDiffusion:
        """Degrade the training images to timestep ``K-1`` once: the prior draws from :attr:`prior_top`.

        Deterministic, so a resumed training run refits the same prior.
        """
        super().fit(data)
        self.prior_top = self.degrade(data, torch.full((data.shape[0],), self.t_max))
        return self

    def sample_prior(self, n_or_data: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        """Fully degraded training images drawn with replacement (``D(data, K-1)`` for a batch), plus
        ``prior_noise`` noise."""
        if isinstance(n_or_data, torch.Tensor):
            _check_sample(n_or_data, "data")
            top = self.degrade(n_or_data, torch.full((n_or_data.shape[0],), self.t_max))
        else:
            if self.prior_top is None:
                raise RuntimeError("call fit(data) first, or pass a batch of data to sample_prior")
            idx = torch.randint(0, self.prior_top.shape[0], (int(n_or_data),), generator=generator)
            top = self.prior_top[idx]
        return top + self.prior_noise * _randn(top.shape, top, generator)

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> StepOutput:
        """Algorithm 2: ``x_t - D(x0_hat, t) + D(x0_hat, s)``, ``s`` the next scheduled timestep or clean.

        Plus ``sampling_noise`` Gaussian noise unless ``s`` is clean (the last step adds none).
        """
        t = int(timestep)
        prev = self.previous_timestep(t)
        n = sample.shape[0]
        x0 = model_output
        out = sample - self.degrade(x0, torch.full((n,), t)) + self.degrade(x0, torch.full((n,), prev))
        if self.sampling_noise > 0 and prev > CLEAN:
            out = out + self.sampling_noise * _randn(sample.shape, sample, generator)
        return StepOutput(out, x0)
