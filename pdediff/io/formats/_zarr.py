"""Zarr array stores (a folder ending in ``.zarr``): read and written whole, or lazily chunk by chunk.

The voxel spacing and the channel axis are kept in the array's attributes (``spacing``,
``channel_axis``).  Needs ``zarr`` (``pip install "pdediff[dask]"``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._base import Scan, ScanIOError, _native, _require
from .._format import Format, WriteRequest
from .._limits import check_memory, chunk_shape, nbytes_of


def is_zarr_store(path: str | os.PathLike) -> bool:
    """Whether the folder ``path`` holds a Zarr array (a v3 ``zarr.json`` or a v2 ``.zarray`` inside).

    Parameters
    ----------
    path : str or path-like
        A folder (anything else gives ``False``).

    Returns
    -------
    bool

    Examples
    --------
    >>> import tempfile
    >>> from pdediff.io import is_zarr_store
    >>> is_zarr_store(tempfile.mkdtemp())
    False
    """
    p = Path(path)
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


def _create_zarr(p: Path, shape, dtype, chunks, spacing, ch):
    zarr = _require("zarr", "dask")
    z = zarr.open_array(str(p), mode="w", shape=tuple(int(s) for s in shape), chunks=chunk_shape(shape, chunks),
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


# ----------------------------------------------------------------------------- chunked
def open_zarr_chunked(p: Path, chunks):
    """A lazy Dask array over a Zarr store (the store's chunks unless ``chunks`` is given)."""
    from ...dask import require_dask

    da = require_dask()
    z = _open_zarr_array(p)
    spacing, ch = _zarr_attrs(z)
    data = da.from_zarr(z) if chunks is None else da.from_zarr(z, chunks=chunk_shape(z.shape, chunks))
    return data, Scan(data, spacing=spacing, channel_axis=ch, format="zarr")


def write_zarr_chunked(tmp: Path, data, like, spacing, ch, compute_kwargs, dest: Path) -> None:
    """Compute the Dask array ``data`` chunk by chunk into a new Zarr store in the empty folder ``tmp``."""
    from ...dask import require_dask

    da = require_dask()
    if any(len(set(c[:-1])) > 1 or (len(c) > 1 and c[-1] > c[0]) for c in data.chunks):
        data = data.rechunk(tuple(max(c) for c in data.chunks))  # Zarr chunks are regular
    z = _create_zarr(Path(tmp), data.shape, np.dtype(data.dtype), tuple(max(c) for c in data.chunks), spacing, ch)
    da.store(data, z, lock=False, **compute_kwargs)


def _check_zarr(r: WriteRequest) -> None:
    if r.dtype.kind not in "biuf":
        raise ValueError(f"{r.where}: Zarr output here stores integer or float pixels; got {r.dtype}")


def _replace_problem(folder: Path) -> str | None:
    """A Zarr store, or an empty folder (nothing to lose: also the temporary folder a writer gives), may be
    replaced by a store; any other folder not."""
    if is_zarr_store(folder) or not any(folder.iterdir()):
        return None
    return "it is not a Zarr store"


FORMATS = (
    Format("zarr", "Zarr", (".zarr",), read=read_zarr, write=write_zarr, check=_check_zarr, directory=True,
           spacing_field="attribute 'spacing'",
           replace_problem=_replace_problem, open_chunked=open_zarr_chunked, write_chunked=write_zarr_chunked),
)
