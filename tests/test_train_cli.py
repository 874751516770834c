"""`pdediff train` / `pdediff sample`, runs on disk, datasets and safe checkpoints (tiny settings throughout)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from cli_checks import one_error_line

torch = pytest.importorskip("torch")

from pdediff.catalogue import PROCESS_NAMES  # noqa: E402
from pdediff.cli import main  # noqa: E402
from pdediff.errors import CheckpointError, DatasetError, RunError  # noqa: E402
from pdediff.torch import PROCESSES, Run, load_dataset, load_run, make_process, train_run  # noqa: E402
from pdediff.torch.training import load_checkpoint  # noqa: E402

TINY = ["--base", "8", "--mults", "1", "--batch-size", "8", "--quiet"]


def _train(out, *extra, steps=4, process="ihdm", data="digits"):
    return main(["train", "--process", process, "--data", str(data), "--steps", str(steps), "--out", str(out),
                 *TINY, *map(str, extra)])


def _sample(run, out, *extra):
    return main(["sample", "--run", str(run), "-o", str(out), "--quiet", *map(str, extra)])


def _one_error_line(capsys, command, *fragments):
    return one_error_line(capsys, *fragments, prefix=f"pdediff {command}: error:")


@pytest.fixture(scope="module")
def npy_data(tmp_path_factory):
    """20 grey 8 x 8 images as float64 in an arbitrary range (rescaled from min/max on loading)."""
    p = tmp_path_factory.mktemp("data") / "images.npy"
    x = np.random.default_rng(0).random((20, 8, 8)) * 5.0 - 1.0
    x[:, 2:6, 3:5] += 3.0
    np.save(p, x)
    return p


@pytest.fixture(scope="module")
def trained(tmp_path_factory, npy_data):
    """An IHDM run trained 4 steps on the 20-image .npy (module-scoped: several tests read it)."""
    run = tmp_path_factory.mktemp("runs") / "ihdm"
    assert _train(run, data=npy_data) == 0
    return run


# ------------------------------------------------------------------ end to end
def test_train_then_sample_end_to_end(tmp_path, trained, capsys):
    assert sorted(os.listdir(trained)) == ["checkpoint.pt", "run.json"]
    rec = json.loads((trained / "run.json").read_text())
    assert rec["process"]["name"] == "ihdm" and rec["process"]["class"] == "HeatDissipation"
    assert rec["model"] == {"class": "UNet", "in_channels": 1, "base": 8, "mults": [1], "num_res_blocks": 1}
    assert rec["training"] == {"steps": 4, "batch_size": 8, "lr": 1e-3, "ema_decay": 0.999, "ema_warmup": True,
                               "seed": 0}
    assert rec["data"]["shape"] == [14, 1, 8, 8] and rec["result"]["step"] == 4
    assert set(rec["versions"]) == {"pdediff", "torch", "numpy", "python"}

    grid, npy, traj = tmp_path / "grid.png", tmp_path / "s.npy", tmp_path / "traj.png"
    assert _sample(trained, grid, "-n", 9, "--npy", npy, "--trajectory", traj, "--num-inference-steps", 5) == 0
    assert grid.stat().st_size > 0 and traj.stat().st_size > 0
    x = np.load(npy)
    assert x.shape == (9, 1, 8, 8) and x.dtype == np.float32 and np.all(np.abs(x) <= 1)
    # the same seed gives the same images, through the CLI and the API alike
    run = load_run(trained)
    assert isinstance(run, Run) and run.step == 4 and len(run.losses) == 4
    np.testing.assert_array_equal(run.sample(9, num_inference_steps=5, seed=0), x)
    imgs, tr = run.sample(3, num_inference_steps=5, seed=1, trajectory=True)
    assert len(tr) == 6 and tr[0].shape == (3, 1, 8, 8)
    assert not np.array_equal(imgs, run.sample(3, num_inference_steps=5, seed=2))

    # outputs are never overwritten without --force, and never an input
    before = grid.read_bytes()
    assert _sample(trained, grid, "-n", 4) == 2
    _one_error_line(capsys, "sample", "exists", "--force")
    assert grid.read_bytes() == before
    assert _sample(trained, grid, "-n", 4, "--num-inference-steps", 5, "--force") == 0
    assert _sample(trained, tmp_path / "g.png", "-n", 2, "--npy", npy_data_path(trained), "--force") == 2
    _one_error_line(capsys, "sample", "--npy", "is an input")
    assert _sample(trained, tmp_path / "g.png", "-n", 2, "--npy", tmp_path / "g.npy",
                   "--num-inference-steps", 999) == 2
    _one_error_line(capsys, "sample", "--num-inference-steps must be in [1, 50]")
    assert not (tmp_path / "g.png").exists() and not (tmp_path / "g.npy").exists()
    assert _sample(tmp_path / "nowhere", tmp_path / "g.png") == 2
    _one_error_line(capsys, "sample", "does not exist")


def npy_data_path(run):
    return json.loads((run / "run.json").read_text())["data"]["spec"]


# ------------------------------------------------------------------ exact resume
def test_interrupted_training_equals_uninterrupted(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _train(a, steps=3) == 0  # "interrupted" after 3 steps
    assert _train(a, steps=6) == 0  # rerun: resumes
    assert _train(b, steps=6) == 0  # uninterrupted
    ca = torch.load(a / "checkpoint.pt", weights_only=True)
    cb = torch.load(b / "checkpoint.pt", weights_only=True)
    assert set(ca) == set(cb) and ca["step"] == cb["step"] == 6 and ca["process"] == cb["process"]
    assert ca["losses"].dtype == torch.float64 and torch.equal(ca["losses"], cb["losses"])
    assert ca["generator"].dtype == torch.uint8 and torch.equal(ca["generator"], cb["generator"])
    for key in ("model", "ema"):
        assert list(ca[key]) == list(cb[key])
        for k in ca[key]:
            assert torch.equal(ca[key][k], cb[key][k]), (key, k)
    oa, ob = ca["optimizer"], cb["optimizer"]
    assert oa["param_groups"] == ob["param_groups"]
    for i in oa["state"]:
        for k, v in oa["state"][i].items():
            assert torch.equal(v, ob["state"][i][k]), (i, k)
    ra, rb = (json.loads((p / "run.json").read_text()) for p in (a, b))
    for k in ("process", "model", "training", "data"):
        assert ra[k] == rb[k]
    # a finished run rerun with the same settings trains nothing and changes nothing
    files = {p: (b / p).read_bytes() for p in ("checkpoint.pt", "run.json")}
    assert _train(b, steps=6) == 0
    assert files == {p: (b / p).read_bytes() for p in ("checkpoint.pt", "run.json")}


def test_mismatched_settings_are_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, steps=2) == 0
    ckpt = (run / "checkpoint.pt").read_bytes()
    assert _train(run, "--lr", "0.002", steps=3) == 2
    _one_error_line(capsys, "train", "other settings", "lr", "0.001", "0.002")
    assert _train(run, steps=3, process="cold-heat") == 2
    _one_error_line(capsys, "train", "other settings", "ihdm", "cold-heat")
    cfg = tmp_path / "p.json"
    cfg.write_text(json.dumps({"sigma_blur_max": 3.0}))
    assert _train(run, "--config", cfg, steps=3) == 2
    _one_error_line(capsys, "train", "sigma_blur_max", "6.0", "3.0")
    assert _train(run, steps=1) == 2
    _one_error_line(capsys, "train", "2 steps already")
    assert (run / "checkpoint.pt").read_bytes() == ckpt  # nothing was touched
    with pytest.raises(RunError, match="model.base"):
        train_run(run, process="ihdm", steps=3, base=16, mults=(1,), batch_size=8, progress=False)
    # a process config that equals the defaults is the same setting
    cfg.write_text(json.dumps({"sigma_blur_max": 6.0, "num_train_timesteps": 50}))
    assert _train(run, "--config", cfg, steps=3) == 0


# ------------------------------------------------------------------ checkpoint safety
class _Payload:
    """Pickles to a call that creates a marker file when the pickle is loaded."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def test_checkpoint_with_pickled_code_is_refused_unrun(tmp_path, trained, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    marker = tmp_path / "marker"
    good = torch.load(run / "checkpoint.pt", weights_only=True)
    torch.save(good | {"losses": _Payload(marker)}, run / "checkpoint.pt")
    # the payload is live: an unsafe load would run it
    probe = tmp_path / "probe"
    torch.save({"x": _Payload(probe)}, tmp_path / "probe.pt")
    torch.load(tmp_path / "probe.pt", weights_only=False)
    assert probe.exists()

    grid = tmp_path / "grid.png"
    assert _sample(run, grid, "-n", 2) == 2
    _one_error_line(capsys, "sample", "pickled code", "was not loaded")
    assert not marker.exists() and not grid.exists()
    with pytest.raises(CheckpointError, match="pickled code"):
        load_run(run)
    with pytest.raises(CheckpointError, match="pickled code"):  # nor does resuming run it
        train_run(run, process="ihdm", data=npy_data_path(trained), steps=5, base=8, mults=(1,), batch_size=8,
                  progress=False)
    assert not marker.exists()
    (run / "checkpoint.pt").write_bytes(b"not a zip file")
    assert _sample(run, grid, "-n", 2) == 2
    _one_error_line(capsys, "sample", "corrupt")
    (run / "checkpoint.pt").unlink()
    with pytest.raises(RunError, match="no checkpoint.pt"):
        load_run(run)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(run / "checkpoint.pt")


# ------------------------------------------------------------------ datasets
def _png(path, arr):
    import imageio.v3 as iio

    iio.imwrite(path, arr)


def test_load_dataset_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="spec .*holds no images"):
        load_dataset(tmp_path / "empty")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    _png(mixed / "a.png", np.zeros((8, 8), np.uint8))
    _png(mixed / "b.png", np.zeros((8, 9), np.uint8))
    with pytest.raises(DatasetError, match="different shapes: a.png is 8x8 grey, b.png is 8x9 grey"):
        load_dataset(mixed)
    broken = tmp_path / "broken"
    broken.mkdir()
    _png(broken / "a.png", np.zeros((8, 8), np.uint8))
    (broken / "b.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError, match="cannot read image b.png"):
        load_dataset(broken)
    np.save(tmp_path / "flat.npy", np.zeros((10, 64)))
    with pytest.raises(DatasetError, match=r"shape \(10, 64\) has 2 dimensions; expected \(N, H, W\)"):
        load_dataset(tmp_path / "flat.npy")
    np.save(tmp_path / "c5.npy", np.zeros((10, 5, 8, 8)))
    with pytest.raises(DatasetError, match="no channel axis of length 1 or 3"):
        load_dataset(tmp_path / "c5.npy")
    with pytest.raises(DatasetError, match="'mnist' is not a known data set.*'digits', 'shapes'"):
        load_dataset("mnist")
    with pytest.raises(DatasetError, match="no such file or folder"):
        load_dataset(tmp_path / "missing.npy")
    with pytest.raises(DatasetError, match="split must be one of 'train', 'test', 'all'"):
        load_dataset("digits", split="valid")
    with pytest.raises(DatasetError, match="test_fraction must be in"):
        load_dataset("digits", test_fraction=1.0)
    with pytest.raises(DatasetError, match="size="):
        load_dataset("digits", size=16)


def test_dataset_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (6, 8, 10), dtype=np.uint8)
    folder = tmp_path / "grey"
    folder.mkdir()
    for i, g in enumerate(grey):
        _png(folder / f"{i:02d}.png", g)
    x, y = load_dataset(folder, split="all")
    assert y is None and x.dtype == torch.float32 and x.shape == (6, 1, 8, 10)
    np.testing.assert_allclose(x.numpy()[:, 0], grey / 255 * 2 - 1, atol=1e-6)
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    col = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    for i, c in enumerate(col):
        _png(rgb / f"{i}.png", c)
    x, _ = load_dataset(rgb, split="all")
    np.testing.assert_allclose(x.numpy(), np.moveaxis(col, -1, 1) / 255 * 2 - 1, atol=1e-6)

    arr = rng.normal(size=(20, 8, 8, 3)) * 3 + 7  # channels last, float: rescaled from min/max
    np.save(tmp_path / "a.npy", arr)
    x, _ = load_dataset(tmp_path / "a.npy", split="all")
    expect = (arr - arr.min()) / (arr.max() - arr.min()) * 2 - 1
    np.testing.assert_allclose(x.numpy(), np.moveaxis(expect, -1, 1), atol=1e-6)
    tr, _ = load_dataset(tmp_path / "a.npy")
    te, _ = load_dataset(tmp_path / "a.npy", split="test")
    assert tr.shape[0] == 14 and te.shape[0] == 6  # 70/30
    rows = {tuple(v) for v in x.reshape(20, -1).numpy().round(6)}
    split_rows = [tuple(v) for v in torch.cat([tr, te]).reshape(20, -1).numpy().round(6)]
    assert set(split_rows) == rows and len(set(split_rows)) == 20  # disjoint, together everything
    assert torch.equal(tr, load_dataset(tmp_path / "a.npy")[0])  # seeded
    assert not torch.equal(tr, load_dataset(tmp_path / "a.npy", seed=1)[0])

    d, lab = load_dataset("digits", split="test")
    assert d.shape == (539, 1, 8, 8) and lab.dtype == torch.int64 and set(lab.tolist()) == set(range(10))
    s, lab = load_dataset("shapes", n=50, size=(12, 12), split="all")
    assert s.shape == (50, 1, 12, 12) and set(lab.tolist()) <= {0, 1, 2}
    from pdediff.torch.data import shapes

    assert torch.equal(s, shapes(50, (12, 12), seed=0))


def test_folder_dataset_trains_and_samples(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(12):
        _png(folder / f"{i}.png", np.random.default_rng(i).integers(0, 256, (8, 8), dtype=np.uint8))
    run = tmp_path / "run"
    assert _train(run, steps=2, process="ddpm", data=folder) == 0
    assert _sample(run, folder / "grid.png", "-n", 2) == 2  # never into the data folder
    _one_error_line(capsys, "sample", "inside the run's data folder")
    assert _sample(run, tmp_path / "grid.png", "-n", 2, "--num-inference-steps", 3) == 0


# ------------------------------------------------------------------ processes
@pytest.mark.parametrize("name", PROCESSES)
def test_every_process_trains_and_samples(name, tmp_path, npy_data):
    run = tmp_path / name
    assert _train(run, steps=2, process=name, data=npy_data) == 0
    assert _sample(run, tmp_path / "g.png", "-n", 3, "--num-inference-steps", 3, "--npy", tmp_path / "s.npy") == 0
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (3, 1, 8, 8) and np.all(np.isfinite(x))
    r = load_run(run)
    assert r.config["process"]["name"] == name and r.process.prior_data is not None


def test_make_process_defaults_and_config(tmp_path):
    assert PROCESS_NAMES == tuple(PROCESSES)
    assert make_process("ihdm", image_size=8).sigma_blur_max == 6.0
    assert make_process("ihdm", image_size=(16, 12)).sigma_blur_max == 12.0
    assert make_process("cold-pm", image_size=16).config["operator"] == "perona_malik"
    d = make_process("ddpm", image_size=8, config={"num_train_timesteps": 100})
    assert d.config["beta_end"] == pytest.approx(0.2) and float(d.alphas_cumprod[-1]) < 1e-3
    with pytest.raises(ValueError, match="unknown key 'sigma' .*allowed: num_train_timesteps, sigma_blur_min"):
        make_process("ihdm", image_size=8, config={"sigma": 1.0})
    with pytest.raises(ValueError, match="operator='heat' contradicts process 'cold-pm'"):
        make_process("cold-pm", image_size=8, config={"operator": "heat"})
    with pytest.raises(ValueError, match="process must be one of 'ddpm', 'ihdm'"):
        make_process("vae", image_size=8)
    p = make_process("blurring", image_size=8, config={"sigma_blur_max": 2.0})
    p.save_config(tmp_path / "p.json")
    assert make_process("blurring", image_size=8, config=tmp_path / "p.json").config == p.config
    with pytest.raises(ValueError, match="config is for 'BlurringDiffusion'"):
        make_process("ihdm", image_size=8, config=tmp_path / "p.json")


def test_load_run_notices_changed_data(tmp_path, npy_data, capsys):
    data = tmp_path / "d.npy"
    shutil.copy(npy_data, data)
    run = tmp_path / "run"
    train_run(run, process="cold-heat", data=data, steps=1, base=8, mults=(1,), batch_size=4, progress=False)
    x = np.load(data)
    x[0] += 1
    np.save(data, x)
    with pytest.raises(RunError, match="differ from the ones the run was trained on"):
        load_run(run)
    assert _sample(run, tmp_path / "g.png", "-n", 2, "--num-inference-steps", 2) == 2
    _one_error_line(capsys, "sample", "differ from the ones the run was trained on")
    assert _sample(run, tmp_path / "g.png", "-n", 2, "--num-inference-steps", 2, "--data", npy_data) == 0  # moved
    with pytest.raises(RunError, match="content changed"):
        train_run(run, process="cold-heat", data=data, steps=2, base=8, mults=(1,), batch_size=4, progress=False)
    with pytest.raises(RunError, match="not a run folder"):
        load_run(tmp_path)


# ------------------------------------------------------------------ lazy torch
def test_cli_does_not_import_torch_and_names_the_extra_when_missing(tmp_path, capsys, monkeypatch):
    code = "import sys, pdediff.cli; assert 'torch' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    assert _train(tmp_path / "run") == 2
    _one_error_line(capsys, "train", 'pip install "pdediff[torch]"')
    assert not (tmp_path / "run").exists()


def test_diverging_training_stops_with_one_line(tmp_path, capsys):
    """A learning rate that makes the loss non-finite stops training with a clear error instead of saving NaN
    weights.  (A process config that would, such as a negative beta, is refused before training.)"""
    import json

    from pdediff.cli import main

    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"beta_end": -1.0}))
    code = main(["train", "--process", "ddpm", "--data", "digits", "--steps", "3", "--base", "8", "--mults", "1",
                 "--batch-size", "8", "--out", str(tmp_path / "run"), "--config", str(cfg), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "beta_end must be a finite number in (0, 1)" in err, err
    assert not (tmp_path / "run").exists()
    code = main(["train", "--process", "ddpm", "--data", "digits", "--steps", "3", "--base", "8", "--mults", "1",
                 "--batch-size", "8", "--out", str(tmp_path / "run"), "--lr", "1e30", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "diverged" in err, err
    assert main(["train", "--steps", "0", "--out", str(tmp_path / "r0"), "--quiet"]) == 2


def test_run_folder_messages_name_the_flags(tmp_path, npy_data, capsys):
    """Settings that differ from run.json, and data that moved, are named by their flags (they were rewritten
    by substring before: ``training.lr:`` -> ``--lr:``, ``pass data=`` -> ``pass --data``)."""
    data = tmp_path / "d.npy"
    shutil.copy(npy_data, data)
    run = tmp_path / "run"
    assert _train(run, steps=1, process="cold-heat", data=data) == 0
    assert _train(run, "--lr", "0.002", steps=2, process="cold-heat", data=data) == 2
    line = _one_error_line(capsys, "train", "other settings", "--lr")
    assert "training.lr" not in line, line
    x = np.load(data)
    x[0] += 1
    np.save(data, x)
    assert _sample(run, tmp_path / "g.png", "-n", 2) == 2
    line = _one_error_line(capsys, "sample", "differ from the ones the run was trained on", "--data")
    assert "data=" not in line, line
