"""The case registry: which implementations are timed together, at which sizes and dtypes.

:data:`GROUPS` is the one list both tools read: ``pdediff bench`` plans its run
from it, the pytest-benchmark suite (``benchmarks/``) parametrises over it.
Adding a case is a factory (in :mod:`._pdediff_cases`, :mod:`._peers` or
:mod:`._baselines`) and an :class:`~pdediff.bench._spec.Impl` entry in its group here.
"""

from __future__ import annotations

from ._baselines import copy, copy_n, fft_pair, kappa_numpy_formula, numpy_step, scipy_fft_pair_batch
from ._pdediff_cases import (
    iteration_sigma0,
    iteration_sigma08,
    kappa_fused,
    pdediff_adi,
    pdediff_aos,
    pdediff_explicit,
    pdediff_explicit_block,
    pdediff_exponential,
    pdediff_exponential_sigma,
    pdediff_heat_blur,
    pdediff_kappa_auto,
    pdediff_rational,
    pdediff_rational_sigma,
    pdediff_rgb,
    pdediff_spectral,
    pdediff_torch_pm,
)
from ._peers import (
    ihdm_torch_dct,
    medpy,
    ndimage_gaussian,
    ndimage_step,
    opencv_rgb,
    pypde_step,
    scipy_banded_adi,
    scipy_cg,
    scipy_splu,
    simpleitk,
    skimage_gaussian,
)
from ._spec import Group, Impl
from ._training import torch_train_degrade, torch_train_model, torch_train_step, torch_train_step_serial
from ._workload import BLOCK_STEPS, N_ITER, heat_data, kappa_data, pm_data, torch_data

HEAT_SHAPES = ((1024, 1024), (4096, 4096), (128,) * 3, (256,) * 3)
PM_SHAPES = ((512, 512), (2048, 2048), (128,) * 3, (256,) * 3)
KAPPA_SHAPES = ((1024, 1024), (128,) * 3, (256,) * 3)
QUICK_SHAPES = ((128, 128), (256, 256), (24,) * 3, (40,) * 3)
TORCH_SHAPE = (256, 1, 64, 64)
TORCH_QUICK_SHAPE = (32, 1, 32, 32)
#: The training-step batch: 64 images of 32², ``pdediff train``'s cold-pm process and UNet (about a second
#: per step on two cores); quick: 16 images of 16².
TRAIN_SHAPE = (64, 1, 32, 32)
TRAIN_QUICK_SHAPE = (16, 1, 16, 16)

#: How ``bench.json`` counts bytes (its ``byte_model``): the ``passes`` of the implementations below.
BYTE_MODEL = ("compulsory traffic of an ideal kernel: one pass reads and writes the field once (2 x itemsize bytes "
              "per cell); copy, explicit stencil step and Perona-Malik iteration: 1 pass per step; spectral "
              "solve and transform pairs: 2; ADI step: 3 (explicit half, forward and backward sweeps); NumPy "
              "slicing step: 6 (pad, shifted sums, update); ndimage step: 3; kappa estimate: 0.5 (one read); "
              "OpenCV/pdediff 3-channel cases count 3 cells per pixel. GB/s = bytes / time; roofline ratio = "
              "GB/s / GB/s of np.copyto (single-threaded) of the same shape and dtype.")

_COPY = Impl(copy, "copy (np.copyto)", kind="roofline", library="NumPy", gpu=True, gpu_library="CuPy")
_EXPLICIT = Impl(pdediff_explicit, "pdediff explicit step", gpu=True)
_PM_EXP = Impl(pdediff_exponential, "pdediff PM exponential, sigma=0", steps=N_ITER, gpu=True)

GROUPS: tuple[Group, ...] = (
    Group("heat-explicit", "heat", HEAT_SHAPES, QUICK_SHAPES, (
        _COPY,
        _EXPLICIT,
        Impl(pdediff_explicit_block, f"pdediff step(u, {BLOCK_STEPS})", steps=BLOCK_STEPS, gpu=True),
        Impl(numpy_step, "NumPy slicing step", kind="reference", library="NumPy", passes=6, rounds=3),
        Impl(ndimage_step, "scipy.ndimage.laplace step", kind="peer", library="scipy.ndimage", passes=3, rounds=3,
             gpu=True, gpu_library="cupyx.scipy.ndimage"),
        Impl(pypde_step, "py-pde Euler step (float64)", kind="peer", library="py-pde", rounds=3),
    ), heat_data),
    Group("heat-adi", "heat", HEAT_SHAPES, QUICK_SHAPES, (
        _EXPLICIT,
        # CN ADI: explicit half (1 pass), then per axis a forward and a backward Thomas sweep.
        Impl(pdediff_adi, "pdediff ADI step", passes=3, gpu=True),
        Impl(scipy_banded_adi, "scipy.linalg.solve_banded ADI", kind="peer", library="SciPy banded", passes=3,
             rounds=3),
        Impl(scipy_cg, "scipy.sparse CG solve", kind="peer", library="SciPy sparse (CG)", passes=3, rounds=3),
        Impl(scipy_splu, "scipy.sparse splu solve", kind="peer", library="SciPy sparse (splu)", passes=3,
             rounds=3),
    ), heat_data),
    Group("heat-spectral", "heat", HEAT_SHAPES, QUICK_SHAPES, (
        # the bare transform pair is the spectral solve's reference (always timed, like NumPy's step)
        Impl(fft_pair, "scipy.fft dctn + idctn", kind="reference", library="SciPy FFT", passes=2, rounds=3,
             gpu=True, gpu_library="cupyx.scipy.fft"),
        Impl(pdediff_spectral, "pdediff spectral solve", passes=2, rounds=3, gpu=True),
    ), heat_data),
    Group("pm", "pm", PM_SHAPES, QUICK_SHAPES, (
        Impl(copy_n, f"{N_ITER} copies (np.copyto)", kind="roofline", library="NumPy", steps=N_ITER, gpu=True,
             gpu_library="CuPy"),
        _PM_EXP,
        Impl(pdediff_rational, "pdediff PM rational, sigma=0", steps=N_ITER, gpu=True),
        # Catté smoothing: one pass per axis of a separable Gaussian on top of the iteration.
        Impl(pdediff_exponential_sigma, "pdediff PM exponential, default sigma", steps=N_ITER, gpu=True),
        Impl(pdediff_rational_sigma, "pdediff PM rational, default sigma", steps=N_ITER, gpu=True),
        # AOS: conductance pass, then per axis a tridiagonal solve (forward + backward sweep).
        Impl(pdediff_aos, "pdediff PM AOS, sigma=0", steps=N_ITER, rounds=3, gpu=True),
        Impl(medpy, "MedPy anisotropic_diffusion", kind="peer", library="MedPy", steps=N_ITER, rounds=3),
        Impl(simpleitk, "SimpleITK GradientAnisotropicDiffusion", kind="peer", library="SimpleITK", steps=N_ITER,
             rounds=1),
        Impl(opencv_rgb, "OpenCV anisotropicDiffusion (uint8, 3-ch)", kind="peer", library="OpenCV", steps=N_ITER,
             channels=3),
        Impl(pdediff_rgb, "pdediff PM 3-channel (float32)", steps=N_ITER, channels=3),
        Impl(ndimage_gaussian, "scipy.ndimage.gaussian_filter (smoothing only)", kind="peer",
             library="scipy.ndimage", steps=N_ITER, rounds=3),
        Impl(skimage_gaussian, "skimage.filters.gaussian (smoothing only)", kind="peer", library="scikit-image",
             steps=N_ITER, rounds=3),
    ), pm_data),
    Group("pm-kappa", "pm", KAPPA_SHAPES, QUICK_SHAPES[1::2], (
        Impl(kappa_fused, "pdediff estimate_kappa", passes=0.5, steps=N_ITER, gpu=True),
        Impl(kappa_numpy_formula, "NumPy median/MAD formula", kind="reference", library="NumPy", passes=4,
             steps=N_ITER),
        Impl(iteration_sigma0, "pdediff PM iteration, sigma=0", steps=N_ITER, gpu=True),
        Impl(iteration_sigma08, "pdediff PM iteration, sigma=0.8", steps=N_ITER, gpu=True),
        Impl(pdediff_kappa_auto, "pdediff PM kappa='auto' (default sigma)", steps=N_ITER, gpu=True),
    ), kappa_data, dtypes=("float32",)),
    Group("torch", "torch", (TORCH_SHAPE,), (TORCH_QUICK_SHAPE,), (
        Impl(pdediff_heat_blur, "pdediff.torch.heat_blur", passes=2, rounds=10),
        Impl(scipy_fft_pair_batch, "scipy.fft dctn + idctn (batch)", kind="reference", library="SciPy FFT",
             passes=2, rounds=10),
        Impl(ihdm_torch_dct, "IHDM torch.fft DCT blur", kind="peer", library="torch.fft (IHDM)", passes=2,
             rounds=10),
        Impl(pdediff_torch_pm, "pdediff.torch.perona_malik", steps=N_ITER, rounds=5),
    ), torch_data, dtypes=("float32",), takes_sizes=False),
    # torch's and pdediff's thread pools in one process: a cold-diffusion PM training step with pdediff's
    # threads and with its kernels serial, and its two parts alone (the step should cost no more than their
    # sum).  Byte model nominal (one pass over the batch).
    Group("torch-train", "torch", (TRAIN_SHAPE,), (TRAIN_QUICK_SHAPE,), (
        Impl(torch_train_step, "cold-PM training step (pdediff threads)", rounds=3),
        Impl(torch_train_step_serial, "cold-PM training step (pdediff serial)", kind="reference",
             library="pdediff serial + PyTorch", rounds=3),
        Impl(torch_train_degrade, "cold-PM degradation alone (pdediff)", rounds=3),
        Impl(torch_train_model, "UNet forward+backward+Adam alone (torch)", kind="reference", library="PyTorch",
             rounds=3),
    ), torch_data, dtypes=("float32",), takes_sizes=False),
)

GROUP_NAMES = tuple(g.name for g in GROUPS)
SUITES = ("heat", "pm", "torch")


def group(name: str) -> Group:
    """The group called ``name`` (``KeyError`` if none)."""
    for g in GROUPS:
        if g.name == name:
            return g
    raise KeyError(name)


def impl(group_name: str, impl_name: str) -> Impl:
    """The implementation ``impl_name`` of group ``group_name`` (``KeyError`` if none)."""
    for i in group(group_name).impls:
        if i.name == impl_name:
            return i
    raise KeyError(impl_name)


def kind_of(name: str) -> str | None:
    """The kind (``"pdediff"``, ``"peer"``, ...) of the implementation called ``name`` in any group."""
    for g in GROUPS:
        for i in g.impls:
            if i.name == name:
                return i.kind
    return None
