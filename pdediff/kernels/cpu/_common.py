"""What the CPU kernels share: the compiled formulas, the exp primitive, and the kernel registry.

* :data:`F`: :mod:`pdediff.kernels.formulas` compiled for the CPU (inlined
  into the kernels, so their loops still vectorise), with the vectorisable
  exponentials :func:`exp_neg` / :func:`exp_neg32` as the target primitive.
* :func:`register_kernel` / :func:`kernel`: every CPU kernel is one Python
  driver, compiled twice, serial and with ``prange`` threads, and looked up by
  ``(operation, spatial dimensions, coefficient kind)`` in the spirit of
  py-pde's ``register_operator``; :func:`use_parallel` picks the variant by size.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable

import numba
import numpy as np
from numba import njit

from ..formulas import compile_formulas

__all__ = ["F", "exp_neg", "exp_neg32", "register_kernel", "kernel", "kernel_builds", "use_parallel",
           "PARALLEL_MIN_CELLS"]

#: Arrays with fewer cells than this run on one thread.  Measured on the 2-core
#: development machine (explicit heat step, float32): serial 4 us vs parallel 6 us
#: at 16², 9 vs 7 us at 32², 18 vs 9 us at 64², 713 vs 294 us at 1024² -- the
#: launch cost of a parallel region is a few microseconds and the stencil is
#: compute-bound enough in L2/L3 that the second core pays from ~1000 cells on.
PARALLEL_MIN_CELLS = 1 << 12


def use_parallel(size: int) -> bool:
    return size >= PARALLEL_MIN_CELLS and numba.config.NUMBA_NUM_THREADS > 1


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

    def for_size(self, size: int):
        return self.parallel if use_parallel(size) else self.serial


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


def kernel(op: str, ndim: int, coef: str, size: int):
    """The compiled driver for ``(op, ndim, coef)``, parallel if an array of ``size`` cells pays for it."""
    return _KERNELS[(op, ndim, coef)].for_size(size)
