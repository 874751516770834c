"""PNG and JPEG (imageio/Pillow) and TIFF (tifffile), with alpha channels and TIFF voxel spacing.

TIFF spacing
    x/y from ``XResolution``/``YResolution`` (spacing = 1/resolution), z from
    ImageJ's ``spacing`` (or tifffile's JSON description), converted to
    millimetres when a length unit is stated (ImageJ ``unit``, else
    ``ResolutionUnit`` inch/centimetre); unitless otherwise.  Written back as
    ImageJ hyperstacks for uint8/uint16/float32, as resolution tags in pixels
    per centimetre plus a JSON ``spacing`` otherwise, in the input TIFF's own
    ImageJ length unit when there is one (a stack in microns stays in
    microns: ``meta["length_unit"]``), else in millimetres.  A spacing read
    without a unit (a TIFF with ``ResolutionUnit`` NONE and no ImageJ unit,
    or an image or array format that records none) is written back without
    one (``ResolutionUnit`` NONE, no ImageJ unit): no unit is invented.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .._base import Scan, ScanIOError, _BoundedReader, _native, _quiet, _require
from .._format import Format, WriteRequest
from .._limits import _available_memory, check_deflate_ratio, check_holds, check_memory, nbytes_of

#: length units (ImageJ's ``unit``, TIFF's ResolutionUnit) in millimetres
_UNITS_MM = {
    "mm": 1.0, "millimeter": 1.0, "millimetre": 1.0, "millimeters": 1.0, "millimetres": 1.0,
    "micron": 1e-3, "microns": 1e-3, "um": 1e-3, "\u00b5m": 1e-3, "\u03bcm": 1e-3, "micrometer": 1e-3,
    "micrometre": 1e-3, "nm": 1e-6, "nanometer": 1e-6, "nanometre": 1e-6, "cm": 10.0, "centimeter": 10.0,
    "centimetre": 10.0, "m": 1e3, "meter": 1e3, "metre": 1e3, "inch": 25.4, "in": 25.4,
}
_PIL_LOCK = threading.Lock()


def _imageio():
    _require("imageio")
    import imageio.v3 as iio

    return iio


# ----------------------------------------------------------------------------- PNG / JPEG
def _bytes_per_band(mode: str) -> int:
    if mode.startswith("I;16"):
        return 2
    if mode in ("I", "F", "I;32"):
        return 4
    return 1


def read_image(p: Path, fmt: str) -> Scan:
    """PNG/JPEG: the size Pillow reads from the header is checked before decoding."""
    iio = _imageio()
    from PIL import Image

    avail = _available_memory()
    with _PIL_LOCK, _quiet():
        default = Image.MAX_IMAGE_PIXELS
        if default is not None and avail:
            # Pillow's bomb limit (89 Mpixel) follows the memory available; the byte check below is exact
            Image.MAX_IMAGE_PIXELS = max(default, avail // 8)
        try:
            with _BoundedReader(p) as f, Image.open(f) as im:
                width, height = im.size
                mode = im.mode
                frames = int(getattr(im, "n_frames", 1) or 1)
                tile = im.tile[0] if im.tile else None
                bands = 4 if mode in ("P", "PA") else len(im.getbands())  # palettes may expand to RGBA
        finally:
            Image.MAX_IMAGE_PIXELS = default
    if mode not in _PIL_MODES:
        raise ScanIOError(f"{p}: {fmt.upper()} in Pillow mode {mode!r} is not supported; pdediff reads "
                          f"{_PIL_MODE_HELP}: convert it to RGB or grey first")
    rawmode = str(tile[3] if tile is not None and len(tile) > 3 else "")
    if fmt == "png" and ";16" in rawmode and rawmode.split(";")[0] in ("RGB", "RGBA", "LA"):
        raise ScanIOError(f"{p}: 16-bit colour PNG ({rawmode.split(';')[0]}): Pillow would decode it to 8 bits; "
                          "convert it to a 16-bit TIFF first")
    claimed = nbytes_of((width, height, bands, frames), _bytes_per_band(mode))
    if fmt == "png":
        check_deflate_ratio(p, claimed, p.stat().st_size)
    check_memory(p, 2 * claimed)
    notes = []
    convert = _PIL_CONVERT.get(mode)
    convert = convert if frames == 1 else None
    if convert is not None:  # Pillow converts (Adobe's inverted CMYK included); imageio would not
        with _PIL_LOCK, _quiet(), _BoundedReader(p) as f, Image.open(f) as im:
            target = convert(im)
            data = np.asarray(im.convert(target))
        what = {"CMYK": "CMYK", "P": "palette (P)", "PA": "palette+alpha (PA)"}[mode]
        notes.append(f"{p.name}: {what} {fmt.upper()} read as {target} (converted by Pillow); an output "
                     f"written from it holds {target}, not {mode}")
    else:
        with _quiet(), _BoundedReader(p) as f:
            data = np.asarray(iio.imread(f, extension=f".{'jpg' if fmt == 'jpeg' else 'png'}"))
    spatial = 2 if frames == 1 else 3
    channel_axis, alpha = None, False
    if data.ndim == spatial + 1:
        if (mode == "CMYK" and convert is None) or data.shape[-1] not in (2, 3, 4):  # CMYK frames (not converted)
            raise ScanIOError(f"{p}: {fmt.upper()} in Pillow mode {mode!r} decodes to {data.shape[-1]} "
                              f"channels; pdediff reads {_PIL_MODE_HELP}: convert it first")
        channel_axis = -1
        alpha = data.shape[-1] in (2, 4)
    return Scan(data, channel_axis=channel_axis, alpha=alpha, notes=notes)


#: Pillow modes of PNG/JPEG files read as they are (1-bit masks as bool; 16-bit grey as uint16)
_PIL_MODES = ("1", "L", "LA", "RGB", "RGBA", "I", "I;16", "I;16B", "I;16L", "P", "PA", "CMYK")
#: modes Pillow converts on reading, and to what: a palette's transparency becomes alpha (imageio dropped it),
#: CMYK becomes RGB (imageio gave the four inks, Adobe-inverted, as RGBA)
_PIL_CONVERT = {
    "CMYK": lambda im: "RGB",
    "P": lambda im: "RGBA" if "transparency" in im.info else "RGB",
    "PA": lambda im: "RGBA",
}
_PIL_MODE_HELP = ("grey (1, L, I;16), grey+alpha (LA), RGB, RGBA, palette (P, PA: expanded to RGB/RGBA) and CMYK "
                  "(converted to RGB)")


def write_image(p, data, like, spacing, ch, *, fmt: str | None = None):
    """PNG or JPEG (``fmt``; default: from ``p``'s suffix)."""
    iio = _imageio()
    data = _native(data)
    if ch is not None and data.shape[-1] == 1:
        data = data[..., 0]
    if fmt is None:
        fmt = "jpeg" if str(p).lower().endswith((".jpg", ".jpeg")) else "png"
    ext = ".jpg" if fmt == "jpeg" else ".png"
    kwargs = {"quality": 95} if ext == ".jpg" else {}
    iio.imwrite(p, data, extension=ext, **kwargs)


# ----------------------------------------------------------------------------- TIFF
def _resolution(tag) -> float | None:
    """Pixels per unit from a resolution tag; ``None`` without the tag, NaN when it is 0, negative or
    malformed (the spacing then goes to read_scan's check, which ignores it with a note naming the field)."""
    if tag is None:
        return None
    try:
        num, den = tag.value
        value = float(num) / float(den)
    except (TypeError, ValueError, ZeroDivisionError, AttributeError):
        return float("nan")
    return value if np.isfinite(value) and value > 0 else float("nan")


def _ome_spacing(tf, spatial: int, tf_unit: list) -> tuple[float, ...] | None:
    """OME-TIFF ``Pixels`` ``PhysicalSizeZ/Y/X`` (with ``PhysicalSize*Unit``, µm when absent) in mm for the
    first image; ``None`` if the file is not OME or states no size for an axis pdediff reads."""
    if not getattr(tf, "is_ome", False) or not tf.ome_metadata or spatial not in (2, 3):
        return None
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(tf.ome_metadata)
    except ET.ParseError:
        return None
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None
    out, units = [], set()
    for axis in "ZYX"[3 - spatial:]:
        size = pixels.get(f"PhysicalSize{axis}")
        unit = pixels.get(f"PhysicalSize{axis}Unit", "\u00b5m")
        scale = _UNITS_MM.get(unit, _UNITS_MM.get(unit.lower()))
        if size is None or scale is None:
            return None
        try:
            out.append(float(size) * scale)
        except ValueError:
            out.append(float("nan"))  # read_scan ignores it with a note naming the field
        units.add(unit)
    if len(units) == 1:
        tf_unit[0] = units.pop()  # written back in the file's own unit
    return tuple(out)


def _tiff_spacing(tf, page, spatial: int, tf_unit: list) -> tuple[tuple[float, ...] | None, str | None]:
    """Voxel spacing and its unit ("mm", or the file's unit if unknown) from resolution tags/ImageJ/JSON;
    ``tf_unit[0]`` is set to the ImageJ length unit the file states (e.g. ``"micron"``), if pdediff knows it."""
    ome = _ome_spacing(tf, spatial, tf_unit)
    if ome is not None:
        return ome, "mm"
    ij = tf.imagej_metadata if tf.is_imagej else None
    shaped = tf.shaped_metadata[0] if tf.is_shaped and tf.shaped_metadata else None
    tags = page.tags
    xres, yres = _resolution(tags.get("XResolution")), _resolution(tags.get("YResolution"))
    ru = tags.get("ResolutionUnit")
    ru = int(ru.value) if ru is not None else 2  # the TIFF default is inch
    factor, unit = 1.0, None
    ij_unit = str(ij.get("unit", "")).strip() if ij else ""
    ij_unit = ij_unit.encode().decode("unicode_escape") if "\\u" in ij_unit else ij_unit
    if ij_unit and ij_unit.lower() not in ("pixel", "pixels", "px"):
        if ij_unit.lower() in _UNITS_MM or ij_unit in _UNITS_MM:
            factor, unit = _UNITS_MM.get(ij_unit.lower(), _UNITS_MM.get(ij_unit)), "mm"
            tf_unit[0] = ij_unit
        else:
            unit = ij_unit
    elif not ij_unit and ru in (2, 3):
        factor, unit = (25.4 if ru == 2 else 10.0), "mm"
    dz = None
    for source, scale in ((ij, factor), (shaped, None)):
        if source and "spacing" in source:
            if scale is None:  # pdediff's JSON description names its unit
                scale = _UNITS_MM.get(str(source.get("unit", "")).lower(), factor)
            try:
                dz = float(source["spacing"]) * scale
            except (TypeError, ValueError):
                dz = None
            break
    if xres is None or yres is None:
        return None, None
    if ru == 1 and not ij_unit and xres == 1 and yres == 1 and dz is None:
        return None, None  # tifffile's default tags: no spacing recorded
    dy, dx = (factor / r if r > 0 else float("nan") for r in (yres, xres))
    if spatial == 2:
        return (dy, dx), unit
    if spatial == 3:
        # a stated but invalid spacing (0, -2, NaN) stays: read_scan ignores the spacing with a note naming it
        return ((dz if dz is not None else factor), dy, dx), unit
    return None, unit


#: TIFF axes (tifffile's letters) that are not space: read as a volume, they would be smoothed across.
_NOT_SPATIAL = {"C": "channels (C)", "T": "time points (T)"}


def _check_image_count(p: Path, tf, series) -> None:
    """Refuse a stack holding fewer pixels than its ImageJ ``images=`` or tifffile's JSON ``shape`` says
    (tifffile, finding pages missing, falls back to the first page alone: a truncated 24-slice stack was
    read as one slice)."""
    found = int(np.prod(series.shape, dtype=np.int64))
    page = series.keyframe
    if tf.is_imagej and tf.imagej_metadata:
        try:
            images = int(tf.imagej_metadata.get("images", 1))
        except (TypeError, ValueError):
            images = 1
        per_image = int(page.imagelength) * int(page.imagewidth) * int(page.samplesperpixel)
        if images * per_image > found:
            raise ScanIOError(f"{p}: the ImageJ metadata says {images} images but {found // max(per_image, 1)} "
                              "could be read: truncated or corrupt")
    if tf.is_shaped and tf.shaped_metadata:
        try:
            claimed = int(np.prod([int(n) for n in tf.shaped_metadata[0].get("shape", ())], dtype=np.int64))
        except (TypeError, ValueError):
            return
        if claimed > found:
            shape = tuple(tf.shaped_metadata[0]["shape"])
            raise ScanIOError(f"{p}: the TIFF description says shape {shape} but only {tuple(series.shape)} "
                              "could be read: truncated or corrupt")


class _Broken(logging.Handler):
    """Collects tifffile's reports of a page chain that points past the end of the file."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "invalid page offset" in message:
            self.messages.append(message.split("> ", 1)[-1])


@contextmanager
def _broken_chain():
    """Inside :func:`_quiet`: tifffile, meeting a page offset past the end of the file, logs it and stops,
    so a truncated stack reads as its first pages; its message is collected here instead of dropped."""
    log = logging.getLogger("tifffile")
    handler, level, propagate = _Broken(), log.level, log.propagate
    log.setLevel(logging.WARNING)
    log.propagate = False
    log.addHandler(handler)
    try:
        yield handler.messages
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate


#: TIFF PhotometricInterpretation values whose samples are not grey levels or RGB(A): reading the stored numbers
#: as an image would smooth palette indices, ink amounts or Lab/YCbCr components as if they were grey or RGB
_PHOTOMETRIC_REFUSED = {
    3: "palette colour (the pixel values are indices into a colour map)",
    4: "a transparency mask",
    5: "separated inks (CMYK)",
    6: "YCbCr (not decoded to RGB)",
    8: "CIE L*a*b*", 9: "ICC L*a*b*", 10: "ITU L*a*b*",
    32803: "a colour filter array (raw sensor data)", 32844: "LogL", 32845: "LogLuv",
}


def _check_photometric(p: Path, page) -> None:
    """Refuse a TIFF whose samples are not grey or RGB(A) (palette, CMYK, Lab, undecoded YCbCr), naming it.

    MINISWHITE (0 is white) is read as stored and written back as MINISWHITE (``meta["miniswhite"]``); a
    JPEG-compressed YCbCr TIFF is decoded to RGB by tifffile."""
    try:
        photometric = int(page.photometric)
    except (TypeError, ValueError):
        return
    if photometric == 6 and int(page.compression) in (6, 7):  # (old-style) JPEG: decoded to RGB
        return
    what = _PHOTOMETRIC_REFUSED.get(photometric)
    if what is not None:
        raise ScanIOError(f"{p}: TIFF PhotometricInterpretation {photometric} holds {what}; pdediff reads grey "
                          "(MinIsBlack/MinIsWhite) and RGB(A) TIFFs: convert it to RGB or grey first (e.g. "
                          "Pillow's Image.convert('RGB'))")


def read_tiff(p: Path) -> Scan:
    tifffile = _require("tifffile")
    with _quiet(), _broken_chain() as broken, _BoundedReader(p) as f, tifffile.TiffFile(f) as tf:
        if not tf.series:
            raise ScanIOError(f"{p}: cannot read as tiff (no image found: corrupt?)")
        series = tf.series[0]
        page = series.keyframe
        others = [s for s in tf.series[1:] if not getattr(s.keyframe, "is_reduced", False)]
        if others:  # pages of different shapes (or separately described images): tifffile makes each a
            # series, and reading the first silently dropped the rest
            shapes = [tuple(int(n) for n in s.shape) for s in [series, *others]]
            what = "images of different shapes" if len(set(shapes)) > 1 else "separate images"
            more = f" and {len(shapes) - 4} more" if len(shapes) > 4 else ""
            raise ScanIOError(f"{p}: holds {len(shapes)} {what} ({', '.join(map(str, shapes[:4]))}{more}); "
                              "pdediff reads one image or one stack of equal pages: save each image as its own "
                              "file")
        _check_photometric(p, page)
        _check_image_count(p, tf, series)
        if broken:  # pages of a plain multi-page TIFF missing: nothing else says how many there were
            raise ScanIOError(f"{p}: {broken[0]} (the file holds {p.stat().st_size} bytes): truncated or corrupt")
        dtype = np.dtype(series.dtype)
        bits = int(getattr(page, "bitspersample", 8 * dtype.itemsize) or 8 * dtype.itemsize)
        shape = tuple(int(n) for n in series.shape)
        if int(page.compression) == 1:
            # packed rows for fewer than 8 bits per sample (1-bit masks: 8 pixels a byte), else the items
            row = -(-page.imagewidth * page.samplesperpixel * bits // 8) if bits < 8 else None
            stored = (nbytes_of(shape, dtype.itemsize) if row is None else
                      nbytes_of(shape, 1) // max(1, page.imagewidth * page.samplesperpixel) * row)
            check_holds(p, stored, p.stat().st_size)
        claimed = nbytes_of(shape, dtype.itemsize)
        check_memory(p, claimed)
        axes = series.axes
        other = [a for a in axes if a in _NOT_SPATIAL]
        if other:  # ImageJ hyperstacks: smoothing across channels or time points would mix them silently
            raise ScanIOError(
                f"{p}: TIFF axes {axes!r} hold {', '.join(_NOT_SPATIAL[a] for a in other)} (shape "
                f"{tuple(series.shape)}); pdediff reads 2-D/3-D images (axes YX or ZYX, colour samples S): "
                "save each channel or time point as its own file, or pass an array with --channel-axis")
        data = series.asarray()
        extrasamples = tuple(int(e) for e in (page.extrasamples or ()))
        spatial = len(axes) - ("S" in axes)
        file_unit: list = [None]
        spacing, unit = _tiff_spacing(tf, page, spatial, file_unit)
        imagej = bool(tf.is_imagej)
        miniswhite = int(page.photometric) == 0
    channel_axis, alpha = None, False
    if "S" in axes and data.ndim == len(axes):
        data = np.moveaxis(data, axes.index("S"), -1)
        channel_axis = -1
        alpha = any(e in (1, 2) for e in extrasamples) and data.shape[-1] in (2, 4)
    return Scan(data, spacing=spacing, channel_axis=channel_axis, alpha=alpha,
                meta={"unit": unit, "imagej": imagej, "axes": axes, "miniswhite": miniswhite,
                      **({"length_unit": file_unit[0]} if spacing is not None and file_unit[0] else {})})


def _good(values) -> bool:
    return values is not None and all(np.isfinite(v) and v > 0 for v in values)


def write_tiff(p, data, like, spacing, ch):
    tifffile = _require("tifffile")
    data = _native(data)
    if ch is not None and data.shape[-1] == 1:
        data, ch = data[..., 0], None
    channels = data.shape[-1] if ch is not None else 0
    spatial = data.ndim - (ch is not None)
    miniswhite = like is not None and like.format == "tiff" and like.meta.get("miniswhite") and channels == 0
    photometric = "rgb" if channels in (3, 4) else "miniswhite" if miniswhite else "minisblack"
    kwargs: dict = {"photometric": photometric}
    if channels in (2, 4):
        kwargs["extrasamples"] = ["unassalpha"]
    if channels and ch is not None:
        kwargs["planarconfig"] = "contig"
    spacing = tuple(float(s) for s in spacing) if spacing is not None and len(spacing) == spatial else None
    if not _good(spacing) or spatial not in (2, 3):
        tifffile.imwrite(p, data, **kwargs)
        return
    name, per_mm = _length_unit(like)
    dy, dx = spacing[-2], spacing[-1]
    if name is None:  # unitless: the numbers as read, ResolutionUnit NONE, no ImageJ unit
        kwargs["resolutionunit"] = "NONE"
    dz = spacing[0] if spatial == 3 else None
    imagej = data.dtype in (np.uint8, np.uint16, np.float32) and (
        channels == 0 or (channels == 3 and data.dtype == np.uint8))
    if imagej:
        axes = ("ZYX" if spatial == 3 else "YX") + ("S" if channels else "")
        meta = {"axes": axes} | ({"unit": name} if name is not None else {})
        if dz is not None:
            meta["spacing"] = dz * per_mm
        kwargs.pop("extrasamples", None)
        tifffile.imwrite(p, data, imagej=True, resolution=(1.0 / (dx * per_mm), 1.0 / (dy * per_mm)), metadata=meta,
                         **kwargs)
    elif name is None:
        meta = {"spacing": dz} if dz is not None else {}
        tifffile.imwrite(p, data, resolution=(1.0 / dx, 1.0 / dy), metadata=meta, **kwargs)
    else:
        meta = {"spacing": dz * per_mm, "unit": name} if dz is not None else {}
        tifffile.imwrite(p, data, resolution=(10.0 / dx, 10.0 / dy), resolutionunit="CENTIMETER",
                         metadata=meta, **kwargs)


#: Formats that record no length unit: a spacing that came with one of them (given by hand) has none either.
_UNITLESS_FORMATS = ("npy", "npz", "png", "jpeg", "zarr")


def _length_unit(like) -> tuple[str | None, float]:
    """The length unit to write spacing in, and its number per millimetre: the input TIFF's own ImageJ unit
    (a stack in microns is written back in microns), none (``None``) where the input stated none (a unitless
    TIFF, or a format without units), else millimetres (no input: the API's convention)."""
    if like is not None and (like.format in _UNITLESS_FORMATS or (like.format == "tiff"
                                                                 and like.meta.get("unit") is None)):
        return None, 1.0
    unit = like.meta.get("length_unit") if like is not None and like.format == "tiff" else None
    mm = _UNITS_MM.get(str(unit).lower(), _UNITS_MM.get(str(unit))) if unit else None
    if not mm or mm == 1.0:
        return "mm", 1.0
    if not str(unit).isascii():  # e.g. "µm": ImageJ's ASCII spelling
        unit = {1e-3: "micron", 1e-6: "nm"}.get(mm, "mm")
        if unit == "mm":
            return "mm", 1.0
    return str(unit), 1.0 / mm


# ----------------------------------------------------------------------------- checks and records
def _check_image(fmt: str, r: WriteRequest) -> None:
    name = fmt.upper()
    counts = (1, 3) if fmt == "jpeg" else (1, 2, 3, 4)
    if r.spatial != 2 or (r.channel_axis is not None and r.channels not in counts):
        what = "grey or RGB" if fmt == "jpeg" else "grey, grey+alpha, RGB or RGBA"
        hint = ("a 3-D volume would become an animated PNG" if fmt == "png" and r.channel_axis is None
                and len(r.shape) == 3 else f"got shape {r.shape}")
        raise ValueError(f"{r.where}: {name} holds one 2-D {what} image; {hint}: write .tif, .nii or .npy instead")
    allowed = (np.uint8,) if fmt == "jpeg" else (np.uint8, np.uint16)
    if r.dtype not in allowed:
        kinds = "uint8" if fmt == "jpeg" else "uint8 or uint16"
        raise ValueError(f"{r.where}: {name} stores {kinds} only; got {r.dtype} (cast it, or write .tif/.nii/.npy)")
    if fmt == "png" and r.dtype == np.uint16 and r.channels > 1:
        raise ValueError(f"{r.where}: 16-bit colour or alpha PNG is not supported (Pillow writes 16-bit grey "
                         "only); write .tif or cast to uint8")


def _check_tiff(r: WriteRequest) -> None:
    if r.spatial < 2:
        raise ValueError(f"{r.where}: TIFF holds 2-D images or stacks; got shape {r.shape}: write .npy instead")
    if r.channel_axis is not None and not 1 <= r.channels <= 4:
        raise ValueError(f"{r.where}: TIFF colour here is 1-4 channels (grey, grey+alpha, RGB, RGBA); got "
                         f"{r.channels}: write .npy/.npz instead")
    if r.dtype.kind == "f" and r.dtype.itemsize > 8 or r.dtype.kind == "c" and r.dtype.itemsize > 16:
        raise ValueError(f"{r.where}: TIFF cannot store {r.dtype}; cast to float64 or write .npy")


FORMATS = (
    Format("png", "PNG", (".png",), read=lambda p: read_image(p, "png"),
           write=lambda p, d, like, sp, ch: write_image(p, d, like, sp, ch, fmt="png"),
           check=lambda r: _check_image("png", r)),
    Format("jpeg", "JPEG", (".jpg", ".jpeg"), read=lambda p: read_image(p, "jpeg"),
           write=lambda p, d, like, sp, ch: write_image(p, d, like, sp, ch, fmt="jpeg"),
           check=lambda r: _check_image("jpeg", r)),
    Format("tiff", "TIFF", (".tif", ".tiff"), read=read_tiff, write=write_tiff, check=_check_tiff,
           spacing_field="ImageJ/JSON 'spacing', OME PhysicalSize or XResolution/YResolution tags"),
)
