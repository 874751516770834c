"""``pdediff bench --compare BASELINE``: this code against an earlier run or a git revision, case by case.

A *revision* baseline is extracted (``git archive``) into a temporary folder
and both versions are timed by the same child process, :mod:`._worker` (run
by its path from the current tree, the library under test chosen by
``PYTHONPATH``; the baseline with its own Numba cache in the temporary
folder), one process per version and round, the two versions alternating
(rounds ``AB``, ``BA``, ``AB`` ...: neither always runs first).  A
``bench.json`` baseline (an earlier run, committed) is read, and only the
current code runs, in one process per round.

Per case the rounds give ratios ``current / baseline`` of per-process medians;
the reported ratio is their geometric mean and its confidence interval the
t-interval of the mean log ratio over rounds (:func:`ratio_interval`).  The
verdict (:func:`verdict`): *slower* when the interval's lower bound exceeds
:data:`THRESHOLD` (slower than the baseline by more than 10 % beyond the
noise), *faster* when its upper bound is below ``1 / THRESHOLD``, else
*within noise*; *not in baseline* when the baseline's code cannot run the
case (an API it lacks) and *failed* when the current code raised.
The temporary folder is removed on every exit path.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParameterError
from . import _worker
from ._registry import group
from ._timing import Budget

#: A case is *slower* when the lower bound of its ratio's interval exceeds this (10 % beyond the noise).
THRESHOLD = 1.10
#: Confidence level of the ratio's interval.
CONFIDENCE = 0.95
#: Per-process timing budget of the comparison (full, quick).
COMPARE_FULL = Budget(repeats=5, min_sample=10e-3, max_number=1000, max_case=3.0)
COMPARE_QUICK = Budget(repeats=3, min_sample=2e-3, max_number=50, max_case=0.25)
VERDICTS = ("slower", "within noise", "faster", "not in baseline", "failed")
_WORKER_PATH = Path(_worker.__file__).resolve()


@dataclass(frozen=True)
class Baseline:
    """What ``--compare`` names: a ``bench.json`` (``path``) or a git revision (``commit`` in ``repo``)."""

    kind: str  # "file" or "revision"
    name: str  # as given
    path: Path | None = None
    repo: Path | None = None
    commit: str | None = None


def current_root() -> Path:
    """The folder holding the pdediff package this process runs (what ``PYTHONPATH`` names for the current code)."""
    import pdediff

    return Path(pdediff.__file__).resolve().parent.parent


def _git(args: Sequence[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, **kw)


def _repo_of(root: Path) -> Path | None:
    try:
        p = _git(["rev-parse", "--show-toplevel"], root, text=True)
    except OSError:  # git not installed
        return None
    return Path(p.stdout.strip()) if p.returncode == 0 and p.stdout.strip() else None


def resolve_baseline(value: Any, root: Path | None = None) -> Baseline:
    """The baseline ``value`` names: an existing ``bench.json`` (or a folder holding one), else a git revision
    of the repository that holds the current pdediff (``root``; default :func:`current_root`).

    Raises
    ------
    pdediff.errors.ParameterError
        (``param="compare"``) Neither a readable ``bench.json`` nor a revision known to git.
    """
    if not isinstance(value, (str, os.PathLike)) or not str(os.fspath(value)).strip():
        raise ParameterError(f"{{compare}} must name a bench.json or a git revision; got {value!r}",
                             param="compare")
    text = str(os.fspath(value)).strip()
    p = Path(text)
    if p.is_dir() and (p / "bench.json").is_file():
        p = p / "bench.json"
    if p.is_file():
        return Baseline("file", text, path=p)
    if text.endswith(".json"):
        raise ParameterError(f"{{compare}} {text}: no such bench.json file", param="compare")
    root = current_root() if root is None else root
    repo = _repo_of(root)
    if repo is None:
        raise ParameterError(f"{{compare}} {text!r} is not a file, and the pdediff under {root} is not in a git "
                             f"checkout where it could be a revision", param="compare")
    p = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{text}^{{commit}}"], repo, text=True)
    if p.returncode != 0 or not p.stdout.strip():
        raise ParameterError(f"{{compare}} {text!r} is neither a bench.json file nor a revision git knows in "
                             f"{repo}", param="compare")
    commit = p.stdout.strip()
    has = _git(["cat-file", "-e", f"{commit}:pdediff/__init__.py"], repo)
    if has.returncode != 0:
        raise ParameterError(f"{{compare}} {text!r} ({commit[:10]}) has no pdediff package to run",
                             param="compare")
    return Baseline("revision", text, repo=repo, commit=commit)


def load_baseline_file(path: Path) -> dict:
    """A ``bench.json`` baseline, read and validated.

    Raises
    ------
    pdediff.errors.ParameterError
        (``param="compare"``) Not JSON, or not a ``bench.json`` of ``pdediff bench``.
    """
    import jsonschema

    from ._schema import validate_bench

    try:
        with open(path) as f:
            doc = json.load(f)
        validate_bench(doc)
    except (OSError, ValueError, jsonschema.ValidationError) as exc:  # JSONDecodeError is a ValueError
        text = getattr(exc, "message", None) or str(exc)
        msg = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise ParameterError(f"{{compare}} {path} is not a bench.json written by pdediff bench: {msg}",
                             param="compare") from None
    return doc


@contextmanager
def extracted(baseline: Baseline):
    """A temporary folder holding the revision's ``pdediff`` package (``git archive``); removed on exit,
    however the block ends."""
    tmp = Path(tempfile.mkdtemp(prefix="pdediff-compare-"))
    try:
        src = tmp / "src"
        src.mkdir()
        with subprocess.Popen(["git", "archive", "--format=tar", baseline.commit, "pdediff"], cwd=baseline.repo,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(src, filter="data")
                else:  # pragma: no cover - Python < 3.11.4
                    tar.extractall(src)
            err = proc.stderr.read().decode(errors="replace").strip()
        if proc.returncode != 0:
            raise ValueError(f"compare: git archive {baseline.name} failed: {err.splitlines()[-1] if err else ''}")
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- statistics
def ratio_interval(ratios: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float | None,
                                                                                       float | None]:
    """Geometric mean of per-round ratios and its t-interval: ``(ratio, low, high)``.

    The interval is ``exp(mean ± t * sd / sqrt(n))`` of the log ratios (Student's
    t with ``n - 1`` degrees of freedom); ``low`` and ``high`` are ``None`` for a
    single round.

    Parameters
    ----------
    ratios : sequence of float
        Positive ratios, one per round.
    confidence : float
        The interval's level, in (0, 1).
    """
    from scipy import stats

    r = np.asarray(ratios, dtype=np.float64)
    if r.size == 0 or not np.all(np.isfinite(r) & (r > 0)):
        raise ValueError(f"ratios must be positive and finite; got {list(ratios)}")
    logs = np.log(r)
    m = float(logs.mean())
    if logs.size < 2:
        return math.exp(m), None, None
    half = float(stats.t.ppf(0.5 + confidence / 2, logs.size - 1)) * float(logs.std(ddof=1)) / math.sqrt(logs.size)
    return math.exp(m), math.exp(m - half), math.exp(m + half)


def verdict(low: float | None, high: float | None, threshold: float = THRESHOLD) -> str:
    """``"slower"`` when ``low > threshold``, ``"faster"`` when ``high < 1 / threshold``, else ``"within noise"``
    (also when there is no interval)."""
    if low is not None and low > threshold:
        return "slower"
    if high is not None and high < 1.0 / threshold:
        return "faster"
    return "within noise"


# ---------------------------------------------------------------- the cases
def revision_cases(groups: Sequence[str], shapes, dtypes: Sequence[str], threads: Sequence[int],
                   quick: bool) -> tuple[list[dict], list[str]]:
    """The worker's cases for ``groups`` at their registry sizes (or ``shapes``), and notes on what is left out."""
    cases, notes = [], []
    for gname in groups:
        names = [n for n, spec in _worker.CASES.items() if spec[0] == gname]
        if not names:
            notes.append(f"{gname}: not compared (--compare times the heat and Perona-Malik groups)")
            continue
        g = group(gname)
        sizes = shapes if (shapes is not None and g.takes_sizes) else (g.quick_shapes if quick else g.shapes)
        for shape in sizes:
            for dt in (d for d in dtypes if d in g.dtypes):
                for name in names:
                    if name in _worker.TWO_D_ONLY and len(shape) != 2:
                        continue
                    for n in threads:
                        cases.append({"name": name, "shape": list(shape), "dtype": dt, "threads": n})
    return cases, notes


def file_cases(doc: dict, groups, shapes, dtypes, threads) -> tuple[list[dict], dict, list[str]]:
    """The baseline file's pdediff CPU cases the worker knows (filtered by the options given), their baseline
    seconds per call, and notes."""
    cases, base, notes, unknown = [], {}, [], set()
    for r in doc["results"]:
        if r["kind"] != "pdediff" or r["device"] != "cpu" or r["loaded"]:
            continue
        if (groups is not None and r["group"] not in groups) or (dtypes is not None and r["dtype"] not in dtypes) \
                or (shapes is not None and tuple(r["shape"]) not in shapes) \
                or (threads is not None and r["threads"] not in threads):
            continue
        if r["impl"] not in _worker.CASES:
            unknown.add(r["impl"])
            continue
        c = {"name": r["impl"], "shape": list(r["shape"]), "dtype": r["dtype"], "threads": r["threads"]}
        if _key(c) in base:  # a case shared by two groups (the explicit step in heat-adi)
            continue
        cases.append(c)
        base[_key(c)] = r["median_s"]
    if unknown:
        notes.append(f"not compared (no such case in the comparison): {', '.join(sorted(unknown))}")
    return cases, base, notes


def _key(c: dict) -> tuple:
    return c["name"], tuple(c["shape"]), c["dtype"], c["threads"]


# ---------------------------------------------------------------- the child processes
def run_worker(root: Path, cases: list[dict], budget: Budget, work: Path, tag: str,
               numba_cache: Path | None = None) -> dict:
    """Run :mod:`._worker` on ``cases`` with ``PYTHONPATH=root`` (and ``NUMBA_CACHE_DIR=numba_cache``);
    its results by case key.

    Raises
    ------
    ValueError
        The process did not write its results (it crashed, or pdediff does not import), or it imported a
        pdediff from elsewhere than ``root``.
    """
    spec = work / f"{tag}-cases.json"
    out = work / f"{tag}-results.json"
    with open(spec, "w") as f:
        json.dump({"protocol": _worker.PROTOCOL, "cases": cases,
                   "budget": {"repeats": budget.repeats, "min_sample_s": budget.min_sample,
                              "max_number": budget.max_number, "max_case_s": budget.max_case}}, f)
    if out.exists():
        out.unlink()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if numba_cache is not None:
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
    proc = subprocess.Popen([sys.executable, str(_WORKER_PATH), "--cases", str(spec), "--json", str(out)],
                            env=env, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate()
    finally:  # an interrupt in the parent: the child must not outlive it
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0 or not out.exists():
        last = [ln for ln in (err or "").strip().splitlines() if ln.strip()]
        raise ValueError(f"compare: the {tag} code's timing process failed (exit status {proc.returncode})"
                         f"{': ' + last[-1].strip() if last else ''}")
    with open(out) as f:
        doc = json.load(f)
    got = Path(doc["pdediff_file"]).resolve()
    if root.resolve() not in got.parents:
        raise ValueError(f"compare: the {tag} code's timing process imported pdediff from {got}, not from {root}")
    return {"versions": doc["versions"], "results": {_key(r): r for r in doc["results"]}}


def _git_state(root: Path) -> dict:
    repo = _repo_of(root)
    if repo is None:
        return {"commit": None, "dirty": None}
    head = _git(["rev-parse", "HEAD"], repo, text=True)
    status = _git(["status", "--porcelain", "--untracked-files=no", "--", "pdediff"], repo, text=True)
    return {"commit": head.stdout.strip() or None if head.returncode == 0 else None,
            "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def compare(baseline: Baseline, *, groups: Sequence[str], shapes, dtypes: Sequence[str],
            threads: Sequence[int], quick: bool, rounds: int, explicit: dict, progress: bool = True) -> dict:
    """Time the cases of ``baseline`` and of the current code; the ``compare`` section of ``bench.json``.

    ``explicit`` holds the options the user gave (``groups``, ``shapes``, ``dtypes``, ``threads``: ``None``
    when not given); a ``bench.json`` baseline's cases are filtered by them only.
    """
    from tqdm.auto import tqdm

    budget = COMPARE_QUICK if quick else COMPARE_FULL
    root = current_root()
    notes: list[str] = []
    base_file: dict = {}
    if baseline.kind == "file":
        doc = load_baseline_file(baseline.path)
        cases, base_file, notes = file_cases(doc, explicit["groups"], explicit["shapes"], explicit["dtypes"],
                                             explicit["threads"])
        if doc["quick"]:
            notes.append("the baseline is a --quick run: a smoke test, its times are not results")
        if doc["hardware"]["cpu"]["model"] != _cpu_model():
            notes.append(f"the baseline was measured on {doc['hardware']['cpu']['model']}, this run on "
                         f"{_cpu_model()}: the ratios mix two machines")
        info = {"kind": "file", "name": baseline.name, "path": str(baseline.path), "commit": None,
                "created": doc["created"], "versions": doc["versions"]}
    else:
        cases, notes = revision_cases(groups, shapes, dtypes, threads, quick)
        info = {"kind": "revision", "name": baseline.name, "path": None, "commit": baseline.commit,
                "created": None, "versions": None}
    current = {"root": str(root), **_git_state(root), "versions": None}
    base_runs: dict[tuple, list] = {_key(c): [] for c in cases}
    cur_runs: dict[tuple, list] = {_key(c): [] for c in cases}
    base_status: dict[tuple, str] = {}
    cur_status: dict[tuple, str] = {}
    versions_per_round = 2 if baseline.kind == "revision" else 1
    bar = tqdm(total=rounds * versions_per_round, desc="pdediff bench --compare", unit="process",
               disable=not progress or None, leave=False)
    with _maybe_extracted(baseline) as tmp:
        work = Path(tempfile.mkdtemp(prefix="pdediff-compare-work-")) if tmp is None else tmp
        try:
            for r in range(rounds):
                order = ("current", "baseline") if r % 2 == 0 else ("baseline", "current")
                for who in order:
                    if who == "baseline" and baseline.kind == "file":
                        continue
                    runs, status = (cur_runs, cur_status) if who == "current" else (base_runs, base_status)
                    todo = [c for c in cases if _key(c) not in status]  # a case that failed once is not retried
                    bar.set_postfix_str(f"round {r + 1}/{rounds} {who}", refresh=False)
                    if todo:
                        got = run_worker(root if who == "current" else tmp / "src", todo, budget, work, who,
                                         None if who == "current" else tmp / "numba-cache")
                        if who == "current":
                            current["versions"] = got["versions"]
                        else:
                            info["versions"] = got["versions"]
                        for k, res in got["results"].items():
                            if res["status"] == "ok":
                                runs[k].append(res["median_s"])
                            else:
                                status[k] = res["error"] or res["status"]
                    bar.update()
        finally:
            bar.close()
            if tmp is None:
                shutil.rmtree(work, ignore_errors=True)
    rows = []
    for c in cases:
        k = _key(c)
        g, label, steps = _worker.CASES[c["name"]][:3]
        row = {"group": g, "impl": c["name"], "label": label, "shape": c["shape"], "dtype": c["dtype"],
               "threads": c["threads"], "steps": steps, "baseline_s": None, "current_s": None, "ratio": None,
               "ci_low": None, "ci_high": None, "verdict": "", "detail": "",
               "baseline_rounds_s": base_runs[k], "current_rounds_s": cur_runs[k]}
        if baseline.kind == "file":
            row["baseline_s"] = base_file[k]
            row["baseline_rounds_s"] = [base_file[k]]
        if k in base_status:
            row.update(verdict="not in baseline", detail=base_status[k])
        elif k in cur_status:
            row.update(verdict="failed", detail=cur_status[k])
        else:
            if baseline.kind == "revision":
                ratios = [a / b for a, b in zip(cur_runs[k], base_runs[k])]
                row["baseline_s"] = float(np.median(base_runs[k]))
            else:
                ratios = [a / base_file[k] for a in cur_runs[k]]
            row["current_s"] = float(np.median(cur_runs[k]))
            row["ratio"], row["ci_low"], row["ci_high"] = ratio_interval(ratios)
            row["verdict"] = verdict(row["ci_low"], row["ci_high"])
        rows.append(row)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    return {"baseline": info, "current": current, "rounds": rounds,
            "order": "one process per version and round, alternating AB, BA, AB ..."
            if baseline.kind == "revision" else "current code only, one process per round",
            "statistic": "geometric mean of per-round ratios of medians; t-interval of the mean log ratio",
            "confidence": CONFIDENCE, "threshold": THRESHOLD,
            "budget": {"repeats": budget.repeats, "min_sample_s": budget.min_sample, "max_number": budget.max_number,
                       "max_case_s": budget.max_case},
            "cases": rows, "counts": counts, "notes": notes}


@contextmanager
def _maybe_extracted(baseline: Baseline):
    if baseline.kind == "revision":
        with extracted(baseline) as tmp:
            yield tmp
    else:
        yield None


def _cpu_model() -> str:
    from ._hardware import cpu_info

    return cpu_info()["model"]


def run_compare(baseline: Any, *, out: str | os.PathLike | None = None, quick: bool = False,
                only: Any = None, sizes: Any = None, dtypes: Any = None, threads: Any = None, rounds: int = 5,
                force: bool = False, progress: bool = True) -> dict:
    """Compare the current code with ``baseline`` (``pdediff bench --compare``); write ``bench.json`` and
    ``bench.md`` into ``out``.

    Parameters
    ----------
    baseline : str or os.PathLike
        A ``bench.json`` written by ``pdediff bench`` (or its folder), or a git revision of the repository
        holding the current pdediff (``HEAD~3``, a tag, a commit).
    out : os.PathLike, optional
        Folder for ``bench.json`` (with its ``compare`` section) and ``bench.md``; ``None``: nothing written.
    quick : bool
        The groups' small sizes and a short timing budget (a smoke test).
    only, sizes, dtypes, threads
        As for :func:`pdediff.bench.run_bench`.  For a revision they choose the cases (default: every heat
        and Perona–Malik group at its sizes, both dtypes, the largest thread count); for a ``bench.json``
        baseline they only filter its cases.
    rounds : int
        Processes per version (at least 2: the interval needs two ratios).
    force : bool
        Write into a folder that is not a bench folder.
    progress : bool
        A progress bar (one step per process).

    Returns
    -------
    dict
        The ``bench.json`` document; its ``compare`` section holds per case the baseline's and the current
        seconds per call (medians over rounds), the ratio ``current / baseline`` with its interval and the
        verdict.

    Raises
    ------
    pdediff.errors.ParameterError
        (naming ``compare``, ``rounds`` or another option) A baseline that is neither a ``bench.json`` nor a
        revision, fewer than 2 rounds, or a bad option.
    ValueError
        A timing process failed as a whole (e.g. the baseline's pdediff does not import).
    """
    from datetime import datetime, timezone
    import time

    from ._hardware import cpu_info, versions
    from ._options import check_out, parse_dtypes, parse_only, parse_sizes, parse_threads
    from ._registry import BYTE_MODEL
    from ._report import write_outputs
    from ._schema import SCHEMA_ID, clean, validate_bench

    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)) or rounds < 2:
        raise ParameterError(f"{{rounds}} must be an integer of at least 2 (the interval needs two ratios); "
                             f"got {rounds!r}", param="rounds")
    explicit = {"groups": None if only is None else parse_only(only),
                "shapes": None if sizes is None else parse_sizes(sizes),
                "dtypes": None if dtypes is None else parse_dtypes(dtypes),
                "threads": None if threads is None else parse_threads(threads)}
    groups = explicit["groups"] or parse_only(None)
    dts = explicit["dtypes"] or parse_dtypes(None)
    thr = explicit["threads"] or (max(parse_threads(None)),)
    base = resolve_baseline(baseline)
    out_path = None if out is None else check_out(out, force)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    section = compare(base, groups=groups, shapes=explicit["shapes"], dtypes=dts, threads=thr, quick=bool(quick),
                      rounds=int(rounds), explicit=explicit, progress=progress)
    bench = {
        "schema": SCHEMA_ID, "created": started, "quick": bool(quick),
        "settings": {"groups": list(groups), "sizes": None if explicit["shapes"] is None else
                     [list(s) for s in explicit["shapes"]], "dtypes": list(dts), "device": "cpu",
                     "devices": ["cpu"], "threads": list(thr), "peers": False, "load": False,
                     "compare": base.name, "rounds": int(rounds)},
        "versions": versions(), "hardware": {"cpu": cpu_info(), "gpu": None}, "byte_model": BYTE_MODEL,
        "roofline": [], "results": [], "ratios": [], "scaling": [], "targets": [], "load": None, "skipped": [],
        "notes": [], "compare": section,
    }
    bench["wall_seconds"] = time.perf_counter() - t0
    bench = clean(bench)
    validate_bench(bench)
    if out_path is not None:
        write_outputs(bench, out_path, figures=False)
    return bench
