"""``tensor_diffusion`` on Dask arrays (through the dispatch registry) equals the in-memory result."""

import numpy as np
import pytest

import pdediff

da = pytest.importorskip("dask.array")


@pytest.mark.parametrize("kw", [
    {"kind": "eed", "kappa": 0.05, "sigma": 0.0},
    {"kind": "eed", "sigma": 1.0, "boundary": "periodic"},
    {"kind": "ced", "rho": 2.0, "alpha": 0.05, "boundary": "dirichlet"},
])
def test_dask_equals_memory_2d(kw, rng):
    yy, xx = np.mgrid[:60, :70]
    img = (np.sin(0.4 * (0.8 * xx + 0.6 * yy)) + 0.3 * rng.standard_normal((60, 70))).astype(np.float64)
    expect, info = pdediff.tensor_diffusion(img, num_iter=3, return_info=True, **kw)
    lazy = pdediff.tensor_diffusion(da.from_array(img, chunks=(30, 35)), num_iter=3, **kw)
    assert isinstance(lazy, da.Array) and lazy.chunks == ((30, 30), (35, 35))
    np.testing.assert_allclose(lazy.compute(), expect, rtol=0, atol=1e-12)


def test_dask_equals_memory_3d_and_colour(rng):
    vol = rng.random((12, 14, 16))
    expect = pdediff.tensor_diffusion(vol, kind="eed", num_iter=2, kappa=0.1, spacing=(1.5, 1.0, 1.0))
    got = pdediff.tensor_diffusion(da.from_array(vol, chunks=(12, 7, 8)), kind="eed", num_iter=2, kappa=0.1,
                                   spacing=(1.5, 1.0, 1.0)).compute()
    np.testing.assert_allclose(got, expect, rtol=0, atol=1e-12)
    rgb = rng.random((40, 44, 3))
    expect = pdediff.tensor_diffusion(rgb, kind="eed", channel_axis=-1, num_iter=2)
    got = pdediff.tensor_diffusion(da.from_array(rgb, chunks=(20, 22, 3)), kind="eed", channel_axis=-1,
                                   num_iter=2)
    np.testing.assert_allclose(got.compute(), expect, rtol=0, atol=1e-12)


def test_dask_info_and_kappa_auto(rng):
    img = rng.random((40, 40))
    _, ref = pdediff.tensor_diffusion(img, num_iter=1, return_info=True)
    _, info = pdediff.tensor_diffusion(da.from_array(img, chunks=20), num_iter=1, return_info=True)
    assert info.kappa == pytest.approx(ref.kappa, rel=1e-12)
    assert info.substeps == -1 and info.max_offset == -1


def test_dask_default_eed_steps_equal_memory():
    """The default EED step count follows the estimated noise: the Dask path's estimate is the exact
    in-memory one (Dask's approximate percentiles gave 4 steps against 3 here at chunks of 8, and
    the noise fraction 0.143 against 0.057 on nibabel's anatomical.nii)."""
    rng = np.random.default_rng(3)
    zz, yy, xx = np.mgrid[:24, :26, :20]
    vol = 1000.0 * ((xx - 10) ** 2 + (yy - 13) ** 2 + (zz - 12) ** 2 < 64) + 3000.0 * (xx > 14)
    vol = np.round(vol + 150.0 * rng.standard_normal(vol.shape))  # integer-valued: many ties
    _, ref = pdediff.tensor_diffusion(vol, kind="eed", spacing=2.0, return_info=True)
    for chunks in (8, (24, 13, 7)):
        _, got = pdediff.tensor_diffusion(da.from_array(vol, chunks=chunks), kind="eed", spacing=2.0,
                                          return_info=True)
        assert got.num_iter == ref.num_iter
    from pdediff.anisotropic.tensor import _noise_fraction
    from pdediff.dask._select import order_statistics

    u = vol[None]
    d = da.from_array(u, chunks=(1, 8, 8, 8))
    assert _noise_fraction(d, d, True) == _noise_fraction(u, u, False)  # exact, same float64 arithmetic
    ranks = [0, 1, u.size // 2, u.size - 1]
    (got,) = order_statistics([(d, ranks)])
    assert got == [float(x) for x in np.partition(u.ravel(), ranks)[ranks]]
