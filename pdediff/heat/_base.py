"""What the three heat solvers share: grid, dtype, diffusivity and their validation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._backend import backend_for
from .._validation import as_float_array, float_dtype_of, positive_scalar
from ..errors import ParameterError
from ..grid import Grid


#: Intermediates are kept below the dtype's maximum divided by this margin (2**8).
_HEADROOM = 256.0


def overflow_scale(u: Any, growth: float) -> float:
    """A power of two ``2**-k <= 1`` that keeps ``growth * max|u|`` at most ``max(dtype) / 256``; 1 when it already is.

    The heat equation is linear and a multiplication by a power of two is exact (short of the subnormal
    range), so a solver may run on ``u * scale`` and divide the result by ``scale``: bit for bit the same
    wherever ``scale`` is 1, and without overflow for any finite ``u`` (``growth``: a bound on how far
    the scheme's intermediates exceed ``max|u|``).  NaN or inf in ``u``, or ``u == 0``, give 1.
    """
    if u.size == 0:
        return 1.0
    abs_max = getattr(backend_for(u), "abs_max", None)  # one fused pass where the backend has it (the CPU)
    amax = abs_max(u) if abs_max is not None else max(float(u.max()), -float(u.min()))
    fmax = float(np.finfo(u.dtype).max)
    if not math.isfinite(amax) or amax == 0.0:
        return 1.0
    # (limit / growth) / amax, never amax * growth: that product overflows a Python float near float64's maximum
    ratio = fmax / _HEADROOM / growth / amax
    if ratio >= 1.0:
        return 1.0
    e = math.frexp(ratio)[1] - 1  # 2**e <= limit / (amax growth) < 2**(e + 1)
    lim = 120 if u.dtype == np.float32 else 1000  # 2**e must itself be a normal number of the type
    return 2.0 ** max(e, -lim)


class _HeatSolverBase:
    """Validated grid, dtype and diffusivity; subclasses add the time stepping."""

    def __init__(self, shape, dtype=np.float64, *, diffusivity: Any = 1.0, spacing: Any = 1.0,
                 boundary: str = "neumann", allow_array_diffusivity: bool = True) -> None:
        self.grid = Grid(shape, spacing, boundary)
        self.dtype = float_dtype_of(np.dtype(dtype), "dtype")
        if np.ndim(diffusivity) == 0:
            self.diffusivity: float | np.ndarray = positive_scalar(diffusivity, "diffusivity")
            self.diffusivity_max = float(self.diffusivity)
        else:
            if not allow_array_diffusivity:
                raise ParameterError(
                    "{diffusivity} must be a positive scalar for the spectral method "
                    "(an array diffusivity needs {method='explicit'} or 'implicit')", param="diffusivity"
                )
            D = as_float_array(diffusivity, "diffusivity", ndim=(self.grid.ndim,))
            D = np.asarray(D, dtype=np.float64)
            if D.shape != self.grid.shape:
                raise ParameterError(f"{{diffusivity}} array must have the shape of u0 {self.grid.shape}; got {D.shape}",
                                     param="diffusivity")
            if np.any(D <= 0):
                raise ParameterError("{diffusivity} must be positive everywhere", param="diffusivity")
            self.diffusivity = D
            self.diffusivity_max = float(D.max())

    @property
    def shape(self) -> tuple[int, ...]:
        return self.grid.shape

    @property
    def variable(self) -> bool:
        return isinstance(self.diffusivity, np.ndarray)

    def _check_state(self, u: Any) -> None:
        if tuple(u.shape) != self.shape or u.dtype != self.dtype:
            raise ValueError(
                f"u must have shape {self.shape} and dtype {self.dtype} (this solver's); "
                f"got shape {tuple(u.shape)} and dtype {u.dtype}"
            )
        if not u.flags.c_contiguous:
            raise ValueError("u must be C-contiguous (use numpy.ascontiguousarray)")

    def _step_args(self, u: Any, n: Any, dt: Any) -> tuple[int, float]:
        """Validate a ``step(u, n, dt=...)`` call: ``u``'s shape, dtype and layout, ``n >= 0``; ``dt`` or the default."""
        self._check_state(u)
        if not getattr(u.flags, "writeable", True):  # (CuPy arrays have no such flag: always writeable)
            raise ValueError("u is read-only, but step(u, n) advances it in place; pass a writeable copy (u.copy())")
        dt = self.dt if dt is None else self.check_dt(dt)
        n = int(n)
        if n < 0:
            raise ValueError(f"n must be a non-negative number of steps; got {n}")
        return n, dt
