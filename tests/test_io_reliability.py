"""I/O reliability (issue 20): full disks, racing writers, DICOM without positions, empty/suffix-less/symlinked
outputs, TIFF units, and the format registry (issue 19)."""

import dataclasses
import errno
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from pdediff import io as pio
from pdediff.cli import main
from pdediff.io import _atomic, _limits

ROOT = Path(__file__).resolve().parents[1]


def patch_writer(monkeypatch, name, write):
    from pdediff.io import _format

    monkeypatch.setitem(_format._REGISTRY, name, dataclasses.replace(pio.get_format(name), write=write))


def leftovers(folder):
    return sorted(p for p in os.listdir(folder) if p.startswith("."))


def run_cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pdediff", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


# ----------------------------------------------------------------------------- the registry
def test_every_format_is_one_record_and_lookups_use_it(tmp_path, monkeypatch):
    names = [f.name for f in pio.registered_formats()]
    assert len(names) == len(set(names))
    assert {"npy", "npz", "png", "jpeg", "tiff", "nifti", "mgh", "analyze", "dicom", "zarr"} <= set(names)
    assert pio.get_format("nifti").scaled and pio.get_format("dicom").scaled and not pio.get_format("tiff").scaled
    assert pio.get_format("zarr").open_chunked is not None and pio.get_format("png").open_chunked is None
    with pytest.raises(ValueError, match="unknown format"):
        pio.get_format("gif")
    # a new format is one record: read_scan / write_scan / check_writable find it by suffix
    seen = {}

    def write(p, data, like, spacing, ch):
        Path(p).write_bytes(data.tobytes())

    def read(p):
        return pio.Scan(np.frombuffer(Path(p).read_bytes(), dtype=np.uint8).copy())

    def check(r):
        seen["request"] = r
        if r.dtype != np.uint8:
            raise ValueError(f"{r.where}: raw stores uint8")

    from pdediff.io import _format

    raw = pio.Format("raw", "raw bytes", (".raw",), read=read, write=write, check=check)
    monkeypatch.setitem(_format._REGISTRY, "raw", raw)
    monkeypatch.setattr(pio._scan, "FORMATS", {**pio.FORMATS, ".raw": "raw"})
    monkeypatch.setattr(pio._scan, "_BY_LENGTH", sorted(pio._scan.FORMATS, key=len, reverse=True))
    pio.write_scan(tmp_path / "a.raw", np.arange(5, dtype=np.uint8))
    assert seen["request"].shape == (5,) and seen["request"].where == "a.raw"
    np.testing.assert_array_equal(pio.read_scan(tmp_path / "a.raw").data, np.arange(5))
    with pytest.raises(ValueError, match="raw stores uint8"):
        pio.check_writable(tmp_path / "b.raw", (5,), np.float32)


def test_no_import_cycle_in_io():
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import test_architecture as arch
    finally:
        sys.path.pop(0)
    cycles = [c for c in arch.cycles(arch.import_graph()) if any(m.startswith("pdediff.io") for m in c)]
    assert not cycles
    private = [v for v in arch.private_violations() if "pdediff.io." in v]
    assert not private, private


# ----------------------------------------------------------------------------- full disk
def test_reserve_space_reports_enospc_instead_of_a_sparse_file(tmp_path, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with open(tmp_path / "f", "wb") as f:
        with pytest.raises(OSError) as info:
            _limits.reserve_space(f.fileno(), 1 << 20, tmp_path / "f")
    assert info.value.errno == errno.ENOSPC and "reserve" in str(info.value)


def test_reserve_space_writes_zeros_where_fallocate_is_unsupported(tmp_path, monkeypatch):
    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    with open(tmp_path / "f", "wb") as f:
        f.write(b"head")
        f.flush()
        _limits.reserve_space(f.fileno(), 3 << 20, tmp_path / "f")
    data = (tmp_path / "f").read_bytes()
    assert len(data) == 3 << 20 and data[:4] == b"head" and not data[4:].strip(b"\0")
    assert os.stat(tmp_path / "f").st_blocks * 512 >= 3 << 20  # allocated, not sparse


def test_chunked_nifti_on_a_full_disk_raises_and_leaves_nothing(tmp_path, monkeypatch):
    da = pytest.importorskip("dask.array")
    pytest.importorskip("nibabel")

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError) as info:
        pio.write_chunked(tmp_path / "out.nii", da.ones((16, 16, 16), chunks=8, dtype=np.float32))
    assert info.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == []


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 1 MiB tmpfs (needs root and a mount namespace that allows it; skipped elsewhere)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


@pytest.mark.parametrize("out,chunks", [("out.nii", True), ("out.zarr", True), ("out.npy", False)])
def test_cli_on_a_really_full_disk_one_line_no_leftover(tmp_path, tiny_tmpfs, out, chunks):
    pytest.importorskip("dask.array")
    np.save(tmp_path / "in.npy", np.random.default_rng(0).random((72, 64, 64)).astype(np.float32))  # 1.1 MiB
    args = ["denoise", tmp_path / "in.npy", "-o", tiny_tmpfs / out, "--num-iter", "1", "--quiet"]
    r = run_cli(*args, *(["--chunks", "32"] if chunks else []))
    assert r.returncode == 2, (r.returncode, r.stderr)  # not 135 (SIGBUS)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write" in lines[0] and ("No space" in lines[0] or "28" in lines[0]), r.stderr
    assert os.listdir(tiny_tmpfs) == []


# ----------------------------------------------------------------------------- racing writers
def rival_writes(path, content=b"rival"):
    """A writer that, half-way through, sees another process create ``path``."""

    def write(p, data, like, spacing, ch, **kw):
        Path(p).write_bytes(b"ours")
        if path.suffix:
            path.write_bytes(content)
        else:
            path.mkdir()
            (path / "rival.dcm").write_bytes(content)

    return write


@pytest.mark.parametrize("mechanism", ["renameat2", "link", "rename"])
def test_no_replace_commit_loses_the_race_cleanly(tmp_path, monkeypatch, mechanism):
    out = tmp_path / "same.npy"
    patch_writer(monkeypatch, "npy", rival_writes(out))
    if mechanism != "renameat2":
        monkeypatch.setattr(_atomic, "_renameat2", lambda src, dst: False)
    if mechanism == "rename":
        def no_links(src, dst):
            raise OSError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_links)
    with pytest.raises(pio.DestinationExistsError) as info:
        pio.write_scan(out, np.zeros(3), overwrite=False)
    assert isinstance(info.value, FileExistsError) and "\n" not in str(info.value)
    assert out.read_bytes() == b"rival" and leftovers(tmp_path) == []
    # with overwrite (the default; the CLI's --force) the later writer replaces
    pio.write_scan(out, np.zeros(3))
    assert out.read_bytes() == b"ours" and leftovers(tmp_path) == []


def test_no_replace_refuses_an_existing_destination_before_writing(tmp_path, monkeypatch):
    out = tmp_path / "a.npy"
    out.write_bytes(b"keep")
    called = []
    patch_writer(monkeypatch, "npy", lambda *a: called.append(1))
    with pytest.raises(pio.DestinationExistsError):
        pio.write_scan(out, np.zeros(3), overwrite=False)
    assert not called and out.read_bytes() == b"keep" and leftovers(tmp_path) == []
    with pytest.raises(pio.DestinationExistsError):
        with pio.atomic_paths([tmp_path / "b.txt", out], overwrite=False):
            pass
    assert sorted(os.listdir(tmp_path)) == ["a.npy"]


@pytest.mark.parametrize("mechanism", ["renameat2", "rename"])
def test_no_replace_commit_of_a_folder(tmp_path, monkeypatch, mechanism):
    pytest.importorskip("pydicom")
    out = tmp_path / "series"
    real = pio.get_format("dicom").write

    def write(p, data, like, spacing, ch, **kw):
        real(p, data, like, spacing, ch, **kw)
        out.mkdir()
        (out / "rival.dcm").write_bytes(b"rival")

    patch_writer(monkeypatch, "dicom", write)
    if mechanism == "rename":
        monkeypatch.setattr(_atomic, "_renameat2", lambda src, dst: False)
    with pytest.raises(pio.DestinationExistsError):
        pio.write_scan(out, np.zeros((2, 4, 5), np.int16), format="dicom", overwrite=False)
    assert os.listdir(out) == ["rival.dcm"] and leftovers(tmp_path) == []


def test_no_replace_rolls_back_the_outputs_already_committed(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    with pytest.raises(pio.DestinationExistsError):
        with pio.atomic_paths([a, b], overwrite=False) as (ta, tb):
            ta.write_text("a")
            tb.write_text("b")
            b.write_text("rival")
    assert sorted(os.listdir(tmp_path)) == ["b.txt"] and b.read_text() == "rival"


def test_chunked_no_replace(tmp_path, monkeypatch):
    da = pytest.importorskip("dask.array")
    pytest.importorskip("zarr")
    out = tmp_path / "o.zarr"
    from pdediff.io import _format

    real = pio.get_format("zarr").write_chunked

    def write_chunked(tmp, *a):
        real(tmp, *a)
        out.mkdir()
        (out / "zarr.json").write_text("{}")

    monkeypatch.setitem(_format._REGISTRY, "zarr", dataclasses.replace(pio.get_format("zarr"),
                                                                       write_chunked=write_chunked))
    with pytest.raises(pio.DestinationExistsError):
        pio.write_chunked(out, da.ones((8, 8), chunks=4), overwrite=False)
    assert os.listdir(out) == ["zarr.json"] and leftovers(tmp_path) == []


@pytest.mark.parametrize("force", [False, True])
def test_cli_racing_writers_one_wins(tmp_path, monkeypatch, capsys, force):
    np.save(tmp_path / "in.npy", np.random.default_rng(1).random((12, 13)).astype(np.float32))
    out = tmp_path / "same.npy"
    real = pio.get_format("npy").write

    def write(p, data, like, spacing, ch):
        real(p, data, like, spacing, ch)
        out.write_bytes(b"rival")  # the other run committed first

    patch_writer(monkeypatch, "npy", write)
    rc = main(["denoise", str(tmp_path / "in.npy"), "-o", str(out), "--quiet"] + (["--force"] if force else []))
    err = capsys.readouterr().err.strip().splitlines()
    if force:
        assert rc == 0 and np.load(out).shape == (12, 13)
    else:
        assert rc == 2 and len(err) == 1 and "exists" in err[0], err
        assert out.read_bytes() == b"rival"
    assert leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- DICOM without positions
def series_without_positions(folder, *, numbers, thickness=2.5, between=None, n=None):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    folder.mkdir()
    src = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    uid = generate_uid()
    rng = np.random.default_rng(0)
    planes = {}
    for k, number in enumerate(numbers):
        ds = src.copy()
        for tag in ("ImagePositionPatient", "ImageOrientationPatient", "SpacingBetweenSlices", "SliceLocation"):
            if tag in ds:
                delattr(ds, tag)
        if number is None:
            del ds.InstanceNumber
        else:
            ds.InstanceNumber = number
        ds.SliceThickness = thickness
        if between is not None:
            ds.SpacingBetweenSlices = between
        arr = rng.integers(0, 1000, (128, 128)).astype(np.int16)
        ds.PixelData = arr.tobytes()
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        ds.save_as(folder / f"f{k}.dcm")
        planes[number] = arr
    return planes


def test_dicom_series_without_positions_uses_thickness_and_instance_numbers(tmp_path):
    planes = series_without_positions(tmp_path / "s", numbers=[3, 1, 4, 2])
    scan = pio.read_scan(tmp_path / "s")
    assert scan.spacing == pytest.approx((2.5, 0.661468, 0.661468))
    np.testing.assert_array_equal(scan.data, np.stack([planes[k] for k in (1, 2, 3, 4)]) - 1024.0)
    assert len(scan.notes) == 1 and "SliceThickness" in scan.notes[0] and "InstanceNumber" in scan.notes[0]
    planes = series_without_positions(tmp_path / "b", numbers=[2, 1], between=3.0)
    assert pio.read_scan(tmp_path / "b").spacing == pytest.approx((3.0, 0.661468, 0.661468))


@pytest.mark.parametrize("numbers,match", [([1, 2, 2], "share InstanceNumber 2"), ([1, None, 3], "no InstanceNumber")])
def test_dicom_series_without_positions_or_order_is_refused(tmp_path, numbers, match):
    series_without_positions(tmp_path / "s", numbers=numbers)
    with pytest.raises(pio.ScanIOError, match=match) as info:
        pio.read_scan(tmp_path / "s")
    assert "cannot establish the order" in str(info.value) and "\n" not in str(info.value)


def test_cli_prints_the_dicom_spacing_note(tmp_path, capsys):
    series_without_positions(tmp_path / "s", numbers=[2, 1, 3])
    assert main(["denoise", str(tmp_path / "s"), "-o", str(tmp_path / "o.nii"), "--num-iter", "1"]) == 0
    out = capsys.readouterr().out
    assert "note: the slices have no ImagePositionPatient" in out and "spacing 2.5 x 0.661468 x 0.661468" in out


# ----------------------------------------------------------------------------- output names
@pytest.mark.parametrize("name", ["", ".", ".."])
def test_an_output_path_naming_no_file_is_refused(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    with pytest.raises(ValueError, match="names no file") as info:
        pio.check_writable(name, (3, 4), np.float32, format="dicom")
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="names no file"):
        pio.write_scan(name, np.zeros((3, 4)), format="dicom")
    assert os.listdir(tmp_path) == ["sub"] and os.listdir(tmp_path / "sub") == []


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_cli_empty_output_is_one_clear_line(tmp_path, force):
    np.save(tmp_path / "in.npy", np.ones((8, 9), np.float32))
    (tmp_path / "empty").mkdir()  # '' is '.', an empty folder: it looked like a DICOM series folder to replace
    r = run_cli("denoise", "../in.npy", "-o", "", *force, cwd=tmp_path / "empty")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Errno" not in lines[0], r.stderr
    if force:
        assert "names no file" in lines[0]
    assert sorted(os.listdir(tmp_path)) == ["empty", "in.npy"] and os.listdir(tmp_path / "empty") == []


def test_an_output_without_a_recognised_suffix_is_refused(tmp_path, capsys):
    imageio = pytest.importorskip("imageio.v3")
    imageio.imwrite(tmp_path / "in.png", (np.arange(100).reshape(10, 10) * 2).astype(np.uint8))
    with pytest.raises(ValueError, match="no recognised suffix"):
        pio.write_scan(tmp_path / "name", np.zeros((4, 5), np.int16))
    with pytest.raises(ValueError, match="no recognised suffix"):
        pio.check_writable(tmp_path / "name", (4, 5), np.int16)
    assert main(["denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "name"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no recognised suffix" in err[0] and "'/'" in err[0]
    assert sorted(os.listdir(tmp_path)) == ["in.png"]
    # explicit: a trailing slash on the command line, format="dicom" in Python
    pytest.importorskip("pydicom")
    assert main(["denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "name") + "/", "--quiet"]) == 0
    assert pio.read_scan(tmp_path / "name").format == "dicom"
    pio.write_scan(tmp_path / "other", np.zeros((4, 5), np.int16), format="dicom")
    assert (tmp_path / "other").is_dir()


def test_an_output_that_is_a_symlink_writes_its_target(tmp_path, capsys):
    real = tmp_path / "data" / "real.npy"
    real.parent.mkdir()
    np.save(real, np.zeros(3))
    os.chmod(real, 0o640)
    link = tmp_path / "link.npy"
    link.symlink_to(real)
    pio.write_scan(link, np.arange(4.0))
    assert link.is_symlink() and os.readlink(link) == str(real)
    np.testing.assert_array_equal(np.load(real), np.arange(4.0))
    assert oct(os.stat(real).st_mode & 0o777) == oct(0o640)  # the target's mode kept
    assert leftovers(tmp_path) == [] and leftovers(real.parent) == []
    # the command line: --force writes through the link too
    np.save(tmp_path / "in.npy", np.ones((8, 9), np.float32))
    assert main(["denoise", str(tmp_path / "in.npy"), "-o", str(link), "--force", "--quiet"]) == 0
    assert link.is_symlink() and np.load(real).shape == (8, 9)


def test_a_dangling_symlink_output_needs_force_and_creates_its_target(tmp_path, capsys):
    """A link whose target is missing is an existing OUTPUT name: refused without --force with a line saying
    where it points; with --force the target is created and the link stays; a target folder that does not exist
    is named as such."""
    np.save(tmp_path / "in.npy", np.ones((8, 9), np.float32))
    link = tmp_path / "link.npy"
    link.symlink_to("made.npy")
    assert main(["denoise", str(tmp_path / "in.npy"), "-o", str(link), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "symbolic link to made.npy, which does not exist" in err and "--force" in err
    assert not (tmp_path / "made.npy").exists()
    assert main(["denoise", str(tmp_path / "in.npy"), "-o", str(link), "--force", "--quiet"]) == 0
    assert link.is_symlink() and np.load(tmp_path / "made.npy").shape == (8, 9)
    nowhere = tmp_path / "nowhere.npy"
    nowhere.symlink_to(tmp_path / "missing" / "x.npy")
    assert main(["denoise", str(tmp_path / "in.npy"), "-o", str(nowhere), "--force", "--quiet"]) == 2
    assert "missing (the folder of the file the link points to) does not exist" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy", "link.npy", "made.npy", "nowhere.npy"]


# ----------------------------------------------------------------------------- TIFF units
def test_tiff_in_microns_is_written_back_in_microns(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "um.tif", np.zeros((3, 8, 8), np.uint16), imagej=True, resolution=(10, 5),
                     metadata={"spacing": 0.3, "unit": "micron", "axes": "ZYX"})
    scan = pio.read_scan(tmp_path / "um.tif")
    assert scan.spacing == pytest.approx((0.3e-3, 0.2e-3, 0.1e-3))  # millimetres in memory
    for dtype, name in ((np.uint16, "o.tif"), (np.float64, "o64.tif")):  # ImageJ, and tifffile's JSON
        pio.write_scan(tmp_path / name, scan.data.astype(dtype), like=scan, spacing=scan.spacing)
        back = pio.read_scan(tmp_path / name)
        assert back.spacing == pytest.approx(scan.spacing, rel=1e-6)
        with tifffile.TiffFile(tmp_path / name) as tf:
            meta = tf.imagej_metadata if tf.is_imagej else tf.shaped_metadata[0]
            assert meta["unit"] == "micron" and meta["spacing"] == pytest.approx(0.3)
            if tf.is_imagej:
                num, den = tf.pages[0].tags["XResolution"].value
                assert num / den == pytest.approx(10.0)  # pixels per micron
    pio.write_scan(tmp_path / "mm.tif", scan.data, spacing=scan.spacing)  # no TIFF like: millimetres
    with tifffile.TiffFile(tmp_path / "mm.tif") as tf:
        assert tf.imagej_metadata["unit"] == "mm"


@pytest.mark.parametrize("axes", ["CYX", "TYX", "TZYX"])
def test_imagej_channels_or_time_points_are_refused_not_smoothed_across(tmp_path, axes):
    # An ImageJ hyperstack with channels or frames was read as a 3-D volume of spacing 1 and smoothed
    # across its channels/time points without a word; volumes (ZYX) and plain multi-page TIFFs still read.
    tifffile = pytest.importorskip("tifffile")
    shape = {"CYX": (3, 8, 8), "TYX": (4, 8, 8), "TZYX": (2, 3, 8, 8)}[axes]
    tifffile.imwrite(tmp_path / "h.tif", np.zeros(shape, np.uint16), imagej=True, metadata={"axes": axes})
    with pytest.raises(pio.ScanIOError, match=rf"TIFF axes '{axes}' hold .*(channels \(C\)|time points \(T\))"):
        pio.read_scan(tmp_path / "h.tif")
    tifffile.imwrite(tmp_path / "z.tif", np.zeros((3, 8, 8), np.uint16), imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(tmp_path / "pages.tif", np.zeros((5, 8, 8), np.uint16), photometric="minisblack")
    assert pio.read_scan(tmp_path / "z.tif").data.shape == (3, 8, 8)
    assert pio.read_scan(tmp_path / "pages.tif").data.shape == (5, 8, 8)


# ----------------------------------------------------------------------------- values beyond float32
def test_values_beyond_float32_are_written_as_float64_or_refused(tmp_path, capsys):
    """An int16 NIfTI with scl_slope 1e38 (values ~1e41) was written all +inf as float32 with NumPy's overflow
    warning on stderr: --dtype auto now writes float64, an explicit --dtype float32 is refused before computing."""
    nib = pytest.importorskip("nibabel")
    d = (np.random.default_rng(0).random((12, 12, 4)) * 1000).astype(np.int16)
    img = nib.Nifti1Image(d, np.eye(4))
    img.header.set_slope_inter(1e38, 0)
    nib.save(img, tmp_path / "big.nii")
    assert main(["denoise", str(tmp_path / "big.nii"), "-o", str(tmp_path / "o.nii"), "--quiet"]) == 0
    out = np.asarray(nib.load(tmp_path / "o.nii").dataobj)
    assert out.dtype == np.float64 and np.isfinite(out).all() and 1e39 < out.max() <= 1e41
    assert "overflow" not in capsys.readouterr().err
    assert main(["denoise", str(tmp_path / "big.nii"), "-o", str(tmp_path / "o32.npy"), "--dtype", "float32"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "beyond float32's range" in err and "--dtype float64" in err
    assert not (tmp_path / "o32.npy").exists() and leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- fresh-eyes I/O defects
def _coins(tmp_path):
    img = (np.random.default_rng(3).random((24, 24)) * 200 + 20).astype(np.uint8)
    np.save(tmp_path / "coins.npy", img)
    return img


@pytest.mark.parametrize("name", ["a.Nii.Gz", "q.Nii.gz", "b.NII.GZ", "c.nii.GZ", "r.nii.Gz", "s.Nii", "m.Mgz",
                                  "t.Tif", "u.TIFF", "v.tif", "n.NPY", "o.Npz", "p.PNG", "w.png"])
def test_suffix_case_never_changes_what_is_written(tmp_path, name):
    # nibabel rewrote "x.Nii.Gz" as "x.nii.Gz": the output was 0 bytes, the data in a hidden leftover
    img = _coins(tmp_path)
    pio.write_scan(tmp_path / name, img)
    np.testing.assert_array_equal(pio.read_scan(tmp_path / name).data, img)
    assert sorted(os.listdir(tmp_path)) == sorted(["coins.npy", name])


def test_cli_mixed_case_outputs_hold_the_result(tmp_path, capsys):
    _coins(tmp_path)
    mask = np.zeros((24, 24), bool)
    mask[8:12, 8:12] = True
    np.save(tmp_path / "mask.npy", mask)
    # each mixed-case name holds exactly what the lower-case name of its format holds
    names = {"a.Nii.Gz": "ref.nii.gz", "q.Nii.gz": "ref.nii.gz", "b.NII.GZ": "ref.nii.gz", "r.nii.Gz": "ref.nii.gz",
             "t.TIFF": "ref.tif", "u.Tif": "ref.tif", "n.NPY": "ref.npy", "p.PNG": "ref.png"}
    for name in [*names, *set(names.values())]:
        assert main(["denoise", str(tmp_path / "coins.npy"), "-o", str(tmp_path / name), "--dtype", "uint8"]) == 0
    for name in ("ip.Nii.Gz", "ip.nii.gz"):
        assert main(["inpaint", str(tmp_path / "coins.npy"), "--mask", str(tmp_path / "mask.npy"), "-o",
                     str(tmp_path / name)]) == 0
    names["ip.Nii.Gz"] = "ip.nii.gz"
    for name, ref in names.items():
        np.testing.assert_array_equal(pio.read_scan(tmp_path / name).data, pio.read_scan(tmp_path / ref).data)
    assert pio.read_scan(tmp_path / "n.NPY").data.dtype == np.uint8
    assert leftovers(tmp_path) == []


def _fifo(tmp_path, name):
    p = tmp_path / name
    os.mkfifo(p)  # never a real device: writing through a link to /dev/full once replaced it
    return p


def test_output_that_is_a_fifo_is_never_replaced(tmp_path, capsys):
    import stat

    _coins(tmp_path)
    fifo = _fifo(tmp_path, "f.npy")
    (tmp_path / "l.npy").symlink_to(fifo)
    for out in ("f.npy", "l.npy"):
        assert main(["denoise", str(tmp_path / "coins.npy"), "-o", str(tmp_path / out), "--force"]) == 2
        cap = capsys.readouterr()
        assert "pdediff denoise: error: OUTPUT" in cap.err and "FIFO (named pipe)" in cap.err
        assert len(cap.err.strip().splitlines()) == 1 and "denoised" not in cap.out  # refused before computing
    assert main(["denoise", str(tmp_path / "coins.npy"), "-o", str(tmp_path / "x.npy"), "--preview",
                 str(_fifo(tmp_path, "pv.png")), "--force"]) == 2
    assert "PREVIEW" in capsys.readouterr().err
    for out in ("f.npy", "l.npy"):
        with pytest.raises(pio.ScanIOError, match="is a FIFO .named pipe., not a regular file"):
            pio.write_scan(tmp_path / out, np.zeros(3))
    with pytest.raises(pio.ScanIOError, match="FIFO"), pio.atomic_path(tmp_path / "l.npy") as tmp:
        tmp.write_bytes(b"x")
    assert stat.S_ISFIFO(os.stat(tmp_path / "f.npy").st_mode) and os.path.islink(tmp_path / "l.npy")
    assert pio.replace_problem(tmp_path / "f.npy", "npy") == "it is a FIFO (named pipe), not a regular file"
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "x.npy").exists()


def test_zarr_output_without_chunks(tmp_path, capsys):
    pytest.importorskip("zarr")
    vol = np.random.default_rng(4).random((6, 10, 12)).astype(np.float32)
    np.save(tmp_path / "vol.npy", vol)
    args = ["denoise", str(tmp_path / "vol.npy"), "--num-iter", "2"]
    assert main([*args, "-o", str(tmp_path / "fresh.zarr")]) == 0
    assert main([*args, "-o", str(tmp_path / "ref.npy")]) == 0
    np.testing.assert_array_equal(pio.read_scan(tmp_path / "fresh.zarr").data, np.load(tmp_path / "ref.npy"))
    assert main([*args, "-o", str(tmp_path / "fresh.zarr"), "--force"]) == 0  # a previous store is replaced
    other = tmp_path / "other.zarr"
    other.mkdir()
    (other / "thesis.txt").write_text("keep me")
    capsys.readouterr()
    for force in (["--force"], []):  # without --force too: the refusal does not suggest it
        assert main([*args, "-o", str(other), *force]) == 2
        cap = capsys.readouterr()
        assert f"OUTPUT {other} is a folder that is not a Zarr store" in cap.err and "denoised" not in cap.out
    assert (other / "thesis.txt").read_text() == "keep me"
    assert leftovers(tmp_path) == []


def _imagej_stack(path, **metadata):
    tifffile = pytest.importorskip("tifffile")
    v = (np.random.default_rng(5).random((24, 64, 64)) * 1000).astype(np.uint16)
    tifffile.imwrite(path, v, imagej=True, metadata={"axes": "ZYX", **metadata})
    return v


@pytest.mark.parametrize("axes", [{"axes": "ZYX"}, {}])
def test_truncated_tiff_stacks_are_refused(tmp_path, axes):
    tifffile = pytest.importorskip("tifffile")
    v = (np.random.default_rng(5).random((24, 64, 64)) * 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "st.tif", v, imagej=True, metadata=axes)
    (tmp_path / "tr.tif").write_bytes((tmp_path / "st.tif").read_bytes()[:100000])
    with pytest.raises(pio.ScanIOError, match="ImageJ metadata says 24 images but 1 could be read: truncated"):
        pio.read_scan(tmp_path / "tr.tif")
    mask = np.random.default_rng(6).random((5, 33, 35)) > 0.5  # tifffile's JSON shape, 1-bit pages
    tifffile.imwrite(tmp_path / "m.tif", mask)
    (tmp_path / "mt.tif").write_bytes((tmp_path / "m.tif").read_bytes()[:500])
    with pytest.raises(pio.ScanIOError, match=r"says shape \(5, 33, 35\) but only \(33, 35\).*truncated"):
        pio.read_scan(tmp_path / "mt.tif")
    with tifffile.TiffWriter(tmp_path / "pages.tif") as tw:  # plain pages, no metadata: the broken chain tells
        for plane in v:
            tw.write(plane, contiguous=False, metadata=None)
    np.testing.assert_array_equal(pio.read_scan(tmp_path / "pages.tif").data, v)
    (tmp_path / "pt.tif").write_bytes((tmp_path / "pages.tif").read_bytes()[:100000])
    with pytest.raises(pio.ScanIOError, match=r"invalid page offset \d+ \(the file holds 100000 bytes\): truncated"):
        pio.read_scan(tmp_path / "pt.tif")


def test_one_bit_tiff_is_read_as_bool_and_refused_as_a_pixel_type(tmp_path, capsys):
    tifffile = pytest.importorskip("tifffile")
    v = (np.random.default_rng(5).random((24, 64, 64)) * 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "b.tif", v > 500)
    got = pio.read_scan(tmp_path / "b.tif").data
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, v > 500)
    np.save(tmp_path / "b.npy", v > 500)
    for name in ("b.tif", "b.npy"):
        assert main(["denoise", str(tmp_path / name), "-o", str(tmp_path / "o.npy")]) == 2
        assert f"{name}: unsupported pixel type bool (1-bit); expected integer or float" in capsys.readouterr().err


def test_invalid_spacing_in_a_file_is_ignored_naming_the_file_and_field(tmp_path, capsys):
    nib = pytest.importorskip("nibabel")
    img = np.random.default_rng(7).random((16, 16)).astype(np.float32)
    np.savez(tmp_path / "sp.npz", image=img, spacing=np.array([-1.0, np.nan]))
    scan = pio.read_scan(tmp_path / "sp.npz")
    assert scan.spacing is None and "sp.npz" in scan.notes[0] and "array 'spacing'" in scan.notes[0]
    nimg = nib.Nifti1Image(img, np.eye(4))
    nimg.header["pixdim"][1:3] = [np.nan, 2.0]
    nib.save(nimg, tmp_path / "pd.nii")
    scan = pio.read_scan(tmp_path / "pd.nii")
    assert scan.spacing is None and "pd.nii" in scan.notes[0] and "pixdim" in scan.notes[0]
    for z in (0.0, -2.0, float("nan")):
        _imagej_stack(tmp_path / "ij.tif", spacing=z, unit="um")
        scan = pio.read_scan(tmp_path / "ij.tif")
        assert scan.spacing is None and "ij.tif" in scan.notes[0] and "'spacing'" in scan.notes[0], z
    _imagej_stack(tmp_path / "ok.tif", spacing=2.0, unit="um")
    assert pio.read_scan(tmp_path / "ok.tif").spacing[0] == pytest.approx(2e-3)
    for name in ("sp.npz", "pd.nii"):
        assert main(["denoise", str(tmp_path / name), "-o", str(tmp_path / f"{name}.npy"), "--num-iter", "1"]) == 0
        cap = capsys.readouterr()
        assert f"note: {name}: the voxel spacing" in cap.out and "spacing 1 x 1" in cap.out
        assert "--spacing" not in cap.out + cap.err


def test_npz_layout_fields_are_checked(tmp_path, capsys):
    img = np.random.default_rng(8).random((64, 64))
    np.savez(tmp_path / "ch.npz", image=img, channel_axis=np.array(99))
    with pytest.raises(pio.ScanIOError, match=r"channel_axis 99 is out of range for its image of shape \(64, 64\)"):
        pio.read_scan(tmp_path / "ch.npz")
    np.savez(tmp_path / "ab.npz", a=img, b=img)
    with pytest.raises(pio.ScanIOError, match=r"several arrays \(a, b\) and none is named 'image'"):
        pio.read_scan(tmp_path / "ab.npz")
    np.savez(tmp_path / "one.npz", a=img, spacing=np.array([1.0, 2.0]))  # one array: still read
    assert pio.read_scan(tmp_path / "one.npz").spacing == (1.0, 2.0)
    assert main(["denoise", str(tmp_path / "ch.npz"), "-o", str(tmp_path / "o.npy")]) == 2
    assert "channel_axis 99 is out of range" in capsys.readouterr().err


def test_cli_wording(tmp_path, capsys):
    nib = pytest.importorskip("nibabel")
    img = (np.random.default_rng(9).random((16, 16)) * 200).astype(np.uint8)
    pio.write_scan(tmp_path / "x.png", img)
    assert main(["denoise", str(tmp_path / "x.png"), "-o", str(tmp_path / "o.jpg"), "--dtype", "uint16"]) == 2
    err = capsys.readouterr().err
    assert "choose --dtype uint8 (add --rescale" in err and "or uint16" not in err
    vol = np.random.default_rng(9).random((4, 8, 8)).astype(np.float32)
    nimg = nib.Nifti1Image(vol, np.diag([1.0, 1.0, 2.0, 1.0]))  # no xyzt_units: "unknown"
    nib.save(nimg, tmp_path / "u.nii")
    assert main(["denoise", str(tmp_path / "u.nii"), "-o", str(tmp_path / "u.npy"), "--num-iter", "1"]) == 0
    assert "spacing 1 x 1 x 2 (unit unknown)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["denoise", str(tmp_path / "u.nii"), "-o", str(tmp_path / "v.npy"), "--dtyp", "uint8"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("pdediff denoise: error: unrecognized arguments: --dtyp uint8")
    assert "see pdediff denoise --help" in err and len(err.strip().splitlines()) == 1
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    with pytest.raises(pio.ScanIOError, match=r"no DICOM images among its 1 file$"):
        pio.read_scan(folder)


# ----------------------------------------------------------------------------- fresh-eyes round 2
def test_a_fifo_input_or_mask_is_refused_before_opening(tmp_path, capsys):
    fifo = _fifo(tmp_path, "fifo.npy")
    with pytest.raises(pio.ScanIOError, match=r"fifo.npy is a FIFO \(named pipe\), not a regular file"):
        pio.read_scan(fifo)
    pytest.importorskip("dask")
    with pytest.raises(pio.ScanIOError, match="is a FIFO"):
        pio.open_chunked(fifo)
    assert main(["denoise", str(fifo), "-o", str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr().err
    assert "is a FIFO (named pipe), not a regular file" in err and len(err.strip().splitlines()) == 1
    img = (np.random.default_rng(1).random((16, 16)) * 200).astype(np.uint8)
    pio.write_scan(tmp_path / "cam.png", img)
    mask = _fifo(tmp_path, "fifo.png")
    assert main(["inpaint", str(tmp_path / "cam.png"), "--mask", str(mask), "-o", str(tmp_path / "o.png")]) == 2
    assert "fifo.png is a FIFO" in capsys.readouterr().err
    (tmp_path / "d.npy").mkdir()
    with pytest.raises(pio.ScanIOError, match=r"d.npy is a folder, not a NumPy .npy file"):
        pio.read_scan(tmp_path / "d.npy")
    os.symlink(fifo, tmp_path / "link.npy")
    with pytest.raises(pio.ScanIOError, match=r"link.npy \(a symbolic link to .*fifo.npy\) is a FIFO"):
        pio.read_scan(tmp_path / "link.npy")


@pytest.mark.parametrize("slope", [1e38, -1e38])
def test_integer_nifti_output_of_values_beyond_float32_is_refused_before_computing(tmp_path, capsys, slope):
    nib = pytest.importorskip("nibabel")
    a = (np.random.default_rng(2).random((16, 16)) * 100 + 1).astype(np.int16)
    img = nib.Nifti1Image(a, np.eye(4))
    img.header.set_slope_inter(slope, 0)
    nib.save(img, tmp_path / "big.nii")
    for dtype in ("input", "int16"):
        assert main(["denoise", str(tmp_path / "big.nii"), "-o", str(tmp_path / "o.nii"), "--dtype", dtype]) == 2
        err = capsys.readouterr().err
        assert "NIfTI cannot store them as int16" in err and "--rescale or choose --dtype float64" in err
        assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o.nii").exists()
    # the library's writer: one ScanIOError, never nibabel's ScalingError
    with pytest.raises(pio.ScanIOError, match="cannot be stored as int16 NIfTI"):
        pio.write_scan(tmp_path / "w.nii", a * slope, stored_dtype=np.int16)
    assert main(["denoise", str(tmp_path / "big.nii"), "-o", str(tmp_path / "o.nii"), "--num-iter", "1"]) == 0
    assert pio.read_scan(tmp_path / "o.nii").data.dtype == np.float64


def test_nii_gz_header_records_no_temporary_name(tmp_path):
    pytest.importorskip("nibabel")
    pio.write_scan(tmp_path / "a.Nii.Gz", np.ones((4, 4), np.float32))
    head = (tmp_path / "a.Nii.Gz").read_bytes()
    assert head[:2] == b"\x1f\x8b" and not head[3] & 0x08  # FNAME flag clear: no (temporary) name stored
    assert b"tmp" not in head[:200]
    assert pio.read_scan(tmp_path / "a.Nii.Gz").data.shape == (4, 4)


def _ct_small(tmp_path, name, **tags):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.save_as(tmp_path / name)
    return tmp_path / name


def test_dicom_rescale_slope_beyond_float32_is_read_as_float64_and_invalid_slopes_refused(tmp_path, capsys):
    ref = pio.read_scan(_ct_small(tmp_path, "ref.dcm"))
    big = pio.read_scan(_ct_small(tmp_path, "big.dcm", RescaleSlope=1e38))
    assert big.data.dtype == np.float64 and np.isfinite(big.data).all()
    raw = (ref.data.astype(np.float64) + 1024)  # CT_small: slope 1, intercept -1024
    np.testing.assert_allclose(big.data, raw * 1e38 - 1024, rtol=1e-12)
    assert pio.read_scan(_ct_small(tmp_path, "small.dcm", RescaleSlope=2)).data.dtype == np.float32
    assert main(["denoise", str(tmp_path / "big.dcm"), "-o", str(tmp_path / "o.npy"), "--num-iter", "1"]) == 0
    assert np.isfinite(np.load(tmp_path / "o.npy")).all()
    capsys.readouterr()
    for name, value in (("nan.dcm", "NaN"), ("zero.dcm", 0), ("inf.dcm", "inf")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns that NaN/inf are no valid DS, and writes them
            _ct_small(tmp_path, name, RescaleSlope=value)
    for name in ("nan.dcm", "zero.dcm", "inf.dcm"):
        with pytest.raises(pio.ScanIOError, match=rf"{name}: its RescaleSlope \(.*\) is not a finite non-zero"):
            pio.read_scan(tmp_path / name)
    assert main(["denoise", str(tmp_path / "zero.dcm"), "-o", str(tmp_path / "z.npy")]) == 2
    assert "zero.dcm: its RescaleSlope (0" in capsys.readouterr().err


def test_dicom_zero_pixel_spacing_is_unknown_with_a_note_and_writes_nifti(tmp_path, capsys):
    pytest.importorskip("nibabel")
    scan = pio.read_scan(_ct_small(tmp_path, "ps0.dcm", PixelSpacing=[0, 0]))
    assert scan.spacing is None and "ps0.dcm" in scan.notes[-1] and "PixelSpacing" in scan.notes[-1]
    assert scan.meta["affine"] is None
    assert main(["denoise", str(tmp_path / "ps0.dcm"), "-o", str(tmp_path / "x.nii"), "--num-iter", "1"]) == 0
    assert "note: ps0.dcm: the voxel spacing (0, 0)" in capsys.readouterr().out
    assert pio.read_scan(tmp_path / "x.nii").data.shape == (128, 128)


def test_npz_spacing_of_the_wrong_length_is_the_file_s_not_the_flag_s(tmp_path, capsys):
    img = np.random.default_rng(3).random((16, 16))
    for k, sp in enumerate(([1.0, 2.0, 3.0], np.ones((2, 2)))):
        np.savez(tmp_path / f"s{k}.npz", image=img, spacing=np.asarray(sp))
        scan = pio.read_scan(tmp_path / f"s{k}.npz")
        assert scan.spacing is None and f"s{k}.npz" in scan.notes[0] and "array 'spacing'" in scan.notes[0]
        assert "for 2 spatial axes" in scan.notes[0]
        assert main(["denoise", str(tmp_path / f"s{k}.npz"), "-o", str(tmp_path / "o.npy"), "--num-iter", "1",
                     "--force"]) == 0
        cap = capsys.readouterr()
        assert f"note: s{k}.npz: the voxel spacing" in cap.out and "--spacing" not in cap.out + cap.err


@pytest.mark.parametrize("value, match", [
    (-1, r"channel_axis -1 on a 2-D image of shape \(16, 16\) is ambiguous"),
    (2.5, r"channel_axis \(2.5, float64\) is not an integer scalar"),
    ([0, 2], r"channel_axis \(\[0, 2\], int64\) is not an integer scalar"),
    ("x", r"channel_axis \('x', <U1\) is not an integer scalar"),
    (np.nan, r"channel_axis \(nan, float64\) is not an integer scalar"),
    (True, r"channel_axis \(True, bool\) is not an integer scalar"),
])
def test_npz_channel_axis_must_be_an_integer_naming_an_axis(tmp_path, capsys, value, match):
    np.savez(tmp_path / "c.npz", image=np.random.default_rng(4).random((16, 16)), channel_axis=np.asarray(value))
    with pytest.raises(pio.ScanIOError, match="c.npz: its " + match):
        pio.read_scan(tmp_path / "c.npz")
    assert main(["denoise", str(tmp_path / "c.npz"), "-o", str(tmp_path / "o.npy")]) == 2
    err = capsys.readouterr().err
    assert "c.npz: its channel_axis" in err and len(err.strip().splitlines()) == 1


def test_npz_channel_axis_accepted_where_it_is_clear(tmp_path):
    rng = np.random.default_rng(5)
    np.savez(tmp_path / "a.npz", image=rng.random((16, 3)), channel_axis=np.asarray(-1))  # 1-D RGB signal
    assert pio.read_scan(tmp_path / "a.npz").channel_axis == -1
    np.savez(tmp_path / "b.npz", image=rng.random((16, 16)), channel_axis=np.asarray(1, np.uint8))
    assert pio.read_scan(tmp_path / "b.npz").channel_axis == 1
    pio.write_scan(tmp_path / "c.npz", rng.random((8, 8, 3)), channel_axis=-1)
    assert pio.read_scan(tmp_path / "c.npz").channel_axis == -1


def test_tiff_pages_of_different_shapes_are_refused(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    with tifffile.TiffWriter(tmp_path / "m.tif") as w:
        w.write(np.zeros((16, 16), np.uint8))
        w.write(np.zeros((8, 8), np.uint8))
    with pytest.raises(pio.ScanIOError, match=r"m.tif: holds 2 images of different shapes \(\(16, 16\), \(8, 8\)\)"):
        pio.read_scan(tmp_path / "m.tif")
    with tifffile.TiffWriter(tmp_path / "s.tif") as w:  # equal plain pages: one stack, as before
        for _ in range(3):
            w.write(np.zeros((8, 8), np.uint8), metadata=None)
    assert pio.read_scan(tmp_path / "s.tif").data.shape == (3, 8, 8)
    with tifffile.TiffWriter(tmp_path / "d.tif") as w:  # each page described as its own image
        for _ in range(2):
            w.write(np.zeros((8, 8), np.uint8), contiguous=False)
    with pytest.raises(pio.ScanIOError, match=r"d.tif: holds 2 separate images \(\(8, 8\), \(8, 8\)\)"):
        pio.read_scan(tmp_path / "d.tif")


def test_ome_tiff_physical_sizes_are_read_in_mm(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    meta = {"axes": "ZYX", "PhysicalSizeX": 0.5, "PhysicalSizeXUnit": "\u00b5m", "PhysicalSizeY": 0.25,
            "PhysicalSizeZ": 2.0, "PhysicalSizeZUnit": "nm"}  # Y without a unit: OME's default, µm
    tifffile.imwrite(tmp_path / "o.ome.tif", np.zeros((4, 16, 16), np.uint16), ome=True, metadata=meta)
    assert pio.read_scan(tmp_path / "o.ome.tif").spacing == pytest.approx((2e-6, 2.5e-4, 5e-4), rel=1e-12)
    meta2 = {"axes": "YX", "PhysicalSizeX": 3.0, "PhysicalSizeXUnit": "mm", "PhysicalSizeY": 1.5,
             "PhysicalSizeYUnit": "mm"}
    tifffile.imwrite(tmp_path / "t.ome.tif", np.zeros((16, 16), np.uint16), ome=True, metadata=meta2)
    assert pio.read_scan(tmp_path / "t.ome.tif").spacing == pytest.approx((1.5, 3.0))


def test_tiff_zero_resolution_is_noted(tmp_path, capsys):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "r0.tif", np.random.default_rng(6).random((16, 16)).astype(np.float32),
                     resolution=(0, 1))
    scan = pio.read_scan(tmp_path / "r0.tif")
    assert scan.spacing is None and "r0.tif" in scan.notes[0] and "XResolution" in scan.notes[0]
    assert main(["denoise", str(tmp_path / "r0.tif"), "-o", str(tmp_path / "o.npy"), "--num-iter", "1"]) == 0
    assert "note: r0.tif: the voxel spacing" in capsys.readouterr().out


@pytest.mark.parametrize("boundary", ["neumann", "periodic", "dirichlet"])
def test_tensor_diffusion_with_a_huge_sigma_or_rho_is_the_fully_smoothed_result(boundary):
    import pdediff

    a = np.random.default_rng(10).random((24, 24))
    for name, kind in (("sigma", "eed"), ("rho", "ced")):
        # a fixed kappa: "auto" would be estimated from the (vanishing) gradient of the smoothed image
        kw = dict(boundary=boundary, num_iter=2, kind=kind, **({"kappa": 0.1} if kind == "eed" else {}))
        huge = pdediff.tensor_diffusion(a, **kw, **{name: 1e300})
        # 90 cells (below the spectral switch at 4 x 24): the sampled kernel path, already at its limit
        ref = pdediff.tensor_diffusion(a, **kw, **{name: 90.0})
        unsmoothed = pdediff.tensor_diffusion(a, **kw, **{name: 0.0})
        assert np.isfinite(huge).all()
        # the smoothed field is flat to rounding in both: its near-degenerate tensor directions differ by ~1e-5
        tol = 1e-4 if boundary != "dirichlet" else 0.05  # zero padding vs Dirichlet heat: both tend to 0
        np.testing.assert_allclose(huge, ref, atol=tol)
        assert np.max(np.abs(huge - unsmoothed)) > 0.1  # the check can tell a smoothed field from none


def test_cli_huge_sigma_or_rho_is_no_numpy_message(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.random.default_rng(11).random((24, 24)))
    for flag in ("--sigma", "--rho"):
        rc = main(["denoise", str(tmp_path / "a.npy"), "-o", str(tmp_path / "o.npy"), "--method", "ced",
                   flag, "1e300", "--num-iter", "2", "--force"])
        cap = capsys.readouterr()
        assert rc == 0, cap.err
        assert "Maximum allowed size" not in cap.err and np.isfinite(np.load(tmp_path / "o.npy")).all()


def test_wording_round_2(tmp_path, capsys):
    import pdediff

    src = _ct_small(tmp_path, "ct.dcm")
    assert main(["denoise", str(src), "-o", str(tmp_path / "x.dcm"), "--rescale", "--num-iter", "1"]) == 0
    out = capsys.readouterr().out
    assert "-> -32768..32767 (int16)" in out
    back = pio.read_scan(tmp_path / "x.dcm")
    assert back.stored_dtype == np.int16 and back.data.min() == -32768 and back.data.max() == 32767
    img = (np.random.default_rng(12).random((16, 16)) * 200).astype(np.uint8)
    pio.write_scan(tmp_path / "cam.png", img)
    pio.write_scan(tmp_path / "m.png", (img > 150).astype(np.uint8))
    base = ["inpaint", str(tmp_path / "cam.png"), "--mask", str(tmp_path / "m.png"), "-o", str(tmp_path / "o.png")]
    assert main(base + ["--seed", "1"]) == 2
    assert "--seed does not apply to --method" in capsys.readouterr().err
    assert main(base + ["--seed", "1", "--threads", "1"]) == 2
    assert "--threads, --seed do not apply to --method" in capsys.readouterr().err
    with pytest.raises(pdediff.ParameterError, match=r"spacing must be a positive number; got \[1, 2\]"):
        pdediff.perona_malik(np.ones(8), spacing=[1, 2])


# ----------------------------------------------------------------------------- fresh-eyes round 3
def test_an_empty_input_or_mask_path_names_no_file(tmp_path, capsys, monkeypatch):
    """``pdediff denoise "" -o out`` read the current folder (Path("") is "."): inside a DICOM series folder it
    "denoised ." silently; ``--mask ""`` likewise."""
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "in.npy", np.ones((8, 8)))
    for args in (["denoise", "", "-o", "out.npy"], ["denoise", "", "-o", "out.nii", "--chunks", "4"],
                 ["inpaint", "in.npy", "--mask", "", "-o", "out.npy"]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "'' names no file (an empty path)" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy"]


def test_chunks_take_an_rgb_array_as_colour_as_in_memory(tmp_path, capsys):
    """``--chunks`` treated an (H, W, 3) .npy as a 3-slice volume while the in-memory path took it as colour
    (results differed by up to 0.49 on [0, 1] data): the same rule and note now, the same result."""
    pytest.importorskip("dask")
    pytest.importorskip("zarr")
    np.save(tmp_path / "rgb.npy", np.random.default_rng(0).random((40, 48, 3)))
    assert main(["denoise", str(tmp_path / "rgb.npy"), "-o", str(tmp_path / "c.zarr"), "--chunks", "16"]) == 0
    assert "as colour channels" in capsys.readouterr().out
    assert main(["denoise", str(tmp_path / "rgb.npy"), "-o", str(tmp_path / "m.npy"), "--quiet"]) == 0
    np.testing.assert_array_equal(pio.read_scan(tmp_path / "c.zarr").data, np.load(tmp_path / "m.npy"))


# ----------------------------------------------------------------------------- fresh-eyes round 4 (Reliability III)
def test_cmyk_jpeg_is_read_as_rgb_with_a_note(tmp_path, capsys):
    """A CMYK JPEG (Pillow writes it Adobe-inverted) was read as RGBA: the inverted inks as colours, K as a 4th
    channel that a PNG output took for alpha."""
    from PIL import Image

    Image.new("RGB", (32, 24), (200, 50, 10)).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    scan = pio.read_scan(tmp_path / "c.jpg")
    assert scan.data.shape == (24, 32, 3) and scan.channel_axis == -1 and not scan.alpha
    assert np.abs(scan.data.astype(int) - [200, 50, 10]).max() <= 3
    assert scan.notes == ["c.jpg: CMYK JPEG read as RGB (converted by Pillow); an output written from it holds "
                          "RGB, not CMYK"]
    assert main(["denoise", str(tmp_path / "c.jpg"), "-o", str(tmp_path / "o.png"), "--num-iter", "1"]) == 0
    assert "note: c.jpg: CMYK JPEG read as RGB" in capsys.readouterr().out
    back = pio.read_scan(tmp_path / "o.png")
    assert back.data.shape == (24, 32, 3) and not back.alpha
    assert np.abs(back.data.astype(int) - [200, 50, 10]).max() <= 3


def test_palette_png_transparency_becomes_alpha(tmp_path):
    """imageio expanded a palette PNG to RGB and dropped its transparency (tRNS): transparent pixels came out
    opaque."""
    from PIL import Image

    idx = np.zeros((16, 24), np.uint8)
    idx[:, 12:] = 1
    im = Image.fromarray(idx, "P")
    im.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    im.save(tmp_path / "t.png", transparency=0)
    scan = pio.read_scan(tmp_path / "t.png")
    assert scan.data.shape == (16, 24, 4) and scan.alpha
    np.testing.assert_array_equal(scan.data[0, 0], [255, 0, 0, 0])
    np.testing.assert_array_equal(scan.data[0, 20], [0, 255, 0, 255])
    assert "palette (P) PNG read as RGBA" in scan.notes[0]
    im.save(tmp_path / "p.png")  # no transparency: RGB
    scan = pio.read_scan(tmp_path / "p.png")
    assert scan.data.shape == (16, 24, 3) and not scan.alpha and "read as RGB" in scan.notes[0]
    Image.fromarray(idx * 200, "L").convert("LA").save(tmp_path / "la.png")
    scan = pio.read_scan(tmp_path / "la.png")
    assert scan.data.shape == (16, 24, 2) and scan.alpha and scan.notes == []


@pytest.mark.parametrize("mode, what", [("CMYK", r"separated inks \(CMYK\)"), ("LAB", r"CIE L\*a\*b\*"),
                                        ("P", "palette colour"), ("YCbCr", "YCbCr")])
def test_tiffs_that_hold_no_grey_or_rgb_samples_are_refused_by_name(tmp_path, mode, what):
    """tifffile hands over the stored samples: a CMYK, Lab, YCbCr or palette TIFF was smoothed and written back
    as if its inks, Lab components or palette indices were RGB or grey levels."""
    from PIL import Image

    Image.new("RGB", (32, 24), (200, 50, 10)).convert(mode).save(tmp_path / "x.tif")
    with pytest.raises(pio.ScanIOError, match=rf"x.tif: TIFF PhotometricInterpretation \d+ holds {what}.*convert it "
                                              "to RGB or grey first"):
        pio.read_scan(tmp_path / "x.tif")


def test_miniswhite_tiff_is_written_back_miniswhite(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    img = np.arange(24 * 32, dtype=np.uint16).reshape(24, 32)
    tifffile.imwrite(tmp_path / "w.tif", img, photometric="miniswhite")
    scan = pio.read_scan(tmp_path / "w.tif")
    np.testing.assert_array_equal(scan.data, img)
    pio.write_scan(tmp_path / "o.tif", scan.data, like=scan)
    with tifffile.TiffFile(tmp_path / "o.tif") as tf:
        assert int(tf.pages[0].photometric) == 0  # the values keep the look they had
    pio.write_scan(tmp_path / "n.tif", scan.data)
    with tifffile.TiffFile(tmp_path / "n.tif") as tf:
        assert int(tf.pages[0].photometric) == 1


def test_rtdose_is_read_and_written_with_dose_grid_scaling(tmp_path, capsys):
    """An RT Dose written by pdediff kept DoseGridScaling (1e-6) and got a RescaleSlope: a viewer's dose (stored x
    DoseGridScaling) reached 4295 instead of 1.13.  Reading ignored DoseGridScaling (stored counts, not Gy)."""
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    src = Path(get_testdata_file("rtdose.dcm"))
    raw = pydicom.dcmread(src)
    dose = raw.pixel_array * float(raw.DoseGridScaling)
    scan = pio.read_scan(src)
    np.testing.assert_allclose(scan.data, dose, rtol=1e-12)
    assert scan.notes == ["RT Dose: doses = stored values x DoseGridScaling (1e-06), in RELATIVE"]
    pio.write_scan(f"{tmp_path}/d/", scan.data * 0.9, like=scan)
    files = sorted((tmp_path / "d").iterdir())
    assert len(files) == 15
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        assert ds.Modality == "RTDOSE" and "RescaleSlope" not in ds and "RescaleIntercept" not in ds
        np.testing.assert_allclose(ds.pixel_array * float(ds.DoseGridScaling), 0.9 * dose[k], atol=1e-6)
    # a result beyond the input's scaling gets its own, per slice
    pio.write_scan(f"{tmp_path}/big/", scan.data * 1e4, like=scan)
    for k, f in enumerate(sorted((tmp_path / "big").iterdir())):
        ds = pydicom.dcmread(f)
        np.testing.assert_allclose(ds.pixel_array * float(ds.DoseGridScaling), 1e4 * dose[k], rtol=1e-8)
    with pytest.raises(pio.ScanIOError, match="an RT Dose stores doses >= 0"):
        pio.write_scan(f"{tmp_path}/neg/", scan.data - 1.0, like=scan)
    shutil.copy(src, tmp_path / "rtdose.dcm")
    assert main(["denoise", str(tmp_path / "rtdose.dcm"), "-o", f"{tmp_path}/out/", "--num-iter", "1"]) == 0
    cap = capsys.readouterr()
    assert "RT Dose: DoseGridScaling per slice" in cap.out and "Warning" not in cap.err
    back = pio.read_scan(tmp_path / "out")
    assert abs(back.data.max() - dose.max()) < 0.05 * dose.max() and back.data.min() >= dose.min() - 1e-9


def test_chunks_name_exactly_the_formats_they_read_and_write(tmp_path, capsys):
    """``--chunks`` with .nii.gz: the refusal listed .nii.gz among the chunked formats (the registry's NIfTI
    suffixes) and then refused it."""
    nib = pytest.importorskip("nibabel")
    pytest.importorskip("dask")
    vol = np.random.default_rng(1).random((12, 12, 12)).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "x.nii.gz")
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "x.nii")
    what = ("with --chunks, INPUT is .npy, .zarr or uncompressed .nii and OUTPUT .zarr or uncompressed .nii (written "
            "chunk by chunk); got ")
    for src, dst, tail in [
        ("x.nii.gz", "y.nii.gz", "INPUT x.nii.gz: decompress it (gunzip x.nii.gz) or drop --chunks"),
        ("x.nii", "y.nii.gz", "OUTPUT y.nii.gz: write y.nii or y.zarr (gzip it afterwards), or drop --chunks"),
        ("x.nii", "y.tif", "OUTPUT y.tif: write y.nii or y.zarr, or drop --chunks"),
    ]:
        assert main(["denoise", str(tmp_path / src), "-o", str(tmp_path / dst), "--chunks", "8"]) == 2
        err = capsys.readouterr().err
        assert err == f"pdediff denoise: error: {what}{tail}\n"
    with pytest.raises(pio.ScanIOError) as exc:
        pio.open_chunked(tmp_path / "x.nii.gz")
    assert "(gunzip)" in str(exc.value)
    pio.write_scan(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(pio.ScanIOError, match=r"chunked reading supports .nii, .npy, .zarr \(uncompressed\); got a "
                                              "PNG file"):
        pio.open_chunked(tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"chunked output is written as .nii, .zarr \(uncompressed\); got a TIFF"):
        pio.write_chunked(tmp_path / "o.tif", None)
    assert ".nii.gz" not in (pio._chunked._names("open_chunked") + pio._chunked._names("write_chunked"))


def test_a_channel_axis_that_makes_a_2d_image_into_1d_signals_is_refused(tmp_path, capsys):
    """``--channel-axis 0`` (or -1) on camera.png smoothed its 512 rows as 512 separate 1-D signals, silently."""
    img = (np.random.default_rng(2).random((32, 40)) * 255).astype(np.uint8)
    pio.write_scan(tmp_path / "cam.png", img)
    np.save(tmp_path / "sig8.npy", np.random.default_rng(2).random((8, 40)))
    np.save(tmp_path / "sig3.npy", np.random.default_rng(2).random((40, 3)))
    tail = "use --channel-axis auto (the default) or none (for stacks of 1-D signals, the Python API's channel_axis)\n"
    for ax, n, what in (("0", 32, "rows"), ("-1", 40, "columns"), ("1", 40, "columns")):
        for extra in ([], ["--chunks", "8"]) if ax == "0" else ([],):
            out = "o.zarr" if extra else "o.npy"
            assert main(["denoise", str(tmp_path / "cam.png"), "-o", str(tmp_path / out), "--channel-axis", ax]) == 2
            assert capsys.readouterr().err == (
                f"pdediff denoise: error: --channel-axis {ax}: cam.png (shape (32, 40)) is a 2-D grey image; this "
                f"axis would smooth its {n} {what} as {n} separate 1-D signals: {tail}")
    assert main(["inpaint", str(tmp_path / "cam.png"), "--mask", str(tmp_path / "cam.png"), "-o",
                 str(tmp_path / "i.npy"), "--channel-axis", "0"]) == 2
    assert "cam.png (shape (32, 40)) is a 2-D grey image" in capsys.readouterr().err
    assert main(["denoise", str(tmp_path / "sig8.npy"), "-o", str(tmp_path / "o.npy"), "--channel-axis", "0"]) == 2
    assert ("sig8.npy (shape (8, 40)) is 2-D, and a 2-D INPUT's channel axis holds at most 4 colour/alpha values; "
            "this axis would smooth its 8 rows") in capsys.readouterr().err
    # three values per row: an RGB line, as the API takes it
    assert main(["denoise", str(tmp_path / "sig3.npy"), "-o", str(tmp_path / "o.npy"), "--channel-axis", "-1",
                 "--quiet", "--num-iter", "2"]) == 0
    import pdediff

    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"),
                                  pdediff.perona_malik(np.load(tmp_path / "sig3.npy"), channel_axis=-1, num_iter=2))
    assert not (tmp_path / "o.zarr").exists() and not (tmp_path / "i.npy").exists()


def test_an_ignored_invalid_spacing_is_never_copied_to_an_output(tmp_path, capsys):
    """The reader ignored an invalid spacing with a note, but a DICOM output kept PixelSpacing 0 and a NIfTI one
    pixdim NaN (copied headers), while an .npz recorded the 1 x 1 used without saying so.  One rule now: OUTPUT
    records the spacing used (the writers' ``spacing``), never the invalid field, and the report says so."""
    pydicom = pytest.importorskip("pydicom")
    nib = pytest.importorskip("nibabel")
    src = _ct_small(tmp_path, "ps0.dcm", PixelSpacing=[0, 0])
    scan = pio.read_scan(src)
    assert scan.spacing is None and scan.meta["ignored_spacing"] == (0.0, 0.0)
    pio.write_scan(tmp_path / "a.dcm", scan.data, like=scan, spacing=(0.5, 0.25))
    assert [float(v) for v in pydicom.dcmread(tmp_path / "a.dcm").PixelSpacing] == [0.5, 0.25]
    pio.write_scan(tmp_path / "b.dcm", scan.data, like=scan)
    assert [float(v) for v in pydicom.dcmread(tmp_path / "b.dcm").PixelSpacing] == [1.0, 1.0]
    img = np.random.default_rng(4).random((16, 16)).astype(np.float32)
    nimg = nib.Nifti1Image(img, np.eye(4))
    nimg.header["pixdim"][1:3] = [np.nan, 2.0]
    nib.save(nimg, tmp_path / "pd.nii")
    nscan = pio.read_scan(tmp_path / "pd.nii")
    pio.write_scan(tmp_path / "c.nii", nscan.data, like=nscan, spacing=(3.0, 2.0))
    assert nib.load(tmp_path / "c.nii").header.get_zooms() == (3.0, 2.0)
    pio.write_scan(tmp_path / "d.mgz", nscan.data, like=nscan)
    assert all(np.isfinite(nib.load(tmp_path / "d.mgz").header.get_zooms()))
    np.savez(tmp_path / "sp.npz", image=img, spacing=np.array([0.0, 1.0]))
    cases = [("ps0.dcm", "o.dcm", "OUTPUT records spacing 1 x 1, the spacing used (INPUT's 0, 0 not copied)"),
             ("pd.nii", "o.nii", "OUTPUT records spacing 1 x 1, the spacing used (INPUT's nan, 2 not copied)"),
             ("sp.npz", "o.npz", "OUTPUT records spacing 1 x 1, the spacing used (INPUT's 0, 1 not copied)"),
             ("sp.npz", "o.npy", "OUTPUT records no spacing (the result was computed with spacing 1 x 1; INPUT's 0, "
                                 "1 not copied)")]
    for name, out, note in cases:
        assert main(["denoise", str(tmp_path / name), "-o", str(tmp_path / out), "--num-iter", "1"]) == 0
        assert f"  note: {note}\n" in capsys.readouterr().out
    assert [float(v) for v in pydicom.dcmread(tmp_path / "o.dcm").PixelSpacing] == [1.0, 1.0]
    assert nib.load(tmp_path / "o.nii").header.get_zooms() == (1.0, 1.0)
    np.testing.assert_array_equal(np.load(tmp_path / "o.npz")["spacing"], [1.0, 1.0])
    assert main(["denoise", str(tmp_path / "sp.npz"), "-o", str(tmp_path / "v.npz"), "--num-iter", "1",
                 "--spacing", "2", "3"]) == 0  # a spacing given: recorded
    assert "note: OUTPUT records spacing 2 x 3, the spacing used (INPUT's 0, 1 not copied)" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(tmp_path / "v.npz")["spacing"], [2.0, 3.0])


def test_report_numbers_have_no_exponent_percent_minus_zero_or_empty_range():
    from pdediff.cli._images import number, percent, value_range

    assert percent(255, 256) == "99.6 %" and percent(256, 256) == "100 %" and percent(0, 9) == "0 %"
    assert percent(99999, 100000) == "99.9 %" and percent(1, 3) == "33.3 %" and percent(1, 256) == "0.39 %"
    assert percent(1, 10**6) == "< 0.01 %"
    assert number(-0.0) == "0" and number(-0.0, "g") == "0" and number(-1.5) == "-1.5"
    assert value_range(0.0, -0.0) == "constant 0" and value_range(-0.0, 255.0) == "0..255"
    with pytest.raises(ValueError, match=r"values are constant 300, outside uint8's range"):
        pio.cast_like(np.full(4, 300.0), np.uint8)
    with pytest.raises(ValueError, match=r"values span 0\.\.300, outside uint8's range"):
        pio.cast_like(np.array([-0.2, 300.0]), np.uint8)


def test_cli_wording_round_4(tmp_path, capsys):
    """1e+02 %, rescaled 0..0, a file called a folder, a MASK named through another path, a chunked report
    without its unit, and a NIfTI pair called Analyze."""
    nib = pytest.importorskip("nibabel")
    rng = np.random.default_rng(6)
    np.save(tmp_path / "img.npy", rng.random((16, 16)))
    m = np.ones((16, 16), bool)
    m[0, 0] = False
    np.save(tmp_path / "most.npy", m)
    assert main(["inpaint", str(tmp_path / "img.npy"), "--mask", str(tmp_path / "most.npy"), "-o",
                 str(tmp_path / "i.npy")]) == 0
    assert "filled 255 pixels (99.6 %)" in capsys.readouterr().out
    np.save(tmp_path / "zero.npy", np.zeros((16, 16)))
    assert main(["denoise", str(tmp_path / "zero.npy"), "-o", str(tmp_path / "z.png"), "--rescale",
                 "--num-iter", "1"]) == 0
    assert "  rescaled constant 0 -> constant 0 (uint8)\n" in capsys.readouterr().out
    pio.write_scan(tmp_path / "cam.png", (rng.random((16, 16)) * 255).astype(np.uint8))
    assert main(["denoise", str(tmp_path / "img.npy"), "-o", str(tmp_path / "cam.png" / "o.npy")]) == 2
    assert capsys.readouterr().err == (f"pdediff denoise: error: OUTPUT {tmp_path / 'cam.png' / 'o.npy'}: "
                                       f"{tmp_path / 'cam.png'} is a file, not a folder\n")
    with pytest.raises(pio.ScanIOError, match=r"cam.png is a file, not a folder$"):
        pio.write_scan(tmp_path / "cam.png" / "x.npy", np.ones(3))
    os.symlink("img.npy", tmp_path / "link.npy")
    os.symlink("o.npy", tmp_path / "olink.npy")
    assert main(["inpaint", str(tmp_path / "img.npy"), "--mask", str(tmp_path / "link.npy"), "-o",
                 str(tmp_path / "o.npy")]) == 2
    assert capsys.readouterr().err == (f"pdediff inpaint: error: --mask {tmp_path / 'link.npy'} is INPUT "
                                       f"{tmp_path / 'img.npy'} ({tmp_path / 'link.npy'} is a symbolic link to "
                                       "img.npy); give the mask as a separate file\n")
    np.save(tmp_path / "o.npy", m)
    assert main(["inpaint", str(tmp_path / "img.npy"), "--mask", str(tmp_path / "olink.npy"), "-o",
                 str(tmp_path / "o.npy"), "--force"]) == 2
    assert capsys.readouterr().err == (f"pdediff inpaint: error: OUTPUT {tmp_path / 'o.npy'} is the MASK "
                                       f"{tmp_path / 'olink.npy'} ({tmp_path / 'olink.npy'} is a symbolic link to "
                                       "o.npy); pdediff never overwrites its input\n")
    vol = rng.random((12, 12, 12)).astype(np.float32)
    nimg = nib.Nifti1Image(vol, np.diag([2.0, 2.0, 3.0, 1.0]))
    nimg.header.set_xyzt_units("mm")
    nib.save(nimg, tmp_path / "v.nii")
    pytest.importorskip("dask")
    assert main(["denoise", str(tmp_path / "v.nii"), "-o", str(tmp_path / "c.nii"), "--chunks", "8",
                 "--num-iter", "1"]) == 0
    out = capsys.readouterr().out
    assert "(in chunks of 8 voxels per axis)" in out and "spacing 2 x 2 x 3 mm\n" in out
    nib.save(nib.Nifti1Pair(vol, np.eye(4)), tmp_path / "pair.hdr")
    nib.save(nib.AnalyzeImage(vol, np.eye(4)), tmp_path / "ana.hdr")
    assert pio.read_scan(tmp_path / "pair.hdr").meta["pair"] == "NIfTI-1 pair"
    assert pio.read_scan(tmp_path / "ana.hdr").meta["pair"] == "Analyze 7.5"
    assert main(["denoise", str(tmp_path / "pair.hdr"), "-o", str(tmp_path / "p.hdr")]) == 2
    assert "p.hdr: writing .hdr/.img pairs (NIfTI or Analyze 7.5) is not supported; write .nii" in \
        capsys.readouterr().err


# ----------------------------------------------------------------------------- Reliability III: spacing, headers
def _anatomical():
    pytest.importorskip("nibabel")
    from nibabel.testing import data_path

    return pio.read_scan(Path(data_path) / "anatomical.nii")


def _series_with_positions(folder, n=4, dz=2.5):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    folder.mkdir()
    src = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ipp = np.array([float(v) for v in src.ImagePositionPatient])
    iop = np.array([float(v) for v in src.ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    uid = generate_uid()
    for k in range(n):
        ds = src.copy()
        ds.SeriesInstanceUID, ds.SOPInstanceUID, ds.InstanceNumber = uid, generate_uid(), k + 1
        ds.ImagePositionPatient = [f"{v:.4f}" for v in ipp + k * dz * normal]
        ds.SliceThickness = dz
        ds.save_as(folder / f"{k:03d}.dcm")
    return folder


@pytest.mark.parametrize("name", ["o.nii", "o.nii.gz", "o.mgz"])
def test_a_given_spacing_is_recorded_in_nibabel_outputs_keeping_orientation(tmp_path, name):
    scan = _anatomical()
    assert scan.spacing == (2.0, 2.0, 2.0)
    pio.write_scan(tmp_path / name, scan.data, like=scan, spacing=(1, 2, 3))
    back = pio.read_scan(tmp_path / name)
    assert back.spacing == (1.0, 2.0, 3.0)
    a0, a1 = scan.meta["affine"], back.meta["affine"]
    np.testing.assert_allclose(a1[:3, :3], a0[:3, :3] * np.array([0.5, 1.0, 1.5]))  # columns scaled, signs kept
    np.testing.assert_allclose(a1[:3, 3], a0[:3, 3])
    pio.write_scan(tmp_path / ("same" + name[1:]), scan.data, like=scan)  # no spacing given: the input's
    assert pio.read_scan(tmp_path / ("same" + name[1:])).spacing == (2.0, 2.0, 2.0)


def test_a_given_spacing_is_recorded_in_chunked_nifti(tmp_path):
    da = pytest.importorskip("dask.array")
    scan = _anatomical()
    pio.write_chunked(tmp_path / "c.nii", da.from_array(scan.data.astype(np.float32), chunks=16), like=scan,
                      spacing=(1, 2, 3))
    assert pio.read_scan(tmp_path / "c.nii").spacing == (1.0, 2.0, 3.0)


def test_cli_spacing_override_reaches_the_nifti_output_with_chunks(tmp_path, capsys):
    pytest.importorskip("dask")
    from nibabel.testing import data_path

    src = Path(data_path) / "anatomical.nii"
    assert main(["denoise", str(src), "-o", str(tmp_path / "c.nii"), "--spacing", "1", "2", "3", "--chunks", "16",
                 "--num-iter", "1"]) == 0
    assert "spacing 1 x 2 x 3" in capsys.readouterr().out
    assert pio.read_scan(tmp_path / "c.nii").spacing == (1.0, 2.0, 3.0)


def test_a_given_spacing_is_recorded_in_dicom_files_and_series(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    ct = pio.read_scan(get_testdata_file("CT_small.dcm"))
    pio.write_scan(tmp_path / "o.dcm", ct.data, like=ct, spacing=(3, 4))
    assert pio.read_scan(tmp_path / "o.dcm").spacing == (3.0, 4.0)
    series = pio.read_scan(_series_with_positions(tmp_path / "in"))
    assert series.spacing[0] == 2.5
    pio.write_scan(tmp_path / "out", series.data, like=series, spacing=(1, 2, 3), format="dicom")
    back = pio.read_scan(tmp_path / "out")
    assert back.spacing == (1.0, 2.0, 3.0)
    files = sorted((tmp_path / "out").iterdir())
    first, second = (pydicom.dcmread(f) for f in files[:2])
    assert [float(v) for v in first.PixelSpacing] == [2.0, 3.0]
    assert float(first.SliceThickness) == 1.0 and float(first.SpacingBetweenSlices) == 1.0
    iop = np.array([float(v) for v in first.ImageOrientationPatient])
    step = np.array([float(v) for v in second.ImagePositionPatient]) - \
        np.array([float(v) for v in first.ImagePositionPatient])
    np.testing.assert_allclose(step, np.cross(iop[:3], iop[3:]) * np.sign(step @ np.cross(iop[:3], iop[3:])),
                               atol=1e-3)  # one unit along the slice normal
    nii = tmp_path / "s.nii"
    pio.write_scan(nii, series.data, like=series, spacing=(1, 2, 3))  # DICOM (z, y, x) -> NIfTI (x, y, z)
    assert pio.read_scan(nii).spacing == (3.0, 2.0, 1.0)


@pytest.mark.parametrize("name, shape, ch, spacing, match", [
    ("a.npz", (4, 5), None, (np.nan, 1.0), "positive finite"),
    ("a.zarr", (4, 5), None, (-1.0, 1.0), "positive finite"),
    ("a.mgz", (4, 5, 3), None, (1.0, 0.0, 1.0), "positive finite"),
    ("a.dcm", (4, 5), None, (0.0, 1.0), "positive finite"),
    ("a.nii", (4, 5, 3), None, (1.0, -2.0, np.nan), "positive finite"),
    ("a.tif", (4, 5), None, (np.inf, 1.0), "positive finite"),
    ("a.nii", (4, 5), None, (1.0, 2.0, 3.0), "hold 2 values"),
    ("a.tif", (4, 5, 3), -1, (1.0, 2.0, 3.0), "hold 2 values"),
    ("a.npz", (4, 5, 6), None, (1.0, 2.0), "hold 3 values"),
    ("a.png", (4, 5), None, (1.0,), "hold 2 values"),
])
def test_write_scan_refuses_an_invalid_spacing_before_writing(tmp_path, name, shape, ch, spacing, match):
    from pdediff.errors import ParameterError

    if name.endswith(".zarr"):
        pytest.importorskip("zarr")
    with pytest.raises(ParameterError, match=match) as err:
        pio.write_scan(tmp_path / name, np.zeros(shape, np.uint8), spacing=spacing, channel_axis=ch)
    assert err.value.param == "spacing" and str(err.value).startswith("spacing must")
    assert os.listdir(tmp_path) == []


def test_tiff_records_a_given_spacing(tmp_path):
    pytest.importorskip("tifffile")
    pio.write_scan(tmp_path / "a.tif", np.zeros((4, 5), np.uint8), spacing=(0.5, 0.25))
    np.testing.assert_allclose(pio.read_scan(tmp_path / "a.tif").spacing, (0.5, 0.25))


def _raw_nifti(path, slope=None, inter=None, pixdim=None):
    import struct

    nib = pytest.importorskip("nibabel")
    nib.save(nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.diag([2.0, 2, 2, 1])), path)
    raw = bytearray(Path(path).read_bytes())
    if slope is not None:
        raw[112:120] = struct.pack("<ff", slope, inter)  # scl_slope, scl_inter
    if pixdim is not None:
        raw[80:92] = struct.pack("<fff", *pixdim)  # pixdim[1:4]
    Path(path).write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("slope, inter, field", [(np.inf, 0.0, "scl_slope"), (-np.inf, 0.0, "scl_slope"),
                                                 (2.0, np.inf, "scl_inter")])
def test_nifti_infinite_scaling_is_refused_naming_the_field(tmp_path, slope, inter, field):
    path = _raw_nifti(tmp_path / "s.nii", slope, inter)
    with pytest.raises(pio.ScanIOError, match=rf"s.nii: its {field} \(-?inf\) is not a finite number"):
        pio.read_scan(path)
    pytest.importorskip("dask")
    with pytest.raises(pio.ScanIOError, match=rf"s.nii: its {field} \(-?inf\) is not a finite number"):
        pio.open_chunked(path, 8)


def test_nifti_slope_zero_or_nan_reads_unscaled_as_the_standard_says(tmp_path):
    for slope in (0.0, np.nan):
        scan = pio.read_scan(_raw_nifti(tmp_path / "z.nii", slope, 5.0))
        assert not scan.scaled and scan.data.max() == 23


def test_nifti_invalid_pixdim_is_reported_with_the_file_s_values(tmp_path):
    scan = pio.read_scan(_raw_nifti(tmp_path / "p.nii", pixdim=(0.0, -2.0, np.nan)))
    assert scan.spacing is None and scan.meta["ignored_spacing"][:2] == (0.0, -2.0)
    assert "the voxel spacing (0, -2, nan) from its header field pixdim" in scan.notes[0]


def test_64_bit_integer_limits_are_in_range_and_saturate_exactly():
    u, i = np.iinfo(np.uint64), np.iinfo(np.int64)
    np.testing.assert_array_equal(pio.cast_like(np.array([0.0, 2.0**64]), np.uint64), [0, u.max])
    np.testing.assert_array_equal(pio.cast_like(np.array([-2.0**63, 2.0**63]), np.int64), [i.min, i.max])
    exact = np.array([0, u.max, 2**63 + 1], np.uint64)
    np.testing.assert_array_equal(pio.cast_like(exact, np.uint64), exact)  # integers: no float64 detour
    with pytest.raises(ValueError, match="outside uint64's range"):
        pio.cast_like(np.array([2.0**65]), np.uint64)


@pytest.mark.parametrize("dtype", [np.uint64, np.int64])
def test_cli_64_bit_extremes_round_trip(tmp_path, capsys, dtype):
    info = np.iinfo(dtype)
    np.save(tmp_path / "x.npy", np.array([[info.min, info.max], [5, 2**62]], dtype))
    np.save(tmp_path / "c.npy", np.full((5, 6), info.max, dtype))
    assert main(["denoise", str(tmp_path / "x.npy"), "-o", str(tmp_path / "o.npy"), "--dtype", "input",
                 "--num-iter", "1"]) == 0
    out = np.load(tmp_path / "o.npy")
    assert out.dtype == dtype and out.max() > 2**61  # nothing wrapped round to small values
    assert main(["denoise", str(tmp_path / "c.npy"), "-o", str(tmp_path / "oc.npy"), "--dtype", "input",
                 "--num-iter", "1"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "oc.npy"), np.load(tmp_path / "c.npy"))


def test_inpaint_to_jpeg_notes_that_known_pixels_change(tmp_path, capsys):
    iio = pytest.importorskip("imageio.v3")
    skdata = pytest.importorskip("skimage.data")
    iio.imwrite(tmp_path / "cam.png", skdata.camera()[:48, :48])
    mask = np.zeros((48, 48), np.uint8)
    mask[20:26, 10:30] = 255
    iio.imwrite(tmp_path / "m.png", mask)
    assert main(["inpaint", str(tmp_path / "cam.png"), "--mask", str(tmp_path / "m.png"), "-o",
                 str(tmp_path / "r.jpg")]) == 0
    assert ("note: OUTPUT is JPEG, which is lossy: the pixels written differ from the result, the known pixels "
            "included; write .png or .tif to keep them exact") in capsys.readouterr().out
    written = pio.read_scan(tmp_path / "r.jpg").data
    assert (written[mask == 0] != skdata.camera()[:48, :48][mask == 0]).any()  # the note is true
    assert main(["inpaint", str(tmp_path / "cam.png"), "--mask", str(tmp_path / "m.png"), "-o",
                 str(tmp_path / "r.png")]) == 0
    assert "lossy" not in capsys.readouterr().out
    parser_help = subprocess.run([sys.executable, "-m", "pdediff", "inpaint", "--help"], capture_output=True,
                                 text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    assert "except by a lossy OUTPUT format" in " ".join(parser_help.split())


@pytest.mark.parametrize("cut", [200, 700, 1000, 1500, 5000, 20000])
def test_a_cut_dicom_file_is_reported_as_such(tmp_path, capsys, cut):  # (no "truncated" in tmp_path)
    pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    (tmp_path / "t.dcm").write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes()[:cut])
    with pytest.raises(pio.ScanIOError, match=r"t\.dcm: .*truncated"):
        pio.read_scan(tmp_path / "t.dcm")
    assert main(["denoise", str(tmp_path / "t.dcm"), "-o", str(tmp_path / "x.npy")]) != 0
    err = capsys.readouterr().err
    assert re.search(r"t\.dcm: .*truncated", err) and err.count("\n") == 1


def test_a_cut_slice_in_a_dicom_series_is_reported_not_skipped(tmp_path, capsys):
    folder = _series_with_positions(tmp_path / "s", n=4)
    last = sorted(folder.iterdir())[-1]
    last.write_bytes(last.read_bytes()[:3000])
    with pytest.raises(pio.ScanIOError, match=rf"s: {last.name}: truncated: "):
        pio.read_scan(folder)


@pytest.mark.parametrize("spacing", [(1e50, 1.0), (1e-50, 1.0), (True, 1.0), (1.0, np.True_)])
def test_write_scan_refuses_spacing_no_header_can_hold(tmp_path, spacing):
    """spacing 1e50 passed the positive-and-finite check and was written as inf into NIfTI's float32 pixdim (and
    as NaN into TIFF); True was written as a spacing of 1.  Refused by name, nothing written."""
    from pdediff.errors import ParameterError
    from pdediff.io import write_scan

    for name in ("a.nii", "a.npz", "a.tif"):
        with pytest.raises(ParameterError, match="spacing"):
            write_scan(tmp_path / name, np.zeros((4, 5), np.float32), spacing=spacing)
        assert not any(tmp_path.iterdir())
