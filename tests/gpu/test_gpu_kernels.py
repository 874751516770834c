"""Every GPU kernel against its CPU twin, for every boundary, dimension and dtype.

Runs under Numba's CUDA simulator on the CPU (``NUMBA_ENABLE_CUDASIM=1``; small
arrays, the simulator runs each thread in Python) or on a real GPU with numba.cuda
alone (CuPy is not needed: numba.cuda moves the NumPy arrays).  The
kernels are launched through the GPU backend's contract methods (which own the
launch configuration and the shape adaptation), on host arrays.
"""

import numpy as np
import pytest

from pdediff.heat._operators import TridiagonalSystem, as_lines, constant_faces, face_diffusivities
from pdediff.kernels.cpu.backend import CPU

BOUNDS = {"neumann": 0, "dirichlet": 1, "periodic": 2}
TOL = {np.float32: 2e-5, np.float64: 1e-12}
SHAPES = {1: (1, 7), 2: (5, 6), 3: (3, 4, 5)}


@pytest.fixture(scope="module")
def GPU():
    from pdediff.kernels.gpu.backend import GPUBackend

    # NumPy arrays in and out: under the simulator, or on a device with numba.cuda alone (no CuPy needed)
    return GPUBackend(simulate=True)


def _to_host(x):
    return x.get() if hasattr(x, "get") else x


@pytest.mark.parametrize("variable", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("boundary", list(BOUNDS))
def test_heat_step(GPU, boundary, ndim, dtype, variable):
    rng = np.random.default_rng(0)
    shape = SHAPES[ndim]
    u = rng.standard_normal(shape).astype(dtype)
    ih2 = (0.0, 1.3) if ndim == 1 else (1.3, 0.8, 1.1)[: len(shape)]
    bcs = tuple([0] + [BOUNDS[boundary]]) if ndim == 1 else (BOUNDS[boundary],) * len(shape)
    faces = None
    if variable:
        D = rng.uniform(0.5, 1.5, shape)
        faces = tuple(
            (np.zeros((2, shape[1])) if (ndim == 1 and a == 0) else face_diffusivities(D, a, boundary)).astype(dtype)
            for a in range(len(shape))
        )
    for beta in (1.0, 0.0):
        cpu = np.empty_like(u)
        gpu = GPU.asarray(np.zeros_like(u))
        CPU.heat_step(u, cpu, 0.05, ih2, bcs, beta, faces)
        dev_faces = None if faces is None else tuple(GPU.asarray(f) for f in faces)
        GPU.heat_step(GPU.asarray(u), gpu, 0.05, ih2, bcs, beta, dev_faces)
        gpu = _to_host(gpu)
        np.testing.assert_allclose(gpu, cpu, rtol=0, atol=TOL[dtype] * 10)


@pytest.mark.parametrize("code", [0, 1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("ndim", [2, 3])
def test_perona_malik_step(GPU, ndim, channels, dtype, code):
    if code == 3 and dtype == np.float64:
        pytest.skip("code 3 is the float32 exponential")
    rng = np.random.default_rng(1)
    shape = (channels,) + ((4, 6) if ndim == 2 else (3, 4, 5))
    u = rng.random(shape).astype(dtype)
    v = (u + 0.05 * rng.standard_normal(shape)).astype(dtype)
    ih = (1.0, 0.7) if ndim == 2 else (0.5, 1.0, 0.8)
    cpu = np.empty_like(u)
    CPU.pm_step(u, v, cpu, 0.1, ih, 4.0, code)
    gpu = GPU.asarray(np.zeros_like(u))
    GPU.pm_step(GPU.asarray(u), GPU.asarray(v), gpu, 0.1, ih, 4.0, code)
    gpu = _to_host(gpu)
    np.testing.assert_allclose(gpu, cpu, rtol=0, atol=TOL[dtype] * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("boundary", list(BOUNDS))
@pytest.mark.parametrize("axis,shape", [(0, (6,)), (0, (5, 4)), (1, (3, 6)), (1, (3, 5, 4)), (2, (2, 3, 5)),
                                        (1, (37, 35))])
def test_tridiagonal_factor_and_solve(GPU, axis, shape, boundary, dtype):
    """Factor and solve through the backend: line kernels across the contiguous axis, the shared-memory
    tile kernels along it ((37, 35) along axis 1: two tiles of lines, two chunks of columns, both partial)."""
    rng = np.random.default_rng(2)
    D = rng.uniform(0.5, 2.0, shape)
    for F in (constant_faces(shape[axis], 0.9, boundary).reshape(1, -1, 1),
              as_lines(face_diffusivities(D, axis, boundary), axis)):
        system = TridiagonalSystem.build(F, 0.7, boundary, dtype, CPU)
        gsys = TridiagonalSystem.build(F, 0.7, boundary, dtype, GPU)  # factored by the GPU kernels
        for name in ("a", "cp", "inv", "z", "vn", "qf"):
            ref, got = getattr(system, name), getattr(gsys, name)
            assert (ref is None) == (got is None)
            if ref is not None:
                np.testing.assert_allclose(_to_host(got), ref, rtol=TOL[dtype] * 10, atol=TOL[dtype], err_msg=name)
        d = as_lines(rng.standard_normal(shape).astype(dtype), axis)
        out0 = as_lines(rng.standard_normal(shape).astype(dtype), axis)
        for accumulate in (False, True):
            x_cpu, o_cpu = np.empty_like(d), out0.copy()
            CPU.tri_solve(d, x_cpu, o_cpu, system, 0.5, accumulate)
            x_gpu, o_gpu = GPU.asarray(np.zeros_like(d)), GPU.asarray(out0.copy())
            GPU.tri_solve(GPU.asarray(d), x_gpu, o_gpu, gsys, 0.5, accumulate)
            if not accumulate:  # with accumulate, x is scratch space (the CPU's last-axis path skips it)
                np.testing.assert_allclose(_to_host(x_gpu), x_cpu, rtol=0, atol=TOL[dtype] * 20)
            np.testing.assert_allclose(_to_host(o_gpu), o_cpu, rtol=0, atol=TOL[dtype] * 20)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("P,n,Q", [(2, 6, 3), (1, 6, 1), (34, 37, 1)])
def test_factor_kernel(GPU, P, n, Q, dtype):
    rng = np.random.default_rng(3)
    a, c = -rng.random((P, n, Q)).astype(dtype), -rng.random((P, n, Q)).astype(dtype)
    b = (2.5 + rng.random((P, n, Q))).astype(dtype)
    cp0, inv0 = np.empty_like(b), np.empty_like(b)
    CPU.tri_factor(a, b, c, cp0, inv0)
    cp1, inv1 = GPU.asarray(np.zeros_like(b)), GPU.asarray(np.zeros_like(b))
    GPU.tri_factor(GPU.asarray(a), GPU.asarray(b), GPU.asarray(c), cp1, inv1)
    np.testing.assert_allclose(_to_host(cp1), cp0, rtol=TOL[dtype] * 10)
    np.testing.assert_allclose(_to_host(inv1), inv0, rtol=TOL[dtype] * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape4", [(1, 1, 7, 1), (2, 3, 5, 4), (1, 4, 6, 1), (2, 3, 40, 1)])
def test_aos_coefficients(GPU, shape4, dtype):
    rng = np.random.default_rng(4)
    v = rng.random(shape4).astype(dtype)
    shp = shape4[1:]
    cpu = [np.empty(shp, dtype) for _ in range(3)]
    CPU.aos_coefficients(v, 1, *cpu, 2.0, 1.0, 9.0, 0)  # v as (C, *spatial), lines along spatial axis 1
    gpu = [GPU.asarray(np.zeros(shp, dtype)) for _ in range(3)]
    GPU.aos_coefficients(GPU.asarray(v), 1, *gpu, 2.0, 1.0, 9.0, 0)
    gpu = [_to_host(x) for x in gpu]
    for g_, c_ in zip(gpu, cpu):
        np.testing.assert_allclose(g_, c_, rtol=0, atol=TOL[dtype] * 10)
