"""``perona_malik``: edge-preserving diffusion of 1-D/2-D/3-D images and scans.

A front door: :func:`perona_malik` checks its arguments once and plans the
steps (:mod:`pdediff._plan`), then hands array and plan to the executor that
the registry (:mod:`pdediff._dispatch`) picks for the array's type; the
executor makes the dimensionless copy of the image (scaled by powers of two,
docs/conventions.rst §4) and runs the steppers of :mod:`pdediff._steppers`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .. import catalogue
from .._dispatch import executor_for
from .._plan import AOS_DT_FACTOR, DEFAULT_NUM_ITER, DEFAULT_SIGMA, PeronaMalikPlan, prepare_perona_malik
from .._validation import DEFAULT_MAX_STEPS

__all__ = ["perona_malik", "PeronaMalikResult", "CONDUCTANCES", "METHODS"]

#: Named conductances (:data:`pdediff.catalogue.CONDUCTANCES`).
CONDUCTANCES = catalogue.CONDUCTANCES
#: Methods (:data:`pdediff.catalogue.PM_METHODS`).
METHODS = catalogue.PM_METHODS
# DEFAULT_NUM_ITER, DEFAULT_SIGMA and AOS_DT_FACTOR (the defaults) live in pdediff._plan, imported above so
# that they stay attributes of this module


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

    @classmethod
    def from_plan(cls, plan: PeronaMalikPlan, kappa: float) -> PeronaMalikResult:
        """The summary of a carried-out plan, with the ``kappa`` used."""
        return cls(kappa=kappa, dt=plan.dt, num_iter=plan.num_iter, sigma=plan.sigma, conductance=plan.conductance,
                   method=plan.method, spacing=plan.spacing)


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
        Finite: ``inf`` (linear diffusion) is refused; use :func:`pdediff.solve_heat`.
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
    ParameterError
        (a ``ValueError``; ``err.param`` names the parameter) Unknown option,
        wrong dimensionality, non-finite input, non-positive
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
    and Malik (and of MedPy's ``anisotropic_diffusion`` with ``gamma=dt``:
    options 1 and 2 are ``"exponential"`` and ``"rational"`` at the same
    ``kappa``; option 3 scales its kappa by sqrt(2), so it is ``"tukey"`` with
    ``kappa = sqrt(2) * MedPy's kappa``).
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
    # validate once and plan (pdediff._plan), then run on the executor of the image's array type
    # (pdediff._dispatch): in memory for NumPy/CuPy, chunk by chunk for Dask
    executor = executor_for(image, "image")
    u, plan = prepare_perona_malik(executor.prepare, image, num_iter=num_iter, kappa=kappa, conductance=conductance,
                                   dt=dt, sigma=sigma, method=method, spacing=spacing, channel_axis=channel_axis,
                                   check_finite=check_finite, max_steps=max_steps, progress=progress)
    out, kappa_used = executor.perona_malik(u, plan)
    return (out, PeronaMalikResult.from_plan(plan, kappa_used)) if return_info else out
