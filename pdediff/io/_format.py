"""The format registry: one :class:`Format` record per file format, found in :mod:`pdediff.io.formats`.

:func:`~pdediff.io.read_scan`, :func:`~pdediff.io.write_scan`, :func:`~pdediff.io.check_writable`,
:func:`~pdediff.io.open_chunked` and :func:`~pdediff.io.write_chunked` look the format up here
(by name, or by the path's suffix) and call what its record holds; none of them names a format.

Adding a format is one new module in ``pdediff/io/formats/`` that defines ``FORMATS``, a tuple of
:class:`Format` records: the registry imports every module of that package the first time a
format is looked up.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._base import Scan

__all__ = ["Format", "WriteRequest", "get_format", "registered_formats"]


@dataclass(frozen=True)
class WriteRequest:
    """What :func:`~pdediff.io.check_writable` hands a format's ``check``: the array to be written, described.

    Attributes
    ----------
    path : str
        The destination as given (a trailing ``/`` kept).
    where : str
        The name to put in messages (the destination's last component).
    shape : tuple of int
        The array's shape.
    dtype : numpy.dtype
        Its dtype.
    channel_axis : int or None
        ``-1`` (the last axis) for colour/alpha channels, else ``None``.
    stored_dtype : numpy.dtype or None
        The on-disk type asked for (formats with ``scaled=True`` only).
    """

    path: str
    where: str
    shape: tuple[int, ...]
    dtype: np.dtype
    channel_axis: int | None
    stored_dtype: np.dtype | None

    @property
    def channels(self) -> int:
        """Length of the channel axis (0 without one)."""
        return self.shape[-1] if self.channel_axis is not None and self.shape else 0

    @property
    def spatial(self) -> int:
        """Number of spatial axes."""
        return len(self.shape) - (self.channel_axis is not None)


@dataclass(frozen=True)
class Format:
    """One file format: its names and the functions that read, check and write it.

    Attributes
    ----------
    name : str
        The short name (:attr:`Scan.format <pdediff.io.Scan.format>`, the ``format=`` arguments).
    label : str
        The name in messages (``"NIfTI"``).
    suffixes : tuple of str
        Lower-case suffixes that select this format (``(".nii", ".nii.gz")``); the longest match wins.
    read : callable, optional
        ``read(path) -> Scan``; absent for formats pdediff cannot read.
    write : callable, optional
        ``write(path, data, like, spacing, channel_axis[, stored_dtype=...])`` into a fresh temporary
        ``path`` (a file, or an empty folder for directory formats); absent for read-only formats.
    check : callable, optional
        ``check(request: WriteRequest) -> None``: raise ``ValueError`` (one line naming alternatives) for
        what the format cannot hold unchanged.  The checks every format shares (Python objects, numeric
        pixels, channels last, ``stored_dtype`` only where ``scaled``) run before it.
    scaled : bool
        The writer takes ``stored_dtype``: an integer type on disk with a slope/intercept, so float
        data or a wider integer type keep their values.
    any_array : bool
        Any dtype kind and any channel axis (NumPy's own files).
    directory : bool or callable
        Whether writing makes a folder; a callable decides from the destination path (``str``).
    spacing_field : str
        Where a file of this format keeps its voxel spacing (named when the spacing it holds is not
        positive and finite, e.g. ``"pixdim"``; ``read_scan`` then ignores it with a note).
    replace_problem : callable, optional
        ``replace_problem(folder) -> str | None``: why an existing folder may not be replaced by this
        (directory) format's output, ``None`` when it may.
    sniff : callable, optional
        ``sniff(file) -> bool``: whether an existing file with no known suffix is in this format.
    folders : bool
        An existing folder, or a path ending in ``/``, without a known suffix is in this format.
    open_chunked : callable, optional
        ``open_chunked(path, chunks) -> (dask array, Scan)``, reading nothing but headers; ``chunks`` is
        a tuple of chunk edges (per axis, extra entries ignored) or ``None``.
    write_chunked : callable, optional
        ``write_chunked(tmp, data, like, spacing, channel_axis, compute_kwargs, dest)``: compute the Dask
        array ``data`` chunk by chunk into the fresh temporary ``tmp`` (``dest`` for messages).
    """

    name: str
    label: str
    suffixes: tuple[str, ...] = ()
    read: Callable[[Path], Scan] | None = None
    write: Callable[..., None] | None = None
    check: Callable[[WriteRequest], None] | None = None
    scaled: bool = False
    any_array: bool = False
    directory: bool | Callable[[str], bool] = False
    replace_problem: Callable[[Path], str | None] | None = None
    spacing_field: str = "spacing"
    sniff: Callable[[Path], bool] | None = None
    folders: bool = False
    open_chunked: Callable[..., tuple[Any, Scan]] | None = None
    write_chunked: Callable[..., None] | None = None

    def is_directory(self, path: str) -> bool:
        """Whether writing this format to ``path`` makes a folder."""
        return self.directory(path) if callable(self.directory) else bool(self.directory)


_REGISTRY: dict[str, Format] = {}
_LOCK = threading.Lock()
_LOADED = False


def _register(fmt: Format) -> None:
    if fmt.name in _REGISTRY and _REGISTRY[fmt.name] is not fmt:
        raise RuntimeError(f"two formats are named {fmt.name!r}")
    for s in fmt.suffixes:
        if s != s.lower() or not s.startswith("."):
            raise RuntimeError(f"format {fmt.name!r}: suffix {s!r} must be lower case and start with '.'")
    _REGISTRY[fmt.name] = fmt


def _registry() -> dict[str, Format]:
    """Every format, importing the modules of :mod:`pdediff.io.formats` on first use."""
    global _LOADED
    if not _LOADED:
        with _LOCK:
            if not _LOADED:
                from . import formats

                for info in sorted(pkgutil.iter_modules(formats.__path__), key=lambda m: m.name):
                    module = importlib.import_module(f"{formats.__name__}.{info.name}")
                    for fmt in getattr(module, "FORMATS", ()):
                        _register(fmt)
                _LOADED = True
    return _REGISTRY


def registered_formats() -> tuple[Format, ...]:
    """Every registered :class:`Format`, in registration order.

    Examples
    --------
    >>> from pdediff.io import registered_formats
    >>> "nifti" in [f.name for f in registered_formats()]
    True
    """
    return tuple(_registry().values())


def get_format(name: str) -> Format:
    """The :class:`Format` called ``name``; ``ValueError`` naming the known ones otherwise.

    Examples
    --------
    >>> from pdediff.io import get_format
    >>> get_format("nifti").suffixes, get_format("nifti").scaled
    (('.nii', '.nii.gz'), True)
    """
    reg = _registry()
    try:
        return reg[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown format {name!r}; known: {', '.join(reg)}") from None


def suffix_table() -> dict[str, str]:
    """``{suffix: format name}`` over every format, in registration order."""
    return {s: f.name for f in _registry().values() for s in f.suffixes}
