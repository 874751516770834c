"""Atomic, all-or-nothing file creation.

Every file pdediff writes (scans, figures, checkpoints) is first written to a
hidden temporary file beside its destination and renamed over it only once
complete, so an interrupted or failed write never leaves a partial file:

* the temporary names keep the destination's suffix in lower case (``.png``,
  ``.nii.gz`` for ``a.PNG``, ``a.Nii.Gz``), so writers that infer the format
  from the name work (nibabel and NumPy match suffixes case-sensitively: given
  ``x.Nii.Gz`` nibabel wrote ``x.nii.Gz`` and left ``x.Nii.Gz`` empty);
* an existing destination (or a link's target) that is neither a regular
  file nor, for folder outputs, a folder (a FIFO, a socket, a device) is
  refused with :class:`~pdediff.io.ScanIOError`: a rename would replace the
  device or pipe itself by a regular file;
* a new file gets the mode the process umask gives (``0644`` under ``022``),
  like any file ``open()`` creates; a replaced file keeps its mode;
* :func:`atomic_paths` writes several outputs (e.g. a result and its preview)
  all or none: the renames happen only after every output is complete, and a
  failure among them restores what was there before;
* with ``overwrite=False`` an output is committed without ever replacing
  anything (``renameat2(RENAME_NOREPLACE)``, else a hard link for files): if
  another process created the destination meanwhile, this write fails with
  :class:`~pdediff.io.DestinationExistsError` and leaves nothing behind (the
  command line's default without ``--force``, so of two racing writers one
  wins and the other says so);
* a destination that is a symbolic link is followed: the temporary file goes
  beside the link's target, which is replaced; the link itself stays;
* on any failure (a full disk included) every temporary file is removed;
* SIGINT, SIGTERM and SIGHUP are held off (``pthread_sigmask``) while a
  temporary file is created or the renames run, so a signal can only arrive
  while a temporary file is being written, and the cleanup then removes it
  (the command line turns SIGTERM/SIGHUP into an exception for that reason).
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import signal
import stat
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ._base import DestinationExistsError, ScanIOError

__all__ = ["atomic_path", "atomic_paths", "follow_link"]

_HELD = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


@contextmanager
def _signals_held() -> Iterator[None]:
    """Defer SIGINT/SIGTERM/SIGHUP for the duration of the block (delivered right after it)."""
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    except (AttributeError, OSError, ValueError):  # platform without pthread_sigmask
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_suffix(p: Path) -> str:
    """The suffix a temporary beside ``p`` ends in: ``p``'s own (``.nii.gz`` for the double one), in lower case."""
    name = p.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def special_kind(path: str | os.PathLike) -> str | None:
    """What the existing ``path`` (a link followed) is when it is neither a regular file nor a folder:
    ``"a FIFO (named pipe)"``, ``"a character device"``, ...; ``None`` otherwise (also when nothing is
    there, or a link dangles).  Such a destination is never replaced: renaming a file over it would
    destroy the pipe or device node."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    for test, what in ((stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a regular file"


def special_file_error(path: str | os.PathLike, what: str) -> ScanIOError:
    """The refusal of a destination that :func:`special_kind` describes as ``what``."""
    link = f" (a symbolic link to {os.path.realpath(path)})" if os.path.islink(path) else ""
    return ScanIOError(f"{path}{link} is {what}, not a regular file; pdediff writes regular files only and will "
                       "not replace it: choose another name")


def follow_link(path: str | os.PathLike) -> Path:
    """``path``, or the file a symbolic link at ``path`` points to (links followed to the end).

    Every writer of :mod:`pdediff.io` writes through a link this way: the link's target is replaced
    atomically and the link stays (a dangling link's target is created, if its folder exists).
    """
    return Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)


def _exists_error(p: Path) -> DestinationExistsError:
    return DestinationExistsError(f"{p} exists (created while this output was being written?); not replaced: "
                                  "pass overwrite=True to replace it", path=p, raced=True)


_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _renameat2(src: Path, dst: Path) -> bool:
    """``rename(src, dst)`` failing if ``dst`` exists, atomically (Linux ``renameat2``); ``False`` where the
    system or file system does not offer it."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        raise _exists_error(dst)
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def _rename_noreplace(src: Path, dst: Path, is_dir: bool) -> None:
    """Move ``src`` to ``dst`` without replacing anything there (:class:`DestinationExistsError` if it exists)."""
    if _renameat2(src, dst):
        return
    if not is_dir:
        try:
            os.link(src, dst)  # fails with EEXIST, atomically, if dst exists
        except FileExistsError:
            raise _exists_error(dst) from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
                raise
        else:
            os.unlink(src)
            return
    # last resort (no renameat2, no hard links): rename refuses a file or a non-empty folder at dst
    if os.path.lexists(dst):
        raise _exists_error(dst)
    os.rename(src, dst)


@contextmanager
def atomic_paths(paths: Sequence[str | os.PathLike], *, directories: Sequence[bool] | None = None,
                 overwrite: bool = True) -> Iterator[list[Path]]:
    """Yield temporary paths beside ``paths``; on success move all of them into place, else none.

    Parameters
    ----------
    paths : sequence of path-like
        Destinations; their folders must exist.  A symbolic link is followed
        (:func:`follow_link`): its target is written.
    directories : sequence of bool, optional
        Which destinations are folders (e.g. a DICOM series): their temporary
        path is an empty folder, and a folder already at the destination is
        replaced as a whole.
    overwrite : bool
        Replace existing destinations (the default).  With ``False`` a
        destination that exists is refused at once, and the outputs are
        committed without replacing anything, so one created by another
        process while these were written makes this call fail.

    Raises
    ------
    DestinationExistsError
        ``overwrite=False`` and a destination exists, or appeared before the
        commit (the outputs already committed are removed again).

    The temporary files are removed on any exception, including
    ``KeyboardInterrupt``.  If moving one output into place fails, the
    outputs already moved are rolled back (new ones removed, replaced ones
    restored), so the destinations are left as they were.
    """
    ps = [follow_link(p) for p in paths]
    dirs = list(directories) if directories is not None else [False] * len(ps)
    if len(dirs) != len(ps):
        raise ValueError("directories must have one entry per path")
    for given in paths:
        what = special_kind(given)
        if what is not None:
            raise special_file_error(given, what)
    if not overwrite:
        for p in ps:
            if os.path.lexists(p):
                raise DestinationExistsError(f"{p} exists; pass overwrite=True to replace it", path=p)
    tmps: list[Path] = []
    try:
        with _signals_held():
            for p, is_dir in zip(ps, dirs):
                if is_dir:
                    tmps.append(Path(tempfile.mkdtemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)))
                else:
                    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=f".tmp{_temp_suffix(p)}", dir=p.parent)
                    os.close(fd)
                    tmps.append(Path(tmp))
        yield tmps
        with _signals_held():
            _commit(ps, tmps, dirs, overwrite)
    except BaseException:
        with _signals_held():
            for t in tmps:
                _remove(t)
        raise


def _final_mode(dest: Path, is_dir: bool) -> int:
    try:
        return stat.S_IMODE(os.stat(dest).st_mode)  # a replaced file keeps its mode
    except OSError:
        return (0o777 if is_dir else 0o666) & ~_umask()


def _commit(ps: list[Path], tmps: list[Path], dirs: list[bool], overwrite: bool = True) -> None:
    """Rename every temporary into place; undo the renames already done if one fails."""
    for p, t, is_dir in zip(ps, tmps, dirs):
        os.chmod(t, _final_mode(p, is_dir))
    done: list[tuple[Path, Path | None]] = []  # (destination, backup of what it replaced)
    try:
        for p, t, is_dir in zip(ps, tmps, dirs):
            if not overwrite:
                _rename_noreplace(t, p, is_dir)
                done.append((p, None))
                continue
            backup = None
            if os.path.lexists(p):
                backup = p.parent / f".{p.name}.{uuid.uuid4().hex[:12]}.old"
                if is_dir:
                    os.rename(p, backup)
                else:
                    try:
                        os.link(p, backup)  # the old file stays reachable until every rename succeeded
                    except OSError:
                        backup = None
            try:
                os.replace(t, p)
            except BaseException:
                if backup is not None:
                    os.replace(backup, p) if is_dir else _remove(backup)
                raise
            done.append((p, backup))
    except BaseException:
        for p, backup in reversed(done):
            _remove(p)
            if backup is not None:
                os.replace(backup, p)
        raise
    for _, backup in done:
        if backup is not None:
            _remove(backup)


def _remove(p: Path) -> None:
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif os.path.lexists(p):
            os.unlink(p)
    except OSError:
        pass


@contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it over ``path`` only if the block succeeds.

    One-output form of :func:`atomic_paths` (same guarantees: no partial file,
    umask-respecting mode for new files, mode kept for replaced ones, links
    followed, nothing replaced with ``overwrite=False``).

    Examples
    --------
    >>> import os, tempfile
    >>> from pdediff.io import atomic_path
    >>> d = tempfile.mkdtemp()
    >>> with atomic_path(os.path.join(d, "a.txt")) as tmp:
    ...     _ = tmp.write_text("complete")
    >>> sorted(os.listdir(d))
    ['a.txt']
    """
    with atomic_paths([path], directories=[directory], overwrite=overwrite) as (tmp,):
        yield tmp
