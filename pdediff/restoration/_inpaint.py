"""``inpaint``: fill missing pixels of 1-D/2-D/3-D images and scans (classical PDE methods and a learned model)."""

from __future__ import annotations

import inspect
import os
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .. import catalogue
from .._arrays import is_cupy_array
from .._plan import DEFAULT_PM_INPAINT_NUM_ITER, DEFAULT_SIGMA, InpaintPlan, inpaint_plan, intensity_scale
from .._arrays import is_dask_array
from .._validation import as_float_array, check_option, refuse_foreign_array
from ..errors import ParameterError
from ..grid import Grid
from ._linear import LinearSolveInfo, harmonic_cg_inplace, solve_linear
from ._pm_inpaint import pm_inpaint

__all__ = ["METHODS", "InpaintResult", "inpaint"]

#: The methods of :func:`inpaint` (:data:`pdediff.catalogue.INPAINT_METHODS`).
METHODS = catalogue.INPAINT_METHODS
#: Perona–Malik defaults, tuned with crack masks (seeds 1, 2) on bundled images not reported in
#: docs/restoration/inpaint_results.md (skimage's ihc, rocket, retina and motorcycle_left 512² crops,
#: camera): 5 AOS steps of the explicit stability limit after the biharmonic fill, automatic kappa,
#: sigma 0.8.  Mean PSNR in the mask minus the best of biharmonic/OpenCV NS/Telea over those 10 cases:
#: 5 steps -0.10 dB, 20 steps -0.31 dB (-0.49 with sigma 0), 3x or 10x the automatic kappa -0.32 dB
#: and -0.49 dB; the harmonic start 20 steps (the former default) lost more.
DEFAULT_PM_NUM_ITER = DEFAULT_PM_INPAINT_NUM_ITER


@dataclass(frozen=True)
class InpaintResult:
    """What :func:`inpaint` did, returned with ``return_info=True``.

    ``solver``/``iterations``/``residual`` describe the linear solve (harmonic,
    biharmonic, and the biharmonic start of Perona–Malik): ``iterations`` counts
    refinement steps of the direct solver or conjugate-gradient iterations,
    ``residual`` is the final relative residual ``|b - A x| / |b|`` (largest over
    channels).  ``kappa``, ``dt``, ``num_iter``, ``sigma`` and ``conductance``
    are Perona–Malik's.  ``num_inference_steps``: the learned model's sampling
    steps (``None``: the run's default); ``num_iter`` repeats it for the learned
    method, as before that field existed.
    """

    method: str
    n_missing: int
    spacing: tuple[float, ...]
    solver: str | None = None
    iterations: int | None = None
    residual: float | None = None
    kappa: float | None = None
    dt: float | None = None
    num_iter: int | None = None
    sigma: float | None = None
    conductance: str | None = None
    num_inference_steps: int | None = None


def inpaint(
    image: Any,
    mask: Any,
    *,
    method: Literal["harmonic", "biharmonic", "perona_malik", "learned"] = "harmonic",
    channel_axis: int | None = None,
    spacing: float | Any = 1.0,
    tol: float | None = None,
    max_iter: int | None = None,
    solver: Literal["auto", "direct", "cg"] = "auto",
    num_iter: int | None = None,
    kappa: float | Literal["auto"] = "auto",
    conductance: Literal["exponential", "rational", "tukey"] = "exponential",
    sigma: float | None = None,
    dt: float | None = None,
    model: Any = None,
    jump_length: int | None = None,
    jump_n_sample: int | None = None,
    seed: int | None = None,
    progress: bool = False,
    return_info: bool = False,
    num_inference_steps: int | None = None,
) -> Any:
    r"""Fill the pixels of ``image`` where ``mask`` is True from the known ones.

    The classical methods solve a PDE inside the mask with the known pixels as
    Dirichlet data and a zero-flux (Neumann) condition on the image border;
    ``spacing`` (physical pixel size per axis) enters the Laplacian's weights
    ``1 / h_a^2``.  Known pixels are returned unchanged, bit for bit, by every method.

    Parameters
    ----------
    image : array, shape (n,), (ny, nx) or (nz, ny, nx), plus a channel axis if ``channel_axis``
        float32/float64 kept; float16 promoted to float32; integer images
        (uint8, uint16, int16...) promoted to float64 without rescaling (as
        :func:`pdediff.perona_malik` does).  Known pixels must be finite; pixels
        inside the mask may hold anything (NaN included): they are replaced.
        ``method="learned"``: 2-D only (``(H, W)``, or with a channel axis),
        integers are mapped to the model's ``[-1, 1]`` by their dtype's range,
        floats must lie in ``[0, 1]``.  NumPy arrays only.
    mask : array of bool, shape of the image's spatial axes
        True marks the pixels to fill (scikit-image's and OpenCV's convention).
        Integer arrays of 0/1 are accepted.  With ``channel_axis``, a mask of the
        image's full shape is accepted when it is the same in every channel.  An
        all-False mask returns a (float) copy of the image; an all-True mask is
        refused (nothing to fill from).
    method : {"harmonic", "biharmonic", "perona_malik", "learned"}
        ``"harmonic"``: the steady heat equation :math:`\Delta u = 0` in the mask
        (the smoothest fill in the sense of Dirichlet energy; fills from the
        hole's boundary, blurs edges across wide holes).  ``"biharmonic"``:
        :math:`\Delta^2 u = 0` in the mask, scikit-image's
        ``inpaint_biharmonic`` formulation [DH18]_ (smoother continuation of slopes;
        may overshoot the data's range, and, unlike scikit-image, is not clipped).
        ``"perona_malik"``: the biharmonic fill, then ``num_iter`` AOS steps of
        Perona–Malik diffusion restricted to the mask, colour channels sharing
        one conductance: edges crossing thin cracks are continued instead of
        smeared (:func:`pdediff.perona_malik`'s kernels, known rows of each
        tridiagonal line kept as identity rows; AOS after [WRV98i]_; PDE
        inpainting after [BSCB00]_).  ``"learned"``: RePaint [LSH22]_ with a
        trained diffusion model (``model``).
    channel_axis : int, optional
        Axis of colour channels.  Harmonic and biharmonic fill channels
        independently (one matrix, one factorisation, one right-hand side per
        channel); Perona–Malik couples them through one conductance from the
        summed squared channel gradients.
    spacing : float or sequence of float
        Pixel size per spatial axis, in physical units (e.g. ``(3.0, 1.0, 1.0)`` mm).
    tol : float, optional
        Harmonic/biharmonic (and Perona–Malik's biharmonic start): relative
        residual ``|b - A x| / |b|`` to reach (largest over channels), in ``(0, 1)``, default 1e-8.
    max_iter : int, optional
        Positive cap on the linear solver's work: refinement steps after the direct
        factorisation (default 10; one is almost never needed), or CG
        iterations (default ``20 * max(shape) + 100`` for harmonic, grown with the
        square for biharmonic).  Not reaching ``tol`` raises :class:`RuntimeError`.
    solver : {"auto", "direct", "cg"}
        Linear solver.  ``"direct"``: SuperLU sparse factorisation (symmetric
        mode, minimum-degree ordering) shared by all channels.  ``"cg"``:
        conjugate gradients on all channels at once; for harmonic a compiled,
        matrix-free solver over the masked pixels only, preconditioned by
        symmetric successive over-relaxation (SSOR, omega 1.8), reading and
        writing the image in its own layout (no sparse matrix, no copy beyond
        the output); for biharmonic Jacobi-preconditioned on the sparse matrix
        (less memory on large 3-D holes, iterations grow with the square of
        the hole's width; with anisotropic spacing it runs to ``tol / (h_max/h_min)^2``,
        since anisotropy raises the condition number by about that factor).  ``"auto"``: harmonic always uses the compiled CG;
        biharmonic (and Perona–Malik's start) the direct solver in 1-D/2-D and
        for 3-D masks up to 60 000 pixels, CG above.  Measured on astronaut
        512² (3 channels, one thread, 2-core machine shared with other jobs)
        for harmonic: 4 % crack mask, compiled CG 30–38 ms (20 iterations)
        against 23–75 ms direct; 4 % block mask (holes up to ~100 px wide)
        38–77 ms (35 iterations) against 87–133 ms direct.
    num_iter : int, optional
        Perona–Malik: number of AOS steps, default 5 (at most 100 000).
        Learned: deprecated spelling of ``num_inference_steps`` (one
        :class:`FutureWarning`; it will be refused for ``"learned"`` in the next release).
    kappa : float or "auto"
        Perona–Malik edge threshold (intensity per physical length).
        ``"auto"``: :func:`pdediff.perona_malik`'s robust estimate (Black et al.)
        computed on the faces between known pixels only.
    conductance : {"exponential", "rational", "tukey"}
        Perona–Malik conductance, as in :func:`pdediff.perona_malik`.
    sigma : float, optional
        Perona–Malik: Catté pre-smoothing (physical units) of the image that
        feeds the conductance; default ``0.8 * min(spacing)``.
    dt : float, optional
        Perona–Malik AOS step (unconditionally stable); default the explicit
        stability limit ``1 / (2 sum_a 1/h_a^2)`` (0.25 in 2-D for unit spacing).
    model : pdediff.torch.Run or path-like, optional
        ``method="learned"`` only: a run loaded with
        :func:`pdediff.torch.load_run`, or its folder.  The image's ``(C, H, W)``
        must equal the run's ``image_shape``.
    jump_length, jump_n_sample : int, optional
        Learned only: RePaint's resampling (go ``jump_length`` steps back up the
        noise schedule, ``jump_n_sample`` times per jump point), passed to the
        run's ``repaint``; ``None`` keeps the run's defaults (10 and 10).
        Positive integers; the sampling work grows with ``jump_n_sample``.
    seed : int, optional
        Learned only: seed of the sampling noise (default 0); the classical methods are
        deterministic and refuse it.
    progress : bool
        Show a tqdm progress bar (Perona–Malik steps, learned sampling).
    return_info : bool
        Also return an :class:`InpaintResult`.
    num_inference_steps : int, optional
        Learned only: sampling steps of the model (default: the run's own).

    Returns
    -------
    out : ndarray
        The filled image, same shape as ``image`` and its float dtype
        (float32/float64; float64 for integer input, in the input's units).
    info : InpaintResult
        Only with ``return_info=True``.

    Raises
    ------
    TypeError
        bool/complex/object ``image``; ``mask`` neither bool nor integer;
        ``model`` neither a run nor a path; CuPy arrays.
    ParameterError
        (a ``ValueError``; ``err.param`` names the parameter)
        Unknown ``method``/``solver``/``conductance``; wrong dimensionality;
        ``mask`` of the wrong shape, with values other than 0/1, differing
        between channels, or covering the whole image; NaN/inf at known pixels;
        non-positive ``spacing``/``tol``/``dt``/``kappa``/``max_iter``; infinite ``kappa``;
        ``tol`` of 1 or more; a Dask ``image`` or ``mask`` (compute it first);
        ``spacing`` too anisotropic for the linear fills (see Notes); an option
        given to a method it does not apply to (``seed`` and ``spacing`` other
        than 1 to the classical and learned methods respectively); for ``"learned"``: no ``model``, an image
        size other than the run's, float values outside ``[0, 1]``.
    StepLimitError
        ``num_iter`` above 100 000.
    RuntimeError
        The linear solver did not reach ``tol`` within ``max_iter``.

    Notes
    -----
    Harmonic: for each masked pixel ``p``, ``sum_faces (u_q - u_p) / h_a^2 = 0``
    (the ``2 ndim + 1``-point Laplacian; faces on the image border carry no
    flux), a symmetric positive definite M-matrix system in the masked pixels
    only, whose solution obeys the maximum principle (values inside the range
    of the known data; an iterative solve to within about the condition number times ``tol``).  Biharmonic: ``(L L u)_p = 0`` with the same Neumann
    Laplacian ``L``, solved as the normal equations ``Lm^T Lm x = -Lm^T L u0``;
    it equals scikit-image's system, built without a Python loop.
    With anisotropic spacing the coarse axis' couplings are ``(h_min/h_max)^2`` (harmonic) or
    its square (biharmonic) of the fine axis' ones: below float64's epsilon (``max/min`` above
    6.7e7, respectively 8192) ``spacing`` is refused; the direct solver also estimates the fill's
    error by one refinement correction and raises :class:`RuntimeError` above ``1e-6`` relative
    (ill-conditioned systems, e.g. spacing ``(1, 100)`` with a hole spanning the fine axis, where
    a small residual does not mean a small error).
    Perona–Malik: each AOS step solves, per axis, the tridiagonal lines of
    ``I - m dt A_a(u_sigma)`` whose known rows are identity rows; every line
    system is an M-matrix, so no step leaves the range of its start at any
    ``dt``.  The start is the biharmonic fill, which may overshoot the known
    data's range; the result stays within the range of that start (the
    maximum principle of the known data itself holds only for the harmonic method).

    References
    ----------
    .. [BSCB00] M. Bertalmio, G. Sapiro, V. Caselles, C. Ballester, "Image
       inpainting", SIGGRAPH 2000.
    .. [DH18] S. B. Damelin, N. S. Hoang, "On surface completion and image
       inpainting by biharmonic functions: numerical aspects", Int. J. Math.
       Math. Sci. 2018, 3950312.
    .. [WRV98i] J. Weickert, B. ter Haar Romeny, M. Viergever, "Efficient and
       reliable schemes for nonlinear diffusion filtering", IEEE TIP 7(3), 1998.
    .. [LSH22] A. Lugmayr et al., "RePaint: inpainting using denoising
       diffusion probabilistic models", CVPR 2022.

    Examples
    --------
    >>> import numpy as np
    >>> import pdediff.restoration as restoration
    >>> ramp = np.tile(np.linspace(0.0, 1.0, 32), (32, 1))
    >>> mask = np.zeros(ramp.shape, bool); mask[10:20, 8:24] = True
    >>> damaged = np.where(mask, np.nan, ramp)
    >>> out = restoration.inpaint(damaged, mask)
    >>> bool(np.abs(out - ramp).max() < 1e-6)
    True
    >>> step = np.where(np.arange(64) < 32, 0.2, 0.8) * np.ones((64, 1))
    >>> crack = np.zeros(step.shape, bool); crack[30:33, :] = True
    >>> out, info = restoration.inpaint(step, crack, method="perona_malik", return_info=True)
    >>> info.num_iter, bool(np.array_equal(out[~crack], step[~crack]))
    (5, True)
    """
    method = check_option("method", method, METHODS)
    if is_cupy_array(image) or is_cupy_array(mask):
        raise TypeError("inpaint works on NumPy arrays; move CuPy arrays to the host first (x.get())")
    if method == "learned" and num_iter is not None:
        if num_inference_steps is not None:
            raise ParameterError("pass {num_inference_steps} only ({num_iter} is its deprecated spelling for "
                                 "{method='learned'})", param="num_iter")
        warnings.warn("inpaint(method='learned', num_iter=...) is deprecated; pass num_inference_steps=... "
                      "(the model's sampling steps)", FutureWarning, stacklevel=2)
        num_inference_steps, num_iter = num_iter, None
    # every option checked once, before any work (pdediff._plan)
    plan = inpaint_plan(method, np.ndim(image), channel_axis=channel_axis, tol=tol, max_iter=max_iter, solver=solver,
                        num_iter=num_iter, kappa=kappa, conductance=conductance, sigma=sigma, dt=dt, model=model,
                        jump_length=jump_length, jump_n_sample=jump_n_sample,
                        num_inference_steps=num_inference_steps, seed=seed)
    refuse_foreign_array(image, "image")
    refuse_foreign_array(mask, "mask")
    for name, arr in (("image", image), ("mask", mask)):
        if is_dask_array(arr):  # one linear system (or model) over the whole grid: no chunk-wise result
            raise ParameterError(f"{{{name}}} is a Dask array: inpaint solves one system over the whole grid and "
                                 f"runs on NumPy arrays; compute the Dask array first ({name}.compute())",
                                 param=name)
    in_dtype = np.asarray(image).dtype if not isinstance(image, np.ndarray) else image.dtype
    ch = plan.channel_axis
    if method == "learned":
        ndim = (2,) if ch is None else (3,)
    else:
        ndim = (1, 2, 3) if ch is None else (2, 3, 4)
    x = as_float_array(image, "image", ndim=ndim, check_finite=False)
    spatial = x.shape if ch is None else x.shape[:ch] + x.shape[ch + 1:]
    m = _as_mask(mask, spatial, x.shape, ch)
    if method == "harmonic" and plan.solver in ("auto", "cg"):
        return _harmonic_fast(x, m, ch, spacing, plan, return_info)
    u = np.array(x[None] if ch is None else np.moveaxis(x, ch, 0), order="C")  # (C, *spatial), own copy
    grid = Grid(u.shape[1:], spacing)
    h = grid.spacing
    if method == "learned" and any(x != 1.0 for x in h):  # the model works on its training grid of pixels
        raise ParameterError(f"{{spacing}} does not apply to {{method='learned'}} (the model fills square pixels "
                             f"of its training images; it has no physical spacing); got {spacing!r}",
                             param="spacing")
    n_missing = int(np.count_nonzero(m))
    known = ~m
    if n_missing == m.size:
        raise _whole_mask()
    finite = np.isfinite(u)
    if not bool(finite.all()) and bool((known & ~finite).any()):
        raise _non_finite_known()
    np.copyto(u, 0, where=m)  # NaN/inf inside the mask are replaced; nothing reads them
    info = InpaintResult(method=method, n_missing=n_missing, spacing=h)

    if n_missing == 0:
        out = u
    elif method == "learned":
        out = _learned(u, m, in_dtype, model=model, plan=plan, seed=0 if seed is None else seed, progress=progress)
        steps = plan.num_inference_steps
        info = InpaintResult(method=method, n_missing=n_missing, spacing=h, num_iter=steps,
                             num_inference_steps=steps)
    else:
        # Perona–Malik starts from the biharmonic fill: it continues slopes into the hole, which the
        # few edge-preserving steps then only sharpen (see DEFAULT_PM_NUM_ITER)
        kind = "harmonic" if method == "harmonic" else "biharmonic"
        filled, lin = _linear_fill(kind, u, m, h, plan.solver, plan.tol, plan.max_iter)
        info = InpaintResult(method=method, n_missing=n_missing, spacing=h, solver=lin.solver,
                             iterations=lin.iterations, residual=lin.residual)
        if method == "perona_malik":
            dt_ = grid.explicit_dt_limit() if plan.dt is None else plan.dt
            sigma_ = DEFAULT_SIGMA * min(h) if plan.sigma is None else plan.sigma
            filled, kappa_used = pm_inpaint(u, m, h, num_iter=plan.num_iter, kappa=plan.kappa,
                                            conductance=plan.conductance, sigma=sigma_, dt=dt_, progress=progress)
            info = InpaintResult(method=method, n_missing=n_missing, spacing=h, solver=lin.solver,
                                 iterations=lin.iterations, residual=lin.residual, kappa=kappa_used, dt=dt_,
                                 num_iter=plan.num_iter, sigma=sigma_, conductance=plan.conductance)
        out = u
        if filled is not u:
            np.copyto(out, filled, where=m)  # known pixels stay the caller's values, bit for bit
    if ch is not None:
        out = np.ascontiguousarray(np.moveaxis(out, 0, ch))
    else:
        out = out[0]
    return (out, info) if return_info else out


def _whole_mask() -> ParameterError:
    return ParameterError("{mask} covers the whole image: no known pixel to inpaint from ({mask} must leave "
                          "at least one pixel False)", param="mask")


def _non_finite_known() -> ParameterError:
    return ParameterError("{image} contains NaN or infinity at known pixels ({mask} False); only pixels inside "
                          "the mask may be non-finite", param="image")


def _as_mask(mask: Any, spatial: tuple[int, ...], full: tuple[int, ...], ch: int | None) -> np.ndarray:
    """``mask`` as a C-contiguous bool array of the spatial shape (True = missing), checked."""
    if mask is None or isinstance(mask, (bool, int, float)):
        raise TypeError(f"mask must be a bool array (True = pixel to fill) of shape {spatial}; got {mask!r}")
    mk = np.asarray(mask)
    if mk.dtype == np.bool_:
        pass
    elif mk.dtype.kind in "iu":
        if not bool(((mk == 0) | (mk == 1)).all()):
            raise ParameterError("{mask} must be bool or hold only 0 and 1 (1 = pixel to fill); got other integer "
                                 "values", param="mask")
        mk = mk != 0
    else:
        raise TypeError(f"mask must be a bool array (True = pixel to fill) or integers 0/1; got dtype {mk.dtype}")
    if mk.shape == spatial:
        return np.ascontiguousarray(mk)
    if ch is not None and mk.shape == full:
        per = np.moveaxis(mk, ch, 0)
        if not bool((per == per[0]).all()):
            raise ParameterError("{mask} differs between channels; inpaint fills the same pixels in every channel: "
                                 f"pass one mask of the spatial shape {spatial}", param="mask")
        return np.ascontiguousarray(per[0])
    also = f" (or the image's full shape {full}, equal in every channel)" if ch is not None else ""
    raise ParameterError(f"{{mask}} must have the image's spatial shape {spatial}{also}; got shape {mk.shape}",
                         param="mask")


def _harmonic_fast(x, m, ch, spacing, plan: InpaintPlan, return_info):
    """The harmonic fill by the compiled CG, on one C-ordered copy of ``x`` in the caller's layout (no
    channel-first round trip, no full-image float64 copy: the work outside the solve is two passes)."""
    h = Grid(m.shape, spacing).spacing
    n_missing = int(np.count_nonzero(m))
    if n_missing == m.size:
        raise _whole_mask()
    out = np.array(x, order="C", copy=True)
    finite = np.isfinite(out)
    if not bool(finite.all()) and bool(((~m if ch is None else np.expand_dims(~m, ch)) & ~finite).any()):
        raise _non_finite_known()
    lin = LinearSolveInfo(solver="cg", iterations=0, residual=0.0)
    if n_missing:
        lin = harmonic_cg_inplace(out, m, h, ch, tol=plan.tol, max_iter=plan.max_iter)
    if not return_info:
        return out
    return out, InpaintResult(method="harmonic", n_missing=n_missing, spacing=h, solver=lin.solver,
                              iterations=lin.iterations, residual=lin.residual)


def _linear_fill(kind, u, m, h, solver, tol, max_iter):
    """Harmonic or biharmonic fill of ``u`` ``(C, *spatial)``, in place (masked pixels only), computed in
    float64 on data scaled by a power of two (no overflow whatever the magnitudes)."""
    a = intensity_scale(u, np)
    U = u.reshape(u.shape[0], -1).T.astype(np.float64) * a
    x, lin = solve_linear(kind, U, m, h, solver=solver, tol=tol, max_iter=max_iter)
    with np.errstate(over="ignore"):  # an overflow is refused just below, with advice
        fill = x.T / a
    top = float(np.finfo(u.dtype).max)
    if not np.all(np.abs(fill) <= top):  # a biharmonic fill overshoots the known values: it may leave the dtype
        advice = ("pass the image as float64" if u.dtype != np.float64 else  # float64 has no wider type
                  "scale the image down first, or use method='harmonic' (it stays within the known values)")
        raise ValueError(f"the {kind} fill reaches {float(np.abs(fill).max()):.4g}, beyond {u.dtype}'s range "
                         f"(max {top:.4g}); {advice} (the known values span "
                         f"{float(u.min()):.4g}..{float(u.max()):.4g})")
    u.reshape(u.shape[0], -1)[:, np.flatnonzero(m)] = fill.astype(u.dtype)  # masked pixels only
    return u, lin


def _learned(u, m, in_dtype, *, model, plan: InpaintPlan, seed, progress):
    """RePaint through ``model.repaint`` on the model's ``[-1, 1]`` scale; returns the filled ``u``."""
    if isinstance(model, (str, os.PathLike)):
        from ..torch import load_run  # torch only when a learned model is asked for

        run = load_run(model)
    elif hasattr(model, "repaint") and hasattr(model, "image_shape"):
        run = model
    else:
        raise TypeError(f"model must be a pdediff.torch.Run (pdediff.torch.load_run) or a run folder; got "
                        f"{type(model).__name__}")
    want = tuple(int(s) for s in run.image_shape)
    if tuple(u.shape) != want:
        raise ParameterError(f"{{image}} has (C, H, W) = {tuple(u.shape)} but the model was trained on (C, H, W) = "
                             f"{want}; resize or crop the image, convert it to the model's number of channels, "
                             "and give colour images their {channel_axis}", param="image")
    in_dtype = np.dtype(in_dtype)
    known = ~m
    if in_dtype.kind in "iu":
        info = np.iinfo(in_dtype)
        lo, span = float(info.min), float(info.max) - float(info.min)
    else:
        vals = u[:, known]
        vmin, vmax = float(vals.min()), float(vals.max())
        if vmin < 0 or vmax > 1:
            raise ParameterError(f"{{image}}: float images for {{method='learned'}} must lie in [0, 1] (the model's "
                                 f"data scale); got values in [{vmin:.4g}, {vmax:.4g}]; rescale first (e.g. "
                                 "image / 255)", param="image")
        lo, span = 0.0, 1.0
    x = ((u.astype(np.float64) - lo) / span * 2.0 - 1.0).astype(np.float32)
    x[:, m] = 0.0
    # None: the model's own defaults (its repaint's keyword defaults are kept by not passing them)
    res = np.asarray(run.repaint(x[None], m[None, None], seed=seed, progress=progress, **plan.jumps,
                                 **_steps_keyword(run.repaint, plan.num_inference_steps)))
    if res.shape != (1,) + tuple(u.shape):
        raise RuntimeError(f"model.repaint returned shape {res.shape}; expected {(1,) + tuple(u.shape)}")
    filled = ((res[0].astype(np.float64) + 1.0) / 2.0 * span + lo).astype(u.dtype)
    out = u
    out[:, m] = filled[:, m]
    return out


def _steps_keyword(repaint, n: int | None) -> dict:
    """The sampling-step count as ``repaint`` spells it: ``num_inference_steps``, or ``steps`` in runs
    written before that keyword (or stand-ins that still take ``steps``)."""
    try:
        params = inspect.signature(repaint).parameters
    except (TypeError, ValueError):
        params = {}
    if "num_inference_steps" in params or "steps" not in params:
        return {"num_inference_steps": n}
    return {"steps": n}
