"""Image quality metrics: PSNR and SSIM (scikit-image when installed, else a tested fallback)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["psnr", "ssim"]


def _pair(reference: Any, image: Any) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=np.float64)
    img = np.asarray(image, dtype=np.float64)
    if ref.shape != img.shape:
        raise ValueError(f"reference and image must have the same shape; got {ref.shape} and {img.shape}")
    return ref, img


def _range(ref: np.ndarray, data_range: float | None) -> float:
    r = float(ref.max() - ref.min()) if data_range is None else float(data_range)
    if not r > 0:
        raise ValueError("data_range must be positive (pass it explicitly for a constant reference)")
    return r


def psnr(reference: Any, image: Any, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range^2 / MSE)``.

    ``data_range`` defaults to ``reference.max() - reference.min()``.
    """
    ref, img = _pair(reference, image)
    mse = float(np.mean((ref - img) ** 2))
    r = _range(ref, data_range)
    return float("inf") if mse == 0 else float(10.0 * np.log10(r * r / mse))


def ssim(reference: Any, image: Any, *, data_range: float | None = None, channel_axis: int | None = None) -> float:
    """Structural similarity (Wang et al. 2004), Gaussian window sigma = 1.5.

    Uses :func:`skimage.metrics.structural_similarity` when scikit-image is
    installed (``gaussian_weights=True``, the paper's settings); otherwise an
    equivalent SciPy implementation (tested to agree).
    """
    ref, img = _pair(reference, image)
    r = _range(ref, data_range)
    try:
        from skimage.metrics import structural_similarity
    except ImportError:  # pragma: no cover - exercised by forcing the fallback in tests
        return _ssim_scipy(ref, img, r, channel_axis)
    return float(structural_similarity(ref, img, data_range=r, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, channel_axis=channel_axis))


def _ssim_scipy(ref: np.ndarray, img: np.ndarray, r: float, channel_axis: int | None) -> float:
    from scipy.ndimage import gaussian_filter

    if channel_axis is not None:
        ref = np.moveaxis(ref, channel_axis, 0)
        img = np.moveaxis(img, channel_axis, 0)
        return float(np.mean([_ssim_scipy(a, b, r, None) for a, b in zip(ref, img)]))
    c1, c2 = (0.01 * r) ** 2, (0.03 * r) ** 2

    def f(x):
        return gaussian_filter(x, 1.5, truncate=3.5, mode="reflect")

    mx, my = f(ref), f(img)
    vx = f(ref * ref) - mx * mx
    vy = f(img * img) - my * my
    cxy = f(ref * img) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    pad = (2 * int(3.5 * 1.5 + 0.5) + 1 - 1) // 2
    return float(s[tuple(slice(pad, -pad) for _ in range(s.ndim))].mean())
