"""The ``pdediff bench`` command: its options (:func:`add_arguments`) and its body (:func:`run`).

The command line registers the subcommand's parser and hands it to
:func:`add_arguments`, then calls :func:`run` with the parsed arguments.  This
module does not import :mod:`pdediff.cli`: user errors are raised as
:class:`~pdediff.errors.ParameterError` (its template names the option by its
``dest``, e.g. ``{only}``, ``{force=True}``, so the command line prints
``--only ...``, ``--force``) or, when no option is at fault (jsonschema
missing, the report cannot be written), as a one-line ``ValueError``.

Examples
--------
>>> import argparse
>>> from pdediff.bench import cli
>>> parser = argparse.ArgumentParser(prog="pdediff bench")
>>> cli.add_arguments(parser)
>>> args = parser.parse_args(["--quick", "--only", "heat-spectral"])
>>> args.quick, args.only, args.out
(True, 'heat-spectral', 'pdediff-bench')
>>> cli.run(args)  # doctest: +SKIP
0
"""

from __future__ import annotations

import argparse

from ..errors import ParameterError
from ._hardware import gpu_available
from ._markdown import compare_summary, compare_table, summary_line
from ._options import check_out, parse_device, parse_dtypes, parse_only, parse_sizes, parse_threads
from ._run import run_bench

__all__ = ["add_arguments", "run", "HELP", "DESCRIPTION"]

#: The output folder when ``--out`` is not given.
DEFAULT_OUT = "pdediff-bench"
#: One line for the list of commands.
HELP = "time the solvers against the copy roofline and the tools users would otherwise run"
#: The command's ``--help`` text (set by :func:`add_arguments` unless the parser has a description).
DESCRIPTION = (
    "Measure the copy bandwidth (the roofline), then time every method x size x dtype x backend (CPU at each "
    "Numba thread count; GPU with CuPy and a device) next to the installed peers. Writes bench.json "
    "(schema-validated), bench.md (tables, and the performance targets with what each is measured against: the "
    "copy roofline, a peer library, a reference or another of pdediff's kernels) and two figures into --out. "
    "--quick: under a minute on two cores (a smoke test, not results). Single runs on a shared machine are "
    "noisy: compare ratios within one run. --compare BASELINE times this code against an earlier bench.json or "
    "a git revision (e.g. the previous release) instead, in alternating processes, and flags every case slower "
    "than the baseline beyond its noise."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``pdediff bench``'s options to ``parser`` (and :data:`DESCRIPTION`, if it has no description).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.  The options' ``dest`` names are those of
        :func:`pdediff.bench.run_bench`'s parameters (``only``, ``sizes``,
        ``dtypes``, ``device``, ``threads``, ``peers``, ``load``, ``out``,
        ``force``), plus ``quick``, ``no_figures``, ``quiet``, ``compare`` and ``rounds``.
    """
    if parser.description is None:
        parser.description = DESCRIPTION
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats: about a minute")
    parser.add_argument("--only", default=None, metavar="LIST",
                        help="comma-separated suites heat, pm, torch or groups heat-explicit, heat-adi, "
                        "heat-spectral, pm, pm-kappa, torch, torch-train (default: all)")
    parser.add_argument("--sizes", default=None, metavar="LIST",
                        help="grid shapes replacing the defaults of the heat and Perona-Malik groups, e.g. "
                        "1024x1024,128x128x128 or 2d-1024,3d-128 (2-D or 3-D, 8-65536 cells per axis)")
    parser.add_argument("--dtypes", default=None, metavar="LIST",
                        help="float32, float64 or both (default: both)")
    parser.add_argument("--device", default="cpu", metavar="{cpu,gpu,all}",
                        help="cpu (default); gpu needs CuPy and a CUDA device; all adds the GPU when present")
    parser.add_argument("--threads", default=None, metavar="LIST",
                        help="Numba thread counts of the CPU kernels, e.g. 1,2 (default: 1 and NUMBA_NUM_THREADS)")
    parser.add_argument("--peers", action="store_true",
                        help="also time the installed peers (py-pde, SciPy sparse/banded, scipy.ndimage, MedPy, "
                        "SimpleITK, OpenCV, scikit-image; cupyx.scipy.ndimage on the GPU)")
    parser.add_argument("--load", action="store_true",
                        help="time pdediff's CPU kernels and NumPy's step again with a competing process keeping "
                        "one core busy, and report the slowdowns")
    parser.add_argument("--compare", default=None, metavar="BASELINE",
                        help="compare with a bench.json (an earlier run) or a git revision (e.g. HEAD~1, a tag): "
                        "both versions timed in alternating processes, per case the ratio current/baseline with "
                        "its confidence interval and a verdict; exit status 1 if a case is slower beyond its noise. "
                        "--only/--sizes/--dtypes/--threads choose (for a bench.json: filter) the cases")
    parser.add_argument("--rounds", type=int, default=None, metavar="N",
                        help="with --compare: processes per version (default 5, with --quick 2; at least 2)")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help="output folder (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="write into a folder that holds other files (only bench.json, bench.md and the two "
                        "figures are written)")
    parser.add_argument("--no-figures", action="store_true", help="skip the two figures")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary")


def run(args: argparse.Namespace) -> int:
    """Run ``pdediff bench`` for ``args`` parsed by a parser set up with :func:`add_arguments`.

    Every option is checked before any timing.  Unless ``--quiet``, a summary
    (the run's line, each measured performance target, where the report is)
    is printed on stdout.

    With ``--compare BASELINE`` the comparison runs instead (see
    :mod:`pdediff.bench._compare`): ``bench.json`` (with its ``compare``
    section) and ``bench.md`` are written into ``--out`` and, unless
    ``--quiet``, the comparison's table is printed.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options.

    Returns
    -------
    int
        The exit status: 0; with ``--compare``, 1 when a case is slower than the baseline beyond its noise.

    Raises
    ------
    pdediff.errors.ParameterError
        An option's value is not allowed (its template names the option's ``dest``).
    ValueError
        jsonschema (which checks ``bench.json``) is not installed, or the report could not be written.
    """
    if getattr(args, "compare", None) is not None:
        return _run_compare(args)
    if getattr(args, "rounds", None) is not None:
        raise ParameterError("{rounds} goes with {compare}: pass a baseline to compare with", param="rounds")
    only = parse_only(args.only)
    sizes = parse_sizes(args.sizes)
    dtypes = parse_dtypes(args.dtypes)
    device = parse_device(args.device)
    threads = parse_threads(args.threads)
    out = check_out(args.out, args.force)
    if device == "gpu":
        ok, why = gpu_available()
        if not ok:
            raise ParameterError(f"{{device=gpu}}: {why}", param="device")
    try:
        import jsonschema  # noqa: F401
    except ImportError:
        raise ValueError("pdediff bench validates bench.json with jsonschema, which is not installed: "
                         "pip install jsonschema") from None
    try:
        bench = run_bench(out=out, quick=args.quick, only=only, sizes=sizes, dtypes=dtypes, device=device,
                          threads=threads, peers=args.peers, load=args.load, force=args.force,
                          figures=not args.no_figures, progress=not args.quiet)
    except OSError as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"could not write the report into {out}: {msg}") from exc
    if not args.quiet:
        _summary(bench, out)
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    from ._compare import run_compare

    for flag in ("peers", "load"):
        if getattr(args, flag):
            raise ParameterError(f"{{{flag}=True}} does not go with {{compare}} (the comparison times pdediff's "
                                 "own cases)", param=flag)
    if parse_device(args.device) != "cpu":
        raise ParameterError("{device} must be cpu with {compare} (the comparison runs on the CPU)", param="device")
    rounds = args.rounds if args.rounds is not None else (2 if args.quick else 5)
    try:
        bench = run_compare(args.compare, out=args.out, quick=args.quick, only=args.only, sizes=args.sizes,
                            dtypes=args.dtypes, threads=args.threads, rounds=rounds, force=args.force,
                            progress=not args.quiet)
    except OSError as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"could not write the report into {args.out}: {msg}") from exc
    if not args.quiet:
        print(summary_line(bench))
        print(compare_summary(bench))
        print("\n".join(compare_table(bench)) if bench["compare"]["cases"] else "no case to compare")
        for n in bench["compare"]["notes"]:
            print(f"  {n}")
        print(f"results: {args.out}/bench.md, {args.out}/bench.json")
    return 1 if bench["compare"]["counts"]["slower"] else 0


def _summary(bench: dict, out) -> None:
    print(summary_line(bench))
    for t in bench["targets"]:
        if t["status"] == "not measured":
            continue
        shape = "x".join(map(str, t["shape"]))
        want = f"{'>=' if t['higher_is_better'] else '<='} {t['threshold']:g}"
        print(f"  {t['label']:<52} {shape:>14} {t['dtype']:<8} {t['value']:8.3g}  {want:<7} {t['status']}"
              f"  (against {t['source']})")
    failed = [s for s in bench["skipped"] if s["reason"].startswith("failed")]
    if failed:
        print(f"  {len(failed)} case(s) failed; see the Skipped section of bench.md")
    print(f"results: {out}/bench.md, {out}/bench.json")
