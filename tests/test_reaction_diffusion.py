"""Trainable nonlinear reaction–diffusion (pdediff.torch.reaction_diffusion)."""

import pickle
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pdediff  # noqa: E402
from pdediff.errors import CheckpointError, ParameterError  # noqa: E402
from pdediff.torch import ReactionDiffusion, plot_reaction_diffusion, train_reaction_diffusion  # noqa: E402

F64 = torch.float64


@pytest.mark.parametrize("conductance", ["exponential", "rational", "tukey"])
@pytest.mark.parametrize("ndim,shape,dt", [(2, (13, 17), 0.25), (3, (6, 7, 9), 1 / 6)])
@pytest.mark.parametrize("filter_size", [2, 3, 5])
def test_perona_malik_initialisation_is_one_explicit_step(conductance, ndim, shape, dt, filter_size):
    rng = np.random.default_rng(1)
    u = rng.random(shape)
    ref = pdediff.perona_malik(u, num_iter=1, method="explicit", sigma=0, kappa=0.3, dt=dt, conductance=conductance)
    model = ReactionDiffusion.from_perona_malik(0.3, dt, conductance=conductance, ndim=ndim,
                                                filter_size=filter_size, dtype=F64)
    with torch.no_grad():
        out = model(torch.from_numpy(u)).numpy()
    np.testing.assert_allclose(out, ref, rtol=0, atol=4e-16)
    assert not np.allclose(out, u)  # the step did something


def test_perona_malik_stages_and_extra_filters_and_batches():
    rng = np.random.default_rng(2)
    u = 100.0 * rng.random((2, 9, 11))  # intensities far from [0, 1]: kappa in the same units
    ref = np.stack([pdediff.perona_malik(im, num_iter=3, method="explicit", sigma=0, kappa=20.0, dt=0.2)
                    for im in u])
    model = ReactionDiffusion.from_perona_malik(20.0, 0.2, stages=3, filters=6, filter_size=5, dtype=F64)
    with torch.no_grad():
        out = model(torch.from_numpy(u)).numpy()
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)


def test_untrained_default_model_is_the_identity_and_keeps_constants():
    model = ReactionDiffusion(2, stages=2, filters=4, filter_size=3, dtype=F64)
    x = torch.rand(2, 8, 8, dtype=F64)
    assert torch.equal(model(x), x)
    with torch.no_grad():
        w = torch.randn(4, 63, dtype=F64)
        model.rbf_weights[0].copy_(w - w.flip(1))  # odd influence functions: phi(0) = 0
        model.pm_weights[1].fill_(0.2)
        model.reaction[1].fill_(0.1)
    c = torch.full((1, 6, 7), 0.5, dtype=F64)
    # zero-mean filters respond 0 to a constant image, and phi(0) = 0: a constant stays a constant
    torch.testing.assert_close(model(c), c, rtol=0, atol=1e-12)
    assert not torch.allclose(model(x), x)


def test_gradcheck_tiny_float64_model():
    model = ReactionDiffusion(2, stages=2, filters=2, filter_size=3, num_rbf=5, kappa=0.5, dtype=F64, seed=3)
    with torch.no_grad():
        for t in range(2):
            model.rbf_weights[t].normal_(0, 0.3)
            model.pm_weights[t].fill_(0.1)
            model.reaction[t].fill_(0.05)
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in model.parameters())
    x = torch.rand(1, 5, 6, dtype=F64, requires_grad=True)

    def run(x, *ps):
        return torch.func.functional_call(model, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(run, (x, *params))
    model3 = ReactionDiffusion(3, stages=1, filters=2, filter_size=2, num_rbf=4, dtype=F64, seed=4)
    with torch.no_grad():
        model3.rbf_weights[0].normal_(0, 0.3)
    x3 = torch.rand(1, 3, 4, 3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(model3, (x3,))


def _images(n=2, size=20, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        im = np.zeros((size, size))
        a, b = rng.integers(2, size // 2, 2)
        im[a:a + 8, b:b + 8] = 1.0
        out.append(im * 0.8 + 0.1)
    return out


def test_training_decreases_the_loss():
    torch.manual_seed(0)
    model = ReactionDiffusion.from_perona_malik(0.1, 0.2, stages=2, filters=4, filter_size=3, num_rbf=15)
    before = ReactionDiffusion.from_perona_malik(0.1, 0.2, stages=2, filters=4, filter_size=3, num_rbf=15)
    imgs = _images()
    gen = torch.Generator().manual_seed(5)
    clean = torch.stack([torch.as_tensor(im, dtype=torch.float32)[:16, :16] for im in imgs])
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=gen)
    with torch.no_grad():
        loss0 = float(((before(noisy) - clean) ** 2).mean())
    res = train_reaction_diffusion(model, imgs, noise_levels=(0.1, 0.1), steps=30, batch_size=4, patch_size=16,
                                   lr=1e-2, seed=0)
    assert res.step == 30 and len(res.losses) == 30
    with torch.no_grad():
        loss1 = float(((model(noisy) - clean) ** 2).mean())
    assert loss1 < 0.9 * loss0
    assert np.mean(res.losses[-5:]) < np.mean(res.losses[:5])


def test_resume_is_bit_for_bit(tmp_path, monkeypatch):
    import pdediff.torch.reaction_diffusion as rd

    kw = dict(noise_levels=(0.0, 0.25), steps=8, batch_size=3, patch_size=12, lr=5e-3, seed=7, checkpoint_every=2)
    imgs = _images()

    def fresh():
        return ReactionDiffusion(2, stages=2, filters=3, filter_size=3, num_rbf=9)

    full = fresh()
    r_full = train_reaction_diffusion(full, imgs, checkpoint_dir=tmp_path / "a", **kw)

    class Stop(Exception):
        pass

    calls = {"n": 0}
    orig = rd._batch

    def interrupted(*args, **kwargs):  # the run dies while drawing step 5's batch (after step 4's checkpoint)
        calls["n"] += 1
        if calls["n"] > 5:
            raise Stop
        return orig(*args, **kwargs)

    monkeypatch.setattr(rd, "_batch", interrupted)
    with pytest.raises(Stop):
        train_reaction_diffusion(fresh(), imgs, checkpoint_dir=tmp_path / "b", **kw)
    monkeypatch.setattr(rd, "_batch", orig)
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["step"] == 4
    again = fresh()
    r_again = train_reaction_diffusion(again, imgs, checkpoint_dir=tmp_path / "b", **kw)
    assert r_again.step == 8 and r_again.losses == r_full.losses
    for (k, a), b in zip(full.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    done = train_reaction_diffusion(fresh(), imgs, checkpoint_dir=tmp_path / "a", **kw)  # nothing left to do
    assert done.losses == r_full.losses


def test_resume_with_other_settings_is_refused(tmp_path):
    imgs = _images()
    kw = dict(steps=2, batch_size=2, patch_size=10, seed=0, checkpoint_dir=tmp_path)
    train_reaction_diffusion(ReactionDiffusion(2, 1, 2, 3, num_rbf=5), imgs, lr=1e-3, **kw)
    with pytest.raises(CheckpointError, match="lr"):
        train_reaction_diffusion(ReactionDiffusion(2, 1, 2, 3, num_rbf=5), imgs, lr=2e-3, **kw)
    with pytest.raises(CheckpointError, match="image_sums"):  # other images of the same shapes
        train_reaction_diffusion(ReactionDiffusion(2, 1, 2, 3, num_rbf=5), [im * 0.5 for im in imgs], lr=1e-3, **kw)
    with pytest.raises(CheckpointError, match="model"):
        train_reaction_diffusion(ReactionDiffusion(2, 1, 3, 3, num_rbf=5), imgs, lr=1e-3, **kw)


def test_save_load_roundtrip_and_malicious_files_are_refused(tmp_path):
    model = ReactionDiffusion(3, stages=1, filters=2, filter_size=3, num_rbf=5, dtype=F64)
    with torch.no_grad():
        model.rbf_weights[0].normal_()
    model.save(tmp_path / "m.pt")
    loaded = ReactionDiffusion.load(tmp_path / "m.pt")
    assert loaded.config == model.config
    x = torch.rand(1, 4, 5, 6, dtype=F64)
    assert torch.equal(loaded(x), model(x))

    ran = []

    class Payload:
        def __reduce__(self):
            return (ran.append, ("ran",))

    for name, obj in (("raw.pt", None), ("torch.pt", {"kind": "pdediff.ReactionDiffusion", "config": Payload(),
                                                      "model": {}})):
        path = tmp_path / name
        if obj is None:
            with open(path, "wb") as f:
                pickle.dump({"kind": Payload()}, f)
        else:
            torch.save(obj, path)
            ran.clear()  # torch.save pickles through __reduce__ without calling it; make sure
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(CheckpointError, match="not loaded"):
                ReactionDiffusion.load(path)
        assert not ran
        assert not caught, [str(w.message) for w in caught]
    # a training checkpoint holding code is refused too, before training starts
    ckdir = tmp_path / "ck"
    ckdir.mkdir()
    torch.save({"kind": "pdediff.ReactionDiffusion", "settings": Payload()}, ckdir / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="not loaded"):
        train_reaction_diffusion(ReactionDiffusion(2, 1, 2, 3, num_rbf=5), _images(), steps=1, batch_size=1,
                                 patch_size=8, checkpoint_dir=ckdir)
    assert not ran
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        ReactionDiffusion.load(tmp_path / "junk.pt")


@pytest.mark.parametrize("kwargs,param", [({"ndim": 4}, "ndim"), ({"stages": 0}, "stages"),
                                          ({"filters": 0}, "filters"), ({"filter_size": 1}, "filter_size"),
                                          ({"num_rbf": 0}, "num_rbf"), ({"rbf_range": -1.0}, "rbf_range"),
                                          ({"kappa": 0.0}, "kappa"), ({"conductance": "nope"}, "conductance")])
def test_bad_constructor_values_raise_parameter_error(kwargs, param):
    with pytest.raises(ParameterError) as err:
        ReactionDiffusion(**kwargs)
    assert err.value.param == param and "{" + param + "}" in err.value.template


@pytest.mark.parametrize("kwargs,name", [({"ndim": 2.0}, "ndim"), ({"stages": "5"}, "stages"),
                                         ({"filters": True}, "filters"), ({"kappa": "0.1"}, "kappa"),
                                         ({"conductance": None}, "conductance"), ({"dtype": torch.int64}, "dtype"),
                                         ({"zero_mean": 1}, "zero_mean")])
def test_bad_constructor_types_raise_type_error(kwargs, name):
    with pytest.raises(TypeError, match=name):
        ReactionDiffusion(**kwargs)


def test_bad_training_and_init_arguments():
    imgs = _images()
    model = ReactionDiffusion(2, 1, 2, 3, num_rbf=5)
    cases = [({"steps": -1}, "steps"), ({"batch_size": 0}, "batch_size"), ({"patch_size": 64}, "patch_size"),
             ({"lr": 0.0}, "lr"), ({"noise_levels": (0.3, 0.1)}, "noise_levels"), ({"greedy": 2.0}, "greedy"),
             ({"noise_levels": (-0.1, 0.1)}, "noise_levels")]
    for kw, param in cases:
        with pytest.raises(ParameterError) as err:
            train_reaction_diffusion(model, imgs, **{"steps": 1, "patch_size": 8, **kw})
        assert err.value.param == param, kw
    with pytest.raises(ParameterError) as err:
        train_reaction_diffusion(model, [np.zeros((4, 4, 4))], steps=1, patch_size=2)
    assert err.value.param == "images"
    with pytest.raises(TypeError, match="model"):
        train_reaction_diffusion(torch.nn.Identity(), imgs, steps=1)
    with pytest.raises(TypeError, match="noise_levels"):
        train_reaction_diffusion(model, imgs, steps=1, noise_levels=0.1)
    with pytest.raises(ParameterError) as err:
        ReactionDiffusion.from_perona_malik(0.1, -0.2)
    assert err.value.param == "dt"
    with pytest.raises(ParameterError) as err:
        ReactionDiffusion.from_perona_malik(0.1, 0.2, ndim=3, filters=2)
    assert err.value.param == "filters"
    with pytest.raises(ParameterError) as err:
        model(torch.rand(5))
    assert err.value.param == "x"


def test_components_and_figure():
    model = ReactionDiffusion.from_perona_malik(0.2, 0.25, filters=3, filter_size=3, num_rbf=7, dtype=F64)
    w, s, phi = model.components(0)
    assert w.shape == (3, 3, 3) and phi.shape == (3, s.size)
    expected = 0.25 * s * np.exp(-(s / 0.2) ** 2)
    np.testing.assert_allclose(phi[0], expected, atol=1e-15)
    np.testing.assert_allclose(phi[2], 0.0)
    with pytest.raises(ParameterError):
        model.components(1)
    import matplotlib

    matplotlib.use("Agg")
    fig = plot_reaction_diffusion(model)
    assert len(fig.axes) == 6
    import matplotlib.pyplot as plt

    plt.close(fig)


@pytest.mark.parametrize("num_rbf", [1, 5, 63])
def test_influence_functions_are_the_gaussian_mixture_plus_the_pm_term(num_rbf):
    model = ReactionDiffusion(2, stages=1, filters=3, filter_size=3, num_rbf=num_rbf, rbf_range=0.8, kappa=0.3,
                              conductance="rational", dtype=F64)
    with torch.no_grad():
        model.rbf_weights[0].normal_()
        model.pm_weights[0].copy_(torch.tensor([0.1, -0.2, 0.3], dtype=F64))
    s = torch.linspace(-3, 3, 301, dtype=F64)
    s = torch.cat([s, torch.tensor([1e8, -1e8], dtype=F64)])
    mu = torch.linspace(-0.8, 0.8, num_rbf, dtype=F64)
    gamma = 1.6 / (num_rbf - 1) if num_rbf > 1 else 0.8
    w = model.rbf_weights[0].detach()
    dense = (w[:, None, :] * torch.exp(-0.5 * ((s[None, :, None] - mu) / gamma) ** 2)).sum(-1)
    pm = model.pm_weights[0].detach()[:, None] * s / (1 + (s / 0.3) ** 2)
    with torch.no_grad():
        phi = model.influence(0, s.view(1, 1, -1).expand(1, 3, -1).contiguous())[0]
    torch.testing.assert_close(phi, dense + pm, rtol=0, atol=1e-11)


@pytest.mark.parametrize("conductance", ["exponential", "rational", "tukey"])
@pytest.mark.parametrize("ndim,shape", [(2, (2, 23, 31)), (3, (9, 10, 11))])
def test_inference_table_matches_the_exact_mixture(conductance, ndim, shape):
    """float32 without gradients: phi by table, K/K^T by unfold/fold (2-D); the exact path within 1e-4."""
    model = ReactionDiffusion.from_perona_malik(0.1, 0.2 if ndim == 2 else 0.15, conductance=conductance, stages=3,
                                                ndim=ndim, filters=6, filter_size=4 if ndim == 2 else 3, seed=1)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in range(3):
            model.rbf_weights[t].copy_(0.02 * torch.randn(model.rbf_weights[t].shape, generator=gen))
            model.reaction[t].fill_(0.1)
    x = torch.rand(shape, generator=gen)
    with torch.no_grad():
        fast = model(x)
        assert len(model._tables) == 3  # the table path ran
        model.lookup = False
        exact = model(x)
        model.lookup = True
        again = model(x)
        model.rbf_weights[1].add_(0.01)  # new weights: the cached table is rebuilt
        changed = model(x)

    assert float((fast - exact).abs().max()) < 1e-4
    assert float((fast - exact).abs().max()) > 0  # a different evaluation, not the same code
    assert torch.equal(fast, again)
    assert float((changed - fast).abs().max()) > 1e-4
    # responses far outside the table: the Gaussians' tails are 0, the Perona–Malik term exact or negligible
    s = torch.tensor([[-50.0, -3.0, 0.0, 0.05, 3.0, 50.0]]).expand(6, -1).unsqueeze(0).contiguous()
    with torch.no_grad():
        table = model._table(0, s.device)
        torch.testing.assert_close(model._influence_table(0, s.clone(), table), model.influence(0, s),
                                   rtol=0, atol=2e-6)
    # with gradients (training) the exact path runs
    y = model(x)
    assert y.requires_grad


def test_compiled_table_lookup_matches_the_tensor_operations():
    """pdediff.kernels.cpu.lookup (one fused pass) against the same lookup in tensor operations."""
    model = ReactionDiffusion.from_perona_malik(0.1, 0.2, stages=1, filters=5, filter_size=3)
    with torch.no_grad():
        model.rbf_weights[0].copy_(0.05 * torch.randn(model.rbf_weights[0].shape,
                                                      generator=torch.Generator().manual_seed(2)))
    table = model._table(0, torch.device("cpu"))
    gen = torch.Generator().manual_seed(4)
    s = torch.cat([torch.randn(2, 5, 300, generator=gen) * 0.5,
                   torch.tensor([-1e9, -3.0, 0.0, 3.0, 1e9]).view(1, 1, 5).expand(2, 5, 5)], dim=2).contiguous()
    packed, start, inv_h, _ = table
    ref = model._interpolate(s, packed, start, inv_h)
    with torch.no_grad():
        fast = model._influence_table(0, s, table)
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-6)
    assert not torch.equal(fast, torch.zeros_like(fast))
    s[0, 0, 0] = float("nan")
    with torch.no_grad():
        assert torch.isnan(model._influence_table(0, s, table)[0, 0, 0])
