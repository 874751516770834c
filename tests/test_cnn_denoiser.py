"""The noise-level-conditional CNN denoiser (pdediff.torch.cnn_denoiser)."""

import pickle
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pdediff.errors import CheckpointError, ParameterError  # noqa: E402
from pdediff.torch import CNNDenoiser, estimate_noise_level, train_cnn_denoiser  # noqa: E402

F64 = torch.float64


def _images(channels=1):
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:32, :40] / 32.0
    base = [np.float32(0.5 + 0.4 * np.sin(3 * x + 2 * y)), np.float32((x > 0.5) * 0.8 + 0.1)]
    if channels == 1:
        return base
    return [np.stack([b, 1 - b, b * 0.5]) + np.float32(0.01 * rng.random((3, 32, 40))) for b in base]


def _perturbed(model, scale=0.05, seed=1):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def test_untrained_model_is_the_identity_and_shapes():
    for channels in (1, 3):
        model = CNNDenoiser(channels, depth=4, width=8)
        x = torch.rand(2, channels, 11, 13)
        torch.testing.assert_close(model(x, 0.1), x, rtol=0, atol=0)
        assert model(x.double(), torch.tensor([0.1, 0.2])).dtype == F64
    assert sum(p.numel() for p in CNNDenoiser().parameters()) == (2 * 32 + 6 * 32 * 32 + 32) * 9 + 7 * 32 + 1


def test_the_noise_level_map_and_the_residual():
    model = _perturbed(CNNDenoiser(1, depth=3, width=4, dtype=F64))
    x = torch.rand(2, 1, 9, 10, dtype=F64)
    with torch.no_grad():
        a, b = model(x, 0.0), model(x, 0.3)
    assert float((a - b).abs().max()) > 1e-4  # the level is an input
    # the residual: out = x - net([x, sigma]); the network's output by hand
    z = torch.cat([x, torch.full_like(x, 0.3)], 1)
    for i, conv in enumerate(model.layers):
        z = conv(z)
        z = torch.relu(z) if i < len(model.layers) - 1 else z
    torch.testing.assert_close(b, (x - z).detach(), rtol=0, atol=1e-15)
    # a per-image level: each image sees its own
    with torch.no_grad():
        both = model(x, torch.tensor([0.0, 0.3], dtype=F64))
    torch.testing.assert_close(both[0], a[0], rtol=0, atol=0)
    torch.testing.assert_close(both[1], b[1], rtol=0, atol=0)
    # None: the estimated level
    est = estimate_noise_level(x)
    torch.testing.assert_close(model(x), model(x, est), rtol=0, atol=0)


@pytest.mark.parametrize("sigma", [0.02, 0.1, 0.25])
def test_noise_level_estimate(sigma):
    gen = torch.Generator().manual_seed(3)
    y, x = torch.meshgrid(torch.linspace(0, 1, 256), torch.linspace(0, 1, 256), indexing="ij")
    clean = (0.5 + 0.3 * torch.sin(6 * x) * torch.cos(4 * y) + 0.2 * (x > 0.6)).view(1, 1, 256, 256)
    noisy = clean + sigma * torch.randn(clean.shape, generator=gen)
    est = float(estimate_noise_level(noisy)[0])
    assert abs(est - sigma) < 0.06 * sigma  # median of 16384 |N(0, sigma)|: about 1 % standard error; edges bias up
    assert float(estimate_noise_level(clean)[0]) < 0.005  # smooth image: no noise seen
    with pytest.raises(ParameterError, match="x"):
        estimate_noise_level(torch.rand(5, 5))


def test_gradcheck_tiny_float64_model():
    model = _perturbed(CNNDenoiser(1, depth=3, width=2, dtype=F64), scale=0.3)
    x = torch.rand(1, 1, 5, 6, dtype=F64, requires_grad=True)
    s = torch.tensor([0.1], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: model(a, b), (x, s))
    w = model.layers[1].weight
    assert torch.autograd.gradcheck(lambda _: model(x.detach(), 0.1), (w,))


@pytest.mark.parametrize("channels", [1, 3])
def test_training_decreases_the_loss(channels):
    torch.manual_seed(0)
    model = CNNDenoiser(channels, depth=4, width=8, seed=2)
    clean = torch.as_tensor(np.stack(_images(channels))).view(2, channels, 32, 40)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        loss0 = float(((model(noisy, 0.1) - clean) ** 2).mean())  # the identity: the noise's variance
    res = train_cnn_denoiser(model, _images(channels), steps=40, batch_size=4, patch_size=16, lr=3e-3,
                             noise_levels=(0.05, 0.2), seed=1)
    assert res.step == 40 and len(res.losses) == 40
    with torch.no_grad():
        loss1 = float(((model(noisy, 0.1) - clean) ** 2).mean())
    assert loss1 < 0.7 * loss0


def test_resume_is_bit_for_bit(tmp_path, monkeypatch):
    import pdediff.torch.cnn_denoiser as cd

    kw = dict(steps=8, batch_size=3, patch_size=12, lr=3e-3, seed=7, checkpoint_every=2)
    imgs = _images()
    full = CNNDenoiser(1, 3, 4)
    r_full = train_cnn_denoiser(full, imgs, checkpoint_dir=tmp_path / "a", **kw)

    class Stop(Exception):
        pass

    calls = {"n": 0}
    orig = cd._batch

    def interrupted(*args, **kwargs):  # dies while drawing step 5's batch (after step 4's checkpoint)
        calls["n"] += 1
        if calls["n"] > 5:
            raise Stop
        return orig(*args, **kwargs)

    monkeypatch.setattr(cd, "_batch", interrupted)
    with pytest.raises(Stop):
        train_cnn_denoiser(CNNDenoiser(1, 3, 4), imgs, checkpoint_dir=tmp_path / "b", **kw)
    monkeypatch.setattr(cd, "_batch", orig)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["step"] == 4
    again = CNNDenoiser(1, 3, 4)
    r_again = train_cnn_denoiser(again, imgs, checkpoint_dir=tmp_path / "b", **kw)
    assert r_again.step == 8 and r_again.losses == r_full.losses
    for (k, a), b in zip(full.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(CheckpointError, match="lr"):
        train_cnn_denoiser(CNNDenoiser(1, 3, 4), imgs, checkpoint_dir=tmp_path / "b", **{**kw, "lr": 1e-3})
    with pytest.raises(CheckpointError, match="model"):
        train_cnn_denoiser(CNNDenoiser(1, 3, 5), imgs, checkpoint_dir=tmp_path / "b", **kw)


def test_save_load_roundtrip_and_malicious_files_are_refused(tmp_path):
    model = _perturbed(CNNDenoiser(3, depth=3, width=4))
    model.save(tmp_path / "m.pt")
    loaded = CNNDenoiser.load(tmp_path / "m.pt")
    assert loaded.config == model.config
    x = torch.rand(1, 3, 7, 8)
    assert torch.equal(loaded(x, 0.1), model(x, 0.1))
    ran = []

    class Payload:
        def __reduce__(self):
            return (ran.append, ("ran",))

    for name, obj in (("raw.pt", None), ("torch.pt", {"kind": "pdediff.CNNDenoiser", "config": Payload(),
                                                      "model": {}})):
        path = tmp_path / name
        if obj is None:
            with open(path, "wb") as f:
                pickle.dump({"kind": Payload()}, f)
        else:
            torch.save(obj, path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(CheckpointError, match="not loaded"):
                CNNDenoiser.load(path)
        assert not ran
        assert not caught
    ckdir = tmp_path / "ck"
    ckdir.mkdir()
    torch.save({"kind": "pdediff.CNNDenoiser", "settings": Payload()}, ckdir / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="not loaded"):
        train_cnn_denoiser(CNNDenoiser(1, 3, 4), _images(), steps=1, batch_size=1, patch_size=8, checkpoint_dir=ckdir)
    assert not ran
    # another model's file is refused by kind
    from pdediff.torch import ReactionDiffusion

    ReactionDiffusion(2, 1, 2, 3, num_rbf=3).save(tmp_path / "rd.pt")
    with pytest.raises(CheckpointError, match="not a pdediff CNNDenoiser file"):
        CNNDenoiser.load(tmp_path / "rd.pt")


@pytest.mark.parametrize("kwargs,param", [({"channels": 0}, "channels"), ({"depth": 1}, "depth"),
                                          ({"width": 0}, "width"), ({"seed": -1}, "seed")])
def test_bad_arguments(kwargs, param):
    with pytest.raises(ParameterError) as err:
        CNNDenoiser(**kwargs)
    assert err.value.param == param
    model = CNNDenoiser(1, 3, 4)
    with pytest.raises(ParameterError, match="x"):
        model(torch.rand(1, 3, 8, 8), 0.1)
    with pytest.raises(ParameterError) as err:
        model(torch.rand(1, 1, 8, 8), -0.1)
    assert err.value.param == "sigma"
    with pytest.raises(ParameterError) as err:
        train_cnn_denoiser(model, _images(), steps=1, patch_size=64)
    assert err.value.param == "patch_size"
    with pytest.raises(ParameterError) as err:
        train_cnn_denoiser(model, _images(), steps=1, noise_levels=(0.2, 0.1))
    assert err.value.param == "noise_levels"
    with pytest.raises(TypeError):
        train_cnn_denoiser(object(), _images())


def test_stop_at_then_continue_equals_a_straight_run(tmp_path):
    from pdediff.torch import ReactionDiffusion, train_reaction_diffusion

    imgs = _images()
    kw = dict(steps=6, batch_size=2, patch_size=10, lr=3e-3, seed=3, checkpoint_every=100)
    straight = CNNDenoiser(1, 3, 4)
    r1 = train_cnn_denoiser(straight, imgs, **kw)
    part = CNNDenoiser(1, 3, 4)
    r2 = train_cnn_denoiser(part, imgs, checkpoint_dir=tmp_path / "c", stop_at=4, **kw)
    assert r2.step == 4  # stopped early, checkpoint written there
    r2 = train_cnn_denoiser(CNNDenoiser(1, 3, 4), imgs, checkpoint_dir=tmp_path / "c", **kw)
    assert r2.losses == r1.losses  # the lr drop at 0.8 * steps came at the same step
    # TNRD: its greedy schedule follows ``steps`` too
    kw = dict(steps=6, batch_size=2, patch_size=10, lr=3e-3, seed=3, greedy=0.5)
    r1 = train_reaction_diffusion(ReactionDiffusion(2, 2, 2, 3, num_rbf=5), imgs, **kw)
    train_reaction_diffusion(ReactionDiffusion(2, 2, 2, 3, num_rbf=5), imgs, checkpoint_dir=tmp_path / "t",
                             stop_at=2, **kw)
    r2 = train_reaction_diffusion(ReactionDiffusion(2, 2, 2, 3, num_rbf=5), imgs, checkpoint_dir=tmp_path / "t",
                                  **kw)
    assert r2.losses == r1.losses
