"""DICOM in and out via pydicom: single files (also multi-frame), series folders, and new series.

Reading
    A file, or a folder holding one series (one image per file; other files
    such as ``DICOMDIR`` or non-DICOM files are skipped).  Slices are ordered
    by ``ImagePositionPatient`` projected on the slice normal (the cross
    product of the ``ImageOrientationPatient`` row and column cosines); the
    slice spacing is the distance between consecutive positions and must be
    even.  The array is ``(slice, row, col)`` = ``(z, y, x)`` with spacing
    ``(dz, dy, dx)``; ``RescaleSlope``/``RescaleIntercept`` are applied, and
    an RT Dose's ``DoseGridScaling`` (doses = stored values x it, with a note).
    Slices without ``ImagePositionPatient`` are ordered by ``InstanceNumber``
    (refused when one lacks it or two share it), with ``dz`` from
    ``SpacingBetweenSlices``, else ``SliceThickness``, and a note in
    :attr:`Scan.notes <pdediff.io.Scan.notes>` saying so.

Writing
    A folder (one file per slice: a new series) or a ``.dcm`` file (one 2-D
    image), Explicit VR Little Endian, pixels in the stored integer type with
    a slope/intercept chosen so that no value is clipped.  An RT Dose input
    gives RT Dose slices whose ``DoseGridScaling`` (no slope/intercept) is the
    input's where the result fits it, else chosen per slice, so that stored
    value x ``DoseGridScaling`` is the written dose.

Every file is opened through ``_BoundedReader``, whose ``read(n)`` never
asks for more than what is left in the file, so a hostile length field cannot
make pydicom allocate gigabytes; large elements are deferred and checked
against the file size before they are read.
"""

from __future__ import annotations

import copy
import os
from struct import error as struct_error
from collections import Counter
from pathlib import Path

import numpy as np

from .._base import Scan, ScanIOError, _BoundedReader, _native, _one_line, _quiet, _require
from .._format import Format, WriteRequest
from .._limits import check_holds, check_memory, nbytes_of
from ._nibabel import spacing_overridden, to_index_order

_DEFER = 1 << 16  # elements larger than this are read only when needed (after the size checks)
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # PixelData, FloatPixelData, DoubleFloatPixelData
_UNDEFINED = 0xFFFFFFFF
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_DICOMDIR = "1.2.840.10008.1.3.10"
_RT_DOSE = "1.2.840.10008.5.1.4.1.1.481.2"
_ENHANCED_TO_LEGACY = {  # a multi-frame "enhanced" image written back as one file per slice
    "1.2.840.10008.5.1.4.1.1.2.1": "1.2.840.10008.5.1.4.1.1.2",  # CT
    "1.2.840.10008.5.1.4.1.1.4.1": "1.2.840.10008.5.1.4.1.1.4",  # MR
    "1.2.840.10008.5.1.4.1.1.130": "1.2.840.10008.5.1.4.1.1.128",  # PET
}
_STORED_TYPES = {(8, 0): np.uint8, (8, 1): np.int8, (16, 0): np.uint16, (16, 1): np.int16,
                 (32, 0): np.uint32, (32, 1): np.int32}
#: tags that would be stale or wrong in a re-encoded, rescaled, single-frame copy
_DROP_ON_WRITE = (
    "SmallestImagePixelValue", "LargestImagePixelValue", "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries", "PixelPaddingValue", "PixelPaddingRangeLimit", "ModalityLUTSequence",
    "NumberOfFrames", "FrameIncrementPointer", "PerFrameFunctionalGroupsSequence",
    "SharedFunctionalGroupsSequence", "PlanarConfiguration", "IconImageSequence", "DataSetTrailingPadding",
    "ExtendedOffsetTable", "ExtendedOffsetTableLengths", "FloatPixelData", "DoubleFloatPixelData", "PixelData",
    "RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData", "GridFrameOffsetVector",
)


def _pydicom():
    return _require("pydicom")


def _major() -> int:
    return int(_pydicom().__version__.split(".")[0])


def _sniff(p: Path) -> str | None:
    """``"dicom"`` (``DICM`` preamble), ``"raw"`` (looks like a bare little-endian dataset), or ``None``."""
    with open(p, "rb") as f:
        head = f.read(132)
    if head[128:132] == b"DICM":
        return "dicom"
    if len(head) >= 8 and head[:2] in (b"\x08\x00", b"\x02\x00") and head[3:4] == b"\x00":
        return "raw"
    return None


def _raw_elem(ds, tag):
    try:
        return ds.get_item(tag, keep_deferred=True)
    except TypeError:  # pydicom < 3: look without triggering the deferred read
        return ds._dict.get(tag)


def _pixel_tag(ds) -> int | None:
    return next((t for t in _PIXEL_TAGS if t in ds), None)


def _load(p: Path, kind: str):
    """Read a dataset (pixel data deferred) and check every deferred element's length against the file."""
    pydicom = _pydicom()
    size = p.stat().st_size
    with _BoundedReader(p) as f, _quiet():
        ds = pydicom.dcmread(f, defer_size=_DEFER, force=(kind == "raw"))
        uid = _transfer_syntax(ds)
        if uid is not None and getattr(uid, "is_deflated", False):
            return ds  # offsets are in the inflated stream, not the file: the memory check still applies
        for tag in list(ds.keys()):
            elem = _raw_elem(ds, tag)
            value = getattr(elem, "value", 0)
            if value is None and elem.length not in (0, _UNDEFINED):
                check_holds(p, int(elem.length), size - int(elem.value_tell),
                            what=f"the file (element {tag:08X})")
    return ds


def _transfer_syntax(ds):
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return _pydicom().uid.UID(str(uid)) if uid else None


def _needs(missing: list[str]) -> tuple[str, str]:
    """From pydicom's ``missing_dependencies`` lines: ("pylibjpeg or GDCM", "pip install ...")."""
    names, pips = [], []
    for line in missing:
        name, _, req = line.partition(" - requires ")
        pkgs = [r.strip().split(">")[0].split("=")[0].split("<")[0] for r in req.split(" and ") if r.strip()]
        pkgs = ["python-gdcm" if q == "gdcm" else q for q in pkgs if q and q != "numpy"]
        names.append("GDCM" if name.strip() == "gdcm" else name.strip())
        pips.append(" ".join(pkgs))
    rank = {"pylibjpeg": 0, "GDCM": 1}
    pairs = sorted(zip(names, pips), key=lambda np_: rank.get(np_[0], 2))
    return " or ".join(n for n, _ in pairs), ", or ".join(q for _, q in pairs if q)


def _check_decodable(p: Path, ds) -> None:
    """Refuse a compressed transfer syntax that no installed pydicom plugin can decode, naming it."""
    pydicom = _pydicom()
    uid = _transfer_syntax(ds)
    if uid is None or not uid.is_compressed:
        return
    label = f"{uid.name} ({uid})" if uid.name != uid else str(uid)
    try:
        from pydicom.pixels import get_decoder
    except ImportError:  # pydicom 2.x: pixel data handlers
        handlers = pydicom.config.pixel_data_handlers
        if any(h.is_available() and h.supports_transfer_syntax(uid) for h in handlers):
            return
        raise ScanIOError(f"{p}: {label} needs pylibjpeg or GDCM to decode (pip install pylibjpeg "
                          "pylibjpeg-libjpeg pylibjpeg-openjpeg, or python-gdcm)") from None
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise ScanIOError(f"{p}: pydicom cannot decode the transfer syntax {label}") from None
    if decoder.is_available:
        return
    names, pips = _needs(list(decoder.missing_dependencies))
    raise ScanIOError(f"{p}: {label} needs {names or 'pylibjpeg or GDCM'} to decode"
                      + (f" (pip install {pips})" if pips else ""))


def _fg_item(ds, k: int, name: str):
    """Functional-group macro ``name`` of frame ``k`` (per-frame first, then shared), or ``None``."""
    for groups, idx in (("PerFrameFunctionalGroupsSequence", k), ("SharedFunctionalGroupsSequence", 0)):
        seq = ds.get(groups)
        if seq is not None and len(seq) > idx:
            macro = seq[idx].get(name)
            if macro:
                return macro[0]
    return None


def _floats(value, n: int | None = None) -> list[float] | None:
    """A DS/IS value (single or multi-valued) as floats; ``None`` if absent, malformed or not ``n`` long."""
    if value is None or value == "":
        return None
    items = [value] if isinstance(value, (str, bytes, int, float)) else list(value)
    try:
        out = [float(v) for v in items]
    except (TypeError, ValueError):
        return None
    if (n is not None and len(out) != n) or not all(np.isfinite(out)):
        return None
    return out


class _Frame:
    """One 2-D plane of the volume: where it comes from and what its headers say."""

    __slots__ = ("ds_index", "frame", "inter", "iop", "ipp", "label", "number", "pixel_spacing", "slope")

    def __init__(self, label, ds_index, frame, ipp, iop, pixel_spacing, slope, inter, number):
        self.label, self.ds_index, self.frame = label, ds_index, frame
        self.ipp = None if ipp is None else np.asarray(ipp, dtype=np.float64)
        self.iop = None if iop is None else np.asarray(iop, dtype=np.float64)
        self.pixel_spacing, self.slope, self.inter, self.number = pixel_spacing, slope, inter, number


def _rescale(item, label: str) -> tuple[float, float]:
    """``RescaleSlope``/``RescaleIntercept`` (1 and 0 when absent).

    A slope that is present but 0, NaN, infinite or not a number (or such an intercept) is refused with
    :class:`ScanIOError` naming ``label`` and the tag: reading it as 1 would silently change every value.
    """
    out = []
    for tag, default in (("RescaleSlope", 1.0), ("RescaleIntercept", 0.0)):
        value = item.get(tag) if item is not None else None
        if value is None or value == "":
            out.append(default)
            continue
        v = _floats(value, 1)
        if v is None or (tag == "RescaleSlope" and v[0] == 0):
            kind = "finite non-zero" if tag == "RescaleSlope" else "finite"
            raise ScanIOError(f"{label}: its {tag} ({value}) is not a {kind} number: its values cannot be read "
                              "(fix or remove the tag)")
        out.append(v[0])
    return out[0], out[1]


def _dose_scaling(ds, label: str) -> float | None:
    """An RT Dose's ``DoseGridScaling`` (dose = stored value x it), ``None`` without one.

    A value present but not positive and finite is refused (:class:`ScanIOError` naming ``label``): reading
    the stored integers as doses would be off by that factor."""
    value = ds.get("DoseGridScaling")
    if value is None or value == "":
        return None
    v = _floats(value, 1)
    if v is None or v[0] <= 0:
        raise ScanIOError(f"{label}: its DoseGridScaling ({value}) is not a positive finite number: its doses "
                          "cannot be read (fix or remove the tag)")
    return v[0]


def _is_dose(ds) -> bool:
    """Whether ``ds`` is an RT Dose whose values are stored x ``DoseGridScaling`` (kept so on writing)."""
    return "DoseGridScaling" in ds and (str(ds.get("Modality", "")) == "RTDOSE"
                                         or str(ds.get("SOPClassUID", "")) == _RT_DOSE)


def _frames_of(ds, ds_index: int, label: str) -> list[_Frame]:
    """The planes of one dataset (one for a single-frame file, ``NumberOfFrames`` otherwise); an RT Dose's
    ``DoseGridScaling`` is part of each plane's slope (and intercept)."""
    frames = _planes_of(ds, ds_index, label)
    dose = _dose_scaling(ds, label)
    if dose is not None:
        for f in frames:
            f.slope, f.inter = f.slope * dose, f.inter * dose
    return frames


def _planes_of(ds, ds_index: int, label: str) -> list[_Frame]:
    n = int(ds.get("NumberOfFrames", 1) or 1)
    ipp = _floats(ds.get("ImagePositionPatient"), 3)
    iop = _floats(ds.get("ImageOrientationPatient"), 6)
    ps = _floats(ds.get("PixelSpacing"), 2) or _floats(ds.get("ImagerPixelSpacing"), 2)
    number = ds.get("InstanceNumber")
    number = int(number) if number not in (None, "") else None
    if n == 1 and "PerFrameFunctionalGroupsSequence" not in ds:
        slope, inter = _rescale(ds, label)
        return [_Frame(label, ds_index, 0, ipp, iop, ps, slope, inter, number)]
    frames = []
    offsets = _floats(ds.get("GridFrameOffsetVector"))
    step = None
    if iop is not None and offsets is None:
        dz = _floats(ds.get("SpacingBetweenSlices"), 1) or _floats(ds.get("SliceThickness"), 1)
        step = dz[0] if dz else None
    for k in range(n):
        f_ipp, f_iop, f_ps = None, iop, ps
        pos = _fg_item(ds, k, "PlanePositionSequence")
        ori = _fg_item(ds, k, "PlaneOrientationSequence")
        pm = _fg_item(ds, k, "PixelMeasuresSequence")
        pv = _fg_item(ds, k, "PixelValueTransformationSequence")
        if pos is not None:
            f_ipp = _floats(pos.get("ImagePositionPatient"), 3)
        elif ipp is not None and iop is not None and (offsets is not None or step is not None):
            normal = np.cross(iop[:3], iop[3:])
            off = offsets[k] if offsets is not None and len(offsets) == n else (k * step if step else None)
            f_ipp = None if off is None else list(np.asarray(ipp) + off * normal)
        if ori is not None:
            f_iop = _floats(ori.get("ImageOrientationPatient"), 6)
        if pm is not None:
            f_ps = _floats(pm.get("PixelSpacing"), 2) or f_ps
        slope, inter = _rescale(pv if pv is not None else ds, f"{label} frame {k + 1}")
        frames.append(_Frame(f"{label} frame {k + 1}", ds_index, k, f_ipp, f_iop, f_ps, slope, inter, k))
    return frames


def _order(where: Path, frames: list[_Frame], thickness: float | None):
    """Sort the planes along the slice normal; return (order, dz, step LPS vector, orientation) or refuse."""
    n = len(frames)
    have = [f.ipp is not None and f.iop is not None for f in frames]
    if not any(have):  # no geometry: the files' own numbering; the slice spacing from the headers (_read_sets)
        if n > 1:
            lacking = [f.label for f in frames if f.number is None]
            if lacking:
                raise ScanIOError(f"{where}: the slices have no ImagePositionPatient/ImageOrientationPatient and "
                                  f"{lacking[0]} has no InstanceNumber: cannot establish the order of the slices")
            seen: dict[int, str] = {}
            for f in frames:
                if f.number in seen:
                    raise ScanIOError(f"{where}: the slices have no ImagePositionPatient/ImageOrientationPatient and "
                                      f"{seen[f.number]} and {f.label} share InstanceNumber {f.number}: cannot "
                                      "establish the order of the slices")
                seen[f.number] = f.label
        order = sorted(range(n), key=lambda i: (frames[i].number is None, frames[i].number or 0, i))
        return order, thickness, None, None
    if not all(have):
        bad = frames[have.index(False)].label
        raise ScanIOError(f"{where}: {bad} lacks ImagePositionPatient/ImageOrientationPatient while others "
                          "have them; cannot order the slices")
    iop = frames[0].iop
    for f in frames[1:]:
        if np.max(np.abs(f.iop - iop)) > 1e-3:
            raise ScanIOError(f"{where}: mixes slice orientations ({frames[0].label} and {f.label} differ); "
                              "put one series per folder")
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    length = np.linalg.norm(normal)
    if not np.isfinite(length) or length < 1e-6 or np.linalg.norm(row) < 1e-6 or np.linalg.norm(col) < 1e-6:
        raise ScanIOError(f"{where}: ImageOrientationPatient {list(iop)} is not two independent directions")
    normal = normal / length
    proj = np.array([f.ipp @ normal for f in frames])
    order = list(np.argsort(proj, kind="stable"))
    if n == 1:
        return order, thickness, (None if thickness is None else normal * thickness), iop
    sp = proj[order]
    gaps = np.diff(sp)
    i = int(np.argmin(gaps))
    if gaps[i] < 1e-4:
        raise ScanIOError(f"{where}: {frames[order[i]].label} and {frames[order[i + 1]].label} are at the same "
                          "slice position (duplicate slices, or two acquisitions in one folder)")
    typical = float(np.median(gaps))
    tol = max(0.01 * typical, 1e-3)
    if float(np.max(np.abs(gaps - typical))) > tol:
        lo, hi = int(np.argmin(gaps)), int(np.argmax(gaps))
        raise ScanIOError(
            f"{where}: uneven slice spacing: {gaps[lo]:.4g} mm between {frames[order[lo]].label} and "
            f"{frames[order[lo + 1]].label} but {gaps[hi]:.4g} mm between {frames[order[hi]].label} and "
            f"{frames[order[hi + 1]].label} (missing slices?); pdediff needs evenly spaced slices"
        )
    dz = float((sp[-1] - sp[0]) / (n - 1))
    step = (frames[order[-1]].ipp - frames[order[0]].ipp) / (n - 1)
    return order, dz, step, iop


def _files(n: int) -> str:
    return f"{n} file{'' if n == 1 else 's'}"


def _check_series(where: Path, sets: list, labels: list[str]) -> None:
    """Refuse a folder that mixes series, image sizes or pixel types, saying which."""
    checks = [
        ("DICOM series", lambda d: str(d.get("SeriesInstanceUID", "?")), "put one series per folder"),
        ("image sizes", lambda d: f"{d.get('Rows')}x{d.get('Columns')}", "put one series per folder"),
        ("grey and colour images", lambda d: f"{int(d.get('SamplesPerPixel', 1) or 1)} samples/pixel",
         "put one series per folder"),
    ]
    for what, key, advice in checks:
        counts = Counter(key(d) for d in sets)
        if len(counts) > 1:
            (a, na), (b, nb) = counts.most_common(2)
            odd = labels[[key(d) for d in sets].index(b)]
            raise ScanIOError(f"{where}: folder mixes {len(counts)} {what}: {a} ({_files(na)}) and {b} "
                              f"({_files(nb)}, e.g. {odd}); {advice}")


def _pixel_claims(p: Path, ds) -> tuple[int, int, int, int, int]:
    """(frames, rows, cols, samples, bytes of pixel data the header implies); refuses nonsense."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.get("BitsAllocated", 16) or 16)
    except (AttributeError, TypeError, ValueError):
        raise ScanIOError(f"{p}: DICOM image without valid Rows/Columns/BitsAllocated") from None
    if min(rows, cols, frames, samples) <= 0 or bits not in (1, 8, 16, 32, 64):
        raise ScanIOError(f"{p}: invalid image header (Rows {rows}, Columns {cols}, NumberOfFrames {frames}, "
                          f"SamplesPerPixel {samples}, BitsAllocated {bits})")
    values = frames * rows * cols * samples
    return frames, rows, cols, samples, (values * bits + 7) // 8


def _check_pixel_size(p: Path, ds) -> int:
    """Compare the pixel bytes the header claims with the file (uncompressed); return the value count."""
    frames, rows, cols, samples, claimed = _pixel_claims(p, ds)
    tag = _pixel_tag(ds)
    uid = _transfer_syntax(ds)
    if str(ds.get("PhotometricInterpretation", "")).upper() in ("YBR_FULL_422", "YBR_PARTIAL_422"):
        claimed = claimed * 2 // 3  # chroma subsampled 4:2:2: two values per pixel are stored, not three
    deflated = uid is not None and getattr(uid, "is_deflated", False)  # the whole dataset is zlib-compressed
    if tag is not None and not (uid is not None and uid.is_compressed) and not deflated:
        elem = _raw_elem(ds, tag)
        size = p.stat().st_size
        if getattr(elem, "value", None) is None:
            holds = size - int(elem.value_tell)
            if elem.length != _UNDEFINED:
                holds = min(holds, int(elem.length))
        else:
            holds = len(elem.value)
        check_holds(p, claimed, holds)
    return frames * rows * cols * samples


def _decode(ds) -> np.ndarray:
    """The stored pixel values of a dataset, colour converted to RGB (palette applied)."""
    pydicom = _pydicom()
    arr = ds.pixel_array
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if photometric == "PALETTE COLOR":
        try:
            from pydicom.pixels import apply_color_lut
        except ImportError:
            from pydicom.pixel_data_handlers.util import apply_color_lut
        arr = apply_color_lut(arr, ds)
    elif photometric.startswith("YBR") and _major() < 3:
        arr = pydicom.pixel_data_handlers.util.convert_color_space(arr, photometric, "RGB")
    return arr


def _stored_dtype_of(ds) -> np.dtype:
    bits = int(ds.get("BitsAllocated", 16) or 16)
    rep = int(ds.get("PixelRepresentation", 0) or 0)
    if _pixel_tag(ds) == 0x7FE00008:
        return np.dtype(np.float32)
    if _pixel_tag(ds) == 0x7FE00009:
        return np.dtype(np.float64)
    return np.dtype(_STORED_TYPES.get((max(bits, 8), rep), np.uint16))


def _read_sets(where: Path, sets: list, labels: list[str], files: list[Path]) -> Scan:
    """Assemble a Scan from datasets (one multi-frame dataset, or single-frame slices of one series)."""
    for p, ds in zip(files, sets):
        _check_decodable(p, ds)
    frames: list[_Frame] = []
    for i, (ds, label) in enumerate(zip(sets, labels)):
        frames.extend(_frames_of(ds, i, label))
    ds0 = sets[0]
    _, rows, cols, samples, _ = _pixel_claims(files[0], ds0)
    colour = samples > 1 or str(ds0.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR"
    thick, thick_tag = None, None
    notes: list[str] = []
    bad_thick = []
    for tag in ("SpacingBetweenSlices", "SliceThickness"):
        raw = ds0.get(tag)
        value = _floats(raw, 1)
        if value and value[0] > 0:
            thick, thick_tag = value[0], tag
            break
        if raw not in (None, ""):
            bad_thick.append(f"{tag} {raw}")
    # PixelSpacing 0 or negative: no geometry from it (an affine with a zero column cannot be written); the
    # spacing goes to the central check (read_scan), which ignores it with a note naming the field
    ps_raw = frames[0].pixel_spacing
    bad_ps = ps_raw is not None and not all(v > 0 for v in ps_raw)
    order, dz, step, iop = _order(where, frames, thick)
    if len(frames) > 1 and all(f.ipp is None or f.iop is None for f in frames):
        how = "in file order" if len(sets) == 1 else "by InstanceNumber"
        what = "the slices have no ImagePositionPatient/ImageOrientationPatient"
        if dz is not None:
            notes.append(f"{what}: ordered {how}, slice spacing {dz:g} mm from {thick_tag}")
        else:
            bad = f" ({', '.join(bad_thick)}: not positive and finite, ignored)" if bad_thick else ""
            notes.append(f"{what}: ordered {how}; no valid SpacingBetweenSlices or SliceThickness either{bad}, so "
                         "the voxel spacing is unknown (not set)")
    dose = _dose_scaling(ds0, labels[0])
    if dose is not None:
        units = str(ds0.get("DoseUnits", "") or "").strip() or "unstated units"
        notes.append(f"RT Dose: doses = stored values x DoseGridScaling ({dose:g}), in {units}")
    spacings = {tuple(np.round(f.pixel_spacing, 6)) for f in frames if f.pixel_spacing is not None}
    if len(spacings) > 1:
        raise ScanIOError(f"{where}: mixes pixel spacings {sorted(spacings)[:2]}; put one series per folder")
    ps = frames[0].pixel_spacing
    stored = np.result_type(*[_stored_dtype_of(d) for d in sets])
    scaled = not colour and any(f.slope != 1 or f.inter != 0 for f in frames)
    out_dtype = np.dtype(np.float32 if stored.itemsize <= 2 else np.float64) if scaled else None
    if scaled and out_dtype.itemsize < 8 and stored.kind in "iu":
        # float64 where the rescaled values may exceed float32 (RescaleSlope 1e38 would make them inf)
        info = np.iinfo(stored)
        reach = max(abs(f.slope) * max(abs(int(info.min)), int(info.max)) + abs(f.inter) for f in frames)
        if reach > float(np.finfo(np.float32).max):
            out_dtype = np.dtype(np.float64)
    n = len(frames)
    shape = (n, rows, cols) + ((3,) if colour else ())
    # the output, plus one file's raw bytes and decoded frames at a time
    out_itemsize = out_dtype.itemsize if scaled else max(stored.itemsize, 2 if colour else 1)
    decoded = max(_pixel_claims(f, d)[0] for f, d in zip(files, sets)) * rows * cols * len(shape[3:] or (1,)) * 8
    check_memory(where, nbytes_of(shape, out_itemsize) + max(f.stat().st_size for f in files) + decoded)
    out = None
    position = {id(frames[i]): k for k, i in enumerate(order)}
    with _quiet():
        for i, ds in enumerate(sets):
            mine = [f for f in frames if f.ds_index == i]
            arr = _decode(ds)
            if len(mine) == 1 and arr.ndim == (3 if colour else 2):
                arr = arr[None]
            if arr.shape[1:3] != (rows, cols) or arr.shape[0] != len(mine) or arr.ndim != len(shape):
                raise ScanIOError(f"{where}: {labels[i]} decodes to shape {arr.shape}, not the {len(mine)} x "
                                  f"{rows} x {cols} its header states")
            if out is None:
                dtype = out_dtype or (arr.dtype if colour else np.result_type(stored, arr.dtype))
                out = np.empty(shape, dtype=dtype)
            for f in mine:
                plane = arr[f.frame]
                if scaled:
                    out[position[id(f)]] = plane.astype(np.float64) * f.slope + f.inter
                else:
                    out[position[id(f)]] = plane
            tag = _pixel_tag(ds)
            if tag is not None:
                del ds[tag]  # keep the header, free the pixels
            list(ds)  # resolve the other deferred elements now (their sizes were checked on reading)
    sorted_frames = [frames[i] for i in order]
    affine = None
    positions = None
    if iop is not None and ps is not None and not bad_ps:
        row, col = iop[:3], iop[3:]
        dy, dx = ps
        lps = np.eye(4)
        origin = sorted_frames[0].ipp
        normal = np.cross(row, col)
        normal = normal / np.linalg.norm(normal)
        if n > 1:
            lps[:3, 0], lps[:3, 1], lps[:3, 2] = step, col * dy, row * dx
        else:
            lps[:3, 0], lps[:3, 1], lps[:3, 2] = col * dy, row * dx, normal * (dz or 1.0)
        lps[:3, 3] = origin
        affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
        positions = np.array([f.ipp for f in sorted_frames])
    data = out[0] if n == 1 else out
    if ps is None or (n > 1 and dz is None):
        spacing = None
    else:
        spacing = (float(ps[0]), float(ps[1])) if n == 1 else (float(dz), float(ps[0]), float(ps[1]))
    multiframe = len(sets) == 1 and int(ds0.get("NumberOfFrames", 1) or 1) > 1
    slice_sets = [sets[f.ds_index] for f in sorted_frames] if not multiframe else sets
    meta = {
        "index_order": "zyx",
        "affine": affine,
        "positions": positions,
        "orientation": None if iop is None else np.asarray(iop, dtype=np.float64),
        "datasets": slice_sets,
        "files": [files[f.ds_index] for f in sorted_frames],
        "rescale": [(f.slope, f.inter) for f in sorted_frames],
        "multiframe": multiframe,
        "photometric": str(ds0.get("PhotometricInterpretation", "")),
        "transfer_syntax": str(_transfer_syntax(ds0) or ""),
        "unit": "mm",
    }
    return Scan(data, spacing=spacing, channel_axis=-1 if colour else None, meta=meta, stored_dtype=stored,
                scaled=scaled, notes=notes)


def _is_image(ds) -> bool:
    return _pixel_tag(ds) is not None and "Rows" in ds and str(ds.get("SOPClassUID", "")) != _DICOMDIR


def read_dicom(p: Path) -> Scan:
    """Read a DICOM file (single or multi-frame) or a folder holding one series."""
    _pydicom()
    with _quiet():  # values are converted lazily: pydicom may warn about odd ones at any point
        return _read_folder(p) if p.is_dir() else _read_file(p)


def _check_truncated(p: Path, ds) -> None:
    """Refuse, as truncated, a dataset without pixel data that ends early: an element (a sequence read lazily
    included) that cannot be read to its end, or an image header (``Rows``) with no pixel data after it."""
    size = p.stat().st_size
    keys = list(ds.keys())
    last = _raw_elem(ds, keys[-1]) if keys else None  # before walk() converts it: its offset in the file
    tell, length = getattr(last, "value_tell", None), getattr(last, "length", None)
    rest = size - (tell + length) if tell is not None and length not in (None, _UNDEFINED) else 0
    if rest < 0 or 0 < rest < 8:  # cut inside its value, or inside the next element's header (8 bytes or more)
        raise ScanIOError(f"{p}: truncated: the file ends ({size} bytes) inside a data element, before any "
                          "pixel data")

    def walk(dataset) -> None:
        for elem in dataset:
            if elem.VR == "SQ":
                for item in elem.value:
                    walk(item)

    try:
        walk(ds)
    except (OSError, EOFError, ValueError, struct_error) as exc:
        raise ScanIOError(f"{p}: truncated: the file ends inside a data element before any pixel data "
                          f"({_one_line(exc)})") from None
    meta = getattr(ds, "file_meta", None)
    group = _floats(meta.get("FileMetaInformationGroupLength"), 1) if meta is not None else None
    if group and 144 + group[0] > size:  # preamble, "DICM" and the group length element, then the group
        raise ScanIOError(f"{p}: truncated: the file ends ({size} bytes) inside its file meta information "
                          f"({144 + int(group[0])} bytes)")
    sop = ds.get("SOPClassUID")
    if "Rows" in ds or "Image Storage" in str(getattr(sop, "name", "")):
        raise ScanIOError(f"{p}: truncated: a {getattr(sop, 'name', sop) or 'DICOM image'} file that ends before "
                          "its pixel data")


def _read_file(p: Path) -> Scan:
    kind = _sniff(p)
    if kind is None:
        raise ScanIOError(f"{p}: no DICOM preamble ('DICM' at byte 128): unsupported file type or corrupt")
    ds = _load(p, kind)
    if not _is_image(ds):
        _check_truncated(p, ds)
        sop = ds.get("SOPClassUID")
        raise ScanIOError(f"{p}: a DICOM file without pixel data ({getattr(sop, 'name', sop) or 'no SOP class'}); "
                          "expected an image")
    _check_pixel_size(p, ds)
    return _read_sets(p, [ds], [p.name], [p])


def _read_folder(folder: Path) -> Scan:
    entries = sorted(e for e in folder.iterdir() if e.is_file())
    if not entries:
        raise ScanIOError(f"{folder}: folder is empty; expected the files of one DICOM series")
    sets, labels, files = [], [], []
    for e in entries:
        try:
            kind = _sniff(e)
        except OSError:
            kind = None
        if kind is None:
            continue
        try:
            ds = _load(e, kind)
        except ScanIOError as exc:
            raise ScanIOError(str(exc).replace(f"{e}:", f"{folder}: {e.name}:", 1)) from None
        except Exception as exc:
            if kind == "raw":  # only looked like a bare dataset: not a DICOM file after all
                continue
            raise ScanIOError(f"{folder}: {e.name}: cannot read as DICOM ({_one_line(exc)})") from exc
        meta = getattr(ds, "file_meta", None)
        if meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == _DICOMDIR:
            continue
        if not _is_image(ds):
            try:  # a slice cut short is not skipped as if it were a report: the series would lose it
                _check_truncated(e, ds)
            except ScanIOError as exc:
                raise ScanIOError(str(exc).replace(f"{e}:", f"{folder}: {e.name}:", 1)) from None
            continue
        sets.append(ds)
        labels.append(e.name)
        files.append(e)
    if not sets:
        raise ScanIOError(f"{folder}: no DICOM images among its {_files(len(entries))}")
    multi = [lab for lab, d in zip(labels, sets) if int(d.get("NumberOfFrames", 1) or 1) > 1]
    if multi and len(sets) > 1:
        raise ScanIOError(f"{folder}: holds {len(sets)} images, {len(multi)} of them multi-frame (e.g. "
                          f"{multi[0]}); give the multi-frame file itself, or one single-frame series per folder")
    _check_series(folder, sets, labels)
    for e, ds in zip(files, sets):
        try:
            _check_pixel_size(e, ds)
        except ScanIOError as exc:
            raise ScanIOError(str(exc).replace(f"{e}:", f"{folder}: {e.name}:", 1)) from None
    return _read_sets(folder, sets, labels, files)


# ---------------------------------------------------------------------------- write
def _ds(value: float) -> str:
    """A number as a valid DICOM decimal string (at most 16 characters)."""
    from pydicom.valuerep import format_number_as_ds

    value = float(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return format_number_as_ds(value)


def _quantise(values: np.ndarray, dtype: np.dtype, slope0: float | None, inter0: float | None):
    """Stored integers, slope and intercept for one slice: the original pair if the data fit, else new ones."""
    info = np.iinfo(dtype)
    v = np.asarray(values, dtype=np.float64)
    if slope0 is not None and slope0 != 0:
        q = np.rint((v - inter0) / slope0)
        if q.min() >= info.min and q.max() <= info.max:
            return q.astype(dtype), slope0, inter0
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        slope, inter = 1.0, lo
    else:
        slope = (hi - lo) / (float(info.max) - float(info.min) - 1.0)  # one level of headroom for rounding
        inter = lo - float(info.min) * slope
    slope, inter = float(_ds(slope)), float(_ds(inter))
    q = np.clip(np.rint((v - inter) / slope), info.min, info.max)
    return q.astype(dtype), slope, inter


def _valid_spacing_tags(ds, spacing, ndim: int, override: bool = False) -> None:
    """Never copy an invalid spacing from the input's headers: a ``PixelSpacing`` (or ``ImagerPixelSpacing``)
    that is not positive and finite (``read_scan`` ignored it with a note) becomes ``spacing``'s ``(dy, dx)``,
    the one used, else 1; a slice spacing that is not (a 3-D series), its ``dz``.  With ``override`` (a new
    spacing for a series without positions) every such tag becomes ``spacing``'s, and ``PixelSpacing`` is
    written even where the input had none."""
    sp = [float(v) for v in spacing] if spacing is not None and len(spacing) == ndim else None
    if sp is not None and not all(np.isfinite(v) and v > 0 for v in sp):
        sp = None
    override = override and sp is not None
    if override and "ImagerPixelSpacing" not in ds:
        ds.PixelSpacing = [_ds(x) for x in sp[-2:]]
    for tag in ("PixelSpacing", "ImagerPixelSpacing"):
        if tag in ds and (override or not ((v := _floats(ds.get(tag), 2)) and all(x > 0 for x in v))):
            setattr(ds, tag, [_ds(x) for x in (sp[-2:] if sp else (1.0, 1.0))])
    if ndim == 3:
        for tag in ("SpacingBetweenSlices", "SliceThickness"):
            raw = ds.get(tag)
            if override or (raw not in (None, "") and not ((v := _floats(raw, 1)) and v[0] > 0)):
                setattr(ds, tag, _ds(sp[0] if sp else 1.0))


def _quantise_dose(p: Path, values: np.ndarray, dtype: np.dtype, scaling0: float | None):
    """Stored integers and ``DoseGridScaling`` (intercept 0) for one RT Dose slice: the input's scaling if the
    doses fit it, else the largest dose on the type's largest value."""
    info = np.iinfo(dtype)
    v = np.asarray(values, dtype=np.float64)
    if v.size and float(v.min()) < 0 and info.min == 0:
        raise ScanIOError(f"{p}: an RT Dose stores doses >= 0 as {dtype} x DoseGridScaling; the result reaches "
                          f"{float(v.min()):.6g}: write .nii or .npy instead")
    if scaling0 is not None and scaling0 > 0:
        q = np.rint(v / scaling0)
        if q.min() >= info.min and q.max() <= info.max:
            return q.astype(dtype), scaling0, 0.0
    big = float(np.abs(v).max()) if v.size else 0.0
    scaling = float(_ds(big / (float(info.max) - 1.0))) if big > 0 else (scaling0 or 1.0)
    q = np.clip(np.rint(v / scaling), info.min, info.max)
    return q.astype(dtype), scaling, 0.0


def _write_geometry(data_ndim: int, n: int, like: Scan | None, affine, spacing):
    """(positions (n, 3) LPS or None, orientation (6,), (dy, dx), slice thickness) for the slices written."""
    if like is not None and like.format == "dicom" and like.meta.get("positions") is not None \
            and len(like.meta["positions"]) == n and affine is not None:
        iop = like.meta["orientation"]
        pos = like.meta["positions"]
        lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
        if data_ndim == 3:
            dy, dx = np.linalg.norm(lps[:3, 1]), np.linalg.norm(lps[:3, 2])
            thick = np.linalg.norm(lps[:3, 0])
        else:
            dy, dx = np.linalg.norm(lps[:3, 0]), np.linalg.norm(lps[:3, 1])
            thick = np.linalg.norm(lps[:3, 2])
        return pos, iop, (dy, dx), thick
    if affine is not None:
        lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
        if data_ndim == 3:
            step, colv, rowv = lps[:3, 0], lps[:3, 1], lps[:3, 2]
        else:
            colv, rowv, step = lps[:3, 0], lps[:3, 1], lps[:3, 2]
        dy, dx = float(np.linalg.norm(colv)), float(np.linalg.norm(rowv))
        if dy > 0 and dx > 0:
            iop = np.concatenate([rowv / dx, colv / dy])
            pos = lps[:3, 3] + np.arange(n)[:, None] * step[None, :]
            return pos, iop, (dy, dx), float(np.linalg.norm(step))
    sp = [1.0] * data_ndim if spacing is None else [float(s) for s in spacing]
    dz = sp[0] if data_ndim == 3 else 1.0
    dy, dx = sp[-2], sp[-1]
    pos = np.zeros((n, 3))
    pos[:, 2] = np.arange(n) * dz
    return pos, np.array([1.0, 0, 0, 0, 1.0, 0]), (dy, dx), dz


def _fresh_dataset():
    """A minimal Secondary Capture dataset (new study and frame of reference) for arrays without DICOM origin."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = _SECONDARY_CAPTURE
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.PatientName = ""
    ds.PatientID = ""
    ds.StudyInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.StudyID = ""
    ds.SeriesNumber = 1
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def _stored_type(stored_dtype, like: Scan | None, data_dtype: np.dtype) -> np.dtype:
    ok = {np.dtype(t) for t in _STORED_TYPES.values()}
    for cand in (stored_dtype, like.stored_dtype if like is not None else None, data_dtype):
        if cand is not None and np.dtype(cand) in ok:
            return np.dtype(cand)
    return np.dtype(np.int16)


def _save(ds, path: Path, big_endian_source: bool) -> None:
    pydicom = _pydicom()
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    if big_endian_source:  # raw binary values of a big-endian file would be misread once little-endian
        for elem in list(ds):
            if elem.VR in ("OW", "OF", "OD", "OL", "OV", "UN") and elem.tag != 0x7FE00010:
                del ds[elem.tag]
    with _quiet():  # pydicom warns about the input's own odd values (e.g. a UID of 41 characters) it copies
        if _major() >= 3:
            ds.set_original_encoding(False, True, ds.get("SpecificCharacterSet"))
            pydicom.dcmwrite(str(path), ds, enforce_file_format=True)
        else:
            ds.is_little_endian, ds.is_implicit_VR = True, False
            ds.preamble = b"\0" * 128
            ds.save_as(str(path), write_like_original=False)


def _big_endian(ds) -> bool:
    enc = getattr(ds, "original_encoding", None)
    if enc is not None:
        return enc[1] is False
    return getattr(ds, "is_little_endian", True) is False


def write_dicom(p, data, like, spacing, ch, *, stored_dtype=None):
    """A DICOM series into the folder ``p`` (one file per slice), or one 2-D image into the file ``p``."""
    _pydicom()
    from pydicom.uid import generate_uid

    p = Path(p)
    override = spacing_overridden(like, spacing, np.ndim(data))  # a new spacing: positions follow it
    data, affine, spacing = to_index_order(_native(data), like, spacing, "zyx")
    if not np.all(np.isfinite(data)):
        raise ScanIOError(f"{p}: DICOM cannot store NaN or infinite values")
    slices = data[None] if data.ndim == 2 else data
    n = slices.shape[0]
    stored = _stored_type(stored_dtype, like, data.dtype)
    bits, rep = 8 * stored.itemsize, int(stored.kind == "i")
    templates = like.meta.get("datasets") if like is not None and like.format == "dicom" else None
    same = bool(templates) and not like.meta.get("multiframe") and like.data.shape == data.shape \
        and len(templates) == n
    if same and like.meta.get("positions") is None:
        geometry = None  # the input had no patient geometry: invent none
    else:
        geometry = _write_geometry(data.ndim, n, None if override else like, affine, spacing)
    series_uid = generate_uid()
    base = None if templates else _fresh_dataset()
    original = str(templates[0].get("SeriesDescription", "") or "") if templates else ""
    description = f"pdediff: {original}"[:64] if original else "pdediff"
    for k in range(n):
        if templates:
            template = templates[k if same else 0]
            ds, big = copy.deepcopy(template), _big_endian(template)
            if str(ds.get("SOPClassUID", "")) in _ENHANCED_TO_LEGACY:
                ds.SOPClassUID = _ENHANCED_TO_LEGACY[str(ds.SOPClassUID)]
            elif "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
                ds.SOPClassUID = _SECONDARY_CAPTURE
            image_type = [str(v) for v in (ds.get("ImageType") or [])]
            ds.ImageType = ["DERIVED", "SECONDARY"] + image_type[2:]
        else:
            ds, big = copy.deepcopy(base), False
        for keyword in _DROP_ON_WRITE:
            if keyword in ds:
                delattr(ds, keyword)
        if same:
            slope0, inter0 = like.meta["rescale"][k]
        elif data.dtype.kind in "iu":
            slope0, inter0 = 1.0, 0.0
        else:
            slope0, inter0 = None, None
        dose = _is_dose(ds)
        if dose:  # dose = stored x DoseGridScaling: no intercept (a RescaleSlope would be ignored by viewers)
            scaling0 = slope0 if slope0 is not None and inter0 == 0 else _dose_scaling(ds, "the input")
            q, slope, inter = _quantise_dose(p, slices[k], stored, scaling0)
        else:
            q, slope, inter = _quantise(slices[k], stored, slope0, inter0)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.SeriesDescription = description
        ds.DerivationDescription = "written by pdediff"
        ds.InstanceNumber = k + 1
        ds.SamplesPerPixel = 1
        if str(ds.get("PhotometricInterpretation", "")) not in ("MONOCHROME1", "MONOCHROME2"):
            ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = int(slices.shape[1]), int(slices.shape[2])
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, rep
        if geometry is not None:
            positions, iop, (dy, dx), thick = geometry
            ds.ImagePositionPatient = [_ds(v) for v in positions[k]]
            ds.ImageOrientationPatient = [_ds(v) for v in iop]
            ds.PixelSpacing = [_ds(dy), _ds(dx)]
            if not same or (override and data.ndim == 3):
                if thick:
                    ds.SliceThickness = _ds(thick)
                    if data.ndim == 3:
                        ds.SpacingBetweenSlices = _ds(thick)
                normal = np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float))
                ds.SliceLocation = _ds(float(np.asarray(positions[k], float) @ normal))
        if geometry is None:
            _valid_spacing_tags(ds, spacing, data.ndim, override)
        if dose:
            ds.DoseGridScaling = _ds(slope)
            for keyword in ("RescaleSlope", "RescaleIntercept", "RescaleType"):
                if keyword in ds:
                    delattr(ds, keyword)
        elif slope != 1 or inter != 0 or "RescaleSlope" in ds or "RescaleIntercept" in ds:
            ds.RescaleSlope, ds.RescaleIntercept = _ds(slope), _ds(inter)
            if "RescaleType" not in ds and str(ds.get("Modality", "")) != "CT":
                ds.RescaleType = "US"
        raw = q.astype(stored.newbyteorder("<")).tobytes()
        if len(raw) % 2:
            raw += b"\0"
        ds.add_new(0x7FE00010, "OB" if bits == 8 else "OW", raw)
        _save(ds, p / f"{k + 1:05d}.dcm" if p.is_dir() else p, big)


# --------------------------------------------------------------- replacing a series
def is_replaceable_series(folder: Path) -> str | None:
    """Why ``folder`` may not be replaced by a new series (``None`` if it holds only DICOM files)."""
    for e in folder.iterdir():
        if e.is_symlink() or not e.is_file():
            return f"it holds {e.name!r}, which is not a file"
        try:
            kind = _sniff(e)
        except OSError:
            kind = None
        if kind is None:
            return f"it holds {e.name!r}, which is not a DICOM file"
    return None


# ----------------------------------------------------------------------------- checks and record
def is_series_path(path: str) -> bool:
    """Whether a DICOM output at ``path`` is a series folder (an existing folder, a path ending in ``/``,
    anything but a ``.dcm`` file) rather than one ``.dcm`` file."""
    return Path(path).is_dir() or path.endswith(("/", os.sep)) or not Path(path).name.lower().endswith(".dcm")


def _check_dicom(r: WriteRequest) -> None:
    sd = r.stored_dtype
    if sd is not None and (sd.kind not in "iu" or sd.itemsize not in (1, 2, 4)):
        raise ValueError(f"{r.where}: DICOM stores 8-, 16- or 32-bit integer pixels; got stored_dtype {sd}")
    if r.channel_axis is not None:
        raise ValueError(f"{r.where}: DICOM output here is greyscale; write colour images as .tif or .png")
    if r.dtype.kind not in "iuf":
        raise ValueError(f"{r.where}: DICOM stores integer pixels (float data via a slope/intercept); got {r.dtype}")
    if not is_series_path(r.path) and r.spatial != 2:
        raise ValueError(f"{r.where}: a .dcm file holds one 2-D image here; write a {r.spatial}-D volume as a "
                         "DICOM series folder (an OUTPUT ending in '/')")
    if r.spatial not in (2, 3):
        raise ValueError(f"{r.where}: DICOM series hold 2-D or 3-D scans; got shape {r.shape}: write .npy")


FORMATS = (
    Format("dicom", "DICOM", (".dcm",), read=read_dicom, write=write_dicom, check=_check_dicom, scaled=True,
           spacing_field="PixelSpacing and slice spacing",
           directory=is_series_path, replace_problem=is_replaceable_series, sniff=lambda p: _sniff(p) == "dicom",
           folders=True),
)
