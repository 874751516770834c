"""``perona_malik``: edge-preserving diffusion of 1-D/2-D/3-D images and scans.

The public function validates its arguments, makes a dimensionless copy of the
image (scaled by powers of two, docs/conventions.rst §4) and runs the steppers
of :mod:`._steppers`; the automatic kappa comes from :mod:`.kappa`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .._backend import backend_for
from ..dask import is_dask_array
from .._validation import (DEFAULT_MAX_STEPS, as_float_array, channel_axis_value, check_option, check_step_count,
                           nonnegative_int, nonnegative_scalar, positive_or_auto, positive_step)
from ..errors import StabilityError
from ..grid import Grid
from ..kernels.formulas import EXPONENTIAL, RATIONAL, TUKEY
from ._steppers import make_smoother, make_stepper
from .kappa import estimate_kappa

__all__ = ["perona_malik", "PeronaMalikResult", "CONDUCTANCES", "METHODS"]

CONDUCTANCES = ("exponential", "rational", "tukey")
METHODS = ("explicit", "aos")
_CODE = {"exponential": EXPONENTIAL, "rational": RATIONAL, "tukey": TUKEY}

#: Default number of explicit iterations (at the stability limit), and Catté sigma in cells of the
#: finest axis (0.8 mm for 1 mm voxels, 0.068 mm for a 300 dpi scan): the defaults then do the same
#: to an image whatever units its spacing is written in.
DEFAULT_NUM_ITER = 15
DEFAULT_SIGMA = 0.8
#: AOS default step, in multiples of the explicit stability limit.
AOS_DT_FACTOR = 4.0


@dataclass(frozen=True)
class PeronaMalikResult:
    """What :func:`perona_malik` used, returned with ``return_info=True`` (in the caller's units)."""

    kappa: float
    dt: float
    num_iter: int
    sigma: float
    conductance: str
    method: str
    spacing: tuple[float, ...]


def perona_malik(
    image: Any,
    *,
    num_iter: int | None = None,
    kappa: float | Literal["auto"] = "auto",
    conductance: Literal["exponential", "rational", "tukey"] | Callable = "exponential",
    dt: float | None = None,
    sigma: float | None = None,
    method: Literal["explicit", "aos"] = "explicit",
    spacing: float | Any = 1.0,
    channel_axis: int | None = None,
    check_finite: bool = True,
    max_steps: int | None = DEFAULT_MAX_STEPS,
    return_info: bool = False,
    progress: bool = False,
) -> Any:
    r"""Perona–Malik anisotropic diffusion :math:`u_t = \nabla\cdot(g(|\nabla u|)\nabla u)`.

    Smooths noise inside regions while keeping edges whose gradient exceeds
    ``kappa``.  Neumann (zero-flux) boundaries: the mean is conserved and the
    output stays within the input's range.

    Parameters
    ----------
    image : array, shape (n,), (ny, nx) or (nz, ny, nx), plus a channel axis if ``channel_axis``
        float32/float64 kept (any byte order; computed in native order);
        float16 promoted to float32; integer scans (uint8/uint16/int16...)
        promoted to float64 without rescaling.  NumPy arrays run on the CPU
        kernels, CuPy arrays on the GPU; a Dask array gives a lazy Dask array
        with the same chunks (``kappa="auto"`` is then computed at once, in
        streaming passes over the chunks; docs/scaling.rst).  Any finite values are safe: the
        computation is carried out on the image scaled by a power of two
        (exact), so values near the type's limits cannot overflow.
    num_iter : int, optional
        Number of time steps.  ``None``: 15 explicit steps at the stability
        limit, or the same diffusion time (``15 * dt_max``) in AOS steps.
    kappa : float or "auto"
        Edge threshold, in intensity units per physical length (the gradient
        magnitude at which the conductance switches off).  ``"auto"`` estimates
        it from the (smoothed) input as ``factor * 1.4826 * MAD(|grad u|)``
        (Black et al. [BSMH98]_); the value used is returned with ``return_info=True``.
    conductance : {"exponential", "rational", "tukey"} or callable
        ``exp(-(s/K)^2)``, ``1/(1+(s/K)^2)``, or Tukey's biweight
        ``0.5 (1-(s/K)^2)^2`` for ``s <= K`` (else 0).  A callable ``g(s, kappa)``
        receives arrays of gradient magnitudes (physical units, the array
        module of the image: NumPy or CuPy) and must return values in
        ``[0, 1]``; it runs as array operations, slower than the compiled
        named ones.
    dt : float, optional
        Time step.  Explicit: at most ``dt_max = 1 / (2 sum_a 1/h_a^2)`` (0.25
        in 2-D, 1/6 in 3-D for unit spacing), the default; larger raises
        :class:`~pdediff.StabilityError`.  AOS: any positive value, default
        ``4 * dt_max``.
    sigma : float, optional
        Standard deviation (physical units) of the Gaussian pre-smoothing of the
        image that feeds the conductance at every step (Catté et al. [CLMC92]_
        regularisation, well-posed for ``sigma > 0``).  0 gives the classic
        Perona–Malik scheme.  Default ``None``: 0.8 cells of the finest axis,
        ``0.8 * min(spacing)``, so the default does the same whatever unit the
        spacing is in.  Up to 4 pixels it is a truncated Gaussian convolution
        (``scipy.ndimage.gaussian_filter``, reflecting boundaries); wider, the
        exact Gaussian (heat flow for ``t = sigma^2/2``) in the DCT domain, so
        any ``sigma`` costs O(N log N).
    method : {"explicit", "aos"}
        The 2N-neighbour explicit scheme [PM90]_ or Weickert's additive operator
        splitting [WRV98]_ (semi-implicit, unconditionally stable).
    spacing : float or sequence of float
        Voxel size per spatial axis (e.g. ``(3.0, 1.0, 1.0)`` mm).
    channel_axis : int, optional
        Axis of colour channels.  Channels share one conductance, computed
        from the sum of their squared gradients, so edges stay aligned.
    check_finite : bool
        Raise ``ValueError`` on NaN/inf input.  ``False`` skips the scan: the
        kernels stay safe (a face with a non-finite gradient conducts
        nothing), but NaN/inf spread to their neighbours.
    max_steps : int or None
        Refuse (:class:`~pdediff.StepLimitError`, before any work) a
        ``num_iter`` above this bound, default 100 000 (e.g. from a tiny
        ``dt``); ``None`` removes it.
    return_info : bool
        Also return a :class:`PeronaMalikResult` with ``kappa``, ``dt`` etc.
    progress : bool
        Show a tqdm progress bar (not for Dask arrays, which compute later: use
        ``dask.diagnostics.ProgressBar`` around ``compute()``).

    Returns
    -------
    out : ndarray
        The filtered image, same shape and (float) dtype as ``image``.
    info : PeronaMalikResult
        Only with ``return_info=True``.

    Raises
    ------
    TypeError
        bool/complex/object input, non-callable non-string ``conductance``.
    ValueError
        Unknown option, wrong dimensionality, non-finite input, non-positive
        ``kappa``/``dt``/``spacing``, negative ``sigma`` or ``num_iter``.
    StabilityError
        Explicit ``dt`` above the stability limit.
    StepLimitError
        More than ``max_steps`` iterations requested (explicitly or through ``dt``).

    Notes
    -----
    Explicit scheme, per face between cells ``i`` and ``j`` along axis ``a``:
    ``d = (u_j - u_i) / h_a``, flux ``g(|d|) d / h_a``, ``u_i += dt * sum``.
    With unit spacing and ``sigma=0`` this is the classic iteration of Perona
    and Malik (and of MedPy's ``anisotropic_diffusion`` with ``gamma=dt``).
    AOS: ``u' = (1/m) sum_a (I - m dt A_a(u))^{-1} u`` with one batched
    tridiagonal solve per axis.

    References
    ----------
    .. [PM90] P. Perona, J. Malik, "Scale-space and edge detection using
       anisotropic diffusion", IEEE TPAMI 12(7), 1990.
    .. [CLMC92] F. Catté, P.-L. Lions, J.-M. Morel, T. Coll, "Image selective
       smoothing and edge detection by nonlinear diffusion", SIAM J. Numer.
       Anal. 29(1), 1992.
    .. [BSMH98] M. J. Black, G. Sapiro, D. Marimont, D. Heeger, "Robust anisotropic
       diffusion", IEEE TIP 7(3), 1998.
    .. [WRV98] J. Weickert, B. ter Haar Romeny, M. Viergever, "Efficient and
       reliable schemes for nonlinear diffusion filtering", IEEE TIP 7(3), 1998.

    Examples
    --------
    >>> import numpy as np
    >>> import pdediff
    >>> rng = np.random.default_rng(0)
    >>> clean = np.zeros((64, 64)); clean[16:48, 16:48] = 1.0
    >>> noisy = clean + 0.05 * rng.standard_normal(clean.shape)
    >>> out, info = pdediff.perona_malik(noisy, return_info=True)
    >>> bool(np.abs(out - clean).mean() < np.abs(noisy - clean).mean() / 2)
    True
    >>> info.method, info.num_iter
    ('explicit', 15)
    """
    if is_dask_array(image):  # lazy, chunk by chunk: pdediff.dask (docs/scaling.rst)
        from ..dask._pm import perona_malik_dask

        return perona_malik_dask(image, num_iter=num_iter, kappa=kappa, conductance=conductance, dt=dt, sigma=sigma,
                                 method=method, spacing=spacing, channel_axis=channel_axis,
                                 check_finite=check_finite, max_steps=max_steps, return_info=return_info)
    method = check_option("method", method, METHODS)
    if callable(conductance):
        cond_name, cond_fn = getattr(conductance, "__name__", "callable"), conductance
    elif isinstance(conductance, str):
        cond_name, cond_fn = check_option("conductance", conductance, CONDUCTANCES), None
    else:
        raise TypeError(f"conductance must be one of {CONDUCTANCES} or a callable g(s, kappa); got {conductance!r}")
    be = backend_for(image)
    xp = be.xp

    # -- array and channel axis: u is (C, *spatial) -----------------------------------
    ch = channel_axis_value(channel_axis, np.ndim(image))
    u = as_float_array(image, "image", ndim=(1, 2, 3) if ch is None else (2, 3, 4), check_finite=check_finite, xp=xp)
    u = u[None] if ch is None else xp.moveaxis(u, ch, 0)
    grid = Grid(u.shape[1:], spacing)
    h = grid.spacing

    # -- parameters, in the caller's units ----------------------------------------------
    sigma = DEFAULT_SIGMA * min(h) if sigma is None else nonnegative_scalar(sigma, "sigma")
    dt_, num_iter_ = _time_steps(grid, dt, num_iter, method, max_steps)
    kappa_user = positive_or_auto(kappa, "kappa")  # None for "auto"; inf is the heat equation (g = 1)

    # -- dimensionless copy: intensities and lengths scaled by powers of two ------------
    # Perona–Malik commutes with u -> a u, h -> c h (kappa -> a kappa / c, dt -> c^2 dt); with a, c
    # powers of two every product below is the same floating-point operation, exactly scaled, as on
    # the caller's data, while |u| < 1 and h_min in [1, 2) keep d^2 / kappa^2 and 1 / h^2 far from
    # overflow and underflow whatever the input's magnitude (1e30 float32 data are safe).
    a = _intensity_scale(u, xp)
    c = 2.0 ** (1 - math.frexp(min(h))[1])
    hs = tuple(x * c for x in h)
    dts = dt_ * c * c
    u = xp.ascontiguousarray(u * u.dtype.type(a))  # also the copy that protects the caller's array
    smooth = make_smoother(sigma * c, hs, u.shape, u.dtype, be)
    v0 = None  # the smoothed input, computed once if kappa needs it and reused by the first step
    if kappa_user is None:
        v0 = smooth(u)
        kappa_s = estimate_kappa(v0, hs, cond_name if cond_fn is None else "exponential")
        kappa_ = kappa_s * c / a
    else:
        kappa_ = kappa_user
        kappa_s = kappa_user * a / c

    info = PeronaMalikResult(kappa=kappa_, dt=dt_, num_iter=num_iter_, sigma=sigma, conductance=cond_name,
                             method=method, spacing=h)
    if num_iter_ > 0:
        g = None if cond_fn is None else _callable_conductance(cond_fn, c / a, kappa_, xp)
        stepper = make_stepper(u, hs, dts, _inverse_square(kappa_s, u.dtype), _CODE.get(cond_name, EXPONENTIAL), g,
                               method, be)
        iterator = range(num_iter_)
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, desc=f"Perona–Malik ({method})", unit="it", leave=False, disable=None)
        buf = xp.empty_like(u)
        if sigma == 0 and not progress and hasattr(stepper, "steps"):
            # no smoothing: several steps per memory pass where the backend offers it, bit for bit the same
            u = stepper.steps(u, buf, num_iter_)
        else:
            for _ in iterator:
                v = smooth(u) if v0 is None else v0
                v0 = None
                stepper(u, v, buf)
                u, buf = buf, u

    if a != 1.0:
        u *= u.dtype.type(1.0 / a)
    out = u[0] if ch is None else xp.moveaxis(u, 0, ch)
    out = xp.ascontiguousarray(out)
    return (out, info) if return_info else out


def _time_steps(grid: Grid, dt: Any, num_iter: Any, method: str, max_steps: Any) -> tuple[float, int]:
    """The step ``dt`` and the number of steps, checked (stability, step limit) before any work.

    Shared by the in-memory and the Dask paths, so that both refuse and default alike.
    """
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
        n_est = DEFAULT_NUM_ITER * dt_max / dt_
        check_step_count(n_est, max_steps, f"the default diffusion time 15 * dt_max with dt={dt_:.6g}",
                         "use a larger dt (or dt=None), or pass num_iter")
        return dt_, max(1, int(round(n_est)))
    n = nonnegative_int(num_iter, "num_iter")
    check_step_count(n, max_steps, f"num_iter={n}",
                     "fewer, longer steps reach the same diffusion time with method='aos'")
    return dt_, n


def _intensity_scale(u, xp) -> float:
    """A power of two ``a`` with ``max|a u| in [0.5, 1)`` (1 for zero or all-non-finite data).

    Two reductions, no temporaries.  With NaN/inf present (``check_finite=False``) the
    finite values set the scale.
    """
    hi, lo = float(u.max()), float(u.min())
    amax = max(abs(hi), abs(lo))
    if not math.isfinite(amax):
        finite = u[xp.isfinite(u)]
        amax = float(xp.abs(finite).max()) if finite.size else 0.0
    return _scale_for(amax, u.dtype)


def _scale_for(amax: float, dtype) -> float:
    """The power of two that brings a finite ``amax`` into [0.5, 1) (1 for 0), a normal number of ``dtype``."""
    if amax == 0.0:
        return 1.0
    e = -math.frexp(amax)[1]
    lim = 120 if dtype == np.float32 else 1000  # 2**e must itself be a normal number of the type
    return 2.0 ** min(max(e, -lim), lim)


def _inverse_square(kappa: float, dtype) -> float:
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


def _callable_conductance(fn: Callable, to_user: float, kappa: float, xp) -> Callable:
    """The caller's ``g(s, kappa)`` on face magnitudes of the dimensionless image, checked.

    ``to_user`` turns the magnitudes back into the caller's units; a non-finite magnitude
    conducts nothing, as with the compiled conductances.
    """

    def g(s):
        val = xp.asarray(fn(s.astype(np.float64) * to_user, kappa), dtype=s.dtype)
        if val.shape != s.shape:
            raise ValueError(f"conductance callable returned shape {val.shape}; expected {s.shape}")
        val = xp.where(xp.isfinite(s), val, val.dtype.type(0))
        if not bool(((val >= 0) & (val <= 1)).all()):
            raise ValueError("conductance callable must return values in [0, 1] (needed for stability)")
        return val

    return g
