"""Harmonic and biharmonic inpainting: the masked Laplace / biharmonic systems, built and solved.

Unknowns are the masked pixels only.  ``L`` is pdediff's cell-centred Laplacian
with zero-flux (Neumann) image borders and face weights ``1 / h_a^2``: a face
between two pixels along axis ``a`` contributes ``(u_j - u_i) / h_a^2`` to row
``i``; faces on the image border carry nothing.

* harmonic: ``(L u)_p = 0`` for every masked ``p``, the known pixels as Dirichlet
  data: ``A x = b`` with ``A = -L[M, M]`` (a symmetric M-matrix) and ``b = L[M, K] u_K``.
* biharmonic: ``(L L u)_p = 0`` for every masked ``p`` (scikit-image's
  ``inpaint_biharmonic`` formulation, whose truncated stencils at the border
  are exactly this Neumann ``L`` applied twice): with ``Lm = L[:, M]``,
  ``Lm^T Lm x = -Lm^T L u0`` (``u0``: the image with zeros in the mask), the
  normal equations of ``min |L u|`` over the missing values, symmetric positive definite.

Every connected part of a mask that is not the whole image touches a known
pixel, so both matrices are non-singular.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .._plan import LINEAR_SOLVERS
from ..errors import ParameterError
from ..kernels.cpu.inpaint import harmonic_pcg, harmonic_setup, harmonic_store

__all__ = ["DIRECT_MAX_UNKNOWNS_3D", "SOLVERS", "SSOR_OMEGA", "check_anisotropy", "harmonic_cg_inplace", "solve_linear"]

#: The linear solvers (:data:`pdediff._plan.LINEAR_SOLVERS`, where :func:`pdediff.inpaint` checks ``solver``).
SOLVERS = LINEAR_SOLVERS
#: ``solver="auto"`` factorises 1-D/2-D systems and 3-D ones up to this many unknowns; larger 3-D
#: masks (whose sparse factors fill in much more than 2-D ones) use conjugate gradients.
DIRECT_MAX_UNKNOWNS_3D = 60_000


#: Relaxation of the SSOR preconditioner of the compiled harmonic CG.  Iterations to 1e-8 on astronaut
#: 512² (3 channels): crack mask 45 (Jacobi) / 17 (1.0) / 13 (1.5) / 16 (1.7) / 22 (1.85); block mask
#: 263 / 93 / 55 / 42 / 32: 1.8 is the compromise between thin and wide holes.
SSOR_OMEGA = 1.8
#: Largest relative error of a direct solve's fill (estimated by one refinement correction) that is
#: returned; above it the system is too ill-conditioned for float64 and :func:`solve_linear` raises.
FORWARD_ERROR_MAX = 1e-6
#: Below this ratio of the weakest to the strongest coupling (``(h_min/h_max)^2`` harmonic, ``^4``
#: biharmonic) the weak couplings are lost to rounding against the strong ones (float64's epsilon).
_TINY_COUPLING = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class LinearSolveInfo:
    solver: str
    iterations: int
    residual: float


def _neighbours(flat: np.ndarray, shape: tuple[int, ...]):
    """For each axis and side: ``(axis, positions i in flat with a neighbour, the neighbour's flat index)``."""
    strides = [int(np.prod(shape[a + 1:], dtype=np.int64)) for a in range(len(shape))]
    for a, (s, n) in enumerate(zip(strides, shape)):
        c = (flat // s) % n
        for valid, step in ((c > 0, -s), (c < n - 1, s)):
            i = np.flatnonzero(valid)
            yield a, i, flat[i] + step


def _harmonic_system(mask: np.ndarray, h: tuple[float, ...], U: np.ndarray):
    """``A`` (CSR, float64) and ``b`` (n, C) of the masked Laplace system; ``U`` is ``(N, C)``."""
    mflat = mask.ravel()
    flat = np.flatnonzero(mflat)
    n = flat.size
    idx = np.full(mflat.size, -1, dtype=np.int64)
    idx[flat] = np.arange(n)
    diag = np.zeros(n)
    rows, cols, vals = [], [], []
    b = np.zeros((n, U.shape[1]))
    for a, i, q in _neighbours(flat, mask.shape):
        w = 1.0 / (h[a] * h[a])
        diag[i] += w
        unknown = mflat[q]
        rows.append(i[unknown])
        cols.append(idx[q[unknown]])
        vals.append(np.full(rows[-1].size, -w))
        known = ~unknown
        ik, qk = i[known], q[known]
        for ch in range(U.shape[1]):  # bincount: an unbuffered scatter-add, ~10x faster than np.add.at
            b[:, ch] += np.bincount(ik, weights=U[qk, ch], minlength=n) * w
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    vals.append(diag)
    A = sp.csr_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    return A, b


def _biharmonic_system(mask: np.ndarray, h: tuple[float, ...], U: np.ndarray):
    """``B = Lm^T Lm`` (CSR) and ``b = -Lm^T (L u0)`` of the masked biharmonic system."""
    mflat = mask.ravel()
    flat = np.flatnonzero(mflat)
    n = flat.size
    # Lm = L[:, M] in COO over (pixel row, unknown column): column j has -sum(w) at its own pixel and
    # w at each in-image neighbour (L is symmetric, so column j is row j).
    rows, cols, vals = [flat], [np.arange(n)], []
    diag = np.zeros(n)
    for a, i, q in _neighbours(flat, mask.shape):
        w = 1.0 / (h[a] * h[a])
        diag[i] -= w
        rows.append(q)
        cols.append(i)
        vals.append(np.full(i.size, w))
    vals.insert(0, diag)
    r = np.concatenate(rows)
    # only the pixels Lm touches (the mask dilated by one) are rows of the product; numbered through a
    # full-size map (O(N), no sort)
    touched = np.zeros(mflat.size, dtype=bool)
    touched[r] = True
    rset = np.flatnonzero(touched)
    rmap = np.empty(mflat.size, dtype=np.int64)
    rmap[rset] = np.arange(rset.size)
    rinv = rmap[r]
    Lm = sp.csr_array((np.concatenate(vals), (rinv, np.concatenate(cols))), shape=(rset.size, n))
    # (L u0) at those pixels, u0 = U with the masked rows zeroed
    U0 = U.copy()
    U0[flat] = 0
    Lu0 = np.zeros((rset.size, U.shape[1]))
    for a, i, q in _neighbours(rset, mask.shape):
        w = 1.0 / (h[a] * h[a])
        Lu0[i] += w * (U0[q] - U0[rset[i]])
    LmT = Lm.T.tocsr()
    return (LmT @ Lm).tocsr(), -(LmT @ Lu0)


def _direct(A, b, tol, max_iter):
    """SuperLU factorisation (symmetric mode, minimum-degree ordering of A + A^T), one factor for
    every channel, then iterative refinement until ``|b - A x| <= tol |b|`` per channel."""
    lu = spla.splu(A.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                   options={"SymmetricMode": True})
    x = lu.solve(b)
    bn = np.linalg.norm(b, axis=0)
    it = 0
    while True:
        r = b - A @ x
        rel = _relative(r, bn)
        if rel <= tol or it >= max_iter:
            # the error of x, estimated by the next refinement correction (not applied: x stays as solved):
            # a small residual does not bound the error of an ill-conditioned system (biharmonic with
            # spacing (1, 100) and a mask spanning the fine axis: residual 2e-10, error 1.5 % of the range)
            dx = lu.solve(r)
            with np.errstate(invalid="ignore", divide="ignore"):
                err = float(np.max(np.abs(dx)) / np.max(np.abs(x))) if x.size and np.any(x) else 0.0
            return x, it, rel, err
        x += lu.solve(r)
        it += 1


def _cg(A, b, tol, max_iter):
    """Jacobi-preconditioned conjugate gradients, all channels at once (one column each)."""
    d = A.diagonal()[:, None]
    bn = np.linalg.norm(b, axis=0)
    x = b / d
    r = b - A @ x
    z = r / d
    p = z.copy()
    rz = np.einsum("ij,ij->j", r, z)
    it = 0
    while True:
        rel = _relative(r, bn)
        if rel <= tol or it >= max_iter:
            return x, it, rel
        Ap = A @ p
        pAp = np.einsum("ij,ij->j", p, Ap)
        alpha = np.divide(rz, pAp, out=np.zeros_like(rz), where=pAp > 0)  # a converged column stops
        x += alpha * p
        r -= alpha * Ap
        z = r / d
        rz_new = np.einsum("ij,ij->j", r, z)
        beta = np.divide(rz_new, rz, out=np.zeros_like(rz), where=rz > 0)
        p = z + beta * p
        rz = rz_new
        it += 1


def _relative(r, bn) -> float:
    rn = np.linalg.norm(r, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(bn > 0, rn / np.where(bn > 0, bn, 1), rn)
    return float(rel.max()) if rel.size else 0.0


def _cg_cap(kind: str, shape: tuple[int, ...], max_iter: int | None) -> int:
    # CG needs O(diameter) (harmonic) or O(diameter^2) (biharmonic) iterations; the default cap
    # allows a hole as wide as the image with a margin
    if max_iter is not None:
        return max_iter
    return int(20 * max(shape) * (1 if kind == "harmonic" else max(shape) / 4)) + 100


def _not_converged(kind, tol, rel, cap, solver, h=None):
    what = "refinement steps" if solver == "direct" else "conjugate-gradient iterations"
    if h is not None and max(h) > min(h) and solver == "cg" and math.isfinite(rel) and rel < 1:
        return RuntimeError(
            f"{kind} inpainting did not reach the relative residual {tol:.3g} (tol / (max/min spacing)^2 for "
            f"spacing {tuple(h)}: anisotropy worsens the conditioning, so the residual must be smaller for the "
            f"same accuracy; reached {rel:.3g}) within max_iter={cap} {what}; raise max_iter, or use "
            "solver='direct'")
    if h is not None and max(h) > min(h) and not (solver == "cg" and math.isfinite(rel) and rel < 1):
        # a direct solve that does not refine, or a diverging one, is the system's conditioning, not the cap
        return RuntimeError(
            f"{kind} inpainting did not reach tol={tol:g} (relative residual {rel:.3g}) within max_iter={cap} "
            f"{what}: the system is too ill-conditioned for float64 with this mask and spacing {tuple(h)} "
            f"(max/min {max(h) / min(h):.3g}: the coarse axis' couplings are weak); raising max_iter will not "
            "help: use a more isotropic spacing")
    return RuntimeError(
        f"{kind} inpainting did not reach tol={tol:g} (relative residual {rel:.3g}) within "
        f"max_iter={cap} {what}; raise max_iter or tol" + (", or use solver='direct'" if solver == "cg" else ""))


def check_anisotropy(kind: str, h: tuple[float, ...]) -> None:
    """Refuse (naming ``spacing``) a spacing whose coarsest axis' couplings are below float64's resolution
    relative to the finest axis' ones: ``(h_min/h_max)^2`` (harmonic) or its square (biharmonic) below
    the machine epsilon.  Such a system rounds to one without those couplings: a masked pixel reached
    only along the coarse axis is then undetermined (filled with 0, or a singular matrix)."""
    p = 2 if kind == "harmonic" else 4
    if (min(h) / max(h)) ** p < _TINY_COUPLING:
        top = _TINY_COUPLING ** (-1.0 / p)
        raise ParameterError(
            f"{{spacing}} {tuple(h)}: max/min {max(h) / min(h):.3g} is too anisotropic for {kind} inpainting; "
            f"its couplings along the coarsest axis would be (min/max)^{p} = {(min(h) / max(h)) ** p:.3g} of the "
            f"finest axis' ones, below float64's resolution {_TINY_COUPLING:.3g}; keep max(spacing)/min(spacing) "
            f"at most {top:.4g} (or inpaint axis by axis)", param="spacing")


def harmonic_cg_inplace(data: np.ndarray, mask: np.ndarray, h: tuple[float, ...], channel_axis: int | None, *,
                        tol: float, max_iter: int | None) -> LinearSolveInfo:
    """Harmonic fill of ``data`` (float32/float64, C-contiguous, spatial axes in order with an optional
    channel axis anywhere) inside ``mask``, in place, by the compiled SSOR-preconditioned CG: no copy of
    the image, work O(n_missing) per iteration.  Values at masked pixels are never read."""
    check_anisotropy("harmonic", h)
    item = data.itemsize
    spatial = [a for a in range(data.ndim) if a != channel_axis]
    estr = np.array([data.strides[a] // item for a in spatial], dtype=np.int64)
    cstride = 0 if channel_axis is None else data.strides[channel_axis] // item
    nch = 1 if channel_axis is None else data.shape[channel_axis]
    shape = np.array(mask.shape, dtype=np.int64)
    sstr = np.array([int(np.prod(mask.shape[a + 1:], dtype=np.int64)) for a in range(mask.ndim)], dtype=np.int64)
    w = np.array([1.0 / (x * x) for x in h])
    w /= w.max()  # the same solution; keeps b below 2 ndim in the setup's scaled units
    flat = data.reshape(-1)
    mflat = mask.reshape(-1)
    offsets, nbr, diag, b, scale = harmonic_setup(mflat, np.flatnonzero(mflat), shape, sstr, estr, cstride, nch, w, flat)
    x = np.zeros((nch, b.shape[1] + 1))
    np.divide(b, diag, out=x[:, :-1])  # start: the known neighbours' weighted mean (0 deep inside)
    cap = _cg_cap("harmonic", mask.shape, max_iter)
    it, rel = harmonic_pcg(nbr, np.repeat(w, 2), diag, b, x, tol, cap, SSOR_OMEGA)
    if not rel <= tol:  # also catches NaN
        raise _not_converged("harmonic", tol, rel, cap, "cg")
    harmonic_store(x, offsets, cstride, 1.0 / scale, flat)
    return LinearSolveInfo(solver="cg", iterations=int(it), residual=float(rel))


def solve_linear(kind: str, U: np.ndarray, mask: np.ndarray, h: tuple[float, ...], *, solver: str,
                 tol: float, max_iter: int | None) -> tuple[np.ndarray, LinearSolveInfo]:
    """Fill ``U`` (``(N, C)`` float64, rows = flattened pixels) inside ``mask``; return ``(x, info)``,
    ``x`` the ``(n_missing, C)`` values in ``np.flatnonzero(mask)`` order.

    Raises :class:`RuntimeError` when the residual is still above ``tol`` after ``max_iter``
    refinement steps (direct) or iterations (CG).
    """
    # Spacing in units of a power of two near the finest one: the weights 1/h^2 scale by a power of four,
    # exactly, so A and b scale exactly and the solution is the same bit for bit, but no product of
    # weights overflows (spacing (1e-50, 1e50) made the biharmonic residual NaN).
    check_anisotropy(kind, h)
    unit = 2.0 ** math.floor(math.log2(min(h)))
    hs = tuple(x / unit for x in h)
    A, b = (_harmonic_system if kind == "harmonic" else _biharmonic_system)(mask, hs, U)
    n = A.shape[0]
    if solver == "auto":
        solver = "direct" if mask.ndim < 3 or n <= DIRECT_MAX_UNKNOWNS_3D else "cg"
    if solver == "direct":
        cap = 10 if max_iter is None else max_iter
        x, it, rel, err = _direct(A, b, tol, cap)
        if rel <= tol and not err <= FORWARD_ERROR_MAX:  # also catches NaN
            raise RuntimeError(
                f"{kind} inpainting: the direct solve reached the residual tol={tol:g} (relative residual "
                f"{rel:.3g}) but its estimated relative error is {err:.3g} (above {FORWARD_ERROR_MAX:g}): the "
                f"system is too ill-conditioned for float64 with this mask and spacing {tuple(h)}"
                + (" (max/min spacing " f"{max(h) / min(h):.3g}: the coarse axis' couplings are weak)"
                   if max(h) > min(h) else "")
                + "; use a more isotropic spacing, or a mask whose pixels have known neighbours along the "
                "finest axis")
    else:
        cap = _cg_cap(kind, mask.shape, max_iter)
        # The residual bounds the error through the condition number, which anisotropy raises by about
        # (h_max/h_min)^2: the tolerance is tightened by that factor (spacing (1, 100), a 115² hole: at
        # 1e-8 CG stopped 0.34 grey levels off spsolve, 8e-5 of the range; at 1e-12, 2e-6 as isotropic)
        tol_cg = tol / (max(h) / min(h)) ** 2
        x, it, rel = _cg(A, b, tol_cg, cap)
        if not rel <= tol_cg:  # also catches NaN
            raise _not_converged(kind, tol_cg, rel, cap, solver, h)
    if not rel <= tol:  # also catches NaN
        raise _not_converged(kind, tol, rel, cap, solver, h)
    if not math.isfinite(rel):
        raise RuntimeError(f"{kind} inpainting produced non-finite values")
    return x, LinearSolveInfo(solver=solver, iterations=it, residual=rel)
