"""``pdediff bench``: the subcommand's options (:func:`add_parser`) and its body (:func:`run`).

``pdediff.cli`` registers the parser with ``add_parser(sub)`` and calls
``run(args)`` when ``args.command == "bench"``; user errors are raised as
``pdediff.cli.CLIError`` (one line on stderr, exit status 2).
"""

from __future__ import annotations

import argparse

DEFAULT_OUT = "pdediff-bench"


def add_parser(subparsers) -> None:
    """Register ``bench`` on ``subparsers`` (an ``add_subparsers`` object; its parser class is used)."""
    b = subparsers.add_parser(
        "bench",
        help="time the solvers against the copy roofline and the tools users would otherwise run",
        description="Measure the copy bandwidth (the roofline), then time every method x size x dtype x backend "
        "(CPU at each Numba thread count; GPU with CuPy and a device) next to the installed peers. Writes "
        "bench.json (schema-validated), bench.md (tables and the issue-12 targets) and two figures into --out. "
        "--quick: under a minute on two cores (a smoke test, not results). Single runs on a shared machine are "
        "noisy: compare ratios within one run.",
    )
    b.add_argument("--quick", action="store_true", help="small sizes, few repeats: about a minute")
    b.add_argument("--only", default=None, metavar="LIST",
                   help="comma-separated suites heat, pm, torch or groups heat-explicit, heat-adi, heat-spectral, "
                   "pm, pm-kappa, torch-train (default: all)")
    b.add_argument("--sizes", default=None, metavar="LIST",
                   help="grid shapes replacing the defaults of the heat and Perona-Malik groups, e.g. "
                   "1024x1024,128x128x128 or 2d-1024,3d-128 (2-D or 3-D, 8-65536 cells per axis)")
    b.add_argument("--dtypes", default=None, metavar="LIST", help="float32, float64 or both (default: both)")
    b.add_argument("--device", default="cpu", metavar="{cpu,gpu,all}",
                   help="cpu (default); gpu needs CuPy and a CUDA device; all adds the GPU when present")
    b.add_argument("--threads", default=None, metavar="LIST",
                   help="Numba thread counts of the CPU kernels, e.g. 1,2 (default: 1 and NUMBA_NUM_THREADS)")
    b.add_argument("--peers", action="store_true",
                   help="also time the installed peers (py-pde, SciPy sparse/banded, scipy.ndimage, MedPy, "
                   "SimpleITK, OpenCV, scikit-image; cupyx.scipy.ndimage on the GPU)")
    b.add_argument("--load", action="store_true",
                   help="time pdediff's CPU kernels and NumPy's step again with a competing process keeping one "
                   "core busy, and report the slowdowns")
    b.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help="output folder (default: %(default)s)")
    b.add_argument("--force", action="store_true",
                   help="write into a folder that holds other files (only bench.json, bench.md and the two "
                   "figures are written)")
    b.add_argument("--no-figures", action="store_true", help="skip the two figures")
    b.add_argument("--quiet", action="store_true", help="no progress bar and no summary")


_OPTION = {"only": "--only", "sizes": "--sizes", "dtypes": "--dtypes", "device": "--device",
           "threads": "--threads", "out": "--out"}


def run(args: argparse.Namespace) -> None:
    """Run ``pdediff bench`` for parsed ``args``; user errors raise ``pdediff.cli.CLIError``."""
    from ..cli import CLIError
    from . import check_out, parse_device, parse_dtypes, parse_only, parse_sizes, parse_threads, run_bench

    try:  # every option checked before any timing, with the option's own name in the message
        only = parse_only(args.only, "--only") if args.only is not None else None
        sizes = parse_sizes(args.sizes, "--sizes")
        dtypes = parse_dtypes(args.dtypes, "--dtypes") if args.dtypes is not None else None
        device = parse_device(args.device, "--device")
        threads = parse_threads(args.threads, "--threads") if args.threads is not None else None
        out = check_out(args.out, args.force, "--out")
    except (ValueError, TypeError) as exc:
        raise CLIError(str(exc).replace("force=True (--force)", "--force")) from None
    if device == "gpu":
        from ._hardware import gpu_available

        ok, why = gpu_available()
        if not ok:
            raise CLIError(f"--device gpu: {why}")
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        raise CLIError("pdediff bench validates bench.json with jsonschema, which is not installed: "
                       "pip install jsonschema") from None
    try:
        bench = run_bench(out=out, quick=args.quick, only=only, sizes=sizes, dtypes=dtypes, device=device,
                          threads=threads, peers=args.peers, load=args.load, force=args.force,
                          figures=not args.no_figures, progress=not args.quiet)
    except (ValueError, TypeError, OSError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        for k, v in _OPTION.items():
            if msg.startswith(k + " "):
                msg = v + msg[len(k):]
        raise CLIError(msg) from None
    if not args.quiet:
        _summary(bench, out)


def _summary(bench: dict, out) -> None:
    from ._report import summary_line

    print(summary_line(bench))
    for t in bench["targets"]:
        if t["status"] == "not measured":
            continue
        shape = "x".join(map(str, t["shape"]))
        want = f"{'>=' if t['higher_is_better'] else '<='} {t['threshold']:g}"
        print(f"  {t['label']:<52} {shape:>14} {t['dtype']:<8} {t['value']:8.3g}  {want:<7} {t['status']}")
    failed = [s for s in bench["skipped"] if s["reason"].startswith("failed")]
    if failed:
        print(f"  {len(failed)} case(s) failed; see the Skipped section of bench.md")
    print(f"results: {out}/bench.md, {out}/bench.json")
