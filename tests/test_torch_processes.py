"""Forward processes: marginals, oracle reverse steps, configs, training and exact resumption."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pdediff  # noqa: E402
from pdediff.torch import (  # noqa: E402
    BlurringDiffusion,
    ColdDiffusion,
    ForwardProcess,
    GaussianDiffusion,
    HeatDissipation,
    UNet,
    heat_blur,
    load_process,
    sample,
    train,
)
from pdediff.torch import data as tdata  # noqa: E402
from pdediff.torch.ops import spectral_solver  # noqa: E402


def _x0(n=1, seed=0, shape=(1, 8, 8)):
    return torch.rand((n,) + shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def processes():
    return [
        GaussianDiffusion(num_train_timesteps=50),
        GaussianDiffusion(num_train_timesteps=50, beta_schedule="cosine"),
        HeatDissipation(num_train_timesteps=20, sigma_blur_max=4.0),
        BlurringDiffusion(num_train_timesteps=50, sigma_blur_max=4.0),
        ColdDiffusion(num_train_timesteps=10, sigma_blur_max=4.0),
        ColdDiffusion(num_train_timesteps=5, operator="perona_malik", kappa=0.2, training_noise=0.01),
    ]


IDS = ["ddpm-linear", "ddpm-cosine", "ihdm", "blurring", "cold-heat", "cold-pm"]


def _expected_marginal(p, x0, t):
    """Mean and standard deviation of x_t given x0, written from each paper's formula."""
    if isinstance(p, GaussianDiffusion):
        ab = float(p.alphas_cumprod[t])
        return np.sqrt(ab) * x0, np.sqrt(1 - ab)
    if isinstance(p, HeatDissipation):
        return heat_blur(x0, float(p.sigmas[t] ** 2 / 2)), p.training_noise
    if isinstance(p, BlurringDiffusion):
        ab = float(p.alphas_cumprod[t])
        sigma_b = 4.0 * np.sin((t + 1) / p.num_train_timesteps * np.pi / 2) ** 2
        tau = sigma_b**2 / 2
        s = spectral_solver((8, 8), torch.float64)
        lam = s.symbols[0][:, None] + s.symbols[1][None, :]
        d = (1 - p.min_scale) * np.exp(-lam * tau) + p.min_scale
        c = s.forward(x0[0, 0].numpy()) * np.sqrt(ab) * d
        return torch.from_numpy(s.inverse(c))[None, None], np.sqrt(1 - ab)
    return p.degrade(x0, torch.tensor([t])), float(p.config["training_noise"])


@pytest.mark.parametrize("p", processes(), ids=IDS)
def test_add_noise_marginal(p):
    x0 = _x0()
    t = (p.t_min + p.t_max) // 2
    n = 4000
    g = torch.Generator().manual_seed(1)
    noise = torch.randn((n,) + x0.shape[1:], generator=g, dtype=torch.float64)
    xt = p.add_noise(x0.expand(n, -1, -1, -1), noise, torch.full((n,), t))
    mean, std = _expected_marginal(p, x0, t)
    emp_mean, emp_std = xt.mean(0, keepdim=True), xt.std(0)
    tol = 5 * max(std, 1e-12) / np.sqrt(n) + 1e-10
    assert torch.all((emp_mean - mean).abs() <= tol)
    if std > 0:
        assert torch.all((emp_std / std - 1).abs() < 0.08)
    else:
        assert torch.all(emp_std < 1e-12)


def _oracle_output(p, x0, xt, t, noise):
    return p.training_target(x0, noise, torch.full((x0.shape[0],), t))


@pytest.mark.parametrize("p", processes(), ids=IDS)
def test_step_with_oracle_model(p):
    x0 = _x0(n=2)
    g = torch.Generator().manual_seed(2)
    for t in (p.t_max, (p.t_min + p.t_max) // 2, p.t_min):
        noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        xt = p.add_noise(x0, noise, torch.full((2,), t))
        out = p.step(_oracle_output(p, x0, xt, t, noise), t, xt, generator=g)
        if isinstance(p, (GaussianDiffusion, BlurringDiffusion)):
            torch.testing.assert_close(out.pred_original_sample, x0, atol=1e-8, rtol=0)
            if t == p.t_min:  # the last step is noise-free
                torch.testing.assert_close(out.prev_sample, x0, atol=1e-8, rtol=0)
        elif isinstance(p, HeatDissipation):
            sigma_prev = p.sigmas[t - 1] if t > 0 else 0.0  # timestep -1 is the clean image
            target_prev = heat_blur(x0, float(sigma_prev**2 / 2))
            torch.testing.assert_close(out.pred_original_sample, target_prev, atol=1e-10, rtol=0)
            resid = (out.prev_sample - target_prev).std()
            assert (resid < 3 * p.sampling_noise) if t > 0 else resid < 1e-12
        else:  # cold diffusion, Algorithm 2 with the true x0: lands exactly on D(x0, t-1) (plus the x_t noise)
            expect = p.degrade(x0, torch.full((2,), t - 1)) + (xt - p.degrade(x0, torch.full((2,), t)))
            torch.testing.assert_close(out.prev_sample, expect, atol=1e-10, rtol=0)
            if float(p.config["training_noise"]) == 0:
                torch.testing.assert_close(out.prev_sample, p.degrade(x0, torch.full((2,), t - 1)), atol=1e-10,
                                           rtol=0)


def test_ddpm_step_noise_has_posterior_variance():
    p = GaussianDiffusion(num_train_timesteps=100)
    x0 = torch.zeros(20000, 1, 1, 1, dtype=torch.float64)
    t = 50
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    xt = p.add_noise(x0, noise, t)
    out = p.step(noise, t, xt, generator=g)
    ab_t, ab_p = float(p.alphas_cumprod[t]), float(p.alphas_cumprod[t - 1])
    var = (1 - ab_p) / (1 - ab_t) * (1 - ab_t / ab_p)
    c_t = np.sqrt(1 - (1 - ab_t / ab_p)) * (1 - ab_p) / (1 - ab_t)
    resid = out.prev_sample - c_t * xt
    assert abs(float(resid.var()) / var - 1) < 0.05


@pytest.mark.parametrize("schedule", ["cosine", "cosine_logsnr"])
def test_blurring_without_blur_is_ddpm(schedule):
    gd = GaussianDiffusion(num_train_timesteps=40, beta_schedule=schedule)
    bd = BlurringDiffusion(num_train_timesteps=40, sigma_blur_max=0.0, beta_schedule=schedule)
    x0 = _x0(n=3, shape=(2, 6, 7))
    noise = torch.randn(x0.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    t = torch.tensor([0, 17, 39])
    torch.testing.assert_close(bd.add_noise(x0, noise, t), gd.add_noise(x0, noise, t), atol=1e-12, rtol=0)
    xt = gd.add_noise(x0, noise, 20)
    a = gd.step(noise, 20, xt, generator=torch.Generator().manual_seed(9))
    b = bd.step(noise, 20, xt, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(a.prev_sample, b.prev_sample, atol=1e-12, rtol=0)
    torch.testing.assert_close(a.pred_original_sample, b.pred_original_sample, atol=1e-12, rtol=0)


def test_cosine_logsnr_schedule_spans_the_papers_log_snr_range():
    """Hoogeboom & Salimans' schedule: log-SNR decreasing from just below 10 to exactly -10 at the last timestep."""
    for K in (7, 200, 5000):
        ab = GaussianDiffusion(num_train_timesteps=K, beta_schedule="cosine_logsnr").alphas_cumprod.numpy()
        logsnr = np.log(ab / (1 - ab))
        assert np.all(np.diff(logsnr) < 0)
        assert abs(logsnr[-1] + 10) < 1e-9 and logsnr[0] < 10
    assert logsnr[0] > 9.5  # K = 5000: the first timestep is next to log-SNR 10


def _blurring_eps_gain(p, shape=(8, 8)):
    """Per step and DCT coefficient, |d prev_sample / d model_output|: how much an error of the predicted noise
    moves the sample, measured through ``step`` itself (it is affine in the model output)."""
    from pdediff.torch.ops import dct, idct

    h, w = shape
    basis = idct(torch.eye(h * w, dtype=torch.float64).reshape(h * w, 1, h, w))  # one DCT mode per sample
    x = torch.zeros_like(basis)
    gains = []
    for t in p.timesteps.tolist():
        on = p.step(basis, t, x, generator=torch.Generator().manual_seed(0)).prev_sample
        off = p.step(torch.zeros_like(basis), t, x, generator=torch.Generator().manual_seed(0)).prev_sample
        resp = dct(on - off).reshape(h * w, h * w)
        torch.testing.assert_close(resp, torch.diag(resp.diagonal()), atol=1e-9, rtol=0)  # per frequency
        gains.append(resp.diagonal().abs().max().item())
    return np.array(gains)


def test_blurring_reverse_step_does_not_amplify_noise_errors():
    """The saturated samples of the study: with Nichol & Dhariwal's cosine (last beta 0.999) the first reverse
    step multiplied an error of the predicted noise by ~32 in every frequency (the mean brightness too); the
    paper's truncated log-SNR schedule, blurring's default, keeps every step's gain below 2."""
    fixed = _blurring_eps_gain(BlurringDiffusion(num_train_timesteps=200, sigma_blur_max=6.0))
    assert fixed.max() < 2.0
    capped = _blurring_eps_gain(BlurringDiffusion(num_train_timesteps=200, sigma_blur_max=6.0,
                                                  beta_schedule="cosine"))
    assert capped[0] > 30 and capped[1:].max() < 2.0


def test_blurring_step_is_the_per_frequency_gaussian_posterior():
    """``step`` with the true noise equals q(u_s | u_t, u_0) written by Bayes' rule per DCT coefficient:
    u_s ~ N(alpha_s u_0, sigma_s^2), u_t | u_s ~ N(alpha_{t|s} u_s, sigma_{t|s}^2)."""
    from pdediff.torch.ops import dct, idct

    p = BlurringDiffusion(num_train_timesteps=30, sigma_blur_max=3.0, min_scale=0.01)
    x0 = _x0(n=2, shape=(1, 6, 5))
    lam = torch.from_numpy(pdediff.torch.ops.laplacian_eigenvalues((6, 5)))
    for t in (29, 12, 0):
        s = t - 1
        noise = torch.randn(x0.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(t))
        xt = p.add_noise(x0, noise, t)
        out = p.step(noise, t, xt, generator=torch.Generator().manual_seed(3))

        def alpha_sigma(k):
            if k < 0:
                return torch.ones_like(lam), 0.0
            ab = float(p.alphas_cumprod[k])
            d = (1 - p.min_scale) * torch.exp(-lam * float(p.blur_times[k])) + p.min_scale
            return np.sqrt(ab) * d, np.sqrt(1 - ab)

        a_t, s_t = alpha_sigma(t)
        a_s, s_s = alpha_sigma(s)
        u0, ut = dct(x0), dct(xt)
        a_ts = a_t / a_s
        v_ts = s_t**2 - a_ts**2 * s_s**2
        if s < 0:
            expect = x0
        else:
            prec = 1 / s_s**2 + a_ts**2 / v_ts
            mean = (a_s * u0 / s_s**2 + a_ts * ut / v_ts) / prec
            white = torch.randn(x0.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
            expect = idct(mean + dct(white) / prec.sqrt())
        torch.testing.assert_close(out.prev_sample, expect, atol=1e-9, rtol=1e-9)
        torch.testing.assert_close(out.pred_original_sample, x0, atol=1e-9, rtol=0)


def test_blurring_sampler_with_the_exact_data_denoiser_returns_training_images():
    """With the exact noise prediction of the empirical training distribution (a finite mixture of points),
    the full sampler must end on training images: in range, nothing saturated."""
    from pdediff.torch.ops import dct, idct

    data = tdata.digits()[:40].double()
    p = BlurringDiffusion(num_train_timesteps=40, sigma_blur_max=6.0).fit(data)
    u0 = dct(data).reshape(len(data), -1)

    class Oracle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, xt, t):
            a, sig = p._alpha_sigma(t.long(), xt)
            ut, al, sig = dct(xt).reshape(len(xt), -1), a.reshape(len(xt), -1), sig.reshape(-1, 1)
            d2 = ((ut[:, None] - al[:, None] * u0[None]) ** 2).sum(-1)
            post = torch.softmax(-d2 / (2 * sig**2), dim=1) @ u0
            return idct(((ut - al * post) / sig).reshape(xt.shape))

    out = sample(Oracle(), p, 16, generator=torch.Generator().manual_seed(1), progress=False)
    nearest = torch.cdist(out.reshape(16, -1), data.reshape(len(data), -1)).min(1).values
    assert nearest.max() < 1e-6
    assert out.abs().max() <= 1 + 1e-9


@pytest.mark.parametrize("p", processes(), ids=IDS)
def test_config_json_round_trip(p, tmp_path):
    p.save_config(tmp_path)
    q = load_process(tmp_path)
    assert type(q) is type(p) and q.config == p.config
    x0 = _x0(n=2)
    noise = torch.randn(x0.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    t = torch.full((2,), p.t_max)
    torch.testing.assert_close(q.add_noise(x0, noise, t), p.add_noise(x0, noise, t))
    with pytest.raises(ValueError, match="config is for"):
        HeatDissipation.from_config({"class": "GaussianDiffusion", "num_train_timesteps": 10})


def test_timesteps_descend_and_cover_every_trained_level():
    p = HeatDissipation(num_train_timesteps=10)
    assert p.timesteps.tolist() == list(range(9, -1, -1))
    g = torch.Generator().manual_seed(0)
    seen = set(p.sample_timesteps(2000, g).tolist())
    assert seen == set(range(10))  # every level sampling uses is trained, K-1 included
    d = GaussianDiffusion(num_train_timesteps=1000)
    d.set_timesteps(50)
    ts = d.timesteps.tolist()
    assert ts[0] > ts[-1] and len(ts) == 50 and ts[-1] == 0


@pytest.mark.parametrize("p", processes(), ids=IDS)
def test_training_lowers_the_loss_and_sampling_runs(p):
    data = tdata.digits()[:256]
    torch.manual_seed(0)
    model = UNet(1, base=16, mults=(1, 2))
    res = train(model, p, data, steps=150, batch_size=32, lr=2e-3, ema_decay=0.9, seed=0, progress=False)
    first, last = np.mean(res.losses[:15]), np.mean(res.losses[-15:])
    assert last < 0.8 * first, (first, last)
    out = sample(res.ema_model, p, 4, generator=torch.Generator().manual_seed(0), progress=False)
    assert out.shape == (4, 1, 8, 8) and torch.all(torch.isfinite(out))


def test_resumed_training_is_bit_for_bit(tmp_path):
    data = tdata.shapes(64, (8, 8))
    p = HeatDissipation(num_train_timesteps=8, sigma_blur_max=3.0)

    def run(steps, ckdir):
        torch.manual_seed(0)
        model = UNet(1, base=8, mults=(1, 2))
        return model, train(model, p, data, steps=steps, batch_size=8, seed=4, checkpoint_dir=ckdir,
                            checkpoint_every=5, progress=False)

    m_full, full = run(20, tmp_path / "full")
    run(10, tmp_path / "resume")  # "interrupted" after 10 steps
    m_res, resumed = run(20, tmp_path / "resume")  # a new process picks up the checkpoint
    assert resumed.losses == full.losses
    for a, b in zip(m_full.state_dict().values(), m_res.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda p: p.add_noise(torch.zeros(2, 8, 8), torch.zeros(2, 8, 8), 1), ValueError, "(N, C, H, W)"),
        (lambda p: p.add_noise(torch.zeros(2, 1, 4, 4, dtype=torch.int64), torch.zeros(2, 1, 4, 4), 1), TypeError,
         "float32 or float64"),
        (lambda p: p.add_noise(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), torch.tensor([1, 2, 3])),
         ValueError, "one entry per sample"),
        (lambda p: p.add_noise(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), -1), ValueError, "must lie in"),
        (lambda p: p.add_noise(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), 0.5), TypeError, "integers"),
        (lambda p: p.set_timesteps(0), ValueError, "num_inference_steps"),
        (lambda p: p.sample_prior(3), RuntimeError, "fit"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call(HeatDissipation(num_train_timesteps=5))


def test_data_loaders():
    d = tdata.digits()
    assert d.shape == (1797, 1, 8, 8) and d.dtype == torch.float32 and d.min() >= -1 and d.max() <= 1
    s = tdata.shapes(10, (12, 20), seed=1)
    assert s.shape == (10, 1, 12, 20) and torch.equal(s, tdata.shapes(10, (12, 20), seed=1))
    pch = tdata.image_patches(5, (16, 24))
    assert pch.shape == (5, 1, 16, 24)
    with pytest.raises(ValueError, match="N, C, H, W"):
        tdata.as_tensor(np.zeros((3, 4)))


# ------------------------------------------------------------------ one timestep convention
@pytest.mark.parametrize("p", processes(), ids=IDS)
def test_one_timestep_convention(p):
    """Every process: timesteps 0..K-1, schedules descend to 0, the last step lands on the clean image."""
    K = p.num_train_timesteps
    assert (p.t_min, p.t_max) == (0, K - 1)
    for n in (K, 2, max(2, K // 3)):
        p.set_timesteps(n)
        ts = p.timesteps.tolist()
        assert len(ts) == n and len(set(ts)) == n and ts == sorted(ts, reverse=True)
        assert ts[-1] == 0 and ts[0] <= K - 1
        if p.timestep_spacing == "linspace":  # data-built priors live at K-1: sampling starts there
            assert ts[0] == K - 1
        chain = [ts[0]]
        while chain[-1] != -1:
            chain.append(p.previous_timestep(chain[-1]))
        assert chain == ts + [-1]
    p.set_timesteps(K)
    assert p.timesteps.tolist() == list(range(K - 1, -1, -1))
    seen = p.sample_timesteps(50 * K, torch.Generator().manual_seed(0))
    assert set(seen.tolist()) == set(range(K))
    with pytest.raises(ValueError, match="must lie in"):
        p.add_noise(_x0(), torch.zeros(1, 1, 8, 8, dtype=torch.float64), K)

    # step at timestep 0 returns the clean estimate, without noise (oracle model, noise-free x_0)
    x0 = _x0(n=2, seed=4)
    noise = torch.zeros_like(x0)
    xt = p.add_noise(x0, noise, 0)
    oracle = p.training_target(x0, noise, torch.zeros(2, dtype=torch.long))
    a = p.step(oracle, 0, xt, generator=torch.Generator().manual_seed(1))
    b = p.step(oracle, 0, xt, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a.prev_sample, x0, atol=1e-10, rtol=0)
    torch.testing.assert_close(a.pred_original_sample, x0, atol=1e-10, rtol=0)
    assert torch.equal(a.prev_sample, b.prev_sample)  # no sampling noise at the last step


@pytest.mark.parametrize("p", processes(), ids=IDS)
def test_previous_timestep_refuses_an_off_schedule_timestep(p):
    K = p.num_train_timesteps
    p.set_timesteps(3)
    ts = p.timesteps.tolist()
    off = next(t for t in range(K) if t not in ts)
    for bad in (off, K, -1):
        with pytest.raises(ValueError, match=r"not in the current sampling schedule \["):
            p.previous_timestep(bad)
    x = _x0(n=1)
    with pytest.raises(ValueError, match="set_timesteps"):
        p.step(torch.zeros_like(x), off, x)


def test_heat_levels_use_timestep_minus_one_for_clean():
    x0 = _x0(n=2)
    hd = HeatDissipation(num_train_timesteps=6, sigma_blur_min=0.5, sigma_blur_max=3.0)
    cd = ColdDiffusion(num_train_timesteps=6, sigma_blur_min=0.5, sigma_blur_max=3.0)
    for t in (-1, 0, 5):
        expect = heat_blur(x0, float(hd.sigmas[t] ** 2 / 2) if t >= 0 else 0.0)
        torch.testing.assert_close(hd.blur(x0, t), expect, atol=1e-12, rtol=0)
        torch.testing.assert_close(cd.degrade(x0, t), expect, atol=1e-12, rtol=0)  # one shared heat schedule
    np.testing.assert_allclose(hd.sigmas[[0, -1]], [0.5, 3.0])
    pm = ColdDiffusion(num_train_timesteps=3, operator="perona_malik", kappa=0.2, iters_per_level=2)
    assert torch.equal(pm.degrade(x0, -1), x0)
    expect = pdediff.perona_malik(x0[1].numpy(), num_iter=4, kappa=0.2, sigma=0.0, channel_axis=0)
    np.testing.assert_allclose(pm.degrade(x0, 1)[1].numpy(), expect, atol=1e-13)  # timestep 1 = level 2


# ------------------------------------------------------------------ cold diffusion prior
def _two_channel_digits(n=300):
    x = tdata.digits()[:n].double()
    return torch.cat([x, 0.5 * x.flip(-1) ** 2 - 0.3], 1)


def test_cold_prior_draws_fully_degraded_training_images():
    data = _two_channel_digits()
    p = ColdDiffusion(num_train_timesteps=8, sigma_blur_max=3.0, prior_noise=0.0).fit(data)
    top = p.degrade(data, p.t_max)
    torch.testing.assert_close(p.prior_top, top, atol=0, rtol=0)
    x = p.sample_prior(50, generator=torch.Generator().manual_seed(0))
    assert x.shape == (50, 2, 8, 8)
    # every draw is one of the degraded training images
    dist = torch.cdist(x.reshape(50, -1), top.reshape(len(top), -1), compute_mode="donot_use_mm_for_euclid_dist")
    assert dist.min(1).values.max() < 1e-12
    # prior_noise adds Gaussian noise of that standard deviation
    q = ColdDiffusion(num_train_timesteps=8, sigma_blur_max=3.0, prior_noise=0.05).fit(data)
    y = q.sample_prior(400, generator=torch.Generator().manual_seed(0))
    noise = y - top[torch.randint(0, len(top), (400,), generator=torch.Generator().manual_seed(0))]
    assert abs(float(noise.std()) / 0.05 - 1) < 0.02
    # the config round trip and a refit on the same data give the same prior
    r = ColdDiffusion.from_config(p.config).fit(data)
    torch.testing.assert_close(r.prior_top, p.prior_top, atol=0, rtol=0)


def test_cold_training_resumes_bit_for_bit_with_its_prior(tmp_path):
    data = tdata.shapes(64, (8, 8))

    def run(steps, ckdir):
        p = ColdDiffusion(num_train_timesteps=5, sigma_blur_max=3.0)  # a fresh process, as after a restart
        torch.manual_seed(0)
        model = UNet(1, base=8, mults=(1, 2))
        res = train(model, p, data, steps=steps, batch_size=8, seed=4, checkpoint_dir=ckdir,
                    checkpoint_every=5, progress=False)
        return p, res

    p_full, full = run(12, tmp_path / "full")
    run(6, tmp_path / "resume")
    p_res, resumed = run(12, tmp_path / "resume")
    assert resumed.losses == full.losses
    ckpt = torch.load(tmp_path / "resume" / "checkpoint.pt", weights_only=False)
    assert ForwardProcess.from_config(ckpt["process"]).config == p_full.config
    torch.testing.assert_close(p_res.prior_top, p_full.prior_top, atol=0, rtol=0)
    g = torch.Generator()
    a, b = p_res.sample_prior(3, g.manual_seed(1)), p_full.sample_prior(3, g.manual_seed(1))
    torch.testing.assert_close(a, b, atol=0, rtol=0)
