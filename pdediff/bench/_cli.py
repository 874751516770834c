"""Adapter for the command line's current wiring of ``bench`` (``add_parser(sub)``, ``run(args)``).

Temporary: ``pdediff.cli`` calls these two until it registers the command
through :mod:`pdediff.bench.cli` itself; then this module goes.  It does not
import :mod:`pdediff.cli`, so it reports a user error itself as the command
line does: one line ``pdediff bench: error: ...`` on stderr (the option spelled
as its flag) and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import ParameterError
from . import cli


def add_parser(subparsers) -> None:
    """Register ``bench`` on ``subparsers`` (an ``add_subparsers`` object; its parser class is used)."""
    cli.add_arguments(subparsers.add_parser("bench", help=cli.HELP, description=cli.DESCRIPTION))


def _flag(name: str, value: str | None) -> str:
    flag = "--" + name.replace("_", "-")
    return flag if value is None or value == "True" else f"{flag} {value}"


def run(args: argparse.Namespace) -> int:
    """:func:`pdediff.bench.cli.run`; a user error exits with status 2 after one line on stderr, a non-zero
    status (a comparison that found a slower case) exits with it."""
    try:
        status = cli.run(args)
    except ValueError as exc:  # ParameterError included
        msg = exc.render(_flag) if isinstance(exc, ParameterError) else str(exc)
        print(f"pdediff bench: error: {msg}", file=sys.stderr)
        raise SystemExit(2) from None
    if status:  # --compare found a case slower than its baseline (the command line ignores the return value)
        raise SystemExit(status)
    return status
