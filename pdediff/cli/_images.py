"""Images and scans in and out of the command line: channel axis, output type planned before computing,
range checks that never clip, working memory, the before/after preview."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._common import _check_destination, _same_file, exists_error
from ._errors import CLIError, write_failure


#: Integer output types the CLI offers, and what --rescale maps onto.
INT_DTYPES = ("uint8", "uint16", "int16")
#: ``--dtype`` choices of ``denoise`` and ``inpaint``.
DTYPE_CHOICES = ("auto", "input", "float32", "float64") + INT_DTYPES


def pixel_type(dtype) -> str:
    """A pixel type as the refusals name it: ``bool (1-bit)`` for masks (a 1-bit TIFF, a bool array)."""
    return "bool (1-bit)" if np.dtype(dtype) == np.bool_ else str(dtype)


def number(value: float, spec: str = ".6g") -> str:
    """``value`` formatted with ``spec``, never as ``-0``."""
    return format(float(value) + 0.0, spec)  # -0.0 + 0.0 is 0.0


def value_range(lo: float, hi: float, spec: str = ".6g") -> str:
    """``lo..hi``, or ``constant v`` when they are equal (never ``0..0``)."""
    return f"constant {number(lo, spec)}" if lo == hi else f"{number(lo, spec)}..{number(hi, spec)}"


def percent(part: int, whole: int) -> str:
    """``part`` of ``whole`` as a percentage for a report: ``100 %`` only when all, ``0 %`` only when none, no
    exponent (``99.6 %``, never ``1e+02 %``; ``< 0.01 %`` below that)."""
    if whole <= 0 or part <= 0:
        return "0 %"
    if part >= whole:
        return "100 %"
    v = 100.0 * part / whole
    if v >= 99.95:  # not all: never rounded up to 100
        return "99.9 %"
    if v >= 1:
        return f"{v:.1f} %"
    return f"{v:.2f} %" if v >= 0.01 else "< 0.01 %"


def _kappa_arg(text: str) -> float | str:
    """``--kappa``: "auto" or a number (range checks are the API's)."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise CLIError(f"--kappa must be 'auto' or a positive number; got {text!r}") from None


def _channel_axis(arg: str, scan, src: Path) -> tuple[int | None, str | None]:
    """The channel axis to use and, when it was guessed, a note saying so."""
    data = scan.data
    if arg == "none":
        return None, None
    if arg != "auto":
        try:
            ax = int(arg)
        except ValueError:
            raise CLIError(f"--channel-axis must be 'auto', 'none' or an integer axis; got {arg!r}") from None
        if not -data.ndim <= ax < data.ndim:
            raise CLIError(f"--channel-axis {ax} is out of range for INPUT of shape {data.shape}")
        _check_2d_channel_axis(arg, ax, scan, src)
        return ax % data.ndim, None
    if scan.channel_axis is not None:
        return scan.channel_axis % data.ndim, None
    # An array without metadata shaped (H, W, 3|4) is a colour image far more often than a 3-slice volume.
    if scan.format in ("npy", "npz") and data.ndim == 3 and data.shape[-1] in (3, 4) and min(data.shape[:2]) >= 8:
        return 2, (f"treating the last axis of {src.name} (shape {data.shape}) as colour channels; "
                   "pass --channel-axis none for a volume")
    return None, None


#: Formats whose reader says whether an image has colour channels: a 2-D one read without is grey.
_COLOUR_AWARE = ("png", "jpeg", "tiff", "dicom", "nifti", "mgh", "analyze")
#: The most values a channel axis of a 2-D INPUT holds on the command line (grey+alpha, RGB, RGBA).
MAX_CHANNELS_2D = 4


def _check_2d_channel_axis(typed: str, ax: int, scan, src: Path) -> None:
    """Refuse a ``--channel-axis`` that makes a 2-D INPUT's rows or columns "channels" of 1-D signals: an axis of
    a grey image file, or one holding more than :data:`MAX_CHANNELS_2D` values.  (The Python API takes any
    channel axis: a stack of 1-D signals is a legitimate array there.)"""
    shape = tuple(scan.data.shape)
    if len(shape) != 2:
        return
    ax = ax % 2
    n = shape[ax]
    lines = f"its {n} {'rows' if ax == 0 else 'columns'}"
    grey = getattr(scan, "format", None) in _COLOUR_AWARE and getattr(scan, "channel_axis", None) is None
    if grey or n > MAX_CHANNELS_2D:
        what = "a 2-D grey image" if grey else (f"2-D, and a 2-D INPUT's channel axis holds at most {MAX_CHANNELS_2D} "
                                                 "colour/alpha values")
        raise CLIError(f"--channel-axis {typed}: {src.name} (shape {shape}) is {what}; this axis would smooth {lines} "
                       f"as {n} separate 1-D signals: use --channel-axis auto (the default) or none (for stacks of 1-D "
                       "signals, the Python API's channel_axis)")


def _plan_dtype(args, stored: np.dtype, dst: Path, fmt: str, shape, channel_axis) -> np.dtype:
    """The output pixel type, decided and checked against OUTPUT's format before any work."""
    from ..io import check_writable

    def problem(dt) -> str | None:
        try:
            check_writable(dst, shape, np.dtype(dt), channel_axis, format=fmt)
            return None
        except ValueError as exc:
            return str(exc).splitlines()[0]

    native = np.dtype(stored.newbyteorder("="))
    floats_ok = problem(np.float32) is None
    integers_only = not floats_ok and problem(np.uint8) is None  # PNG/JPEG, for this shape
    if args.dtype == "auto":
        if integers_only:  # PNG/JPEG
            if stored.kind == "f" and not args.rescale:
                raise CLIError(
                    f"{dst.name} stores integers only and INPUT is {stored}: pass --rescale (maps the result's "
                    "range onto uint8; --dtype uint16 --rescale for 16 bits), or write .tif/.npy/.nii to keep floats"
                )
            target = np.dtype(np.uint8) if stored.kind == "f" or args.rescale else native
        elif args.rescale and fmt == "dicom":  # DICOM stores integers: the input's own, else int16
            target = native if native.kind in "iu" else np.dtype(np.int16)
        elif stored.kind == "f":
            target = native if native.itemsize >= 4 else np.dtype(np.float32)
        else:
            target = np.dtype(np.float32)
    elif args.dtype == "input":
        target = native
    else:
        target = np.dtype(args.dtype)
    if args.rescale and target.kind not in "iu":
        raise CLIError(f"--rescale maps onto an integer type; choose --dtype {'/'.join(INT_DTYPES)} (got {target})")
    msg = problem(target)
    if msg is not None:
        hint = ""
        # the integer types this OUTPUT can hold, never the one just refused (JPEG: uint8 only)
        fits = [t for t in INT_DTYPES if np.dtype(t) != target and problem(t) is None]
        if integers_only and target.kind == "f":
            hint = (f"; this format stores integers: --rescale (onto uint8), or --dtype {'/'.join(fits)} with "
                    "--rescale")
        elif integers_only and fits:
            hint = f"; choose --dtype {' or '.join(fits)} (add --rescale if the values do not fit)"
        raise CLIError(f"{msg}{hint}")
    return target


def _float_range(data: np.ndarray, target: np.dtype, requested: str, src: Path) -> np.dtype:
    """A float output type that holds the input's values: float32 becomes float64 under ``--dtype auto`` when the
    values (e.g. an int16 NIfTI with ``scl_slope`` 1e38) exceed float32's range; a type asked for is refused.
    (A cast would make them inf: no conversion clips or overflows silently.)"""
    if target.kind != "f" or data.size == 0:
        return target
    amax = max(abs(float(np.nanmax(data))), abs(float(np.nanmin(data))))
    fmax = float(np.finfo(target).max)
    if not (math.isfinite(amax) and amax > fmax):
        return target
    if requested == "auto" and target.itemsize < 8:
        return np.dtype(np.float64)
    raise CLIError(f"{src}: values reach {amax:.4g}, beyond {target}'s range (largest {fmax:.4g}); "
                   "choose --dtype float64")


def _check_range_fits(data: np.ndarray, target: np.dtype, rescale: bool) -> None:
    """Refuse, before computing, an integer output the values cannot fit unclipped.

    Perona–Malik obeys the maximum principle (the result stays within the input's range), so
    the input's rounded range decides.
    """
    if target.kind not in "iu" or rescale:
        return
    info = np.iinfo(target)
    lo, hi = float(np.rint(data.min())), float(np.rint(data.max()))
    if lo < float(info.min) or hi > float(info.max):  # as float64 sees the limits: 2**64 - 1 is 2**64
        what = f"is {value_range(lo, hi)}" if lo == hi else f"spans {value_range(lo, hi)}"
        raise CLIError(f"INPUT {what}, outside {target}'s range {info.min}..{info.max}; "
                       "pass --rescale or choose a wider or float --dtype")


def _check_float32_scaling(data: np.ndarray, target: np.dtype) -> None:
    """Refuse, before computing, an integer NIfTI output whose values no finite ``scl_slope``/``scl_inter``
    can reach: the header stores them as float32, so values beyond float32's range (an int16 input with
    ``scl_slope`` 1e38) cannot be written as integers at all."""
    if data.size == 0:
        return
    amax = max(abs(float(np.nanmax(data))), abs(float(np.nanmin(data))))
    fmax = float(np.finfo(np.float32).max)
    if math.isfinite(amax) and amax > fmax:
        raise CLIError(f"INPUT values reach {amax:.4g}, beyond float32's range ({fmax:.4g}): NIfTI cannot store "
                       f"them as {target} (its scl_slope/scl_inter are float32 and would be infinite); pass "
                       "--rescale or choose --dtype float64")


#: Arrays of the input's size (in the computing float type) that denoising holds at its peak: the
#: float copy, its smoothed copy, the step buffer, the result and its cast for writing, and slack.
WORKING_ARRAYS = 6


def _check_working_memory(data: np.ndarray, src: Path, verb: str = "denoising") -> None:
    """Refuse, before computing, an input whose working set would not fit in the memory available."""
    from ..io import available_memory

    itemsize = 4 if data.dtype.kind == "f" and data.dtype.itemsize <= 4 else 8
    need = data.size * itemsize * WORKING_ARRAYS
    avail = available_memory()
    if avail is not None and need > avail:
        raise CLIError(f"{src}: {verb} {data.shape} needs about {need / 2**30:.1f} GiB of working memory, more "
                       f"than the {avail / 2**30:.1f} GiB available; crop or downsample the scan first")


def _clip_filled(out: np.ndarray, target: np.dtype, clip: tuple[float, float]) -> tuple[np.ndarray, str | None]:
    """Clip an inpainting's result to the known pixels' range ``clip`` for integer ``target``; say how many moved.

    The known pixels lie within ``clip`` by definition, so only filled pixels move.  Nothing is clipped when
    the range itself does not fit ``target`` (the known pixels would change): the cast then refuses.
    """
    info = np.iinfo(target)
    lo, hi = clip
    if not (info.min <= lo and hi <= info.max):
        return out, None
    r = np.rint(out)  # what rounding keeps anyway (e.g. -1e-16 from an iterative solver) is not clipping
    n = int(np.count_nonzero((r < lo) | (r > hi)))
    if not n:
        return out, None
    return np.clip(out, lo, hi), (f"clipped {n} filled value(s) to the known pixels' range "
                                  f"{value_range(lo, hi, 'g')} (--strict-range refuses instead)")


def _integer_result(out: np.ndarray, target: np.dtype, rescale: bool, *, strict_hint: bool = False
                    ) -> tuple[np.ndarray, str | None]:
    """Round ``out`` into ``target`` without ever clipping; with ``rescale``, map min..max onto the full range.

    ``strict_hint``: the refusal names --strict-range (an inpainting whose filled pixels were not clipped).
    """
    from ..io import cast_like

    info = np.iinfo(target)
    if rescale:
        lo, hi = float(out.min()), float(out.max())
        scale = (info.max - info.min) / (hi - lo) if hi > lo else 0.0
        res = np.rint((out.astype(np.float64) - lo) * scale + info.min)
        # clip=True saturates exactly at the limits (float64's 2**64 would wrap to 0 in a plain astype)
        res = cast_like(res, target, clip=True)
        if hi == lo:  # nothing to stretch: the constant goes to the type's minimum
            return res, f"rescaled {value_range(lo, hi)} -> constant {info.min} ({target})"
        return res, f"rescaled {value_range(lo, hi)} -> {info.min}..{info.max} ({target})"

    try:  # rounds, and refuses (never clips) what the type cannot hold
        return cast_like(out, target), None
    except ValueError as exc:
        hint = " (or drop --strict-range to clip the filled pixels)" if strict_hint else ""
        raise CLIError(f"the result's {str(exc).split(';')[0]}; pass --rescale{hint} or choose a float --dtype") \
            from None


def _preview(path: Path, before: np.ndarray, after: np.ndarray, channel_axis, *, title: str = "Perona–Malik",
             before_title: str = "input") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def show(img):
        img = np.asarray(img, dtype=np.float64)
        if channel_axis is not None:
            img = np.moveaxis(img, channel_axis, -1)
            if img.shape[-1] in (2, 4):  # grey+alpha / RGBA: show the colour channels
                img = img[..., :-1]
            if img.shape[-1] == 1 or img.ndim != 3:
                img = img[..., 0]
                if img.ndim == 3:
                    img = img[img.shape[0] // 2]
                return img
            if img.ndim == 4:
                img = img[img.shape[0] // 2]
            lo, hi = np.percentile(img, [0.5, 99.5])
            return np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1)
        if img.ndim == 3:
            img = img[img.shape[0] // 2]
        if img.ndim == 1:
            img = img[None, :]
        return img

    fig, ax = plt.subplots(1, 2, figsize=(10, 5), constrained_layout=True)
    b, a = show(before), show(after)
    kw = {} if b.ndim == 3 else {"cmap": "gray", "vmin": b.min(), "vmax": b.max()}
    ax[0].imshow(b, **kw)
    ax[0].set_title(before_title)
    ax[1].imshow(a, **kw)
    ax[1].set_title(title)
    for x in ax:
        x.set_axis_off()
    # ``path`` is already a temporary of the command's atomic_paths: a second atomic layer here would leave
    # its own temporary behind when a signal lands between the two commits
    fig.savefig(path, dpi=90, format="png")
    plt.close(fig)


@dataclass
class ImageJob:
    """One INPUT -> OUTPUT (+ PREVIEW) job of ``denoise``/``inpaint``, checked before any work."""

    src: Path
    dst: Path
    out_fmt: str
    dst_is_dir: bool
    preview: Path | None
    scan: Any
    data: np.ndarray
    stored: np.dtype
    channel_axis: int | None
    note: str | None
    alpha: bool
    target: np.dtype
    scaled_store: bool
    force: bool = True  # replace an OUTPUT that exists (or appears while computing)

    @property
    def colour(self) -> np.ndarray:
        """The data without an alpha channel (which is never processed, only copied)."""
        ch = self.channel_axis
        return np.take(self.data, range(self.data.shape[ch] - 1), axis=ch) if self.alpha else self.data


def open_job(args, *, verb: str, max_principle: bool) -> ImageJob:
    """Check OUTPUT and PREVIEW, read INPUT, decide the channel axis and the output type — before computing.

    ``max_principle``: the method keeps values within the input's range, so an integer output type can be
    checked against the input now; otherwise the result is checked (never clipped) when it is written.
    """
    from ..io import ScanIOError, format_of, get_format, is_directory_format, read_scan

    if not args.input:  # Path("") is ".": the current folder would be read as INPUT
        raise CLIError("INPUT '' names no file (an empty path)")
    src, dst = Path(args.input), Path(args.output)
    try:
        out_fmt = format_of(args.output)  # the text: a trailing '/' names a DICOM series folder
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    dst_is_dir = is_directory_format(args.output, out_fmt)
    _check_destination(dst, src, args.force, "OUTPUT", directory=dst_is_dir, fmt=out_fmt)
    pv = Path(args.preview) if args.preview is not None else None
    if pv is not None:
        if pv.suffix.lower() != ".png":
            raise CLIError(f"--preview must be a .png file; got {pv.name}")
        if _same_file(dst, pv):
            raise CLIError("--preview must differ from OUTPUT")
        _check_destination(pv, src, args.force, "PREVIEW", fmt="png")
    try:
        scan = read_scan(src)
    except (ScanIOError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    data = scan.data
    if data.dtype == np.bool_ or data.dtype.kind not in "iuf":
        raise CLIError(f"{src}: unsupported pixel type {pixel_type(data.dtype)}; expected integer or float pixels")
    stored = np.dtype(scan.stored_dtype if scan.stored_dtype is not None else data.dtype)
    ch, note = _channel_axis(args.channel_axis, scan, src)
    spatial = data.ndim - (ch is not None)
    if spatial not in (1, 2, 3):
        raise CLIError(f"{src}: expected a 1-D, 2-D or 3-D image (plus colour channels); got shape {data.shape}")
    _check_working_memory(data, src, verb)
    target = _plan_dtype(args, stored, dst, out_fmt, data.shape, ch)
    target = _float_range(data, target, args.dtype, src)
    # NIfTI and DICOM keep integer types lossless through a slope/intercept chosen by the writer
    scaled_store = target.kind in "iu" and not args.rescale and get_format(out_fmt).scaled
    if not scaled_store and max_principle:
        _check_range_fits(data, target, args.rescale)
    if scaled_store and out_fmt == "nifti":
        _check_float32_scaling(data, target)
    alpha = bool(scan.alpha and ch is not None and data.shape[ch] in (2, 4))
    return ImageJob(src, dst, out_fmt, dst_is_dir, pv, scan, data, stored, ch, note, alpha, target, scaled_store,
                    args.force)


def write_job(job: ImageJob, out: np.ndarray, spacing, *, rescale: bool, title: str,
              clip: tuple[float, float] | None = None, strict_hint: bool = False, before: np.ndarray | None = None
              ) -> tuple[np.ndarray, str | None, np.dtype | None]:
    """Clip the filled pixels to ``clip`` (integer outputs, see :func:`_clip_filled`), put the alpha channel
    back, convert to the planned type, and write OUTPUT and PREVIEW atomically (both or neither).

    Returns the written array, the rescale (or clip) note and the stored integer type chosen by a scaling
    writer (NIfTI/DICOM).  ``before``: what the preview shows as the input (default: INPUT).
    """
    from ..io import ScanIOError, atomic_paths, write_scan

    # INPUT was checked finite: a non-finite result is a numerical breakdown (float32 with a --dt so large
    # that 1 + dt L loses its 1), never something to write -- nor to rescale into an all-zero image.
    bad = int(out.size - np.count_nonzero(np.isfinite(out)))
    if bad:
        raise CLIError(f"the result has {bad} non-finite value(s) of {out.size}: the computation broke down "
                       "(a very large --dt in float32 arithmetic?); nothing was written; use a smaller --dt")
    ch = job.channel_axis
    clipped = None
    if clip is not None and job.target.kind in "iu" and not rescale and not job.scaled_store:
        out, clipped = _clip_filled(out, job.target, clip)  # before the alpha channel is back: colour only
    if job.alpha:  # put the untouched alpha channel back
        a = np.take(job.data, [job.data.shape[ch] - 1], axis=ch).astype(out.dtype)
        out = np.concatenate([out, a], axis=ch)
    rescaled, stored_out = None, None
    if job.scaled_store:
        result, stored_out = out, job.target
    elif job.target.kind in "iu":
        result, rescaled = _integer_result(out, job.target, rescale, strict_hint=strict_hint)
        rescaled = rescaled or clipped
    else:
        big = max(abs(float(out.max())), abs(float(out.min()))) if out.size else 0.0
        if big > float(np.finfo(job.target).max):  # a method without a maximum principle overshot the type
            raise CLIError(f"the result's values reach {big:.4g}, beyond {job.target}'s range; nothing was "
                           "written; choose --dtype float64")
        result = out.astype(job.target, copy=False)
    outputs, dirs = [job.dst], [job.dst_is_dir]
    if job.preview is not None:
        outputs.append(job.preview)
        dirs.append(False)
    try:
        with atomic_paths(outputs, directories=dirs, overwrite=job.force) as tmps:
            write_scan(tmps[0], result, like=job.scan, spacing=spacing, channel_axis=ch, stored_dtype=stored_out,
                       format=job.out_fmt)
            if job.preview is not None:
                _preview(tmps[1], job.data if before is None else before, out, ch, title=title,
                         before_title="input" if before is None else "input, missing pixels in white")
    except (ScanIOError, ValueError, OSError) as exc:
        raise write_failure(exc) from None
    if stored_out is None and job.out_fmt == "dicom":  # DICOM stores integers: the writer quantises
        stored_out = job.stored if job.stored.kind in "iu" else np.dtype(np.int16)
    return result, rescaled, stored_out


def _nifti_scaling(path: Path) -> tuple[float, float] | None:
    """The ``scl_slope``/``scl_inter`` a NIfTI file applies (read from its header only), or None if unscaled.

    The header is parsed from the opened file: ``nib.load`` rewrites a mixed-case suffix (``x.Nii.Gz``).
    """
    import gzip

    try:
        import nibabel as nib

        with (gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")) as f:
            head = f.read(540)
        two = 540 in {int.from_bytes(head[:4], order, signed=True) for order in ("little", "big")}
        hdr = (nib.Nifti2Header if two else nib.Nifti1Header)(head[:540 if two else 348], check=False)
        slope, inter = hdr.get_slope_inter()
        slope, inter = float(1.0 if slope is None else slope), float(0.0 if inter is None else inter)
    except Exception:  # noqa: BLE001 - a report line, never a failure
        return None
    return None if (slope, inter) == (1.0, 0.0) else (slope, inter)


def _stored_scaling(job: ImageJob) -> str:
    """What a scaling writer stored: the slope/intercept of a NIfTI OUTPUT, and whether INPUT's was kept."""
    if job.out_fmt != "nifti":  # DICOM
        if job.scan.format == "dicom" and "DoseGridScaling" in job.scan.meta["datasets"][0]:
            return "RT Dose: DoseGridScaling per slice, INPUT's where the result fits it, else chosen by the writer"
        if job.scan.format == "dicom":
            return "slope/intercept per slice: INPUT's where the result fits it, else chosen by the writer"
        return "slope/intercept per slice chosen by the writer so that no value is clipped"
    out = _nifti_scaling(job.dst)
    new = "no scaling" if out is None else f"scl_slope {out[0]:.6g}, scl_inter {out[1]:.6g}"
    old = _nifti_scaling(job.src) if job.scan.format == "nifti" else None
    if old is None:
        return f"{new}, chosen by the writer so that no value is clipped"
    if out is not None and np.allclose(out, old, rtol=1e-6, atol=0):
        return f"{new}: INPUT's scaling kept"
    return (f"{new}, chosen by the writer so that no value is clipped; INPUT's scl_slope {old[0]:.6g}, "
            f"scl_inter {old[1]:.6g} not kept")


#: Output formats that record no voxel spacing.
_NO_SPACING = ("npy", "png", "jpeg")


def spacing_note(scan, out_fmt: str, spacing) -> str | None:
    """What OUTPUT records when INPUT's spacing was ignored as invalid (``None`` otherwise): the spacing used,
    never INPUT's invalid values."""
    bad = scan.meta.get("ignored_spacing")
    if bad is None:
        return None
    values = ", ".join(f"{v:g}" for v in bad)
    used = " x ".join(f"{h:g}" for h in np.atleast_1d(spacing))
    if out_fmt in _NO_SPACING:
        return f"OUTPUT records no spacing (the result was computed with spacing {used}; INPUT's {values} not copied)"
    return f"OUTPUT records spacing {used}, the spacing used (INPUT's {values} not copied)"


#: Output formats whose encoding changes pixel values.
_LOSSY = ("jpeg",)


def lossy_note(out_fmt: str, verb: str) -> str | None:
    """The note for a lossy OUTPUT (JPEG): the pixels written differ from the result (``None`` otherwise)."""
    if out_fmt not in _LOSSY:
        return None
    known = ", the known pixels included" if verb == "inpainted" else ""
    return (f"OUTPUT is JPEG, which is lossy: the pixels written differ from the result{known}; write .png or .tif "
            "to keep them exact")


def spacing_text(scan, spacing) -> str:
    """``2 x 2 x 3 mm``: the spacing used, with the unit the file states when it is the file's spacing (NIfTI's
    ``xyzt_units`` 0 reads as ``(unit unknown)``); no unit for a spacing from elsewhere (1, ``--spacing``)."""
    spacing = tuple(float(h) for h in np.atleast_1d(spacing))
    sp = " x ".join(number(h, "g") for h in spacing)
    unit = scan.meta.get("unit") if scan.spacing is not None else None
    if isinstance(unit, str) and unit and tuple(map(float, scan.spacing)) == spacing:
        sp += " (unit unknown)" if unit == "unknown" else f" {unit}"
    return sp


def report_job(job: ImageJob, verb: str, result: np.ndarray, spacing, rescaled: str | None,
               stored_out: np.dtype | None) -> None:
    """The first lines of the report every image command prints."""
    sp = spacing_text(job.scan, spacing)
    print(f"{verb} {job.src} -> {job.dst}")
    extra = [n for n in (spacing_note(job.scan, job.out_fmt, spacing), lossy_note(job.out_fmt, verb)) if n]
    for note in ([job.note] if job.note else []) + list(job.scan.notes) + extra:
        print(f"  note: {note}")
    kind = result.dtype if stored_out is None else f"{stored_out} ({_stored_scaling(job)})"
    print(f"  shape {job.data.shape} {job.data.dtype} -> {kind}; spacing {sp}"
          f"{'; alpha channel copied unchanged' if job.alpha else ''}")
    if rescaled:
        print(f"  {rescaled}")


# ----------------------------------------------------------------------------- larger than memory (--chunks)
@dataclass
class ChunkedJob:
    """One INPUT -> OUTPUT job of ``denoise --chunks``: a lazy input, checked before any work."""

    src: Path
    dst: Path
    scan: Any
    data: Any  # dask.array.Array, float, in the file's index order
    channel_axis: int | None
    target: np.dtype
    force: bool = True  # replace an OUTPUT that exists (or appears while computing)
    out_fmt: str = "zarr"


def open_chunked_job(args, *, verb: str) -> ChunkedJob:
    """Check OUTPUT, open INPUT lazily in chunks of ``args.chunks`` and plan the (float) output type.

    Nothing but headers is read: the scan may be larger than the memory.  OUTPUT is a ``.zarr`` store
    or an uncompressed ``.nii``; INPUT a ``.npy`` (memory map), an uncompressed ``.nii`` or a ``.zarr``.
    """
    from ..dask import require_dask
    from ..io import ScanIOError, format_of, is_directory_format, open_chunked

    try:
        require_dask()
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    if not args.input:  # Path("") is ".": the current folder would be read as INPUT
        raise CLIError("INPUT '' names no file (an empty path)")
    src, dst = Path(args.input), Path(args.output)
    if args.chunks < 8:
        raise CLIError(f"--chunks must be an integer of at least 8 (voxels per chunk edge); got {args.chunks}")
    try:
        out_fmt = format_of(dst)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    _check_chunked_formats(src, dst, out_fmt)
    if args.preview is not None:
        raise CLIError("--preview is not available with --chunks (it would need the whole result in memory)")
    if args.rescale or args.dtype in INT_DTYPES:
        raise CLIError("with --chunks, OUTPUT stores floats (--dtype auto, float32 or float64): an integer type "
                       "would need the result's range before writing; convert afterwards")
    from ..io import is_zarr_store

    if out_fmt == "zarr" and dst.is_dir() and not dst.is_symlink() and is_zarr_store(dst):
        # _check_destination replaces DICOM series folders only; a previous Zarr store goes with --force
        if _same_file(src, dst) or src.resolve().is_relative_to(dst.resolve()):
            raise CLIError(f"OUTPUT {dst} is the INPUT (or holds it); pdediff never overwrites its input")
        if not args.force:
            raise exists_error("OUTPUT", dst)
        if not os.access(dst.resolve().parent, os.W_OK | os.X_OK):
            raise CLIError(f"OUTPUT {dst}: folder {dst.resolve().parent} is not writable")
    else:
        _check_destination(dst, src, args.force, "OUTPUT", directory=is_directory_format(dst), fmt=out_fmt)
    try:
        data, scan = open_chunked(src, args.chunks)
    except (ScanIOError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    if data.dtype == np.bool_ or data.dtype.kind not in "iuf":
        raise CLIError(f"{src}: unsupported pixel type {pixel_type(data.dtype)}; expected integer or float pixels")
    if args.channel_axis == "auto":  # the same rule as in memory: an (H, W, 3|4) array is a colour image
        ch, note = _channel_axis("auto", scan, src)
        if note is not None:
            scan.notes = [*scan.notes, note]
    elif args.channel_axis == "none":
        ch = None
    else:
        ch, _ = _channel_axis(args.channel_axis, type("S", (), {"data": data, "format": scan.format,
                                                               "channel_axis": scan.channel_axis})(), src)
    if ch is not None and out_fmt == "nifti":
        raise CLIError(f"{dst.name}: NIfTI output holds grey scans only; write channels to .zarr")
    spatial = data.ndim - (ch is not None)
    if spatial not in (1, 2, 3):
        raise CLIError(f"{src}: expected a 1-D, 2-D or 3-D image (plus channels); got shape {data.shape}")
    # the type on disk decides, as in memory: a scaled int16 NIfTI reads as float64 but is an integer scan
    stored = np.dtype(getattr(scan, "stored_dtype", None) or data.dtype)
    if args.dtype in ("float32", "float64"):
        target = np.dtype(args.dtype)
    elif args.dtype == "input" and stored.kind != "f":
        raise CLIError(f"--dtype input: INPUT stores {stored}; with --chunks OUTPUT stores floats (float32/float64)")
    else:
        target = np.dtype(stored.newbyteorder("=")) if stored.kind == "f" and stored.itemsize >= 4 \
            else np.dtype(np.float32)
    return ChunkedJob(src, dst, scan, data, ch, target, args.force, out_fmt)


#: What ``--chunks`` reads and writes (gzip streams have no random access: no ``.nii.gz`` either way).
CHUNKED_FORMATS = ("with --chunks, INPUT is .npy, .zarr or uncompressed .nii and OUTPUT .zarr or uncompressed .nii "
                   "(written chunk by chunk)")


def _check_chunked_formats(src: Path, dst: Path, out_fmt: str) -> None:
    """Refuse, naming what ``--chunks`` supports, an INPUT or OUTPUT it cannot read or write in chunks."""
    from ..io import format_of

    def gz(p: Path) -> bool:
        return p.name.lower().endswith(".gz")

    try:
        in_fmt = format_of(src)
    except ValueError:
        in_fmt = None  # the reader names what is wrong (missing file, unknown suffix)
    if in_fmt is not None and (in_fmt not in ("npy", "nifti", "zarr") or gz(src)):
        hint = (f"decompress it (gunzip {src.name}) or drop --chunks" if gz(src) and in_fmt == "nifti"
                else "convert it, or drop --chunks to process it in memory")
        raise CLIError(f"{CHUNKED_FORMATS}; got INPUT {src.name}: {hint}")
    if out_fmt not in ("zarr", "nifti") or gz(dst):
        stem = dst.name[:-len(".nii.gz")] if dst.name.lower().endswith(".nii.gz") else dst.stem
        hint = (f"write {stem}.nii or {stem}.zarr (gzip it afterwards), or drop --chunks" if gz(dst)
                else f"write {stem}.nii or {stem}.zarr, or drop --chunks")
        raise CLIError(f"{CHUNKED_FORMATS}; got OUTPUT {dst.name}: {hint}")


def chunk_progress(desc: str, progress: bool):
    """A tqdm bar over the Dask tasks computed inside the ``with`` block, as the in-memory commands show theirs
    (tqdm on stderr, only on a terminal, none with ``--quiet``); a no-op context when ``progress`` is off."""
    from contextlib import nullcontext

    if not progress:
        return nullcontext()
    from tqdm.dask import TqdmCallback

    return TqdmCallback(desc=desc, unit="task", leave=False, disable=None)


def write_chunked_job(job: ChunkedJob, out, spacing, *, progress: bool, desc: str = "writing") -> None:
    """Compute ``out`` chunk by chunk into OUTPUT (atomically), with a progress bar unless ``progress`` is off."""
    from ..io import ScanIOError, write_chunked

    try:
        with chunk_progress(f"{desc} {job.dst.name}", progress):
            write_chunked(job.dst, out.astype(job.target), like=job.scan, spacing=spacing,
                          channel_axis=job.channel_axis, overwrite=job.force)
    except (ScanIOError, OSError) as exc:
        raise write_failure(exc) from None
