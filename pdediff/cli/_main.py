"""The ``pdediff`` parser, built from the command modules, and :func:`main`, which dispatches to them."""

from __future__ import annotations

import argparse
import signal
import sys

from ..errors import ParameterError
from . import bench, demo, denoise, inpaint, restyle, sample, study, train, train_denoiser
from ._common import _Parser, check_seed
from ._errors import CLIError, render
from ._signals import _install_signal_handlers, _interrupt_cause, _stopped

#: The commands, in the order ``pdediff --help`` lists them; each module's ``register(subparsers)`` adds its
#: parser with ``set_defaults(func=run)`` (and, where library names differ from its flags, ``library_names``).
COMMANDS = (demo, denoise, inpaint, train, train_denoiser, sample, restyle, study, bench)


def build_parser() -> argparse.ArgumentParser:
    """The ``pdediff`` parser with every command of :data:`COMMANDS` registered."""
    from .. import __version__

    p = _Parser(prog="pdediff", description="PDE diffusion: heat equation and Perona–Malik.")
    p.add_argument("--version", action="version", version=f"pdediff {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command in COMMANDS:
        command.register(sub)
    return p


def _command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def main(argv: list[str] | None = None) -> int:
    """Run ``pdediff`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    A user error is one line on stderr (``pdediff COMMAND: error: ...``) and status 2; a library
    :class:`~pdediff.errors.ParameterError` is printed with the command's flags; an interrupt (Ctrl-C,
    SIGTERM, SIGHUP) removes partial outputs and returns 128 + the signal.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # argparse blames the top-level parser ("pdediff: error"); the command's flags are meant
        _command_parser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    previous = _install_signal_handlers()
    try:
        check_seed(args)  # every command's --seed, for every method, before any work
        status = args.func(args)
        return 0 if status is None else int(status)
    except CLIError as exc:
        print(f"pdediff {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ParameterError as exc:
        print(f"pdediff {args.command}: error: {render(exc, _command_parser(parser, args.command), args)}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        return _stopped(args.command, exc)
    except BaseException as exc:
        # SIGTERM/SIGHUP arrive as _Terminated; an interrupt that landed inside a C extension's initialisation
        # (e.g. matplotlib's ft2font, Numba's compiler) comes back wrapped: "ImportError: initialization failed",
        # caused by our exception
        cause = _interrupt_cause(exc)
        if cause is None:
            raise
        return _stopped(args.command, cause)
    finally:
        if signal.SIGALRM in previous:
            signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
