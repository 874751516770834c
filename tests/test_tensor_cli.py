"""``pdediff denoise --method eed|ced``: tensor diffusion through the command line, with its safety rules."""

import numpy as np
import pytest

import pdediff
from pdediff.cli import main


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("pdediff denoise: error:"), err
    return err[-1]


def test_png_through_eed_keeps_type_and_range(tmp_path, rng):
    from PIL import Image

    yy, xx = np.mgrid[:32, :40]
    img = np.clip(60 + 120 * (xx > 20) + 20 * rng.standard_normal((32, 40)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "in.png")
    assert main(["denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--method", "eed",
                 "--num-iter", "3", "--kappa", "20", "--quiet"]) == 0
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.dtype == np.uint8 and out.shape == img.shape
    expect = pdediff.tensor_diffusion(img.astype(np.float32), kind="eed", num_iter=3, kappa=20.0)
    assert np.abs(out.astype(np.float64) - np.rint(expect)).max() <= 1
    assert img.min() <= out.min() and out.max() <= img.max()
    assert (tmp_path / "in.png").exists() and np.array_equal(np.asarray(Image.open(tmp_path / "in.png")), img)


def test_nifti_through_ced_keeps_spacing_and_dtype(tmp_path, rng):
    nib = pytest.importorskip("nibabel")
    vol = rng.random((10, 12, 9)).astype(np.float32)
    affine = np.diag([1.5, 1.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(vol, affine), tmp_path / "in.nii.gz")
    assert main(["denoise", str(tmp_path / "in.nii.gz"), "-o", str(tmp_path / "out.nii.gz"),
                 "--method", "ced",
                 "--num-iter", "2", "--rho", "2", "--alpha", "0.01", "--quiet"]) == 0
    res = nib.load(tmp_path / "out.nii.gz")
    assert res.get_data_dtype() == np.float32
    np.testing.assert_allclose(res.header.get_zooms()[:3], (1.5, 1.0, 2.0))
    np.testing.assert_allclose(res.affine, affine)
    expect = pdediff.tensor_diffusion(vol, kind="ced", num_iter=2, rho=2.0, alpha=0.01,
                                      spacing=(1.5, 1.0, 2.0))
    np.testing.assert_allclose(np.asarray(res.dataobj), expect, rtol=0, atol=1e-6)


@pytest.mark.parametrize("extra, flag", [
    (["--method", "ced", "--alpha", "2"], "--alpha"),
    (["--method", "eed", "--rho", "-1"], "--rho"),
    (["--method", "eed", "--dt", "5"], "--dt"),
    (["--method", "ced", "--num-iter", "30", "--max-steps", "10"], "--max-steps"),
    (["--method", "explicit", "--rho", "2"], "--rho"),
    (["--method", "eed", "--alpha", "0.1"], "--alpha"),
    (["--method", "ced", "--kappa", "3"], "--kappa"),  # CED has no edge threshold: was silently ignored
    (["--method", "ced", "--conductance", "rational"], "--conductance"),
])
def test_errors_name_the_flag(tmp_path, rng, capsys, extra, flag):
    np.save(tmp_path / "in.npy", rng.random((16, 16)).astype(np.float32))
    argv = ["denoise", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy"), "--quiet", *extra]
    assert main(argv) == 2
    line = _error_line(capsys)
    assert flag in line, line
    assert "alpha=" not in line and "num_iter" not in line and "max_steps" not in line
    assert not (tmp_path / "out.npy").exists()


def test_report_names_the_method(tmp_path, rng, capsys):
    np.save(tmp_path / "in.npy", rng.random((16, 16)))
    assert main(["denoise", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy"), "--method", "eed",
                 "--num-iter", "2"]) == 0
    text = capsys.readouterr().out
    assert "method eed" in text and "kappa" in text and "(auto)" in text
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"),
                                  pdediff.tensor_diffusion(np.load(tmp_path / "in.npy"), num_iter=2))


def test_chunks_run_eed_through_dask(tmp_path, rng):
    zarr = pytest.importorskip("zarr")
    pytest.importorskip("dask")
    img = rng.random((64, 70)).astype(np.float32)
    np.save(tmp_path / "in.npy", img)
    assert main(["denoise", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.zarr"), "--chunks", "32",
                 "--method", "eed", "--num-iter", "2", "--quiet"]) == 0
    got = np.asarray(zarr.open(str(tmp_path / "out.zarr"), mode="r"))
    np.testing.assert_allclose(got, pdediff.tensor_diffusion(img, num_iter=2), rtol=0, atol=1e-6)


def test_semi_implicit_flag_runs_the_library_scheme(tmp_path, rng, capsys):
    """``--semi-implicit``: the library's semi-implicit EED/CED (any --dt), reported; refused where it cannot apply."""
    img = (100 + 50 * (np.mgrid[:24, :28][1] > 14) + 10 * rng.standard_normal((24, 28))).astype(np.float32)
    np.save(tmp_path / "in.npy", img)
    args = ["denoise", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy"), "--method", "ced",
            "--semi-implicit", "--dt", "2", "--num-iter", "2"]
    assert main(args) == 0
    assert "semi-implicit" in capsys.readouterr().out
    expect = pdediff.tensor_diffusion(img, kind="ced", method="semi-implicit", dt=2.0, num_iter=2)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expect)
    assert img.min() <= expect.min() and expect.max() <= img.max()  # the maximum principle at 8x the limit
    for extra, says in ((["--method", "explicit"], "applies to --method eed or ced only"),
                        (["--method", "eed", "--chunks", "16"], "not with --chunks")):
        base = ["denoise", str(tmp_path / "in.npy"), "-o", str(tmp_path / "x.npy"), "--semi-implicit"]
        assert main(base + extra) == 2
        assert says in _error_line(capsys)
    assert not (tmp_path / "x.npy").exists()


@pytest.mark.parametrize("extra, says, not_said", [
    (["--max-steps", "3"], "the default time step 0.25 (the stability limit)", "--dt"),
    (["--method", "aos", "--max-steps", "3"], "the default time step 1 (4 x the explicit stability limit)",
     "--dt 1 "),
    (["--method", "eed", "--num-iter", "2", "--max-steps", "1"], "--num-iter 2", "--dt"),
    (["--method", "ced", "--max-steps", "3"], "the default time step 0.25 (the stability limit)", "--dt 0"),
    (["--dt", "0.1", "--max-steps", "3"], "with --dt 0.1 needs 38 time steps", "default time step"),
])
def test_step_limit_names_what_was_passed(tmp_path, rng, capsys, extra, says, not_said):
    """A --max-steps refusal named '--dt 0.25' when the user gave no --dt (issue 20): the default step is
    called the default, with its value and rule; a given --dt is named as given."""
    np.save(tmp_path / "in.npy", rng.random((16, 16)).astype(np.float32))
    argv = ["denoise", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy"), "--quiet", *extra]
    assert main(argv) == 2
    line = _error_line(capsys)
    assert says in line and not_said not in line, line
    assert "--max-steps" in line
