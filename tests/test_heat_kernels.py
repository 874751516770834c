"""Every heat kernel against its plain NumPy/SciPy reference, on random inputs."""

import numpy as np
import pytest
import reference as ref
from common import BOUNDARIES, DTYPES, SHAPES

from pdediff import ExplicitHeatSolver, ImplicitHeatSolver, SpectralHeatSolver

TOL = {np.float32: 2e-5, np.float64: 1e-12}


def _spacing(ndim):
    return (0.7, 1.3, 1.1)[:ndim]


@pytest.mark.parametrize("variable", [False, True], ids=["constant-D", "variable-D"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_explicit_matches_sparse(boundary, ndim, dtype, variable, rng):
    shape, h = SHAPES[ndim], _spacing(ndim)
    u0 = rng.standard_normal(shape).astype(dtype)
    D = rng.uniform(0.2, 2.0, shape) if variable else 0.8
    solver = ExplicitHeatSolver(shape, dtype, diffusivity=D, spacing=h, boundary=boundary)
    u = solver.step(u0.copy(), 3)
    expect = ref.explicit_steps(u0, solver.dt, 3, h, boundary, D=D)
    np.testing.assert_allclose(u, expect, rtol=0, atol=TOL[dtype] * np.abs(expect).max() * 10)


@pytest.mark.parametrize("scheme,theta", [("crank-nicolson", 0.5), ("backward-euler", 1.0)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_adi_equals_factored_sparse_scheme(boundary, ndim, dtype, scheme, theta, rng):
    """ADI is exact for the factored (Douglas) scheme: compare with a direct sparse LU solve."""
    shape, h = SHAPES[ndim], _spacing(ndim)
    u0 = rng.standard_normal(shape).astype(dtype)
    solver = ImplicitHeatSolver(shape, dtype, spacing=h, boundary=boundary, dt=0.9, scheme=scheme)
    u = solver.step(u0.copy(), 2)
    expect = ref.implicit_factored(u0, 0.9, 2, h, boundary, theta)
    np.testing.assert_allclose(u, expect, rtol=0, atol=TOL[dtype] * np.abs(u0).max() * 10)
    if ndim == 1:  # in 1-D the scheme is Crank–Nicolson / backward Euler itself
        np.testing.assert_allclose(u, ref.implicit_unsplit(u0, 0.9, 2, h, boundary, theta),
                                   rtol=0, atol=TOL[dtype] * np.abs(u0).max() * 10)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_adi_within_splitting_error_of_unsplit(boundary, ndim, rng):
    """|u_ADI - u_CN| <= |(P - M)(u_ADI - u)| since ||M^-1||_inf <= 1 (M an M-matrix)."""
    shape, h = SHAPES[ndim], _spacing(ndim)
    u0 = rng.standard_normal(shape)
    for dt in (0.05, 0.5, 2.0):
        u = ImplicitHeatSolver(shape, spacing=h, boundary=boundary, dt=dt).step(u0.copy(), 1)
        cn = ref.implicit_unsplit(u0, dt, 1, h, boundary)
        bound = np.abs(ref.splitting_term(u0, u, dt, h, boundary)).max()
        diff = np.abs(u - cn).max()
        assert diff <= bound * (1 + 1e-9) + 1e-12
        assert diff > 0  # the splitting is real: the test could fail


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_adi_variable_diffusivity_matches_sparse(boundary, ndim, dtype, rng):
    shape, h = SHAPES[ndim], _spacing(ndim)
    u0 = rng.standard_normal(shape).astype(dtype)
    D = rng.uniform(0.2, 2.0, shape)
    u = ImplicitHeatSolver(shape, dtype, diffusivity=D, spacing=h, boundary=boundary, dt=0.7).step(u0.copy(), 2)
    expect = ref.implicit_factored(u0, 0.7, 2, h, boundary, 0.5, D=D)
    np.testing.assert_allclose(u, expect, rtol=0, atol=TOL[dtype] * np.abs(u0).max() * 10)


@pytest.mark.parametrize("spectrum", ["continuous", "discrete"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_spectral_matches_dense_eigen_expansion(boundary, ndim, dtype, spectrum, rng):
    shape, h = SHAPES[ndim], _spacing(ndim)
    u0 = rng.standard_normal(shape).astype(dtype)
    solver = SpectralHeatSolver(shape, dtype, diffusivity=0.6, spacing=h, boundary=boundary, spectrum=spectrum)
    u = solver.evolve(u0, 0.37)
    assert u.dtype == dtype
    expect = ref.spectral(u0, 0.37, h, boundary, D=0.6, spectrum=spectrum)
    np.testing.assert_allclose(u, expect, rtol=0, atol=TOL[dtype] * np.abs(u0).max() * 10)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_spectral_batch_with_per_item_times(boundary, rng):
    solver = SpectralHeatSolver((6, 10), boundary=boundary)
    batch = rng.standard_normal((2, 3, 6, 10))
    t = rng.uniform(0, 3, (2, 3))
    out = solver.evolve(batch, t)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(out[i, j], solver.evolve(batch[i, j], t[i, j]), atol=1e-13)


def test_kernels_do_not_modify_input_and_keep_dtype(rng):
    import pdediff

    for method in ("explicit", "implicit", "spectral"):
        u0 = rng.standard_normal((8, 9)).astype(np.float32)
        keep = u0.copy()
        u = pdediff.solve_heat(u0, 0.5, method=method)
        assert u.dtype == np.float32 and u.shape == u0.shape
        np.testing.assert_array_equal(u0, keep)


def test_parallel_and_serial_kernels_agree(rng, monkeypatch):
    """Large arrays take the prange kernels: they must equal the serial ones bit for bit."""
    import pdediff.kernels.cpu._common as common

    shape = (40, 50, 30)
    u0 = rng.standard_normal(shape)
    D = rng.uniform(0.5, 1.5, shape)
    results = []
    for threshold in (1 << 40, 1):
        monkeypatch.setattr(common, "PARALLEL_MIN_CELLS", threshold)
        e = ExplicitHeatSolver(shape, boundary="periodic").step(u0.copy(), 2)
        v = ExplicitHeatSolver(shape, diffusivity=D).step(u0.copy(), 2)
        i = ImplicitHeatSolver(shape, boundary="periodic", dt=0.3).step(u0.copy(), 2)
        results.append((e, v, i))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
