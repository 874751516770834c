"""What ``train``, ``sample``, ``restyle`` and ``inpaint --method learned`` share: the ``--run`` option (and
its deprecated spellings), run folders, sampling steps, output checks and figures of model images."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from ._common import _same_file, exists_error
from ._errors import CLIError, DeprecatedAlias, library_errors, note_given, warn_deprecated

#: Image formats ``pdediff sample`` writes its grid of samples in (by matplotlib).
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")
#: Lossless figure formats, for the trajectory: its early steps are near white noise, which JPEG's
#: compression smears into blocks (the figure would show the codec, not the prior).
LOSSLESS_FIGURE_SUFFIXES = (".png", ".pdf", ".svg")

#: The help of ``--num-inference-steps``.
STEPS_HELP = "sampling steps (default: every trained timestep)"


def add_run_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """``--run RUN`` (a run folder written by ``pdediff train``), with the deprecated alias ``--model``."""
    parser.add_argument("--run", metavar="RUN", default=None, help=help)
    parser.add_argument("--model", metavar="RUN", dest="run", action=DeprecatedAlias, new="--run")


def add_steps_argument(parser: argparse.ArgumentParser, help: str = STEPS_HELP, *, alias: str | None = "--steps"
                       ) -> None:
    """``--num-inference-steps N`` (sampling steps), with a deprecated alias (``--steps``) unless ``alias`` is None."""
    parser.add_argument("--num-inference-steps", type=int, default=None, metavar="N", help=help)
    if alias is not None:
        parser.add_argument(alias, type=int, dest="num_inference_steps", action=DeprecatedAlias,
                            new="--num-inference-steps")


def positional_run(args: argparse.Namespace, prog: str) -> None:
    """``pdediff sample RUN``: the positional RUN is a deprecated spelling of ``--run RUN``."""
    old = getattr(args, "run_positional", None)
    if old is None:
        return
    if args.run is not None:
        raise CLIError(f"RUN given twice ({old} and --run {args.run}); pass --run RUN only")
    warn_deprecated(prog, "the positional RUN", "--run RUN")
    args.run = old
    note_given(args, "run", "RUN")


def run_flag(args: argparse.Namespace) -> str:
    """The flag the user gave for the run folder (``--run``, or a deprecated ``--model``/positional RUN)."""
    return (getattr(args, "given_flags", None) or {}).get("run", "--run")


def steps_flag(args: argparse.Namespace) -> str:
    """The flag the user gave for the sampling steps (``--num-inference-steps`` or a deprecated alias)."""
    return (getattr(args, "given_flags", None) or {}).get("num_inference_steps", "--num-inference-steps")


def check_steps(args: argparse.Namespace, num_train_timesteps: int | None = None) -> None:
    """Refuse sampling steps outside ``[1, K]`` (K: the run's timesteps, once known), naming the flag given."""
    n = args.num_inference_steps
    if n is None:
        return
    if n < 1:
        raise CLIError(f"{steps_flag(args)} must be a positive integer; got {n}")
    K = num_train_timesteps
    if K is not None and n > K:
        raise CLIError(f"{steps_flag(args)} must be in [1, {K}] (the run's process has {K} timesteps); got {n}")


#: Library names of the learned commands that are not a flag's ``dest`` (see ``_errors.FlagSpelling``).
LEARNED_NAMES = {"steps": "num_inference_steps", "num_iter": "num_inference_steps", "path": "run",
                 "model": "run", "images": "input", "image": "input", "spec": "data", "data.spec": "data"}


def load_run(args: argparse.Namespace, **kwargs):
    """:func:`pdediff.torch.load_run` of ``args.run`` on ``args.device``; its errors as one line."""
    from ..torch import load_run as _load_run

    with library_errors(OSError, ImportError):  # RunError, CheckpointError, DatasetError
        return _load_run(Path(args.run), device=args.device, **kwargs)


def _check_run_folder(run_dir: Path, what: str = "RUN") -> Path:
    if not run_dir.exists():
        raise CLIError(f"{what} {run_dir} does not exist")
    if not run_dir.is_dir():
        raise CLIError(f"{what} {run_dir} is not a folder (expected a run folder written by pdediff train)")
    if not (run_dir / "run.json").is_file():
        raise CLIError(f"{what} {run_dir} is not a run folder (no run.json); train one with pdediff train")
    return run_dir


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
        raise exists_error(what, path)
    parent = path.resolve().parent
    if not parent.is_dir():
        named = parent if os.path.islink(path) else path.parent
        raise CLIError(f"{what} {path}: {named} is a file, not a folder" if parent.exists() else
                       f"{what} {path}: folder {named} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CLIError(f"{what} {path}: folder {parent} is not writable")


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
