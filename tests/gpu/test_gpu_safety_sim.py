"""Reliability of the GPU kernels (CUDA simulator): non-finite and extreme values never crash,
and the GPU path agrees with the CPU path on them, as on ordinary data."""

import numpy as np
import pytest
from gpu_env import simulator

if not simulator():
    pytest.skip("runs under NUMBA_ENABLE_CUDASIM=1 only", allow_module_level=True)

import pdediff  # noqa: E402
from pdediff.kernels.gpu.backend import GPUBackend  # noqa: E402

# the solvers and the in-memory executor (which runs solve_heat, perona_malik and estimate_kappa's plans)
MODULES = ["pdediff.heat.explicit", "pdediff.heat.implicit", "pdediff.heat.spectral", "pdediff._memory"]


def _on_gpu(monkeypatch, fn, *a, **k):
    import importlib

    be = GPUBackend(simulate=True)
    with monkeypatch.context() as m:
        for mod in MODULES:
            module = importlib.import_module(mod)
            if hasattr(module, "backend_for"):
                m.setattr(module, "backend_for", lambda x: be)
        return fn(*a, **k)


@pytest.mark.parametrize("method", ["explicit", "aos"])
@pytest.mark.parametrize("conductance", ["exponential", "rational", "tukey"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_same_on_gpu_and_cpu(monkeypatch, method, conductance, bad):
    u = np.random.default_rng(3).random((6, 7))
    u[2, 3] = bad
    kw = dict(method=method, conductance=conductance, check_finite=False, num_iter=2, kappa=0.3, sigma=0.0)
    cpu = pdediff.perona_malik(u, **kw)
    gpu = _on_gpu(monkeypatch, pdediff.perona_malik, u, **kw)
    np.testing.assert_array_equal(np.isfinite(gpu), np.isfinite(cpu))
    finite = np.isfinite(cpu)
    np.testing.assert_allclose(gpu[finite], cpu[finite], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("scale", [1e30, 3e38])
@pytest.mark.parametrize("method", ["explicit", "aos"])
def test_huge_float32_values_same_on_gpu_and_cpu(monkeypatch, scale, method):
    u = (np.random.default_rng(4).random((5, 6)) * scale).astype(np.float32)
    cpu = pdediff.perona_malik(u, method=method, num_iter=2, kappa=scale / 10, sigma=0.0)
    gpu = _on_gpu(monkeypatch, pdediff.perona_malik, u, method=method, num_iter=2, kappa=scale / 10, sigma=0.0)
    assert np.isfinite(gpu).all() and np.isfinite(cpu).all()
    np.testing.assert_allclose(gpu, cpu, rtol=1e-5, atol=1e-6 * scale)
