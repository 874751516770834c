"""Perona–Malik per iteration against SimpleITK, MedPy and OpenCV, and the copy roofline.

Every implementation runs ``N_ITER`` iterations on the same data, so ratios of
times are ratios per iteration (pdediff's include its per-call setup).  Peers
come from the ``bench`` extra and are skipped when absent.  Sizes: 2-D 512² and
2048², 3-D 128³ and 256³, float32 and float64; OpenCV only takes 8-bit
3-channel images, so it is compared with pdediff's 3-channel (``channel_axis``)
path on the same 2-D image.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ratio

import pdediff

N_ITER = 5
SHAPES = {"2d-512": (512, 512), "2d-2048": (2048, 2048), "3d-128": (128,) * 3, "3d-256": (256,) * 3}
DTYPES = {"float32": np.float32, "float64": np.float64}
KAPPA = 20.0


def _image(size, dtype):
    rng = np.random.default_rng(0)
    img = rng.random(SHAPES[size])
    return (img * 255).astype(DTYPES[dtype])


def copy(u):
    v = np.empty_like(u)

    def run():
        for _ in range(N_ITER):
            np.copyto(v, u)

    return run


def pdediff_exponential(u):
    return lambda: pdediff.perona_malik(u, num_iter=N_ITER, kappa=KAPPA, sigma=0.0, check_finite=False)


def pdediff_rational(u):
    return lambda: pdediff.perona_malik(u, num_iter=N_ITER, kappa=KAPPA, sigma=0.0, conductance="rational",
                                        check_finite=False)


def pdediff_aos(u):
    return lambda: pdediff.perona_malik(u, num_iter=N_ITER, kappa=KAPPA, sigma=0.0, method="aos",
                                        check_finite=False)


def medpy(u):
    sm = pytest.importorskip("medpy.filter.smoothing")
    return lambda: sm.anisotropic_diffusion(u, niter=N_ITER, kappa=KAPPA, gamma=1 / (2 * u.ndim), option=1)


def simpleitk(u):
    sitk = pytest.importorskip("SimpleITK")
    img = sitk.GetImageFromArray(u)
    f = sitk.GradientAnisotropicDiffusionImageFilter()
    f.SetNumberOfIterations(N_ITER)
    f.SetTimeStep(0.5 ** (u.ndim + 1))  # ITK's stability limit
    f.SetConductanceParameter(1.0)
    return lambda: f.Execute(img)


def _rgb8(u):
    if u.ndim != 2:
        pytest.skip("OpenCV's anisotropicDiffusion is 2-D only")
    return np.repeat(np.clip(u, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def opencv_rgb(u):
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "ximgproc"):
        pytest.skip("needs opencv-contrib (cv2.ximgproc)")
    rgb = _rgb8(u)
    return lambda: cv2.ximgproc.anisotropicDiffusion(rgb, 0.25, KAPPA, N_ITER)


def pdediff_rgb(u):
    rgb = _rgb8(u).astype(np.float32)
    return lambda: pdediff.perona_malik(rgb, num_iter=N_ITER, kappa=KAPPA, sigma=0.0, channel_axis=-1,
                                        check_finite=False)


IMPLS = [copy, pdediff_exponential, pdediff_rational, pdediff_aos, medpy, simpleitk, opencv_rgb, pdediff_rgb]
ROUNDS = {"simpleitk": 1, "medpy": 3, "pdediff_aos": 3}

for _s in SHAPES:
    for _d in DTYPES:
        g = f"pm-{_s}-{_d}"
        ratio("MedPy / pdediff (exponential)", g, "medpy", "pdediff_exponential", target=5)
        ratio("SimpleITK / pdediff (exponential)", g, "simpleitk", "pdediff_exponential", target=30)
        ratio("roofline: copy / pdediff rational", g, "copy", "pdediff_rational", target=0.5)
        ratio("OpenCV 3-ch / pdediff 3-ch", g, "opencv_rgb", "pdediff_rgb", target=1)
        ratio("AOS step / explicit step", g, "pdediff_aos", "pdediff_exponential", higher_is_better=False)

CASES = [pytest.param(impl, s, d, id=f"pm-{s}-{d}-{impl.__name__}") for s in SHAPES for d in DTYPES for impl in IMPLS]


@pytest.mark.parametrize("impl,size,dtype", CASES)
def test_perona_malik(record, impl, size, dtype):
    u = _image(size, dtype)
    fn = impl(u)
    record(f"pm-{size}-{dtype}", impl.__name__, fn, rounds=ROUNDS.get(impl.__name__, 5))


# -- automatic kappa: the estimate next to explicit iterations on the same array ------------------------
#
# ``kappa="auto"`` runs :func:`pdediff.estimate_kappa` once per call; the target is at most the cost of
# two explicit iterations, with (sigma=0.8, the default) and without (sigma=0) the Catté smoothing.
# Each case runs N_ITER times, so the ratios are per estimate / per iteration.  ``numpy_formula`` is the
# pooled-array formula the fused kernel replaced (small sizes only: ~3 s and 1.5 GB at 256³).

KAPPA_SHAPES = {"2d-1024": (1024, 1024), "3d-128": (128,) * 3, "3d-256": (256,) * 3}


def _kappa_image(size):
    import scipy.ndimage

    rng = np.random.default_rng(0)
    img = scipy.ndimage.gaussian_filter(rng.standard_normal(KAPPA_SHAPES[size]), 2.0)
    return (img + 0.05 * rng.standard_normal(img.shape)).astype(np.float32)


def kappa_fused(u):
    v, h = u[None], (1.0,) * u.ndim

    def run():
        for _ in range(N_ITER):
            pdediff.estimate_kappa(v, h)

    return run


def kappa_numpy_formula(u):
    if u.size > 2**21:
        pytest.skip("the pooled float64 arrays take seconds and GBs here")
    v, h = u[None], (1.0,) * u.ndim

    def run():
        for _ in range(N_ITER):
            s = np.concatenate([np.sqrt(np.sum((np.diff(v, axis=a + 1) / hh).astype(np.float64) ** 2, axis=0)).ravel()
                                for a, hh in enumerate(h)])
            med = np.median(s)
            np.median(np.abs(s - med))

    return run


def iteration_sigma0(u):
    k = pdediff.estimate_kappa(u[None], (1.0,) * u.ndim)
    return lambda: pdediff.perona_malik(u, num_iter=N_ITER, kappa=k, sigma=0.0, check_finite=False)


def iteration_sigma08(u):
    k = pdediff.estimate_kappa(u[None], (1.0,) * u.ndim)
    return lambda: pdediff.perona_malik(u, num_iter=N_ITER, kappa=k, sigma=0.8, check_finite=False)


KAPPA_IMPLS = [kappa_fused, kappa_numpy_formula, iteration_sigma0, iteration_sigma08]

for _s in KAPPA_SHAPES:
    g = f"kappa-{_s}-float32"
    ratio("kappa estimate / iteration (sigma=0)", g, "kappa_fused", "iteration_sigma0", target=2,
          higher_is_better=False)
    ratio("kappa estimate / iteration (sigma=0.8)", g, "kappa_fused", "iteration_sigma08", target=2,
          higher_is_better=False)
    ratio("NumPy formula / fused kappa estimate", g, "kappa_numpy_formula", "kappa_fused")

KAPPA_CASES = [pytest.param(impl, s, id=f"kappa-{s}-float32-{impl.__name__}") for s in KAPPA_SHAPES
               for impl in KAPPA_IMPLS]


@pytest.mark.parametrize("impl,size", KAPPA_CASES)
def test_kappa_estimate(record, impl, size):
    u = _kappa_image(size)
    fn = impl(u)
    record(f"kappa-{size}-float32", impl.__name__, fn, rounds=3 if size == "3d-256" else 5)
