"""Command line: ``pdediff demo``, ``pdediff denoise``, ``pdediff train`` and ``pdediff sample``
(also ``python -m pdediff ...``)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import numpy as np


class CLIError(Exception):
    """A user error reported as one line on stderr with a non-zero exit status."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``pdediff denoise: error: ...`` and exit status 2, no usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message.splitlines()[0]} (see {self.prog} --help)\n")


class _Terminated(BaseException):
    """SIGTERM or SIGHUP, raised in the main thread so that cleanup runs as for Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: Integer output types the CLI offers, and what --rescale maps onto.
INT_DTYPES = ("uint8", "uint16", "int16")


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from ._validation import DEFAULT_MAX_STEPS
    from .anisotropic.perona_malik import CONDUCTANCES

    p = _Parser(prog="pdediff", description="PDE diffusion: heat equation and Perona–Malik.")
    p.add_argument("--version", action="version", version=f"pdediff {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("demo", help="solve problems with known answers and denoise the bundled MRI slice")
    d.add_argument("--output-dir", default="pdediff-output", help="where figures go (default: %(default)s)")
    d.add_argument("--no-figure", action="store_true", help="print the tables only")

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
    _add_train_parsers(sub)
    _add_study_parser(sub)
    return p


#: ``pdediff train --process`` choices; equal to :data:`pdediff.torch.runs.PROCESSES` (kept here so that
#: building the parser never imports torch).
TRAIN_PROCESSES = ("ddpm", "ihdm", "blurring", "cold-heat", "cold-pm")
#: Image formats ``pdediff sample`` writes figures in (by matplotlib).
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")
_TORCH_EXTRA = 'needs PyTorch, which is not installed: pip install "pdediff[torch]"'
_THREADS_HELP = ("torch CPU threads (default: 1 unless OMP_NUM_THREADS is set: these small models gain little from "
                 "more, and torch threads waiting on a busy core (other work, or the Numba operators of cold-pm) "
                 "made training steps 4-13x slower on a 2-core machine)")


def _add_study_parser(sub) -> None:
    st = sub.add_parser(
        "study",
        help="classical versus learned diffusion: the denoising and generation studies, with results",
        description="Run the denoising study (heat, Perona-Malik, TV, bilateral, wavelet, NL-means, BM3D and "
        "learned denoisers on held-out images at 2-20% noise) and/or the generation study (DDPM, IHDM, "
        "blurring and cold diffusion with one network and budget, offline metrics next to the real-vs-real "
        "floor). Writes results.json, results.md and figures into --out; finished arms are cached there, so "
        "an interrupted study resumes. The full study takes about 50 minutes on 2 CPU cores; --quick about "
        "a minute (a smoke test whose numbers are not results). Needs the study extra.",
    )
    st.add_argument("kind", choices=("denoise", "generate", "all"), help="which study")
    st.add_argument("--quick", action="store_true", help="tiny settings: the pipeline in about a minute")
    st.add_argument("--seeds", type=int, default=None,
                    help="independent repetitions (default: 3; 1 with --quick)")
    st.add_argument("--steps", type=int, default=None,
                    help="training steps of every learned model (default: 1500 for generation, 500 for the "
                    "learned denoisers; 60 and 20 with --quick)")
    st.add_argument("--data", default=None, action="append",
                    help="generation data: digits, shapes, a folder of images or a .npy; repeat for several "
                    "(default: digits)")
    st.add_argument("--out", default="pdediff-study", metavar="DIR", help="output folder (default: %(default)s)")
    st.add_argument("--device", default=None, help="torch device of the learned models (cpu, cuda)")
    st.add_argument("--threads", type=int, default=None, help=_THREADS_HELP)
    st.add_argument("--no-figures", action="store_true", help="skip the figures")
    st.add_argument("--quiet", action="store_true", help="no progress bars and no summary")


def _study(args: argparse.Namespace) -> None:
    if args.seeds is not None and args.seeds < 1:
        raise CLIError(f"--seeds must be a positive integer; got {args.seeds}")
    if args.steps is not None and args.steps < 1:
        raise CLIError(f"--steps must be a positive integer; got {args.steps}")
    _thread_count(args.threads)
    if not str(args.out).strip():
        raise CLIError("--out must name a folder; got an empty string")
    for d in args.data or ():
        if d not in ("digits", "shapes") and not os.path.exists(d):
            raise CLIError(f"--data {d}: no such file or folder (expected digits, shapes, a folder of images "
                           "or a .npy file)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is a file; choose a folder")
    try:
        import torch  # noqa: F401
        import skimage  # noqa: F401
        import jsonschema  # noqa: F401
    except ImportError as exc:
        raise CLIError(f"pdediff study needs {exc.name}, which is not installed: pip install \"pdediff[study]\"") \
            from None
    from .study import run_study

    try:
        res = run_study(args.kind, out=out, quick=args.quick, seeds=args.seeds, steps=args.steps,
                        data=tuple(args.data) if args.data else None, figures=not args.no_figures,
                        progress=not args.quiet, device=args.device, threads=_thread_count(args.threads))
    except (ValueError, TypeError, OSError) as exc:  # DatasetError, RunError among them
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CLIError(_train_words(msg)) from None
    if not args.quiet:
        took = ", ".join(f"{k} {v / 60:.1f} min" for k, v in res["wall_seconds"].items())
        print(f"study {args.kind}{' (quick)' if args.quick else ''}: {took}; results in {out}/results.md "
              f"and {out}/results.json")


def _add_train_parsers(sub) -> None:
    t = sub.add_parser(
        "train",
        help="train a model to reverse a forward process (learned diffusion); resumes when rerun",
        description="Train a UNet to reverse a forward process on a data set, in a run folder (--out) holding "
        "run.json (every setting) and checkpoint.pt (tensors only: loads without running code). Rerunning the "
        "same command resumes from the last checkpoint exactly (--steps may grow); other settings are refused. "
        "Needs the torch extra.",
    )
    t.add_argument("--process", choices=TRAIN_PROCESSES, default="ddpm",
                   help="ddpm (Gaussian), ihdm (inverse heat dissipation), blurring (blurring diffusion), "
                   "cold-heat / cold-pm (cold diffusion with heat / Perona–Malik degradation); default: %(default)s")
    t.add_argument("--data", default="digits",
                   help="'digits' (scikit-learn, 8x8), 'shapes' (synthetic, 16x16), a folder of images or a "
                   ".npy file; its seeded 70%% training split is used (default: %(default)s)")
    t.add_argument("--steps", type=int, default=1500, help="total training steps (default: %(default)s)")
    t.add_argument("--out", required=True, metavar="DIR", help="the run folder (created if needed)")
    t.add_argument("--config", metavar="PROCESS.json", default=None,
                   help="JSON object of process constructor arguments over the defaults")
    t.add_argument("--base", type=int, default=32, help="UNet channels of the first level (default: %(default)s)")
    t.add_argument("--mults", default="1,2", help="UNet channel multipliers per level (default: %(default)s)")
    t.add_argument("--batch-size", type=int, default=128, help="default: %(default)s")
    t.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    t.add_argument("--ema-decay", type=float, default=0.999, help="EMA of the weights (default: %(default)s)")
    t.add_argument("--seed", type=int, default=0, help="seed of initialisation, batches and noise (default: 0)")
    t.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints (default: 100)")
    t.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    t.add_argument("--threads", type=int, default=None, help=_THREADS_HELP)
    t.add_argument("--quiet", action="store_true", help="no progress bar and no report")

    s = sub.add_parser(
        "sample",
        help="draw images from a run trained by pdediff train",
        description="Sample images from the EMA model of RUN (a folder written by pdediff train) and save them "
        "as a grid image (-o), optionally as a .npy array (N, C, H, W) in [-1, 1] and a trajectory figure. "
        "Checkpoints are loaded with torch.load(weights_only=True): a file carrying pickled code is refused "
        "unread. Outputs are written atomically and never overwrite a file without --force. Needs the torch "
        "extra.",
    )
    s.add_argument("run", metavar="RUN")
    s.add_argument("-n", type=int, default=64, help="how many images (default: %(default)s)")
    s.add_argument("-o", "--output", metavar="GRID.png", required=True,
                   help="grid image (" + ", ".join(FIGURE_SUFFIXES) + ")")
    s.add_argument("--npy", metavar="SAMPLES.npy", default=None, help="also save the samples as float32 .npy")
    s.add_argument("--steps", type=int, default=None, help="sampling steps (default: every trained timestep)")
    s.add_argument("--seed", type=int, default=0, help="seed of the prior and sampling noise (default: 0)")
    s.add_argument("--trajectory", metavar="TRAJ.png", default=None,
                   help="also save a figure of samples from the prior to the final image")
    s.add_argument("--data", default=None, metavar="PATH",
                   help="where the run's training data are now, if they moved (IHDM and cold diffusion build "
                   "their prior from them; checked against the SHA-256 in run.json)")
    s.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    s.add_argument("--threads", type=int, default=None, help=_THREADS_HELP)
    s.add_argument("--force", action="store_true", help="overwrite outputs that exist (never an input)")
    s.add_argument("--quiet", action="store_true", help="no progress bar and no report")


_CLI_WORDS = (("max_steps=None", "--max-steps 0"), ("max_steps=", "--max-steps "), ("(or dt=None)", "(or no --dt)"),
              ("dt=None", "no --dt"), ("method='aos'", "--method aos"), ("scheme='aos'", "--method aos"),
              ("pass num_iter", "pass --num-iter"), ("num_iter=", "--num-iter "), ("dt=", "--dt "),
              ("kappa must", "--kappa must"), ("sigma must", "--sigma must"), ("spacing must", "--spacing must"))


def _cli_words(message: str) -> str:
    for api, cli in _CLI_WORDS:
        message = message.replace(api, cli)
    return message


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_destination(path: Path, src: Path, force: bool, what: str, *, directory: bool = False) -> None:
    """Refuse, before any work, a destination that is the input, exists without --force, or has no folder."""
    if _same_file(src, path) or (src.is_dir() and path.resolve().is_relative_to(src.resolve())):
        raise CLIError(f"{what} {path} is the INPUT (or inside it); pdediff never overwrites its input")
    if os.path.lexists(path) and not force:
        raise CLIError(f"{what} {path} exists; pass --force to overwrite it")
    if os.path.lexists(path) and path.is_dir() != directory:
        kind = "a folder" if path.is_dir() else "a file"
        raise CLIError(f"{what} {path} exists and is {kind}; choose another name")
    if directory and path.is_dir():
        from .io._dicom import is_replaceable_series

        why = is_replaceable_series(path)
        if why is not None:  # --force replaces a previous series, never a folder of other files
            raise CLIError(f"{what} {path} is a folder that is not a DICOM series ({why}); choose another name")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise CLIError(f"{what} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CLIError(f"{what} {path}: folder {parent} is not writable")


def _channel_axis(arg: str, scan, src: Path) -> tuple[int | None, str | None]:
    """The channel axis to use and, when it was guessed, a note saying so."""
    data = scan.data
    if arg == "none":
        return None, None
    if arg != "auto":
        try:
            ax = int(arg)
        except ValueError:
            raise CLIError(f"--channel-axis must be 'auto', 'none' or an integer axis; got {arg!r}") from None
        if not -data.ndim <= ax < data.ndim:
            raise CLIError(f"--channel-axis {ax} is out of range for INPUT of shape {data.shape}")
        return ax % data.ndim, None
    if scan.channel_axis is not None:
        return scan.channel_axis % data.ndim, None
    # An array without metadata shaped (H, W, 3|4) is a colour image far more often than a 3-slice volume.
    if scan.format in ("npy", "npz") and data.ndim == 3 and data.shape[-1] in (3, 4) and min(data.shape[:2]) >= 8:
        return 2, (f"treating the last axis of {src.name} (shape {data.shape}) as colour channels; "
                   "pass --channel-axis none for a volume")
    return None, None


def _plan_dtype(args, stored: np.dtype, dst: Path, fmt: str, shape, channel_axis) -> np.dtype:
    """The output pixel type, decided and checked against OUTPUT's format before any work."""
    from .io import check_writable

    def problem(dt) -> str | None:
        try:
            check_writable(dst, shape, np.dtype(dt), channel_axis, format=fmt)
            return None
        except ValueError as exc:
            return str(exc).splitlines()[0]

    native = np.dtype(stored.newbyteorder("="))
    floats_ok = problem(np.float32) is None
    integers_only = not floats_ok and problem(np.uint8) is None  # PNG/JPEG, for this shape
    if args.dtype == "auto":
        if integers_only:  # PNG/JPEG
            if stored.kind == "f" and not args.rescale:
                raise CLIError(
                    f"{dst.name} stores integers only and INPUT is {stored}: pass --rescale (maps the result's "
                    "range onto uint8; --dtype uint16 --rescale for 16 bits), or write .tif/.npy/.nii to keep floats"
                )
            target = np.dtype(np.uint8) if stored.kind == "f" or args.rescale else native
        elif stored.kind == "f":
            target = native if native.itemsize >= 4 else np.dtype(np.float32)
        else:
            target = np.dtype(np.float32)
    elif args.dtype == "input":
        target = native
    else:
        target = np.dtype(args.dtype)
    if args.rescale and target.kind not in "iu":
        raise CLIError(f"--rescale maps onto an integer type; choose --dtype {'/'.join(INT_DTYPES)} (got {target})")
    msg = problem(target)
    if msg is not None:
        hint = ""
        if integers_only and target.kind == "f":
            hint = "; this format stores integers: --rescale (onto uint8), or --dtype uint8/uint16 with --rescale"
        elif integers_only:
            hint = "; choose --dtype uint8 or uint16 (add --rescale if the values do not fit)"
        raise CLIError(f"{msg}{hint}")
    return target


def _check_range_fits(data: np.ndarray, target: np.dtype, rescale: bool) -> None:
    """Refuse, before computing, an integer output the values cannot fit unclipped.

    Perona–Malik obeys the maximum principle (the result stays within the input's range), so
    the input's rounded range decides.
    """
    if target.kind not in "iu" or rescale:
        return
    info = np.iinfo(target)
    lo, hi = float(np.rint(data.min())), float(np.rint(data.max()))
    if lo < info.min or hi > info.max:
        raise CLIError(f"INPUT spans {lo:.6g}..{hi:.6g}, outside {target}'s range {info.min}..{info.max}; "
                       "pass --rescale or choose a wider or float --dtype")


#: Arrays of the input's size (in the computing float type) that denoising holds at its peak: the
#: float copy, its smoothed copy, the step buffer, the result and its cast for writing, and slack.
WORKING_ARRAYS = 6


def _check_working_memory(data: np.ndarray, src: Path) -> None:
    """Refuse, before computing, an input whose working set would not fit in the memory available."""
    from .io._limits import _available_memory

    itemsize = 4 if data.dtype.kind == "f" and data.dtype.itemsize <= 4 else 8
    need = data.size * itemsize * WORKING_ARRAYS
    avail = _available_memory()
    if avail is not None and need > avail:
        raise CLIError(f"{src}: denoising {data.shape} needs about {need / 2**30:.1f} GiB of working memory, more "
                       f"than the {avail / 2**30:.1f} GiB available; crop or downsample the scan first")


def _integer_result(out: np.ndarray, target: np.dtype, rescale: bool) -> tuple[np.ndarray, str | None]:
    """Round ``out`` into ``target`` without ever clipping; with ``rescale``, map min..max onto the full range."""
    info = np.iinfo(target)
    if rescale:
        lo, hi = float(out.min()), float(out.max())
        scale = (info.max - info.min) / (hi - lo) if hi > lo else 0.0
        res = np.rint((out.astype(np.float64) - lo) * scale + info.min)
        return res.astype(target), f"rescaled {lo:.6g}..{hi:.6g} -> {info.min}..{info.max} ({target})"
    from .io import cast_like

    try:  # rounds, and refuses (never clips) what the type cannot hold
        return cast_like(out, target), None
    except ValueError as exc:
        raise CLIError(f"the result's {str(exc).split(';')[0]}; pass --rescale or choose a float --dtype") from None


def _denoise(args: argparse.Namespace) -> None:
    from .anisotropic.perona_malik import perona_malik
    from .io import ScanIOError, atomic_paths, format_of, is_directory_format, read_scan, write_scan
    from .io._scan import _SCALED_FORMATS

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


def _preview(path: Path, before: np.ndarray, after: np.ndarray, channel_axis) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .demo import _save_atomic

    def show(img):
        img = np.asarray(img, dtype=np.float64)
        if channel_axis is not None:
            img = np.moveaxis(img, channel_axis, -1)
            if img.shape[-1] in (2, 4):  # grey+alpha / RGBA: show the colour channels
                img = img[..., :-1]
            if img.shape[-1] == 1 or img.ndim != 3:
                img = img[..., 0]
                if img.ndim == 3:
                    img = img[img.shape[0] // 2]
                return img
            if img.ndim == 4:
                img = img[img.shape[0] // 2]
            lo, hi = np.percentile(img, [0.5, 99.5])
            return np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1)
        if img.ndim == 3:
            img = img[img.shape[0] // 2]
        if img.ndim == 1:
            img = img[None, :]
        return img

    fig, ax = plt.subplots(1, 2, figsize=(10, 5), constrained_layout=True)
    b, a = show(before), show(after)
    kw = {} if b.ndim == 3 else {"cmap": "gray", "vmin": b.min(), "vmax": b.max()}
    ax[0].imshow(b, **kw)
    ax[0].set_title("input")
    ax[1].imshow(a, **kw)
    ax[1].set_title("Perona–Malik")
    for x in ax:
        x.set_axis_off()
    _save_atomic(fig, path)
    plt.close(fig)


# ------------------------------------------------------------------------------ train / sample
_TRAIN_WORDS = (("batch_size must", "--batch-size must"), ("steps must", "--steps must"), ("base must", "--base must"),
                ("lr must", "--lr must"), ("ema_decay must", "--ema-decay must"), ("seed must", "--seed must"),
                ("checkpoint_every must", "--checkpoint-every must"), ("mults must", "--mults must"),
                ("steps=", "--steps "), ("config:", "--config:"), ("config ", "--config "), ("device", "--device"),
                ("spec ", "--data "), ("model.base:", "--base:"), ("model.mults:", "--mults:"),
                ("training.lr:", "--lr:"), ("training.batch_size:", "--batch-size:"),
                ("training.ema_decay:", "--ema-decay:"), ("training.seed:", "--seed:"),
                ("process.name:", "--process:"), ("process.config.", "--config "), ("data.spec:", "--data:"))


def _train_words(message: str) -> str:
    for api, cli in _TRAIN_WORDS:
        message = message.replace(api, cli)
    return message


def _thread_count(threads: int | None) -> int:
    """--threads, else OMP_NUM_THREADS, else 1 (see _THREADS_HELP)."""
    if threads is not None:
        if threads < 1:
            raise CLIError(f"--threads must be a positive integer; got {threads}")
        return threads
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1").split(",")[0]))
    except ValueError:
        return 1


def _need_torch(command: str, threads: int | None) -> None:
    try:
        import torch
    except ImportError:
        raise CLIError(f"pdediff {command} {_TORCH_EXTRA}") from None
    import numba

    n = _thread_count(threads)
    # Both counts, explicitly: Numba's first parallel kernel resets the OpenMP thread count that torch
    # shares, so leaving either to its default gave torch two spinning threads on a busy core (10-40x slower).
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(n)


def _train(args: argparse.Namespace) -> None:
    if args.steps < 1:
        raise CLIError(f"--steps must be a positive integer; got {args.steps}")
    try:
        mults = tuple(int(v) for v in args.mults.split(","))
    except ValueError:
        raise CLIError(f"--mults must be comma-separated positive integers, e.g. 1,2; got {args.mults!r}") from None
    if args.config is not None and not Path(args.config).is_file():
        raise CLIError(f"--config {args.config}: no such file (expected a JSON object of process arguments)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is a file; choose a folder")
    _need_torch("train", args.threads)
    try:
        from .torch.runs import train_run
    except ImportError as exc:
        raise CLIError(f"{str(exc).splitlines()[0]}") from None
    try:
        run = train_run(out, process=args.process, data=args.data, steps=args.steps, base=args.base, mults=mults,
                        batch_size=args.batch_size, lr=args.lr, ema_decay=args.ema_decay, seed=args.seed,
                        device=args.device, config=args.config, checkpoint_every=args.checkpoint_every,
                        progress=not args.quiet)
    except (ValueError, TypeError, OSError, ImportError, FloatingPointError) as exc:  # RunError, DatasetError, ...
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CLIError(_train_words(msg)) from None
    if not args.quiet:
        cfg = run.config
        n, c, h, w = cfg["data"]["shape"]
        res = cfg.get("result", {})
        if run.resumed_from >= run.step:
            print(f"run {out} has trained {run.step} steps already; nothing to do (raise --steps to continue)")
        else:
            again = f" (resumed from step {run.resumed_from})" if run.resumed_from else ""
            print(f"trained {args.process} ({type(run.process).__name__}, {run.process.num_train_timesteps} "
                  f"timesteps) on {args.data}: {n} images {c}x{h}x{w}")
            loss = res.get("final_loss", float("nan"))
            print(f"  step {run.step} of {cfg['training']['steps']}{again}; loss {loss:.5g} "
                  f"(mean of the last {min(50, run.step)} steps); {res.get('train_seconds', 0.0):.1f} s of training "
                  f"on {res.get('device')}")
        print(f"  run folder: {out} (run.json, checkpoint.pt); sample with: "
              f"pdediff sample {out} -n 64 -o grid.png")


def _run_inputs(run_dir: Path) -> tuple[list[Path], list[Path]]:
    """Files and folders ``pdediff sample`` reads: the run's files and, for path data sets, the data."""
    import json

    files = [run_dir / "run.json", run_dir / "checkpoint.pt"]
    folders = []
    try:
        spec = json.loads((run_dir / "run.json").read_text())["data"]["spec"]
    except (OSError, ValueError, KeyError, TypeError):
        spec = None
    if isinstance(spec, str) and spec not in ("digits", "shapes"):
        (folders if Path(spec).is_dir() else files).append(Path(spec))
    return files, folders


def _check_sample_output(path: Path, run_dir: Path, files: list[Path], folders: list[Path], force: bool,
                         what: str) -> None:
    for src in files:
        if _same_file(src, path):
            raise CLIError(f"{what} {path} is an input ({src}); pdediff never overwrites its input")
    for d in folders:
        if path.resolve().is_relative_to(d.resolve()):
            raise CLIError(f"{what} {path} is inside the run's data folder {d}; pdediff never writes into "
                           "its input")
    if path.resolve() == run_dir.resolve():
        raise CLIError(f"{what} {path} is the RUN folder; choose a file name")
    if os.path.lexists(path) and path.is_dir():
        raise CLIError(f"{what} {path} exists and is a folder; choose a file name")
    if os.path.lexists(path) and not force:
        raise CLIError(f"{what} {path} exists; pass --force to overwrite it")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise CLIError(f"{what} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CLIError(f"{what} {path}: folder {parent} is not writable")


def _sample(args: argparse.Namespace) -> None:
    run_dir = Path(args.run)
    if not run_dir.exists():
        raise CLIError(f"RUN {run_dir} does not exist")
    if not run_dir.is_dir():
        raise CLIError(f"RUN {run_dir} is not a folder (expected a run folder written by pdediff train)")
    if not (run_dir / "run.json").is_file():
        raise CLIError(f"RUN {run_dir} is not a run folder (no run.json); train one with pdediff train")
    if args.n < 1:
        raise CLIError(f"-n must be a positive integer; got {args.n}")
    if args.steps is not None and args.steps < 1:
        raise CLIError(f"--steps must be a positive integer; got {args.steps}")
    _thread_count(args.threads)
    grid = Path(args.output)
    outputs = [("OUTPUT", grid, FIGURE_SUFFIXES)]
    if args.npy is not None:
        outputs.append(("--npy", Path(args.npy), (".npy",)))
    if args.trajectory is not None:
        outputs.append(("--trajectory", Path(args.trajectory), FIGURE_SUFFIXES))
    files, folders = _run_inputs(run_dir)
    if args.data is not None:
        (folders if Path(args.data).is_dir() else files).append(Path(args.data))
    for i, (what, path, suffixes) in enumerate(outputs):
        if path.suffix.lower() not in suffixes:
            raise CLIError(f"{what} must end in {', '.join(suffixes)}; got {path.name}")
        for other_what, other, _ in outputs[:i]:
            if _same_file(other, path):
                raise CLIError(f"{what} and {other_what} are the same file {path}")
        _check_sample_output(path, run_dir, files, folders, args.force, what)
    _need_torch("sample", args.threads)
    try:
        from .torch.runs import load_run

        run = load_run(run_dir, device=args.device, data=args.data)
    except (ValueError, TypeError, OSError, ImportError) as exc:  # RunError, CheckpointError, DatasetError
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CLIError(_train_words(msg).replace("pass data=", "pass --data")) from None
    K = run.process.num_train_timesteps
    if args.steps is not None and args.steps > K:
        raise CLIError(f"--steps must be in [1, {K}] (the run's process has {K} timesteps); got {args.steps}")
    import time

    t0 = time.perf_counter()
    res = run.sample(args.n, steps=args.steps, seed=args.seed, trajectory=args.trajectory is not None,
                     progress=not args.quiet)
    seconds = time.perf_counter() - t0
    images, traj = res if args.trajectory is not None else (res, None)
    from .io import atomic_paths

    try:
        with atomic_paths([p for _, p, _ in outputs]) as tmps:
            _grid_figure(images, tmps[0], grid.suffix)
            k = 1
            if args.npy is not None:
                with open(tmps[k], "wb") as f:
                    np.save(f, images)
                k += 1
            if traj is not None:
                _trajectory_figure(traj, tmps[k], Path(args.trajectory).suffix)
    except (ValueError, OSError) as exc:
        raise CLIError(f"cannot write: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if not args.quiet:
        c, h, w = images.shape[1:]
        steps = args.steps if args.steps is not None else K
        name = run.config["process"]["name"]
        print(f"sampled {args.n} images ({c}x{h}x{w}) from {run_dir} ({name}, step {run.step}; {steps} sampling "
              f"steps, seed {args.seed}) in {seconds:.1f} s")
        print("  " + ", ".join(f"{what.lstrip('-')}: {p}" for what, p, _ in outputs))


def _to_display(x: np.ndarray) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H, W) or (H, W, 3) in [0, 1]."""
    x = np.clip((np.asarray(x, dtype=np.float64) + 1) / 2, 0, 1)
    return x[0] if x.shape[0] == 1 else np.moveaxis(x[:3], 0, -1)


def _save_figure(fig, path: Path, suffix: str) -> None:
    fig.savefig(path, dpi=100, format=suffix.lstrip(".").lower().replace("jpg", "jpeg"))


def _grid_figure(images: np.ndarray, path: Path, suffix: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ._figures import mosaic

    m = mosaic([_to_display(x) for x in images], int(np.ceil(np.sqrt(images.shape[0]))), fill=1.0)
    scale = min(12.0 / m.shape[1], 12.0 / m.shape[0], 0.12)  # inches per pixel
    fig = plt.figure(figsize=(m.shape[1] * scale, m.shape[0] * scale))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(m, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    try:
        _save_figure(fig, path, suffix)
    finally:
        plt.close(fig)


def _trajectory_figure(traj: list[np.ndarray], path: Path, suffix: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = min(traj[0].shape[0], 8)
    cols = min(len(traj), 10)
    idx = np.unique(np.round(np.linspace(0, len(traj) - 1, cols)).astype(int))
    h, w = traj[0].shape[-2:]
    fig, axes = plt.subplots(rows, len(idx), figsize=(1.2 * len(idx), 1.2 * rows * h / w + 0.3), squeeze=False)
    for j, i in enumerate(idx):
        for r in range(rows):
            ax = axes[r, j]
            ax.imshow(_to_display(traj[i][r]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_axis_off()
        axes[0, j].set_title("prior" if i == 0 else ("sample" if i == len(traj) - 1 else f"step {i}"), fontsize=8)
    fig.tight_layout(pad=0.2)
    try:
        _save_figure(fig, path, suffix)
    finally:
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    previous = _install_signal_handlers()
    try:
        if args.command == "demo":
            from .demo import run_demo

            run_demo(args.output_dir, figure=not args.no_figure)
        elif args.command == "denoise":
            _denoise(args)
        elif args.command == "train":
            _train(args)
        elif args.command == "study":
            _study(args)
        elif args.command == "sample":
            _sample(args)
        return 0
    except CLIError as exc:
        print(f"pdediff {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _quiet_teardown()
        print(f"pdediff {args.command}: interrupted; {_stopped_note(args.command)}", file=sys.stderr)
        return 130
    except _Terminated as exc:
        name = signal.Signals(exc.signum).name
        print(f"pdediff {args.command}: stopped by {name}; {_stopped_note(args.command)}", file=sys.stderr)
        return 128 + exc.signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stopped_note(command: str) -> str:
    if command == "train":
        return "the run keeps its last checkpoint; rerun the same command to resume exactly"
    return "outputs not yet complete were removed"


def _install_signal_handlers() -> dict:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so partial outputs are removed (main thread only)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}

    def raise_terminated(signum, frame):
        _quiet_teardown()
        raise _Terminated(signum)

    def raise_interrupt(signum, frame):
        _quiet_teardown()
        raise KeyboardInterrupt

    previous = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        previous[signum] = signal.signal(signum, raise_terminated)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, raise_interrupt)
    return previous


def _quiet_teardown() -> None:
    """After an interrupt, objects half-built at that moment (e.g. by Numba's compiler, llvmlite) may fail in
    their finalisers; Python would print those as "Exception ignored ... Traceback". The user asked to stop,
    so the one line that says what was removed is all they should see."""
    sys.unraisablehook = lambda unraisable: None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
