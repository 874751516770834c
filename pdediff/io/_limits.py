"""Bounded memory on hostile headers: compare what a header claims with the file and with free memory.

Every reader calls these *before* the library allocates the array, so a tiny
file whose header claims gigabytes fails in milliseconds with one line instead
of allocating (or being killed).
"""

from __future__ import annotations

import errno
import gzip
import math
import os
import zlib
from pathlib import Path

from ._base import ScanIOError, _fmt_gib

#: Deflate cannot expand data by more than about 1032:1; a little slack for headers.
DEFLATE_MAX_RATIO = 1100
_DEFLATE_SLACK = 1 << 16


def _available_memory() -> int | None:
    """Bytes of memory this process can still get: ``MemAvailable`` (and the cgroup limit), or ``None``."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        avail = None
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            avail = None
    try:  # a container's cgroup (v2) limit can be far below the machine's memory
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            room = max(int(limit) - used, 0)
            avail = room if avail is None else min(avail, room)
    except (OSError, ValueError):
        pass
    return avail


def available_memory() -> int | None:
    """Bytes of memory this process can still allocate, or ``None`` where the system does not say.

    Linux's ``MemAvailable`` (else the free physical pages), lowered to the room left under the
    container's cgroup v2 limit (``memory.max`` minus ``memory.current``) when there is one.  The
    readers compare a header's claims with it before allocating; the command line compares a job's
    working set with it before computing.

    Returns
    -------
    int or None
        Bytes.

    Examples
    --------
    >>> from pdediff.io import available_memory
    >>> m = available_memory()
    >>> m is None or m >= 0
    True
    """
    return _available_memory()  # looked up at call time: tests replace the module's _available_memory


def nbytes_of(shape, itemsize: int) -> int:
    """Exact byte count of an array (Python integers: no overflow on absurd shapes)."""
    return math.prod(int(s) for s in shape) * int(itemsize)


def check_memory(p: Path, nbytes: int) -> None:
    """Refuse a read that would need more than the memory available now."""
    avail = _available_memory()
    if avail is not None and nbytes > avail:
        raise ScanIOError(f"{p}: needs {_fmt_gib(nbytes)}, more than the {_fmt_gib(avail)} of memory available")


def check_holds(p: Path, claimed: int, holds: int, *, what: str = "the file") -> None:
    """Refuse a header that claims more pixel bytes than the (uncompressed) data can hold."""
    if claimed > holds:
        raise ScanIOError(
            f"{p}: header claims {claimed} bytes of pixel data but {what} holds only {max(holds, 0)}: "
            "truncated or corrupt"
        )


def check_deflate_ratio(p: Path, claimed: int, compressed: int) -> None:
    """Refuse a deflate stream (PNG, zip member) that would have to expand beyond deflate's limit."""
    bound = compressed * DEFLATE_MAX_RATIO + _DEFLATE_SLACK
    if claimed > bound:
        raise ScanIOError(
            f"{p}: header claims {claimed} bytes of pixel data but {compressed} compressed bytes can hold at most "
            f"{bound}: truncated or corrupt"
        )


def gzip_length(p: Path, needed: int) -> int:
    """Decompressed length of a gzip file, counted in constant memory; stops once ``needed`` is reached.

    A truncated stream counts what could be decompressed before the cut.
    """
    total = 0
    chunk = 1 << 20
    with open(p, "rb") as raw:
        compressed = os.fstat(raw.fileno()).st_size
        check_deflate_ratio(p, needed, compressed)
        with gzip.GzipFile(fileobj=raw) as f:
            try:
                while total < needed:
                    block = f.read(min(chunk, needed - total))
                    if not block:
                        break
                    total += len(block)
            except (EOFError, zlib.error):
                pass
    return total


def chunk_shape(shape, chunks) -> tuple[int, ...]:
    """Chunk edges for ``shape``: ``chunks`` (one per axis, extra entries ignored) capped at the shape, or about
    64 MiB of float64 per chunk (cube-ish) when ``chunks`` is ``None``."""
    if chunks is None:
        side = max(1, round((64 * 2**20 / 8) ** (1.0 / max(len(shape), 1))))
        return tuple(min(int(s), side) for s in shape)
    return tuple(min(int(s), int(c)) for s, c in zip(shape, chunks))


_ZEROS = 1 << 20


def reserve_space(fd: int, size: int, p: Path) -> None:
    """Give the open file ``fd`` a length of ``size`` bytes with every block allocated on disk now.

    A file only extended (``truncate``) is sparse: its blocks are allocated when written, and writing
    through a memory map into a sparse file on a full file system ends the process with SIGBUS.  So the
    space is reserved first (``posix_fallocate``; where the file system does not support it, by writing
    zeros), and a full disk is an ``OSError`` (``ENOSPC``, naming ``p``) raised here, before any data.
    """
    start = os.fstat(fd).st_size
    if size <= start:
        return
    try:
        os.posix_fallocate(fd, 0, size)
        return
    except AttributeError:  # no posix_fallocate on this platform
        pass
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS):
            raise OSError(exc.errno, f"cannot reserve {size} bytes for the output ({exc.strerror})", str(p)) \
                from None
    os.lseek(fd, start, os.SEEK_SET)
    block = bytes(min(_ZEROS, size - start))
    try:
        left = size - start
        while left > 0:
            left -= os.write(fd, block[: min(len(block), left)])
    except OSError as exc:
        raise OSError(exc.errno, f"cannot reserve {size} bytes for the output ({exc.strerror})", str(p)) from None
