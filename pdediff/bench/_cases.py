"""What is timed: the cases shared by ``pdediff bench`` and the pytest-benchmark suite (``make bench``).

A *case* is one implementation (:class:`Impl`) in one *group* (:class:`Group`)
at one shape and dtype.  An implementation is a factory ``make(u) -> fn``: it
does the setup (solver construction, factorisation, peer objects) outside the
timing and returns the zero-argument callable that is timed.  A factory
raises :class:`Unavailable` (with the reason) when its library is missing or
the case does not apply (e.g. OpenCV on a volume); ``pdediff bench`` reports
those as skipped, the pytest files turn them into ``pytest.skip``.

Factories marked for the GPU are written against the array's own module
(NumPy or CuPy): pdediff's public API dispatches on the array type, and the
copy, the ``ndimage`` step and the FFT pair use ``cupyx`` for CuPy arrays.

:data:`RATIOS` lists the within-run comparisons (peer / pdediff and pdediff
internal ratios, each with its target) and :data:`TARGETS` the performance
targets of issue 12; both are evaluated by ``pdediff bench`` and the former
also by the pytest harness (``benchmarks/conftest.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import pdediff

#: Perona–Malik iterations per timed call (every tool runs the same number, so ratios are per iteration).
N_ITER = 5
#: Edge threshold of the Perona–Malik cases (images scaled to 0..255).
KAPPA = 20.0
#: Steps of the temporal-blocking case ``ExplicitHeatSolver.step(u, n)`` (issue 12: n >= 8).
BLOCK_STEPS = 8


class Unavailable(Exception):
    """A case cannot run here: a peer library is missing, or the case does not apply to this shape."""


# ---------------------------------------------------------------- array modules
def is_gpu_array(u: Any) -> bool:
    return type(u).__module__.split(".")[0] == "cupy"


def _xp(u: Any):
    if is_gpu_array(u):
        import cupy

        return cupy
    return np


def _need(module: str, what: str | None = None):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise Unavailable(f"{what or module} is not installed") from None


# ---------------------------------------------------------------- data
def _random(shape, dtype, xp=np, scale=1.0):
    host = np.random.default_rng(0).random(shape)
    if scale != 1.0:
        host = host * scale
    return xp.asarray(host.astype(dtype))


def heat_data(shape, dtype, xp=np):
    """Uniform noise in [0, 1): the heat cases' input."""
    return _random(shape, dtype, xp)


def pm_data(shape, dtype, xp=np):
    """Uniform noise in [0, 255): the Perona–Malik cases' input (``KAPPA`` is in these units)."""
    return _random(shape, dtype, xp, 255.0)


def kappa_data(shape, dtype, xp=np):
    """A smooth field plus 5 % noise: gradients whose median/MAD are not degenerate."""
    import scipy.ndimage

    rng = np.random.default_rng(0)
    img = scipy.ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
    return xp.asarray((img + 0.05 * rng.standard_normal(img.shape)).astype(dtype))


def torch_data(shape, dtype, xp=np):
    """A batch ``(B, 1, H, W)`` in [0, 1) (``xp`` unused: tensors are made by the factories)."""
    return _random(shape, dtype, np)


# ---------------------------------------------------------------- roofline
def copy(u):
    """``copyto`` of the same array: one read and one write per cell (the copy roofline)."""
    xp = _xp(u)
    v = xp.empty_like(u)
    return lambda: xp.copyto(v, u)


def copy_n(u):
    """``N_ITER`` copies: the roofline of ``N_ITER`` Perona–Malik iterations."""
    xp = _xp(u)
    v = xp.empty_like(u)

    def run():
        for _ in range(N_ITER):
            xp.copyto(v, u)

    return run


# ---------------------------------------------------------------- heat: explicit
def pdediff_explicit(u):
    """One explicit step, out of place like the references (``step(u, n)`` in place adds a copy-back
    for odd ``n``; in a loop of many steps it is amortised away)."""
    s = pdediff.ExplicitHeatSolver(u.shape, u.dtype, dt=0.1)
    out = _xp(u).empty_like(u)
    return lambda: s.apply_operator(u, out, 0.1)


def pdediff_explicit_block(u):
    """``step(w, BLOCK_STEPS)`` in place: what temporal blocking (issue 12) speeds up."""
    s = pdediff.ExplicitHeatSolver(u.shape, u.dtype, dt=0.1)
    w = u.copy()
    return lambda: s.step(w, BLOCK_STEPS)


def numpy_step(u):
    """What a user writes: pad with the Neumann ghost and add shifted slices."""
    if is_gpu_array(u):
        raise Unavailable("NumPy reference runs on the CPU")
    inner = tuple(slice(1, -1) for _ in range(u.ndim))

    def shifted(p, a, k):
        sl = list(inner)
        sl[a] = slice(1 + k, p.shape[a] - 1 + k)
        return p[tuple(sl)]

    def step():
        p = np.pad(u, 1, mode="edge")
        lap = sum(shifted(p, a, -1) + shifted(p, a, 1) for a in range(u.ndim)) - 2 * u.ndim * u
        return u + 0.1 * lap

    return step


def ndimage_step(u):
    """``u + 0.1 * laplace(u)`` with ``scipy.ndimage`` (``cupyx.scipy.ndimage`` for CuPy arrays)."""
    if is_gpu_array(u):
        nd = _need("cupyx.scipy.ndimage", "CuPy")
    else:
        import scipy.ndimage as nd
    return lambda: u + 0.1 * nd.laplace(u, mode="reflect")


def pypde_step(u):
    """py-pde's explicit Euler stepper (numba backend; always float64)."""
    if is_gpu_array(u):
        raise Unavailable("py-pde runs on the CPU")
    pde = _need("pde", "py-pde")
    grid = pde.CartesianGrid([[0, n] for n in u.shape], list(u.shape))
    state = pde.ScalarField(grid, u.astype(np.float64))
    stepper = pde.EulerSolver(pde.DiffusionPDE(diffusivity=1.0), backend="numba").make_stepper(state, dt=0.1)
    clock = [0.0]

    def step():
        clock[0] = stepper(state, clock[0], clock[0] + 0.1)

    return step


# ---------------------------------------------------------------- heat: ADI and its references
def pdediff_adi(u):
    s = pdediff.ImplicitHeatSolver(u.shape, u.dtype, dt=1.0)
    w = u.copy()
    s.step(w, 1)  # factorise outside the timing
    return lambda: s.step(w, 1)


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
    if is_gpu_array(u) or u.ndim != 2 or u.size > SPARSE_MAX_CELLS:
        raise Unavailable(f"SciPy CG reference: 2-D CPU, at most {SPARSE_MAX_CELLS} cells")
    import scipy.sparse.linalg as spla

    M, B = _cn_matrices(u.shape)
    flat = u.ravel().astype(np.float64)
    return lambda: spla.cg(M, B @ flat, x0=flat, rtol=1e-8)


def scipy_splu(u):
    if is_gpu_array(u) or u.ndim != 2 or u.size > SPARSE_MAX_CELLS or u.dtype != np.float64:
        raise Unavailable(f"SciPy splu reference: 2-D CPU float64, at most {SPARSE_MAX_CELLS} cells")
    import scipy.sparse.linalg as spla

    M, B = _cn_matrices(u.shape)
    lu = spla.splu(M)  # factorised once; the per-step solve is timed
    flat = u.ravel()
    return lambda: lu.solve(B @ flat)


# ---------------------------------------------------------------- heat: spectral
def fft_pair(u):
    """A bare orthonormal DCT-II / inverse pair (``scipy.fft``; ``cupyx.scipy.fft`` for CuPy arrays)."""
    if is_gpu_array(u):
        fft = _need("cupyx.scipy.fft", "CuPy")
        kw = {"type": 2, "norm": "ortho"}
    else:
        import scipy.fft as fft

        kw = {"type": 2, "norm": "ortho", "workers": -1}
    return lambda: fft.idctn(fft.dctn(u, **kw), overwrite_x=True, **kw)


def pdediff_spectral(u):
    s = pdediff.SpectralHeatSolver(u.shape, u.dtype)
    return lambda: s.evolve(u, 1.0)


# ---------------------------------------------------------------- Perona–Malik
def _pm(**kw):
    def make(u):
        return lambda: pdediff.perona_malik(u, num_iter=N_ITER, kappa=KAPPA, check_finite=False, **kw)

    return make


pdediff_exponential = _pm(sigma=0.0)
pdediff_rational = _pm(sigma=0.0, conductance="rational")
pdediff_exponential_sigma = _pm()  # default Catté sigma (0.8 cells)
pdediff_rational_sigma = _pm(conductance="rational")
pdediff_aos = _pm(sigma=0.0, method="aos")


def medpy(u):
    if is_gpu_array(u):
        raise Unavailable("MedPy runs on the CPU")
    sm = _need("medpy.filter.smoothing", "MedPy")
    return lambda: sm.anisotropic_diffusion(u, niter=N_ITER, kappa=KAPPA, gamma=1 / (2 * u.ndim), option=1)


def simpleitk(u):
    if is_gpu_array(u):
        raise Unavailable("SimpleITK runs on the CPU")
    sitk = _need("SimpleITK")
    img = sitk.GetImageFromArray(u)
    f = sitk.GradientAnisotropicDiffusionImageFilter()
    f.SetNumberOfIterations(N_ITER)
    f.SetTimeStep(0.5 ** (u.ndim + 1))  # ITK's stability limit
    f.SetConductanceParameter(1.0)
    return lambda: f.Execute(img)


def _rgb8(u):
    if is_gpu_array(u) or u.ndim != 2:
        raise Unavailable("OpenCV's anisotropicDiffusion: 2-D CPU images only")
    return np.repeat(np.clip(u, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def opencv_rgb(u):
    cv2 = _need("cv2", "OpenCV")
    if not hasattr(cv2, "ximgproc"):
        raise Unavailable("OpenCV without the contrib modules (cv2.ximgproc)")
    rgb = _rgb8(u)
    return lambda: cv2.ximgproc.anisotropicDiffusion(rgb, 0.25, KAPPA, N_ITER)


def pdediff_rgb(u):
    """pdediff on OpenCV's 3-channel image (one shared conductance, ``channel_axis``)."""
    rgb = _rgb8(u).astype(np.float32)
    return lambda: pdediff.perona_malik(rgb, num_iter=N_ITER, kappa=KAPPA, sigma=0.0, channel_axis=-1,
                                        check_finite=False)


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
    filters = _need("skimage.filters", "scikit-image")

    def run():
        for _ in range(N_ITER):
            filters.gaussian(u, sigma=0.8, mode="reflect", preserve_range=True)

    return run


# ---------------------------------------------------------------- kappa="auto"
def kappa_fused(u):
    v, h = u[None], (1.0,) * u.ndim

    def run():
        for _ in range(N_ITER):
            pdediff.estimate_kappa(v, h)

    return run


#: The pooled-array NumPy formula takes seconds and GBs above this size.
KAPPA_NUMPY_MAX_CELLS = 2**21


def kappa_numpy_formula(u):
    """The pooled float64 NumPy formula the fused estimate replaced."""
    if is_gpu_array(u) or u.size > KAPPA_NUMPY_MAX_CELLS:
        raise Unavailable(f"NumPy kappa formula: CPU, at most {KAPPA_NUMPY_MAX_CELLS} cells")
    v, h = u[None], (1.0,) * u.ndim

    def run():
        for _ in range(N_ITER):
            s = np.concatenate([np.sqrt(np.sum((np.diff(v, axis=a + 1) / hh).astype(np.float64) ** 2, axis=0)).ravel()
                                for a, hh in enumerate(h)])
            med = np.median(s)
            np.median(np.abs(s - med))

    return run


def _kappa_iteration(sigma):
    def make(u):
        k = pdediff.estimate_kappa(u[None], (1.0,) * u.ndim)
        return lambda: pdediff.perona_malik(u, num_iter=N_ITER, kappa=k, sigma=sigma, check_finite=False)

    return make


iteration_sigma0 = _kappa_iteration(0.0)
iteration_sigma08 = _kappa_iteration(0.8)


def pdediff_kappa_auto(u):
    """A default call with ``kappa="auto"``: estimate, then ``N_ITER`` iterations."""
    return lambda: pdediff.perona_malik(u, num_iter=N_ITER, kappa="auto", check_finite=False)


# ---------------------------------------------------------------- torch bridge
def _torch():
    return _need("torch", "PyTorch")


def _batch_times(b):
    torch = _torch()
    return torch.rand(b, generator=torch.Generator().manual_seed(1)) * 20


def pdediff_heat_blur(u):
    if is_gpu_array(u):
        raise Unavailable("the torch cases run on CPU tensors")
    _torch()
    import torch

    from pdediff.torch import heat_blur

    x = torch.from_numpy(u)
    t = _batch_times(u.shape[0])
    return lambda: heat_blur(x, t)


def scipy_fft_pair_batch(u):
    """The same DCT pair called on the batch directly."""
    import scipy.fft

    kw = {"type": 2, "norm": "ortho", "axes": (-2, -1), "workers": -1}
    return lambda: scipy.fft.idctn(scipy.fft.dctn(u, **kw), overwrite_x=True, **kw)


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
    return _dct(_dct(x).transpose(-1, -2)).transpose(-1, -2)


def idct2(x):
    return _idct(_idct(x).transpose(-1, -2)).transpose(-1, -2)


def ihdm_blur(x, t):
    """IHDM's DCTBlur: squared frequencies times ``t``, exponential decay, a DCT built from ``torch.fft``."""
    import torch

    n = x.shape[-1]
    freqs = math.pi * torch.linspace(0, n - 1, n, dtype=x.dtype) / n
    lam = freqs[None, :] ** 2 + freqs[:, None] ** 2
    return idct2(dct2(x) * torch.exp(-lam[None, None] * t[:, None, None, None]))


def ihdm_torch_dct(u):
    if is_gpu_array(u):
        raise Unavailable("the torch cases run on CPU tensors")
    torch = _torch()
    x = torch.from_numpy(u)
    t = _batch_times(u.shape[0]).to(x.dtype)
    return lambda: ihdm_blur(x, t)


def pdediff_torch_pm(u):
    """``pdediff.torch.perona_malik`` on the batch (``N_ITER`` iterations, sigma 0)."""
    if is_gpu_array(u):
        raise Unavailable("the torch cases run on CPU tensors")
    torch = _torch()
    from pdediff.torch import perona_malik

    x = torch.from_numpy(u)
    return lambda: perona_malik(x, num_iter=N_ITER, kappa=0.1, sigma=0.0, check_finite=False)


# ---------------------------------------------------------------- torch + pdediff threads in one process
#: The model of the training-step cases: ``pdediff train``'s UNet (:func:`pdediff.torch.train_run`'s defaults).
TRAIN_UNET = {"base": 32, "mults": (1, 2), "num_res_blocks": 1}


class _TrainStep:
    """One training step of a cold-diffusion Perona–Malik model, as :func:`pdediff.torch.train` takes it.

    ``pdediff train``'s ``cold-pm`` process at the batch's image size (:func:`pdediff.torch.make_process`:
    50 levels, ``kappa = 1``, its iterations per level) and UNet (:data:`TRAIN_UNET`), the batch mapped to
    [-1, 1], timesteps drawn once (seeded, so every call does the same work): the forward degradation by
    pdediff's Perona–Malik kernels, then forward, backward and an Adam step in torch's own thread pool.
    :meth:`degrade` and :meth:`model` are its two parts alone (the latter on a degraded batch computed once).
    Global RNG state is left as it was.
    """

    def __init__(self, u):
        if is_gpu_array(u):
            raise Unavailable("the torch cases run on CPU tensors")
        torch = _torch()
        from pdediff.torch import UNet, make_process

        self.F = torch.nn.functional
        self.x0 = torch.from_numpy(u) * 2 - 1
        n = u.shape[0]
        self.process = make_process("cold-pm", image_size=u.shape[-2:])
        gen = torch.Generator().manual_seed(0)
        self.t = self.process.sample_timesteps(n, gen)
        self.noise = torch.randn(u.shape, generator=gen, dtype=self.x0.dtype)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.net = UNet(u.shape[1], **TRAIN_UNET).train()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-4)
        self.xt = self.degrade()

    def degrade(self):
        return self.process.add_noise(self.x0, self.noise, self.t)

    def model(self, xt=None):
        p = self.process
        xt = self.xt if xt is None else xt
        out = self.net(p.scale_model_input(xt, self.t), self.t)
        loss = self.F.mse_loss(out, p.training_target(self.x0, self.noise, self.t))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def step(self):
        self.model(self.degrade())


def _serial_kernels(fn):
    """``fn`` with pdediff's CPU kernels forced serial for each call (the threading policy restored after)."""
    from pdediff.kernels.cpu import _common

    def run():
        old = _common.set_threading("serial")
        try:
            return fn()
        finally:
            _common._POLICY = old  # the very object: an adaptive policy keeps its estimates

    return run


def torch_train_step(u):
    """A training step with pdediff's threading as configured (adaptive by default) next to torch's pool."""
    return _TrainStep(u).step


def torch_train_step_serial(u):
    """The same step with pdediff's kernels serial: torch's pool alone has the cores."""
    return _serial_kernels(_TrainStep(u).step)


def torch_train_degrade(u):
    """The step's forward degradation alone (pdediff's Perona–Malik kernels)."""
    return _TrainStep(u).degrade


def torch_train_model(u):
    """The step's torch part alone: forward, backward and Adam step on a batch degraded once."""
    return _TrainStep(u).model


# ---------------------------------------------------------------- registry
@dataclass(frozen=True)
class Impl:
    """One implementation.

    ``kind``: ``"pdediff"`` (ours; timed at every thread count), ``"roofline"``
    (the copy), ``"reference"`` (always timed: NumPy's step and kappa formula,
    the bare FFT pairs) or ``"peer"`` (another library, with ``--peers``).
    Byte model: one call moves ``passes * 2 * itemsize * cells * steps`` bytes
    (a *pass* reads and writes the field once; the compulsory traffic of an
    ideal kernel, not what a cache simulator would count).
    """

    make: Callable[[Any], Callable[[], Any]]
    label: str
    kind: str = "pdediff"
    library: str = "pdediff"
    passes: float = 1.0
    steps: int = 1
    rounds: int = 5
    channels: int = 1
    gpu: bool = False
    gpu_library: str | None = None

    @property
    def name(self) -> str:
        return self.make.__name__


def _named(fn, name):
    fn.__name__ = name
    fn.__qualname__ = name
    return fn


# The closures made by _pm / _kappa_iteration take the names they are bound to (the case ids).
for _name in ("pdediff_exponential", "pdediff_rational", "pdediff_exponential_sigma", "pdediff_rational_sigma",
              "pdediff_aos", "iteration_sigma0", "iteration_sigma08"):
    globals()[_name] = _named(globals()[_name], _name)


@dataclass(frozen=True)
class Group:
    """Implementations timed on the same data; ratios are taken within a group."""

    name: str
    suite: str  # what ``--only`` selects: heat, pm or torch
    shapes: tuple[tuple[int, ...], ...]
    quick_shapes: tuple[tuple[int, ...], ...]
    impls: tuple[Impl, ...]
    data: Callable[..., Any]
    dtypes: tuple[str, ...] = ("float32", "float64")
    takes_sizes: bool = True  # --sizes replaces ``shapes`` (the torch batch keeps its own)


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
    # torch's and pdediff's thread pools in one process (issue 12): a cold-diffusion PM training step with
    # pdediff's threads and with its kernels serial, and its two parts alone (the step should cost no more
    # than their sum).  Byte model nominal (one pass over the batch).
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
    for g in GROUPS:
        if g.name == name:
            return g
    raise KeyError(name)


def impl(group_name: str, impl_name: str) -> Impl:
    for i in group(group_name).impls:
        if i.name == impl_name:
            return i
    raise KeyError(impl_name)


def shape_name(shape: tuple[int, ...]) -> str:
    """``(1024, 1024) -> "2d-1024"`` for cubes, ``"2d-512x1024"`` otherwise (the pytest ids)."""
    dims = len(shape)
    if dims == 4:  # the torch batch
        return "x".join(map(str, shape))
    body = str(shape[0]) if len(set(shape)) == 1 else "x".join(map(str, shape))
    return f"{dims}d-{body}"


# ---------------------------------------------------------------- ratios and targets
@dataclass(frozen=True)
class Ratio:
    """``(num time per step) / (den time per step)`` within ``group``; ``target`` with its direction.

    ``num`` and ``den`` name an implementation, or several joined by ``+`` (the sum of their times).
    """

    label: str
    group: str
    num: str
    den: str
    target: float | None = None
    higher_is_better: bool = True

    def meets(self, value: float) -> bool | None:
        if self.target is None:
            return None
        return value >= self.target if self.higher_is_better else value <= self.target


RATIOS: tuple[Ratio, ...] = (
    Ratio("copy / explicit step (roofline)", "heat-explicit", "copy", "pdediff_explicit", 0.7),
    Ratio("NumPy step / pdediff step", "heat-explicit", "numpy_step", "pdediff_explicit", 10),
    Ratio("ndimage.laplace step / pdediff step", "heat-explicit", "ndimage_step", "pdediff_explicit"),
    Ratio("py-pde step / pdediff step", "heat-explicit", "pypde_step", "pdediff_explicit", 20),
    Ratio(f"{BLOCK_STEPS} single steps / step(u, {BLOCK_STEPS})", "heat-explicit", "pdediff_explicit",
          "pdediff_explicit_block", 2),
    Ratio("ADI step / explicit step", "heat-adi", "pdediff_adi", "pdediff_explicit", 3, higher_is_better=False),
    Ratio("solve_banded ADI / pdediff ADI", "heat-adi", "scipy_banded_adi", "pdediff_adi"),
    Ratio("scipy CG step / pdediff ADI", "heat-adi", "scipy_cg", "pdediff_adi", 20),
    Ratio("scipy splu solve / pdediff ADI", "heat-adi", "scipy_splu", "pdediff_adi", 20),
    Ratio("spectral solve / transform pair", "heat-spectral", "pdediff_spectral", "fft_pair", 1.2,
          higher_is_better=False),
    Ratio("MedPy / pdediff (exponential)", "pm", "medpy", "pdediff_exponential", 5),
    Ratio("SimpleITK / pdediff (exponential)", "pm", "simpleitk", "pdediff_exponential", 30),
    Ratio("copy / pdediff rational (roofline)", "pm", "copy_n", "pdediff_rational", 0.5),
    Ratio("OpenCV 3-ch / pdediff 3-ch", "pm", "opencv_rgb", "pdediff_rgb", 1),
    Ratio("AOS step / explicit step", "pm", "pdediff_aos", "pdediff_exponential", 4, higher_is_better=False),
    Ratio("default sigma / sigma=0 (exponential)", "pm", "pdediff_exponential_sigma", "pdediff_exponential", 1.5,
          higher_is_better=False),
    Ratio("ndimage gaussian / default-sigma iteration", "pm", "ndimage_gaussian", "pdediff_exponential_sigma"),
    Ratio("skimage gaussian / default-sigma iteration", "pm", "skimage_gaussian", "pdediff_exponential_sigma"),
    Ratio("kappa estimate / iteration (sigma=0)", "pm-kappa", "kappa_fused", "iteration_sigma0", 2,
          higher_is_better=False),
    Ratio("kappa estimate / iteration (sigma=0.8)", "pm-kappa", "kappa_fused", "iteration_sigma08", 2,
          higher_is_better=False),
    Ratio("NumPy formula / fused kappa estimate", "pm-kappa", "kappa_numpy_formula", "kappa_fused"),
    Ratio("heat_blur / scipy dctn+idctn", "torch", "pdediff_heat_blur", "scipy_fft_pair_batch", 1.5,
          higher_is_better=False),
    Ratio("IHDM torch-fft DCT blur / heat_blur", "torch", "ihdm_torch_dct", "pdediff_heat_blur", 1.0),
    # pdediff's threads must not slow torch's training step (fair share of the cores) ...
    Ratio("training step: pdediff threads / pdediff serial", "torch-train", "torch_train_step",
          "torch_train_step_serial", 1.0, higher_is_better=False),
    # ... nor the two pools each other: the step against its parts timed alone ("a+b": a sum of impls)
    Ratio("training step / (degradation + torch part, alone)", "torch-train", "torch_train_step",
          "torch_train_degrade+torch_train_model", 1.1, higher_is_better=False),
)


@dataclass(frozen=True)
class Target:
    """One performance target of issue 12, evaluated at every measured shape and dtype it applies to.

    ``kind``: ``"ratio"`` (``num / den`` per step, both from ``group`` on
    ``device``), ``"roofline"`` (``num``'s GB/s over the copy's), ``"cross"``
    (CPU ``num`` / GPU ``num``, per step) or ``"load"`` (the slowest pdediff
    kernel under load over its serial time on the quiet machine).
    """

    key: str
    label: str
    kind: str
    group: str
    num: str
    den: str | None
    threshold: float
    higher_is_better: bool
    dtypes: tuple[str, ...] | None = None
    issue_shapes: tuple[tuple[int, ...], ...] = ()
    device: str = "cpu"
    needs: str = ""  # what a run must include to measure it

    def meets(self, value: float) -> bool:
        return value >= self.threshold if self.higher_is_better else value <= self.threshold


_S2048, _S4096, _S1024, _C256 = (2048, 2048), (4096, 4096), (1024, 1024), (256,) * 3

TARGETS: tuple[Target, ...] = (
    Target("pm-default-sigma", "default-sigma PM iteration / sigma=0 iteration", "ratio", "pm",
           "pdediff_exponential_sigma", "pdediff_exponential", 1.5, False, issue_shapes=(_S2048, _C256)),
    Target("adi", "ADI step / explicit step", "ratio", "heat-adi", "pdediff_adi", "pdediff_explicit", 3, False,
           issue_shapes=(_S1024, _S4096, _C256)),
    Target("aos", "AOS PM step / explicit PM step", "ratio", "pm", "pdediff_aos", "pdediff_exponential", 4, False,
           issue_shapes=(_S2048, _C256)),
    Target("temporal-blocking", f"throughput of step(u, {BLOCK_STEPS}) / {BLOCK_STEPS} single steps", "ratio",
           "heat-explicit", "pdediff_explicit", "pdediff_explicit_block", 2, True, dtypes=("float32",),
           issue_shapes=(_S4096, _C256)),
    Target("pm-rational-roofline", "rational PM throughput / copy roofline", "roofline", "pm", "pdediff_rational",
           None, 0.5, True, issue_shapes=(_S2048, _C256)),
    Target("pypde-f64", "py-pde step / pdediff explicit step (float64)", "ratio", "heat-explicit", "pypde_step",
           "pdediff_explicit", 20, True, dtypes=("float64",), issue_shapes=(_S1024, _S4096, (128,) * 3, _C256),
           needs="--peers"),
    Target("simpleitk-f64", "SimpleITK / pdediff PM iteration (float64)", "ratio", "pm", "simpleitk",
           "pdediff_exponential", 30, True, dtypes=("float64",), issue_shapes=((512, 512), _S2048, (128,) * 3, _C256),
           needs="--peers"),
    Target("load", "slowest kernel under load / its quiet serial time", "load", "", "", None, 1.3, False,
           needs="--load"),
    Target("gpu-explicit-roofline", "GPU explicit step / device copy bandwidth", "roofline", "heat-explicit",
           "pdediff_explicit", None, 0.7, True, issue_shapes=(_S4096, _C256), device="gpu", needs="a GPU"),
    Target("gpu-spectral", "GPU spectral solve / CuPy FFT pair", "ratio", "heat-spectral", "pdediff_spectral",
           "fft_pair", 1.2, False, issue_shapes=(_S4096, _C256), device="gpu", needs="a GPU"),
    Target("gpu-pm-vs-cpu", "CPU PM iteration / GPU PM iteration", "cross", "pm", "pdediff_exponential", None, 50,
           True, issue_shapes=(_S4096,), device="gpu", needs="a GPU"),
)


@dataclass
class Case:
    """One planned measurement (filled by :mod:`pdediff.bench`)."""

    group: Group
    impl: Impl
    shape: tuple[int, ...]
    dtype: str
    device: str
    threads: int | None
    extra: dict = field(default_factory=dict)
