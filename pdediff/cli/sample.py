"""``pdediff sample``: draw images from a run trained by ``pdediff train``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ._common import _THREADS_HELP, _need_torch, _same_file, _thread_count, seed_arg
from ._errors import CLIError, library_errors, write_failure
from ._learned import (
    FIGURE_SUFFIXES,
    LEARNED_NAMES,
    LOSSLESS_FIGURE_SUFFIXES,
    _check_run_folder,
    _check_sample_output,
    _grid_figure,
    _run_inputs,
    _trajectory_figure,
    add_run_argument,
    add_steps_argument,
    check_steps,
    load_run,
    positional_run,
    run_flag,
)


def register(subparsers) -> None:
    """Add ``sample`` to ``subparsers`` (an ``add_subparsers`` object)."""
    s = subparsers.add_parser(
        "sample",
        help="draw images from a run trained by pdediff train",
        description="Sample images from the EMA model of RUN (a folder written by pdediff train) and save them "
        "as a grid image (-o), optionally as a .npy array (N, C, H, W) in [-1, 1] and a trajectory figure. "
        "Checkpoints are loaded with torch.load(weights_only=True): a file carrying pickled code is refused "
        "unread. Outputs are written atomically and never overwrite a file without --force. Needs the torch "
        "extra.",
    )
    add_run_argument(s, "the run folder written by pdediff train (required)")
    # the positional RUN of earlier releases: deprecated, kept one release
    s.add_argument("run_positional", nargs="?", default=None, metavar="RUN", help=argparse.SUPPRESS)
    s.add_argument("-n", type=int, default=64, help="how many images (default: %(default)s)")
    s.add_argument("--max-samples", type=int, default=None, metavar="N",
                   help="refuse -n above N before any work (default: the library's limit, 100000; 0: no limit)")
    s.add_argument("-o", "--output", metavar="GRID.png", required=True,
                   help="grid image (" + ", ".join(FIGURE_SUFFIXES) + ")")
    s.add_argument("--npy", metavar="SAMPLES.npy", default=None, help="also save the samples as float32 .npy")
    add_steps_argument(s)
    s.add_argument("--seed", type=seed_arg, default=0, help="seed of the prior and sampling noise (default: 0)")
    s.add_argument("--trajectory", metavar="TRAJ.png", default=None,
                   help="also save a figure of samples from the prior to the final image (lossless: "
                   + ", ".join(LOSSLESS_FIGURE_SUFFIXES) + "; JPEG would smear the noisy early steps)")
    s.add_argument("--data", default=None, metavar="PATH",
                   help="where the run's training data are now, if they moved (IHDM and cold diffusion build "
                   "their prior from them; checked against the SHA-256 in run.json); refused for the other "
                   "processes, which start from white noise and read no data")
    s.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    s.add_argument("--threads", type=int, default=None, help=_THREADS_HELP)
    s.add_argument("--force", action="store_true", help="overwrite outputs that exist (never an input)")
    s.add_argument("--quiet", action="store_true", help="no progress bar and no report")
    s.set_defaults(func=run, library_names={**LEARNED_NAMES, "max_samples=None": "--max-samples 0"})


def run(args: argparse.Namespace) -> None:
    """Run ``pdediff sample`` for parsed ``args``."""
    positional_run(args, "pdediff sample")
    if args.run is None:
        raise CLIError("the following arguments are required: --run RUN (a run folder written by pdediff train)")
    run_dir = _check_run_folder(Path(args.run), run_flag(args))
    if args.n < 1:
        raise CLIError(f"-n must be a positive integer; got {args.n}")
    if args.max_samples is not None and args.max_samples < 0:
        raise CLIError(f"--max-samples must be a non-negative integer (0: no limit); got {args.max_samples}")
    limit = {} if args.max_samples is None else {"max_samples": args.max_samples or None}
    check_steps(args)
    _thread_count(args.threads)
    grid = Path(args.output)
    outputs = [("OUTPUT", grid, FIGURE_SUFFIXES)]
    if args.npy is not None:
        outputs.append(("--npy", Path(args.npy), (".npy",)))
    if args.trajectory is not None:
        outputs.append(("--trajectory", Path(args.trajectory), LOSSLESS_FIGURE_SUFFIXES))
    files, folders = _run_inputs(run_dir)
    if args.data is not None:
        (folders if Path(args.data).is_dir() else files).append(Path(args.data))
    for i, (what, path, suffixes) in enumerate(outputs):
        if path.suffix.lower() not in suffixes:
            raise CLIError(f"{what} must end in {', '.join(suffixes)}; got {path.name}"
                           + (" (JPEG is lossy)" if what == "--trajectory" and path.suffix.lower() in FIGURE_SUFFIXES
                              else ""))
        for other_what, other, _ in outputs[:i]:
            if _same_file(other, path):
                raise CLIError(f"{what} and {other_what} are the same file {path}")
        _check_sample_output(path, run_dir, files, folders, args.force, what)
    _need_torch("sample", args.threads)
    model = load_run(args, data=args.data)
    K = model.process.num_train_timesteps
    check_steps(args, K)
    import time

    t0 = time.perf_counter()
    with library_errors():
        res = model.sample(args.n, seed=args.seed, trajectory=args.trajectory is not None, progress=not args.quiet,
                           num_inference_steps=args.num_inference_steps, **limit)
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
        raise write_failure(exc) from None
    if not args.quiet:
        c, h, w = images.shape[1:]
        steps = args.num_inference_steps if args.num_inference_steps is not None else K
        name = model.config["process"]["name"]
        print(f"sampled {args.n} images ({c}x{h}x{w}) from {run_dir} ({name}, step {model.step}; {steps} sampling "
              f"steps, seed {args.seed}) in {seconds:.1f} s")
        print("  " + ", ".join(f"{what.lstrip('-')}: {p}" for what, p, _ in outputs))
