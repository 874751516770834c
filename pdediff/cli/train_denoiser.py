"""``pdediff train-denoiser``: retrain a shipped learned denoiser (TNRD or the CNN) from scratch; resumes when rerun."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..catalogue import LEARNED_DENOISERS
from ._common import _THREADS_HELP, _need_torch
from ._errors import CLIError, library_errors

#: The models (the catalogue's names, so that ``--help`` needs no torch).
MODELS = LEARNED_DENOISERS


def register(subparsers) -> None:
    """Add ``train-denoiser`` to ``subparsers`` (an ``add_subparsers`` object)."""
    t = subparsers.add_parser(
        "train-denoiser",
        help="retrain a shipped learned denoiser (tnrd, cnn) from scratch with its recipe; resumes when rerun",
        description="Train the learned denoiser MODEL from scratch with the recipe that made the shipped weights "
        "(pdediff.torch.denoisers.RECIPES): random patches of scikit-image's bundled photographs (never the "
        "study's test images), Gaussian noise of 0-25 percent of the range, flips and rotations, seeded. --out holds "
        "checkpoint.pt (tensors only: loads without running code; rerunning resumes exactly), and at the end "
        "MODEL.npz (the model: JSON config and plain arrays, no pickle; the format of pdediff/torch/weights/MODEL.npz) and training.json. Needs the torch "
        "extra.",
    )
    t.add_argument("model", choices=MODELS, metavar="MODEL", help="tnrd (trainable reaction-diffusion) or cnn")
    t.add_argument("--out", required=True, metavar="DIR", help="the run folder (created if needed)")
    t.add_argument("--steps", type=int, default=None,
                   help="optimiser steps (default: the recipe's, which made the shipped weights)")
    t.add_argument("--threads", type=int, default=None, help=_THREADS_HELP)
    t.add_argument("--quiet", action="store_true", help="no progress bar and no report")
    t.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Run ``pdediff train-denoiser`` for parsed ``args``."""
    if args.steps is not None and args.steps < 1:
        raise CLIError(f"--steps must be a positive integer; got {args.steps}")
    if not args.out.strip():
        raise CLIError("--out '' names no folder; give the run folder, e.g. --out runs/tnrd")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is a file; choose a folder")
    _need_torch("train-denoiser", args.threads)
    with library_errors(ImportError):
        from ..torch.denoisers import retrain_denoiser
    with library_errors(OSError, ImportError, FloatingPointError):  # CheckpointError, divergence
        _, record = retrain_denoiser(args.model, out, steps=args.steps, progress=not args.quiet)
    if not args.quiet:
        losses = record["loss_per_50_steps"]
        print(f"trained {args.model} to step {record['step']} ({record['wall_seconds_this_call']:.1f} s this run, "
              f"{record['threads']} thread(s)); loss {losses[-1]:.4g} (mean of the last 50 steps)")
        print(f"  run folder: {out} ({args.model}.npz, checkpoint.pt, training.json); use it with: "
              f"pdediff denoise IN -o OUT --method {args.model} --weights {out / (args.model + '.npz')}")
