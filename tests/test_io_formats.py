"""Scan formats: DICOM in/out, MGH/Analyze, NIfTI scaling, refusals, alpha, TIFF spacing, byte order, hostile files."""

import copy
import gzip
import os
import random
import shutil
import struct
import tempfile
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdediff import io as pio

pydicom = pytest.importorskip("pydicom")
nib = pytest.importorskip("nibabel")
tifffile = pytest.importorskip("tifffile")
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

CT = get_testdata_file("CT_small.dcm")  # 128 x 128 int16, slope 1, intercept -1024, spacing 0.661468
MR = get_testdata_file("MR_small.dcm")  # 64 x 64 int16, no rescale, spacing 0.3125
MB = 2**20


# ----------------------------------------------------------------------------- helpers
def make_series(folder, template=CT, n=5, dz=2.5, slopes=None, iop=(1, 0, 0, 0, 1, 0), origin=(-50.0, 20.0, 10.0),
                seed=0, shuffle=True, uid=None):
    """A DICOM series of ``n`` slices in shuffled file order; returns (folder, volume as read, LPS positions)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    src = pydicom.dcmread(template)
    rng = np.random.default_rng(seed)
    iop = np.asarray(iop, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    uid = uid or generate_uid()
    rows, cols = int(src.Rows), int(src.Columns)
    order = list(range(n))
    if shuffle:
        random.Random(seed).shuffle(order)
    vol, positions = [], []
    for k in range(n):
        ds = copy.deepcopy(src)
        ipp = np.asarray(origin) + k * dz * normal
        ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in iop]
        ds.InstanceNumber = order[k] + 1  # deliberately not the slice order
        arr = rng.integers(-500, 1500, (rows, cols)).astype(np.int16)
        ds.PixelData = arr.tobytes()
        slope = 1.0 if slopes is None else slopes[k]
        inter = float(src.get("RescaleIntercept", 0))
        if slopes is not None:
            ds.RescaleSlope = f"{slope:g}"
            ds.RescaleIntercept = f"{inter:g}"
        ds.SOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID = uid
        ds.save_as(folder / f"IM{order[k]:04d}_{rng.integers(1e6)}.dcm")
        vol.append(arr * slope + inter)
        positions.append(ipp)
    return folder, np.array(vol), np.array(positions)


def patch_writer(monkeypatch, name, write):
    """Replace format ``name``'s writer in the registry for one test."""
    import dataclasses

    from pdediff.io import _format

    monkeypatch.setitem(_format._REGISTRY, name, dataclasses.replace(pio.get_format(name), write=write))


def one_line_error(fn, *args, match=None, exc=pio.ScanIOError):
    with pytest.raises(exc) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg and msg.strip()
    if match is not None:
        assert match in msg, msg
    return msg


def dicom_world_ras(ds, i, j):
    """RAS position of column i, row j of a slice, from its DICOM tags."""
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    dy, dx = (float(v) for v in ds.PixelSpacing)
    lps = ipp + i * dx * iop[:3] + j * dy * iop[3:]
    return lps * np.array([-1.0, -1.0, 1.0])


# ----------------------------------------------------------------------------- DICOM read
def test_dicom_series_order_spacing_rescale(tmp_path):
    folder, vol, _ = make_series(tmp_path / "ct", n=6, dz=2.5, slopes=[1, 0.5, 2, 1, 0.25, 1])
    (folder / "notes.txt").write_text("not DICOM")
    scan = pio.read_scan(folder)
    assert scan.format == "dicom" and scan.data.shape == (6, 128, 128)
    assert scan.data.dtype == np.float32 and scan.stored_dtype == np.int16 and scan.scaled
    np.testing.assert_array_equal(scan.data, vol.astype(np.float32))
    assert scan.spacing == pytest.approx((2.5, 0.661468, 0.661468))
    assert [int(d.InstanceNumber) for d in scan.meta["datasets"]] != list(range(1, 7))  # not ordered by number


def test_dicom_series_skips_dicomdir_and_other_files(tmp_path):
    folder, vol, _ = make_series(tmp_path / "s", template=MR, n=3, dz=1.0)
    shutil.copy(Path(CT).parent / "dicomdirtests" / "DICOMDIR", folder / "DICOMDIR")
    shutil.copy(get_testdata_file("rtplan.dcm"), folder / "plan.dcm")  # DICOM, but not an image
    (folder / ".DS_Store").write_bytes(os.urandom(64))
    scan = pio.read_scan(folder)
    assert scan.data.shape == (3, 64, 64) and scan.data.dtype == np.int16 and not scan.scaled
    np.testing.assert_array_equal(scan.data, vol.astype(np.int16))


def test_dicom_oblique_series_ordered_along_normal(tmp_path):
    c, s = np.cos(0.4), np.sin(0.4)
    iop = (1, 0, 0, 0, c, s)  # tilted: positions move along the normal (0, -s, c)
    folder, vol, pos = make_series(tmp_path / "ob", template=MR, n=5, dz=-3.0, iop=iop)  # descending
    scan = pio.read_scan(folder)
    normal = np.cross(iop[:3], iop[3:])
    proj = pos @ normal
    np.testing.assert_array_equal(scan.data, vol[np.argsort(proj)].astype(np.int16))
    assert scan.spacing == pytest.approx((3.0, 0.3125, 0.3125), rel=1e-5)


def test_dicom_single_file_and_multiframe(tmp_path):
    mr = pio.read_scan(MR)
    assert mr.data.shape == (64, 64) and mr.data.dtype == np.int16 and mr.spacing == (0.3125, 0.3125)
    assert mr.stored_dtype == np.int16 and not mr.scaled
    ct = pio.read_scan(CT)
    assert ct.data.dtype == np.float32 and ct.scaled and ct.data.min() < 0
    np.testing.assert_array_equal(ct.data, pydicom.dcmread(CT).pixel_array.astype(np.float32) - 1024)

    # multi-frame with per-frame positions in a shuffled order, shared orientation/spacing/rescale
    ds = pydicom.dcmread(MR)
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 1000, (4, 64, 64)).astype(np.int16)
    z = [2, 0, 3, 1]
    ds.NumberOfFrames = 4
    ds.PixelData = frames.tobytes()
    per = Sequence()
    for k in range(4):
        pos = Dataset()
        pos.ImagePositionPatient = [0, 0, 3.0 * z[k]]
        item = Dataset()
        item.PlanePositionSequence = Sequence([pos])
        per.append(item)
    shared = Dataset()
    ori, pm, pv = Dataset(), Dataset(), Dataset()
    ori.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    pm.PixelSpacing = [0.5, 0.6]
    pv.RescaleSlope, pv.RescaleIntercept = 2, -5
    shared.PlaneOrientationSequence = Sequence([ori])
    shared.PixelMeasuresSequence = Sequence([pm])
    shared.PixelValueTransformationSequence = Sequence([pv])
    ds.PerFrameFunctionalGroupsSequence = per
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.save_as(tmp_path / "multi.dcm")
    scan = pio.read_scan(tmp_path / "multi.dcm")
    assert scan.data.shape == (4, 64, 64) and scan.spacing == pytest.approx((3.0, 0.5, 0.6))
    np.testing.assert_array_equal(scan.data, frames[np.argsort(z)] * 2.0 - 5)
    # the same file alone in a folder reads the same
    (tmp_path / "mf").mkdir()
    shutil.copy(tmp_path / "multi.dcm", tmp_path / "mf" / "x.dcm")
    np.testing.assert_array_equal(pio.read_scan(tmp_path / "mf").data, scan.data)


def test_dicom_rtdose_grid_offsets():
    scan = pio.read_scan(get_testdata_file("rtdose.dcm"))  # 15 frames, GridFrameOffsetVector
    assert scan.data.shape == (15, 10, 10) and scan.spacing[1:] == (10.0, 10.0) and scan.spacing[0] > 0


def _can_decode(uid) -> bool:
    try:
        from pydicom.pixels import get_decoder
    except ImportError:  # pydicom 2.x
        return any(h.is_available() and h.supports_transfer_syntax(uid) for h in pydicom.config.pixel_data_handlers)
    return get_decoder(uid).is_available


def test_dicom_compressed_decoded_or_refused_naming_syntax():
    if _can_decode(pydicom.uid.RLELossless):
        rle = pio.read_scan(get_testdata_file("MR_small_RLE.dcm"))  # pydicom decodes RLE itself
        np.testing.assert_array_equal(rle.data, pio.read_scan(MR).data)
    jls = get_testdata_file("MR_small_jpeg_ls_lossless.dcm")
    if _can_decode(pydicom.uid.JPEGLSLossless):
        np.testing.assert_array_equal(pio.read_scan(jls).data, pio.read_scan(MR).data)
    else:
        msg = one_line_error(pio.read_scan, jls, match="JPEG-LS Lossless Image Compression (1.2.840.10008.1.2.4.80)")
        assert "needs pylibjpeg or GDCM" in msg
    if _can_decode(pydicom.uid.JPEG2000) and int(pydicom.__version__.split(".")[0]) >= 3:  # 2.4's Pillow path
        assert pio.read_scan(get_testdata_file("JPEG2000.dcm")).data.shape == (1024, 256)


def test_dicom_big_endian_and_implicit():
    ref = pio.read_scan(MR).data
    for name in ("MR_small_bigendian.dcm", "MR_small_implicit.dcm"):
        np.testing.assert_array_equal(pio.read_scan(get_testdata_file(name)).data, ref)


@pytest.mark.parametrize("problem", ["uneven", "duplicate", "series", "shape", "orientation", "empty", "nodicom",
                                     "corrupt", "mixed-geometry"])
def test_dicom_folder_refusals_say_why(tmp_path, problem):
    folder = tmp_path / "f"
    match = {"uneven": "uneven slice spacing", "duplicate": "same slice position", "series": "mixes 2 DICOM series",
             "shape": "mixes 2 image sizes", "orientation": "mixes slice orientations", "empty": "folder is empty",
             "nodicom": "no DICOM images", "corrupt": "truncated or corrupt",
             "mixed-geometry": "lacks ImagePositionPatient"}[problem]
    if problem == "empty":
        folder.mkdir()
    elif problem == "nodicom":
        folder.mkdir()
        (folder / "a.txt").write_text("hello")
    else:
        make_series(folder, template=MR, n=4, dz=2.0)
        files = sorted(folder.iterdir())
        ds = pydicom.dcmread(files[0])
        if problem == "uneven":
            make_series(folder, template=MR, n=1, origin=(-50.0, 20.0, 10.0 + 4 * 2.0 + 3.0), seed=5,
                        uid=ds.SeriesInstanceUID)
        elif problem == "duplicate":
            ds.SOPInstanceUID = generate_uid()
            ds.save_as(folder / "copy.dcm")
        elif problem == "series":
            make_series(folder, template=MR, n=1, origin=(0, 0, 100.0), seed=9)
        elif problem == "shape":
            small = copy.deepcopy(ds)
            small.Rows = small.Columns = 32
            small.PixelData = np.zeros((32, 32), np.int16).tobytes()
            small.ImagePositionPatient = [-50, 20, 30]
            small.save_as(folder / "small.dcm")
        elif problem == "orientation":
            ds.ImageOrientationPatient = [1, 0, 0, 0, 0, 1]
            ds.save_as(files[0])
        elif problem == "corrupt":
            files[1].write_bytes(files[1].read_bytes()[:-1000])  # pixel data cut short
        elif problem == "mixed-geometry":
            del ds.ImagePositionPatient
            ds.save_as(files[0])
    one_line_error(pio.read_scan, folder, match=match)


# ----------------------------------------------------------------------------- DICOM write
def test_dicom_round_trip_keeps_geometry_new_uids(tmp_path):
    folder, _, _ = make_series(tmp_path / "in", n=4, dz=2.0, slopes=[1, 0.5, 1, 2])
    scan = pio.read_scan(folder)
    out = tmp_path / "out"
    denoised = scan.data + 0.3
    pio.write_scan(out, denoised, like=scan, format="dicom")
    files = sorted(out.iterdir())
    assert len(files) == 4 and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    back = pio.read_scan(out)
    sets = back.meta["datasets"]
    quantum = np.array([float(d.RescaleSlope) for d in sets])[:, None, None]
    assert np.all(np.abs(back.data - denoised) <= quantum / 2 + 1e-4)
    assert back.spacing == pytest.approx(scan.spacing)
    np.testing.assert_allclose(back.meta["affine"], scan.meta["affine"], atol=1e-6)
    originals = scan.meta["datasets"]
    assert {d.SeriesInstanceUID for d in sets} != {d.SeriesInstanceUID for d in originals}
    assert len({d.SeriesInstanceUID for d in sets}) == 1
    assert len({d.SOPInstanceUID for d in sets}) == 4
    assert not {d.SOPInstanceUID for d in sets} & {d.SOPInstanceUID for d in originals}
    for d, o in zip(sets, originals):
        assert "pdediff" in d.SeriesDescription
        assert d.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert (d.BitsAllocated, d.PixelRepresentation) == (16, 1)
        assert list(d.ImagePositionPatient) == pytest.approx(list(o.ImagePositionPatient))
        assert list(d.ImageOrientationPatient) == pytest.approx(list(o.ImageOrientationPatient))
        assert (float(d.RescaleSlope), float(d.RescaleIntercept)) == (float(o.RescaleSlope), float(o.RescaleIntercept))


def test_dicom_write_rescales_per_slice_instead_of_clipping(tmp_path):
    scan = pio.read_scan(make_series(tmp_path / "in", n=3, dz=1.0)[0])
    wide = scan.data.astype(np.float64) * 100.0  # far outside int16 with slope 1
    wide[1] = -3.25  # a constant slice
    pio.write_scan(tmp_path / "out", wide, like=scan, format="dicom")
    back = pio.read_scan(tmp_path / "out")
    for k, d in enumerate(back.meta["datasets"]):
        q = float(d.RescaleSlope)
        float32_rounding = 1e-7 * np.abs(wide[k]).max()
        assert np.max(np.abs(back.data[k] - wide[k])) <= q / 2 * 1.0001 + float32_rounding
        assert back.data[k].min() == pytest.approx(wide[k].min(), abs=q) and back.data[k].max() == pytest.approx(
            wide[k].max(), abs=q)
    assert back.stored_dtype == np.int16


def test_dicom_to_nifti_affine_maps_voxels_to_patient_positions(tmp_path):
    c, s = np.cos(0.3), np.sin(0.3)
    folder, _, _ = make_series(tmp_path / "ob", template=MR, n=4, dz=2.0, iop=(c, s, 0, -s, c, 0))
    scan = pio.read_scan(folder)
    pio.write_scan(tmp_path / "o.nii.gz", scan.data, like=scan)
    img = nib.load(str(tmp_path / "o.nii.gz"))
    assert img.shape == (64, 64, 4)  # (i, j, k) = (columns, rows, slices)
    data = np.asarray(img.dataobj)
    for i, j, k in [(0, 0, 0), (5, 9, 1), (63, 2, 3), (17, 40, 2)]:
        ras = dicom_world_ras(scan.meta["datasets"][k], i, j)
        np.testing.assert_allclose(img.affine @ [i, j, k, 1], list(ras) + [1], atol=1e-4)
        assert data[i, j, k] == scan.data[k, j, i]
    # and back: NIfTI -> DICOM series -> same geometry and values
    nii = pio.read_scan(tmp_path / "o.nii.gz")
    pio.write_scan(tmp_path / "again", nii.data, like=nii, format="dicom")
    again = pio.read_scan(tmp_path / "again")
    np.testing.assert_allclose(again.meta["affine"], scan.meta["affine"], atol=1e-5)
    np.testing.assert_array_equal(again.data, scan.data)


def test_dicom_from_plain_array_and_single_file(tmp_path, rng):
    vol = rng.random((3, 10, 12)).astype(np.float32) * 100 - 20
    pio.write_scan(tmp_path / "fresh", vol, spacing=(2.0, 0.5, 0.7), format="dicom")
    back = pio.read_scan(tmp_path / "fresh")
    assert back.spacing == pytest.approx((2.0, 0.5, 0.7))
    q = max(float(d.RescaleSlope) for d in back.meta["datasets"])
    assert np.max(np.abs(back.data - vol)) <= q / 2 + 1e-6
    img = (rng.random((10, 12)) * 1000).astype(np.uint16)
    pio.write_scan(tmp_path / "one.dcm", img, spacing=(0.5, 0.7))
    one = pio.read_scan(tmp_path / "one.dcm")
    np.testing.assert_array_equal(one.data, img)
    assert one.stored_dtype == np.uint16 and one.spacing == pytest.approx((0.5, 0.7))
    with pytest.raises(ValueError, match="DICOM series folder"):
        pio.write_scan(tmp_path / "vol.dcm", vol)
    mr = pio.read_scan(MR)
    pio.write_scan(tmp_path / "mr.dcm", mr.data, like=mr)
    np.testing.assert_array_equal(pio.read_scan(tmp_path / "mr.dcm").data, mr.data)


def test_dicom_stored_dtype_contract(tmp_path):
    scan = pio.read_scan(make_series(tmp_path / "in", template=MR, n=2, dz=1.0)[0])
    pio.write_scan(tmp_path / "u8", scan.data.astype(np.float64) / 7.0, like=scan, stored_dtype=np.uint8,
                   format="dicom")
    back = pio.read_scan(tmp_path / "u8")
    assert back.stored_dtype == np.uint8 and back.meta["datasets"][0].BitsAllocated == 8
    q = float(back.meta["datasets"][0].RescaleSlope)
    assert np.max(np.abs(back.data - scan.data / 7.0)) <= q / 2 * 1.001
    with pytest.raises(ValueError, match="8-, 16- or 32-bit integer"):
        pio.write_scan(tmp_path / "f", scan.data, like=scan, stored_dtype=np.float32, format="dicom")


def test_dicom_folder_write_is_atomic(tmp_path, monkeypatch):
    scan = pio.read_scan(make_series(tmp_path / "in", template=MR, n=3, dz=1.0)[0])
    real = pio.get_format("dicom").write

    def boom(p, *a, **k):
        (Path(p) / "00001.dcm").write_bytes(b"partial")
        raise OSError("disk full")

    patch_writer(monkeypatch, "dicom", boom)
    with pytest.raises(OSError, match="disk full"):
        pio.write_scan(tmp_path / "new", scan.data, like=scan, format="dicom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    patch_writer(monkeypatch, "dicom", real)
    pio.write_scan(tmp_path / "new", scan.data, like=scan, format="dicom")
    first = sorted((tmp_path / "new").iterdir())
    pio.write_scan(tmp_path / "new", scan.data + 1, like=scan)  # replaces an existing series (the CLI's --force)
    assert sorted((tmp_path / "new").iterdir()) == first
    np.testing.assert_array_equal(pio.read_scan(tmp_path / "new").data, scan.data + 1)
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "thesis.txt").write_text("precious")
    one_line_error(pio.write_scan, tmp_path / "keep", scan.data, match="will not replace this folder")
    assert (tmp_path / "keep" / "thesis.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "keep", "new"]


def test_format_of_and_directory_rule(tmp_path):
    assert pio.format_of(tmp_path) == "dicom"
    assert pio.format_of("series/") == "dicom"
    assert pio.format_of("x.dcm") == "dicom" and not pio.is_directory_format("x.dcm")
    assert pio.is_directory_format("out", "dicom") and pio.is_directory_format("out.d/")
    assert not pio.is_directory_format("a.nii") and pio.is_directory_format("a.zarr")
    assert pio.format_of("a.mgz") == "mgh" and pio.format_of("a.hdr") == "analyze" and pio.format_of("a.IMG") == "analyze"
    shutil.copy(MR, tmp_path / "1.2.840.113619.2.55.3.123")  # UID-named DICOM file: sniffed
    assert pio.format_of(tmp_path / "1.2.840.113619.2.55.3.123") == "dicom"
    (tmp_path / "x.abc").write_text("?")
    with pytest.raises(ValueError, match="unsupported file type"):
        pio.format_of(tmp_path / "x.abc")


# ----------------------------------------------------------------------------- nibabel formats
@pytest.mark.parametrize("suffix", [".mgz", ".mgh"])
def test_mgh_round_trip(tmp_path, rng, suffix):
    vol = rng.random((5, 6, 7)).astype(np.float32)
    pio.write_scan(tmp_path / f"v{suffix}", vol, spacing=(2.0, 0.5, 1.5))
    scan = pio.read_scan(tmp_path / f"v{suffix}")
    assert scan.format == "mgh" and scan.spacing == pytest.approx((2.0, 0.5, 1.5))
    np.testing.assert_array_equal(scan.data, vol)
    img = (rng.random((5, 6)) * 100).astype(np.int16)
    pio.write_scan(tmp_path / f"i{suffix}", img, spacing=(2.0, 0.5))
    back = pio.read_scan(tmp_path / f"i{suffix}")
    assert back.data.shape == (5, 6) and back.data.dtype.type is np.int16 and back.spacing == pytest.approx((2.0, 0.5))
    with pytest.raises(ValueError, match="MGH/MGZ stores uint8, int16, int32 or float32"):
        pio.write_scan(tmp_path / f"d{suffix}", vol.astype(np.float64))
    pio.write_scan(tmp_path / "like.mgz", scan.data * 2, like=scan)
    np.testing.assert_allclose(nib.load(str(tmp_path / "like.mgz")).affine, scan.meta["affine"])


def test_analyze_pair_read_only(tmp_path, rng):
    vol = rng.random((4, 5, 6)).astype(np.float32)
    nib.save(nib.AnalyzeImage(vol, np.diag([2.0, 3.0, 4.0, 1.0])), str(tmp_path / "a.hdr"))
    for name in ("a.hdr", "a.img"):
        scan = pio.read_scan(tmp_path / name)
        assert scan.format == "analyze" and scan.spacing == pytest.approx((2.0, 3.0, 4.0))
        np.testing.assert_array_equal(scan.data, vol)
    msg = one_line_error(pio.write_scan, tmp_path / "b.hdr", vol, exc=ValueError)
    assert ".nii" in msg and ".nii.gz" in msg
    (tmp_path / "a.img").unlink()
    one_line_error(pio.read_scan, tmp_path / "a.hdr", match="a.img")


def test_nifti_scaling_is_recorded_and_kept_lossless(tmp_path, rng):
    stored = rng.integers(-300, 300, (6, 7, 8)).astype(np.int16)
    img = nib.Nifti1Image(stored, np.diag([0.9, 0.9, 3.0, 1.0]))
    img.header.set_slope_inter(0.25, -16.0)
    nib.save(img, str(tmp_path / "s.nii.gz"))
    scan = pio.read_scan(tmp_path / "s.nii.gz")
    assert scan.data.dtype.kind == "f" and scan.stored_dtype == np.int16 and scan.scaled
    np.testing.assert_allclose(scan.data, stored * 0.25 - 16.0)
    denoised = scan.data - scan.data.mean() - 16.0 + 0.01 * rng.standard_normal(scan.data.shape)
    pio.write_scan(tmp_path / "o.nii.gz", denoised, like=scan, stored_dtype=np.int16)
    out = nib.load(str(tmp_path / "o.nii.gz"))
    assert out.get_data_dtype() == np.int16
    back = pio.read_scan(tmp_path / "o.nii.gz")
    quantum = float(out.dataobj.slope)
    assert back.scaled and back.stored_dtype == np.int16
    assert np.max(np.abs(back.data - denoised)) <= quantum / 2 * 1.001
    assert back.data.mean() == pytest.approx(-16.0, abs=quantum)
    plain = pio.read_scan(tmp_path / "o.nii.gz")
    pio.write_scan(tmp_path / "f.nii", plain.data.astype(np.float32), like=plain)  # no stored_dtype: float32
    assert nib.load(str(tmp_path / "f.nii")).get_data_dtype() == np.float32
    assert not pio.read_scan(tmp_path / "f.nii").scaled


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "name,shape,dtype,ch,match",
    [
        ("v.png", (5, 12, 13), np.uint8, None, "animated PNG"),
        ("f.png", (12, 13), np.float32, None, "uint8 or uint16"),
        ("c.png", (12, 13, 5), np.uint8, -1, "grey, grey+alpha, RGB or RGBA"),
        ("c16.png", (12, 13, 3), np.uint16, -1, "16-bit colour"),
        ("first.png", (3, 12, 13), np.uint8, 0, "channels on the last axis"),
        ("a.jpg", (12, 13), np.uint16, None, "uint8 only"),
        ("a.jpg", (12, 13, 4), np.uint8, -1, "grey or RGB"),
        ("a.tif", (12,), np.float32, None, "2-D images or stacks"),
        ("a.tif", (12, 13), np.longdouble, None, "cannot store"),
        ("a.tif", (12, 13, 6), np.uint8, -1, "1-4 channels"),
        ("a.nii", (12, 13, 3), np.uint8, -1, "grey scans only"),
        ("a.nii", (2, 3, 4, 5), np.float32, None, "2-D or 3-D"),
        ("a.nii.gz", (12, 13), np.float16, None, "NIfTI cannot store float16"),
        ("a.nii", (12, 13), np.bool_, None, "NIfTI cannot store bool"),
        ("a.mgz", (12, 13), np.float64, None, "to float32"),
        ("a.hdr", (12, 13), np.float32, None, ".nii"),
        ("series/", (3, 12, 13, 3), np.uint8, -1, "greyscale"),
        ("series/", (12, 13), np.complex64, None, "integer pixels"),
        ("one.dcm", (3, 12, 13), np.int16, None, "series folder"),
        ("x.npy", (3,), object, None, "Python objects"),
    ],
)
def test_check_writable_refuses_with_one_line(tmp_path, name, shape, dtype, ch, match):
    path = f"{tmp_path}{os.sep}{name}"  # "series/" keeps its slash: a DICOM series folder
    msg = one_line_error(pio.check_writable, path, shape, dtype, ch, match=match, exc=ValueError)
    assert len(msg) < 300
    if dtype is not object:
        with pytest.raises(ValueError):
            pio.write_scan(path, np.zeros(shape, dtype=dtype), channel_axis=ch)
        assert sorted(os.listdir(tmp_path)) == []


def test_check_writable_accepts_and_stored_dtype_rules(tmp_path):
    ok = [("a.png", (4, 5, 2), np.uint8, -1), ("a.png", (4, 5, 1), np.uint16, -1), ("a.jpg", (4, 5, 3), np.uint8, -1),
          ("a.tif", (3, 4, 5), np.float16, None), ("a.tif", (4, 5, 2), np.int32, -1), ("a.nii", (4, 5), np.int64, None),
          ("a.mgz", (3, 4, 5), np.uint8, None), ("s/", (3, 4, 5), np.float64, None), ("a.dcm", (4, 5), np.uint16, None),
          ("a.npy", (2, 3, 4, 5, 6), np.complex128, None)]
    for name, shape, dtype, ch in ok:
        pio.check_writable(f"{tmp_path}{os.sep}{name}", shape, dtype, ch)
    pio.check_writable(tmp_path / "a.nii", (4, 5), np.float32, stored_dtype=np.int16)
    with pytest.raises(ValueError, match="stored_dtype applies to DICOM and NIfTI"):
        pio.check_writable(tmp_path / "a.tif", (4, 5), np.float32, stored_dtype=np.int16)


# ----------------------------------------------------------------------------- colour and alpha
@pytest.mark.parametrize("name,shape,dtype", [("ga.png", (6, 7, 2), np.uint8), ("rgba.png", (6, 7, 4), np.uint8),
                                              ("rgba.tif", (6, 7, 4), np.uint16), ("ga.tif", (6, 7, 2), np.float32),
                                              ("rgb.png", (6, 7, 3), np.uint8), ("rgb.tif", (6, 7, 3), np.uint8)])
def test_alpha_and_colour_reported(tmp_path, rng, name, shape, dtype):
    arr = (rng.random(shape) * 200).astype(dtype)
    pio.write_scan(tmp_path / name, arr, channel_axis=-1)
    scan = pio.read_scan(tmp_path / name)
    np.testing.assert_array_equal(scan.data, arr)
    assert scan.channel_axis == -1 and scan.alpha == (shape[-1] in (2, 4)) and scan.spatial_ndim == 2


def _png(width, height, depth, ctype, raw=b""):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, ctype, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_sixteen_bit_colour_png_refused_not_truncated(tmp_path):
    rows = b"".join(b"\0" + (np.arange(7 * 3, dtype=">u2") * 1000).tobytes() for _ in range(6))
    (tmp_path / "c16.png").write_bytes(_png(7, 6, 16, 2, rows))
    one_line_error(pio.read_scan, tmp_path / "c16.png", match="16-bit colour PNG")


# ----------------------------------------------------------------------------- TIFF spacing
@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.int16, np.float64])
def test_tiff_spacing_round_trip(tmp_path, rng, dtype):
    vol = (rng.random((4, 6, 7)) * 100).astype(dtype)
    pio.write_scan(tmp_path / "v.tif", vol, spacing=(3.0, 0.5, 0.3))
    scan = pio.read_scan(tmp_path / "v.tif")
    np.testing.assert_array_equal(scan.data, vol)
    assert scan.spacing == pytest.approx((3.0, 0.5, 0.3), rel=1e-6) and scan.meta["unit"] == "mm"
    assert scan.meta["imagej"] == (dtype in (np.float32, np.uint16))
    pio.write_scan(tmp_path / "i.tif", vol[0], spacing=(0.5, 0.3))
    assert pio.read_scan(tmp_path / "i.tif").spacing == pytest.approx((0.5, 0.3), rel=1e-6)


def test_tiff_spacing_units(tmp_path):
    tifffile.imwrite(tmp_path / "um.tif", np.zeros((3, 8, 8), np.uint16), imagej=True, resolution=(10, 5),
                     metadata={"spacing": 0.3, "unit": "micron", "axes": "ZYX"})
    assert pio.read_scan(tmp_path / "um.tif").spacing == pytest.approx((0.3e-3, 0.2e-3, 0.1e-3))
    tifffile.imwrite(tmp_path / "dpi.tif", np.zeros((8, 8), np.uint8), resolution=(254, 127), resolutionunit="INCH")
    assert pio.read_scan(tmp_path / "dpi.tif").spacing == pytest.approx((0.2, 0.1))
    tifffile.imwrite(tmp_path / "none.tif", np.zeros((8, 8), np.uint8))
    assert pio.read_scan(tmp_path / "none.tif").spacing is None


# ----------------------------------------------------------------------------- byte order
@pytest.mark.parametrize("name", ["a.npy", "a.npz", "a.tif", "a.nii", "a.nii.gz", "a.mgz", "series", "a.png"])
def test_writers_accept_big_endian(tmp_path, rng, name):
    dtype = ">u2" if name.endswith(".png") else ">f4"
    arr = (rng.random((3, 6, 7)) * 1000).astype(dtype)
    if name.endswith(".png"):
        arr = arr[0]
    pio.write_scan(tmp_path / name, arr, spacing=(1.0,) * arr.ndim, format="dicom" if name == "series" else None)
    back = pio.read_scan(tmp_path / name).data
    if name == "series":
        assert np.max(np.abs(back - arr)) < 0.02  # one rescale quantum of int16 over 0..1000
    else:
        np.testing.assert_array_equal(back, arr)


def test_big_endian_nifti_reads(tmp_path, rng):
    arr = rng.random((3, 4, 5)).astype(np.float32)
    hdr = nib.Nifti1Header(endianness=">")
    nib.save(nib.Nifti1Image(arr, np.eye(4), hdr), str(tmp_path / "be.nii"))
    scan = pio.read_scan(tmp_path / "be.nii")
    np.testing.assert_array_equal(scan.data, arr)
    for name in ("o.tif", "o.npz", "o.nii.gz"):
        pio.write_scan(tmp_path / name, scan.data, like=scan)
        np.testing.assert_array_equal(pio.read_scan(tmp_path / name).data, arr)


# ----------------------------------------------------------------------------- hostile headers
def _nifti_header(shape, dtype=np.float32, extra=b"", offset=352, extensions=False):
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    hdr.set_data_offset(offset)
    return hdr.binaryblock + (b"\1\0\0\0" if extensions else b"\0\0\0\0") + extra


def _npy_header(shape, descr="<f8"):
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {tuple(shape)}, }}".encode()
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


def _hostile_files(tmp_path):
    """Small files whose headers claim huge arrays; name -> path."""
    d = Path(tmp_path)
    out = {}
    raw = _nifti_header((800, 800, 800), extra=b"\0" * 1000)
    (d / "h.nii").write_bytes(raw)
    (d / "h.nii.gz").write_bytes(gzip.compress(raw))
    (d / "h.npy").write_bytes(_npy_header((10**6, 10**6)) + b"\0" * 64)
    with zipfile.ZipFile(d / "h.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("image.npy", _npy_header((10**6, 10**6)) + b"\0" * 64)
    (d / "h.png").write_bytes(_png(30000, 30000, 8, 0, b"\0" * 100))
    tifffile.imwrite(d / "h.tif", np.zeros((4, 4), np.uint8))
    b = bytearray((d / "h.tif").read_bytes())
    with tifffile.TiffFile(d / "h.tif") as tf:
        tags = tf.pages[0].tags
        spots = [(tags[t].valueoffset, int(tags[t].dtype)) for t in ("ImageWidth", "ImageLength")]
    for off, code in spots:
        fmt = "<H" if code == 3 else "<I"
        b[off:off + struct.calcsize(fmt)] = struct.pack(fmt, 60000)
    (d / "h.tif").write_bytes(bytes(b))
    from nibabel.freesurfer.mghformat import MGHHeader

    mgh = MGHHeader()
    mgh.set_data_shape((800, 800, 800))
    (d / "h.mgh").write_bytes(mgh.binaryblock + b"\0" * 500)
    (d / "h.mgz").write_bytes(gzip.compress(mgh.binaryblock + b"\0" * 500))
    ana = nib.AnalyzeHeader()
    ana.set_data_shape((800, 800, 800))
    ana.set_data_dtype(np.float32)
    (d / "h.hdr").write_bytes(ana.binaryblock)
    (d / "h.img").write_bytes(b"\0" * 100)
    ds = pydicom.dcmread(MR)
    ds.Rows = ds.Columns = 60000
    ds.NumberOfFrames = 1000
    ds.save_as(d / "h.dcm")
    folder = d / "hseries"
    make_series(folder, template=MR, n=3, dz=1.0)
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        ds.Rows = ds.Columns = 60000
        ds.save_as(f)
    for p in [d / n for n in ("h.nii", "h.nii.gz", "h.npy", "h.npz", "h.png", "h.tif", "h.mgh", "h.mgz", "h.hdr",
                              "h.dcm")] + [folder]:
        out[p.name] = p
    return out


def test_hostile_headers_fail_fast_without_allocating(tmp_path):
    for name, p in _hostile_files(tmp_path).items():
        tracemalloc.start()
        try:
            msg = one_line_error(pio.read_scan, p)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 * MB, (name, peak)
        assert "bytes of pixel data" in msg or "memory available" in msg, msg


def test_memory_available_is_checked_for_every_format(tmp_path, rng, monkeypatch):
    from pdediff.io import _limits

    vol = rng.random((20, 30, 40)).astype(np.float32)
    img = (rng.random((30, 40)) * 255).astype(np.uint8)
    for name, arr in [("v.nii.gz", vol), ("v.nii", vol), ("v.npz", vol), ("v.npy", vol), ("v.mgz", vol),
                      ("v.tif", vol), ("i.png", img), ("i.jpg", img), ("s", vol)]:
        pio.write_scan(tmp_path / name, arr, format="dicom" if name == "s" else None)
    shutil.copy(MR, tmp_path / "m.dcm")
    monkeypatch.setattr(_limits, "_available_memory", lambda: 1000)
    for p in sorted(tmp_path.iterdir()):
        one_line_error(pio.read_scan, p, match="of memory available")


def test_write_scan_into_atomic_paths_temporaries(tmp_path, rng):
    vol = rng.random((3, 4, 5)).astype(np.float32)
    with pio.atomic_paths([tmp_path / "out.nii.gz"]) as (tmp,):  # as the command line writes
        pio.write_scan(tmp, vol, format="nifti")
    np.testing.assert_array_equal(np.asarray(nib.load(str(tmp_path / "out.nii.gz")).dataobj), vol)
    with pio.atomic_paths([tmp_path / "series"], directories=[True]) as (tmp,):
        assert pio.is_directory_format(tmp, "dicom")
        pio.write_scan(tmp, vol, format="dicom")
    assert len(list((tmp_path / "series").iterdir())) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nii.gz", "series"]


def test_nifti_extension_claiming_gigabytes_is_refused(tmp_path):
    ext = struct.pack("<ii", 2**31 - 16, 4) + b"\0" * 8  # one extension "of 2 GB" before the data at 368
    (tmp_path / "e.nii").write_bytes(_nifti_header((2, 2, 2), offset=368, extensions=True, extra=ext + b"\0" * 32))
    tracemalloc.start()
    try:
        one_line_error(pio.read_scan, tmp_path / "e.nii", match="extension claims")
        assert tracemalloc.get_traced_memory()[1] < 16 * MB
    finally:
        tracemalloc.stop()


# ----------------------------------------------------------------------------- fuzz
def _seed_files() -> dict[str, bytes | dict]:
    """One small valid file per suffix (and a DICOM folder), as bytes."""
    rng = np.random.default_rng(0)
    d = Path(tempfile.mkdtemp())
    try:
        vol = (rng.random((3, 8, 9)) * 100).astype(np.float32)
        img = (rng.random((8, 9)) * 200).astype(np.uint8)
        pio.write_scan(d / "a.npy", vol)
        pio.write_scan(d / "a.npz", vol, spacing=(1.0, 2.0, 3.0))
        pio.write_scan(d / "a.png", img)
        pio.write_scan(d / "a.jpg", img)
        pio.write_scan(d / "a.jpeg", img)
        pio.write_scan(d / "a.tif", vol, spacing=(2.0, 1.0, 1.0))
        pio.write_scan(d / "a.tiff", vol.astype(np.int16))
        pio.write_scan(d / "a.nii", vol)
        pio.write_scan(d / "a.nii.gz", vol)
        pio.write_scan(d / "a.mgz", vol)
        pio.write_scan(d / "a.mgh", vol)
        nib.save(nib.AnalyzeImage(vol, np.eye(4)), str(d / "a.hdr"))
        shutil.copy(MR, d / "a.dcm")
        seeds = {p.name[2:]: p.read_bytes() for p in d.iterdir() if p.is_file()}  # "a.nii.gz" -> "nii.gz"
        folder, _, _ = make_series(d / "series", template=MR, n=3, dz=1.0)
        seeds["series"] = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
        return seeds
    finally:
        shutil.rmtree(d, ignore_errors=True)


SEEDS = None
FUZZ_TARGETS = [".npy", ".npz", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".nii", ".nii.gz", ".mgz", ".mgh", ".hdr",
                ".img", ".dcm", "series"]


def _mutate(data, raw: bytes) -> bytes:
    mode = data.draw(st.sampled_from(["random", "truncate", "header"]), label="mode")
    if mode == "random":
        return data.draw(st.binary(min_size=1, max_size=1500), label="bytes")
    if mode == "truncate":
        return raw[: data.draw(st.integers(1, len(raw) - 1), label="cut")]
    blob = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 6), label="flips")):
        pos = data.draw(st.integers(0, min(len(blob), 700) - 1), label="pos")
        blob[pos] = data.draw(st.integers(0, 255), label="byte")
    return bytes(blob)


def _check_read(path) -> None:
    tracemalloc.start()
    try:
        try:
            pio.read_scan(path)  # a mutation may leave a valid file: that is fine
        except pio.ScanIOError as exc:
            msg = str(exc)
            assert msg and "\n" not in msg, msg
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * MB, peak


@pytest.mark.parametrize("target", FUZZ_TARGETS)
@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_every_reader_fails_with_one_line(target, data):
    global SEEDS
    if SEEDS is None:
        SEEDS = _seed_files()
    d = Path(tempfile.mkdtemp())
    try:
        if target == "series":
            files = SEEDS["series"]
            victim = data.draw(st.sampled_from(sorted(files)), label="file")
            (d / "s").mkdir()
            for name, raw in files.items():
                (d / "s" / name).write_bytes(_mutate(data, raw) if name == victim else raw)
            path = d / "s"
        elif target in (".hdr", ".img"):
            raw = {".hdr": SEEDS["hdr"], ".img": SEEDS["img"]}
            (d / "a.hdr").write_bytes(_mutate(data, raw[".hdr"]) if target == ".hdr" else raw[".hdr"])
            (d / "a.img").write_bytes(_mutate(data, raw[".img"]) if target == ".img" else raw[".img"])
            path = d / f"a{target}"
        else:
            path = d / f"a{target}"
            path.write_bytes(_mutate(data, SEEDS[target[1:]]))
        _check_read(path)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(kind=st.sampled_from(["nii", "nii.gz", "npy", "dcm", "mgh", "tif"]),
       dims=st.lists(st.integers(10**3, 2**31 - 1), min_size=2, max_size=3))
def test_fuzz_absurd_dimensions_refused(kind, dims):
    d = Path(tempfile.mkdtemp())
    try:
        p = d / f"a.{kind}"
        if kind in ("nii", "nii.gz"):
            raw = _nifti_header(tuple(min(x, 32767) for x in dims), extra=b"\0" * 256)
            p.write_bytes(gzip.compress(raw) if kind == "nii.gz" else raw)
        elif kind == "npy":
            p.write_bytes(_npy_header(dims) + b"\0" * 256)
        elif kind == "dcm":
            ds = pydicom.dcmread(MR)
            ds.Rows, ds.Columns = min(dims[0], 65535), min(dims[1], 65535)
            ds.NumberOfFrames = dims[-1] if len(dims) == 3 else 1
            ds.save_as(p)
        elif kind == "mgh":
            from nibabel.freesurfer.mghformat import MGHHeader

            h = MGHHeader()
            h.set_data_shape(tuple(min(x, 2**31 - 1) for x in dims))
            p.write_bytes(h.binaryblock + b"\0" * 256)
        else:
            tifffile.imwrite(p, np.zeros((4, 4), np.uint16))
            b = bytearray(p.read_bytes())
            with tifffile.TiffFile(p) as tf:
                tags = tf.pages[0].tags
                spots = [(tags[t].valueoffset, int(tags[t].dtype)) for t in ("ImageWidth", "ImageLength")]
            for (off, code), v in zip(spots, dims):
                fmt = "<H" if code == 3 else "<I"
                b[off:off + struct.calcsize(fmt)] = struct.pack(fmt, min(v, 65535 if code == 3 else v))
            p.write_bytes(bytes(b))
        tracemalloc.start()
        try:
            one_line_error(pio.read_scan, p)
            assert tracemalloc.get_traced_memory()[1] < 16 * MB
        finally:
            tracemalloc.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)
