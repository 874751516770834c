"""pdediff.torch: operators on tensors (zero-copy, autograd) and their references."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pdediff  # noqa: E402
from pdediff.torch import heat_blur, perona_malik  # noqa: E402
from pdediff.torch import ops as tops  # noqa: E402

BOUNDARIES = ["neumann", "dirichlet", "periodic"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("spatial_dims,shape", [(1, (3, 17)), (2, (2, 3, 9, 14)), (3, (2, 5, 6, 7))])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_heat_blur_equals_solve_heat(boundary, spatial_dims, shape, dtype):
    x = torch.rand(shape, dtype=dtype, generator=torch.Generator().manual_seed(0))
    y = heat_blur(x, 1.7, boundary=boundary, spatial_dims=spatial_dims, diffusivity=0.8)
    assert y.dtype == dtype and y.shape == x.shape
    xn = x.numpy().reshape((-1,) + shape[-spatial_dims:])
    for i in range(xn.shape[0]):
        expect = pdediff.solve_heat(xn[i], 1.7, boundary=boundary, diffusivity=0.8)
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        np.testing.assert_allclose(y.numpy().reshape(xn.shape)[i], expect, atol=tol)


def test_heat_blur_is_gaussian_blur_away_from_boundary():
    from scipy.ndimage import gaussian_filter

    x = torch.zeros(1, 1, 65, 71, dtype=torch.float64)
    x[0, 0, 32, 35] = 1.0
    t = 2.5
    y = heat_blur(x, t)[0, 0].numpy()
    g = gaussian_filter(x[0, 0].numpy(), np.sqrt(2 * t), mode="reflect", truncate=8)
    assert np.abs(y - g).max() < 2e-3 * y.max()


def test_heat_blur_discrete_spectrum_matches_the_stencil():
    x = torch.rand(2, 12, 15, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = heat_blur(x, 0.5, spectrum="discrete")
    solver = pdediff.ExplicitHeatSolver((12, 15))
    for i in range(2):
        u = x[i].numpy().copy()
        solver.step(u, 4000, dt=0.5 / 4000)  # explicit with tiny steps -> the semi-discrete solution
        np.testing.assert_allclose(y[i].numpy(), u, atol=5e-5)


def test_semigroup_mean_and_per_sample_times():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(4, 2, 10, 13, dtype=torch.float64, generator=g)
    np.testing.assert_allclose(heat_blur(heat_blur(x, 0.7), 1.1).numpy(), heat_blur(x, 1.8).numpy(), atol=1e-12)
    np.testing.assert_allclose(heat_blur(x, 3.0).mean((-1, -2)).numpy(), x.mean((-1, -2)).numpy(), atol=1e-12)
    t = torch.tensor([0.0, 0.5, 1.0, 4.0])
    y = heat_blur(x, t)
    for i in range(4):
        np.testing.assert_allclose(y[i].numpy(), heat_blur(x[i : i + 1], float(t[i]))[0].numpy(), atol=1e-13)
    t2 = torch.rand(4, 2, dtype=torch.float64, generator=g)
    y2 = heat_blur(x, t2)
    np.testing.assert_allclose(y2[1, 1].numpy(), heat_blur(x[1, 1], float(t2[1, 1])).numpy(), atol=1e-13)


def test_gradcheck_float64():
    x = torch.rand(2, 1, 5, 6, dtype=torch.float64, requires_grad=True)
    for boundary in BOUNDARIES:
        assert torch.autograd.gradcheck(lambda a, b=boundary: heat_blur(a, torch.tensor([0.3, 1.2]), boundary=b),
                                        (x,), eps=1e-6, atol=1e-8)


def test_cpu_path_makes_no_copy(monkeypatch):
    """The tensor's own memory reaches the solver, and the result tensor wraps the solver's output."""
    x = torch.rand(3, 1, 8, 9, dtype=torch.float32)
    seen = {}
    real = pdediff.SpectralHeatSolver.evolve

    def spy(self, u, t):
        seen["in"] = u.ctypes.data
        out = real(self, u, t)
        seen["out"] = out.ctypes.data
        return out

    monkeypatch.setattr(pdediff.SpectralHeatSolver, "evolve", spy)
    y = heat_blur(x, 1.0)
    assert seen["in"] == x.data_ptr()
    assert seen["out"] == y.data_ptr()


@pytest.mark.parametrize("channel_axis", [1, None])
@pytest.mark.parametrize("method", ["explicit", "aos"])
def test_perona_malik_batch_equals_numpy_per_sample(channel_axis, method):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 2, 12, 10, dtype=torch.float64, generator=g)
    y = perona_malik(x, channel_axis=channel_axis, method=method, kappa=0.3)
    assert y.shape == x.shape and not y.requires_grad
    for i in range(3):
        if channel_axis is not None:
            expect = pdediff.perona_malik(x[i].numpy(), channel_axis=0, method=method, kappa=0.3)
            np.testing.assert_allclose(y[i].numpy(), expect, atol=1e-13)
        else:
            for c in range(2):
                expect = pdediff.perona_malik(x[i, c].numpy(), method=method, kappa=0.3)
                np.testing.assert_allclose(y[i, c].numpy(), expect, atol=1e-13)


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: heat_blur(np.zeros((4, 4)), 1.0), TypeError, "torch.Tensor"),
        (lambda: heat_blur(torch.zeros(4, 4, dtype=torch.int64), 1.0), TypeError, "float32 or float64"),
        (lambda: heat_blur(torch.zeros(4), 1.0), ValueError, "at least spatial_dims=2"),
        (lambda: heat_blur(torch.zeros(2, 4, 4), -1.0), ValueError, "non-negative"),
        (lambda: heat_blur(torch.zeros(2, 4, 4), torch.ones(3)), ValueError, "leading shape"),
        (lambda: heat_blur(torch.zeros(2, 4, 4), 1.0, spatial_dims=4), ValueError, "spatial_dims"),
        (lambda: heat_blur(torch.zeros(2, 4, 4), 1.0, boundary="robin"), ValueError, "boundary"),
        (lambda: heat_blur(torch.zeros(2, 4, 4), torch.ones(2, dtype=torch.bool)), TypeError, "t must"),
        (lambda: perona_malik(torch.zeros(2, 4, 4), channel_axis=1), ValueError, "channel_axis"),
        (lambda: perona_malik(torch.zeros(2, 3, 4, 4), channel_axis=True), TypeError, "channel_axis"),
        (lambda: perona_malik(torch.zeros(2, 4, 4), return_info=True), TypeError, "return_info"),
        (lambda: perona_malik(torch.zeros(4, 4, dtype=torch.int64)), TypeError, "float32 or float64"),
        (lambda: heat_blur(torch.zeros(2, 4, 4), 1.0, spacing=(1.0, 2.0, 3.0)), ValueError, "spacing"),
        (lambda: heat_blur(torch.zeros(2, 4, 4), 1.0, spacing=0.0), ValueError, "spacing"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_solver_cache_is_reused():
    tops.spectral_solver.cache_clear()
    x = torch.rand(2, 8, 8)
    heat_blur(x, 1.0)
    heat_blur(x, 2.0)
    assert tops.spectral_solver.cache_info().hits >= 1


@pytest.mark.parametrize("spacing", [(0.5, 2.0), (2.0, 0.7), 1.5])
def test_heat_blur_spacing_equals_solve_heat(spacing):
    x = torch.rand(3, 2, 14, 17, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    t = torch.tensor([0.3, 1.0, 2.5], dtype=torch.float64)
    y = heat_blur(x, t, spacing=spacing)
    for i in range(3):
        for c in range(2):
            expect = pdediff.solve_heat(x[i, c].numpy(), float(t[i]), spacing=spacing)
            np.testing.assert_allclose(y[i, c].numpy(), expect, atol=1e-12)
    if np.isscalar(spacing):  # one spacing h: time is measured in h^2
        np.testing.assert_allclose(y.numpy(), heat_blur(x, t / spacing**2).numpy(), atol=1e-12)


def test_heat_blur_spacing_is_a_gaussian_of_physical_width():
    """Anisotropic spacing: a point source spreads to a Gaussian of std sqrt(2t) in physical units."""
    from scipy.ndimage import gaussian_filter

    spacing = (0.5, 2.0)
    x = torch.zeros(1, 1, 81, 71, dtype=torch.float64)
    x[0, 0, 40, 35] = 1.0
    t = 2.5
    y = heat_blur(x, t, spacing=spacing)[0, 0].numpy()
    sigma_px = [np.sqrt(2 * t) / h for h in spacing]  # physical std / cell size
    g = gaussian_filter(x[0, 0].numpy(), sigma_px, mode="reflect", truncate=8)
    assert np.abs(y - g).max() < 2e-3 * y.max()
    np.testing.assert_allclose(y, pdediff.solve_heat(x[0, 0].numpy(), t, spacing=spacing), atol=1e-12)
    # 3-D with one spacing per axis
    v = torch.rand(2, 6, 7, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    w = heat_blur(v, 0.8, spacing=(3.0, 1.0, 0.5), spatial_dims=3)
    for i in range(2):
        expect = pdediff.solve_heat(v[i].numpy(), 0.8, spacing=(3.0, 1.0, 0.5))
        np.testing.assert_allclose(w[i].numpy(), expect, atol=1e-12)


@pytest.mark.parametrize(
    "shape,channel_axis,spatial_dims",
    [((2, 3, 10, 9), 0, 2), ((2, 3, 10, 9), -4, 2), ((3, 2, 10, 9), -3, 2), ((2, 2, 3, 6, 7), 1, 2),
     ((2, 2, 5, 6, 7), 1, 3)],
)
def test_perona_malik_channel_axis_equals_numpy_per_sample(shape, channel_axis, spatial_dims):
    x = torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    y = perona_malik(x, channel_axis=channel_axis, spatial_dims=spatial_dims, kappa=0.3, spacing=1.5)
    assert y.shape == x.shape and y.is_contiguous()
    ax = channel_axis % x.ndim
    xm, ym = x.movedim(ax, 0).numpy(), y.movedim(ax, 0).numpy()  # channels first, then the batch axes
    lead = x.ndim - spatial_dims - 1
    for idx in np.ndindex(*xm.shape[1 : 1 + lead]):
        sel = (slice(None),) + idx
        expect = pdediff.perona_malik(xm[sel], channel_axis=0, kappa=0.3, spacing=1.5)
        np.testing.assert_allclose(ym[sel], expect, atol=1e-13)


def test_perona_malik_without_channel_axis_treats_every_leading_axis_as_batch():
    x = torch.rand(2, 3, 9, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    y = perona_malik(x, kappa=0.2)  # default channel_axis=None
    for i in range(2):
        for c in range(3):
            expect = pdediff.perona_malik(x[i, c].numpy(), kappa=0.2)
            np.testing.assert_allclose(y[i, c].numpy(), expect, atol=1e-13)
    with pytest.raises(AssertionError):  # sharing one conductance is a different filter
        np.testing.assert_allclose(perona_malik(x, channel_axis=1, kappa=0.2).numpy(), y.numpy(), atol=1e-6)


def test_internal_spectral_api():
    x = torch.rand(3, 1, 6, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    c = tops.dct(x)
    from scipy.fft import dctn

    np.testing.assert_allclose(c.numpy(), dctn(x.numpy(), type=2, norm="ortho", axes=(-2, -1)), atol=1e-12)
    np.testing.assert_allclose(tops.idct(c).numpy(), x.numpy(), atol=1e-12)
    lam = torch.from_numpy(tops.laplacian_eigenvalues((6, 9)))
    blurred = tops.idct(torch.exp(-lam * 1.3) * c)
    np.testing.assert_allclose(blurred.numpy(), heat_blur(x, 1.3).numpy(), atol=1e-12)
    solver = tops.spectral_solver((6, 9), torch.float64)
    assert solver is tops.spectral_solver((6, 9), np.float64, spacing=(1, 1))  # cached
