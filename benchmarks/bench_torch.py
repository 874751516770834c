"""heat_blur on a training batch against the same transforms in SciPy and against IHDM's torch DCT.

Batch 256 × 1 × 64 × 64 float32 on the CPU, per-sample times (as in training).
Targets: within 1.5x of ``scipy.fft.dctn``/``idctn`` done directly (the bridge
adds no copies) and faster than the published IHDM approach, a DCT built from
``torch.fft`` (torch-dct's algorithm, reimplemented here).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
from conftest import ratio

torch = pytest.importorskip("torch")

from pdediff.torch import heat_blur  # noqa: E402

SHAPE = (256, 1, 64, 64)


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(SHAPE, generator=g), torch.rand(SHAPE[0], generator=g) * 20


def _dct(x):  # torch-dct's dct(norm="ortho") along the last axis (Makhoul via FFT)
    n = x.shape[-1]
    v = torch.cat([x[..., ::2], x[..., 1::2].flip([-1])], dim=-1)
    vc = torch.view_as_real(torch.fft.fft(v, dim=-1))
    k = -torch.arange(n, dtype=x.dtype) * math.pi / (2 * n)
    out = vc[..., 0] * torch.cos(k) - vc[..., 1] * torch.sin(k)
    out[..., 0] /= math.sqrt(n) * 2
    out[..., 1:] /= math.sqrt(n / 2) * 2
    return 2 * out


def _idct(X):  # torch-dct's idct(norm="ortho")
    n = X.shape[-1]
    Xv = X / 2
    Xv = Xv.clone()
    Xv[..., 0] *= math.sqrt(n) * 2
    Xv[..., 1:] *= math.sqrt(n / 2) * 2
    k = torch.arange(n, dtype=X.dtype) * math.pi / (2 * n)
    Vr = Xv * torch.cos(k) - torch.cat([Xv[..., :1] * 0, -Xv.flip([-1])[..., :-1]], -1) * torch.sin(k)
    Vi = Xv * torch.sin(k) + torch.cat([Xv[..., :1] * 0, -Xv.flip([-1])[..., :-1]], -1) * torch.cos(k)
    v = torch.fft.irfft(torch.view_as_complex(torch.stack([Vr, Vi], -1)), n=n, dim=-1)
    x = v.new_zeros(v.shape)
    x[..., ::2] += v[..., : n - n // 2]
    x[..., 1::2] += v.flip([-1])[..., : n // 2]
    return x


def _dct2(x):
    return _dct(_dct(x).transpose(-1, -2)).transpose(-1, -2)


def _idct2(x):
    return _idct(_idct(x).transpose(-1, -2)).transpose(-1, -2)


def ihdm_blur(x, t):
    """IHDM's DCTBlur: frequencies squared times t, exp decay, in torch."""
    n = x.shape[-1]
    freqs = math.pi * torch.linspace(0, n - 1, n) / n
    lam = freqs[None, :] ** 2 + freqs[:, None] ** 2
    return _idct2(_dct2(x) * torch.exp(-lam[None, None] * t[:, None, None, None]))


def test_reference_dct_is_right():
    x, t = _batch()
    x, t = x[:4].double(), t[:4].double()
    np.testing.assert_allclose(_dct2(x).numpy(), scipy.fft.dctn(x.numpy(), type=2, norm="ortho", axes=(-2, -1)),
                               atol=1e-10)
    np.testing.assert_allclose(ihdm_blur(x, t).numpy(), heat_blur(x, t).numpy(), atol=1e-10)


ratio("heat_blur / scipy dctn+idctn", "torch-256x1x64x64-float32", "pdediff_heat_blur", "scipy_fft_pair",
      target=1.5, higher_is_better=False)
ratio("IHDM torch-fft DCT blur / heat_blur", "torch-256x1x64x64-float32", "ihdm_torch_dct", "pdediff_heat_blur",
      target=1.0)


@pytest.mark.parametrize("impl", ["pdediff_heat_blur", "scipy_fft_pair", "ihdm_torch_dct"])
def test_heat_blur_batch(record, impl):
    x, t = _batch()
    if impl == "pdediff_heat_blur":
        fn = lambda: heat_blur(x, t)  # noqa: E731
    elif impl == "scipy_fft_pair":
        a = x.numpy()
        kw = {"type": 2, "norm": "ortho", "axes": (-2, -1), "workers": -1}
        fn = lambda: scipy.fft.idctn(scipy.fft.dctn(a, **kw), overwrite_x=True, **kw)  # noqa: E731
    else:
        fn = lambda: ihdm_blur(x, t)  # noqa: E731
    record("torch-256x1x64x64-float32", impl, fn, rounds=10)
