"""``tensor_diffusion``: Weickert's edge-enhancing (EED) and coherence-enhancing (CED) diffusion, 2-D and 3-D.

The public function validates its arguments and runs explicit steps of
``u_t = div(D(J_rho(grad u_sigma)) grad u)`` on the compiled kernels of
:mod:`pdediff.kernels.cpu.tensor`: structure tensor, diffusion tensor, its
Selling (obtuse-superbase) decomposition into a non-negative stencil, and the
symmetric flux scatter.  Theory, stencil and stability: docs/tensor_diffusion.rst.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numba
import numpy as np
from scipy.ndimage import gaussian_filter

from .._backend import backend_for
from .._validation import (DEFAULT_MAX_STEPS, as_float_array, channel_axis_value, check_step_count,
                           nonnegative_int, nonnegative_scalar, positive_or_auto, positive_scalar,
                           positive_step)
from ..catalogue import TENSOR_KINDS
from .._arrays import is_dask_array
from ..errors import ParameterError, StabilityError
from ..grid import BC_CODE, Grid
from ..kernels.cpu import tensor as K
from .kappa import estimate_kappa

__all__ = ["tensor_diffusion", "TensorDiffusionResult", "KINDS", "TENSOR_CONDUCTANCES"]

#: ``kind``: edge-enhancing or coherence-enhancing diffusion.
KINDS = TENSOR_KINDS
#: EED ``conductance`` (diffusivity across an edge as a function of ``x = |grad u_sigma|^2 / kappa^2``).
TENSOR_CONDUCTANCES = ("weickert", "exponential", "rational")
_COND = {"weickert": K.WEICKERT, "exponential": K.EXPONENTIAL, "rational": K.RATIONAL}
_MODES = {"neumann": "reflect", "periodic": "wrap", "dirichlet": "constant"}

#: Default number of explicit steps (at the stability limit): diffusion time 15 * dt_max (EED),
#: 50 * dt_max (CED).  EED's 15 balance the camera image at 10 % and 20 % noise (best there: 10 and
#: 20 steps; docs/tensor_diffusion.rst).
DEFAULT_NUM_ITER = {"eed": 15, "ced": 50}
#: Default noise scale ``sigma`` and CED integration scale ``rho``, in cells of the finest axis.
DEFAULT_SIGMA = 1.0
DEFAULT_RHO_CED = 4.0
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
    kappa: float | Literal["auto"] = "auto",
    sigma: float | None = None,
    rho: float | None = None,
    alpha: float = 0.001,
    C: float = 1.0,
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
        arrays only (the CPU kernels).
    kind : {"eed", "ced"}
        EED: ``D`` has eigenvalue ``g(mu_1)`` across the edge (leading
        eigenvector of ``J_rho``; for ``rho = 0`` the gradient direction) and 1
        along it.  CED (2-D): eigenvalue ``alpha`` across the flow and
        ``alpha + (1 - alpha) exp(-C / (mu_1 - mu_2)^2)`` along it; 3-D: that
        eigenvalue (with ``mu_1 - mu_3``) along the eigenvector of the smallest
        eigenvalue (the direction of line-like structures: vessels, fibres),
        ``alpha`` in the other two directions.
    num_iter : int, optional
        Number of explicit steps.  Default: 15 (EED) or 50 (CED) steps at
        the stability limit, i.e. the same diffusion time ``15 * dt_max`` /
        ``50 * dt_max`` for a smaller ``dt``.
    dt : float, optional
        Time step, at most ``dt_max = 1 / (2 sum_a 1/h_a^2)`` (0.25 in 2-D,
        1/6 in 3-D for unit spacing), the default; larger raises
        :class:`~pdediff.StabilityError`.
    kappa : float or "auto"
        EED contrast parameter (intensity units per physical length): the
        gradient magnitude where ``g`` switches off.  ``"auto"``:
        :func:`pdediff.estimate_kappa` on the smoothed input (robust MAD of the
        gradient magnitudes), times ``EED_KAPPA_FACTOR``.  Ignored by CED.
    sigma : float, optional
        Noise scale: standard deviation (physical units) of the Gaussian
        applied to the image before its gradient.  Default 1 cell of the finest
        axis (``1.0 * min(spacing)``).
    rho : float, optional
        Integration scale: standard deviation (physical units) of the Gaussian
        applied to the structure tensor's components.  Default 0 for EED (the
        gradient direction itself), 4 cells of the finest axis for CED.
    alpha : float
        CED: the smallest eigenvalue of ``D``, in ``(0, 1]`` (default 0.001).
    C : float
        CED coherence threshold, positive.  The structure tensor is computed on
        the image mapped to grey values (its range ``max - min`` becomes 255,
        lengths in physical units), so ``C = 1`` is Weickert's value for 8-bit
        images whatever the input's scale: orientations whose coherence
        ``(mu_1 - mu_2)^2`` is well above ``C`` are smoothed along at full
        speed.
    conductance : {"weickert", "exponential", "rational"}
        EED diffusivity across edges as a function of ``x = mu_1 / kappa^2``:
        ``1 - exp(-3.31488 / x^4)`` (Weickert 1998), ``exp(-x)``, or
        ``1 / (1 + x)``; floored at ``EED_MIN_DIFFUSIVITY = 0.01``.
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
        bool/complex/object input, non-numeric parameters, a Dask or CuPy array.
    ParameterError
        Unknown ``kind``/``conductance``/``boundary``, wrong dimensionality,
        non-finite input, negative ``sigma``/``rho``, ``alpha`` outside
        ``(0, 1]``, non-positive ``C``/``kappa``/``dt``/``spacing``.
    StabilityError
        ``dt`` above the stability limit.
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
    send to it are checked at every step, and in the rare step where the
    actual ``max(-A_xx)`` exceeds ``1/dt`` the step is split (``info.substeps``).
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
    >>> info.kind, info.num_iter
    ('eed', 15)
    """
    if is_dask_array(image) or type(image).__module__.split(".")[0] == "cupy":
        raise TypeError("tensor_diffusion runs on NumPy arrays (the CPU kernels); got "
                        f"{type(image).__name__}. "
                        "Convert with numpy.asarray (Dask: .compute(); CuPy: .get()).")
    kind = _option("kind", kind, KINDS)
    cond = _option("conductance", conductance, TENSOR_CONDUCTANCES)
    boundary = _option("boundary", boundary, tuple(BC_CODE))

    with _named("channel_axis"):
        ch = channel_axis_value(channel_axis, np.ndim(image))
    with _named("image"):
        u = as_float_array(image, "image", ndim=(2, 3) if ch is None else (3, 4), check_finite=check_finite)
    u = u[None] if ch is None else np.moveaxis(u, ch, 0)
    u = np.array(u, order="C", copy=True)  # private copy, (C, *spatial), native order
    with _named("spacing"):
        grid = Grid(u.shape[1:], spacing, boundary)
    h = grid.spacing
    ndim = grid.ndim

    with _named("sigma"):
        sigma_ = DEFAULT_SIGMA * min(h) if sigma is None else nonnegative_scalar(sigma, "sigma")
    with _named("rho"):
        default_rho = DEFAULT_RHO_CED * min(h) if kind == "ced" else 0.0
        rho_ = default_rho if rho is None else nonnegative_scalar(rho, "rho")
    with _named("alpha"):
        alpha_ = positive_scalar(alpha, "alpha")
        if alpha_ > 1.0:
            raise ParameterError(
                f"{{alpha}} must lie in (0, 1] (the smallest eigenvalue of D); got {alpha!r}", param="alpha")
    with _named("C"):
        C_ = positive_scalar(C, "C")
    with _named("kappa"):
        kappa_user = positive_or_auto(kappa, "kappa")
    dt_, n_iter = _time_steps(grid, kind, dt, num_iter, max_steps)

    # -- grey-value scale of the structure tensor: the range max - min becomes 255 ----------------
    lo, hi = float(np.nanmin(u)) if u.size else 0.0, float(np.nanmax(u)) if u.size else 0.0
    finite_range = hi - lo if math.isfinite(hi - lo) else 0.0
    gs = GREY_RANGE / finite_range if finite_range > 0 else 1.0
    modes = _MODES[boundary]
    pix = tuple(sigma_ / x for x in h)

    be = backend_for(u)

    def smooth(x: np.ndarray) -> np.ndarray:
        """A smoothed copy of the ``(C, *spatial)`` array ``x`` (std ``sigma``; the boundary's mode)."""
        if sigma_ == 0:
            return x.copy()
        if boundary == "neumann":  # the compiled, threaded equal of SciPy's mode="reflect"
            return be.gaussian_filter(x, pix)
        return np.stack([gaussian_filter(x[c], pix, mode=modes, cval=0.0) for c in range(x.shape[0])])

    kappa_ = None
    kinv2 = 0.0
    if kind == "eed":
        if kappa_user is None:
            v = smooth(u)
            kappa_ = EED_KAPPA_FACTOR * estimate_kappa(v, h, "exponential")
        else:
            kappa_ = kappa_user
        kinv2 = 0.0 if math.isinf(kappa_) else 1.0 / (kappa_ * gs) ** 2
    if kind == "ced":
        mode = K.CED
    else:  # a grey image without integration: D from the gradient itself, no eigen-decomposition
        mode = K.EED_GRAD if rho_ == 0 and u.shape[0] == 1 else K.EED

    spatial = u.shape[1:]
    nlinks = 3 if ndim == 2 else 6
    W = np.empty(spatial + (nlinks,), dtype=u.dtype)
    O = np.empty(spatial + (nlinks, ndim), dtype=np.int16)
    reach = np.empty(spatial[0], dtype=np.int64)
    span = np.empty(spatial[0], dtype=np.int64)
    acc = np.empty(u.shape, dtype=np.float64)
    diag = np.empty(spatial, dtype=np.float64)
    nchunks = max(1, min(numba.get_num_threads(), spatial[0]))
    bc = grid.bc_code
    links = K.links2 if ndim == 2 else K.links3
    apply = K.apply2 if ndim == 2 else K.apply3
    substeps = 0
    max_offset = 0
    for _ in range(n_iter):
        v = smooth(u)
        v *= v.dtype.type(gs)
        if mode == K.EED_GRAD:
            f = v
        else:
            f = _structure_tensor(v, h, rho_, boundary)
        bad = links(f, mode, _COND[cond], kinv2, EED_MIN_DIFFUSIVITY,
                    alpha_, C_, *h, bc, W, O, reach, span)
        if bad:
            raise ParameterError(
                f"the diffusion tensor of {bad} voxel(s) is too anisotropic for the stencil (Selling's "
                f"reduction did not finish in {K.MAX_REDUCTION_STEPS} steps); raise {{alpha}} or use a less "
                "anisotropic "
                "{spacing}", param="alpha" if kind == "ced" else "spacing")
        R = int(reach.max())
        max_offset = max(max_offset, int(span.max()))
        apply(u, W, O, R, bc, acc, diag, True, nchunks)
        m = max(1, math.ceil(dt_ * float(diag.max()) / (1.0 + 1e-9)))
        sub = dt_ / m
        K.finish(u.reshape(-1), acc.reshape(-1), sub, u.reshape(-1))
        for _ in range(m - 1):
            apply(u, W, O, R, bc, acc, diag, False, nchunks)
            K.finish(u.reshape(-1), acc.reshape(-1), sub, u.reshape(-1))
        substeps += m - 1

    out = u[0] if ch is None else np.moveaxis(u, 0, ch)
    out = np.ascontiguousarray(out)
    if not return_info:
        return out
    info = TensorDiffusionResult(kind=kind, kappa=kappa_, dt=dt_, num_iter=n_iter, sigma=sigma_, rho=rho_,
                                 alpha=alpha_, C=C_, conductance=cond, spacing=h, boundary=boundary,
                                 substeps=substeps, max_offset=max_offset)
    return out, info


def _option(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    if value.lower() not in allowed:
        choices = ", ".join(map(repr, allowed))
        raise ParameterError(f"{{{name}}} must be one of {choices}; got {value!r}", param=name)
    return value.lower()


def _time_steps(grid: Grid, kind: str, dt: Any, num_iter: Any, max_steps: Any) -> tuple[float, int]:
    """The step and the number of steps, checked against the stability limit and ``max_steps``."""
    dt_max = grid.explicit_dt_limit()
    if dt is None:
        dt_ = dt_max
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
            n_est = DEFAULT_NUM_ITER[kind] * dt_max / dt_
            what = f"the default diffusion time {DEFAULT_NUM_ITER[kind]} * dt_max with dt={dt_:.6g}"
            check_step_count(n_est, max_steps, what, "use a larger dt (or dt=None), or pass num_iter")
            return dt_, max(1, int(round(n_est)))
    with _named("num_iter"):
        n = nonnegative_int(num_iter, "num_iter")
    with _named("max_steps"):
        check_step_count(n, max_steps, f"num_iter={n}", "use fewer steps")
    return dt_, n


def _structure_tensor(v: np.ndarray, h: tuple[float, ...], rho: float, boundary: str) -> np.ndarray:
    """``J_rho = K_rho * sum_c grad v_c grad v_c^T`` of a ``(C, *spatial)`` array, as its 3 (2-D) or 6 (3-D)
    upper-triangle components ``(00, 01, 11)`` / ``(00, 01, 02, 11, 12, 22)`` in ``v``'s dtype.

    Central differences in physical units (ghost cells: the edge cell for Neumann, the far side for
    periodic, 0 for Dirichlet), then a Gaussian of std ``rho`` (physical units) per component with
    the boundary's SciPy mode.
    """
    ndim = v.ndim - 1
    f = np.empty(((3 if ndim == 2 else 6),) + v.shape[1:], dtype=v.dtype)
    (K.structure2 if ndim == 2 else K.structure3)(v, *h, BC_CODE[boundary], f)
    if rho > 0:
        pix = tuple(rho / x for x in h)
        for c in range(f.shape[0]):
            f[c] = gaussian_filter(f[c], pix, mode=_MODES[boundary], cval=0.0)
    return f
