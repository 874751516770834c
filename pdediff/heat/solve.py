"""``solve_heat``: one function for the three heat-equation methods."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from .._backend import backend_for
from ..dask import is_dask_array
from .._validation import (BOUNDARIES, DEFAULT_MAX_STEPS, as_float_array, check_option, check_step_count,
                           max_steps_value, positive_step, times_array)
from .explicit import ExplicitHeatSolver
from .implicit import SCHEMES, ImplicitHeatSolver
from .spectral import SPECTRA, SpectralHeatSolver

__all__ = ["solve_heat"]

METHODS = ("spectral", "explicit", "implicit")


def _step_count(interval: float, dt: float) -> float:
    """How many steps of at most ``dt`` cover ``interval`` (a float: may be astronomically large, or inf)."""
    q = interval / dt * (1 - 1e-12)
    return float(max(1, math.ceil(q))) if math.isfinite(q) else math.inf


def _steps(interval: float, dt: float) -> tuple[int, float]:
    """A whole number of steps of at most ``dt`` that lands exactly on ``interval``."""
    n = int(_step_count(interval, dt))
    return n, interval / n


def solve_heat(
    u0: Any,
    t: float | Any,
    *,
    method: Literal["spectral", "explicit", "implicit"] = "spectral",
    diffusivity: float | Any = 1.0,
    spacing: float | Any = 1.0,
    boundary: Literal["neumann", "dirichlet", "periodic"] = "neumann",
    dt: float | None = None,
    scheme: Literal["crank-nicolson", "backward-euler"] = "crank-nicolson",
    spectrum: Literal["continuous", "discrete"] = "continuous",
    check_finite: bool = True,
    max_steps: int | None = DEFAULT_MAX_STEPS,
) -> Any:
    r"""Solve the heat equation :math:`u_t = \nabla\cdot(D \nabla u)` from ``u0`` up to time ``t``.

    Parameters
    ----------
    u0 : array, shape (n,), (ny, nx) or (nz, ny, nx)
        Initial state on the cell-centred grid (docs/conventions.rst §2).  float32 and
        float64 are kept; integer images are promoted to float64 without
        rescaling.  NumPy arrays run on the CPU, CuPy arrays on the GPU; a Dask
        array gives a lazy Dask array with the same chunks (docs/scaling.rst).
    t : float or 1-D sequence of float
        Final time (same time units as ``diffusivity``), or an increasing
        sequence of times, in which case the result has a leading time axis
        with one snapshot per time.
    method : {"spectral", "explicit", "implicit"}
        ``"spectral"``: exact in time (constant ``diffusivity`` only).
        ``"explicit"``: forward Euler, second order in space, first in time.
        ``"implicit"``: Crank–Nicolson or backward Euler (``scheme``), ADI in 2-D/3-D.
    diffusivity : float or array of u0's shape
        Positive diffusion coefficient ``D`` (physical length² per time unit).
    spacing : float or sequence of float
        Cell width per axis, in physical units (e.g. mm for a scan).
    boundary : {"neumann", "dirichlet", "periodic"}
        Zero flux, zero value on the outer faces, or wrap-around.
    dt : float, optional
        Time step for the explicit and implicit methods.  ``None`` picks one:
        the stability limit ``1 / (2 D_max sum_a 1/h_a^2)`` for explicit, four
        times that for implicit.  Steps are shortened slightly, if needed, so a
        whole number of them lands exactly on each requested time.  Ignored by
        the spectral method.
    scheme : {"crank-nicolson", "backward-euler"}
        Time discretisation of the implicit method.
    spectrum : {"continuous", "discrete"}
        Eigenvalues used by the spectral method: of the continuous Laplacian
        (default, spectrally accurate) or of the 3/5/7-point stencil (the exact
        solution of the semi-discrete system).
    check_finite : bool
        Raise ``ValueError`` on NaN/inf input (default).  ``False`` skips the
        scan; NaN and inf then propagate to their neighbours (never a crash).
    max_steps : int or None
        Upper bound on the number of explicit or implicit time steps (default
        100 000).  A request that needs more fails at once with
        :class:`~pdediff.StepLimitError`, stating the count and the cheaper
        method (the spectral solver is exact in one transform pair whatever
        ``t``); ``None`` removes the bound.  Ignored by the spectral method.

    Returns
    -------
    u : array
        ``u(t)`` with ``u0``'s shape (or ``(len(t), *u0.shape)`` for a sequence
        of times), float32 or float64 as ``u0``.  ``u0`` is not modified.

    Raises
    ------
    TypeError
        ``u0`` is bool, complex, object or not an array.
    ValueError
        Unknown option, wrong dimensionality, non-finite input, negative ``t``
        or ``dt``, non-positive ``diffusivity`` or ``spacing``, array
        ``diffusivity`` with ``method="spectral"``.
    StabilityError
        ``method="explicit"`` with ``dt`` above the stability limit (the
        message states the limit).
    StepLimitError
        The explicit or implicit method would need more than ``max_steps`` steps.

    Notes
    -----
    The implicit method is Crank–Nicolson [CN47]_ or backward Euler in time; in
    2-D/3-D each step is split by alternating directions (Peaceman–Rachford
    [PR55]_, Douglas [D62]_) into batched tridiagonal solves.  Heat flow for time
    ``t`` with diffusivity ``D`` is, on the unbounded domain, a Gaussian blur
    of standard deviation ``sqrt(2 D t)``.

    References
    ----------
    .. [CN47] J. Crank, P. Nicolson, "A practical method for numerical evaluation
       of solutions of partial differential equations of the heat-conduction
       type", Proc. Camb. Phil. Soc. 43(1), 1947.
    .. [PR55] D. W. Peaceman, H. H. Rachford, "The numerical solution of parabolic
       and elliptic differential equations", J. SIAM 3(1), 1955.
    .. [D62] J. Douglas, "Alternating direction methods for three space
       variables", Numer. Math. 4, 1962.

    Examples
    --------
    >>> import numpy as np
    >>> import pdediff
    >>> x = (np.arange(64) + 0.5) / 64
    >>> u0 = np.cos(np.pi * x)[:, None] * np.cos(np.pi * x)[None, :]
    >>> u = pdediff.solve_heat(u0, 0.01, spacing=1 / 64)
    >>> bool(np.allclose(u, u0 * np.exp(-2 * np.pi**2 * 0.01)))
    True
    >>> snaps = pdediff.solve_heat(u0, [0.0, 0.01, 0.02], method="implicit", spacing=1 / 64)
    >>> snaps.shape
    (3, 64, 64)
    """
    method = check_option("method", method, METHODS)
    boundary = check_option("boundary", boundary, BOUNDARIES)
    scheme = check_option("scheme", scheme, SCHEMES)
    spectrum = check_option("spectrum", spectrum, SPECTRA)
    if is_dask_array(u0):  # lazy, chunk by chunk: pdediff.dask (docs/scaling.rst)
        from ..dask._heat import solve_heat_dask

        return solve_heat_dask(u0, t, method=method, diffusivity=diffusivity, spacing=spacing, boundary=boundary,
                               dt=dt, scheme=scheme, spectrum=spectrum, check_finite=check_finite,
                               max_steps=max_steps)
    be = backend_for(u0)
    u0 = as_float_array(u0, "u0", check_finite=check_finite, xp=be.xp)
    times, is_seq = times_array(t)
    if dt is not None:
        positive_step(dt)
    max_steps_value(max_steps)  # validate even where the method ignores it

    if method == "spectral":
        solver = SpectralHeatSolver(u0.shape, u0.dtype, diffusivity=diffusivity, spacing=spacing,
                                    boundary=boundary, spectrum=spectrum)
        out = solver.evolve_many(u0, times)
        return out if is_seq else out[0]

    if method == "explicit":
        solver = ExplicitHeatSolver(u0.shape, u0.dtype, diffusivity=diffusivity, spacing=spacing,
                                    boundary=boundary, dt=dt)
    else:
        solver = ImplicitHeatSolver(u0.shape, u0.dtype, diffusivity=diffusivity, spacing=spacing,
                                    boundary=boundary, dt=dt, scheme=scheme)
    step_dt = solver.dt
    total = sum(_step_count(iv, step_dt) for iv in np.diff(times, prepend=0.0) if iv > 0)
    check_step_count(
        total, max_steps, f"method={method!r} up to t={times[-1]:.6g} with dt={step_dt:.6g}",
        "use method='spectral' (exact in one transform pair, constant diffusivity)"
        + (" or method='implicit' (stable with any dt)" if method == "explicit" else " or a larger dt"),
    )
    u = be.xp.array(u0, copy=True, order="C")
    out = be.xp.empty((len(times),) + tuple(u0.shape), dtype=u0.dtype)
    now = 0.0
    for k, tk in enumerate(times):
        interval = tk - now
        if interval > 0:
            n, dt_k = _steps(interval, step_dt)
            solver.step(u, n, dt=dt_k)
        out[k] = u
        now = tk
    return out if is_seq else out[0]
