r"""Edge-preserving diffusion (Vandersanden, Holl, Huang, Singh, arXiv 2410.01540): DDPM whose noise is
damped on edges by a Perona–Malik conductance early on and is ordinary isotropic noise after a transition time.

The process, as implemented here (derivation: docs/learned_diffusion.rst, "Edge-preserving diffusion").
With DDPM's :math:`\bar\alpha_t`, clean image :math:`x_0` and per-pixel standard deviation

.. math::

    x_t = \sqrt{\bar\alpha_t}\,x_0 + \sigma_t \odot \varepsilon,\qquad
    \sigma_t = \sqrt{1-\bar\alpha_t}\; f_t(x_0),\qquad
    f_t = 1 - s\,(1-\tau_t)\,(1-g_t),

where :math:`g_t` is pdediff's Perona–Malik conductance of :math:`x_0` (optionally Catté-smoothed with
``sigma``) at edge threshold :math:`\kappa(t)`, :math:`\tau_t \in [0, 1]` the transition function (1 from the
transition time on) and :math:`s` = ``edge_strength``.  :math:`f_t = (1-\tau_t)\,g_t + \tau_t` for
:math:`s = 1`.  The conductance per pixel is the smallest of pdediff's face conductances around it:
per face between neighbouring pixels ``i``, ``j`` along an axis, ``d = x_j - x_i`` (summed squared over the
channels, which share one edge map, as ``pdediff.perona_malik(..., channel_axis=0)`` does),
``g(d**2 / kappa**2)`` with the same ``exponential`` / ``rational`` / ``tukey`` formulas as pdediff's kernels;
a pixel takes the minimum over its ``2 * 2`` faces (faces through the image border do not exist: Neumann,
conductance 1), so both pixels along an edge are damped.  The Catté smoothing is ``pdediff.perona_malik``'s
own smoother (a truncated Gaussian up to 4 pixels, the exact Gaussian in the DCT domain beyond), run by
pdediff's kernels on the tensor's device (CPU, or CUDA through DLPack); the conductance is torch
arithmetic on that device.

Decisions (with the paper's code, github.com/Jentuuh/edge-preserving-diffusion, for comparison):

* Interpolation.  The paper interpolates the inverse of its conductance
  :math:`1/\sqrt{1+|\nabla x_0|^2/\lambda}` (:math:`\sigma_t = \sqrt{1-\bar\alpha_t} /
  ((1-\tau)\sqrt{1+\dots} + \tau)`); here the conductance itself is interpolated, with pdediff's
  conductances.  Both equal :math:`g` at :math:`\tau=0` and 1 at :math:`\tau=1`, and both give a factor
  non-decreasing in ``t`` (which the Markov chain below needs).
* Transition function.  The published code trains with a cosine :math:`(1-\cos\pi u)/2` that ignores the
  transition time and samples with a linear :math:`\tau = u` that jumps to 1 at the transition time: the
  sampler assumes a noise level per pixel that the network was not trained on.  Here one process object
  serves both, so training and sampling use the same :math:`\tau`; every transition (``"logistic"``,
  ``"linear"``, ``"cosine"``) is a continuous, non-decreasing function of :math:`r = \min(u/u_\varphi, 1)`,
  :math:`u = t/(K-1)`, that is 0 at :math:`t = 0` and exactly 1 from :math:`u_\varphi` =
  ``transition_time`` on: linear :math:`r`, cosine :math:`(1-\cos\pi r)/2`, logistic
  :math:`(\mathrm{sig}(k(r-\tfrac12)) - \mathrm{sig}(-k/2)) / (\mathrm{sig}(k/2) - \mathrm{sig}(-k/2))`
  with ``steepness`` :math:`k` (the paper's exponential scheme, rescaled so that it reaches 1).  Since
  ``transition_time <= 1``, the last level is DDPM's and the prior is white noise.
* Edge threshold :math:`\kappa(t)`: :math:`\kappa^2` linear from ``kappa_min**2`` at ``t = 0`` to
  ``kappa_max**2`` at the transition time, constant after (the paper's :math:`\lambda` is :math:`\kappa^2`,
  linear over the same interval).  Intensity units per pixel, as ``pdediff.perona_malik``'s ``kappa``: not
  normalised by the batch's largest gradient (the paper's code divides by it, which makes one image's noise
  depend on the others in its batch).
* Training target: :math:`f_t \odot \varepsilon = \sigma_t \odot \varepsilon / \sqrt{1-\bar\alpha_t}`, the
  paper's scaled noise :math:`\sigma_t \odot \varepsilon` in units of DDPM's noise level: the same quantity
  up to a known factor per timestep, with a unit-scale output and DDPM's loss weighting (the paper's
  target weights the MSE by :math:`1-\bar\alpha_t`).  With the edge factor off it *is* DDPM's target.

Sampling: the chain :math:`q(x_t \mid x_{t-1}, x_0) = \mathcal N(a_{t|s} x_s, \sigma^2_{t|s})` per pixel
with :math:`a_{t|s} = \sqrt{\bar\alpha_t/\bar\alpha_s}` and :math:`\sigma^2_{t|s} = \sigma_t^2 - a_{t|s}^2
\sigma_s^2` (:math:`s` the previous level) has exactly the marginals above (given :math:`x_0`, through
which the edge map enters), and its posterior is, per pixel,

.. math::

    q(x_s \mid x_t, x_0) = \mathcal N\Big(\frac{a_{t|s}\sigma_s^2\,x_t + \sqrt{\bar\alpha_s}\,
    \sigma_{t|s}^2\,x_0}{\sigma_t^2},\ \frac{\sigma_s^2\,\sigma_{t|s}^2}{\sigma_t^2}\Big),

evaluated with :math:`\hat x_0` (and the edge map of :math:`\hat x_0`) at every step.  With the edge factor
off (``edge_strength=0``, or :math:`\tau = 1` at both levels) every formula is written so that it performs
DDPM's floating-point operations: the process is :class:`GaussianDiffusion` bit for bit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..._backend import backend_for
from ..._steppers import make_smoother
from ...catalogue import CONDUCTANCES
from ...errors import ParameterError
from .._dlpack import from_array, to_array
from ._base import CLEAN, StepOutput, _as_timesteps, _bcast, _check_sample, _randn, _transition_levels, check_real
from ._base import train_timesteps
from .gaussian import _check_betas, _NoisePrediction, _schedule, beta_schedule_name

__all__ = ["EdgePreservingDiffusion", "TRANSITIONS"]

#: Transition functions :math:`\tau` from edge-preserving to isotropic noise.
TRANSITIONS = ("logistic", "linear", "cosine")


def _option(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ParameterError(f"{{{name}}} must be one of {', '.join(map(repr, allowed))}; got {value!r}", param=name)
    return value


def _transition(kind: str, r: np.ndarray, steepness: float) -> np.ndarray:
    """``tau`` of ``r = min(u / u_phi, 1)`` in ``[0, 1]``: 0 at ``r = 0``, exactly 1 at ``r = 1``."""
    if kind == "linear":
        tau = r.copy()
    elif kind == "cosine":
        tau = (1.0 - np.cos(np.pi * r)) / 2.0
    else:  # logistic, rescaled to [0, 1] on r in [0, 1]
        def sig(v):
            return 1.0 / (1.0 + np.exp(-v))

        lo, hi = sig(-steepness / 2.0), sig(steepness / 2.0)
        tau = (sig(steepness * (r - 0.5)) - lo) / (hi - lo)
    tau = np.clip(tau, 0.0, 1.0)
    tau[r >= 1.0] = 1.0
    tau[r <= 0.0] = 0.0
    return tau


def _conductance(x: torch.Tensor, kind: str) -> torch.Tensor:
    """pdediff's conductance ``g`` of ``x = d^2 / kappa^2 >= 0`` (:func:`pdediff.kernels.formulas.conductance`):
    0 where ``x`` is not finite."""
    zero = torch.zeros_like(x)
    if kind == "rational":
        return torch.where(torch.isfinite(x), 1.0 / (1.0 + x), zero)
    if kind == "tukey":
        return torch.where(x <= 1.0, 0.5 * (1.0 - x) ** 2, zero)
    return torch.where(torch.isnan(x), zero, torch.exp(-x))


def _face_conductances(u: torch.Tensor, kappa: torch.Tensor, kind: str) -> list[torch.Tensor]:
    """Per spatial axis of ``u`` ``(N, C, H, W)``: the ``(N, 1, ...)`` conductances of the faces between
    neighbours along it, ``g(sum_c d_c^2 / kappa^2)`` with ``d = u_j - u_i`` (unit spacing) and ``kappa``
    one per sample ``(N,)``: the faces of one explicit step of ``pdediff.perona_malik(..., sigma=0,
    channel_axis=0)``."""
    kinv2 = (1.0 / (kappa * kappa)).to(u.dtype).reshape(-1, 1, 1, 1)
    out = []
    for dim in (2, 3):
        d = torch.diff(u, dim=dim)
        out.append(_conductance((d * d).sum(dim=1, keepdim=True) * kinv2, kind))
    return out


def _catte(u: torch.Tensor, sigma: float) -> torch.Tensor:
    """``pdediff.perona_malik``'s Catté smoothing of every ``(C, H, W)`` sample of ``u`` (its own smoother, on
    the tensor's device through DLPack: the truncated Gaussian up to 4 pixels, the exact one beyond)."""
    arr = to_array(u.contiguous())
    be = backend_for(arr)
    smooth = make_smoother(sigma, (1.0, 1.0), tuple(arr.shape[1:]), arr.dtype, be)
    out = be.xp.empty_like(arr)
    for i in range(arr.shape[0]):
        out[i] = smooth(arr[i])
    return from_array(out, u)


def _edge_map(u: torch.Tensor, kappa: torch.Tensor, kind: str, sigma: float) -> torch.Tensor:
    """Per-pixel conductance ``(N, 1, H, W)`` float64: the smallest of the face conductances around each pixel
    of ``u`` (Catté-smoothed with standard deviation ``sigma`` first when ``sigma > 0``, as
    ``pdediff.perona_malik`` smooths)."""
    u = u.detach().to(torch.float64)
    if sigma > 0:
        u = _catte(u, sigma)
    gx, gy = _face_conductances(u, kappa, kind)
    pad = torch.nn.functional.pad
    g = torch.minimum(pad(gx, (0, 0, 1, 0), value=1.0), pad(gx, (0, 0, 0, 1), value=1.0))
    g = torch.minimum(g, torch.minimum(pad(gy, (1, 0), value=1.0), pad(gy, (0, 1), value=1.0)))
    return g


class EdgePreservingDiffusion(_NoisePrediction):
    r"""Edge-preserving noise (Vandersanden et al. 2024): :math:`x_t = \sqrt{\bar\alpha_t}x_0 + \sigma_t\odot\varepsilon`.

    Per pixel :math:`\sigma_t = \sqrt{1-\bar\alpha_t}\,(1 - s(1-\tau_t)(1-g_t))`, with :math:`g_t` pdediff's
    Perona–Malik conductance of :math:`x_0` at :math:`\kappa(t)` and :math:`\tau_t` a transition to
    isotropic DDPM noise that is complete at ``transition_time``.  The model predicts
    :math:`\sigma_t\odot\varepsilon/\sqrt{1-\bar\alpha_t}`; sampling is ancestral with the exact per-pixel
    Gaussian posterior, the edge map recomputed from :math:`\hat x_0` at every step.  The module docstring
    (:mod:`pdediff.torch.processes.edge_preserving`) and docs/learned_diffusion.rst give the derivation and
    where this departs from the paper's code.  ``edge_strength=0`` is :class:`GaussianDiffusion` bit for bit.

    Parameters
    ----------
    num_train_timesteps : int
        ``K``; timesteps ``0 .. K-1``.
    beta_schedule : {"linear", "scaled_linear", "cosine"}
        DDPM's schedule of :math:`\bar\alpha_t` (:class:`GaussianDiffusion`'s; ``"squaredcos_cap_v2"``
        accepted for ``"cosine"``).
    beta_start, beta_end : float
        ``0 < beta_start <= beta_end < 1`` (the linear schedules).
    conductance : {"rational", "exponential", "tukey"}
        ``1/(1+x)``, ``exp(-x)`` or ``0.5 (1-x)^2`` (``x <= 1``, else 0) of ``x = d^2/kappa^2``: pdediff's
        conductances (:data:`pdediff.catalogue.CONDUCTANCES`).
    kappa_min, kappa_max : float
        Edge threshold at ``t = 0`` and from the transition time on, intensity per pixel,
        ``0 < kappa_min <= kappa_max``; :math:`\kappa^2` is linear in ``t`` between them.
    transition : {"cosine", "linear", "logistic"}
        Shape of :math:`\tau` (:data:`TRANSITIONS`).
    transition_time : float
        :math:`u_\varphi \in (0, 1]`, the fraction of ``K - 1`` at which :math:`\tau` reaches 1 (DDPM noise
        from there on).
    steepness : float
        ``k > 0`` of the logistic transition (unused by the others).
    sigma : float
        Catté smoothing (pixels, ``>= 0``) of the image whose conductance is taken; 0: none.
    edge_strength : float
        :math:`s \in [0, 1]`: 1 is the paper's process, 0 switches the edge factor off (DDPM).

    Raises
    ------
    ~pdediff.errors.ParameterError
        A value out of range, named in the message.
    """

    def __init__(self, num_train_timesteps: int = 1000, beta_schedule: str = "linear", beta_start: float = 1e-4,
                 beta_end: float = 0.02, conductance: str = "rational", kappa_min: float = 0.01,
                 kappa_max: float = 0.6, transition: str = "cosine", transition_time: float = 0.5,
                 steepness: float = 10.0, sigma: float = 0.0, edge_strength: float = 1.0) -> None:
        K = train_timesteps(num_train_timesteps)
        beta_schedule = beta_schedule_name(beta_schedule)
        _check_betas(beta_start, beta_end)
        conductance = _option(conductance, "conductance", CONDUCTANCES)
        kmin = check_real(kappa_min, "kappa_min", lo=0.0, lo_open=True)
        kmax = check_real(kappa_max, "kappa_max", lo=0.0, lo_open=True)
        if kmin > kmax:
            raise ParameterError(f"need 0 < {{kappa_min}} <= {{kappa_max}}; got {kmin}, {kmax}", param="kappa_min")
        transition = _option(transition, "transition", TRANSITIONS)
        u_phi = check_real(transition_time, "transition_time", lo=0.0, hi=1.0, lo_open=True)
        steep = check_real(steepness, "steepness", lo=0.0, hi=500.0, lo_open=True)
        sig = check_real(sigma, "sigma", lo=0.0)
        strength = check_real(edge_strength, "edge_strength", lo=0.0, hi=1.0)
        self.beta_schedule, self.conductance, self.transition = beta_schedule, conductance, transition
        self.sigma, self.edge_strength = sig, strength
        self.betas, self.alphas_cumprod = _schedule(beta_schedule, K, beta_start, beta_end)
        u = np.arange(K, dtype=np.float64) / (K - 1) if K > 1 else np.ones(1)
        r = np.minimum(u / u_phi, 1.0)
        #: :math:`\tau_t` per timestep (float64, ``(K,)``).
        self.tau = torch.from_numpy(_transition(transition, r, steep))
        #: :math:`\kappa(t)` per timestep (float64, ``(K,)``).
        self.kappa = torch.from_numpy(np.sqrt(kmin**2 + (kmax**2 - kmin**2) * r))
        super().__init__(num_train_timesteps=K, beta_schedule=beta_schedule, beta_start=beta_start,
                         beta_end=beta_end, conductance=conductance, kappa_min=kappa_min, kappa_max=kappa_max,
                         transition=transition, transition_time=transition_time, steepness=steepness,
                         sigma=sigma, edge_strength=edge_strength)

    # -- the edge factor ----------------------------------------------------------------
    def edge_factor(self, x0: torch.Tensor, timesteps: Any) -> torch.Tensor:
        r"""The factor :math:`f_t = 1 - s(1-\tau_t)(1-g_t(x_0))` of the noise level, per pixel.

        Parameters
        ----------
        x0 : Tensor, shape ``(N, C, H, W)``
            Clean images (or a clean estimate), float32 or float64.
        timesteps : int or Tensor of int
            In ``[-1, K-1]`` (``-1``: clean, factor 1), one for all samples or one per sample.

        Returns
        -------
        Tensor, shape ``(N, 1, H, W)``, float64
            In ``[0, 1]``; shared by the channels; exactly 1 where the edge factor is off
            (``edge_strength=0``, or :math:`\tau_t = 1`).
        """
        _check_sample(x0)
        t = _as_timesteps(timesteps, x0.shape[0], CLEAN, self.t_max)
        n, _, h, w = x0.shape
        ones = torch.ones((n, 1, h, w), dtype=torch.float64, device=x0.device)
        tau = torch.ones(t.shape, dtype=torch.float64)
        ok = t > CLEAN
        tau[ok] = self.tau[t[ok]]
        if self.edge_strength == 0.0 or bool(torch.all(tau == 1.0)):
            return ones
        kappa = torch.ones(t.shape, dtype=torch.float64)
        kappa[ok] = self.kappa[t[ok]]
        g = _edge_map(x0, kappa.to(x0.device), self.conductance, self.sigma)
        damp = (self.edge_strength * (1.0 - tau)).to(x0.device).reshape(-1, 1, 1, 1)
        return ones - damp * (1.0 - g)

    # -- the contract ---------------------------------------------------------------------
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        """``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) f_t(x0) noise`` for timesteps in ``[0, K-1]``."""
        _check_sample(x0)
        t = _as_timesteps(timesteps, x0.shape[0], self.t_min, self.t_max)
        ab = _bcast(self._abar(t), x0)
        f = self.edge_factor(x0, t).to(x0.dtype)
        return ab.sqrt() * x0 + ((1 - ab).sqrt() * f) * noise

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        """The scaled noise in DDPM's units, ``f_t(x0) * noise = sigma_t * noise / sqrt(1 - abar_t)``."""
        _check_sample(x0)
        t = _as_timesteps(timesteps, x0.shape[0], self.t_min, self.t_max)
        return self.edge_factor(x0, t).to(x0.dtype) * noise

    def forward_transition(self, sample: torch.Tensor, timestep: int, next_timestep: int,
                           generator: torch.Generator | None = None, *,
                           pred_original_sample: torch.Tensor | None = None) -> torch.Tensor:
        r"""Draw :math:`x_s \sim q(x_s \mid x_t, \hat x_0)` for ``next_timestep`` ``s`` > ``timestep`` ``t``.

        Per pixel :math:`x_s = a_{s|t} x_t + \sigma_{s|t}\eta` with :math:`a_{s|t} =
        \sqrt{\bar\alpha_s/\bar\alpha_t}` and :math:`\sigma_{s|t}^2 = \sigma_s^2 - a_{s|t}^2\sigma_t^2`
        (the chain's composed transition: samples of :math:`q(x_t\mid x_0)` become samples of
        :math:`q(x_s \mid x_0)`), the noise levels taken with the edge map of ``pred_original_sample``
        (required unless the edge factor is off at both levels, then it is DDPM's jump).
        """
        t, s = _transition_levels(self, sample, timestep, next_timestep)
        ab_t = float(self.alphas_cumprod[t]) if t > CLEAN else 1.0
        ab_s = float(self.alphas_cumprod[s])
        ratio = ab_s / ab_t
        off = self.edge_strength == 0.0 or (float(self.tau[s]) == 1.0 and (t == CLEAN or float(self.tau[t]) == 1.0))
        if pred_original_sample is None and not off:
            raise ValueError("EdgePreservingDiffusion.forward_transition needs pred_original_sample (the clean "
                             "estimate whose edge map sets the per-pixel noise levels)")
        ref = sample if pred_original_sample is None else pred_original_sample
        n = sample.shape[0]
        fs2 = self.edge_factor(ref, torch.full((n,), s)) ** 2
        ft2 = self.edge_factor(ref, torch.full((n,), t)) ** 2
        var = (1 - ratio) * fs2 + (ratio * (1 - ab_t)) * (fs2 - ft2)  # exactly 1 - ratio at f = 1
        std = var.clamp_min(0.0).sqrt().to(sample.dtype)
        return math.sqrt(ratio) * sample + std * _randn(sample.shape, sample, generator)

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> StepOutput:
        """One ancestral step with the per-pixel posterior; the last one (to clean) adds no noise."""
        t = int(timestep)
        prev = self.previous_timestep(t)
        ab_t = float(self.alphas_cumprod[t])
        ab_p = float(self.alphas_cumprod[prev]) if prev > CLEAN else 1.0
        beta_t = 1 - ab_t / ab_p
        x0 = (sample - math.sqrt(1 - ab_t) * model_output) / math.sqrt(ab_t)
        n = sample.shape[0]
        ft2 = self.edge_factor(x0, torch.full((n,), t)) ** 2
        fs2 = self.edge_factor(x0, torch.full((n,), prev)) ** 2
        # sigma_{t|s}^2 = sigma_t^2 - (abar_t/abar_s) sigma_s^2, written as beta f_t^2 + ... (exactly beta at f = 1)
        st2 = beta_t * ft2 + (ab_t / ab_p * (1 - ab_p)) * (ft2 - fs2)
        sig_t2 = (1 - ab_t) * ft2
        c0 = math.sqrt(ab_p) * st2 / sig_t2
        ct = math.sqrt(1 - beta_t) * ((1 - ab_p) * fs2) / sig_t2
        mean = c0.to(sample.dtype) * x0 + ct.to(sample.dtype) * sample
        if prev > CLEAN:
            var = (((1 - ab_p) * fs2) / sig_t2 * st2).clamp_min(1e-20)
            mean = mean + var.sqrt().to(sample.dtype) * _randn(sample.shape, sample, generator)
        return StepOutput(mean, x0)
