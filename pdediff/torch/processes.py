"""Forward processes for learned reverse diffusion, shaped like diffusers' schedulers.

Every process maps ``(x0, timestep)`` to a degraded ``x_t`` and turns a model's
output back into a less degraded sample.  They share one interface, so a single
training loop and a single sampler (:mod:`pdediff.torch.training`) drive them all:

* ``timesteps``: the sampling schedule, descending (``set_timesteps(n)`` to change it);
* ``sample_timesteps(batch, generator)``: training timesteps;
* ``add_noise(x0, noise, timesteps)``: the forward process ``x_t``;
* ``training_target(x0, noise, timesteps)``: what the model learns to output;
* ``scale_model_input(sample, timestep)``: the model's input (identity here);
* ``step(model_output, timestep, sample, generator=None)``: one reverse step,
  a :class:`StepOutput` with ``prev_sample`` and ``pred_original_sample``;
* ``fit(data)`` / ``sample_prior(n_or_data, generator)``: the prior sample
  ``x_T`` (Gaussian noise, or blurred data for the non-Gaussian processes);
* ``save_config(path)`` / ``from_config(path)``: JSON round trip.

Timesteps are integers: ``0 .. K-1`` for the Gaussian processes (diffusers'
convention), ``1 .. K`` for the heat-based ones (level 0 is the clean image).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._dlpack import from_array, to_array
from .ops import _solver, heat_blur, perona_malik

__all__ = [
    "StepOutput",
    "ForwardProcess",
    "GaussianDiffusion",
    "HeatDissipation",
    "BlurringDiffusion",
    "ColdDiffusion",
    "load_process",
]


@dataclass
class StepOutput:
    """Result of :meth:`ForwardProcess.step`."""

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


def _randn(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)


def _as_timesteps(timesteps: Any, n: int, lo: int, hi: int) -> torch.Tensor:
    t = torch.as_tensor(timesteps)
    if t.is_floating_point() or t.dtype == torch.bool:
        if t.is_floating_point() and torch.all(t == t.round()):
            t = t.long()
        else:
            raise TypeError(f"timesteps must be integers; got dtype {t.dtype}")
    t = t.long().reshape(-1)
    if t.numel() == 1 and n != 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"timesteps must be a scalar or have one entry per sample ({n}); got {t.numel()}")
    if torch.any(t < lo) or torch.any(t > hi):
        raise ValueError(f"timesteps must lie in [{lo}, {hi}]; got min {int(t.min())}, max {int(t.max())}")
    return t


def _check_sample(x: Any, name: str = "x0") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64; got {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W); got {tuple(x.shape)}")


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


class ForwardProcess:
    """Shared machinery: config, timesteps, JSON round trip.  Subclasses define the maths."""

    #: smallest and largest training timestep
    t_min = 0

    def __init__(self, **config: Any) -> None:
        self.config = dict(config)
        self.num_train_timesteps = int(config["num_train_timesteps"])
        if self.num_train_timesteps < 1:
            raise ValueError(f"num_train_timesteps must be >= 1; got {self.num_train_timesteps}")
        self.prior_data: torch.Tensor | None = None
        self.set_timesteps(self.num_train_timesteps)

    @property
    def t_max(self) -> int:
        return self.t_min + self.num_train_timesteps - 1

    # -- schedule -------------------------------------------------------------------
    def set_timesteps(self, num_inference_steps: int) -> None:
        """Sampling schedule of ``num_inference_steps`` descending timesteps (evenly strided)."""
        n = int(num_inference_steps)
        if not 1 <= n <= self.num_train_timesteps:
            raise ValueError(f"num_inference_steps must be in [1, {self.num_train_timesteps}]; got {n}")
        self.num_inference_steps = n
        ratio = self.num_train_timesteps / n
        ts = np.round(np.arange(n) * ratio).astype(np.int64)[::-1] + self.t_min
        if self.t_min == 1:  # heat-based: always start from the top level K
            ts = np.round(np.arange(1, n + 1) * ratio).astype(np.int64)[::-1]
        self.timesteps = torch.from_numpy(ts.copy())

    def previous_timestep(self, t: int) -> int:
        """The timestep after ``t`` in the current sampling schedule (``t_min - 1`` at the end)."""
        ts = self.timesteps.tolist()
        i = ts.index(int(t)) if int(t) in ts else None
        if i is None:
            return int(t) - max(1, self.num_train_timesteps // self.num_inference_steps)
        return ts[i + 1] if i + 1 < len(ts) else self.t_min - 1

    def sample_timesteps(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """Uniform training timesteps in ``[t_min, t_max]`` (every level sampling uses)."""
        return torch.randint(self.t_min, self.t_max + 1, (n,), generator=generator, device=device)

    def scale_model_input(self, sample: torch.Tensor, timestep: Any = None) -> torch.Tensor:
        """The model sees the sample as is (kept for diffusers compatibility)."""
        return sample

    # -- prior ------------------------------------------------------------------------
    def fit(self, data: torch.Tensor) -> ForwardProcess:
        """Remember training data for the prior (and its shape); returns ``self``."""
        _check_sample(data, "data")
        self.prior_data = data.detach()
        return self

    def _prior_images(self, n_or_data: Any, generator) -> torch.Tensor:
        if isinstance(n_or_data, torch.Tensor):
            _check_sample(n_or_data, "data")
            return n_or_data
        if self.prior_data is None:
            raise RuntimeError("call fit(data) first, or pass a batch of data to sample_prior")
        n = int(n_or_data)
        idx = torch.randint(0, self.prior_data.shape[0], (n,), generator=generator)
        return self.prior_data[idx]

    # -- config -------------------------------------------------------------------------
    def save_config(self, path: str | os.PathLike) -> None:
        """Write ``{"class": ..., **config}`` as JSON (a folder gets ``process_config.json``)."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, "process_config.json")
        with open(path, "w") as f:
            json.dump({"class": type(self).__name__, **self.config}, f, indent=2)

    @classmethod
    def from_config(cls, config: dict | str | os.PathLike) -> ForwardProcess:
        """Build from a config dict or a JSON file written by :meth:`save_config`."""
        if not isinstance(config, dict):
            path = os.fspath(config)
            if os.path.isdir(path):
                path = os.path.join(path, "process_config.json")
            with open(path) as f:
                config = json.load(f)
        config = dict(config)
        name = config.pop("class", cls.__name__)
        klass = _REGISTRY.get(name)
        if klass is None or (cls is not ForwardProcess and not issubclass(klass, cls)):
            raise ValueError(f"config is for {name!r}, not {cls.__name__}")
        return klass(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"


# ------------------------------------------------------------------------------ DDPM
def _betas(schedule: str, K: int, beta_start: float, beta_end: float) -> np.ndarray:
    if schedule == "linear":
        return np.linspace(beta_start, beta_end, K, dtype=np.float64)
    if schedule == "cosine":  # Nichol & Dhariwal 2021, as diffusers' "squaredcos_cap_v2"
        def abar(t):
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        return np.array([min(1 - abar((i + 1) / K) / abar(i / K), 0.999) for i in range(K)])
    raise ValueError(f"beta_schedule must be 'linear' or 'cosine'; got {schedule!r}")


def _schedule(schedule: str, K: int, beta_start: float, beta_end: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``betas`` and their ``alphas_cumprod`` (float64 tensors, one entry per timestep)."""
    betas = torch.from_numpy(_betas(schedule, K, beta_start, beta_end))
    return betas, torch.cumprod(1.0 - betas, 0)


class _NoisePrediction(ForwardProcess):
    """Processes whose model predicts the noise and whose prior is white Gaussian noise.

    Subclasses set ``betas`` and ``alphas_cumprod`` with :func:`_schedule`.
    """

    t_min = 0
    betas: torch.Tensor
    alphas_cumprod: torch.Tensor

    def _abar(self, t: torch.Tensor) -> torch.Tensor:
        """``alpha_bar`` per timestep, with ``t = -1`` (after the last step) meaning clean: 1."""
        out = torch.ones(t.shape, dtype=torch.float64)
        ok = t >= 0
        out[ok] = self.alphas_cumprod[t[ok]]
        return out

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        return noise

    def sample_prior(self, n_or_data: Any, generator: torch.Generator | None = None) -> torch.Tensor:
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
        ``K``; timesteps are ``0 .. K-1``.
    beta_schedule : {"linear", "cosine"}
        Linear from ``beta_start`` to ``beta_end`` (Ho et al.), or the cosine
        schedule of Nichol & Dhariwal (2021).
    """

    t_min = 0

    def __init__(self, num_train_timesteps: int = 1000, beta_schedule: str = "linear",
                 beta_start: float = 1e-4, beta_end: float = 0.02) -> None:
        self.betas, self.alphas_cumprod = _schedule(beta_schedule, int(num_train_timesteps), beta_start, beta_end)
        super().__init__(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule,
                         beta_start=beta_start, beta_end=beta_end)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        _check_sample(x0)
        t = _as_timesteps(timesteps, x0.shape[0], self.t_min, self.t_max)
        ab = _bcast(self._abar(t), x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> StepOutput:
        t = int(timestep)
        prev = self.previous_timestep(t)
        ab_t = float(self.alphas_cumprod[t])
        ab_p = float(self.alphas_cumprod[prev]) if prev >= 0 else 1.0
        beta_t = 1 - ab_t / ab_p
        x0 = (sample - math.sqrt(1 - ab_t) * model_output) / math.sqrt(ab_t)
        c0 = math.sqrt(ab_p) * beta_t / (1 - ab_t)
        ct = math.sqrt(1 - beta_t) * (1 - ab_p) / (1 - ab_t)
        mean = c0 * x0 + ct * sample
        if prev >= 0:
            var = max((1 - ab_p) / (1 - ab_t) * beta_t, 1e-20)
            mean = mean + math.sqrt(var) * _randn(sample.shape, sample, generator)
        return StepOutput(mean, x0)


# ------------------------------------------------------------------------------ IHDM
def _log_sigmas(smin: float, smax: float, K: int) -> np.ndarray:
    if not (0 < smin <= smax):
        raise ValueError(f"need 0 < sigma_blur_min <= sigma_blur_max; got {smin}, {smax}")
    return np.exp(np.linspace(np.log(smin), np.log(smax), K))


class HeatDissipation(ForwardProcess):
    r"""Inverse heat dissipation (Rissanen, Heinonen & Solin, ICLR 2023).

    :math:`x_k = F(t_k) x_0 + \sigma\varepsilon` with :math:`F` the heat flow
    (Neumann, continuous spectrum, :func:`pdediff.torch.heat_blur`),
    :math:`t_k = \sigma_{B,k}^2 / 2`, :math:`\sigma_{B,k}` log-spaced from
    ``sigma_blur_min`` to ``sigma_blur_max`` over ``k = 1..K`` and
    :math:`t_0 = 0`.  The model predicts the residual
    :math:`F(t_{k-1}) x_0 - x_k`; sampling adds ``delta`` noise after every
    step but the last.  The prior is blurred training images (level ``K``)
    plus ``delta`` noise.  Every level ``1..K`` is trained — including ``K``,
    where sampling starts (the published code trains ``1..K-1`` only).

    Parameters
    ----------
    num_train_timesteps : int
        ``K``; timesteps are ``1 .. K``.
    sigma_blur_min, sigma_blur_max : float
        Blur (pixels) of levels 1 and ``K``.
    training_noise : float
        ``sigma`` (default 0.01).
    sampling_noise : float, optional
        ``delta`` (default ``1.25 * training_noise``).
    """

    t_min = 1

    def __init__(self, num_train_timesteps: int = 100, sigma_blur_min: float = 0.5, sigma_blur_max: float = 20.0,
                 training_noise: float = 0.01, sampling_noise: float | None = None) -> None:
        K = int(num_train_timesteps)
        self.sigmas = np.concatenate([[0.0], _log_sigmas(sigma_blur_min, sigma_blur_max, K)])
        self.blur_times = self.sigmas**2 / 2
        delta = 1.25 * training_noise if sampling_noise is None else float(sampling_noise)
        self.training_noise, self.sampling_noise = float(training_noise), delta
        super().__init__(num_train_timesteps=K, sigma_blur_min=sigma_blur_min, sigma_blur_max=sigma_blur_max,
                         training_noise=training_noise, sampling_noise=delta)

    def blur(self, x0: torch.Tensor, levels: Any) -> torch.Tensor:
        """``F(t_k) x0`` per sample (``levels`` in ``0..K``)."""
        k = _as_timesteps(levels, x0.shape[0], 0, self.t_max)
        return heat_blur(x0, torch.from_numpy(self.blur_times[k.cpu().numpy()]))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        _check_sample(x0)
        t = _as_timesteps(timesteps, x0.shape[0], self.t_min, self.t_max)
        return self.blur(x0, t) + self.training_noise * noise

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        t = _as_timesteps(timesteps, x0.shape[0], self.t_min, self.t_max)
        return self.blur(x0, t - 1) - self.add_noise(x0, noise, t)

    def sample_prior(self, n_or_data: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        x0 = self._prior_images(n_or_data, generator)
        top = self.blur(x0, torch.full((x0.shape[0],), self.t_max))
        return top + self.sampling_noise * _randn(x0.shape, x0, generator)

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> StepOutput:
        t = int(timestep)
        prev = self.previous_timestep(t)
        # The model's residual gives F(t_{k-1}) x0.  With a strided schedule (fewer
        # steps than levels) it stands in for the next scheduled level: an
        # approximation; the published sampler visits every level (the default).
        mean = sample + model_output
        out = mean
        if prev >= self.t_min:
            out = mean + self.sampling_noise * _randn(sample.shape, sample, generator)
        return StepOutput(out, mean)


# ---------------------------------------------------------------- Blurring diffusion
class BlurringDiffusion(_NoisePrediction):
    r"""Blurring diffusion (Hoogeboom & Salimans, ICLR 2023), in DCT space.

    With :math:`u = V^T x` the orthonormal DCT-II (Neumann heat eigenbasis),
    :math:`u_t = \alpha_t \odot u_0 + \sigma_t \varepsilon` per frequency, where
    :math:`\alpha_t = a_t d_t`, :math:`d_t = (1-d_{\min}) e^{-\lambda \tau_t} + d_{\min}`,
    :math:`\tau_t = \sigma_B(t)^2/2`, :math:`\sigma_B(t) = \sigma_{B,\max}\sin^2(\pi t/2)`
    with :math:`t = (k+1)/K`, and :math:`a_t = \sqrt{\bar\alpha_k}`,
    :math:`\sigma_t = \sqrt{1-\bar\alpha_k}` from the cosine schedule of
    :class:`GaussianDiffusion`.  ε-prediction; the reverse step uses the
    per-frequency Gaussian posterior, so its noise is coloured.  With
    ``sigma_blur_max = 0`` every :math:`d_t = 1` and the process *is*
    ``GaussianDiffusion(beta_schedule="cosine")``.
    """

    t_min = 0

    def __init__(self, num_train_timesteps: int = 1000, sigma_blur_max: float = 20.0, min_scale: float = 0.001,
                 beta_schedule: str = "cosine") -> None:
        K = int(num_train_timesteps)
        self.betas, self.alphas_cumprod = _schedule(beta_schedule, K, 1e-4, 0.02)
        tt = (np.arange(K) + 1) / K
        self.blur_times = (float(sigma_blur_max) * np.sin(tt * np.pi / 2) ** 2) ** 2 / 2
        self.min_scale = float(min_scale)
        self._lam: dict = {}
        super().__init__(num_train_timesteps=K, sigma_blur_max=sigma_blur_max, min_scale=min_scale,
                         beta_schedule=beta_schedule)

    # DCT helpers through pdediff's spectral solver (orthonormal DCT-II over H, W)
    def _solver(self, shape, dtype):
        return _solver(tuple(shape), str(dtype).replace("torch.", ""), "neumann", 1.0, "continuous")

    def _dct(self, x: torch.Tensor) -> torch.Tensor:
        s = self._solver(x.shape[-2:], x.dtype)
        return from_array(s.forward(to_array(x.contiguous())), x)

    def _idct(self, c: torch.Tensor) -> torch.Tensor:
        s = self._solver(c.shape[-2:], c.dtype)
        return from_array(s.inverse(to_array(c.contiguous().clone())), c)

    def _lambda(self, shape, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(shape), x.dtype, x.device)
        if key not in self._lam:
            sy, sx = self._solver(shape, x.dtype).symbols
            lam = torch.from_numpy(sy[:, None] + sx[None, :])
            self._lam[key] = lam.to(device=x.device, dtype=torch.float64)
        return self._lam[key]

    def _alpha_sigma(self, t: torch.Tensor, x: torch.Tensor):
        """Per-frequency ``alpha`` (N, 1, H, W) and scalar ``sigma`` (N, 1, 1, 1); ``t = -1`` is clean."""
        lam = self._lambda(x.shape[-2:], x)
        ab = self._abar(t)
        tau = torch.zeros(t.shape, dtype=torch.float64)
        ok = t >= 0
        tau[ok] = torch.from_numpy(self.blur_times)[t[ok]]
        # d = (1 - d_min) e^{-lam tau} + d_min, written so that tau = 0 (clean, or no blur) gives 1 exactly
        d = 1 + (1 - self.min_scale) * torch.expm1(-lam[None] * tau.to(lam.device)[:, None, None])
        alpha = ab.sqrt().to(lam.device)[:, None, None] * d
        sigma = (1 - ab).sqrt()
        return alpha[:, None].to(x.dtype), _bcast(sigma, x)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        _check_sample(x0)
        t = _as_timesteps(timesteps, x0.shape[0], self.t_min, self.t_max)
        alpha, sigma = self._alpha_sigma(t, x0)
        return self._idct(alpha * self._dct(x0)) + sigma * noise

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> StepOutput:
        t = int(timestep)
        prev = self.previous_timestep(t)
        n = sample.shape[0]
        a_t, s_t = self._alpha_sigma(torch.full((n,), t), sample)
        a_s, s_s = self._alpha_sigma(torch.full((n,), prev), sample)
        z = self._dct(sample)
        eps = self._dct(model_output)
        x0 = (z - s_t * eps) / a_t
        a_ts = a_t / a_s
        var_ts = s_t**2 - a_ts**2 * s_s**2
        mean = (a_ts * s_s**2 / s_t**2) * z + (a_s * var_ts / s_t**2) * x0
        if prev >= 0:
            std = (var_ts * s_s**2 / s_t**2).clamp_min(0).sqrt()  # per frequency: coloured noise
            # white noise drawn in pixel space, then transformed: the same draws as GaussianDiffusion
            mean = mean + std * self._dct(_randn(sample.shape, sample, generator))
        return StepOutput(self._idct(mean), self._idct(x0))


# ------------------------------------------------------------------- Cold diffusion
class ColdDiffusion(ForwardProcess):
    r"""Cold diffusion (Bansal et al., NeurIPS 2023) with pdediff's operators as the degradation.

    ``operator="heat"``: :math:`D(x_0, k) = F(t_k) x_0` with the IHDM blur
    schedule; ``operator="perona_malik"``: :math:`k \cdot` ``iters_per_level``
    explicit Perona–Malik iterations (nonlinear; ``kappa`` fixed).  The model
    predicts :math:`x_0`; sampling is Bansal et al.'s Algorithm 2,
    :math:`x_{k-1} = x_k - D(\hat x_0, k) + D(\hat x_0, k-1)`.  The prior is
    fitted to the fully degraded training data: a small Gaussian mixture over
    per-image channel means (the fully blurred images are nearly constant),
    plus optional symmetry-breaking noise of standard deviation ``prior_noise``
    (also added in training when ``training_noise > 0``).
    """

    t_min = 1

    def __init__(self, num_train_timesteps: int = 50, operator: str = "heat", sigma_blur_min: float = 0.5,
                 sigma_blur_max: float = 20.0, iters_per_level: int = 2, kappa: float = 0.1,
                 prior_components: int = 4, prior_noise: float = 0.002, training_noise: float = 0.0) -> None:
        if operator not in ("heat", "perona_malik"):
            raise ValueError(f"operator must be 'heat' or 'perona_malik'; got {operator!r}")
        K = int(num_train_timesteps)
        self.blur_times = np.concatenate([[0.0], _log_sigmas(sigma_blur_min, sigma_blur_max, K) ** 2 / 2])
        self.gmm: dict | None = None
        super().__init__(num_train_timesteps=K, operator=operator, sigma_blur_min=sigma_blur_min,
                         sigma_blur_max=sigma_blur_max, iters_per_level=iters_per_level, kappa=kappa,
                         prior_components=prior_components, prior_noise=prior_noise, training_noise=training_noise)

    def degrade(self, x0: torch.Tensor, levels: Any) -> torch.Tensor:
        """``D(x0, k)`` per sample (``levels`` in ``0..K``)."""
        k = _as_timesteps(levels, x0.shape[0], 0, self.t_max)
        if self.config["operator"] == "heat":
            return heat_blur(x0, torch.from_numpy(self.blur_times[k.cpu().numpy()]))
        out = torch.empty_like(x0)
        for i, ki in enumerate(k.tolist()):
            out[i : i + 1] = perona_malik(x0[i : i + 1], num_iter=ki * int(self.config["iters_per_level"]),
                                          kappa=float(self.config["kappa"]), sigma=0.0)
        return out

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        _check_sample(x0)
        t = _as_timesteps(timesteps, x0.shape[0], self.t_min, self.t_max)
        return self.degrade(x0, t) + float(self.config["training_noise"]) * noise

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        return x0

    def fit(self, data: torch.Tensor) -> ColdDiffusion:
        """Fit the prior: a diagonal GMM (EM, seeded) over per-image channel means of ``D(data, K)``."""
        super().fit(data)
        top = self.degrade(data, torch.full((data.shape[0],), self.t_max))
        means = top.mean(dim=(-1, -2)).double().cpu().numpy()  # (N, C)
        self.gmm = _fit_gmm(means, int(self.config["prior_components"]))
        return self

    def sample_prior(self, n_or_data: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        if isinstance(n_or_data, torch.Tensor):
            like = n_or_data
            top = self.degrade(like, torch.full((like.shape[0],), self.t_max))
        else:
            if self.gmm is None or self.prior_data is None:
                raise RuntimeError("call fit(data) first, or pass a batch of data to sample_prior")
            n = int(n_or_data)
            like = self.prior_data[:1].expand(n, -1, -1, -1)
            g = self.gmm
            comp = torch.multinomial(torch.from_numpy(g["weights"]), n, replacement=True, generator=generator)
            mu = torch.from_numpy(g["means"])[comp]
            sd = torch.from_numpy(g["vars"])[comp].sqrt()
            m = mu + sd * torch.randn(mu.shape, generator=generator, dtype=torch.float64)
            top = m.to(like.dtype)[:, :, None, None].expand(like.shape).to(like.device).clone()
        return top + float(self.config["prior_noise"]) * _randn(top.shape, top, generator)

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> StepOutput:
        t = int(timestep)
        prev = max(self.previous_timestep(t), 0)
        n = sample.shape[0]
        x0 = model_output
        out = sample - self.degrade(x0, torch.full((n,), t)) + self.degrade(x0, torch.full((n,), prev))
        return StepOutput(out, x0)


def _fit_gmm(x: np.ndarray, k: int, iters: int = 100, seed: int = 0) -> dict:
    """Diagonal Gaussian mixture by EM (k-means++-like seeding, variance floor)."""
    n, d = x.shape
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    means = x[rng.choice(n, k, replace=False)].copy()
    var_floor = 1e-6 + 1e-3 * x.var(0).mean()
    vars_ = np.tile(x.var(0) + var_floor, (k, 1))
    w = np.full(k, 1.0 / k)
    for _ in range(iters):
        logp = -0.5 * (((x[:, None, :] - means[None]) ** 2) / vars_[None] + np.log(2 * np.pi * vars_[None])).sum(-1)
        logp += np.log(w)[None]
        logp -= logp.max(1, keepdims=True)
        r = np.exp(logp)
        r /= r.sum(1, keepdims=True)
        nk = r.sum(0) + 1e-12
        w = nk / n
        means = (r.T @ x) / nk[:, None]
        vars_ = (r.T @ x**2) / nk[:, None] - means**2 + var_floor
    return {"weights": w, "means": means, "vars": vars_}


_REGISTRY = {c.__name__: c for c in (GaussianDiffusion, HeatDissipation, BlurringDiffusion, ColdDiffusion)}


def load_process(path: str | os.PathLike) -> ForwardProcess:
    """Rebuild any process from the JSON written by :meth:`ForwardProcess.save_config`."""
    return ForwardProcess.from_config(path)
