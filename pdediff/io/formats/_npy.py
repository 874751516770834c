"""NumPy's own files: ``.npy`` (any array; memory-mapped for chunked reading) and ``.npz`` (with spacing)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .._base import Scan, ScanIOError
from .._format import Format
from .._limits import check_deflate_ratio, check_holds, check_memory, nbytes_of


def npy_header(p: Path, f, holds: int | None, *, compressed: int | None = None, member: str = "",
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


def read_npy(p: Path) -> Scan:
    with open(p, "rb") as f:
        npy_header(p, f, p.stat().st_size)
    data = np.load(p, allow_pickle=False)
    return Scan(np.asarray(data))


def read_npz(p: Path) -> Scan:
    with zipfile.ZipFile(p) as zf:
        infos = {i.filename.removesuffix(".npy"): i for i in zf.infolist()}
        keys = list(infos)
        if not keys:
            raise ScanIOError(f"{p}: the .npz archive holds no arrays")
        candidates = [k for k in keys if k not in ("spacing", "channel_axis", "alpha")]
        if "image" not in keys and not candidates:
            raise ScanIOError(f"{p}: the .npz archive holds no image array (only {', '.join(keys)})")
        if "image" not in keys and len(candidates) > 1:
            raise ScanIOError(f"{p}: the .npz archive holds several arrays ({', '.join(candidates)}) and none is "
                              "named 'image': pdediff reads the array 'image', or the only array besides "
                              "'spacing', 'channel_axis' and 'alpha'; save the scan as image=...")
        key = "image" if "image" in keys else candidates[0]
        arrays = {}
        for name in [key] + [k for k in ("spacing", "channel_axis", "alpha") if k in keys]:
            info = infos[name]
            deflated = info.compress_type != zipfile.ZIP_STORED
            holds = info.file_size if deflated else min(info.file_size, info.compress_size)
            with zf.open(info) as f:
                npy_header(p, f, holds, compressed=info.compress_size if deflated else None, member=name)
            with zf.open(info) as f:
                arrays[name] = np.lib.format.read_array(f, allow_pickle=False)
    data = arrays[key]
    spacing = None
    if "spacing" in arrays:
        sp = arrays["spacing"]
        if sp.dtype.kind not in "biuf":
            raise ScanIOError(f"{p}: its array 'spacing' holds {sp.dtype} values; expected numbers (one per "
                              "spatial axis)")
        # the central check ignores a spacing whose length is not the number of spatial axes (a (2, 2) array
        # gives 4 values), with a note naming the file and the field
        spacing = tuple(float(s) for s in np.ravel(sp))
    ch = _channel_axis(p, arrays["channel_axis"], data.shape) if "channel_axis" in arrays else None
    alpha = bool(arrays["alpha"]) if "alpha" in arrays else False
    return Scan(data, spacing=spacing, channel_axis=ch, alpha=alpha, meta={"key": key})


def _channel_axis(p: Path, value: np.ndarray, shape: tuple[int, ...]) -> int:
    """An ``.npz``'s ``channel_axis``: an integer scalar naming an axis of ``shape`` that leaves 1 to 3 spatial
    axes; a negative one on a 2-D image is taken only when the last axis has 3 or 4 values (RGB/RGBA): a 2-D
    grey image with ``channel_axis=-1`` would become a 1-D signal of many channels.  Anything else is refused
    with :class:`ScanIOError` naming the file and the field."""
    ndim = len(shape)
    where = f"{p}: its channel_axis"
    if value.ndim != 0 or value.dtype.kind not in "iu":
        shown = value.tolist() if value.size <= 4 else f"an array of shape {value.shape}"
        raise ScanIOError(f"{where} ({shown!r}, {value.dtype}) is not an integer scalar; expected one axis "
                          f"number in {-ndim}..{ndim - 1}")
    ch = int(value)
    if not -ndim <= ch < ndim:
        raise ScanIOError(f"{where} {ch} is out of range for its image of shape {tuple(shape)} "
                          f"(allowed: {-ndim}..{ndim - 1})")
    if not 1 <= ndim - 1 <= 3:
        raise ScanIOError(f"{where} {ch} leaves {ndim - 1} spatial axes of its image of shape {tuple(shape)}; "
                          "expected 1 to 3")
    if ch < 0 and ndim == 2 and shape[-1] not in (3, 4):
        raise ScanIOError(f"{where} {ch} on a 2-D image of shape {tuple(shape)} is ambiguous (a 1-D signal with "
                          f"{shape[ch]} channels, or a grey image?); save channel_axis={ch % ndim} for the former, "
                          "or no channel_axis for a grey image")
    return ch


class _Stream:
    """A file seen only through ``write``: NumPy then writes through Python's file object (a full disk is
    ``OSError(ENOSPC)``) instead of ``ndarray.tofile`` (a bare "N requested and M written")."""

    def __init__(self, f) -> None:
        self.write = f.write


def write_npy(p, data, like, spacing, ch):
    with open(p, "wb") as f:
        np.lib.format.write_array(_Stream(f), np.asanyarray(data), allow_pickle=False)


def write_npz(p, data, like, spacing, ch):
    extra = {}
    if spacing is not None:
        extra["spacing"] = np.asarray(spacing, dtype=np.float64)
    if ch is not None:
        extra["channel_axis"] = np.asarray(ch)
        if like is not None and like.alpha:
            extra["alpha"] = np.asarray(True)
    with open(p, "wb") as f:
        np.savez_compressed(f, image=data, **extra)


# ----------------------------------------------------------------------------- lazy reading
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


def open_npy_chunked(p: Path, chunks):
    """A lazy Dask array over a ``.npy`` file (objects refused, size checked against the file, not the memory)."""
    from ...dask import require_dask
    from .._limits import chunk_shape

    da = require_dask()
    with open(p, "rb") as f:
        npy_header(p, f, p.stat().st_size, memory=False)
    arr = _NpyArray(p)
    data = da.from_array(arr, chunks=chunk_shape(arr.shape, chunks), asarray=True,
                         meta=np.empty((0,) * arr.ndim, arr.dtype))
    return data, Scan(data, format="npy")


FORMATS = (
    Format("npy", "NumPy .npy", (".npy",), read=read_npy, write=write_npy, any_array=True,
           open_chunked=open_npy_chunked),
    Format("npz", "NumPy .npz", (".npz",), read=read_npz, write=write_npz, any_array=True,
           spacing_field="array 'spacing'"),
)
