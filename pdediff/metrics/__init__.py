"""Image-quality metrics, and offline metrics for sets of generated images.

Pairs of images
---------------
psnr, ssim
    Peak signal-to-noise ratio and structural similarity of an image against a reference.

Sets of samples (features ``(N, D)`` or images ``(N, ...)``; NumPy/SciPy only)
------------------------------------------------------------------------------
frechet_distance
    FID's formula on any features (not FID: not comparable with published values).
sliced_wasserstein
    Sliced 2-Wasserstein distance over random projections.
one_nn_accuracy
    Leave-one-out 1-nearest-neighbour two-sample test (0.5 best, 1.0 separable).
precision_recall, density_coverage
    Fidelity and diversity from k-nearest-neighbour balls.
memorisation_ratio
    Distance of samples to the training set relative to that of held-out real data.
label_statistics
    Class entropy, coverage and confidence of a classifier's predictions.
radial_power_spectrum, spectrum_error
    Radially averaged power spectra and their log difference per frequency band.

Features
--------
FeatureExtractor
    A small MLP classifier or autoencoder fitted locally on the training split
    (needs scikit-learn only to fit: ``pip install "pdediff[metrics]"``).

Importing this module imports neither scikit-learn nor torch.
"""

from __future__ import annotations

from ._features import FeatureExtractor
from ._image import _ssim_scipy, psnr, ssim  # noqa: F401  (_ssim_scipy: tested against scikit-image)
from ._sets import (
    density_coverage,
    frechet_distance,
    label_statistics,
    memorisation_ratio,
    one_nn_accuracy,
    precision_recall,
    radial_power_spectrum,
    sliced_wasserstein,
    spectrum_error,
)

__all__ = [
    "psnr",
    "ssim",
    "frechet_distance",
    "sliced_wasserstein",
    "one_nn_accuracy",
    "precision_recall",
    "density_coverage",
    "label_statistics",
    "memorisation_ratio",
    "radial_power_spectrum",
    "spectrum_error",
    "FeatureExtractor",
]
