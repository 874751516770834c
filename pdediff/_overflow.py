"""The heat solvers' exact power-of-two scaling of values near the dtype's limits (shared layer).

The heat equation is linear and a multiplication by a power of two is exact (short of the subnormal
range), so a solver may run on ``u * scale`` and divide the result by ``scale``: bit for bit the same
wherever ``scale`` is 1, and without overflow for any finite ``u``.  Used by the in-memory solvers
(:mod:`pdediff.heat`) and by the Dask executor (per chunk, or from a lazy reduction).  NumPy or CuPy arrays; the
CPU backend's ``abs_max`` finds ``max|u|`` in one fused pass.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

__all__ = ["check_unscaled", "overflow_limit", "overflow_scale", "overflow_scale_for", "underflow_scale_for"]

#: :func:`overflow_scale` keeps intermediates below the dtype's maximum divided by this margin (2**8).
_HEADROOM = 256.0


def overflow_scale_for(amax: float, dtype, growth: float) -> float:
    """:func:`overflow_scale` from ``amax = max|u|`` (a Python float; NaN, inf or 0 give 1)."""
    fmax = float(np.finfo(dtype).max)
    if not math.isfinite(amax) or amax == 0.0:
        return 1.0
    # (limit / growth) / amax, never amax * growth: that product overflows a Python float near float64's maximum
    ratio = fmax / _HEADROOM / growth / amax
    if ratio >= 1.0:
        return 1.0
    e = math.frexp(ratio)[1] - 1  # 2**e <= limit / (amax growth) < 2**(e + 1)
    lim = 120 if np.dtype(dtype) == np.float32 else 1000  # 2**e must itself be a normal number of the type
    return 2.0 ** max(e, -lim)


def overflow_limit(dtype, growth: float) -> float:
    """The largest finite ``max|u|`` for which :func:`overflow_scale_for` gives 1 (no scaling)."""
    return _overflow_limit(np.dtype(dtype), float(growth))


@functools.lru_cache(maxsize=64)
def _overflow_limit(dtype: np.dtype, growth: float) -> float:
    # cached: np.finfo costs microseconds, and the explicit heat step asks once per call
    return float(np.finfo(dtype).max) / _HEADROOM / growth


def overflow_scale(u: Any, growth: float) -> float:
    """A power of two ``2**-k <= 1`` that keeps ``growth * max|u|`` at most ``max(dtype) / 256``; 1 when it already is.

    The heat equation is linear and a multiplication by a power of two is exact (short of the subnormal
    range), so a solver may run on ``u * scale`` and divide the result by ``scale``: bit for bit the same
    wherever ``scale`` is 1, and without overflow for any finite ``u`` (``growth``: a bound on how far
    the scheme's intermediates exceed ``max|u|``).  NaN or inf in ``u``, or ``u == 0``, give 1.
    ``u``: a NumPy or CuPy array (the heat solvers, and each chunk of the Dask executor).
    """
    if u.size == 0:
        return 1.0
    from ._backend import backend_for  # the backend registry (lazy: this module sits below it)

    abs_max = getattr(backend_for(u), "abs_max", None)  # one fused pass where the backend has it (the CPU)
    amax = abs_max(u) if abs_max is not None else max(float(u.max()), -float(u.min()))
    return overflow_scale_for(amax, u.dtype, growth)


def check_unscaled(u: Any, scale: float, scheme: str) -> None:
    """Refuse a result that dividing by ``scale`` cannot bring back into the dtype's range.

    A scheme without a maximum principle (ADI's Douglas form, Crank–Nicolson) can overshoot its input (backward
    Euler ADI, 20 steps of ``dt = 10`` on random +-1 data in 2-D: up to 1.77 in float64 as in float32): on
    values that close to the dtype's maximum the *exact* result of the scheme is not representable.  Clipping
    it would be silent, an ``inf`` would be worse: an :class:`OverflowError` names the cause and the ways out.  Only called where ``scale < 1`` (values near the maximum), so it costs nothing
    otherwise.  ``u``: the scaled result (NumPy or CuPy).
    """
    if scale >= 1.0 or u.size == 0:
        return
    from ._backend import backend_for

    abs_max = getattr(backend_for(u), "abs_max", None)
    amax = abs_max(u) if abs_max is not None else max(float(u.max()), -float(u.min()))
    fmax = float(np.finfo(u.dtype).max)
    if math.isfinite(amax) and amax > fmax * scale:
        raise OverflowError(
            f"the {scheme} result exceeds {np.dtype(u.dtype).name}'s range (values up to {amax / scale:.4g}, the "
            f"largest finite being {fmax:.4g}): the scheme overshoots its input (it has no maximum principle) and "
            "the input lies that close to the type's maximum; use float64 data, or "
            "method='spectral' or 'explicit' (which keep the input's range)")


def underflow_scale_for(amax: float, dtype, coupling: float) -> float:
    """A power of two ``>= 1`` that brings ``amax = max|u|`` into ``[0.5, 1)`` where the implicit solver's line
    solves would lose bits to subnormal numbers; 1 otherwise (and for NaN, inf or 0).

    With couplings ``t = theta dt D / h^2`` up to ``coupling`` (at most ``2**100``), the Thomas sweeps form
    values down to about ``amax / coupling``: below the dtype's smallest normal number times
    ``2**(mantissa bits + 2)`` they would round to fewer bits than the type carries (float32 data of size
    ``1e-11`` at ``dt = 1e31`` lost 4 digits).  Scaling up by a power of two is exact, so the result is the
    unscaled computation's wherever that does not underflow.
    """
    if not math.isfinite(amax) or amax == 0.0:
        return 1.0
    fi = np.finfo(dtype)
    floor = float(fi.tiny) * max(coupling, 1.0) * 2.0 ** (fi.nmant + 2)
    if amax >= floor:
        return 1.0
    lim = 120 if np.dtype(dtype) == np.float32 else 1000  # 2**e must itself be a normal number of the type
    return 2.0 ** min(-math.frexp(amax)[1], lim)
