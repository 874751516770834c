"""The baselines that are always timed: the copy roofline and what a user writes by hand with NumPy/SciPy.

* the *roofline*: ``copyto`` of an array of the case's shape and dtype (one
  read and one write per cell), the bound of every memory-bound kernel;
* the *references*: NumPy's slicing step, the bare DCT pair (the spectral
  solve's and ``heat_blur``'s reference) and the pooled NumPy kappa formula
  that the fused estimate replaced.

GPU-capable factories use the array's own module (``cupyx.scipy.fft`` for CuPy arrays).
"""

from __future__ import annotations

import numpy as np

from ._spec import Unavailable, array_module, is_gpu_array, need
from ._workload import N_ITER


# ---------------------------------------------------------------- roofline
def copy(u):
    """``copyto`` of the same array: one read and one write per cell (the copy roofline)."""
    xp = array_module(u)
    v = xp.empty_like(u)
    return lambda: xp.copyto(v, u)


def copy_n(u):
    """``N_ITER`` copies: the roofline of ``N_ITER`` Perona–Malik iterations."""
    xp = array_module(u)
    v = xp.empty_like(u)

    def run():
        for _ in range(N_ITER):
            xp.copyto(v, u)

    return run


# ---------------------------------------------------------------- references
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


def fft_pair(u):
    """A bare orthonormal DCT-II / inverse pair (``scipy.fft``; ``cupyx.scipy.fft`` for CuPy arrays)."""
    if is_gpu_array(u):
        fft = need("cupyx.scipy.fft", "CuPy")
        kw = {"type": 2, "norm": "ortho"}
    else:
        import scipy.fft as fft

        kw = {"type": 2, "norm": "ortho", "workers": -1}
    return lambda: fft.idctn(fft.dctn(u, **kw), overwrite_x=True, **kw)


def scipy_fft_pair_batch(u):
    """The DCT pair over the last two axes of a batch, called directly (``heat_blur``'s reference)."""
    import scipy.fft

    kw = {"type": 2, "norm": "ortho", "axes": (-2, -1), "workers": -1}
    return lambda: scipy.fft.idctn(scipy.fft.dctn(u, **kw), overwrite_x=True, **kw)


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
