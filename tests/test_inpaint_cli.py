"""``pdediff inpaint`` and ``pdediff demo inpaint``: what a user with a damaged picture and a mask gets."""

import os

import numpy as np
import pytest
from cli_checks import one_error_line

from pdediff.cli import main

iio = pytest.importorskip("imageio.v3")


@pytest.fixture
def picture(tmp_path):
    """A 48x64 RGB uint8 picture with an edge, a crack mask painted as a red scribble, and the truth."""
    y, x = np.mgrid[0:48, 0:64]
    img = np.stack([np.where(x < 30, 200, 40), 60 + y, 100 + x], axis=-1).astype(np.uint8)
    mask = np.zeros((48, 64), bool)
    mask[20:22, 5:60] = True  # a crack across the edge
    mask[5:9, 40:44] = True
    iio.imwrite(tmp_path / "img.png", img)
    scribble = np.zeros((48, 64, 3), np.uint8)
    scribble[mask] = (255, 0, 0)
    iio.imwrite(tmp_path / "mask.png", scribble)
    return tmp_path, img, mask


@pytest.mark.parametrize("method", ["harmonic", "biharmonic", "perona_malik"])
def test_inpaint_png_keeps_known_pixels_and_fills_holes(picture, method, capsys):
    d, img, mask = picture
    args = ["inpaint", str(d / "img.png"), "--mask", str(d / "mask.png"), "-o", str(d / "out.png"),
            "--method", method, "--preview", str(d / "pv.png")]
    assert main(args) == 0
    out = iio.imread(d / "out.png")
    assert out.dtype == np.uint8 and out.shape == img.shape
    np.testing.assert_array_equal(out[~mask], img[~mask])  # known pixels untouched
    # the crack crossing the edge is filled close to the truth (the picture is smooth along the crack)
    err = np.abs(out[mask].astype(int) - img[mask].astype(int))
    assert np.median(err) <= 3, np.median(err)
    assert (d / "pv.png").stat().st_size > 0
    text = capsys.readouterr().out
    assert f"method {method}" in text and "filled" in text
    assert sorted(os.listdir(d)) == ["img.png", "mask.png", "out.png", "pv.png"]


def test_inpaint_npy_float_and_3d_volume(tmp_path):
    rng = np.random.default_rng(0)
    vol = np.cumsum(rng.random((12, 14, 16)), axis=2)  # smooth along x
    m = np.zeros(vol.shape, bool)
    m[4:8, 5:9, 6:10] = True
    np.save(tmp_path / "v.npy", vol)
    np.save(tmp_path / "m.npy", m)
    assert main(["inpaint", str(tmp_path / "v.npy"), "--mask", str(tmp_path / "m.npy"), "-o",
                 str(tmp_path / "o.npy"), "--spacing", "2", "1", "1", "--quiet"]) == 0
    out = np.load(tmp_path / "o.npy")
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out[~m], vol[~m])
    import pdediff

    np.testing.assert_allclose(out, pdediff.inpaint(vol, m, spacing=(2, 1, 1)), rtol=0, atol=1e-12)


def test_inpaint_refuses_bad_masks_before_writing(picture, capsys):
    d, img, mask = picture
    run = lambda m, *extra: main(["inpaint", str(d / "img.png"), "--mask", str(m), "-o", str(d / "o.png"),
                                  *extra])  # noqa: E731
    np.save(d / "empty.npy", np.zeros((48, 64), bool))
    assert run(d / "empty.npy") == 2
    one_error_line(capsys, "--mask", "no pixel")
    np.save(d / "full.npy", np.ones((48, 64), np.uint8))
    assert run(d / "full.npy") == 2
    one_error_line(capsys, "--mask", "every pixel")
    np.save(d / "small.npy", np.ones((10, 10), bool))
    assert run(d / "small.npy") == 2
    one_error_line(capsys, "--mask", "(48, 64)")
    np.save(d / "nan.npy", np.full((48, 64), np.nan))
    assert run(d / "nan.npy") == 2
    one_error_line(capsys, "--mask", "NaN")
    assert run(d / "missing.png") == 2
    one_error_line(capsys, "--mask")
    assert run(d / "img.png") == 2
    one_error_line(capsys, "--mask", "INPUT")
    # the mask is an input too: never an output
    assert main(["inpaint", str(d / "img.png"), "--mask", str(d / "mask.png"), "-o", str(d / "mask.png"),
                 "--force"]) == 2
    one_error_line(capsys, "MASK")
    assert not (d / "o.png").exists()
    assert iio.imread(d / "mask.png").shape == (48, 64, 3)


def test_inpaint_option_errors_are_one_line(picture, capsys):
    d, img, mask = picture
    base = ["inpaint", str(d / "img.png"), "--mask", str(d / "mask.png"), "-o", str(d / "o.png")]
    assert main(base + ["--method", "learned"]) == 2
    one_error_line(capsys, "--run")
    assert main(base + ["--run", str(d)]) == 2
    one_error_line(capsys, "--run", "learned")
    assert main(base + ["--kappa", "3"]) == 2
    one_error_line(capsys, "--kappa", "harmonic")
    assert main(base + ["--method", "learned", "--run", str(d)]) == 2
    one_error_line(capsys, "not a run folder")
    assert main(base + ["--num-inference-steps", "3"]) == 2
    one_error_line(capsys, "--num-inference-steps", "harmonic")
    assert main(base + ["--method", "perona_malik", "--num-iter", "0"]) == 2
    one_error_line(capsys, "--num-iter")
    assert main(base + ["--method", "perona_malik", "--kappa", "abc"]) == 2
    one_error_line(capsys, "--kappa")
    # issue 20: the learned model has no physical pixel size (--spacing was passed as 1, silently)
    assert main(base + ["--method", "learned", "--run", str(d), "--spacing", "2", "1"]) == 2
    one_error_line(capsys, "--spacing", "learned")
    # spacing whose biharmonic couplings fall below float64's resolution: refused by name, not a NaN
    # residual blamed on max_iter/tol
    assert main(base + ["--method", "biharmonic", "--spacing", "1e-50", "1e50"]) == 2
    one_error_line(capsys, "--spacing", "too anisotropic")
    (d / "o.png").write_bytes(b"keep")
    assert main(base) == 2
    one_error_line(capsys, "--force")
    assert (d / "o.png").read_bytes() == b"keep"


def test_biharmonic_overshoot_into_uint8_is_clipped_or_refused_on_request(tmp_path, capsys):
    # a thin dark bar inside a hole at an edge: biharmonic continues the slopes below 0
    img = np.zeros((24, 24), np.uint8)
    img[:, 12:] = 255
    img[8:16, 14:16] = 0
    m = np.zeros(img.shape, bool)
    m[6:18, 9:18] = True
    m[8:16, 14:16] = False
    np.save(tmp_path / "i.npy", img)
    np.save(tmp_path / "m.npy", m)
    base = ["inpaint", str(tmp_path / "i.npy"), "--mask", str(tmp_path / "m.npy"), "--method", "biharmonic"]
    assert main(base + ["-o", str(tmp_path / "o.png"), "--strict-range"]) == 2
    one_error_line(capsys, "uint8", "--strict-range")
    assert not (tmp_path / "o.png").exists()
    assert main(base + ["-o", str(tmp_path / "o.png")]) == 0
    assert "clipped" in capsys.readouterr().out
    out = iio.imread(tmp_path / "o.png")
    np.testing.assert_array_equal(out[~m], img[~m])
    assert out[m].min() == 0
    # --clip of earlier releases still works, with one warning line: clipping is the default now
    assert main(base + ["-o", str(tmp_path / "c.png"), "--clip", "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--clip is deprecated" in err[0] and "--strict-range" in err[0], err
    np.testing.assert_array_equal(iio.imread(tmp_path / "c.png"), out)
    # float output keeps the overshoot, unclipped
    assert main(base + ["-o", str(tmp_path / "o.npy"), "--quiet"]) == 0
    assert np.load(tmp_path / "o.npy").min() < -1


def test_demo_inpaint_part(tmp_path, capsys):
    pytest.importorskip("skimage")
    assert main(["demo", "inpaint", "--output-dir", str(tmp_path), "--no-figure"]) == 0
    text = capsys.readouterr().out
    assert "pdediff Perona–Malik" in text and "scikit-image biharmonic" in text
    assert "Heat equation" not in text  # only the part asked for
    assert main(["demo", "nope"]) == 2
    one_error_line(capsys, "unknown PART nope")


def test_editor_masks_rgba_layers_and_jpeg_noise(picture, capsys):
    """Masks as editors save them: RGBA with an opaque black background, a transparent layer whose hidden
    colour is white, and a JPEG-like mask whose noise must not grow the holes."""
    d, img, mask = picture
    opaque = np.zeros((48, 64, 4), np.uint8)
    opaque[..., 3] = 255
    opaque[mask, 0] = 255
    iio.imwrite(d / "opaque.png", opaque)
    hidden_white = np.full((48, 64, 4), 255, np.uint8)
    hidden_white[..., 3] = 0
    hidden_white[mask, 3] = 255
    hidden_white[mask, 1:3] = 0
    iio.imwrite(d / "hidden.png", hidden_white)
    rng = np.random.default_rng(1)
    noisy = np.where(mask, 240, 0) + rng.integers(0, 12, mask.shape)  # compression noise around 0 and 250
    np.save(d / "noisy.npy", noisy.astype(np.uint8))
    for m, note in (("opaque.png", "alpha"), ("hidden.png", "alpha"), ("noisy.npy", "thresholded")):
        assert main(["inpaint", str(d / "img.png"), "--mask", str(d / m), "-o", str(d / f"o-{m}.png")]) == 0
        text = capsys.readouterr().out
        assert f"filled {int(mask.sum())} pixels" in text, text
        assert note in text
        out = iio.imread(d / f"o-{m}.png")
        np.testing.assert_array_equal(out[~mask], img[~mask])


def test_clip_counts_only_what_rounding_would_not_keep_and_pm_hint(picture, capsys):
    d, img, mask = picture
    base = ["inpaint", str(d / "img.png"), "--mask", str(d / "mask.png")]
    assert main(base + ["-o", str(d / "h.png")]) == 0  # harmonic: maximum principle, nothing clipped
    assert "clipped" not in capsys.readouterr().out
    y, x = np.mgrid[0:24, 0:24]
    img2 = np.zeros((24, 24), np.uint8)
    img2[:, 12:] = 255
    img2[8:16, 14:16] = 0
    m2 = np.zeros(img2.shape, bool)
    m2[6:18, 9:18] = True
    m2[8:16, 14:16] = False
    np.save(d / "i2.npy", img2)
    np.save(d / "m2.npy", m2)
    assert main(["inpaint", str(d / "i2.npy"), "--mask", str(d / "m2.npy"), "-o", str(d / "p.png"),
                 "--method", "perona_malik", "--strict-range"]) == 2
    one_error_line(capsys, "--strict-range")


def _cracks(shape, seed=0):
    """Eight horizontal and eight vertical two-pixel cracks at seeded places."""
    rng = np.random.default_rng(seed)
    m = np.zeros(shape, bool)
    for _ in range(8):
        r = rng.integers(5, shape[0] - 8)
        m[r:r + 2, 4:-4] = True
        c = rng.integers(5, shape[1] - 8)
        m[4:-4, c:c + 2] = True
    return m


@pytest.mark.parametrize("photo", ["camera", "astronaut"])
@pytest.mark.parametrize("method", ["biharmonic", "perona_malik"])
def test_ordinary_photos_inpaint_with_the_readme_command(tmp_path, capsys, photo, method):
    """``pdediff inpaint photo.png --mask m.png -o out.png`` failed on uint8 photos ("values span -14..260,
    outside uint8's range") unless --clip: the filled pixels are now clipped to the known pixels' range and
    counted; known pixels never change; --strict-range refuses instead."""
    data = pytest.importorskip("skimage.data")
    import pdediff

    img = getattr(data, photo)()[256:384, 256:384]  # edges where the fill overshoots
    mask = _cracks(img.shape[:2])
    iio.imwrite(tmp_path / "photo.png", img)
    iio.imwrite(tmp_path / "m.png", (mask * 255).astype(np.uint8))
    ch = -1 if img.ndim == 3 else None
    ref = pdediff.inpaint(img, mask, method=method, channel_axis=ch)
    keep = ~mask if ch is None else np.broadcast_to(~mask[..., None], img.shape)
    lo, hi = int(img[keep].min()), int(img[keep].max())
    n_out = int(np.count_nonzero((np.rint(ref) < lo) | (np.rint(ref) > hi)))
    assert n_out > 0 and (np.rint(ref).min() < 0 or np.rint(ref).max() > 255)  # uint8 cannot hold the fill
    base = ["inpaint", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "m.png"), "--method", method]
    assert main(base + ["-o", str(tmp_path / "strict.png"), "--strict-range"]) == 2
    one_error_line(capsys, "uint8", "--strict-range")
    assert not (tmp_path / "strict.png").exists()
    assert main(base + ["-o", str(tmp_path / "out.png")]) == 0
    assert f"clipped {n_out} filled value(s) to the known pixels' range {lo}..{hi}" in capsys.readouterr().out
    out = iio.imread(tmp_path / "out.png")
    assert out.dtype == np.uint8 and out.shape == img.shape
    np.testing.assert_array_equal(out[keep], img[keep])  # known pixels never change
    np.testing.assert_array_equal(out, np.clip(np.rint(ref), lo, hi).astype(np.uint8))
