"""The tensor-diffusion (EED/CED) GPU kernels against the CPU kernels, and ``tensor_diffusion`` on the GPU backend.

Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) on NumPy arrays, or on
a device with numba.cuda alone: the backend's ``tensor_structure`` /
``tensor_links`` / ``tensor_apply`` against :mod:`pdediff.kernels.cpu.tensor`,
and the public function routed to the (simulated) GPU backend, as
``tests/gpu/test_gpu_backend_sim.py`` does for the other solvers.  Tiny grids:
the simulator runs every thread in Python.
"""

import numpy as np
import pytest

import pdediff
import pdediff.anisotropic.tensor as T
from pdediff.errors import ParameterError
from pdediff.kernels.cpu import tensor as K

BOUNDS = {"neumann": 0, "dirichlet": 1, "periodic": 2}
SHAPES = {2: (12, 10), 3: (6, 5, 4)}
SPACING = {2: (1.0, 0.7), 3: (1.0, 0.8, 1.3)}
MODES = {"eed_grad": K.EED_GRAD, "eed": K.EED, "ced": K.CED}
#: float32: the GPU kernels compute in float32, the CPU ones in float64 (measured up to ~20 ulp of the range
#: after two full steps, from the float32 tensors and weights)
TOL = {np.float64: 1e-12, np.float32: 5e-6}


@pytest.fixture(scope="module")
def GPU():
    from pdediff.kernels.gpu.backend import GPUBackend

    return GPUBackend(simulate=True)


def _host(x):
    return x.get() if hasattr(x, "get") else np.asarray(x)


def _input(mode, nd, bc, dtype, rng):
    """The kernels' tensor input: the smoothed image (EED from the gradient) or its structure tensor."""
    v = rng.random((1,) + SHAPES[nd]).astype(dtype)
    if mode == K.EED_GRAD:
        return v
    J = np.empty(((3 if nd == 2 else 6),) + SHAPES[nd], dtype=dtype)
    (K.structure2 if nd == 2 else K.structure3)(v, *SPACING[nd], bc, J)
    return J


def _cpu_links(f, mode, nd, bc, dtype, kin, alpha, cstar):
    spatial = SHAPES[nd]
    nk = 3 if nd == 2 else 6
    W = np.empty(spatial + (nk,), dtype)
    O = np.empty(spatial + (nk, nd), np.int16)
    reach, span = np.empty(spatial[0], np.int64), np.empty(spatial[0], np.int64)
    bad = (K.links2 if nd == 2 else K.links3)(f, mode, K.WEICKERT, kin, T.EED_MIN_DIFFUSIVITY, alpha, cstar,
                                             *SPACING[nd], bc, W, O, reach, span)
    return W, O, int(bad), int(span.max())


def _gpu_links(GPU, f, mode, nd, bc, dtype, kin, alpha, cstar):
    spatial = SHAPES[nd]
    nk = 3 if nd == 2 else 6
    W = GPU.asarray(np.zeros(spatial + (nk,), dtype))
    O = GPU.asarray(np.zeros(spatial + (nk, nd), np.int16))
    bad, reach = GPU.tensor_links(GPU.asarray(f), mode, K.WEICKERT, kin, T.EED_MIN_DIFFUSIVITY, alpha, cstar,
                                  SPACING[nd], bc, W, O)
    return _host(W), _host(O), bad, reach


def _recomposed(W, O):
    """``sum_k w_k o_k o_k^T`` per cell (float64): the tensor the links stand for."""
    o = O.astype(np.float64)
    return np.einsum("...k,...ka,...kb->...ab", W.astype(np.float64), o, o)


def _params(mode):
    # kappa^-2 and CED's (alpha, C): anisotropic enough for links beyond the 8-neighbourhood
    return {K.EED_GRAD: (40.0, 0.001, 1.0), K.EED: (40.0, 0.001, 1.0), K.CED: (0.0, 0.01, 1e-3)}[mode]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("boundary", list(BOUNDS))
@pytest.mark.parametrize("nd", [2, 3])
def test_structure_tensor_matches_cpu(GPU, nd, boundary, dtype):
    rng = np.random.default_rng(0)
    v = rng.random((2,) + SHAPES[nd]).astype(dtype)
    ref = np.empty(((3 if nd == 2 else 6),) + SHAPES[nd], dtype)
    (K.structure2 if nd == 2 else K.structure3)(v, *SPACING[nd], BOUNDS[boundary], ref)
    got = _host(GPU.tensor_structure(GPU.asarray(v), SPACING[nd], BOUNDS[boundary]))
    np.testing.assert_allclose(got, ref, rtol=0, atol=4 * np.finfo(dtype).eps * np.abs(ref).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("boundary", list(BOUNDS))
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("nd", [2, 3])
def test_links_match_cpu(GPU, nd, mode, boundary, dtype):
    """Weights and offsets of every cell: float64 the same offsets in the same order and the same weights
    to rounding; float32 (tensors in float32, the CPU's in float64) the same recomposed tensor to rounding."""
    m, bc = MODES[mode], BOUNDS[boundary]
    kin, alpha, cstar = _params(m)
    f = _input(m, nd, bc, dtype, np.random.default_rng(1))
    W0, O0, bad0, span0 = _cpu_links(f, m, nd, bc, dtype, kin, alpha, cstar)
    W1, O1, bad1, reach = _gpu_links(GPU, f, m, nd, bc, dtype, kin, alpha, cstar)
    assert bad0 == bad1 == 0
    assert span0 >= 2  # links beyond the 8-neighbourhood are exercised
    R0 = _recomposed(W0, O0)
    np.testing.assert_allclose(_recomposed(W1, O1), R0, rtol=0, atol=TOL[dtype] * np.abs(R0).max())
    if dtype == np.float64:
        np.testing.assert_array_equal(O1, O0)
        np.testing.assert_allclose(W1, W0, rtol=0, atol=1e-12 * W0.max())
        assert max(reach) == span0
    else:
        assert abs(max(reach) - span0) <= 1  # a tie decided the other way in float32 may change one link
    # the reach is per axis: every positive link lies within it
    ends = np.abs(O1.astype(np.int64)) * (W1 > 0)[..., None]
    assert tuple(ends.reshape(-1, nd).max(axis=0)) == tuple(reach)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("boundary", list(BOUNDS))
@pytest.mark.parametrize("mode", ["eed_grad", "ced"])
@pytest.mark.parametrize("nd", [2, 3])
def test_step_matches_cpu_apply(GPU, nd, mode, boundary, dtype, channels):
    """``u + dt A u`` and ``-A_xx`` gathered on the GPU from the CPU's links equal the CPU's scatter."""
    m, bc = MODES[mode], BOUNDS[boundary]
    kin, alpha, cstar = _params(m)
    rng = np.random.default_rng(2)
    f = _input(m, nd, bc, dtype, rng)
    W, O, _, span = _cpu_links(f, m, nd, bc, dtype, kin, alpha, cstar)
    u = rng.random((channels,) + SHAPES[nd]).astype(dtype)
    acc, dg0 = np.empty(u.shape), np.empty(SHAPES[nd])
    (K.apply2 if nd == 2 else K.apply3)(u, W, O, span, bc, acc, dg0, True, 2)
    dt = 0.9 / dg0.max()
    ref = u + dt * acc
    ends = np.abs(O.astype(np.int64)) * (W > 0)[..., None]
    reach = tuple(int(r) for r in ends.reshape(-1, nd).max(axis=0))
    out, dg = GPU.asarray(np.zeros_like(u)), GPU.asarray(np.zeros(SHAPES[nd], dtype))
    dmax = GPU.tensor_apply(GPU.asarray(u), GPU.asarray(W), GPU.asarray(O), reach, bc, dt, out, dg, True)
    eps = 8 * float(np.finfo(dtype).eps)
    np.testing.assert_allclose(_host(out), ref, rtol=0, atol=eps)
    np.testing.assert_allclose(_host(dg), dg0, rtol=eps)
    assert dmax == pytest.approx(dg0.max(), rel=eps)
    out2 = GPU.asarray(np.zeros_like(u))  # without the diagonal: the same step
    assert GPU.tensor_apply(GPU.asarray(u), GPU.asarray(W), GPU.asarray(O), reach, bc, dt, out2, dg, False) is None
    np.testing.assert_array_equal(_host(out2), _host(out))


class _Counted:
    """The GPU backend, counting the steps it takes (so a test sees that the GPU path ran)."""

    def __init__(self, be):
        self._be, self.steps = be, 0

    def __getattr__(self, name):
        return getattr(self._be, name)

    def tensor_apply(self, *args):
        self.steps += 1
        return self._be.tensor_apply(*args)


@pytest.fixture
def on_gpu(GPU, monkeypatch):
    """Run ``tensor_diffusion`` with NumPy arrays routed to the (simulated) GPU backend."""

    def run(*a, **k):
        be = _Counted(GPU)
        with monkeypatch.context() as mp:
            mp.setattr(T, "backend_for", lambda x: be)
            out = pdediff.tensor_diffusion(*a, **k)
        assert be.steps >= (k.get("num_iter") or 1)  # every step ran on the GPU kernels
        return out

    return run


CASES = [((12, 10), "eed", None), ((12, 10), "ced", None), ((6, 5, 4), "eed", None), ((6, 5, 4), "ced", None),
         ((12, 10, 3), "eed", -1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("boundary", list(BOUNDS))
@pytest.mark.parametrize("shape,kind,ch", CASES)
def test_tensor_diffusion_matches_cpu(on_gpu, shape, kind, ch, boundary, dtype):
    img = np.random.default_rng(3).random(shape).astype(dtype)
    kw = dict(kind=kind, boundary=boundary, channel_axis=ch, num_iter=2, return_info=True)
    if len(shape) - (ch is not None) == 2:
        kw["spacing"] = (1.0, 0.7)
    cpu, ic = pdediff.tensor_diffusion(img, **kw)
    gpu, ig = on_gpu(img, **kw)
    assert gpu.dtype == cpu.dtype == dtype and gpu.shape == cpu.shape
    np.testing.assert_allclose(gpu, cpu, rtol=0, atol=TOL[dtype] * np.ptp(img))
    assert (ig.num_iter, ig.dt, ig.substeps) == (ic.num_iter, ic.dt, ic.substeps)
    assert ig.max_offset == ic.max_offset or dtype == np.float32
    if kind == "eed":
        # the smoothing differs by rounding (the CPU's compiled Gaussian, SciPy's here), and so the MAD
        assert ig.kappa == pytest.approx(ic.kappa, rel=1e-5 if dtype == np.float32 else 1e-10)


def test_default_steps_and_kappa_match_cpu(on_gpu):
    """The noise estimate (the device's sliced second differences) and ``kappa="auto"`` as on the CPU."""
    rng = np.random.default_rng(4)
    clean = np.zeros((16, 14))
    clean[4:12, 3:10] = 1.0
    img = clean + 0.1 * rng.standard_normal(clean.shape)
    cpu, ic = pdediff.tensor_diffusion(img, return_info=True)
    gpu, ig = on_gpu(img, return_info=True)
    assert ig.num_iter == ic.num_iter and ig.kappa == pytest.approx(ic.kappa, rel=1e-12)
    np.testing.assert_allclose(gpu, cpu, rtol=0, atol=1e-12)


@pytest.mark.parametrize("boundary", list(BOUNDS))
@pytest.mark.parametrize("shape,kind", [((12, 10), "eed"), ((6, 5, 4), "ced")])
def test_maximum_principle_and_mass(on_gpu, shape, kind, boundary):
    """The output stays within the input's range (with 0 for Dirichlet); the mean is kept (Neumann, periodic)."""
    img = np.random.default_rng(5).random(shape) + 0.5
    out = on_gpu(img, kind=kind, boundary=boundary, num_iter=3, dt=0.25 if len(shape) == 2 else 1 / 6)
    lo, hi = img.min(), img.max()
    if boundary == "dirichlet":
        lo = min(lo, 0.0)
        assert out.mean() < img.mean() - 1e-3  # the ghost cells of value 0 take mass
    else:
        assert out.mean() == pytest.approx(img.mean(), rel=0, abs=1e-13)
    assert lo - 1e-13 <= out.min() and out.max() <= hi + 1e-13
    assert np.abs(out - img).max() > 1e-3  # it diffused


def test_semi_implicit_refused_on_gpu(on_gpu):
    with pytest.raises(ParameterError, match="method") as err:
        on_gpu(np.ones((6, 5)), method="semi-implicit")
    assert err.value.param == "method"


@pytest.mark.parametrize("boundary", list(BOUNDS))
@pytest.mark.parametrize("shape", [(12, 10), (6, 5, 4)])
def test_nan_spreads_as_on_cpu(on_gpu, shape, boundary):
    """``check_finite=False``: the NaN cells of the result and the finite values are the CPU's."""
    img = np.random.default_rng(6).random(shape)
    img[(2,) * len(shape)] = np.nan
    img[(-1,) * len(shape)] = np.nan  # at the boundary: Dirichlet ghosts, periodic wrap
    with np.errstate(invalid="ignore"):
        cpu = pdediff.tensor_diffusion(img, boundary=boundary, check_finite=False, num_iter=2, kappa=0.1)
        gpu = on_gpu(img, boundary=boundary, check_finite=False, num_iter=2, kappa=0.1)
    np.testing.assert_array_equal(np.isnan(gpu), np.isnan(cpu))
    assert 0 < np.isnan(cpu).sum() < cpu.size
    np.testing.assert_allclose(gpu, cpu, rtol=0, atol=1e-12)
