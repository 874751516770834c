"""The in-place explicit heat step (a rolling line buffer, pdediff.kernels.cpu.inplace): bit for bit the step into
another array, for every boundary, dimension and dtype, sizes that no block count divides, serial and threaded
builds, blocks of a single row or plane; ExplicitHeatSolver.step(u, n) for odd n takes it."""

import numpy as np
import pytest
from common import BOUNDARIES, DTYPES

from pdediff import ExplicitHeatSolver
from pdediff.grid import BC_CODE
from pdediff.kernels.cpu import _common
from pdediff.kernels.cpu.backend import CPU, CPUBackend

SHAPES = {1: (13,), 2: (7, 11), 3: (5, 6, 7)}


def _inplace(u, coefs, bcs, build, nblocks, beta=1.0):
    """The kernel itself with a chosen build and block count (the backend picks them by size)."""
    t = u.dtype.type
    if u.ndim == 1:
        u2, coefs, bcs = u.reshape(1, -1), (0.0, coefs[0]), (0, bcs[0])
    else:
        u2 = u
    k = getattr(_common.kernel_builds("heat_inplace", u2.ndim, "const"), build)
    saved = np.empty((nblocks, 2) + u2.shape[1:], dtype=u.dtype)
    k(u2, saved, nblocks, t(1.0), t(beta), *(t(c) for c in coefs), *bcs)
    return u


@pytest.mark.parametrize("build", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_inplace_step_equals_out_of_place_bitwise(boundary, ndim, dtype, build, rng):
    shape = SHAPES[ndim]
    u0 = rng.standard_normal(shape).astype(dtype)
    coefs = tuple(0.9 / (2 * ndim) * c for c in (1.0, 0.7, 1.3)[:ndim])
    bcs = (BC_CODE[boundary],) * ndim
    for beta in (1.0, 0.5):
        expect = np.empty_like(u0)
        CPU.heat_step(u0, expect, 1.0, coefs, bcs, beta)
        # 1 block; blocks that do not divide the rows; a block per row or plane (more blocks than rows: empty ones)
        for nblocks in (1, 2, 3, shape[0] if ndim > 1 else 1, shape[0] + 2 if ndim > 1 else 1):
            got = _inplace(u0.copy(), coefs, bcs, build, nblocks, beta)
            np.testing.assert_array_equal(got, expect, err_msg=f"nblocks={nblocks} beta={beta}")
    assert not np.array_equal(expect, u0)  # the step changed something: the comparison can fail


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("shape", [(1, 9), (2, 5), (9, 1), (2, 2, 3), (4, 1, 5), (3, 4, 2), (1, 1, 6)])
def test_inplace_step_degenerate_shapes(boundary, shape, rng):
    """Axes of one or two cells (the neighbour is the cell itself, or the same row on both sides)."""
    u0 = rng.standard_normal(shape).astype(np.float64)
    coefs = (0.1, 0.12, 0.14)[: len(shape)]
    bcs = (BC_CODE[boundary],) * len(shape)
    expect = np.empty_like(u0)
    CPU.heat_step(u0, expect, 1.0, coefs, bcs)
    for nblocks in (1, 2, shape[0] + 1):
        for build in ("serial", "parallel"):
            np.testing.assert_array_equal(_inplace(u0.copy(), coefs, bcs, build, nblocks), expect)


def test_backend_inplace_step(rng):
    """CPUBackend.heat_step_inplace (its own choice of build and blocks) on a size that takes the threaded build."""
    u0 = rng.standard_normal((70, 90)).astype(np.float32)
    expect = np.empty_like(u0)
    CPU.heat_step(u0, expect, 1.0, (0.1, 0.12), (2, 2))
    u = u0.copy()
    assert CPU.heat_step_inplace(u, 1.0, (0.1, 0.12), (2, 2)) is u
    np.testing.assert_array_equal(u, expect)


@pytest.mark.parametrize("n", [1, 3, 4])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_solver_odd_step_counts_in_place(boundary, n, rng, monkeypatch):
    """step(u, n): bit for bit n out-of-place steps, and an odd n takes exactly one in-place step."""
    shape = (11, 13)
    solver = ExplicitHeatSolver(shape, np.float32, boundary=boundary, diffusivity=0.7, spacing=(1.0, 1.3))
    u0 = rng.standard_normal(shape).astype(np.float32)
    a, b = u0.copy(), np.empty_like(u0)
    for _ in range(n):
        solver.apply_operator(a, b, solver.dt)
        a, b = b, a
    calls = []
    real = CPUBackend.heat_step_inplace
    monkeypatch.setattr(CPUBackend, "heat_step_inplace", lambda self, *a: calls.append(1) or real(self, *a))
    u = u0.copy()
    assert solver.step(u, n) is u
    np.testing.assert_array_equal(u, a)
    assert len(calls) == n % 2


# ----------------------------------------------------------------------------- the overflow check fused into a step
@pytest.mark.parametrize("build", ["serial", "parallel"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_step_that_scans_its_input_equals_the_step_and_abs_max(boundary, ndim, dtype, build, rng, monkeypatch):
    """heat_step_amax: the step bit for bit, and max|u| exactly as abs_max (a magnitude in any cell, NaN)."""
    monkeypatch.setattr(_common, "_POLICY", _common.ThreadPolicy(build))
    shape = SHAPES[ndim]
    coefs = tuple(0.9 / (2 * ndim) * c for c in (1.0, 0.7, 1.3)[:ndim])
    bcs = (BC_CODE[boundary],) * ndim
    for where in [None, 0, -1, len(np.zeros(shape).ravel()) // 2]:
        u = rng.standard_normal(shape).astype(dtype)
        if where is not None:
            u.reshape(-1)[where] = -7e3  # the largest magnitude, negative, at an edge or inside
        expect, got = np.empty_like(u), np.empty_like(u)
        CPU.heat_step(u, expect, 1.0, coefs, bcs)
        amax = CPU.heat_step_amax(u, got, 1.0, coefs, bcs)
        np.testing.assert_array_equal(got, expect)
        assert amax == float(np.abs(u).max()) == CPU.abs_max(u)
    u.reshape(-1)[1] = np.nan
    assert np.isnan(CPU.heat_step_amax(u, got, 1.0, coefs, bcs))


@pytest.mark.parametrize("blocked", [False, True])
@pytest.mark.parametrize("n", [2, 3, 4, 5, 9, 10, 12])
def test_checked_steps_equal_single_steps_or_leave_u_untouched(n, blocked, rng, monkeypatch):
    """heat_steps(amax_limit=...): below the limit the n steps bit for bit (even and odd n, the check fused into
    the first step or, blocked, a scan of its own); above it None and u exactly as it was."""
    if blocked:
        monkeypatch.setattr(_common, "_LLC", (16 << 10, 1))  # a 16 KiB cache: 48² float32 (9 KiB, twice) does not fit
    u0 = rng.standard_normal((48, 48)).astype(np.float32)
    coefs, bcs = (0.2, 0.2), (BC_CODE["neumann"],) * 2
    from pdediff.kernels.cpu import backend as backend_mod

    assert backend_mod.blocking_pays(u0) == blocked
    expect, b = u0.copy(), np.empty_like(u0)
    for _ in range(n):
        CPU.heat_step(expect, b, 1.0, coefs, bcs)
        expect, b = b, expect
    u, buf = u0.copy(), np.empty_like(u0)
    res = CPU.heat_steps(u, buf, n, 1.0, coefs, bcs, amax_limit=10.0)
    np.testing.assert_array_equal(res, expect)
    if not blocked or n <= 9:
        assert res is u  # the result ends in u: no copy back (blocked: the n - 1 steps after the first in one pass)
    u, buf = u0.copy(), np.empty_like(u0)
    assert CPU.heat_steps(u, buf, n, 1.0, coefs, bcs, amax_limit=1.0) is None
    np.testing.assert_array_equal(u, u0)


def test_solver_scales_when_the_fused_check_refuses(rng):
    """ExplicitHeatSolver.step(u, n >= 2) on values near float32's maximum: finite and equal to the float64 steps
    (the fused check hands over to the power-of-two scaling); ordinary values bit for bit the single steps."""
    u = np.where(rng.random((24, 20)) > 0.5, 3e38, -3e38).astype(np.float32)
    s32, s64 = ExplicitHeatSolver(u.shape, np.float32), ExplicitHeatSolver(u.shape, np.float64)
    got = s32.step(u.copy(), 4)
    ref = s64.step(u.astype(np.float64), 4)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e33)
