"""Semi-implicit tensor diffusion (``method="semi-implicit"``): matrix, backward Euler, invariants, errors."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter
from scipy.sparse.linalg import spsolve

import pdediff
from pdediff import ParameterError, StabilityError, StepLimitError
from pdediff.anisotropic import _tensor_implicit as SI
from pdediff.anisotropic import tensor as T
from pdediff.kernels.cpu import tensor as K

SHAPES = {2: (14, 11), 3: (6, 7, 5)}
SPACING = {2: (1.0, 0.7), 3: (2.0, 1.0, 0.8)}
BOUNDARIES = ("neumann", "periodic", "dirichlet")


def _dt_max(spacing):
    return 1.0 / (2.0 * sum(1.0 / h**2 for h in spacing))


def _semi(u, **kw):
    return pdediff.tensor_diffusion(u, method="semi-implicit", **kw)


def _cg_bound(u, steps=1):
    """The pointwise error bound of ``steps`` CG solves: ``2 rtol ||u||_2`` each (error and mass shift)."""
    return 2.0 * steps * SI.CG_RTOL * np.linalg.norm(np.ravel(u)) * 1.01 + 1e-14


# ----------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("ndim", [2, 3])
def test_matrix_is_the_explicit_scatter(ndim, boundary, rng):
    """``A u`` and ``-diag A`` of the assembled CSR matrix equal the compiled scatter (apply2/apply3)."""
    shape = SHAPES[ndim]
    u = rng.random((2,) + shape)
    setup = T._Setup(mode=K.CED, cond=K.WEICKERT, kinv2=0.0, gs=255.0, alpha=0.01, C=1.0, sigma=1.0, rho=1.0,
                     spacing=SPACING[ndim], boundary=boundary, kind="ced", dt=0.1)
    W, O, span = T._selling_links(u, setup)
    assert span >= 2  # long links (beyond the 8-/26-neighbourhood) are exercised
    bc = T.BC_CODE[boundary]
    A = SI.stencil_matrix(W, O, bc)
    acc = np.empty(u.shape)
    dg = np.empty(shape)
    reach = int(np.abs(O[..., 0]).max())
    (K.apply2 if ndim == 2 else K.apply3)(u, W, O, reach, bc, acc, dg, True, 2)
    for c in range(2):
        np.testing.assert_allclose(A @ u[c].ravel(), acc[c].ravel(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(-A.diagonal(), dg.ravel(), rtol=0, atol=1e-12)
    assert abs(A - A.T).max() == 0.0
    off = A - sp.diags(A.diagonal())
    assert off.min() >= 0.0
    rowsum = np.asarray(A.sum(axis=1)).ravel()
    if boundary == "dirichlet":
        assert rowsum.max() <= 1e-12 and rowsum.min() < -1e-3
    else:
        np.testing.assert_allclose(rowsum, 0.0, atol=1e-12)


# ------------------------------------------------------------------- backward Euler of the heat equation


def _laplacian_1d(n, h, boundary):
    main = -2.0 * np.ones(n)
    L = sp.diags([np.ones(n - 1), main, np.ones(n - 1)], [-1, 0, 1], format="lil")
    if boundary == "neumann":  # the link leaving the grid is dropped
        L[0, 0] = L[n - 1, n - 1] = -1.0
    elif boundary == "periodic":
        L[0, n - 1] += 1.0
        L[n - 1, 0] += 1.0
    return L.tocsr() / h**2  # dirichlet: a zero ghost one cell beyond the edge cell


def _laplacian(shape, spacing, boundary):
    L = sp.csr_matrix((int(np.prod(shape)),) * 2)
    for a, (n, h) in enumerate(zip(shape, spacing)):
        ops = [sp.identity(m, format="csr") for m in shape]
        ops[a] = _laplacian_1d(n, h, boundary)
        term = ops[0]
        for op in ops[1:]:
            term = sp.kron(term, op, format="csr")
        L = L + term
    return L


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("ndim", [2, 3])
def test_isotropic_step_is_backward_euler(ndim, boundary, rng):
    """``kappa`` huge: ``D = I``, and one step is ``(I - dt L)^-1 u`` with the 5-/7-point Laplacian."""
    shape, h = SHAPES[ndim], SPACING[ndim]
    u = rng.random(shape)
    dt = 10.0 * _dt_max(h)
    out = _semi(u, kind="eed", kappa=1e12, dt=dt, num_iter=1, spacing=h, boundary=boundary)
    M = sp.identity(u.size, format="csr") - dt * _laplacian(shape, h, boundary)
    ref = spsolve(M.tocsc(), u.ravel()).reshape(shape)
    assert np.abs(ref - u).max() > 0.1  # a large step: far from the input
    assert np.abs(out - ref).max() <= _cg_bound(u)


# ----------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("boundary", ["neumann", "periodic"])
@pytest.mark.parametrize("kind", ["eed", "ced"])
@pytest.mark.parametrize("ndim", [2, 3])
def test_mass_is_conserved(ndim, kind, boundary, rng):
    shape = SHAPES[ndim]
    u = rng.random(shape + (3,))  # colour: one tensor, every channel conserved
    own = {"alpha": 0.01} if kind == "ced" else {}  # EED refuses CED's alpha
    out = _semi(u, kind=kind, dt=25.0 * _dt_max((1.0,) * ndim), num_iter=2, boundary=boundary,
                channel_axis=-1, **own)
    for c in range(3):
        assert abs(out[..., c].sum() - u[..., c].sum()) <= 1e-10 * np.abs(u[..., c]).sum()
    assert np.abs(out - u).max() > 1e-2


@settings(max_examples=12)
@given(seed=st.integers(0, 2**31 - 1), ndim=st.sampled_from([2, 3]), kind=st.sampled_from(["eed", "ced"]),
       boundary=st.sampled_from(BOUNDARIES), factor=st.sampled_from([10.0, 100.0]),
       scale=st.sampled_from([1e-3, 1.0, 300.0]))
def test_maximum_minimum_principle_at_large_steps(seed, ndim, kind, boundary, factor, scale):
    """Within the CG tolerance for ``dt`` = 10x and 100x the explicit limit (M-matrix: ``M^-1 >= 0``)."""
    rng = np.random.default_rng(seed)
    shape = (16, 16) if ndim == 2 else (8, 8, 8)
    u0 = scale * rng.random(shape) ** 3
    dt = factor * _dt_max((1.0,) * ndim)
    own = {"alpha": 0.01} if kind == "ced" else {}  # EED refuses CED's alpha
    out, info = _semi(u0, kind=kind, dt=dt, num_iter=2, boundary=boundary, return_info=True, **own)
    lo, hi = u0.min(), u0.max()
    if boundary == "dirichlet":
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    tol = _cg_bound(u0, steps=2)
    assert out.min() >= lo - tol and out.max() <= hi + tol
    assert np.abs(out - u0).max() > 1e-3 * scale  # it did diffuse
    assert info.method == "semi-implicit" and info.cg_iterations > 0 and info.substeps == 0


def test_explicit_scheme_at_the_same_step_would_violate_it(rng):
    """The test above can fail: ``u + dt A u`` with the same matrix at 10x the limit overshoots."""
    u = rng.random((16, 16)) ** 3
    setup = T._Setup(mode=K.EED_GRAD, cond=K.WEICKERT, kinv2=1.0 / (0.05 * 255) ** 2, gs=255.0, alpha=0.01,
                     C=1.0, sigma=1.0, rho=0.0, spacing=(1.0, 1.0), boundary="neumann", kind="eed", dt=2.5)
    W, O, _ = T._selling_links(u[None].copy(), setup)
    A = SI.stencil_matrix(W, O, T.BC_CODE["neumann"])
    exp = u.ravel() + 2.5 * (A @ u.ravel())
    assert exp.min() < u.min() - 0.1 or exp.max() > u.max() + 0.1


@pytest.mark.parametrize("kind", ["eed", "ced"])
@pytest.mark.parametrize("ndim", [2, 3])
def test_small_steps_agree_with_explicit_to_second_order(ndim, kind, rng, monkeypatch):
    """``(I - dt A)^-1 u - (I + dt A) u = dt^2 A^2 u + O(dt^3)``: the gap shrinks 4x per halving of dt.

    CG runs to 1e-12 here so that its tolerance does not mask the gap (measured ratios 3.6-3.97)."""
    monkeypatch.setattr(SI, "CG_RTOL", 1e-12)
    u = rng.random(SHAPES[ndim])
    kw = dict(kind=kind, num_iter=1, **({"kappa": 0.3} if kind == "eed" else {"alpha": 0.05}))  # each its own
    dt_max = _dt_max((1.0,) * ndim)
    gaps = []
    for dt in (dt_max / 8, dt_max / 16, dt_max / 32):
        semi = _semi(u, dt=dt, **kw)
        explicit = pdediff.tensor_diffusion(u, dt=dt, **kw)
        gaps.append(np.abs(semi - explicit).max())
    assert gaps[-1] > 1e-6  # far above the solver's tolerance
    for a, b in zip(gaps, gaps[1:]):
        assert 3.5 < a / b < 4.5


# ----------------------------------------------------------------------------- defaults, dtypes


@pytest.mark.parametrize("kind", ["eed", "ced"])
def test_default_step_keeps_the_explicit_diffusion_time(kind, rng):
    u = gaussian_filter(rng.random((24, 24)), 1.0) + 0.1 * rng.standard_normal((24, 24))
    _, ex = pdediff.tensor_diffusion(u, kind=kind, return_info=True)
    _, si = _semi(u, kind=kind, return_info=True)
    dt_max = 0.25
    # the explicit default's diffusion time, which the explicit path rounds to whole steps of its own dt (EED:
    # 0.8 dt_max), the semi-implicit one to ceil(T / (5 dt_max)) equal steps
    t_ex, t_si = ex.dt * ex.num_iter, si.dt * si.num_iter
    assert abs(t_si - t_ex) <= ex.dt * (1 + 1e-12)
    assert si.num_iter == math.ceil(t_si / (SI.DT_FACTOR * dt_max) - 1e-9)
    assert si.dt <= SI.DT_FACTOR * dt_max * (1 + 1e-12)
    _, only_n = _semi(u, kind=kind, num_iter=3, return_info=True)
    assert only_n.dt == pytest.approx(SI.DT_FACTOR * 0.25)


@pytest.mark.parametrize("ndim", [2, 3])
def test_float32_in_float32_out(ndim, rng):
    u = rng.random(SHAPES[ndim])
    out32 = _semi(u.astype(np.float32), kind="eed", kappa=0.2, num_iter=2)
    out64 = _semi(u, kind="eed", kappa=0.2, num_iter=2)
    assert out32.dtype == np.float32 and out64.dtype == np.float64
    np.testing.assert_allclose(out32, out64, atol=1e-4)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("method", ["implicit", "semi_implicit", "aos"])
def test_unknown_method_names_the_parameter(method, rng):
    with pytest.raises(ParameterError, match="method") as err:
        pdediff.tensor_diffusion(rng.random((8, 8)), method=method)
    assert err.value.param == "method"
    with pytest.raises(TypeError, match="method"):
        pdediff.tensor_diffusion(rng.random((8, 8)), method=None)


@pytest.mark.parametrize("dt", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_dt_names_the_parameter(dt, rng):
    with pytest.raises(ParameterError, match="dt") as err:
        _semi(rng.random((8, 8)), dt=dt, num_iter=1)
    assert err.value.param == "dt"


def test_large_dt_is_allowed_only_semi_implicitly(rng):
    u = rng.random((8, 8))
    with pytest.raises(StabilityError):
        pdediff.tensor_diffusion(u, dt=2.5, num_iter=1)
    assert _semi(u, dt=2.5, num_iter=1).shape == u.shape
    with pytest.raises(StepLimitError):
        _semi(u, dt=0.01, num_iter=10, max_steps=5)


def test_unconverged_solve_names_dt(rng):
    n = 20
    L = _laplacian((n, n), (1.0, 1.0), "neumann")
    M = (sp.identity(n * n) - 100.0 * L).tocsr()
    with pytest.raises(ParameterError, match="did not converge") as err:
        SI.solve(M, rng.random(n * n), conserve=True, maxiter=2)
    assert err.value.param == "dt"
    x, k = SI.solve(M, rng.random(n * n), conserve=True, maxiter=SI.cg_iteration_cap(100.0, 4.0))
    assert 2 < k <= SI.cg_iteration_cap(100.0, 4.0)


def test_non_finite_input_and_dask_are_refused(rng):
    u = rng.random((8, 8))
    u[3, 3] = np.nan
    with pytest.raises(ParameterError) as err:
        _semi(u, num_iter=1, check_finite=False, kappa=0.1)
    assert err.value.param == "image"
    da = pytest.importorskip("dask.array")
    with pytest.raises(ParameterError) as err:
        _semi(da.from_array(rng.random((8, 8)), chunks=4), num_iter=1)
    assert err.value.param == "method"


@pytest.mark.parametrize("dt", [1e20, 1e200, 1e300])
def test_huge_steps_are_refused_before_solving(dt, rng):
    """dt = 1e300 overflowed (kappa**1.5) with a traceback, 1e200 flooded overflow warnings and ran for minutes,
    1e20 took 18k CG iterations: the work is bounded and said before it starts, naming dt and what fits."""
    import warnings

    u = rng.random((16, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ParameterError, match=r"dt=.*conjugate-gradient iterations.*use dt <= ") as err:
            pdediff.tensor_diffusion(u, kind="eed", method="semi-implicit", dt=dt, num_iter=1)
    assert err.value.param == "dt"
    ok = float(str(err.value).split("use dt <= ")[1].split(" ")[0])
    assert SI.cg_iteration_cap(ok, 4.0) <= SI.MAX_CG_ITERATIONS
    out = pdediff.tensor_diffusion(u, kind="eed", method="semi-implicit", dt=ok / 100, num_iter=1)
    assert u.min() - 1e-6 <= out.min() and out.max() <= u.max() + 1e-6
