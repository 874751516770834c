"""``pdediff denoise``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ._common import CLIError, _check_destination, _same_file
from ._images import (INT_DTYPES, _channel_axis, _check_range_fits, _check_working_memory, _cli_words,
                      _integer_result, _plan_dtype, _preview)


def add_parser(sub) -> None:
    from .._validation import DEFAULT_MAX_STEPS
    from ..anisotropic.perona_malik import CONDUCTANCES

    n = sub.add_parser(
        "denoise",
        help="edge-preserving (Perona–Malik) denoising of an image or volume",
        description="Denoise INPUT with Perona–Malik diffusion and write OUTPUT. Formats: .npy .npz .png .jpg "
        ".tif/.tiff (stacks as volumes) .nii/.nii.gz .mgz/.mgh, Analyze .hdr/.img (read), DICOM (.dcm file or a "
        "series folder). INPUT is never modified; every output is checked before computing and written "
        "atomically (all outputs or none); no conversion clips or wraps values silently.",
    )
    n.add_argument("input", metavar="INPUT")
    n.add_argument("-o", "--output", metavar="OUTPUT", required=True)
    n.add_argument("--num-iter", type=int, default=None, help="time steps (default: 15 explicit steps)")
    n.add_argument("--kappa", default="auto", help="edge threshold, or 'auto' (default)")
    n.add_argument("--conductance", choices=CONDUCTANCES, default="exponential")
    n.add_argument("--method", choices=("explicit", "aos"), default="explicit",
                   help="explicit 2N-neighbour steps (default) or AOS (semi-implicit, large time steps)")
    n.add_argument("--dt", type=float, default=None, help="time step (default: the explicit stability limit)")
    n.add_argument("--sigma", type=float, default=None,
                   help="Catté pre-smoothing sigma, physical units (default: 0.8 voxel of the finest axis)")
    n.add_argument("--spacing", type=float, nargs="+", default=None,
                   help="voxel size per spatial axis (default: from the file, e.g. NIfTI/DICOM/TIFF, else 1)")
    n.add_argument("--channel-axis", default="auto", metavar="{auto,none,N}",
                   help="axis holding colour channels: 'auto' (default) takes it from the file (RGB/RGBA/grey+alpha "
                   "images) or detects an (H, W, 3|4) array; 'none' treats every axis as spatial. An alpha "
                   "channel is never smoothed: it is copied to OUTPUT unchanged")
    n.add_argument("--dtype", choices=("auto", "input") + ("float32", "float64") + INT_DTYPES, default="auto",
                   help="output pixel type. 'auto': the input's float type (float32 for integer scans) where "
                   "the format stores floats, the input's integer type where it stores integers only "
                   "(PNG/JPEG/DICOM); 'input': the input's stored type (NIfTI/DICOM scaling kept). Integer types "
                   "never clip: a result outside the type's range is refused unless --rescale")
    n.add_argument("--rescale", action="store_true",
                   help="map the result's min..max linearly onto the full range of the integer --dtype "
                   "(uint8 if --dtype is auto and OUTPUT stores integers only); reported on stdout")
    n.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS,
                   help="refuse more time steps than this before computing (default: %(default)s; 0: no limit)")
    n.add_argument("--preview", metavar="PREVIEW.png", default=None, help="also save a before/after figure")
    n.add_argument("--force", action="store_true", help="overwrite OUTPUT and PREVIEW if they exist (never INPUT)")
    n.add_argument("--quiet", action="store_true", help="no progress bar and no parameter report")


def run(args: argparse.Namespace) -> None:
    from ..anisotropic.perona_malik import perona_malik
    from ..io import ScanIOError, atomic_paths, format_of, is_directory_format, read_scan, write_scan
    from ..io._scan import _SCALED_FORMATS

    src, dst = Path(args.input), Path(args.output)
    try:
        out_fmt = format_of(dst)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    dst_is_dir = is_directory_format(dst)
    _check_destination(dst, src, args.force, "OUTPUT", directory=dst_is_dir)
    pv = Path(args.preview) if args.preview is not None else None
    if pv is not None:
        if pv.suffix.lower() != ".png":
            raise CLIError(f"--preview must be a .png file; got {pv.name}")
        if _same_file(dst, pv):
            raise CLIError("--preview must differ from OUTPUT")
        _check_destination(pv, src, args.force, "PREVIEW")
    if args.max_steps < 0:
        raise CLIError(f"--max-steps must be a positive integer, or 0 for no limit; got {args.max_steps}")
    try:
        scan = read_scan(src)
    except (ScanIOError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    data = scan.data
    if data.dtype == np.bool_ or data.dtype.kind not in "iuf":
        raise CLIError(f"{src}: unsupported pixel type {data.dtype}; expected integer or float pixels")
    stored = np.dtype(scan.stored_dtype if scan.stored_dtype is not None else data.dtype)
    ch, note = _channel_axis(args.channel_axis, scan, src)
    spatial = data.ndim - (ch is not None)
    if spatial not in (1, 2, 3):
        raise CLIError(f"{src}: expected a 1-D, 2-D or 3-D image (plus colour channels); got shape {data.shape}")
    n_bad = data.size - int(np.count_nonzero(np.isfinite(data))) if data.dtype.kind == "f" else 0
    if n_bad:
        raise CLIError(f"{src}: {n_bad} of {data.size} values are NaN or infinite; Perona–Malik needs finite "
                       "values: replace them first (e.g. numpy.nan_to_num), pdediff does not guess missing data")
    _check_working_memory(data, src)
    target = _plan_dtype(args, stored, dst, out_fmt, data.shape, ch)
    # NIfTI and DICOM keep integer types lossless through a slope/intercept chosen by the writer
    scaled_store = target.kind in "iu" and not args.rescale and out_fmt in _SCALED_FORMATS
    if not scaled_store:
        _check_range_fits(data, target, args.rescale)
    alpha = scan.alpha and ch is not None and data.shape[ch] in (2, 4)
    spacing = args.spacing if args.spacing is not None else (scan.spacing or 1.0)
    kappa: float | str = args.kappa
    if kappa != "auto":
        try:
            kappa = float(kappa)
        except ValueError:
            raise CLIError(f"--kappa must be 'auto' or a positive number; got {args.kappa!r}") from None
    colour = np.take(data, range(data.shape[ch] - 1), axis=ch) if alpha else data
    try:
        out, info = perona_malik(
            colour, num_iter=args.num_iter, kappa=kappa, conductance=args.conductance, dt=args.dt, sigma=args.sigma,
            method=args.method, spacing=spacing, channel_axis=ch, return_info=True, progress=not args.quiet,
            max_steps=args.max_steps or None,
        )
    except (ValueError, TypeError) as exc:  # the API's advice, in the command line's words
        raise CLIError(_cli_words(str(exc).splitlines()[0])) from None
    except MemoryError:
        raise CLIError(f"{src}: out of memory while denoising {data.shape}; crop or downsample the scan first") from None
    if alpha:  # put the untouched alpha channel back
        a = np.take(data, [data.shape[ch] - 1], axis=ch).astype(out.dtype)
        out = np.concatenate([out, a], axis=ch)

    rescaled, stored_out = None, None
    if scaled_store:
        result, stored_out = out, target
    elif target.kind in "iu":
        result, rescaled = _integer_result(out, target, args.rescale)
    else:
        result = out.astype(target, copy=False)
    outputs, dirs = [dst], [dst_is_dir]
    if pv is not None:
        outputs.append(pv)
        dirs.append(False)
    try:
        with atomic_paths(outputs, directories=dirs) as tmps:
            write_scan(tmps[0], result, like=scan, spacing=info.spacing, channel_axis=ch, stored_dtype=stored_out,
                       format=out_fmt)
            if pv is not None:
                _preview(tmps[1], data, out, ch)
    except (ScanIOError, ValueError, OSError) as exc:
        raise CLIError(f"cannot write: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if not args.quiet:
        sp = " x ".join(f"{h:g}" for h in info.spacing)
        print(f"denoised {src} -> {dst}")
        if note:
            print(f"  note: {note}")
        if stored_out is None and out_fmt == "dicom":  # DICOM stores integers: the writer quantises
            stored_out = stored if stored.kind in "iu" else np.dtype(np.int16)
        kind = f"{stored_out} (slope/intercept set by the writer)" if stored_out is not None else result.dtype
        print(f"  shape {data.shape} {data.dtype} -> {kind}; spacing {sp}"
              f"{'; alpha channel copied unchanged' if alpha else ''}")
        if rescaled:
            print(f"  {rescaled}")
        print(f"  method {info.method}, conductance {info.conductance}, kappa {info.kappa:.6g}"
              f"{' (auto)' if args.kappa == 'auto' else ''}, num_iter {info.num_iter}, dt {info.dt:.6g}, "
              f"sigma {info.sigma:g}")
        if pv is not None:
            print(f"  preview: {pv}")
