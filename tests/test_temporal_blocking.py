"""Temporal blocking (pdediff.kernels.cpu.blocked): n steps per few memory passes equal n single steps.

Bit for bit against the plain one-step kernels (same operations in the same order), for every
boundary, dimension and dtype, with tiles that do not divide the grid, block depths that do not
divide n, both the serial and the threaded build; and against the independent sparse-matrix /
np.roll references of tests/reference.py.
"""

import itertools
import os

import numpy as np
import pytest
import reference as ref
from common import BOUNDARIES, DTYPES

from pdediff import ExplicitHeatSolver
from pdediff.anisotropic import _steppers
from pdediff.grid import BC_CODE
from pdediff.kernels.cpu import _common, blocked
from pdediff.kernels.cpu import backend as backend_mod
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

    def heat_steps(self, u, buf, n, dt, ih2, bcs, beta=1.0, *, amax_limit=None):
        calls.append(n)
        assert amax_limit is not None  # the solver hands its overflow check to the backend
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


@pytest.mark.parametrize("shape,tile,band", [((21, 17), 5, None), ((9, 11, 7), 2, 3)])
def test_nonfinite_values_stay_local_as_in_single_steps(shape, tile, band, rng):
    """NaN/inf propagate exactly as in n single steps (halo recomputation does not spread them further)."""
    u0 = rng.standard_normal(shape)
    u0[(4,) * len(shape)], u0[(2,) * (len(shape) - 1) + (-1,)] = np.nan, np.inf
    a, b = u0.copy(), np.empty_like(u0)
    coefs, bcs = (0.15,) * len(shape), (1,) * len(shape)
    got = blocked.heat_steps(a, b, 6, 1.0, coefs, bcs, depth=4, tile=tile, band=band)
    expect = _plain_heat(u0, 6, coefs, bcs)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expect))
    np.testing.assert_array_equal(got, expect)


# --------------------------------------------------------------------------- 3-D wavefront (heat)

WAVE_CONFIGS = [  # (steps, depth, planes per slab, rows per band)
    (11, 4, 3, 4),  # slabs and bands that divide neither the grid nor each other; depth not dividing n
    (9, 3, 100, 2),  # one slab; bands narrower than the halo
    (7, 7, 5, 100),  # whole planes, slabs of 5 (z halos only)
    (10, 8, None, None),  # automatic
    (5, 2, 1, 1),  # one plane x one row per block
]


@pytest.mark.parametrize("dtype", DTYPES)
def test_heat3_wavefront_equals_single_steps_bitwise(dtype, build, rng):
    """Every boundary on every axis (mixed too), blocks not dividing the grid, bands wrapping (periodic) or
    read in place, serial and threaded builds: bit for bit n single steps."""
    shape = (11, 13, 7)
    u0 = rng.standard_normal(shape).astype(dtype)
    coefs = (0.12, 0.1, 0.14)
    for bcs in itertools.product((0, 1, 2), repeat=3):
        for n, depth, tile, band in WAVE_CONFIGS:
            expect = _plain_heat(u0, n, coefs, bcs)
            a, b = u0.copy(), np.empty_like(u0)
            got = blocked.heat_steps(a, b, n, 1.0, coefs, bcs, depth=depth, tile=tile, band=band)
            assert got is (a if len(blocked._passes(n, depth)) % 2 == 0 else b)
            np.testing.assert_array_equal(got, expect, err_msg=f"bcs={bcs} n={n} depth={depth} {tile}x{band}")


def test_heat3_wavefront_thin_and_large_grids(rng):
    """Axes of one or two cells (ghost cells on both sides of a plane or row) and the automatic blocks of a grid
    whose planes do not fit RING_BYTES (several bands)."""
    for shape in [(1, 1, 6), (2, 1, 3), (3, 2, 1), (1, 5, 2)]:
        for bcs in itertools.product((0, 1, 2), repeat=3):
            u0 = rng.standard_normal(shape)
            for depth, tile, band in [(8, None, None), (3, 1, 1)]:
                got = blocked.heat_steps(u0.copy(), np.empty_like(u0), 9, 1.0, (0.1,) * 3, bcs, depth=depth,
                                         tile=tile, band=band)
                np.testing.assert_array_equal(got, _plain_heat(u0, 9, (0.1,) * 3, bcs))
    shape = (6, 40, 3000)  # float64 planes of 0.9 MiB: 8 levels x 3 of them exceed RING_BYTES
    slab, band = blocked._wave_blocks(shape, 8, 8, 2)
    assert band < shape[1] and slab == shape[0]
    u0 = rng.standard_normal(shape)
    got = blocked.heat_steps(u0.copy(), np.empty_like(u0), 8, 1.0, (0.1,) * 3, (2, 2, 0))
    np.testing.assert_array_equal(got, _plain_heat(u0, 8, (0.1,) * 3, (2, 2, 0)))


def _halo_checked_pass(kernel_py, u0, depth, blocks, coefs, bcs):
    """One pass of ``depth`` steps through the pure-Python body of a tile kernel (``py_func``: it looks its
    helpers up in the module at call time, so a test can shrink the halo), buffers filled with NaN."""
    t = u0.dtype.type
    out = np.full_like(u0, np.nan)
    L = max(b1 - b0 for b0, b1 in blocks[-1]) + 2 * depth
    if u0.ndim == 3:
        ring = np.full((depth, 3, L, u0.shape[2]), np.nan, dtype=u0.dtype)
        for (k0, k1), (i0, i1) in itertools.product(*blocks):
            kernel_py(u0, out, k0, k1, i0, i1, depth, t(1.0), t(1.0), *(t(c) for c in coefs), *bcs, ring)
    else:
        A, B = (np.full((L, u0.shape[1]), np.nan, dtype=u0.dtype) for _ in range(2))
        for r0, r1 in blocks[0]:
            kernel_py(u0, out, r0, r1, depth, t(1.0), t(1.0), *(t(c) for c in coefs), *bcs, A, B)
    return out


def _cuts(n, size):
    return [(a, min(n, a + size)) for a in range(0, n, size)]


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_halo_smaller_than_depth_is_detected(boundary, monkeypatch, rng):
    """The bitwise comparison catches a halo one plane or row too narrow: with the real halos the pure-Python
    kernel bodies equal single steps, with a halo of ``depth - 1`` (z slabs, y bands, 2-D tiles) they do not."""
    depth, bc = 4, BC_CODE[boundary]
    u3 = rng.standard_normal((10, 11, 5))
    coefs3 = (0.12, 0.1, 0.14)
    blocks3 = (_cuts(10, 3), _cuts(11, 4))
    expect3 = _plain_heat(u3, depth, coefs3, (bc,) * 3)
    u2 = rng.standard_normal((13, 6))
    expect2 = _plain_heat(u2, depth, (0.2, 0.2), (bc,) * 2)

    def run():
        got3 = _halo_checked_pass(blocked._heat3_wave.py_func, u3, depth, blocks3, coefs3, (bc,) * 3)
        got2 = _halo_checked_pass(blocked._heat2_tile.py_func, u2, depth, (_cuts(13, 4),), (0.2, 0.2), (bc,) * 2)
        return np.array_equal(got3, expect3), np.array_equal(got2, expect2)

    assert run() == (True, True)
    slab_range, tile_span = blocked._slab_range, blocked._tile_span
    with monkeypatch.context() as m:  # z halo of the slabs one plane short
        m.setattr(blocked, "_slab_range", lambda k0, k1, n0, lag, per: slab_range(k0, k1, n0, max(lag - 1, 0), per))
        assert not run()[0]
    with monkeypatch.context() as m:  # y halo of the bands (3-D) and of the tiles (2-D) one row short
        m.setattr(blocked, "_tile_span", lambda r0, r1, n0, d, bc0: tile_span(r0, r1, n0, d - 1, bc0))
        assert run() == (False, False)


def test_backend_blocks_large_arrays_bitwise(monkeypatch, rng):
    """CPUBackend.heat_steps / pm_steps where blocking pays (a cache share of 0 here): 3-D heat through the wavefront,
    3-D Perona–Malik through single steps, both bit for bit n single steps."""
    requested = []
    real = blocked.kernel
    monkeypatch.setattr(blocked, "kernel", lambda op, *a: requested.append(op) or real(op, *a))
    monkeypatch.setattr(backend_mod, "cache_share", lambda nthreads: 0)
    u0 = rng.standard_normal((9, 10, 11)).astype(np.float32)
    coefs = (0.1, 0.12, 0.14)
    got = CPU.heat_steps(u0.copy(), np.empty_like(u0), 13, 1.0, coefs, (0, 1, 2))
    np.testing.assert_array_equal(got, _plain_heat(u0, 13, coefs, (0, 1, 2)))
    assert requested == ["heat_wave"]
    v0 = rng.standard_normal((1, 6, 5, 7)).astype(np.float32)
    got = CPU.pm_steps(v0.copy(), np.empty_like(v0), 4, 0.1, (1.0, 1.0, 1.0), 1.0, 0)
    np.testing.assert_array_equal(got, _plain_pm(v0, 4, 0.1, (1.0, 1.0, 1.0), 1.0, 0))
    assert requested[1:] == ["perona_malik"] * 4


def test_default_3d_and_beta_is_kept(rng):
    """3-D defaults: heat through the wavefront, Perona–Malik through single steps (measured faster); beta != 1
    reaches every path."""
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


def test_last_level_cache_from_sysfs(tmp_path, monkeypatch):
    """The blocking decision's cache size: the highest data/unified level of a sysfs tree, its CPUs counted
    from shared_cpu_list; the instruction cache ignored; the fallback where there is no tree; the override."""
    monkeypatch.delenv("PDEDIFF_LLC_BYTES", raising=False)
    entries = {"index0": ("1", "Data", "32K", "0"), "index1": ("1", "Instruction", "64M", "0"),
               "index2": ("2", "Unified", "1024K", "0"), "index3": ("3", "Unified", "300M", "0-3,8-11")}
    for name, (level, typ, size, cpus) in entries.items():
        d = tmp_path / name
        d.mkdir()
        for key, val in zip(("level", "type", "size", "shared_cpu_list"), (level, typ, size, cpus)):
            (d / key).write_text(val + "\n")
    assert _common.last_level_cache(str(tmp_path)) == (300 << 20, 8)
    assert _common.last_level_cache(str(tmp_path / "missing")) == (_common.LLC_FALLBACK_BYTES, os.cpu_count() or 1)
    monkeypatch.setenv("PDEDIFF_LLC_BYTES", "2M")
    assert _common.last_level_cache(str(tmp_path)) == (2 << 20, 8)
    for bad in ("lots", "0", "-4M"):  # never silently ignored
        monkeypatch.setenv("PDEDIFF_LLC_BYTES", bad)
        with pytest.warns(RuntimeWarning, match="PDEDIFF_LLC_BYTES"):
            assert _common.last_level_cache(str(tmp_path)) == (300 << 20, 8)


def test_blocking_decision_follows_the_cache_share(monkeypatch):
    """Blocked exactly when u and its scratch array exceed half the threads' share of the last-level cache."""
    u = np.zeros((64, 64), np.float32)  # 16 KiB: working set 32 KiB
    monkeypatch.setattr(_common, "_LLC", (64 << 10, 4))  # 64 KiB shared by 4 CPUs
    assert not backend_mod.blocking_pays(u, 4)  # all 64 KiB: half of it holds the working set exactly
    assert not backend_mod.blocking_pays(u, 8)  # no more than the whole cache for more threads than CPUs
    assert backend_mod.blocking_pays(u, 2)  # 32 KiB
    assert backend_mod.blocking_pays(u, 1)  # 16 KiB
    assert backend_mod.blocking_pays(u.astype(np.float64), 4)
