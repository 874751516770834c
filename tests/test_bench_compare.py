"""``pdediff bench --compare``: baselines (a bench.json, a git revision), the verdicts, the clean-up, the errors."""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jsonschema")
pytest.importorskip("tqdm")

from pdediff.bench import _compare, _worker, _workload, validate_bench  # noqa: E402
from pdediff.bench import cli as bench_cli  # noqa: E402
from pdediff.bench._markdown import write_markdown_text  # noqa: E402
from pdediff.bench._registry import GROUPS  # noqa: E402
from pdediff.errors import ParameterError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "docs" / "bench-run" / "bench.json"


def _cli(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pdediff", "bench", *argv], capture_output=True, text=True,
                          cwd=ROOT, check=False, timeout=600)


def _in_git() -> bool:
    return shutil.which("git") is not None and _compare._repo_of(_compare.current_root()) is not None


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """``tempfile``'s folder for the test: the comparison's temporary folders are made (and must vanish) here."""
    d = tmp_path / "tmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


@pytest.fixture
def only_explicit(monkeypatch):
    """Only the explicit step is a known case (the parent plans from this table; the child keeps its own)."""
    monkeypatch.setattr(_worker, "CASES", {k: v for k, v in _worker.CASES.items()
                                           if k in ("pdediff_explicit", "pdediff_adi")})


# ---------------------------------------------------------------- the verdict on synthetic timings
def test_ratio_interval_is_the_t_interval_of_the_log_ratios():
    from scipy import stats

    r = [1.2, 1.5, 1.3, 1.4]
    ratio, lo, hi = _compare.ratio_interval(r)
    logs = np.log(r)
    half = stats.t.ppf(0.975, 3) * logs.std(ddof=1) / 2
    assert ratio == pytest.approx(math.exp(logs.mean()))
    assert (lo, hi) == pytest.approx((math.exp(logs.mean() - half), math.exp(logs.mean() + half)))
    assert _compare.ratio_interval([1.3]) == (pytest.approx(1.3), None, None)
    with pytest.raises(ValueError, match="positive"):
        _compare.ratio_interval([1.0, 0.0])


@pytest.mark.parametrize("ratios,expected", [
    ([1.50, 1.52, 1.48, 1.51], "slower"),          # 50 % slower, tight: beyond the noise
    ([0.9, 1.6, 1.1, 1.4], "within noise"),        # slower on average, but the noise covers 1.1
    ([1.05, 1.06, 1.05, 1.06], "within noise"),    # surely slower, but by less than 10 %
    ([0.50, 0.52, 0.49, 0.51], "faster"),          # twice as fast, tight
    ([0.5, 1.2, 0.6, 0.9], "within noise"),        # faster on average, noisy
])
def test_verdict_on_synthetic_timings(ratios, expected):
    base = 1e-3
    current = [r * base for r in ratios]
    _, lo, hi = _compare.ratio_interval([c / base for c in current])
    assert _compare.verdict(lo, hi) == expected


def test_verdict_without_an_interval_is_within_noise():
    assert _compare.verdict(None, None) == "within noise"


# ---------------------------------------------------------------- the worker agrees with the bench's cases
def test_worker_uses_the_workload_of_the_bench():
    assert (_worker.N_ITER, _worker.KAPPA) == (_workload.N_ITER, _workload.KAPPA)
    for shape in ((20, 24), (9, 10, 11)):
        for dt in ("float32", "float64"):
            np.testing.assert_array_equal(_worker.heat_data(shape, dt), _workload.heat_data(shape, dt))
            np.testing.assert_array_equal(_worker.pm_data(shape, dt), _workload.pm_data(shape, dt))
            np.testing.assert_array_equal(_worker.kappa_data(shape, dt), _workload.kappa_data(shape, dt))


def test_every_pdediff_cpu_case_of_the_heat_and_pm_groups_is_in_the_worker():
    for g in GROUPS:
        if g.suite == "torch":
            continue
        for im in g.impls:
            if im.kind == "pdediff":
                assert im.name in _worker.CASES, im.name
                group, label, steps = _worker.CASES[im.name][:3]
                assert (label, steps) == (im.label, im.steps), im.name
                assert any(x.name == group and im in x.impls for x in GROUPS), im.name  # the explicit step: 2


def test_revision_cases_follow_the_options_and_skip_what_does_not_apply():
    cases, notes = _compare.revision_cases(("pm", "torch"), ((32, 32), (12, 12, 12)), ("float32",), (1, 2), False)
    names = {(c["name"], len(c["shape"])) for c in cases}
    assert ("pdediff_rgb", 2) in names and ("pdediff_rgb", 3) not in names  # the 3-channel image is 2-D only
    assert ("pdediff_aos", 3) in names and all(c["dtype"] == "float32" for c in cases)
    assert {c["threads"] for c in cases} == {1, 2}
    assert notes == ["torch: not compared (--compare times the heat and Perona-Malik groups)"]


def test_worker_protocol_runs_cases_and_reports_unknown_ones(tmp_path):
    spec = {"protocol": 1, "budget": {"repeats": 2, "min_sample_s": 1e-4, "max_number": 3, "max_case_s": 0.5},
            "cases": [{"name": "pdediff_explicit", "shape": [16, 16], "dtype": "float64", "threads": 1},
                      {"name": "no_such_case", "shape": [16, 16], "dtype": "float64", "threads": None}]}
    (tmp_path / "cases.json").write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, str(_compare._WORKER_PATH), "--cases", str(tmp_path / "cases.json"),
                           "--json", str(tmp_path / "out.json")], capture_output=True, text=True, check=False,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "out.json").read_text())
    assert doc["protocol"] == 1 and Path(doc["pdediff_file"]).resolve().parent.parent == ROOT
    ok, unknown = doc["results"]
    assert ok["status"] == "ok" and ok["median_s"] > 0 and len(ok["samples_s"]) >= 1
    assert unknown["status"] == "unsupported" and "no_such_case" in unknown["error"]


# ---------------------------------------------------------------- against a bench.json
def _baseline_file(tmp_path: Path) -> Path:
    """A valid bench.json (the committed run's envelope) with two 16² rows: one absurdly fast (the current code
    must be slower), one absurdly slow (it must be faster)."""
    doc = json.loads(COMMITTED.read_text())
    row = next(r for r in doc["results"] if r["impl"] == "pdediff_explicit" and r["kind"] == "pdediff")
    fast = dict(row, shape=[16, 16], dtype="float64", threads=1, cells=256, median_s=1e-12)
    slow = dict(row, impl="pdediff_explicit_block", label="pdediff step(u, 8)", steps=8, shape=[16, 16],
                dtype="float64", threads=1, cells=256, median_s=100.0)
    torch_row = dict(row, group="torch", impl="pdediff_heat_blur", shape=[4, 1, 8, 8], threads=1)
    doc["results"] = [fast, slow, torch_row]
    validate_bench(doc)
    path = tmp_path / "old" / "bench.json"
    path.parent.mkdir()
    path.write_text(json.dumps(doc))
    return path


def test_compare_against_a_bench_json(tmp_path):
    base = _baseline_file(tmp_path)
    out = tmp_path / "cmp"
    proc = _cli(["--compare", str(base), "--quick", "--rounds", "2", "--out", str(out)])
    assert proc.returncode == 1, proc.stderr  # a case is slower beyond its noise: exit status 1
    doc = json.loads((out / "bench.json").read_text())
    validate_bench(doc)
    c = doc["compare"]
    assert c["baseline"]["kind"] == "file" and c["rounds"] == 2
    by = {r["impl"]: r for r in c["cases"]}
    assert set(by) == {"pdediff_explicit", "pdediff_explicit_block"}  # the torch row is not compared
    assert by["pdediff_explicit"]["verdict"] == "slower" and by["pdediff_explicit"]["ci_low"] > 1.1
    assert by["pdediff_explicit_block"]["verdict"] == "faster"
    for r in c["cases"]:
        assert len(r["current_rounds_s"]) == 2 and r["baseline_rounds_s"] == [r["baseline_s"]]
    assert any("pdediff_heat_blur" in n for n in c["notes"])
    md = (out / "bench.md").read_text()
    assert "## Comparison" in md and "| pdediff explicit step | 2D 16² | f64 | 1 |" in md and "**slower**" in md
    # the table is printed too
    assert "current / " in proc.stdout and "slower" in proc.stdout
    # the filters choose among the file's cases
    doc2 = _compare.run_compare(base, only="heat-explicit", dtypes="float32", rounds=2, quick=True,
                                progress=False)
    assert doc2["compare"]["cases"] == []


def test_old_bench_json_stays_valid_and_the_compare_section_is_checked():
    doc = json.loads(COMMITTED.read_text())
    assert "compare" not in doc
    validate_bench(doc)  # written before the comparison existed
    import jsonschema

    bad = copy.deepcopy(doc)
    bad["compare"] = {"rounds": 1}
    with pytest.raises(jsonschema.ValidationError):
        validate_bench(bad)


# ---------------------------------------------------------------- against a revision
def _fake_repo(tmp_path: Path, init_body: str) -> _compare.Baseline:
    """A git repository whose one commit holds a pdediff package with ``init_body`` as ``__init__.py``."""
    repo = tmp_path / "fake"
    (repo / "pdediff").mkdir(parents=True)
    (repo / "pdediff" / "__init__.py").write_text(init_body)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": __import__("os").environ["PATH"], "HOME": str(tmp_path)}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "fake"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, env=env, check=True, capture_output=True,
                         text=True).stdout.strip()
    return _compare.Baseline("revision", "fake", repo=repo, commit=sha)


_OLD_API = '''"""A release with an explicit step only (no ImplicitHeatSolver)."""
import numpy as np
__version__ = "0.0.1"
class ExplicitHeatSolver:
    def __init__(self, shape, dtype, dt=None):
        pass
    def apply_operator(self, u, out, dt):
        np.copyto(out, u)
'''


def _explicit_only_compare(baseline, rounds=2):
    return _compare.compare(baseline, groups=("heat-explicit", "heat-adi"), shapes=((16, 16),),
                            dtypes=("float64",), threads=(1,), quick=True, rounds=rounds,
                            explicit={"groups": None, "shapes": None, "dtypes": None, "threads": None},
                            progress=False)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_revision_cases_its_api_lacks_are_not_in_baseline(tmp_path, private_tmp, only_explicit):
    section = _explicit_only_compare(_fake_repo(tmp_path, _OLD_API))
    by = {r["impl"]: r for r in section["cases"]}
    assert by["pdediff_explicit"]["verdict"] in ("slower", "within noise", "faster")
    assert len(by["pdediff_explicit"]["baseline_rounds_s"]) == 2 == len(by["pdediff_explicit"]["current_rounds_s"])
    assert by["pdediff_adi"]["verdict"] == "not in baseline"
    assert "ImplicitHeatSolver" in by["pdediff_adi"]["detail"]
    assert section["counts"]["not in baseline"] == 1
    assert list(private_tmp.iterdir()) == []  # the extracted revision and the work files are gone


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_temporary_checkout_is_removed_when_the_worker_fails(tmp_path, private_tmp, only_explicit):
    broken = _fake_repo(tmp_path, "raise ImportError('this release does not import')\n")
    with pytest.raises(ValueError, match="baseline code's timing process failed.*does not import"):
        _explicit_only_compare(broken)
    assert list(private_tmp.iterdir()) == []


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_temporary_checkout_is_removed_on_an_interrupt(tmp_path, private_tmp, only_explicit, monkeypatch):
    calls = []

    def interrupted(*a, **kw):
        calls.append(a)
        raise KeyboardInterrupt

    monkeypatch.setattr(_compare, "run_worker", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _explicit_only_compare(_fake_repo(tmp_path, _OLD_API))
    assert calls and list(private_tmp.iterdir()) == []


@pytest.mark.skipif(not _in_git(), reason="not inside a git checkout")
def test_compare_with_head(tmp_path, private_tmp, only_explicit):
    """``--compare HEAD``: the checkout's own HEAD extracted and run next to the working tree."""
    doc = _compare.run_compare("HEAD", only="heat-explicit", sizes="16x16", dtypes="float64", threads="1",
                               rounds=2, quick=True, out=tmp_path / "cmp", progress=False)
    validate_bench(doc)
    c = doc["compare"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert c["baseline"] == {**c["baseline"], "kind": "revision", "name": "HEAD", "commit": head}
    assert c["baseline"]["versions"]["pdediff"] is not None and c["current"]["versions"] is not None
    (row,) = c["cases"]
    assert row["impl"] == "pdediff_explicit" and row["verdict"] in ("slower", "within noise", "faster")
    assert len(row["baseline_rounds_s"]) == 2 and row["ci_low"] <= row["ratio"] <= row["ci_high"]
    assert "AB, BA" in c["order"]
    assert "HEAD" in (tmp_path / "cmp" / "bench.md").read_text()
    assert list(private_tmp.iterdir()) == []


# ---------------------------------------------------------------- bad baselines: one line naming --compare
def test_missing_file_is_one_error_naming_compare(tmp_path):
    proc = _cli(["--compare", str(tmp_path / "nothere" / "bench.json"), "--quick", "--out", str(tmp_path / "o")])
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("pdediff bench: error: --compare ") and "no such bench.json" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not _in_git(), reason="not inside a git checkout")
def test_unknown_revision_is_one_error_naming_compare(tmp_path):
    proc = _cli(["--compare", "no-such-revision-0f9e8d", "--quick", "--out", str(tmp_path / "o")])
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("pdediff bench: error: --compare ") and "neither a bench.json file nor a revision" in line


def test_baseline_that_is_not_a_bench_json(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"schema": "something else"}')
    with pytest.raises(ParameterError, match="compare .*not a bench.json") as e:
        _compare.run_compare(p, rounds=2, quick=True, progress=False)
    assert e.value.param == "compare"


def test_rounds_and_options_that_do_not_go_with_compare(tmp_path):
    parser = argparse.ArgumentParser()
    bench_cli.add_arguments(parser)
    base = str(_baseline_file(tmp_path))
    for argv, param in ((["--compare", base, "--rounds", "1"], "rounds"), (["--rounds", "3"], "rounds"),
                        (["--compare", base, "--peers"], "peers"), (["--compare", base, "--load"], "load"),
                        (["--compare", base, "--device", "gpu"], "device")):
        with pytest.raises(ParameterError) as e:
            bench_cli.run(parser.parse_args(argv + ["--out", str(tmp_path / "o")]))
        assert e.value.param == param, argv


# ---------------------------------------------------------------- the report and the README column
def _section(verdicts=("slower", "faster")) -> dict:
    rows = []
    for impl, v, ratio in zip(("pdediff_explicit", "pdediff_explicit_block"), verdicts, (1.5, 0.5)):
        rows.append({"group": "heat-explicit", "impl": impl, "label": _worker.CASES[impl][1], "shape": [1024, 1024],
                     "dtype": "float32", "threads": 2, "steps": _worker.CASES[impl][2], "baseline_s": 1e-3,
                     "current_s": ratio * 1e-3, "ratio": ratio, "ci_low": ratio * 0.9, "ci_high": ratio * 1.1,
                     "verdict": v, "detail": "", "baseline_rounds_s": [1e-3, 1e-3],
                     "current_rounds_s": [ratio * 1e-3] * 2})
    return {"baseline": {"kind": "revision", "name": "11dca99", "path": None, "commit": "11dca99" + "0" * 33,
                         "created": None, "versions": None},
            "current": {"root": "/x", "commit": None, "dirty": None, "versions": None}, "rounds": 3,
            "order": "alternating: AB, BA, AB ...", "statistic": "s", "confidence": 0.95, "threshold": 1.1,
            "budget": {}, "cases": rows, "counts": {v: verdicts.count(v) for v in _compare.VERDICTS}, "notes": []}


def _compare_doc() -> dict:
    doc = json.loads(COMMITTED.read_text())
    doc.update(results=[], ratios=[], scaling=[], targets=[], load=None, skipped=[], notes=[], compare=_section())
    doc["settings"]["compare"] = "11dca99"
    return doc


def test_compare_markdown_table():
    md = write_markdown_text(_compare_doc())
    assert "--compare 11dca99" in md.splitlines()[2]
    assert "| case | size | dtype | threads | 11dca99 [ms/step] | current [ms/step] | current / 11dca99 [95 % CI] " \
           "| verdict |" in md
    assert "| pdediff explicit step | 2D 1024² | f32 | 2 | 1 | 1.5 | 1.5 [1.35, 1.65] | **slower** |" in md
    assert "| pdediff step(u, 8) | 2D 1024² | f32 | 2 | 0.125 | 0.0625 | 0.5 [0.45, 0.55] | faster |" in md
    assert "1 slower, 1 faster" in md


def _tables_module():
    spec = importlib.util.spec_from_file_location("make_readme_tables", ROOT / "benchmarks" / "make_readme_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_gets_a_previous_release_column_once_a_comparison_exists(tmp_path):
    mt = _tables_module()
    run = tmp_path / "bench-run"
    run.mkdir()
    shutil.copy(ROOT / "docs" / "bench-run" / "bench.md", run / "bench.md")
    plain = mt.render((run / "bench.md").read_text(), mt.find_comparisons(str(run / "bench.md")))
    assert "previous release" not in plain  # no comparison: the block as before
    assert plain == mt.render((run / "bench.md").read_text())
    (run / "compare-11dca99").mkdir()
    (run / "compare-11dca99" / "bench.json").write_text(json.dumps(_compare_doc()))
    docs = mt.find_comparisons(str(run / "bench.md"))
    assert len(docs) == 1
    block = mt.render((run / "bench.md").read_text(), docs)
    table = next(t for t in block.split("\n\n") if "previous release 11dca99 / now: explicit step" in t)
    header, _, *rows = table.splitlines()
    cols = mt._cells(header)
    i, j = cols.index("previous release 11dca99 / now: explicit step"), \
        cols.index("previous release 11dca99 / now: step(u, 8)")
    row = next(mt._cells(r) for r in rows if mt._cells(r)[0] == "2D 1024² f32")
    assert row[i] == f"{1 / 1.5:.3g} ✗" and row[j] == "2"  # baseline / now, as the peers; ✗ slower
    other = next(mt._cells(r) for r in rows if mt._cells(r)[0] == "2D 4096² f32")
    assert other[i] == "–"
    assert "Previous release 11dca99: `pdediff bench --compare 11dca99`" in block and "1 slower" in block
    assert {len(mt._cells(line)) for line in table.splitlines()} == {len(cols)}
