"""The front of :mod:`pdediff.io`: format look-up, checks, reading and writing, each a look-up in the
format registry (:mod:`pdediff.io._format`; the formats themselves live in :mod:`pdediff.io.formats`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import DestinationExistsError, atomic_path, follow_link, special_file_error, special_kind
from ..errors import ParameterError
from ._base import Scan, ScanIOError, _native, _one_line
from ._format import Format, WriteRequest, get_format, registered_formats, suffix_table

__all__ = [
    "FORMATS",
    "Scan",
    "ScanIOError",
    "cast_like",
    "check_writable",
    "format_of",
    "is_directory_format",
    "read_scan",
    "replace_problem",
    "write_scan",
]

#: ``{suffix: format name}`` for every registered format
FORMATS = suffix_table()
_BY_LENGTH = sorted(FORMATS, key=len, reverse=True)  # a longer suffix wins: .nii.gz over .gz


def _no_file(text: str) -> bool:
    """Whether ``text`` names no file to write: empty, ``.``, ``..`` or a root."""
    return not text.strip() or Path(text).name in ("", "..")


def _suffix_help() -> str:
    return ", ".join(FORMATS)


def format_of(path: str | os.PathLike) -> str:
    """The format name for ``path``; ``ValueError`` naming the supported suffixes otherwise.

    A known suffix decides (:data:`FORMATS`, the longest match, even on a folder).  Without one, an
    existing folder or a path ending in ``/`` is a DICOM series folder, and an existing file is DICOM
    if it has the ``DICM`` preamble.  A path that does not exist and has no known suffix is refused:
    it says nothing about the format (pass ``format=`` to the writers, or end a DICOM series folder
    with ``/``).
    """
    text = os.fspath(path)
    if not text:
        raise ValueError("'' names no file (an empty path); give a file name such as out.nii")
    p = Path(text)
    name = p.name.lower()
    folder_like = text.endswith(("/", os.sep))
    formats = registered_formats()
    if not folder_like:
        for suffix in _BY_LENGTH:
            if name.endswith(suffix):
                return FORMATS[suffix]
    if p.is_dir() or folder_like:
        for f in formats:
            if f.folders:
                return f.name
    try:
        if p.is_file():
            for f in formats:
                if f.sniff is not None and f.sniff(p):
                    return f.name
    except OSError:
        pass
    if not p.suffix and not p.exists():
        raise ValueError(f"{p.name or text!r} has no recognised suffix ({_suffix_help()}); add one, or end the "
                         "path with '/' for a DICOM series folder")
    raise ValueError(f"unsupported file type {p.name!r}; supported suffixes: {_suffix_help()}, or a folder "
                     "(ending in '/') for a DICOM series")


def _format(path, format: str | None) -> Format:
    return get_format(format) if format is not None else get_format(format_of(path))


def is_directory_format(path: str | os.PathLike, format: str | None = None) -> bool:
    """Whether writing to ``path`` makes a folder (a DICOM series: one file per slice; a Zarr store) rather
    than a file.

    True for Zarr stores and for DICOM outputs that are an existing folder, end in ``/`` or (with
    ``format="dicom"``) have no ``.dcm`` suffix; a ``.dcm`` output is one file.  ``format`` overrides
    :func:`format_of`.
    """
    return _format(path, format).is_directory(os.fspath(path))


def replace_problem(path: str | os.PathLike, format: str | None = None) -> str | None:
    """Why the existing ``path`` may not be replaced by a ``format`` output (``None`` if it may).

    pdediff replaces a folder only with its own kind: a DICOM series only a folder holding nothing but
    DICOM files, a Zarr store only a Zarr store (or an empty folder).  Nothing that is neither a regular
    file nor a folder (a FIFO, a device, a socket; a symbolic link is followed) is ever replaced.
    ``None`` also when nothing is at ``path``, or it is a file and the format writes files.

    Examples
    --------
    >>> import os, tempfile
    >>> from pdediff.io import replace_problem
    >>> d = tempfile.mkdtemp()
    >>> open(os.path.join(d, "thesis.txt"), "w").close()
    >>> replace_problem(d, "dicom")
    "it holds 'thesis.txt', which is not a DICOM file"
    """
    f = _format(path, format)
    what = special_kind(path)
    if what is not None:
        return f"it is {what}, not a regular file"
    p = follow_link(path)
    if f.replace_problem is None or not p.is_dir() or not f.is_directory(os.fspath(path)):
        return None
    return f.replace_problem(p)


# ----------------------------------------------------------------------------- checks
def check_writable(
    path: str | os.PathLike,
    shape: tuple[int, ...],
    dtype: Any,
    channel_axis: int | None = None,
    *,
    stored_dtype: Any = None,
    format: str | None = None,
) -> None:
    """Refuse (``ValueError``, one line naming alternatives) what ``path``'s format cannot hold unchanged.

    Needs only the array's shape, dtype and channel axis, so it can run
    before any computation.  :func:`write_scan` calls it first.

    Parameters
    ----------
    path : str or path-like
        The destination; its format follows :func:`format_of` (a path without a known suffix is
        refused unless ``format`` is given or it ends in ``/``).  An empty path, ``.``, ``..`` or a
        root names nothing to write and is refused.
    shape : tuple of int
        Shape of the array to be written.
    dtype : dtype-like
        Its dtype.
    channel_axis : int or None
        Axis of colour/alpha channels (must be the last), or ``None``.
    stored_dtype : dtype-like, optional
        On-disk integer type for the formats with a slope/intercept (``Format.scaled``: NIfTI, DICOM).
    format : str, optional
        The format name, when ``path`` (e.g. a temporary file) does not tell it.

    Raises
    ------
    ValueError
        If the format cannot hold this shape/dtype as it is, or ``path`` names no file.
    """
    text = os.fspath(path)
    if _no_file(text):
        raise ValueError(f"{text!r} names no file to write (empty, '.', '..' or a root); give a file name "
                         "such as out.nii")
    f = _format(path, format)
    shape = tuple(int(s) for s in shape)
    dtype = np.dtype(dtype)
    ndim = len(shape)
    where = Path(text).name or text
    if channel_axis is not None and channel_axis not in (-1, ndim - 1) and not f.any_array:
        raise ValueError(f"{f.name} output keeps channels on the last axis; got channel_axis={channel_axis} for "
                         f"shape {shape} (move them last with numpy.moveaxis)")
    if dtype.hasobject:
        raise ValueError(f"{where}: cannot store Python objects (they would need pickling); convert to numbers")
    if not f.any_array and dtype.kind not in "biufc":
        raise ValueError(f"{where}: cannot store {dtype} pixels in {f.name}; convert to a numeric dtype or write "
                         ".npy")
    sd = None
    if stored_dtype is not None:
        sd = np.dtype(stored_dtype)
        if not f.scaled and sd != dtype:
            scaled = [g for g in registered_formats() if g.scaled]
            raise ValueError(f"{where}: stored_dtype applies to {' and '.join(g.label for g in scaled)} only "
                             f"(formats with a slope/intercept); cast the data to {sd} instead "
                             "(pdediff.io.cast_like)")
    request = WriteRequest(text, where, shape, dtype, None if channel_axis is None else -1, sd)
    if f.check is not None:
        f.check(request)
    if f.write is None:
        raise ValueError(f"{where}: writing {f.label} is not supported")


# ----------------------------------------------------------------------------- read
def read_scan(path: str | os.PathLike) -> Scan:
    """Read an image or volume; raises :class:`ScanIOError` with one clear sentence on failure.

    Before allocating, every reader compares the size the header claims with
    the file (uncompressed data) and with the memory available, so a small
    corrupt or hostile file fails quickly with one line.

    Parameters
    ----------
    path : str or path-like
        A file of one of the :data:`FORMATS`, or a folder holding one DICOM
        series.

    Returns
    -------
    Scan
        ``data`` in the file's index order (DICOM ``(z, y, x)``, NIfTI
        ``(x, y, z)``) with slope/intercept applied, ``spacing`` where the file
        records it, ``channel_axis``/``alpha`` for colour images,
        ``stored_dtype``/``scaled`` and format-specific ``meta``.

    Raises
    ------
    ScanIOError
        Missing, empty, unreadable, corrupt, truncated, unsupported or too large.
    ValueError
        Unsupported suffix.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from pdediff.io import read_scan, write_scan
    >>> d = tempfile.mkdtemp()
    >>> write_scan(os.path.join(d, "a.npz"), np.ones((4, 5)), spacing=(2.0, 1.0))
    >>> scan = read_scan(os.path.join(d, "a.npz"))
    >>> scan.data.shape, scan.spacing
    ((4, 5), (2.0, 1.0))
    """
    p = Path(path)
    try:
        f = get_format(format_of(path))
    except ValueError:
        if not p.suffix and not os.path.lexists(p):
            raise ScanIOError(f"{p}: no such file or folder") from None
        raise
    fmt = f.name
    if not p.exists():
        raise ScanIOError(f"{p}: no such file or folder" if f.folders else f"{p}: no such file")
    check_readable_kind(p, f)
    if p.is_file() and p.stat().st_size == 0:
        raise ScanIOError(f"{p}: file is empty")
    if f.read is None:
        raise ScanIOError(f"{p}: reading {f.label} is not supported")
    try:
        scan = f.read(p)
    except ScanIOError as exc:
        if "\n" in str(exc):
            raise ScanIOError(" ".join(str(exc).split())) from None
        raise
    except MemoryError:
        raise ScanIOError(f"{p}: not enough memory to read it") from None
    except RecursionError:
        raise ScanIOError(f"{p}: cannot read as {fmt} (nested too deeply: corrupt)") from None
    except Exception as exc:  # libraries raise many types on corrupt input: report one line
        raise ScanIOError(f"{p}: cannot read as {fmt} ({_one_line(exc)})") from exc
    scan.format = fmt
    _check_scan_fields(p, scan, f)
    stored = np.dtype(scan.stored_dtype if scan.stored_dtype is not None else scan.data.dtype)
    scan.stored_dtype = stored.newbyteorder("=") if stored.byteorder not in ("=", "|") else stored
    if scan.data.size == 0:
        raise ScanIOError(f"{p}: contains an empty array of shape {scan.data.shape}")
    return scan


def check_readable_kind(p: Path, f: Format) -> None:
    """Refuse an input that is neither a regular file nor (for folder formats) a folder, before opening it.

    Opening a FIFO (named pipe) blocks until a writer appears, so a pipe given as an image would hang the
    reader forever; character devices and sockets never hold an image either.  Raises :class:`ScanIOError`.
    """
    what = special_kind(p)
    if what is not None:
        allowed = "regular files or folders" if f.folders or f.directory else "regular files"
        link = f" (a symbolic link to {os.path.realpath(p)})" if os.path.islink(p) else ""
        raise ScanIOError(f"{p}{link} is {what}, not a regular file; pdediff reads {f.label} from {allowed} only "
                          "(copy the data to a file first)")
    if not (f.folders or f.directory) and p.is_dir():  # Zarr stores and DICOM series are folders
        raise ScanIOError(f"{p} is a folder, not a {f.label} file")


def _check_scan_fields(p: Path, scan: Scan, f: Format) -> None:
    """What a file says about its own layout, checked as the flags that say the same are.

    A ``channel_axis`` out of range for the array refuses the file (:class:`ScanIOError` naming it).  A voxel
    spacing that is not positive and finite (``pixdim`` 0, a NaN in an ``.npz``'s ``spacing``, an ImageJ
    ``spacing=0``), or with more or fewer values than the image has spatial axes, is ignored, as a DICOM
    series without one: ``scan.spacing`` becomes ``None``, ``scan.meta["ignored_spacing"]`` keeps the values,
    and a note, naming the file and its field, says so (the command line prints it and assumes spacing 1).
    The writers never copy such a field to an output: it records the spacing passed to them (the one used),
    else none (1 where the format must hold one: NIfTI ``pixdim``, DICOM ``PixelSpacing``).
    """
    ndim = len(scan.data.shape)
    ch = scan.channel_axis
    if ch is not None and not -ndim <= ch < ndim:
        raise ScanIOError(f"{p}: its channel_axis {ch} is out of range for its image of shape "
                          f"{tuple(scan.data.shape)} (allowed: {-ndim}..{ndim - 1})")
    sp = scan.spacing
    spatial = ndim - (ch is not None)
    if sp is not None and not all(np.isfinite(v) and v > 0 for v in sp):
        values = ", ".join(f"{v:g}" for v in sp)
        scan.spacing = None
        scan.meta["ignored_spacing"] = tuple(float(v) for v in sp)
        scan.notes.append(f"{p.name}: the voxel spacing ({values}) from its {f.spacing_field} is not positive and "
                          "finite: ignored, so the spacing is unknown (not set; the command line assumes 1)")
    elif sp is not None and len(sp) != spatial:
        values = ", ".join(f"{v:g}" for v in sp)
        scan.spacing = None
        scan.meta["ignored_spacing"] = tuple(float(v) for v in sp)
        n_values = f"{len(sp)} value{'s' if len(sp) != 1 else ''}"
        axes = f"{spatial} spatial ax{'es' if spatial != 1 else 'is'}"
        scan.notes.append(f"{p.name}: the voxel spacing ({values}) from its {f.spacing_field} has {n_values} for "
                          f"{axes} (shape {tuple(scan.data.shape)}): ignored, so the spacing is unknown (not set; "
                          "the command line assumes 1)")


# ---------------------------------------------------------------------------- write
def check_spacing(spacing, shape: tuple[int, ...], channel_axis: int | None) -> tuple[float, ...] | None:
    """``spacing`` as a tuple of floats, or :class:`~pdediff.errors.ParameterError` naming ``spacing``: it must
    hold one positive finite number per spatial axis of an array of ``shape`` (channels excluded); a single
    number stands for every axis.

    The writers call it before writing anything, for every format (also those that record no spacing: .npy,
    PNG, JPEG), so a wrong spacing is never written, truncated or dropped without a word."""
    if spacing is None:
        return None
    spatial = len(shape) - (channel_axis is not None)
    try:
        arr = np.asarray(spacing, dtype=object)
        items = np.full(spatial, arr.item()) if arr.ndim == 0 else arr.ravel()
        if any(isinstance(v, (bool, np.bool_)) for v in items):  # True would be written as a spacing of 1
            raise TypeError
        values = tuple(float(v) for v in items)
        nested = arr.ndim > 1
    except (TypeError, ValueError):
        raise ParameterError(f"{{spacing}} must be {spatial} positive finite numbers (one per spatial axis); got "
                             f"{spacing!r}", param="spacing") from None
    if nested or len(values) != spatial:
        raise ParameterError(f"{{spacing}} must hold {spatial} values, one per spatial axis of the shape "
                             f"{tuple(shape)}{' (channels last)' if channel_axis is not None else ''}; got "
                             f"{len(values)} ({', '.join(f'{v:g}' for v in values)})", param="spacing")
    if not all(np.isfinite(v) and v > 0 for v in values):
        raise ParameterError(f"{{spacing}} must be positive finite numbers; got "
                             f"({', '.join(f'{v:g}' for v in values)})", param="spacing")
    # NIfTI's pixdim and MGH's zooms are float32: beyond its normal range a spacing would be written as inf or 0
    lo, hi = float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)
    if not all(lo <= v <= hi for v in values):
        raise ParameterError(f"{{spacing}} must lie within {lo:.3g}..{hi:.3g} (float32, what scan headers store) to "
                             f"be written; got ({', '.join(f'{v:g}' for v in values)})", param="spacing")
    return values


def cast_like(data: np.ndarray, dtype: Any, *, clip: bool = False) -> np.ndarray:
    """Cast to ``dtype``; integer targets are rounded, never silently clipped.

    Parameters
    ----------
    data : ndarray
        Values to cast (NaN/inf cannot become integers and are refused).
    dtype : dtype-like
        Target type.
    clip : bool
        For integer targets, clip values outside the type's range to its limits
        instead of raising.  Values that float64 rounds to a 64-bit type's
        limit (``2**64 - 1`` is ``2**64`` in float64) are in range and become
        exactly that limit; integer data that fit ``dtype`` are cast exactly.

    Raises
    ------
    ValueError
        An integer target cannot hold a value (and ``clip`` is false), or the
        data hold NaN/inf.

    Examples
    --------
    >>> import numpy as np
    >>> from pdediff.io import cast_like
    >>> cast_like(np.array([0.4, 254.6]), np.uint8)
    array([  0, 255], dtype=uint8)
    >>> cast_like(np.array([-3.0, 300.0]), np.uint8, clip=True)
    array([  0, 255], dtype=uint8)
    """
    dtype = np.dtype(dtype)
    data = np.asarray(data)
    if dtype.kind not in "iu":
        return data.astype(dtype)
    if data.dtype.kind in "biu" and np.can_cast(data.dtype, dtype):
        return data.astype(dtype)  # exact: no detour through float64 (which rounds 64-bit integers)
    info = np.iinfo(dtype)
    rounded = np.rint(data.astype(np.float64, copy=False))
    if rounded.size and not np.isfinite(rounded).all():
        raise ValueError(f"cannot cast NaN or infinite values to {dtype}")
    # float64 rounds the 64-bit limits (uint64's 2**64 - 1 becomes 2**64): compare with the limits as float64
    # sees them, so a value at the limit is in range, and saturate exactly at the limit (never wrap)
    if rounded.size and not clip and (rounded.min() < float(info.min) or rounded.max() > float(info.max)):
        lo, hi = float(rounded.min()) + 0.0, float(rounded.max()) + 0.0  # never "-0"
        span = f"are constant {lo:.6g}" if lo == hi else f"span {lo:.6g}..{hi:.6g}"
        raise ValueError(f"values {span}, outside {dtype}'s range "
                         f"{info.min}..{info.max}; pass clip=True to clip, or choose a wider dtype")
    return saturate(rounded, dtype)


def saturate(rounded: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Whole finite floats as the integer ``dtype``, values at or beyond its limits (as float64 sees them)
    becoming exactly those limits: ``float(2**64 - 1)`` is ``2**64``, which ``astype`` would wrap."""
    info = np.iinfo(dtype)
    big, small = rounded >= float(info.max), rounded <= float(info.min)
    out = np.where(big | small, 0, rounded).astype(dtype)
    out[big] = info.max
    out[small] = info.min
    return out


def write_scan(
    path: str | os.PathLike,
    data: np.ndarray,
    *,
    like: Scan | None = None,
    spacing: tuple[float, ...] | None = None,
    channel_axis: int | None = None,
    stored_dtype: Any = None,
    format: str | None = None,
    overwrite: bool = True,
) -> None:
    """Write ``data`` atomically (temporary file or folder beside ``path``, then rename).

    :func:`check_writable` runs first: a shape or dtype the format cannot hold
    raises ``ValueError`` (nothing is silently converted).  ``data`` is
    written with its own dtype (any byte order), except that NIfTI and DICOM
    store ``stored_dtype`` with a slope/intercept chosen so that no value is
    clipped (DICOM defaults to the input's stored integer type, else int16).

    Parameters
    ----------
    path : str or path-like
        Destination; its suffix names the format (:func:`format_of`), or
        ``format`` does.  DICOM: a ``.dcm`` file for one 2-D image; a series
        folder (one file per slice) for an existing folder, a path ending in
        ``/``, or a path without a suffix with ``format="dicom"``.  An
        existing folder is replaced only by its own kind (a folder holding
        nothing but DICOM files by a series, a Zarr store by a Zarr store).
        A symbolic link is followed: its target is replaced atomically and
        the link stays.
    data : ndarray
        The image or volume, in ``like``'s index order when ``like`` is given.
    like : Scan, optional
        The scan ``data`` came from: its geometry (NIfTI affine and header,
        DICOM headers and positions) is kept; DICOM ↔ NIfTI transposes
        between ``(z, y, x)`` and ``(x, y, z)`` with the affine to match.
    spacing : tuple of float, optional
        Voxel size per spatial axis (positive and finite, one per axis of
        ``data`` less the channel axis, in ``data``'s axis order).  The output
        records it when given: NIfTI/MGH zooms with ``like``'s affine columns
        scaled to it (orientation and origin kept), DICOM ``PixelSpacing``,
        slice positions along the slice normal and ``SliceThickness``/
        ``SpacingBetweenSlices``, TIFF resolution/ImageJ spacing, ``.npz``/
        Zarr attributes.  ``.npy``, PNG and JPEG record no spacing: it is
        checked, then not stored (the command line says so in a note).
        Without it, ``like``'s spacing is kept.
    channel_axis : int or None
        ``-1`` for colour/alpha channels.
    stored_dtype : dtype-like, optional
        NIfTI/DICOM on-disk integer type (e.g. ``numpy.int16``).
    format : str, optional
        The format name, when ``path`` (e.g. a temporary file) does not tell it.
    overwrite : bool
        Replace an existing ``path`` (the default).  With ``False``, an
        existing ``path`` is refused before writing, and the result is
        committed without replacing anything (``renameat2(RENAME_NOREPLACE)``
        or a hard link), so a file or folder created there by another process
        meanwhile is never replaced: the write then fails with
        :class:`DestinationExistsError` and leaves nothing behind.

    Raises
    ------
    ParameterError
        ``spacing`` is not one positive finite number per spatial axis
        (a ``ValueError``; nothing is written).
    ValueError
        The format cannot hold ``data`` as it is (:func:`check_writable`).
    DestinationExistsError
        ``overwrite=False`` and ``path`` exists (or appeared while writing).
    ScanIOError, OSError
        The folder is missing, not replaceable, or the write failed (a full
        disk included); nothing is left behind.
    """
    f = _format(path, format)
    what = special_kind(path)
    if what is not None:  # before anything: a rename would replace the pipe or device by a file
        raise special_file_error(path, what)
    data = _native(np.asarray(data))
    check_writable(path, data.shape, data.dtype, channel_axis, stored_dtype=stored_dtype, format=f.name)
    spacing = check_spacing(spacing, data.shape, channel_axis)
    if not overwrite and os.path.lexists(path):
        raise DestinationExistsError(f"{path} exists; pass overwrite=True to replace it")
    p = follow_link(path)  # a symbolic link: its target is written (atomically), the link stays
    if not p.parent.is_dir():
        what = "is a file, not a folder" if p.parent.exists() else "does not exist"
        raise ScanIOError(f"{p}: {'' if p.parent.exists() else 'folder '}{p.parent} {what}")
    directory = f.is_directory(os.fspath(path))
    why = replace_problem(p, f.name) if os.path.lexists(p) else None
    if why is not None:
        raise ScanIOError(f"{p}: will not replace this folder with a {f.label} output: {why}")
    extra = {"stored_dtype": stored_dtype} if f.scaled else {}
    with atomic_path(p, directory=directory, overwrite=overwrite) as tmp:
        f.write(tmp, data, like, spacing, channel_axis, **extra)
