"""pdediff's own cases, through the public API: heat solvers, Perona–Malik, the kappa estimate, the torch bridge.

Each factory takes the input array and returns the zero-argument callable that
is timed (:class:`~pdediff.bench._spec.Impl`); the GPU-capable ones run the
same calls on CuPy arrays, since the API dispatches on the array type.
"""

from __future__ import annotations

import pdediff

from ._spec import Unavailable, array_module, is_gpu_array, need
from ._workload import BLOCK_STEPS, KAPPA, N_ITER, batch_times, rgb8


# ---------------------------------------------------------------- heat
def pdediff_explicit(u):
    """One explicit step, out of place like the references (``step(u, n)`` in place adds a copy-back
    for odd ``n``; in a loop of many steps it is amortised away)."""
    s = pdediff.ExplicitHeatSolver(u.shape, u.dtype, dt=0.1)
    out = array_module(u).empty_like(u)
    return lambda: s.apply_operator(u, out, 0.1)


def pdediff_explicit_block(u):
    """``step(w, BLOCK_STEPS)`` in place: what temporal blocking speeds up."""
    s = pdediff.ExplicitHeatSolver(u.shape, u.dtype, dt=0.1)
    w = u.copy()
    return lambda: s.step(w, BLOCK_STEPS)


def pdediff_adi(u):
    """One Crank–Nicolson ADI step in place (the factorisation is done before the timing)."""
    s = pdediff.ImplicitHeatSolver(u.shape, u.dtype, dt=1.0)
    w = u.copy()
    s.step(w, 1)  # factorise outside the timing
    return lambda: s.step(w, 1)


def pdediff_spectral(u):
    """The spectral solve to ``t = 1`` (a DCT pair and a multiplication)."""
    s = pdediff.SpectralHeatSolver(u.shape, u.dtype)
    return lambda: s.evolve(u, 1.0)


# ---------------------------------------------------------------- Perona–Malik
def _perona_malik(u, **kw):
    return lambda: pdediff.perona_malik(u, num_iter=N_ITER, kappa=KAPPA, check_finite=False, **kw)


def pdediff_exponential(u):
    """``N_ITER`` explicit iterations, exponential conductance, no pre-smoothing."""
    return _perona_malik(u, sigma=0.0)


def pdediff_rational(u):
    """As :func:`pdediff_exponential` with the rational conductance."""
    return _perona_malik(u, sigma=0.0, conductance="rational")


def pdediff_exponential_sigma(u):
    """The exponential conductance with the default Catté pre-smoothing (sigma 0.8 cells)."""
    return _perona_malik(u)


def pdediff_rational_sigma(u):
    """The rational conductance with the default Catté pre-smoothing."""
    return _perona_malik(u, conductance="rational")


def pdediff_aos(u):
    """``N_ITER`` AOS iterations (semi-implicit: one tridiagonal solve per axis), no pre-smoothing."""
    return _perona_malik(u, sigma=0.0, method="aos")


def pdediff_rgb(u):
    """pdediff on OpenCV's 3-channel image (one shared conductance, ``channel_axis``)."""
    rgb = rgb8(u).astype("float32")
    return lambda: pdediff.perona_malik(rgb, num_iter=N_ITER, kappa=KAPPA, sigma=0.0, channel_axis=-1,
                                        check_finite=False)


# ---------------------------------------------------------------- kappa="auto"
def kappa_fused(u):
    """``N_ITER`` fused median/MAD estimates of kappa (:func:`pdediff.estimate_kappa`)."""
    v, h = u[None], (1.0,) * u.ndim

    def run():
        for _ in range(N_ITER):
            pdediff.estimate_kappa(v, h)

    return run


def _kappa_iteration(u, sigma):
    k = pdediff.estimate_kappa(u[None], (1.0,) * u.ndim)
    return lambda: pdediff.perona_malik(u, num_iter=N_ITER, kappa=k, sigma=sigma, check_finite=False)


def iteration_sigma0(u):
    """``N_ITER`` iterations with the estimated kappa, sigma 0 (what the estimate is compared with)."""
    return _kappa_iteration(u, 0.0)


def iteration_sigma08(u):
    """As :func:`iteration_sigma0` with the default pre-smoothing (sigma 0.8)."""
    return _kappa_iteration(u, 0.8)


def pdediff_kappa_auto(u):
    """A default call with ``kappa="auto"``: estimate, then ``N_ITER`` iterations."""
    return lambda: pdediff.perona_malik(u, num_iter=N_ITER, kappa="auto", check_finite=False)


# ---------------------------------------------------------------- torch bridge
def pdediff_heat_blur(u):
    """:func:`pdediff.torch.heat_blur` on the batch, a diffusion time per image."""
    if is_gpu_array(u):
        raise Unavailable("the torch cases run on CPU tensors")
    torch = need("torch", "PyTorch")
    from pdediff.torch import heat_blur

    x = torch.from_numpy(u)
    t = batch_times(u.shape[0])
    return lambda: heat_blur(x, t)


def pdediff_torch_pm(u):
    """``pdediff.torch.perona_malik`` on the batch (``N_ITER`` iterations, sigma 0)."""
    if is_gpu_array(u):
        raise Unavailable("the torch cases run on CPU tensors")
    torch = need("torch", "PyTorch")
    from pdediff.torch import perona_malik

    x = torch.from_numpy(u)
    return lambda: perona_malik(x, num_iter=N_ITER, kappa=0.1, sigma=0.0, check_finite=False)
