"""The study's bookkeeping on tiny fake results: training times, flags, merged sections, legends, argument types.

No model is trained here (the end-to-end checks are in ``test_study.py``).
"""

from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest

pytest.importorskip("skimage")
pytest.importorskip("jsonschema")

from pdediff.study import _denoise, _generate, _report, run_study, validate_results  # noqa: E402


# ----------------------------------------------------------------------------- fake results
def _metrics(frechet=3.0, one_nn=0.6, memo=1.1, n=None):
    m = {"frechet": frechet, "sliced_wasserstein": 0.1, "one_nn_accuracy": one_nn, "precision": 0.9, "recall": 0.8,
         "density": 0.9, "coverage": 0.9, "memorisation_ratio": memo, "spectrum": {"band_0": 0.01, "band_1": 0.02}}
    if n is not None:
        m["one_nn_n"] = n
    return m


def _run(train_seconds=12.0, n=None):
    return {"train_seconds": train_seconds, "sample_seconds": 1.0, "sampling_steps": 10, "final_loss": 0.1,
            "prior": {"frechet": 100.0}, "metrics": _metrics(n=n)}


def _generate_section(n_samples=120, n_test=539, one_nn_n=None, floor_memo=None):
    entry = {"shape": [1, 8, 8], "n_train": 1258, "n_test": n_test, "n_samples": n_samples, "digest": "abc",
             "features": {"kind": "classifier", "seconds": 1.0, "accuracy": 0.99},
             "floor": {"seeds": [_metrics(frechet=2.0, one_nn=0.5, memo=floor_memo, n=one_nn_n)]},
             "runs": {"ddpm": [_run(n=one_nn_n)]}}
    return {"datasets": {"digits": entry}, "processes": {"ddpm": "DDPM (Gaussian)"}}


def _row(method, psnr, ssim, image="camera", level=0.05, seed=0, **extra):
    return {"image": image, "dim": 2, "level": level, "seed": seed, "method": method, "psnr": psnr, "ssim": ssim,
            "seconds": 0.01, "sigma_hat": level, **extra}


def _denoise_section(rows=None, training=None):
    rows = rows or [_row("noisy", 26.0, 0.48), _row("tv", 31.0, 0.8)]
    return {"rows": rows, "methods": {"noisy": "noisy input", "tv": "TV (Chambolle)",
                                      "cold_pm": "learned: cold diffusion over Perona–Malik"},
            "training": training or {}, "notes": []}


def _results(kind, denoise=None, generate=None, quick=False, seeds=1, started="2026-01-01T00:00:00+00:00"):
    return {"schema": _report.SCHEMA_ID, "kind": kind, "quick": quick,
            "settings": {"seeds": seeds, "denoise": {"size": 48}, "generate": {"steps": 60}},
            "versions": {"pdediff": "0.1.0"}, "machine": {"cpu": "test", "logical_cores": 2},
            "started": started, "wall_seconds": {s: 60.0 for s in ("denoise", "generate")
                                                  if (denoise if s == "denoise" else generate)},
            "denoise": denoise, "generate": generate}


# ----------------------------------------------------------------------------- training time
def test_a_finished_training_reports_its_recorded_time_not_the_load_time(tmp_path):
    """A rerun only loads the checkpoint: its wall time is a load time, never added to the training time."""
    folder = str(tmp_path)
    first = _denoise._training_record(folder, 0, 20, 1.5)
    assert first == {"train_seconds": 1.5, "timed_steps": 20, "load_seconds": None}
    for load in (1.0, 2.0, 4.0):  # reruns: the issue saw "1 s" -> "2 s" -> "4 s"
        again = _denoise._training_record(folder, 20, 20, load)
        assert again == {"train_seconds": 1.5, "timed_steps": 20, "load_seconds": load}
    # resumed training adds the time of the new steps only
    more = _denoise._training_record(folder, 20, 30, 0.5)
    assert more == {"train_seconds": 2.0, "timed_steps": 30, "load_seconds": None}


def test_training_time_without_a_trustworthy_record(tmp_path):
    folder = str(tmp_path)
    # a record written by an earlier version (no step) may hold load times: not reported as a training time
    with open(os.path.join(folder, "seconds.json"), "w") as f:
        json.dump({"seconds": 99.0}, f)
    assert _denoise._training_record(folder, 20, 20, 0.3) == {"train_seconds": None, "timed_steps": 0,
                                                               "load_seconds": 0.3}
    # a checkpoint trained 10 steps before any record: the next 10 are timed, and said to be
    assert _denoise._training_record(folder, 10, 20, 0.8)["timed_steps"] == 10
    line = _report._training_line({"0": {"ddpm": {"steps": 20, "timed_steps": 10, "train_seconds": 0.8},
                                         "cold_pm": {"steps": 20, "timed_steps": 0, "train_seconds": None}}})
    assert "ddpm 20 steps (10 of them timed) in 1 s" in line
    assert "cold_pm 20 steps (training time not recorded)" in line


def test_generation_time_comes_from_the_run_record():
    record = {"result": {"train_seconds": 42.0}}
    # a finished run: this call only loaded it (3 s), which is not training time
    assert _generate._times(record, 3.0, False, 0.5) == {"train_seconds": 42.0, "load_seconds": 3.5}
    assert _generate._times(record, 42.0, True, 0.5) == {"train_seconds": 42.0, "load_seconds": 0.5}


# ----------------------------------------------------------------------------- a row that returns its input
def test_a_denoiser_that_returns_its_input_is_flagged():
    """Cold PM tuned to level 0 hands back the noisy image: the row says so (flag, table mark, footnote)."""
    clean = np.clip(np.add.outer(np.linspace(0, 1, 32), np.linspace(0, 0.5, 32)), 0, 1)
    tuned = {"cold_pm": {0.05: {"params": [0], "train_psnr": 26.0, "sigma_hat": 0.05}},
             "tv": {0.05: {"params": [0.05], "train_psnr": 30.0, "sigma_hat": 0.05}}}
    models = {"cold_pm": _denoise._ColdPMDenoiser(None, None)}  # level 0 never calls the model
    rows = _denoise._run_case(clean, "ramp", 2, 0.05, 0, ["noisy", "tv", "cold_pm"], tuned, models)
    flags = {r["method"]: r["returns_input"] for r in rows}
    assert flags == {"noisy": False, "tv": False, "cold_pm": True}
    md = "\n".join(_report.denoise_tables(_denoise_section(rows)))
    cold = next(line for line in md.splitlines() if line.startswith("| learned: cold diffusion"))
    assert _report.RETURNS_INPUT in cold
    tv = next(line for line in md.splitlines() if line.startswith("| TV"))
    assert _report.RETURNS_INPUT not in tv
    assert "returns its input" in md


def test_rows_of_an_earlier_version_are_flagged_by_their_identical_scores():
    rows = [_row("noisy", 26.0, 0.48), _row("cold_pm", 26.0, 0.48), _row("tv", 26.0, 0.5),
            _row("noisy", 20.0, 0.3, image="coins"), _row("cold_pm", 24.0, 0.6, image="coins")]
    _report.mark_returned_input(rows)
    assert [r["returns_input"] for r in rows] == [False, True, False, False, False]
    md = "\n".join(_report.denoise_tables(_denoise_section([{k: v for k, v in r.items() if k != "returns_input"}
                                                            for r in rows])))
    cold = next(line for line in md.splitlines() if line.startswith("| learned: cold diffusion"))
    assert f"{_report.RETURNS_INPUT}1/2" in cold  # on one of the two images


# ----------------------------------------------------------------------------- merged sections
def test_a_denoise_run_keeps_the_earlier_generation_section():
    earlier = _results("all", _denoise_section(), _generate_section(), seeds=3)
    new = _results("denoise", _denoise_section([_row("noisy", 26.5, 0.5)]), None, quick=True,
                   started="2026-02-02T00:00:00+00:00")
    assert _report.merge_sections(new, copy.deepcopy(earlier)) == ["generate"]
    validate_results(new)
    assert new["generate"] == earlier["generate"]
    assert new["denoise"]["rows"][0]["psnr"] == 26.5  # the section that ran is the new one
    assert new["kept"]["generate"]["kind"] == "all" and new["kept"]["generate"]["seeds"] == 3
    assert "generate" not in new["wall_seconds"]  # this run's wall times only
    md = "\n".join(_report.markdown(new))
    assert "## Generation" in md and "## Denoising" in md
    assert "Kept from an earlier run" in md and "pdediff study all --seeds 3" in md
    msg = _report.kept_message(new, "S/results.json")
    assert "generation" in msg and "S/results.json" in msg and "pdediff study all --seeds 3" in msg
    # kept again by a later denoise run: still from the original run
    later = _results("denoise", _denoise_section(), None, started="2026-03-03T00:00:00+00:00")
    _report.merge_sections(later, new)
    assert later["kept"]["generate"]["started"] == "2026-01-01T00:00:00+00:00"
    # a run of everything keeps nothing
    full = _results("all", _denoise_section(), _generate_section())
    assert _report.merge_sections(full, later) == [] and "kept" not in full


def test_no_earlier_results_or_a_broken_file(tmp_path):
    assert _report.read_earlier(tmp_path / "results.json") == (None, None)
    (tmp_path / "results.json").write_text("{not json")
    earlier, problem = _report.read_earlier(tmp_path / "results.json")
    assert earlier is None and "could not be read" in problem
    new = _results("denoise", _denoise_section(), None)
    assert _report.merge_sections(new, None) == [] and new["generate"] is None


# ----------------------------------------------------------------------------- the generation table's legend
class _Identity:
    kind = "autoencoder"

    @staticmethod
    def transform(x):
        return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def test_one_nn_compares_sets_of_equal_size():
    """20 samples against 200 real images of one distribution: 0.5 is reachable only on equal sizes."""
    rng = np.random.default_rng(0)
    samples, reference, train = (rng.normal(size=(k, 1, 8, 8)) for k in (20, 200, 100))
    m = _generate.set_metrics(samples, reference, train, _Identity(), seed=0)
    assert m["one_nn_n"] == 20
    assert m["one_nn_accuracy"] < 0.75  # unequal sizes give ~0.83: the majority set wins by default


def test_the_legend_is_true_for_the_sizes_compared():
    eq = "\n".join(_report.generate_tables(_generate_section(one_nn_n=120)))
    assert "120 samples against 120 held-out images, 0.5 is best" in eq
    # results of an earlier version, compared at unequal sizes: the legend does not promise 0.5
    old = "\n".join(_report.generate_tables(_generate_section()))
    assert "0.5 is best" not in old and "floor" in old.split("1-NN accuracy:")[1]
    same = "\n".join(_report.generate_tables(_generate_section(n_samples=539)))
    assert "0.5 is best" in same


@pytest.mark.parametrize("floor_memo", [None, 0.0])
def test_the_floor_memorisation_cannot_read_as_copying(floor_memo):
    md = _report.generate_tables(_generate_section(one_nn_n=120, floor_memo=floor_memo))
    floor = next(line for line in md if line.startswith("| real vs real"))
    cells = [c.strip() for c in floor.strip("|").split("|")]
    assert cells[11] == "n/a"  # the memorisation column
    model = next(line for line in md if line.startswith("| DDPM"))
    assert [c.strip() for c in model.strip("|").split("|")][11] == "1.10"
    assert "n/a for the floor" in "\n".join(md)


# ----------------------------------------------------------------------------- argument types
@pytest.mark.parametrize("kwargs, words", [
    ({"out": None}, "out must be a str or os.PathLike"),
    ({"out": 5}, "out must be a str or os.PathLike"),
    ({"seeds": 2.0}, "seeds must be an int; got float"),
    ({"seeds": "3"}, "seeds must be an int; got str"),
    ({"steps": 1.5}, "steps must be an int"),
    ({"threads": True}, "threads must be an int; got bool"),
    ({"quick": "yes"}, "quick must be a bool"),
    ({"figures": None}, "figures must be a bool"),
    ({"data": 5}, "data must be a str, an os.PathLike or a tuple"),
    ({"data": ("digits", 5)}, "data must be a str, an os.PathLike or a tuple"),
    ({"device": 0}, "device must be a str"),
])
def test_wrong_types_raise_a_type_error_naming_the_parameter(kwargs, words, tmp_path, monkeypatch):
    import importlib

    def ran(*args, **kw):
        raise AssertionError("the study started although an argument has the wrong type")

    monkeypatch.setattr(importlib.import_module("pdediff.study._run"), "_run", ran)
    kw = {"out": tmp_path / "o", **kwargs}
    with pytest.raises(TypeError, match=words):
        run_study("denoise", **kw)
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_wrong_kind_type_and_values(tmp_path):
    from pdediff.errors import ParameterError

    with pytest.raises(TypeError, match="kind must be a str"):
        run_study(["denoise"], out=tmp_path)
    with pytest.raises(ParameterError, match="seeds must be a positive integer") as exc:
        run_study("denoise", out=tmp_path, seeds=0)
    assert exc.value.param == "seeds"
    with pytest.raises(ParameterError, match="out must name a folder"):
        run_study("denoise", out="  ")
    with pytest.raises(ParameterError, match="data"):
        run_study("generate", out=tmp_path, data=())
