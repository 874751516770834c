"""RePaint inpainting, SDEdit restyling and the processes' forward transitions."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import itertools

from pdediff.torch import (
    BlurringDiffusion,
    ColdDiffusion,
    GaussianDiffusion,
    HeatDissipation,
    UNet,
    heat_blur,
    repaint,
    restyle,
    sample,
    train,
    train_run,
)
from pdediff.torch.data import load_dataset
from pdediff.torch.restoration import _repaint_schedule, restyle_steps


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _x0(n=1, seed=0, shape=(1, 8, 8), dtype=torch.float64):
    return torch.rand((n,) + shape, dtype=dtype, generator=_gen(seed)) * 2 - 1


def processes():
    return [
        GaussianDiffusion(num_train_timesteps=12),
        HeatDissipation(num_train_timesteps=8, sigma_blur_max=4.0),
        BlurringDiffusion(num_train_timesteps=12, sigma_blur_max=4.0),
        ColdDiffusion(num_train_timesteps=6, sigma_blur_max=4.0),
        ColdDiffusion(num_train_timesteps=4, operator="perona_malik", kappa=0.3, training_noise=0.01),
    ]


IDS = ["ddpm", "ihdm", "blurring", "cold-heat", "cold-pm"]


@pytest.fixture(scope="module")
def untrained():
    """Each process fitted on 30 digits, with a tiny untrained UNet (random weights, seeded)."""
    data, _ = load_dataset("digits", split="train", n=60)
    out = []
    for p in processes():
        p.fit(data[:30])
        torch.manual_seed(0)
        model = UNet(1, base=8, mults=(1,))
        # a non-zero output layer: the zero-initialised one would make every model the same
        for q in model.parameters():
            q.data.add_(0.05 * torch.randn(q.shape, generator=_gen(1)))
        out.append((p, model.eval()))
    return out


# ------------------------------------------------------------------------------ forward transitions
def _moments(p, x0, t, s, n=6000, seed=3):
    """Mean and per-pixel std of forward_transition(x_t ~ q(x_t|x0)), and of q(x_s|x0) drawn directly."""
    g = _gen(seed)
    xb = x0.expand(n, -1, -1, -1).contiguous()
    xt = p.add_noise(xb, torch.randn(xb.shape, generator=g, dtype=xb.dtype), t) if t >= 0 else xb.clone()
    xs = p.forward_transition(xt, t, s, g)
    direct = p.add_noise(xb, torch.randn(xb.shape, generator=g, dtype=xb.dtype), s)
    return xs, direct


@pytest.mark.parametrize("p", [GaussianDiffusion(num_train_timesteps=20),
                               GaussianDiffusion(num_train_timesteps=20, beta_schedule="cosine"),
                               BlurringDiffusion(num_train_timesteps=20, sigma_blur_max=3.0),
                               HeatDissipation(num_train_timesteps=10, sigma_blur_max=3.0, training_noise=0.2)],
                         ids=["ddpm-linear", "ddpm-cosine", "blurring", "ihdm"])
@pytest.mark.parametrize("t,s", [(-1, 4), (3, 4), (2, 9)])
def test_forward_transition_matches_the_marginal(p, t, s):
    """q(x_s|x_t) applied to samples of q(x_t|x0) has the mean, variance and pixel correlation of q(x_s|x0)."""
    x0 = _x0(shape=(1, 6, 6))
    xs, direct = _moments(p, x0, t, s)
    n = xs.shape[0]
    sd = direct.std(0)
    assert torch.all((xs.mean(0) - direct.mean(0)).abs() <= 6 * sd / np.sqrt(n) + 1e-12)
    assert torch.all((xs.std(0) / sd - 1).abs() < 0.07)
    # white noise stays white: neighbouring pixels uncorrelated as in the marginal (a transition that only
    # blurs, without completing the noise, fails this for the heat processes)
    def corr(x):
        r = x - x.mean(0)
        return float((r[..., :, 1:] * r[..., :, :-1]).mean() / (r.std() ** 2))
    assert abs(corr(xs) - corr(direct)) < 0.05


def test_gaussian_transition_is_the_composition_of_single_steps():
    """Exact case: x_s = sqrt(abar_s/abar_t) x_t + sqrt(1 - abar_s/abar_t) eps, from the betas by hand."""
    p = GaussianDiffusion(num_train_timesteps=10)
    x = _x0(4)
    noise = torch.randn(x.shape, generator=_gen(5), dtype=x.dtype)
    got = p.forward_transition(x, 2, 6, _gen(5))
    a = np.prod(1 - p.betas.numpy()[3:7])
    torch.testing.assert_close(got, np.sqrt(a) * x + np.sqrt(1 - a) * noise, rtol=0, atol=1e-12)


def test_heat_transition_deterministic_part_is_the_blur_of_the_level():
    """Without noise the heat semigroup lands exactly on blur(s), for IHDM, from clean and from a level."""
    p = HeatDissipation(num_train_timesteps=8, sigma_blur_min=0.5, sigma_blur_max=4.0, training_noise=0.0)
    x0 = _x0(3, shape=(1, 7, 9))
    for t, s in [(-1, 0), (-1, 7), (1, 2), (2, 6)]:
        xt = p.blur(x0, t)
        torch.testing.assert_close(p.forward_transition(xt, t, s), p.blur(x0, s), rtol=0, atol=1e-12)
    # the semigroup in the other direction of the check: one blur of tau_s - tau_t, by the operator itself
    d = float(p.blur_times[5] - p.blur_times[2])
    torch.testing.assert_close(p.forward_transition(p.blur(x0, 2), 2, 5), heat_blur(p.blur(x0, 2), d))


def test_blurring_transition_without_noise_reaches_the_level_mean():
    p = BlurringDiffusion(num_train_timesteps=20, sigma_blur_max=3.0)
    x0 = _x0(1, shape=(1, 6, 6))
    xs, direct = _moments(p, x0, 5, 12, n=4000)
    torch.testing.assert_close(xs.mean(0), direct.mean(0), rtol=0, atol=0.06)


def test_cold_transition_redegrades_the_clean_estimate():
    for p in (ColdDiffusion(num_train_timesteps=6, sigma_blur_max=4.0),
              ColdDiffusion(num_train_timesteps=4, operator="perona_malik", kappa=0.3)):
        x0 = _x0(2)
        xt = p.degrade(x0, torch.tensor([1, 1]))
        torch.testing.assert_close(p.forward_transition(xt, 1, 3, pred_original_sample=x0), p.degrade(x0, 3))
        with pytest.raises(ValueError, match="pred_original_sample"):
            p.forward_transition(xt, 1, 3)
    # on the degradation manifold it is the semigroup: F(tau_s - tau_t) x_t for the heat operator
    p = ColdDiffusion(num_train_timesteps=6, sigma_blur_max=4.0)
    x0 = _x0(2)
    xt = p.degrade(x0, 1)
    d = float(p.blur_times[4] - p.blur_times[1])
    torch.testing.assert_close(p.forward_transition(xt, 1, 4, pred_original_sample=x0), heat_blur(xt, d))


@pytest.mark.parametrize("t,s,match", [(3, 3, "larger"), (4, 2, "larger"), (-2, 3, r"\[-1, 11\]"),
                                       (0, 12, r"\[-1, 11\]"), (0.5, 3, "integer")])
def test_forward_transition_refuses_bad_levels(t, s, match):
    with pytest.raises((ValueError, TypeError), match=match):
        GaussianDiffusion(num_train_timesteps=12).forward_transition(_x0(), t, s)


# ------------------------------------------------------------------------------ RePaint schedule
def test_repaint_schedule_is_diffusers():
    """Hand-traced from diffusers' RePaintScheduler.set_timesteps(6, jump_length=2, jump_n_sample=2)."""
    assert _repaint_schedule(6, 2, 2) == [6, 5, 4, 3, 2, 3, 4, 3, 2, 1, 0, 1, 2, 1, 0]
    assert _repaint_schedule(5, 10, 1) == [5, 4, 3, 2, 1, 0]
    for n, j, r in [(20, 3, 4), (50, 10, 10), (7, 6, 3)]:
        st = _repaint_schedule(n, j, r)
        assert st[0] == n and st[-1] == 0
        assert all(abs(a - b) == 1 for a, b in itertools.pairwise(st))
        assert min(st) == 0 and max(st) == n
        ups = sum(b > a for a, b in itertools.pairwise(st))
        assert ups == j * (r - 1) * len(range(0, n - j, j))


# ------------------------------------------------------------------------------ RePaint, every process
@pytest.mark.parametrize("i", range(len(IDS)), ids=IDS)
def test_repaint_runs_keeps_known_pixels_and_never_reads_the_hole(untrained, i):
    p, model = untrained[i]
    x, _ = load_dataset("digits", split="test", n=20)
    x = x[:5]
    hole = torch.zeros(8, 8, dtype=torch.bool)
    hole[2:6, 1:5] = True
    kw = {"jump_length": 2, "jump_n_sample": 2, "num_inference_steps": min(4, p.num_train_timesteps)}
    out = repaint(model, p, x, hole, generator=_gen(0), **kw)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out[..., ~hole], x[..., ~hole])
    assert torch.isfinite(out).all()
    assert not torch.equal(out[..., hole], x[..., hole])
    # the hole's content is never read: garbage there changes nothing, bit for bit
    y = x.clone()
    y[..., hole] = -x[..., hole]
    torch.testing.assert_close(repaint(model, p, y, hole, generator=_gen(0), **kw), out, rtol=0, atol=0)
    # reproducible with a seeded generator; another seed differs
    torch.testing.assert_close(repaint(model, p, x, hole, generator=_gen(0), **kw), out, rtol=0, atol=0)


def test_repaint_without_known_pixels_or_hole(untrained):
    p, model = untrained[0]
    x = _x0(3, dtype=torch.float32).clamp(-1, 1)
    none = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    assert torch.equal(repaint(model, p, x, none, jump_n_sample=1, num_inference_steps=4, generator=_gen(0)), x)
    every = ~none
    out = repaint(model, p, x, every, jump_n_sample=1, num_inference_steps=4, generator=_gen(0))
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"mask": np.zeros((8, 8), dtype=np.float32)}, TypeError, "boolean"),
    ({"mask": torch.zeros(3, 8, dtype=torch.bool)}, ValueError, "broadcast"),
    ({"images": torch.zeros(2, 1, 8, 8, dtype=torch.int64)}, TypeError, "float32 or float64"),
    ({"images": torch.zeros(2, 8, 8)}, ValueError, r"\(N, C, H, W\)"),
    ({"images": torch.full((2, 1, 8, 8), 1.5)}, ValueError, r"\[-1, 1\]"),
    ({"images": torch.full((2, 1, 8, 8), float("nan"))}, ValueError, "NaN"),
    ({"images": torch.zeros(2, 1, 8, 8, dtype=torch.complex64)}, TypeError, "float32 or float64"),
    ({"jump_length": 0}, ValueError, "jump_length"),
    ({"jump_n_sample": 1.5}, ValueError, "jump_n_sample"),
    ({"jump_length": 4, "jump_n_sample": 2, "num_inference_steps": 4}, ValueError, "smaller than"),
    ({"num_inference_steps": 99}, ValueError, "num_inference_steps"),
])
def test_repaint_refuses_bad_input(untrained, kwargs, exc, match):
    p, model = untrained[0]
    args = {"images": torch.zeros(2, 1, 8, 8), "mask": np.ones((8, 8), dtype=bool), "jump_length": 2,
            "jump_n_sample": 2, "num_inference_steps": 4} | kwargs
    images, mask = args.pop("images"), args.pop("mask")
    with pytest.raises(exc, match=match):
        repaint(model, p, images, mask, **args)


# ------------------------------------------------------------------------------ RePaint quality
@pytest.fixture(scope="module")
def trained_pair():
    """DDPM and IHDM trained 200 steps on the digits' training split (UNet base 8): ~15 s on one core."""
    data, _ = load_dataset("digits", split="train")
    out = {}
    for name, p in (("ddpm", GaussianDiffusion(num_train_timesteps=20, beta_start=2e-3, beta_end=0.4)),
                    ("ihdm", HeatDissipation(num_train_timesteps=10, sigma_blur_max=6.0))):
        torch.manual_seed(0)
        res = train(UNet(1, base=8, mults=(1,)), p, data, steps=200, batch_size=32, lr=2e-3, ema_decay=0.99,
                    seed=0, progress=False, ema_warmup=True)
        out[name] = (p, res.ema_model)
    return out


@pytest.mark.parametrize("name", ["ddpm", "ihdm"])
def test_repaint_fills_a_hole_better_than_the_prior(trained_pair, name):
    """PSNR inside a 4x4 hole of held-out digits: RePaint beats unconditional samples pasted in, by > 1 dB."""
    p, model = trained_pair[name]
    x, _ = load_dataset("digits", split="test", n=300)
    x = x[:100]
    hole = torch.zeros(8, 8, dtype=torch.bool)
    hole[2:6, 2:6] = True

    def psnr(y):
        mse = float(((y.clamp(-1, 1) - x)[..., hole] ** 2).mean())
        return 10 * np.log10(4.0 / mse)

    out = repaint(model, p, x, hole, jump_length=3, jump_n_sample=3, generator=_gen(0))
    assert torch.equal(out[..., ~hole], x[..., ~hole])
    prior = sample(model, p, len(x), generator=_gen(10), progress=False)
    pasted = torch.where(hole, prior, x)
    assert psnr(out) > psnr(pasted) + 1.0, (psnr(out), psnr(pasted))


# ------------------------------------------------------------------------------ restyle (SDEdit)
@pytest.mark.parametrize("i", range(len(IDS)), ids=IDS)
def test_restyle_strength_zero_is_the_input_and_one_is_sampling(untrained, i):
    p, model = untrained[i]
    x, _ = load_dataset("digits", split="test", n=20)
    x = x[:4]
    steps = min(4, p.num_train_timesteps)
    out0 = restyle(model, p, x, 0.0, num_inference_steps=steps, generator=_gen(0))
    assert torch.equal(out0, x) and out0 is not x
    g1, g2 = _gen(7), _gen(7)
    a = restyle(model, p, x, 1.0, num_inference_steps=steps, generator=g1)
    b = sample(model, p, len(x), generator=g2, num_inference_steps=steps, progress=False)
    assert torch.equal(a, b)  # the same prior draw and the same noise sequence: bit for bit
    assert torch.equal(g1.get_state(), g2.get_state())
    mid = restyle(model, p, x, 0.5, num_inference_steps=steps, generator=_gen(0))
    assert mid.shape == x.shape and torch.isfinite(mid).all() and not torch.equal(mid, x)


def test_restyle_strength_map():
    assert [restyle_steps(s, 10) for s in (0, 0.05, 0.1, 0.3, 0.7, 0.99, 0.999999, 1)] == [0, 0, 1, 3, 7, 9, 9, 10]
    assert restyle_steps(0.29, 100) == 29  # floor with a guard: 0.29 * 100 = 28.999999999999996
    for bad in (-0.1, 1.1, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match="strength"):
            restyle_steps(bad, 10)


def test_restyle_runs_the_last_steps_from_add_noise(untrained):
    """strength 0.5 of 4 steps: add_noise at timesteps[2] and the last two reverse steps, by hand."""
    p, model = untrained[0]
    x = _x0(2, dtype=torch.float32)
    p.set_timesteps(4)
    ts = p.timesteps.tolist()
    g = _gen(3)
    y = p.add_noise(x, torch.randn(x.shape, generator=g, dtype=x.dtype), ts[2])
    with torch.no_grad():
        for t in ts[2:]:
            y = p.step(model(y, torch.full((2,), t)), t, y, generator=g).prev_sample
    torch.testing.assert_close(restyle(model, p, x, 0.5, num_inference_steps=4, generator=_gen(3)), y,
                               rtol=0, atol=0)


def test_restyle_strength_one_needs_a_fitted_prior():
    p = HeatDissipation(num_train_timesteps=4)
    with pytest.raises(RuntimeError, match="fit"):
        restyle(UNet(1, base=8, mults=(1,)), p, torch.zeros(1, 1, 8, 8), 1.0)


# ------------------------------------------------------------------------------ Run conveniences
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "ihdm"
    return train_run(folder, process="ihdm", data={"spec": "digits", "n": 60}, steps=3, base=8, mults=(1,),
                     batch_size=8, config={"num_train_timesteps": 6}, device="cpu", progress=False)


def test_run_repaint_and_restyle(tiny_run):
    run = tiny_run
    x, _ = load_dataset("digits", split="test", n=20)
    x = x[:5].numpy().astype(np.float64)
    hole = np.zeros((8, 8), dtype=bool)
    hole[:, 5:] = True
    out = run.repaint(x, hole, seed=1, jump_length=2, jump_n_sample=2, batch_size=2)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_array_equal(out[..., ~hole], x.astype(np.float32)[..., ~hole])
    assert out.min() >= -1 and out.max() <= 1
    np.testing.assert_array_equal(out, run.repaint(x, hole, seed=1, jump_length=2, jump_n_sample=2,
                                                   batch_size=2))
    np.testing.assert_array_equal(run.restyle(x, 0.0), x.astype(np.float32))
    np.testing.assert_array_equal(run.restyle(x, 1.0, seed=4, num_inference_steps=3, batch_size=2),
                                  run.sample(5, seed=4, num_inference_steps=3, batch_size=2))
    r = run.restyle(x, 0.5, seed=0)
    assert r.dtype == np.float32 and r.shape == x.shape


@pytest.mark.parametrize("call,exc,match", [
    (lambda r, x: r.repaint(x[:, :, :6], np.ones((8, 8), bool)), ValueError, r"\(N, 1, 8, 8\)"),
    (lambda r, x: r.repaint(x, np.ones((8, 8), np.uint8)), TypeError, "boolean"),
    (lambda r, x: r.repaint(x, np.ones((3, 8), bool)), ValueError, "broadcast"),
    (lambda r, x: r.repaint(x > 0, np.ones((8, 8), bool)), TypeError, "bool"),
    (lambda r, x: r.repaint(x * 3, np.ones((8, 8), bool)), ValueError, r"\[-1, 1\]"),
    (lambda r, x: r.repaint(x, np.ones((8, 8), bool), num_inference_steps=0), ValueError,
     "num_inference_steps"),
    (lambda r, x: r.repaint(x, np.ones((8, 8), bool), batch_size=0), ValueError, "batch_size"),
    (lambda r, x: r.restyle(x, 2.0), ValueError, "strength"),
    (lambda r, x: r.restyle(np.where(x > 0, np.nan, x), 0.5), ValueError, "NaN"),
    (lambda r, x: r.restyle(x, 0.5, seed=-1), ValueError, "seed"),
])
def test_run_methods_refuse_bad_input(tiny_run, call, exc, match):
    x, _ = load_dataset("digits", split="test", n=20)
    with pytest.raises(exc, match=match):
        call(tiny_run, x[:2].numpy())


def test_repaint_work_is_bounded(untrained):
    """A typo in jump_n_sample is refused before any model call (RePaint's cost is about n * jump_n_sample)."""
    from pdediff import StepLimitError

    process, model = untrained[0]  # DDPM
    x = torch.zeros(1, 1, 8, 8)
    hole = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    hole[..., 2:5, 2:5] = True
    with pytest.raises(StepLimitError, match="jump_n_sample"):
        repaint(model, process, x, hole, jump_length=1, jump_n_sample=1_000_000)


def test_run_methods_explain_the_batch_shape(tiny_run):
    with pytest.raises(ValueError, match=r"image\[None, None\]"):
        tiny_run.restyle(np.zeros((8, 8), np.float32), 0.5)
