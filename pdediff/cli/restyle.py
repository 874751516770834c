"""``pdediff restyle``: carry an image towards the style a run was trained on (SDEdit with any process)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ._common import _THREADS_HELP, _need_torch, _same_file, _thread_count, seed_arg
from ._errors import CLIError, library_errors, write_failure
from ._images import pixel_type
from ._learned import (
    LEARNED_NAMES,
    _check_run_folder,
    _check_sample_output,
    _grid_figure,
    _run_inputs,
    add_run_argument,
    add_steps_argument,
    check_steps,
    load_run,
    run_flag,
)


#: The noise settings of the processes that have them (IHDM: both; cold diffusion: training_noise); the
#: noise-prediction processes (DDPM, blurring, edge-preserving) always draw noise.
_NOISE_SETTINGS = ("training_noise", "sampling_noise")


def _deterministic_restyle(process) -> bool:
    """Whether restyling with ``process`` draws no random number: every noise setting it has is 0."""
    noise = [float(getattr(process, a)) for a in _NOISE_SETTINGS if hasattr(process, a)]
    return bool(noise) and all(v == 0 for v in noise)


def register(subparsers) -> None:
    """Add ``restyle`` to ``subparsers`` (an ``add_subparsers`` object)."""
    r = subparsers.add_parser(
        "restyle",
        help="carry an image towards the style a model was trained on (SDEdit with any pdediff process)",
        description="Degrade INPUT with RUN's forward process to the level --strength gives (0: unchanged, 1: the "
        "prior, i.e. unconditional sampling), then run RUN's learned reverse process from there (SDEdit). With "
        "heat-based processes the low frequencies (composition) survive and the model re-creates the detail. "
        "INPUT: an image (.png/.jpg/.tif/.npy, grey or colour), resized to the run's image size and converted to "
        "its channels (both reported); or a .npy batch (N, C, H, W) in [-1, 1] as pdediff sample --npy writes. "
        "OUTPUT has the run's image size: an image file (integer formats hold round(255 x), x in [0, 1]) or "
        ".npy (float32, [0, 1] for an image, [-1, 1] for a batch). Needs the torch extra.",
    )
    r.add_argument("input", metavar="INPUT")
    add_run_argument(r, "a run folder written by pdediff train (required)")
    r.add_argument("--strength", type=float, default=0.5,
                   help="how far to degrade before reversing, in [0, 1] (default: %(default)s)")
    r.add_argument("-o", "--output", metavar="OUTPUT", required=True)
    add_steps_argument(r, "sampling steps of the full schedule (default: every trained timestep)")
    r.add_argument("--seed", type=seed_arg, default=None,
                   help="seed of the degradation and sampling noise, in [0, 2**63 - 1] (default: 0); refused for a "
                   "run that restyles deterministically (cold diffusion without training noise)")
    r.add_argument("--preview", metavar="PREVIEW.png", default=None, help="also save an input/output figure")
    r.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    r.add_argument("--threads", type=int, default=None, help=_THREADS_HELP)
    r.add_argument("--force", action="store_true", help="overwrite outputs that exist (never an input)")
    r.add_argument("--quiet", action="store_true", help="no progress bar and no report")
    r.set_defaults(func=run, library_names=LEARNED_NAMES)


def _image_to_model(data: np.ndarray, channel_axis: int | None, shape: tuple[int, int, int], src: Path
                    ) -> tuple[np.ndarray, list[str]]:
    """One image (H, W[, C]) -> (1, C, H, W) float32 in [-1, 1] at the run's size, and notes on what changed."""
    import torch
    import torch.nn.functional as F

    notes = []
    x = np.asarray(data)
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        lo, hi = (0, info.max) if x.dtype.kind == "u" else (info.min, info.max)
        x = (x.astype(np.float64) - lo) / (hi - lo)
    elif x.dtype.kind == "f":
        x = x.astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise CLIError(f"{src}: holds NaN or infinite values")
        if x.min() < 0 or x.max() > 1:
            raise CLIError(f"{src}: float images must lie in [0, 1] (the run's data scale); got "
                           f"{x.min():.6g}..{x.max():.6g}")
    else:
        raise CLIError(f"{src}: unsupported pixel type {pixel_type(x.dtype)}; expected integer or float pixels")
    x = np.moveaxis(x, channel_axis, -1) if channel_axis is not None else x[..., None]
    if x.ndim != 3:
        raise CLIError(f"{src}: expected a 2-D image (plus colour channels); got shape {data.shape}")
    c, h, w = shape
    if x.shape[-1] in (2, 4):  # grey+alpha / RGBA: the colour channels
        x = x[..., :-1]
        notes.append("alpha channel dropped")
    if x.shape[-1] != c:
        if c == 1 and x.shape[-1] == 3:
            x = x @ np.array([0.299, 0.587, 0.114])[:, None]  # ITU-R BT.601 luma
            notes.append("colour converted to grey (BT.601 luma) for the run's 1 channel")
        elif c == 3 and x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
            notes.append("grey replicated into the run's 3 channels")
        else:
            raise CLIError(f"{src} has {x.shape[-1]} channels; the run's images have {c}")
    t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 0)))[None].float()
    if t.shape[-2:] != (h, w):
        # area averaging when shrinking (no aliasing), bilinear when enlarging
        mode = "area" if t.shape[-2] >= h and t.shape[-1] >= w else "bilinear"
        notes.append(f"resized {t.shape[-2]}x{t.shape[-1]} -> {h}x{w} (the run's size; {mode})")
        t = F.interpolate(t, size=(h, w), mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))
    return (t.numpy() * 2 - 1).astype(np.float32), notes


def run(args: argparse.Namespace) -> None:
    """Run ``pdediff restyle`` for parsed ``args``."""
    from ..io import ScanIOError, format_of, read_scan

    if args.run is None:
        raise CLIError("the following arguments are required: --run RUN (a run folder written by pdediff train)")
    run_dir = _check_run_folder(Path(args.run), run_flag(args))
    if not 0.0 <= args.strength <= 1.0:
        raise CLIError(f"--strength must lie in [0, 1] (0: unchanged, 1: the prior); got {args.strength:g}")
    check_steps(args)
    _thread_count(args.threads)
    if not args.input:  # Path("") is ".": the current folder would be read as INPUT
        raise CLIError("INPUT '' names no file (an empty path)")
    src, dst = Path(args.input), Path(args.output)
    try:
        out_fmt = format_of(dst)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if out_fmt not in ("npy", "png", "jpeg", "tiff"):
        raise CLIError(f"OUTPUT must be .png, .jpg, .tif or .npy; got {dst.name}")
    outputs = [("OUTPUT", dst)] + ([("PREVIEW", Path(args.preview))] if args.preview else [])
    files, folders = _run_inputs(run_dir)
    for i, (what, path) in enumerate(outputs):
        if what == "PREVIEW" and path.suffix.lower() != ".png":
            raise CLIError(f"--preview must be a .png file; got {path.name}")
        if i and _same_file(dst, path):
            raise CLIError("--preview must differ from OUTPUT")
        _check_sample_output(path, run_dir, files + [src], folders, args.force, what)
    try:
        scan = read_scan(src)
    except (ScanIOError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    batch = scan.format == "npy" and scan.data.ndim == 4
    if batch and out_fmt != "npy":
        raise CLIError(f"INPUT is a batch {scan.data.shape}: OUTPUT must be .npy (got {dst.name})")
    _need_torch("restyle", args.threads)
    model = load_run(args)
    check_steps(args, model.process.num_train_timesteps)
    if args.seed is not None and _deterministic_restyle(model.process):
        noise = ", ".join(f"{a} 0" for a in _NOISE_SETTINGS if hasattr(model.process, a))
        raise CLIError(f"--seed does not apply to {run_flag(args)} {run_dir}: its process "
                       f"({model.config['process']['name']}, {noise}) degrades and restores deterministically, so "
                       "every seed gives the same result; leave --seed out")
    seed = 0 if args.seed is None else args.seed
    seed_text = "deterministic" if _deterministic_restyle(model.process) else f"seed {seed}"
    notes: list[str] = []
    if batch:
        x = np.asarray(scan.data)
        if x.dtype.kind != "f" or not np.all(np.isfinite(x)) or x.min() < -1 or x.max() > 1:
            raise CLIError(f"{src}: a batch must hold finite floats in [-1, 1] (as pdediff sample --npy writes)")
        if x.shape[1:] != tuple(model.image_shape):
            raise CLIError(f"{src}: batch of shape {x.shape}; the run's images are {tuple(model.image_shape)} "
                           "(C, H, W)")
        x = x.astype(np.float32)
    else:
        ch = scan.channel_axis
        if ch is None and scan.format in ("npy", "npz") and scan.data.ndim == 3 and scan.data.shape[-1] in (1, 3, 4):
            ch = -1
        x, notes = _image_to_model(scan.data, ch, tuple(model.image_shape), src)
    import time

    t0 = time.perf_counter()
    with library_errors():
        y = model.restyle(x, args.strength, seed=seed, num_inference_steps=args.num_inference_steps)
    seconds = time.perf_counter() - t0
    from ..io import atomic_paths

    try:
        with atomic_paths([p for _, p in outputs], overwrite=args.force) as tmps:
            if batch:
                with open(tmps[0], "wb") as f:
                    np.save(f, y.astype(np.float32))
            else:
                _write_model_image(tmps[0], y[0], out_fmt)
            if args.preview:
                _grid_figure(np.concatenate([x[:8], y[:8]]), tmps[1], ".png")
    except (ValueError, OSError) as exc:
        raise write_failure(exc) from None
    if not args.quiet:
        c, h, w = model.image_shape
        print(f"restyled {src} -> {dst} with {run_dir} ({model.config['process']['name']}, strength "
              f"{args.strength:g}, {seed_text}) in {seconds:.1f} s; {len(y)} image{'s' if len(y) != 1 else ''} "
              f"{c}x{h}x{w}")
        for note in notes:
            print(f"  note: {note}")
        if args.preview:
            print(f"  preview: {args.preview} (inputs above, results below)")


def _write_model_image(path: Path, x: np.ndarray, fmt: str) -> None:
    """(C, H, W) in [-1, 1] -> an image file: float32 [0, 1] for .npy/.tif, round(255 x) for PNG/JPEG."""
    from ..io import write_scan

    img = np.clip((x.astype(np.float64) + 1) / 2, 0, 1)
    img = img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1)
    ch = None if img.ndim == 2 else -1
    if fmt in ("png", "jpeg"):
        write_scan(path, np.rint(img * 255).astype(np.uint8), channel_axis=ch, format=fmt)
    else:
        write_scan(path, img.astype(np.float32), channel_axis=ch, format=fmt)
