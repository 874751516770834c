"""Every bad input raises a specific exception that names the parameter."""

import numpy as np
import pytest

import pdediff
from pdediff import ExplicitHeatSolver, StabilityError

U = np.zeros((8, 8))


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"method": "magic"}, ValueError, "method must be one of"),
        ({"boundary": "robin"}, ValueError, "boundary must be one of"),
        ({"scheme": "rk4", "method": "implicit"}, ValueError, "scheme must be one of"),
        ({"spectrum": "exact"}, ValueError, "spectrum must be one of"),
        ({"diffusivity": 0.0}, ValueError, "diffusivity must be positive"),
        ({"diffusivity": -1.0}, ValueError, "diffusivity must be positive"),
        ({"diffusivity": "fast"}, TypeError, "diffusivity must be a positive number"),
        ({"diffusivity": np.ones((8, 8))}, ValueError, "spectral"),
        ({"diffusivity": np.ones((4, 4)), "method": "explicit"}, ValueError, "shape of u0"),
        ({"diffusivity": -np.ones((8, 8)), "method": "explicit"}, ValueError, "positive everywhere"),
        ({"spacing": 0.0}, ValueError, "spacing must be positive"),
        ({"spacing": (1.0, 2.0, 3.0)}, ValueError, "one per axis"),
        ({"spacing": "1"}, TypeError, "spacing"),
        ({"dt": -0.1, "method": "explicit"}, ValueError, "dt must be"),
        ({"dt": 0.0, "method": "implicit"}, ValueError, "dt must be"),
        ({"dt": 0.3, "method": "explicit"}, StabilityError, "stability limit.*0.25"),
    ],
)
def test_bad_options(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        pdediff.solve_heat(U, 1.0, **kwargs)


def test_stability_error_is_value_error_and_states_limit():
    with pytest.raises(ValueError, match=r"0\.0625"):
        ExplicitHeatSolver((4, 4), spacing=0.5, dt=0.1)
    assert issubclass(StabilityError, ValueError)


@pytest.mark.parametrize(
    "u0,exc,match",
    [
        (np.zeros((4, 4), bool), TypeError, "u0 must be a real"),
        (np.zeros((4, 4), complex), TypeError, "u0 must be a real"),
        (np.zeros((4, 4), object), TypeError, "u0 must be a real"),
        (np.zeros((4, 4), np.longdouble), TypeError, "float16, float32 or float64"),
        (np.zeros((2, 2, 2, 2)), ValueError, "u0 must have 1 or 2 or 3 dimensions"),
        (np.float64(3.0), TypeError, "u0 must be an array"),
        (np.zeros((0, 4)), ValueError, "must not be empty"),
        (np.array([[1.0, np.nan]]), ValueError, "NaN or infinity"),
        (np.array([[1.0, np.inf]]), ValueError, "check_finite=False"),
    ],
)
def test_bad_arrays(u0, exc, match):
    with pytest.raises(exc, match=match):
        pdediff.solve_heat(u0, 1.0)


def test_check_finite_false_skips_the_scan():
    u = pdediff.solve_heat(np.array([1.0, np.nan, 2.0]), 0.5, method="explicit", check_finite=False)
    assert np.isnan(u).any()


@pytest.mark.parametrize(
    "t,exc,match",
    [
        (-1.0, ValueError, "t must be non-negative"),
        (float("nan"), ValueError, "t must be non-negative"),
        ([0.0, -1.0], ValueError, "non-negative"),
        ([1.0, 0.5], ValueError, "non-decreasing"),
        ([], ValueError, "non-empty"),
        ([[1.0]], ValueError, "1-D"),
        (True, TypeError, "t must be"),
        ("soon", TypeError, "t must be"),
    ],
)
def test_bad_times(t, exc, match):
    with pytest.raises(exc, match=match):
        pdediff.solve_heat(U, t)


def test_solver_state_checks():
    s = ExplicitHeatSolver((4, 5))
    with pytest.raises(ValueError, match="shape"):
        s.step(np.zeros((5, 4)))
    with pytest.raises(ValueError, match="dtype"):
        s.step(np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        s.step(np.zeros((5, 4)).T)
    with pytest.raises(ValueError, match="non-negative number of steps"):
        s.step(np.zeros((4, 5)), -1)
    with pytest.raises(ValueError, match="batch shape"):
        pdediff.SpectralHeatSolver((4,)).evolve(np.zeros((3, 4)), np.ones(2))
    with pytest.raises(ValueError, match="shape"):
        pdediff.Grid((0, 3))


@pytest.mark.parametrize("solver", ["ExplicitHeatSolver", "ImplicitHeatSolver"])
def test_step_refuses_a_read_only_array_in_one_line(solver):
    """step(u, n) works in place: a read-only u (np.load(mmap_mode='r'), a broadcast view) gets a one-line
    ValueError from both steppers (the implicit one used to raise a long Numba TypingError)."""
    import pdediff

    u = np.random.default_rng(0).random((8, 9))
    u.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        getattr(pdediff, solver)(u.shape).step(u, 1)


@pytest.mark.parametrize("call", [
    lambda a, sp: pdediff.perona_malik(a, num_iter=1, spacing=sp, method="aos"),
    lambda a, sp: pdediff.perona_malik(a, num_iter=1, spacing=sp),
    lambda a, sp: pdediff.solve_heat(a, t=1e-3, spacing=sp),
    lambda a, sp: pdediff.tensor_diffusion(a, kind="eed", num_iter=1, spacing=sp),
])
def test_spacing_ratio_beyond_float64_refused_by_name(call):
    """Spacing (1e-100, 1e100): each width in range, but the coarse width's square in units of the finest
    (1e400) overflows: AOS Perona-Malik raised a bare OverflowError; every solver refuses it by name."""
    a = np.random.default_rng(0).random((8, 9))
    with pytest.raises(pdediff.ParameterError, match=r"spacing.*ratio.*at most 1e\+100") as exc:
        call(a, (1e-100, 1e100))
    assert exc.value.param == "spacing"
    call(a, (1e-50, 1e49))  # a ratio of 1e99 runs


@pytest.mark.parametrize("kw, name", [
    ({"method": "spectral", "dt": 0.1}, "dt"),  # the default method: dt did nothing
    ({"method": "spectral", "scheme": "backward-euler"}, "scheme"),
    ({"method": "explicit", "scheme": "backward-euler"}, "scheme"),
    ({"method": "implicit", "spectrum": "discrete"}, "spectrum"),
])
def test_solve_heat_refuses_options_of_other_methods(kw, name):
    """solve_heat accepted and ignored dt/scheme/spectrum for methods that do not use them (issue 20)."""
    with pytest.raises(pdediff.ParameterError, match=rf"{name} does not apply to method=") as exc:
        pdediff.solve_heat(U, 1.0, **kw)
    assert exc.value.param == name
    own = {"dt": "explicit", "scheme": "implicit", "spectrum": "spectral"}[name]
    pdediff.solve_heat(U, 1.0, **{**kw, "method": own, **({"dt": 0.1} if name == "dt" else {})})
