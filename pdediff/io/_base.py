"""The :class:`Scan` record, :class:`ScanIOError` and small helpers shared by the format modules."""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

__all__ = ["DestinationExistsError", "Scan", "ScanIOError"]


class ScanIOError(OSError):
    """A scan could not be read or written (missing, unreadable, corrupt, unsupported, too large)."""


class DestinationExistsError(ScanIOError, FileExistsError):
    """An output was not written because its destination exists (or appeared while it was being written)
    and replacing was not asked for (``overwrite=False``; the command line's default, without ``--force``).

    Attributes: ``path`` (the destination) and ``raced`` (``True`` when it appeared while this output was
    being written, i.e. another writer committed first).
    """

    def __init__(self, message: str, *, path=None, raced: bool = False):
        super().__init__(message)
        self.path = path
        self.raced = raced


@dataclass
class Scan:
    """An image or volume with what its file said about it.

    Attributes
    ----------
    data : ndarray
        The array as read, in the file's own index order: NIfTI/MGH/Analyze
        ``(x, y, z)`` (nibabel's ``(i, j, k)``); DICOM ``(slice, row, col)`` =
        ``(z, y, x)``; images ``(rows, cols[, channels])``; TIFF stacks
        ``(pages, rows, cols[, channels])``.  Scaled files (NIfTI
        ``scl_slope``/``scl_inter``, DICOM ``RescaleSlope``/``RescaleIntercept``)
        give float data with the scaling applied.  The byte order may be
        non-native (e.g. a big-endian NIfTI).
    spacing : tuple of float or None
        Voxel size per *spatial* axis, in the order of ``data``'s axes, when
        the file records it (millimetres where the file states a length unit).
    channel_axis : int or None
        ``-1`` for colour or grey+alpha images, else ``None``.
    format : str
        One of the values of :data:`FORMATS` (``npy``, ``npz``, ``png``,
        ``jpeg``, ``tiff``, ``nifti``, ``mgh``, ``analyze``, ``dicom``).
    meta : dict
        Format-specific data needed to write a faithful copy: ``affine`` (4×4,
        from ``data``'s indices to RAS+ millimetres, for NIfTI/MGH/Analyze and
        DICOM), ``index_order`` (``"xyz"`` or ``"zyx"``), ``header`` (nibabel),
        ``datasets``/``positions``/``orientation`` (DICOM), ``unit``.
    stored_dtype : numpy.dtype or None
        The pixel type on disk (e.g. ``int16`` for a scaled NIfTI or a CT
        series whose ``data`` is float).  Set by :func:`read_scan`.
    scaled : bool
        Whether a slope/intercept other than 1/0 was applied on reading.
    alpha : bool
        Whether the last channel is an alpha (opacity) channel: grey+alpha
        ``(H, W, 2)`` or RGBA ``(H, W, 4)``.
    notes : list of str
        What the reader had to assume (e.g. a DICOM series without
        ``ImagePositionPatient``, spaced by its ``SliceThickness``); the
        command line prints each as a note.
    """

    data: np.ndarray
    spacing: tuple[float, ...] | None = None
    channel_axis: int | None = None
    format: str = "npy"
    meta: dict = field(default_factory=dict)
    stored_dtype: np.dtype | None = None
    scaled: bool = False
    alpha: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def spatial_ndim(self) -> int:
        return self.data.ndim - (self.channel_axis is not None)


class _BoundedReader(io.BufferedReader):
    """A binary file whose ``read(n)`` asks for at most what is left.

    ``BufferedReader.read(n)`` allocates ``n`` bytes up front; libraries that
    trust a length field from the file (a DICOM element, a PNG chunk) would
    otherwise allocate gigabytes for a lying header in a tiny file.
    """

    def __init__(self, path):
        super().__init__(io.FileIO(os.fspath(path), "r"))
        self._size = os.fstat(self.fileno()).st_size

    def read(self, n=-1):
        if n is None or n < 0:
            return super().read()
        return super().read(max(0, min(n, self._size - self.tell())))


def _require(module: str, extra: str = "io"):
    """Import ``module`` or raise :class:`ScanIOError` naming the extra that installs it."""
    try:
        return __import__(module)
    except ImportError:
        raise ScanIOError(
            f"reading/writing this format needs the '{module}' package: pip install \"pdediff[{extra}]\""
        ) from None


def _one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type name."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0].endswith(":") and len(lines) > 1:  # "...raised by all available plugins:" + the reason
        return f"{lines[0]} {lines[1]}"
    return lines[0]


_LIBRARY_LOGGERS = ("tifffile", "pydicom", "nibabel", "PIL", "imageio")


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the libraries' warnings and log messages about odd files (a failure is one ScanIOError line)."""
    loggers = [logging.getLogger(name) for name in _LIBRARY_LOGGERS]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def _native(a: np.ndarray) -> np.ndarray:
    """``a`` in native byte order (writers hand arrays to libraries that may not handle ``>f4``)."""
    a = np.asarray(a)
    if a.dtype.byteorder not in ("=", "|") and not a.dtype.isnative:
        return a.astype(a.dtype.newbyteorder("="))
    return a


def _fmt_gib(nbytes: float) -> str:
    gib = nbytes / 2**30
    return f"{gib:.3g} GiB"
