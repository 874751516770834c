"""Command line: ``pdediff demo`` and ``pdediff denoise`` (also ``python -m pdediff ...``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np


class CLIError(Exception):
    """A user error reported as one line on stderr with a non-zero exit status."""


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .anisotropic.perona_malik import CONDUCTANCES

    p = argparse.ArgumentParser(prog="pdediff", description="PDE diffusion: heat equation and Perona–Malik.")
    p.add_argument("--version", action="version", version=f"pdediff {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="solve problems with known answers and denoise the bundled MRI slice")
    d.add_argument("--output-dir", default="pdediff-output", help="where figures go (default: %(default)s)")
    d.add_argument("--no-figure", action="store_true", help="print the tables only")

    n = sub.add_parser(
        "denoise",
        help="edge-preserving (Perona–Malik) denoising of an image or volume",
        description="Denoise INPUT with Perona–Malik diffusion and write OUTPUT. Formats: .npy .npz .png .jpg "
        ".tif/.tiff (stacks as volumes) .nii/.nii.gz. INPUT is never modified; OUTPUT is written atomically.",
    )
    n.add_argument("input", metavar="INPUT")
    n.add_argument("-o", "--output", metavar="OUTPUT", required=True)
    n.add_argument("--num-iter", type=int, default=None, help="time steps (default: 15 explicit steps)")
    n.add_argument("--kappa", default="auto", help="edge threshold, or 'auto' (default)")
    n.add_argument("--conductance", choices=CONDUCTANCES, default="exponential")
    n.add_argument("--scheme", choices=("explicit", "aos"), default="explicit")
    n.add_argument("--dt", type=float, default=None, help="time step (default: the explicit stability limit)")
    n.add_argument("--sigma", type=float, default=None, help="Catté pre-smoothing sigma, physical units (0.8)")
    n.add_argument("--spacing", type=float, nargs="+", default=None,
                   help="voxel size per axis (default: from the file, e.g. NIfTI, else 1)")
    n.add_argument("--dtype", choices=("auto", "input", "float32", "float64"), default="auto",
                   help="output dtype; 'input' rounds and clips to the input's integer type. 'auto': the input's "
                   "float type (float32 for integer scans) for npy/npz/tiff/nifti, the input's type for "
                   "png/jpeg (which store integers only)")
    n.add_argument("--preview", metavar="PREVIEW.png", default=None, help="also save a before/after figure")
    n.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists (never INPUT)")
    n.add_argument("--quiet", action="store_true", help="no progress bar and no parameter report")
    return p


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _denoise(args: argparse.Namespace) -> None:
    from .anisotropic.perona_malik import DEFAULT_SIGMA, perona_malik
    from .io import ScanIOError, cast_like, format_of, read_scan, write_scan

    src, dst = Path(args.input), Path(args.output)
    try:
        out_fmt = format_of(dst)
        format_of(src)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if _same_file(src, dst):
        raise CLIError(f"OUTPUT {dst} is the INPUT file; pdediff never overwrites its input (choose another name)")
    if dst.exists() and not args.force:
        raise CLIError(f"OUTPUT {dst} exists; pass --force to overwrite it")
    if args.preview is not None:
        pv = Path(args.preview)
        if _same_file(src, pv) or _same_file(dst, pv):
            raise CLIError("--preview must differ from INPUT and OUTPUT")
        if pv.suffix.lower() != ".png":
            raise CLIError(f"--preview must be a .png file; got {pv.name}")
    try:
        scan = read_scan(src)
    except (ScanIOError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    data = scan.data
    if data.dtype == np.bool_ or data.dtype.kind not in "iuf":
        raise CLIError(f"{src}: unsupported pixel type {data.dtype}; expected integer or float pixels")
    if scan.spatial_ndim not in (1, 2, 3):
        raise CLIError(f"{src}: expected a 1-D, 2-D or 3-D image (plus colour channels); got shape {data.shape}")
    spacing = args.spacing if args.spacing is not None else (scan.spacing or 1.0)
    kappa: float | str = args.kappa
    if kappa != "auto":
        try:
            kappa = float(kappa)
        except ValueError:
            raise CLIError(f"--kappa must be 'auto' or a positive number; got {args.kappa!r}") from None
    sigma = DEFAULT_SIGMA if args.sigma is None else args.sigma
    try:
        out, info = perona_malik(
            data, num_iter=args.num_iter, kappa=kappa, conductance=args.conductance, dt=args.dt, sigma=sigma,
            scheme=args.scheme, spacing=spacing, channel_axis=scan.channel_axis, return_info=True,
            progress=not args.quiet,
        )
    except (ValueError, TypeError) as exc:
        raise CLIError(str(exc).splitlines()[0]) from None

    if args.dtype == "input" or (args.dtype == "auto" and out_fmt in ("png", "jpeg")):
        target = data.dtype if data.dtype.kind in "iu" else np.dtype(np.uint8)
        if out_fmt in ("png", "jpeg") and target not in (np.uint8, np.uint16):
            raise CLIError(f"{out_fmt.upper()} stores uint8/uint16; the input is {data.dtype} (use .tif or .npy)")
        result = cast_like(out, target)
    elif args.dtype in ("float32", "float64"):
        result = out.astype(args.dtype)
    else:  # auto: float input keeps its dtype (float32/float64); integer scans become float32
        result = out.astype(data.dtype if data.dtype in (np.float32, np.float64) else np.float32)
    if out_fmt in ("png", "jpeg") and result.dtype.kind == "f":
        raise CLIError(f"{out_fmt.upper()} stores integers only; use --dtype input or a .tif/.npy OUTPUT")
    try:
        write_scan(dst, result, like=scan, spacing=info.spacing, channel_axis=scan.channel_axis)
        if args.preview:
            _preview(Path(args.preview), data, out, scan.channel_axis)
    except (ScanIOError, ValueError, OSError) as exc:
        raise CLIError(f"cannot write: {exc}") from None
    if not args.quiet:
        sp = " x ".join(f"{h:g}" for h in info.spacing)
        print(f"denoised {src} -> {dst}")
        print(f"  shape {data.shape} {data.dtype} -> {result.dtype}; spacing {sp}")
        print(f"  scheme {info.scheme}, conductance {info.conductance}, kappa {info.kappa:.6g}"
              f"{' (auto)' if args.kappa == 'auto' else ''}, num_iter {info.num_iter}, dt {info.dt:.6g}, "
              f"sigma {info.sigma:g}")
        if args.preview:
            print(f"  preview: {args.preview}")


def _preview(path: Path, before: np.ndarray, after: np.ndarray, channel_axis) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .demo import _save_atomic

    def show(img):
        img = np.asarray(img, dtype=np.float64)
        if channel_axis is not None:
            img = np.moveaxis(img, channel_axis, -1)
            lo, hi = np.percentile(img, [0.5, 99.5])
            return np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1)
        if img.ndim == 3:
            img = img[img.shape[0] // 2]
        if img.ndim == 1:
            img = img[None, :]
        return img

    fig, ax = plt.subplots(1, 2, figsize=(10, 5), constrained_layout=True)
    b, a = show(before), show(after)
    kw = {} if channel_axis is not None else {"cmap": "gray", "vmin": b.min(), "vmax": b.max()}
    ax[0].imshow(b, **kw)
    ax[0].set_title("input")
    ax[1].imshow(a, **kw)
    ax[1].set_title("Perona–Malik")
    for x in ax:
        x.set_axis_off()
    _save_atomic(fig, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from .demo import run_demo

            run_demo(args.output_dir, figure=not args.no_figure)
        elif args.command == "denoise":
            _denoise(args)
        return 0
    except CLIError as exc:
        print(f"pdediff {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pdediff {args.command}: interrupted; no output written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
