"""Temporal blocking (pdediff.kernels.cpu.blocked): n steps per few memory passes equal n single steps.

Bit for bit against the plain one-step kernels (same operations in the same order), for every
boundary, dimension and dtype, with tiles that do not divide the grid, block depths that do not
divide n, both the serial and the threaded build; and against the independent sparse-matrix /
np.roll references of tests/reference.py.
"""

import numpy as np
import pytest
import reference as ref
from common import BOUNDARIES, DTYPES

from pdediff import ExplicitHeatSolver
from pdediff.anisotropic import _steppers
from pdediff.grid import BC_CODE
from pdediff.kernels.cpu import _common, blocked
from pdediff.kernels.cpu.backend import CPU, CPUBackend

# Sizes that are no multiple of the tiles (1, 3, 4 rows/planes) or of each other.
HEAT_SHAPES = {1: (29,), 2: (23, 19), 3: (11, 9, 7)}
PM_SHAPES = {1: (1, 31), 2: (2, 17, 13), 3: (1, 10, 7, 6)}
CONDUCTANCES = {"exponential": 0, "rational": 1, "tukey": 2}


@pytest.fixture(params=["serial", "parallel"])
def build(request, monkeypatch):
    """Run the blocked kernels through their serial or their threaded build (prange over tiles)."""
    if request.param == "parallel":
        monkeypatch.setattr(blocked, "kernel", lambda op, nd, coef, size: _common.kernel_builds(op, nd, coef).parallel)
    else:
        monkeypatch.setattr(blocked, "kernel", lambda op, nd, coef, size: _common.kernel_builds(op, nd, coef).serial)
    return request.param


def _plain_heat(u0, n, coefs, bcs):
    a, b = u0.copy(), np.empty_like(u0)
    for _ in range(n):
        CPU.heat_step(a, b, 1.0, coefs, bcs)
        a, b = b, a
    return a


def _plain_pm(u0, n, dt, ih, kinv2, code):
    a, b = u0.copy(), np.empty_like(u0)
    for _ in range(n):
        CPU.pm_step(a, a, b, dt, ih, kinv2, code)
        a, b = b, a
    return a


@pytest.mark.parametrize("tile,depth", [(3, 2), (4, 8)])
@pytest.mark.parametrize("n", [1, 11])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_heat_blocked_equals_single_steps_bitwise(boundary, ndim, dtype, n, tile, depth, build, rng):
    shape = HEAT_SHAPES[ndim]
    u0 = rng.standard_normal(shape).astype(dtype)
    coefs = tuple(0.9 / (2 * ndim) * c for c in (1.0, 0.7, 1.3)[:ndim])  # per-axis dt D / h^2, stable
    bcs = (BC_CODE[boundary],) * ndim
    expect = _plain_heat(u0, n, coefs, bcs)
    a, b = u0.copy(), np.empty_like(u0)
    got = blocked.heat_steps(a, b, n, 1.0, coefs, bcs, depth=depth, tile=tile)
    assert got is (a if len(blocked._passes(n, min(depth or blocked.BLOCK_DEPTH, n))) % 2 == 0 else b)
    np.testing.assert_array_equal(got, expect)
    assert not np.array_equal(got, u0)  # something happened: the comparison can fail


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_heat_blocked_matches_sparse_reference(boundary, ndim, dtype, rng):
    shape, h = HEAT_SHAPES[ndim], (0.7, 1.3, 1.1)[:ndim]
    u0 = rng.standard_normal(shape).astype(dtype)
    solver = ExplicitHeatSolver(shape, dtype, diffusivity=0.8, spacing=h, boundary=boundary)
    coefs = tuple(solver.dt * 0.8 / hh**2 for hh in h)
    a, b = u0.copy(), np.empty_like(u0)
    got = blocked.heat_steps(a, b, 10, 1.0, coefs, solver._bcs, depth=4, tile=3)
    expect = ref.explicit_steps(u0, solver.dt, 10, h, boundary, D=0.8)
    tol = {np.float32: 2e-5, np.float64: 1e-12}[dtype]
    np.testing.assert_allclose(got, expect, rtol=0, atol=tol * np.abs(expect).max() * 10)


def test_heat_blocked_single_tile_and_thin_axes(rng):
    """Automatic tiles and depth; a tile wider than the grid, halos wider than the grid (periodic wrap), axes of one or two cells."""
    for shape in [(1, 9), (2, 5), (3, 1, 4), (1, 1, 6)]:
        for bc in (0, 1, 2):
            u0 = rng.standard_normal(shape)
            coefs = (0.1,) * len(shape)
            a, b = u0.copy(), np.empty_like(u0)
            for depth, tile in [(8, 64), (None, None), (1, 1)]:
                got = blocked.heat_steps(a.copy(), b, 9, 1.0, coefs, (bc,) * len(shape), depth=depth, tile=tile)
                np.testing.assert_array_equal(got, _plain_heat(u0, 9, coefs, (bc,) * len(shape)))


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_solver_step_uses_blocking_and_equals_single_steps(boundary, ndim, monkeypatch, rng):
    """ExplicitHeatSolver.step(u, n) through a backend offering heat_steps: bit for bit n apply_operator calls."""
    calls = []

    def heat_steps(self, u, buf, n, dt, ih2, bcs, beta=1.0):
        calls.append(n)
        return blocked.heat_steps(u, buf, n, dt, ih2, bcs, beta)

    monkeypatch.setattr(CPUBackend, "heat_steps", heat_steps, raising=False)
    shape = HEAT_SHAPES[ndim]
    solver = ExplicitHeatSolver(shape, np.float32, diffusivity=0.6, spacing=(0.9, 1.1, 1.2)[:ndim], boundary=boundary)
    u0 = rng.standard_normal(shape).astype(np.float32)
    a, b = u0.copy(), np.empty_like(u0)
    for _ in range(13):
        solver.apply_operator(a, b, solver.dt)
        a, b = b, a
    got = solver.step(u0.copy(), 13)
    assert calls == [13]
    np.testing.assert_array_equal(got, a)
    # variable diffusivity keeps the single-step kernel
    D = rng.uniform(0.2, 2.0, shape)
    var = ExplicitHeatSolver(shape, np.float64, diffusivity=D, boundary=boundary)
    var.step(rng.standard_normal(shape), 3)
    assert calls == [13]


@pytest.mark.parametrize("tile,depth", [(3, 2), (4, 8)])
@pytest.mark.parametrize("n", [1, 11])
@pytest.mark.parametrize("conductance", list(CONDUCTANCES))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_pm_blocked_equals_single_steps_bitwise(ndim, dtype, conductance, n, tile, depth, build, rng):
    shape = PM_SHAPES[ndim]
    u0 = rng.standard_normal(shape).astype(dtype)
    ih = (1.0, 1 / 0.8, 1 / 1.2)[:ndim]
    dt = 0.9 / (2 * sum(x * x for x in ih))
    code = CONDUCTANCES[conductance]
    expect = _plain_pm(u0, n, dt, ih, 0.5, code)
    a, b = u0.copy(), np.empty_like(u0)
    got = blocked.pm_steps(a, b, n, dt, ih, 0.5, code, depth=depth, tile=tile)
    np.testing.assert_array_equal(got, expect)
    assert not np.array_equal(got, u0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_pm_blocked_matches_numpy_reference(ndim, dtype, rng):
    """Against the np.roll reference (float64 exp there; the float32 kernel's exponential within float32 ulps)."""
    shape, h = PM_SHAPES[ndim], (1.0, 0.8, 1.2)[:ndim]
    u0 = rng.standard_normal(shape).astype(dtype)
    dt, kappa = 0.1, 0.7
    expect = u0.astype(np.float64)
    for _ in range(7):
        expect = ref.pm_explicit_step(expect, dt, kappa, "exponential", h)
    a, b = u0.copy(), np.empty_like(u0)
    got = blocked.pm_steps(a, b, 7, dt, tuple(1 / x for x in h), 1 / kappa**2, 0, depth=3, tile=2)
    tol = {np.float32: 1e-5, np.float64: 1e-12}[dtype]
    np.testing.assert_allclose(got, expect, rtol=0, atol=tol * np.abs(expect).max() * 10)


def test_pm_stepper_steps_equals_single_steps(monkeypatch, rng):
    """The explicit stepper's n-step path (sigma = 0) with and without the backend's pm_steps."""
    u0 = rng.standard_normal((2, 15, 11))
    h, dt, kinv2 = (1.0, 1.0), 0.2, 2.0
    stepper = _steppers.make_stepper(u0, h, dt, kinv2, 1, None, "explicit", CPU)
    a, b = u0.copy(), np.empty_like(u0)
    for _ in range(9):
        stepper(a, a, b)
        a, b = b, a
    plain = stepper.steps(u0.copy(), np.empty_like(u0), 9)  # CPUBackend without pm_steps: single steps
    np.testing.assert_array_equal(plain, a)
    monkeypatch.setattr(CPUBackend, "pm_steps", lambda self, *args: blocked.pm_steps(*args), raising=False)
    np.testing.assert_array_equal(stepper.steps(u0.copy(), np.empty_like(u0), 9), a)


def test_nonfinite_values_stay_local_as_in_single_steps(rng):
    """NaN/inf propagate exactly as in n single steps (halo recomputation does not spread them further)."""
    u0 = rng.standard_normal((21, 17))
    u0[10, 3], u0[2, 16] = np.nan, np.inf
    a, b = u0.copy(), np.empty_like(u0)
    got = blocked.heat_steps(a, b, 6, 1.0, (0.2, 0.2), (1, 1), depth=4, tile=5)
    expect = _plain_heat(u0, 6, (0.2, 0.2), (1, 1))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expect))
    np.testing.assert_array_equal(got, expect)


def test_default_3d_takes_single_steps_and_beta_is_kept(rng):
    """3-D defaults run the single-step kernels (measured faster); beta != 1 reaches every path."""
    u0 = rng.standard_normal((6, 5, 7)).astype(np.float32)
    coefs, bcs = (0.1, 0.1, 0.1), (0, 0, 0)
    a, b = u0.copy(), np.empty_like(u0)
    expect = a.copy()
    for _ in range(3):
        CPU.heat_step(expect, b, 1.0, coefs, bcs, 0.5)
        expect = b.copy()
    for depth in (None, 2):
        got = blocked.heat_steps(u0.copy(), np.empty_like(u0), 3, 1.0, coefs, bcs, 0.5, depth=depth, tile=2)
        np.testing.assert_array_equal(got, expect)
        # dt multiplies the per-axis coefficients on every path
        got = blocked.heat_steps(u0.copy(), np.empty_like(u0), 3, 0.5, (0.2, 0.2, 0.2), bcs, 0.5, depth=depth)
        np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-6)
    v0 = rng.standard_normal((1, 6, 5, 7))
    single = _plain_pm(v0, 4, 0.1, (1.0, 1.0, 1.0), 1.0, 0)
    np.testing.assert_array_equal(blocked.pm_steps(v0.copy(), np.empty_like(v0), 4, 0.1, (1.0, 1.0, 1.0), 1.0, 0),
                                  single)
