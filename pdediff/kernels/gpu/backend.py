"""The GPU backend: numba.cuda kernels on CuPy device memory, CuPy FFT, no host round trips.

Implements the contract of :mod:`pdediff._backend`, like
:class:`pdediff.kernels.cpu.backend.CPUBackend`; the solvers never know which
one they drive.  Shape adaptation lives here: 1-D and 2-D problems run
through the 3-D kernels with leading axes of one cell (``ih = 0`` there).
Kernels launch on CuPy's current stream (numba.cuda is handed CuPy arrays
through ``__cuda_array_interface__``).
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

    def asarray(self, x):
        return self.xp.asarray(x)

    # -- explicit heat step ----------------------------------------------------
    def heat_step(self, u, out, dt, ih2, bcs, beta=1.0, faces=None):
        t = u.dtype.type
        pad = 3 - u.ndim  # leading axes of one cell, no flux along them
        shape3 = (1,) * pad + tuple(u.shape)
        coefs = (0.0,) * pad + tuple(ih2)
        bcs3 = (0,) * pad + tuple(bcs)
        if faces is None:
            f3 = [u.reshape(shape3)] * 3  # not read by the constant-coefficient path
        else:  # padded axes get zero faces (their coefficient is 0 too)
            f3 = []
            for ax in range(3):
                if ax < pad:
                    fshape = list(shape3)
                    fshape[ax] += 1
                    f3.append(self.xp.zeros(tuple(fshape), dtype=u.dtype))
                else:
                    f = faces[ax - pad]
                    f3.append(f.reshape((1,) * pad + tuple(f.shape)))
        block = (4, 8, 32)
        self.k.heat3[_grid(shape3, block), block, self._stream()](
            u.reshape(shape3), out.reshape(shape3), *f3, t(dt), t(beta), *(t(c) for c in coefs), *bcs3,
            faces is not None)

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
        pad = 4 - u.ndim
        shape4 = (u.shape[0],) + (1,) * pad + tuple(u.shape[1:])
        ihs = (0.0,) * pad + tuple(ih)
        out[...] = u
        block = (4, 8, 32)
        self.k.pm3[_grid(shape4[1:], block), block, self._stream()](
            u.reshape(shape4), v.reshape(shape4), out.reshape(shape4), t(dt), *(t(x) for x in ihs), t(kinv2),
            int(code))

    def aos_coefficients(self, v, axis, a, b, c, tau, ih, kinv2, code):
        pre, n, post = a.shape
        t = v.dtype.type
        self.k.aos_coefficients[math.ceil(pre * post / 128), 128, self._stream()](
            v.reshape(v.shape[0], pre, n, post), a, b, c, t(tau), t(ih), t(kinv2), int(code))

    def face_gradient_mad(self, v, spacing):
        """``(median, mad, mean)`` of the face-gradient magnitudes, as :meth:`CPUBackend.face_gradient_mad`.

        The same radix select over the bit patterns of the float32-rounded
        magnitudes, written with array operations (``bincount`` histograms):
        each pass recomputes one axis' magnitudes at a time as float32, so the
        temporaries stay within a few axis-sized arrays (float64 ones only
        for the differences of float64 input).
        """
        from ..cpu.kappa import NBINS, float32_scale, select_bins, select_keys

        xp = self.xp
        nan = float("nan")
        v = xp.ascontiguousarray(v)
        if v.dtype not in (np.float32, np.float64):
            v = v.astype(np.float64)
        if v.size == 0 or v.ndim < 2:
            return nan, nan, nan
        f64 = v.dtype == np.float64
        tiny32 = 2.0**-126

        def host(x):
            return x.get() if hasattr(x, "get") else np.asarray(x)

        def magnitudes(scale):
            """Per axis, ``(float32(s * scale), s * scale)``; the unrounded ``s`` only for float64 input."""
            for a, h in enumerate(spacing):
                if v.shape[a + 1] < 2:
                    continue
                s = None
                for c in range(v.shape[0]):
                    d = xp.diff(v[c], axis=a)
                    s = xp.abs(d, out=d) if s is None else xp.hypot(s, d, out=s)  # no overflow in float32
                    del d
                s *= s.dtype.type(1.0 / float(h))
                if scale != 1.0:
                    s *= scale
                yield (s.astype(np.float32), s) if f64 else (s, None)

        def keys_of(f, center):
            if center is None:
                return f.view(np.uint32)
            hi32 = np.float32(center)  # |f - center| in float32 with center split in two (hi32 + lo32)
            lo32 = np.float32(center - float(hi32) if np.isfinite(center) else 0.0)
            return xp.abs((f - hi32) - lo32).view(np.uint32)

        def select(scale, center, check=False):
            top = np.zeros(NBINS, dtype=np.int64)
            bad = 0
            for f, s in magnitudes(scale):
                top += host(xp.bincount((keys_of(f, center) >> 16).ravel(), minlength=NBINS))
                if check:  # float64 magnitudes that float32 cannot hold
                    bad += int(xp.count_nonzero(xp.isinf(f))) - int(xp.count_nonzero(xp.isinf(s)))
                    bad += int(xp.count_nonzero((s > 0) & (s < tiny32)))
            if bad:
                smin, smax = np.inf, 0.0
                for _, s in magnitudes(1.0):
                    smin = min(smin, float(xp.min(xp.where(s > 0, s, np.inf))))
                    smax = max(smax, float(xp.max(xp.where(xp.isfinite(s), s, 0.0))))
                if float32_scale(smin, smax) != 1.0:
                    return select(float32_scale(smin, smax), center)
            n, b0, b1, r0, r1 = select_bins(top)
            if n == 0:
                return nan, scale
            low = np.zeros(2 * NBINS, dtype=np.int64)
            for f, _ in magnitudes(scale):
                k = keys_of(f, center).ravel()
                k = k[((k >> 16) == b0) | ((k >> 16) == b1)]
                idx = (k & 0xFFFF).astype(np.int64) + NBINS * ((k >> 16) != b0)
                low += host(xp.bincount(idx, minlength=2 * NBINS))
            q0, q1 = select_keys(low, b0, b1, r0, r1)
            return 0.5 * (q0 + q1), scale

        med, scale = select(1.0, None, check=f64)
        if math.isnan(med):
            return nan, nan, nan
        mad, _ = select(scale, med)
        mean = nan
        if not mad > 0:
            tot, cnt = 0.0, 0
            for f, _ in magnitudes(scale):
                ok = ~xp.isnan(f)
                tot += float(xp.sum(xp.where(ok, f, 0), dtype=np.float64))
                cnt += int(xp.count_nonzero(ok))
            mean = tot / cnt / scale if cnt else nan
        return med / scale, mad / scale, mean

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
