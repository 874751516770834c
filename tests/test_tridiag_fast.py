"""The tiled tridiagonal solves (contiguous lines in tiles of 8, strided lines in column blocks),
ADI and AOS built on them, against SciPy: many lines, counts that are not multiples of the tile,
every boundary, 1-D/2-D/3-D, float32 and float64."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
import scipy.linalg

import pdediff
from pdediff.anisotropic._steppers import make_stepper
from pdediff.heat._operators import TridiagonalSystem, as_lines, constant_faces, face_diffusivities
from pdediff.kernels.cpu import tridiag
from pdediff.kernels.cpu.backend import CPU
from pdediff.kernels.formulas import EXPONENTIAL, RATIONAL

TOL = {np.float32: 3e-5, np.float64: 1e-12}
LANES = tridiag._LANES


def _random_system(rng, P, n, Q):
    """Diagonally dominant random rows: |b| > |a| + |c| (Thomas is stable without pivoting)."""
    a = rng.uniform(-1.0, 1.0, (P, n, Q))
    c = rng.uniform(-1.0, 1.0, (P, n, Q))
    a[:, 0, :] = 0.0
    c[:, n - 1, :] = 0.0
    b = (np.abs(a) + np.abs(c) + rng.uniform(0.2, 1.5, (P, n, Q))) * rng.choice([-1.0, 1.0], (P, n, Q))
    return a, b, c


def _banded_solve(a, b, c, d):
    """Each line of the ``(pre, n, post)`` right-hand side by ``scipy.linalg.solve_banded``."""
    pre, n, post = d.shape
    x = np.empty_like(d)
    for p in range(pre):
        for q in range(post):
            pa, qa = min(p, a.shape[0] - 1), min(q, a.shape[2] - 1)
            ab = np.zeros((3, n))
            ab[0, 1:] = c[pa, :-1, qa]
            ab[1] = b[pa, :, qa]
            ab[2, :-1] = a[pa, 1:, qa]
            x[p, :, q] = scipy.linalg.solve_banded((1, 1), ab, d[p, :, q])
    return x


def _factored(a, b, c, dtype):
    # tri_factor takes the row sums a + b + c (its subtraction-free form), not the diagonal
    a_d, s_d, c_d = (np.ascontiguousarray(v, dtype=dtype) for v in (a, a + b + c, c))
    cp, inv = np.empty_like(s_d), np.empty_like(s_d)
    CPU.tri_factor(a_d, s_d, c_d, cp, inv)
    return TridiagonalSystem(a_d, cp, inv)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pre,n,post", [(1, 40, 1), (7, 9, 1), (8, 33, 1), (13, 17, 1), (37, 5, 1), (21, 1, 1),
                                        (19, 2, 1), (3, 29, 5), (2, 11, 70), (1, 6, 1100)])
@pytest.mark.parametrize("shared", [True, False])
def test_solve_matches_solve_banded(pre, n, post, shared, dtype, rng):
    P, Q = (1, 1) if shared else (pre, post)
    a, b, c = _random_system(rng, P, n, Q)
    system = _factored(a, b, c, dtype)
    d = rng.standard_normal((pre, n, post))
    want = _banded_solve(a, b, c, d)
    scale = np.abs(want).max()
    x = np.full(d.shape, np.nan, dtype)
    CPU.tri_solve(d.astype(dtype), x, np.zeros(d.shape, dtype), system)
    np.testing.assert_allclose(x, want, rtol=0, atol=TOL[dtype] * 10 * scale)
    # in place (d and x alias), and the fused accumulation out += alpha x
    y = d.astype(dtype)
    CPU.tri_solve(y, y, np.zeros(d.shape, dtype), system)
    np.testing.assert_array_equal(y, x)
    out = np.ones(d.shape, dtype)
    scratch = np.empty(d.shape, dtype)
    CPU.tri_solve(d.astype(dtype), scratch, out, system, 0.5, True)
    np.testing.assert_allclose(out, 1.0 + 0.5 * want, rtol=0, atol=TOL[dtype] * 10 * (1 + scale))


def _cyclic_matrix(f, r, n):
    M = np.eye(n)
    for i in range(n):
        lo, up = f[i], f[i + 1]
        M[i, i] += r * (lo + up)
        M[i, (i - 1) % n] -= r * lo
        M[i, (i + 1) % n] -= r * up
    return M


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", [((11, 9), 1), ((17, 3), 1), ((9, 12), 0), ((3, 4, 10), 2), ((5, 19), 1)])
@pytest.mark.parametrize("variable", [False, True])
def test_periodic_lines(shape, axis, variable, dtype, rng):
    """The periodic closure on tiles of 8 lines (shared and per-line data) against a dense solve."""
    r = 0.8
    if variable:
        F = as_lines(face_diffusivities(rng.uniform(0.5, 2.0, shape), axis, "periodic"), axis)
    else:
        F = constant_faces(shape[axis], 1.3, "periodic").reshape(1, -1, 1)
    system = TridiagonalSystem.build(F, r, "periodic", dtype, CPU)
    d = as_lines(rng.standard_normal(shape), axis)
    x = np.empty(d.shape, dtype)
    CPU.tri_solve(d.astype(dtype), x, np.zeros(d.shape, dtype), system)
    out = np.zeros(d.shape, dtype)
    CPU.tri_solve(d.astype(dtype), np.empty(d.shape, dtype), out, system, 2.0, True)
    n = shape[axis]
    for p in range(d.shape[0]):
        for q in range(d.shape[2]):
            f = F[min(p, F.shape[0] - 1), :, min(q, F.shape[2] - 1)]
            want = np.linalg.solve(_cyclic_matrix(f, r, n), d[p, :, q])
            np.testing.assert_allclose(x[p, :, q], want, rtol=0, atol=TOL[dtype] * 20)
            np.testing.assert_allclose(out[p, :, q], 2.0 * want, rtol=0, atol=TOL[dtype] * 40)


def test_tiles_are_exercised():
    """The shapes above include full tiles, a partial last tile and fewer lines than a tile."""
    assert LANES == 8
    assert 13 % LANES and 37 % LANES and 7 < LANES


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("boundary", ["neumann", "dirichlet", "periodic"])
@pytest.mark.parametrize("shape", [(50,), (19, 13), (9, 11, 10)])
@pytest.mark.parametrize("scheme", ["crank-nicolson", "backward-euler"])
def test_adi_matches_factored_reference(shape, boundary, scheme, dtype, rng):
    """The ADI step equals the Douglas scheme solved as one sparse system (tests/reference.py)."""
    theta = 0.5 if scheme == "crank-nicolson" else 1.0
    h = (0.7, 1.1, 0.9)[: len(shape)]
    u0 = rng.standard_normal(shape)
    solver = pdediff.ImplicitHeatSolver(shape, dtype, spacing=h, boundary=boundary, dt=1.3, scheme=scheme)
    got = solver.step(u0.astype(dtype), 3)
    want = ref.implicit_factored(u0.astype(dtype).astype(float), 1.3, 3, h, boundary, theta)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype] * 20 * np.abs(u0).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("boundary", ["neumann", "dirichlet", "periodic"])
def test_adi_variable_diffusivity(boundary, dtype, rng):
    shape = (13, 21)
    D = rng.uniform(0.3, 2.0, shape)
    u0 = rng.standard_normal(shape)
    solver = pdediff.ImplicitHeatSolver(shape, dtype, diffusivity=D, boundary=boundary, dt=0.9)
    got = solver.step(u0.astype(dtype), 2)
    want = ref.implicit_factored(u0.astype(dtype).astype(float), 0.9, 2, (1.0, 1.0), boundary, 0.5, D)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype] * 20 * np.abs(u0).max())


def _aos_reference(u, v, h, dt, kappa, conductance):
    """``(1/m) sum_a (I - m dt A_a(v))^{-1} u`` with ``solve_banded`` per line (Neumann ends)."""
    m = len(h)
    out = np.zeros_like(u)
    for a, ha in enumerate(h):
        d = np.diff(v, axis=a + 1) / ha
        w = m * dt / ha**2 * ref.pm_conductance((d**2).sum(axis=0) / kappa**2, conductance)
        w3 = as_lines(np.ascontiguousarray(w), a)
        pre, nf, post = w3.shape
        A = np.zeros((pre, nf + 1, post))
        C = np.zeros_like(A)
        A[:, 1:, :], C[:, :-1, :] = -w3, -w3
        B = 1.0 - A - C
        for ch in range(u.shape[0]):
            x = _banded_solve(A, B, C, as_lines(np.ascontiguousarray(u[ch]), a))
            out[ch] += x.reshape(u.shape[1:]) / m
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(45,), (19, 13), (5, 11, 10), (12, 9, 17)])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("conductance", ["exponential", "rational"])
def test_aos_step_matches_reference(shape, channels, conductance, dtype, rng):
    h = (0.8, 1.2, 1.0)[: len(shape)]
    u = rng.standard_normal((channels,) + shape).astype(dtype)
    v = (u + 0.1 * rng.standard_normal(u.shape)).astype(dtype)
    kappa, dt = 0.9, 2.5
    code = EXPONENTIAL if conductance == "exponential" else RATIONAL
    step = make_stepper(u, h, dt, 1.0 / kappa**2, code, None, "aos", CPU)
    out = np.full_like(u, np.nan)
    step(u, v, out)
    want = _aos_reference(u.astype(float), v.astype(float), h, dt, kappa, conductance)
    np.testing.assert_allclose(out, want, rtol=0, atol=TOL[dtype] * 30 * np.abs(u).max())
    # the same step with the conductance as a Python callable (the generic path)
    g = (lambda s: np.exp(-(s / kappa) ** 2)) if conductance == "exponential" else (
        lambda s: 1.0 / (1.0 + (s / kappa) ** 2))
    step_g = make_stepper(u, h, dt, 1.0 / kappa**2, code, g, "aos", CPU)
    out_g = np.full_like(u, np.nan)
    step_g(u, v, out_g)
    np.testing.assert_allclose(out_g, want, rtol=0, atol=TOL[dtype] * 30 * np.abs(u).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_and_parallel_builds_agree(dtype, rng):
    """Both builds of the contiguous-line kernel give the same bits (tiles are independent)."""
    from pdediff.kernels.cpu._common import kernel_builds

    pre, n = 45, 23
    a, b, c = _random_system(rng, pre, n, 1)
    s = _factored(a, b, c, dtype)
    d = rng.standard_normal((pre, n)).astype(dtype)
    k = kernel_builds("tri_solve_last", 0, "")
    outs = []
    for fn in (k.serial, k.parallel):
        x = np.empty_like(d)
        fn(d, x, x, s.a[:, :, 0], s.cp[:, :, 0], s.inv[:, :, 0], s.cp[:, :, 0], s.cp[:, :, 0], s.cp[:, :, 0], 8,
           dtype(1.0), False, False)
        outs.append(x)
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("boundary", ["neumann", "dirichlet", "periodic"])
@pytest.mark.parametrize("shape", [(19, 13), (3, 40), (9, 11, 10), (2, 5, 17)])
@pytest.mark.parametrize("build", ["serial", "parallel"])
@pytest.mark.parametrize("dt,method", [(1.3, "heat_adi_first"), (40.0, "heat_adi_combined")])
def test_fused_adi_first_sweep_equals_unfused_step(shape, boundary, dtype, build, dt, method, rng, monkeypatch):
    """Constant coefficients take a fused first sweep (kernels/cpu/adi.py, in row tiles, then the strided
    axes): small steps the Douglas form's (operator + contiguous-axis solve), equal to the unfused step
    (operator pass, axes 0..last) to rounding; large steps the combined form's (solve + elementwise updates),
    equal to the unfused combined step bit for bit; partial tiles, every boundary, both builds."""
    from pdediff.kernels.cpu import _common
    from pdediff.kernels.cpu.backend import CPUBackend

    u0 = rng.standard_normal(shape).astype(dtype)
    calls = []
    real = getattr(CPUBackend, method)

    def spy(self, *args):
        calls.append(1)
        return real(self, *args)

    monkeypatch.setattr(CPUBackend, method, spy)
    monkeypatch.setattr("pdediff.kernels.cpu.backend.kernel",
                        lambda op, nd, coef, size, tag="": getattr(_common.kernel_builds(op, nd, coef), build))
    h = (0.7, 1.1, 0.9)[: len(shape)]
    fused = pdediff.ImplicitHeatSolver(shape, dtype, spacing=h, boundary=boundary, dt=dt).step(u0.copy(), 2)
    assert len(calls) == 2
    monkeypatch.setattr(CPUBackend, method, None)  # the solver falls back to the unfused step
    plain = pdediff.ImplicitHeatSolver(shape, dtype, spacing=h, boundary=boundary, dt=dt).step(u0.copy(), 2)
    assert len(calls) == 2
    if method == "heat_adi_combined":
        np.testing.assert_array_equal(fused, plain)
    else:
        np.testing.assert_allclose(fused, plain, rtol=0, atol=TOL[dtype] * 20 * np.abs(u0).max())
    assert not np.array_equal(fused, u0)
