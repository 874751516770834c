"""Launch configurations: CUDA's per-dimension limits for shapes up to 2^31 cells, threadIdx.x on the
contiguous axis (recorded under the simulator), and grid-stride loops covering clipped grids."""

import math
import threading

import numpy as np
import pytest
from gpu_env import simulator

from pdediff.kernels.gpu import launch
from pdediff.kernels.gpu.launch import MAX_BLOCK, MAX_GRID, MAX_THREADS, launch_config, tile_config

BIG = 2**31
SHAPES = [(1,), (7,), (BIG,), (BIG - 1,), (1, BIG), (BIG, 1), (2**16, 2**15), (65535 * 8 + 1, 3), (3, 65535 * 8 + 1),
          (2**21, 2**10), (1, 1, BIG), (BIG, 1, 1), (2**11, 2**10, 2**10), (65535 * 2 + 1, 8 * 65535 + 1, 1),
          (2**17, 2**7, 2**7), (1, 2**16, 2**15), (1, 1, 1)]


@pytest.mark.parametrize("shape", SHAPES)
def test_launch_config_respects_every_limit(shape):
    grid, block = launch_config(shape)
    assert len(grid) == len(block) == 3
    assert all(1 <= g <= lim for g, lim in zip(grid, MAX_GRID)), grid
    assert all(1 <= b <= lim for b, lim in zip(block, MAX_BLOCK)), block
    assert math.prod(block) == launch.BLOCK_THREADS <= MAX_THREADS
    # x on the last (contiguous) axis, a whole number of warps along it
    assert block[0] % 32 == 0
    n0, n1, n2 = (1,) * (3 - len(shape)) + shape
    for n, g, b, lim in zip((n2, n1, n0), grid, block, MAX_GRID):
        # either the grid covers the axis, or it is clipped at the limit and the grid-stride loop covers the rest
        assert g * b >= n or g == lim
        assert g <= max(1, math.ceil(n / b))  # no block without work


def test_one_dimensional_problems_use_the_x_dimension():
    """The old (1, n) launch with (16, 16) blocks put ceil(n / 16) in gridDim.y: past 65535 above ~1e6 cells."""
    grid, block = launch_config((1, 1, 4_000_000))
    assert block == (256, 1, 1) and grid == (15625, 1, 1)


def test_tile_config():
    assert tile_config(4096) == ((128, 1, 1), (32, 1, 1))
    assert tile_config(BIG)[0][0] <= MAX_GRID[0]


@pytest.mark.parametrize("shape", [(), (1, 2, 3, 4), (-1, 3)])
def test_launch_config_refuses_bad_shapes(shape):
    with pytest.raises(ValueError, match="shape"):
        launch_config(shape)


# ---------------------------------------------------------------------- under the simulator
sim = pytest.mark.skipif(not simulator(), reason="records threads under NUMBA_ENABLE_CUDASIM=1 only")


@pytest.fixture
def record(monkeypatch):
    """Every store a kernel makes: ``(array, blockIdx, threadIdx, index)``, read from the simulator's threads."""
    from numba.cuda.simulator.cudadrv.devicearray import FakeWithinKernelCUDAArray

    log = []
    orig = FakeWithinKernelCUDAArray.__setitem__

    def setitem(self, idx, val):
        th = threading.current_thread()
        if hasattr(th, "threadIdx"):
            log.append((id(self._item), tuple(th.blockIdx), tuple(th.threadIdx), tuple(self._item.shape), idx))
        orig(self, idx, val)

    monkeypatch.setattr(FakeWithinKernelCUDAArray, "__setitem__", setitem)
    return log


def _first_stores_are_contiguous(log):
    """Per array, the first store of each thread; threads ``x`` and ``x + 1`` of one block row store to
    neighbouring addresses (a warp writes one contiguous run), unless ``x + 1`` starts a new row."""
    first = {}
    for arr, blk, thr, shape, idx in log:
        first.setdefault((arr, blk, thr[1], thr[2], thr[0]), (shape, idx))
    pairs = 0
    for (arr, blk, ty, tz, tx), (shape, idx) in first.items():
        nxt = first.get((arr, blk, ty, tz, tx + 1))
        if nxt is None:
            continue
        a = np.ravel_multi_index(idx, shape)
        b = np.ravel_multi_index(nxt[1], shape)
        assert b == a + 1, (shape, idx, nxt[1])
        pairs += 1
    return pairs


@sim
@pytest.mark.parametrize("shape", [(70,), (5, 70), (3, 6, 40)])
def test_heat_step_threads_walk_the_contiguous_axis(record, shape):
    from pdediff.kernels.gpu.backend import GPUBackend

    be = GPUBackend(simulate=True)
    u = np.random.default_rng(0).random(shape)
    be.heat_step(u, np.empty_like(u), 0.1, (1.0,) * len(shape), (0,) * len(shape))
    assert _first_stores_are_contiguous(record) > 30


@sim
def test_perona_malik_and_aos_threads_walk_the_contiguous_axis(record):
    from pdediff.kernels.gpu.backend import GPUBackend

    be = GPUBackend(simulate=True)
    u = np.random.default_rng(1).random((1, 4, 40))
    be.pm_step(u, u, np.empty_like(u), 0.1, (1.0, 1.0), 4.0, 0)
    assert _first_stores_are_contiguous(record) > 30
    record.clear()
    a, b, c = (np.empty((4, 40, 1)) for _ in range(3))  # lines along the contiguous axis
    be.aos_coefficients(u, 1, a, b, c, 1.0, 1.0, 4.0, 0)
    assert _first_stores_are_contiguous(record) > 30


@sim
def test_tiled_tridiagonal_stores_are_coalesced(record):
    from pdediff.heat._operators import TridiagonalSystem, constant_faces

    from pdediff.kernels.gpu.backend import GPUBackend

    be = GPUBackend(simulate=True)
    system = TridiagonalSystem.build(constant_faces(40, 0.9, "neumann").reshape(1, -1, 1), 0.7, "neumann",
                                     np.float64, be)
    d = np.random.default_rng(2).random((33, 40, 1))
    be.tri_solve(d, np.empty_like(d), d, system)
    assert _first_stores_are_contiguous(record) > 30


@sim
def test_clipped_grids_still_cover_every_cell(monkeypatch):
    """With the grid limits shrunk to 2 blocks per dimension, the grid-stride loops do all the work."""
    from pdediff.kernels.cpu.backend import CPU
    from pdediff.kernels.gpu.backend import GPUBackend

    monkeypatch.setattr(launch, "MAX_GRID", (2, 2, 2))
    be = GPUBackend(simulate=True)
    rng = np.random.default_rng(3)
    for shape in [(600,), (3, 70), (5, 20, 70)]:
        u = rng.random(shape)
        gpu, cpu = np.zeros_like(u), np.empty_like(u)
        be.heat_step(u, gpu, 0.1, (1.0,) * len(shape), (2,) * len(shape))
        CPU.heat_step(u, cpu, 0.1, (1.0,) * len(shape), (2,) * len(shape))
        np.testing.assert_allclose(gpu, cpu, atol=1e-14)
    d = rng.random((70, 5, 1))
    a, b, c = -rng.random((70, 5, 1)), 3 + rng.random((70, 5, 1)), -rng.random((70, 5, 1))
    cp0, inv0, cp1, inv1 = (np.zeros_like(d) for _ in range(4))
    CPU.tri_factor(a, b, c, cp0, inv0)
    be.tri_factor(a, b, c, cp1, inv1)  # 70 lines = 3 tiles on a grid of 2
    np.testing.assert_allclose(cp1, cp0, rtol=1e-14)
    np.testing.assert_allclose(inv1, inv0, rtol=1e-14)
