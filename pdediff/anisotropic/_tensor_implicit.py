"""Semi-implicit steps of tensor diffusion (EED/CED) for time steps beyond the explicit limit.

:func:`pdediff.tensor_diffusion` with ``method="semi-implicit"`` runs, per step, the linear-implicit
scheme of Weickert (1998, ch. 4) on the non-negative Selling stencil of the explicit path:

.. math:: (I - \\Delta t\\, A(u^k))\\, u^{k+1} = u^k,

with ``A(u^k)`` the symmetric matrix of the explicit step ``u + dt A u`` -- non-negative off-diagonal
entries, zero row sums (Dirichlet: non-positive row sums) -- built from the links ``rho_k``, ``e_k`` of
the tensor of the current ``u`` (lagged nonlinearity).  ``M = I - dt A`` is then a symmetric, strictly
diagonally dominant M-matrix for every ``dt > 0``: ``M^-1 >= 0`` entrywise with row sums 1 (Neumann,
periodic) or at most 1 (Dirichlet), so the step keeps the maximum-minimum principle and the mean
unconditionally (docs/tensor_diffusion.rst, "Semi-implicit steps").

This module is independent of how the links are produced: :func:`advance` takes a callable that returns
them for the current ``u`` (``pdediff.anisotropic.tensor`` passes the compiled structure-tensor,
diffusion-tensor and Selling kernels of :mod:`pdediff.kernels.cpu.tensor`).  ``A`` is assembled as a
SciPy CSR matrix by vectorised NumPy (one pass per link slot and sign, never per voxel) and ``M x = u``
is solved by Jacobi-preconditioned conjugate gradients in float64 whatever the data type.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, cg

from .._validation import check_step_count, nonnegative_int, positive_step
from ..errors import ParameterError
from ..kernels.formulas import DIRICHLET, PERIODIC

__all__ = ["METHODS", "DT_FACTOR", "CG_RTOL", "stencil_matrix", "step_matrix", "time_steps",
           "cg_iteration_cap", "solve", "advance"]

#: ``method`` of :func:`pdediff.tensor_diffusion`.
METHODS = ("explicit", "semi-implicit")
#: Default semi-implicit step: at most this multiple of the explicit limit ``dt_max``, the diffusion
#: time being the explicit default's (so ``ceil(n_explicit / DT_FACTOR)`` steps of equal length).
DT_FACTOR = 5.0
#: Conjugate gradients stop when ``||u^k - M x||_2 <= CG_RTOL ||u^k||_2`` (per channel, float64).  Since
#: ``||M^-1||_inf <= 1`` the pointwise error is then at most ``CG_RTOL ||u^k||_2``.
CG_RTOL = 1e-6
#: Largest CG iteration cap (:func:`cg_iteration_cap`) a step may need; a larger ``dt`` is refused before solving
#: (about ``dt max(-A_xx) <= 1e7``; the cap is a worst-case bound, real solves take far fewer iterations).
MAX_CG_ITERATIONS = 100_000


def _off_diagonal(W: np.ndarray, O: np.ndarray, bc: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """The off-diagonal part of ``A`` (CSR, float64) and the Dirichlet links' extra ``-A_xx`` per cell (flat).

    Per link slot ``k`` and sign ``s`` one vectorised pass over all cells: the partner ``y = x + s e_k``
    (flat index by strides; per-axis coordinates only to find the links that leave the grid), then the
    links of positive weight that land on a cell add ``rho_k(x) / 2`` at ``(x, y)`` and ``(y, x)``.
    """
    shape = W.shape[:-1]
    nd = len(shape)
    n = int(np.prod(shape))
    itype = np.int32 if n < 2**31 - 1 else np.int64
    nk = W.shape[-1]
    w_all = W.reshape(n, nk)
    o_all = O.reshape(n, nk, nd)
    coords = [c.reshape(n).astype(itype) for c in np.indices(shape, sparse=False)]
    strides = [int(np.prod(shape[a + 1:])) for a in range(nd)]
    x_all = np.arange(n, dtype=itype)
    rows, cols, vals = [], [], []
    extra = np.zeros(n)
    for k in range(nk):
        w = w_all[:, k].astype(np.float64)
        live = w > 0.0  # False for NaN too
        if not live.any():
            continue
        half = 0.5 * w
        o = [o_all[:, k, a].astype(itype) for a in range(nd)]
        for s in (1, -1):
            inside = live.copy()
            y = np.zeros(n, dtype=itype)
            for a in range(nd):
                ya = coords[a] + s * o[a]
                ok = (ya >= 0) & (ya < shape[a])
                if bc == PERIODIC:
                    ya %= shape[a]
                else:
                    inside &= ok
                y += ya * itype(strides[a])
            if bc == DIRICHLET:
                leaving = live & ~inside
                extra[leaving] += w[leaving]  # the full weight: to a zero ghost
            if bc == PERIODIC:
                inside &= y != x_all  # a link wrapped onto its own cell carries no flux
            x, yi, h = x_all[inside], y[inside], half[inside]
            rows += [x, yi]
            cols += [yi, x]
            vals += [h, h]
    if rows:
        off = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                            shape=(n, n)).tocsr()  # duplicates summed
    else:
        off = sp.csr_matrix((n, n))
    return off, extra


def stencil_matrix(W: np.ndarray, O: np.ndarray, bc: int) -> sp.csr_matrix:
    """The matrix ``A`` (float64 CSR, ``N x N``, ``N`` cells) of the explicit step ``u + dt A u``.

    Parameters
    ----------
    W : ndarray, shape (*spatial, K)
        Link weights ``rho_k >= 0`` per cell, index units (1/cell^2); ``K = 3`` in 2-D, 6 in 3-D
        (:func:`pdediff.kernels.cpu.tensor.links2` / ``links3``).  Non-positive or non-finite weights
        are ignored, as by the explicit scatter.
    O : ndarray, shape (*spatial, K, ndim), integer
        Link offsets ``e_k`` (cells).
    bc : int
        ``NEUMANN`` (links leaving the grid dropped), ``PERIODIC`` (wrapped) or ``DIRICHLET`` (a ghost
        cell of value 0 at the far end with the full weight ``rho_k``), the codes of
        :mod:`pdediff.kernels.formulas`.

    Returns
    -------
    scipy.sparse.csr_matrix
        Every cell ``x`` and link ``k`` add ``rho_k(x) / 2`` to ``A[x, y]`` and ``A[y, x]`` and subtract
        it from ``A[x, x]`` and ``A[y, y]``, for ``y = x +- e_k``: symmetric, non-negative off the
        diagonal, zero row sums (Dirichlet: ``-rho_k`` more on the diagonal per link leaving the grid).
        Rows in C order of the spatial axes.
    """
    off, extra = _off_diagonal(W, O, bc)
    d = np.asarray(off.sum(axis=1)).ravel() + extra
    return (off - sp.diags(d, format="csr")).tocsr()


def step_matrix(W: np.ndarray, O: np.ndarray, bc: int, dt: float) -> tuple[sp.csr_matrix, float]:
    """``M = I - dt A`` (float64 CSR) of the links, and ``max(-A_xx)`` (see :func:`stencil_matrix`)."""
    off, extra = _off_diagonal(W, O, bc)
    d = np.asarray(off.sum(axis=1)).ravel() + extra
    M = (off * (-dt) + sp.diags(1.0 + dt * d, format="csr")).tocsr()
    return M, float(d.max()) if d.size else 0.0


def time_steps(dt_max: float, dt: object, num_iter: object, max_steps: object,
               steps_default: float) -> tuple[float, int]:
    """The semi-implicit step and number of steps.

    ``steps_default`` is the default diffusion time in explicit steps at ``dt_max``.  Defaults: with
    neither ``dt`` nor ``num_iter``, the explicit default's diffusion time ``T = max(1,
    round(steps_default)) dt_max`` in ``n = ceil(T / (DT_FACTOR dt_max))`` equal steps ``dt = T / n``
    (at most ``DT_FACTOR`` times the limit); with ``dt`` only, ``n = max(1, round(steps_default dt_max /
    dt))`` as for the explicit method; with ``num_iter`` only, ``dt = DT_FACTOR dt_max``.  Any finite
    ``dt > 0`` is allowed.  ``max_steps`` is checked as for the explicit method.
    """
    if dt is None:
        if num_iter is None:
            T = max(1, round(steps_default)) * dt_max
            n = max(1, math.ceil(T / (DT_FACTOR * dt_max) - 1e-9))
            check_step_count(n, max_steps, f"the default diffusion time {T:.4g}", "pass {num_iter}")
            return T / n, n
        dt_ = DT_FACTOR * dt_max
    else:
        dt_ = positive_step(dt)  # any finite dt > 0: ParameterError naming dt otherwise
    if num_iter is None:  # dt given here (no dt and no num_iter returned above)
        n = max(1, int(round(steps_default * dt_max / dt_)))  # the steps that would run
        check_step_count(n, max_steps, f"the default diffusion time {steps_default:.4g} * dt_max with "
                         f"{{dt={dt_:.6g}}}", "use a larger {dt} (or {dt=None}), or pass {num_iter}")
        return dt_, n
    n = nonnegative_int(num_iter, "num_iter")
    check_step_count(n, max_steps, f"{{num_iter={n}}}", "use fewer steps")
    return dt_, n


def cg_iteration_cap(dt: float, dmax: float, rtol: float | None = None) -> int:
    """Iterations allowed to one CG solve of ``(I - dt A) x = b`` with ``max(-A_xx) = dmax``.

    Gershgorin bounds the spectrum of ``M = I - dt A`` and of the Jacobi-scaled ``P^-1 M`` by ``[1, 1 +
    2 dt dmax]`` and ``[1 - q, 1 + q]`` (``q = dt dmax / (1 + dt dmax)``): condition ``kappa <= 1 + 2 dt
    dmax`` either way.  PCG reduces the ``M``-norm error by ``2 ((sqrt(kappa) - 1) / (sqrt(kappa) + 1))^k
    <= 2 exp(-2k / sqrt(kappa))``; the residual from ``x0 = b`` is at most ``(kappa - 1) ||b||_2`` and
    its 2-norm shrinks at least as the ``M``-norm error up to a factor ``sqrt(kappa)``, so ``k =
    sqrt(kappa) / 2 ln(2 kappa^1.5 / rtol)`` iterations suffice in exact arithmetic.  The cap is twice
    that plus 20 (rounding).  ``rtol``: :data:`CG_RTOL` by default.
    """
    rtol = CG_RTOL if rtol is None else rtol
    kappa = 1.0 + 2.0 * dt * max(dmax, 0.0)
    if not math.isfinite(kappa):
        return 2**62
    # in logarithms: kappa**1.5 overflows a float from dt dmax ~ 1e205 on
    k = math.sqrt(kappa) / 2.0 * (math.log(2.0) + 1.5 * math.log(kappa) - math.log(rtol))
    return int(min(2 * math.ceil(k) + 20, 2**62))


def _largest_dt(dmax: float, limit: int) -> float:
    """The largest ``dt`` whose :func:`cg_iteration_cap` is at most ``limit`` (bisection in log dt)."""
    lo, hi = -300.0, 300.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if cg_iteration_cap(10.0**mid, dmax) <= limit else (lo, mid)
    return 10.0**lo


def solve(M: sp.csr_matrix, b: np.ndarray, *, conserve: bool, maxiter: int,
          rtol: float | None = None) -> tuple[np.ndarray, int]:
    """``x`` with ``||b - M x||_2 <= rtol ||b||_2`` by Jacobi-preconditioned CG from ``x0 = b`` (float64).

    ``conserve``: ``M`` has unit column sums (Neumann, periodic), so the exact solution has the mass of
    ``b``; the iterate is shifted by the constant that restores it (an orthogonal projection of the
    error: it only shrinks ``||x - x*||_2``).  ``rtol``: :data:`CG_RTOL` by default.  Returns ``(x,
    iterations)``.  Raises :class:`~pdediff.ParameterError` naming ``dt`` if ``maxiter`` iterations do
    not reach ``rtol``.
    """
    rtol = CG_RTOL if rtol is None else rtol
    b = np.asarray(b, dtype=np.float64)
    inv = 1.0 / M.diagonal()
    P = LinearOperator(M.shape, matvec=lambda r: inv * np.ravel(r), dtype=np.float64)
    count = [0]

    def tick(_: np.ndarray) -> None:
        count[0] += 1

    with _one_blas_thread():
        x, info = cg(M, b, x0=b.copy(), rtol=rtol, atol=0.0, maxiter=maxiter, M=P, callback=tick)
    if info != 0:
        res = float(np.linalg.norm(b - M @ x))
        bn = float(np.linalg.norm(b))
        raise ParameterError(
            f"the semi-implicit step's conjugate-gradient solve did not converge: residual {res:.3g} after "
            f"{maxiter} iterations, above {rtol:g} * |u| = {rtol * bn:.3g} (rounding at a very large "
            "{dt} or a near-singular tensor field); use a smaller {dt}", param="dt")
    if conserve and x.size:
        x += (b.sum() - x.sum()) / x.size
    return x, count[0]


def _one_blas_thread():
    """One BLAS thread for the solve, where threadpoolctl is installed (else no change).

    CG's dot products are memory-bound level-1 BLAS calls; next to Numba's thread pool on a busy machine
    a threaded OpenBLAS spin-waits (measured at 512²: a dot product 0.05 ms with one thread, up to
    4 ms with its default threads; the whole solve 0.08 s against 0.3-0.4 s).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an optional dependency (scikit-learn's)
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def advance(u: np.ndarray, n_iter: int, dt: float, bc: int,
            links: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, int]]) -> tuple[np.ndarray, int, int]:
    """``n_iter`` semi-implicit steps of the ``(C, *spatial)`` array ``u``: ``(I - dt A(u^k)) u^{k+1} = u^k``.

    ``links(u)`` returns the Selling links of the tensor of ``u`` -- weights ``(*spatial, K)``, offsets
    ``(*spatial, K, ndim)`` and the longest offset (cells).  All channels share the step's matrix.  Each
    channel is solved in float64 and rounded once to ``u``'s dtype.  Returns ``(result, cg_iterations,
    max_offset)``, the iterations summed over steps and channels.
    """
    if u.size and not np.isfinite(u).all():
        raise ParameterError("{image} has non-finite values; the semi-implicit step solves one linear system "
                             "over the whole grid and needs finite input (or use {method='explicit'})",
                             param="image")
    iters = max_offset = 0
    spatial = u.shape[1:]
    for _ in range(n_iter):
        W, O, span = links(u)
        max_offset = max(max_offset, span)
        M, dmax = step_matrix(W, O, bc, dt)
        maxiter = cg_iteration_cap(dt, dmax)
        if maxiter > MAX_CG_ITERATIONS:  # bounded work, said before it starts (and no overflowing dot products)
            raise ParameterError(
                f"{{dt={dt:.6g}}} would need up to {maxiter:.3g} conjugate-gradient iterations per solve (the "
                f"matrix's condition number reaches {1 + 2 * dt * dmax:.3g}; at most {MAX_CG_ITERATIONS} are "
                f"allowed); use dt <= {_largest_dt(dmax, MAX_CG_ITERATIONS):.3g} (several steps for a longer "
                "time)", param="dt")
        nxt = np.empty_like(u)
        for c in range(u.shape[0]):
            x, k = solve(M, u[c].reshape(-1), conserve=bc != DIRICHLET, maxiter=maxiter)
            nxt[c] = x.reshape(spatial)
            iters += k
        u = nxt
    return u, iters, max_offset
