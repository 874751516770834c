"""``pdediff bench``: the quick run end to end, the report's numbers on exact cases, option errors, the README
table generator, and the cases themselves (each one computes what its peer computes).

No timing is asserted (these machines are noisy): only that the numbers exist, are consistent with each
other and follow the schema.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

jsonschema = pytest.importorskip("jsonschema")
pytest.importorskip("tqdm")

from pdediff.bench import (  # noqa: E402
    BENCH_SCHEMA,
    OUTPUT_FILES,
    _baselines,
    _derive,
    _markdown,
    _pdediff_cases,
    _peers,
    _registry,
    _schema,
    _spec,
    _targets,
    _training,
    _workload,
    run_bench,
    validate_bench,
)
from pdediff.bench import cli as bench_cli  # noqa: E402
from pdediff.bench._timing import QUICK, Budget, _plan, busy_process  # noqa: E402
from pdediff.errors import ParameterError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _tables_module():
    spec = importlib.util.spec_from_file_location("make_readme_tables", ROOT / "benchmarks" / "make_readme_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pdediff bench")
    bench_cli.add_arguments(p)
    return p


def _flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """dest -> the option's flag, as the command line maps a ParameterError's names."""
    return {a.dest: a.option_strings[0] for a in parser._actions if a.option_strings}


def _cli_message(exc: ParameterError) -> str:
    """The message as the command line prints it: every parameter spelled as its flag."""
    flags = _flags(_parser())
    return exc.render(lambda name, value: flags[name] + ("" if value in (None, "True") else f" {value}"))


def _run_cli(argv):
    return bench_cli.run(_parser().parse_args(argv))


# ---------------------------------------------------------------- the quick run, once for the module
@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick"
    _run_cli(["--quick", "--out", str(out), "--quiet"])
    return out


def test_quick_writes_valid_json_markdown_and_plots(quick):
    for name in OUTPUT_FILES:
        assert (quick / name).stat().st_size > 0, name
    bench = json.loads((quick / "bench.json").read_text())
    validate_bench(bench)
    assert bench["quick"] is True
    assert not [s for s in bench["skipped"] if s["reason"].startswith("failed")]
    # every group ran, on the CPU, at every default thread count, in both dtypes where the group has them
    assert {r["group"] for r in bench["results"]} == set(_registry.GROUP_NAMES)
    assert {r["dtype"] for r in bench["results"]} == {"float32", "float64"}
    top = bench["settings"]["threads"]
    assert {r["threads"] for r in bench["results"] if r["kind"] == "pdediff"} == set(top)
    # methods the issue lists are all there
    impls = {r["impl"] for r in bench["results"]}
    for name in ("pdediff_explicit", "pdediff_explicit_block", "pdediff_adi", "pdediff_spectral",
                 "pdediff_exponential", "pdediff_rational", "pdediff_exponential_sigma", "pdediff_rational_sigma",
                 "pdediff_aos", "pdediff_kappa_auto", "kappa_fused", "pdediff_heat_blur", "pdediff_torch_pm",
                 "torch_train_step", "torch_train_step_serial", "torch_train_degrade", "torch_train_model",
                 "numpy_step"):
        assert name in impls, name
    assert not any(r["kind"] == "peer" for r in bench["results"])  # peers only with --peers
    md = (quick / "bench.md").read_text()
    for heading in ("## Hardware", "## Roofline (copy bandwidth)", "## Performance targets", "## Ratios", "## Times",
                    "## Scaling", "## Byte model"):
        assert heading in md
    assert "issue" not in md.lower()  # the report speaks to users, not to the tracker
    assert (quick / "bench-throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_numbers_are_consistent(quick):
    bench = json.loads((quick / "bench.json").read_text())
    roof = {(tuple(r["shape"]), r["dtype"]): r for r in bench["roofline"]}
    for r in bench["results"]:
        assert r["gbps"] == pytest.approx(r["bytes"] / r["median_s"] / 1e9)
        assert r["cells_steps_per_s"] == pytest.approx(r["cells"] * r["steps"] / r["median_s"])
        item = np.dtype(r["dtype"]).itemsize
        assert r["bytes"] == pytest.approx(r["passes"] * 2 * item * r["cells"] * r["steps"])
        ref = roof[(tuple(r["shape"]) + ((3,) if r["cells"] == 3 * math.prod(r["shape"]) else ()), r["dtype"])]
        assert r["roofline_ratio"] == pytest.approx(r["gbps"] / ref["gbps"])
    for r in bench["roofline"]:
        assert r["gbps"] == pytest.approx(2 * math.prod(r["shape"]) * np.dtype(r["dtype"]).itemsize
                                          / r["median_s"] / 1e9)
    # a row for every performance target, with what it is measured against; measured ones carry a status
    keys = {t["key"] for t in bench["targets"]}
    assert keys == {t.key for t in _targets.TARGETS}
    assert all(t["source"] == _targets.target(t["key"]).source for t in bench["targets"])
    for t in bench["targets"]:
        if t["value"] is not None:
            want = t["value"] >= t["threshold"] if t["higher_is_better"] else t["value"] <= t["threshold"]
            assert t["status"] == ("meets" if want else "misses")
        else:
            assert t["status"] == "not measured" and t["detail"]
    assert any(s["p"] for s in bench["scaling"])


def test_rerun_into_a_bench_folder_is_allowed_and_foreign_folder_refused(quick, tmp_path):
    # rerun into a copy of the quick folder: it holds a bench.json, so it is ours to overwrite (tiny run)
    import shutil

    again = tmp_path / "again"
    shutil.copytree(quick, again)
    _run_cli(["--quick", "--only", "heat-spectral", "--dtypes", "float32", "--out", str(again), "--quiet",
              "--no-figures"])
    assert json.loads((again / "bench.json").read_text())["settings"]["groups"] == ["heat-spectral"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(ParameterError) as e:
        _run_cli(["--quick", "--only", "heat-spectral", "--out", str(foreign), "--quiet"])
    assert e.value.param == "out" and re.search(r"^--out .* pass --force to write", _cli_message(e.value))
    assert re.search(r"^out .* pass force=True to write", str(e.value))
    assert sorted(os.listdir(foreign)) == ["notes.txt"]
    _run_cli(["--quick", "--only", "heat-spectral", "--dtypes", "float32", "--out", str(foreign), "--quiet",
              "--force", "--no-figures"])
    assert (foreign / "notes.txt").read_text() == "keep" and (foreign / "bench.json").exists()


# ---------------------------------------------------------------- peers and --load on tiny sizes
def test_peers_and_load_small(tmp_path):
    # not heat-explicit: py-pde's first stepper compiles for half a minute here
    bench = run_bench(quick=True, only="heat-spectral,pm", sizes="16x16,24x24", dtypes="float64", peers=True,
                      load=True, progress=False, threads=1)
    validate_bench(bench)
    libs = {r["library"] for r in bench["results"] if r["kind"] == "peer"}
    assert "SciPy FFT" in {r["library"] for r in bench["results"] if r["kind"] == "reference"}
    for mod, lib in (("SimpleITK", "SimpleITK"), ("medpy", "MedPy")):
        if importlib.util.find_spec(mod) is not None:
            assert lib in libs
        else:
            assert any(s["impl"] != "peers" and "not installed" in s["reason"] for s in bench["skipped"])
    assert any(r["peer"] for r in bench["ratios"])
    # --load: every pdediff CPU kernel timed again with the busy process, next to NumPy's step
    quiet = {(r["impl"], tuple(r["shape"])) for r in bench["results"] if not r["loaded"] and r["kind"] == "pdediff"}
    loaded = {(r["impl"], tuple(r["shape"])) for r in bench["results"] if r["loaded"]}
    assert quiet <= loaded
    assert ("numpy_step", (16, 16)) in loaded
    assert bench["load"] and all(row["numpy_slowdown"] is not None for row in bench["load"])
    for row in bench["load"]:
        assert row["slowdown"] == pytest.approx(row["loaded_s"] / row["quiet_s"])
    assert next(t for t in bench["targets"] if t["key"] == "load")["status"] in ("meets", "misses")
    # the SimpleITK float64 target is measured when the peer is there
    if importlib.util.find_spec("SimpleITK") is not None:
        assert any(t["key"] == "simpleitk-f64" and t["value"] is not None for t in bench["targets"])


def test_busy_process_ends(tmp_path):
    with busy_process() as pid:
        os.kill(pid, 0)  # alive
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_timing_plan_bounds_work():
    b = Budget(repeats=7, min_sample=5e-3, max_number=1000, max_case=1.0)
    assert _plan(1e-6, b) == (1000, 7)  # capped number of calls
    assert _plan(1e-3, b) == (5, 7)
    assert _plan(0.5, b) == (1, 2)  # slow: fewer repeats
    assert _plan(5.0, b) == (1, 1)  # at least one
    assert _plan(0.0, QUICK)[0] == QUICK.max_number


# ---------------------------------------------------------------- derived numbers on an exact case
def _synthetic():
    """A bench dict whose times are chosen: explicit t = N * 1e-9, ADI 2.5x, copy 0.5x, py-pde 25x, ..."""
    results, roofline = [], []
    for shape in ((64, 64), (128, 128)):
        n = math.prod(shape)
        roofline.append({"device": "cpu", "shape": list(shape), "dtype": "float64", "median_s": 0.5e-9 * n,
                         "iqr_s": 0.0, "repeats": 3, "number": 1, "gbps": 16 * n / (0.5e-9 * n) / 1e9})
        for group, impl, factor, steps, kind, threads in (
                ("heat-explicit", "pdediff_explicit", 1.0, 1, "pdediff", 2),
                ("heat-explicit", "pdediff_explicit", 1.7, 1, "pdediff", 1),
                ("heat-explicit", "pypde_step", 25.0, 1, "peer", None),
                ("heat-adi", "pdediff_adi", 2.5, 1, "pdediff", 2),
                ("pm", "pdediff_exponential", 5 * 2.0, 5, "pdediff", 2),
                ("pm", "pdediff_rational", 5 * 2.0, 5, "pdediff", 2),
                ("pm", "pdediff_exponential_sigma", 5 * 4.0, 5, "pdediff", 2)):
            t = factor * 1e-9 * n * (1.2 if shape == (128, 128) and impl == "pdediff_adi" else 1.0)
            results.append({"group": group, "impl": impl, "label": impl, "kind": kind, "library": "x",
                            "device": "cpu", "threads": threads, "loaded": False, "shape": list(shape),
                            "dtype": "float64", "cells": n, "steps": steps, "passes": 1.0,
                            "bytes": 16 * n * steps, "median_s": t, "iqr_s": 0.0, "repeats": 3, "number": 1})
    return {"schema": _schema.SCHEMA_ID, "created": "2026-01-01T00:00:00+00:00", "quick": True,
            "settings": {"groups": ["heat-explicit", "heat-adi", "pm"], "sizes": None, "dtypes": ["float64"],
                         "device": "cpu", "devices": ["cpu"], "threads": [1, 2], "peers": True, "load": False},
            "versions": {"pdediff": "0", "numpy": "0", "numba": "0"},
            "hardware": {"cpu": {"model": "test", "logical_cores": 2, "usable_cores": 2, "caches": [], "simd": [],
                                 "numba_threads": 2, "numba_threading_layer": None, "env": {}}, "gpu": None},
            "byte_model": _registry.BYTE_MODEL, "roofline": roofline, "results": results, "skipped": [],
            "notes": [], "wall_seconds": 1.0}


def test_derive_exact_ratios_targets_and_scaling():
    bench = _synthetic()
    _derive.derive(bench)
    validate_bench(_schema.clean(bench))
    ratio = {(r["label"], tuple(r["shape"])): r for r in bench["ratios"]}
    assert ratio[("py-pde step / pdediff step", (64, 64))]["value"] == pytest.approx(25.0)
    assert ratio[("py-pde step / pdediff step", (64, 64))]["status"] == "meets"
    assert ratio[("copy / explicit step (roofline)", (64, 64))]["value"] == pytest.approx(0.5)
    assert ratio[("copy / explicit step (roofline)", (64, 64))]["status"] == "misses"
    tg = {(t["key"], None if t["shape"] is None else tuple(t["shape"])): t for t in bench["targets"]}
    assert tg[("adi", (64, 64))]["value"] == pytest.approx(2.5) and tg[("adi", (64, 64))]["status"] == "meets"
    assert tg[("adi", (128, 128))]["value"] == pytest.approx(3.0)
    assert tg[("pm-default-sigma", (64, 64))]["value"] == pytest.approx(2.0)
    assert tg[("pm-default-sigma", (64, 64))]["status"] == "misses"
    assert tg[("pypde-f64", (64, 64))]["value"] == pytest.approx(25.0)
    # rational PM: 1 pass per iteration at 2 ns/cell against a copy at 0.5 ns/cell -> 0.25 of the roofline
    assert tg[("pm-rational-roofline", (64, 64))]["value"] == pytest.approx(0.25)
    assert tg[("gpu-spectral", None)]["status"] == "not measured"
    assert "GPU" in tg[("gpu-spectral", None)]["detail"]
    # time ∝ N exactly for the explicit step; ADI 1.2x slower at 4x the cells -> p = 1 + log(1.2)/log(4)
    p = {(s["impl"], s["threads"]): s["p"] for s in bench["scaling"]}
    assert p[("pdediff_explicit", 2)] == pytest.approx(1.0)
    assert p[("pdediff_adi", 2)] == pytest.approx(1 + math.log(1.2) / math.log(4))


def test_schema_rejects_bad_documents():
    bench = _synthetic()
    _derive.derive(bench)
    good = _schema.clean(bench)
    validate_bench(good)
    for mutate in (lambda b: b.pop("targets"), lambda b: b["results"][0].update(median_s=-1.0),
                   lambda b: b["results"][0].update(dtype="float16"), lambda b: b.update(schema="other/1"),
                   lambda b: b["targets"][0].update(status="great")):
        bad = copy.deepcopy(good)
        mutate(bad)
        with pytest.raises(jsonschema.ValidationError):
            validate_bench(bad)
    assert BENCH_SCHEMA["properties"]["schema"]["const"] == "pdediff-bench/1"


# ---------------------------------------------------------------- option errors: one line naming the option
@pytest.mark.parametrize("argv,match", [
    (["--only", "heat,fft"], r"^--only must be a comma-separated list of heat, pm, torch.*'fft'"),
    (["--only", ""], r"^--only must list at least one value"),
    (["--dtypes", "float16"], r"^--dtypes must be .*float32, float64; got 'float16'"),
    (["--dtypes", "float32,complex64"], r"^--dtypes .*'complex64'"),
    (["--device", "tpu"], r"^--device must be one of cpu, gpu, all; got 'tpu'"),
    (["--sizes", "512"], r"^--sizes must be shapes like 512x512"),
    (["--sizes", "512x0"], r"^--sizes: every axis must have 8 to 65536 cells"),
    (["--sizes", "4x4"], r"^--sizes: every axis must have 8 to 65536 cells"),
    (["--sizes", "8x8x8x8"], r"^--sizes must be shapes"),
    (["--sizes", "60000x60000x60000"], r"^--sizes: \(60000, 60000, 60000\) needs about .* GiB"),
    (["--sizes", "1.5x2"], r"^--sizes must be shapes"),
    (["--threads", "0"], r"^--threads must be integers from 1 to \d+"),
    (["--threads", "999"], r"^--threads must be integers from 1 to \d+"),
    (["--threads", "two"], r"^--threads must be positive integers"),
])
def test_bad_options(argv, match, tmp_path):
    """One line naming the option: the template names its ``dest``, which the command line spells as the flag."""
    with pytest.raises(ParameterError) as e:
        _run_cli([*argv, "--out", str(tmp_path / "o")])
    assert set(e.value.mentioned) <= set(_flags(_parser())) and e.value.param in e.value.mentioned
    msg = _cli_message(e.value)
    assert re.search(match, msg) and "\n" not in msg
    assert not (tmp_path / "o").exists()


def test_out_errors(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ParameterError, match="exists and is not a folder") as e:
        _run_cli(["--quick", "--out", str(f)])
    assert _cli_message(e.value).startswith(f"--out {f} exists")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(ParameterError, match="not writable"):
                _run_cli(["--quick", "--out", str(ro / "sub" / "out")])
            with pytest.raises(ParameterError, match="not writable"):
                _run_cli(["--quick", "--out", str(ro)])
        finally:
            ro.chmod(0o700)


def test_gpu_without_cupy_is_one_line(tmp_path):
    from pdediff.bench._hardware import gpu_available

    ok, why = gpu_available()
    if ok:
        pytest.skip("a GPU is present")
    with pytest.raises(ParameterError) as e:
        _run_cli(["--device", "gpu", "--out", str(tmp_path / "o")])
    msg = _cli_message(e.value)
    assert msg.startswith("--device gpu: ") and "\n" not in msg and why in msg
    # "all" runs the CPU part and notes the GPU's absence
    bench = run_bench(quick=True, only="heat-spectral", dtypes="float32", device="all", progress=False, threads=1)
    assert bench["settings"]["devices"] == ["cpu"] and any("GPU skipped" in n for n in bench["notes"])


def test_api_errors_name_the_parameter():
    with pytest.raises(ParameterError, match=r"^only must") as e:
        run_bench(only="nope")
    assert e.value.param == "only"
    with pytest.raises(ValueError, match=r"^dtypes must"):
        run_bench(dtypes=["float16"])
    with pytest.raises(ValueError, match=r"^device must"):
        run_bench(device="cuda")
    with pytest.raises(TypeError, match=r"^peers must be True or False"):
        run_bench(peers="yes", only="heat-spectral")
    with pytest.raises(ValueError, match=r"^sizes: a shape must be"):
        run_bench(sizes=[(64, 64.5)])


def _main(cli, argv) -> int:
    try:
        return cli.main(argv)
    except SystemExit as exc:  # a user error reported by the command's own adapter
        return exc.code


def test_registered_in_pdediff_cli(capsys, tmp_path):
    from pdediff import cli

    parser = cli._build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "bench" not in sub.choices:
        pytest.skip("pdediff.cli does not register 'bench' yet")
    help_text = sub.choices["bench"].format_help()
    assert "performance targets" in help_text and "issue" not in help_text.lower()
    assert _main(cli, ["bench", "--only", "fft", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pdediff bench: error: --only must") and err.count("\n") == 1
    assert _main(cli, ["bench", "--out", str(tmp_path / "f"), "--threads", "0"]) == 2
    assert capsys.readouterr().err.startswith("pdediff bench: error: --threads must be integers from 1 to")
    assert _main(cli, ["bench", "--quick", "--only", "heat-spectral", "--dtypes", "float32", "--threads", "1",
                       "--out", str(tmp_path / "b"), "--quiet", "--no-figures"]) == 0
    validate_bench(json.loads((tmp_path / "b" / "bench.json").read_text()))


# ---------------------------------------------------------------- layering and wording
def test_bench_does_not_import_the_command_line():
    """pdediff.bench sits below pdediff.cli: no module of it imports pdediff.cli (the command wraps bench.cli)."""
    import ast

    for path in sorted((ROOT / "pdediff" / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                target = ("." * node.level) + (node.module or "")
                names = [a.name for a in node.names]
                assert not (target in ("pdediff.cli", "..cli") or target.startswith(("pdediff.cli.", "..cli."))
                            or (target in ("pdediff", "..") and "cli" in names)), f"{path.name}: {target} {names}"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("pdediff.cli") for a in node.names), path.name


def test_every_target_says_what_it_is_measured_against():
    origins = ("roofline", "peer", "reference", "pdediff")
    for t in _targets.TARGETS:
        origin, _, what = t.source.partition(": ")
        assert origin in origins and what, t
    # a bench.json written before target rows carried their source (the committed run) gets it by key
    bench = json.loads((ROOT / "docs" / "bench-run" / "bench.json").read_text())
    assert not any("source" in t for t in bench["targets"])
    table = _markdown.targets_table(bench)
    assert table[0] == "| target | against | case | dtype | measured | target value | status |"
    for line, t in zip(table[2:], bench["targets"]):
        assert f"| {_targets.target(t['key']).source} |" in line


@pytest.mark.parametrize("path", ["README.md", "docs/benchmarks.rst", "docs/bench-run/bench.md",
                                  "benchmarks/gpu_check.py", "benchmarks/make_readme_tables.py",
                                  *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "pdediff" / "bench").glob("*.py"))])
def test_no_tracker_wording(path):
    """Users have no 'issue 12': the targets are the performance targets, each with where it comes from."""
    assert not re.search(r"issue[- ]?12|targets of issue", (ROOT / path).read_text(encoding="utf-8"), re.I)


def test_help_speaks_of_the_performance_targets():
    text = _parser().format_help()
    assert "performance targets" in text and "issue" not in text.lower()


# ---------------------------------------------------------------- the README table generator
def test_readme_tables_match_bench_md_format(quick, tmp_path):
    mt = _tables_module()
    md = (quick / "bench.md").read_text()
    parsed = mt.parse_bench_md(md)
    block = mt.render(md)
    assert block.startswith(mt.START + "\n" + mt.NOTE) and block.endswith(mt.END)
    assert parsed["summary"] in block
    # every targets row of bench.md is in the block, verbatim
    _, rows = parsed["tables"][mt.TARGETS]
    for r in rows:
        assert "| " + " | ".join(r) + " |" in block
    # every ratio value appears in its group's pivot table, whose rows all have the header's width
    rh, rrows = parsed["tables"][mt.RATIOS]
    tables = [t for t in block.split("\n\n") if t.startswith("| case |")]
    assert len(tables) == len({r[rh.index("group")] for r in rrows})
    for t in tables:
        widths = {len(mt._cells(line)) for line in t.splitlines()}
        assert len(widths) == 1
    # README rewrite: only the block between the markers changes; a second run is a no-op
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nintro\n\n{mt.START}\nold\n{mt.END}\n\nafter\n")
    bm = tmp_path / "bench.md"
    bm.write_text(md)
    assert mt.main([str(bm), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n\nintro\n\n") and text.endswith("\n\nafter\n") and block in text
    assert mt.main([str(bm), "--readme", str(readme), "--check"]) == 0
    readme.write_text(text.replace("intro", "intro2").replace(parsed["summary"], "Measured never"))
    assert mt.main([str(bm), "--readme", str(readme), "--check"]) == 1


def test_readme_generator_errors(tmp_path):
    mt = _tables_module()
    with pytest.raises(ValueError, match="not a bench.md"):
        mt.parse_bench_md("# something else\n")
    with pytest.raises(ValueError, match="exactly one"):
        mt.replace_block("no markers", "x")
    with pytest.raises(ValueError, match="exactly one"):
        mt.replace_block(f"{mt.END}\n{mt.START}", "x")
    rc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_readme_tables.py"),
                         str(tmp_path / "missing.md")], capture_output=True, text=True, check=False)
    assert rc.returncode == 2 and rc.stderr.startswith("make_readme_tables: error:")


def test_readme_block_has_the_generator_format():
    """If README.md carries the markers, its block is what the generator writes (structure, not numbers)."""
    mt = _tables_module()
    readme = (ROOT / "README.md").read_text()
    if mt.START not in readme:
        pytest.skip("README.md has no bench markers yet")
    block = mt.readme_block(readme)
    lines = block.splitlines()
    assert lines[0] == mt.START and lines[1] == mt.NOTE and lines[-1] == mt.END
    assert any(ln.startswith("Measured ") for ln in lines)
    assert f"**{mt.TARGETS}**" in block
    assert "| target | against | case | dtype | measured | target value | status |" in block


# ---------------------------------------------------------------- the cases compute like their peers
def test_cases_compare_like_with_like():
    u = _workload.heat_data((12, 10), np.float64)
    ours = _pdediff_cases.pdediff_explicit(u)()
    np.testing.assert_allclose(ours, _baselines.numpy_step(u)(), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(ours, _peers.ndimage_step(u)(), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(_baselines.fft_pair(u)(), u, atol=1e-13)  # the pair is an identity
    v = _workload.pm_data((16, 16), np.float64)
    if importlib.util.find_spec("medpy") is not None:  # MedPy's option 1 with gamma=dt is the same iteration
        # (pdediff's vectorised exp and its power-of-two scaling round differently: ~1e-7 relative)
        np.testing.assert_allclose(_pdediff_cases.pdediff_exponential(v)(), _peers.medpy(v)(), rtol=1e-6, atol=1e-4)


def test_gpu_capable_cases_run_on_numpy_arrays():
    """The GPU cases are written against the array's own module: on NumPy arrays they run on the CPU."""
    n = 0
    for g in _registry.GROUPS:
        for im in g.impls:
            if im.gpu:
                shape = (4, 1, 16, 16) if g.name == "torch" else (16, 16)
                im.make(g.data(shape, np.dtype(g.dtypes[0])))()
                n += 1
    assert n >= 10


def test_missing_peer_is_a_skip_not_an_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "SimpleITK", None)  # import fails as if not installed
    with pytest.raises(_spec.Unavailable, match="SimpleITK is not installed"):
        _peers.simpleitk(np.zeros((16, 16)))
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(_spec.Unavailable, match="OpenCV is not installed"):
        _peers.opencv_rgb(np.zeros((8, 8)))
    monkeypatch.delitem(sys.modules, "cv2")
    if importlib.util.find_spec("cv2") is not None:  # a 3-D case does not apply to OpenCV's 2-D filter
        with pytest.raises(_spec.Unavailable, match="2-D"):
            _peers.opencv_rgb(np.zeros((8, 8, 8)))


# ---------------------------------------------------------------- torch and pdediff threads in one process
_TRAIN = ("torch_train_step", "torch_train_step_serial", "torch_train_degrade", "torch_train_model")


def test_train_step_cases_need_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import fails as if not installed
    for name in _TRAIN:
        with pytest.raises(_spec.Unavailable, match="PyTorch is not installed"):
            getattr(_training, name)(np.zeros((4, 1, 16, 16), np.float32))


def test_train_step_is_its_parts_and_serial_only_changes_threads():
    """The step is the degradation then the torch part; the serial case runs pdediff serial, then restores
    the policy's mode on the policy object itself (an adaptive policy keeps its estimates)."""
    torch = pytest.importorskip("torch")
    from pdediff.kernels.cpu import threading_policy

    u = _workload.torch_data((4, 1, 16, 16), np.float32)
    step = _training.TrainStep(u)
    assert step.process.operator == "perona_malik" and int(step.t.max()) > 0
    assert torch.equal(step.degrade(), step.xt) and not torch.equal(step.xt, step.x0)  # degraded, repeatably
    seen = []
    policy = threading_policy()
    mode = policy.mode
    serial = _training.serial_kernels(lambda: seen.append(threading_policy().mode))
    serial()
    assert seen == ["serial"] and threading_policy() is policy and policy.mode == mode
    with pytest.raises(ZeroDivisionError):
        _training.serial_kernels(lambda: 1 / 0)()
    assert threading_policy() is policy and policy.mode == mode
    # one step of each case from the same start moves the weights the same way (the kernels' builds agree;
    # 16 images of 16² reach the threaded build's size)
    u = _workload.torch_data((16, 1, 16, 16), np.float32)
    a, b, step = _training.TrainStep(u), _training.TrainStep(u), _training.TrainStep(u)
    policy.mode = "parallel"
    try:
        a.step()
    finally:
        policy.mode = mode
    _training.serial_kernels(b.step)()
    for pa, pb in zip(a.net.parameters(), b.net.parameters()):
        torch.testing.assert_close(pa, pb)
    assert any(not torch.equal(p, q) for p, q in zip(a.net.parameters(), step.net.parameters()))


def test_sum_ratio_divides_by_the_sum_of_the_parts():
    bench = _synthetic()
    shape = [4, 1, 16, 16]
    for impl, t, kind, threads in (("torch_train_step", 0.9, "pdediff", 2), ("torch_train_step", 1.5, "pdediff", 1),
                                   ("torch_train_step_serial", 1.0, "reference", None),
                                   ("torch_train_degrade", 0.3, "pdediff", 2),
                                   ("torch_train_model", 0.5, "reference", None)):
        bench["results"].append({"group": "torch-train", "impl": impl, "label": impl, "kind": kind, "library": "x",
                                 "device": "cpu", "threads": threads, "loaded": False, "shape": shape,
                                 "dtype": "float32", "cells": 1024, "steps": 1, "passes": 1.0, "bytes": 8192,
                                 "median_s": t, "iqr_s": 0.0, "repeats": 3, "number": 1})
    _derive.derive(bench)
    validate_bench(_schema.clean(bench))
    ratio = {r["label"]: r for r in bench["ratios"] if r["group"] == "torch-train"}
    threads = ratio["training step: pdediff threads / pdediff serial"]
    assert threads["value"] == pytest.approx(0.9) and threads["status"] == "meets"  # at the top thread count
    parts = ratio["training step / (degradation + torch part, alone)"]
    assert parts["den"] == "torch_train_degrade+torch_train_model"
    assert parts["value"] == pytest.approx(0.9 / 0.8) and parts["status"] == "misses"
    assert any("training step / (degradation + torch part, alone)" in line for line in _markdown.ratios_table(bench))


def test_readme_block_is_the_generators_output_for_the_committed_run():
    """README.md's benchmark block is exactly what make_readme_tables.py renders from the committed
    bench.md of the run it quotes (docs/bench-run/bench.md): no hand edits, no stale tables."""
    mt = _tables_module()
    bench_md = ROOT / "docs" / "bench-run" / "bench.md"
    assert bench_md.is_file()
    assert mt.main([str(bench_md), "--readme", str(ROOT / "README.md"), "--check"]) == 0
