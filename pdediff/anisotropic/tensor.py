"""``tensor_diffusion``: Weickert's edge-enhancing (EED) and coherence-enhancing (CED) diffusion, 2-D and 3-D.

The public function validates its arguments and runs explicit steps of
``u_t = div(D(J_rho(grad u_sigma)) grad u)`` on the compiled kernels of
:mod:`pdediff.kernels.cpu.tensor` (CuPy arrays: those of the GPU backend,
:mod:`pdediff.kernels.gpu.tensor`, through :class:`_DeviceLinks`): structure tensor, diffusion tensor, its
Selling (obtuse-superbase) decomposition into a non-negative stencil, and the
symmetric flux scatter.  Theory, stencil and stability: docs/tensor_diffusion.rst.
"""

from __future__ import annotations

import functools
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numba
import numpy as np
from scipy.ndimage import gaussian_filter

from .._backend import backend_for
from .._dispatch import executor_for
from .._plan import intensity_scale, inverse_square
from .._validation import (DEFAULT_MAX_STEPS, as_float_array, channel_axis_value, check_step_count,
                           nonnegative_int, nonnegative_scalar, positive_or_auto, positive_scalar,
                           positive_step, step_phrase)
from .. import catalogue
from ..catalogue import TENSOR_KINDS
from .._arrays import is_dask_array
from ..errors import ParameterError, StabilityError
from ..grid import BC_CODE, Grid
from ..kernels.cpu import tensor as K
from . import _tensor_implicit as _SI
from .kappa import estimate_kappa

__all__ = ["tensor_diffusion", "TensorDiffusionResult", "KINDS", "TENSOR_CONDUCTANCES"]

#: ``kind``: edge-enhancing or coherence-enhancing diffusion.
KINDS = TENSOR_KINDS
#: EED ``conductance`` (diffusivity across an edge as a function of ``x = |grad u_sigma|^2 / kappa^2``).
TENSOR_CONDUCTANCES = catalogue.TENSOR_CONDUCTANCES
_COND = {"weickert": K.WEICKERT, "exponential": K.EXPONENTIAL, "rational": K.RATIONAL}
_MODES = {"neumann": "reflect", "periodic": "wrap", "dirichlet": "constant"}

#: Default number of explicit steps (at the stability limit): diffusion time 50 * dt_max for CED; for
#: EED the fixed default of the torch operator (15 * dt_max), while :func:`tensor_diffusion` follows the
#: noise (:data:`EED_STEPS_PER_NOISE`).
DEFAULT_NUM_ITER = {"eed": 15, "ced": 50}
#: EED's default stopping time: ``EED_STEPS_PER_NOISE * nu / R`` steps at the stability limit (at least
#: 1), ``nu / R`` the noise as a fraction of the grey range estimated from the image
#: (:func:`_noise_fraction`): about 6 steps at 10 % noise, 12 at 20 %.  Tuned on the study's training
#: images (astronaut, chelsea, coffee; 192²), where the best times were 4–8 steps at 10 % and 11–15 at
#: 20 % (docs/tensor_diffusion.rst); a fixed time cannot follow the noise.
EED_STEPS_PER_NOISE = 60.0
#: Above this ``max|u|`` (per dtype) the in-memory path runs on ``u`` scaled by a power of two: differences and the
#: grey range of values near float64's maximum overflow, and in float32 the structure tensor's squared gradients
#: overflow from about 1e19 (at 1e36 EED differed from the unscaled result by 24 grey levels of 255).  Below it
#: nothing is scaled, so results are unchanged.
SCALED_ABOVE = {np.dtype(np.float64): 2.0**500, np.dtype(np.float32): 2.0**40}
#: Below this ``max|u|`` (per dtype) ``u`` runs scaled *up* by a power of two: the grey-range factor
#: ``255 / (max - min)`` and the squared gradients of values near the smallest normal number overflow or
#: underflow (float64 data of 1e-300 raised OverflowError; CED on float32 data of 1e-37 was 57 % off).
SCALED_BELOW = {np.dtype(np.float64): 2.0**-500, np.dtype(np.float32): 2.0**-40}

#: EED's default time step as a fraction of the stability limit ``dt_max``: ``0.8 dt_max``, 0.2 in 2-D for unit
#: spacing.  A cell's ``-A_xx`` is its own weights (at most ``trace = sum_a 1/h_a^2``) plus half the weights its
#: neighbours send it; in 2-D with 8-neighbourhood links the latter are at most ``sum_a 1/h_a^2 + 1/(h_0 h_1)``,
#: so ``max(-A_xx) <= 1.25 / dt_max`` and a step of ``0.8 dt_max`` is never split.  At ``dt_max`` EED steps
#: measured ``dt_max max(-A_xx)`` up to 1.19 on noisy photographs (every step then ran as two sub-steps);
#: longer links can still exceed the bound, and the sub-steps keep the maximum–minimum principle exact.
EED_DT_FACTOR = 0.8
#: Default noise scale ``sigma`` and CED integration scale ``rho``, in cells of the finest axis.
DEFAULT_SIGMA = 1.0
DEFAULT_RHO_CED = 4.0
#: CED defaults: the smallest diffusivity (across the flow) and the coherence threshold (grey values).
DEFAULT_ALPHA = 0.001
DEFAULT_C = 1.0
#: ``kappa="auto"`` for EED: this multiple of :func:`pdediff.estimate_kappa`'s exponential estimate
#: (measured on the camera image at 10 % noise, docs/tensor_diffusion.rst).
EED_KAPPA_FACTOR = 1.0
#: EED diffusivity across an edge is floored at this value: the tensor's condition number stays
#: <= 100, so the stencil's offsets stay short (Selling links reach ~sqrt(condition) cells).
EED_MIN_DIFFUSIVITY = 0.01
#: The structure tensor is computed on the image mapped to grey values 0..255 (its range ``max - min``
#: becomes 255), so ``C`` means what it means in Weickert's papers for 8-bit images, for any input scale.
GREY_RANGE = 255.0


@dataclass(frozen=True)
class TensorDiffusionResult:
    """What :func:`tensor_diffusion` used, returned with ``return_info=True`` (caller's units).

    ``kappa`` is ``None`` for CED.  ``substeps`` counts the extra sub-steps taken where a step's
    actual diagonal ``max(-A_xx)`` exceeded ``1 / dt`` (0 in practice; they keep the maximum–minimum
    principle exact for any tensor field).  ``max_offset`` is the longest stencil offset (cells).
    Both are -1 for a Dask array (not known before the lazy result is computed).  ``method`` is
    ``"explicit"`` or ``"semi-implicit"``; ``cg_iterations`` the conjugate-gradient iterations of a
    semi-implicit run, summed over steps and channels (0 for explicit).
    """

    kind: str
    kappa: float | None
    dt: float
    num_iter: int
    sigma: float
    rho: float
    alpha: float
    C: float
    conductance: str
    spacing: tuple[float, ...]
    boundary: str
    substeps: int
    max_offset: int
    method: str = "explicit"
    cg_iterations: int = 0


@contextmanager
def _named(name: str):
    """Re-raise a plain ``ValueError`` of a shared validator as a :class:`ParameterError` naming ``name``."""
    try:
        yield
    except ParameterError:
        raise
    except ValueError as err:
        msg = str(err).replace("{", "(").replace("}", ")")
        if msg.startswith(name):
            msg = msg[len(name):]
            raise ParameterError("{" + name + "}" + msg, param=name) from None
        raise ParameterError("{" + name + "}: " + msg, param=name) from None


def tensor_diffusion(
    image: Any,
    *,
    kind: Literal["eed", "ced"] = "eed",
    num_iter: int | None = None,
    dt: float | None = None,
    method: Literal["explicit", "semi-implicit"] = "explicit",
    kappa: float | Literal["auto"] = "auto",
    sigma: float | None = None,
    rho: float | None = None,
    alpha: float | None = None,
    C: float | None = None,
    conductance: Literal["weickert", "exponential", "rational"] = "weickert",
    spacing: float | Any = 1.0,
    boundary: Literal["neumann", "periodic", "dirichlet"] = "neumann",
    channel_axis: int | None = None,
    check_finite: bool = True,
    max_steps: int | None = DEFAULT_MAX_STEPS,
    return_info: bool = False,
) -> Any:
    r"""Tensor diffusion :math:`u_t = \nabla\cdot(D\,\nabla u)`: Weickert's EED and CED, 2-D and 3-D.

    *Edge-enhancing diffusion* (``kind="eed"``, [W98]_) smooths along edges and,
    with diffusivity ``g(|grad u_sigma|^2)``, across them: noise on edges is
    removed, which Perona–Malik cannot do.  *Coherence-enhancing diffusion*
    (``kind="ced"``, [W99]_) smooths along the dominant orientation of the structure
    tensor and closes gaps in line-like structures (fibres, vessels,
    fingerprints, wood grain).  The stencil is non-negative (Selling's
    decomposition of ``D``), so the output stays within the input's range
    (with 0 added for Dirichlet boundaries) and Neumann/periodic boundaries
    conserve the mean.

    Parameters
    ----------
    image : ndarray, shape (ny, nx) or (nz, ny, nx), plus a channel axis if ``channel_axis``
        float32/float64 kept (float16 promoted to float32); integer images
        promoted to float64 without rescaling; bool/complex refused.  NumPy
        arrays, Dask arrays (a lazy result with the same chunks, equal to
        rounding; :mod:`pdediff.dask._tensor` states the halo per step), or
        CuPy arrays: the explicit method on the GPU backend
        (:mod:`pdediff.kernels.gpu.tensor`, a CuPy result; float64 equal to
        the CPU to rounding, float32 computed in float32, within ~5e-6 of the
        range).  No GPU was available when those kernels were written: they
        are checked under Numba's CUDA simulator and compiled to PTX only
        (docs/tensor_diffusion.rst).
    kind : {"eed", "ced"}
        EED: ``D`` has eigenvalue ``g(mu_1)`` across the edge (leading
        eigenvector of ``J_rho``; for ``rho = 0`` the gradient direction) and 1
        along it.  CED (2-D): eigenvalue ``alpha`` across the flow and
        ``alpha + (1 - alpha) exp(-C / (mu_1 - mu_2)^2)`` along it; 3-D: that
        eigenvalue (with ``mu_1 - mu_3``) along the eigenvector of the smallest
        eigenvalue (the direction of line-like structures: vessels, fibres),
        ``alpha`` in the other two directions.
    num_iter : int, optional
        Number of steps.  Default: the diffusion time of
        ``n * dt_max``, i.e. ``n dt_max / dt`` explicit steps (``1.25 n`` at EED's
        default ``dt``), with ``n = 50`` for CED and, for EED, ``n = 60 nu / R``
        (at least 1), where ``nu / R`` is the noise level as a fraction of the
        grey range, estimated from the image (Immerkær's second differences
        against the percentile range of the smoothed image): ``n`` about 6 at
        10 % noise, 12 at 20 %.
    dt : float, optional
        Time step, at most ``dt_max = 1 / (2 sum_a 1/h_a^2)`` (0.25 in 2-D,
        1/6 in 3-D for unit spacing); larger raises
        :class:`~pdediff.StabilityError`.  Default: ``dt_max`` for CED,
        ``EED_DT_FACTOR * dt_max`` (0.8: 0.2 in 2-D) for EED, below the
        largest ``-A_xx`` of an 8-neighbourhood stencil, so that a step is
        one sub-step (at ``dt_max`` EED steps on noisy images ran as two).
        ``method="semi-implicit"``: any finite ``dt > 0``; default the
        explicit default's diffusion time ``T`` in ``ceil(T / (5 dt_max))``
        equal steps (at most 5 ``dt_max``).
    method : {"explicit", "semi-implicit"}
        ``"explicit"``: ``u <- u + dt A u``.  ``"semi-implicit"``: ``(I - dt
        A(u^k)) u^{k+1} = u^k`` with the same stencil ``A`` (the tensor of
        the current ``u``), solved by Jacobi-preconditioned conjugate
        gradients to ``1e-6`` of ``|u^k|`` (float64): unconditionally stable,
        keeps the maximum-minimum principle and the mean for every ``dt``
        (``I - dt A`` is an M-matrix).  NumPy arrays only (a CuPy array
        raises :class:`~pdediff.ParameterError` naming ``method``).
    kappa : float or "auto"
        EED contrast parameter (intensity units per physical length): the
        gradient magnitude where ``g`` switches off.  ``"auto"``:
        :func:`pdediff.estimate_kappa` on the smoothed input (robust MAD of the
        gradient magnitudes), times ``EED_KAPPA_FACTOR``.  Finite (``inf`` would
        be linear diffusion: use :func:`pdediff.solve_heat`).  CED refuses a value
        other than ``"auto"`` (it has no edge threshold).
    sigma : float, optional
        Noise scale: standard deviation (physical units) of the Gaussian
        applied to the image before its gradient.  Default 1 cell of the finest
        axis (``1.0 * min(spacing)``).
    rho : float, optional
        Integration scale: standard deviation (physical units) of the Gaussian
        applied to the structure tensor's components.  Default 0 for EED (the
        gradient direction itself), 4 cells of the finest axis for CED.
    alpha : float, optional
        CED: the smallest eigenvalue of ``D``, in ``(0, 1]`` (default 0.001).  EED
        refuses it (its diffusivity across edges follows ``kappa``).
    C : float, optional
        CED coherence threshold, positive (default 1).  EED refuses it.  The structure tensor is computed on
        the image mapped to grey values (its range ``max - min`` becomes 255,
        lengths in physical units), so ``C = 1`` is Weickert's value for 8-bit
        images whatever the input's scale: orientations whose coherence
        ``(mu_1 - mu_2)^2`` is well above ``C`` are smoothed along at full
        speed.
    conductance : {"weickert", "exponential", "rational"}
        EED diffusivity across edges as a function of ``x = mu_1 / kappa^2``:
        ``1 - exp(-3.31488 / x^4)`` (Weickert 1998), ``exp(-x)``, or
        ``1 / (1 + x)``; floored at ``EED_MIN_DIFFUSIVITY = 0.01``.  CED refuses a
        value other than the default ``"weickert"``.
    spacing : float or sequence of float
        Voxel size per spatial axis (physical units).
    boundary : {"neumann", "periodic", "dirichlet"}
        Neumann: no flux leaves the grid (links that leave it are dropped);
        periodic: links wrap around; Dirichlet: a link that leaves the grid
        reaches a ghost cell of value 0 at its far end (for ``D = I`` the
        ghost sits one cell beyond the edge cell, not on the boundary face as
        in :func:`pdediff.solve_heat`).  The Gaussian smoothing uses the
        matching SciPy mode (``reflect``, ``wrap``, ``constant``).
    channel_axis : int, optional
        Axis of colour channels: one tensor for all, from the sum of the
        channels' structure tensors.
    check_finite : bool
        Raise on NaN/inf input.  ``False`` skips the scan (a cell whose tensor
        is not finite sends no flux; NaN still spreads to its neighbours).
    max_steps : int or None
        Refuse (:class:`~pdediff.StepLimitError`, before any work) more steps;
        ``None`` removes the limit.
    return_info : bool
        Also return a :class:`TensorDiffusionResult`.

    Returns
    -------
    out : ndarray
        Same shape and (float) dtype as ``image``.
    info : TensorDiffusionResult
        Only with ``return_info=True``.

    Raises
    ------
    TypeError
        bool/complex/object input, non-numeric parameters.
    ParameterError
        Unknown ``kind``/``conductance``/``boundary``/``method``, wrong
        dimensionality, non-finite input, negative ``sigma``/``rho``,
        ``alpha`` outside ``(0, 1]``, non-positive
        ``C``/``kappa``/``dt``/``spacing``; ``method="semi-implicit"`` with a
        Dask or CuPy array, or a solve that does not converge (names ``dt``).
    StabilityError
        ``dt`` above the stability limit (explicit method).
    StepLimitError
        More than ``max_steps`` steps.

    Notes
    -----
    Per voxel, ``D`` in index units ``H^-1 D H^-1`` is written as
    ``sum_k rho_k e_k e_k^T`` with ``rho_k >= 0`` and integer offsets ``e_k``
    (3 in 2-D, 6 in 3-D) by Selling's obtuse-superbase reduction
    [S1874]_ [FM14]_; the scheme is the gradient flow of
    ``1/2 sum_x sum_k rho_k(x) ((u(x+e_k)-u(x))^2 + (u(x-e_k)-u(x))^2) / 2``:
    a symmetric matrix ``A`` with non-negative off-diagonals and zero row
    sums, so ``u + dt A u`` is a convex combination when
    ``dt <= 1 / max(-A_xx)``.  Since every ``D`` here has eigenvalues
    ``<= 1``, ``sum_k rho_k <= trace(H^-1 D H^-1) <= sum_a 1/h_a^2`` and the
    heat limit ``dt_max`` covers the cell's own links; the links other cells
    send to it are checked at every step, and in a step where the actual
    ``max(-A_xx)`` exceeds ``1/dt`` the step is split (``info.substeps``).
    In 2-D, 8-neighbourhood links give ``max(-A_xx) <= 1.25 / dt_max``, so
    EED's default ``dt = 0.8 dt_max`` is one sub-step unless longer links
    pile up on a cell (none measured on natural images; at ``dt = dt_max``
    they needed two sub-steps per step).
    With ``D = I`` the scheme is the 5-/7-point explicit heat step.

    References
    ----------
    .. [W98] J. Weickert, *Anisotropic Diffusion in Image Processing*, Teubner, 1998.
    .. [W99] J. Weickert, "Coherence-enhancing diffusion filtering", IJCV 31(2/3), 1999.
    .. [FM14] J. Fehrenbach, J.-M. Mirebeau, "Sparse non-negative stencils for anisotropic
       diffusion", J. Math. Imaging Vis. 49(1), 2014.
    .. [S1874] E. Selling, "Über die binären und ternären quadratischen Formen", J. reine angew.
       Math. 77, 1874.

    Examples
    --------
    >>> import numpy as np
    >>> import pdediff
    >>> rng = np.random.default_rng(0)
    >>> clean = np.zeros((64, 64)); clean[16:48, 16:48] = 1.0
    >>> noisy = clean + 0.1 * rng.standard_normal(clean.shape)
    >>> out, info = pdediff.tensor_diffusion(noisy, kind="eed", return_info=True)
    >>> bool(np.abs(out - clean).mean() < np.abs(noisy - clean).mean() / 2)
    True
    >>> bool(noisy.min() <= out.min() and out.max() <= noisy.max())
    True
    >>> info.kind, info.num_iter  # noise 0.1 of the range: the time of ~5 steps at dt_max, in steps of 0.8 dt_max
    ('eed', 6)
    """
    lazy = is_dask_array(image)
    dev = None if lazy else _device_backend(image)  # CuPy arrays: the GPU backend's tensor kernels
    kind = _option("kind", kind, KINDS)
    cond = _option("conductance", conductance, TENSOR_CONDUCTANCES)
    boundary = _option("boundary", boundary, tuple(BC_CODE))
    method = _option("method", method, _SI.METHODS)

    xp = np if dev is None else dev.xp
    with _named("channel_axis"):
        ch = channel_axis_value(channel_axis, np.ndim(image))
    ndims = (2, 3) if ch is None else (3, 4)
    if lazy and method == "semi-implicit":
        raise ParameterError("{method='semi-implicit'} solves one linear system over the whole grid per step "
                             "and runs on NumPy arrays; compute the Dask array first or use "
                             "{method='explicit'}", param="method")
    if dev is not None and method == "semi-implicit":
        raise ParameterError("{method='semi-implicit'} runs on NumPy arrays (the CPU kernels); on a GPU array "
                             "use {method='explicit'}, or convert with .get()", param="method")
    if lazy:  # the Dask executor, from the dispatch registry: checks dtype/shape now, finiteness per chunk
        executor = executor_for(image, "image")
        with _named("image"):
            x = executor.prepare(image, "image", ndim=ndims, check_finite=check_finite)
        u = x[None] if ch is None else _dask_moveaxis(x, ch)
        u = u.rechunk({0: -1})  # the channels share one tensor: all of them in every chunk
    else:
        with _named("image"):
            u = as_float_array(image, "image", ndim=ndims, check_finite=check_finite, xp=xp)
        u = u[None] if ch is None else xp.moveaxis(u, ch, 0)
        u = xp.array(u, order="C", copy=True)  # private copy, (C, *spatial), native order
    # Values near float64's maximum: differences and the grey range overflow.  The scheme is equivariant
    # under u -> a u with kappa -> a kappa, and a power of two is exact, so run on a u and divide after.
    big = 1.0
    if not lazy and u.size:
        amax = float(xp.nanmax(xp.abs(u))) if bool(xp.isfinite(u).any()) else 0.0
        above, below = SCALED_ABOVE.get(u.dtype, 2.0**40), SCALED_BELOW.get(u.dtype, 2.0**-40)
        if math.isfinite(amax) and (amax > above or 0.0 < amax < below):
            big = intensity_scale(u, xp)
            u *= u.dtype.type(big)
    with _named("spacing"):
        grid = Grid(u.shape[1:], spacing, boundary)
    h = grid.spacing
    ndim = grid.ndim

    with _named("sigma"):
        sigma_ = DEFAULT_SIGMA * min(h) if sigma is None else nonnegative_scalar(sigma, "sigma")
    with _named("rho"):
        default_rho = DEFAULT_RHO_CED * min(h) if kind == "ced" else 0.0
        rho_ = default_rho if rho is None else nonnegative_scalar(rho, "rho")
    check_kind_options(kind, alpha=alpha, C=C, kappa=kappa, conductance=cond)
    alpha = DEFAULT_ALPHA if alpha is None else alpha
    C = DEFAULT_C if C is None else C
    with _named("alpha"):
        alpha_ = positive_scalar(alpha, "alpha")
        if alpha_ > 1.0:
            raise ParameterError(
                f"{{alpha}} must lie in (0, 1] (the smallest eigenvalue of D); got {alpha!r}", param="alpha")
    with _named("C"):
        C_ = positive_scalar(C, "C")
    with _named("kappa"):
        kappa_user = positive_or_auto(kappa, "kappa")
    if big != 1.0 and kappa_user is not None and math.isfinite(kappa_user):
        kappa_user = kappa_user * big
    v = None  # the smoothed image, once computed (EED: the noise estimate and kappa="auto" share it)
    steps_default = float(DEFAULT_NUM_ITER[kind])
    if kind == "eed" and num_iter is None and u.size:  # the time follows the noise: EED_STEPS_PER_NOISE
        v = executor.tensor_smoothed(u, sigma_, h, boundary) if lazy else _smoothed(u, sigma_, h, boundary)
        steps_default = max(1.0, EED_STEPS_PER_NOISE * _noise_fraction(u, v, lazy))
    if method == "explicit":
        dt_, n_iter = _time_steps(grid, kind, dt, num_iter, max_steps, steps_default)
    else:
        with _named("max_steps"):
            dt_, n_iter = _SI.time_steps(grid.explicit_dt_limit(), dt, num_iter, max_steps, steps_default)

    # -- grey-value scale of the structure tensor: the range max - min becomes 255 ----------------
    if lazy:
        lo, hi = executor.compute_range(u) if u.size else (0.0, 0.0)
    else:
        lo, hi = float(xp.nanmin(u)) if u.size else 0.0, float(xp.nanmax(u)) if u.size else 0.0
    finite_range = hi - lo if math.isfinite(hi - lo) else 0.0
    gs = GREY_RANGE / finite_range if finite_range > 0 else 1.0

    kappa_ = None
    kinv2 = 0.0
    if kind == "eed":
        if kappa_user is None and lazy:
            v = executor.tensor_smoothed(u, sigma_, h, boundary) if v is None else v
            kappa_ = EED_KAPPA_FACTOR * executor.estimate_kappa(v, h, "exponential")
        elif kappa_user is None:
            v = _smoothed(u, sigma_, h, boundary) if v is None else v
            kappa_ = EED_KAPPA_FACTOR * estimate_kappa(v, h, "exponential")
        else:
            kappa_ = kappa_user
        # clamped: kappa 1e-300 gave ZeroDivisionError, 1e300 OverflowError (inverse_square: inf -> 0, 0 -> max)
        kinv2 = inverse_square(kappa_ * gs, np.float64)
    if kind == "ced":
        mode = K.CED
    else:  # a grey image without integration: D from the gradient itself, no eigen-decomposition
        mode = K.EED_GRAD if rho_ == 0 and u.shape[0] == 1 else K.EED

    setup = _Setup(mode=mode, cond=_COND[cond], kinv2=kinv2, gs=gs, alpha=alpha_, C=C_, sigma=sigma_,
                   rho=rho_, spacing=h, boundary=boundary, kind=kind, dt=dt_)
    cg_iterations = 0
    if lazy:
        u = executor.tensor_diffusion(u, setup, n_iter)
        substeps = max_offset = -1  # not known before the lazy result is computed
        out = u[0] if ch is None else _dask_moveaxis(u, 0, ch)
        out = out.rechunk(image.chunks) if out.chunks != image.chunks else out
    else:
        if method == "explicit":
            u, substeps, max_offset = _advance(u, n_iter, setup)
        else:
            u, cg_iterations, max_offset = _SI.advance(u, n_iter, dt_, BC_CODE[boundary],
                                                       lambda v: _selling_links(v, setup))
            substeps = 0
        if big != 1.0:
            u /= u.dtype.type(big)
            kappa_ = None if kappa_ is None else kappa_ / big
        out = u[0] if ch is None else xp.moveaxis(u, 0, ch)
        out = xp.ascontiguousarray(out)
    if not return_info:
        return out
    info = TensorDiffusionResult(kind=kind, kappa=kappa_, dt=dt_, num_iter=n_iter, sigma=sigma_, rho=rho_,
                                 alpha=alpha_, C=C_, conductance=cond, spacing=h, boundary=boundary,
                                 substeps=substeps, max_offset=max_offset, method=method,
                                 cg_iterations=cg_iterations)
    return out, info


def check_kind_options(kind: str, *, alpha: Any, C: Any, kappa: Any, conductance: str) -> None:
    """Refuse (:class:`~pdediff.ParameterError` naming it) an option of the other kind, instead of ignoring it:
    EED has no ``alpha``/``C`` (``None`` = not given), CED no ``kappa`` (other than ``"auto"``) and no
    ``conductance`` (other than the default ``"weickert"``; ``conductance`` already checked)."""
    if kind == "eed":
        foreign = (("alpha", alpha, alpha is not None), ("C", C, C is not None))
        why = "EED's diffusivity across edges follows {kappa} and {conductance}"
    else:
        foreign = (("kappa", kappa, not (isinstance(kappa, str) and kappa.lower() == "auto")),
                   ("conductance", conductance, conductance != "weickert"))
        why = "CED's diffusivities follow {alpha} and {C}; it has no edge threshold"
    for name, value, given in foreign:
        if given:
            raise ParameterError(f"{{{name}}} does not apply to {{kind={kind!r}}} ({why}); got "
                                 f"{{{name}={value!r}}}", param=name)


def _option(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    if value.lower() not in allowed:
        choices = ", ".join(map(repr, allowed))
        raise ParameterError(f"{{{name}}} must be one of {choices}; got {value!r}", param=name)
    return value.lower()


def _noise_fraction(u: Any, v: Any, lazy: bool) -> float:
    """The noise level of ``u`` (C, *spatial) as a fraction of its grey range: ``nu / R`` (0 if undefined).

    ``nu``: Immerkær's estimate [I96]_ made robust, ``median |K * u| / (0.6745 * 6^(N/2))`` with ``K`` the
    separable mask ``[1, -2, 1]`` along every axis (blind to linear ramps; ``6^(N/2)`` its norm), over
    all channels.  ``R``: the 0.5–99.5 percentile range of ``v``, the image smoothed for the tensor
    (little affected by the noise).  On the study's training images (192², clean range 1) it reads
    0.10–0.12 at 10 % noise and 0.18–0.23 at 20 %.  The median and percentiles are exact order
    statistics, linearly interpolated in float64 by :func:`_interpolated` from the same ranks on both
    paths: ``numpy.partition`` in memory, an exact radix select over the chunks for Dask arrays (Dask's
    own percentiles are approximate and moved the default EED step count with the chunk size).

    .. [I96] J. Immerkær, "Fast noise variance estimation", CVIU 64(2), 1996.
    """
    nd = u.ndim - 1
    norm = 0.6745 * 6.0 ** (nd / 2)
    qs = (50.0, 0.5, 99.5)
    if lazy:
        import dask.array as da

        r = u.map_overlap(_second_differences, depth={0: 0, **{a: 1 for a in range(1, nd + 1)}},
                          boundary="reflect", dtype=u.dtype)
        r = da.absolute(r)
        (rank_r, w_r), (rank_v, w_v) = _ranks(int(r.size), qs[:1]), _ranks(int(v.size), qs[1:])
        s_r, s_v = executor_for(u, "image").order_statistics([(r, rank_r), (v, rank_v)])
    elif _device_backend(u) is not None:  # on the device: slices (no SciPy), the same order statistics
        xp = _device_backend(u).xp
        r = _second_differences_sliced(u, xp)
        r = xp.abs(r, out=r).ravel()
        (rank_r, w_r), (rank_v, w_v) = _ranks(int(r.size), qs[:1]), _ranks(int(v.size), qs[1:])
        s_r = [float(x) for x in xp.sort(r)[xp.asarray(rank_r)].tolist()]
        s_v = [float(x) for x in xp.sort(xp.ravel(v))[xp.asarray(rank_v)].tolist()]
    else:
        r = np.abs(_second_differences(u)).ravel()
        (rank_r, w_r), (rank_v, w_v) = _ranks(r.size, qs[:1]), _ranks(v.size, qs[1:])
        s_r = [float(x) for x in np.partition(r, rank_r)[rank_r]]
        s_v = [float(x) for x in np.partition(np.ravel(v), rank_v)[rank_v]]
    (med,) = _interpolated(s_r, w_r)
    lo, hi = _interpolated(s_v, w_v)
    nu = med / norm
    frac = nu / (hi - lo) if hi > lo else 0.0
    return frac if math.isfinite(frac) else 0.0


def _ranks(n: int, qs: tuple[float, ...]) -> tuple[list[int], list[float]]:
    """The order-statistic ranks (two per percentile: below and above) and weights of the percentiles
    ``qs`` of ``n`` values (the linear rule, numpy's default: position ``q/100 (n - 1)``)."""
    ranks, weights = [], []
    for q in qs:
        pos = q / 100.0 * (n - 1)
        k = min(int(math.floor(pos)), n - 1)
        ranks += [k, min(k + 1, n - 1)]
        weights.append(pos - k)
    return ranks, weights


def _interpolated(stats: list[float], weights: list[float]) -> list[float]:
    """Percentiles from the pairs of order statistics :func:`_ranks` asked for (float64)."""
    out = []
    for i, t in enumerate(weights):
        a, b = stats[2 * i], stats[2 * i + 1]
        out.append(a + (b - a) * t if t else a)
    return out


def _second_differences(b: np.ndarray) -> np.ndarray:
    """``b`` (C, *spatial) filtered by ``[1, -2, 1]`` along every spatial axis (new array; reflected edges)."""
    from scipy.ndimage import correlate1d

    r = np.asarray(b)
    for a in range(1, r.ndim):  # in the data's type: two temporaries of the input's size at most
        r = correlate1d(r, [1.0, -2.0, 1.0], axis=a, mode="reflect")
    return r


def _second_differences_sliced(b: Any, xp: Any) -> Any:
    """:func:`_second_differences` with array slicing (NumPy or CuPy): ``[1, -2, 1]`` along every spatial
    axis, the edge cell repeated beyond the edges (SciPy's ``"reflect"``); a new array of ``b``'s dtype."""
    r = b
    for a in range(1, b.ndim):
        first = [slice(None)] * b.ndim
        last = [slice(None)] * b.ndim
        first[a], last[a] = slice(0, 1), slice(-1, None)
        p = xp.concatenate([r[tuple(first)], r, r[tuple(last)]], axis=a)
        lo, mid, hi = ([slice(None)] * b.ndim for _ in range(3))
        lo[a], mid[a], hi[a] = slice(0, -2), slice(1, -1), slice(2, None)
        r = p[tuple(lo)] + r.dtype.type(-2.0) * p[tuple(mid)] + p[tuple(hi)]
    return r


def _time_steps(grid: Grid, kind: str, dt: Any, num_iter: Any, max_steps: Any,
                steps_default: float) -> tuple[float, int]:
    """The step and the number of steps, checked against the stability limit and ``max_steps``.

    ``steps_default``: the default diffusion time in steps at the stability limit."""
    dt_max = grid.explicit_dt_limit()
    if dt is None:
        dt_ = dt_max * (EED_DT_FACTOR if kind == "eed" else 1.0)
    else:
        with _named("dt"):
            dt_ = positive_step(dt)
        if dt_ > dt_max * (1 + 1e-12):
            raise StabilityError(
                f"{{dt={dt_:.6g}}} exceeds the explicit tensor-diffusion stability limit 1/(2 sum 1/h^2) = "
                f"{dt_max:.6g}; use {{dt}} <= {dt_max:.6g} (or {{dt=None}}) and more steps",
                param="dt",
            )
    with _named("max_steps"):
        if num_iter is None:
            n = max(1, int(round(steps_default * dt_max / dt_)))  # the steps that would run
            step = step_phrase(dt, dt_, f"{EED_DT_FACTOR:g} x the stability limit" if kind == "eed" else
                               "the stability limit")
            what = f"the default diffusion time {steps_default:.4g} * dt_max with {step}"
            advice = ("pass {num_iter} (a shorter diffusion time) or {method='semi-implicit'} (any dt)"
                      if dt is None else "use a larger {dt} (or {dt=None}), or pass {num_iter}")
            check_step_count(n, max_steps, what, advice)
            return dt_, n
    with _named("num_iter"):
        n = nonnegative_int(num_iter, "num_iter")
    with _named("max_steps"):
        check_step_count(n, max_steps, f"{{num_iter={n}}}", "use fewer steps")
    return dt_, n


def _structure_tensor(v: np.ndarray, h: tuple[float, ...], rho: float, boundary: str) -> np.ndarray:
    """``J_rho = K_rho * sum_c grad v_c grad v_c^T`` of a ``(C, *spatial)`` array, as its 3 (2-D) or 6 (3-D)
    upper-triangle components ``(00, 01, 11)`` / ``(00, 01, 02, 11, 12, 22)`` in ``v``'s dtype.

    Central differences in physical units (ghost cells: the edge cell for Neumann, the far side for
    periodic, 0 for Dirichlet), then a Gaussian of std ``rho`` (physical units) per component with
    the boundary's SciPy mode.
    """
    ndim = v.ndim - 1
    dev = _device_backend(v)
    if dev is not None:
        f = dev.tensor_structure(v, h, BC_CODE[boundary])
    else:
        f = np.empty(((3 if ndim == 2 else 6),) + v.shape[1:], dtype=v.dtype)
        (K.structure2 if ndim == 2 else K.structure3)(v, *h, BC_CODE[boundary], f)
    if rho > 0:
        pix = tuple(rho / x for x in h)
        if _beyond_kernels(pix, f.shape[1:]):
            return _heat_smoothed(f, rho, h, boundary)
        if dev is not None:
            return dev.gaussian_filter(f, pix, mode=_MODES[boundary])
        for c in range(f.shape[0]):
            f[c] = gaussian_filter(f[c], pix, mode=_MODES[boundary], cval=0.0)
    return f


def too_anisotropic_error(bad: int, kind: str) -> ParameterError:
    """The error for ``bad`` voxels whose tensor is too anisotropic for Selling's reduction, with the advice
    that applies to ``kind``: CED's smallest eigenvalue is ``alpha`` (raise it, or a less anisotropic
    ``spacing``); EED's is fixed, so only the ``spacing`` ratio helps."""
    advice = ("raise {alpha} or use a less anisotropic {spacing}" if kind == "ced"
              else "use a less anisotropic {spacing} (a smaller max/min ratio)")
    return ParameterError(
        f"the diffusion tensor of {bad} voxel(s) is too anisotropic for the stencil (Selling's "
        f"reduction did not finish in {K.MAX_REDUCTION_STEPS} steps, or its offsets exceed the int16 "
        f"range); {advice}", param="alpha" if kind == "ced" else "spacing")


@dataclass(frozen=True)
class _Setup:
    """What a step needs besides the array (global quantities already resolved; picklable for Dask).

    ``kinv2`` is ``1 / (kappa gs)^2`` (0 for CED), ``gs`` the grey-value factor, lengths physical.
    """

    mode: int
    cond: int
    kinv2: float
    gs: float
    alpha: float
    C: float
    sigma: float
    rho: float
    spacing: tuple[float, ...]
    boundary: str
    kind: str
    dt: float


def _beyond_kernels(pix: tuple[float, ...], shape: tuple[int, ...]) -> bool:
    """Whether a Gaussian of ``pix`` cells per axis reaches far beyond the grid (std over 4 times its longest
    axis): a sampled kernel would be huge (``sigma`` 1e300 cannot even be allocated) and pointless."""
    return max(pix) > 4.0 * max(shape)


def _heat_smoothed(u: np.ndarray, sigma: float, h: tuple[float, ...], boundary: str) -> np.ndarray:
    """``(C, *spatial)`` ``u`` smoothed by the exact Gaussian of std ``sigma`` written as heat flow for
    ``t = sigma^2 / 2`` on the grid's boundary (spectral, any ``sigma``: beyond the grid's extent every
    non-constant mode has decayed, so a huge ``sigma`` gives the mean, or 0 under Dirichlet)."""
    from ..heat import SpectralHeatSolver

    solver = SpectralHeatSolver(u.shape[1:], u.dtype, spacing=h, boundary=boundary)
    return solver.evolve(u, min(sigma / 2.0 * sigma, 1e300))


def _smoothed(u: np.ndarray, sigma: float, h: tuple[float, ...], boundary: str,
              out: np.ndarray | None = None) -> np.ndarray:
    """``u`` (C, *spatial) smoothed per channel by a Gaussian of std ``sigma`` (physical units) with the
    boundary's mode; ``u`` itself (not a copy) for ``sigma = 0``.  ``out``: a buffer of ``u``'s shape and
    dtype that the Neumann path writes into (reused across steps: no fresh pages per step)."""
    if sigma == 0:
        return u
    pix = tuple(sigma / x for x in h)
    if _beyond_kernels(pix, u.shape[1:]):
        return _heat_smoothed(u, sigma, h, boundary)
    dev = _device_backend(u)
    if dev is not None:
        return dev.gaussian_filter(u, pix, out=out, mode=_MODES[boundary])
    if boundary == "neumann":  # the compiled, threaded equal of SciPy's mode="reflect"
        return backend_for(u).gaussian_filter(u, pix, out=out)
    return np.stack([gaussian_filter(u[c], pix, mode=_MODES[boundary], cval=0.0) for c in range(u.shape[0])])


def _tensor_input(u: np.ndarray, s: _Setup, out: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """The kernels' tensor input ``f`` for the ``(C, *spatial)`` array ``u`` and the ``kinv2`` to use with it.

    EED from the gradient: the smoothed image itself (``D`` depends on the grey scale only through
    ``|grad|^2 / kappa^2``, so the factor ``gs^2`` goes into ``kinv2``); otherwise the structure tensor
    of the smoothed image mapped to grey values.
    """
    h = s.spacing
    v = _smoothed(u, s.sigma, h, s.boundary, out)
    if s.mode == K.EED_GRAD:
        return v, min(s.kinv2 * s.gs * s.gs, float(np.finfo(np.float64).max))  # inf would make 0 * inf = NaN
    v = v * v.dtype.type(s.gs)  # a new array: never the caller's u
    return _structure_tensor(v, h, s.rho, s.boundary), s.kinv2


def _substeps(dt: float, dmax: float, rel: float = 1e-9) -> int:
    """Sub-steps that keep ``u + dt A u`` a convex combination: ``ceil(dt max(-A_xx))`` (at least 1), with
    ``rel`` the relative rounding of ``dmax`` let through."""
    return max(1, math.ceil(dt * dmax / (1.0 + rel)))


@functools.lru_cache(maxsize=1)
def _selling_table() -> np.ndarray:
    """The superbases :func:`K.stencil2` starts Selling's flips from (built once, 256 KiB)."""
    return K.selling_table2(K.SELLING_TABLE_SIZE)


def _device_backend(x: Any) -> Any:
    """The backend that runs the tensor kernels on ``x``'s device (one with ``tensor_links``: the GPU backend
    for CuPy arrays), or ``None`` where the CPU kernels of this module run (NumPy arrays)."""
    be = backend_for(x)
    return be if hasattr(be, "tensor_links") else None


class _DeviceLinks:
    """The stencil of one step on a device backend (2-D or 3-D): per-cell Selling weights ``W`` and int16
    offsets ``O`` (``be.tensor_links``), applied by the per-cell gather ``be.tensor_apply``, which also gives
    ``-A_xx``.  Only scalars come back to the host (the failures, the reach, ``max(-A_xx)``)."""

    def __init__(self, be: Any, shape: tuple[int, ...], dtype: np.dtype, bc: int) -> None:
        self._be, self._bc = be, bc
        xp = be.xp
        spatial = tuple(shape[1:])
        nd = len(spatial)
        nk = 3 if nd == 2 else 6
        self.W = xp.empty(spatial + (nk,), dtype=dtype)
        self.O = xp.empty(spatial + (nk, nd), dtype=np.int16)
        self.dg = xp.empty(spatial, dtype=dtype)
        self.reach = (0,) * nd
        # -A_xx is summed in the data's type: float32's rounding (a few ulp of ~12 terms) is let through
        self.rel = 1e-6 if np.dtype(dtype) == np.float32 else 1e-9

    def build(self, f: Any, s: _Setup, kin: float) -> int:
        """The links of tensor input ``f``; returns the longest offset (cells)."""
        bad, self.reach = self._be.tensor_links(f, s.mode, s.cond, kin, EED_MIN_DIFFUSIVITY, s.alpha, s.C,
                                                s.spacing, self._bc, self.W, self.O)
        if bad:
            raise too_anisotropic_error(int(bad), s.kind)
        return max(self.reach)

    def diag_max(self, u: Any) -> float:
        """``max(-A_xx)`` of the links (a gather with ``dt = 0`` into a scratch array)."""
        return self._be.tensor_apply(u, self.W, self.O, self.reach, self._bc, 0.0, self._be.xp.empty_like(u),
                                     self.dg, True)

    def step_diag(self, u: Any, dt: float, out: Any) -> float:
        """``out = u + dt A u`` and ``max(-A_xx)`` in the same pass."""
        return self._be.tensor_apply(u, self.W, self.O, self.reach, self._bc, dt, out, self.dg, True)

    def step(self, u: Any, dt: float, out: Any, first_sub: bool = False) -> None:
        """``out = u + dt A u`` (``u`` and ``out`` distinct)."""
        self._be.tensor_apply(u, self.W, self.O, self.reach, self._bc, dt, out, self.dg, False)

    def diag(self, u: Any) -> Any:
        """``-A_xx`` per cell (spatial shape, ``u``'s dtype)."""
        self.diag_max(u)
        return self.dg.copy()


class _Links2:
    """The 2-D stencil of one step: dense short links and listed long ones (:func:`K.stencil2`), applied by
    gathering per cell (:func:`K.gather2`, :func:`K.long2`)."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, bc: int) -> None:
        self._bc = bc
        n0, n1 = shape[1:]
        self.S = np.empty((4, n0, n1), dtype=dtype)
        # the long-link lists: capacity 3 links per cell, pages touched only where long links are
        self.LJ = np.empty((n0, 3 * n1), dtype=np.int32)
        self.LW = np.empty((n0, 3 * n1), dtype=dtype)
        self.LO = np.empty((n0, 3 * n1, 2), dtype=np.int16)
        self.nlong = np.empty(n0, dtype=np.int64)
        self.reach = np.empty(n0, dtype=np.int64)
        self.span = np.empty(n0, dtype=np.int64)
        self.nchunks = max(1, min(numba.get_num_threads(), n0))
        self.R = 0
        self.rel = 1e-9  # the rounding of max(-A_xx) let through by _substeps
        self.dg = np.empty((n0, n1), dtype=np.float64)  # -A_xx per cell: short links (gather), long added

    def build(self, f: np.ndarray, s: _Setup, kin: float) -> int:
        """The links of tensor input ``f``; returns the longest offset (cells)."""
        bad = K.stencil2(f, s.mode, s.cond, kin, EED_MIN_DIFFUSIVITY, s.alpha, s.C, *s.spacing,
                         self._bc, self.S, self.LJ, self.LW, self.LO, self.nlong, self.reach, self.span,
                         _selling_table())
        if bad:
            raise too_anisotropic_error(int(bad), s.kind)
        self.R = int(self.reach.max())
        return int(self.span.max())

    def diag_max(self, u: np.ndarray) -> float:
        """``max(-A_xx)`` of the links (before any step: the step is then taken once, with its sub-steps).

        The gather with ``dt = 0`` into the scratch ``out`` only to get the short links' diagonal."""
        out = np.empty_like(u)
        K.gather2(u, self.S, self._bc, 0.0, out, self.dg, True)
        return self._long_diag_max(u, out, 0.0, False)

    def _long_diag_max(self, u: np.ndarray, out: np.ndarray, dt: float, with_flux: bool) -> float:
        K.long2(u, self.LJ, self.LW, self.LO, self.nlong, self.R, self._bc, dt, out, self.dg, with_flux, True,
                self.nchunks)
        return float(self.dg.max()) if self.dg.size else 0.0

    def step_diag(self, u: np.ndarray, dt: float, out: np.ndarray) -> float:
        """``out = u + dt A u`` and ``max(-A_xx)`` in the same passes (``out`` to be used only if
        ``dt max(-A_xx) <= 1``)."""
        K.gather2(u, self.S, self._bc, dt, out, self.dg, True)
        return self._long_diag_max(u, out, dt, True)

    def step(self, u: np.ndarray, dt: float, out: np.ndarray, first_sub: bool = False) -> None:
        """``out = u + dt A u`` (``u`` and ``out`` distinct)."""
        K.gather2(u, self.S, self._bc, dt, out, self.dg, False)
        K.long2(u, self.LJ, self.LW, self.LO, self.nlong, self.R, self._bc, dt, out, self.dg, True, False,
                self.nchunks)

    def diag(self, u: np.ndarray) -> np.ndarray:
        """``-A_xx`` per cell (spatial shape, float64)."""
        out = np.empty(u.shape[1:], dtype=np.float64)
        K.diag2(self.S, self.LJ, self.LW, self.LO, self.nlong, self._bc, out)
        return out


class _Links3:
    """The 3-D stencil of one step: stored links (:func:`K.links3`), applied by the chunked scatter
    (:func:`K.apply3`) into a float64 accumulator."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, bc: int) -> None:
        self._bc = bc
        spatial = shape[1:]
        self.W = np.empty(spatial + (6,), dtype=dtype)
        self.O = np.empty(spatial + (6, 3), dtype=np.int16)
        self.reach = np.empty(spatial[0], dtype=np.int64)
        self.span = np.empty(spatial[0], dtype=np.int64)
        self.acc = np.empty(shape, dtype=np.float64)
        self.dg = np.empty(spatial, dtype=np.float64)
        self.nchunks = max(1, min(numba.get_num_threads(), spatial[0]))
        self.R = 0
        self.rel = 1e-9  # the rounding of max(-A_xx) let through by _substeps

    def build(self, f: np.ndarray, s: _Setup, kin: float) -> int:
        """The links of tensor input ``f``; returns the longest offset (cells)."""
        bad = K.links3(f, s.mode, s.cond, kin, EED_MIN_DIFFUSIVITY, s.alpha, s.C, *s.spacing,
                       self._bc, self.W, self.O, self.reach, self.span)
        if bad:
            raise too_anisotropic_error(int(bad), s.kind)
        self.R = int(self.reach.max())
        return int(self.span.max())

    def diag_max(self, u: np.ndarray) -> float:
        """``max(-A_xx)`` of the links; also computes ``A u`` (reused by the first :meth:`step`)."""
        K.apply3(u, self.W, self.O, self.R, self._bc, self.acc, self.dg, True, self.nchunks)
        return float(self.dg.max()) if self.dg.size else 0.0

    def step_diag(self, u: np.ndarray, dt: float, out: np.ndarray) -> float:
        """``out = u + dt A u`` and ``max(-A_xx)`` (``A u`` kept for a following ``first_sub`` step)."""
        dmax = self.diag_max(u)
        self.step(u, dt, out, first_sub=True)
        return dmax

    def step(self, u: np.ndarray, dt: float, out: np.ndarray, first_sub: bool = False) -> None:
        """``out = u + dt A u`` (``first_sub``: ``A u`` of :meth:`diag_max` reused)."""
        if not first_sub:
            K.apply3(u, self.W, self.O, self.R, self._bc, self.acc, self.dg, False, self.nchunks)
        K.finish(u.reshape(-1), self.acc.reshape(-1), dt, out.reshape(-1))

    def diag(self, u: np.ndarray) -> np.ndarray:
        """``-A_xx`` per cell (spatial shape, float64)."""
        K.apply3(u, self.W, self.O, self.R, self._bc, self.acc, self.dg, True, self.nchunks)
        return self.dg.copy()


def _links_for(u: Any, s: _Setup) -> _Links2 | _Links3 | _DeviceLinks:
    dev = _device_backend(u)
    if dev is not None:
        return _DeviceLinks(dev, u.shape, u.dtype, BC_CODE[s.boundary])
    return (_Links2 if u.ndim == 3 else _Links3)(u.shape, u.dtype, BC_CODE[s.boundary])


def _advance(u: np.ndarray, n_iter: int, s: _Setup) -> tuple[np.ndarray, int, int]:
    """``n_iter`` explicit steps of the ``(C, *spatial)`` array ``u`` (which it may overwrite).

    Per step: the links of the step's tensor, the actual ``max(-A_xx)``, then ``u + dt A u`` in
    ``m = ceil(dt max(-A_xx))`` sub-steps with the same links (``m = 1`` unless ``max(-A_xx) > 1 / dt``).
    After a step without sub-steps the next is taken together with its diagonal (and redone in
    sub-steps if needed); after one with sub-steps the diagonal comes first.
    Returns ``(result, substeps, max_offset)``.
    """
    L = _links_for(u, s)
    dev = _device_backend(u)
    xp = np if dev is None else dev.xp
    nxt = xp.empty_like(u)
    vbuf = xp.empty_like(u) if s.boundary == "neumann" and s.sigma > 0 and n_iter > 1 else None
    substeps = max_offset = 0
    single = True  # the last step needed no sub-steps: take the next one with its diagonal, in one go
    for _ in range(n_iter):
        f, kin = _tensor_input(u, s, vbuf)
        max_offset = max(max_offset, L.build(f, s, kin))
        if single:
            m = _substeps(s.dt, L.step_diag(u, s.dt, nxt), L.rel)
            if m == 1:
                u, nxt = nxt, u
                continue
        else:  # sub-steps are likely: the diagonal first, so that no step is taken twice
            m = _substeps(s.dt, L.diag_max(u), L.rel)
        for k in range(m):
            L.step(u, s.dt / m, nxt, first_sub=k == 0)
            u, nxt = nxt, u
        substeps += m - 1
        single = m == 1
    return u, substeps, max_offset


# ----------------------------------------------------------------------------- semi-implicit steps
#
# The semi-implicit solver (pdediff.anisotropic._tensor_implicit) assembles the matrix of the step from
# the stored Selling links of the tensor of the current u, which this function produces with the
# compiled kernels of the explicit path.


def _selling_links(u: np.ndarray, s: _Setup) -> tuple[np.ndarray, np.ndarray, int]:
    """The Selling links of the tensor of ``u`` (C, *spatial): weights ``(*spatial, K)`` in ``u``'s dtype,
    int16 offsets ``(*spatial, K, ndim)`` (:func:`K.links2` / :func:`K.links3`), and the longest offset."""
    spatial = u.shape[1:]
    nd = len(spatial)
    nk = 3 if nd == 2 else 6
    W = np.empty(spatial + (nk,), dtype=u.dtype)
    O = np.empty(spatial + (nk, nd), dtype=np.int16)
    reach = np.empty(spatial[0], dtype=np.int64)
    span = np.empty(spatial[0], dtype=np.int64)
    f, kin = _tensor_input(u, s)
    bad = (K.links2 if nd == 2 else K.links3)(f, s.mode, s.cond, kin, EED_MIN_DIFFUSIVITY, s.alpha, s.C,
                                             *s.spacing, BC_CODE[s.boundary], W, O, reach, span)
    if bad:
        raise too_anisotropic_error(int(bad), s.kind)
    return W, O, int(span.max()) if span.size else 0


def _dask_moveaxis(x: Any, src: int, dst: int = 0) -> Any:
    import dask.array as da

    return da.moveaxis(x, src, dst)


# ----------------------------------------------------------------------------- chunks (the Dask executor)
#
# pdediff.dask._tensor runs each step on chunks extended by a halo: ``block_diag_max`` gives the largest
# ``-A_xx`` of a chunk's own cells (a global maximum then sets the step's sub-steps, as in memory),
# ``block_step`` the step itself.  A halo of ``stencil_reach + (smoothing and gradient radius)`` cells
# makes every owned cell's result exact.


def stencil_reach(setup: _Setup, ndim: int) -> int:
    """Cap (cells, per axis) on the offsets of the Selling links of any tensor the filter produces.

    ``D``'s eigenvalues lie in ``[lam_min, 1]`` (``lam_min``: ``EED_MIN_DIFFUSIVITY`` or ``alpha``), so in
    index units its anisotropy ratio is ``mu <= sqrt(1 / lam_min) max(h) / min(h)``; the links reach at
    most ``ceil(mu)`` cells in 2-D and ``ceil(1.5 mu)`` in 3-D (measured: ``mu / 2`` and ``0.8 mu`` over
    random tensors; :func:`block_step` checks every chunk's links against the cap).
    """
    lam_min = EED_MIN_DIFFUSIVITY if setup.kind == "eed" else setup.alpha
    mu = math.sqrt(1.0 / lam_min) * max(setup.spacing) / min(setup.spacing)
    return int(math.ceil(mu if ndim == 2 else 1.5 * mu))


def smoothed_block(b: np.ndarray, *, sigma: float, spacing: tuple[float, ...], bc: str) -> np.ndarray:
    """A ``(C, *spatial)`` chunk smoothed as the tensor's input is (std ``sigma``, physical units; ``bc``
    the boundary's name)."""
    u = np.array(b, order="C", copy=True)
    return _smoothed(u, sigma, spacing, bc)


def _block_links(b: np.ndarray, setup: _Setup) -> tuple[np.ndarray, _Links2 | _Links3]:
    u = np.array(b, order="C", copy=True)  # chunks may be read-only
    L = _links_for(u, setup)
    f, kin = _tensor_input(u, setup)
    span = L.build(f, setup, kin)
    cap = stencil_reach(setup, u.ndim - 1)
    if span > cap:
        raise ParameterError(
            f"a stencil link reaches {span} cells, beyond the Dask halo's cap of {cap} cells; "
            + ("raise {alpha}, use a less anisotropic {spacing}" if setup.kind == "ced"
               else "use a less anisotropic {spacing}")
            + " or run on a NumPy array", param="alpha" if setup.kind == "ced" else "spacing")
    return u, L


def block_diag_max(b: np.ndarray, setup: _Setup, owned: tuple[slice, ...]) -> float:
    """The largest ``-A_xx`` over the cells ``owned`` (spatial slices) of a ``(C, *spatial)`` chunk with
    its halo."""
    u, L = _block_links(b, setup)
    d = L.diag(u)[owned]
    return float(d.max()) if d.size else 0.0


def block_step(b: np.ndarray, setup: _Setup, dmax: float) -> np.ndarray:
    """One step of a ``(C, *spatial)`` chunk with halo, in ``ceil(dt dmax)`` sub-steps (``dmax`` global)."""
    u, L = _block_links(b, setup)
    nxt = np.empty_like(u)
    m = _substeps(setup.dt, dmax)
    for _ in range(m):
        L.step(u, setup.dt / m, nxt)
        u, nxt = nxt, u
    return u
