"""pdediff.torch's contracts (issues 19 and 20): the process interface, the catalogue, structured parameter
errors, range-checked configs, one set of training defaults, gradients that never vanish silently, run and
checkpoint messages, renamed keywords with deprecated aliases."""

import inspect
import json
import pickle
import shutil
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pdediff.torch as pt  # noqa: E402
from pdediff.catalogue import PROCESS_NAMES, PROCESSES, TRAIN_DEFAULTS  # noqa: E402
from pdediff.errors import ParameterError, RunError  # noqa: E402
from pdediff.metrics import frechet_distance  # noqa: E402
from pdediff.torch import (  # noqa: E402
    BlurringDiffusion,
    ColdDiffusion,
    ForwardProcess,
    GaussianDiffusion,
    HeatDissipation,
    UNet,
    heat_blur,
    load_run,
    make_process,
    perona_malik,
    train,
    train_run,
)
from pdediff.torch.training import load_checkpoint  # noqa: E402


# ------------------------------------------------------------------ the process interface
def test_a_process_that_omits_an_abstract_method_cannot_be_instantiated():
    class NoTransition(ForwardProcess):
        def add_noise(self, x0, noise, timesteps):
            return x0

        def training_target(self, x0, noise, timesteps):
            return x0

        def step(self, model_output, timestep, sample, generator=None):
            return None

        def sample_prior(self, n_or_data, generator=None):
            return None

    with pytest.raises(TypeError, match="forward_transition"):
        NoTransition(num_train_timesteps=4)
    assert set(ForwardProcess.__abstractmethods__) == {"add_noise", "training_target", "step", "sample_prior",
                                                       "forward_transition"}

    class Complete(NoTransition):
        def forward_transition(self, sample, timestep, next_timestep, generator=None, *, pred_original_sample=None):
            """A transition that keeps the sample."""
            return sample

    p = Complete(num_train_timesteps=4)
    assert p.t_max == 3
    # the shared sections are appended to an override's own summary
    doc = Complete.forward_transition.__doc__
    assert doc.startswith("A transition that keeps the sample.") and "Parameters" in doc and "Returns" in doc


@pytest.mark.parametrize("cls", [GaussianDiffusion, HeatDissipation, BlurringDiffusion, ColdDiffusion])
def test_every_contract_method_is_documented_once_in_the_base(cls):
    for name in ForwardProcess.__abstractmethods__:
        doc = getattr(cls, name).__doc__
        assert "Parameters\n----------" in doc and "Returns\n-------" in doc, (cls, name)
        assert doc.count("Parameters") == 1


def test_processes_come_from_the_catalogue():
    assert pt.PROCESSES == PROCESS_NAMES == tuple(PROCESSES)
    for name in PROCESS_NAMES:
        p = make_process(name, image_size=8)
        assert type(p) is PROCESSES[name].load()
        for k, v in PROCESSES[name].fixed.items():
            assert p.config[k] == v
    # load_process resolves classes through the catalogue (no second registry)
    cfg = {"class": "BlurringDiffusion", **make_process("blurring", image_size=8).config}
    assert isinstance(ForwardProcess.from_config(cfg), BlurringDiffusion)


# ------------------------------------------------------------------ configs checked at construction
@pytest.mark.parametrize("make,param", [
    (lambda: BlurringDiffusion(num_train_timesteps=10, min_scale=0), "min_scale"),
    (lambda: BlurringDiffusion(num_train_timesteps=10, min_scale=1.5), "min_scale"),
    (lambda: BlurringDiffusion(num_train_timesteps=10, sigma_blur_max=-1.0), "sigma_blur_max"),
    (lambda: BlurringDiffusion(num_train_timesteps=10, sigma_blur_max=float("nan")), "sigma_blur_max"),
    (lambda: GaussianDiffusion(num_train_timesteps=10, beta_start=0.0), "beta_start"),
    (lambda: GaussianDiffusion(num_train_timesteps=10, beta_end=1.0), "beta_end"),
    (lambda: GaussianDiffusion(num_train_timesteps=10, beta_start=0.1, beta_end=0.01), "beta_start"),
    (lambda: GaussianDiffusion(num_train_timesteps=10, beta_schedule="quadratic"), "beta_schedule"),
    (lambda: GaussianDiffusion(num_train_timesteps=0), "num_train_timesteps"),
    (lambda: GaussianDiffusion(num_train_timesteps=10.5), "num_train_timesteps"),
    (lambda: GaussianDiffusion(num_train_timesteps=10**9), "num_train_timesteps"),
    (lambda: HeatDissipation(num_train_timesteps=10, sigma_blur_min=0.0), "sigma_blur_min"),
    (lambda: HeatDissipation(num_train_timesteps=10, sigma_blur_min=3.0, sigma_blur_max=2.0), "sigma_blur_min"),
    (lambda: HeatDissipation(num_train_timesteps=10, training_noise=-0.1), "training_noise"),
    (lambda: HeatDissipation(num_train_timesteps=10, sampling_noise=float("inf")), "sampling_noise"),
    (lambda: ColdDiffusion(num_train_timesteps=10, kappa=0.0), "kappa"),
    (lambda: ColdDiffusion(num_train_timesteps=10, iters_per_level=0), "iters_per_level"),
    (lambda: ColdDiffusion(num_train_timesteps=10, sampling_noise=-1.0), "sampling_noise"),
    (lambda: ColdDiffusion(num_train_timesteps=10, prior_noise=-1.0), "prior_noise"),
    (lambda: ColdDiffusion(num_train_timesteps=10, training_noise=-1.0), "training_noise"),
    (lambda: ColdDiffusion(num_train_timesteps=10, sigma_blur_max=0.0), "sigma_blur_max"),
    (lambda: ColdDiffusion(num_train_timesteps=10, operator="median"), "operator"),
])
def test_process_configs_are_range_checked(make, param):
    with pytest.raises(ParameterError) as err:
        make()
    assert err.value.param == param and "{" + param + "}" in err.value.template


def test_blurring_min_scale_zero_is_refused_with_the_range():
    """min_scale=0 gave NaN samples; it is refused, naming the parameter and its range."""
    with pytest.raises(ParameterError, match=r"min_scale must be a finite number in \(0, 1\]; got 0"):
        BlurringDiffusion(num_train_timesteps=10, min_scale=0)
    with pytest.raises(ParameterError) as err:
        make_process("blurring", image_size=8, config={"min_scale": 0})
    assert err.value.param == "process.config.min_scale"
    assert err.value.template.startswith("{process.config.min_scale} must be")


def test_a_huge_num_train_timesteps_in_a_config_names_the_config_key():
    with pytest.raises(ParameterError) as err:
        make_process("ddpm", image_size=8, config={"num_train_timesteps": 1e9})
    assert err.value.param == "process.config.num_train_timesteps"
    assert err.value.render(lambda name, value: "<" + name + ">").count("<") == 1  # the key alone (the CLI spells it "--config KEY")
    with pytest.raises(ParameterError) as err:
        make_process("ddpm", image_size=8, config={"num_train_timesteps": 10**9})
    assert err.value.param == "process.config.num_train_timesteps"


def test_diffusers_schedule_names_are_accepted():
    a = GaussianDiffusion(num_train_timesteps=50, beta_schedule="squaredcos_cap_v2")
    b = GaussianDiffusion(num_train_timesteps=50, beta_schedule="cosine")
    assert torch.equal(a.betas, b.betas) and a.config["beta_schedule"] == "cosine"
    s = GaussianDiffusion(num_train_timesteps=50, beta_schedule="scaled_linear", beta_start=1e-4, beta_end=0.02)
    # diffusers' DDPMScheduler: torch.linspace(beta_start**0.5, beta_end**0.5, K) ** 2
    np.testing.assert_allclose(s.betas.numpy(), np.linspace(1e-4**0.5, 0.02**0.5, 50) ** 2, rtol=1e-12)
    blur = BlurringDiffusion(num_train_timesteps=20, beta_schedule="squaredcos_cap_v2")
    assert blur.config["beta_schedule"] == "cosine"


# ------------------------------------------------------------------ one set of training defaults
def test_train_train_run_and_the_catalogue_share_one_set_of_defaults():
    t = inspect.signature(train).parameters
    r = inspect.signature(train_run).parameters
    for name in ("batch_size", "lr", "ema_decay", "seed", "checkpoint_every"):
        assert t[name].default == r[name].default == getattr(TRAIN_DEFAULTS, name), name
    assert t["ema_warmup"].default is TRAIN_DEFAULTS.ema_warmup is True
    for name in ("steps", "base", "mults", "num_res_blocks"):
        assert r[name].default == getattr(TRAIN_DEFAULTS, name), name


# ------------------------------------------------------------------ structured errors of the validators
def _data():
    return torch.rand(8, 1, 8, 8) * 2 - 1


@pytest.mark.parametrize("kw,param", [
    ({"seed": 1.5}, "seed"),
    ({"seed": -1}, "seed"),
    ({"batch_size": 0}, "batch_size"),
    ({"lr": 0.0}, "lr"),
    ({"ema_decay": 1.0}, "ema_decay"),
    ({"checkpoint_every": 0}, "checkpoint_every"),
    ({"steps": -1}, "steps"),
])
def test_train_validators_name_their_parameter(kw, param):
    args = {"steps": 0} | kw
    with pytest.raises(ParameterError) as err:
        train(UNet(1, base=8, mults=(1,)), GaussianDiffusion(num_train_timesteps=4), _data(), progress=False, **args)
    assert err.value.param == param and "{" + param + "}" in err.value.template


@pytest.mark.parametrize("kw,param", [
    ({"seed": 2.0}, "seed"),
    ({"batch_size": 0}, "batch_size"),
    ({"lr": -1.0}, "lr"),
    ({"ema_decay": 1.5}, "ema_decay"),
    ({"checkpoint_every": 0}, "checkpoint_every"),
    ({"steps": -1}, "steps"),
    ({"base": 0}, "base"),
    ({"mults": ()}, "mults"),
    ({"mults": (1, 0)}, "mults"),
    ({"device": "tpu"}, "device"),
    ({"process": "gan"}, "process"),
    ({"config": {"kappa": 0.0}, "process": "cold-pm"}, "process.config.kappa"),
    ({"config": {"nope": 1}}, "config"),
    ({"data": 5}, "data"),
])
def test_train_run_validators_name_their_parameter(tmp_path, kw, param):
    args = {"data": {"spec": "digits", "n": 20}, "steps": 1, "base": 8, "mults": (1,), "batch_size": 4,
            "progress": False, "device": "cpu"} | kw
    with pytest.raises(ParameterError) as err:
        train_run(tmp_path / "run", **args)
    assert err.value.param == param and "{" + param + "}" in err.value.template


def test_wrong_types_raise_type_errors_naming_the_parameter(tmp_path):
    with pytest.raises(TypeError, match="path must be a run folder"):
        load_run(5)
    with pytest.raises(TypeError, match="data must be"):
        load_run(tmp_path, data=3.5)
    with pytest.raises(TypeError, match="out must be a path"):
        train_run(None)


# ------------------------------------------------------------------ a tiny run for the Run checks
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "ddpm"
    train_run(folder, process="ddpm", data={"spec": "digits", "n": 30}, steps=2, base=8, mults=(1,), batch_size=4,
              config={"num_train_timesteps": 5}, device="cpu", progress=False)
    return folder


def test_sampling_steps_are_num_inference_steps_and_steps_warns_once(tiny):
    run = load_run(tiny)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = run.sample(3, num_inference_steps=2, seed=1)
    with pytest.warns(FutureWarning, match="num_inference_steps") as rec:
        old = run.sample(3, steps=2, seed=1)
    assert len([w for w in rec if issubclass(w.category, FutureWarning)]) == 1
    np.testing.assert_array_equal(new, old)
    x = np.zeros((2, 1, 8, 8), np.float32)
    with pytest.warns(FutureWarning, match="num_inference_steps"):
        a = run.restyle(x, 0.5, steps=2, seed=0)
    np.testing.assert_array_equal(a, run.restyle(x, 0.5, num_inference_steps=2, seed=0))
    hole = np.zeros((8, 8), bool)
    hole[2:5, 2:5] = True
    with pytest.warns(FutureWarning, match="num_inference_steps"):
        b = run.repaint(x, hole, steps=2, jump_n_sample=1, seed=0)
    np.testing.assert_array_equal(b, run.repaint(x, hole, num_inference_steps=2, jump_n_sample=1, seed=0))
    with pytest.raises(TypeError, match="num_inference_steps= only"):
        run.sample(2, steps=2, num_inference_steps=2)
    with pytest.raises(ParameterError) as err:
        run.sample(2, num_inference_steps=99)
    assert err.value.param == "num_inference_steps"
    with pytest.raises(ParameterError) as err:
        run.sample(2, seed=1.0)
    assert err.value.param == "seed"
    with pytest.raises(ParameterError) as err:
        run.restyle(x, 1.5)
    assert err.value.param == "strength"
    with pytest.raises(ParameterError) as err:
        run.repaint(x, hole, jump_length=0)
    assert err.value.param == "jump_length"


def test_an_unbounded_number_of_samples_is_refused_up_front(tiny):
    run = load_run(tiny)
    with pytest.raises(ParameterError) as err:
        run.sample(100_000_000)
    assert err.value.param == "n" and "{max_samples=None}" in err.value.template
    with pytest.raises(ParameterError, match="max_samples"):
        run.sample(5, max_samples=4)
    assert run.sample(5, max_samples=None, num_inference_steps=1).shape == (5, 1, 8, 8)


def test_a_checkpoint_that_does_not_fit_run_json_names_every_mismatch(tiny, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny, run)
    rec = json.loads((run / "run.json").read_text())
    rec["model"]["base"] = 16
    (run / "run.json").write_text(json.dumps(rec))
    with pytest.raises(RunError) as err:
        load_run(run)
    msg = str(err.value)
    assert "shape mismatches:" in msg and "in the checkpoint vs" in msg, msg
    assert not msg.rstrip().endswith("UNet:"), msg
    rec["model"]["base"], rec["model"]["mults"] = 8, [1, 2]
    (run / "run.json").write_text(json.dumps(rec))
    with pytest.raises(RunError, match="missing keys: "):
        load_run(run)


def test_rerun_with_other_settings_names_them_as_in_run_json(tiny, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny, run)
    with pytest.raises(RunError) as err:
        train_run(run, process="ddpm", data={"spec": "digits", "n": 30}, steps=2, base=8, mults=(1,), batch_size=4,
                  lr=2e-3, config={"num_train_timesteps": 5}, device="cpu", progress=False)
    assert isinstance(err.value, ParameterError) and err.value.param == "training.lr"
    assert "{training.lr}" in err.value.template and "training.lr: 0.001 in the run, 0.002 now" in str(err.value)


def test_a_raw_pickle_checkpoint_is_refused_without_torch_warnings(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("never run",))

    path = tmp_path / "checkpoint.pt"
    with open(path, "wb") as f:
        pickle.dump({"x": Payload()}, f)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(Exception, match="not loaded|was not loaded"):
            load_checkpoint(path)
    assert not caught, [str(w.message) for w in caught]


# ------------------------------------------------------------------ gradients
def test_heat_blur_is_differentiable_in_t():
    x = torch.rand(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    for boundary in ("neumann", "dirichlet", "periodic"):
        for t in (torch.tensor(0.7, dtype=torch.float64), torch.tensor([0.3, 1.2], dtype=torch.float64),
                  torch.rand(2, 3, dtype=torch.float64) + 0.1):
            t = t.clone().requires_grad_(True)
            assert torch.autograd.gradcheck(
                lambda a, s, b=boundary: heat_blur(a, s, boundary=b, spacing=(0.8, 1.3), diffusivity=0.7), (x, t))
    t = torch.tensor(1.0, requires_grad=True)
    y = heat_blur(torch.rand(1, 6, 6), t)
    assert y.requires_grad
    y.square().sum().backward()
    assert t.grad is not None and float(t.grad) < 0  # blurring lowers the energy


@pytest.mark.parametrize("conductance", ["exponential", "rational", "tukey"])
@pytest.mark.parametrize("shape,spatial_dims,channel_axis", [((2, 5, 6), 2, None), ((2, 3, 5, 6), 2, 1),
                                                             ((2, 4, 3, 5), 3, None), ((3, 7), 1, None)])
def test_perona_malik_is_differentiable(conductance, shape, spatial_dims, channel_axis):
    x = torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    kw = {"spatial_dims": spatial_dims, "channel_axis": channel_axis, "num_iter": 3, "kappa": 0.4, "sigma": 0,
          "conductance": conductance, "spacing": (1.0,) * (spatial_dims - 1) + (0.8,)}
    y = perona_malik(x, **kw)
    assert y.requires_grad
    assert torch.autograd.gradcheck(lambda a: perona_malik(a, **kw), (x,))


@pytest.mark.parametrize("kw,word", [({"kappa": 0.3}, "sigma"), ({"sigma": 0, "kappa": "auto"}, "kappa"),
                                     ({"sigma": 0, "kappa": 0.3, "method": "aos"}, "method"),
                                     ({"sigma": 0, "kappa": 0.3, "conductance": lambda s, k: s * 0 + 1}, "callable")])
def test_perona_malik_refuses_to_drop_a_gradient(kw, word):
    x = torch.rand(2, 6, 6, requires_grad=True)
    with pytest.raises(ValueError, match=word):
        perona_malik(x, **kw)
    assert not perona_malik(x.detach(), **kw).requires_grad  # without a gradient: as before
    with torch.no_grad():
        perona_malik(x, **kw)


# ------------------------------------------------------------------ frechet_distance at extreme magnitudes
def test_frechet_distance_of_huge_features_does_not_fail():
    """Features of magnitude 1e200 raised LinAlgError (their covariance overflows); now computed scaled."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((50, 4)), rng.standard_normal((60, 4)) + 0.5
    ref = frechet_distance(a, b)
    assert frechet_distance(a * 1e150, b * 1e150) == pytest.approx(ref * 1e300, rel=1e-9)
    assert frechet_distance(a * 1e-150, b * 1e-150) == pytest.approx(ref * 1e-300, rel=1e-9)
    assert frechet_distance(a * 2.0**-600, b * 2.0**-600) == ref * 2.0**-1200  # scaled by powers of two: exact
    assert frechet_distance(a * 1e200, b * 1e200) == np.inf  # the distance itself exceeds float64
    assert frechet_distance(a * 1e-200, b * 1e-200) == 0.0  # ... or underflows


def test_dataset_errors_name_their_parameter(tmp_path):
    from pdediff.errors import DatasetError
    from pdediff.torch import load_dataset

    for kw, param in (({"spec": "mnistt"}, "spec"), ({"spec": str(tmp_path)}, "spec"),
                      ({"spec": "digits", "split": "dev"}, "split"),
                      ({"spec": "digits", "test_fraction": 2.0}, "test_fraction"),
                      ({"spec": "digits", "n": 0}, "n"), ({"spec": "digits", "size": 0}, "size")):
        with pytest.raises(DatasetError) as err:
            load_dataset(**kw)
        assert isinstance(err.value, ParameterError) and err.value.param == param, kw
        assert err.value.template.startswith("{" + param + "}")
