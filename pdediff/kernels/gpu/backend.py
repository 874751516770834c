"""The GPU backend: numba.cuda kernels on CuPy device memory, CuPy FFT, no host round trips.

Same methods as :class:`pdediff.kernels.cpu.backend.CPUBackend`; the solvers
never know which one they drive.  Kernels launch on CuPy's current stream
(numba.cuda is handed CuPy arrays through ``__cuda_array_interface__``).
"""

from __future__ import annotations

import functools
import math

import numpy as np


__all__ = ["GPUBackend", "get_gpu_backend"]


def _require():
    try:
        import cupy
        import cupyx.scipy.fft
        import cupyx.scipy.ndimage
        from numba import cuda
    except ImportError as exc:
        raise ImportError(f'GPU arrays need the GPU extra: pip install "pdediff[gpu]" ({exc})') from None
    try:
        ok = cuda.is_available()
    except Exception:  # noqa: BLE001 - driver errors come in many types
        ok = False
    if not ok:
        raise RuntimeError("CuPy arrays were given but no CUDA GPU is available to numba.cuda")
    return cupy, cupyx.scipy.fft, cupyx.scipy.ndimage, cuda


def _grid(shape, block):
    return tuple(math.ceil(s / b) for s, b in zip(shape, block))


class GPUBackend:
    name = "gpu"
    fft_kwargs: dict = {}

    def __init__(self, *, simulate: bool = False) -> None:
        from . import kernels

        self.simulate = simulate
        if simulate:
            # Under NUMBA_ENABLE_CUDASIM=1 the same launch code drives the kernels on NumPy
            # arrays: how CI exercises this class without a GPU.
            import scipy.fft
            import scipy.ndimage
            from numba import cuda

            import numba

            if not numba.config.ENABLE_CUDASIM:
                raise RuntimeError("simulate=True needs NUMBA_ENABLE_CUDASIM=1")
            self.xp, self.fft, self._ndi, self._cuda = np, scipy.fft, scipy.ndimage, cuda
        else:
            self.xp, self.fft, self._ndi, self._cuda = _require()
        self.k = kernels

    def _stream(self):
        if self.simulate:
            return 0
        return self._cuda.external_stream(self.xp.cuda.get_current_stream().ptr)

    # -- explicit heat step ----------------------------------------------------
    def heat_step(self, u, out, dt, ih2, bcs, beta=1.0, faces=None):
        t = u.dtype.type
        st = self._stream()
        if u.ndim == 2:
            block = (16, 16)
            g = _grid(u.shape, block)
            if faces is None:
                self.k.heat2_const[g, block, st](u, out, t(dt), t(beta), *(t(c) for c in ih2), *bcs)
            else:
                self.k.heat2_var[g, block, st](u, out, *faces, t(dt), t(beta), *(t(c) for c in ih2), *bcs)
        else:
            block = (4, 8, 32)
            g = _grid(u.shape, block)
            if faces is None:
                self.k.heat3_const[g, block, st](u, out, t(dt), t(beta), *(t(c) for c in ih2), *bcs)
            else:
                self.k.heat3_var[g, block, st](u, out, *faces, t(dt), t(beta), *(t(c) for c in ih2), *bcs)

    def device_faces(self, solver, faces):
        """Face diffusivities copied to the device once per solver."""
        cached = getattr(solver, "_faces_gpu", None)
        if cached is None:
            cached = tuple(self.xp.asarray(f) for f in faces)
            solver._faces_gpu = cached
        return cached

    # -- tridiagonal --------------------------------------------------------------
    def tri_factor(self, a, b, c, cp, inv):
        P, n, Q = b.shape
        self.k.tri_factor[math.ceil(P * Q / 128), 128, self._stream()](a, b, c, cp, inv)

    def tri_solve(self, d, x, out, coef, alpha=1.0, accumulate=False):
        pre, n, post = d.shape
        cyclic = coef.z is not None
        z, vn, qf = (coef.z, coef.vn, coef.qf) if cyclic else (coef.cp, coef.cp, coef.cp)
        self.k.tri_solve[math.ceil(pre * post / 128), 128, self._stream()](
            d, x, out, coef.a, coef.cp, coef.inv, z, vn, qf, d.dtype.type(alpha), accumulate, cyclic)

    # -- Perona–Malik ---------------------------------------------------------------
    def pm_step(self, u, v, out, dt, ih, kinv2, code):
        t = u.dtype.type
        out[...] = u
        st = self._stream()
        if u.ndim == 3:
            block = (16, 16)
            self.k.pm2[_grid(u.shape[1:], block), block, st](u, v, out, t(dt), *(t(x) for x in ih), t(kinv2),
                                                            int(code))
        else:
            block = (4, 8, 32)
            self.k.pm3[_grid(u.shape[1:], block), block, st](u, v, out, t(dt), *(t(x) for x in ih), t(kinv2),
                                                            int(code))

    def aos_coefficients(self, v4, a, b, c, tau, ih, kinv2, code):
        C, pre, n, post = v4.shape
        t = v4.dtype.type
        self.k.aos_coefficients[math.ceil(pre * post / 128), 128, self._stream()](
            v4, a, b, c, t(tau), t(ih), t(kinv2), int(code))

    def gaussian_filter(self, u, sigma):
        out = self.xp.empty_like(u)
        for ch in range(u.shape[0]):
            self._ndi.gaussian_filter(u[ch], sigma, mode="reflect", output=out[ch])
        return out

    # -- spectral -----------------------------------------------------------------
    def scale_separable(self, c, factors):
        nd = len(factors)
        for a, f in enumerate(factors):
            shape = [f.shape[0]] + [1] * nd
            shape[a + 1] = f.shape[1]
            c *= f.reshape(shape)


@functools.lru_cache(maxsize=1)
def get_gpu_backend() -> GPUBackend:
    return GPUBackend()
