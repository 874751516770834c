"""Larger than memory: lazy reading and streaming writes for the Dask path, above the format registry.

* :func:`open_chunked`: a lazy Dask array over a file whose format can be read in chunks
  (``Format.open_chunked``: ``.npy`` memory maps, uncompressed ``.nii`` through nibabel's array
  proxy, Zarr stores), with the metadata needed to write a faithful result; nothing read yet but headers.
* :func:`write_chunked`: a Dask array computed chunk by chunk into a format that can be written that
  way (``Format.write_chunked``: Zarr stores, uncompressed ``.nii``), atomically (a hidden temporary
  file or folder beside the destination, renamed when complete, removed on any failure).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import DestinationExistsError, atomic_path, follow_link, special_file_error, special_kind
from ._base import Scan, ScanIOError, _one_line
from ._format import get_format, registered_formats
from ._scan import _check_scan_fields, check_readable_kind, check_spacing, check_writable, format_of, replace_problem

__all__ = ["open_chunked", "write_chunked"]


def _names(attr: str) -> str:
    """The suffixes of the formats with ``attr`` (chunked reading or writing), compressed ones left out: a
    gzip stream (``.nii.gz``) has no random access, so it is neither read nor written in chunks."""
    return ", ".join(s for f in registered_formats() if getattr(f, attr) is not None for s in f.suffixes
                     if not s.endswith(".gz"))


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

    require_dask()
    p = Path(path)
    f = get_format(format_of(path))
    if f.open_chunked is None:
        raise ScanIOError(f"{p}: chunked reading supports {_names('open_chunked')} (uncompressed); got a {f.label} "
                          "file (convert it, or process it in memory without --chunks)")
    if not p.exists():
        raise ScanIOError(f"{p}: no such file")
    check_readable_kind(p, f)
    if isinstance(chunks, int):
        chunks = (chunks,) * 8
    try:
        data, scan = f.open_chunked(p, chunks)
    except ScanIOError:
        raise
    except Exception as exc:
        raise ScanIOError(f"{p}: cannot read as {f.name} ({_one_line(exc)})") from exc
    scan.format = f.name
    _check_scan_fields(p, scan, f)
    if scan.stored_dtype is None:
        scan.stored_dtype = np.dtype(data.dtype).newbyteorder("=")
    if data.size == 0:
        raise ScanIOError(f"{p}: contains an empty array of shape {data.shape}")
    return data, scan


def write_chunked(path: str | os.PathLike, data, *, like: Scan | None = None, spacing=None,
                  channel_axis: int | None = None, compute_kwargs: dict | None = None, overwrite: bool = True) -> None:
    """Compute a Dask array chunk by chunk into a Zarr store or a NIfTI file, atomically.

    Parameters
    ----------
    path : str or path-like
        ``*.zarr`` (a folder; chunks as ``data``'s, spacing and channel axis in the attributes) or
        ``*.nii`` (uncompressed NIfTI-1; ``like``'s header and affine kept when it is a NIfTI scan).
        A symbolic link is followed (its target is written).
    data : dask.array.Array
        float or integer pixels, in ``like``'s index order.
    like : Scan, optional
        Where ``data`` came from (geometry kept).
    spacing : tuple of float, optional
        Voxel size per spatial axis (positive and finite, one per axis less the channel axis), recorded as
        :func:`write_scan` records it; ``like``'s when not given.
    channel_axis : int, optional
        Zarr only (NIfTI output holds grey scans).
    compute_kwargs : dict, optional
        Passed to ``dask.array.store`` (e.g. a scheduler).
    overwrite : bool
        Replace an existing ``path`` (default); with ``False`` nothing is ever replaced, as in
        :func:`write_scan`.

    Raises
    ------
    ValueError
        A format without chunked writing, or one that cannot hold ``data``.
    DestinationExistsError
        ``overwrite=False`` and ``path`` exists (or appeared while writing).
    ScanIOError, OSError
        The folder is missing or not replaceable, or the write failed: a full disk is an ``OSError``
        (the file's space is reserved before it is memory-mapped), and nothing is left behind.

    Only a few chunks are in memory at once; the temporary file or folder beside ``path`` is renamed
    over it when every chunk is written, and removed on any error or interrupt.
    """
    from ..dask import require_dask

    require_dask()
    f = get_format(format_of(path))
    dest = Path(path)
    if f.write_chunked is None:
        raise ValueError(f"{dest.name}: chunked output is written as {_names('write_chunked')} (uncompressed); got "
                         f"a {f.label} file")
    what = special_kind(path)
    if what is not None:  # before computing: a rename would replace the pipe or device by a file
        raise special_file_error(path, what)
    dtype = np.dtype(data.dtype)
    check_writable(path, data.shape, dtype, channel_axis, format=f.name)
    spacing = check_spacing(spacing, data.shape, channel_axis)
    if spacing is None and like is not None and like.spacing is not None:
        spacing = like.spacing
    if not overwrite and os.path.lexists(path):
        raise DestinationExistsError(f"{path} exists; pass overwrite=True to replace it")
    p = follow_link(path)
    if not p.parent.is_dir():
        what = "is a file, not a folder" if p.parent.exists() else "does not exist"
        raise ScanIOError(f"{p}: {'' if p.parent.exists() else 'folder '}{p.parent} {what}")
    why = replace_problem(p, f.name) if os.path.lexists(p) else None
    if why is not None:
        raise ScanIOError(f"{p}: will not replace this folder: {why}")
    with atomic_path(p, directory=f.is_directory(os.fspath(path)), overwrite=overwrite) as tmp:
        f.write_chunked(tmp, data, like, spacing, channel_axis, dict(compute_kwargs or {}), dest)
