"""The fused AOS line solve (pdediff.kernels.cpu.aos) against an independent SciPy reference and the unfused path.

One AOS term is ``out += alpha (I - tau A_axis(v))^{-1} u`` with ``A_axis`` the 1-D Perona–Malik
operator (Neumann ends, conductance shared by the channels).  The reference builds every line's
tridiagonal matrix from tests/reference.py's conductance and solves it with ``scipy.linalg.solve_banded``.
Shapes are chosen so that lines do not fill the tiles and blocks (partial tiles, fewer lines than a tile,
lines of one and two cells), in 1-D, 2-D and 3-D, float32 and float64, one and three channels, with the
conductance from ``u`` itself and from a separate ``v`` (Catté smoothing), serial and threaded builds.
"""

import numpy as np
import pytest
import reference as ref
from scipy.linalg import solve_banded

from pdediff.heat._operators import TridiagonalSystem, as_lines
from pdediff.kernels.cpu import _common, aos
from pdediff.kernels.cpu.backend import CPU

CODES = {"exponential": 0, "rational": 1, "tukey": 2}
SHAPES = [(1, 37), (3, 5), (2, 1), (70, 300), (9, 7, 5), (4, 33, 2), (3, 1, 40)]


@pytest.fixture(params=["serial", "parallel"])
def build(request, monkeypatch):
    def pick(op, nd, coef, size, tag=""):
        return getattr(_common.kernel_builds(op, nd, coef), request.param)

    monkeypatch.setattr("pdediff.kernels.cpu.backend.kernel", pick)
    return request.param


def reference_term(u, v, axis, tau, h, kappa, conductance, alpha):
    """``alpha (I - tau A_axis(v))^{-1} u`` line by line in float64 (``solve_banded``)."""
    u = np.moveaxis(u.astype(np.float64), axis + 1, -1)
    v = np.moveaxis(v.astype(np.float64), axis + 1, -1)
    out = np.empty_like(u)
    n = u.shape[-1]
    for idx in np.ndindex(u.shape[1:-1]):
        line_v = v[(slice(None), *idx)]  # (C, n)
        s2 = np.sum((np.diff(line_v, axis=-1) / h) ** 2, axis=0)
        t = tau * ref.pm_conductance(s2 / kappa**2, conductance)  # per face, n - 1
        ab = np.zeros((3, n))
        ab[1] = 1.0
        ab[1, :-1] += t
        ab[1, 1:] += t
        ab[0, 1:] = -t
        ab[2, :-1] = -t
        for c in range(u.shape[0]):
            out[(c, *idx)] = alpha * solve_banded((1, 1), ab, u[(c, *idx)])
    return np.moveaxis(out, -1, axis + 1)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [1, 3])
def test_fused_term_equals_banded_reference(shape, dtype, channels, build, rng):
    u = (rng.random((channels, *shape)) * 4).astype(dtype)
    v = (rng.random((channels, *shape)) * 4).astype(dtype)
    kappa, h, alpha = 0.7, 1.3, 0.5
    for axis in range(len(shape)):
        for src in (u, v):
            tau = 2.0 * 0.4 / h**2
            out = np.full_like(u, 0.25)  # the term is added to what out holds
            CPU.aos_axis(u, src, out, axis, tau, 1.0 / h, 1.0 / kappa**2, CODES["exponential"], alpha)
            want = 0.25 + reference_term(u, src, axis, tau, h, kappa, "exponential", alpha)
            tol = 2e-5 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(out, want, rtol=tol, atol=tol * 4, err_msg=f"axis {axis}")


@pytest.mark.parametrize("conductance", list(CODES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_term_equals_unfused_kernels(conductance, dtype, rng):
    """Against aos_coefficients + tri_factor + tri_solve: the same arithmetic, so equal to rounding."""
    u = (rng.random((2, 41, 45)) * 255).astype(dtype)
    for axis in (0, 1):
        fused = np.zeros_like(u)
        CPU.aos_axis(u, u, fused, axis, 1.0, 1.0, 1 / 400.0, CODES[conductance], 0.5)
        lines = as_lines(u[0], axis).shape
        A, B, C, cp, inv = (np.empty(lines, dtype) for _ in range(5))
        CPU.aos_coefficients(u, axis, A, B, C, 1.0, 1.0, 1 / 400.0, CODES[conductance])
        CPU.tri_factor(A, B, C, cp, inv)
        plain = np.zeros_like(u)
        work = np.empty_like(u[0])
        for c in range(2):
            CPU.tri_solve(as_lines(u[c], axis), as_lines(work, axis), as_lines(plain[c], axis),
                          TridiagonalSystem(A, cp, inv), 0.5, True)
        eps = np.finfo(dtype).eps
        np.testing.assert_allclose(fused, plain, rtol=8 * eps, atol=8 * eps * 255)


def test_breaking_the_fused_sweep_is_detected(rng, monkeypatch):
    """The reference comparison can fail: a sweep that drops the lower face's coupling is caught."""
    u = rng.random((1, 20, 24))
    out = np.zeros_like(u)
    CPU.aos_axis(u, u, out, 1, 1.0, 1.0, 4.0, CODES["rational"], 1.0)
    want = reference_term(u, u, 1, 1.0, 1.0, 0.5, "rational", 1.0)
    np.testing.assert_allclose(out, want, rtol=1e-12)
    broken = want.copy()
    broken[0, :, 0] = u[0, :, 0]  # as if the first cell had no upper face
    assert not np.allclose(out, broken, rtol=1e-6)


def test_tiles_and_blocks_cover_every_line():
    """More lines than one tile / wider than one block, with partial last ones (sizes from the module)."""
    rng = np.random.default_rng(5)
    for shape, axis in (((1, aos._LANES * 2 + 3, 9), 1), ((1, 6, aos._BLOCK + 5), 0)):
        u = rng.random(shape)
        out = np.zeros_like(u)
        CPU.aos_axis(u, u, out, axis, 0.8, 1.0, 2.0, CODES["exponential"], 1.0)
        want = reference_term(u, u, axis, 0.8, 1.0, 1 / np.sqrt(2.0), "exponential", 1.0)
        np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
