"""Scan readers and writers behind :mod:`pdediff.io` (formats and safety rules documented there)."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_path
from ._base import Scan, ScanIOError, _native, _one_line
from ._dicom import _sniff, is_replaceable_series, read_dicom, write_dicom
from ._limits import check_deflate_ratio, check_holds, check_memory, nbytes_of
from ._nibabel import read_nibabel, write_mgh, write_nifti
from ._raster import read_image, read_tiff, write_image, write_tiff
from ._zarr import is_zarr_store, read_zarr, write_zarr

__all__ = [
    "FORMATS",
    "Scan",
    "ScanIOError",
    "cast_like",
    "check_writable",
    "format_of",
    "is_directory_format",
    "read_scan",
    "write_scan",
]

FORMATS = {
    ".npy": "npy",
    ".npz": "npz",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".mgz": "mgh",
    ".mgh": "mgh",
    ".hdr": "analyze",
    ".img": "analyze",
    ".dcm": "dicom",
    ".zarr": "zarr",
}

#: formats whose writer takes ``stored_dtype`` (a slope/intercept lets an integer type hold float data)
_SCALED_FORMATS = ("nifti", "dicom")


def format_of(path: str | os.PathLike) -> str:
    """The format name for ``path``; ``ValueError`` naming the supported suffixes otherwise.

    A known suffix decides (:data:`FORMATS`); otherwise a DICOM series folder
    (``"dicom"``) is an existing folder, a path ending in ``/``, or a path
    without a suffix, and an existing file with an unknown suffix is DICOM if
    it has the ``DICM`` preamble.
    """
    text = os.fspath(path)
    p = Path(text)
    name = p.name.lower()
    if not text.endswith(("/", os.sep)):
        for suffix in sorted(FORMATS, key=len, reverse=True):  # a known suffix wins, even on a folder
            if name.endswith(suffix):
                return FORMATS[suffix]
    if p.is_dir() or text.endswith(("/", os.sep)) or not p.suffix:
        return "dicom"
    try:
        if p.is_file() and _sniff(p) == "dicom":
            return "dicom"
    except OSError:
        pass
    raise ValueError(f"unsupported file type {p.name!r}; supported suffixes: {', '.join(FORMATS)}, or a folder "
                     "(no suffix) for a DICOM series")


def _is_series(path: str | os.PathLike) -> bool:
    text = os.fspath(path)
    p = Path(text)
    return p.is_dir() or text.endswith(("/", os.sep)) or not p.name.lower().endswith(".dcm")


def is_directory_format(path: str | os.PathLike, format: str | None = None) -> bool:
    """Whether writing to ``path`` makes a folder (a DICOM series: one file per slice; a Zarr store) rather
    than a file.

    True for Zarr stores and for DICOM outputs that are an existing folder, end in ``/`` or have
    no suffix; a ``.dcm`` output is one file.  ``format`` overrides
    :func:`format_of`.
    """
    fmt = format or format_of(path)
    return fmt == "zarr" or (fmt == "dicom" and _is_series(path))


# ----------------------------------------------------------------------------- checks
def _nibabel_dtype_ok(header_class: str, dtype: np.dtype) -> bool:
    try:
        import nibabel as nib
        from nibabel.freesurfer.mghformat import MGHError, MGHHeader
        from nibabel.spatialimages import HeaderDataError
    except ImportError:
        return True  # the writer names the missing extra
    header = MGHHeader() if header_class == "mgh" else nib.Nifti1Header()
    try:
        header.set_data_dtype(dtype)
    except (HeaderDataError, MGHError, TypeError, ValueError, KeyError):
        return False
    return dtype.kind in "biufc"


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
        The destination; its format follows :func:`format_of`.
    shape : tuple of int
        Shape of the array to be written.
    dtype : dtype-like
        Its dtype.
    channel_axis : int or None
        Axis of colour/alpha channels (must be the last), or ``None``.
    stored_dtype : dtype-like, optional
        On-disk integer type for NIfTI and DICOM (with a slope/intercept).
    format : str, optional
        The format name, when ``path`` (e.g. a temporary file) does not tell it.

    Raises
    ------
    ValueError
        If the format cannot hold this shape/dtype as it is.
    """
    fmt = format or format_of(path)
    shape = tuple(int(s) for s in shape)
    dtype = np.dtype(dtype)
    ndim = len(shape)
    if channel_axis is not None and channel_axis not in (-1, ndim - 1) and fmt not in ("npy", "npz"):
        raise ValueError(f"{fmt} output keeps channels on the last axis; got channel_axis={channel_axis} for shape "
                         f"{shape} (move them last with numpy.moveaxis)")
    channels = shape[-1] if channel_axis is not None and ndim else 0
    spatial = ndim - (channel_axis is not None)
    where = Path(os.fspath(path)).name or os.fspath(path)
    if dtype.hasobject:
        raise ValueError(f"{where}: cannot store Python objects (they would need pickling); convert to numbers")
    if fmt not in ("npy", "npz") and dtype.kind not in "biufc":
        raise ValueError(f"{where}: cannot store {dtype} pixels in {fmt}; convert to a numeric dtype or write .npy")
    if stored_dtype is not None:
        sd = np.dtype(stored_dtype)
        if fmt not in _SCALED_FORMATS and sd != dtype:
            raise ValueError(f"{where}: stored_dtype applies to .nii/.nii.gz and DICOM only (formats with a "
                             f"slope/intercept); cast the data to {sd} instead (pdediff.io.cast_like)")
        if fmt == "dicom" and (sd.kind not in "iu" or sd.itemsize not in (1, 2, 4)):
            raise ValueError(f"{where}: DICOM stores 8-, 16- or 32-bit integer pixels; got stored_dtype {sd}")
        if fmt == "nifti" and (sd.kind not in "iuf" or not _nibabel_dtype_ok("nifti", sd)):
            raise ValueError(f"{where}: NIfTI cannot store {sd}; use an integer type such as int16, or float32")
    if fmt in ("png", "jpeg"):
        name = fmt.upper()
        counts = (1, 3) if fmt == "jpeg" else (1, 2, 3, 4)
        if spatial != 2 or (channel_axis is not None and channels not in counts):
            what = "grey or RGB" if fmt == "jpeg" else "grey, grey+alpha, RGB or RGBA"
            hint = ("a 3-D volume would become an animated PNG" if fmt == "png" and channel_axis is None
                    and ndim == 3 else f"got shape {shape}")
            raise ValueError(f"{where}: {name} holds one 2-D {what} image; {hint}: write .tif, .nii or .npy "
                             "instead")
        allowed = (np.uint8,) if fmt == "jpeg" else (np.uint8, np.uint16)
        if dtype not in allowed:
            kinds = "uint8" if fmt == "jpeg" else "uint8 or uint16"
            raise ValueError(f"{where}: {name} stores {kinds} only; got {dtype} (cast it, or "
                             "write .tif/.nii/.npy)")
        if fmt == "png" and dtype == np.uint16 and channels > 1:
            raise ValueError(f"{where}: 16-bit colour or alpha PNG is not supported (Pillow writes 16-bit grey "
                             "only); write .tif or cast to uint8")
    elif fmt == "tiff":
        if spatial < 2:
            raise ValueError(f"{where}: TIFF holds 2-D images or stacks; got shape {shape}: write .npy instead")
        if channel_axis is not None and not 1 <= channels <= 4:
            raise ValueError(f"{where}: TIFF colour here is 1-4 channels (grey, grey+alpha, RGB, RGBA); got "
                             f"{channels}: write .npy/.npz instead")
        if dtype.kind == "f" and dtype.itemsize > 8 or dtype.kind == "c" and dtype.itemsize > 16:
            raise ValueError(f"{where}: TIFF cannot store {dtype}; cast to float64 or write .npy")
    elif fmt in ("nifti", "mgh"):
        name = "NIfTI" if fmt == "nifti" else "MGH/MGZ"
        if channel_axis is not None:
            raise ValueError(f"{where}: {name} output here holds grey scans only; write colour/channel images as "
                             ".tif, .npy or .npz")
        if spatial not in (2, 3):
            raise ValueError(f"{where}: {name} output holds 2-D or 3-D scans; got shape {shape}: write .npy/.npz")
        if not _nibabel_dtype_ok(fmt, dtype):
            if fmt == "mgh":
                raise ValueError(f"{where}: MGH/MGZ stores uint8, int16, int32 or float32 (no scaling); got "
                                 f"{dtype}: cast it (e.g. to float32) or write .nii/.nii.gz")
            raise ValueError(f"{where}: NIfTI cannot store {dtype}; cast it (e.g. to float32) or write .npy/.tif")
    elif fmt == "zarr":
        if dtype.kind not in "biuf":
            raise ValueError(f"{where}: Zarr output here stores integer or float pixels; got {dtype}")
    elif fmt == "analyze":
        raise ValueError(f"{where}: writing Analyze .hdr/.img pairs is not supported (no orientation, legacy); "
                         "write .nii or .nii.gz instead")
    elif fmt == "dicom":
        if channel_axis is not None:
            raise ValueError(f"{where}: DICOM output here is greyscale; write colour images as .tif or .png")
        if dtype.kind not in "iuf":
            raise ValueError(f"{where}: DICOM stores integer pixels (float data via a slope/intercept); got {dtype}")
        if not _is_series(path) and spatial != 2:
            raise ValueError(f"{where}: a .dcm file holds one 2-D image here; write a {spatial}-D volume as a "
                             "DICOM series folder (an OUTPUT without suffix, or ending in '/')")
        if spatial not in (2, 3):
            raise ValueError(f"{where}: DICOM series hold 2-D or 3-D scans; got shape {shape}: write .npy")


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
    fmt = format_of(p)
    if not p.exists():
        raise ScanIOError(f"{p}: no such file or folder" if fmt == "dicom" else f"{p}: no such file")
    if p.is_file() and p.stat().st_size == 0:
        raise ScanIOError(f"{p}: file is empty")
    try:
        scan = _READERS[fmt](p)
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
    stored = np.dtype(scan.stored_dtype if scan.stored_dtype is not None else scan.data.dtype)
    scan.stored_dtype = stored.newbyteorder("=") if stored.byteorder not in ("=", "|") else stored
    if scan.data.size == 0:
        raise ScanIOError(f"{p}: contains an empty array of shape {scan.data.shape}")
    return scan


def _npy_header(p: Path, f, holds: int | None, *, compressed: int | None = None, member: str = "",
                memory: bool = True):
    """Shape and dtype from an ``.npy`` header, checked against what the file (or zip member) holds
    (and, unless ``memory`` is false, i.e. for a memory-mapped chunked read, against the memory available)."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(f)
    else:  # (3, 0): a utf-8 header, no public reader
        shape, _, dtype = fmt._read_array_header(f, version)
    where = f"{p}{'[' + member + ']' if member else ''}"
    if dtype.hasobject:
        raise ScanIOError(f"{where}: holds Python objects (pickles), refused for safety")
    claimed = nbytes_of(shape, dtype.itemsize)
    if holds is not None:
        check_holds(Path(where), claimed, holds - f.tell(), what="the archive member" if member else "the file")
    if compressed is not None:
        check_deflate_ratio(Path(where), claimed, compressed)
    if memory:
        check_memory(Path(where), claimed)
    return shape, dtype


def _read_npy(p: Path) -> Scan:
    with open(p, "rb") as f:
        _npy_header(p, f, p.stat().st_size)
    data = np.load(p, allow_pickle=False)
    return Scan(np.asarray(data))


def _read_npz(p: Path) -> Scan:
    with zipfile.ZipFile(p) as zf:
        infos = {i.filename.removesuffix(".npy"): i for i in zf.infolist()}
        keys = list(infos)
        if not keys:
            raise ScanIOError(f"{p}: the .npz archive holds no arrays")
        candidates = [k for k in keys if k not in ("spacing", "channel_axis", "alpha")]
        if "image" not in keys and not candidates:
            raise ScanIOError(f"{p}: the .npz archive holds no image array (only {', '.join(keys)})")
        key = "image" if "image" in keys else candidates[0]
        arrays = {}
        for name in [key] + [k for k in ("spacing", "channel_axis", "alpha") if k in keys]:
            info = infos[name]
            deflated = info.compress_type != zipfile.ZIP_STORED
            holds = info.file_size if deflated else min(info.file_size, info.compress_size)
            with zf.open(info) as f:
                _npy_header(p, f, holds, compressed=info.compress_size if deflated else None, member=name)
            with zf.open(info) as f:
                arrays[name] = np.lib.format.read_array(f, allow_pickle=False)
    data = arrays[key]
    spacing = tuple(float(s) for s in np.ravel(arrays["spacing"])) if "spacing" in arrays else None
    ch = int(arrays["channel_axis"]) if "channel_axis" in arrays else None
    alpha = bool(arrays["alpha"]) if "alpha" in arrays else False
    return Scan(data, spacing=spacing, channel_axis=ch, alpha=alpha, meta={"key": key})


def _read_nifti(p: Path) -> Scan:
    return read_nibabel(p, "nifti")


_READERS: dict[str, Callable[[Path], Scan]] = {
    "npy": _read_npy,
    "npz": _read_npz,
    "png": lambda p: read_image(p, "png"),
    "jpeg": lambda p: read_image(p, "jpeg"),
    "tiff": read_tiff,
    "nifti": _read_nifti,
    "mgh": lambda p: read_nibabel(p, "mgh"),
    "analyze": lambda p: read_nibabel(p, "analyze"),
    "dicom": read_dicom,
    "zarr": read_zarr,
}


# ---------------------------------------------------------------------------- write
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
        instead of raising.

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
    info = np.iinfo(dtype)
    rounded = np.rint(data.astype(np.float64, copy=False))
    if rounded.size and not np.isfinite(rounded).all():
        raise ValueError(f"cannot cast NaN or infinite values to {dtype}")
    if rounded.size and not clip and (rounded.min() < info.min or rounded.max() > info.max):
        raise ValueError(f"values span {rounded.min():.6g}..{rounded.max():.6g}, outside {dtype}'s range "
                         f"{info.min}..{info.max}; pass clip=True to clip, or choose a wider dtype")
    return np.clip(rounded, info.min, info.max).astype(dtype)


def write_scan(
    path: str | os.PathLike,
    data: np.ndarray,
    *,
    like: Scan | None = None,
    spacing: tuple[float, ...] | None = None,
    channel_axis: int | None = None,
    stored_dtype: Any = None,
    format: str | None = None,
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
        Destination.  DICOM: a ``.dcm`` file for one 2-D image; a series
        folder (one file per slice) for an existing folder, a path ending in
        ``/`` or a path without a suffix.  An existing folder is replaced only
        if it holds nothing but DICOM files.
    data : ndarray
        The image or volume, in ``like``'s index order when ``like`` is given.
    like : Scan, optional
        The scan ``data`` came from: its geometry (NIfTI affine and header,
        DICOM headers and positions) is kept; DICOM ↔ NIfTI transposes
        between ``(z, y, x)`` and ``(x, y, z)`` with the affine to match.
    spacing : tuple of float, optional
        Voxel size per spatial axis when ``like`` carries no affine.
    channel_axis : int or None
        ``-1`` for colour/alpha channels.
    stored_dtype : dtype-like, optional
        NIfTI/DICOM on-disk integer type (e.g. ``numpy.int16``).
    format : str, optional
        The format name, when ``path`` (e.g. a temporary file) does not tell it.
    """
    p = Path(path)
    fmt = format or format_of(path)
    data = _native(np.asarray(data))
    check_writable(path, data.shape, data.dtype, channel_axis, stored_dtype=stored_dtype, format=fmt)
    writer = _WRITERS[fmt]
    if not p.parent.is_dir():
        raise ScanIOError(f"{p}: folder {p.parent} does not exist")
    extra = {"stored_dtype": stored_dtype} if fmt in _SCALED_FORMATS else {}
    directory = is_directory_format(path, fmt)
    if fmt == "zarr" and p.is_dir() and not p.is_symlink() and not is_zarr_store(p):
        raise ScanIOError(f"{p}: will not replace this folder with a Zarr store: it is not one")
    if directory and fmt == "dicom" and p.is_dir() and not p.is_symlink():
        why = is_replaceable_series(p)
        if why is not None:
            raise ScanIOError(f"{p}: will not replace this folder with a DICOM series: {why}")
    with atomic_path(p, directory=directory) as tmp:
        writer(tmp, data, like, spacing, channel_axis, **extra)


def _write_npy(p, data, like, spacing, ch):
    with open(p, "wb") as f:
        np.save(f, data, allow_pickle=False)


def _write_npz(p, data, like, spacing, ch):
    extra = {}
    if spacing is not None:
        extra["spacing"] = np.asarray(spacing, dtype=np.float64)
    if ch is not None:
        extra["channel_axis"] = np.asarray(ch)
        if like is not None and like.alpha:
            extra["alpha"] = np.asarray(True)
    with open(p, "wb") as f:
        np.savez_compressed(f, image=data, **extra)


_WRITERS = {
    "npy": _write_npy,
    "npz": _write_npz,
    "png": write_image,
    "jpeg": write_image,
    "tiff": write_tiff,
    "nifti": write_nifti,
    "mgh": write_mgh,
    "dicom": write_dicom,
    "zarr": write_zarr,
}  # "analyze" has no writer: check_writable refuses it
