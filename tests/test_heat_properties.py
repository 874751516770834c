"""Invariants of the heat solvers, as hypothesis property tests on random shapes and data."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import pdediff

METHODS = st.sampled_from(["explicit", "implicit", "spectral"])


@st.composite
def fields(draw, min_side=1, max_side=9):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(min_side, max_side), min_size=ndim, max_size=ndim)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    u = draw(arrays(dtype, shape, elements=st.floats(-100, 100, width=32)))
    spacing = tuple(draw(st.lists(st.floats(0.5, 2.0), min_size=ndim, max_size=ndim)))
    return u, spacing


def _rtol(u):
    return 1e-4 if u.dtype == np.float32 else 1e-11


@given(fields(), METHODS, st.sampled_from(["neumann", "periodic"]), st.floats(0.0, 5.0))
def test_mass_is_conserved(field, method, boundary, t):
    u0, h = field
    u = pdediff.solve_heat(u0, t, method=method, boundary=boundary, spacing=h)
    m0 = np.sum(u0, dtype=np.float64)
    scale = np.sum(np.abs(u0), dtype=np.float64) + 1.0
    assert abs(np.sum(u, dtype=np.float64) - m0) <= _rtol(u0) * scale * 10


@given(fields(), st.sampled_from(["neumann", "periodic"]), st.floats(0.01, 5.0))
def test_explicit_maximum_principle(field, boundary, t):
    u0, h = field
    u = pdediff.solve_heat(u0, t, method="explicit", boundary=boundary, spacing=h)
    tol = _rtol(u0) * (np.abs(u0).max() + 1)
    assert u.max() <= u0.max() + tol and u.min() >= u0.min() - tol


@given(fields(min_side=2), st.floats(0.01, 5.0))
def test_explicit_dirichlet_maximum_principle_with_boundary_value(field, t):
    """With the zero boundary value included, at dt <= 2/3 of the limit (see ExplicitHeatSolver)."""
    u0, h = field
    solver = pdediff.ExplicitHeatSolver(u0.shape, u0.dtype, spacing=h, boundary="dirichlet")
    u = pdediff.solve_heat(u0, t, method="explicit", boundary="dirichlet", spacing=h, dt=solver.dt_max * 2 / 3)
    tol = _rtol(u0) * (np.abs(u0).max() + 1)
    assert u.max() <= max(u0.max(), 0) + tol and u.min() >= min(u0.min(), 0) - tol


@given(fields(), METHODS, st.sampled_from(["neumann", "dirichlet", "periodic"]), st.floats(0.0, 3.0),
       st.integers(0, 2))
def test_flip_symmetry(field, method, boundary, t, axis):
    u0, h = field
    axis = axis % u0.ndim
    u = pdediff.solve_heat(u0, t, method=method, boundary=boundary, spacing=h)
    uf = pdediff.solve_heat(np.flip(u0, axis).copy(), t, method=method, boundary=boundary, spacing=h)
    np.testing.assert_allclose(np.flip(uf, axis), u, rtol=0, atol=_rtol(u0) * (np.abs(u0).max() + 1) * 10)


@given(arrays(np.float64, st.integers(2, 40), elements=st.floats(-100, 100)), st.floats(0.1, 3.0))
def test_implicit_backward_euler_1d_maximum_principle(u0, t):
    """1-D backward Euler is monotone for any dt (I - dt L is an M-matrix)."""
    u = pdediff.solve_heat(u0, t, method="implicit", scheme="backward-euler", dt=t / 2)
    tol = 1e-11 * (np.abs(u0).max() + 1)
    assert u.max() <= u0.max() + tol and u.min() >= u0.min() - tol
