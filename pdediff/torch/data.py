"""Training data that ship with installed packages, or are synthesised (nothing is downloaded).

Every loader returns a float32 tensor of shape ``(N, C, H, W)`` scaled to ``[-1, 1]``.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["digits", "shapes", "image_patches", "as_tensor"]


def _to_unit(x: np.ndarray, lo: float, hi: float) -> torch.Tensor:
    return torch.from_numpy(((x - lo) / (hi - lo) * 2 - 1).astype(np.float32))


def digits() -> torch.Tensor:
    """scikit-learn's handwritten digits: 1797 images of 8 × 8 (values 0..16), shape ``(1797, 1, 8, 8)``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError('digits() needs scikit-learn: pip install "pdediff[torch]"') from None
    return _to_unit(load_digits().images[:, None], 0.0, 16.0)


def shapes(n: int = 1024, size: tuple[int, int] = (16, 16), *, seed: int = 0) -> torch.Tensor:
    """Seeded piecewise-constant images: a background and 1–3 rectangles or ellipses of random grey levels.

    Edge preservation is what matters on these, which separates Perona–Malik
    from linear blur as a forward process.
    """
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")
    out = np.empty((n, 1, h, w))
    for i in range(n):
        img = np.full((h, w), rng.uniform(0, 0.3))
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(0.2, 0.8, 2)
            ry, rx = rng.uniform(0.1, 0.35, 2)
            if rng.random() < 0.5:
                m = (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
            else:
                m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            img[m] = rng.uniform(0.3, 1.0)
        out[i, 0] = img
    return _to_unit(out, 0.0, 1.0)


def image_patches(n: int = 1024, size: tuple[int, int] = (32, 32), *, images=("camera", "coins", "moon"),
                  seed: int = 0) -> torch.Tensor:
    """Random grey patches of scikit-image's bundled images (``camera``, ``coins``, ... load offline)."""
    from skimage import data as skdata

    rng = np.random.default_rng(seed)
    pics = [np.asarray(getattr(skdata, name)(), dtype=np.float64) for name in images]
    pics = [p.mean(-1) if p.ndim == 3 else p for p in pics]
    h, w = size
    out = np.empty((n, 1, h, w))
    for i in range(n):
        p = pics[rng.integers(len(pics))]
        y, x = rng.integers(0, p.shape[0] - h + 1), rng.integers(0, p.shape[1] - w + 1)
        out[i, 0] = p[y : y + h, x : x + w]
    return _to_unit(out, 0.0, 255.0)


def as_tensor(data) -> torch.Tensor:
    """Accept any ``(N, C, H, W)`` tensor or NumPy array (float) as training data."""
    t = torch.as_tensor(np.asarray(data) if not isinstance(data, torch.Tensor) else data)
    if t.ndim != 4:
        raise ValueError(f"training data must have shape (N, C, H, W); got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"training data must be floating point; got {t.dtype}")
    return t
