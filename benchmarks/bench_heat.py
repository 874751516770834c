"""Heat solvers against the copy roofline and the tools users would otherwise run.

Run with ``make bench`` (or ``pytest benchmarks/bench_heat.py --benchmark-only -p no:xdist``).
Sizes: 2-D 1024² and 4096², 3-D 128³ and 256³, float32 and float64.  Each
case is one pytest-benchmark; the ratios and their targets are printed at the
end of the session (see ``conftest.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import scipy.ndimage
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from conftest import ratio
from scipy.linalg import solve_banded

from pdediff import ExplicitHeatSolver, ImplicitHeatSolver, SpectralHeatSolver

SHAPES = {"2d-1024": (1024, 1024), "2d-4096": (4096, 4096), "3d-128": (128,) * 3, "3d-256": (256,) * 3}
DTYPES = {"float32": np.float32, "float64": np.float64}


# ---------------------------------------------------------------- implementations
def copy(u):
    v = np.empty_like(u)
    return lambda: np.copyto(v, u)


def pdediff_explicit(u):
    """One explicit step, out of place like the references (``step(u, n)`` in place adds a copy-back
    for odd ``n``; in a loop of many steps it is amortised away)."""
    s = ExplicitHeatSolver(u.shape, u.dtype, dt=0.1)
    out = np.empty_like(u)
    return lambda: s.apply_operator(u, out, 0.1)


def numpy_step(u):
    """What a user writes: pad with the Neumann ghost and add shifted slices."""
    inner = tuple(slice(1, -1) for _ in range(u.ndim))

    def shifted(p, a, k):
        sl = list(inner)
        sl[a] = slice(1 + k, p.shape[a] - 1 + k)
        return p[tuple(sl)]

    def step():
        p = np.pad(u, 1, mode="edge")
        lap = sum(shifted(p, a, -1) + shifted(p, a, 1) for a in range(u.ndim)) - 2 * u.ndim * u
        return u + 0.1 * lap

    return step


def ndimage_step(u):
    return lambda: u + 0.1 * scipy.ndimage.laplace(u, mode="reflect")


def pypde_step(u):
    pde = pytest.importorskip("pde")
    grid = pde.CartesianGrid([[0, n] for n in u.shape], list(u.shape))
    state = pde.ScalarField(grid, u.astype(np.float64))
    stepper = pde.EulerSolver(pde.DiffusionPDE(diffusivity=1.0), backend="numba").make_stepper(state, dt=0.1)
    clock = [0.0]

    def step():
        clock[0] = stepper(state, clock[0], clock[0] + 0.1)

    return step


def pdediff_adi(u):
    s = ImplicitHeatSolver(u.shape, u.dtype, dt=1.0)
    s.step(u.copy(), 1)  # factorise outside the timing
    return lambda: s.step(u, 1)


def _banded(n):
    ab = np.zeros((3, n))
    ab[0, 1:] = ab[2, :-1] = -0.5
    ab[1] = 2.0
    ab[1, 0] = ab[1, -1] = 1.5
    return ab


def scipy_banded_adi(u):
    """One solve_banded call per axis over all lines (the ADI a SciPy user writes), 2-D."""
    if u.ndim != 2:
        pytest.skip("2-D only")
    ab = _banded(u.shape[0])

    def step():
        w = solve_banded((1, 1), ab, u, check_finite=False)
        return solve_banded((1, 1), ab, w.T, check_finite=False).T

    return step


def _cn_matrices(n):
    L1 = sp.diags([np.ones(n - 1), -2 * np.ones(n), np.ones(n - 1)], [-1, 0, 1], format="lil")
    L1[0, 0] = L1[-1, -1] = -1
    I1 = sp.identity(n)
    L = sp.kron(L1, I1) + sp.kron(I1, L1)
    I = sp.identity(n * n)
    return (I - 0.5 * L).tocsc(), (I + 0.5 * L).tocsr()


def scipy_cg(u):
    if u.shape != (1024, 1024):
        pytest.skip("SciPy sparse references at 2-D 1024² only")
    M, B = _cn_matrices(u.shape[0])
    flat = u.ravel().astype(np.float64)
    return lambda: spla.cg(M, B @ flat, x0=flat, rtol=1e-8)


def scipy_splu(u):
    if u.shape != (1024, 1024) or u.dtype != np.float64:
        pytest.skip("SciPy splu at 2-D 1024² float64 only (15-35 s to factorise)")
    M, B = _cn_matrices(u.shape[0])
    lu = spla.splu(M)  # factorised once; the per-step solve is timed
    flat = u.ravel()
    return lambda: lu.solve(B @ flat)


def fft_pair(u):
    kw = {"type": 2, "norm": "ortho", "workers": -1}
    return lambda: scipy.fft.idctn(scipy.fft.dctn(u, **kw), overwrite_x=True, **kw)


def pdediff_spectral(u):
    s = SpectralHeatSolver(u.shape, u.dtype)
    return lambda: s.evolve(u, 1.0)


IMPLS = {
    "explicit": [copy, pdediff_explicit, numpy_step, ndimage_step, pypde_step],
    "implicit": [pdediff_explicit, pdediff_adi, scipy_banded_adi, scipy_cg, scipy_splu],
    "spectral": [fft_pair, pdediff_spectral],
}
ROUNDS = {"numpy_step": 3, "ndimage_step": 3, "pypde_step": 3, "scipy_banded_adi": 3, "scipy_cg": 3,
          "scipy_splu": 3, "fft_pair": 3, "pdediff_spectral": 3}

for _size in SHAPES:
    for _dt in DTYPES:
        g = f"{_size}-{_dt}"
        ratio("roofline: copy / explicit step", f"explicit-{g}", "copy", "pdediff_explicit", target=0.7)
        ratio("numpy step / pdediff step", f"explicit-{g}", "numpy_step", "pdediff_explicit", target=10)
        ratio("ndimage.laplace step / pdediff step", f"explicit-{g}", "ndimage_step", "pdediff_explicit")
        ratio("py-pde step / pdediff step", f"explicit-{g}", "pypde_step", "pdediff_explicit", target=20)
        ratio("ADI step / explicit step", f"implicit-{g}", "pdediff_adi", "pdediff_explicit", target=5,
              higher_is_better=False)
        ratio("solve_banded ADI / pdediff ADI", f"implicit-{g}", "scipy_banded_adi", "pdediff_adi")
        ratio("scipy CG step / pdediff ADI", f"implicit-{g}", "scipy_cg", "pdediff_adi", target=20)
        ratio("scipy splu solve / pdediff ADI", f"implicit-{g}", "scipy_splu", "pdediff_adi", target=20)
        ratio("spectral solve / transform pair", f"spectral-{g}", "pdediff_spectral", "fft_pair", target=1.2,
              higher_is_better=False)

CASES = [
    pytest.param(kind, impl, size, dt, id=f"{kind}-{size}-{dt}-{impl.__name__}")
    for size in SHAPES
    for dt in DTYPES
    for kind, impls in IMPLS.items()
    for impl in impls
]


@pytest.mark.parametrize("kind,impl,size,dtype", CASES)
def test_heat(record, kind, impl, size, dtype):
    u = np.random.default_rng(0).random(SHAPES[size]).astype(DTYPES[dtype])
    fn = impl(u)
    record(f"{kind}-{size}-{dtype}", impl.__name__, fn, rounds=ROUNDS.get(impl.__name__, 7))
