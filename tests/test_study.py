"""`pdediff study`: the quick study end to end, its sanity properties, resume, schema, and errors."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("skimage")
pytest.importorskip("jsonschema")

from pdediff.cli import main  # noqa: E402
from pdediff.study import RESULTS_SCHEMA, load_results, run_study, validate_results  # noqa: E402


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One quick study (both parts, one seed) through the command line, timed."""
    out = tmp_path_factory.mktemp("study")
    t0 = time.perf_counter()
    assert main(["study", "all", "--quick", "--seeds", "1", "--out", str(out), "--quiet", "--threads", "1"]) == 0
    return out, time.perf_counter() - t0


def test_outputs_are_written_and_round_trip(quick):
    out, _ = quick
    names = set(os.listdir(out))
    assert {"results.json", "results.md", "figures", "cache", "runs"} <= names
    figs = set(os.listdir(out / "figures"))
    assert {"denoise-crops.png", "samples-digits.png", "trajectories-digits.png"} <= figs
    res = load_results(out)  # validates against the schema
    assert json.loads(json.dumps(res)) == res
    assert res["quick"] and res["kind"] == "all" and res["settings"]["seeds"] == 1
    assert res["versions"]["pdediff"] and res["machine"]["logical_cores"] >= 1
    assert set(res["wall_seconds"]) == {"denoise", "generate"}
    md = (out / "results.md").read_text()
    assert "Denoising" in md and "Generation" in md and "not results" in md


def test_schema_rejects_broken_results(quick):
    import jsonschema

    res = load_results(quick[0])
    bad = json.loads(json.dumps(res))
    bad["denoise"]["rows"][0]["dim"] = 4
    with pytest.raises(jsonschema.ValidationError):
        validate_results(bad)
    bad = json.loads(json.dumps(res))
    del bad["generate"]["datasets"]["digits"]["floor"]
    with pytest.raises(jsonschema.ValidationError):
        validate_results(bad)
    assert RESULTS_SCHEMA["properties"]["schema"]["const"] == res["schema"]


def test_generation_sanity(quick):
    """Every learned process's samples are closer to the data than its own prior; the floor is below all."""
    gen = load_results(quick[0])["generate"]["datasets"]["digits"]
    floor = np.mean([m["frechet"] for m in gen["floor"]["seeds"]])
    assert set(gen["runs"]) == {"ddpm", "ihdm", "blurring", "cold-heat", "cold-pm", "edge"}
    for proc, runs in gen["runs"].items():
        for r in runs:
            fd = r["metrics"]["frechet"]
            assert fd < r["prior"]["frechet"], (proc, fd, r["prior"])
            assert floor < fd, (proc, floor, fd)
            assert r["train_seconds"] > 0 and r["sample_seconds"] > 0
            assert 0 <= r["metrics"]["one_nn_accuracy"] <= 1
            # the 1-NN test compares equal sizes, so that its 0.5 is reachable
            assert r["metrics"]["one_nn_n"] == gen["n_samples"] < gen["n_test"]
    # quick mode: 120 samples against 539 held-out images used to put the floor at 0.70
    for f in gen["floor"]["seeds"]:
        assert f["one_nn_n"] == gen["n_samples"] and abs(f["one_nn_accuracy"] - 0.5) < 0.15, f
    md = (quick[0] / "results.md").read_text()
    assert f"{gen['n_samples']} samples against {gen['n_samples']} held-out images, 0.5 is best" in md


def test_denoising_sanity(quick):
    rows = load_results(quick[0])["denoise"]["rows"]
    by = {}
    for r in rows:
        by.setdefault((r["image"], r["level"], r["method"]), r)
    for (image, level, method), r in by.items():
        noisy = by[(image, level, "noisy")]["psnr"]
        if method == "heat":
            # the oracle is the best heat blur there is
            assert by[(image, level, "heat_oracle")]["psnr"] >= r["psnr"] - 0.05
        if level >= 0.2 and method in ("heat_oracle", "pm_explicit", "pm_aos", "eed", "eed_tuned", "tv",
                                       "bm3d", "nl_means", "tnrd", "cnn"):
            assert r["psnr"] > noisy + 3, (image, method, r["psnr"], noisy)
    assert {r["dim"] for r in rows} == {2, 3}
    for method in ("eed", "eed_tuned", "tnrd", "cnn"):  # tensor diffusion and the shipped models, 2-D and 3-D
        assert {r["dim"] for r in rows if r["method"] == method} == {2, 3}
    assert not {r["method"] for r in rows if r["dim"] == 3} & {"bm3d", "bilateral", "ddpm", "cold_pm"}


def test_default_study_compares_the_shipped_learned_denoisers():
    """The learned rows of the default study are the shipped models (tens of minutes of training, model cards);
    the minutes-long models the study trains itself run only where asked for (and in the quick pipeline test)."""
    from pdediff.study._denoise import DenoiseSettings

    default = DenoiseSettings().methods
    assert {"tnrd", "cnn", "bm3d", "nl_means", "eed"} <= set(default)
    assert not {"ddpm", "cold_pm"} & set(default)
    assert {"ddpm", "cold_pm", "tnrd", "cnn"} <= set(DenoiseSettings.quick().methods)


def test_rerun_resumes_from_the_cache(quick, tmp_path):
    """Rerunning into the same folder recomputes nothing: every arm and model comes from disk."""
    out, first = quick
    before = load_results(out)
    t0 = time.perf_counter()
    res = run_study("all", out=out, quick=True, seeds=1, progress=False, figures=False)
    assert time.perf_counter() - t0 < first
    assert res["denoise"]["cache"]["misses"] == 0
    for proc, runs in res["generate"]["datasets"]["digits"]["runs"].items():
        assert runs[0]["metrics"] == before["generate"]["datasets"]["digits"]["runs"][proc][0]["metrics"]
    # the learned denoisers were only loaded: their training time is the one recorded, not plus a load time
    for seed, info in res["denoise"]["training"].items():
        for name, v in info.items():
            assert v["train_seconds"] == before["denoise"]["training"][seed][name]["train_seconds"] > 0
            assert v["load_seconds"] is not None and v["timed_steps"] == v["steps"]


def test_generation_rerun_reports_the_recorded_training_time_and_keeps_denoising(quick, tmp_path):
    """Arms recomputed over finished runs report each run's recorded training time; the denoising stays."""
    import shutil

    out = tmp_path / "s"
    shutil.copytree(quick[0], out)
    before = load_results(out)
    shutil.rmtree(out / "cache" / "generate")
    res = run_study("generate", out=out, quick=True, seeds=1, progress=False, figures=False, threads=1)
    runs = res["generate"]["datasets"]["digits"]["runs"]
    for proc, (r,) in runs.items():
        name = [n for n in os.listdir(out / "runs") if f"-{proc}-seed0" in n][0]
        recorded = json.loads((out / "runs" / name / "run.json").read_text())["result"]["train_seconds"]
        assert r["train_seconds"] == recorded == before["generate"]["datasets"]["digits"]["runs"][proc][0][
            "train_seconds"], proc
        assert r["load_seconds"] > 0
    # `study generate` over `study all`: the denoising section is kept, and said to be
    again = load_results(out)
    assert again["denoise"] == before["denoise"] and again["kept"]["denoise"]["kind"] == "all"
    md = (out / "results.md").read_text()
    assert "## Denoising" in md and "## Generation" in md and "Kept from an earlier run" in md


def test_cli_denoise_over_an_earlier_study_keeps_the_generation_section(quick, tmp_path, capsys):
    import shutil

    out = tmp_path / "s"
    shutil.copytree(quick[0], out)
    before = load_results(out)
    assert main(["study", "denoise", "--quick", "--seeds", "1", "--out", str(out), "--no-figures",
                 "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "kept the generation section" in err and "pdediff study all --quick --seeds 1" in err
    res = load_results(out)
    assert res["kind"] == "denoise" and res["generate"] == before["generate"]
    assert set(res["kept"]) == {"generate"} and set(res["wall_seconds"]) == {"denoise"}
    md = (out / "results.md").read_text()
    assert "## Generation" in md and "Kept from an earlier run" in md


@pytest.mark.parametrize("argv, words", [
    (["study", "bogus", "--quick"], "invalid choice"),
    (["study", "denoise", "--seeds", "0"], "--seeds"),
    (["study", "denoise", "--steps", "-3"], "--steps"),
    (["study", "generate", "--quick", "--data", "/no/such/folder"], "/no/such/folder"),
])
def test_cli_errors_are_one_line(argv, words, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        code = main([*argv, "--out", str(tmp_path / "o"), "--quiet"])
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err


def test_api_validation(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        run_study("everything", out=tmp_path)
    with pytest.raises(ValueError, match="seeds"):
        run_study("denoise", out=tmp_path, seeds=0)
    with pytest.raises(ValueError, match="steps"):
        run_study("denoise", out=tmp_path, steps=0)
    with pytest.raises(ValueError, match="threads"):
        run_study("denoise", out=tmp_path, threads=0)


def test_changed_data_never_reuse_cached_arms(tmp_path):
    """The cache and the run folders are keyed by the data's content, not by its file name."""
    rng = np.random.default_rng(0)
    path = tmp_path / "imgs.npy"
    np.save(path, rng.random((40, 8, 8)).astype(np.float32))
    kw = dict(out=tmp_path / "o", quick=True, steps=2, data=str(path), figures=False, progress=False, threads=1)
    first = run_study("generate", **kw)["generate"]["datasets"][str(path)]
    np.save(path, rng.random((40, 8, 8)).astype(np.float32) ** 3)
    second = run_study("generate", **kw)["generate"]["datasets"][str(path)]
    assert first["digest"] != second["digest"]
    assert len(os.listdir(tmp_path / "o" / "runs")) == 2 * len(first["runs"])
    assert first["runs"]["ddpm"][0]["metrics"] != second["runs"]["ddpm"][0]["metrics"]
    # models and floor are compared at one sample size, and the floor reports no memorisation (its samples
    # are training images)
    assert first["n_samples"] <= first["n_train"]
    assert all(f["memorisation_ratio"] is None for f in first["floor"]["seeds"])


def test_bad_data_fail_before_the_denoising_study(tmp_path):
    with pytest.raises(ValueError, match="no-such"):
        run_study("all", out=tmp_path / "o", quick=True, data=str(tmp_path / "no-such.npy"), progress=False)
    assert not (tmp_path / "o" / "cache" / "denoise").exists() or not os.listdir(tmp_path / "o" / "cache" / "denoise")


def test_cli_thread_counts_hold_after_numba_parallel_kernels(monkeypatch):
    """Numba's first parallel kernel resets the OpenMP count torch shares; the CLI sets both explicitly."""
    import numba
    import torch

    import pdediff
    from pdediff.cli import _need_torch

    before = torch.get_num_threads(), numba.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        _need_torch("study", None)
        pdediff.perona_malik(np.random.default_rng(0).random((128, 128)))  # large enough for the parallel build
        assert torch.get_num_threads() == 1 and numba.get_num_threads() == 1
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])


def test_empty_out_is_refused(tmp_path, capsys):
    assert main(["study", "denoise", "--quick", "--out", "", "--quiet"]) == 2
    assert "--out" in capsys.readouterr().err
