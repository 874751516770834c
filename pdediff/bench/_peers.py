"""The peers: what users would otherwise run, in the libraries they would run it with (``--peers``).

py-pde, ``scipy.ndimage``, ``scipy.linalg.solve_banded``, ``scipy.sparse``
(CG, ``splu``), MedPy, SimpleITK, OpenCV, scikit-image and IHDM's DCT blur
built from ``torch.fft``.  Each factory imports its library when called and
raises :class:`~pdediff.bench._spec.Unavailable` when it is missing or the case
does not apply (a volume for OpenCV, a GPU array for the CPU-only libraries).
"""

from __future__ import annotations

import math

import numpy as np

from ._spec import Unavailable, is_gpu_array, need
from ._workload import KAPPA, N_ITER, batch_times, rgb8


# ---------------------------------------------------------------- heat: explicit step
def ndimage_step(u):
    """``u + 0.1 * laplace(u)`` with ``scipy.ndimage`` (``cupyx.scipy.ndimage`` for CuPy arrays)."""
    if is_gpu_array(u):
        nd = need("cupyx.scipy.ndimage", "CuPy")
    else:
        import scipy.ndimage as nd
    return lambda: u + 0.1 * nd.laplace(u, mode="reflect")


def pypde_step(u):
    """py-pde's explicit Euler stepper (numba backend; always float64)."""
    if is_gpu_array(u):
        raise Unavailable("py-pde runs on the CPU")
    pde = need("pde", "py-pde")
    grid = pde.CartesianGrid([[0, n] for n in u.shape], list(u.shape))
    state = pde.ScalarField(grid, u.astype(np.float64))
    stepper = pde.EulerSolver(pde.DiffusionPDE(diffusivity=1.0), backend="numba").make_stepper(state, dt=0.1)
    clock = [0.0]

    def step():
        clock[0] = stepper(state, clock[0], clock[0] + 0.1)

    return step


# ---------------------------------------------------------------- heat: implicit step
def _banded(n):
    ab = np.zeros((3, n))
    ab[0, 1:] = ab[2, :-1] = -0.5
    ab[1] = 2.0
    ab[1, 0] = ab[1, -1] = 1.5
    return ab


def scipy_banded_adi(u):
    """One ``solve_banded`` call per axis over all lines (the ADI a SciPy user writes), 2-D."""
    if is_gpu_array(u) or u.ndim != 2:
        raise Unavailable("SciPy banded ADI reference: 2-D CPU only")
    from scipy.linalg import solve_banded

    ab0, ab1 = _banded(u.shape[0]), _banded(u.shape[1])

    def step():
        w = solve_banded((1, 1), ab0, u, check_finite=False)
        return solve_banded((1, 1), ab1, w.T, check_finite=False).T

    return step


def _cn_matrices(shape):
    import scipy.sparse as sp

    def lap1(n):
        m = sp.diags([np.ones(n - 1), -2 * np.ones(n), np.ones(n - 1)], [-1, 0, 1], format="lil")
        m[0, 0] = m[-1, -1] = -1
        return m

    n0, n1 = shape
    L = sp.kron(lap1(n0), sp.identity(n1)) + sp.kron(sp.identity(n0), lap1(n1))
    eye = sp.identity(n0 * n1)
    return (eye - 0.5 * L).tocsc(), (eye + 0.5 * L).tocsr()


#: The sparse references are 2-D only and capped in size (CG: seconds per step; splu: 15-35 s to factorise
#: at 1024², float64 only).
SPARSE_MAX_CELLS = 1024 * 1024


def scipy_cg(u):
    """A Crank–Nicolson step solved by ``scipy.sparse.linalg.cg`` (2-D)."""
    if is_gpu_array(u) or u.ndim != 2 or u.size > SPARSE_MAX_CELLS:
        raise Unavailable(f"SciPy CG reference: 2-D CPU, at most {SPARSE_MAX_CELLS} cells")
    import scipy.sparse.linalg as spla

    M, B = _cn_matrices(u.shape)
    flat = u.ravel().astype(np.float64)
    return lambda: spla.cg(M, B @ flat, x0=flat, rtol=1e-8)


def scipy_splu(u):
    """A Crank–Nicolson step solved with a sparse LU factorised once (2-D, float64)."""
    if is_gpu_array(u) or u.ndim != 2 or u.size > SPARSE_MAX_CELLS or u.dtype != np.float64:
        raise Unavailable(f"SciPy splu reference: 2-D CPU float64, at most {SPARSE_MAX_CELLS} cells")
    import scipy.sparse.linalg as spla

    M, B = _cn_matrices(u.shape)
    lu = spla.splu(M)  # factorised once; the per-step solve is timed
    flat = u.ravel()
    return lambda: lu.solve(B @ flat)


# ---------------------------------------------------------------- Perona–Malik
def medpy(u):
    """MedPy's ``anisotropic_diffusion`` (option 1: the exponential conductance)."""
    if is_gpu_array(u):
        raise Unavailable("MedPy runs on the CPU")
    sm = need("medpy.filter.smoothing", "MedPy")
    return lambda: sm.anisotropic_diffusion(u, niter=N_ITER, kappa=KAPPA, gamma=1 / (2 * u.ndim), option=1)


def simpleitk(u):
    """SimpleITK's ``GradientAnisotropicDiffusionImageFilter`` at ITK's stability limit."""
    if is_gpu_array(u):
        raise Unavailable("SimpleITK runs on the CPU")
    sitk = need("SimpleITK")
    img = sitk.GetImageFromArray(u)
    f = sitk.GradientAnisotropicDiffusionImageFilter()
    f.SetNumberOfIterations(N_ITER)
    f.SetTimeStep(0.5 ** (u.ndim + 1))  # ITK's stability limit
    f.SetConductanceParameter(1.0)
    return lambda: f.Execute(img)


def opencv_rgb(u):
    """OpenCV's ``ximgproc.anisotropicDiffusion`` (8-bit 3-channel images only)."""
    cv2 = need("cv2", "OpenCV")
    if not hasattr(cv2, "ximgproc"):
        raise Unavailable("OpenCV without the contrib modules (cv2.ximgproc)")
    rgb = rgb8(u)
    return lambda: cv2.ximgproc.anisotropicDiffusion(rgb, 0.25, KAPPA, N_ITER)


def ndimage_gaussian(u):
    """``N_ITER`` Catté pre-smoothings alone (``scipy.ndimage.gaussian_filter``, sigma 0.8): their share
    of a default-sigma iteration."""
    if is_gpu_array(u):
        raise Unavailable("scipy.ndimage runs on the CPU")
    import scipy.ndimage

    def run():
        for _ in range(N_ITER):
            scipy.ndimage.gaussian_filter(u, 0.8, mode="reflect")

    return run


def skimage_gaussian(u):
    """As :func:`ndimage_gaussian` with ``skimage.filters.gaussian`` (what a scikit-image user calls)."""
    if is_gpu_array(u):
        raise Unavailable("scikit-image runs on the CPU")
    filters = need("skimage.filters", "scikit-image")

    def run():
        for _ in range(N_ITER):
            filters.gaussian(u, sigma=0.8, mode="reflect", preserve_range=True)

    return run


# ---------------------------------------------------------------- IHDM's DCT blur (torch.fft)
def _dct(x):  # torch-dct's dct(norm="ortho") along the last axis (Makhoul via FFT)
    import torch

    n = x.shape[-1]
    v = torch.cat([x[..., ::2], x[..., 1::2].flip([-1])], dim=-1)
    vc = torch.view_as_real(torch.fft.fft(v, dim=-1))
    k = -torch.arange(n, dtype=x.dtype) * math.pi / (2 * n)
    out = vc[..., 0] * torch.cos(k) - vc[..., 1] * torch.sin(k)
    out[..., 0] /= math.sqrt(n) * 2
    out[..., 1:] /= math.sqrt(n / 2) * 2
    return 2 * out


def _idct(X):  # torch-dct's idct(norm="ortho")
    import torch

    n = X.shape[-1]
    Xv = (X / 2).clone()
    Xv[..., 0] *= math.sqrt(n) * 2
    Xv[..., 1:] *= math.sqrt(n / 2) * 2
    k = torch.arange(n, dtype=X.dtype) * math.pi / (2 * n)
    flipped = torch.cat([Xv[..., :1] * 0, -Xv.flip([-1])[..., :-1]], -1)
    Vr = Xv * torch.cos(k) - flipped * torch.sin(k)
    Vi = Xv * torch.sin(k) + flipped * torch.cos(k)
    v = torch.fft.irfft(torch.view_as_complex(torch.stack([Vr, Vi], -1)), n=n, dim=-1)
    x = v.new_zeros(v.shape)
    x[..., ::2] += v[..., : n - n // 2]
    x[..., 1::2] += v.flip([-1])[..., : n // 2]
    return x


def dct2(x):
    """Orthonormal 2-D DCT-II over the last two axes of a tensor (torch-dct's algorithm)."""
    return _dct(_dct(x).transpose(-1, -2)).transpose(-1, -2)


def idct2(x):
    """The inverse of :func:`dct2`."""
    return _idct(_idct(x).transpose(-1, -2)).transpose(-1, -2)


def ihdm_blur(x, t):
    """IHDM's DCTBlur: squared frequencies times ``t``, exponential decay, a DCT built from ``torch.fft``."""
    import torch

    n = x.shape[-1]
    freqs = math.pi * torch.linspace(0, n - 1, n, dtype=x.dtype) / n
    lam = freqs[None, :] ** 2 + freqs[:, None] ** 2
    return idct2(dct2(x) * torch.exp(-lam[None, None] * t[:, None, None, None]))


def ihdm_torch_dct(u):
    """IHDM's blur of the batch (the published torch approach ``heat_blur`` is compared with)."""
    if is_gpu_array(u):
        raise Unavailable("the torch cases run on CPU tensors")
    torch = need("torch", "PyTorch")
    x = torch.from_numpy(u)
    t = batch_times(u.shape[0]).to(x.dtype)
    return lambda: ihdm_blur(x, t)
