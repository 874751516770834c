"""Command line: ``pdediff demo | denoise | inpaint | train | sample | restyle | study | bench`` (also
``python -m pdediff ...``).

One module per command (``demo``, ``denoise``, ``inpaint``, ``train``, ``sample``, ``restyle``, ``study``,
``bench``), each registering its parser with ``register(subparsers)``; ``_main`` builds the parser from
them and dispatches through ``args.func``.  Shared helpers are private modules: ``_errors`` (the one-line
error, library parameter errors spelled as flags, deprecated aliases), ``_signals`` (stops), ``_common``
(the parser class, destination checks, threads), ``_images`` (images and scans in and out) and ``_learned``
(run folders and model images).  Every command reports a user error as one line on stderr and exits 2;
interrupts remove partial outputs.
"""

from __future__ import annotations

import sys

# Re-exports (for tests and tools), loaded on first access so that the console script's
# ``from pdediff.cli import main`` imports nothing heavy before :func:`main` can catch a Ctrl-C.
_LAZY = {
    "CLIError": "._errors",
    "INT_DTYPES": "._images",
    "FIGURE_SUFFIXES": "._learned",
    "COMMANDS": "._main",
    "build_parser": "._main",
    "_need_torch": "._common",
    "_Parser": "._common",
    "_install_signal_handlers": "._signals",
    "_Terminated": "._signals",
}
_COMMAND_MODULES = ("bench", "demo", "denoise", "inpaint", "restyle", "sample", "study", "train", "train_denoiser")


def main(argv: list[str] | None = None) -> int:
    """Run ``pdediff`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    See :func:`pdediff.cli._main.main`.  The command modules, NumPy and the kernels are imported here, with the
    stop handlers already installed, so that a Ctrl-C, SIGTERM or SIGHUP while they load ends with one line
    and status 128 + the signal, as it does everywhere else.
    """
    import signal

    from ._signals import _install_signal_handlers, _interrupt_cause, _Terminated

    previous = _install_signal_handlers()
    try:
        from ._main import main as _run

        # ``_run`` reports stops from the moment its command starts; one here arrived while the modules
        # loaded, the parser was built or the arguments parsed
        return _run(argv)
    except BaseException as exc:
        cause = _interrupt_cause(exc)
        if cause is None:
            raise
        command = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), None)
        what = "interrupted" if isinstance(cause, KeyboardInterrupt) else \
            f"stopped by {signal.Signals(cause.signum).name}"
        print(f"pdediff{' ' + command if command else ''}: {what} while starting; nothing was written",
              file=sys.stderr)
        return 130 if isinstance(cause, KeyboardInterrupt) else 128 + cause.signum
    finally:
        if signal.SIGALRM in previous:  # a stop deferred during compilation must not fire after we return
            signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def __getattr__(name: str):
    import importlib

    if name == "_build_parser":  # older name
        return importlib.import_module("._main", __name__).build_parser
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    if name in _COMMAND_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["main", "build_parser", "COMMANDS", "CLIError"]
