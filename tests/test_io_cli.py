"""Scan I/O round trips and the command line: safety on real files."""

import os
from pathlib import Path

import numpy as np
import pytest

from pdediff import io as pio
from pdediff.cli import main


def patch_writer(monkeypatch, name, write):
    """Replace format ``name``'s writer in the registry for one test."""
    import dataclasses

    from pdediff.io import _format

    monkeypatch.setitem(_format._REGISTRY, name, dataclasses.replace(pio.get_format(name), write=write))


@pytest.fixture
def img16(rng):
    return (rng.random((24, 30)) * 60000).astype(np.uint16)


@pytest.mark.parametrize(
    "suffix,dtype,shape",
    [
        (".npy", np.float32, (6, 7, 8)),
        (".npz", np.float64, (9, 10)),
        (".png", np.uint8, (12, 13)),
        (".png", np.uint16, (12, 13)),
        (".png", np.uint8, (12, 13, 3)),
        (".tif", np.uint16, (5, 12, 13)),
        (".tif", np.float32, (12, 13)),
        (".tif", np.uint8, (12, 13, 3)),
        (".nii", np.int16, (6, 7, 8)),
        (".nii.gz", np.float32, (6, 7, 8)),
    ],
)
def test_round_trip(tmp_path, rng, suffix, dtype, shape):
    if np.dtype(dtype).kind == "f":
        arr = rng.random(shape).astype(dtype)
    else:
        arr = rng.integers(0, np.iinfo(dtype).max, shape).astype(dtype)
    ch = -1 if shape[-1] == 3 else None
    spacing = (2.0, 0.5, 1.5)[: len(shape)] if suffix in (".npz", ".nii", ".nii.gz") else None
    path = tmp_path / f"x{suffix}"
    pio.write_scan(path, arr, spacing=spacing, channel_axis=ch)
    scan = pio.read_scan(path)
    np.testing.assert_array_equal(scan.data, arr)
    assert scan.data.dtype == dtype
    assert scan.channel_axis == ch
    if spacing is not None:
        assert scan.spacing == pytest.approx(spacing)


def test_jpeg_round_trip_is_close(tmp_path, rng):
    arr = np.tile(np.linspace(0, 255, 40).astype(np.uint8), (30, 1))
    pio.write_scan(tmp_path / "a.jpg", arr)
    back = pio.read_scan(tmp_path / "a.jpg").data
    assert back.shape == arr.shape and np.abs(back.astype(int) - arr).max() <= 6


def test_nifti_keeps_affine_and_header(tmp_path, rng):
    nib = pytest.importorskip("nibabel")
    affine = np.array([[0, 0, 3.0, 10], [0, 0.9, 0, -5], [-1.1, 0, 0, 2], [0, 0, 0, 1]])
    img = nib.Nifti1Image(rng.random((5, 6, 7)).astype(np.float32), affine)
    img.header["descrip"] = b"test scan"
    nib.save(img, str(tmp_path / "in.nii.gz"))
    scan = pio.read_scan(tmp_path / "in.nii.gz")
    assert scan.spacing == pytest.approx((1.1, 0.9, 3.0))
    assert main(["denoise", str(tmp_path / "in.nii.gz"), "-o", str(tmp_path / "out.nii.gz"), "--quiet"]) == 0
    out = nib.load(str(tmp_path / "out.nii.gz"))
    np.testing.assert_allclose(out.affine, affine)
    assert out.header["descrip"].tobytes().startswith(b"test scan")
    assert out.header.get_zooms() == pytest.approx((1.1, 0.9, 3.0))


def test_cli_denoise_png_keeps_type_and_reports(tmp_path, img16, capsys):
    pio.write_scan(tmp_path / "in.png", img16)
    rc = main(["denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--preview",
               str(tmp_path / "p.png")])
    assert rc == 0
    out = pio.read_scan(tmp_path / "out.png").data
    assert out.dtype == np.uint16 and out.shape == img16.shape
    text = capsys.readouterr().out
    assert "kappa" in text and "(auto)" in text and "num_iter 15" in text
    assert (tmp_path / "p.png").stat().st_size > 0


def test_cli_float_output_and_spacing(tmp_path, rng):
    vol = rng.random((6, 8, 9)).astype(np.float32)
    np.save(tmp_path / "v.npy", vol)
    assert main(["denoise", str(tmp_path / "v.npy"), "-o", str(tmp_path / "o.npz"), "--spacing", "3", "1", "1",
                 "--method", "aos", "--quiet"]) == 0
    scan = pio.read_scan(tmp_path / "o.npz")
    assert scan.data.dtype == np.float32 and scan.spacing == (3.0, 1.0, 1.0)
    import pdediff

    np.testing.assert_allclose(scan.data, pdediff.perona_malik(vol, spacing=(3, 1, 1), method="aos"), rtol=1e-6)


def test_cli_auto_dtype_keeps_float64(tmp_path, rng):
    np.save(tmp_path / "d.npy", rng.random((12, 10)))
    assert main(["denoise", str(tmp_path / "d.npy"), "-o", str(tmp_path / "o.npy"), "--quiet"]) == 0
    assert np.load(tmp_path / "o.npy").dtype == np.float64
    np.save(tmp_path / "i.npy", (rng.random((12, 10)) * 100).astype(np.uint16))
    assert main(["denoise", str(tmp_path / "i.npy"), "-o", str(tmp_path / "p.npy"), "--quiet"]) == 0
    assert np.load(tmp_path / "p.npy").dtype == np.float32


def test_cli_input_dtype_rounds_and_clips(tmp_path, rng):
    img = (rng.random((20, 20)) * 255).astype(np.uint8)
    np.save(tmp_path / "i.npy", img)
    assert main(["denoise", str(tmp_path / "i.npy"), "-o", str(tmp_path / "o.npy"), "--dtype", "input",
                 "--quiet"]) == 0
    out = np.load(tmp_path / "o.npy")
    assert out.dtype == np.uint8


def test_cli_never_overwrites_input_even_with_force(tmp_path, img16, capsys):
    p = tmp_path / "in.png"
    pio.write_scan(p, img16)
    before = p.read_bytes()
    for extra in ([], ["--force"]):
        assert main(["denoise", str(p), "-o", str(p), *extra]) != 0
    os.link(p, tmp_path / "hard.png")
    assert main(["denoise", str(p), "-o", str(tmp_path / "hard.png"), "--force"]) != 0
    assert p.read_bytes() == before
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("pdediff denoise: error:") for line in err) and len(err) == 3


def test_cli_refuses_existing_output_without_force(tmp_path, img16, capsys):
    pio.write_scan(tmp_path / "in.png", img16)
    (tmp_path / "out.png").write_bytes(b"keep me")
    assert main(["denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png")]) == 2
    assert (tmp_path / "out.png").read_bytes() == b"keep me"
    assert "--force" in capsys.readouterr().err
    assert main(["denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--force", "--quiet"]) == 0
    assert pio.read_scan(tmp_path / "out.png").data.shape == img16.shape


def test_failed_write_leaves_no_partial_file(tmp_path, img16, monkeypatch):
    """Simulate a crash half-way through writing: the destination must not appear, nor stay half-written."""
    (tmp_path / "out.npy").write_bytes(b"old")

    def boom(p, data, like, spacing, ch):
        Path(p).write_bytes(b"partial")
        raise OSError("disk full")

    patch_writer(monkeypatch, "npy", boom)
    with pytest.raises(OSError, match="disk full"):
        pio.write_scan(tmp_path / "out.npy", img16)
    with pytest.raises(OSError, match="disk full"):
        pio.write_scan(tmp_path / "new.npy", img16)
    assert sorted(os.listdir(tmp_path)) == ["out.npy"]
    assert (tmp_path / "out.npy").read_bytes() == b"old"


def test_cli_failed_write_is_one_line(tmp_path, img16, monkeypatch, capsys):
    np.save(tmp_path / "in.npy", img16)

    def boom(p, *a):
        Path(p).write_bytes(b"partial")
        raise OSError("disk full")

    patch_writer(monkeypatch, "npz", boom)
    assert main(["denoise", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npz"), "--quiet"]) == 2
    assert not (tmp_path / "out.npz").exists()
    assert sorted(os.listdir(tmp_path)) == ["in.npy"]
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("missing.png", None, "no such file"),
        ("empty.png", b"", "file is empty"),
        ("corrupt.png", b"\x89PNG\r\n\x1a\nnot really a png", "cannot read as png"),
        ("corrupt.nii.gz", b"\x1f\x8b\x08garbage", "cannot read as nifti"),
        ("corrupt.npy", b"\x93NUMPY garbage", "cannot read as npy"),
        ("corrupt.tif", b"II*\x00garbage", "cannot read as tiff"),
        ("text.npz", b"hello", "cannot read as npz"),
        ("scan.dcm", b"DICM", "no DICOM preamble"),  # DICOM is read since the reliability issue
        ("scan.xyz", b"data", "unsupported file type"),
    ],
)
def test_cli_bad_files_exit_nonzero_with_one_line(tmp_path, capsys, name, content, match):
    p = tmp_path / name
    if content is not None:
        p.write_bytes(content)
    rc = main(["denoise", str(p), "-o", str(tmp_path / "out.npy")])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]
    assert not (tmp_path / "out.npy").exists()


@pytest.mark.parametrize(
    "arr,match",
    [
        (np.zeros((2, 3, 4, 5)), "expected a 1-D, 2-D or 3-D image"),
        (np.zeros((3, 4), dtype=complex), "unsupported pixel type"),
        (np.zeros((0, 4)), "empty array"),
        (np.array([[1.0, np.nan]]), "NaN"),
    ],
)
def test_cli_wrongly_shaped_or_typed_arrays(tmp_path, capsys, arr, match):
    np.save(tmp_path / "a.npy", arr)
    assert main(["denoise", str(tmp_path / "a.npy"), "-o", str(tmp_path / "o.npy")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0]


def test_cli_bad_options_one_line(tmp_path, capsys, img16):
    np.save(tmp_path / "a.npy", img16)
    assert main(["denoise", str(tmp_path / "a.npy"), "-o", str(tmp_path / "o.npy"), "--kappa", "big"]) == 2
    assert main(["denoise", str(tmp_path / "a.npy"), "-o", str(tmp_path / "o.npy"), "--dt", "5"]) == 2
    assert main(["denoise", str(tmp_path / "a.npy"), "-o", str(tmp_path / "o.png")]) == 0  # uint16 png ok
    np.save(tmp_path / "f.npy", img16.astype(np.float32))
    assert main(["denoise", str(tmp_path / "f.npy"), "-o", str(tmp_path / "f.jpg"), "--dtype", "float32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3


def test_missing_extra_names_it(monkeypatch, tmp_path):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "nibabel":
            raise ImportError("no nibabel")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    (tmp_path / "a.nii").write_bytes(b"x" * 400)
    with pytest.raises(pio.ScanIOError, match=r'pip install "pdediff\[io\]"'):
        pio.read_scan(tmp_path / "a.nii")


def test_demo_runs(tmp_path, capsys):
    assert main(["demo", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "spectral (DCT)" in out and "Perona–Malik explicit" in out
    assert (tmp_path / "heat_demo.png").exists() and (tmp_path / "denoise_demo.png").exists()


def test_a_result_that_broke_down_is_never_written(tmp_path, capsys, monkeypatch):
    """A non-finite result (a solver that broke down) is refused: no file, one line saying why (a rescale would
    have turned it into an all-zero image).  float32 AOS at a huge dt used to be such a case; it is exact now
    (issue 20), so the break-down is injected into the library's result."""
    import importlib

    pm_module = importlib.import_module("pdediff.anisotropic.perona_malik")  # the module, not the function

    vol = (np.random.default_rng(0).random((12, 24, 24)) * 255).astype(np.float32)
    np.save(tmp_path / "v.npy", vol)
    # float32 AOS at dt = 1e9 now runs: finite, within the input's range (maximum principle), written
    assert main(["denoise", str(tmp_path / "v.npy"), "-o", str(tmp_path / "big-dt.npy"), "--method", "aos",
                 "--dt", "1e9", "--num-iter", "1", "--quiet"]) == 0
    big = np.load(tmp_path / "big-dt.npy")
    assert np.isfinite(big).all() and vol.min() - 1e-3 <= big.min() and big.max() <= vol.max() + 1e-3
    (tmp_path / "big-dt.npy").unlink()

    real = pm_module.perona_malik

    def broken(*args, **kwargs):
        out = real(*args, **kwargs)
        res, info = out if isinstance(out, tuple) else (out, None)
        res = np.array(res, copy=True)
        res.flat[::7] = np.nan
        return (res, info) if isinstance(out, tuple) else res

    monkeypatch.setattr(pm_module, "perona_malik", broken)
    for out in ("o.npy", "o.tif"):
        rc = main(["denoise", str(tmp_path / "v.npy"), "-o", str(tmp_path / out), "--method", "aos",
                   "--num-iter", "1", "--quiet"] + (["--rescale", "--dtype", "uint8"] if out.endswith(".tif") else []))
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and "non-finite" in err[0] and "nothing was written" in err[0]
        assert sorted(os.listdir(tmp_path)) == ["v.npy"]
    monkeypatch.setattr(pm_module, "perona_malik", real)
    # a sane run still writes
    assert main(["denoise", str(tmp_path / "v.npy"), "-o", str(tmp_path / "ok.npy"), "--method", "aos",
                 "--quiet"]) == 0
    assert np.isfinite(np.load(tmp_path / "ok.npy")).all()
