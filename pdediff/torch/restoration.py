"""Restoration with a trained reverse-diffusion model: inpainting (RePaint) and style transfer (SDEdit).

Both drive any of pdediff's forward processes (:mod:`pdediff.torch.processes`)
with the same model calls as :func:`pdediff.torch.sample`; neither retrains
anything.
"""

from __future__ import annotations

import itertools
import math
import numbers
from typing import Any

import numpy as np
import torch

from .._validation import DEFAULT_MAX_STEPS
from ..errors import ParameterError, StepLimitError
from . import _checks
from .processes import CLEAN, ForwardProcess
from .processes._base import _check_sample

__all__ = ["repaint", "restyle"]


# ------------------------------------------------------------------------------ checks
def _check_images(images: Any) -> torch.Tensor:
    """A finite float32/float64 ``(N, C, H, W)`` tensor with values in [-1, 1]."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape (N, C, H, W); got {type(images).__name__}")
    if images.dtype in (torch.bool,) or images.is_complex() or not images.is_floating_point():
        raise TypeError(f"images must be float32 or float64; got {images.dtype}")
    _check_sample(images, "images")
    if images.numel() == 0:
        raise ValueError(f"images must not be empty; got shape {tuple(images.shape)}")
    if not bool(torch.isfinite(images).all()):
        raise ValueError("images contain NaN or infinity")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1.0 or hi > 1.0:
        raise ValueError(f"images must lie in [-1, 1] (the data scale of pdediff.torch.data); got values in "
                         f"[{lo:g}, {hi:g}]")
    return images


def _check_mask(mask: Any, images: torch.Tensor) -> torch.Tensor:
    """A boolean mask broadcast to ``images``' shape, on its device (True = missing)."""
    if not isinstance(mask, torch.Tensor):
        try:
            arr = np.asarray(mask)
        except (TypeError, ValueError):  # ragged or otherwise unreadable: refused below
            arr = None
        if arr is None or arr.dtype != np.bool_:
            what = type(mask).__name__ if arr is None else f"dtype {arr.dtype}"
            raise TypeError(f"mask must be a boolean array or tensor (True = missing pixel); got {what}")
        mask = torch.from_numpy(arr)
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be boolean (True = missing pixel, as in scikit-image and OpenCV); got "
                        f"{mask.dtype}")
    try:
        mask = torch.broadcast_to(mask, images.shape)
    except RuntimeError:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to images of shape "
                         f"{tuple(images.shape)}") from None
    return mask.to(images.device).contiguous()


def _check_int(name: str, value: Any, lo: int) -> int:
    return _checks.integer(value, name, lo)


def _schedule(process: ForwardProcess, num_inference_steps: Any) -> list[int]:
    if num_inference_steps is not None:
        K = process.num_train_timesteps
        _checks.integer(num_inference_steps, "num_inference_steps", 1, K,
                        message=f"{{num_inference_steps}} must be an integer in [1, {K}] (the process's timesteps) "
                        f"or None; got {num_inference_steps!r}")
        process.set_timesteps(int(num_inference_steps))
    return [int(t) for t in process.timesteps.tolist()]


def _iterate(items, progress: bool, desc: str):
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, disable=None)


def _denoise(model: torch.nn.Module, process: ForwardProcess, x: torch.Tensor, t: int, device, generator):
    """One reverse step, with exactly the calls of :func:`pdediff.torch.sample` (so the draws match)."""
    tt = torch.full((x.shape[0],), int(t), dtype=torch.long)
    out = model(process.scale_model_input(x, t).to(device), tt.to(device)).to(x.device, x.dtype)
    return process.step(out, t, x, generator=generator)


def _randn_like(x: torch.Tensor, generator) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


# ------------------------------------------------------------------------------ RePaint
def _repaint_schedule(n: int, jump_length: int, jump_n_sample: int) -> list[int]:
    """States visited by RePaint, ``n`` (the prior) down to ``0`` (clean), moving by ±1.

    State ``m`` is the sample after ``n - m`` reverse steps of an ``n``-step
    schedule.  After the reverse step that reaches state ``j`` (``j = 0,
    jump_length, 2 jump_length, ... < n - jump_length``) the chain goes back up
    ``jump_length`` states and down again, ``jump_n_sample - 1`` times: the
    schedule of Lugmayr et al. (2022) and diffusers' ``RePaintScheduler`` (whose
    timestep list, in inference-step units, is this list without its first entry).
    """
    jumps = {j: jump_n_sample - 1 for j in range(0, n - jump_length, jump_length)}
    states = [n]
    t = n
    while t >= 1:
        t -= 1
        states.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(jump_length):
                t += 1
                states.append(t)
    return states


def _known_mean(known: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``known`` with every missing pixel set to its image-and-channel's mean known value (0 if none is known)."""
    keep = (~mask).to(known.dtype)
    count = keep.sum(dim=(-1, -2), keepdim=True)
    mean = (known * keep).sum(dim=(-1, -2), keepdim=True) / count.clamp_min(1)
    return torch.where(mask, mean.expand_as(known), known)


@torch.no_grad()
def repaint(
    model: torch.nn.Module,
    process: ForwardProcess,
    images: torch.Tensor,
    mask: Any,
    *,
    jump_length: int = 10,
    jump_n_sample: int = 10,
    num_inference_steps: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> torch.Tensor:
    r"""Fill the masked pixels of ``images`` with an unconditional diffusion model (RePaint).

    At every reverse step the unknown region comes from the model's reverse
    step (:meth:`~pdediff.torch.ForwardProcess.step`) and the known region is
    replaced by the original degraded to the level the step reaches
    (:meth:`~pdediff.torch.ForwardProcess.add_noise`, noise from
    ``generator``); resampling jumps (go ``jump_length`` steps forward with the
    process's ``forward_transition``, denoise again) let the two regions
    harmonise.  Works with every process of :mod:`pdediff.torch.processes`.

    Parameters
    ----------
    model : torch.nn.Module
        Trained to reverse ``process`` (called as ``model(x_t, timesteps)``, e.g.
        the EMA model of a run).
    process : ForwardProcess
        The process the model was trained for.  ``num_inference_steps`` given:
        its schedule is reset with ``set_timesteps`` (as :func:`~pdediff.torch.sample` does).
    images : Tensor, shape ``(N, C, H, W)``
        float32 or float64, finite, in ``[-1, 1]`` (the data scale).  Pixels
        under ``mask`` are never read: they may hold anything finite in range.
    mask : bool Tensor or ndarray
        ``True`` where a pixel is missing (the convention of
        ``skimage.restoration.inpaint_biharmonic`` and ``cv2.inpaint``),
        broadcastable to ``images`` (e.g. ``(H, W)`` for one hole in all).
    jump_length : int
        ``j`` of Lugmayr et al.: steps gone forward in one resampling jump
        (positive; must be smaller than the number of sampling steps when
        ``jump_n_sample > 1``).
    jump_n_sample : int
        ``r`` of Lugmayr et al.: how often a stretch of the schedule is
        traversed (``1``: no resampling, plain replacement).
    num_inference_steps : int, optional
        Sampling steps ``n`` (``process.set_timesteps``); default the process's
        current schedule.
    generator : torch.Generator, optional
        Draws every random number (prior, reverse-step noise, forward noise).
    progress : bool
        tqdm progress bar over the model calls.

    Returns
    -------
    Tensor
        ``(N, C, H, W)``, dtype and device of ``images``: the inpainted images,
        not clipped.  Known pixels equal ``images`` exactly (a final paste).

    Raises
    ------
    TypeError
        ``images`` not a float tensor, ``mask`` not boolean, or a process
        without ``forward_transition`` when resampling is asked for.
    ValueError
        Wrong shapes, non-finite or out-of-range ``images``, a mask that does
        not broadcast, invalid ``jump_length``, ``jump_n_sample`` or
        ``num_inference_steps``.

    Notes
    -----
    Schedule: with ``n`` sampling steps, state ``m`` is the sample after
    ``n - m`` reverse steps; after the step that reaches state ``0, j, 2j,
    ... < n - j`` the chain jumps back up ``j`` states and denoises again,
    ``r - 1`` times (Lugmayr et al. [Lugmayr22]_, Algorithm 1 and Fig. 9; diffusers'
    ``RePaintScheduler.set_timesteps``).  That costs about ``n r`` model calls
    (exactly ``n + j (r - 1) ceil((n - j) / j)``): the work is bounded by
    these two numbers.  A jump from level ``t`` to ``s`` is one call of
    ``process.forward_transition`` (an exact draw of :math:`q(x_s \mid x_t)`
    for the Gaussian, blurring and heat-dissipation processes; a
    re-degradation of the current clean estimate for cold diffusion).

    The known region at level ``s`` is ``add_noise`` of a composite image:
    the original in the known region, the last clean estimate
    (``pred_original_sample``, clipped to [-1, 1]) in the hole.  For DDPM,
    whose ``add_noise`` acts pixel by pixel, this *is* RePaint's
    :math:`\sqrt{\bar\alpha_s}x_0 + \sqrt{1-\bar\alpha_s}\varepsilon` on the known
    pixels.  The blur-based processes mix neighbouring pixels, and degrading
    the original itself would carry the hole's true content into the known
    region: the composite never reads it.  The start is
    ``process.sample_prior`` of the known pixels (the hole filled with their
    per-image, per-channel mean): white noise for the Gaussian processes; for
    IHDM and cold diffusion the fully degraded image, which the known pixels
    nearly determine; then the known region is pasted in.

    References
    ----------
    .. [Lugmayr22] A. Lugmayr, M. Danelljan, A. Romero, F. Yu, R. Timofte and L. Van
       Gool, "RePaint: Inpainting using Denoising Diffusion Probabilistic
       Models", CVPR 2022.

    Examples
    --------
    >>> import torch
    >>> from pdediff.torch import load_run, repaint
    >>> run = load_run("runs/ddpm")                                   # doctest: +SKIP
    >>> hole = torch.zeros(8, 8, dtype=torch.bool); hole[2:6, 2:6] = True
    >>> filled = repaint(run.model, run.process, images, hole,       # doctest: +SKIP
    ...                  jump_length=5, jump_n_sample=3, generator=torch.Generator().manual_seed(0))
    """
    images = _check_images(images)
    mask = _check_mask(mask, images)
    jl = _check_int("jump_length", jump_length, 1)
    jn = _check_int("jump_n_sample", jump_n_sample, 1)
    ts = _schedule(process, num_inference_steps)
    n = len(ts)
    if jn > 1 and jl >= n:
        raise ParameterError(f"{{jump_length}} must be smaller than the number of sampling steps ({n}) for "
                             f"resampling ({{jump_n_sample={jn}}}); got {{jump_length={jl}}}. Use "
                             "{jump_n_sample=1} for no resampling", param="jump_length")
    calls = n + jl * (jn - 1) * math.ceil(max(n - jl, 0) / jl) if jn > 1 else n
    if calls > DEFAULT_MAX_STEPS:
        raise StepLimitError(f"RePaint with {n} sampling steps, {{jump_length={jl}}} and {{jump_n_sample={jn}}} "
                             f"needs {calls} model calls per batch, above the limit of {DEFAULT_MAX_STEPS}; lower "
                             "{jump_n_sample} (RePaint uses 10) or the number of steps ({num_inference_steps})",
                             param="jump_n_sample")
    if jn > 1 and not callable(getattr(process, "forward_transition", None)):
        raise TypeError(f"{type(process).__name__} has no forward_transition(sample, timestep, next_timestep, "
                        "generator, pred_original_sample=...): RePaint's resampling jumps need one; use "
                        "jump_n_sample=1")
    model.eval()
    device = next(model.parameters()).device
    levels = [CLEAN] + ts[::-1]  # levels[m]: the timestep of state m
    states = _repaint_schedule(n, jl, jn)

    known = images.masked_fill(mask, 0.0)  # the hole's pixels are never read
    x0_hat = _known_mean(known, mask)

    def paste(x, level, x0_est):
        if level == CLEAN:
            return torch.where(mask, x, images)
        # the composite: original where known, the current estimate in the hole
        comp = torch.where(mask, x0_est.clamp(-1.0, 1.0), images)
        return torch.where(mask, x, process.add_noise(comp, _randn_like(comp, generator), level))

    x = paste(process.sample_prior(x0_hat, generator), levels[n], x0_hat)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(b < a for a, b in itertools.pairwise(states)), desc=f"repaint {type(process).__name__}",
                   disable=None)
    i = 0
    while i < len(states) - 1:
        m = states[i]
        if states[i + 1] < m:  # reverse step m -> m - 1
            res = _denoise(model, process, x, levels[m], device, generator)
            x0_hat = torch.where(mask, res.pred_original_sample, images)
            x = paste(res.prev_sample, levels[m - 1], x0_hat)
            if bar is not None:
                bar.update(1)
            i += 1
        else:  # a resampling jump: the consecutive forward moves as one exact transition
            j = i
            while j + 1 < len(states) and states[j + 1] > states[j]:
                j += 1
            x = process.forward_transition(x, levels[m], levels[states[j]], generator,
                                           pred_original_sample=x0_hat.clamp(-1.0, 1.0))
            i = j
    if bar is not None:
        bar.close()
    return torch.where(mask, x, images)


# ------------------------------------------------------------------------------ SDEdit
def _strength(strength: Any) -> float:
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not math.isfinite(strength) or \
            not 0.0 <= float(strength) <= 1.0:
        raise ParameterError(f"{{strength}} must be a number in [0, 1]; got {strength!r}", param="strength")
    return float(strength)


def restyle_steps(strength: float, n: int) -> int:
    """Reverse steps :func:`restyle` runs out of an ``n``-step schedule: ``n`` at 1, else ``min(floor(n s), n - 1)``.

    The ``floor`` (diffusers' img2img rule, with a 1e-9 guard against
    ``0.3 * 10 = 2.9999...``) is capped at ``n - 1`` below strength 1, so that
    only strength 1 starts from the prior.
    """
    s = _strength(strength)
    if s == 1.0:
        return n
    return min(math.floor(n * s + 1e-9), n - 1)


@torch.no_grad()
def restyle(
    model: torch.nn.Module,
    process: ForwardProcess,
    images: torch.Tensor,
    strength: float,
    *,
    num_inference_steps: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> torch.Tensor:
    r"""Move ``images`` towards the model's training distribution (SDEdit): degrade part way, then reverse.

    Parameters
    ----------
    model : torch.nn.Module
        Trained to reverse ``process`` on the *target* style (e.g. a run's EMA model).
    process : ForwardProcess
        The model's process.  ``num_inference_steps`` given: its schedule is
        reset with ``set_timesteps`` (as :func:`~pdediff.torch.sample` does).
    images : Tensor, shape ``(N, C, H, W)``
        The guides: float32 or float64, finite, in ``[-1, 1]``, of the shape
        the model takes.
    strength : float
        In ``[0, 1]``: how far the guides are degraded before the reverse
        steps.  0 returns ``images`` unchanged (a copy); 1 ignores them and
        equals unconditional sampling (below).
    num_inference_steps : int, optional
        ``n``, the length of the full sampling schedule (default the
        process's current one).
    generator : torch.Generator, optional
        Draws the degradation noise, the prior and the reverse steps' noise.
    progress : bool
        tqdm progress bar.

    Returns
    -------
    Tensor
        ``(N, C, H, W)``, dtype and device of ``images`` (not clipped).

    Raises
    ------
    TypeError
        ``images`` not a float tensor.
    ValueError
        Wrong shape, non-finite or out-of-range ``images``, ``strength``
        outside ``[0, 1]``, invalid ``num_inference_steps``.
    RuntimeError
        ``strength=1`` with a process whose prior is not fitted (``process.fit(data)``;
        :func:`~pdediff.torch.sample` needs it too).

    Notes
    -----
    SDEdit [Meng22]_.  Strength to timestep: with the schedule ``process.timesteps`` ``= [t_0 >
    ... > t_{n-1} = 0]`` of ``n`` steps, strength ``s < 1`` runs the last
    ``k = min(floor(n s), n - 1)`` steps (:func:`restyle_steps`) starting
    from ``add_noise(images, noise, t_{n-k})``; ``k = 0`` (``s < 1/n``)
    returns the input.  So the strength is the fraction of the *sampling
    schedule* run: with a strided schedule (``n < K``) the same strength
    starts at about the same noise level, reached in fewer steps, and the
    reachable strengths are multiples of ``1/n``.  Strength 1 starts from
    ``process.sample_prior(N, generator)`` — white noise, or for IHDM and
    cold diffusion a prior built from the training data exactly as
    :func:`~pdediff.torch.sample` draws it — and runs all ``n`` steps with
    the same calls: ``restyle(model, process, x, 1.0, generator=g)`` equals
    ``sample(model, process, len(x), generator=g')`` bit for bit when ``g``
    and ``g'`` start in the same state.

    References
    ----------
    .. [Meng22] C. Meng, Y. He, Y. Song, J. Song, J. Wu, J.-Y. Zhu and S. Ermon,
       "SDEdit: Guided Image Synthesis and Editing with Stochastic
       Differential Equations", ICLR 2022.

    Examples
    --------
    >>> import torch
    >>> from pdediff.torch import load_run, restyle
    >>> run = load_run("runs/shapes-ddpm")                            # doctest: +SKIP
    >>> out = restyle(run.model, run.process, guides, 0.5,           # doctest: +SKIP
    ...               generator=torch.Generator().manual_seed(0))
    """
    images = _check_images(images)
    s = _strength(strength)
    ts = _schedule(process, num_inference_steps)
    n = len(ts)
    k = restyle_steps(s, n)
    if k == 0:
        return images.clone()
    model.eval()
    device = next(model.parameters()).device
    if k == n:  # strength 1: the prior, drawn as sample() draws it
        x = process.sample_prior(images.shape[0], generator)
        run = ts
    else:
        run = ts[n - k:]
        x = process.add_noise(images, _randn_like(images, generator), run[0])
    for t in _iterate(run, progress, f"restyle {type(process).__name__}"):
        x = _denoise(model, process, x, t, device, generator).prev_sample
    return x
