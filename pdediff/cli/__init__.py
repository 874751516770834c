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

from . import bench, demo, denoise, inpaint, restyle, sample, study, train  # noqa: F401  (the command modules)
from ._common import _need_torch, _Parser  # noqa: F401  (re-exported for tests and tools)
from ._errors import CLIError
from ._images import INT_DTYPES  # noqa: F401
from ._learned import FIGURE_SUFFIXES  # noqa: F401
from ._main import COMMANDS, build_parser, main
from ._main import build_parser as _build_parser  # noqa: F401  (older name)
from ._signals import _install_signal_handlers, _Terminated  # noqa: F401

__all__ = ["main", "build_parser", "COMMANDS", "CLIError"]
