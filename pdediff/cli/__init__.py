"""Command line: ``pdediff demo | denoise | inpaint | train | sample | restyle | study | bench`` (also
``python -m pdediff ...``).

One module per command (``_denoise``, ``_inpaint``, ``_learned`` for train/sample/restyle, ``_study``;
``bench`` lives with the benchmarks in :mod:`pdediff.bench`); what they share is in ``_common`` (the
one-line error, the parser class, destination checks, threads) and ``_images`` (images and scans in and out).
Every command reports a user error as one line on stderr and exits 2; interrupts remove partial outputs.
"""

from __future__ import annotations

import argparse
import signal
import sys

from . import _denoise, _inpaint, _learned, _study
from ._common import CLIError, _need_torch, _Parser  # noqa: F401  (re-exported for tests and tools)
from ._images import INT_DTYPES  # noqa: F401
from ._learned import FIGURE_SUFFIXES, TRAIN_PROCESSES  # noqa: F401


class _Terminated(BaseException):
    """SIGTERM or SIGHUP, raised in the main thread so that cleanup runs as for Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = _Parser(prog="pdediff", description="PDE diffusion: heat equation and Perona–Malik.")
    p.add_argument("--version", action="version", version=f"pdediff {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("demo", help="solve problems with known answers, denoise the bundled MRI slice and repair "
                       "a damaged photograph", description="Run the demo on data that ships with the package: "
                       "the heat equation against its exact solution (heat), Perona–Malik denoising of "
                       "matplotlib's MRI slice (denoise), inpainting of scikit-image's astronaut with cracks and "
                       "a missing block next to OpenCV and scikit-image (inpaint). Default: all three.")
    # no `choices`: argparse checks the empty default of nargs="*" against them too and refuses it
    d.add_argument("parts", nargs="*", metavar="PART", help="heat, denoise and/or inpaint (default: all)")
    d.add_argument("--output-dir", default="pdediff-output", help="where figures go (default: %(default)s)")
    d.add_argument("--no-figure", action="store_true", help="print the tables only")

    _denoise.add_parser(sub)
    _inpaint.add_parser(sub)
    _learned.add_parsers(sub)
    _learned.add_restyle_parser(sub)
    _study.add_parser(sub)
    from ..bench._cli import add_parser as add_bench_parser

    add_bench_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    previous = _install_signal_handlers()
    try:
        if args.command == "demo":
            from ..demo import PARTS, run_demo

            bad = [p for p in args.parts if p not in PARTS]
            if bad:
                raise CLIError(f"unknown PART {', '.join(bad)}; choose among {', '.join(PARTS)}")
            run_demo(args.output_dir, figure=not args.no_figure, parts=tuple(args.parts) or PARTS)
        elif args.command == "denoise":
            _denoise.run(args)
        elif args.command == "inpaint":
            _inpaint.run(args)
        elif args.command == "train":
            _learned.train(args)
        elif args.command == "sample":
            _learned.sample(args)
        elif args.command == "restyle":
            _learned.restyle(args)
        elif args.command == "study":
            _study.run(args)
        elif args.command == "bench":
            from ..bench._cli import run as run_bench

            run_bench(args)
        return 0
    except CLIError as exc:
        print(f"pdediff {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, _Terminated) as exc:
        return _stopped(args.command, exc)
    except Exception as exc:
        # an interrupt that landed inside a C extension's initialisation (e.g. matplotlib's ft2font, Numba's
        # compiler) comes back wrapped: "ImportError: initialization failed", caused by our exception
        cause = _interrupt_cause(exc)
        if cause is None:
            raise
        return _stopped(args.command, cause)
    finally:
        if signal.SIGALRM in previous:
            signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _interrupt_cause(exc: BaseException) -> BaseException | None:
    """The KeyboardInterrupt or SIGTERM/SIGHUP behind ``exc``, following its cause/context chain."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (KeyboardInterrupt, _Terminated)):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _stopped(command: str, exc: BaseException) -> int:
    """One line for an interrupt (Ctrl-C, SIGTERM, SIGHUP) and the conventional exit status 128 + signal."""
    _quiet_teardown()
    if isinstance(exc, _Terminated):
        name = signal.Signals(exc.signum).name
        print(f"pdediff {command}: stopped by {name}; {_stopped_note(command)}", file=sys.stderr)
        return 128 + exc.signum
    print(f"pdediff {command}: interrupted; {_stopped_note(command)}", file=sys.stderr)
    return 130


def _stopped_note(command: str) -> str:
    if command == "train":
        return "the run keeps its last checkpoint; rerun the same command to resume exactly"
    return "outputs not yet complete were removed"


def _install_signal_handlers() -> dict:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so partial outputs are removed (main thread only).

    A stop that arrives while Numba compiles is delivered when the compiler is left (see ``stop``).
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}

    pending: list[int] = []

    def stop(signum):
        if _compiling():
            # Raising inside Numba's compiler (or while it loads a kernel from its cache) unwinds through
            # half-built LLVM objects, whose native finalisers may crash the process; deliver the stop as
            # soon as the compiler is left (the timer re-checks every 20 ms).
            if not pending:
                pending.append(signum)
                signal.setitimer(signal.ITIMER_REAL, _RETRY_S)
            return
        _quiet_teardown()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise _Terminated(signum)

    def retry(signum, frame):
        if _compiling():
            signal.setitimer(signal.ITIMER_REAL, _RETRY_S)
            return
        stop(pending.pop())

    def raise_terminated(signum, frame):
        stop(signum)

    def raise_interrupt(signum, frame):
        stop(signum)

    previous = {signal.SIGALRM: signal.signal(signal.SIGALRM, retry)}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        previous[signum] = signal.signal(signum, raise_terminated)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, raise_interrupt)
    return previous


#: How often a stop deferred during Numba compilation is re-checked (seconds).
_RETRY_S = 0.02


def _compiling() -> bool:
    """Whether this thread holds Numba's compiler lock (compiling, or loading a kernel from its cache)."""
    mod = sys.modules.get("numba.core.compiler_lock")
    try:
        return bool(mod is not None and mod.global_compiler_lock.is_locked())
    except Exception:  # noqa: BLE001 - a Numba without this internal: no deferral
        return False


def _quiet_teardown() -> None:
    """After an interrupt, objects half-built at that moment (e.g. by Numba's compiler, llvmlite) may fail in
    their finalisers; Python would print those as "Exception ignored ... Traceback". The user asked to stop,
    so the one line that says what was removed is all they should see."""
    sys.unraisablehook = lambda unraisable: None
