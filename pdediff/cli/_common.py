"""What every subcommand shares: the parser class, destination checks, threads."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ._errors import CLIError


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``pdediff denoise: error: ...`` and exit status 2, no usage block.

    Flags are never abbreviated: argparse's prefix matching read ``pdediff inpaint --dt 1e300`` (a flag
    inpaint lacks) as ``--dtype 1e300`` and blamed ``--dtype``; an unknown flag is reported as typed.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message.splitlines()[0]} (see {self.prog} --help)\n")


_TORCH_EXTRA = 'needs PyTorch, which is not installed: pip install "pdediff[torch]"'

_THREADS_HELP = ("torch CPU threads (default: 1 unless OMP_NUM_THREADS is set: these small models gain little from "
                 "more, and torch threads waiting on a busy core (other work, or the Numba operators of cold-pm) "
                 "made training steps 4-13x slower on a 2-core machine); at most the CPU count")


#: The seeds every command takes: torch's generators take a signed 64-bit seed, and NumPy's any non-negative one.
SEED_RANGE = "an integer in [0, 2**63 - 1]"


def seed_arg(text: str) -> int:
    """argparse ``type`` of every ``--seed``: a decimal integer (``1.5``, ``1e3`` refused while parsing, naming the
    range); the range itself is checked by :func:`check_seed` when the command runs, for every method."""
    try:
        return int(text.strip(), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {SEED_RANGE}; got {text!r}") from None


def check_seed(args: argparse.Namespace) -> None:
    """Refuse a ``--seed`` outside ``[0, 2**63 - 1]`` (one line naming the flag and the range)."""
    seed = getattr(args, "seed", None)
    if seed is not None and not 0 <= seed <= 2**63 - 1:
        raise CLIError(f"--seed must be {SEED_RANGE}; got {seed}")


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def exists_error(what: str, path: Path) -> CLIError:
    """The refusal of an existing OUTPUT without ``--force``, saying where a symbolic link points."""
    if os.path.islink(path):
        target = os.readlink(path)
        state = "" if os.path.exists(path) else ", which does not exist"
        return CLIError(f"{what} {path} is a symbolic link to {target}{state}; pass --force to write the file it "
                        "points to (the link stays)")
    return CLIError(f"{what} {path} exists; pass --force to overwrite it")


def _check_destination(path: Path, src: Path, force: bool, what: str, *, directory: bool = False,
                       fmt: str | None = None) -> None:
    """Refuse, before any work, a destination that is the input, exists without --force, is not a regular
    file (a FIFO or device, a link to one: never replaced), is a folder of another kind (``fmt``: the
    output's format; a folder is replaced only by its own kind), or has no folder."""
    from ..io import replace_problem

    if path.name in ("", ".."):  # '.', '..', a root: checked first, or the message would ask for --force
        raise CLIError(f"{what} {path} names no file ('.', '..' or a root); give a file name such as out.nii")
    if _same_file(src, path) or (src.is_dir() and path.resolve().is_relative_to(src.resolve())):
        raise CLIError(f"{what} {path} is the INPUT (or inside it); pdediff never overwrites its input")
    if os.path.exists(path) and not (path.is_file() or path.is_dir()):  # a FIFO, device or socket (or a link to one)
        link = f" (a symbolic link to {os.path.realpath(path)})" if os.path.islink(path) else ""
        why = replace_problem(path, fmt) if fmt is not None else "it is not a regular file"
        raise CLIError(f"{what} {path}{link}: {why}; pdediff writes regular files only and never replaces it: "
                       "choose another name")
    # what --force could not replace anyway is refused first, without suggesting it
    if os.path.lexists(path) and path.is_dir() != directory:
        kind = "a folder" if path.is_dir() else "a file"
        raise CLIError(f"{what} {path} exists and is {kind}; choose another name")
    if directory and path.is_dir():  # --force replaces a previous series or store, never a folder of other files
        why = replace_problem(path, fmt or "dicom")
        if why is not None:
            detail = "" if fmt == "zarr" else f" ({why})"
            label = "a Zarr store" if fmt == "zarr" else "a DICOM series"
            raise CLIError(f"{what} {path} is a folder that is not {label}{detail}; choose another name")
    if os.path.lexists(path) and not force:
        raise exists_error(what, path)
    parent = path.resolve().parent
    if not parent.is_dir():
        link = " (the folder of the file the link points to)" if os.path.islink(path) else ""
        named = parent if link else path.parent  # what the user typed, unless a link decides
        if parent.exists():  # "cam.png/out.png": cam.png is a file
            raise CLIError(f"{what} {path}: {named}{link} is a file, not a folder")
        raise CLIError(f"{what} {path}: folder {named}{link} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CLIError(f"{what} {path}: folder {parent} is not writable")


def _thread_count(threads: int | None) -> int:
    """--threads, else OMP_NUM_THREADS, else 1 (see _THREADS_HELP)."""
    if threads is not None:
        if threads < 1:
            raise CLIError(f"--threads must be a positive integer; got {threads}")
        cpus = os.cpu_count() or 1
        if threads > cpus:  # oversubscribed OpenMP pools spin: --threads 10000 took 157 s for a 0.5 s job
            raise CLIError(f"--threads must be at most this machine's CPU count, {cpus}; got {threads}")
        return threads
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1").split(",")[0]))
    except ValueError:
        return 1


def _need_torch(command: str, threads: int | None) -> None:
    try:
        import torch
    except ImportError:
        raise CLIError(f"pdediff {command} {_TORCH_EXTRA}") from None
    import numba

    n = _thread_count(threads)
    # Both counts, explicitly: Numba's first parallel kernel resets the OpenMP thread count that torch
    # shares, so leaving either to its default gave torch two spinning threads on a busy core (10-40x slower).
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(n)

