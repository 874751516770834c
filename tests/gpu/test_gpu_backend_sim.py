"""The GPU backend's launch code (grids, faces, Thomas, AOS, FFT scaling), driven end to end
through the public API under the CUDA simulator, on NumPy arrays, against the CPU path."""

import numpy as np
import pytest
from gpu_env import simulator

if not simulator():
    pytest.skip("runs under NUMBA_ENABLE_CUDASIM=1 only", allow_module_level=True)

import pdediff  # noqa: E402
from pdediff.kernels.gpu.backend import GPUBackend  # noqa: E402

# the solvers and the in-memory executor (which runs solve_heat, perona_malik and estimate_kappa's plans)
MODULES = ["pdediff.heat.explicit", "pdediff.heat.implicit", "pdediff.heat.spectral", "pdediff._memory"]


@pytest.fixture
def on_gpu(monkeypatch):
    """Route NumPy arrays to the (simulated) GPU backend in every solver module."""
    import importlib

    be = GPUBackend(simulate=True)

    def run(fn, *a, **k):
        with monkeypatch.context() as m:
            for mod in MODULES:
                m.setattr(importlib.import_module(mod), "backend_for", lambda x: be)
            return fn(*a, **k)

    return run


@pytest.mark.parametrize("method", ["explicit", "implicit", "spectral"])
@pytest.mark.parametrize("boundary", ["neumann", "dirichlet", "periodic"])
@pytest.mark.parametrize("shape", [(9,), (5, 6), (3, 4, 5)])
def test_solve_heat_through_gpu_backend(on_gpu, method, boundary, shape):
    u0 = np.random.default_rng(0).standard_normal(shape)
    cpu = pdediff.solve_heat(u0, 0.6, method=method, boundary=boundary)
    gpu = on_gpu(pdediff.solve_heat, u0, 0.6, method=method, boundary=boundary)
    np.testing.assert_allclose(gpu, cpu, atol=1e-12)


def test_variable_diffusivity_through_gpu_backend(on_gpu):
    rng = np.random.default_rng(1)
    u0, D = rng.standard_normal((5, 6)), rng.uniform(0.5, 2, (5, 6))
    for method in ("explicit", "implicit"):
        cpu = pdediff.solve_heat(u0, 0.4, method=method, diffusivity=D)
        gpu = on_gpu(pdediff.solve_heat, u0, 0.4, method=method, diffusivity=D)
        np.testing.assert_allclose(gpu, cpu, atol=1e-12)


@pytest.mark.parametrize("method", ["explicit", "aos"])
@pytest.mark.parametrize("shape,ch", [((6, 7), None), ((3, 4, 5), None), ((5, 6, 3), -1)])
def test_perona_malik_through_gpu_backend(on_gpu, method, shape, ch):
    img = np.random.default_rng(2).random(shape)
    cpu, info = pdediff.perona_malik(img, method=method, channel_axis=ch, num_iter=2, return_info=True)
    gpu, ginfo = on_gpu(pdediff.perona_malik, img, method=method, channel_axis=ch, num_iter=2, return_info=True)
    assert ginfo.kappa == pytest.approx(info.kappa)
    np.testing.assert_allclose(gpu, cpu, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,h", [((1, 40), (0.7,)), ((3, 12, 15), (1.0, 0.5)), ((1, 6, 7, 8), (2.0, 1.0, 0.7))])
@pytest.mark.parametrize("kind", ["noise", "blocks", "nan", "huge"])
def test_face_gradient_mad_matches_cpu(shape, h, dtype, kind):
    """The GPU backend's array-operation radix select against the fused CPU kernel."""
    from pdediff.kernels.cpu.backend import CPU

    rng = np.random.default_rng(4)
    v = rng.standard_normal(shape)
    if kind == "blocks":  # ties: MAD 0 and the mean fallback
        v = np.round(v)
        v[..., : shape[-1] // 2] = 1.0
    elif kind == "nan":
        v.reshape(-1)[::17] = np.nan
    elif kind == "huge":
        v *= 1e100 if dtype == np.float64 else 1e30
    v = v.astype(dtype)
    be = GPUBackend(simulate=True)
    with np.errstate(over="ignore"):
        gpu = be.face_gradient_mad(v, h)
    cpu = CPU.face_gradient_mad(v, h)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-6, equal_nan=True)
