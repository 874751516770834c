"""What the CPU kernels share: the compiled formulas, the exp primitive, and the kernel registry.

* :data:`F`: :mod:`pdediff.kernels.formulas` compiled for the CPU (inlined
  into the kernels, so their loops still vectorise), with the vectorisable
  exponentials :func:`exp_neg` / :func:`exp_neg32` as the target primitive.
* :func:`register_kernel` / :func:`kernel`: every CPU kernel is one Python
  driver, compiled twice, serial and with ``prange`` threads, and looked up by
  ``(operation, spatial dimensions, coefficient kind)`` in the spirit of
  py-pde's ``register_operator``; :func:`use_parallel` (a size threshold) and
  :class:`ThreadPolicy` (adaptive, see there) pick the build for each call.
"""

from __future__ import annotations

import math
import os
import time
import types
from collections.abc import Callable

import numba
import numpy as np
from numba import njit

from ..formulas import compile_formulas

__all__ = ["F", "exp_neg", "exp_neg32", "register_kernel", "kernel", "kernel_builds", "use_parallel",
           "PARALLEL_MIN_CELLS", "ThreadPolicy", "set_threading", "threading_policy"]

#: Arrays with fewer cells than this run on one thread.  Measured on the 2-core
#: development machine (explicit heat step, float32): serial 4 us vs parallel 6 us
#: at 16², 9 vs 7 us at 32², 18 vs 9 us at 64², 713 vs 294 us at 1024² -- the
#: launch cost of a parallel region is a few microseconds and the stencil is
#: compute-bound enough in L2/L3 that the second core pays from ~1000 cells on.
PARALLEL_MIN_CELLS = 1 << 12


def use_parallel(size: int) -> bool:
    """Whether an array of ``size`` cells is large enough for the threaded build (and threads exist)."""
    return size >= PARALLEL_MIN_CELLS and numba.config.NUMBA_NUM_THREADS > 1 and _POLICY.mode != "serial"


# ------------------------------------------------------------------ threading policy
class ThreadPolicy:
    """Adaptive choice between the serial and the threaded build of each kernel (issue 12, section 3).

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
_LN2_32_HI = 0.02166084938653512  # Cody–Waite split of ln2/32: hi has 32 significant bits, so n * hi is exact
_LN2_32_LO = 5.9631716539705866e-12
_INV_LN2_32 = 46.16624130844683  # 32 / ln 2
_XMAX64 = 708.0  # exp(-708) ~ 3.3e-308, just above float64's smallest normal
#: 2^(-n/32) for n up to 32 * 708 / ln 2: one gather replaces the 2^-k scaling and shrinks the
#: polynomial's interval to |r| <= ln2/64, where degree 6 suffices (truncation < 2e-17).
_POW2NEG = np.exp2(-np.arange(int(_XMAX64 * _INV_LN2_32) + 2) / 32.0)


@njit(cache=True, error_model="numpy", inline="always")  # inlined so the calling loop vectorises
def exp_neg(x):
    """``exp(-x)`` for ``x >= 0`` in float64, within a few ulp of ``math.exp``; 0 for ``x >= 708`` and NaN.

    Range reduction ``x = n ln2/32 + r`` (Cody–Waite), the degree-6 Taylor
    polynomial of ``exp(-r)`` for ``|r| <= ln2/64``, and ``2^(-n/32)`` from a
    table.  Unlike a libm call LLVM can vectorise it (no SVML here), which
    makes the exponential conductance nearly as fast as the rational one.
    Results that would be subnormal are flushed to zero (as with FTZ), since
    subnormal arithmetic, even in a discarded vector lane, costs ~100x.
    """
    # Clamp before the table lookup: NaN (a non-finite gradient) and x >= 708 map to the last entry and
    # negative x to the first, so no value can index outside the table.
    xc = x if x < _XMAX64 else _XMAX64
    xc = xc if xc > 0.0 else 0.0
    n = np.floor(xc * _INV_LN2_32 + 0.5)
    r = (xc - n * _LN2_32_HI) - n * _LN2_32_LO
    y = -r
    p = 1.0 / 720.0
    p = p * y + 1.0 / 120.0
    p = p * y + 1.0 / 24.0
    p = p * y + 1.0 / 6.0
    p = p * y + 0.5
    p = p * y + 1.0
    p = p * y + 1.0
    e = p * _POW2NEG[np.int32(n)]  # n >= 0
    return e if x < _XMAX64 else 0.0 * e  # NaN compares false: g(NaN) = 0


_F32 = np.float32
_LN2_HI32 = _F32(0.693359375)  # Cody–Waite split of ln 2 for float32 (cephes expf)
_LN2_LO32 = _F32(-2.12194440e-4)
_LOG2E32 = _F32(1.44269504088896341)
_POW2NEG32 = np.array([2.0 ** -n for n in range(151)], dtype=np.float32)  # 2^-150 rounds to 0
_E32 = tuple(_F32(1.0 / math.factorial(k)) for k in range(8))
_XMAX32 = _F32(87.0)  # exp(-87) ~ 1.6e-38, just above float32's smallest normal
_HALF32 = _F32(0.5)
_ZERO32 = _F32(0.0)


@njit(cache=True, error_model="numpy", inline="always")
def exp_neg32(x):
    """``exp(-x)`` for ``x >= 0`` in float32 arithmetic, within a few float32 ulp; vectorises 8 wide.

    Flushed to 0 for ``x >= 87`` (results below float32's normal range).

    Same reduction as :func:`exp_neg`; degree-7 Taylor polynomial (truncation
    below 2e-8 for ``|r| <= ln2/2``) and a table of ``2^-n``, ``n <= 150``.
    """
    xc = x if x < _XMAX32 else _XMAX32  # NaN -> XMAX: the table index stays in range (see exp_neg)
    xc = xc if xc > _ZERO32 else _ZERO32
    n = np.floor(xc * _LOG2E32 + _HALF32)
    r = (xc - n * _LN2_HI32) - n * _LN2_LO32
    y = -r
    p = _E32[7]
    p = p * y + _E32[6]
    p = p * y + _E32[5]
    p = p * y + _E32[4]
    p = p * y + _E32[3]
    p = p * y + _E32[2]
    p = p * y + _E32[1]
    p = p * y + _E32[0]
    e = p * _POW2NEG32[np.uint32(n)]
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
