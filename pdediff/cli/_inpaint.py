"""``pdediff inpaint``: fill the masked pixels of an image or scan, classically or with a trained model."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ._common import _THREADS_HELP, CLIError, _need_torch, _same_file, _thread_count, _train_words
from ._images import _kappa_arg, INT_DTYPES, _cli_words, open_job, report_job, write_job

METHODS = ("harmonic", "biharmonic", "perona_malik", "learned")
#: Methods whose result stays within the known pixels' range (maximum principle): an integer output
#: type is then checked before computing; the others are checked (never clipped) when written.
_MAX_PRINCIPLE = ("harmonic",)  # Perona–Malik starts from the biharmonic fill, which may overshoot


def add_parser(sub) -> None:
    from ..anisotropic.perona_malik import CONDUCTANCES

    p = sub.add_parser(
        "inpaint",
        help="fill missing pixels (cracks, scratches, holes) of an image or scan, classically or with a model",
        description="Fill the pixels of INPUT that MASK marks (non-zero = missing, the OpenCV/scikit-image "
        "convention) and write OUTPUT. Methods: harmonic (steady heat equation, a sparse linear solve), "
        "biharmonic, perona_malik (edge-preserving diffusion restricted to the mask: edges crossing thin cracks "
        "continue) and learned (RePaint with a model trained by pdediff train; INPUT must have the run's image "
        "size). Known pixels are never changed. Formats as for pdediff denoise; INPUT and MASK are never "
        "modified; outputs are checked before computing and written atomically.",
    )
    p.add_argument("input", metavar="INPUT")
    p.add_argument("--mask", metavar="MASK", required=True,
                   help="image or array of INPUT's spatial shape, non-zero where pixels are missing; a colour mask "
                   "(e.g. a red scribble saved as PNG) counts a pixel as missing where any colour channel is "
                   "non-zero and, with alpha, the pixel is not transparent; a mask with intermediate values "
                   "(e.g. JPEG) is thresholded at half its maximum (reported)")
    p.add_argument("-o", "--output", metavar="OUTPUT", required=True)
    p.add_argument("--method", choices=METHODS, default="harmonic", help="default: %(default)s")
    p.add_argument("--model", metavar="RUN", default=None, help="--method learned: a run folder of pdediff train")
    p.add_argument("--channel-axis", default="auto", metavar="{auto,none,N}",
                   help="axis holding colour channels (as for pdediff denoise); alpha is copied unchanged")
    p.add_argument("--spacing", type=float, nargs="+", default=None,
                   help="pixel size per spatial axis (default: from the file, else 1)")
    p.add_argument("--solver", choices=("auto", "direct", "cg"), default="auto",
                   help="harmonic/biharmonic linear solver: sparse direct (SuperLU), conjugate gradients, or auto")
    p.add_argument("--num-iter", type=int, default=None,
                   help="perona_malik: AOS steps after the biharmonic fill (default 5); learned: sampling steps")
    p.add_argument("--kappa", default="auto", help="perona_malik edge threshold, or 'auto' (default)")
    p.add_argument("--conductance", choices=CONDUCTANCES, default="exponential", help="perona_malik conductance")
    p.add_argument("--sigma", type=float, default=None, help="perona_malik Catté pre-smoothing (physical units)")
    p.add_argument("--jump-length", type=int, default=None, help="learned: RePaint jump length (default 10)")
    p.add_argument("--jump-n-sample", type=int, default=None,
                   help="learned: RePaint resampling count per jump (default 10; 1 = no resampling)")
    p.add_argument("--seed", type=int, default=0, help="learned: seed of the sampling noise (default: 0)")
    p.add_argument("--device", default=None, help="learned: cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None, help="learned: " + _THREADS_HELP)
    p.add_argument("--dtype", choices=("auto", "input", "float32", "float64") + INT_DTYPES, default="auto",
                   help="output pixel type, as for pdediff denoise; integer types never clip silently")
    p.add_argument("--rescale", action="store_true",
                   help="map the result's min..max onto the integer --dtype's full range (changes known pixels too)")
    p.add_argument("--clip", action="store_true",
                   help="biharmonic, perona_malik (which starts from the biharmonic fill) and learned may overshoot "
                   "the data's range: clip filled values to INPUT's range (reported) instead of refusing an "
                   "integer output they do not fit")
    p.add_argument("--preview", metavar="PREVIEW.png", default=None, help="also save a before/after figure")
    p.add_argument("--force", action="store_true", help="overwrite OUTPUT and PREVIEW if they exist (never INPUT)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no report")


def _read_mask(path: Path, data: np.ndarray, channel_axis: int | None, src: Path) -> tuple[np.ndarray, str | None]:
    """MASK as a bool array of INPUT's spatial shape (True = missing), and a note on how it was read."""
    from ..io import ScanIOError, read_scan

    if _same_file(path, src):
        raise CLIError("--mask must be a different file from INPUT")
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


def run(args: argparse.Namespace) -> None:
    from ..restoration import inpaint

    learned = args.method == "learned"
    if learned and args.model is None:
        raise CLIError("--method learned needs --model RUN (a run folder written by pdediff train)")
    if args.model is not None and not learned:
        raise CLIError(f"--model is used by --method learned only (got --method {args.method})")
    pm_only = {"--kappa": args.kappa != "auto", "--conductance": args.conductance != "exponential",
               "--sigma": args.sigma is not None}
    learned_only = {"--jump-length": args.jump_length is not None, "--jump-n-sample": args.jump_n_sample is not None,
                    "--device": args.device is not None, "--threads": args.threads is not None}
    for opts, ok in ((pm_only, args.method == "perona_malik"), (learned_only, learned)):
        given = [k for k, v in opts.items() if v]
        if given and not ok:
            raise CLIError(f"{', '.join(given)} do(es) not apply to --method {args.method}")
    if args.num_iter is not None and args.method not in ("perona_malik", "learned"):
        raise CLIError(f"--num-iter applies to --method perona_malik or learned (got --method {args.method})")
    if args.num_iter is not None and args.num_iter < 1:
        raise CLIError(f"--num-iter must be a positive integer; got {args.num_iter}")
    if learned:
        model = Path(args.model)
        if not (model / "run.json").is_file():
            raise CLIError(f"--model {model} is not a run folder (no run.json); train one with pdediff train")
        _thread_count(args.threads)
    job = open_job(args, verb="inpainting", max_principle=args.method in _MAX_PRINCIPLE)
    mask_path = Path(args.mask)
    if _same_file(job.dst, mask_path) or (job.preview is not None and _same_file(job.preview, mask_path)):
        raise CLIError(f"OUTPUT/PREVIEW {mask_path} is the MASK; pdediff never overwrites its input")
    mask, mask_note = _read_mask(mask_path, job.data, job.channel_axis, job.src)
    spacing = args.spacing if args.spacing is not None else (job.scan.spacing or 1.0)
    kappa = _kappa_arg(args.kappa)
    opts: dict = {"solver": args.solver} if args.method != "learned" else {}
    if args.method == "perona_malik":
        opts.update(num_iter=args.num_iter, kappa=kappa, conductance=args.conductance, sigma=args.sigma)
    model_obj = None
    if learned:
        _need_torch("inpaint", args.threads)
        from ..torch import load_run

        try:
            model_obj = load_run(Path(args.model), device=args.device)
        except (ValueError, TypeError, OSError, ImportError) as exc:  # RunError, CheckpointError, DatasetError
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CLIError(_train_words(msg)) from None
        opts = {"num_iter": args.num_iter, "seed": args.seed}
        if args.jump_length is not None:
            opts["jump_length"] = args.jump_length
        if args.jump_n_sample is not None:
            opts["jump_n_sample"] = args.jump_n_sample
    colour = job.colour
    try:
        out, info = inpaint(colour, mask, method=args.method, channel_axis=job.channel_axis,
                            spacing=spacing if not learned else 1.0, model=model_obj, progress=not args.quiet,
                            return_info=True, **opts)
    except (ValueError, TypeError, RuntimeError) as exc:  # the API's advice, in the command line's words
        msg = str(exc).splitlines()[0]
        raise CLIError(_cli_words(msg).replace("model=", "--model ").replace("image:", "INPUT:")
                       .replace("set channel_axis", "set --channel-axis")) from None
    except MemoryError:
        raise CLIError(f"{job.src}: out of memory while inpainting {job.data.shape}; crop the image first") from None
    keep = ~mask if job.channel_axis is None else np.expand_dims(~mask, job.channel_axis)
    known_vals = np.asarray(colour)[np.broadcast_to(keep, colour.shape)]
    clip = (float(known_vals.min()), float(known_vals.max())) if args.clip else None
    title = {"harmonic": "harmonic", "biharmonic": "biharmonic", "perona_malik": "Perona–Malik",
             "learned": "learned (RePaint)"}[args.method]
    # the preview's input shows the holes in white (the known maximum), so what was filled is visible
    damaged = np.array(job.data, dtype=np.float64)
    hole = mask if job.channel_axis is None else np.expand_dims(mask, job.channel_axis)
    np.copyto(damaged, float(known_vals.max()), where=np.broadcast_to(hole, damaged.shape))
    result, rescaled, stored_out = write_job(job, out, info.spacing, rescale=args.rescale, title=title, clip=clip,
                                             clip_hint=args.method not in _MAX_PRINCIPLE, before=damaged)
    if not args.quiet:
        report_job(job, "inpainted", result, info.spacing, rescaled, stored_out)
        if mask_note:
            print(f"  note: {mask_note}")
        frac = info.n_missing / mask.size
        line = f"  method {info.method}: filled {info.n_missing} pixels ({100 * frac:.2g} %)"
        if info.solver:
            line += f"; {info.solver} solver, {info.iterations} iterations, residual {info.residual:.2g}"
        if args.method == "perona_malik":
            line += (f"; kappa {info.kappa:.6g}{' (auto)' if args.kappa == 'auto' else ''}, num_iter {info.num_iter},"
                     f" dt {info.dt:.6g}, sigma {info.sigma:g}, {info.conductance}")
        if learned:
            steps = info.num_iter if info.num_iter is not None else model_obj.process.num_train_timesteps
            line += f"; model {args.model}, {steps} sampling steps, seed {args.seed}"
        print(line)
        if job.preview is not None:
            print(f"  preview: {job.preview}")
