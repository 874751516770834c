"""``pdediff study``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ._common import _THREADS_HELP, _thread_count
from ._errors import CLIError, library_errors


def register(subparsers) -> None:
    """Add ``study`` to ``subparsers`` (an ``add_subparsers`` object)."""
    st = subparsers.add_parser(
        "study",
        help="classical versus learned diffusion: the denoising and generation studies, with results",
        description="Run the denoising study (heat, Perona-Malik, EED, TV, bilateral, wavelet, NL-means, BM3D and "
        "the shipped learned denoisers TNRD and CNN on held-out images at 2-20% noise) and/or the generation "
        "study (DDPM, IHDM, blurring, cold and edge-preserving diffusion with one network and budget, offline "
        "metrics next to the real-vs-real "
        "floor). Writes results.json, results.md and figures into --out; finished arms are cached there, so "
        "an interrupted study resumes. The full study takes about 55 minutes on 2 CPU cores; --quick about "
        "a minute (a smoke test whose numbers are not results). Needs the study extra.",
    )
    st.add_argument("kind", choices=("denoise", "generate", "all"), help="which study")
    st.add_argument("--quick", action="store_true", help="tiny settings: the pipeline in about a minute")
    st.add_argument("--seeds", type=int, default=None,
                    help="independent repetitions (default: 3; 1 with --quick)")
    st.add_argument("--steps", type=int, default=None,
                    help="training steps of every model the study trains (default: 1500 for generation; the "
                    "denoisers DDPM x0 and cold-PM, 500, run with --quick only: 60 and 20 there; the shipped "
                    "TNRD and CNN are not retrained)")
    st.add_argument("--data", default=None, action="append",
                    help="generation data: digits, shapes, a folder of images or a .npy; repeat for several "
                    "(default: digits)")
    st.add_argument("--out", default="pdediff-study", metavar="DIR", help="output folder (default: %(default)s)")
    st.add_argument("--device", default=None, help="torch device of the learned models (cpu, cuda)")
    st.add_argument("--threads", type=int, default=None, help=_THREADS_HELP)
    st.add_argument("--no-figures", action="store_true", help="skip the figures")
    st.add_argument("--quiet", action="store_true", help="no progress bars and no summary")
    st.set_defaults(func=run, library_names={"spec": "data", "figures=False": "--no-figures"})


def run(args: argparse.Namespace) -> None:
    """Run ``pdediff study`` for parsed ``args``."""
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
    from ..study import run_study

    with library_errors(OSError):  # DatasetError, RunError among them
        res = run_study(args.kind, out=out, quick=args.quick, seeds=args.seeds, steps=args.steps,
                        data=tuple(args.data) if args.data else None, figures=not args.no_figures,
                        progress=not args.quiet, device=args.device, threads=_thread_count(args.threads))
    if not args.quiet:
        took = ", ".join(f"{k} {v / 60:.1f} min" for k, v in res["wall_seconds"].items())
        print(f"study {args.kind}{' (quick)' if args.quick else ''}: {took}; results in {out}/results.md "
              f"and {out}/results.json")
