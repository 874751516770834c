"""Spectral heat solver: exact in time, FFT / DCT-II / DST-II in space."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._backend import backend_for
from .._validation import check_option
from ._base import _HeatSolverBase, overflow_scale

__all__ = ["SpectralHeatSolver"]

SPECTRA = ("continuous", "discrete")


class SpectralHeatSolver(_HeatSolverBase):
    """Exact-in-time heat flow ``u(t) = T^-1[exp(-D lambda_k t) T[u0]]`` for constant ``D``.

    ``T`` is the orthonormal DCT-II (Neumann), DST-II (Dirichlet) or real FFT
    (periodic) over the spatial axes.  ``spectrum="continuous"`` uses the
    eigenvalues of the continuous Laplacian, ``(pi k / L)^2`` per axis
    (spectrally accurate; IHDM's operator); ``"discrete"`` those of the
    second-order stencil, ``4/h^2 sin^2(pi k / 2n)``, giving the exact solution
    of the semi-discrete system that the explicit and implicit schemes integrate.

    The spatial axes are the *last* ``len(shape)`` axes of the input; any
    leading axes are a batch, transformed in one call, and may carry one time
    each (see :meth:`evolve`).

    Parameters
    ----------
    shape : tuple of int
        Spatial grid shape (1–3 axes).
    dtype : {numpy.float32, numpy.float64}
        Working dtype; float32 input gives float32 transforms.
    diffusivity : float
        Positive constant (array diffusivities need the explicit/implicit solvers).
    spacing, boundary
        As for :class:`ExplicitHeatSolver`.
    spectrum : {"continuous", "discrete"}
        Which eigenvalues to use (see above).

    Examples
    --------
    >>> import numpy as np
    >>> from pdediff import SpectralHeatSolver
    >>> solver = SpectralHeatSolver((32, 48), np.float32)
    >>> batch = np.random.default_rng(0).random((8, 32, 48), dtype=np.float32)
    >>> out = solver.evolve(batch, np.linspace(0.0, 4.0, 8))   # one time per image
    >>> out.shape, out.dtype
    ((8, 32, 48), dtype('float32'))
    """

    def __init__(self, shape, dtype=np.float64, *, diffusivity: float = 1.0, spacing: Any = 1.0,
                 boundary: str = "neumann", spectrum: str = "continuous") -> None:
        super().__init__(shape, dtype, diffusivity=diffusivity, spacing=spacing, boundary=boundary,
                         allow_array_diffusivity=False)
        self.spectrum = check_option("spectrum", spectrum, SPECTRA)
        self.symbols = self.grid.symbol(self.spectrum)  # float64, per axis
        self._device_symbols: dict[int, tuple] = {}  # per backend (id), copied to its device once

    def _symbols_on(self, be) -> tuple:
        if id(be) not in self._device_symbols:
            self._device_symbols[id(be)] = tuple(be.asarray(s) for s in self.symbols)
        return self._device_symbols[id(be)]

    # -- transforms -------------------------------------------------------------
    def forward(self, u: Any, be=None) -> Any:
        """Spectral coefficients of ``u`` over its last ``ndim`` axes."""
        be = be or backend_for(u)
        axes = tuple(range(-self.grid.ndim, 0))
        f, kw = be.fft, be.fft_kwargs
        if self.grid.boundary == "neumann":
            return f.dctn(u, type=2, axes=axes, norm="ortho", **kw)
        if self.grid.boundary == "dirichlet":
            return f.dstn(u, type=2, axes=axes, norm="ortho", **kw)
        return f.rfftn(u, axes=axes, **kw)

    def inverse(self, c: Any, be=None) -> Any:
        be = be or backend_for(c)
        axes = tuple(range(-self.grid.ndim, 0))
        f, kw = be.fft, be.fft_kwargs
        if self.grid.boundary == "neumann":
            return f.idctn(c, type=2, axes=axes, norm="ortho", overwrite_x=True, **kw)
        if self.grid.boundary == "dirichlet":
            return f.idstn(c, type=2, axes=axes, norm="ortho", overwrite_x=True, **kw)
        return f.irfftn(c, s=self.shape, axes=axes, overwrite_x=True, **kw)

    def _decay(self, c: Any, times: Any, be) -> None:
        """``c *= exp(-D lambda t)`` in place, one time per batch item; ``c`` is ``(B, *spec)``."""
        xp = be.xp
        real = np.float32 if c.dtype in (np.float32, np.complex64) else np.float64
        t = xp.asarray(times, dtype=np.float64).reshape(-1, 1)
        with np.errstate(over="ignore"):  # D t lambda beyond float64 (t near 1e308) is inf: exp(-inf) = 0, exact
            factors = [xp.exp(-self.diffusivity * t * s[None, :]) for s in self._symbols_on(be)]
        # Flush factors whose product could be subnormal: denormal arithmetic is ~50x slower.
        tiny = float(np.finfo(real).tiny) ** (1.0 / len(factors))
        factors = [xp.ascontiguousarray(xp.where(f < tiny, 0.0, f).astype(real)) for f in factors]
        be.scale_separable(c, factors)

    def _check_batch(self, u: Any) -> tuple[int, ...]:
        nd = self.grid.ndim
        if u.ndim < nd or tuple(u.shape[u.ndim - nd:]) != self.shape:
            raise ValueError(f"u must end with the spatial shape {self.shape}; got shape {tuple(u.shape)}")
        if u.dtype != self.dtype:
            raise ValueError(f"u must have dtype {self.dtype} (this solver's); got {u.dtype}")
        return tuple(u.shape[: u.ndim - nd])

    def _times_for(self, t: Any, batch: tuple[int, ...], xp) -> Any:
        tt = xp.asarray(t, dtype=np.float64)
        if tt.ndim == 0:
            tt = xp.broadcast_to(tt, batch)
        elif tuple(tt.shape) != batch:
            raise ValueError(f"t must be a scalar or have the batch shape {batch}; got shape {tuple(tt.shape)}")
        if not bool(xp.all(tt >= 0)) or not bool(xp.all(xp.isfinite(tt))):
            raise ValueError("t must be non-negative and finite")
        return tt

    def evolve(self, u: Any, t: Any) -> Any:
        """Return ``u`` evolved for time ``t`` (a new array; ``u`` is not modified).

        Parameters
        ----------
        u : array, shape ``(*batch, *shape)``
            States; NumPy or CuPy, of this solver's dtype.
        t : float or array of shape ``batch``
            Time(s) to evolve for (non-negative).

        Any finite ``u`` runs without overflow: values whose transforms could overflow are scaled by a power
        of two and back (exact; otherwise the computation is the unscaled one, bit for bit).
        """
        be = backend_for(u)
        batch = self._check_batch(u)
        tt = self._times_for(t, batch, be.xp)
        scale = self._scale(u)
        c = self.forward(u * u.dtype.type(scale) if scale != 1.0 else u, be)
        spec = tuple(c.shape[len(batch):])
        c = c.reshape((-1,) + spec)
        self._decay(c, tt.reshape(-1), be)
        out = self.inverse(c.reshape(batch + spec), be).astype(self.dtype, copy=False)
        if scale != 1.0:
            out *= out.dtype.type(1.0 / scale)
        return out

    def _scale(self, u: Any) -> float:
        """The power of two that keeps the transforms of ``u`` from overflowing (1 almost always): orthonormal
        coefficients reach ``sqrt(N) max|u|`` for ``N`` cells, the butterflies' partial sums a few times that."""
        return overflow_scale(u, 4.0 * math.sqrt(float(np.prod(self.shape))))

    def evolve_many(self, u0: Any, times: Any) -> Any:
        """Snapshots at each of ``times`` (1-D), stacked on a new leading axis; one forward transform.

        As :meth:`evolve`, any finite ``u0`` runs without overflow (scaled by a power of two when needed).
        """
        be = backend_for(u0)
        self._check_batch(u0)
        scale = self._scale(u0)
        c0 = self.forward(u0 * u0.dtype.type(scale) if scale != 1.0 else u0, be)
        outs = []
        for t in np.asarray(times, dtype=np.float64):
            if t == 0.0:  # exact: no transform round-off at t = 0
                outs.append(u0.astype(self.dtype, copy=True))
                continue
            c = c0.copy().reshape((1,) + tuple(c0.shape))
            self._decay(c.reshape((-1,) + tuple(c0.shape[u0.ndim - self.grid.ndim:])),
                        np.full(int(np.prod(c0.shape[: u0.ndim - self.grid.ndim])), t), be)
            out = self.inverse(c[0], be).astype(self.dtype, copy=False)
            if scale != 1.0:
                out *= out.dtype.type(1.0 / scale)
            outs.append(out)
        return be.xp.stack(outs)
