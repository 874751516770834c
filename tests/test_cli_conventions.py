"""Command-line conventions held across commands (issue 20, items 9 and 10): seeds, options a run does not use,
figure formats, TIFF units written back as read, progress of chunked writes."""

import argparse
import sys

import numpy as np
import pytest

from pdediff.cli import build_parser, main


def _error_line(capsys, command):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"pdediff {command}: error:"), err
    return err[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("conv")
    rng = np.random.default_rng(0)
    np.save(d / "img.npy", rng.random((12, 12)))
    mask = np.zeros((12, 12), bool)
    mask[4:7, 5:8] = True
    np.save(d / "mask.npy", mask)
    return d


# ----------------------------------------------------------------------------- seeds
def _seed_options():
    """Every command's ``--seed`` action."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {name: a for name, p in sub.choices.items() for a in p._actions if "--seed" in a.option_strings}


def test_every_seed_option_takes_the_same_values():
    """One convention for every --seed: a decimal integer while parsing (the range is checked by main, for every
    command and method, before any work)."""
    seeds = _seed_options()
    assert {"inpaint", "sample", "restyle", "train"} <= set(seeds), sorted(seeds)
    for name, action in seeds.items():
        assert action.type(" 7") == 7 and action.type(str(2**64)) == 2**64, name
        for bad in ("1.5", "1e3", "seven", ""):
            with pytest.raises(argparse.ArgumentTypeError, match=r"integer in \[0, 2\*\*63 - 1\]"):
                action.type(bad)


@pytest.mark.parametrize("command", ["sample", "restyle", "train"])
@pytest.mark.parametrize("seed", ["-1", str(2**63)])
def test_learned_commands_refuse_a_seed_out_of_range_before_any_work(tmp_path, capsys, command, seed):
    """The range is checked before the run folder is even looked at (a missing one here)."""
    argv = {"sample": ["sample", "--run", str(tmp_path / "none"), "-o", str(tmp_path / "g.png")],
            "restyle": ["restyle", str(tmp_path / "x.png"), "--run", str(tmp_path / "none"), "-o",
                        str(tmp_path / "o.png")],
            "train": ["train", "--out", str(tmp_path / "r"), "--steps", "1"]}[command]
    assert main([*argv, "--seed", seed, "--quiet"]) == 2
    line = _error_line(capsys, command)
    assert "--seed" in line and "[0, 2**63 - 1]" in line and seed in line, line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("method", ["harmonic", "biharmonic", "perona_malik"])
@pytest.mark.parametrize("seed", ["-1", "1.5"])
def test_inpaint_refuses_a_bad_seed_for_every_method(files, tmp_path, capsys, method, seed):
    """``inpaint --method harmonic --seed -1`` was accepted (the seed is used by --method learned only)."""
    out = tmp_path / "o.npy"
    argv = ["inpaint", str(files / "img.npy"), "--mask", str(files / "mask.npy"), "-o", str(out), "--method",
            method, "--seed", seed, "--quiet"]
    if seed == "1.5":  # malformed: refused by the parser (exit status 2), as any malformed number is
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    else:
        assert main(argv) == 2
    line = _error_line(capsys, "inpaint")
    assert "--seed" in line and "[0, 2**63 - 1]" in line, line
    assert not out.exists()


@pytest.mark.parametrize("method", ["harmonic", "biharmonic", "perona_malik"])
def test_inpaint_refuses_a_seed_for_a_deterministic_method(files, tmp_path, capsys, method):
    """Like --kappa for harmonic or --jump-length for a classical method: an option the method does not use is
    refused, naming it, rather than ignored."""
    out = tmp_path / "o.npy"
    assert main(["inpaint", str(files / "img.npy"), "--mask", str(files / "mask.npy"), "-o", str(out),
                 "--method", method, "--seed", "3", "--quiet"]) == 2
    line = _error_line(capsys, "inpaint")
    assert "--seed" in line and f"--method {method}" in line, line
    assert not out.exists()
    assert main(["inpaint", str(files / "img.npy"), "--mask", str(files / "mask.npy"), "-o", str(out),
                 "--method", method, "--quiet"]) == 0  # no --seed: runs
    assert out.exists()


# ----------------------------------------------------------------------------- sample: --data, --trajectory
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A DDPM run (white-noise prior) and an IHDM run (prior built from the data), one training step each."""
    pytest.importorskip("torch")
    d = tmp_path_factory.mktemp("runs")
    data = d / "data.npy"
    np.save(data, np.random.default_rng(1).random((20, 8, 8)))
    for name in ("ddpm", "ihdm"):
        assert main(["train", "--process", name, "--data", str(data), "--steps", "1", "--out", str(d / name),
                     "--base", "8", "--mults", "1", "--batch-size", "4", "--config", '{"num_train_timesteps": 5}',
                     "--quiet", "--device", "cpu", "--threads", "1"]) == 0
    return d


def test_sample_refuses_data_a_run_does_not_use(runs, tmp_path, capsys):
    """``sample --data`` for a DDPM run was accepted and ignored: only IHDM and cold diffusion read the data."""
    from pdediff.errors import ParameterError
    from pdediff.torch import load_run

    grid = tmp_path / "g.png"
    argv = ["sample", "-o", str(grid), "-n", "2", "--num-inference-steps", "2", "--quiet", "--device", "cpu",
            "--threads", "1", "--data", str(runs / "data.npy")]
    assert main([*argv, "--run", str(runs / "ddpm")]) == 2
    line = _error_line(capsys, "sample")
    assert "--data" in line and "white noise" in line and "data=" not in line, line
    assert not grid.exists()
    with pytest.raises(ParameterError, match="white noise") as exc:
        load_run(runs / "ddpm", data=runs / "data.npy")
    assert exc.value.param == "data"
    load_run(runs / "ddpm")  # without data: loads
    assert main([*argv, "--run", str(runs / "ihdm")]) == 0  # IHDM builds its prior from the data
    assert grid.exists()


@pytest.mark.parametrize("name,ok", [("t.jpg", False), ("t.JPEG", False), ("t.npy", False), ("t.png", True),
                                     ("t.svg", True)])
def test_trajectory_is_written_in_a_lossless_figure_format(runs, tmp_path, capsys, name, ok):
    """``--trajectory t.jpg`` was accepted: JPEG smears the noisy early steps the figure is there to show."""
    traj = tmp_path / name
    rc = main(["sample", "--run", str(runs / "ddpm"), "-o", str(tmp_path / "g.png"), "-n", "2",
               "--num-inference-steps", "2", "--trajectory", str(traj), "--quiet", "--device", "cpu",
               "--threads", "1"])
    if ok:
        assert rc == 0 and traj.exists()
        return
    assert rc == 2
    line = _error_line(capsys, "sample")
    assert "--trajectory" in line and ".png, .pdf, .svg" in line and name in line, line
    assert not traj.exists() and not (tmp_path / "g.png").exists()
