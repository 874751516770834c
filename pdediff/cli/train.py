"""``pdediff train``: train a model to reverse a forward process, in a run folder that resumes exactly."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
from types import MappingProxyType

from ..catalogue import PROCESS_NAMES, PROCESSES
from ..catalogue import TRAIN_DEFAULTS as _LIBRARY_DEFAULTS
from ._common import _THREADS_HELP, _need_torch, seed_arg
from ._errors import CLIError, library_errors

#: The defaults of ``pdediff train``: the library's one set (:data:`pdediff.catalogue.TRAIN_DEFAULTS`, torch-free).
TRAIN_DEFAULTS = MappingProxyType(dataclasses.asdict(_LIBRARY_DEFAULTS))

#: Library names that are not a flag's ``dest`` (see ``_errors.FlagSpelling``): the run folder, the data
#: set, and the nested names of run.json (``model.base`` falls back to ``--base`` by its last component).
LIBRARY_NAMES = {"spec": "data", "data.spec": "data", "process.name": "process", "name": "process",
                 "process.config.*": "config", "config.*": "config", "process.config": "config"}


def register(subparsers) -> None:
    """Add ``train`` to ``subparsers`` (an ``add_subparsers`` object)."""
    d = TRAIN_DEFAULTS
    t = subparsers.add_parser(
        "train",
        help="train a model to reverse a forward process (learned diffusion); resumes when rerun",
        description="Train a UNet to reverse a forward process on a data set, in a run folder (--out) holding "
        "run.json (every setting) and checkpoint.pt (tensors only: loads without running code). Rerunning the "
        "same command resumes from the last checkpoint exactly (--steps may grow); other settings are refused. "
        "Needs the torch extra.",
    )
    labels = "; ".join(f"{e.name} ({e.label})" for e in PROCESSES.values())
    t.add_argument("--process", choices=PROCESS_NAMES, default=PROCESS_NAMES[0],
                   help=f"the forward process: {labels}; default: %(default)s")
    t.add_argument("--data", default="digits",
                   help="'digits' (scikit-learn, 8x8), 'shapes' (synthetic, 16x16), a folder of images or a "
                   ".npy file; its seeded 70%% training split is used (default: %(default)s)")
    t.add_argument("--steps", type=int, default=d["steps"], help="total optimiser steps (default: %(default)s)")
    t.add_argument("--out", required=True, metavar="DIR", help="the run folder (created if needed)")
    t.add_argument("--config", metavar="PROCESS.json", default=None,
                   help="process constructor arguments over the defaults: a JSON file, or a JSON object inline "
                   "(e.g. '{\"num_train_timesteps\": 100}')")
    t.add_argument("--base", type=int, default=d["base"],
                   help="UNet channels of the first level (default: %(default)s)")
    t.add_argument("--mults", default=",".join(map(str, d["mults"])),
                   help="UNet channel multipliers per level (default: %(default)s)")
    t.add_argument("--batch-size", type=int, default=d["batch_size"], help="default: %(default)s")
    t.add_argument("--lr", type=float, default=d["lr"], help="Adam learning rate (default: %(default)s)")
    t.add_argument("--ema-decay", type=float, default=d["ema_decay"],
                   help="EMA of the weights (default: %(default)s)")
    t.add_argument("--seed", type=seed_arg, default=d["seed"],
                   help="seed of initialisation, batches and noise (default: %(default)s)")
    t.add_argument("--checkpoint-every", type=int, default=d["checkpoint_every"],
                   help="steps between checkpoints (default: %(default)s)")
    t.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    t.add_argument("--threads", type=int, default=None, help=_THREADS_HELP)
    t.add_argument("--quiet", action="store_true", help="no progress bar and no report")
    t.set_defaults(func=run, library_names=LIBRARY_NAMES)


def _config(text: str | None) -> dict | str | None:
    """``--config``: a JSON object inline, or the path of a JSON file (read by the library)."""
    if text is None:
        return None
    if text.lstrip().startswith(("{", "[")):  # inline JSON (an array is refused as not an object)
        try:
            cfg = json.loads(text)
        except ValueError as exc:
            raise CLIError(f"--config: not a valid JSON object ({exc})") from None
        if not isinstance(cfg, dict):
            raise CLIError("--config: expected a JSON object of process arguments")
        return cfg
    if not Path(text).is_file():
        raise CLIError(f"--config {text}: no such file (expected a JSON object of process arguments)")
    return text


def run(args: argparse.Namespace) -> None:
    """Run ``pdediff train`` for parsed ``args``."""
    if args.steps < 1:
        raise CLIError(f"--steps must be a positive integer; got {args.steps}")
    try:
        mults = tuple(int(v) for v in args.mults.split(","))
    except ValueError:
        raise CLIError(f"--mults must be comma-separated positive integers, e.g. 1,2; got {args.mults!r}") from None
    config = _config(args.config)
    if not args.out.strip():
        raise CLIError("--out '' names no folder; give the run folder, e.g. --out runs/ddpm")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} exists and is a file; choose a folder")
    _need_torch("train", args.threads)
    with library_errors(ImportError):
        from ..torch.runs import train_run
    with library_errors(OSError, ImportError, FloatingPointError):  # RunError, DatasetError, divergence
        run = train_run(out, process=args.process, data=args.data, steps=args.steps, base=args.base, mults=mults,
                        batch_size=args.batch_size, lr=args.lr, ema_decay=args.ema_decay, seed=args.seed,
                        device=args.device, config=config, checkpoint_every=args.checkpoint_every,
                        progress=not args.quiet)
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
              f"pdediff sample --run {out} -n 64 -o grid.png")
