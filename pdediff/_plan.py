"""Plans: what a front door decided, frozen, for an executor to carry out.

:func:`pdediff.solve_heat`, :func:`pdediff.perona_malik` and
:func:`pdediff.inpaint` check every argument once, here, and record the
outcome in a frozen dataclass -- resolved dtype, grid, boundary, time steps
(step size and number of steps), conductance, kappa policy, the power-of-two
scaling.  The executors (:mod:`pdediff._memory` for NumPy and CuPy arrays,
:mod:`pdediff.dask` for Dask arrays; chosen by :mod:`pdediff._dispatch`) take
array and plan and never re-derive or re-check a parameter, so the two paths
cannot disagree on a default, a refusal or a message.

This module also holds what the plans and the executors share:

* time stepping: :func:`step_count`, :func:`steps_for`, :func:`pm_time_steps`;
* the exact power-of-two scaling of Perona–Malik's dimensionless copy
  (docs/conventions.rst §4): :func:`length_scale`, :func:`intensity_scale`,
  :func:`scale_for`, :func:`inverse_square`;
* conductances: :data:`CONDUCTANCE_CODES`, :func:`check_conductance`,
  :func:`callable_conductance`;
* the robust kappa rule: :data:`FACTORS` and :func:`kappa_from_spread`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from . import catalogue
from ._arrays import is_dask_array
from ._validation import (
    DEFAULT_MAX_STEPS,
    channel_axis_value,
    check_option,
    check_step_count,
    max_steps_value,
    nonnegative_int,
    nonnegative_scalar,
    positive_int,
    positive_or_auto,
    positive_scalar,
    positive_step,
    step_phrase,
    times_array,
)
from .errors import LargeStepWarning, ParameterError, StabilityError
from .grid import Grid
from .kernels.formulas import EXPONENTIAL, RATIONAL, TUKEY

__all__ = [
    "HeatPlan", "heat_plan", "prepare_heat", "PeronaMalikPlan", "perona_malik_plan", "prepare_perona_malik",
    "InpaintPlan", "inpaint_plan",
    "step_count", "steps_for", "pm_time_steps", "length_scale", "intensity_scale", "scale_for",
    "inverse_square", "CONDUCTANCE_CODES", "check_conductance", "callable_conductance", "FACTORS",
    "BASE", "CALIBRATION", "kappa_from_spread", "LINEAR_SOLVERS",
    "DEFAULT_NUM_ITER", "DEFAULT_SIGMA", "AOS_DT_FACTOR", "DEFAULT_PM_INPAINT_NUM_ITER", "DEFAULT_TOL",
]

#: Perona–Malik: default number of explicit iterations (at the stability limit), and Catté sigma in
#: cells of the finest axis (0.8 mm for 1 mm voxels, 0.068 mm for a 300 dpi scan): the defaults then
#: do the same to an image whatever units its spacing is written in.
DEFAULT_NUM_ITER = 15
DEFAULT_SIGMA = 0.8
#: Perona–Malik AOS default step, in multiples of the explicit stability limit.
AOS_DT_FACTOR = 4.0

#: The compiled conductances' codes (:mod:`pdediff.kernels.formulas`) by catalogue name.
CONDUCTANCE_CODES = {"exponential": EXPONENTIAL, "rational": RATIONAL, "tukey": TUKEY}
assert tuple(CONDUCTANCE_CODES) == catalogue.CONDUCTANCES

#: kappa = BASE * CALIBRATION * sigma_e per conductance.  Black et al. derive
#: sqrt(5) for Tukey's biweight and sqrt(2) for the Lorentzian (``rational``)
#: from the outlier-rejection point of each influence function; the
#: exponential's influence ``x exp(-x^2/K^2)`` peaks at ``K / sqrt(2)``, so
#: ``sqrt(2)`` puts that peak at ``sigma_e``.  CALIBRATION was measured on the
#: bundled MRI slice and on 2-D/3-D phantoms at 3, 5 and 10 % noise with the
#: default ``sigma`` and ``num_iter`` (docs/denoising.rst has the table): the
#: MAD of a Catté-smoothed image is set by the residual noise, and these
#: multiples keep its gradients below the switch-off point.
BASE = {"exponential": np.sqrt(2.0), "rational": np.sqrt(2.0), "tukey": np.sqrt(5.0)}
CALIBRATION = {"exponential": 1.3, "rational": 0.8, "tukey": 2.0}
FACTORS = {k: float(BASE[k] * CALIBRATION[k]) for k in BASE}


# ----------------------------------------------------------------------------- shared helpers
def step_count(interval: float, dt: float) -> float:
    """How many steps of at most ``dt`` cover ``interval`` (a float: may be astronomically large, or inf)."""
    q = interval / dt * (1 - 1e-12)
    return float(max(1, math.ceil(q))) if math.isfinite(q) else math.inf


def steps_for(interval: float, dt: float) -> tuple[int, float]:
    """A whole number of steps of at most ``dt`` that lands exactly on ``interval``: ``(n, interval / n)``."""
    n = int(step_count(interval, dt))
    return n, interval / n


def length_scale(spacing: tuple[float, ...]) -> float:
    """The power of two ``c`` that brings the finest cell width into ``[1, 2)`` (exact rescaling of lengths)."""
    return 2.0 ** (1 - math.frexp(min(spacing))[1])


def scale_for(amax: float, dtype) -> float:
    """The power of two that brings a finite ``amax`` into [0.5, 1) (1 for 0), a normal number of ``dtype``."""
    if amax == 0.0:
        return 1.0
    e = -math.frexp(amax)[1]
    lim = 120 if dtype == np.float32 else 1000  # 2**e must itself be a normal number of the type
    return 2.0 ** min(max(e, -lim), lim)


def intensity_scale(u: Any, xp: Any, amax: float | None = None) -> float:
    """A power of two ``a`` with ``max|a u| in [0.5, 1)`` (1 for zero or all-non-finite data).

    ``u``: a NumPy or CuPy array (``xp`` its module).  ``amax``: ``max|u|`` where the caller has it (a
    backend's fused one-pass scan); otherwise two reductions, no temporaries.  With NaN/inf present
    (``check_finite=False``) the finite values set the scale.
    """
    if amax is None:
        hi, lo = float(u.max()), float(u.min())
        amax = max(abs(hi), abs(lo))
    if not math.isfinite(amax):
        finite = u[xp.isfinite(u)]
        amax = float(xp.abs(finite).max()) if finite.size else 0.0
    return scale_for(amax, u.dtype)


def inverse_square(kappa: float, dtype) -> float:
    """``1 / kappa^2`` clamped to the dtype's finite range (kappa = inf gives 0: the heat equation).

    A tiny kappa (1e-300) would overflow to inf and make ``0 * inf = NaN`` in the kernels; the
    largest finite value gives the same conductance (0 on every face with a non-zero gradient, 1 where it is 0).
    """
    if math.isinf(kappa):
        return 0.0
    with np.errstate(over="ignore"):
        k2 = np.float64(kappa) * np.float64(kappa)
        kinv2 = float(np.float64(1.0) / k2) if k2 > 0 else math.inf
    return min(kinv2, float(np.finfo(dtype).max))


def check_conductance(conductance: Any) -> tuple[str, Callable | None]:
    """``(name, callable or None)`` of a ``conductance`` argument: a catalogue name or a callable ``g(s, kappa)``."""
    if callable(conductance):
        return getattr(conductance, "__name__", "callable"), conductance
    if isinstance(conductance, str):
        return check_option("conductance", conductance, catalogue.CONDUCTANCES), None
    raise TypeError(f"conductance must be one of {catalogue.CONDUCTANCES} or a callable g(s, kappa); "
                    f"got {conductance!r}")


def callable_conductance(fn: Callable, to_user: float, kappa: float, xp: Any) -> Callable:
    """The caller's ``g(s, kappa)`` on face magnitudes of the dimensionless image, checked.

    ``to_user`` turns the magnitudes back into the caller's units; a non-finite magnitude
    conducts nothing, as with the compiled conductances.
    """

    def g(s):
        val = xp.asarray(fn(s.astype(np.float64) * to_user, kappa), dtype=s.dtype)
        if val.shape != s.shape:
            raise ParameterError(f"{{conductance}} callable returned shape {val.shape}; expected {s.shape}",
                                 param="conductance")
        val = xp.where(xp.isfinite(s), val, val.dtype.type(0))
        if not bool(((val >= 0) & (val <= 1)).all()):
            raise ParameterError("{conductance} callable must return values in [0, 1] (needed for stability)",
                                 param="conductance")
        return val

    return g


def kappa_from_spread(mad: float, mean: float, conductance: str) -> float:
    """``factor * 1.4826 * MAD`` (Black et al.); on a MAD of 0, the mean magnitude (or 1) instead.

    The one kappa rule of every executor: ``mad`` and ``mean`` are the median
    absolute deviation and the mean of the face-gradient magnitudes.
    """
    sigma_e = 1.4826 * mad
    if not sigma_e > 0:  # piecewise-constant, noise-free input: MAD is 0
        sigma_e = mean if mean > 0 else 1.0
    return float(FACTORS.get(conductance, FACTORS["exponential"]) * sigma_e)


# ----------------------------------------------------------------------------- heat
@dataclass(frozen=True)
class HeatPlan:
    """:func:`pdediff.solve_heat`'s checked request.

    Attributes
    ----------
    method, boundary, scheme, spectrum : str
        Lower-case catalogue names.
    shape : tuple of int
        The spatial shape of ``u0``.
    dtype : numpy.dtype
        float32 or float64: the computation's and the result's.
    times : tuple of float
        The requested times, non-decreasing, non-negative.
    sequence : bool
        Whether ``t`` was a sequence (the result then has a leading time axis).
    solver : ExplicitHeatSolver, ImplicitHeatSolver or SpectralHeatSolver
        Built for the whole grid: grid, diffusivity, ``dt`` and the spectral symbols, checked.
    steps : tuple of (int, float)
        Per requested time, the number of steps from the previous time and
        their length (``(0, 0.0)`` where the interval is empty; all zero for
        the spectral method, which is exact in time).
    """

    method: str
    boundary: str
    scheme: str
    spectrum: str
    shape: tuple[int, ...]
    dtype: np.dtype
    times: tuple[float, ...]
    sequence: bool
    solver: Any
    steps: tuple[tuple[int, float], ...]


def heat_plan(shape: tuple[int, ...], dtype: Any, t: Any, *, method: str, diffusivity: Any, spacing: Any,
              boundary: str, dt: Any, scheme: str, spectrum: str, max_steps: Any) -> HeatPlan:
    """Check :func:`pdediff.solve_heat`'s arguments (those of ``u0`` aside) and plan the time steps.

    ``method``, ``boundary``, ``scheme`` and ``spectrum`` are the checked
    lower-case names; raises as :func:`pdediff.solve_heat` documents.
    """
    # the solver classes check grid, diffusivity and dt; imported here, not above, because
    # pdediff.heat's package face imports its front door, which imports this module
    from .heat.explicit import ExplicitHeatSolver
    from .heat.implicit import ImplicitHeatSolver
    from .heat.spectral import SpectralHeatSolver

    times, is_seq = times_array(t)
    if dt is not None:
        positive_step(dt)
    # an option of another method is refused, not ignored (dt with the default spectral method did nothing)
    for name, given, users, why in (
            ("dt", dt is not None and method == "spectral", "'explicit', 'implicit'",
             "the spectral method is exact in time: it takes no time steps"),
            ("scheme", scheme != "crank-nicolson" and method != "implicit", "'implicit'",
             "only the implicit method has a time discretisation to choose"),
            ("spectrum", spectrum != "continuous" and method != "spectral", "'spectral'",
             "only the spectral method uses eigenvalues")):
        if given:
            value = {"dt": dt, "scheme": scheme, "spectrum": spectrum}[name]
            raise ParameterError(f"{{{name}}} does not apply to {{method={method!r}}} (only to {users}: {why}); "
                                 f"got {{{name}={value!r}}}", param=name)
    max_steps_value(max_steps)  # validate even where the method ignores it
    if is_dask_array(diffusivity):
        raise TypeError("diffusivity must be a number or a NumPy array of u0's shape (a Dask diffusivity is not "
                        "supported; compute it first)")
    if method == "spectral":
        solver = SpectralHeatSolver(shape, dtype, diffusivity=diffusivity, spacing=spacing, boundary=boundary,
                                    spectrum=spectrum)
        steps = tuple((0, 0.0) for _ in times)
    else:
        if method == "explicit":
            solver = ExplicitHeatSolver(shape, dtype, diffusivity=diffusivity, spacing=spacing, boundary=boundary,
                                        dt=dt)
        else:
            solver = ImplicitHeatSolver(shape, dtype, diffusivity=diffusivity, spacing=spacing, boundary=boundary,
                                        dt=dt, scheme=scheme)
        step_dt = solver.dt
        intervals = np.diff(times, prepend=0.0)
        total = sum(step_count(iv, step_dt) for iv in intervals if iv > 0)
        rule = "the stability limit" if method == "explicit" else "the implicit solver's default"
        check_step_count(
            total, max_steps, f"{{method={method!r}}} up to {{t={times[-1]:.6g}}} with {step_phrase(dt, step_dt, rule)}",
            "use {method='spectral'} (exact in one transform pair, constant diffusivity)"
            + (" or {method='implicit'} (stable with any dt)" if method == "explicit" else " or a larger {dt}"),
        )
        steps = tuple(steps_for(float(iv), step_dt) if iv > 0 else (0, 0.0) for iv in intervals)
        if method == "implicit":
            _warn_large_adi_step(solver, max(dk for _, dk in steps))
    return HeatPlan(method=method, boundary=boundary, scheme=scheme, spectrum=spectrum, shape=tuple(shape),
                    dtype=np.dtype(dtype), times=tuple(float(x) for x in times), sequence=is_seq, solver=solver,
                    steps=steps)


def _warn_large_adi_step(solver: Any, dt: float) -> None:
    """:class:`~pdediff.errors.LargeStepWarning` when a 2-D/3-D implicit step of ``dt`` (above the default
    ``4 dt_max``) keeps at least half of the slowest mixed mode while the heat flow would keep at most 1 %."""
    if solver.grid.ndim < 2 or not dt > 4.0 * solver.dt_explicit_max * (1 + 1e-12):
        return
    keep, flow = solver.slow_mixed_mode(dt)
    if keep >= 0.5 and flow <= 0.01:
        warnings.warn(
            f"dt={dt:.6g} is far above this grid's slowest time scale: one implicit (ADI) step keeps {keep:.0%} "
            f"of the slowest mode that varies along several axes, where the heat flow keeps {flow:.1e} of it, so "
            "the result is not the heat flow at t (the splitting hardly damps such modes at large steps); use "
            "method='spectral' (exact in time, constant diffusivity) or smaller steps (dt=None takes "
            f"{4.0 * solver.dt_explicit_max:.6g})", LargeStepWarning, stacklevel=5)


def prepare_heat(prepare: Callable, u0: Any, t: Any, *, method: Any, diffusivity: Any, spacing: Any, boundary: Any,
                 dt: Any, scheme: Any, spectrum: Any, check_finite: bool, max_steps: Any) -> tuple[Any, HeatPlan]:
    """:func:`pdediff.solve_heat`'s checks, in its order: ``(prepare(u0, ...), plan)``.

    ``prepare``: an executor's :meth:`~pdediff._dispatch.Executor.prepare` (the array checks).
    """
    method = check_option("method", method, catalogue.HEAT_METHODS)
    boundary = check_option("boundary", boundary, catalogue.BOUNDARIES)
    scheme = check_option("scheme", scheme, catalogue.HEAT_SCHEMES)
    spectrum = check_option("spectrum", spectrum, catalogue.HEAT_SPECTRA)
    u = prepare(u0, "u0", ndim=(1, 2, 3), check_finite=check_finite)
    plan = heat_plan(tuple(u.shape), u.dtype, t, method=method, diffusivity=diffusivity, spacing=spacing,
                     boundary=boundary, dt=dt, scheme=scheme, spectrum=spectrum, max_steps=max_steps)
    return u, plan


# ----------------------------------------------------------------------------- Perona–Malik
@dataclass(frozen=True)
class PeronaMalikPlan:
    """:func:`pdediff.perona_malik`'s checked request, in the caller's units and scaled.

    Attributes
    ----------
    method : str
        ``"explicit"`` or ``"aos"``.
    conductance : str
        Catalogue name, or a callable's ``__name__``.
    conductance_fn : callable or None
        The caller's ``g(s, kappa)``, or ``None`` for the compiled conductance :attr:`code`.
    code : int
        Compiled conductance code (:data:`CONDUCTANCE_CODES`; the exponential's for a callable).
    channel_axis : int or None
        Non-negative channel axis of the image, or ``None``.
    shape : tuple of int
        Spatial shape.
    dtype : numpy.dtype
        float32 or float64.
    spacing : tuple of float
        Cell widths per spatial axis (caller's units).
    sigma, dt : float
        Catté smoothing (physical units) and time step (caller's units).
    num_iter : int
        Number of steps (0: the image is returned as a float copy).
    kappa : float or None
        The caller's edge threshold; ``None`` to estimate it (``kappa="auto"``).
    kappa_conductance : str
        Whose factor the estimate uses (the exponential's for a callable).
    length_scale : float
        The power of two ``c`` of the dimensionless copy (:func:`length_scale`).
    scaled_spacing : tuple of float
        ``c * spacing``.
    scaled_dt : float
        ``dt * c * c``.
    progress : bool
        Show a progress bar (executors that run at once; a lazy one ignores it).
    """

    method: str
    conductance: str
    conductance_fn: Callable | None
    code: int
    channel_axis: int | None
    shape: tuple[int, ...]
    dtype: np.dtype
    spacing: tuple[float, ...]
    sigma: float
    dt: float
    num_iter: int
    kappa: float | None
    kappa_conductance: str
    length_scale: float
    scaled_spacing: tuple[float, ...]
    scaled_dt: float
    progress: bool = False


def pm_time_steps(grid: Grid, dt: Any, num_iter: Any, method: str, max_steps: Any) -> tuple[float, int]:
    """The step ``dt`` and the number of steps of :func:`pdediff.perona_malik`, checked (stability, step limit)."""
    dt_max = grid.explicit_dt_limit()  # 0 <= g <= 1: the heat limit with D = 1
    if dt is None:
        dt_ = dt_max if method == "explicit" else AOS_DT_FACTOR * dt_max
    else:
        dt_ = positive_step(dt)
        if method == "explicit" and dt_ > dt_max * (1 + 1e-12):
            raise StabilityError(
                f"{{dt={dt_:.6g}}} exceeds the explicit Perona–Malik stability limit "
                f"1/(2 sum 1/h^2) = {dt_max:.6g}; use {{dt}} <= {dt_max:.6g} or {{method='aos'}}",
                param="dt",
            )
    if num_iter is None:
        n = max(1, int(round(DEFAULT_NUM_ITER * dt_max / dt_)))  # the steps that would run
        if dt is None:
            step = step_phrase(dt, dt_, "the stability limit" if method == "explicit" else
                               f"{AOS_DT_FACTOR:g} x the explicit stability limit")
            advice = ("pass {num_iter} (a shorter diffusion time)" if method == "explicit" else
                      "pass a larger {dt} (AOS is stable with any) or {num_iter}")
        else:
            step, advice = step_phrase(dt, dt_, ""), "use a larger {dt} (or {dt=None}), or pass {num_iter}"
        check_step_count(n, max_steps, f"the default diffusion time 15 * dt_max with {step}", advice)
        return dt_, n
    n = nonnegative_int(num_iter, "num_iter")
    check_step_count(n, max_steps, f"{{num_iter={n}}}",
                     "fewer, longer steps reach the same diffusion time with {method='aos'}")
    return dt_, n


def perona_malik_plan(shape: tuple[int, ...], dtype: Any, *, method: str, conductance: str,
                      conductance_fn: Callable | None, channel_axis: int | None, num_iter: Any, kappa: Any,
                      dt: Any, sigma: Any, spacing: Any, max_steps: Any, progress: bool = False) -> PeronaMalikPlan:
    """Check :func:`pdediff.perona_malik`'s arguments (those of ``image`` aside) and plan the steps.

    ``shape``: the image's full shape (channel axis included); ``method`` and
    ``conductance`` as returned by :func:`~pdediff._validation.check_option`
    and :func:`check_conductance`.
    """
    spatial = tuple(s for a, s in enumerate(shape) if a != channel_axis)
    grid = Grid(spatial, spacing)
    h = grid.spacing
    sigma_ = DEFAULT_SIGMA * min(h) if sigma is None else nonnegative_scalar(sigma, "sigma")
    dt_, n = pm_time_steps(grid, dt, num_iter, method, max_steps)
    kappa_ = positive_or_auto(kappa, "kappa")  # None for "auto"; inf refused (linear diffusion: solve_heat)
    c = length_scale(h)
    return PeronaMalikPlan(
        method=method, conductance=conductance, conductance_fn=conductance_fn,
        code=CONDUCTANCE_CODES.get(conductance, EXPONENTIAL), channel_axis=channel_axis, shape=grid.shape,
        dtype=np.dtype(dtype), spacing=h, sigma=sigma_, dt=dt_, num_iter=n, kappa=kappa_,
        kappa_conductance=conductance if conductance_fn is None else "exponential", length_scale=c,
        scaled_spacing=tuple(x * c for x in h), scaled_dt=dt_ * c * c, progress=bool(progress))


def prepare_perona_malik(prepare: Callable, image: Any, *, num_iter: Any, kappa: Any, conductance: Any, dt: Any,
                         sigma: Any, method: Any, spacing: Any, channel_axis: Any, check_finite: bool,
                         max_steps: Any, progress: bool = False) -> tuple[Any, PeronaMalikPlan]:
    """:func:`pdediff.perona_malik`'s checks, in its order: ``(prepare(image, ...), plan)``.

    ``prepare``: an executor's :meth:`~pdediff._dispatch.Executor.prepare` (the array checks).
    """
    method = check_option("method", method, catalogue.PM_METHODS)
    cond_name, cond_fn = check_conductance(conductance)
    # .ndim first: np.ndim of a Dask array goes through Dask's own array-function protocol
    ch = channel_axis_value(channel_axis, image.ndim if hasattr(image, "ndim") else np.ndim(image))
    u = prepare(image, "image", ndim=(1, 2, 3) if ch is None else (2, 3, 4), check_finite=check_finite)
    plan = perona_malik_plan(tuple(u.shape), u.dtype, method=method, conductance=cond_name, conductance_fn=cond_fn,
                             channel_axis=ch, num_iter=num_iter, kappa=kappa, dt=dt, sigma=sigma, spacing=spacing,
                             max_steps=max_steps, progress=progress)
    return u, plan


# ----------------------------------------------------------------------------- inpainting
#: :func:`pdediff.inpaint` ``solver`` (the linear solve of the harmonic and biharmonic fills).
LINEAR_SOLVERS = ("auto", "direct", "cg")
#: Perona–Malik inpainting's default number of AOS steps (tuning in :mod:`pdediff.restoration`).
DEFAULT_PM_INPAINT_NUM_ITER = 5
#: Default relative residual of the linear solves.
DEFAULT_TOL = 1e-8

_OPTION_DEFAULTS = {"tol": None, "max_iter": None, "solver": "auto", "num_iter": None, "kappa": "auto",
                    "conductance": "exponential", "sigma": None, "dt": None, "model": None, "jump_length": None,
                    "jump_n_sample": None, "num_inference_steps": None, "seed": None}
_LINEAR_OPTIONS = {"tol", "max_iter", "solver"}
_APPLIES = {"harmonic": _LINEAR_OPTIONS, "biharmonic": _LINEAR_OPTIONS,
            "perona_malik": _LINEAR_OPTIONS | {"num_iter", "kappa", "conductance", "sigma", "dt"},
            "learned": {"num_inference_steps", "model", "jump_length", "jump_n_sample", "seed"}}


@dataclass(frozen=True)
class InpaintPlan:
    """:func:`pdediff.inpaint`'s checked options (the image and mask are checked by the front door).

    Attributes
    ----------
    method : str
        Catalogue name (:data:`pdediff.catalogue.INPAINT_METHODS`).
    channel_axis : int or None
        Non-negative channel axis, or ``None``.
    tol : float
        Relative residual of the linear solve.
    max_iter : int or None
        Cap on the linear solver's work (``None``: its default).
    solver : str
        ``"auto"``, ``"direct"`` or ``"cg"``.
    num_iter : int or None
        Perona–Malik's AOS steps.
    dt, sigma : float or None
        Perona–Malik's step (``None`` until the grid is known: the explicit limit) and Catté sigma
        (``None``: 0.8 cells of the finest axis).
    conductance : str
        Perona–Malik's conductance.
    kappa : float or None
        Perona–Malik's edge threshold; ``None`` to estimate it on the known pixels.
    num_inference_steps : int or None
        Learned: the model's sampling steps (``None``: the run's default).
    jumps : mapping
        Learned: RePaint's ``jump_length``/``jump_n_sample`` where given (read-only).
    """

    method: str
    channel_axis: int | None
    tol: float = DEFAULT_TOL
    max_iter: int | None = None
    solver: str = "auto"
    num_iter: int | None = None
    dt: float | None = None
    sigma: float | None = None
    conductance: str = "exponential"
    kappa: float | None = None
    num_inference_steps: int | None = None
    jumps: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


def _setting(name: str, value: Any) -> str:
    """``{name=value}`` for a message template (``{name}=...`` where the value's repr holds braces)."""
    r = repr(value)
    if "{" in r or "}" in r:
        return f"{{{name}}}=<{type(value).__name__}>"
    return f"{{{name}={r}}}"


def _refuse_foreign_options(method: str, given: dict) -> None:
    """An option set for a method it does not apply to is an error, not silently ignored."""
    for name, value in given.items():
        default = _OPTION_DEFAULTS[name]
        if name in _APPLIES[method] or value is default or (isinstance(value, str) and value == default):
            continue
        users = ", ".join(repr(k) for k, opts in _APPLIES.items() if name in opts)
        raise ParameterError(f"{{{name}}} does not apply to {{method={method!r}}} (only to {users}); "
                             f"got {_setting(name, value)}", param=name)
    if method == "learned" and given["model"] is None:
        raise ParameterError("{method='learned'} needs {model}: a pdediff.torch.Run (pdediff.torch.load_run) "
                             "or a run folder", param="model")


def inpaint_plan(method: str, ndim: int, *, channel_axis: Any, tol: Any, max_iter: Any, solver: Any,
                 num_iter: Any, kappa: Any, conductance: Any, sigma: Any, dt: Any, model: Any,
                 jump_length: Any, jump_n_sample: Any, num_inference_steps: Any, seed: Any = None) -> InpaintPlan:
    """Check :func:`pdediff.inpaint`'s options for ``method`` (a checked name) and an image of ``ndim`` axes."""
    _refuse_foreign_options(method, dict(
        tol=tol, max_iter=max_iter, solver=solver, num_iter=num_iter, kappa=kappa, conductance=conductance,
        sigma=sigma, dt=dt, model=model, jump_length=jump_length, jump_n_sample=jump_n_sample,
        num_inference_steps=num_inference_steps, seed=seed))
    ch = channel_axis_value(channel_axis, ndim)
    if method == "learned":
        steps = None if num_inference_steps is None else nonnegative_int(num_inference_steps,
                                                                          "num_inference_steps")
        jumps = {name: positive_int(value, name) for name, value in
                 (("jump_length", jump_length), ("jump_n_sample", jump_n_sample)) if value is not None}
        return InpaintPlan(method=method, channel_axis=ch, num_inference_steps=steps, jumps=MappingProxyType(jumps))
    tol_ = DEFAULT_TOL if tol is None else positive_scalar(tol, "tol")
    if not tol_ < 1.0:  # |b - A x| / |b| = 1 at x = 0: a tolerance of 1 or more accepted a fill of zeros
        raise ParameterError(f"{{tol}} must lie in (0, 1) (the relative residual |b - A x| / |b| to reach; 1 "
                             f"or more is met by filling with 0); got {tol!r}", param="tol")
    max_iter_ = None if max_iter is None else positive_int(max_iter, "max_iter")
    solver_ = check_option("solver", solver, LINEAR_SOLVERS)
    if method != "perona_malik":
        return InpaintPlan(method=method, channel_axis=ch, tol=tol_, max_iter=max_iter_, solver=solver_)
    n_it = DEFAULT_PM_INPAINT_NUM_ITER if num_iter is None else nonnegative_int(num_iter, "num_iter")
    check_step_count(n_it, DEFAULT_MAX_STEPS, f"{{num_iter={n_it}}}", "use fewer, longer steps ({dt})")
    dt_ = None if dt is None else positive_step(dt)
    sigma_ = None if sigma is None else nonnegative_scalar(sigma, "sigma")
    cond = check_option("conductance", conductance, catalogue.CONDUCTANCES)
    kappa_ = positive_or_auto(kappa, "kappa")
    return InpaintPlan(method=method, channel_axis=ch, tol=tol_, max_iter=max_iter_, solver=solver_, num_iter=n_it,
                       dt=dt_, sigma=sigma_, conductance=cond, kappa=kappa_)
