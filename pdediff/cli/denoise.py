"""``pdediff denoise``."""

from __future__ import annotations

import argparse

import numpy as np

from ..catalogue import CONDUCTANCES, LEARNED_DENOISERS, PM_METHODS, TENSOR_CONDUCTANCES, TENSOR_KINDS
from ._errors import CLIError, library_errors
from ._images import (
    DTYPE_CHOICES,
    _kappa_arg,
    chunk_progress,
    open_chunked_job,
    open_job,
    report_job,
    spacing_note,
    spacing_text,
    write_chunked_job,
    write_job,
)

#: Library names that are not a flag's ``dest``, and settings spelled otherwise (see ``_errors.FlagSpelling``).
LIBRARY_NAMES = {"image": "input", "max_steps=None": "--max-steps 0", "scheme": "method", "kind": "method",
                 "method='semi-implicit'": "--semi-implicit"}
#: ``--method`` values that run :func:`pdediff.tensor_diffusion` (the others Perona–Malik).
TENSOR_METHODS = TENSOR_KINDS
#: ``--method`` values that run a shipped learned model (:func:`pdediff.torch.denoisers.denoise_learned`).
LEARNED_METHODS = LEARNED_DENOISERS
_TITLES = {"eed": "EED", "ced": "CED", "tnrd": "TNRD (learned)", "cnn": "CNN (learned)"}
#: ``--conductance`` choices: Perona–Malik's and EED's (each method accepts its own, checked in :func:`run`).
_ALL_CONDUCTANCES = CONDUCTANCES + tuple(c for c in TENSOR_CONDUCTANCES if c not in CONDUCTANCES)


def _listing(names: tuple[str, ...]) -> str:
    return ", ".join(names[:-1]) + " or " + names[-1]


def register(subparsers) -> None:
    """Add ``denoise`` to ``subparsers`` (an ``add_subparsers`` object)."""
    from .._validation import DEFAULT_MAX_STEPS

    n = subparsers.add_parser(
        "denoise",
        help="edge-preserving (Perona–Malik, EED, CED) or learned (TNRD, CNN) denoising of an image or volume",
        description="Denoise INPUT with Perona–Malik diffusion, Weickert's edge-enhancing (EED) or "
        "coherence-enhancing (CED) tensor diffusion, or a shipped learned model (tnrd: trainable "
        "reaction-diffusion; cnn: a noise-level-conditional CNN; needs the torch extra), and write OUTPUT. Formats: .npy .npz .png .jpg "
        ".tif/.tiff (stacks as volumes) .nii/.nii.gz .mgz/.mgh, .hdr/.img pairs (NIfTI or Analyze 7.5; read), DICOM (.dcm file or a "
        "series folder). INPUT is never modified; every output is checked before computing and written "
        "atomically (all outputs or none); no conversion clips or wraps values silently.",
    )
    n.add_argument("input", metavar="INPUT")
    n.add_argument("-o", "--output", metavar="OUTPUT", required=True)
    n.add_argument("--num-iter", type=int, default=None,
                   help="time steps (default: 15 explicit steps; EED: the time of 60 x the estimated noise "
                        "fraction of the grey range steps at the stability limit, in steps of 0.8 of it, e.g. 8 "
                        "at 10 %%; CED: 50)")
    n.add_argument("--kappa", default="auto", help="edge threshold, or 'auto' (default); CED refuses it")
    n.add_argument("--conductance", choices=_ALL_CONDUCTANCES, default=None,
                   help=f"diffusivity across edges: Perona–Malik {_listing(CONDUCTANCES)} (default "
                   f"{CONDUCTANCES[0]}); EED {_listing(TENSOR_CONDUCTANCES)} (default {TENSOR_CONDUCTANCES[0]}, "
                   "Weickert's); CED refuses it")
    n.add_argument("--method", choices=PM_METHODS + TENSOR_METHODS + LEARNED_METHODS, default="explicit",
                   help="Perona–Malik: explicit 2N-neighbour steps (default) or AOS (semi-implicit, large time "
                   "steps); tensor diffusion: eed (edge-enhancing: also smooths along edges) or ced "
                   "(coherence-enhancing: smooths along line-like structures, closes gaps); learned: tnrd or cnn "
                   "(grey models: colour channels one by one; 3-D scans slice by slice across the axis of the "
                   "largest spacing; the image's range, from its 3x3 median filter, is mapped onto [0, 1]; "
                   "the result is clipped to the input's range)")
    n.add_argument("--noise-level", type=float, default=None,
                   help="--method cnn: the noise's standard deviation in INPUT's units (default: estimated per "
                   "slice and channel from the finest Haar details)")
    n.add_argument("--threads", type=int, default=None,
                   help="--method tnrd|cnn: torch CPU threads (default: 1 unless OMP_NUM_THREADS is set; at most "
                   "the CPU count)")
    n.add_argument("--weights", metavar="MODEL.npz", default=None,
                   help="--method tnrd|cnn: a model written by pdediff train-denoiser (MODEL.npz, or a .pt "
                   "checkpoint, read without running code) instead of the shipped one")
    n.add_argument("--dt", type=float, default=None, help="time step (default: the explicit stability limit; EED: 0.8 of it)")
    n.add_argument("--sigma", type=float, default=None,
                   help="pre-smoothing sigma, physical units (default: 0.8 voxel of the finest axis; EED/CED: 1)")
    n.add_argument("--rho", type=float, default=None,
                   help="EED/CED integration scale of the structure tensor, physical units (default: EED 0, "
                   "CED 4 voxels of the finest axis)")
    n.add_argument("--alpha", type=float, default=None,
                   help="CED: the smallest diffusivity, across the flow, in (0, 1] (default 0.001)")
    n.add_argument("--semi-implicit", action="store_true",
                   help="EED/CED: semi-implicit steps (one sparse linear solve per step, conjugate gradients): "
                   "any --dt, the maximum-minimum principle kept; pays from about 8x the explicit limit "
                   "(default: the explicit diffusion time in steps of at most 5x the limit); not with --chunks")
    n.add_argument("--spacing", type=float, nargs="+", default=None,
                   help="voxel size per spatial axis (default: from the file, e.g. NIfTI/DICOM/TIFF, else 1)")
    n.add_argument("--channel-axis", default="auto", metavar="{auto,none,N}",
                   help="axis holding colour channels: 'auto' (default) takes it from the file (RGB/RGBA/grey+alpha "
                   "images) or detects an (H, W, 3|4) array; 'none' treats every axis as spatial; N names the axis (on a "
                   "2-D INPUT, one of at most 4 values, never an axis of a grey image file). An alpha "
                   "channel is never smoothed: it is copied to OUTPUT unchanged")
    n.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto",
                   help="output pixel type. 'auto': the input's float type (float32 for integer scans) where "
                   "the format stores floats, the input's integer type where it stores integers only "
                   "(PNG/JPEG/DICOM); 'input': the input's stored type. A scaled NIfTI keeps its integer type with a "
                   "slope/intercept the writer chooses for the result (both reported; the input's own pair is not "
                   "kept); DICOM keeps each slice's slope/intercept where the result fits it, else the writer "
                   "chooses one. Integer types never clip: a result outside the type's range is refused unless "
                   "--rescale")
    n.add_argument("--rescale", action="store_true",
                   help="map the result's min..max linearly onto the full range of the integer --dtype "
                   "(uint8 if --dtype is auto and OUTPUT stores integers only); reported on stdout")
    n.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS,
                   help="refuse more time steps than this before computing (default: %(default)s; 0: no limit)")
    n.add_argument("--preview", metavar="PREVIEW.png", default=None, help="also save a before/after figure")
    n.add_argument("--force", action="store_true", help="overwrite OUTPUT and PREVIEW if they exist (never INPUT)")
    n.add_argument("--quiet", action="store_true", help="no progress bar and no parameter report")
    n.add_argument("--chunks", type=int, default=None, metavar="N",
                   help="larger than memory: process INPUT (.npy, uncompressed .nii, .zarr) in chunks of N voxels "
                   "per axis with Dask, writing OUTPUT (.zarr or uncompressed .nii) chunk by chunk; peak memory a few chunks per "
                   "thread (needs pdediff[dask]; float output)")
    n.set_defaults(func=run, library_names=LIBRARY_NAMES)


def run(args: argparse.Namespace) -> None:
    """Run ``pdediff denoise`` for parsed ``args``."""
    from ..anisotropic.perona_malik import perona_malik

    if args.max_steps < 0:
        raise CLIError(f"--max-steps must be a positive integer, or 0 for no limit; got {args.max_steps}")
    tensor = args.method in TENSOR_METHODS
    if not tensor and (args.rho is not None or args.alpha is not None):
        flag = "--rho" if args.rho is not None else "--alpha"
        raise CLIError(f"{flag} applies to --method {' or '.join(TENSOR_METHODS)} only; got --method {args.method}")
    if args.method == "eed" and args.alpha is not None:
        raise CLIError("--alpha applies to --method ced only; EED's diffusivity across edges follows --kappa")
    if args.method == "ced" and (args.kappa != "auto" or args.conductance is not None):
        flag = "--kappa" if args.kappa != "auto" else "--conductance"
        raise CLIError(f"{flag} does not apply to --method ced (it has no edge threshold: its diffusivities follow "
                       "--alpha and the structure's coherence); drop it, or use --method eed")
    allowed = TENSOR_CONDUCTANCES if args.method == "eed" else CONDUCTANCES
    if args.conductance is not None and args.method in PM_METHODS + ("eed",) and args.conductance not in allowed:
        name = "EED (--method eed)" if args.method == "eed" else f"Perona–Malik (--method {args.method})"
        raise CLIError(f"--conductance must be one of {', '.join(allowed)} for {name}; got {args.conductance}")
    if args.semi_implicit and not tensor:
        raise CLIError(f"--semi-implicit applies to --method {' or '.join(TENSOR_METHODS)} only; got --method "
                       f"{args.method}")
    if args.semi_implicit and args.chunks is not None:
        raise CLIError("--semi-implicit solves one linear system over the whole volume per step: not with --chunks")
    learned = args.method in LEARNED_METHODS
    if not learned and (args.noise_level is not None or args.weights is not None or args.threads is not None):
        flag = "--noise-level" if args.noise_level is not None else "--weights" if args.weights else "--threads"
        raise CLIError(f"{flag} applies to --method {' or '.join(LEARNED_METHODS)} only; got --method {args.method}")
    if learned:
        if args.noise_level is not None and args.method != "cnn":
            raise CLIError("--noise-level applies to --method cnn only (tnrd was trained blind on 0-25 percent noise)")
        given = [f for f, v in (("--num-iter", args.num_iter), ("--conductance", args.conductance),
                                ("--dt", args.dt), ("--sigma", args.sigma), ("--rho", args.rho),
                                ("--alpha", args.alpha), ("--chunks", args.chunks)) if v is not None]
        if args.kappa != "auto":
            given.append("--kappa")
        from .._validation import DEFAULT_MAX_STEPS

        if args.max_steps != DEFAULT_MAX_STEPS:  # a trained model's work is fixed by its stages and layers
            given.append("--max-steps")
        if given:
            raise CLIError(f"{given[0]} does not apply to --method {args.method} (a trained model has no such "
                           "setting)")
        if args.noise_level is not None and not (np.isfinite(args.noise_level) and args.noise_level >= 0):
            raise CLIError(f"--noise-level must be a finite non-negative number; got {args.noise_level}")
        return _run_learned(args)
    if args.chunks is not None:
        return _run_chunked(args)
    # Perona–Malik obeys the maximum principle: an integer output type is checked against INPUT before computing
    job = open_job(args, verb="denoising", max_principle=True)
    data = job.data
    n_bad = data.size - int(np.count_nonzero(np.isfinite(data))) if data.dtype.kind == "f" else 0
    if n_bad:
        name = _TITLES.get(args.method, "Perona–Malik")
        raise CLIError(f"{job.src}: {n_bad} of {data.size} values are NaN or infinite; {name} needs finite "
                       "values: replace them first (e.g. numpy.nan_to_num), pdediff does not guess missing data")
    spacing = args.spacing if args.spacing is not None else (job.scan.spacing or 1.0)
    kappa = _kappa_arg(args.kappa)
    try:
        with library_errors():  # a ParameterError is printed with the flags by main
            if tensor:
                out, info = _tensor(args, job.colour, kappa, spacing, job.channel_axis)
            else:
                out, info = perona_malik(
                    job.colour, num_iter=args.num_iter, kappa=kappa, conductance=args.conductance or "exponential",
                    dt=args.dt, sigma=args.sigma, method=args.method, spacing=spacing,
                    channel_axis=job.channel_axis, return_info=True, progress=not args.quiet,
                    max_steps=args.max_steps or None,
                )
    except MemoryError:
        raise CLIError(f"{job.src}: out of memory while denoising {data.shape}; crop or downsample the scan first") \
            from None
    title = _TITLES.get(args.method, "Perona–Malik")
    result, rescaled, stored_out = write_job(job, out, info.spacing, rescale=args.rescale, title=title)
    if not args.quiet:
        report_job(job, "denoised", result, info.spacing, rescaled, stored_out)
        _report_settings(args, info, tensor)
        if job.preview is not None:
            print(f"  preview: {job.preview}")


def _run_learned(args: argparse.Namespace) -> None:
    """``denoise --method tnrd|cnn``: a shipped (or ``--weights``) model, with every rule the other methods keep."""
    from ._common import _need_torch

    # the result is clipped to the input's range, so an integer output type is checked before computing
    job = open_job(args, verb="denoising", max_principle=True)
    data = job.data
    n_bad = data.size - int(np.count_nonzero(np.isfinite(data))) if data.dtype.kind == "f" else 0
    if n_bad:
        raise CLIError(f"{job.src}: {n_bad} of {data.size} values are NaN or infinite; a learned denoiser needs "
                       "finite values: replace them first (e.g. numpy.nan_to_num), pdediff does not guess missing "
                       "data")
    spatial = data.ndim - (job.channel_axis is not None)
    if spatial not in (2, 3):
        raise CLIError(f"{job.src}: --method {args.method} denoises 2-D images and 3-D scans; got {spatial}-D data")
    spacing = args.spacing if args.spacing is not None else (job.scan.spacing or 1.0)
    sp = tuple(float(v) for v in np.broadcast_to(np.asarray(spacing, dtype=float), (spatial,))) \
        if np.ndim(spacing) == 0 or len(spacing) == spatial else None
    if sp is None:
        raise CLIError(f"--spacing needs 1 or {spatial} values for this {spatial}-D image; got {len(spacing)}")
    if args.threads is not None and args.threads < 1:
        raise CLIError(f"--threads must be a positive integer; got {args.threads}")
    _need_torch("denoise", args.threads)
    with library_errors(ImportError):
        from ..torch.denoisers import denoise_learned, load_denoiser, slice_axis
    with library_errors(OSError):  # CheckpointError: a missing, damaged or code-holding weights file
        if args.weights is None:
            model = load_denoiser(args.method)
        else:
            from ..torch import CNNDenoiser, ReactionDiffusion

            from ..errors import CheckpointError

            try:
                model = (ReactionDiffusion if args.method == "tnrd" else CNNDenoiser).load(args.weights)
            except CheckpointError as exc:  # name the flag: the message alone names only the file
                raise CLIError(f"--weights: {exc}") from None
    from ..errors import ParameterError

    try:
        with library_errors():
            try:
                out = denoise_learned(job.colour, args.method, sigma=args.noise_level, channel_axis=job.channel_axis,
                                      spacing=sp, model=model)
            except ParameterError as exc:
                if exc.param != "sigma":  # this command's --sigma is Perona-Malik's; the model's is --noise-level
                    raise
                raise CLIError(f"{job.src}: --noise-level {str(exc).split(' ', 1)[1]}") from None
    except MemoryError:
        raise CLIError(f"{job.src}: out of memory while denoising {data.shape}; crop or downsample the scan first") \
            from None
    title = _TITLES[args.method]
    result, rescaled, stored_out = write_job(job, out, sp, rescale=args.rescale, title=title)
    if not args.quiet:
        report_job(job, "denoised", result, sp, rescaled, stored_out)
        if spatial == 2:
            axis = "" if len(set(sp)) == 1 else "; pixels taken as square (the models are isotropic)"
        else:
            spatial_shape = data.shape if job.channel_axis is None else \
                tuple(n for i, n in enumerate(data.shape) if i != job.channel_axis % data.ndim)
            a = slice_axis(sp, spatial_shape)
            axis = f"; slice by slice across axis {a} " + (
                "(the largest spacing)" if sp.count(max(sp)) == 1 else "(equal spacings: the axis with fewest cells)")
        level = "" if args.method != "cnn" else (
            f"; noise level {args.noise_level:g}" if args.noise_level is not None else "; noise level estimated")
        print(f"  method {args.method} ({args.weights or 'shipped weights'}){level}{axis}")
        if job.preview is not None:
            print(f"  preview: {job.preview}")


def _tensor(args: argparse.Namespace, data, kappa, spacing, channel_axis):
    """:func:`pdediff.tensor_diffusion` with the command's settings (``--method eed|ced``)."""
    from ..anisotropic.tensor import tensor_diffusion

    kw = {} if args.conductance is None else {"conductance": args.conductance}
    if args.alpha is not None:
        kw["alpha"] = args.alpha
    if args.semi_implicit:
        kw["method"] = "semi-implicit"
    return tensor_diffusion(
        data, kind=args.method, num_iter=args.num_iter, dt=args.dt, kappa=kappa, sigma=args.sigma, rho=args.rho,
        spacing=spacing, channel_axis=channel_axis, max_steps=args.max_steps or None, return_info=True, **kw,
    )


def _report_settings(args: argparse.Namespace, info, tensor: bool) -> None:
    """The settings line of the report (what the library used)."""
    if not tensor:
        print(f"  method {info.method}, conductance {info.conductance}, kappa {info.kappa:.6g}"
              f"{' (auto)' if args.kappa == 'auto' else ''}, num_iter {info.num_iter}, dt {info.dt:.6g}, "
              f"sigma {info.sigma:g}")
        return
    what = (f"conductance {info.conductance}, kappa {info.kappa:.6g}{' (auto)' if args.kappa == 'auto' else ''}"
            if info.kind == "eed" else f"alpha {info.alpha:g}")
    scheme = f" (semi-implicit, {info.cg_iterations} CG iterations)" if info.method == "semi-implicit" else ""
    print(f"  method {info.kind}{scheme}, {what}, num_iter {info.num_iter}, dt {info.dt:.6g}, sigma {info.sigma:g}, "
          f"rho {info.rho:g}")


def _run_chunked(args: argparse.Namespace) -> None:
    """``denoise --chunks``: the same Perona–Malik through Dask, chunk by chunk, bounded memory."""
    from ..anisotropic.perona_malik import perona_malik

    job = open_chunked_job(args, verb="denoising")
    spacing = args.spacing if args.spacing is not None else (job.scan.spacing or 1.0)
    kappa = _kappa_arg(args.kappa)
    try:
        # kappa="auto" is computed here, in streaming passes over INPUT; the diffusion when OUTPUT is written
        with library_errors():  # including NaN/inf found in a chunk while computing
            # a bar for each pass over INPUT (kappa="auto" reads it before the diffusion), as in memory
            with chunk_progress("kappa (auto)" if args.kappa == "auto" else "reading", not args.quiet):
                if args.method in TENSOR_METHODS:
                    out, info = _tensor(args, job.data, kappa, spacing, job.channel_axis)
                else:
                    out, info = perona_malik(
                        job.data, num_iter=args.num_iter, kappa=kappa,
                        conductance=args.conductance or "exponential", dt=args.dt, sigma=args.sigma,
                        method=args.method, spacing=spacing, channel_axis=job.channel_axis, return_info=True,
                        max_steps=args.max_steps or None,
                    )
            title = _TITLES.get(args.method, "Perona–Malik")
            write_chunked_job(job, out, info.spacing, progress=not args.quiet, desc=f"{title} ->")
    except MemoryError:
        raise CLIError(f"{job.src}: out of memory while denoising in chunks of {args.chunks}; use smaller --chunks") \
            from None
    if not args.quiet:
        sp = spacing_text(job.scan, info.spacing)
        print(f"denoised {job.src} -> {job.dst} (in chunks of {args.chunks} voxels per axis)")
        extra = spacing_note(job.scan, job.out_fmt, info.spacing)
        for note in list(job.scan.notes) + ([extra] if extra else []):
            print(f"  note: {note}")
        print(f"  shape {job.data.shape} {job.data.dtype} -> {job.target}; spacing {sp}")
        _report_settings(args, info, args.method in TENSOR_METHODS)
