"""heat_blur on a training batch against the same transforms in SciPy and against IHDM's torch DCT.

Batch 256 × 1 × 64 × 64 float32 on the CPU, per-sample times (as in training).
Targets: within 1.5x of ``scipy.fft.dctn``/``idctn`` done directly (the bridge
adds no copies) and faster than the published IHDM approach, a DCT built from
``torch.fft`` (torch-dct's algorithm, reimplemented in
:mod:`pdediff.bench._peers`, checked here against SciPy).  The cases are
those of ``pdediff bench`` (group ``torch``).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
from conftest import declare, run_case

torch = pytest.importorskip("torch")

from pdediff.bench._peers import dct2, ihdm_blur  # noqa: E402
from pdediff.torch import heat_blur  # noqa: E402

CASES = declare(["torch"])


def test_reference_dct_is_right():
    g = torch.Generator().manual_seed(0)
    x, t = torch.rand((4, 1, 16, 16), generator=g).double(), torch.rand(4, generator=g).double() * 20
    np.testing.assert_allclose(dct2(x).numpy(), scipy.fft.dctn(x.numpy(), type=2, norm="ortho", axes=(-2, -1)),
                               atol=1e-10)
    np.testing.assert_allclose(ihdm_blur(x, t).numpy(), heat_blur(x, t).numpy(), atol=1e-10)


@pytest.mark.parametrize("group,impl,shape,dtype", CASES)
def test_heat_blur_batch(record, group, impl, shape, dtype):
    run_case(record, group, impl, shape, dtype)
