"""``pdediff demo``: problems with known answers, the bundled MRI slice and a damaged photograph."""

from __future__ import annotations

import argparse

from ._errors import CLIError


def register(subparsers) -> None:
    """Add ``demo`` to ``subparsers`` (an ``add_subparsers`` object)."""
    d = subparsers.add_parser(
        "demo", help="solve problems with known answers, denoise the bundled MRI slice and repair a damaged "
        "photograph", description="Run the demo on data that ships with the package: the heat equation against "
        "its exact solution (heat), Perona–Malik denoising of matplotlib's MRI slice (denoise), inpainting of "
        "scikit-image's astronaut with cracks and a missing block next to OpenCV and scikit-image (inpaint). "
        "Default: all three.")
    # no `choices`: argparse checks the empty default of nargs="*" against them too and refuses it
    d.add_argument("parts", nargs="*", metavar="PART", help="heat, denoise and/or inpaint (default: all)")
    d.add_argument("--output-dir", default="pdediff-output", help="where figures go (default: %(default)s)")
    d.add_argument("--no-figure", action="store_true", help="print the tables only")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Run ``pdediff demo`` for parsed ``args``."""
    from ..demo import PARTS, run_demo

    bad = [p for p in args.parts if p not in PARTS]
    if bad:
        raise CLIError(f"unknown PART {', '.join(bad)}; choose among {', '.join(PARTS)}")
    run_demo(args.output_dir, figure=not args.no_figure, parts=tuple(args.parts) or PARTS)
