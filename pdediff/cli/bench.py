"""``pdediff bench``: a thin wrapper; the options and the body live with the benchmarks (:mod:`pdediff.bench.cli`)."""

from __future__ import annotations

import argparse

_HELP = "time the solvers against the copy roofline and the tools users would otherwise run"
_DESCRIPTION = (
    "Measure the copy bandwidth (the roofline), then time every method x size x dtype x backend (CPU at each "
    "Numba thread count; GPU with CuPy and a device) next to the installed peers. Writes bench.json "
    "(schema-validated), bench.md (tables and the issue-12 targets) and two figures into --out. --quick: under "
    "a minute on two cores (a smoke test, not results). Single runs on a shared machine are noisy: compare "
    "ratios within one run."
)


def _bench_cli():
    """:mod:`pdediff.bench.cli` (``add_arguments``/``run``), or ``None`` where the bench package predates it."""
    try:
        from ..bench import cli
    except ImportError:
        return None
    return cli if hasattr(cli, "add_arguments") and hasattr(cli, "run") else None


def register(subparsers) -> None:
    """Add ``bench`` to ``subparsers``; its options are :func:`pdediff.bench.cli.add_arguments`'s."""
    cli = _bench_cli()
    if cli is None:  # the bench package registers the whole parser itself
        from ..bench._cli import add_parser

        add_parser(subparsers)
        subparsers.choices["bench"].set_defaults(func=run)
        return
    b = subparsers.add_parser("bench", help=_HELP, description=_DESCRIPTION)
    cli.add_arguments(b)
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``pdediff bench`` for parsed ``args``; returns the exit status."""
    cli = _bench_cli()
    if cli is None:
        from ..bench._cli import run as run_bench

        run_bench(args)
        return 0
    return cli.run(args)
