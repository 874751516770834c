"""Images and scans in and out of the command line: channel axis, output type planned before computing,
range checks that never clip, working memory, the before/after preview."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import CLIError


#: Integer output types the CLI offers, and what --rescale maps onto.
INT_DTYPES = ("uint8", "uint16", "int16")

_CLI_WORDS = (("max_steps=None", "--max-steps 0"), ("max_steps=", "--max-steps "), ("(or dt=None)", "(or no --dt)"),
              ("dt=None", "no --dt"), ("method='aos'", "--method aos"), ("scheme='aos'", "--method aos"),
              ("pass num_iter", "pass --num-iter"), ("num_iter=", "--num-iter "), ("dt=", "--dt "),
              ("kappa must", "--kappa must"), ("sigma must", "--sigma must"), ("spacing must", "--spacing must"))

def _cli_words(message: str) -> str:
    for api, cli in _CLI_WORDS:
        message = message.replace(api, cli)
    return message

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
        return ax % data.ndim, None
    if scan.channel_axis is not None:
        return scan.channel_axis % data.ndim, None
    # An array without metadata shaped (H, W, 3|4) is a colour image far more often than a 3-slice volume.
    if scan.format in ("npy", "npz") and data.ndim == 3 and data.shape[-1] in (3, 4) and min(data.shape[:2]) >= 8:
        return 2, (f"treating the last axis of {src.name} (shape {data.shape}) as colour channels; "
                   "pass --channel-axis none for a volume")
    return None, None

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
        if integers_only and target.kind == "f":
            hint = "; this format stores integers: --rescale (onto uint8), or --dtype uint8/uint16 with --rescale"
        elif integers_only:
            hint = "; choose --dtype uint8 or uint16 (add --rescale if the values do not fit)"
        raise CLIError(f"{msg}{hint}")
    return target

def _check_range_fits(data: np.ndarray, target: np.dtype, rescale: bool) -> None:
    """Refuse, before computing, an integer output the values cannot fit unclipped.

    Perona–Malik obeys the maximum principle (the result stays within the input's range), so
    the input's rounded range decides.
    """
    if target.kind not in "iu" or rescale:
        return
    info = np.iinfo(target)
    lo, hi = float(np.rint(data.min())), float(np.rint(data.max()))
    if lo < info.min or hi > info.max:
        raise CLIError(f"INPUT spans {lo:.6g}..{hi:.6g}, outside {target}'s range {info.min}..{info.max}; "
                       "pass --rescale or choose a wider or float --dtype")

#: Arrays of the input's size (in the computing float type) that denoising holds at its peak: the
#: float copy, its smoothed copy, the step buffer, the result and its cast for writing, and slack.
WORKING_ARRAYS = 6

def _check_working_memory(data: np.ndarray, src: Path) -> None:
    """Refuse, before computing, an input whose working set would not fit in the memory available."""
    from ..io._limits import _available_memory

    itemsize = 4 if data.dtype.kind == "f" and data.dtype.itemsize <= 4 else 8
    need = data.size * itemsize * WORKING_ARRAYS
    avail = _available_memory()
    if avail is not None and need > avail:
        raise CLIError(f"{src}: denoising {data.shape} needs about {need / 2**30:.1f} GiB of working memory, more "
                       f"than the {avail / 2**30:.1f} GiB available; crop or downsample the scan first")

def _integer_result(out: np.ndarray, target: np.dtype, rescale: bool) -> tuple[np.ndarray, str | None]:
    """Round ``out`` into ``target`` without ever clipping; with ``rescale``, map min..max onto the full range."""
    info = np.iinfo(target)
    if rescale:
        lo, hi = float(out.min()), float(out.max())
        scale = (info.max - info.min) / (hi - lo) if hi > lo else 0.0
        res = np.rint((out.astype(np.float64) - lo) * scale + info.min)
        return res.astype(target), f"rescaled {lo:.6g}..{hi:.6g} -> {info.min}..{info.max} ({target})"
    from ..io import cast_like

    try:  # rounds, and refuses (never clips) what the type cannot hold
        return cast_like(out, target), None
    except ValueError as exc:
        raise CLIError(f"the result's {str(exc).split(';')[0]}; pass --rescale or choose a float --dtype") from None

def _preview(path: Path, before: np.ndarray, after: np.ndarray, channel_axis) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..demo import _save_atomic

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
    ax[0].set_title("input")
    ax[1].imshow(a, **kw)
    ax[1].set_title("Perona–Malik")
    for x in ax:
        x.set_axis_off()
    _save_atomic(fig, path)
    plt.close(fig)
