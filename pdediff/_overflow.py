"""The heat solvers' exact power-of-two scaling of values near the dtype's maximum (shared layer).

The heat equation is linear and a multiplication by a power of two is exact (short of the subnormal
range), so a solver may run on ``u * scale`` and divide the result by ``scale``: bit for bit the same
wherever ``scale`` is 1, and without overflow for any finite ``u``.  Used by the in-memory solvers
(:mod:`pdediff.heat`) and by the Dask executor (per chunk, or from a lazy reduction).  NumPy only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["overflow_scale", "overflow_scale_for"]

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
    return overflow_scale_for(max(float(u.max()), -float(u.min())), u.dtype, growth)

