"""Denoising arrays and files with the learned models: ``denoise_learned`` and ``pdediff denoise --method tnrd|cnn``."""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pdediff.cli import main  # noqa: E402
from pdediff.errors import ParameterError  # noqa: E402
from pdediff.torch import CNNDenoiser, ReactionDiffusion, denoise_learned, load_denoiser  # noqa: E402
from pdediff.torch.denoisers import TRAINING_IMAGES  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Small untrained-but-nonidentity models and their files."""
    d = tmp_path_factory.mktemp("models")
    tnrd = ReactionDiffusion.from_perona_malik(0.1, 0.2, stages=2, filters=4, filter_size=3)
    cnn = CNNDenoiser(1, depth=3, width=4, seed=1)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in cnn.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    tnrd.save(d / "tnrd.pt")
    cnn.save(d / "cnn.pt")
    return {"tnrd": tnrd.eval(), "cnn": cnn.eval(), "dir": d}


def _scaled_reference(model, plane, lo, hi, sigma=None):
    with torch.no_grad():
        t = torch.from_numpy(((plane - lo) / (hi - lo)).astype(np.float32))[None]
        if isinstance(model, CNNDenoiser):
            out = model(t[None], sigma)[0, 0] if sigma is not None else model(t[None])[0, 0]
        else:
            out = model(t)[0]
    return out.numpy().astype(np.float64) * (hi - lo) + lo


@pytest.mark.parametrize("method", ["tnrd", "cnn"])
def test_grey_colour_and_3d_slicewise(tiny, method, rng):
    model = tiny[method]
    img = (rng.random((20, 24)) * 50 + 100).astype(np.float32)
    out = denoise_learned(img, method, model=model, data_range=(100.0, 150.0))
    assert out.dtype == np.float32 and out.shape == img.shape
    ref = np.clip(_scaled_reference(model, img, 100.0, 150.0), 100.0, 150.0)
    np.testing.assert_allclose(out, ref, rtol=0, atol=2e-4)
    # colour: each channel alone, channel axis anywhere
    col = rng.random((3, 16, 18))
    out = denoise_learned(col, method, model=model, channel_axis=0, data_range=(0.0, 1.0))
    assert out.dtype == np.float64 and out.shape == col.shape
    for c in range(3):
        ref = np.clip(_scaled_reference(model, col[c], 0.0, 1.0), 0.0, 1.0)
        np.testing.assert_allclose(out[c], ref, rtol=0, atol=2e-5)
    moved = denoise_learned(np.moveaxis(col, 0, -1), method, model=model, channel_axis=-1, data_range=(0.0, 1.0))
    np.testing.assert_array_equal(np.moveaxis(moved, -1, 0), out)
    # 3-D: slices across the axis of the largest spacing
    vol = rng.random((5, 12, 14))
    out = denoise_learned(vol, method, model=model, spacing=(1.0, 1.0, 3.0), data_range=(0.0, 1.0), batch=2)
    for k in range(vol.shape[2]):
        ref = np.clip(_scaled_reference(model, vol[:, :, k], 0.0, 1.0), 0.0, 1.0)
        np.testing.assert_allclose(out[:, :, k], ref, rtol=0, atol=2e-5)
    iso = denoise_learned(vol, method, model=model, data_range=(0.0, 1.0))
    ref = np.clip(_scaled_reference(model, vol[2], 0.0, 1.0), 0.0, 1.0)
    np.testing.assert_allclose(iso[2], ref, rtol=0, atol=2e-5)
    # integers: float32 out, clipped to the input's range
    u8 = (rng.random((16, 16)) * 255).astype(np.uint8)
    out = denoise_learned(u8, method, model=model)
    assert out.dtype == np.float32 and u8.min() <= out.min() and out.max() <= u8.max()


def test_noise_level_is_passed_scaled(tiny, rng):
    img = rng.random((16, 16)) * 200
    out = denoise_learned(img, "cnn", model=tiny["cnn"], sigma=20.0, data_range=(0.0, 200.0))
    ref = np.clip(_scaled_reference(tiny["cnn"], img, 0.0, 200.0, torch.tensor([0.1])), 0.0, 200.0)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4)


def test_bad_input(tiny):
    with pytest.raises(ParameterError) as err:
        denoise_learned(np.zeros((8, 8)), "bm3d")
    assert err.value.param == "method"
    with pytest.raises(ParameterError) as err:
        denoise_learned(np.full((8, 8), np.nan), "tnrd", model=tiny["tnrd"])
    assert err.value.param == "image"
    with pytest.raises(ParameterError) as err:
        denoise_learned(np.zeros(8), "tnrd", model=tiny["tnrd"])
    assert err.value.param == "image"
    with pytest.raises(ParameterError) as err:
        denoise_learned(np.ones((8, 8)), "cnn", model=tiny["cnn"], data_range=(1.0, 1.0))
    assert err.value.param == "data_range"
    with pytest.raises(TypeError):
        denoise_learned(np.ones((8, 8)), "cnn", model=tiny["tnrd"])
    with pytest.raises(ParameterError) as err:
        load_denoiser("dncnn")
    assert err.value.param == "name"
    flat = denoise_learned(np.full((6, 6), 7, np.int16), "tnrd", model=tiny["tnrd"])
    assert flat.dtype == np.float32 and np.all(flat == 7)


def test_sparse_image_is_denoised_not_returned(tiny):
    """Dots on a zero ground: the 3 x 3 median range is [0, 0]; the image's own range is used, not a silent no-op."""
    x = np.zeros((32, 32))
    x[::7, ::5] = 1.0
    for method in ("tnrd", "cnn"):
        out = denoise_learned(x, method, model=tiny[method], sigma=0.1 if method == "cnn" else None)
        assert not np.array_equal(out, x) and out.min() >= 0 and out.max() <= 1, method


def test_cnn_thin_planes_need_the_level(tiny, tmp_path, capsys):
    with pytest.raises(ParameterError) as err:
        denoise_learned(np.random.default_rng(0).random((1, 40)), "cnn", model=tiny["cnn"])
    assert err.value.param == "sigma"
    assert denoise_learned(np.random.default_rng(0).random((1, 40)), "cnn", model=tiny["cnn"], sigma=0.1).shape \
        == (1, 40)
    np.save(tmp_path / "in.npy", np.random.default_rng(0).random((1, 40)).astype(np.float32))
    assert main(["denoise", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy"), "--method", "cnn"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--noise-level" in err[0] and "--sigma" not in err[0], err


@pytest.mark.parametrize("steps, param", [(0, "steps"), (-5, "steps"), (1.5, "steps"), (True, "steps"),
                                          (1, "out")])
def test_retrain_denoiser_bad_arguments(tmp_path, steps, param):
    """Refused by this function's own names before anything is written (steps=0 wrote an untrained model)."""
    from pdediff.torch import retrain_denoiser

    out = tmp_path / ("file" if param == "out" else "run")
    if param == "out":
        out.write_text("x")
    with pytest.raises(ParameterError) as err:
        retrain_denoiser("tnrd", out, steps=steps)
    assert err.value.param == param
    assert param == "out" or not out.exists()


def test_training_images_are_not_test_images():
    from pdediff.study._denoise import TEST_IMAGES

    assert not set(TRAINING_IMAGES) & set(TEST_IMAGES)
    assert "astronaut" not in TRAINING_IMAGES and "camera" not in TRAINING_IMAGES


@pytest.mark.parametrize("method", ["tnrd", "cnn"])
def test_cli_png_keeps_type_and_range(tiny, tmp_path, rng, method):
    from PIL import Image

    yy, xx = np.mgrid[:32, :40]
    img = np.clip(60 + 120 * (xx > 20) + 20 * rng.standard_normal((32, 40)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "in.png")
    weights = str(tiny["dir"] / f"{method}.pt")
    assert main(["denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--method", method,
                 "--weights", weights, "--quiet"]) == 0
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.dtype == np.uint8 and out.shape == img.shape
    expect = denoise_learned(img, method, model=tiny[method])
    assert np.abs(out.astype(np.float64) - np.rint(expect)).max() <= 1
    assert img.min() <= out.min() and out.max() <= img.max()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "in.png")), img)


def test_cli_nifti_3d_keeps_spacing_and_dtype(tiny, tmp_path, rng):
    nib = pytest.importorskip("nibabel")
    vol = rng.random((10, 12, 6)).astype(np.float32)
    affine = np.diag([1.0, 1.0, 2.5, 1.0])
    nib.save(nib.Nifti1Image(vol, affine), tmp_path / "in.nii.gz")
    assert main(["denoise", str(tmp_path / "in.nii.gz"), "-o", str(tmp_path / "out.nii.gz"), "--method", "tnrd",
                 "--weights", str(tiny["dir"] / "tnrd.pt"), "--quiet"]) == 0
    res = nib.load(tmp_path / "out.nii.gz")
    assert res.get_data_dtype() == np.float32
    np.testing.assert_allclose(res.header.get_zooms()[:3], (1.0, 1.0, 2.5))
    np.testing.assert_allclose(res.affine, affine)
    expect = denoise_learned(vol, "tnrd", model=tiny["tnrd"], spacing=(1.0, 1.0, 2.5))
    np.testing.assert_allclose(np.asarray(res.dataobj), expect, rtol=0, atol=1e-6)


@pytest.mark.parametrize("extra, flag", [
    (["--method", "tnrd", "--kappa", "0.1"], "--kappa"),
    (["--method", "cnn", "--num-iter", "3"], "--num-iter"),
    (["--method", "tnrd", "--noise-level", "0.1"], "--noise-level"),
    (["--method", "explicit", "--noise-level", "0.1"], "--noise-level"),
    (["--method", "explicit", "--weights", "m.pt"], "--weights"),
    (["--method", "cnn", "--noise-level", "-1"], "--noise-level"),
    (["--method", "cnn", "--weights", "missing.pt"], "missing.pt"),
    (["--method", "cnn", "--weights", "missing.pt"], "--weights"),
    (["--method", "tnrd", "--max-steps", "3"], "--max-steps"),
    (["--method", "tnrd", "--threads", str((os.cpu_count() or 1) + 1)], "--threads"),
])
def test_cli_errors_name_the_flag(tmp_path, rng, capsys, extra, flag):
    np.save(tmp_path / "in.npy", rng.random((16, 16)).astype(np.float32))
    argv = ["denoise", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy"), "--quiet", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("pdediff denoise: error:") and flag in err[-1], err
    assert not (tmp_path / "out.npy").exists()


@pytest.mark.parametrize("content", [b"hello\n", b""])
def test_cli_weights_not_an_archive(tmp_path, rng, capsys, content):
    """A text (or empty) --weights file: one line naming the flag, never numpy's advice to unpickle it."""
    np.save(tmp_path / "in.npy", rng.random((16, 16)).astype(np.float32))
    (tmp_path / "m.npz").write_bytes(content)
    argv = ["denoise", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy"), "--quiet", "--method", "tnrd",
            "--weights", str(tmp_path / "m.npz")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--weights" in err[0] and "pickle" not in err[0], err
    assert not (tmp_path / "out.npy").exists()


def test_cli_train_denoiser_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train-denoiser", "cnn", "--out", str(out), "--steps", "2", "--quiet"]) == 0
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 2 and (out / "cnn.npz").exists() and (out / "training.json").exists()
    assert main(["train-denoiser", "cnn", "--out", str(out), "--steps", "3"]) == 0
    report = capsys.readouterr().out
    assert "to step 3" in report
    weights = report.split("--weights ")[-1].strip()  # the command the report suggests names the file written
    assert weights == str(out / "cnn.npz") and "cnn.pt" not in report, report
    model = CNNDenoiser.load(out / "cnn.npz")
    assert model.config == {"channels": 1, "depth": 8, "width": 32, "seed": 0}
    assert main(["train-denoiser", "cnn", "--out", str(out), "--steps", "0"]) == 2


@pytest.fixture(scope="module")
def shipped():
    """The shipped weights, read once for the module, with the network unreachable."""
    import socket

    import pdediff.torch.denoisers as dn

    saved = dict(dn._LOADED)
    dn._LOADED.clear()
    real = socket.socket.connect

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    socket.socket.connect = refuse
    try:
        models = {n: load_denoiser(n) for n in ("tnrd", "cnn")}
    finally:
        socket.socket.connect = real
        dn._LOADED.update(saved)
    return models


def test_shipped_weights_load_offline_and_denoise(shipped):
    from skimage import data

    from pdediff.torch.denoisers import _WEIGHTS, RECIPES

    assert isinstance(shipped["tnrd"], ReactionDiffusion) and isinstance(shipped["cnn"], CNNDenoiser)
    assert {k: shipped["cnn"].config[k] for k in RECIPES["cnn"]["model"]} == RECIPES["cnn"]["model"]
    assert shipped["tnrd"].config["stages"] == RECIPES["tnrd"]["model"]["stages"]
    assert sum(f.stat().st_size for f in _WEIGHTS.glob("*.npz")) < 5e6
    clean = data.camera()[200:296, 200:296] / 255.0  # held out: camera is a test image
    noisy = clean + 0.1 * np.random.default_rng(0).standard_normal(clean.shape)

    def psnr(x):
        return 10 * np.log10(1 / np.mean((x - clean) ** 2))

    for name, model in shipped.items():
        out = denoise_learned(noisy, name, model=model)
        assert psnr(out) > psnr(noisy) + 5, name  # 20 dB noisy; both models reach 26+ on this crop


def test_shipped_weights_hold_no_pickle_and_round_trip(tmp_path, tiny):
    """The shipped files are plain .npy members (numpy refuses object arrays with allow_pickle=False), and a model
    written as .npz reads back identical, config included; a foreign .npz is refused with CheckpointError."""
    import zipfile

    from pdediff.errors import CheckpointError
    from pdediff.torch.denoisers import _WEIGHTS

    files = sorted(_WEIGHTS.glob("*.npz"))
    assert [f.stem for f in files] == ["cnn", "tnrd"] and not list(_WEIGHTS.glob("*.pt"))
    for f in files:
        names = zipfile.ZipFile(f).namelist()
        assert names and all(n.endswith(".npy") for n in names), f
        with np.load(f, allow_pickle=False) as z:
            assert all(z[n].dtype != object for n in z.files)
    for name, cls in (("tnrd", ReactionDiffusion), ("cnn", CNNDenoiser)):
        model = tiny[name]
        model.save(tmp_path / f"{name}.npz")
        back = cls.load(tmp_path / f"{name}.npz")
        a, b = model.state_dict(), back.state_dict()
        assert back.config == model.config
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    np.savez(tmp_path / "foreign.npz", x=np.zeros(3))
    with pytest.raises(CheckpointError, match="foreign.npz"):
        CNNDenoiser.load(tmp_path / "foreign.npz")
    (tmp_path / "cnn-as-tnrd.npz").write_bytes((tmp_path / "cnn.npz").read_bytes())
    with pytest.raises(CheckpointError, match="not a pdediff"):
        ReactionDiffusion.load(tmp_path / "cnn-as-tnrd.npz")


def test_slice_axis_breaks_ties_by_the_fewest_cells_and_noise_level_above_range_refused(tiny):
    """Equal spacings: the planes are the largest (a (12, 12, 2) volume gives two 12 x 12 planes, not 12 of 12 x 2);
    the largest spacing still wins when unequal; a noise level above the image's range is refused."""
    from pdediff.torch.denoisers import slice_axis

    assert slice_axis((1.0, 1.0, 1.0), (12, 12, 2)) == 2
    assert slice_axis((1.0, 1.0, 1.0), (5, 12, 12)) == 0
    assert slice_axis((1.0, 3.0, 1.0), (12, 12, 2)) == 1
    assert slice_axis((2.0, 1.0, 2.0), (12, 12, 4)) == 2
    vol = np.random.default_rng(0).random((12, 12, 2))
    model = tiny["tnrd"]
    got = denoise_learned(vol, "tnrd", model=model)
    lo, hi = denoise_learned.__globals__["_robust_range"](vol)  # the volume's range, as the 3-D call maps it
    want = np.stack([denoise_learned(vol[..., k], "tnrd", model=model, data_range=(lo, hi)) for k in range(2)], -1)
    np.testing.assert_allclose(got, want, atol=1e-6)
    with pytest.raises(ParameterError, match="sigma"):
        denoise_learned(vol[..., 0], "cnn", model=tiny["cnn"], sigma=5.0)
