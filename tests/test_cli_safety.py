"""`pdediff denoise` on real files and hostile input: no silent conversion, no lost data, one clear line.

Each test reproduces a fault that users met (the reliability issue) and covers its family.
"""

import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from cli_checks import one_error_line

import pdediff
from pdediff import io as pio
from pdediff.cli import main

nib = pytest.importorskip("nibabel")


def _run(*args):
    return main(["denoise", *map(str, args)])


def _one_error_line(capsys, *fragments):
    return one_error_line(capsys, *fragments, prefix="pdediff denoise: error:")


@pytest.fixture
def anatomical(tmp_path):
    """nibabel's bundled big-endian int16 scan (33 x 41 x 25, 2 mm voxels)."""
    from nibabel.testing import data_path

    p = tmp_path / "anatomical.nii"
    shutil.copy(os.path.join(data_path, "anatomical.nii"), p)
    return p


# ---------------------------------------------------------------- silent data loss
def test_dtype_input_keeps_float_input_float(tmp_path, rng):
    """--dtype input on float input wrote uint8 with every voxel 255."""
    img = rng.random((20, 24)).astype(np.float32) * 0.01
    np.save(tmp_path / "f.npy", img)
    assert _run(tmp_path / "f.npy", "-o", tmp_path / "o.npy", "--dtype", "input", "--quiet") == 0
    out = np.load(tmp_path / "o.npy")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, pdediff.perona_malik(img))


def test_float_to_png_is_refused_unless_rescaled(tmp_path, rng, capsys):
    """Float input to .png kept only three values (rounded to 0/1)."""
    img = rng.random((20, 24)).astype(np.float32)
    np.save(tmp_path / "f.npy", img)
    assert _run(tmp_path / "f.npy", "-o", tmp_path / "o.png") == 2
    _one_error_line(capsys, "--rescale", ".tif")
    assert not (tmp_path / "o.png").exists()
    assert _run(tmp_path / "f.npy", "-o", tmp_path / "o.png", "--rescale") == 0
    out = pio.read_scan(tmp_path / "o.png").data
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255 and len(np.unique(out)) > 100
    assert "rescaled" in capsys.readouterr().out
    assert _run(tmp_path / "f.npy", "-o", tmp_path / "o16.png", "--dtype", "uint16", "--rescale", "--quiet") == 0
    out16 = pio.read_scan(tmp_path / "o16.png").data
    ref = pdediff.perona_malik(img).astype(np.float64)
    expect = np.rint((ref - ref.min()) * 65535 / (ref.max() - ref.min()))
    np.testing.assert_array_equal(out16, expect)


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_integer_outputs_never_clip(tmp_path, dtype, capsys):
    img = np.linspace(-300, 300, 400).reshape(20, 20).astype(np.int16)
    np.save(tmp_path / "i.npy", img)
    assert _run(tmp_path / "i.npy", "-o", tmp_path / "o.npy", "--dtype", dtype) == 2
    _one_error_line(capsys, "outside", "--rescale")
    assert not (tmp_path / "o.npy").exists()
    assert _run(tmp_path / "i.npy", "-o", tmp_path / "o.npy", "--dtype", dtype, "--rescale", "--quiet") == 0
    out = np.load(tmp_path / "o.npy")
    assert out.dtype == dtype and out.min() == 0 and out.max() == np.iinfo(dtype).max
    assert _run(tmp_path / "i.npy", "-o", tmp_path / "p.npy", "--dtype", "input", "--quiet") == 0
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), np.rint(pdediff.perona_malik(img)).astype(np.int16))


def test_scaled_nifti_keeps_its_scaling(tmp_path, rng):
    """An int16 NIfTI with scl_slope/scl_inter written back with --dtype input lost its scaling (mean -16 -> 2)."""
    raw = rng.integers(-2000, 2000, (12, 14, 10)).astype(np.int16)
    img = nib.Nifti1Image(raw, np.diag([1.5, 1.5, 3.0, 1.0]))
    img.header.set_slope_inter(0.01, -16.0)
    nib.save(img, str(tmp_path / "s.nii"))
    values = nib.load(str(tmp_path / "s.nii")).get_fdata()
    assert values.mean() == pytest.approx(-16.0, abs=0.5)
    assert _run(tmp_path / "s.nii", "-o", tmp_path / "o.nii", "--dtype", "input", "--quiet") == 0
    back = nib.load(str(tmp_path / "o.nii"))
    assert back.get_data_dtype() == np.int16
    expect = pdediff.perona_malik(values, spacing=(1.5, 1.5, 3.0))
    slope = float(back.dataobj.slope)
    np.testing.assert_allclose(back.get_fdata(), expect, atol=slope / 2 + 1e-9)
    assert back.get_fdata().mean() == pytest.approx(-16.0, abs=0.5)


def test_volume_to_png_is_refused_before_computing(tmp_path, rng, capsys):
    """A 3-D volume sent to .png became a 25-frame animated PNG."""
    np.save(tmp_path / "v.npy", (rng.random((5, 16, 16)) * 255).astype(np.uint8))
    assert _run(tmp_path / "v.npy", "-o", tmp_path / "o.png") == 2
    _one_error_line(capsys, "animated PNG")
    np.save(tmp_path / "line.npy", np.arange(30, dtype=np.uint8))
    assert _run(tmp_path / "line.npy", "-o", tmp_path / "o.png") == 2  # printed a traceback
    _one_error_line(capsys, "PNG")
    assert sorted(os.listdir(tmp_path)) == ["line.npy", "v.npy"]


# ------------------------------------------------------------------ byte order
def test_big_endian_nifti_round_trip(tmp_path, anatomical):
    """pdediff's own output of nibabel's anatomical.nii fed back in failed on '>f4'."""
    assert _run(anatomical, "-o", tmp_path / "a1.nii", "--quiet") == 0
    first = pio.read_scan(tmp_path / "a1.nii")
    assert first.spacing == (2.0, 2.0, 2.0)
    assert _run(tmp_path / "a1.nii", "-o", tmp_path / "a2.nii", "--quiet") == 0
    second = pio.read_scan(tmp_path / "a2.nii").data
    np.testing.assert_allclose(second, pdediff.perona_malik(first.data, spacing=2.0), rtol=1e-6, atol=1e-3)


# --------------------------------------------------------------- write safety
def test_preview_is_checked_before_computing(tmp_path, rng, capsys):
    """--preview overwrote an existing file without --force; a preview into a missing folder failed only
    after OUTPUT was written."""
    np.save(tmp_path / "i.npy", rng.random((16, 16)))
    (tmp_path / "p.png").write_bytes(b"keep")
    assert _run(tmp_path / "i.npy", "-o", tmp_path / "o.npy", "--preview", tmp_path / "p.png") == 2
    _one_error_line(capsys, "PREVIEW", "--force")
    assert (tmp_path / "p.png").read_bytes() == b"keep" and not (tmp_path / "o.npy").exists()
    assert _run(tmp_path / "i.npy", "-o", tmp_path / "o.npy", "--preview", tmp_path / "no" / "p.png") == 2
    _one_error_line(capsys, "does not exist")
    assert not (tmp_path / "o.npy").exists()
    assert _run(tmp_path / "i.npy", "-o", tmp_path / "no" / "o.npy") == 2
    _one_error_line(capsys, "OUTPUT", "does not exist")


def test_preview_failure_writes_neither_output(tmp_path, rng, monkeypatch, capsys):
    import pdediff.cli._images as cli

    def boom(*a, **k):
        raise OSError("no space left on device")

    np.save(tmp_path / "i.npy", rng.random((16, 16)))
    monkeypatch.setattr(cli, "_preview", boom)
    assert _run(tmp_path / "i.npy", "-o", tmp_path / "o.npy", "--preview", tmp_path / "p.png") == 2
    _one_error_line(capsys, "no space left")
    assert sorted(os.listdir(tmp_path)) == ["i.npy"]


def test_output_modes_follow_umask_and_replaced_files_keep_theirs(tmp_path, rng):
    """Every output was created 0600, and --force turned a 0644 file into 0600."""
    np.save(tmp_path / "i.npy", rng.random((16, 16)))
    old = os.umask(0o022)
    try:
        assert _run(tmp_path / "i.npy", "-o", tmp_path / "o.npy", "--preview", tmp_path / "p.png", "--quiet") == 0
        assert stat.S_IMODE(os.stat(tmp_path / "o.npy").st_mode) == 0o644
        assert stat.S_IMODE(os.stat(tmp_path / "p.png").st_mode) == 0o644
        os.chmod(tmp_path / "o.npy", 0o640)
        assert _run(tmp_path / "i.npy", "-o", tmp_path / "o.npy", "--force", "--quiet") == 0
        assert stat.S_IMODE(os.stat(tmp_path / "o.npy").st_mode) == 0o640
    finally:
        os.umask(old)


# -------------------------------------------------------------- bounded work
def test_huge_sigma_finishes(tmp_path, rng):
    """--sigma 1e6 ran for over 10 minutes and ignored Ctrl-C."""
    np.save(tmp_path / "i.npy", rng.random((40, 50)).astype(np.float32))
    assert _run(tmp_path / "i.npy", "-o", tmp_path / "o.npy", "--sigma", "1e6", "--quiet") == 0


def test_step_limit_names_the_cli_option(tmp_path, rng, capsys):
    np.save(tmp_path / "i.npy", rng.random((16, 16)))
    assert _run(tmp_path / "i.npy", "-o", tmp_path / "o.npy", "--dt", "1e-9") == 2
    _one_error_line(capsys, "--max-steps 0", "time steps")
    assert _run(tmp_path / "i.npy", "-o", tmp_path / "o.npy", "--num-iter", "30", "--max-steps", "10") == 2
    _one_error_line(capsys, "--max-steps")
    assert _run(tmp_path / "i.npy", "-o", tmp_path / "o.npy", "--num-iter", "30", "--max-steps", "0", "--quiet") == 0


def test_nan_message_fits_the_cli(tmp_path, capsys):
    """The CLI's NaN message recommended check_finite=False, which the CLI does not have."""
    a = np.ones((8, 8))
    a[1, 1] = np.nan
    a[2, 2] = np.inf
    np.save(tmp_path / "n.npy", a)
    assert _run(tmp_path / "n.npy", "-o", tmp_path / "o.npy") == 2
    line = _one_error_line(capsys, "2 of 64", "nan_to_num")
    assert "check_finite" not in line


def test_tiny_kappa_and_float16(tmp_path, rng):
    np.save(tmp_path / "h.npy", rng.random((12, 12)).astype(np.float16))
    assert _run(tmp_path / "h.npy", "-o", tmp_path / "o.npy", "--kappa", "1e-300", "--quiet") == 0
    assert np.load(tmp_path / "o.npy").dtype == np.float32


# --------------------------------------------------------------- channels, alpha
def test_colour_npy_is_detected_and_can_be_overridden(tmp_path, rng, capsys):
    """A colour .npy (H, W, 3) was diffused as a 3-slice volume."""
    rgb = rng.random((20, 22, 3))
    np.save(tmp_path / "c.npy", rgb)
    assert _run(tmp_path / "c.npy", "-o", tmp_path / "o.npy") == 0
    assert "colour channels" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), pdediff.perona_malik(rgb, channel_axis=-1))
    assert _run(tmp_path / "c.npy", "-o", tmp_path / "v.npy", "--channel-axis", "none", "--quiet") == 0
    np.testing.assert_array_equal(np.load(tmp_path / "v.npy"), pdediff.perona_malik(rgb))
    assert _run(tmp_path / "c.npy", "-o", tmp_path / "w.npy", "--channel-axis", "0", "--quiet") == 0
    np.testing.assert_array_equal(np.load(tmp_path / "w.npy"), pdediff.perona_malik(rgb, channel_axis=0))


@pytest.mark.parametrize("channels", [2, 4])
def test_alpha_is_never_smoothed(tmp_path, rng, channels):
    """A grey+alpha PNG was treated as a 3-D volume, and alpha channels were diffused."""
    img = (rng.random((24, 26, channels)) * 255).astype(np.uint8)
    img[..., -1] = np.where(rng.random((24, 26)) > 0.5, 255, 0)
    pio.write_scan(tmp_path / "a.png", img, channel_axis=-1)
    assert _run(tmp_path / "a.png", "-o", tmp_path / "o.png", "--quiet") == 0
    out = pio.read_scan(tmp_path / "o.png").data
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., -1], img[..., -1])
    colour = pdediff.perona_malik(img[..., :-1], channel_axis=-1)
    np.testing.assert_array_equal(out[..., :-1], np.rint(colour).astype(np.uint8))


# ------------------------------------------------------------------------ DICOM
def _series(tmp_path, n=4):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    src = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    folder = tmp_path / "series"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for k in range(n):
        ds = src.copy()
        ds.ImagePositionPatient = [-158.1, -179.0, -75.7 + 2.5 * k]
        ds.InstanceNumber = k + 1
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        arr = src.pixel_array.astype(np.int16) + rng.integers(-20, 20, src.pixel_array.shape).astype(np.int16)
        ds.PixelData = arr.tobytes()
        ds.save_as(folder / f"IM{(7 * k) % n:03d}")  # file order differs from slice order
    return folder


def test_dicom_series_to_nifti_and_dicom(tmp_path, capsys):
    folder = _series(tmp_path)
    scan = pio.read_scan(folder)
    assert scan.data.ndim == 3 and scan.spacing[0] == pytest.approx(2.5)
    assert _run(folder, "-o", tmp_path / "out.nii.gz") == 0
    text = capsys.readouterr().out
    assert "spacing 2.5 x" in text
    nii = nib.load(str(tmp_path / "out.nii.gz"))
    np.testing.assert_allclose(sorted(nii.header.get_zooms()), sorted(scan.spacing), rtol=1e-6)
    assert _run(folder, "-o", f"{tmp_path / 'out_series'}/", "--quiet") == 0  # a trailing '/': a series folder
    back = pio.read_scan(tmp_path / "out_series")
    expect = pdediff.perona_malik(scan.data, spacing=scan.spacing)
    slope = max(float(ds.RescaleSlope) for ds in back.meta["datasets"])
    np.testing.assert_allclose(back.data, expect, atol=slope / 2 + 1e-6)
    assert back.meta["datasets"][0].SeriesInstanceUID != scan.meta["datasets"][0].SeriesInstanceUID
    assert _run(folder, "-o", f"{folder / 'inside'}/") == 2  # never write into the input series
    _one_error_line(capsys, "INPUT")


# ------------------------------------------- found by a new user trying to break it
def test_force_never_replaces_a_folder_of_other_files(tmp_path, capsys):
    folder = _series(tmp_path)
    keep = tmp_path / "keep"
    (keep / "sub").mkdir(parents=True)
    (keep / "thesis.txt").write_text("precious")
    assert _run(folder, "-o", keep, "--force") == 2
    _one_error_line(capsys, "not a DICOM series")
    assert (keep / "thesis.txt").read_text() == "precious" and (keep / "sub").is_dir()
    (tmp_path / "dir.nii").mkdir()
    (tmp_path / "dir.nii" / "k").write_text("keep")
    assert _run(folder, "-o", tmp_path / "dir.nii", "--force") == 2
    _one_error_line(capsys, "is a folder")
    assert (tmp_path / "dir.nii" / "k").read_text() == "keep"
    # a previous DICOM output may be replaced with --force
    assert _run(folder, "-o", f"{tmp_path / 'out'}/", "--quiet") == 0  # a trailing '/': a series folder
    assert _run(folder, "-o", tmp_path / "out", "--quiet", "--force") == 0  # an existing series folder


@pytest.mark.parametrize("name,shape", [("image_dfl.dcm", (512, 512)), ("SC_ybr_full_422_uncompressed.dcm",
                                                                        (100, 100, 3))])
def test_valid_dicom_variants_are_read(name, shape):
    """A deflated dataset and 4:2:2-subsampled YBR pixels were refused as truncated."""
    pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    assert pio.read_scan(get_testdata_file(name)).data.shape == shape


def test_undecodable_dicom_says_why(capsys):
    pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    path = get_testdata_file("JPGExtended.dcm")
    try:
        pio.read_scan(path)
    except pio.ScanIOError as exc:
        msg = str(exc)
        assert "\n" not in msg and not msg.rstrip(")").endswith(":"), msg  # the reason follows the colon
    else:
        pytest.skip("a decoder for 12-bit JPEG is installed here")


@pytest.mark.parametrize("spacing", [["1e-200", "1e-200"], ["1e200", "1"]])
def test_absurd_spacing_is_one_line(tmp_path, rng, spacing, capsys):
    """--spacing 1e-200 raised ZeroDivisionError, 1e200 OverflowError (tracebacks, exit 1)."""
    np.save(tmp_path / "i.npy", rng.random((8, 8)))
    assert _run(tmp_path / "i.npy", "-o", tmp_path / "o.npy", "--spacing", *spacing) == 2
    _one_error_line(capsys, "--spacing must lie between")
    with pytest.raises(ValueError, match="spacing must lie between"):
        pdediff.perona_malik(np.ones((8, 8)), spacing=1e-300)


def test_working_memory_is_checked_before_computing(tmp_path, rng, monkeypatch, capsys):
    import pdediff.io._limits as limits

    np.save(tmp_path / "i.npy", rng.random((32, 32)).astype(np.float32))
    monkeypatch.setattr(limits, "_available_memory", lambda: 32 * 32 * 4 * 3)  # room for 3 copies, not 6
    assert _run(tmp_path / "i.npy", "-o", tmp_path / "o.npy") == 2
    _one_error_line(capsys, "working memory")
    assert not (tmp_path / "o.npy").exists()


def test_messages_fit_the_case(tmp_path, rng, capsys):
    rgb = (rng.random((16, 16, 3)) * 255).astype(np.uint8)
    pio.write_scan(tmp_path / "c.png", rgb, channel_axis=-1)
    assert _run(tmp_path / "c.png", "-o", tmp_path / "c.nii") == 2  # NIfTI stores floats: no integer hint
    line = _one_error_line(capsys, "NIfTI")
    assert "stores integers" not in line
    np.save(tmp_path / "u16.npy", (rng.random((16, 16)) * 60000).astype(np.uint16))
    assert _run(tmp_path / "u16.npy", "-o", tmp_path / "o.jpg", "--dtype", "input") == 2
    line = _one_error_line(capsys, "JPEG", "--dtype uint8")
    assert "--dtype input" not in line


def test_step_limit_message_names_flags_only(tmp_path, rng, capsys):
    np.save(tmp_path / "u16.npy", (rng.random((16, 16)) * 60000).astype(np.uint16))
    assert _run(tmp_path / "u16.npy", "-o", tmp_path / "o.npy", "--dt", "1e-9") == 2
    line = _one_error_line(capsys, "--dt")
    assert "dt=None" not in line and "max_steps=" not in line


def test_huge_sigma_and_argparse_errors_are_one_line(tmp_path, rng, capsys):
    np.save(tmp_path / "i.npy", rng.random((16, 16)))
    assert _run(tmp_path / "i.npy", "-o", tmp_path / "o.npy", "--sigma", "1e300", "--quiet") == 0
    with pytest.raises(SystemExit) as e:
        _run(tmp_path / "i.npy", "-o", tmp_path / "p.npy", "-q")
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pdediff") and "error: unrecognized arguments: -q" in err[0], err
    with pytest.raises(SystemExit):
        _run(tmp_path / "i.npy", "-o", tmp_path / "p.npy", "--method", "implicit")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pdediff denoise: error: argument --method"), err


def test_dicom_output_reports_the_stored_type(tmp_path, capsys):
    pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    assert _run(get_testdata_file("CT_small.dcm"), "-o", tmp_path / "ct.dcm") == 0
    assert "-> int16 (slope/intercept" in capsys.readouterr().out


def test_default_sigma_follows_the_voxel_size(rng):
    """Default Catté sigma is 0.8 cells of the finest axis: the same result whatever unit the spacing is in
    (a 300 dpi TIFF in mm used to be smoothed over ~9 pixels, worse than no denoising)."""
    u = rng.random((24, 20))
    np.testing.assert_array_equal(pdediff.perona_malik(u, spacing=2.0**-4), pdediff.perona_malik(u))
    assert pdediff.perona_malik(u, spacing=(0.5, 2.0), return_info=True)[1].sigma == pytest.approx(0.4)


def test_submodules_load_on_access():
    import subprocess
    import sys

    code = "import pdediff; print(pdediff.data.mri_slice().shape)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(256, 256)"


def test_cast_like_never_clips_silently():
    with pytest.raises(ValueError, match="clip=True"):
        pio.cast_like(np.array([-1.0, 10.0]), np.uint8)
    with pytest.raises(ValueError, match="NaN"):
        pio.cast_like(np.array([np.nan]), np.int16)
    np.testing.assert_array_equal(pio.cast_like(np.array([-1.0, 300.0]), np.uint8, clip=True), [0, 255])
    assert pio.cast_like(np.array([1.5]), np.float32).dtype == np.float32


def test_stop_during_numba_compilation_is_delivered_after_it():
    """A SIGTERM that lands while Numba's compiler lock is held (compiling, or loading a cached kernel) is not
    raised there -- unwinding through half-built LLVM objects can crash the process -- but as soon as the
    compiler is left; with no compilation it is raised at once."""
    import os
    import signal
    import time

    from numba.core.compiler_lock import global_compiler_lock

    from pdediff import cli

    previous = cli._install_signal_handlers()
    try:
        reached = False
        with pytest.raises(cli._Terminated) as info:
            with global_compiler_lock:
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(10000):  # the handler has run by now: it deferred
                    pass
                time.sleep(0.05)  # the retry timer fires while still "compiling": it re-arms
                reached = True
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:  # released: delivered within a retry period
                time.sleep(0.005)
        assert reached and info.value.signum == signal.SIGTERM
        with pytest.raises(cli._Terminated):
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(10000):
                pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_dtype_input_says_which_scaling_it_stored(tmp_path, capsys):
    """``--dtype input`` said "scaling kept" but wrote slope 0.5 / intercept -10 as new values: the report
    states the slope/intercept written and that INPUT's pair was not kept."""
    raw = np.random.default_rng(0).integers(0, 400, (12, 12, 4)).astype(np.int16)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(0.5, -10)
    nib.save(img, tmp_path / "a.nii")
    assert _run(tmp_path / "a.nii", "-o", tmp_path / "b.nii", "--dtype", "input") == 0
    text = capsys.readouterr().out
    proxy = nib.load(tmp_path / "b.nii").dataobj
    assert nib.load(tmp_path / "b.nii").get_data_dtype() == np.int16
    assert f"scl_slope {float(proxy.slope):.6g}, scl_inter {float(proxy.inter):.6g}" in text, text
    assert "INPUT's scl_slope 0.5, scl_inter -10 not kept" in text, text
    from pdediff.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices["denoise"]
    assert "scaling kept" not in " ".join(sub.format_help().split())
