"""Stops of the command line: SIGTERM/SIGHUP unwind like Ctrl-C, one line, exit status 128 + signal."""

from __future__ import annotations

import signal
import sys


class _Terminated(BaseException):
    """SIGTERM or SIGHUP, raised in the main thread so that cleanup runs as for Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


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
    if getattr(signal.getsignal(signal.SIGTERM), "_pdediff_stop", False):
        return {}  # already installed (``pdediff.cli.main`` around ``_main.main``): one set of handlers, one queue

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

    raise_terminated._pdediff_stop = True

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
