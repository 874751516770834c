"""Plain NumPy / SciPy references for every kernel (slow, obvious, independent).

Nothing here shares code with pdediff's kernels: the sparse operators index
ghost cells their own way, the spectral reference builds its transform
matrices from the cosine/sine formulas.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla


def _faces(D: np.ndarray, axis: int, boundary: str) -> np.ndarray:
    """Face coefficients along ``axis`` (n+1 there), harmonic means, written independently."""
    n = D.shape[axis]
    F = np.zeros(D.shape[:axis] + (n + 1,) + D.shape[axis + 1 :])
    for i in range(n + 1):
        sl = [slice(None)] * D.ndim
        sl[axis] = i
        left = np.take(D, i - 1, axis=axis) if i >= 1 else None
        right = np.take(D, i, axis=axis) if i < n else None
        if left is not None and right is not None:
            F[tuple(sl)] = 2 * left * right / (left + right)
        elif boundary == "neumann":
            F[tuple(sl)] = 0.0
        elif boundary == "dirichlet":
            F[tuple(sl)] = left if left is not None else right
        else:
            a, b = np.take(D, n - 1, axis=axis), np.take(D, 0, axis=axis)
            F[tuple(sl)] = 2 * a * b / (a + b)
    return F


def axis_operator(shape, spacing, boundary, D=None, axis=0) -> sp.csr_matrix:
    """Sparse ``L_a``: the flux-form second difference along ``axis`` (docs/conventions.rst §3)."""
    shape = tuple(shape)
    spacing = np.broadcast_to(np.asarray(spacing, float), (len(shape),))
    D = np.ones(shape) if D is None else np.asarray(D, float)
    F = _faces(D, axis, boundary)
    h2 = spacing[axis] ** 2
    N = int(np.prod(shape))
    rows, cols, vals = [], [], []
    n = shape[axis]
    for idx in itertools.product(*(range(s) for s in shape)):
        row = np.ravel_multi_index(idx, shape)
        i = idx[axis]
        for side in (-1, +1):
            face = list(idx)
            face[axis] = i if side == -1 else i + 1
            f = F[tuple(face)] / h2
            j = i + side
            if 0 <= j < n:
                nb = list(idx)
                nb[axis] = j
                rows += [row, row]
                cols += [np.ravel_multi_index(nb, shape), row]
                vals += [f, -f]
            elif boundary == "dirichlet":  # ghost = -u: f * (-u - u)
                rows.append(row)
                cols.append(row)
                vals.append(-2 * f)
            elif boundary == "periodic":
                nb = list(idx)
                nb[axis] = j % n
                rows += [row, row]
                cols += [np.ravel_multi_index(nb, shape), row]
                vals += [f, -f]
            # neumann: zero flux
    return sp.csr_matrix((vals, (rows, cols)), shape=(N, N))


def laplacian(shape, spacing, boundary, D=None) -> sp.csr_matrix:
    return sum(axis_operator(shape, spacing, boundary, D, a) for a in range(len(shape)))


def explicit_steps(u0, dt, n, spacing, boundary, D=1.0):
    Darr = None if np.ndim(D) == 0 else D
    L = laplacian(u0.shape, spacing, boundary, Darr) * (D if Darr is None else 1.0)
    u = u0.astype(np.float64).ravel()
    for _ in range(n):
        u = u + dt * (L @ u)
    return u.reshape(u0.shape)


def implicit_unsplit(u0, dt, n, spacing, boundary, theta=0.5, D=None):
    """Crank–Nicolson (theta=1/2) / backward Euler (theta=1), direct sparse LU, no splitting."""
    L = laplacian(u0.shape, spacing, boundary, D)
    I = sp.identity(L.shape[0], format="csc")
    lu = spla.splu((I - theta * dt * L).tocsc())
    B = I + (1 - theta) * dt * L
    u = u0.astype(np.float64).ravel()
    for _ in range(n):
        u = lu.solve(B @ u)
    return u.reshape(u0.shape)


def _factored(shape, dt, spacing, boundary, theta, D):
    """The per-axis operators ``L_a``, the identity and ``P = prod_a (I - theta dt L_a)``."""
    ops = [axis_operator(shape, spacing, boundary, D, a) for a in range(len(shape))]
    I = sp.identity(ops[0].shape[0], format="csc")
    P = I
    for La in ops:
        P = P @ (I - theta * dt * La)
    return ops, I, P


def implicit_factored(u0, dt, n, spacing, boundary, theta=0.5, D=None):
    """The Douglas ADI scheme as one sparse system: prod_a (I - theta dt L_a) (u' - u) = dt L u."""
    ops, _, P = _factored(u0.shape, dt, spacing, boundary, theta, D)
    lu = spla.splu(P.tocsc())
    L = sum(ops)
    u = u0.astype(np.float64).ravel()
    for _ in range(n):
        u = u + lu.solve(dt * (L @ u))
    return u.reshape(u0.shape)


def splitting_term(u_old, u_new, dt, spacing, boundary, theta=0.5, D=None):
    """``(P - M) (u_new - u_old)``, with ``P`` the factored and ``M`` the unsplit matrix."""
    ops, I, P = _factored(u_old.shape, dt, spacing, boundary, theta, D)
    M = I - theta * dt * sum(ops)
    return ((P - M) @ (u_new - u_old).ravel()).reshape(u_old.shape)


def _basis(n, boundary):
    """Orthonormal eigenvector matrix (columns) of the 1-D operator, and its k range."""
    x = np.arange(n) + 0.5
    if boundary == "neumann":
        k = np.arange(n)
        B = np.cos(np.pi * np.outer(x, k) / n) * np.sqrt(2.0 / n)
        B[:, 0] /= np.sqrt(2.0)
        return B
    if boundary == "dirichlet":
        k = np.arange(1, n + 1)
        B = np.sin(np.pi * np.outer(x, k) / n) * np.sqrt(2.0 / n)
        B[:, -1] /= np.sqrt(2.0)
        return B
    k = np.fft.fftfreq(n) * n
    return np.exp(2j * np.pi * np.outer(np.arange(n), k) / n) / np.sqrt(n)


def _eigs(n, h, boundary, spectrum):
    if boundary == "neumann":
        k = np.arange(n)
    elif boundary == "dirichlet":
        k = np.arange(1, n + 1)
    else:
        k = np.fft.fftfreq(n) * n
    L = n * h
    if boundary == "periodic":
        return (2 * np.pi * k / L) ** 2 if spectrum == "continuous" else 4 / h**2 * np.sin(np.pi * k / n) ** 2
    return (np.pi * k / L) ** 2 if spectrum == "continuous" else 4 / h**2 * np.sin(np.pi * k / (2 * n)) ** 2


def spectral(u0, t, spacing, boundary, D=1.0, spectrum="continuous"):
    """Heat flow by explicit eigen-expansion with dense basis matrices (no FFT library)."""
    spacing = np.broadcast_to(np.asarray(spacing, float), (u0.ndim,))
    c = u0.astype(np.complex128)
    for a in range(u0.ndim):
        B = _basis(u0.shape[a], boundary)
        c = np.moveaxis(np.tensordot(B.conj().T, np.moveaxis(c, a, 0), axes=1), 0, a)
    lam = 0
    for a in range(u0.ndim):
        e = _eigs(u0.shape[a], spacing[a], boundary, spectrum)
        shp = [1] * u0.ndim
        shp[a] = -1
        lam = lam + e.reshape(shp)
    c = c * np.exp(-D * lam * t)
    for a in range(u0.ndim):
        B = _basis(u0.shape[a], boundary)
        c = np.moveaxis(np.tensordot(B, np.moveaxis(c, a, 0), axes=1), 0, a)
    return c.real


# ------------------------------------------------------------------ Perona–Malik
def pm_conductance(x, name):
    """g(x) with x = (s / kappa)^2, written from docs/conventions.rst §4."""
    if name == "exponential":
        return np.exp(-x)
    if name == "rational":
        return 1.0 / (1.0 + x)
    return np.where(x <= 1.0, 0.5 * (1.0 - x) ** 2, 0.0)


def pm_explicit_step(u, dt, kappa, conductance, spacing, v=None):
    """One explicit 2N-neighbour step (docs/conventions.rst §4), channels first: ``u`` is (C, *spatial).

    Loops over the 2N neighbours of every cell with ``np.roll`` and masks the
    neighbours beyond the boundary (the neighbour is the cell itself: zero flux).
    """
    v = u if v is None else v
    nd = u.ndim - 1
    spacing = np.broadcast_to(np.asarray(spacing, float), (nd,))
    total = np.zeros_like(u)
    for a in range(nd):
        n = u.shape[a + 1]
        idx = np.arange(n).reshape([-1 if b == a else 1 for b in range(nd)])
        for side in (-1, 1):
            un = np.roll(u, -side, axis=a + 1)
            vn = np.roll(v, -side, axis=a + 1)
            inside = (idx + side >= 0) & (idx + side < n)
            d_u = np.where(inside, (un - u) / spacing[a], 0.0)
            d_v = np.where(inside, (vn - v) / spacing[a], 0.0)
            s2 = np.sum(d_v**2, axis=0, keepdims=True)
            g = pm_conductance(s2 / kappa**2, conductance)
            total = total + g * d_u / spacing[a]
    return u + dt * total


def medpy_iteration(img, niter, kappa, gamma, option):
    """MedPy's ``anisotropic_diffusion`` loop (options 1, 2, 3; float arithmetic as given), unit spacing.

    Transcribed from medpy/filter/smoothing.py: option 3 (Tukey's biweight) compares the difference with
    ``kappa_s = kappa * 2**0.5``, not with ``kappa``.
    """
    out = np.array(img, dtype=img.dtype, copy=True)
    for _ in range(niter):
        deltas = [np.zeros_like(out) for _ in range(out.ndim)]
        for i in range(out.ndim):
            sl = [slice(None, -1) if j == i else slice(None) for j in range(out.ndim)]
            deltas[i][tuple(sl)] = np.diff(out, axis=i)
        if option == 1:
            mats = [np.exp(-((d / kappa) ** 2)) * d for d in deltas]
        elif option == 2:
            mats = [1.0 / (1.0 + (d / kappa) ** 2) * d for d in deltas]
        else:
            kappa_s = kappa * (2**0.5)
            mats = [np.where(np.abs(d) <= kappa_s, 0.5 * ((1.0 - (d / kappa_s) ** 2) ** 2), 0) * d for d in deltas]
        for i in range(out.ndim):
            sl = [slice(1, None) if j == i else slice(None) for j in range(out.ndim)]
            mats[i][tuple(sl)] = np.diff(mats[i], axis=i)
        out = out + gamma * np.sum(mats, axis=0)
    return out


def face_gradient_magnitudes(v, spacing):
    """Every interior face's ``sqrt(sum_c ((v_j - v_i) / h_a)^2)``, pooled over axes (``v``: ``(C, *spatial)``).

    The formula ``estimate_kappa`` used before the fused kernel: ``np.diff`` in
    ``v``'s dtype, squares summed in float64, one concatenated array.
    """
    out = []
    for a, h in enumerate(spacing):
        d = np.diff(v, axis=a + 1) / h
        out.append(np.sqrt(np.sum(d.astype(np.float64) ** 2, axis=0)).ravel())
    return np.concatenate(out) if out else np.zeros(0)


def kappa_reference(v, spacing, conductance="exponential", *, rounded=False):
    """``(kappa, median, mad, mean)`` by NumPy: ``factor * 1.4826 * MAD(s)``, mean (or 1) when the MAD is 0.

    NaN magnitudes are dropped (``+inf`` kept); ``rounded``: of ``float32(s)``.
    No face, or only NaN ones: ``kappa = 1`` (no faces) or ``factor`` (all NaN).
    """
    from pdediff.anisotropic.kappa import FACTORS  # the calibration constants, not the computation

    s = face_gradient_magnitudes(np.asarray(v), spacing)
    if s.size == 0:
        return 1.0, np.nan, np.nan, np.nan
    s = s[~np.isnan(s)]
    if rounded:
        s = s.astype(np.float32).astype(np.float64)
    with np.errstate(invalid="ignore"):
        med = np.median(s) if s.size else np.nan
        mad = np.median(np.abs(s - med)) if s.size else np.nan
        mean = s.mean() if s.size else np.nan
    sigma_e = 1.4826 * mad
    if not sigma_e > 0:
        sigma_e = mean if mean > 0 else 1.0
    return float(FACTORS.get(conductance, FACTORS["exponential"]) * sigma_e), float(med), float(mad), float(mean)
