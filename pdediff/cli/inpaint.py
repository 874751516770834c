"""``pdediff inpaint``: fill the masked pixels of an image or scan, classically or with a trained model."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from ..catalogue import CONDUCTANCES, INPAINT_METHODS
from ._common import _THREADS_HELP, _need_torch, _same_file, _thread_count, seed_arg
from ._errors import CLIError, library_errors, note_given, warn_deprecated
from ._images import DTYPE_CHOICES, _kappa_arg, open_job, percent, report_job, write_job
from ._learned import (
    LEARNED_NAMES,
    _check_run_folder,
    add_run_argument,
    add_steps_argument,
    check_steps,
    load_run,
    run_flag,
)

#: Methods whose result stays within the known pixels' range (maximum principle): an integer output
#: type is then checked before computing; the others may overshoot, and their filled pixels are clipped
#: to the known pixels' range for an integer output (reported) unless --strict-range.
_MAX_PRINCIPLE = ("harmonic",)  # Perona–Malik starts from the biharmonic fill, which may overshoot


def _library_names(args: argparse.Namespace) -> dict:
    """Library names that are not a flag's ``dest``: ``num_iter`` is the sampling steps of --method learned."""
    names = {"image": "input", "mask": "mask", "model": "run", "path": "run"}
    if args.method == "learned":
        names |= {k: v for k, v in LEARNED_NAMES.items() if v in ("num_inference_steps", "run")}
    return names


def register(subparsers) -> None:
    """Add ``inpaint`` to ``subparsers`` (an ``add_subparsers`` object)."""
    p = subparsers.add_parser(
        "inpaint",
        help="fill missing pixels (cracks, scratches, holes) of an image or scan, classically or with a model",
        description="Fill the pixels of INPUT that MASK marks (non-zero = missing, the OpenCV/scikit-image "
        "convention) and write OUTPUT. Methods: harmonic (steady heat equation, a sparse linear solve), "
        "biharmonic, perona_malik (edge-preserving diffusion restricted to the mask: edges crossing thin cracks "
        "continue) and learned (RePaint with a model trained by pdediff train; INPUT must have the run's image "
        "size). Known pixels are never changed, except by a lossy OUTPUT format (JPEG: a note says so). Formats "
        "as for pdediff denoise; INPUT and MASK are never "
        "modified; outputs are checked before computing and written atomically.",
    )
    p.add_argument("input", metavar="INPUT")
    p.add_argument("--mask", metavar="MASK", required=True,
                   help="image or array of INPUT's spatial shape, non-zero where pixels are missing; a colour mask "
                   "(e.g. a red scribble saved as PNG) counts a pixel as missing where any colour channel is "
                   "non-zero and, with alpha, the pixel is not transparent; a mask with intermediate values "
                   "(e.g. JPEG) is thresholded at half its maximum (reported)")
    p.add_argument("-o", "--output", metavar="OUTPUT", required=True)
    p.add_argument("--method", choices=INPAINT_METHODS, default=INPAINT_METHODS[0], help="default: %(default)s")
    add_run_argument(p, "--method learned: a run folder written by pdediff train")
    p.add_argument("--channel-axis", default="auto", metavar="{auto,none,N}",
                   help="axis holding colour channels (as for pdediff denoise); alpha is copied unchanged")
    p.add_argument("--spacing", type=float, nargs="+", default=None,
                   help="pixel size per spatial axis (default: from the file, else 1)")
    p.add_argument("--solver", choices=("auto", "direct", "cg"), default="auto",
                   help="harmonic/biharmonic linear solver: sparse direct (SuperLU), conjugate gradients, or auto")
    p.add_argument("--num-iter", type=int, default=None,
                   help="perona_malik: AOS steps after the biharmonic fill (default 5)")
    add_steps_argument(p, "learned: sampling steps (default: every trained timestep)", alias=None)
    p.add_argument("--kappa", default="auto", help="perona_malik edge threshold, or 'auto' (default)")
    p.add_argument("--conductance", choices=CONDUCTANCES, default="exponential", help="perona_malik conductance")
    p.add_argument("--sigma", type=float, default=None, help="perona_malik Catté pre-smoothing (physical units)")
    p.add_argument("--jump-length", type=int, default=None, help="learned: RePaint jump length (default 10)")
    p.add_argument("--jump-n-sample", type=int, default=None,
                   help="learned: RePaint resampling count per jump (default 10; 1 = no resampling)")
    p.add_argument("--seed", type=seed_arg, default=None,
                   help="learned: seed of the sampling noise, in [0, 2**63 - 1] (default: 0); the other methods are "
                   "deterministic and refuse it")
    p.add_argument("--device", default=None, help="learned: cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="learned: " + _THREADS_HELP)
    p.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto",
                   help="output pixel type, as for pdediff denoise")
    p.add_argument("--rescale", action="store_true",
                   help="map the result's min..max onto the integer --dtype's full range (changes known pixels too)")
    p.add_argument("--strict-range", action="store_true",
                   help="biharmonic, perona_malik (which starts from the biharmonic fill) and learned may overshoot "
                   "the known pixels' range; for an integer output the filled pixels are clipped to that range "
                   "by default (how many is reported; known pixels never change): refuse such an output instead")
    # --clip of earlier releases: clipping the filled pixels is now the default
    p.add_argument("--clip", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--preview", metavar="PREVIEW.png", default=None, help="also save a before/after figure")
    p.add_argument("--force", action="store_true", help="overwrite OUTPUT and PREVIEW if they exist (never INPUT)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no report")
    p.set_defaults(func=run, library_names=_library_names)


def _link_note(*paths: Path) -> str:
    """`` (m.png is a symbolic link to scan.png)`` for the first of ``paths`` that is a link, as typed; else ``""``."""
    for p in paths:
        if os.path.islink(p):
            return f" ({p} is a symbolic link to {os.readlink(p)})"
    return ""


def _read_mask(path: Path, data: np.ndarray, channel_axis: int | None, src: Path) -> tuple[np.ndarray, str | None]:
    """MASK as a bool array of INPUT's spatial shape (True = missing), and a note on how it was read."""
    from ..io import ScanIOError, read_scan

    if _same_file(path, src):
        link = _link_note(path, src)
        raise CLIError(f"--mask {path} is INPUT {src}{link}; give the mask as a separate file")
    try:
        scan = read_scan(path)
    except (ScanIOError, ValueError) as exc:
        raise CLIError(f"--mask: {str(exc).splitlines()[0]}") from None
    m = np.asarray(scan.data)
    spatial = data.shape if channel_axis is None else tuple(int(n) for n in np.delete(data.shape, channel_axis))
    if m.dtype.kind not in "biuf":
        raise CLIError(f"--mask {path}: unsupported pixel type {m.dtype}; expected bool, integer or float")
    if m.dtype.kind == "f" and not np.all(np.isfinite(m)):
        raise CLIError(f"--mask {path}: holds NaN or infinite values; expected 0 (known) and non-zero (missing)")
    notes = []
    if m.shape != spatial:
        if m.ndim == len(spatial) + 1 and m.shape[:-1] == spatial:  # a colour/alpha image as mask
            k = m.shape[-1]
            if scan.alpha and k in (2, 4):  # an editor's layer: transparent pixels are never missing
                colour, alpha = m[..., :-1], m[..., -1]
                m = np.where(alpha[..., None] != 0, colour, 0)
                notes.append("alpha used as coverage: transparent pixels are known")
            m = m.max(axis=-1) if m.dtype.kind != "b" else m.any(axis=-1)
        elif m.ndim == len(spatial) + 1 and channel_axis is not None and m.shape == data.shape:
            m = m.max(axis=channel_axis) if m.dtype.kind != "b" else m.any(axis=channel_axis)
        else:
            raise CLIError(f"--mask {path} has shape {m.shape}; expected INPUT's spatial shape {spatial} "
                           "(optionally with a trailing colour axis)")
    if m.dtype.kind != "b":
        m = np.abs(m.astype(np.float64))
        top = float(m.max())
        levels = np.unique(m) if m.size <= 1 << 22 else np.unique(m[:: max(1, m.size >> 22)])
        if top > 0 and len(levels) > 2:  # not a binary mask: JPEG noise, antialiased strokes
            notes.append(f"MASK has {len(levels)} distinct values (e.g. JPEG noise): thresholded at half its "
                         f"maximum ({top / 2:g})")
            m = m >= top / 2
        else:
            m = m != 0
    n = int(np.count_nonzero(m))
    if n == 0:
        raise CLIError(f"--mask {path} marks no pixel as missing (all zero); nothing to fill")
    if n == m.size:
        raise CLIError(f"--mask {path} marks every pixel as missing; nothing known to fill from"
                       + (" (its alpha channel is opaque everywhere?)" if scan.alpha else ""))
    return np.asarray(m, dtype=bool), "; ".join(notes) or None


def _check_options(args: argparse.Namespace) -> None:
    """Refuse options of another method; --num-iter of --method learned is the deprecated --num-inference-steps."""
    learned = args.method == "learned"
    if args.clip:
        warn_deprecated("pdediff inpaint", "--clip", "the default (filled pixels are clipped for integer outputs; "
                        "--strict-range refuses instead)")
        if args.strict_range:
            raise CLIError("--clip and --strict-range contradict each other; pass one")
    if learned and args.num_iter is not None:
        if args.num_inference_steps is not None:
            raise CLIError("--num-iter and --num-inference-steps both given; pass --num-inference-steps only")
        warn_deprecated("pdediff inpaint", "--num-iter with --method learned", "--num-inference-steps")
        args.num_inference_steps, args.num_iter = args.num_iter, None
        note_given(args, "num_inference_steps", "--num-iter")
    if learned and args.run is None:
        raise CLIError("--method learned needs --run RUN (a run folder written by pdediff train)")
    if args.run is not None and not learned:
        raise CLIError(f"{run_flag(args)} is used by --method learned only (got --method {args.method})")
    pm_only = {"--kappa": args.kappa != "auto", "--conductance": args.conductance != "exponential",
               "--sigma": args.sigma is not None}
    learned_only = {"--jump-length": args.jump_length is not None, "--jump-n-sample": args.jump_n_sample is not None,
                    "--device": args.device is not None, "--threads": args.threads is not None,
                    "--num-inference-steps": args.num_inference_steps is not None, "--seed": args.seed is not None}
    if learned and args.spacing is not None:  # the model fills square pixels of its training images
        raise CLIError("--spacing does not apply to --method learned (the model has no physical pixel size)")
    for opts, ok in ((pm_only, args.method == "perona_malik"), (learned_only, learned)):
        given = [k for k, v in opts.items() if v]
        if given and not ok:
            raise CLIError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to --method "
                           f"{args.method}")
    if args.num_iter is not None and args.method != "perona_malik":
        raise CLIError(f"--num-iter applies to --method perona_malik (got --method {args.method})")
    if args.num_iter is not None and args.num_iter < 1:
        raise CLIError(f"--num-iter must be a positive integer; got {args.num_iter}")
    check_steps(args)


def run(args: argparse.Namespace) -> None:
    """Run ``pdediff inpaint`` for parsed ``args``."""
    from ..restoration import inpaint

    _check_options(args)
    learned = args.method == "learned"
    if learned:
        _check_run_folder(Path(args.run), run_flag(args))
        _thread_count(args.threads)
    job = open_job(args, verb="inpainting", max_principle=args.method in _MAX_PRINCIPLE)
    if not args.mask:  # Path("") is ".": the current folder would be read as the mask
        raise CLIError("--mask '' names no file (an empty path)")
    mask_path = Path(args.mask)
    for what, dest in (("OUTPUT", job.dst), ("PREVIEW", job.preview)):
        if dest is not None and _same_file(dest, mask_path):  # named as typed; a link says where it points
            link = _link_note(mask_path, dest)
            raise CLIError(f"{what} {dest} is the MASK {mask_path}{link}; pdediff never overwrites its input")
    mask, mask_note = _read_mask(mask_path, job.data, job.channel_axis, job.src)
    spacing = args.spacing if args.spacing is not None else (job.scan.spacing or 1.0)
    kappa = _kappa_arg(args.kappa)
    opts: dict = {"solver": args.solver} if args.method != "learned" else {}
    if args.method == "perona_malik":
        opts.update(num_iter=args.num_iter, kappa=kappa, conductance=args.conductance, sigma=args.sigma)
    model = None
    if learned:
        _need_torch("inpaint", args.threads)
        model = load_run(args)
        check_steps(args, model.process.num_train_timesteps)
        opts = {"seed": 0 if args.seed is None else args.seed, "num_inference_steps": args.num_inference_steps}
        if args.jump_length is not None:
            opts["jump_length"] = args.jump_length
        if args.jump_n_sample is not None:
            opts["jump_n_sample"] = args.jump_n_sample
    colour = job.colour
    try:
        with library_errors(RuntimeError):
            out, info = inpaint(colour, mask, method=args.method, channel_axis=job.channel_axis,
                                spacing=spacing if not learned else 1.0, model=model, progress=not args.quiet,
                                return_info=True, **opts)
    except MemoryError:
        raise CLIError(f"{job.src}: out of memory while inpainting {job.data.shape}; crop the image first") from None
    keep = ~mask if job.channel_axis is None else np.expand_dims(~mask, job.channel_axis)
    known_vals = np.asarray(colour)[np.broadcast_to(keep, colour.shape)]
    known = (float(known_vals.min()), float(known_vals.max()))
    # the filled pixels of an overshooting method are clipped to the known range for an integer output
    clip = None if args.strict_range or args.method in _MAX_PRINCIPLE else known
    title = {"harmonic": "harmonic", "biharmonic": "biharmonic", "perona_malik": "Perona–Malik",
             "learned": "learned (RePaint)"}[args.method]
    # the preview's input shows the holes in white (the known maximum), so what was filled is visible
    damaged = np.array(job.data, dtype=np.float64)
    hole = mask if job.channel_axis is None else np.expand_dims(mask, job.channel_axis)
    np.copyto(damaged, known[1], where=np.broadcast_to(hole, damaged.shape))
    result, rescaled, stored_out = write_job(job, out, info.spacing, rescale=args.rescale, title=title, clip=clip,
                                             strict_hint=args.strict_range, before=damaged)
    if not args.quiet:
        report_job(job, "inpainted", result, info.spacing, rescaled, stored_out)
        if mask_note:
            print(f"  note: {mask_note}")
        line = f"  method {info.method}: filled {info.n_missing} pixels ({percent(info.n_missing, mask.size)})"
        if info.solver:
            line += f"; {info.solver} solver, {info.iterations} iterations, residual {info.residual:.2g}"
        if args.method == "perona_malik":
            line += (f"; kappa {info.kappa:.6g}{' (auto)' if args.kappa == 'auto' else ''}, num_iter {info.num_iter},"
                     f" dt {info.dt:.6g}, sigma {info.sigma:g}, {info.conductance}")
        if learned:
            steps = getattr(info, "num_inference_steps", None) or info.num_iter or model.process.num_train_timesteps
            line += f"; run {args.run}, {steps} sampling steps, seed {opts['seed']}"
        print(line)
        if job.preview is not None:
            print(f"  preview: {job.preview}")
