"""Command line: ``pdediff demo`` (and ``python -m pdediff demo``)."""

from __future__ import annotations

import argparse
import sys


class CLIError(Exception):
    """A user error reported as one line on stderr with a non-zero exit status."""


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="pdediff", description="PDE diffusion: heat equation and Perona–Malik.")
    p.add_argument("--version", action="version", version=f"pdediff {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="solve a problem with a known solution by every method; save figures")
    d.add_argument("--output-dir", default="pdediff-output", help="where figures go (default: %(default)s)")
    d.add_argument("--no-figure", action="store_true", help="print the tables only")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import run_demo

            run_demo(args.output_dir, figure=not args.no_figure)
        return 0
    except CLIError as exc:
        print(f"pdediff {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
