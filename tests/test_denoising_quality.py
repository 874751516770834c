"""The quality bar: Perona–Malik with every setting at its default, kappa="auto".

Seeded Gaussian noise (3, 5, 10 % of the range) on matplotlib's MRI slice and on
piecewise-constant 2-D and 3-D phantoms.  PM must improve PSNR by >= 4 dB,
beat the best linear heat blur (an oracle over blur times) on the MRI slice,
and beat it by >= 3 dB on the phantoms.  The measured numbers are in
docs/denoising.rst.
"""

import numpy as np
import pytest

import pdediff
from pdediff import analytic, data
from pdediff.metrics import psnr

IMAGES = {
    "mri": lambda: data.mri_slice().astype(np.float64),
    "phantom2d": lambda: data.phantom((128, 128), seed=0),
    "phantom3d": lambda: data.phantom((48, 48, 48), seed=0),
}
MARGIN_OVER_LINEAR = {"mri": 0.0, "phantom2d": 3.0, "phantom3d": 3.0}


def best_linear_psnr(clean, noisy, r):
    return max(psnr(clean, pdediff.solve_heat(noisy, analytic.time_for_sigma(s)), data_range=r)
               for s in np.arange(0.1, 4.01, 0.1))


@pytest.mark.parametrize("noise", [0.03, 0.05, 0.10])
@pytest.mark.parametrize("name", list(IMAGES))
def test_default_perona_malik_beats_noise_and_linear_blur(name, noise):
    clean = IMAGES[name]()
    r = float(clean.max() - clean.min())
    noisy = data.noisy(clean, noise, seed=7)
    out = pdediff.perona_malik(noisy)
    p_noisy = psnr(clean, noisy, data_range=r)
    p_pm = psnr(clean, out, data_range=r)
    p_lin = best_linear_psnr(clean, noisy, r)
    assert p_pm >= p_noisy + 4.0, (p_noisy, p_pm)
    assert p_pm > p_lin + MARGIN_OVER_LINEAR[name], (p_lin, p_pm)
