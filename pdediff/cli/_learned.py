"""``pdediff train`` and ``pdediff sample``."""

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


def sample(args: argparse.Namespace) -> None:
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
