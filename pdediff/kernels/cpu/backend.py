"""The CPU backend: launches the Numba kernels on NumPy arrays.

Solvers talk to a backend object (this one, or the GPU backend) through the
same small set of methods, so the numerics never depend on where the data is.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

import numba

from . import perona_malik, spectral, stencil, tridiag
from ._common import use_parallel

__all__ = ["CPUBackend", "CPU"]


def _kernel_code(code: int, dtype) -> int:
    """The exponential conductance (0) runs as its float32 kernel (3) on float32 data: twice the vector width."""
    return 3 if code == 0 and dtype == np.float32 else int(code)


class CPUBackend:
    name = "cpu"
    xp = np
    fft = scipy.fft
    fft_kwargs = {"workers": -1}

    # -- explicit heat step: u, out are 2-D or 3-D (1-D runs as (1, n)) -------
    def heat_step(self, u, out, dt, ih2, bcs, beta=1.0, faces=None):
        """``out = beta * u + dt * sum_a ih2_a * (flux differences)``; ``faces`` for variable D."""
        t = u.dtype.type
        par = use_parallel(u.size)
        args_c = tuple(t(c) for c in ih2)
        if faces is None:
            if u.ndim == 2:
                k = stencil.heat2_const_par if par else stencil.heat2_const_ser
            else:
                k = stencil.heat3_const_par if par else stencil.heat3_const_ser
            k(u, out, t(dt), t(beta), *args_c, *bcs)
        else:
            if u.ndim == 2:
                k = stencil.heat2_var_par if par else stencil.heat2_var_ser
            else:
                k = stencil.heat3_var_par if par else stencil.heat3_var_ser
            k(u, out, *faces, t(dt), t(beta), *args_c, *bcs)

    # -- batched tridiagonal ---------------------------------------------------
    def tri_factor(self, a, b, c, cp, inv):
        k = tridiag.factor_par if use_parallel(b.size) else tridiag.factor
        k(a, b, c, cp, inv)

    def tri_solve(self, d, x, out, coef, alpha=1.0, accumulate=False):
        """Solve along axis 1 of the ``(pre, n, post)`` views ``d`` -> ``x`` (may alias).

        With ``accumulate``, ``out += alpha * x`` and ``x`` is scratch space
        (its content afterwards is unspecified).
        """
        pre, n, post = d.shape
        t = d.dtype.type
        par = use_parallel(d.size)
        cyclic = coef.z is not None
        z, vn, qf = (coef.z, coef.vn, coef.qf) if cyclic else (coef.cp, coef.cp, coef.cp)
        if post == 1:
            k = tridiag.solve_last_par if par else tridiag.solve_last_ser
            sq = (slice(None), slice(None), 0)
            block = 8  # measured: 8 lines per transposed block beat 16-64 (less scatter, L1-resident)
            k(d[:, :, 0], x[:, :, 0], out[:, :, 0], coef.a[sq], coef.cp[sq], coef.inv[sq],
              z[sq], vn[sq], qf[sq], block, t(alpha), accumulate, cyclic)
        else:
            # columns per block: wide enough to vectorise, narrow enough to spread over threads
            block = int(max(64, min(post, 1024)))
            k = tridiag.solve_mid_par if par else tridiag.solve_mid_ser
            k(d, x, out, coef.a, coef.cp, coef.inv, z, vn, qf, block, t(alpha), accumulate, cyclic)

    # -- Perona–Malik -------------------------------------------------------------
    def pm_step(self, u, v, out, dt, ih, kinv2, code):
        """Fused explicit Perona–Malik step on ``(C, n0, n1)`` or ``(C, n0, n1, n2)`` arrays."""
        t = u.dtype.type
        par = use_parallel(u.size)
        if u.ndim == 3:  # (C, n0, n1): one plane of n0 rows
            C, n0, n1 = u.shape
            shp, nplane, ihs = u.shape, n0, (0.0, ih[0], ih[1])
        else:  # (C, n0, n1, n2) -> (C, n0 * n1, n2), blocks of whole planes
            C, n0, n1, n2 = u.shape
            shp, nplane, ihs = (C, n0 * n1, n2), n1, tuple(ih)
        nblocks = min(n0, 4 * numba.get_num_threads()) if par else 1
        k = perona_malik.pm_par if par else perona_malik.pm_ser
        k(u.reshape(shp), v.reshape(shp), out.reshape(shp), nplane, t(dt), *(t(x) for x in ihs), t(kinv2),
          _kernel_code(code, u.dtype), t(1), t(0.5), nblocks)

    def aos_coefficients(self, v4, a, b, c, tau, ih, kinv2, code):
        """Lines of ``I - tau A(v)`` along axis 2 of ``v4`` ``(C, pre, n, post)`` into ``(pre, n, post)``."""
        t = v4.dtype.type
        args = (t(tau), t(ih), t(kinv2), _kernel_code(code, v4.dtype), t(1), t(0.5))
        if v4.shape[3] == 1:
            sq = (slice(None), slice(None), 0)
            perona_malik.aos_coefficients_last(v4[..., 0], a[sq], b[sq], c[sq], *args)
        else:
            perona_malik.aos_coefficients_mid(v4, a, b, c, *args)

    # -- spectral ----------------------------------------------------------------
    def scale_separable(self, c, factors):
        """In place ``c *= prod_a factors[a]`` with ``c`` of shape ``(B, *spectral)``."""
        k = (spectral.scale1, spectral.scale2, spectral.scale3)[len(factors) - 1]
        k(c, *factors)


CPU = CPUBackend()
