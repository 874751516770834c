"""EdgePreservingDiffusion: DDPM bit for bit when the edge factor is off, the documented per-pixel
variances, the exact posterior, pdediff's conductance, config round trip and training (tiny tensors)."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pdediff  # noqa: E402
from pdediff.catalogue import PROCESSES  # noqa: E402
from pdediff.cli import main  # noqa: E402
from pdediff.errors import ParameterError  # noqa: E402
from pdediff.torch import EdgePreservingDiffusion, GaussianDiffusion, UNet, load_process, make_process, train  # noqa: E402
from pdediff.torch.processes.edge_preserving import _catte, _edge_map, _face_conductances  # noqa: E402

K = 20
SCHED = {"num_train_timesteps": K, "beta_schedule": "linear", "beta_start": 1e-3, "beta_end": 0.2}


def _images(n=3, c=1, h=8, w=8, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, c, h, w), generator=g, dtype=torch.float64) * 0.4 - 0.8
    x[:, :, 2:6, 3:7] += 1.2  # a bright square: strong edges
    return x.to(dtype)


def _fake_model(x, t):
    """A deterministic stand-in for a network (depends on the sample and the timestep)."""
    return 0.3 * torch.tanh(x) + 0.01 * float(t) * x.flip(-1)


# ------------------------------------------------------------------ DDPM bit for bit
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_edge_off_is_ddpm_bit_for_bit(dtype):
    edge = EdgePreservingDiffusion(**SCHED, edge_strength=0.0, sigma=1.0)
    ddpm = GaussianDiffusion(**SCHED)
    x0 = _images(dtype=dtype)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    for t in [0, 3, K - 1, torch.tensor([0, 7, K - 1])]:
        assert torch.equal(edge.add_noise(x0, noise, t), ddpm.add_noise(x0, noise, t))
        assert torch.equal(edge.training_target(x0, noise, t), ddpm.training_target(x0, noise, t))
    assert torch.equal(edge.sample_prior(x0, torch.Generator().manual_seed(2)),
                       ddpm.sample_prior(x0, torch.Generator().manual_seed(2)))
    for n in (K, 7):  # the full schedule and a strided one
        edge.set_timesteps(n)
        ddpm.set_timesteps(n)
        assert edge.timesteps.tolist() == ddpm.timesteps.tolist()
        ge, gd = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        xe, xd = edge.sample_prior(x0, ge), ddpm.sample_prior(x0, gd)
        for t in edge.timesteps.tolist():
            oe = edge.step(_fake_model(xe, t), t, xe, ge)
            od = ddpm.step(_fake_model(xd, t), t, xd, gd)
            assert torch.equal(oe.pred_original_sample, od.pred_original_sample)
            assert torch.equal(oe.prev_sample, od.prev_sample)
            xe, xd = oe.prev_sample, od.prev_sample
    for t, s in [(-1, 4), (2, 9), (5, K - 1)]:
        a = edge.forward_transition(x0, t, s, torch.Generator().manual_seed(4))
        b = ddpm.forward_transition(x0, t, s, torch.Generator().manual_seed(4))
        assert torch.equal(a, b)


def test_after_the_transition_time_steps_are_ddpm_bit_for_bit():
    edge = EdgePreservingDiffusion(**SCHED, transition="linear", transition_time=0.5)
    ddpm = GaussianDiffusion(**SCHED)
    late = [t for t in range(K) if float(edge.tau[t]) == 1.0]
    assert late and min(late) <= K // 2 + 1 and float(edge.tau[0]) == 0.0
    x0 = _images()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    assert torch.equal(edge.add_noise(x0, noise, late[0]), ddpm.add_noise(x0, noise, late[0]))
    assert not torch.equal(edge.add_noise(x0, noise, 1), ddpm.add_noise(x0, noise, 1))
    t = late[1]  # both t and t - 1 are past the transition
    x = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))
    oe = edge.step(_fake_model(x, t), t, x, torch.Generator().manual_seed(6))
    od = ddpm.step(_fake_model(x, t), t, x, torch.Generator().manual_seed(6))
    assert torch.equal(oe.prev_sample, od.prev_sample)


# ------------------------------------------------------------------ the documented variances
def test_forward_samples_have_the_documented_per_pixel_variance():
    p = EdgePreservingDiffusion(**SCHED, conductance="exponential", kappa_min=0.3, kappa_max=1.0)
    x0 = _images(n=1, dtype=torch.float64)
    t, M = 3, 6000
    xs = x0.expand(M, -1, -1, -1).contiguous()
    g = torch.Generator().manual_seed(0)
    xt = p.add_noise(xs, torch.randn(xs.shape, generator=g, dtype=torch.float64), t)
    ab = float(p.alphas_cumprod[t])
    # the documented standard deviation: sqrt(1 - abar_t) (1 - s (1 - tau_t)(1 - g_t(x0)))
    gmap = _edge_map(x0, torch.tensor([float(p.kappa[t])]), "exponential", 0.0)
    sd = math.sqrt(1 - ab) * (1 - (1 - float(p.tau[t])) * (1 - gmap[0]))
    assert float(sd.min()) < 0.5 * float(sd.max())  # the edges really are damped
    resid = xt - math.sqrt(ab) * x0
    var = resid.var(0, unbiased=True)
    rel = var / sd**2 - 1
    tol = 5 * math.sqrt(2 / (M - 1))  # five standard errors of a variance estimate
    assert float(rel.abs().max()) < tol
    assert float((resid.mean(0) / sd).abs().max()) < 5 / math.sqrt(M)


def test_forward_transition_lands_on_the_marginal_of_the_later_level():
    p = EdgePreservingDiffusion(**SCHED, kappa_min=0.2, kappa_max=0.8, transition="logistic")
    x0 = _images(n=1, dtype=torch.float64)
    M, t, s = 6000, 2, 6
    xs = x0.expand(M, -1, -1, -1).contiguous()
    g = torch.Generator().manual_seed(0)
    xt = p.add_noise(xs, torch.randn(xs.shape, generator=g, dtype=torch.float64), t)
    out = p.forward_transition(xt, t, s, g, pred_original_sample=xs)
    ab = float(p.alphas_cumprod[s])
    sd = math.sqrt(1 - ab) * p.edge_factor(x0, s)[0]
    resid = out - math.sqrt(ab) * x0
    assert float((resid.var(0) / sd**2 - 1).abs().max()) < 5 * math.sqrt(2 / (M - 1))
    with pytest.raises(ValueError, match="pred_original_sample"):
        p.forward_transition(xt[:2], t, s, g)


# ------------------------------------------------------------------ the posterior
@pytest.mark.parametrize("n_steps", [K, 6])
def test_posterior_equals_gaussian_conditioning(n_steps):
    p = EdgePreservingDiffusion(**SCHED, kappa_min=0.2, kappa_max=0.9, transition="cosine", transition_time=0.8,
                                sigma=0.7)
    p.set_timesteps(n_steps)
    x0 = _images(n=2, dtype=torch.float64)
    ts = p.timesteps.tolist()
    for t in ts[1:-1] + [ts[-1]]:
        s = p.previous_timestep(t)
        xt = p.add_noise(x0, torch.randn(x0.shape, generator=torch.Generator().manual_seed(t), dtype=torch.float64), t)
        ab_t = float(p.alphas_cumprod[t])
        ab_s = float(p.alphas_cumprod[s]) if s >= 0 else 1.0
        eps = (xt - math.sqrt(ab_t) * x0) / math.sqrt(1 - ab_t)  # the model that predicts x0 exactly
        out = p.step(eps, t, xt, torch.Generator().manual_seed(9))
        assert torch.allclose(out.pred_original_sample, x0, rtol=0, atol=1e-12)
        # direct: (x_s, x_t) | x0 jointly Gaussian per pixel, x_t = a_{t|s} x_s + sigma_{t|s} eta
        var_s = (1 - ab_s) * p.edge_factor(x0, s) ** 2
        var_t = (1 - ab_t) * p.edge_factor(x0, t) ** 2
        a_ts = math.sqrt(ab_t / ab_s)
        assert torch.all(var_t - a_ts**2 * var_s >= -1e-15)  # the chain exists: sigma_{t|s}^2 >= 0
        cov = a_ts * var_s
        mean = math.sqrt(ab_s) * x0 + cov / var_t * (xt - math.sqrt(ab_t) * x0)
        var = var_s - cov**2 / var_t
        z = torch.randn(x0.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
        expect = mean + var.clamp_min(1e-20).sqrt() * z if s >= 0 else mean
        assert torch.allclose(out.prev_sample, expect, rtol=0, atol=1e-10)


# ------------------------------------------------------------------ pdediff's conductance
@pytest.mark.parametrize("conductance", ["rational", "exponential", "tukey"])
@pytest.mark.parametrize("channels", [1, 3])
def test_face_conductances_are_pdediffs(conductance, channels):
    """One explicit pdediff.perona_malik step rebuilt from the face conductances used here."""
    u = _images(n=1, c=channels, h=9, w=7, dtype=torch.float64, seed=3)
    kappa, dt = 0.7, 0.2
    gx, gy = _face_conductances(u, torch.tensor([kappa], dtype=torch.float64), conductance)
    change = torch.zeros_like(u)
    for dim, g in ((2, gx), (3, gy)):
        flux = g * torch.diff(u, dim=dim)
        pad = [0, 0] if dim == 2 else []
        change += torch.nn.functional.pad(flux, pad + [0, 1]) - torch.nn.functional.pad(flux, pad + [1, 0])
    ours = (u + dt * change)[0]
    arr = u[0].numpy() if channels > 1 else u[0, 0].numpy()
    ref = pdediff.perona_malik(arr, num_iter=1, dt=dt, kappa=kappa, sigma=0.0, conductance=conductance,
                               channel_axis=0 if channels > 1 else None)
    np.testing.assert_allclose(ours.numpy().reshape(ref.shape), ref, rtol=0, atol=1e-13)
    assert float(change.abs().max()) > 1e-3  # the step moves something


def test_pixel_edge_map_is_the_smallest_face_conductance():
    u = _images(n=2, c=2, h=6, w=5, dtype=torch.float64, seed=4)
    kappa = torch.tensor([0.5, 1.5], dtype=torch.float64)
    g = _edge_map(u, kappa, "rational", 0.0)
    gx, gy = _face_conductances(u, kappa, "rational")
    for n in range(2):
        for i in range(6):
            for j in range(5):
                faces = [1.0]
                faces += [float(gx[n, 0, i - 1, j])] if i > 0 else []
                faces += [float(gx[n, 0, i, j])] if i < 5 else []
                faces += [float(gy[n, 0, i, j - 1])] if j > 0 else []
                faces += [float(gy[n, 0, i, j])] if j < 4 else []
                assert float(g[n, 0, i, j]) == min(faces)
    assert not torch.equal(_edge_map(u, kappa, "rational", 0.8), g)  # Catté smoothing changes it


@pytest.mark.parametrize("sigma", [0.8, 5.0])  # pdediff's truncated Gaussian (<= 4 px) and its spectral one
def test_catte_smoothed_conductance_is_pdediffs(sigma):
    """One explicit pdediff.perona_malik step with Catté smoothing, rebuilt from the conductances used here."""
    u = _images(n=1, h=12, w=10, dtype=torch.float64, seed=5)
    kappa, dt = 0.05, 0.2
    v = _catte(u, sigma)
    gx, gy = _face_conductances(v, torch.tensor([kappa], dtype=torch.float64), "rational")
    change = torch.zeros_like(u)
    for dim, g in ((2, gx), (3, gy)):
        flux = g * torch.diff(u, dim=dim)
        pad = [0, 0] if dim == 2 else []
        change += torch.nn.functional.pad(flux, pad + [0, 1]) - torch.nn.functional.pad(flux, pad + [1, 0])
    ref = pdediff.perona_malik(u[0, 0].numpy(), num_iter=1, dt=dt, kappa=kappa, sigma=sigma, conductance="rational")
    np.testing.assert_allclose((u + dt * change)[0, 0].numpy(), ref, rtol=0, atol=1e-13)
    assert not torch.allclose(_edge_map(u, torch.tensor([kappa]), "rational", sigma),
                              _edge_map(u, torch.tensor([kappa]), "rational", 0.0))


# ------------------------------------------------------------------ config, training, CLI
def test_config_round_trip_and_catalogue(tmp_path):
    assert PROCESSES["edge"].label == "edge-preserving diffusion"
    p = make_process("edge", image_size=8, config={"num_train_timesteps": 30, "conductance": "exponential",
                                                    "transition": "logistic", "sigma": 0.5})
    assert isinstance(p, EdgePreservingDiffusion) and p.config["beta_end"] == pytest.approx(1000 / 30 * 0.02)
    p.save_config(tmp_path)
    q = load_process(tmp_path)
    assert type(q) is EdgePreservingDiffusion and q.config == p.config
    assert make_process("edge", image_size=8, config=tmp_path / "process_config.json").config == p.config
    x0 = _images()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(p.add_noise(x0, noise, 5), q.add_noise(x0, noise, 5))


@pytest.mark.parametrize("key, value", [
    ("num_train_timesteps", 0), ("beta_schedule", "cubic"), ("beta_start", 0.0), ("beta_end", 1.0),
    ("conductance", "gauss"), ("kappa_min", 0.0), ("kappa_max", float("inf")), ("transition", "step"),
    ("transition_time", 0.0), ("transition_time", 1.5), ("steepness", -1.0), ("sigma", -0.1),
    ("edge_strength", 1.5), ("edge_strength", float("nan")),
])
def test_every_config_value_is_range_checked(key, value):
    with pytest.raises(ParameterError) as err:
        EdgePreservingDiffusion(**{key: value})
    assert err.value.param == key and key in str(err.value)
    with pytest.raises(ParameterError) as err:
        make_process("edge", image_size=8, config={key: value})
    assert key in err.value.param


def test_kappa_order_is_checked():
    with pytest.raises(ParameterError, match="kappa_min") as err:
        EdgePreservingDiffusion(kappa_min=1.0, kappa_max=0.5)
    assert err.value.param == "kappa_min"


def test_trains_with_pdediff_train():
    p = make_process("edge", image_size=8, config={"num_train_timesteps": 10})
    data = _images(n=8)
    model = UNet(base=8, mults=(1,))
    res = train(model, p, data, steps=3, batch_size=4, progress=False)
    assert res is not None
    for prm in model.parameters():
        assert torch.all(torch.isfinite(prm))


def test_cli_train_accepts_edge(tmp_path):
    np.save(tmp_path / "x.npy", _images(n=10).numpy()[:, 0])
    run = tmp_path / "run"
    assert main(["train", "--process", "edge", "--data", str(tmp_path / "x.npy"), "--steps", "2", "--out", str(run),
                 "--base", "8", "--mults", "1", "--batch-size", "4", "--quiet"]) == 0
    r = pdediff.torch.load_run(run)
    assert r.config["process"]["name"] == "edge" and isinstance(r.process, EdgePreservingDiffusion)
    assert main(["sample", "--run", str(run), "-o", str(tmp_path / "g.png"), "-n", "2", "--num-inference-steps", "3",
                 "--quiet"]) == 0


def test_repaint_and_restyle_run_with_edge_preserving_noise():
    p = EdgePreservingDiffusion(**SCHED, sigma=0.5)
    x = _images(n=2)
    mask = torch.zeros(x.shape, dtype=torch.bool)
    mask[..., 4:, :] = True
    out = pdediff.torch.repaint(UNet(base=8, mults=(1,)), p, x, mask, jump_length=2, jump_n_sample=2, num_inference_steps=6,
                                generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.all(torch.isfinite(out)) and torch.equal(out[~mask], x[~mask])
    out = pdediff.torch.restyle(UNet(base=8, mults=(1,)), p, x, 0.5, num_inference_steps=6, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.all(torch.isfinite(out))
