"""The backend contract (pdediff._backend.Backend), checked on every backend this process can run.

The same checks, against the plain NumPy/SciPy references of ``tests/reference.py``,
run on the CPU backend always, on the GPU backend under Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``: tests/test_gpu_simulator.py runs this module that way in
CI) and on a real GPU where CuPy finds one.  A new backend registers itself with
``pdediff._backend.register_backend`` and is added to ``BACKENDS`` below.
"""

import os

import numpy as np
import pytest
import scipy.linalg
import scipy.ndimage

import reference as ref
from pdediff._backend import Backend
from pdediff.grid import BC_CODE
from pdediff.heat._operators import TridiagonalSystem, as_lines, constant_faces, face_diffusivities


def _backends():
    from pdediff.kernels.cpu.backend import CPU

    out = [pytest.param(CPU, id="cpu")]
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        from pdediff.kernels.gpu.backend import GPUBackend

        out.append(pytest.param(GPUBackend(simulate=True), id="gpu-simulator"))
    else:
        try:
            import cupy  # noqa: F401
            from numba import cuda

            if cuda.is_available():
                from pdediff.kernels.gpu.backend import get_gpu_backend

                out.append(pytest.param(get_gpu_backend(), id="gpu"))
        except Exception:  # noqa: BLE001 - no CuPy, no driver: no GPU backend here
            pass
    return out


BACKENDS = _backends()
TOL = {np.float32: 3e-5, np.float64: 1e-12}
SHAPES = {1: (7,), 2: (5, 6), 3: (3, 4, 5)}
SPACING = {1: (0.7,), 2: (0.9, 1.2), 3: (1.5, 0.8, 1.1)}


def host(x):
    return x.get() if hasattr(x, "get") else np.asarray(x)


@pytest.fixture(params=BACKENDS)
def be(request):
    return request.param


def test_implements_the_protocol(be):
    assert isinstance(be, Backend)
    x = np.arange(6.0)
    np.testing.assert_array_equal(host(be.asarray(x)), x)


@pytest.mark.parametrize("variable", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("boundary", ["neumann", "dirichlet", "periodic"])
def test_heat_step(be, boundary, ndim, dtype, variable, rng):
    shape, h = SHAPES[ndim], SPACING[ndim]
    u = rng.standard_normal(shape)
    D = rng.uniform(0.5, 1.5, shape) if variable else None
    faces = None
    if variable:
        faces = tuple(be.asarray(face_diffusivities(D, a, boundary).astype(dtype)) for a in range(ndim))
    dt, beta = 0.05, 0.7
    out = be.asarray(np.zeros(shape, dtype))
    be.heat_step(be.asarray(u.astype(dtype)), out, dt, tuple(1 / x**2 for x in h), (BC_CODE[boundary],) * ndim, beta,
                 faces)
    L = ref.laplacian(shape, h, boundary, D)
    expect = beta * u + dt * (L @ u.ravel()).reshape(shape)
    np.testing.assert_allclose(host(out), expect, rtol=0, atol=TOL[dtype] * 10)


@pytest.mark.parametrize("conductance", ["exponential", "rational", "tukey"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_perona_malik_step(be, ndim, channels, dtype, conductance, rng):
    shape, h = (channels,) + SHAPES[ndim], SPACING[ndim]
    u = rng.random(shape)
    v = u + 0.05 * rng.standard_normal(shape)
    kappa, dt = 0.5, 0.1
    out = be.asarray(np.zeros(shape, dtype))
    code = {"exponential": 0, "rational": 1, "tukey": 2}[conductance]
    be.pm_step(be.asarray(u.astype(dtype)), be.asarray(v.astype(dtype)), out, dt, tuple(1 / x for x in h),
               1 / kappa**2, code)
    expect = ref.pm_explicit_step(u.astype(dtype).astype(float), dt, kappa, conductance, h,
                                  v=v.astype(dtype).astype(float))
    np.testing.assert_allclose(host(out), expect, rtol=0, atol=TOL[dtype] * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis,shape", [(0, (7,)), (0, (5, 4)), (1, (3, 6)), (2, (2, 3, 5)), (1, (3, 5, 4))])
def test_aos_coefficients(be, axis, shape, dtype, rng):
    v = rng.random((2,) + shape)
    tau, h, kappa = 1.7, 0.8, 0.4
    lines = as_lines(np.empty(shape), axis).shape
    abc = [be.asarray(np.zeros(lines, dtype)) for _ in range(3)]
    be.aos_coefficients(be.asarray(v.astype(dtype)), axis, *abc, tau, 1 / h, 1 / kappa**2, 0)
    # Reference: per face w = tau g(|grad v|), a_i = -w_{i-1/2}, c_i = -w_{i+1/2} (Neumann ends), and b the row
    # sums a + diagonal + c = 1 (the subtraction-free form tri_factor takes; the diagonal is 1 + both).
    d = np.diff(v.astype(dtype).astype(float), axis=axis + 1) / h
    w = tau * ref.pm_conductance((d**2).sum(axis=0) / kappa**2, "exponential")
    w = np.moveaxis(w, axis, 0)
    n = shape[axis]
    a, c = np.zeros((n,) + w.shape[1:]), np.zeros((n,) + w.shape[1:])
    a[1:], c[:-1] = -w, -w
    b = np.ones_like(a)
    for got, want in zip(abc, (a, b, c)):
        want = np.moveaxis(want, 0, axis).reshape(lines)
        np.testing.assert_allclose(host(got), want, rtol=0, atol=TOL[dtype] * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("boundary", ["neumann", "dirichlet", "periodic"])
@pytest.mark.parametrize("axis,shape", [(0, (6,)), (0, (5, 4)), (1, (3, 6)), (1, (3, 5, 4)), (2, (2, 3, 5))])
def test_tridiagonal_solve(be, axis, shape, boundary, dtype, rng):
    D = rng.uniform(0.5, 2.0, shape)
    for F in (constant_faces(shape[axis], 0.9, boundary).reshape(1, -1, 1),
              as_lines(face_diffusivities(D, axis, boundary), axis)):
        system = TridiagonalSystem.build(F, 0.7, boundary, dtype, be)
        rhs = as_lines(rng.standard_normal(shape), axis)
        x = be.asarray(np.zeros(rhs.shape, dtype))
        be.tri_solve(be.asarray(rhs.astype(dtype)), x, be.asarray(np.zeros(rhs.shape, dtype)), system)
        x = host(x)
        n = shape[axis]
        for p in range(rhs.shape[0]):
            for q in range(rhs.shape[2]):
                f = F[min(p, F.shape[0] - 1), :, min(q, F.shape[2] - 1)]
                M = np.eye(n)
                for i in range(n):  # I - r L with faces f (ghost cells as in docs/conventions.rst §2)
                    lo, up = f[i], f[i + 1]
                    M[i, i] += 0.7 * (lo + up)
                    if i > 0:
                        M[i, i - 1] -= 0.7 * lo
                    elif boundary == "periodic" and n > 1:
                        M[i, n - 1] -= 0.7 * lo
                    elif boundary == "dirichlet":
                        M[i, i] += 0.7 * lo
                    if i < n - 1:
                        M[i, i + 1] -= 0.7 * up
                    elif boundary == "periodic" and n > 1:
                        M[i, 0] -= 0.7 * up
                    elif boundary == "dirichlet":
                        M[i, i] += 0.7 * up
                if boundary == "periodic" and n == 1:
                    M = np.eye(1)
                want = scipy.linalg.solve(M, rhs[p, :, q])
                np.testing.assert_allclose(x[p, :, q], want, rtol=0, atol=TOL[dtype] * 50)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_gaussian_filter(be, ndim, dtype, rng):
    u = rng.random((2,) + SHAPES[ndim]).astype(dtype)
    sigma = (1.3, 0.7, 0.9)[:ndim]
    got = host(be.gaussian_filter(be.asarray(u), sigma))
    for c in range(2):
        np.testing.assert_allclose(got[c], scipy.ndimage.gaussian_filter(u[c], sigma, mode="reflect"),
                                   rtol=0, atol=TOL[dtype] * 10)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_scale_separable(be, ndim, rng):
    shape = (2,) + SHAPES[ndim]
    c = rng.standard_normal(shape)
    factors = [rng.random((2, n)) for n in shape[1:]]
    want = c.copy()
    for a, f in enumerate(factors):
        bshape = [2] + [1] * ndim
        bshape[a + 1] = f.shape[1]
        want *= f.reshape(bshape)
    dev = be.asarray(c)
    be.scale_separable(dev, tuple(be.asarray(f) for f in factors))
    np.testing.assert_allclose(host(dev), want, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_face_gradient_mad(be, ndim, dtype, rng):
    v = rng.random((1,) + SHAPES[ndim]).astype(dtype)
    h = SPACING[ndim]
    med, mad, _ = be.face_gradient_mad(be.asarray(v), h)
    s = ref.face_gradient_magnitudes(v.astype(float), h)
    assert med == pytest.approx(np.median(s), rel=1e-6)
    assert mad == pytest.approx(np.median(np.abs(s - np.median(s))), rel=1e-5)
