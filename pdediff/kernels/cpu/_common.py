"""What the CPU kernels share: the compiled formulas, the exp primitive, and the kernel registry.

* :data:`F`: :mod:`pdediff.kernels.formulas` compiled for the CPU (inlined
  into the kernels, so their loops still vectorise), with the vectorisable
  exponentials :func:`exp_neg` / :func:`exp_neg32` as the target primitive.
* :func:`register_kernel` / :func:`kernel`: every CPU kernel is one Python
  driver, compiled twice, serial and with ``prange`` threads, and looked up by
  ``(operation, spatial dimensions, coefficient kind)`` in the spirit of
  py-pde's ``register_operator``; :func:`use_parallel` (a size threshold) and
  :class:`ThreadPolicy` (adaptive, see there) pick the build for each call.
* :func:`kernel_code` / :func:`row_view`: the calling conventions of the
  Perona–Malik row kernels, shared by the backend's single steps
  (:mod:`.backend`) and the temporally blocked drivers (:mod:`.blocked`), so
  neither imports the other.
"""

from __future__ import annotations

import math
import os
import time
import types
import warnings
from collections.abc import Callable

import numba
import numpy as np
from llvmlite import ir as llvm_ir
from numba import njit
from numba.core import cgutils
from numba.core import types as nbtypes
from numba.extending import intrinsic

from ..formulas import EXPONENTIAL, EXPONENTIAL32, compile_formulas

__all__ = ["cache_share", "last_level_cache", "LLC_FALLBACK_BYTES", "F", "exp_neg", "exp_neg32", "register_kernel",
           "kernel", "kernel_builds", "use_parallel", "PARALLEL_MIN_CELLS", "ThreadPolicy", "set_threading", "threading_policy", "kernel_code", "row_view"]

#: Arrays with fewer cells than this run on one thread.  Measured on the 2-core
#: development machine (explicit heat step, float32): serial 4 us vs parallel 6 us
#: at 16², 9 vs 7 us at 32², 18 vs 9 us at 64², 713 vs 294 us at 1024² -- the
#: launch cost of a parallel region is a few microseconds and the stencil is
#: compute-bound enough in L2/L3 that the second core pays from ~1000 cells on.
PARALLEL_MIN_CELLS = 1 << 12


def use_parallel(size: int) -> bool:
    """Whether an array of ``size`` cells is large enough for the threaded build (and threads exist)."""
    return size >= PARALLEL_MIN_CELLS and numba.config.NUMBA_NUM_THREADS > 1 and _POLICY.mode != "serial"


# ------------------------------------------------------------------ cache sizes

#: The last-level cache assumed where the operating system does not report one (no Linux sysfs):
#: 32 MiB shared by every CPU -- the L3 of a current server socket slice (AMD EPYC CCD, Intel Xeon
#: per ~16 cores).  ``PDEDIFF_LLC_BYTES`` overrides the size measured or assumed.
LLC_FALLBACK_BYTES = 32 << 20

_LLC: tuple[int, int] | None = None


def _parse_size(text: str) -> int:
    """``"32768K"``, ``"2M"``, ``"512"`` (bytes) as bytes."""
    text = text.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    return int(text.rstrip("KMG") or 0) * mult


def _cpu_count_of(cpu_list: str) -> int:
    """The number of CPUs in a sysfs list such as ``"0-3,8-11"``."""
    count = 0
    for part in cpu_list.strip().split(","):
        if part:
            lo, _, hi = part.partition("-")
            count += int(hi or lo) - int(lo) + 1
    return max(count, 1)


def last_level_cache(root: str = "/sys/devices/system/cpu/cpu0/cache") -> tuple[int, int]:
    """``(bytes, cpus sharing it)`` of the last-level data (or unified) cache of CPU 0, read once per process.

    From Linux sysfs (``index*/level``, ``type``, ``size``, ``shared_cpu_list``); elsewhere, or when
    unreadable, :data:`LLC_FALLBACK_BYTES` shared by ``os.cpu_count()`` CPUs.  The environment variable
    ``PDEDIFF_LLC_BYTES`` replaces the size (e.g. on a machine whose sysfs reports no cache).
    """
    global _LLC
    if _LLC is not None and root == "/sys/devices/system/cpu/cpu0/cache":
        return _LLC
    best: tuple[int, int, int] | None = None  # (level, bytes, sharing)
    try:
        for entry in sorted(os.listdir(root)):
            if not entry.startswith("index"):
                continue
            d = os.path.join(root, entry)

            def read(name, d=d):
                with open(os.path.join(d, name)) as f:
                    return f.read().strip()

            if read("type") == "Instruction":
                continue
            level, size = int(read("level")), _parse_size(read("size"))
            try:
                sharing = _cpu_count_of(read("shared_cpu_list"))
            except OSError:
                sharing = 1
            if size > 0 and (best is None or level > best[0]):
                best = (level, size, sharing)
    except (OSError, ValueError):
        best = None
    if best is None:
        llc = (LLC_FALLBACK_BYTES, os.cpu_count() or 1)
    else:
        llc = (best[1], best[2])
    env = os.environ.get("PDEDIFF_LLC_BYTES", "").strip()
    if env:
        try:
            size = _parse_size(env)
            if size <= 0:
                raise ValueError
            llc = (size, llc[1])
        except ValueError:
            warnings.warn(f"PDEDIFF_LLC_BYTES={env!r} is not a positive size (bytes, or with K/M/G: '32M'); "
                          f"ignored, using {llc[0]} bytes", RuntimeWarning, stacklevel=2)
    if root == "/sys/devices/system/cpu/cpu0/cache":
        _LLC = llc
    return llc


def cache_share(nthreads: int) -> int:
    """Bytes of last-level cache that ``nthreads`` threads of this process can count on: their share of the
    cache (``size * nthreads / sharing``, at most all of it), by :func:`last_level_cache`."""
    size, sharing = last_level_cache()
    return int(size * min(1.0, max(1, nthreads) / sharing))


# ------------------------------------------------------------------ threading policy
class ThreadPolicy:
    """Adaptive choice between the serial and the threaded build of each kernel.

    Why: Numba's OpenMP layer spin-waits at its barriers.  On a quiet machine
    that is what makes short parallel regions fast, but when another process
    (or torch's own thread pool) keeps a core busy, a parallel kernel waits for
    a descheduled thread and runs several times *slower* than the serial one.
    A passive wait policy or the workqueue layer lose up to 2x on a quiet
    machine instead.  So the layer stays as it is and each call site chooses:

    * per ``(kernel, size class)`` (size classes are powers of two of the cell
      count) an estimate of the seconds per cell of each build is kept --
      an exponential average of the build in use, the latest sample of the other;
    * the build in use switches as soon as its average exceeds the other's
      estimate (load arrived), or when a *probe* -- one call of the other
      build -- is faster (load went away; a threaded probe must beat the serial
      estimate by ``margin``, since with noisy timings serial is the safe side);
    * probes run ``probe_min`` calls after a switch, the interval doubling up to
      ``probe_max`` while probes confirm the choice (and at least wide enough
      that the slower build's probes add ~5 % on average);
    * the first call of a build for a new signature (JIT compilation or cache
      load) is not measured.

    ``mode``: ``"adaptive"`` (default), ``"parallel"`` (always the threaded
    build above :data:`PARALLEL_MIN_CELLS`, the previous behaviour) or
    ``"serial"``; set by the environment variable ``PDEDIFF_THREADING`` at import
    or :func:`set_threading`.  Both builds compute the same thing (their
    results are identical; tests check it), so the choice only affects speed.
    ``clock`` is injectable for tests.
    """

    MODES = ("adaptive", "parallel", "serial")

    def __init__(self, mode: str = "adaptive", clock: Callable[[], float] = time.perf_counter, *,
                 probe_min: int = 8, probe_max: int = 1024, alpha: float = 0.3, margin: float = 0.8) -> None:
        if mode not in self.MODES:
            raise ValueError(f"threading mode must be one of {self.MODES}, got {mode!r}")
        self.mode, self.clock = mode, clock
        self.probe_min, self.probe_max, self.alpha, self.margin = probe_min, probe_max, alpha, margin
        self.state: dict[tuple, _Choice] = {}

    def choose(self, key) -> bool:
        """``True`` to run the threaded build for ``key`` now (adaptive mode)."""
        st = self.state.get(key)
        if st is None:
            st = self.state[key] = _Choice(self.probe_min)
        if st.est[st.parallel] is None:
            return st.parallel  # no estimate of the build in use yet
        if st.est[not st.parallel] is None:
            return not st.parallel  # nor of the other: measure it once
        st.countdown -= 1
        return (not st.parallel) if st.countdown <= 0 else st.parallel

    def record(self, key, parallel: bool, seconds: float) -> None:
        """Account one measured call of the ``parallel`` (or serial) build for ``key``."""
        st = self.state[key]
        est = st.est
        if parallel == st.parallel:
            old = est[parallel]
            est[parallel] = seconds if old is None else old + self.alpha * (seconds - old)
            other = est[not parallel]
            if other is not None and est[parallel] > other:  # slowed down: the other build is now faster
                self._switch(st)
            return
        est[parallel] = seconds  # a probe: the latest sample, whatever the load was before
        if st.est[st.parallel] is None:
            return
        # to the threaded build only by a clear margin: with noisy timings the serial build is the safe side
        if seconds < est[st.parallel] * (self.margin if parallel else 1.0):
            self._switch(st)
        else:
            # back off: doubling, and at least far enough apart that a probe as slow as this one
            # adds no more than ~5 % on average (a starved threaded build can be 10x the serial one)
            cost = seconds / est[st.parallel] - 1.0
            st.interval = min(max(2 * st.interval, math.ceil(cost / 0.05)), self.probe_max)
            st.countdown = st.interval

    def _switch(self, st: _Choice) -> None:
        st.parallel = not st.parallel
        st.interval = st.countdown = self.probe_min

    def wrap(self, k: Kernel, key, parallel: bool) -> Callable:
        """The chosen build of ``k``, timed, its time recorded under ``key``."""
        fn = k.parallel if parallel else k.serial
        clock = self.clock

        def run(*args):
            n = len(fn.overloads)
            t0 = clock()
            r = fn(*args)
            t1 = clock()
            if len(fn.overloads) == n:  # not a compilation
                self.record(key, parallel, t1 - t0)
            return r

        run.parallel = parallel
        return run


class _Choice:
    __slots__ = ("countdown", "est", "interval", "parallel")

    def __init__(self, interval: int) -> None:
        self.parallel = True
        self.est: list[float | None] = [None, None]  # seconds per call: [serial, parallel]
        self.interval = self.countdown = interval


_POLICY = ThreadPolicy(os.environ.get("PDEDIFF_THREADING", "adaptive").strip().lower() or "adaptive")


def set_threading(mode: str, clock: Callable[[], float] | None = None) -> ThreadPolicy:
    """Replace the threading policy (``"adaptive"``, ``"parallel"`` or ``"serial"``); returns the old one."""
    global _POLICY
    old = _POLICY
    _POLICY = ThreadPolicy(mode, clock or time.perf_counter)
    return old


def threading_policy() -> ThreadPolicy:
    return _POLICY


# ---------------------------------------------------------------- exp primitive
@intrinsic
def _pow2_neg32(typingctx, n):
    """``2^-n`` as float32 for an integer ``0 <= n <= 126``, built from its exponent bits.

    A bit cast instead of a table lookup: LLVM vectorises it (a gather from a table kept
    the whole conductance loop scalar, 5x slower than the rational conductance).
    """
    if not isinstance(n, nbtypes.Integer):
        return None

    def codegen(context, builder, sig, args):
        i32 = llvm_ir.IntType(32)
        v = context.cast(builder, args[0], sig.args[0], nbtypes.int32)
        bits = builder.shl(builder.sub(llvm_ir.Constant(i32, 127), v), llvm_ir.Constant(i32, 23))
        return builder.bitcast(bits, llvm_ir.FloatType())

    return nbtypes.float32(n), codegen


@intrinsic
def _pow2_neg64(typingctx, n):
    """``2^-n`` as float64 for an integer ``0 <= n <= 1022`` (see :func:`_pow2_neg32`)."""
    if not isinstance(n, nbtypes.Integer):
        return None

    def codegen(context, builder, sig, args):
        i64 = llvm_ir.IntType(64)
        v = context.cast(builder, args[0], sig.args[0], nbtypes.int64)
        bits = builder.shl(builder.sub(llvm_ir.Constant(i64, 1023), v), llvm_ir.Constant(i64, 52))
        return builder.bitcast(bits, llvm_ir.DoubleType())

    return nbtypes.float64(n), codegen


@intrinsic
def _muladd(typingctx, a, b, c):
    """``a * b + c``, fused into one FMA where the CPU has it (LLVM's ``fmuladd``: one rounding there, two
    elsewhere; both within the exponentials' error bounds).  Halves the polynomials' instruction count."""
    if not all(isinstance(x, nbtypes.Float) for x in (a, b, c)):
        return None
    t = max(a, b, c, key=lambda x: x.bitwidth)  # mixed widths (a branch typed for the other dtype): the widest

    def codegen(context, builder, sig, args):
        xs = [context.cast(builder, x, ty, t) for x, ty in zip(args, sig.args)]
        ty = xs[0].type
        name = "llvm.fmuladd.f64" if t.bitwidth == 64 else "llvm.fmuladd.f32"
        fn = cgutils.get_or_insert_function(builder.module, llvm_ir.FunctionType(ty, [ty, ty, ty]), name)
        return builder.call(fn, xs)

    return t(a, b, c), codegen


_LN2_HI = 0.693147180369123816490  # Cody–Waite split of ln 2 (fdlibm): n * hi is exact for n < 2^11
_LN2_LO = 1.90821492927058770002e-10
_LOG2E = 1.4426950408889634
_XMAX64 = 708.0  # exp(-708) ~ 3.3e-308, just above float64's smallest normal
_E64 = tuple(1.0 / math.factorial(k) for k in range(14))


@njit(cache=True, error_model="numpy", inline="always")  # inlined so the calling loop vectorises
def exp_neg(x):
    """``exp(-x)`` for ``x >= 0`` in float64, within a few ulp of ``math.exp``; 0 for ``x >= 708`` and NaN.

    Range reduction ``x = n ln2 + r`` (Cody–Waite), ``|r| <= ln2/2``, the
    degree-13 Taylor polynomial of ``exp(-r)`` (truncation < 5e-18) and
    ``2^-n`` assembled from its exponent bits.  Unlike a libm call (or a
    table lookup) LLVM vectorises it (no SVML here): the exponential
    explicit step costs ~2.3x the rational one (1.09 vs 0.46 ms at 1024²
    float32, 2 threads), against 5-7x with the table.  Results that
    would be subnormal are flushed to zero (as with FTZ), since subnormal
    arithmetic, even in a discarded vector lane, costs ~100x.
    """
    # Clamp first: NaN (a non-finite gradient) and x >= 708 map to 708 and negative x to 0, so the
    # exponent bits always stay in the normal range.
    xc = x if x < _XMAX64 else _XMAX64
    xc = xc if xc > 0.0 else 0.0
    n = np.floor(xc * _LOG2E + 0.5)
    r = (xc - n * _LN2_HI) - n * _LN2_LO
    y = -r
    # Estrin's scheme: a dependency chain of 4 multiply-adds instead of Horner's 13 (the loop is
    # latency-bound otherwise: LLVM does not interleave vector iterations here)
    y2 = y * y
    y4 = y2 * y2
    q0 = _muladd(_muladd(_E64[3], y, _E64[2]), y2, _muladd(_E64[1], y, _E64[0]))
    q1 = _muladd(_muladd(_E64[7], y, _E64[6]), y2, _muladd(_E64[5], y, _E64[4]))
    q2 = _muladd(_muladd(_E64[11], y, _E64[10]), y2, _muladd(_E64[9], y, _E64[8]))
    q3 = _muladd(_E64[13], y, _E64[12])
    p = _muladd(_muladd(q3, y4, q2), y4 * y4, _muladd(q1, y4, q0))
    e = p * _pow2_neg64(np.int32(n))  # 0 <= n <= 1022; int32: AVX2 converts 4 doubles at once (not to int64)
    return e if x < _XMAX64 else 0.0 * e  # NaN compares false: g(NaN) = 0


_F32 = np.float32
_LN2_HI32 = _F32(0.693359375)  # Cody–Waite split of ln 2 for float32 (cephes expf)
_LN2_LO32 = _F32(-2.12194440e-4)
_LOG2E32 = _F32(1.44269504088896341)
_E32 = tuple(_F32(1.0 / math.factorial(k)) for k in range(8))
_XMAX32 = _F32(87.0)  # exp(-87) ~ 1.6e-38, just above float32's smallest normal
_HALF32 = _F32(0.5)
_ZERO32 = _F32(0.0)


@njit(cache=True, error_model="numpy", inline="always")
def exp_neg32(x):
    """``exp(-x)`` for ``x >= 0`` in float32 arithmetic, within a few float32 ulp; vectorises 8 wide.

    Flushed to 0 for ``x >= 87`` (results below float32's normal range).

    Same reduction as :func:`exp_neg`; degree-7 Taylor polynomial (truncation
    below 6e-9 for ``|r| <= ln2/2``) and ``2^-n`` (``n <= 126``) from its exponent bits.
    """
    xc = x if x < _XMAX32 else _XMAX32  # NaN -> XMAX: the exponent stays in range (see exp_neg)
    xc = xc if xc > _ZERO32 else _ZERO32
    n = np.floor(xc * _LOG2E32 + _HALF32)
    r = (xc - n * _LN2_HI32) - n * _LN2_LO32
    y = -r
    y2 = y * y  # Estrin's scheme, as in exp_neg
    q0 = _muladd(_muladd(_E32[3], y, _E32[2]), y2, _muladd(_E32[1], y, _E32[0]))
    q1 = _muladd(_muladd(_E32[7], y, _E32[6]), y2, _muladd(_E32[5], y, _E32[4]))
    p = _muladd(q1, y2 * y2, q0)
    e = p * _pow2_neg32(np.int32(n))
    return e if x < _XMAX32 else e - e  # flush to 0 below the normal range (a typed zero)


#: The formulas compiled for the CPU: inlined where they are called, NaN-safe, no ZeroDivisionError branch.
F = compile_formulas(njit(inline="always", error_model="numpy"), "pdediff.kernels.cpu.F", exp_neg=exp_neg,
                     exp_neg32=exp_neg32)


# --------------------------------------------------------------- kernel registry
class Kernel:
    """One Python driver compiled twice: :attr:`serial` and :attr:`parallel` (``prange`` over threads).

    Written once, the driver's ``prange`` loop is a plain loop in the serial
    build; the parallel build gets its own qualified name so that Numba's
    on-disk cache keeps the two apart.
    """

    def __init__(self, fn: Callable, **options) -> None:
        self.serial = njit(cache=True, **options)(fn)
        par = types.FunctionType(fn.__code__, fn.__globals__, f"{fn.__name__}_parallel", fn.__defaults__,
                                 fn.__closure__)
        par.__qualname__ = f"{fn.__qualname__}_parallel"
        par.__module__ = fn.__module__
        self.parallel = njit(cache=True, parallel=True, **options)(par)
        self.serial.parallel, self.parallel.parallel = False, True  # what for_size's callers may ask

    def for_size(self, size: int, tag: str = ""):
        """The build to run on ``size`` cells: serial below the threshold, else as the policy decides.

        The returned callable has ``.parallel`` (whether it is the threaded build),
        so a driver can size its blocks to match.  ``tag`` (e.g. the dtype's
        character) separates the policy's estimates of calls of the same size
        whose costs differ.
        """
        if not use_parallel(size):
            return self.serial
        pol = _POLICY
        if pol.mode == "parallel":
            return self.parallel
        key = (id(self), size.bit_length(), tag)
        return pol.wrap(self, key, pol.choose(key))


_KERNELS: dict[tuple[str, int, str], Kernel] = {}


def register_kernel(op: str, ndim: int, coef: str = "", **options) -> Callable:
    """Register a driver under ``(op, ndim, coef)``, e.g. ``("heat", 2, "const")``; returns the serial build."""

    def deco(fn: Callable):
        k = _KERNELS[(op, ndim, coef)] = Kernel(fn, **options)
        return k.serial

    return deco


def kernel_builds(op: str, ndim: int, coef: str) -> Kernel:
    """Both builds of the driver registered under ``(op, ndim, coef)``."""
    return _KERNELS[(op, ndim, coef)]


def kernel(op: str, ndim: int, coef: str, size: int, tag: str = ""):
    """The compiled driver for ``(op, ndim, coef)`` to run on ``size`` cells (:meth:`Kernel.for_size`)."""
    return _KERNELS[(op, ndim, coef)].for_size(size, tag)


# --------------------------------------------------------------------------- call conventions
# shared by the backend's single steps and the temporally blocked drivers (:mod:`.blocked`)


def kernel_code(code: int, dtype) -> int:
    """The exponential conductance runs as its float32 kernel on float32 data: twice the vector width."""
    return EXPONENTIAL32 if code == EXPONENTIAL and dtype == np.float32 else int(code)


def row_view(shape: tuple[int, ...], ih) -> tuple[tuple[int, int, int], int, tuple[float, float, float]]:
    """How the row kernels see a ``(C, *spatial)`` array: ``(C, rows, n)``, rows per plane, ``(ihz, ihy, ihx)``.

    1-D ``(C, n)`` is one row; 2-D ``(C, n0, n1)`` one plane of ``n0`` rows; 3-D
    ``(C, n0, n1, n2)`` is ``(C, n0 * n1, n2)`` in planes of ``n1`` rows.  Missing axes get ``ih = 0``.
    """
    C, spatial = shape[0], tuple(shape[1:])
    if len(spatial) == 1:
        return (C, 1, spatial[0]), 1, (0.0, 0.0, ih[0])
    if len(spatial) == 2:
        return (C, *spatial), spatial[0], (0.0, ih[0], ih[1])
    n0, n1, n2 = spatial
    return (C, n0 * n1, n2), n1, tuple(ih)
