"""The shipped learned denoisers: training data, recipes, retraining, loading, and denoising arrays.

Two models ship inside the package (``pdediff/torch/weights/<name>.npz``: a
config (JSON) and plain arrays, read with ``numpy.load(allow_pickle=False)``:
no pickle anywhere in the file):

* ``"tnrd"``: :class:`~pdediff.torch.ReactionDiffusion`, 5 stages of 24
  filters 5 × 5, from Perona–Malik;
* ``"cnn"``: :class:`~pdediff.torch.CNNDenoiser`, 8 layers of 32 channels,
  conditioned on the noise level (given, or estimated from the image).

Both were trained by :func:`retrain_denoiser` (``pdediff train-denoiser``) on
random patches of scikit-image's bundled photographs listed in
:data:`TRAINING_IMAGES` (grey, ``[0, 1]``), with Gaussian noise of 0–25 % of
the range; none of them is a test image of the study or of the model cards
(docs/learned_denoisers.rst).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..catalogue import LEARNED_DENOISERS
from ..errors import ParameterError
from .cnn_denoiser import CNNDenoiser, estimate_noise_level, train_cnn_denoiser
from .reaction_diffusion import ReactionDiffusion, train_reaction_diffusion

__all__ = ["DENOISERS", "TRAINING_IMAGES", "training_images", "retrain_denoiser", "load_denoiser",
           "denoise_learned"]

#: The shipped models' names.
DENOISERS = LEARNED_DENOISERS
#: scikit-image photographs the shipped models were trained on (grey).  Never the study's test images
#: (``mri camera coins moon shepp_logan shapes``) nor ``astronaut``, and never matplotlib's or scikit-learn's
#: sample images or the pydicom/nibabel files: those stay for evaluation.
TRAINING_IMAGES = ("chelsea", "coffee", "rocket", "brick", "grass", "gravel", "clock", "cell", "page", "text",
                   "immunohistochemistry")
#: Each model's constructor arguments and training settings (what :func:`retrain_denoiser` runs).
RECIPES: dict[str, dict[str, Any]] = {
    "tnrd": {"model": {"kappa": 0.1, "dt": 0.2, "stages": 5, "filters": 24, "filter_size": 5},
             "train": {"noise_levels": (0.0, 0.25), "steps": 1500, "batch_size": 8, "patch_size": 40, "lr": 2e-3,
                       "greedy": 0.5, "seed": 0, "stop_at": 1000}},
    "cnn": {"model": {"channels": 1, "depth": 8, "width": 32, "seed": 0},
            "train": {"noise_levels": (0.0, 0.25), "steps": 6000, "batch_size": 16, "patch_size": 40, "lr": 1e-3,
                      "seed": 0}},
}
_WEIGHTS = Path(__file__).resolve().parent / "weights"
_LOADED: dict[str, torch.nn.Module] = {}


def _name(name: Any) -> str:
    if not isinstance(name, str) or name not in DENOISERS:
        raise ParameterError(f"{{name}} must be one of {', '.join(DENOISERS)}; got {name!r}", param="name")
    return name


def training_images() -> list[np.ndarray]:
    """The training photographs of :data:`TRAINING_IMAGES`, grey float32 in ``[0, 1]`` (scikit-image's ``rgb2gray``)."""
    from skimage import color, data

    out = []
    for n in TRAINING_IMAGES:
        im = getattr(data, n)()
        im = color.rgb2gray(im[..., :3]) if im.ndim == 3 else im.astype(np.float64) / 255.0
        out.append(np.ascontiguousarray(im, dtype=np.float32))
    return out


def retrain_denoiser(name: str, out: str | os.PathLike, *, steps: int | None = None, progress: bool = False
                     ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train a shipped model from scratch with its recipe; resumable.

    Parameters
    ----------
    name : {"tnrd", "cnn"}
    out : path-like
        Run folder: ``checkpoint.pt`` (resumed when present, bit for bit) and, at the end, ``<name>.npz``
        (the model alone, as shipped) and ``training.json`` (settings, losses per 50 steps, wall time).
    steps : int, optional
        Stop after this many steps (default: the recipe's ``stop_at``, else its ``steps``: what made the
        shipped weights); the schedule (greedy stages, learning-rate drop) stays the recipe's.
    progress : bool
        A tqdm progress bar.

    Returns
    -------
    (model, record)
        The trained model and what ``training.json`` holds.
    """
    import json
    import platform

    name = _name(name)
    recipe = RECIPES[name]
    kw = dict(recipe["train"])
    if steps is not None:
        # checked here, by this function's names: steps=0 went on as stop_at=0 and wrote an untrained model
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ParameterError(f"{{steps}} must be a positive integer; got {steps!r}", param="steps")
        kw["stop_at"] = int(steps)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"{{out}} must be a folder; {str(out)!r} exists and is a file", param="out")
    images = training_images()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if name == "tnrd":
        model = ReactionDiffusion.from_perona_malik(**recipe["model"])
        res = train_reaction_diffusion(model, images, checkpoint_dir=out, checkpoint_every=25, progress=progress,
                                       **kw)
    else:
        model = CNNDenoiser(**recipe["model"])
        res = train_cnn_denoiser(model, images, checkpoint_dir=out, checkpoint_every=25, progress=progress, **kw)
    wall = time.perf_counter() - t0
    model.save(out / f"{name}.npz")
    losses = np.asarray(res.losses)
    record = {"name": name, "model": recipe["model"], "train": {k: list(v) if isinstance(v, tuple) else v
                                                              for k, v in kw.items()},
              "images": list(TRAINING_IMAGES), "step": res.step, "wall_seconds_this_call": round(wall, 1),
              "threads": torch.get_num_threads(), "machine": f"{platform.machine()} {platform.processor()}".strip(),
              "loss_per_50_steps": [float(v) for v in
                                    [losses[i:i + 50].mean() for i in range(0, len(losses), 50)]]}
    tmp = out / "training.json.tmp"
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, out / "training.json")
    return model, record


def load_denoiser(name: str) -> torch.nn.Module:
    """The shipped model ``name`` (read once per process, then shared; in eval mode, on the CPU).

    Parameters
    ----------
    name : {"tnrd", "cnn"}

    Returns
    -------
    ReactionDiffusion or CNNDenoiser
        Read from ``pdediff/torch/weights/<name>.npz`` with ``numpy.load(allow_pickle=False)``: no
        network, no pickle.  Do not train the returned object in place (copy it first).

    Raises
    ------
    ParameterError
        Unknown ``name``.
    CheckpointError
        The weights file is missing or damaged.
    """
    name = _name(name)
    if name not in _LOADED:
        path = _WEIGHTS / f"{name}.npz"
        model = ReactionDiffusion.load(path) if name == "tnrd" else CNNDenoiser.load(path)
        _LOADED[name] = model.eval()
    return _LOADED[name]


def slice_axis(spacing: tuple[float, ...], shape: tuple[int, ...]) -> int:
    """The axis a 3-D scan is cut across: the largest spacing; among equal ones, the axis with the fewest cells
    (so a (64, 64, 2) volume gives two 64 x 64 planes, not 64 planes of 64 x 2)."""
    top = max(spacing)
    return min((i for i in range(3) if spacing[i] == top), key=lambda i: (shape[i], i))


def _robust_range(x: np.ndarray) -> tuple[float, float]:
    """The image's range with the noise's outliers left out: min and max of its 3-per-axis median filter."""
    from scipy.ndimage import median_filter

    m = median_filter(x, size=3, mode="nearest")
    return float(m.min()), float(m.max())


def denoise_learned(
    image: np.ndarray,
    method: str,
    *,
    sigma: float | None = None,
    data_range: tuple[float, float] | None = None,
    channel_axis: int | None = None,
    spacing: float | tuple[float, ...] | None = None,
    model: torch.nn.Module | None = None,
    batch: int = 4,
) -> np.ndarray:
    """Denoise a 2-D image, a colour photo or a 3-D scan with a learned model.

    Parameters
    ----------
    image : ndarray
        2-D or 3-D, finite, integer or float, optionally with a colour axis (``channel_axis``).
    method : {"tnrd", "cnn"}
        The shipped model (or ``model``, of that kind).
    sigma : float, optional
        The noise's standard deviation in ``image``'s units (``cnn`` only; default: estimated per slice and
        channel by :func:`~pdediff.torch.estimate_noise_level`).
    data_range : (float, float), optional
        The clean image's range, mapped onto ``[0, 1]`` (the models' training units); default: the min and
        max of the image's 3-per-axis median filter (the noise's extremes left out; the image's own min and
        max where that filter is flat).
    channel_axis : int, optional
        Colour axis: each channel is denoised on its own (the shipped models are grey).
    spacing : float or sequence of float, optional
        Voxel size per spatial axis.  3-D scans are denoised slice by slice: the slices are the planes
        across the axis of the **largest** spacing (the finest-sampled planes; among equal spacings, the axis
        with the fewest cells, so the planes are the largest).
    model : ReactionDiffusion or CNNDenoiser, optional
        Use this model instead of the shipped one.
    batch : int
        Slices (or channels) per forward pass: bounds memory (about 60 MB per 512 × 512 slice for ``tnrd``).

    Returns
    -------
    ndarray
        Same shape; the input's float dtype (float32 for integer input); values clipped to ``data_range``
        widened to the input's own min and max (a denoiser adds no values beyond the data's extremes).
    """
    if not isinstance(method, str) or method not in DENOISERS:
        raise ParameterError(f"{{method}} must be one of {', '.join(DENOISERS)}; got {method!r}", param="method")
    x = np.asarray(image)
    if x.dtype == np.bool_ or x.dtype.kind not in "iuf":
        raise TypeError(f"image must hold integers or floats; got {x.dtype}")
    if not np.isfinite(x).all():
        raise ParameterError("{image} holds NaN or inf; replace them first", param="image")
    out_dtype = x.dtype if x.dtype.kind == "f" and x.dtype.itemsize >= 4 else np.dtype(np.float32)
    if channel_axis is not None:
        if not isinstance(channel_axis, int) or not -x.ndim <= channel_axis < x.ndim:
            raise ParameterError(f"{{channel_axis}} must be an axis of the image's {x.ndim}; got {channel_axis!r}",
                                 param="channel_axis")
        x = np.moveaxis(x, channel_axis, 0)
    else:
        x = x[None]
    nd = x.ndim - 1
    if nd not in (2, 3):
        raise ParameterError(f"{{image}} must be 2-D or 3-D (plus a colour axis); got shape {np.shape(image)}",
                             param="image")
    if model is None:
        model = load_denoiser(method)
    elif not isinstance(model, ReactionDiffusion if method == "tnrd" else CNNDenoiser):
        raise TypeError(f"model must be a {'ReactionDiffusion' if method == 'tnrd' else 'CNNDenoiser'} for "
                        f"method {method!r}; got {type(model).__name__}")
    xf = x.astype(np.float64)
    if data_range is None:
        lo, hi = _robust_range(xf)
    else:
        lo, hi = (float(v) for v in data_range)
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise ParameterError(f"{{data_range}} must be (low, high) with low < high; got {data_range!r}",
                                 param="data_range")
    if data_range is None and hi <= lo:  # e.g. sparse bright dots on a dark ground: the median filter flattens
        lo, hi = float(xf.min()), float(xf.max())  # them all, which returned the image untouched, unreported
    scale = hi - lo
    if scale <= 0:  # a constant image: nothing to denoise
        return np.asarray(image).astype(out_dtype)
    if sigma is not None and method == "cnn":
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not np.isfinite(sigma) or sigma < 0:
            raise ParameterError(f"{{sigma}} must be a finite non-negative number; got {sigma!r}", param="sigma")
        if sigma > scale:  # the models were trained on 0-25 % of the range; above 100 % the image is all noise
            raise ParameterError(f"{{sigma}} must be at most the image's range ({scale:.6g}, the models were trained "
                                 f"on levels of 0-25 % of it); got {sigma!r}", param="sigma")
    cut = 0
    if nd == 3:
        sp = (1.0,) * 3 if spacing is None else (
            (float(spacing),) * 3 if np.isscalar(spacing) else tuple(float(v) for v in spacing))
        if len(sp) != 3:
            raise ParameterError(f"{{spacing}} must have 3 values for a 3-D image; got {spacing!r}", param="spacing")
        cut = slice_axis(sp, xf.shape[1:])
    # (channels, [slices,] H, W) -> a stack of 2-D planes
    u = (xf - lo) / scale
    if nd == 3:
        u = np.moveaxis(u, 1 + cut, 1)
    planes = u.reshape((-1,) + u.shape[-2:]).astype(np.float32)
    if method == "cnn" and sigma is None and min(planes.shape[1:]) < 2:
        raise ParameterError(f"{{sigma}} must be given for planes thinner than 2 cells (the noise level is estimated "
                             f"from 2 x 2 blocks); got planes of {planes.shape[1]} x {planes.shape[2]}", param="sigma")
    out = np.empty_like(planes)
    batch = max(1, int(batch))
    with torch.inference_mode():
        for i in range(0, len(planes), batch):
            t = torch.from_numpy(planes[i:i + batch])
            if method == "tnrd":
                out[i:i + batch] = model(t).numpy()
            else:
                t = t.unsqueeze(1)
                s = estimate_noise_level(t) if sigma is None else torch.full((len(t),), sigma / scale)
                out[i:i + batch] = model(t, s)[:, 0].numpy()
    res = out.reshape(u.shape).astype(np.float64) * scale + lo
    if nd == 3:
        res = np.moveaxis(res, 1, 1 + cut)
    res = np.clip(res, min(lo, float(xf.min())), max(hi, float(xf.max())))
    res = np.moveaxis(res, 0, channel_axis) if channel_axis is not None else res[0]
    return res.astype(out_dtype)
