"""A noise-level-conditional residual CNN denoiser (DnCNN with FFDNet's noise-level map), small enough for a CPU.

``depth`` 3 × 3 convolutions of ``width`` channels with ReLUs between them
(no batch normalisation: small CPU batches), fed the noisy image and a
constant map of its noise standard deviation ``sigma`` as an extra input
channel (FFDNet [ZZZ18]_), predict the noise [ZZC17]_; the output is the
input minus that prediction.  ``sigma`` is given, or estimated from the
image by :func:`estimate_noise_level` (the median absolute Haar diagonal
detail, Donoho & Johnstone's MAD estimator).  Grey (``channels=1``) or colour
(``channels=3``, one noise map for all channels).

Intensities: the model works in its input's units; :func:`train_cnn_denoiser`
and the shipped model assume images in ``[0, 1]``, noise levels as
fractions of that range.  Convolutions pad with zeros.

References
----------
.. [ZZC17] K. Zhang, W. Zuo, Y. Chen, D. Meng, L. Zhang, "Beyond a Gaussian denoiser: residual learning of deep
   CNN for image denoising", IEEE TIP 26(7), 2017.
.. [ZZZ18] K. Zhang, W. Zuo, L. Zhang, "FFDNet: toward a fast and flexible solution for CNN-based image
   denoising", IEEE TIP 27(9), 2018.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn import functional as F

from ..errors import CheckpointError, ParameterError
from .reaction_diffusion import _as_images, _batch, _Checkpoint, _int, _load, _positive, _save

__all__ = ["CNNDenoiser", "train_cnn_denoiser", "estimate_noise_level", "CNNDenoiserTraining"]

_KIND = "pdediff.CNNDenoiser"
#: ``median(|N(0, 1)|)``: the MAD of a standard normal.
_MAD = 0.6744897501960817


def estimate_noise_level(x: torch.Tensor) -> torch.Tensor:
    """Noise standard deviation of each image from its finest Haar diagonal details (MAD).

    Parameters
    ----------
    x : Tensor, shape ``(B, C, H, W)``
        Images (``H, W >= 2``), float.

    Returns
    -------
    Tensor, shape ``(B,)``
        ``median(|d|) / 0.6745`` over all channels, with ``d = (a - b - c + e) / 2`` on
        disjoint 2 × 2 blocks ``[[a, b], [c, e]]``: for white Gaussian noise of standard
        deviation ``sigma``, ``d`` has standard deviation ``sigma``, and edges (few
        blocks) barely move the median.  Biased upwards on strongly textured images.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ParameterError(f"{{x}} must be a (B, C, H, W) tensor; got {getattr(x, 'shape', type(x).__name__)}",
                             param="x")
    H, W = (x.shape[2] // 2) * 2, (x.shape[3] // 2) * 2
    if H < 2 or W < 2:
        raise ParameterError(f"{{x}} must be at least 2 x 2; got {tuple(x.shape[2:])}", param="x")
    if not bool(torch.isfinite(x).all()):  # the median of NaN differences is NaN: refuse instead of returning it
        raise ParameterError("{x} must be finite (no NaN or inf) to estimate its noise level", param="x")
    # in float64: the differences of values near float32's maximum overflow (3e38 gave inf)
    v = x[:, :, :H, :W].double() if x.dtype != torch.float64 else x[:, :, :H, :W]
    d = 0.5 * (v[:, :, 0::2, 0::2] - v[:, :, 0::2, 1::2] - v[:, :, 1::2, 0::2] + v[:, :, 1::2, 1::2])
    return (d.abs().flatten(1).median(dim=1).values / _MAD).to(x.dtype)


class CNNDenoiser(torch.nn.Module):
    """Residual CNN denoiser conditioned on the noise level (DnCNN layers, FFDNet's level map).

    Parameters
    ----------
    channels : int
        Image channels (1 grey, 3 colour).
    depth : int
        Convolutions (>= 2): the first maps ``channels + 1`` to ``width``, the last ``width`` to ``channels``.
    width : int
        Channels of the hidden layers.
    seed : int
        Seed of the initial weights (PyTorch's default initialisation, drawn from a seeded generator; the last
        layer starts at zero, so the untrained model is the identity).
    dtype : torch.float32 or torch.float64

    Notes
    -----
    ``forward(x, sigma)`` takes ``(B, channels, H, W)`` tensors; parameters ``~ 9 width^2 (depth - 2)``
    (default 8 layers of 32: 57 k).  Save and load with :meth:`save` / :meth:`load` (tensors only).
    """

    def __init__(self, channels: int = 1, depth: int = 8, width: int = 32, *, seed: int = 0,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        channels = _int(channels, "channels", 1)
        depth = _int(depth, "depth", 2)
        width = _int(width, "width", 1)
        seed = _int(seed, "seed", 0)
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64; got {dtype!r}")
        self.config = {"channels": channels, "depth": depth, "width": width, "seed": seed}
        sizes = [channels + 1] + [width] * (depth - 1) + [channels]
        gen = torch.Generator().manual_seed(seed)
        layers = []
        for i in range(depth):
            conv = torch.nn.Conv2d(sizes[i], sizes[i + 1], 3, padding=1, dtype=dtype)
            bound = 1.0 / (sizes[i] * 9) ** 0.5  # PyTorch's default (kaiming_uniform with a = sqrt(5)) bounds
            with torch.no_grad():
                if i == depth - 1:
                    conv.weight.zero_()
                    conv.bias.zero_()
                else:
                    conv.weight.copy_((torch.rand(conv.weight.shape, generator=gen, dtype=torch.float64) * 2 - 1)
                                      * bound * 3 ** 0.5)  # He-uniform for ReLU: variance 2 / fan_in
                    conv.bias.zero_()
            layers.append(conv)
        self.layers = torch.nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor | None = None) -> torch.Tensor:
        """Denoise ``x``.

        Parameters
        ----------
        x : Tensor, shape ``(B, channels, H, W)``
            Noisy images, float32 or float64 (the parameters' dtype is used inside).
        sigma : float, Tensor of shape ``(B,)``, or None
            Noise standard deviation per image, in ``x``'s units; ``None``: :func:`estimate_noise_level`.

        Returns
        -------
        Tensor
            Same shape and dtype: ``x - net([x, sigma map])``.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
        C = self.config["channels"]
        if x.ndim != 4 or x.shape[1] != C:
            raise ParameterError(f"{{x}} must have shape (B, {C}, H, W); got {tuple(x.shape)}", param="x")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor; got {x.dtype}")
        if sigma is None:
            level = estimate_noise_level(x.detach())
        elif isinstance(sigma, torch.Tensor):
            level = sigma.to(x.device, x.dtype).reshape(-1).expand(x.shape[0])
        else:
            level = torch.full((x.shape[0],), _positive(sigma, "sigma", allow_zero=True), dtype=x.dtype,
                               device=x.device)
        p = self.layers[0].weight
        h = x.to(p.dtype)
        noise_map = level.to(p.dtype).view(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:])
        z = torch.cat([h, noise_map], dim=1)
        for i, conv in enumerate(self.layers):
            z = conv(z)
            if i < len(self.layers) - 1:
                z = F.relu(z, inplace=not torch.is_grad_enabled())
        return (h - z).to(x.dtype)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> None:
        """Write the model (config and weights: tensors and plain values only) atomically to ``path``."""
        _save({"kind": _KIND, "config": dict(self.config), "model": self.state_dict()}, os.fspath(path))

    @classmethod
    def load(cls, path: str | os.PathLike, *, map_location: str | torch.device | None = "cpu") -> CNNDenoiser:
        """Read a model written by :meth:`save` (or a training checkpoint); never runs code from the file.

        Raises
        ------
        CheckpointError
            Missing, corrupt or foreign file, or one holding pickled code (``torch.load(weights_only=True)``).
        """
        state = _load(os.fspath(path), map_location, ("kind", "config", "model"), kind=_KIND)
        return _from_state(state, os.fspath(path))


def _from_state(state: dict, path: str) -> CNNDenoiser:
    cfg = state["config"]
    try:
        model = CNNDenoiser(cfg["channels"], cfg["depth"], cfg["width"], seed=cfg["seed"],
                            dtype=state["model"]["layers.0.weight"].dtype)
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} does not hold a valid CNNDenoiser model: "
                              f"{str(exc).strip().splitlines()[0]}") from None
    return model


@dataclass
class CNNDenoiserTraining:
    """What :func:`train_cnn_denoiser` returns: the loss (MSE) per step and the steps done."""

    losses: list[float] = field(default_factory=list)
    step: int = 0


def train_cnn_denoiser(
    model: CNNDenoiser,
    images: Sequence[Any],
    *,
    noise_levels: tuple[float, float] = (0.0, 0.25),
    steps: int = 2000,
    batch_size: int = 16,
    patch_size: int = 40,
    lr: float = 1e-3,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    progress: bool = False,
    stop_at: int | None = None,
) -> CNNDenoiserTraining:
    """Train a :class:`CNNDenoiser` on random noisy patches, given the true noise level.

    Each step draws ``batch_size`` random ``patch_size`` × ``patch_size`` patches of random images (random
    flips and rot90), adds Gaussian noise of a standard deviation drawn uniformly from ``noise_levels`` per
    patch, and takes one Adam step on the mean squared error of the output against the clean patch, the
    model told each patch's true ``sigma``.  The learning rate falls by 10 × for the last fifth of the steps.

    Parameters
    ----------
    model : CNNDenoiser
        Trained in place (its dtype and device).
    images : sequence of arrays
        Clean images, ``(H, W)`` for a grey model or ``(channels, H, W)``, intensities in ``[0, 1]``.
    noise_levels : (float, float)
        Range of the noise's standard deviation (default 0–25 % of the range).
    steps, batch_size, patch_size : int
        Total optimiser steps (a resume may raise it), patches per step, their size.
    lr : float
        Adam's learning rate.
    seed : int
        Seeds every random draw; a resumed run continues the same sequence.
    checkpoint_dir : path-like, optional
        Folder of ``checkpoint.pt`` (tensors and plain values only, written atomically every
        ``checkpoint_every`` steps and at the end); an existing one is resumed bit for bit (same settings).
    checkpoint_every : int
    stop_at : int, optional
        Stop after this step (a checkpoint is written there) although the schedule is ``steps`` long: a
        later call with a larger ``stop_at`` (or none) continues the same run, bit for bit.
    progress : bool
        A tqdm progress bar.

    Returns
    -------
    CNNDenoiserTraining

    Raises
    ------
    ParameterError, TypeError, CheckpointError, FloatingPointError
        Bad values (named), a foreign/corrupt/code-holding checkpoint or one of other settings, divergence.
    """
    if not isinstance(model, CNNDenoiser):
        raise TypeError(f"model must be a CNNDenoiser; got {type(model).__name__}")
    C = model.config["channels"]
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
    seed = _int(seed, "seed", 0)
    every = _int(checkpoint_every, "checkpoint_every", 1)
    data = _as_images(images, 2 if C == 1 else 3)
    for i, im in enumerate(data):
        if C > 1 and im.shape[0] != C:
            raise ParameterError(f"{{images}}[{i}] must have {C} channels first; got shape {tuple(im.shape)}",
                                 param="images")
        if min(im.shape[-2:]) < p:
            raise ParameterError(f"{{patch_size}} ({p}) exceeds images[{i}]'s shape {tuple(im.shape)}",
                                 param="patch_size")
    settings = {"noise_levels": [lo, hi], "steps": steps, "batch_size": B, "patch_size": p, "lr": lr,
                "seed": seed, "num_images": len(data), "image_shapes": [list(im.shape) for im in data],
                "image_sums": [float(im.double().sum()) for im in data]}
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    result = CNNDenoiserTraining()
    save = _Checkpoint(checkpoint_dir, _KIND, "CNNDenoiser", model, opt, gen, settings, result).save

    end = steps if stop_at is None else min(steps, _int(stop_at, "stop_at", 0))
    iterator = range(result.step, end)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="train CNNDenoiser", initial=result.step, total=end, disable=None)
    model.train()
    decay_at = int(round(0.8 * steps))
    for step in iterator:
        for group in opt.param_groups:
            group["lr"] = lr if step < decay_at else 0.1 * lr
        clean, noisy, sigma = _batch(data, B, p, (lo, hi), gen, 2, with_sigma=True)
        if C == 1:
            clean, noisy = clean.unsqueeze(1), noisy.unsqueeze(1)
        clean, noisy = clean.to(device, dtype), noisy.to(device, dtype)
        out = model(noisy, sigma.reshape(-1).to(device, dtype))
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
            iterator.set_postfix(loss=f"{result.losses[-1]:.2e}")
    save()
    model.eval()
    return result
