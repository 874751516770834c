"""Scan readers and writers behind :mod:`pdediff.io` (formats and safety rules documented there)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_path

__all__ = ["Scan", "ScanIOError", "read_scan", "write_scan", "format_of", "FORMATS", "cast_like"]

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
}


class ScanIOError(OSError):
    """A scan could not be read or written (missing, unreadable, corrupt, unsupported)."""


@dataclass
class Scan:
    """An image or volume with what its file said about it.

    Attributes
    ----------
    data : ndarray
        The array as stored (NIfTI: ``(x, y, z)`` order; images: ``(rows, cols[, channels])``).
    spacing : tuple of float or None
        Voxel size per *spatial* axis, when the file records it (NIfTI, ``.npz``).
    channel_axis : int or None
        ``-1`` for RGB(A) images, else ``None``.
    format : str
        One of ``npy, npz, png, jpeg, tiff, nifti``.
    meta : dict
        Format-specific data needed to write a faithful copy (NIfTI affine and header).
    """

    data: np.ndarray
    spacing: tuple[float, ...] | None = None
    channel_axis: int | None = None
    format: str = "npy"
    meta: dict = field(default_factory=dict)

    @property
    def spatial_ndim(self) -> int:
        return self.data.ndim - (self.channel_axis is not None)


def format_of(path: str | os.PathLike) -> str:
    """The format name for ``path``'s suffix; ``ValueError`` naming the supported ones otherwise."""
    name = Path(path).name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMATS[suffix]
    raise ValueError(f"unsupported file type {Path(path).name!r}; supported suffixes: {', '.join(FORMATS)}")


def _require(module: str, extra: str = "io"):
    try:
        return __import__(module)
    except ImportError:
        raise ScanIOError(
            f"reading/writing this format needs the '{module}' package: pip install \"pdediff[{extra}]\""
        ) from None


# ----------------------------------------------------------------------------- read
def read_scan(path: str | os.PathLike) -> Scan:
    """Read an image or volume; raises :class:`ScanIOError` with one clear sentence on failure.

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
        raise ScanIOError(f"{p}: no such file")
    if p.is_dir():
        raise ScanIOError(f"{p}: is a directory, not a file")
    if p.stat().st_size == 0:
        raise ScanIOError(f"{p}: file is empty")
    try:
        scan = _READERS[fmt](p)
    except ScanIOError:
        raise
    except Exception as exc:  # libraries raise many types on corrupt input: report one line
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ScanIOError(f"{p}: cannot read as {fmt} ({msg})") from exc
    scan.format = fmt
    if scan.data.size == 0:
        raise ScanIOError(f"{p}: contains an empty array of shape {scan.data.shape}")
    return scan


def _read_npy(p: Path) -> Scan:
    data = np.load(p, allow_pickle=False)
    return Scan(np.asarray(data))


def _read_npz(p: Path) -> Scan:
    with np.load(p, allow_pickle=False) as z:
        keys = list(z.keys())
        if not keys:
            raise ScanIOError(f"{p}: the .npz archive holds no arrays")
        key = "image" if "image" in keys else next(k for k in keys if k not in ("spacing", "channel_axis"))
        data = z[key]
        spacing = tuple(float(s) for s in z["spacing"]) if "spacing" in keys else None
        ch = int(z["channel_axis"]) if "channel_axis" in keys else None
    return Scan(data, spacing=spacing, channel_axis=ch, meta={"key": key})


def _read_imageio(p: Path) -> Scan:
    iio = _imageio()
    data = np.asarray(iio.imread(p))
    ch = -1 if data.ndim == 3 and data.shape[-1] in (3, 4) else None
    return Scan(data, channel_axis=ch)


def _imageio():
    _require("imageio")
    import imageio.v3 as iio

    return iio


def _read_tiff(p: Path) -> Scan:
    tifffile = _require("tifffile")
    with tifffile.TiffFile(p) as tf:
        data = tf.asarray()
        photometric = tf.pages[0].photometric
    rgb = photometric is not None and int(photometric) == 2 and data.shape[-1] in (3, 4)
    return Scan(np.asarray(data), channel_axis=-1 if rgb else None)


def _read_nifti(p: Path) -> Scan:
    nib = _require("nibabel")
    img = nib.load(str(p))
    data = np.asarray(img.dataobj)
    if data.ndim > 3:
        if all(s == 1 for s in data.shape[3:]):
            data = data.reshape(data.shape[:3])
        else:
            raise ScanIOError(f"{p}: a {data.ndim}-D NIfTI (time series?) is not supported; expected 2-D or 3-D")
    zooms = tuple(float(z) for z in img.header.get_zooms()[: data.ndim])
    return Scan(data, spacing=zooms, meta={"affine": img.affine, "header": img.header})


_READERS: dict[str, Callable[[Path], Scan]] = {
    "npy": _read_npy,
    "npz": _read_npz,
    "png": _read_imageio,
    "jpeg": _read_imageio,
    "tiff": _read_tiff,
    "nifti": _read_nifti,
}


# ---------------------------------------------------------------------------- write
def cast_like(data: np.ndarray, dtype: Any) -> np.ndarray:
    """Cast to ``dtype``; integer targets are rounded and clipped to the type's range."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(data), info.min, info.max).astype(dtype)
    return np.asarray(data).astype(dtype)


def write_scan(
    path: str | os.PathLike,
    data: np.ndarray,
    *,
    like: Scan | None = None,
    spacing: tuple[float, ...] | None = None,
    channel_axis: int | None = None,
) -> None:
    """Write ``data`` atomically (temporary file in the same folder, then rename).

    ``data`` is written with its own dtype; cast it first (:func:`cast_like`)
    to store the input's integer type.  PNG and JPEG store unsigned integers
    only: a float array raises ``ValueError`` (cast it, e.g. to ``uint8``).
    ``like`` carries metadata to keep (NIfTI affine and header).
    """
    p = Path(path)
    fmt = format_of(p)
    data = np.asarray(data)
    if fmt in ("png", "jpeg") and data.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{fmt.upper()} stores uint8/uint16 only; got {data.dtype} (cast with the input's dtype)")
    if fmt == "jpeg" and data.dtype != np.uint8:
        raise ValueError("JPEG stores uint8 only")
    writer = _WRITERS[fmt]
    if not p.parent.is_dir():
        raise ScanIOError(f"{p}: folder {p.parent} does not exist")
    with atomic_path(p) as tmp:
        writer(tmp, data, like, spacing, channel_axis)


def _write_npy(p, data, like, spacing, ch):
    with open(p, "wb") as f:
        np.save(f, data, allow_pickle=False)


def _write_npz(p, data, like, spacing, ch):
    extra = {}
    if spacing is not None:
        extra["spacing"] = np.asarray(spacing, dtype=np.float64)
    if ch is not None:
        extra["channel_axis"] = np.asarray(ch)
    with open(p, "wb") as f:
        np.savez_compressed(f, image=data, **extra)


def _write_imageio(p, data, like, spacing, ch):
    iio = _imageio()
    ext = ".png" if p.name.endswith(".png") else ".jpg"
    kwargs = {"quality": 95} if ext == ".jpg" else {}
    iio.imwrite(p, data, extension=ext, **kwargs)


def _write_tiff(p, data, like, spacing, ch):
    tifffile = _require("tifffile")
    photometric = "rgb" if ch is not None and data.shape[-1] in (3, 4) else "minisblack"
    tifffile.imwrite(p, data, photometric=photometric)


def _write_nifti(p, data, like, spacing, ch):
    nib = _require("nibabel")
    if like is not None and "affine" in like.meta:
        header = like.meta["header"].copy()
        header.set_data_dtype(data.dtype)
        img = nib.Nifti1Image(data, like.meta["affine"], header)
    else:
        affine = np.diag(list(spacing or (1.0,) * data.ndim) + [1.0] * (4 - data.ndim))
        img = nib.Nifti1Image(data, affine)
        if spacing is not None:
            img.header.set_zooms(tuple(spacing))
    nib.save(img, str(p))


_WRITERS = {
    "npy": _write_npy,
    "npz": _write_npz,
    "png": _write_imageio,
    "jpeg": _write_imageio,
    "tiff": _write_tiff,
    "nifti": _write_nifti,
}
