"""Images that ship with installed packages, and seeded synthetic phantoms (nothing is downloaded)."""

from __future__ import annotations

import gzip
import math
import numbers

import numpy as np

__all__ = ["block_mask", "crack_mask", "mri_slice", "noisy", "phantom"]


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


def _mask_shape(shape) -> tuple[int, ...]:
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"shape must be a sequence of 2 or 3 positive integers; got {shape!r}") from None
    if len(shape) not in (2, 3) or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in shape):
        raise ValueError(f"shape must be 2 or 3 positive integers; got {shape!r}")
    return tuple(int(s) for s in shape)


def _count(value, name: str, lo: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}; got {value!r}")
    return int(value)


def crack_mask(shape, *, seed: int = 0, num_cracks: int = 8, max_width: int = 3, length: float = 0.5,
               wiggle: float = 0.15, branch_probability: float = 0.01) -> np.ndarray:
    """A seeded mask of thin cracks (craquelure, scratches): bool, True = missing.

    Each crack is a persistent random walk of unit steps whose direction turns by a
    normal angle of standard deviation ``wiggle`` (radians) per step, drawn with a
    square brush 1 to ``max_width`` pixels wide (one width per crack); at each step
    a crack may branch into a shorter one.  Cracks stop at the image border.

    Parameters
    ----------
    shape : tuple of int
        2-D ``(ny, nx)`` or 3-D ``(nz, ny, nx)`` shape.
    seed : int
        Seed of :func:`numpy.random.default_rng`: equal arguments give equal masks.
    num_cracks : int
        Number of main cracks (branches come on top).
    max_width : int
        Widest brush, in pixels (each crack's width is drawn uniformly in ``1..max_width``).
    length : float
        Mean crack length as a fraction of the image diagonal (each is drawn in
        ``[0.5, 1.5] * length``); branches are a quarter to a half as long.
    wiggle : float
        Standard deviation of the direction change per step (radians); 0 gives straight lines.
    branch_probability : float
        Chance per step of a main crack to spawn a branch (in ``[0, 1]``).

    Returns
    -------
    mask : ndarray of bool, shape ``shape``
        True on the cracks (the pixels to inpaint).

    Examples
    --------
    >>> from pdediff.data import crack_mask
    >>> m = crack_mask((128, 128), seed=1)
    >>> m.dtype, m.shape, bool(0 < m.mean() < 0.2)
    (dtype('bool'), (128, 128), True)
    """
    shape = _mask_shape(shape)
    num_cracks = _count(num_cracks, "num_cracks")
    max_width = _count(max_width, "max_width", 1)
    for name, v, hi in (("length", length, math.inf), ("wiggle", wiggle, math.inf),
                        ("branch_probability", branch_probability, 1.0)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= v <= hi:
            raise ValueError(f"{name} must be a number in [0, {hi}]; got {v!r}")
    rng = np.random.default_rng(seed)
    nd = len(shape)
    ext = np.array(shape, dtype=float)
    diag = float(np.sqrt((ext ** 2).sum()))
    mask = np.zeros(shape, dtype=bool)
    # (start point, unit direction, number of steps, width, may branch)
    todo = []
    for _ in range(num_cracks):
        d = rng.standard_normal(nd)
        todo.append((rng.uniform(0, ext), d / np.linalg.norm(d), int(rng.uniform(0.5, 1.5) * length * diag),
                     int(rng.integers(1, max_width + 1)), True))
    while todo:
        p, d, n, w, main = todo.pop()
        pts = []
        for _ in range(n):
            if np.any(p < 0) or np.any(p >= ext):
                break
            pts.append(p.copy())
            # turn by a small random rotation: perturb the direction and renormalise
            d = d + wiggle * rng.standard_normal(nd)
            d /= np.linalg.norm(d)
            p = p + d
            if main and rng.random() < branch_probability:
                b = d + rng.standard_normal(nd)
                todo.append((p.copy(), b / np.linalg.norm(b), int(n * rng.uniform(0.25, 0.5)),
                             max(1, w - 1), False))
        if not pts:
            continue
        # square brush of width w around each point (lower corner at p - (w - 1) / 2)
        base = np.floor(np.array(pts) - (w - 1) / 2.0 + 0.5).astype(np.int64)
        offs = np.stack(np.meshgrid(*([np.arange(w)] * nd), indexing="ij"), -1).reshape(-1, nd)
        idx = (base[:, None, :] + offs[None]).reshape(-1, nd)
        idx = np.clip(idx, 0, np.array(shape) - 1)
        mask[tuple(idx.T)] = True
    return mask


def block_mask(shape, *, seed: int = 0, num_blocks: int = 4, min_size: float = 1 / 16,
               max_size: float = 1 / 6) -> np.ndarray:
    """A seeded mask of missing rectangular blocks (lost tiles, dropped packets): bool, True = missing.

    Parameters
    ----------
    shape : tuple of int
        2-D ``(ny, nx)`` or 3-D ``(nz, ny, nx)`` shape.
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    num_blocks : int
        Number of boxes (they may overlap).
    min_size, max_size : float
        Side length of each box along each axis, drawn uniformly in
        ``[min_size, max_size]`` times that axis' length (at least one pixel);
        ``0 < min_size <= max_size <= 1``.  With ``max_size`` close to 1 and many
        blocks the mask can cover the whole image, which :func:`pdediff.inpaint` refuses.

    Returns
    -------
    mask : ndarray of bool, shape ``shape``

    Examples
    --------
    >>> from pdediff.data import block_mask
    >>> m = block_mask((96, 128), num_blocks=2, seed=3)
    >>> m.shape, bool(m.any()), bool(m.mean() < 0.1)
    ((96, 128), True, True)
    """
    shape = _mask_shape(shape)
    num_blocks = _count(num_blocks, "num_blocks")
    for name, v in (("min_size", min_size), ("max_size", max_size)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 < v <= 1:
            raise ValueError(f"{name} must be a number in (0, 1] (a fraction of each axis); got {v!r}")
    if min_size > max_size:
        raise ValueError(f"min_size must not exceed max_size; got {min_size!r} > {max_size!r}")
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, dtype=bool)
    for _ in range(num_blocks):
        sl = []
        for n in shape:
            size = max(1, round(rng.uniform(min_size, max_size) * n))
            start = int(rng.integers(0, n - size + 1))
            sl.append(slice(start, start + size))
        mask[tuple(sl)] = True
    return mask
