"""Zarr stores, and chunked (larger-than-memory) reading and writing for the Dask path.

* :func:`read_zarr` / :func:`write_zarr`: a Zarr array store (a folder) as one more format of
  :func:`~pdediff.io.read_scan` / :func:`~pdediff.io.write_scan`; the voxel spacing and the channel axis
  are kept in the array's attributes (``spacing``, ``channel_axis``).
* :func:`open_chunked`: a lazy Dask array over a ``.npy`` file (memory map), an uncompressed NIfTI file
  (nibabel's array proxy: slices read on demand, scaling applied) or a Zarr store, with the metadata
  needed to write a faithful result, nothing read yet but headers.
* :func:`write_chunked`: a Dask array streamed chunk by chunk into a Zarr store or a NIfTI file,
  atomically (a hidden temporary file or folder beside the destination, renamed when complete).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_path
from ._base import Scan, ScanIOError, _native, _quiet, _require
from ._limits import check_memory, nbytes_of

__all__ = ["is_zarr_store", "open_chunked", "write_chunked"]

#: The formats :func:`open_chunked` reads lazily and :func:`write_chunked` streams into.
CHUNKED_INPUTS = ("npy", "nifti", "zarr")
CHUNKED_OUTPUTS = ("zarr", "nifti")


def is_zarr_store(p: Path) -> bool:
    """Whether the folder ``p`` holds a Zarr array (v3 ``zarr.json`` or v2 ``.zarray``)."""
    return (p / "zarr.json").is_file() or (p / ".zarray").is_file()


def _open_zarr_array(p: Path):
    zarr = _require("zarr", "dask")
    if not p.is_dir() or not is_zarr_store(p):
        raise ScanIOError(f"{p}: not a Zarr array store (no zarr.json or .zarray inside)")
    z = zarr.open_array(str(p), mode="r")
    if z.dtype.hasobject or z.dtype.kind not in "biuf":
        raise ScanIOError(f"{p}: Zarr array of dtype {z.dtype}; expected integer or float pixels")
    return z


def _zarr_attrs(z) -> tuple[tuple[float, ...] | None, int | None]:
    attrs = dict(z.attrs)
    spacing = attrs.get("spacing")
    ch = attrs.get("channel_axis")
    try:
        spacing = None if spacing is None else tuple(float(s) for s in spacing)
        ch = None if ch is None else int(ch)
    except (TypeError, ValueError):
        raise ScanIOError("Zarr attributes 'spacing'/'channel_axis' are not numbers") from None
    return spacing, ch


def read_zarr(p: Path) -> Scan:
    """Read a whole Zarr array into memory (checked against the memory available first)."""
    z = _open_zarr_array(p)
    check_memory(p, nbytes_of(z.shape, z.dtype.itemsize))
    spacing, ch = _zarr_attrs(z)
    return Scan(np.asarray(z[...]), spacing=spacing, channel_axis=ch)


def _chunk_shape(shape, chunks) -> tuple[int, ...]:
    if chunks is None:  # about 64 MiB per chunk of float64 (cube-ish)
        side = max(1, round((64 * 2**20 / 8) ** (1.0 / max(len(shape), 1))))
        return tuple(min(s, side) for s in shape)
    return tuple(min(int(s), int(c)) for s, c in zip(shape, chunks))


def _create_zarr(p: Path, shape, dtype, chunks, spacing, ch):
    zarr = _require("zarr", "dask")
    z = zarr.open_array(str(p), mode="w", shape=tuple(int(s) for s in shape), chunks=_chunk_shape(shape, chunks),
                        dtype=np.dtype(dtype))
    attrs = {}
    if spacing is not None:
        attrs["spacing"] = [float(s) for s in spacing]
    if ch is not None:
        attrs["channel_axis"] = int(ch)
    if attrs:
        z.attrs.update(attrs)
    return z


def write_zarr(p, data, like, spacing, ch):
    """Write ``data`` into a new Zarr store at ``p`` (an empty temporary folder: see ``write_scan``)."""
    if spacing is None and like is not None and like.spacing is not None and len(like.spacing) == data.ndim - (
            ch is not None):
        spacing = like.spacing
    z = _create_zarr(Path(p), data.shape, data.dtype, None, spacing, ch)
    z[...] = _native(data)


# ----------------------------------------------------------------------------- lazy reading
class _ProxyArray:
    """nibabel's array proxy seen as an array (shape, dtype of the *scaled* values, slicing) for Dask."""

    def __init__(self, proxy, dtype) -> None:
        self.proxy, self.shape, self.dtype, self.ndim = proxy, tuple(proxy.shape), np.dtype(dtype), len(proxy.shape)

    def __getitem__(self, key):
        return np.asarray(self.proxy[key], dtype=self.dtype)


class _NpyArray:
    """A ``.npy`` file read by slices: each read maps the file, copies the slice and unmaps it again, so
    pages already read do not stay resident in this process (a long-lived memory map would keep them)."""

    def __init__(self, p: Path) -> None:
        mm = np.load(p, mmap_mode="r", allow_pickle=False)
        self.path, self.shape, self.dtype, self.ndim = p, mm.shape, mm.dtype, mm.ndim
        del mm

    def __getitem__(self, key):
        mm = np.load(self.path, mmap_mode="r", allow_pickle=False)
        out = np.array(mm[key], copy=True)
        del mm  # the last reference: the mapping is closed here
        return out


def open_chunked(path: str | os.PathLike, chunks: int | tuple[int, ...] | None = None) -> tuple[Any, Scan]:
    """A lazy Dask array over a ``.npy``, uncompressed ``.nii`` or Zarr file, and its :class:`Scan` record.

    Nothing but headers is read now: chunks are read when the array is computed, so a scan larger than
    the memory can be processed chunk by chunk.

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` file (memory-mapped), an uncompressed NIfTI file (``.nii``: nibabel's array proxy,
        slope/intercept applied per slice read) or a Zarr array store (a folder ending in ``.zarr``).
    chunks : int or tuple of int, optional
        Chunk edge per axis (an int applies to every axis).  Default: the store's chunks for Zarr, about
        64 MiB cubes otherwise.

    Returns
    -------
    data : dask.array.Array
        In the file's index order (NIfTI ``(x, y, z)``), dtype as stored (float for scaled NIfTI).
    scan : Scan
        ``data`` holds the Dask array; ``spacing``, ``format`` and ``meta`` as :func:`read_scan` gives them.

    Raises
    ------
    ScanIOError
        Missing, corrupt, compressed NIfTI (``.nii.gz`` has no random access: decompress it first), or a
        format without chunked reading (allowed: ``.npy``, ``.nii``, ``.zarr``).
    ImportError
        Dask is not installed (``pip install "pdediff[dask]"``).
    """
    from ..dask import require_dask
    from ._scan import format_of

    da = require_dask()
    p = Path(path)
    fmt = format_of(p)
    if fmt not in CHUNKED_INPUTS:
        raise ScanIOError(f"{p}: chunked reading supports .npy, uncompressed .nii and .zarr; got a {fmt} file "
                          "(convert it, or process it in memory without --chunks)")
    if not p.exists():
        raise ScanIOError(f"{p}: no such file")
    if isinstance(chunks, int):
        chunks = (chunks,) * 8
    try:
        if fmt == "zarr":
            z = _open_zarr_array(p)
            spacing, ch = _zarr_attrs(z)
            data = da.from_zarr(z) if chunks is None else da.from_zarr(z, chunks=_chunk_shape(z.shape, chunks))
            scan = Scan(data, spacing=spacing, channel_axis=ch, format="zarr")
        elif fmt == "npy":
            from ._scan import _npy_header

            with open(p, "rb") as f:  # objects refused, size checked against the file (not the memory)
                _npy_header(p, f, p.stat().st_size, memory=False)
            arr = _NpyArray(p)
            data = da.from_array(arr, chunks=_chunk_shape(arr.shape, chunks), asarray=True,
                                 meta=np.empty((0,) * arr.ndim, arr.dtype))
            scan = Scan(data, format="npy")
        else:
            if p.name.lower().endswith(".gz"):
                raise ScanIOError(f"{p}: a compressed NIfTI has no random access; decompress it (gunzip) to read "
                                  "it in chunks")
            nib = _require("nibabel")
            from ._nibabel import _NIFTI_UNITS, _preflight

            with _quiet():
                _preflight(p, "nifti", memory=False)
            with _quiet():
                img = nib.load(str(p), mmap=True)
            proxy = img.dataobj
            shape = tuple(proxy.shape)
            while len(shape) > 3 and shape[-1] == 1:
                shape = shape[:-1]
            if len(shape) not in (2, 3):
                raise ScanIOError(f"{p}: a {len(proxy.shape)}-D NIfTI image is not supported; expected 2-D or 3-D")
            slope = float(getattr(proxy, "slope", 1.0))
            inter = float(getattr(proxy, "inter", 0.0))
            scaled = slope != 1.0 or inter != 0.0
            stored = np.dtype(img.get_data_dtype())
            # scaled values in float64, as read_scan gives them (nibabel's default)
            dtype = np.dtype(np.float64) if scaled else stored
            arr = _ProxyArray(proxy, dtype)
            data = da.from_array(arr, chunks=_chunk_shape(proxy.shape, chunks) if len(proxy.shape) == len(shape)
                                 else None, asarray=True, meta=np.empty((0,) * len(proxy.shape), dtype))
            if data.ndim != len(shape):
                data = data.reshape(shape)
            zooms = [float(zz) for zz in img.header.get_zooms()[: len(shape)]]
            unit = img.header.get_xyzt_units()[0]
            if unit in _NIFTI_UNITS:
                zooms = [zz * _NIFTI_UNITS[unit] for zz in zooms]
                unit = "mm"
            meta = {"affine": np.asarray(img.affine, dtype=np.float64), "header": img.header, "index_order": "xyz",
                    "unit": unit}
            scan = Scan(data, spacing=tuple(zooms), format="nifti", meta=meta, stored_dtype=stored, scaled=scaled)
    except ScanIOError:
        raise
    except Exception as exc:
        from ._base import _one_line

        raise ScanIOError(f"{p}: cannot read as {fmt} ({_one_line(exc)})") from exc
    if scan.stored_dtype is None:
        scan.stored_dtype = np.dtype(data.dtype).newbyteorder("=")
    if data.size == 0:
        raise ScanIOError(f"{p}: contains an empty array of shape {data.shape}")
    return data, scan


# ----------------------------------------------------------------------------- streaming writes
class _Shape:
    """Shape and dtype only: enough for nibabel to fill in a header, no data."""

    def __init__(self, shape, dtype) -> None:
        self.shape, self.dtype, self.ndim = tuple(shape), np.dtype(dtype), len(shape)


def write_chunked(path: str | os.PathLike, data, *, like: Scan | None = None, spacing=None,
                  channel_axis: int | None = None, compute_kwargs: dict | None = None) -> None:
    """Compute a Dask array chunk by chunk into a Zarr store or a NIfTI file, atomically.

    Parameters
    ----------
    path : str or path-like
        ``*.zarr`` (a folder; chunks as ``data``'s, spacing and channel axis in the attributes) or
        ``*.nii`` (uncompressed NIfTI-1; ``like``'s header and affine kept when it is a NIfTI scan).
    data : dask.array.Array
        float or integer pixels, in ``like``'s index order.
    like : Scan, optional
        Where ``data`` came from (geometry kept).
    spacing : tuple of float, optional
        Voxel size per spatial axis when ``like`` carries none.
    channel_axis : int, optional
        Zarr only (NIfTI output holds grey scans).
    compute_kwargs : dict, optional
        Passed to ``dask.array.store`` (e.g. a scheduler).

    Only a few chunks are in memory at once; the temporary file or folder beside ``path`` is renamed
    over it when every chunk is written, and removed on any error or interrupt.
    """
    from ..dask import require_dask
    from ._scan import check_writable, format_of

    da = require_dask()
    p = Path(path)
    fmt = format_of(p)
    if fmt not in CHUNKED_OUTPUTS:
        raise ValueError(f"{p.name}: chunked output is written as .zarr or .nii; got {fmt}")
    if fmt == "nifti" and p.name.lower().endswith(".gz"):
        raise ValueError(f"{p.name}: chunked output is written uncompressed; use .nii (or .zarr)")
    dtype = np.dtype(data.dtype)
    check_writable(p, data.shape, dtype, channel_axis, format=fmt)
    if spacing is None and like is not None and like.spacing is not None:
        spacing = like.spacing
    if not p.parent.is_dir():
        raise ScanIOError(f"{p}: folder {p.parent} does not exist")
    if fmt == "zarr" and p.is_dir() and not p.is_symlink() and not is_zarr_store(p):
        raise ScanIOError(f"{p}: will not replace this folder: it is not a Zarr store")
    kw = dict(compute_kwargs or {})
    with atomic_path(p, directory=fmt == "zarr") as tmp:
        if fmt == "zarr":
            if any(len(set(c[:-1])) > 1 or (len(c) > 1 and c[-1] > c[0]) for c in data.chunks):
                data = data.rechunk(tuple(max(c) for c in data.chunks))  # Zarr chunks are regular
            z = _create_zarr(tmp, data.shape, dtype, tuple(max(c) for c in data.chunks), spacing, channel_axis)
            da.store(data, z, lock=False, **kw)
        else:
            mm = _nifti_memmap(tmp, data.shape, dtype, like, spacing)
            da.store(data, mm, lock=False, **kw)
            mm.flush()
            del mm


def _nifti_memmap(p: Path, shape, dtype, like, spacing):
    """A NIfTI-1 file at ``p`` with its header written and its voxels as a writable (Fortran-order) memory map."""
    nib = _require("nibabel")
    from ._nibabel import _spacing_affine

    header = None
    affine = None
    if like is not None and like.format == "nifti" and like.meta.get("header") is not None:
        header = like.meta["header"].copy()
        if tuple(like.data.shape) == tuple(shape):
            affine = np.asarray(like.meta["affine"], dtype=np.float64)
    from_spacing = affine is None
    if from_spacing:
        affine = _spacing_affine(spacing, len(shape))
    img = nib.Nifti1Image(_Shape(shape, dtype), affine, header=header, dtype=dtype)
    if from_spacing and spacing is not None:
        img.header.set_zooms(tuple(float(s) for s in spacing))
    hdr = img.header
    hdr.set_data_dtype(dtype)
    hdr.set_slope_inter(np.nan, np.nan)  # the values as they are: no scaling
    offset = int(hdr.single_vox_offset) if hasattr(hdr, "single_vox_offset") else 352
    offset = max(offset, 352 + sum(e.get_sizeondisk() for e in hdr.extensions))
    offset = (offset + 15) // 16 * 16
    hdr["vox_offset"] = offset
    with open(p, "wb") as f:
        hdr.write_to(f)
        f.truncate(offset + nbytes_of(shape, dtype.itemsize))
    return np.memmap(p, dtype=np.dtype(dtype).newbyteorder(hdr.endianness), mode="r+", offset=offset,
                     shape=tuple(shape), order="F")
