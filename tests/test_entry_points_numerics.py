"""Float32 at any time step and values up to float32's maximum, through every entry point (issue 20, items 2-3).

Fixed cases first (each failed before this change), then hypothesis properties over dtypes, time steps up to
the largest the API accepts, magnitudes up to float32's maximum, methods, 1-3 D and the entry points: NumPy,
Dask, torch (:mod:`pdediff.torch`) and the command line (``pdediff denoise`` in process).

* Dask implicit heat runs the in-memory solver's forms (Douglas for ``|dt L| <= 64``, combined or split
  above), so float32 equals float64 at every ``dt`` (before: 7e5-fold the float32 error at ``dt = 1e20``,
  all NaN at ``dt = 1e300``).
* Dask explicit, spectral and implicit heat scale values near the dtype's maximum by exact powers of two
  (before: inf/NaN at +-1e36 and +-3e38 float32).
* A variable diffusivity in 2-D/3-D at large steps runs split into 1-D steps per axis: stable, float32 equal
  to float64 (before: the Douglas form grew to 1e61 in 3-D in float64, and float32 lost all precision).
* :class:`pdediff.LargeStepWarning` for ADI steps that hardly damp mixed modes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import pdediff
from pdediff import LargeStepWarning

da = pytest.importorskip("dask.array")

F32_MAX = float(np.finfo(np.float32).max)
#: Time steps log-uniform from 1e-3 to float64's maximum (any positive finite dt is accepted).
DTS = st.tuples(st.floats(1.0, 9.99), st.integers(-3, 307)).map(lambda t: min(t[0] * 10.0 ** t[1], 1.79e308))
#: Magnitudes log-uniform from 1e-30 up to float32's maximum itself.
MAGNITUDES = st.one_of(st.just(F32_MAX), st.tuples(st.floats(1.0, 9.99), st.integers(-30, 38)).map(
    lambda t: min(t[0] * 10.0 ** t[1], F32_MAX)))
SHAPES = st.lists(st.integers(2, 6), min_size=1, max_size=3).map(tuple)
BOUNDARIES = st.sampled_from(["neumann", "dirichlet", "periodic"])
PROPS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
quiet = pytest.mark.filterwarnings("ignore::pdediff.LargeStepWarning")


def _field(seed: int, shape, magnitude: float) -> np.ndarray:
    """float32 values of both signs, ``|u|`` in ``[magnitude / 2**10, magnitude]``."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(2.0**-10, 1.0, shape) * rng.choice([-1.0, 1.0], shape)
    return np.clip(u * magnitude, -F32_MAX, F32_MAX).astype(np.float32)


def _chunks(shape):
    return tuple(max(1, n // 2) for n in shape)


def _heat(u, t, entry, **kw):
    if entry == "dask":
        return np.asarray(pdediff.solve_heat(da.from_array(u, chunks=_chunks(u.shape)), t, **kw).compute())
    return pdediff.solve_heat(u, t, **kw)


def _close_to_float64(got32, want64, amax, tol=2e-5):
    """float32 equals float64 to float32 precision, relative to the data's size."""
    assert np.all(np.isfinite(got32))
    np.testing.assert_allclose(got32.astype(np.float64), want64, rtol=0, atol=tol * amax)


# ----------------------------------------------------------------------------- fixed cases (failed before)
@quiet
@pytest.mark.parametrize("shape", [(24,), (16, 12), (6, 7, 8)])
@pytest.mark.parametrize("variable", [False, True])
@pytest.mark.parametrize("dt", [1e4, 1e7, 1e20, 1e300])
def test_dask_implicit_float32_equals_float64_at_large_steps(shape, variable, dt):
    rng = np.random.default_rng(0)
    u = (rng.random(shape) * 255).astype(np.float32)
    kw = {"method": "implicit", "dt": dt}
    if variable:
        kw["diffusivity"] = rng.uniform(0.5, 2.0, shape)
    want = pdediff.solve_heat(u.astype(np.float64), dt, **kw)
    got = _heat(u, dt, "dask", **kw)
    _close_to_float64(got, want, 255.0)
    np.testing.assert_allclose(got, pdediff.solve_heat(u, dt, **kw), rtol=0, atol=2e-5 * 255)


@quiet
@pytest.mark.parametrize("method,dt", [("explicit", None), ("spectral", None), ("implicit", None),
                                       ("implicit", 1e3), ("implicit", 1e9)])
@pytest.mark.parametrize("value", [1e36, 3e38])
def test_dask_heat_near_the_float32_maximum(method, dt, value):
    """The issue's ``np.where(camera > 128, 1e36, -1e36)`` through Dask (inf/NaN before)."""
    cam = np.random.default_rng(3).random((24, 20)) * 255
    cam[4:12, 3:15] = 250.0
    u = np.where(cam > 128, value, -value).astype(np.float32)
    kw = {"method": method} if dt is None else {"method": method, "dt": dt, "scheme": "backward-euler"}
    t = 3.0 if dt is None else dt
    want = pdediff.solve_heat(u.astype(np.float64), t, **kw)
    # ADI has no maximum principle: at +-3e38 a large step's overshoot need not fit a float32; that is an
    # OverflowError (in memory as well), never an inf
    fits = np.abs(want) <= F32_MAX
    assert fits.all() if value < 1e37 else fits.any()
    if not fits.all():
        with pytest.raises(OverflowError, match="float32's range"):
            _heat(u, t, "dask", **kw)
        return
    got = _heat(u, t, "dask", **kw)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * value)


@pytest.mark.parametrize("method", ["explicit", "spectral"])
def test_dask_scaling_is_exact(method):
    """Scaled per chunk by powers of two: the result for ``u * 2**k`` is the result for ``u`` times ``2**k``, bit for
    bit, up to float32's maximum -- and ordinary values take the unscaled computation (equal to NumPy)."""
    u = np.random.default_rng(5).uniform(-1.0, 1.0, (12, 10)).astype(np.float32)
    base = _heat(u, 1.5, "dask", method=method)
    if method == "explicit":  # the same stencil in the same order as in memory
        np.testing.assert_array_equal(base, pdediff.solve_heat(u, 1.5, method=method))
    for k in (100, 120, 127):
        big = _heat(u * np.float32(2.0**k), 1.5, "dask", method=method)
        np.testing.assert_array_equal(big, base * np.float32(2.0**k))


@pytest.mark.parametrize("shape", [(16, 16), (8, 8, 8)])
@pytest.mark.parametrize("scheme", ["crank-nicolson", "backward-euler"])
def test_variable_diffusivity_large_steps_are_stable_and_float32_exact(shape, scheme):
    """A diffusivity varying 1000-fold: the Douglas form grew to 1e61 over 50 steps in 3-D (float64); split
    into 1-D steps it is stable, float32 equals float64, and backward Euler keeps the data's range."""
    rng = np.random.default_rng(1)
    D = np.exp(rng.uniform(0.0, np.log(1e3), shape))
    u = rng.random(shape).astype(np.float32)
    for dt in (0.1, 10.0, 1e9):
        kw = {"method": "implicit", "dt": dt, "diffusivity": D, "scheme": scheme, "max_steps": None}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LargeStepWarning)
            want = pdediff.solve_heat(u.astype(np.float64), 50 * dt, **kw)
            got = pdediff.solve_heat(u, 50 * dt, **kw)
        assert float(np.abs(want).max()) <= 3.0
        _close_to_float64(got, want, 1.0, tol=1e-4)  # 50 steps: a few float32 ulp each
        if scheme == "backward-euler":
            assert float(u.min()) - 1e-6 <= float(got.min()) and float(got.max()) <= float(u.max()) + 1e-6


def test_variable_diffusivity_moderate_steps_keep_the_douglas_form():
    """At ``|dt L| <= COMBINED_ABOVE`` nothing changed: the Douglas scheme, second order in time."""
    solver = pdediff.ImplicitHeatSolver((8, 8), diffusivity=np.full((8, 8), 1.0), dt=1.0)
    assert solver.form(1.0)[1] == "douglas" and solver.form(1e3)[1] == "split"
    assert pdediff.ImplicitHeatSolver((8, 8), dt=1.0).form(1e3)[1] == "combined"


# ----------------------------------------------------------------------------- LargeStepWarning
@pytest.mark.parametrize("entry", ["numpy", "dask"])
@pytest.mark.parametrize("scheme", ["crank-nicolson", "backward-euler"])
def test_adi_warns_at_very_large_steps(entry, scheme):
    u = np.random.default_rng(0).random((32, 32))
    with pytest.warns(LargeStepWarning, match=r"dt=1e\+09.*method='spectral'.*smaller steps") as rec:
        _heat(u, 1e9, entry, method="implicit", dt=1e9, scheme=scheme)
    assert rec[0].filename == __file__  # points at the caller


@pytest.mark.parametrize("kw", [{}, {"dt": 10.0}, {"dt": 100.0, "scheme": "crank-nicolson"}])
def test_adi_moderate_steps_do_not_warn(kw):
    u = np.random.default_rng(0).random((32, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LargeStepWarning)
        pdediff.solve_heat(u, 100.0, method="implicit", **kw)
        pdediff.solve_heat(u[0], 1e9, method="implicit", dt=1e9)  # 1-D: no splitting
        pdediff.solve_heat(u, 1e9, method="spectral")
        pdediff.solve_heat(u, 1.0, method="implicit", dt=1e9)  # t < dt: one step of 1


# ----------------------------------------------------------------------------- properties: heat
@quiet
@given(st.integers(0, 2**32 - 1), SHAPES, st.sampled_from(["explicit", "implicit", "spectral"]), DTS,
       st.sampled_from(["crank-nicolson", "backward-euler"]), BOUNDARIES, MAGNITUDES, st.booleans(),
       st.sampled_from(["numpy", "dask"]))
@PROPS
def test_heat_float32_is_float64_to_float32_precision(seed, shape, method, dt, scheme, boundary, magnitude,
                                                      variable, entry):
    """Finite wherever the exact result is representable in float32, equal to float64 to float32 precision, and
    within the input's range where the maximum principle is promised (explicit at its default step with
    Neumann/periodic boundaries; backward Euler in 1-D, and split, i.e. with a variable diffusivity)."""
    u = _field(seed, shape, magnitude)
    kw = {"method": method, "boundary": boundary}
    t = 0.7
    if method == "implicit":
        kw.update(dt=dt, scheme=scheme)
        t = dt
    if variable and method != "spectral":
        kw["diffusivity"] = np.random.default_rng(seed).uniform(0.5, 2.0, shape)
    want = pdediff.solve_heat(u.astype(np.float64), t, **kw)
    amax = float(np.abs(u.astype(np.float64)).max())
    assume(float(np.abs(want).max()) <= F32_MAX / 2)  # the result itself fits float32
    got = _heat(u, t, entry, **kw)
    assert got.dtype == np.float32
    _close_to_float64(got, want, amax)
    lo, hi = float(u.min()), float(u.max())
    if boundary == "dirichlet":
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    solver = pdediff.ImplicitHeatSolver(shape, diffusivity=kw.get("diffusivity", 1.0), boundary=boundary,
                                        scheme=scheme) if method == "implicit" else None
    promised = ((method == "explicit" and boundary != "dirichlet")
                or (method == "implicit" and scheme == "backward-euler"
                    and (len(shape) == 1 or solver.form(dt)[1] == "split")))
    if promised:
        slack = 1e-5 * amax
        assert lo - slack <= float(got.min()) and float(got.max()) <= hi + slack


@given(st.integers(0, 2**32 - 1), st.lists(st.integers(2, 6), min_size=1, max_size=3).map(tuple), MAGNITUDES,
       st.floats(0.0, 1e6), BOUNDARIES)
@PROPS
def test_torch_heat_blur_near_float32_maximum(seed, shape, magnitude, t, boundary):
    torch = pytest.importorskip("torch")
    from pdediff.torch import heat_blur

    u = _field(seed, shape, magnitude)
    want = pdediff.solve_heat(u.astype(np.float64), t, method="spectral", boundary=boundary)
    assume(float(np.abs(want).max()) <= F32_MAX / 2)
    got = heat_blur(torch.from_numpy(u.copy()), t, boundary=boundary, spatial_dims=len(shape)).numpy()
    assert got.dtype == np.float32
    _close_to_float64(got, want, float(np.abs(u.astype(np.float64)).max()))


# ----------------------------------------------------------------------------- properties: Perona–Malik
def _pm_image(seed: int, shape, magnitude: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u = rng.random(shape)
    u[tuple(slice(0, max(1, s // 2)) for s in shape)] += 1.0  # an edge, so that conductances vary
    return (u * (magnitude / 2.0)).astype(np.float32)


def _check_pm(got, u, want64):
    assert got.dtype == np.float32 and np.all(np.isfinite(got))
    span = float(u.max()) - float(u.min())
    slack = 1e-6 * float(np.abs(u).max())
    # the maximum principle (documented for both methods, any dt) ...
    assert float(u.min()) - slack <= float(got.min()) and float(got.max()) <= float(u.max()) + slack
    # ... and float64's result to float32 precision
    np.testing.assert_allclose(got, want64, rtol=0, atol=1e-4 * span + slack)


@given(st.integers(0, 2**32 - 1), st.lists(st.integers(2, 7), min_size=1, max_size=3).map(tuple), DTS,
       st.sampled_from(["explicit", "aos"]), MAGNITUDES, st.sampled_from(["numpy", "dask", "torch"]))
@PROPS
def test_perona_malik_every_entry_point(seed, shape, dt, method, magnitude, entry):
    u = _pm_image(seed, shape, magnitude)
    kw = {"method": method, "num_iter": 2, "kappa": "auto"}
    if method == "aos":
        kw["dt"] = dt
    want = pdediff.perona_malik(u.astype(np.float64), **kw)
    if entry == "numpy":
        got = pdediff.perona_malik(u, **kw)
    elif entry == "dask":
        got = np.asarray(pdediff.perona_malik(da.from_array(u, chunks=_chunks(shape)), **kw).compute())
    else:
        torch = pytest.importorskip("torch")
        from pdediff.torch import perona_malik as torch_pm

        got = torch_pm(torch.from_numpy(u.copy())[None], spatial_dims=len(shape), **kw)[0].numpy()
    _check_pm(got, u, want)


@given(st.integers(0, 2**32 - 1), st.sampled_from([(9, 8), (5, 6, 4)]), DTS, st.sampled_from(["explicit", "aos"]),
       MAGNITUDES)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
def test_cli_denoise(tmp_path, seed, shape, dt, method, magnitude):
    """``pdediff denoise x.npy -o y.npy --method M [--dt DT]``: finite, in range, equal to the API's float64."""
    from pdediff.cli import main

    u = _pm_image(seed, shape, magnitude)
    src, out = tmp_path / f"in{seed}.npy", tmp_path / f"out{seed}.npy"
    np.save(src, u)
    argv = ["denoise", str(src), "-o", str(out), "--method", method, "--num-iter", "2", "--quiet", "--force"]
    kw = {"method": method, "num_iter": 2}
    if method == "aos":
        argv += ["--dt", repr(dt)]
        kw["dt"] = dt
    assert main(argv) == 0
    got = np.load(out)
    _check_pm(got, u, pdediff.perona_malik(u.astype(np.float64), **kw))


# ----------------------------------------------------------------------------- ADI's overshoot at the type's maximum
@pytest.mark.parametrize("kind", ["numpy", "dask"])
def test_adi_overshoot_past_the_maximum_is_an_overflow_error_not_inf(kind):
    """Backward-Euler ADI overshoots random +-1 data to 1.77 (no maximum principle): on float32 data at +-3e38 the
    exact result is not representable.  It was returned with inf in it and only NumPy's RuntimeWarning; now an
    OverflowError names the cause and the ways out.  Data with room for the overshoot run as before, exactly."""
    rng = np.random.default_rng(0)
    x = np.where(rng.random((48, 48)) > 0.5, 3e38, -3e38).astype(np.float32)
    u = x if kind == "numpy" else pytest.importorskip("dask.array").from_array(x, chunks=24)
    with pytest.raises(OverflowError, match="float32's range.*float64 data, or method='spectral'"):
        r = pdediff.solve_heat(u, 20, method="implicit", dt=10, scheme="backward-euler")
        if kind == "dask":
            r.compute()
    small = x / np.float32(4)  # room for the overshoot: finite, and the unit-scale result times 7.5e37
    got = pdediff.solve_heat(small, 20, method="implicit", dt=10, scheme="backward-euler")
    unit = pdediff.solve_heat(np.sign(x).astype(np.float64), 20, method="implicit", dt=10, scheme="backward-euler")
    assert np.isfinite(got).all() and np.abs(got).max() > 1.5 * np.abs(small).max()
    np.testing.assert_allclose(got / 7.5e37, unit, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- arrays NumPy would convert lossily
def test_torch_tensors_and_masked_arrays_are_refused_by_the_numpy_front_doors():
    """A torch tensor reached NumPy's conversion (bfloat16: torch's "unsupported ScalarType"; requires_grad:
    "Can't call numpy()"; otherwise an ndarray came back and the gradient was gone) and a masked array's mask
    was ignored: each front door now names the argument and the way to go."""
    torch = pytest.importorskip("torch")
    x = torch.rand(12, 12)
    masked = np.ma.masked_array(np.ones((12, 12)), mask=np.eye(12, dtype=bool))
    calls = {"perona_malik": lambda a: pdediff.perona_malik(a), "solve_heat": lambda a: pdediff.solve_heat(a, 1.0),
             "tensor_diffusion": lambda a: pdediff.tensor_diffusion(a),
             "inpaint": lambda a: pdediff.inpaint(a, np.eye(12, dtype=bool))}
    for name, call in calls.items():
        for a in (x, x.clone().requires_grad_(), x.to(torch.bfloat16)):
            with pytest.raises(TypeError, match=r"is a torch\.Tensor: use pdediff\.torch's operators"):
                call(a)
        with pytest.raises(TypeError, match=r"masked array, whose mask pdediff would ignore"):
            call(masked)
    with pytest.raises(TypeError, match="mask is a torch.Tensor"):
        pdediff.inpaint(np.ones((12, 12)), torch.zeros(12, 12, dtype=torch.bool))


def test_torch_heat_blur_refuses_nan_and_takes_any_time():
    torch = pytest.importorskip("torch")
    from pdediff.torch import heat_blur

    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    bad = x.clone()
    bad[0, 0, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="x must be finite"):
        heat_blur(bad, 1.0)
    assert torch.isnan(heat_blur(bad, 1.0, check_finite=False)).all()  # what the check prevents
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flat = heat_blur(x, 1e308)  # leaked "overflow encountered in multiply"
    torch.testing.assert_close(flat, torch.full_like(x, float(x.mean())), rtol=0, atol=1e-12)
