"""The public API on CuPy arrays (real GPU only): results equal the CPU path, arrays stay on the device."""

import numpy as np
import pytest
from gpu_env import cupy_skip_reason

if cupy_skip_reason():
    pytest.skip(cupy_skip_reason(), allow_module_level=True)

import cupy as cp  # noqa: E402

import pdediff  # noqa: E402

TOL = {np.float32: 5e-5, np.float64: 1e-10}
SHAPES = {1: (33,), 2: (24, 31), 3: (9, 10, 12)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("boundary", ["neumann", "dirichlet", "periodic"])
@pytest.mark.parametrize("method", ["explicit", "implicit", "spectral"])
def test_solve_heat_matches_cpu(method, boundary, ndim, dtype):
    u0 = np.random.default_rng(0).standard_normal(SHAPES[ndim]).astype(dtype)
    cpu = pdediff.solve_heat(u0, 0.7, method=method, boundary=boundary)
    gpu = pdediff.solve_heat(cp.asarray(u0), 0.7, method=method, boundary=boundary)
    assert isinstance(gpu, cp.ndarray) and gpu.dtype == dtype
    np.testing.assert_allclose(gpu.get(), cpu, rtol=0, atol=TOL[dtype] * 10)


@pytest.mark.parametrize("ndim", [2, 3])
def test_variable_diffusivity_matches_cpu(ndim):
    rng = np.random.default_rng(1)
    u0 = rng.standard_normal(SHAPES[ndim])
    D = rng.uniform(0.5, 2, SHAPES[ndim])
    for method in ("explicit", "implicit"):
        cpu = pdediff.solve_heat(u0, 0.5, method=method, diffusivity=D)
        gpu = pdediff.solve_heat(cp.asarray(u0), 0.5, method=method, diffusivity=D)
        np.testing.assert_allclose(gpu.get(), cpu, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", ["explicit", "aos"])
@pytest.mark.parametrize("conductance", ["exponential", "rational", "tukey"])
@pytest.mark.parametrize("ndim", [2, 3])
def test_perona_malik_matches_cpu(ndim, conductance, method, dtype):
    img = np.random.default_rng(2).random(SHAPES[ndim]).astype(dtype)
    cpu, info = pdediff.perona_malik(img, conductance=conductance, method=method, return_info=True)
    gpu = pdediff.perona_malik(cp.asarray(img), conductance=conductance, method=method, kappa=info.kappa)
    assert isinstance(gpu, cp.ndarray)
    np.testing.assert_allclose(gpu.get(), cpu, rtol=0, atol=(1e-4 if dtype == np.float32 else 1e-9))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("boundary", ["neumann", "dirichlet", "periodic"])
@pytest.mark.parametrize("kind,shape,ch", [("eed", (40, 36), None), ("ced", (40, 36), None),
                                           ("eed", (12, 14, 16), None), ("ced", (12, 14, 16), None),
                                           ("eed", (24, 20, 3), -1)])
def test_tensor_diffusion_matches_cpu(kind, shape, ch, boundary, dtype):
    """Explicit EED/CED on the GPU's tensor kernels (float32 ones compute in float32, hence 2e-5 of the range:
    5e-6 measured under the simulator, with room for the device's FMA and transcendental functions)."""
    img = np.random.default_rng(3).random(shape).astype(dtype)
    kw = dict(kind=kind, boundary=boundary, channel_axis=ch, num_iter=3, return_info=True)
    cpu, ic = pdediff.tensor_diffusion(img, **kw)
    gpu, ig = pdediff.tensor_diffusion(cp.asarray(img), **kw)
    assert isinstance(gpu, cp.ndarray) and gpu.dtype == dtype and gpu.shape == img.shape
    np.testing.assert_allclose(gpu.get(), cpu, rtol=0, atol=(2e-5 if dtype == np.float32 else 1e-10))
    assert (ig.num_iter, ig.dt, ig.substeps) == (ic.num_iter, ic.dt, ic.substeps)


def test_tensor_diffusion_semi_implicit_refused():
    with pytest.raises(pdediff.ParameterError, match="method"):
        pdediff.tensor_diffusion(cp.ones((8, 8)), method="semi-implicit")


def test_errors_match_cpu_path():
    with pytest.raises(TypeError, match="float32 or float64"):
        pdediff.solve_heat(cp.zeros((4, 4), cp.float16), 1.0)
    with pytest.raises(ValueError, match="NaN"):
        pdediff.perona_malik(cp.asarray([[0.0, np.nan]]))


def test_torch_cuda_tensors():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    from pdediff.torch import heat_blur, perona_malik

    x = torch.rand(4, 1, 16, 20, device="cuda", dtype=torch.float64)
    y = heat_blur(x, torch.tensor([0.5, 1.0, 2.0, 3.0]))
    assert y.device.type == "cuda"
    np.testing.assert_allclose(y.cpu().numpy(), heat_blur(x.cpu(), torch.tensor([0.5, 1.0, 2.0, 3.0])).numpy(),
                               atol=1e-10)
    z = perona_malik(x, kappa=0.2)
    np.testing.assert_allclose(z.cpu().numpy(), perona_malik(x.cpu(), kappa=0.2).numpy(), atol=1e-9)
