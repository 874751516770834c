"""The GPU backend: numba.cuda kernels on CuPy device memory, CuPy FFT, no host round trips.

Implements the contract of :mod:`pdediff._backend`, like
:class:`pdediff.kernels.cpu.backend.CPUBackend`; the solvers never know which
one they drive.  Shape adaptation lives here: 1-D and 2-D problems run
through the 3-D kernels with leading axes of one cell (``ih = 0`` there), and
every launch configuration comes from
:func:`pdediff.kernels.gpu.launch.launch_config`.

Streams: kernels launch on CuPy's current stream (the legacy default stream
when CuPy uses its null stream), and CuPy arrays reach numba.cuda as device
arrays made from ``__cuda_array_interface__`` without a synchronisation (the
kernel runs on the very stream CuPy's work is queued on, so stream order
already serialises them).

Setup errors are raised once, at the first GPU use: no numba-cuda
(:class:`ImportError` naming the extra to install), no CUDA device
(:class:`GPUUnavailableError`), a tiny test kernel that NVVM cannot compile
(:class:`ImportError`, the extra again).  Device allocations that run out of
memory raise :class:`GPUOutOfMemoryError`, a :class:`MemoryError` naming the
size.
"""

from __future__ import annotations

import functools
import importlib.util
import math

import numpy as np

from ..formulas import TAU_MAX
from .launch import launch_config, tile_config

__all__ = ["GPUBackend", "get_gpu_backend", "GPUUnavailableError", "GPUOutOfMemoryError", "INSTALL_HINT"]

INSTALL_HINT = ('pip install "pdediff[gpu-cu12]" or "pdediff[gpu-cu13]", the one matching the CUDA version '
                "that `nvidia-smi` shows (CuPy and numba-cuda with its NVVM compiler for that CUDA)")


class GPUUnavailableError(RuntimeError):
    """CuPy arrays were given, the GPU packages are installed, but no CUDA device can run a kernel."""


class GPUOutOfMemoryError(MemoryError):
    """A device allocation failed (wraps ``cupy.cuda.memory.OutOfMemoryError``, naming the size)."""


def _has_numba_cuda() -> bool:
    # numba's own deprecated CUDA target ships no NVVM; NVIDIA's numba-cuda is the supported one.
    return importlib.util.find_spec("numba_cuda") is not None


def _require():
    """CuPy, its FFT and ndimage modules and numba.cuda, or one clear error naming what is missing."""
    try:
        import cupy
        import cupyx.scipy.fft
        import cupyx.scipy.ndimage
    except ImportError as exc:
        raise ImportError(f"GPU arrays need CuPy, which failed to import ({exc}): {INSTALL_HINT}") from None
    if not _has_numba_cuda():
        raise ImportError(f"GPU arrays need numba-cuda, which is not installed: {INSTALL_HINT}")
    from numba import cuda

    try:
        ok = cuda.is_available()
    except Exception:  # noqa: BLE001 - driver errors come in many types
        ok = False
    if not ok:
        raise GPUUnavailableError("CuPy arrays were given but numba.cuda finds no usable CUDA device or driver "
                                  "(check `nvidia-smi`; pass NumPy arrays to compute on the CPU)")
    return cupy, cupyx.scipy.fft, cupyx.scipy.ndimage, cuda


def _probe_kernel(x):
    x[0] = x[0] + 1.0


def _first_use_check(be) -> None:
    """Compile and run one tiny kernel, so a broken toolchain fails here, once, with the fix in the message."""
    try:
        kernel = be._cuda.jit(_probe_kernel)
        x = be.xp.zeros(1, dtype=np.float32)
        kernel[1, 1, be._stream()](be._dev(x))
        be.xp.cuda.get_current_stream().synchronize()
        ok = float(x[0]) == 1.0
    except Exception as exc:  # noqa: BLE001 - NVVM, linker, driver: all end in one message
        what = f"{type(exc).__name__}: {exc}"
        if "nvvm" in what.lower() or isinstance(exc, ImportError):
            raise ImportError(f"numba-cuda cannot compile GPU kernels, its NVVM is missing or unusable ({what}): "
                              f"{INSTALL_HINT}") from exc
        raise GPUUnavailableError(f"a test kernel failed on the GPU ({what}); if the CUDA versions of the "
                                  f"driver and the packages differ: {INSTALL_HINT}") from exc
    if not ok:
        raise GPUUnavailableError(f"a test kernel ran on the GPU but computed a wrong value: {INSTALL_HINT}")


#: CuPy functions the solvers allocate device memory with.
_ALLOCATORS = frozenset({"empty", "zeros", "ones", "full", "empty_like", "zeros_like", "ones_like", "full_like",
                         "array", "asarray", "ascontiguousarray", "copy", "stack", "concatenate", "pad"})


class _GuardedXP:
    """CuPy, with device out-of-memory errors turned into :class:`GPUOutOfMemoryError` naming the size."""

    def __init__(self, xp):
        self._xp = xp
        self._wrapped = {}

    def __getattr__(self, name):
        attr = getattr(self._xp, name)
        if name not in _ALLOCATORS:
            return attr
        fn = self._wrapped.get(name)
        if fn is None:
            fn = self._wrapped[name] = self._guard(attr, name)
        return fn

    def _guard(self, fn, name):
        xp = self._xp
        oom = xp.cuda.memory.OutOfMemoryError

        @functools.wraps(fn)
        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except oom as exc:
                raise GPUOutOfMemoryError(_oom_message(xp, exc, name)) from exc

        return call


def _oom_message(xp, exc, name) -> str:
    try:
        free, total = xp.cuda.runtime.memGetInfo()
        mem = f"; the device has {free / 2**30:.2f} GiB free of {total / 2**30:.2f} GiB"
    except Exception:  # noqa: BLE001 - the message must not fail
        mem = ""
    return (f"GPU out of memory in cupy.{name}: {exc}{mem}.  Use a smaller array or a larger GPU, free "
            "unused CuPy arrays (and cupy.get_default_memory_pool().free_all_blocks()), or pass a NumPy array "
            "to run on the CPU")


class GPUBackend:
    name = "gpu"
    fft_kwargs: dict = {}

    def __init__(self, *, simulate: bool = False) -> None:
        """``simulate=True``: NumPy arrays in and out, the kernels launched with numba.cuda's own transfers,
        under Numba's CUDA simulator (how CI exercises this class) or on a device without CuPy (the
        numba-only kernel tests).  Otherwise CuPy arrays, checked once by :func:`_first_use_check`."""
        from . import kernels

        self.simulate = simulate
        if simulate:
            import scipy.fft
            import scipy.ndimage
            from numba import cuda

            import numba

            if not (numba.config.ENABLE_CUDASIM or cuda.is_available()):
                raise RuntimeError("simulate=True needs NUMBA_ENABLE_CUDASIM=1 or a CUDA device")
            self.xp, self.fft, self._ndi, self._cuda = np, scipy.fft, scipy.ndimage, cuda
            self._cupy = None
        else:
            cupy, fft, ndi, cuda = _require()
            self._cupy, self.fft, self._ndi, self._cuda = cupy, fft, ndi, cuda
            self.xp = _GuardedXP(cupy)
        self.k = kernels
        if not simulate:
            _first_use_check(self)

    # -- launches -------------------------------------------------------------------
    def _stream(self):
        """CuPy's current stream as a numba.cuda stream (``0`` under the simulator)."""
        if self.simulate:
            return 0
        ptr = int(self._cupy.cuda.get_current_stream().ptr)
        if ptr in (0, 1):  # CuPy's null stream is the legacy default stream (1 = cudaStreamLegacy)
            return self._cuda.legacy_default_stream()
        if ptr == 2:  # cudaStreamPerThread (CuPy's Stream.ptds)
            return self._cuda.per_thread_default_stream()
        return self._cuda.external_stream(ptr)

    def _dev(self, x):
        """A CuPy array as a numba device array, without numba's per-argument stream synchronisation."""
        if self.simulate or not hasattr(x, "__cuda_array_interface__"):
            return x
        return self._cuda.from_cuda_array_interface(x.__cuda_array_interface__, owner=x, sync=False)

    def _launch(self, kernel, config, *args):
        grid, block = config
        kernel[grid, block, self._stream()](*(self._dev(a) for a in args))

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
        self._launch(self.k.heat3, launch_config(shape3), u.reshape(shape3), out.reshape(shape3), *f3, t(dt),
                     t(beta), *(t(c) for c in coefs), *bcs3, faces is not None)

    # -- tridiagonal --------------------------------------------------------------
    def tri_factor(self, a, b, c, cp, inv):
        P, _, Q = b.shape
        t = b.dtype.type
        if Q == 1 and P > 1:  # lines along the contiguous axis: shared-memory tiles
            rows = self.k.ROW_KERNELS[np.dtype(b.dtype)][0]
            self._launch(rows, tile_config(P), a[..., 0], b[..., 0], c[..., 0], cp[..., 0], inv[..., 0], t(0), t(1))
        else:
            self._launch(self.k.tri_factor, launch_config((P, Q)), a, b, c, cp, inv, t(1))

    def tri_solve(self, d, x, out, coef, alpha=1.0, accumulate=False):
        pre, _, post = d.shape
        t = d.dtype.type
        cyclic = coef.z is not None
        z, vn, qf = (coef.z, coef.vn, coef.qf) if cyclic else (coef.cp, coef.cp, coef.cp)
        if post == 1 and pre > 1 and coef.a.shape[2] == 1:  # lines along the contiguous axis
            rows = self.k.ROW_KERNELS[np.dtype(d.dtype)][1]
            self._launch(rows, tile_config(pre), d[..., 0], x[..., 0], out[..., 0], coef.a[..., 0],
                         coef.cp[..., 0], coef.inv[..., 0], z[..., 0], vn[..., 0], qf[..., 0], t(alpha),
                         accumulate, cyclic, t(0))
        else:
            self._launch(self.k.tri_solve, launch_config((pre, post)), d, x, out, coef.a, coef.cp, coef.inv, z, vn,
                         qf, t(alpha), accumulate, cyclic)

    # -- Perona–Malik ---------------------------------------------------------------
    def pm_step(self, u, v, out, dt, ih, kinv2, code):
        t = u.dtype.type
        pad = 4 - u.ndim
        shape4 = (u.shape[0],) + (1,) * pad + tuple(u.shape[1:])
        ihs = (0.0,) * pad + tuple(ih)
        self._launch(self.k.pm3, launch_config(shape4[1:]), u.reshape(shape4), v.reshape(shape4),
                     out.reshape(shape4), t(dt), *(t(x) for x in ihs), t(kinv2), int(code), t(0), t(1), t(0.5))

    def aos_coefficients(self, v, axis, a, b, c, tau, ih, kinv2, code):
        pre, n, post = a.shape
        t = v.dtype.type
        space = (pre, n) if post == 1 else (pre, n, post)  # the kernel's loop order (x on the contiguous axis)
        self._launch(self.k.aos_coefficients, launch_config(space), v.reshape(v.shape[0], pre, n, post), a, b, c,
                     t(min(tau, TAU_MAX)), t(ih), t(kinv2), int(code), t(0), t(1), t(0.5))

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

    def gaussian_filter(self, u, sigma, out=None, mode="reflect"):
        """Per channel of ``(C, *spatial)`` ``u``: ``gaussian_filter(u[c], sigma, mode=mode, cval=0)`` of
        ``cupyx.scipy.ndimage`` (SciPy's under ``simulate``); into ``out`` (``u``'s shape and dtype) or a new
        array.  ``mode``: ``"reflect"`` (the contract's), ``"wrap"`` or ``"constant"`` (tensor diffusion)."""
        if out is None:
            out = self.xp.empty_like(u)
        for ch in range(u.shape[0]):
            self._ndi.gaussian_filter(u[ch], sigma, mode=mode, cval=0.0, output=out[ch])
        return out

    # -- tensor diffusion (optional methods: pdediff.anisotropic.tensor runs its explicit step on them) -----
    def _tensor_kernel(self, name, dtype):
        return self.k.TENSOR_KERNELS[np.dtype(dtype)][name]

    def tensor_structure(self, v, spacing, bc):
        """The structure tensor ``sum_c grad v_c grad v_c^T`` of ``(C, *spatial)`` ``v`` (2-D/3-D), as a new
        ``(3 | 6, *spatial)`` array of ``v``'s dtype: components ``(00, 01, 11)`` / ``(00, 01, 02, 11, 12, 22)``
        by central differences in physical units (ghost cells per boundary code ``bc``)."""
        nd = v.ndim - 1
        t = v.dtype.type
        J = self.xp.empty((3 if nd == 2 else 6,) + tuple(v.shape[1:]), dtype=v.dtype)
        self._launch(self._tensor_kernel(f"tensor_structure{nd}", v.dtype), launch_config(v.shape[1:]), v,
                     *(t(h) for h in spacing), int(bc), J)
        return J

    def tensor_links(self, f, mode, cond, kinv2, gmin, alpha, cstar, spacing, bc, W, O):
        """Selling links of every cell into ``W`` ``(*spatial, K)`` and int16 ``O`` ``(*spatial, K, ndim)``
        (``K`` = 3 in 2-D, 6 in 3-D), as :func:`pdediff.kernels.cpu.tensor.links2` / ``links3``.

        Returns ``(bad, reach)``: the number of failed reductions and, per axis, the largest ``|offset_a|``
        of a link of positive weight (two small transfers to the host)."""
        xp = self.xp
        nd = len(spacing)
        t = W.dtype.type
        bad = xp.empty(W.shape[:-1], dtype=np.int32)
        kin = min(float(kinv2), float(np.finfo(W.dtype).max))  # inf would make 0 * inf = NaN
        cfg = launch_config(W.shape[:-1])
        args = (f, int(mode), int(cond), t(kin), t(gmin), t(alpha), t(cstar), *(t(h) for h in spacing), int(bc), W)
        if nd == 2:
            self._launch(self._tensor_kernel("tensor_links2", W.dtype), cfg, *args, O, bad)
        else:  # the tensors into W, then their decomposition in place (registers: see the kernels)
            self._launch(self._tensor_kernel("tensor_tensors3", W.dtype), cfg, *args)
            self._launch(self._tensor_kernel("tensor_selling3", W.dtype), cfg, W, O, bad)
        nbad = int(bad.sum())
        ends = xp.abs(O.astype(np.int32)) * (W > 0)[..., None].astype(np.int32)
        reach = tuple(int(r) for r in ends.reshape(-1, nd).max(axis=0).tolist())
        return nbad, reach

    def tensor_apply(self, u, W, O, reach, bc, dt, out, dg, with_diag):
        """``out = u + dt A u`` for ``(C, *spatial)`` ``u`` and the links ``W``/``O`` of :meth:`tensor_links`
        (``reach`` its per-axis reach), gathered per cell (no atomics: deterministic).  With ``with_diag``
        also ``dg = -A_xx`` (spatial shape, ``u``'s dtype) and returns ``max(dg)`` (0 for no cells)."""
        nd = u.ndim - 1
        t = u.dtype.type
        self._launch(self._tensor_kernel(f"tensor_apply{nd}", u.dtype), launch_config(u.shape[1:]), u, W, O,
                     *(int(r) for r in reach), int(bc), t(dt), out, dg, bool(with_diag))
        if not with_diag:
            return None
        return float(dg.max()) if dg.size else 0.0

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
