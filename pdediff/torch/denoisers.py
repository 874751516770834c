"""The shipped learned denoisers: training data, recipes, retraining, loading, and denoising arrays.

Two models ship inside the package (``pdediff/torch/weights/<name>.pt``: a
config and tensors only, read with ``torch.load(weights_only=True)``):

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

from ..errors import ParameterError
from .cnn_denoiser import CNNDenoiser, estimate_noise_level, train_cnn_denoiser
from .reaction_diffusion import ReactionDiffusion, train_reaction_diffusion

__all__ = ["DENOISERS", "TRAINING_IMAGES", "training_images", "retrain_denoiser", "load_denoiser",
           "denoise_learned"]

#: The shipped models' names.
DENOISERS = ("tnrd", "cnn")
#: scikit-image photographs the shipped models were trained on (grey).  Never the study's test images
#: (``mri camera coins moon shepp_logan shapes``) nor ``astronaut``, and never matplotlib's or scikit-learn's
#: sample images or the pydicom/nibabel files: those stay for evaluation.
TRAINING_IMAGES = ("chelsea", "coffee", "rocket", "brick", "grass", "gravel", "clock", "cell", "page", "text",
                   "immunohistochemistry")
#: Each model's constructor arguments and training settings (what :func:`retrain_denoiser` runs).
RECIPES: dict[str, dict[str, Any]] = {
    "tnrd": {"model": {"kappa": 0.1, "dt": 0.2, "stages": 5, "filters": 24, "filter_size": 5},
             "train": {"noise_levels": (0.0, 0.25), "steps": 800, "batch_size": 8, "patch_size": 40, "lr": 2e-3,
                       "greedy": 0.5, "seed": 0}},
    "cnn": {"model": {"channels": 1, "depth": 8, "width": 32, "seed": 0},
            "train": {"noise_levels": (0.0, 0.25), "steps": 600, "batch_size": 16, "patch_size": 40, "lr": 1e-3,
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
        Run folder: ``checkpoint.pt`` (resumed when present, bit for bit) and, at the end, ``<name>.pt``
        (the model alone, as shipped) and ``training.json`` (settings, losses per 50 steps, wall time).
    steps : int, optional
        Override the recipe's step count (default: the recipe's, which made the shipped weights).
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
        kw["steps"] = steps
    images = training_images()
    out = Path(out)
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
    model.save(out / f"{name}.pt")
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
