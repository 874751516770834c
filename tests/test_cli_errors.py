"""The command line names its own flags in every error about a library parameter (issue 19 item 4).

A library validator raises :class:`pdediff.errors.ParameterError`, whose message is a template naming
parameters as ``{name}``; the CLI renders it with the flag argparse defines for the name.  Nothing is
rewritten by substring, so a reworded library message cannot make the CLI print a Python keyword.
"""

import argparse
import json
import re

import numpy as np
import dataclasses
import os

import pytest

from pdediff import cli
from pdediff.cli import main
from pdediff.errors import ParameterError, StabilityError



def _last_error_line(capsys, command):
    """The error line (the last stderr line: deprecation warnings may precede it)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith(f"pdediff {command}: error:"), err
    return err[-1]


def _keyword_absent(line, keyword):
    """``keyword`` (a Python spelling such as ``num_iter``) is not in ``line`` as a word of its own."""
    return re.search(rf"(?<![-\w]){re.escape(keyword)}(?![\w-])", line) is None


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("errors")
    rng = np.random.default_rng(0)
    np.save(d / "img.npy", rng.random((16, 16)))
    mask = np.zeros((16, 16), bool)
    mask[5:9, 6:10] = True
    np.save(d / "mask.npy", mask)
    np.save(d / "digit.npy", (rng.random((8, 8)) * 0.8 + 0.1).astype(np.float32))
    np.save(d / "mask8.npy", mask[:8, :8])
    return d


# ------------------------------------------------------------------ classical commands: every forwarded parameter
DENOISE = [
    # (extra arguments, the CLI flag the message must name, the Python keyword it must not name)
    pytest.param(["--num-iter", "-1"], "--num-iter", "num_iter", id="num_iter"),
    pytest.param(["--kappa", "-1"], "--kappa", "kappa", id="kappa"),
    pytest.param(["--dt", "-1"], "--dt", "dt", id="dt"),
    pytest.param(["--sigma", "-1"], "--sigma", "sigma", id="sigma"),
    pytest.param(["--spacing", "-1"], "--spacing", "spacing", id="spacing"),
    pytest.param(["--spacing", "1", "1", "1"], "--spacing", "spacing", id="spacing-axes"),
    pytest.param(["--dt", "10"], "--dt", "dt", id="dt-stability"),
    pytest.param(["--num-iter", "30", "--max-steps", "10"], "--max-steps", "max_steps", id="max_steps"),
    pytest.param(["--num-iter", "30", "--max-steps", "10"], "--num-iter", "num_iter",
                 id="max_steps-request"),
    pytest.param(["--num-iter", "30", "--max-steps", "10"], "--method aos", "method",
                 id="max_steps-advice"),
]


@pytest.mark.parametrize("extra,flag,keyword", DENOISE)
def test_denoise_errors_name_the_flag(files, tmp_path, capsys, extra, flag, keyword):
    assert main(["denoise", str(files / "img.npy"), "-o", str(tmp_path / "o.npy"), "--quiet", *extra]) == 2
    line = _last_error_line(capsys, "denoise")
    assert flag in line and _keyword_absent(line, keyword), line
    assert not (tmp_path / "o.npy").exists()


def test_denoise_stability_error_spells_every_setting_as_flags(files, tmp_path, capsys):
    assert main(["denoise", str(files / "img.npy"), "-o", str(tmp_path / "o.npy"), "--dt", "10"]) == 2
    line = _last_error_line(capsys, "denoise")
    assert "--dt 10" in line and "--method aos" in line and "method=" not in line, line


def test_denoise_step_limit_spells_the_way_out(files, tmp_path, capsys):
    assert main(["denoise", str(files / "img.npy"), "-o", str(tmp_path / "o.npy"), "--num-iter", "30",
                 "--max-steps", "10"]) == 2
    line = _last_error_line(capsys, "denoise")
    assert "--max-steps 10" in line and "--max-steps 0" in line and "None" not in line, line


INPAINT = [
    pytest.param(["--method", "perona_malik", "--kappa", "-1"], "--kappa", "kappa",
                 id="kappa"),
    pytest.param(["--method", "perona_malik", "--sigma", "-1"], "--sigma", "sigma",
                 id="sigma"),
    pytest.param(["--method", "perona_malik", "--num-iter", "200000"], "--num-iter", "num_iter", id="num_iter-limit"),
    pytest.param(["--spacing", "-1"], "--spacing", "spacing", id="spacing"),
    pytest.param(["--num-iter", "-1", "--method", "perona_malik"], "--num-iter", "num_iter", id="num_iter"),
]


@pytest.mark.parametrize("extra,flag,keyword", INPAINT)
def test_inpaint_errors_name_the_flag(files, tmp_path, capsys, extra, flag, keyword):
    assert main(["inpaint", str(files / "img.npy"), "--mask", str(files / "mask.npy"), "-o",
                 str(tmp_path / "o.npy"), "--quiet", *extra]) == 2
    line = _last_error_line(capsys, "inpaint")
    assert flag in line and _keyword_absent(line, keyword), line


# ------------------------------------------------------------------ learned commands
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    pytest.importorskip("torch")
    d = tmp_path_factory.mktemp("run")
    data = d / "data.npy"
    np.save(data, np.random.default_rng(1).random((20, 8, 8)))
    assert main(["train", "--process", "ddpm", "--data", str(data), "--steps", "1", "--out", str(d / "run"),
                 "--base", "8", "--mults", "1", "--batch-size", "4", "--config", '{"num_train_timesteps": 5}',
                 "--quiet", "--device", "cpu", "--threads", "1"]) == 0
    return d / "run"


TRAIN = [
    pytest.param(["--base", "0"], "--base", "base", id="base"),
    pytest.param(["--batch-size", "0"], "--batch-size", "batch_size", id="batch_size"),
    pytest.param(["--lr", "-1"], "--lr", "lr", id="lr"),
    pytest.param(["--ema-decay", "2"], "--ema-decay", "ema_decay", id="ema_decay"),
    pytest.param(["--seed", "-1"], "--seed", "seed", id="seed"),
    pytest.param(["--checkpoint-every", "0"], "--checkpoint-every", "checkpoint_every",
                 id="checkpoint_every"),
    pytest.param(["--mults", "0"], "--mults", "mults", id="mults"),
    pytest.param(["--device", "nonsense"], "--device", "device", id="device"),
    pytest.param(["--config", '{"num_train_timesteps": 1e9}'], "--config num_train_timesteps", "config", id="config-key"),
    pytest.param(["--config", '{"sigma": 1}'], "--config", "config", id="config-unknown"),
    pytest.param(["--data", "/no/such/folder"], "--data", "spec", id="data"),
]


@pytest.mark.parametrize("extra,flag,keyword", TRAIN)
def test_train_errors_name_the_flag(tmp_path, capsys, extra, flag, keyword):
    pytest.importorskip("torch")
    base = ["train", "--process", "ddpm", "--data", "digits", "--steps", "1", "--out", str(tmp_path / "run"),
            "--base", "8", "--mults", "1", "--batch-size", "4", "--quiet", "--threads", "1"]
    assert main(base + extra) == 2
    line = _last_error_line(capsys, "train")
    assert flag in line and _keyword_absent(line, keyword), line


def test_train_config_message_keeps_the_key_whole(tmp_path, capsys):
    """``num_train_timesteps`` printed as ``num_train_time--steps`` (substring rewriting of "steps")."""
    pytest.importorskip("torch")
    cfg = tmp_path / "p.json"
    cfg.write_text(json.dumps({"num_train_timesteps": 1e9}))
    for config in (str(cfg), '{"num_train_timesteps": 1e9}'):
        assert main(["train", "--out", str(tmp_path / "run"), "--config", config, "--quiet", "--steps", "1"]) == 2
        line = _last_error_line(capsys, "train")
        assert "num_train_timesteps" in line and "time--steps" not in line, line
        assert not (tmp_path / "run").exists()


SAMPLE = [
    pytest.param(["--num-inference-steps", "999"], "--num-inference-steps", "num_inference_steps", id="steps"),
    pytest.param(["--steps", "999"], "--steps", "num_inference_steps", id="steps-deprecated"),
    pytest.param(["--num-inference-steps", "0"], "--num-inference-steps", "steps", id="steps-zero"),
    pytest.param(["-n", "0"], "-n", "n", id="n"),
    pytest.param(["-n", "100000000"], "--max-samples", "max_samples", id="n-above-the-limit"),
    pytest.param(["-n", "5", "--max-samples", "4"], "--max-samples 0", "max_samples", id="max-samples"),
    pytest.param(["--device", "nonsense"], "--device", "device", id="device"),
]


@pytest.mark.parametrize("extra,flag,keyword", SAMPLE)
def test_sample_errors_name_the_flag(tiny_run, tmp_path, capsys, extra, flag, keyword):
    assert main(["sample", "--run", str(tiny_run), "-o", str(tmp_path / "g.png"), "--quiet", *extra]) == 2
    line = _last_error_line(capsys, "sample")
    assert flag in line and _keyword_absent(line, keyword), line


RESTYLE = [
    pytest.param(["--num-inference-steps", "999"], "--num-inference-steps", "steps", id="steps"),
    pytest.param(["--strength", "2"], "--strength", "strength", id="strength"),
    pytest.param(["--seed", "-1"], "--seed", "seed", id="seed"),
    pytest.param(["--device", "nonsense"], "--device", "device", id="device"),
]


@pytest.mark.parametrize("extra,flag,keyword", RESTYLE)
def test_restyle_errors_name_the_flag(tiny_run, files, tmp_path, capsys, extra, flag, keyword):
    assert main(["restyle", str(files / "digit.npy"), "--run", str(tiny_run), "-o", str(tmp_path / "o.npy"),
                 "--quiet", *extra]) == 2
    line = _last_error_line(capsys, "restyle")
    assert flag in line and _keyword_absent(line, keyword), line


LEARNED_INPAINT = [
    pytest.param(["--num-inference-steps", "100000"], "--num-inference-steps", "steps", id="steps"),
    pytest.param(["--num-iter", "100000"], "--num-iter", "steps", id="num-iter-deprecated"),
    pytest.param(["--jump-length", "0"], "--jump-length", "jump_length", id="jump_length"),
    pytest.param(["--jump-n-sample", "0"], "--jump-n-sample", "jump_n_sample",
                 id="jump_n_sample"),
    pytest.param(["--seed", "-1"], "--seed", "seed", id="seed"),
    pytest.param(["--device", "nonsense"], "--device", "device", id="device"),
]


@pytest.mark.parametrize("extra,flag,keyword", LEARNED_INPAINT)
def test_learned_inpaint_errors_name_the_flag(tiny_run, files, tmp_path, capsys, extra, flag, keyword):
    """``inpaint --method learned --num-iter 100000`` named ``steps``: it names the flag the user gave."""
    assert main(["inpaint", str(files / "digit.npy"), "--mask", str(files / "mask8.npy"), "-o",
                 str(tmp_path / "o.npy"), "--method", "learned", "--run", str(tiny_run), "--quiet", *extra]) == 2
    line = _last_error_line(capsys, "inpaint")
    assert flag in line and _keyword_absent(line, keyword), line


# ------------------------------------------------------------------ a reworded library message
def _every_command():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


@pytest.mark.parametrize("command", sorted(_every_command()))
def test_a_new_library_template_cannot_make_the_cli_print_a_python_name(command, monkeypatch, capsys):
    """Whatever a library message says, every parameter in it is printed as the command's flag.

    A ParameterError with a template the CLI has never seen, naming every option of the command, goes through
    ``main``'s error path: each ``{dest}`` comes out as that option's flag.
    """
    parser = _every_command()[command]
    dests = {a.dest: a for a in parser._actions
             if a.option_strings and a.dest not in ("help", argparse.SUPPRESS) and a.help != argparse.SUPPRESS}
    assert dests, command
    template = "reworded: " + "; ".join(f"{{{d}}} is odd" for d in dests)

    def fail(args):
        raise ParameterError(template, param=next(iter(dests)))

    module = getattr(cli, command.replace("-", "_"))
    monkeypatch.setattr(module, "run", fail)
    argv = {"denoise": ["x.npy", "-o", "y.npy"], "inpaint": ["x.npy", "--mask", "m.npy", "-o", "y.npy"],
            "train": ["--out", "r"], "restyle": ["x.npy", "-o", "y.npy"], "sample": ["-o", "g.png"],
            "study": ["denoise"], "train-denoiser": ["cnn", "--out", "r"]}.get(command, [])
    assert main([command, *argv]) == 2
    line = _last_error_line(capsys, command)
    for dest, action in dests.items():
        long = [s for s in action.option_strings if s.startswith("--")]
        assert (long or action.option_strings)[0] in line, (dest, line)
        if "_" in dest:
            assert _keyword_absent(line, dest), (dest, line)


def test_settings_and_nested_names_are_spelled_as_flags(monkeypatch, capsys):
    def fail(args):
        raise StabilityError("{dt=0.5} is too large for {method='explicit'}; pass {method='aos'} or {dt=None}, "
                             "or {max_steps=None}; {image} unchanged; {no_such_parameter} kept", param="dt")

    monkeypatch.setattr(cli.denoise, "run", fail)
    assert main(["denoise", "x.npy", "-o", "y.npy"]) == 2
    line = _last_error_line(capsys, "denoise")
    assert line.endswith("--dt 0.5 is too large for --method explicit; pass --method aos or no --dt, "
                         "or --max-steps 0; INPUT unchanged; no_such_parameter kept"), line

    def nested(args):
        raise ParameterError("{model.base} and {training.batch_size} and {process.config.num_train_timesteps} and "
                             "{data.spec} and {process.name}", param="model.base")

    monkeypatch.setattr(cli.train, "run", nested)
    assert main(["train", "--out", "r"]) == 2
    line = _last_error_line(capsys, "train")
    assert line.endswith("--base and --batch-size and --config num_train_timesteps and --data and --process"), line


# ------------------------------------------------------------------ deprecated spellings
def test_deprecated_spellings_warn_once_naming_the_new_flag(tiny_run, files, tmp_path, capsys):
    # the positional RUN of sample, and --steps
    assert main(["sample", str(tiny_run), "-o", str(tmp_path / "a.png"), "--steps", "2", "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("deprecated" in e for e in err), err
    assert any("--run" in e for e in err) and any("--num-inference-steps" in e for e in err), err
    assert main(["sample", "--run", str(tiny_run), "-o", str(tmp_path / "b.png"), "--num-inference-steps", "2",
                 "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    # --model of restyle and inpaint
    assert main(["restyle", str(files / "digit.npy"), "--model", str(tiny_run), "-o", str(tmp_path / "r.npy"),
                 "--steps", "2", "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and any("--model" in e and "--run" in e for e in err), err
    assert main(["inpaint", str(files / "digit.npy"), "--mask", str(files / "mask8.npy"), "-o",
                 str(tmp_path / "i.npy"), "--method", "learned", "--model", str(tiny_run), "--num-iter", "2",
                 "--jump-n-sample", "1", "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and any("--num-inference-steps" in e for e in err), err
    a, b = np.load(tmp_path / "i.npy"), np.load(files / "digit.npy")
    mask = np.load(files / "mask8.npy")
    np.testing.assert_array_equal(a[~mask], b[~mask])
    # the same run given twice
    assert main(["sample", str(tiny_run), "--run", str(tiny_run), "-o", str(tmp_path / "c.png")]) == 2
    assert "given twice" in _last_error_line(capsys, "sample")
    assert main(["sample", "-o", str(tmp_path / "c.png")]) == 2
    assert "--run" in _last_error_line(capsys, "sample")


def test_run_folder_errors_name_the_flag_given(tmp_path, capsys):
    assert main(["sample", "--run", str(tmp_path / "nowhere"), "-o", str(tmp_path / "g.png")]) == 2
    assert "--run" in _last_error_line(capsys, "sample")
    assert main(["restyle", "x.png", "--model", str(tmp_path / "nowhere"), "-o", str(tmp_path / "g.png")]) == 2
    assert "--model" in _last_error_line(capsys, "restyle")


# ------------------------------------------------------------------ names from the catalogue
def test_choices_come_from_the_catalogue():
    from pdediff import catalogue

    cmds = _every_command()

    def choices(command, dest):
        return tuple(next(a for a in cmds[command]._actions if a.dest == dest).choices)

    assert choices("train", "process") == catalogue.PROCESS_NAMES
    assert choices("inpaint", "method") == catalogue.INPAINT_METHODS
    assert choices("denoise", "method") == catalogue.PM_METHODS + catalogue.TENSOR_KINDS + catalogue.LEARNED_DENOISERS
    assert choices("train-denoiser", "model") == catalogue.LEARNED_DENOISERS
    # Perona–Malik's and EED's conductances (each method checks its own)
    assert choices("denoise", "conductance") == catalogue.CONDUCTANCES + ("weickert",)
    assert set(catalogue.TENSOR_CONDUCTANCES) <= set(choices("denoise", "conductance"))
    assert choices("inpaint", "conductance") == catalogue.CONDUCTANCES
    help_text = cmds["train"].format_help()
    for entry in catalogue.PROCESSES.values():
        assert entry.label.split(",")[0] in " ".join(help_text.split())


def test_train_defaults_are_the_library_defaults():
    """``pdediff train``, ``train_run`` and ``train`` start from one set of defaults (catalogue.TRAIN_DEFAULTS)."""
    torch_runs = pytest.importorskip("pdediff.torch.runs")
    import inspect

    from pdediff.catalogue import TRAIN_DEFAULTS as LIBRARY
    from pdediff.cli.train import TRAIN_DEFAULTS
    from pdediff.torch.training import train

    library = dataclasses.asdict(LIBRARY)
    assert dict(TRAIN_DEFAULTS) == library
    parsed = cli.build_parser().parse_args(["train", "--out", "r"])
    checked = 0
    for fn in (torch_runs.train_run, train):
        for key, p in inspect.signature(fn).parameters.items():
            if key in library and p.default is not inspect.Parameter.empty:
                assert p.default == library[key], (fn.__name__, key)
                checked += 1
    for key, value in library.items():
        if hasattr(parsed, key):
            got = getattr(parsed, key)
            assert (tuple(int(v) for v in got.split(",")) if key == "mults" else got) == value, key
            checked += 1
    assert checked >= 15


# ----------------------------------------------------------------------------- found by a fresh-eyes user test


def test_a_lost_race_is_spelled_with_the_flag():
    from pdediff.cli._errors import write_failure
    from pdediff.io import DestinationExistsError

    for raced in (False, True):
        msg = str(write_failure(DestinationExistsError("x exists; pass overwrite=True", path="out.nii", raced=raced)))
        assert "--force" in msg and "overwrite" not in msg and "out.nii" in msg
        assert ("another run" in msg) == raced


def test_train_refuses_what_it_cannot_use_before_writing(tmp_path, capsys):
    pytest.importorskip("torch")
    cases = [
        (["--out", ""], "--out"),
        (["--out", str(tmp_path / "a"), "--seed", str(2**64)], "--seed"),
        (["--out", str(tmp_path / "b"), "--config", "[1, 2]"], "--config"),
        (["--out", str(tmp_path / "c"), "--config", '{"num_train_timesteps": -5}'], "--config num_train_timesteps"),
    ]
    for argv, flag in cases:
        rc = main(["train", "--steps", "1", "--quiet", *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and flag in err[0], (argv, err)
        assert "--config: --config" not in err[0] and "Overflow" not in err[0]
    assert sorted(os.listdir(tmp_path)) == []
