"""``pdediff bench``: a thin wrapper; the options and the body live with the benchmarks (:mod:`pdediff.bench.cli`)."""

from __future__ import annotations

import argparse

from ..bench import cli as _bench
from ..errors import ParameterError
from ._errors import CLIError


def register(subparsers) -> None:
    """Add ``bench`` to ``subparsers``; its options are :func:`pdediff.bench.cli.add_arguments`'s."""
    b = subparsers.add_parser("bench", help=_bench.HELP, description=_bench.DESCRIPTION)
    _bench.add_arguments(b)
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``pdediff bench`` for parsed ``args``; returns the exit status (1: ``--compare`` found a slower case)."""
    try:
        return _bench.run(args)
    except ParameterError:
        raise  # printed with the command's flags by pdediff.cli.main
    except ValueError as exc:  # not about one option (jsonschema missing, a report that cannot be written)
        raise CLIError(str(exc)) from None
