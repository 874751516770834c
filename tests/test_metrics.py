import numpy as np
import pytest

from pdediff import metrics


def test_psnr_known_value():
    a = np.zeros((10, 10))
    b = a + 0.1
    assert metrics.psnr(a, b, data_range=1.0) == pytest.approx(20.0)
    assert metrics.psnr(a, a, data_range=1.0) == float("inf")


@pytest.mark.parametrize("shape,ch", [((40, 50), None), ((12, 14, 16), None), ((30, 32, 3), -1)])
def test_ssim_fallback_matches_skimage(rng, shape, ch):
    pytest.importorskip("skimage")
    a = rng.random(shape)
    b = a + 0.2 * rng.standard_normal(shape)
    expect = metrics.ssim(a, b, data_range=1.0, channel_axis=ch)
    assert metrics._ssim_scipy(a, b, 1.0, ch) == pytest.approx(expect, abs=1e-10)
    assert metrics.ssim(a, a, data_range=1.0, channel_axis=ch) == pytest.approx(1.0)


def test_metric_errors():
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="data_range"):
        metrics.psnr(np.zeros(3), np.ones(3))
