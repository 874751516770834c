"""``pdediff train``, ``pdediff sample`` and ``pdediff restyle``: learned diffusion from the command line."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from ._common import _THREADS_HELP, CLIError, _need_torch, _same_file, _thread_count, _train_words

#: ``pdediff train --process`` choices; equal to :data:`pdediff.torch.runs.PROCESSES` (kept here so that
#: building the parser never imports torch).
TRAIN_PROCESSES = ("ddpm", "ihdm", "blurring", "cold-heat", "cold-pm")

#: Image formats ``pdediff sample`` writes figures in (by matplotlib).
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")


def add_parsers(sub) -> None:
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


def add_restyle_parser(sub) -> None:
    r = sub.add_parser(
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
    r.add_argument("--model", metavar="RUN", required=True, help="a run folder written by pdediff train")
    r.add_argument("--strength", type=float, default=0.5,
                   help="how far to degrade before reversing, in [0, 1] (default: %(default)s)")
    r.add_argument("-o", "--output", metavar="OUTPUT", required=True)
    r.add_argument("--steps", type=int, default=None, help="sampling steps of the full schedule (default: all)")
    r.add_argument("--seed", type=int, default=0, help="seed of the degradation and sampling noise (default: 0)")
    r.add_argument("--preview", metavar="PREVIEW.png", default=None, help="also save an input/output figure")
    r.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    r.add_argument("--threads", type=int, default=None, help=_THREADS_HELP)
    r.add_argument("--force", action="store_true", help="overwrite outputs that exist (never an input)")
    r.add_argument("--quiet", action="store_true", help="no progress bar and no report")


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
        raise CLIError(f"{src}: unsupported pixel type {x.dtype}; expected integer or float pixels")
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


def restyle(args: argparse.Namespace) -> None:
    from ..io import ScanIOError, format_of, read_scan

    run_dir = _check_run_folder(Path(args.model), "--model")
    if not 0.0 <= args.strength <= 1.0:
        raise CLIError(f"--strength must lie in [0, 1] (0: unchanged, 1: the prior); got {args.strength:g}")
    if args.steps is not None and args.steps < 1:
        raise CLIError(f"--steps must be a positive integer; got {args.steps}")
    _thread_count(args.threads)
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
    try:
        from ..torch.runs import load_run

        run = load_run(run_dir, device=args.device)
    except (ValueError, TypeError, OSError, ImportError) as exc:  # RunError, CheckpointError, DatasetError
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CLIError(_train_words(msg)) from None
    K = run.process.num_train_timesteps
    if args.steps is not None and args.steps > K:
        raise CLIError(f"--steps must be in [1, {K}] (the run's process has {K} timesteps); got {args.steps}")
    notes: list[str] = []
    if batch:
        x = np.asarray(scan.data)
        if x.dtype.kind != "f" or not np.all(np.isfinite(x)) or x.min() < -1 or x.max() > 1:
            raise CLIError(f"{src}: a batch must hold finite floats in [-1, 1] (as pdediff sample --npy writes)")
        if x.shape[1:] != tuple(run.image_shape):
            raise CLIError(f"{src}: batch of shape {x.shape}; the run's images are {tuple(run.image_shape)} "
                           "(C, H, W)")
        x = x.astype(np.float32)
    else:
        ch = scan.channel_axis
        if ch is None and scan.format in ("npy", "npz") and scan.data.ndim == 3 and scan.data.shape[-1] in (1, 3, 4):
            ch = -1
        x, notes = _image_to_model(scan.data, ch, tuple(run.image_shape), src)
    import time

    t0 = time.perf_counter()
    try:
        y = run.restyle(x, args.strength, seed=args.seed, steps=args.steps)
    except (ValueError, TypeError) as exc:
        raise CLIError(_train_words(str(exc).splitlines()[0])) from None
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
        raise CLIError(f"cannot write: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if not args.quiet:
        c, h, w = run.image_shape
        print(f"restyled {src} -> {dst} with {run_dir} ({run.config['process']['name']}, strength "
              f"{args.strength:g}, seed {args.seed}) in {seconds:.1f} s; {len(y)} image{'s' if len(y) != 1 else ''} "
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


def _check_run_folder(run_dir: Path, what: str = "RUN") -> Path:
    if not run_dir.exists():
        raise CLIError(f"{what} {run_dir} does not exist")
    if not run_dir.is_dir():
        raise CLIError(f"{what} {run_dir} is not a folder (expected a run folder written by pdediff train)")
    if not (run_dir / "run.json").is_file():
        raise CLIError(f"{what} {run_dir} is not a run folder (no run.json); train one with pdediff train")
    return run_dir


def train(args: argparse.Namespace) -> None:
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
        from ..torch.runs import train_run
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
    # under torchrun every rank runs this command: rank 0 reports (progress bar and checkpoints are rank 0's too)
    if not args.quiet and os.environ.get("RANK", "0") == "0":
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


def sample(args: argparse.Namespace) -> None:
    run_dir = _check_run_folder(Path(args.run))
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
        from ..torch.runs import load_run

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
    from ..io import atomic_paths

    try:
        with atomic_paths([p for _, p, _ in outputs], overwrite=args.force) as tmps:
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

    from .._figures import mosaic

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
