"""The workload every tool runs: the input arrays and the parameters shared by all implementations.

Every Perona–Malik implementation runs :data:`N_ITER` iterations with edge
threshold :data:`KAPPA` on the same data, so ratios of times are ratios per
iteration.
"""

from __future__ import annotations

import numpy as np

from ._spec import Unavailable, is_gpu_array, need

#: Perona–Malik iterations per timed call (every tool runs the same number, so ratios are per iteration).
N_ITER = 5
#: Edge threshold of the Perona–Malik cases (images scaled to 0..255).
KAPPA = 20.0
#: Steps of the temporal-blocking case ``ExplicitHeatSolver.step(u, n)`` (blocking pays from n = 8 on).
BLOCK_STEPS = 8


def _random(shape, dtype, xp=np, scale=1.0):
    host = np.random.default_rng(0).random(shape)
    if scale != 1.0:
        host = host * scale
    return xp.asarray(host.astype(dtype))


def heat_data(shape, dtype, xp=np):
    """Uniform noise in [0, 1): the heat cases' input."""
    return _random(shape, dtype, xp)


def pm_data(shape, dtype, xp=np):
    """Uniform noise in [0, 255): the Perona–Malik cases' input (``KAPPA`` is in these units)."""
    return _random(shape, dtype, xp, 255.0)


def kappa_data(shape, dtype, xp=np):
    """A smooth field plus 5 % noise: gradients whose median/MAD are not degenerate."""
    import scipy.ndimage

    rng = np.random.default_rng(0)
    img = scipy.ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
    return xp.asarray((img + 0.05 * rng.standard_normal(img.shape)).astype(dtype))


def torch_data(shape, dtype, xp=np):
    """A batch ``(B, 1, H, W)`` in [0, 1) (``xp`` unused: tensors are made by the factories)."""
    return _random(shape, dtype, np)


def batch_times(b: int):
    """``b`` diffusion times in [0, 20), seeded: the ``t`` of the torch cases (a torch tensor)."""
    torch = need("torch", "PyTorch")
    return torch.rand(b, generator=torch.Generator().manual_seed(1)) * 20


def rgb8(u: np.ndarray) -> np.ndarray:
    """A 2-D image in 0..255 as the 8-bit 3-channel image OpenCV's ``anisotropicDiffusion`` takes.

    Raises :class:`~pdediff.bench._spec.Unavailable` for a volume or a GPU array (OpenCV's filter is 2-D, CPU).
    """
    if is_gpu_array(u) or u.ndim != 2:
        raise Unavailable("OpenCV's anisotropicDiffusion: 2-D CPU images only")
    return np.repeat(np.clip(u, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
