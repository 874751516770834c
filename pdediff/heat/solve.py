"""``solve_heat``: one function for the three heat-equation methods (a front door).

It checks its arguments once and plans the time steps (:mod:`pdediff._plan`),
then hands array and plan to the executor that the registry
(:mod:`pdediff._dispatch`) picks for the array's type.
"""

from __future__ import annotations

from typing import Any, Literal

from .. import catalogue
from .._dispatch import executor_for
from .._plan import prepare_heat
from .._validation import DEFAULT_MAX_STEPS

__all__ = ["solve_heat"]

#: The methods of :func:`solve_heat` (:data:`pdediff.catalogue.HEAT_METHODS`).
METHODS = catalogue.HEAT_METHODS


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
        whole number of them lands exactly on each requested time.  The
        spectral method refuses it (it takes no time steps).
    scheme : {"crank-nicolson", "backward-euler"}
        Time discretisation of the implicit method (the other methods refuse a
        value other than the default).  In 2-D/3-D it is split
        (Douglas ADI; with an array ``diffusivity`` and ``|dt L| > 64``, one
        1-D step per axis, because the Douglas scheme is unstable there):
        stable for any ``dt``, and float32 equals float64 to float32 precision
        at any ``dt``, but a step with ``dt`` far above the grid's time scales
        damps modes that vary along two axes hardly at all
        (docs/theory_heat.rst), which :class:`~pdediff.LargeStepWarning`
        reports; for large times prefer several moderate steps (``dt=None``)
        or ``method="spectral"``.
    spectrum : {"continuous", "discrete"}
        Eigenvalues used by the spectral method: of the continuous Laplacian
        (default, spectrally accurate) or of the 3/5/7-point stencil (the exact
        solution of the semi-discrete system).  The other methods refuse a value
        other than the default.
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
        ``u0`` is bool, complex, object or not an array (nor array-like).
    ParameterError
        (a ``ValueError``; ``err.param`` names the parameter) Unknown option,
        wrong dimensionality, non-finite input, negative ``t``
        or ``dt``, non-positive ``diffusivity`` or ``spacing``, array
        ``diffusivity`` with ``method="spectral"``.
    StabilityError
        ``method="explicit"`` with ``dt`` above the stability limit (the
        message states the limit).
    StepLimitError
        The explicit or implicit method would need more than ``max_steps`` steps.

    Warns
    -----
    LargeStepWarning
        ``method="implicit"`` in 2-D/3-D with a step so large that the ADI
        splitting keeps at least half of the slowest mixed mode where the heat
        flow would keep at most 1 % (the message names ``dt`` and suggests
        ``method="spectral"`` or smaller steps).

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
    # validate once and plan (pdediff._plan), then run on the executor of u0's array type (pdediff._dispatch):
    # in memory for NumPy/CuPy, chunk by chunk for Dask
    executor = executor_for(u0, "u0")
    u, plan = prepare_heat(executor.prepare, u0, t, method=method, diffusivity=diffusivity, spacing=spacing,
                           boundary=boundary, dt=dt, scheme=scheme, spectrum=spectrum, check_finite=check_finite,
                           max_steps=max_steps)
    return executor.solve_heat(u, plan)
