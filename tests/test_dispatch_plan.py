"""Front door -> plan -> executor (issue 19): the executor registry, frozen plans, structured errors,
and the deprecated ``num_iter`` spelling of ``inpaint(method="learned")``."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

import pdediff
from pdediff import ParameterError, StabilityError, StepLimitError
from pdediff._dispatch import EXECUTORS, Dispatcher, executor_for
from pdediff._plan import HeatPlan, PeronaMalikPlan, heat_plan

# ----------------------------------------------------------------------------- the registry


class FakeArray:
    """An array type pdediff does not know: wraps a NumPy array, exposes only shape, dtype and ndim."""

    def __init__(self, data):
        self.data = np.asarray(data)
        self.shape, self.dtype, self.ndim = self.data.shape, self.data.dtype, self.data.ndim


class FakeExecutor:
    name = "fake"

    def __init__(self):
        self.calls = []

    def prepare(self, x, name, *, ndim, check_finite):
        self.calls.append(("prepare", name, ndim, check_finite))
        return x

    def solve_heat(self, u, plan):
        self.calls.append(("solve_heat", plan))
        return "heat ran on the fake executor"

    def perona_malik(self, u, plan):
        self.calls.append(("perona_malik", plan))
        return "pm ran on the fake executor", 0.5

    def estimate_kappa(self, v, spacing, conductance):
        self.calls.append(("estimate_kappa", spacing, conductance))
        return 2.0


@pytest.fixture
def fake():
    ex = FakeExecutor()
    EXECUTORS.register(FakeArray, ex)
    try:
        yield ex
    finally:
        EXECUTORS.unregister(FakeArray)


def test_a_registered_array_type_is_routed_to_its_executor(fake):
    x = FakeArray(np.zeros((6, 5), np.float32))
    assert pdediff.solve_heat(x, [0.5, 1.0], method="explicit", boundary="Periodic") == "heat ran on the fake executor"
    assert fake.calls[0] == ("prepare", "u0", (1, 2, 3), True)
    plan = fake.calls[1][1]
    assert isinstance(plan, HeatPlan)
    assert (plan.method, plan.boundary, plan.shape, plan.dtype, plan.sequence) == (
        "explicit", "periodic", (6, 5), np.float32, True)
    assert sum(n for n, _ in plan.steps) == 4  # dt_max = 0.25 in 2-D: two steps per half unit
    out, info = pdediff.perona_malik(x, num_iter=3, return_info=True)
    assert out == "pm ran on the fake executor" and info.kappa == 0.5 and info.num_iter == 3
    assert isinstance(fake.calls[-1][1], PeronaMalikPlan)
    assert pdediff.estimate_kappa(x, (1.0, 1.0)) == 2.0


def test_an_unknown_array_type_is_a_clear_type_error():
    class Opaque:
        pass

    with pytest.raises(TypeError, match=r"u0 must be an array \(numpy.ndarray, cupy.ndarray, dask.array.Array"):
        pdediff.solve_heat(Opaque(), 1.0)
    with pytest.raises(TypeError, match="image must be an array .*got .*Opaque"):
        pdediff.perona_malik(Opaque())


def test_array_likes_still_run_in_memory():
    np.testing.assert_array_equal(pdediff.solve_heat([1.0, 1.0, 1.0], 0.5), np.ones(3))
    with pytest.raises(TypeError, match="u0 must be an array with"):  # a scalar: the in-memory refusal
        pdediff.solve_heat(3.0, 1.0)


def test_dispatcher_subclasses_and_lazy_registration():
    d = Dispatcher("thing")
    loaded = []

    class Base:
        pass

    class Child(Base):
        pass

    d.register(Base, "base impl")
    assert d.dispatch(Child) == "base impl"  # along the MRO
    Lazy = type("Lazy", (), {"__module__": "somelib.core"})
    d.register_lazy("somelib", lambda disp: (loaded.append(1), disp.register(Lazy, "lazy impl")))
    assert d.dispatch(Lazy) == "lazy impl" and d.dispatch(Lazy) == "lazy impl" and loaded == [1]  # loaded once
    with pytest.raises(LookupError, match="no thing registered"):
        d.dispatch(int)


def test_solvers_do_not_import_the_dask_executor():
    import subprocess
    import sys

    code = ("import sys, numpy as np, pdediff; pdediff.solve_heat(np.ones((4, 4)), 1.0); "
            "pdediff.perona_malik(np.ones((4, 4))); "
            "print(sorted(m for m in sys.modules if m.startswith(('pdediff.dask', 'dask'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ----------------------------------------------------------------------------- plans


def test_plans_are_frozen():
    plan = heat_plan((8, 8), np.float64, 1.0, method="implicit", diffusivity=1.0, spacing=1.0, boundary="neumann",
                     dt=None, scheme="crank-nicolson", spectrum="continuous", max_steps=100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.steps = ((1, 1.0),)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.method = "explicit"


def _capture(monkeypatch, executor, name):
    seen = []
    original = getattr(executor, name)

    def spy(u, plan):
        seen.append(plan)
        return original(u, plan)

    monkeypatch.setattr(executor, name, spy)
    return seen


def test_dask_and_in_memory_executors_receive_the_same_plan(monkeypatch):
    da = pytest.importorskip("dask.array")
    from pdediff._memory import IN_MEMORY
    from pdediff.dask._executor import DASK

    x = np.random.default_rng(0).random((12, 10)).astype(np.float32)
    d = da.from_array(x, chunks=5)
    mem, lazy = _capture(monkeypatch, IN_MEMORY, "solve_heat"), _capture(monkeypatch, DASK, "solve_heat")
    kw = dict(method="explicit", boundary="dirichlet", spacing=(0.9, 1.1), diffusivity=0.7)
    pdediff.solve_heat(x, [0.0, 0.4, 1.3], **kw)
    pdediff.solve_heat(d, [0.0, 0.4, 1.3], **kw)
    (a,), (b,) = mem, lazy
    for f in ("method", "boundary", "scheme", "spectrum", "shape", "dtype", "times", "sequence", "steps"):
        assert getattr(a, f) == getattr(b, f), f
    assert a.solver.dt == b.solver.dt and a.solver.grid == b.solver.grid

    mem, lazy = _capture(monkeypatch, IN_MEMORY, "perona_malik"), _capture(monkeypatch, DASK, "perona_malik")
    kw = dict(method="aos", conductance="Tukey", kappa=0.3, sigma=0.5, spacing=(0.5, 0.75), num_iter=2)
    pdediff.perona_malik(x, **kw)
    pdediff.perona_malik(d, **kw)
    (a,), (b,) = mem, lazy
    assert dataclasses.asdict(a) == dataclasses.asdict(b)
    assert a.conductance == "tukey" and a.length_scale == 2.0 and a.scaled_spacing == (1.0, 1.5)


# ----------------------------------------------------------------------------- structured errors

_X = np.zeros((6, 6))
_MASK = np.zeros((6, 6), bool)
_MASK[2, 2] = True


@pytest.mark.parametrize("call, param, text", [
    (lambda: pdediff.solve_heat(_X, 1.0, method="fft"), "method",
     "method must be one of 'spectral', 'explicit', 'implicit'; got 'fft'"),
    (lambda: pdediff.solve_heat(_X, 1.0, boundary="open"), "boundary", None),
    (lambda: pdediff.solve_heat(_X, 1.0, scheme="rk4"), "scheme", None),
    (lambda: pdediff.solve_heat(_X, 1.0, spectrum="odd"), "spectrum", None),
    (lambda: pdediff.solve_heat(_X, -1.0), "t", None),
    (lambda: pdediff.solve_heat(_X, [1.0, 0.5]), "t", "t must be non-decreasing when given as a sequence"),
    (lambda: pdediff.solve_heat(_X, 1.0, method="explicit", dt=-0.1), "dt", "dt must be positive and finite; got -0.1"),
    (lambda: pdediff.solve_heat(np.zeros((2, 2, 2, 2)), 1.0), "u0", None),
    (lambda: pdediff.solve_heat(np.array([1.0, np.nan]), 1.0), "u0",
     "u0 contains NaN or infinity; pass check_finite=False to skip this check"),
    (lambda: pdediff.solve_heat(_X, 1.0, spacing=-1.0), "spacing", None),
    (lambda: pdediff.solve_heat(_X, 1.0, spacing=1e-300), "spacing", None),
    (lambda: pdediff.solve_heat(_X, 1.0, diffusivity=np.ones((6, 6))), "diffusivity",
     "diffusivity must be a positive scalar for the spectral method (an array diffusivity needs "
     "method='explicit' or 'implicit')"),
    (lambda: pdediff.solve_heat(_X, 1.0, method="implicit", diffusivity=-np.ones((6, 6))), "diffusivity", None),
    (lambda: pdediff.solve_heat(_X, 1.0, method="explicit", diffusivity=np.ones((5, 6))), "diffusivity", None),
    (lambda: pdediff.perona_malik(_X, kappa=-1.0), "kappa", "kappa must be positive; got -1.0"),
    (lambda: pdediff.perona_malik(_X, kappa="median"), "kappa", None),
    (lambda: pdediff.perona_malik(_X, sigma=-1.0), "sigma", None),
    (lambda: pdediff.perona_malik(_X, num_iter=-1), "num_iter", None),
    (lambda: pdediff.perona_malik(_X, conductance="huber"), "conductance", None),
    (lambda: pdediff.perona_malik(_X, method="adi"), "method", None),
    (lambda: pdediff.perona_malik(_X, channel_axis=3), "channel_axis",
     "channel_axis=3 is out of range for an array with 2 dimensions"),
    (lambda: pdediff.perona_malik(_X, conductance=lambda s, k: 2.0 + 0 * s, num_iter=1), "conductance", None),
    (lambda: pdediff.inpaint(_X, _MASK, method="navier"), "method", None),
    (lambda: pdediff.inpaint(_X, _MASK, tol=0.0), "tol", None),
    (lambda: pdediff.inpaint(_X, _MASK, solver="lu"), "solver", None),
    (lambda: pdediff.inpaint(_X, _MASK, kappa=1.0), "kappa",
     "kappa does not apply to method='harmonic' (only to 'perona_malik'); got kappa=1.0"),
    (lambda: pdediff.inpaint(_X, np.zeros((5, 6), bool)), "mask", None),
    (lambda: pdediff.inpaint(_X, np.ones((6, 6), bool)), "mask", None),
    (lambda: pdediff.inpaint(_X, _MASK, method="learned"), "model", None),
    (lambda: pdediff.inpaint(_X, _MASK, method="perona_malik", dt=0.0), "dt", None),
])
def test_parameter_errors_name_their_parameter(call, param, text):
    with pytest.raises(ParameterError) as err:
        call()
    assert err.value.param == param
    assert param in err.value.mentioned  # the template refers to it, so a front end can spell it
    if text is not None:
        assert str(err.value) == text


def test_limit_errors_are_parameter_errors():
    with pytest.raises(StabilityError) as err:
        pdediff.perona_malik(_X, dt=1.0)
    assert err.value.param == "dt" and {"dt", "method"} <= set(err.value.mentioned)
    with pytest.raises(StepLimitError) as err:
        pdediff.solve_heat(_X, 1e9, method="explicit")
    # dt was the default: the message says so and names no dt the caller did not pass (issue 20)
    assert err.value.param == "max_steps" and {"method", "t", "max_steps"} <= set(err.value.mentioned)
    assert "dt" not in err.value.mentioned
    assert str(err.value).startswith("method='explicit' up to t=1e+09 with the default time step 0.25 (the "
                                     "stability limit) needs")
    with pytest.raises(StepLimitError) as err:
        pdediff.solve_heat(_X, 1e9, method="explicit", dt=0.2)
    assert {"method", "t", "dt", "max_steps"} <= set(err.value.mentioned)
    assert str(err.value).startswith("method='explicit' up to t=1e+09 with dt=0.2 needs")


def test_type_errors_stay_type_errors():
    with pytest.raises(TypeError):
        pdediff.solve_heat(_X, 1.0, dt=[0.1])
    with pytest.raises(TypeError):
        pdediff.perona_malik(_X, conductance=3)
    with pytest.raises(TypeError):
        pdediff.perona_malik(_X, num_iter=2.5)


# ----------------------------------------------------------------------------- inpaint: num_inference_steps


class _Run:
    def __init__(self, keyword):
        self.image_shape, self.keyword, self.calls = (1, 6, 6), keyword, []

    def _fill(self, images, mask, n):
        self.calls.append(n)
        out = images.copy()
        out[np.broadcast_to(mask, out.shape)] = 0.0
        return out


class _NewRun(_Run):
    def repaint(self, images, mask, *, seed=0, num_inference_steps=None, jump_length=10, jump_n_sample=10,
                progress=False):
        return self._fill(images, mask, num_inference_steps)


class _OldRun(_Run):
    def repaint(self, images, mask, *, seed=0, steps=None, jump_length=10, jump_n_sample=10, progress=False):
        return self._fill(images, mask, steps)


@pytest.mark.parametrize("run_cls", [_NewRun, _OldRun])
def test_learned_num_inference_steps_reaches_the_model(run_cls):
    run = run_cls(None)
    img = np.full((6, 6), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new spelling does not warn
        _, info = pdediff.inpaint(img, _MASK, method="learned", model=run, num_inference_steps=7, return_info=True)
    assert run.calls == [7] and info.num_inference_steps == 7 and info.num_iter == 7


def test_learned_num_iter_is_a_deprecated_alias_that_warns_once():
    run = _NewRun(None)
    img = np.full((6, 6), 0.5)
    with pytest.warns(FutureWarning, match="num_inference_steps") as record:
        pdediff.inpaint(img, _MASK, method="learned", model=run, num_iter=4)
    assert len([w for w in record if issubclass(w.category, FutureWarning)]) == 1
    assert run.calls == [4]
    with pytest.raises(ParameterError, match="num_inference_steps only") as err:
        pdediff.inpaint(img, _MASK, method="learned", model=run, num_iter=4, num_inference_steps=4)
    assert err.value.param == "num_iter"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # num_iter keeps its meaning (and no warning) for the PDE methods
        _, info = pdediff.inpaint(img, _MASK, method="perona_malik", num_iter=2, return_info=True)
    assert info.num_iter == 2
    with pytest.raises(ParameterError) as err:
        pdediff.inpaint(img, _MASK, method="perona_malik", num_inference_steps=3)
    assert err.value.param == "num_inference_steps"


# ----------------------------------------------------------------------------- layering of these paths

_MINE = ("pdediff.heat.solve", "pdediff.anisotropic", "pdediff.dask", "pdediff.restoration", "pdediff._",
         "pdediff.kernels.cpu.backend", "pdediff.kernels.cpu.blocked", "pdediff.kernels.cpu._common")


def test_front_doors_executors_and_cpu_kernels_have_no_cycle_and_no_private_import():
    """The layering of the solvers, executors and CPU kernels (the whole package: tests/test_architecture.py)."""
    from test_architecture import cycles, import_graph, private_violations

    assert not [c for c in cycles(import_graph()) if any(m.startswith(_MINE) for m in c)]
    assert not [v for v in private_violations() if v.startswith(_MINE)]
