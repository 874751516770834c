"""Inpainting: pdediff's harmonic, biharmonic and Perona–Malik fills against scikit-image and OpenCV.

One colour image (skimage.data.astronaut, 512², float64 in [0, 1]; uint8 for
OpenCV), two masks from :mod:`pdediff.data` (cracks, blocks).  Targets:
harmonic at least 5x faster than ``skimage.restoration.inpaint_biharmonic``,
and pdediff's biharmonic (the same system) faster than scikit-image's.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ratio

from pdediff.data import block_mask, crack_mask
from pdediff.restoration import inpaint

MASKS = {"crack": lambda s: crack_mask(s, seed=0), "block": lambda s: block_mask(s, seed=0)}


def _case(mask_name):
    from skimage import data

    img = data.astronaut()
    return img, img.astype(np.float64) / 255.0, MASKS[mask_name](img.shape[:2])


def _methods(img8, img, mask):
    from skimage.restoration import inpaint_biharmonic

    runs = {
        "pdediff harmonic": lambda: inpaint(img, mask, channel_axis=-1),
        "pdediff biharmonic": lambda: inpaint(img, mask, method="biharmonic", channel_axis=-1),
        "pdediff perona_malik": lambda: inpaint(img, mask, method="perona_malik", channel_axis=-1),
        "skimage inpaint_biharmonic": lambda: inpaint_biharmonic(img, mask, channel_axis=-1),
    }
    try:
        import cv2

        m8 = mask.astype(np.uint8)
        runs["cv2 telea"] = lambda: cv2.inpaint(img8, m8, 3, cv2.INPAINT_TELEA)
        runs["cv2 ns"] = lambda: cv2.inpaint(img8, m8, 3, cv2.INPAINT_NS)
    except ImportError:
        pass
    return runs


CASES = [(m, name) for m in MASKS for name in ("pdediff harmonic", "pdediff biharmonic", "pdediff perona_malik",
                                                "skimage inpaint_biharmonic", "cv2 telea", "cv2 ns")]


@pytest.mark.parametrize("mask_name,name", CASES)
def test_inpaint(record, mask_name, name):
    img8, img, mask = _case(mask_name)
    runs = _methods(img8, img, mask)
    if name not in runs:
        pytest.skip(f"{name} not installed")
    record(f"inpaint astronaut {mask_name}", name, runs[name], rounds=3)


for _m in MASKS:
    _g = f"inpaint astronaut {_m}"
    ratio("skimage biharmonic / pdediff harmonic", _g, "skimage inpaint_biharmonic", "pdediff harmonic", target=5)
    ratio("skimage biharmonic / pdediff biharmonic", _g, "skimage inpaint_biharmonic", "pdediff biharmonic",
          target=1)
    ratio("cv2 telea / pdediff harmonic", _g, "cv2 telea", "pdediff harmonic")
    ratio("pdediff perona_malik / pdediff harmonic", _g, "pdediff perona_malik", "pdediff harmonic")
