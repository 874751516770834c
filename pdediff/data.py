"""Images that ship with installed packages, and seeded synthetic phantoms (nothing is downloaded)."""

from __future__ import annotations

import gzip

import numpy as np

__all__ = ["mri_slice", "phantom", "noisy"]


def mri_slice() -> np.ndarray:
    """matplotlib's bundled 256 × 256 16-bit MRI slice (``s1045.ima.gz``), as uint16."""
    from matplotlib import cbook

    with cbook.get_sample_data("s1045.ima.gz") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":  # older matplotlib returns the compressed file object
        raw = gzip.decompress(raw)
    return np.frombuffer(raw, dtype="<u2").reshape(256, 256).copy()


def phantom(shape=(128, 128), *, seed: int = 0) -> np.ndarray:
    """A piecewise-constant 2-D or 3-D phantom in [0, 1]: ellipses/ellipsoids and boxes, seeded.

    Edges of several contrasts (0.15 to 0.8) and sizes, plus thin structures,
    so that edge preservation is what decides the score.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"shape must be 2-D or 3-D; got {shape}")
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[(np.arange(n) + 0.5) / n for n in shape], indexing="ij")
    img = np.full(shape, 0.1)
    for _ in range(7):
        c = rng.uniform(0.25, 0.75, len(shape))
        r = rng.uniform(0.08, 0.3, len(shape))
        inside = sum(((g - ci) / ri) ** 2 for g, ci, ri in zip(grid, c, r)) <= 1
        img[inside] = rng.choice([0.25, 0.45, 0.6, 0.9])
    for _ in range(3):  # boxes and bars
        lo = rng.uniform(0.1, 0.7, len(shape))
        hi = lo + rng.uniform(0.03, 0.25, len(shape))
        inside = np.ones(shape, bool)
        for g, a, b in zip(grid, lo, hi):
            inside &= (g >= a) & (g <= b)
        img[inside] = rng.choice([0.0, 0.35, 0.75])
    return img


def noisy(image: np.ndarray, level: float, *, seed: int = 0) -> np.ndarray:
    """A noisy copy of ``image``: ``image + N(0, (level * range)^2)`` as float64, seeded.

    ``level`` is relative to the image's range (e.g. 0.05 for 5 %).  Not to be
    confused with the forward processes' ``add_noise(x0, noise, timesteps)``
    in :mod:`pdediff.torch`.
    """
    img = np.asarray(image, dtype=np.float64)
    rng = np.random.default_rng(seed)
    return img + level * float(img.max() - img.min()) * rng.standard_normal(img.shape)
