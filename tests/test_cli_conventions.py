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
    """DDPM (white-noise prior), IHDM and cold-heat runs (priors built from the data), one training step each."""
    pytest.importorskip("torch")
    d = tmp_path_factory.mktemp("runs")
    data = d / "data.npy"
    np.save(data, np.random.default_rng(1).random((20, 8, 8)))
    for name in ("ddpm", "ihdm", "cold-heat"):
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


# ----------------------------------------------------------------------------- TIFF units
def _tiff_units(path):
    """(ResolutionUnit, the unit the ImageJ or tifffile JSON description states or None, x resolution)."""
    import tifffile

    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        meta = tf.imagej_metadata if tf.is_imagej else (tf.shaped_metadata[0] if tf.is_shaped else {})
        num, den = page.tags["XResolution"].value
        return int(page.tags["ResolutionUnit"].value), (meta or {}).get("unit"), num / den


@pytest.mark.parametrize("imagej", [True, False])
def test_unitless_tiff_is_written_back_without_a_unit(tmp_path, capsys, imagej):
    """A uint16 TIFF whose resolution has no unit (ResolutionUnit NONE) came back in millimetres."""
    tifffile = pytest.importorskip("tifffile")
    import pdediff.io as pio

    src = tmp_path / "u.tif"
    img = (np.random.default_rng(2).random((3, 10, 12)) * 4000).astype(np.uint16)
    if imagej:
        tifffile.imwrite(src, img, imagej=True, resolution=(2.0, 4.0), metadata={"axes": "ZYX", "spacing": 0.7})
    else:
        tifffile.imwrite(src, img[0], resolution=(2.0, 4.0), resolutionunit="NONE")
    assert _tiff_units(src)[:2] == (1, None)
    scan = pio.read_scan(src)
    expected = ((0.7,) if imagej else ()) + (0.25, 0.5)
    assert scan.meta["unit"] is None and scan.spacing == pytest.approx(expected)
    for dtype in (np.uint16, np.float64):  # ImageJ and tifffile's JSON description
        out = tmp_path / f"api-{np.dtype(dtype).name}.tif"
        pio.write_scan(out, scan.data.astype(dtype), like=scan, spacing=scan.spacing)
        assert _tiff_units(out) == (1, None, pytest.approx(2.0)), dtype
        back = pio.read_scan(out)
        assert back.meta["unit"] is None and back.spacing == pytest.approx(expected)
    out = tmp_path / "cli.tif"
    assert main(["denoise", str(src), "-o", str(out), "--num-iter", "1", "--quiet"]) == 0
    assert _tiff_units(out) == (1, None, pytest.approx(2.0))
    assert pio.read_scan(out).spacing == pytest.approx(expected)


def test_tiff_units_stated_are_kept(tmp_path):
    """What the file states stays: microns as microns, a NIfTI's millimetres as mm, no input as mm (the API)."""
    tifffile = pytest.importorskip("tifffile")
    nib = pytest.importorskip("nibabel")
    import pdediff.io as pio

    tifffile.imwrite(tmp_path / "cm.tif", np.zeros((8, 8), np.uint16), resolution=(5.0, 5.0),
                     resolutionunit="CENTIMETER")
    scan = pio.read_scan(tmp_path / "cm.tif")
    assert scan.spacing == pytest.approx((2.0, 2.0))  # millimetres
    pio.write_scan(tmp_path / "o.tif", scan.data, like=scan, spacing=scan.spacing)
    assert _tiff_units(tmp_path / "o.tif")[1] == "mm"
    assert pio.read_scan(tmp_path / "o.tif").spacing == pytest.approx((2.0, 2.0))
    nib.save(nib.Nifti1Image(np.zeros((6, 7, 3), np.float32), np.diag([0.5, 0.5, 2.0, 1.0])), tmp_path / "v.nii")
    vol = pio.read_scan(tmp_path / "v.nii")
    pio.write_scan(tmp_path / "v.tif", vol.data, like=vol, spacing=vol.spacing)
    assert _tiff_units(tmp_path / "v.tif")[1] == "mm"


# ----------------------------------------------------------------------------- progress of chunked writes
@pytest.mark.parametrize("output", ["out.nii", "out.zarr"])
def test_chunked_denoise_shows_progress_like_the_in_memory_path(tmp_path, capsys, monkeypatch, output):
    """``denoise big.nii -o out.nii --chunks N`` showed no bar (dask's, on stdout, after 1 s only): every path
    shows the same tqdm bars on stderr when it is a terminal, and none with --quiet."""
    pytest.importorskip("dask")
    nib = pytest.importorskip("nibabel")
    src = tmp_path / "scan.nii"
    nib.save(nib.Nifti1Image(np.random.default_rng(3).random((12, 10, 9)).astype(np.float32), np.eye(4)), src)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # tqdm draws on a terminal only (disable=None)
    assert main(["denoise", str(src), "-o", str(tmp_path / "mem.nii"), "--num-iter", "2"]) == 0
    mem = capsys.readouterr()
    assert "Perona–Malik (explicit)" in mem.err  # the in-memory bar, for comparison
    assert main(["denoise", str(src), "-o", str(tmp_path / output), "--num-iter", "2", "--chunks", "8"]) == 0
    got = capsys.readouterr()
    assert f"Perona–Malik -> {output}" in got.err and "kappa (auto)" in got.err, got.err
    assert "Completed" not in got.out and "%" not in got.out, got.out  # the report stays clean on stdout
    assert main(["denoise", str(src), "-o", str(tmp_path / ("q" + output)), "--num-iter", "2", "--chunks", "8",
                 "--quiet"]) == 0
    got = capsys.readouterr()
    assert got.err == "" and got.out == ""


def test_restyle_refuses_a_seed_where_restyling_draws_no_noise(runs, tmp_path, capsys):
    """Cold diffusion without training noise degrades and restores deterministically: a --seed given was ignored
    silently.  IHDM (noise 0.01) takes it, and different seeds give different results."""
    img = tmp_path / "x.npy"
    np.save(img, (np.random.default_rng(4).random((8, 8)) * 0.8 + 0.1).astype(np.float32))

    def restyle(run, out, *extra):
        return main(["restyle", str(img), "--run", str(runs / run), "-o", str(tmp_path / out), "--strength", "0.6",
                     "--num-inference-steps", "2", "--quiet", "--device", "cpu", "--threads", "1", *extra])

    assert restyle("cold-heat", "c.npy", "--seed", "1") == 2
    line = _error_line(capsys, "restyle")
    assert "--seed" in line and "deterministic" in line and "training_noise 0" in line, line
    assert not (tmp_path / "c.npy").exists()
    assert restyle("cold-heat", "c.npy") == 0
    assert restyle("ihdm", "i1.npy", "--seed", "1") == 0 and restyle("ihdm", "i2.npy", "--seed", "2") == 0
    assert not np.array_equal(np.load(tmp_path / "i1.npy"), np.load(tmp_path / "i2.npy"))
