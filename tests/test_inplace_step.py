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
