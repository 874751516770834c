"""Fresh-eyes findings on the API and the command line (Reliability III): advice that applies to the option at
hand, conductance choices per method, Dask input to inpaint, max_iter, infinite kappa and the demo without
OpenCV."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from cli_checks import one_error_line

import pdediff
from pdediff.cli import main


# ----------------------------------------------------------------------------- 1. too anisotropic: kind-aware


def test_too_anisotropic_advice_follows_the_kind():
    # EED has no alpha (it is refused for EED), yet the message said "raise alpha" to EED users.
    from pdediff.anisotropic.tensor import too_anisotropic_error

    eed, ced = too_anisotropic_error(15, "eed"), too_anisotropic_error(15, "ced")
    assert eed.param == "spacing" and "alpha" not in str(eed) and "less anisotropic spacing" in str(eed)
    assert ced.param == "alpha" and "raise alpha" in str(ced) and "spacing" in str(ced)
    assert eed.render(lambda n, v: "--" + n).count("--spacing") == 1


def test_semi_implicit_eed_handles_the_spacing_explicit_eed_handles():
    # Explicit EED ran at spacing (1, 1e6); semi-implicit refused it ("Selling's reduction did not finish in
    # 4096 steps; raise alpha"): its links now fall back to the Lagrange–Gauss reduction the explicit path uses.
    skimage_data = pytest.importorskip("skimage.data")
    img = skimage_data.camera()[:64, :64] / 255.0  # 15 of its cells needed more than 4096 flips
    out, info = pdediff.tensor_diffusion(img, method="semi-implicit", dt=1e3, spacing=(1, 1e6), return_info=True)
    assert info.method == "semi-implicit" and info.max_offset > 1000 and np.isfinite(out).all()
    # the maximum-minimum principle of the semi-implicit scheme, and mass (Neumann)
    assert img.min() - 1e-12 <= out.min() and out.max() <= img.max() + 1e-12
    assert out.mean() == pytest.approx(img.mean(), rel=1e-9)


# ----------------------------------------------------------------------------- 2. --conductance per method


@pytest.fixture
def noisy(tmp_path):
    p = tmp_path / "a.npy"
    np.save(p, np.random.default_rng(0).random((16, 16)).astype(np.float32))
    return p


def test_cli_conductance_weickert_reaches_eed(noisy, tmp_path):
    # argparse refused 'weickert' ("invalid choice") although the help called it EED's default.
    assert main(["denoise", str(noisy), "-o", str(tmp_path / "w.npy"), "--method", "eed", "--conductance",
                 "weickert", "--num-iter", "1", "--quiet"]) == 0
    ref = tmp_path / "d.npy"
    assert main(["denoise", str(noisy), "-o", str(ref), "--method", "eed", "--num-iter", "1", "--quiet"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "w.npy"), np.load(ref))  # weickert is the default


@pytest.mark.parametrize("method,bad,allowed", [("eed", "tukey", "weickert, exponential, rational"),
                                                ("explicit", "weickert", "exponential, rational, tukey"),
                                                ("aos", "weickert", "exponential, rational, tukey")])
def test_cli_conductance_of_the_other_method_is_refused_with_this_methods_list(noisy, tmp_path, capsys, method,
                                                                               bad, allowed):
    assert main(["denoise", str(noisy), "-o", str(tmp_path / "o.npy"), "--method", method, "--conductance", bad,
                 "--quiet"]) == 2
    one_error_line(capsys, "--conductance must be one of " + allowed, f"got {bad}")
    assert not (tmp_path / "o.npy").exists()


def test_cli_conductance_help_lists_both_methods(capsys):
    with pytest.raises(SystemExit):
        main(["denoise", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "Perona–Malik exponential, rational or tukey" in out and "EED weickert, exponential or rational" in out


# ----------------------------------------------------------------------------- 3. Dask input to inpaint


@pytest.mark.parametrize("which", ["image", "mask"])
def test_inpaint_refuses_dask_input_naming_it(which):
    # A Dask image came back as a NumPy array computed in memory, unlike every other solver's lazy result.
    da = pytest.importorskip("dask.array")
    img = np.random.default_rng(1).random((12, 12))
    mask = np.zeros(img.shape, bool)
    mask[4:7, 4:7] = True
    args = {"image": img, "mask": mask}
    args[which] = da.from_array(args[which], chunks=6)
    with pytest.raises(pdediff.ParameterError, match=f"{which} is a Dask array.*compute") as e:
        pdediff.inpaint(args["image"], args["mask"])
    assert e.value.param == which


# ----------------------------------------------------------------------------- 4. max_iter


@pytest.mark.parametrize("method", ["harmonic", "biharmonic"])
def test_inpaint_max_iter_zero_is_a_parameter_error(method):
    # max_iter=0 was accepted and then raised RuntimeError("did not reach tol ... within max_iter=0").
    img = np.random.default_rng(2).random((10, 10))
    mask = np.zeros(img.shape, bool)
    mask[3:6, 3:6] = True
    with pytest.raises(pdediff.ParameterError, match="max_iter must be a positive integer; got 0") as e:
        pdediff.inpaint(img, mask, method=method, max_iter=0)
    assert e.value.param == "max_iter"
    with pytest.raises(TypeError, match="max_iter must be a positive integer"):
        pdediff.inpaint(img, mask, method=method, max_iter=1.5)


# ----------------------------------------------------------------------------- 5. infinite kappa


@pytest.mark.parametrize("call", [
    lambda u, k: pdediff.perona_malik(u, kappa=k),
    lambda u, k: pdediff.perona_malik(u, kappa=k, method="aos"),
    lambda u, k: pdediff.tensor_diffusion(u, kappa=k),
    lambda u, k: pdediff.inpaint(u, np.eye(*u.shape, dtype=bool), method="perona_malik", kappa=k),
])
def test_infinite_kappa_is_refused_naming_kappa(call):
    # perona_malik(kappa=inf) silently became linear diffusion, while sigma/dt/spacing = inf were refused.
    u = np.random.default_rng(4).random((10, 10))
    with pytest.raises(pdediff.ParameterError, match="kappa must be a positive finite number.*solve_heat") as e:
        call(u, float("inf"))
    assert e.value.param == "kappa"


def test_torch_bridge_refuses_infinite_kappa():
    torch = pytest.importorskip("torch")
    from pdediff.torch import perona_malik, tensor_diffusion

    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    for fn in (tensor_diffusion, lambda t, kappa: perona_malik(t, kappa=kappa, sigma=0.0)):
        with pytest.raises(pdediff.ParameterError, match="kappa must be a positive finite number") as e:
            fn(x, kappa=float("inf"))
        assert e.value.param == "kappa"


@pytest.mark.parametrize("method", ["explicit", "eed"])
def test_cli_kappa_inf_isone_error_line(noisy, tmp_path, capsys, method):
    assert main(["denoise", str(noisy), "-o", str(tmp_path / "o.npy"), "--method", method, "--kappa", "inf",
                 "--quiet"]) == 2
    one_error_line(capsys, "--kappa must be a positive finite number")
    assert not (tmp_path / "o.npy").exists()


# ----------------------------------------------------------------------------- 6. the demo without OpenCV


def test_inpaint_demo_says_when_opencv_is_missing(monkeypatch, capsys, tmp_path):
    # The OpenCV rows vanished without a word when cv2 was not installed.
    import skimage.data

    from pdediff.demo import inpaint_demo

    small = (np.random.default_rng(5).random((40, 40, 3)) * 255).astype(np.uint8)
    monkeypatch.setattr(skimage.data, "astronaut", lambda: small)
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 raises ImportError
    results = inpaint_demo(tmp_path, figure=False)
    out = capsys.readouterr().out
    assert not any(name.startswith("OpenCV") for name in results)
    notes = [line for line in out.splitlines() if "OpenCV rows skipped" in line]
    assert len(notes) == 1 and "pip install opencv-python-headless" in notes[0]

