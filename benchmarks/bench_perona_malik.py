"""Perona–Malik per iteration against SimpleITK, MedPy, OpenCV, the Catté smoothing alone, and the roofline;
the ``kappa="auto"`` estimate next to iterations on the same array.

Every implementation runs ``N_ITER`` iterations on the same data, so ratios of
times are ratios per iteration (pdediff's include its per-call setup).  Peers
come from the ``bench`` extra and are skipped when absent.  OpenCV only takes
8-bit 3-channel images, so it is compared with pdediff's 3-channel
(``channel_axis``) path on the same 2-D image.  The cases are those of
``pdediff bench`` (:mod:`pdediff.bench._registry`, groups ``pm`` and ``pm-kappa``).
"""

from __future__ import annotations

import pytest
from conftest import declare, run_case

CASES = declare(["pm", "pm-kappa"])


@pytest.mark.parametrize("group,impl,shape,dtype", CASES)
def test_perona_malik(record, group, impl, shape, dtype):
    run_case(record, group, impl, shape, dtype)
