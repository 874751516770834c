"""Perona–Malik inpainting: edge-preserving diffusion inside the mask, the known pixels as Dirichlet data.

AOS steps (Weickert et al.) of :func:`pdediff.perona_malik`'s scheme, on the
same kernels (``aos_coefficients``, batched Thomas factor and solve), with one
change: in every tridiagonal line a known pixel's row is the identity row, so
the solve returns it unchanged and its unknown neighbours see it as boundary
data.  Each line system stays a diagonally dominant M-matrix, hence every step
keeps the values inside the range of the data (maximum principle) whatever ``dt``.
"""

from __future__ import annotations

import numpy as np

from .._backend import backend_for
from .._operators import TridiagonalSystem, as_lines
from .._plan import CONDUCTANCE_CODES, intensity_scale, inverse_square, length_scale
from .._steppers import make_smoother
from ..anisotropic.kappa import estimate_kappa

__all__ = ["pm_inpaint"]


def pm_inpaint(u0: np.ndarray, mask: np.ndarray, h: tuple[float, ...], *, num_iter: int, kappa: float | None,
               conductance: str, sigma: float, dt: float, progress: bool = False) -> tuple[np.ndarray, float]:
    """Diffuse ``u0`` (``(C, *spatial)``, float32/64, already filled inside ``mask``) for ``num_iter``
    AOS steps of ``dt``, known pixels fixed.  ``kappa=None``: estimated from the known region.

    Returns ``(u, kappa)`` with ``kappa`` in the caller's units.
    """
    be = backend_for(u0)
    known = ~mask
    # dimensionless copy, as in perona_malik: intensities and lengths scaled by powers of two (exact)
    a = intensity_scale(u0, np)
    c = length_scale(h)
    hs = tuple(x * c for x in h)
    dts = dt * c * c
    u = np.ascontiguousarray(u0 * u0.dtype.type(a))
    smooth = make_smoother(sigma * c, hs, u.shape, u.dtype, be)
    if kappa is None:
        # the known region's face gradients only: faces touching the mask get NaN magnitudes, which
        # the estimate skips
        v = np.array(smooth(u), copy=True)
        v[:, mask] = np.nan
        kappa_s = estimate_kappa(v, hs, conductance)
        kappa = kappa_s * c / a
    else:
        kappa_s = kappa * a / c
    kinv2 = inverse_square(kappa_s, u.dtype)
    code = CONDUCTANCE_CODES[conductance]
    m = len(hs)
    bufs = tuple(np.empty(u[0].size, dtype=u.dtype) for _ in range(5))
    work = np.empty_like(u[0])
    out = np.empty_like(u)
    kept = u[:, known]
    iterator = range(num_iter)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="Perona–Malik inpainting", unit="it", leave=False, disable=None)
    for _ in iterator:
        v = smooth(u)
        out[...] = 0
        for ax, ha in enumerate(hs):
            lines = as_lines(v[0], ax).shape
            A, B, Cc, cp, inv = (buf.reshape(lines) for buf in bufs)
            be.aos_coefficients(v, ax, A, B, Cc, m * dts / ha**2, 1.0 / ha, kinv2, code)
            kl = as_lines(known, ax)
            A[kl] = 0  # identity rows: known pixels are Dirichlet data of their lines
            Cc[kl] = 0
            B[kl] = 1
            be.tri_factor(A, B, Cc, cp, inv)
            system = TridiagonalSystem(A, cp, inv)
            for ch in range(u.shape[0]):
                be.tri_solve(as_lines(u[ch], ax), as_lines(work, ax), as_lines(out[ch], ax), system, 1.0 / m, True)
        out[:, known] = kept  # (1/m) * m * u_k is not exactly u_k in 3-D: restore the data bit for bit
        u, out = out, u
    if a != 1.0:
        u *= u.dtype.type(1.0 / a)
    return u, float(kappa)
