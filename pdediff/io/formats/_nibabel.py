"""NIfTI (``.nii``, ``.nii.gz``), ``.hdr``/``.img`` pairs (NIfTI-1/2 or Analyze 7.5: ``meta["pair"]``) and MGH
(``.mgh``, ``.mgz``) via nibabel.

Before nibabel touches the data, the header is parsed from its first bytes
and what it claims (data shape × item size, and any NIfTI extension sizes) is
checked against the file (decompressed length for gzip files, counted in
constant memory) and against the memory available.
"""

from __future__ import annotations

import contextlib
import gzip
from pathlib import Path

import numpy as np

from .._base import Scan, ScanIOError, _native, _quiet, _require
from .._format import Format, WriteRequest
from .._limits import check_holds, check_memory, chunk_shape, gzip_length, nbytes_of, reserve_space

#: length units of NIfTI ``xyzt_units`` converted to millimetres
_NIFTI_UNITS = {"mm": 1.0, "micron": 1e-3, "meter": 1e3}


def _compressed(path: Path) -> bool:
    return path.name.lower().endswith((".gz", ".mgz"))


def _open(path: Path):
    return gzip.open(path, "rb") if _compressed(path) else open(path, "rb")


def _pair_paths(p: Path) -> tuple[Path, Path]:
    """The ``.hdr`` and ``.img`` files of an Analyze/NIfTI pair, given either one."""
    base = p.name[:-4]
    folder = p.parent
    found = {}
    for role in ("hdr", "img"):
        for suffix in (f".{role}", f".{role.upper()}"):
            if (folder / (base + suffix)).exists():
                found[role] = folder / (base + suffix)
                break
        else:
            raise ScanIOError(f"{p}: the .{role} file of this .hdr/.img pair ({base}.{role}) is missing")
    return found["hdr"], found["img"]


def _parse_header(p: Path, head: bytes, pair: bool):
    """A nibabel header from the first bytes of a file, without reading extensions or data."""
    from nibabel.analyze import AnalyzeHeader
    from nibabel.nifti1 import Nifti1Header, Nifti1PairHeader
    from nibabel.nifti2 import Nifti2Header, Nifti2PairHeader

    if len(head) < 348:
        raise ScanIOError(f"{p}: {len(head)} bytes are too few for a NIfTI/Analyze header (348 needed)")
    sizes = {int.from_bytes(head[:4], order, signed=True) for order in ("little", "big")}
    if 540 in sizes:
        if len(head) < 540:
            raise ScanIOError(f"{p}: {len(head)} bytes are too few for a NIfTI-2 header (540 needed)")
        sizeof, klass = 540, (Nifti2PairHeader if pair else Nifti2Header)
    elif 348 in sizes:
        magic = head[344:347]
        sizeof = 348
        klass = {b"n+1": Nifti1Header, b"ni1": Nifti1PairHeader}.get(magic, AnalyzeHeader)
    else:
        raise ScanIOError(f"{p}: not a NIfTI/Analyze file (sizeof_hdr is neither 348 nor 540)")
    return klass(head[:sizeof], check=False), sizeof


def _check_extensions(p: Path, hdr_path: Path, hdr, head: bytes, sizeof: int, end: int, single: bool) -> None:
    """Walk the NIfTI extension chain so that nibabel never reads an extension larger than the file."""
    if len(head) < sizeof + 4 or head[sizeof:sizeof + 1] == b"\x00" or not hasattr(hdr, "extensions"):
        return
    order = "little" if hdr.endianness == "<" else "big"
    pos = sizeof + 4
    with _open(hdr_path) as f:
        f.seek(pos)
        while (end - pos >= 16) if single else (pos < end):
            ext = f.read(8)
            if len(ext) < 8:
                return  # nibabel reports the short extension itself, without allocating
            esize = int.from_bytes(ext[:4], order, signed=True)
            if esize < 8 or esize > end - pos:
                raise ScanIOError(
                    f"{p}: a NIfTI header extension claims {esize} bytes but only {end - pos} remain: corrupt"
                )
            f.seek(esize - 8, 1)
            pos += esize


def _preflight(p: Path, fmt: str, memory: bool = True) -> tuple[Path, object]:
    """Check the header's claims against the file and (unless ``memory`` is false: chunked reading) the
    memory; return the path to give nibabel and the header as the file has it (nibabel's loaded header is
    "fixed": ``pixdim`` 0 or -2 becomes 1 or 2, an infinite ``scl_slope`` none)."""
    _require("nibabel")
    from nibabel.freesurfer.mghformat import MGHHeader

    pair = fmt == "analyze"
    hdr_path, img_path = _pair_paths(p) if pair else (p, p)
    with _open(hdr_path) as f:
        head = f.read(544)
    if fmt == "mgh":
        if len(head) < 284:
            raise ScanIOError(f"{p}: {len(head)} bytes are too few for an MGH header (284 needed)")
        hdr, sizeof = MGHHeader(head[:284], check=True), 284
    else:
        hdr, sizeof = _parse_header(p, head, pair)
        _check_scaling(p, hdr)
    shape = hdr.get_data_shape()
    dtype = np.dtype(hdr.get_data_dtype())
    offset = int(hdr.get_data_offset())
    if offset < 0:
        raise ScanIOError(f"{p}: negative data offset {offset} in the header: corrupt")
    claimed = nbytes_of(shape, dtype.itemsize)
    slope, inter = hdr.get_slope_inter() if hasattr(hdr, "get_slope_inter") else (None, None)
    scaled = (slope is not None and slope != 1) or (inter is not None and inter != 0)
    need = claimed + (nbytes_of(shape, 8) if scaled else 0)
    if _compressed(img_path):
        check_memory(p, need)
        holds = gzip_length(img_path, offset + claimed) - offset
        check_holds(p, claimed, holds, what="the decompressed file")
    else:
        check_holds(p, claimed, img_path.stat().st_size - offset)
        if memory:
            check_memory(p, need)
    if fmt != "mgh":
        end = hdr_path.stat().st_size if pair else offset
        _check_extensions(p, hdr_path, hdr, head, sizeof, end, single=not pair)
    return hdr_path, hdr


def _load(path: Path, fmt: str, mmap: bool):
    """``nib.load`` for exactly ``path``: a single-file NIfTI/MGH image is opened through a file map naming the
    file as it is (``nib.load`` looked for ``x.nii.Gz`` when given ``x.Nii.Gz``); Analyze pairs by name."""
    nib = _require("nibabel")
    if fmt == "analyze":
        return nib.load(str(path), mmap=mmap)
    if fmt == "mgh":
        from nibabel.freesurfer.mghformat import MGHImage as klass
    else:
        with _open(path) as f:
            head = f.read(4)
        two = 540 in {int.from_bytes(head, order, signed=True) for order in ("little", "big")}
        klass = nib.Nifti2Image if two else nib.Nifti1Image
    return klass.from_file_map({"image": nib.FileHolder(filename=str(path))}, mmap=mmap)


def read_nibabel(p: Path, fmt: str) -> Scan:
    """Read a NIfTI, Analyze or MGH file; scaling (``scl_slope``/``scl_inter``) applied, recorded on the Scan."""
    nib = _require("nibabel")
    with _quiet():
        path, raw = _preflight(p, fmt)
        img = _load(path, fmt, mmap=False)
        data = np.asarray(img.dataobj)
    if fmt == "mgh":  # MGH always stores 3 dims (+ frames): a 2-D image comes back as (x, y, 1)
        while data.ndim > 2 and data.shape[-1] == 1:
            data = data.reshape(data.shape[:-1])
    if data.ndim > 3:
        if all(s == 1 for s in data.shape[3:]):
            data = data.reshape(data.shape[:3])
        else:
            what = {"nifti": "NIfTI", "mgh": "MGH"}.get(fmt) or _pair_kind(img.header)
            raise ScanIOError(f"{p}: a {data.ndim}-D {what} image (time series?) is not supported; expected 2-D or "
                              "3-D")
    zooms = [float(z) for z in _raw_zooms(img.header, raw, data.ndim)]
    unit = None
    if hasattr(img.header, "get_xyzt_units"):
        unit = img.header.get_xyzt_units()[0]
        if unit in _NIFTI_UNITS:
            zooms = [z * _NIFTI_UNITS[unit] for z in zooms]
            unit = "mm"
    slope = getattr(img.dataobj, "slope", 1.0)
    inter = getattr(img.dataobj, "inter", 0.0)
    scaled = bool(slope != 1 or inter != 0)
    meta = {"affine": np.asarray(img.affine, dtype=np.float64), "header": img.header, "index_order": "xyz",
            "unit": unit}
    if scaled:
        meta["slope_inter"] = (float(slope), float(inter))
    if fmt == "analyze":
        meta["pair"] = _pair_kind(img.header)
    return Scan(data, spacing=tuple(zooms), meta=meta, stored_dtype=np.dtype(img.get_data_dtype()), scaled=scaled)


def _raw_zooms(header, file_header, ndim: int):
    """The voxel sizes as the file states them: nibabel's loaded ``header`` has ``pixdim`` 0 and -2 made into 1
    and 2, so a ``pixdim`` of ``file_header`` that is not positive and finite is reported (and ignored) with
    the file's own values."""
    zooms = header.get_zooms()[:ndim]
    if "pixdim" in file_header:
        raw = [float(v) for v in file_header["pixdim"][1:1 + ndim]]
        if not all(np.isfinite(v) and v > 0 for v in raw):
            return raw
    return zooms


def _check_scaling(p: Path, header) -> None:
    """Refuse an infinite ``scl_slope`` or ``scl_inter`` (:class:`ScanIOError` naming the field): nibabel reads
    such a file unscaled without a word.  NIfTI's own rule stands: ``scl_slope`` 0 or NaN means unscaled (and
    then ``scl_inter`` is not used)."""
    if "scl_slope" not in header:
        return
    slope, inter = float(header["scl_slope"]), float(header["scl_inter"])
    if np.isinf(slope):
        raise ScanIOError(f"{p}: its scl_slope ({slope:g}) is not a finite number: its values cannot be read "
                          "(allowed: a finite number; 0 or NaN for unscaled)")
    if np.isfinite(slope) and slope != 0 and np.isinf(inter):
        raise ScanIOError(f"{p}: its scl_inter ({inter:g}) is not a finite number: its values cannot be read "
                          "(allowed: a finite number)")


# ---------------------------------------------------------------------------- write
def _permute_affine(affine: np.ndarray, ndim: int) -> np.ndarray:
    """Affine for the transposed array: reverse the first ``ndim`` columns."""
    cols = list(range(ndim))[::-1] + list(range(ndim, 3)) + [3]
    return affine[:, cols]


def to_index_order(data, like: Scan | None, spacing, target: str):
    """``data``, its affine (if ``like`` has one for this shape) and spacing in ``target`` order ("xyz"/"zyx").

    Arrays without a ``like`` are written in the order given.  A DICOM ``like``
    (``zyx``) written to NIfTI/MGH is transposed to nibabel's ``(i, j, k)`` =
    (columns, rows, slices) order, and the reverse for NIfTI → DICOM.
    """
    source = target if like is None else like.meta.get("index_order", target)
    affine = None
    if like is not None and like.meta.get("affine") is not None and like.data.shape == data.shape:
        affine = with_spacing(np.asarray(like.meta["affine"], dtype=np.float64), like, spacing, data.ndim)
    if spacing is None and like is not None and like.spacing is not None and len(like.spacing) == data.ndim:
        spacing = like.spacing
    if source != target and data.ndim in (2, 3):
        data = data.T
        spacing = None if spacing is None else tuple(spacing)[::-1]
        if affine is not None:
            affine = _permute_affine(affine, data.ndim)
    return data, affine, spacing


def spacing_overridden(like: Scan | None, spacing, ndim: int) -> bool:
    """Whether ``spacing`` (in ``like``'s index order) is a new voxel size, not the one ``like`` was read with."""
    if spacing is None or like is None or len(spacing) != ndim:
        return False
    if like.spacing is None or len(like.spacing) != ndim:
        return True
    return not np.allclose(np.asarray(spacing, float), np.asarray(like.spacing, float), rtol=1e-9, atol=0)


def with_spacing(affine: np.ndarray, like: Scan | None, spacing, ndim: int) -> np.ndarray:
    """``like``'s affine with its first ``ndim`` columns scaled to lengths ``spacing`` when that overrides the
    spacing read (orientation, rotation and origin kept); the affine as it is otherwise.

    ``spacing`` is in millimetres: a NIfTI header in microns or metres gets the columns in its own unit.  A
    column of length 0 or NaN (an invalid ``pixdim``) keeps the axis it cannot tell: it becomes that axis's
    unit vector times the spacing."""
    if not spacing_overridden(like, spacing, ndim):
        return affine
    per_mm = 1.0
    header = like.meta.get("header")
    if like.format == "nifti" and hasattr(header, "get_xyzt_units"):
        per_mm = 1.0 / _NIFTI_UNITS.get(header.get_xyzt_units()[0], 1.0)
    out = affine.copy()
    for k in range(min(ndim, 3)):
        col = out[:3, k]
        norm = float(np.linalg.norm(col))
        unit = col / norm if np.isfinite(norm) and norm > 0 else np.eye(3)[k]
        out[:3, k] = unit * float(spacing[k]) * per_mm
    return out


def _valid_zooms(img, spacing) -> None:
    """Never copy an invalid voxel size: header zooms (``pixdim``) of ``like``'s header that are not positive and
    finite (``read_scan`` ignored them with a note) become ``spacing``, the one used, else 1."""
    zooms = img.header.get_zooms()
    if all(np.isfinite(z) and z > 0 for z in zooms):
        return
    ok = spacing is not None and len(spacing) == len(zooms) and all(np.isfinite(v) and v > 0 for v in spacing)
    img.header.set_zooms(tuple(float(v) for v in spacing) if ok else (1.0,) * len(zooms))


def _spacing_affine(spacing, ndim: int) -> np.ndarray:
    sp = list(spacing) if spacing is not None else [1.0] * ndim
    return np.diag([float(s) for s in sp[:3]] + [1.0] * (3 - min(len(sp), 3)) + [1.0])


def _save(img, p) -> None:
    """Save the single-file image ``img`` at exactly ``p``, gzip-compressed when its suffix says so (any case).

    ``nib.save`` rewrites a suffix that is neither all upper- nor all lower-case (``x.Nii.Gz`` became
    ``x.nii.Gz``), so the file opened here is handed to nibabel instead of the name.
    """
    nib = _require("nibabel")
    file_map = img.make_file_map()
    if set(file_map) != {"image"}:
        raise ValueError(f"{p}: {type(img).__name__} is not a single-file image")
    with open(p, "wb") as raw:
        # no file name in the gzip header: ``p`` is a temporary name (the final one is given only on rename)
        opener = gzip.GzipFile(filename="", mode="wb", compresslevel=1, fileobj=raw) if _compressed(Path(p)) \
            else contextlib.nullcontext(raw)
        with opener as f:
            file_map["image"] = nib.FileHolder(filename=str(p), fileobj=f)
            img.to_file_map(file_map)


def write_nifti(p, data, like, spacing, ch, *, stored_dtype=None):
    """NIfTI-1 (NIfTI-2 if ``like`` was); ``stored_dtype`` (e.g. int16) makes nibabel pick slope/intercept."""
    nib = _require("nibabel")
    from nibabel.nifti2 import Nifti2Header

    data, affine, spacing = to_index_order(_native(data), like, spacing, "xyz")
    header = None
    if like is not None and like.format == "nifti" and like.meta.get("header") is not None:
        header = like.meta["header"].copy()  # descrip, units, intent, ... (dims and dtype are updated)
    klass = nib.Nifti2Image if isinstance(header, Nifti2Header) else nib.Nifti1Image
    target = np.dtype(stored_dtype) if stored_dtype is not None else data.dtype
    from_spacing = affine is None
    if from_spacing:
        affine = _spacing_affine(spacing, data.ndim)
    img = klass(data, affine, header=header, dtype=target)
    if from_spacing and spacing is not None:
        img.header.set_zooms(tuple(float(s) for s in spacing))
    _valid_zooms(img, spacing)
    if header is None and not from_spacing:  # geometry from DICOM (or MGH): patient coordinates in mm
        img.header.set_xyzt_units("mm")
        code = "scanner" if like is not None and like.format == "dicom" else "aligned"
        img.set_sform(affine, code=code)
        img.set_qform(affine, code=code)
    from nibabel.arraywriters import ScalingError

    try:
        _save(img, p)
    except ScalingError:
        big = max(abs(float(np.nanmax(data))), abs(float(np.nanmin(data)))) if data.size else 0.0
        raise ScanIOError(f"values reaching {big:.4g} cannot be stored as {target} NIfTI (its float32 "
                          "scl_slope/scl_inter would not be finite): rescale them or store float64") from None


def write_mgh(p, data, like, spacing, ch, *, stored_dtype=None):
    """MGH/MGZ (no scaling: the data's own dtype is stored)."""
    nib = _require("nibabel")
    from nibabel.freesurfer.mghformat import MGHImage

    data, affine, spacing = to_index_order(_native(data), like, spacing, "xyz")
    if affine is None:
        affine = _spacing_affine(spacing, data.ndim)
    header = like.meta["header"].copy() if like is not None and like.format == "mgh" else None
    img = MGHImage(data, affine, header=header)
    _valid_zooms(img, spacing)
    img.set_data_dtype(data.dtype)
    _save(img, p)


# ----------------------------------------------------------------------------- lazy reading, streaming writes
class _ProxyArray:
    """nibabel's array proxy seen as an array (shape, dtype of the *scaled* values, slicing) for Dask."""

    def __init__(self, proxy, dtype) -> None:
        self.proxy, self.shape, self.dtype, self.ndim = proxy, tuple(proxy.shape), np.dtype(dtype), len(proxy.shape)

    def __getitem__(self, key):
        return np.asarray(self.proxy[key], dtype=self.dtype)


def open_nifti_chunked(p: Path, chunks):
    """A lazy Dask array over an uncompressed NIfTI file (nibabel's array proxy: slices read on demand,
    slope/intercept applied per slice read, in float64 as :func:`read_nibabel` gives them)."""
    from ...dask import require_dask

    da = require_dask()
    if p.name.lower().endswith(".gz"):
        raise ScanIOError(f"{p}: a compressed NIfTI has no random access; decompress it (gunzip) to read "
                          "it in chunks")
    nib = _require("nibabel")
    with _quiet():
        _, raw = _preflight(p, "nifti", memory=False)
    with _quiet():
        img = _load(p, "nifti", mmap=True)
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
    dtype = np.dtype(np.float64) if scaled else stored
    arr = _ProxyArray(proxy, dtype)
    data = da.from_array(arr, chunks=chunk_shape(proxy.shape, chunks) if len(proxy.shape) == len(shape)
                         else None, asarray=True, meta=np.empty((0,) * len(proxy.shape), dtype))
    if data.ndim != len(shape):
        data = data.reshape(shape)
    zooms = [float(zz) for zz in _raw_zooms(img.header, raw, len(shape))]
    unit = img.header.get_xyzt_units()[0]
    if unit in _NIFTI_UNITS:
        zooms = [zz * _NIFTI_UNITS[unit] for zz in zooms]
        unit = "mm"
    meta = {"affine": np.asarray(img.affine, dtype=np.float64), "header": img.header, "index_order": "xyz",
            "unit": unit}
    return data, Scan(data, spacing=tuple(zooms), format="nifti", meta=meta, stored_dtype=stored, scaled=scaled)


class _Shape:
    """Shape and dtype only: enough for nibabel to fill in a header, no data."""

    def __init__(self, shape, dtype) -> None:
        self.shape, self.dtype, self.ndim = tuple(shape), np.dtype(dtype), len(shape)


def _nifti_memmap(p: Path, shape, dtype, like, spacing):
    """A NIfTI-1 file at ``p`` with its header written and its voxels as a writable (Fortran-order) memory map.

    The file's blocks are reserved (:func:`~pdediff.io._limits.reserve_space`) before it is mapped: writing
    through a map into a sparse file on a full disk kills the process with SIGBUS instead of raising.
    """
    nib = _require("nibabel")
    header = None
    affine = None
    if like is not None and like.format == "nifti" and like.meta.get("header") is not None:
        header = like.meta["header"].copy()
        if tuple(like.data.shape) == tuple(shape):
            affine = with_spacing(np.asarray(like.meta["affine"], dtype=np.float64), like, spacing, len(shape))
    from_spacing = affine is None
    if from_spacing:
        affine = _spacing_affine(spacing, len(shape))
    img = nib.Nifti1Image(_Shape(shape, dtype), affine, header=header, dtype=dtype)
    if from_spacing and spacing is not None:
        img.header.set_zooms(tuple(float(s) for s in spacing))
    _valid_zooms(img, spacing)
    hdr = img.header
    hdr.set_data_dtype(dtype)
    hdr.set_slope_inter(np.nan, np.nan)  # the values as they are: no scaling
    offset = int(hdr.single_vox_offset) if hasattr(hdr, "single_vox_offset") else 352
    offset = max(offset, 352 + sum(e.get_sizeondisk() for e in hdr.extensions))
    offset = (offset + 15) // 16 * 16
    hdr["vox_offset"] = offset
    with open(p, "wb") as f:
        hdr.write_to(f)
        f.flush()
        reserve_space(f.fileno(), offset + nbytes_of(shape, dtype.itemsize), p)
    return np.memmap(p, dtype=np.dtype(dtype).newbyteorder(hdr.endianness), mode="r+", offset=offset,
                     shape=tuple(shape), order="F")


def write_nifti_chunked(tmp: Path, data, like, spacing, ch, compute_kwargs, dest: Path) -> None:
    """Compute the Dask array ``data`` chunk by chunk into an uncompressed NIfTI-1 file at ``tmp``."""
    from ...dask import require_dask

    da = require_dask()
    if dest.name.lower().endswith(".gz"):
        raise ValueError(f"{dest.name}: chunked output is written uncompressed; use .nii (or .zarr)")
    mm = _nifti_memmap(Path(tmp), data.shape, np.dtype(data.dtype), like, spacing)
    try:
        da.store(data, mm, lock=False, **compute_kwargs)
        mm.flush()
    finally:
        del mm


# ----------------------------------------------------------------------------- checks and records
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


def _check_volume(fmt: str, r: WriteRequest) -> None:
    name = "NIfTI" if fmt == "nifti" else "MGH/MGZ"
    sd = r.stored_dtype
    if fmt == "nifti" and sd is not None and (sd.kind not in "iuf" or not _nibabel_dtype_ok("nifti", sd)):
        raise ValueError(f"{r.where}: NIfTI cannot store {sd}; use an integer type such as int16, or float32")
    if r.channel_axis is not None:
        raise ValueError(f"{r.where}: {name} output here holds grey scans only; write colour/channel images as "
                         ".tif, .npy or .npz")
    if r.spatial not in (2, 3):
        raise ValueError(f"{r.where}: {name} output holds 2-D or 3-D scans; got shape {r.shape}: write .npy/.npz")
    if not _nibabel_dtype_ok(fmt, r.dtype):
        if fmt == "mgh":
            raise ValueError(f"{r.where}: MGH/MGZ stores uint8, int16, int32 or float32 (no scaling); got "
                             f"{r.dtype}: cast it (e.g. to float32) or write .nii/.nii.gz")
        raise ValueError(f"{r.where}: NIfTI cannot store {r.dtype}; cast it (e.g. to float32) or write .npy/.tif")


def _check_analyze(r: WriteRequest) -> None:
    raise ValueError(f"{r.where}: writing .hdr/.img pairs (NIfTI or Analyze 7.5) is not supported; write .nii or "
                     ".nii.gz instead")


def _pair_kind(header) -> str:
    """What a ``.hdr``/``.img`` pair is, from its header: ``"NIfTI-1 pair"`` (magic ``ni1``), ``"NIfTI-2 pair"``
    or ``"Analyze 7.5"`` (no magic: no orientation)."""
    from nibabel.nifti1 import Nifti1PairHeader
    from nibabel.nifti2 import Nifti2PairHeader

    if isinstance(header, Nifti2PairHeader):
        return "NIfTI-2 pair"
    return "NIfTI-1 pair" if isinstance(header, Nifti1PairHeader) else "Analyze 7.5"


FORMATS = (
    Format("nifti", "NIfTI", (".nii", ".nii.gz"), read=lambda p: read_nibabel(p, "nifti"), write=write_nifti,
           spacing_field="header field pixdim (voxel sizes)",
           check=lambda r: _check_volume("nifti", r), scaled=True, open_chunked=open_nifti_chunked,
           write_chunked=write_nifti_chunked),
    Format("mgh", "MGH/MGZ", (".mgz", ".mgh"), read=lambda p: read_nibabel(p, "mgh"), write=write_mgh,
           spacing_field="header voxel sizes",
           check=lambda r: _check_volume("mgh", r)),
    Format("analyze", "NIfTI/Analyze .hdr/.img pair", (".hdr", ".img"), read=lambda p: read_nibabel(p, "analyze"), check=_check_analyze,
           spacing_field="header field pixdim (voxel sizes)"),
)
