"""pdediff's torch bridge: classical diffusion operators and forward processes for learned models.

Optional extra: ``pip install "pdediff[torch]"``.  Importing :mod:`pdediff`
never imports torch; importing :mod:`pdediff.torch` does.

* :func:`heat_blur`, :func:`perona_malik`: the operators on ``(..., *spatial)``
  tensors, on the tensor's device, zero-copy through DLPack (:mod:`pdediff.torch.ops`).
* :class:`GaussianDiffusion`, :class:`HeatDissipation`,
  :class:`BlurringDiffusion`, :class:`ColdDiffusion`,
  :class:`EdgePreservingDiffusion`: forward processes with
  the shape of a diffusers scheduler and one timestep convention, ``0 .. K-1``
  (:mod:`pdediff.torch.processes`, one module per process).
* :class:`UNet`, :func:`train`, :func:`sample`: one model and one loop for all.
* :class:`ReactionDiffusion`, :func:`train_reaction_diffusion`,
  :func:`plot_reaction_diffusion`: trainable nonlinear reaction–diffusion
  (Chen & Pock's TNRD), initialised from Perona–Malik
  (:mod:`pdediff.torch.reaction_diffusion`).
* :class:`CNNDenoiser`, :func:`train_cnn_denoiser`, :func:`estimate_noise_level`:
  a noise-level-conditional residual CNN (:mod:`pdediff.torch.cnn_denoiser`).
* :func:`load_denoiser`, :func:`denoise_learned`, :func:`retrain_denoiser`: the
  shipped ``"tnrd"`` and ``"cnn"`` weights, denoising arrays (grey, colour,
  3-D slice-wise) and the recipes that made them (:mod:`pdediff.torch.denoisers`).
* :func:`repaint`, :func:`restyle`: inpainting (RePaint) and style transfer
  (SDEdit) with a trained model, for every process (:mod:`pdediff.torch.restoration`).
* :mod:`pdediff.torch.data`: digits, synthetic shapes, image patches, MNIST and
  CIFAR-10 files;
  :func:`load_dataset` by name or path, split into train and test.
* :func:`make_process`, :func:`train_run`, :func:`load_run`, :class:`Run`:
  processes by name (:data:`pdediff.catalogue.PROCESSES`; :data:`PROCESSES`
  here are their names) and training runs on disk (``pdediff train`` /
  ``pdediff sample``), resumable, with checkpoints that load without running
  code (:mod:`pdediff.torch.runs`).  Training defaults:
  :data:`pdediff.catalogue.TRAIN_DEFAULTS`.
"""

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError('pdediff.torch needs PyTorch: pip install "pdediff[torch]"') from exc

from .ops import heat_blur, perona_malik
from ._tensor_op import tensor_diffusion
from .processes import (
    BlurringDiffusion,
    ColdDiffusion,
    EdgePreservingDiffusion,
    ForwardProcess,
    GaussianDiffusion,
    HeatDissipation,
    StepOutput,
    load_process,
)
from .data import load_dataset
from .runs import PROCESSES, Run, load_run, make_process, train_run
from .restoration import repaint, restyle
from .reaction_diffusion import ReactionDiffusion, plot_reaction_diffusion, train_reaction_diffusion
from .cnn_denoiser import CNNDenoiser, estimate_noise_level, train_cnn_denoiser
from .denoisers import denoise_learned, load_denoiser, retrain_denoiser
from .training import sample, train
from .unet import UNet

__all__ = [
    "heat_blur",
    "perona_malik",
    "ForwardProcess",
    "GaussianDiffusion",
    "HeatDissipation",
    "BlurringDiffusion",
    "ColdDiffusion",
    "EdgePreservingDiffusion",
    "StepOutput",
    "load_process",
    "UNet",
    "train",
    "sample",
    "load_dataset",
    "PROCESSES",
    "make_process",
    "train_run",
    "load_run",
    "Run",
    "repaint",
    "restyle",
    "ReactionDiffusion",
    "train_reaction_diffusion",
    "plot_reaction_diffusion",
    "CNNDenoiser",
    "train_cnn_denoiser",
    "estimate_noise_level",
    "load_denoiser",
    "denoise_learned",
    "retrain_denoiser",
]
