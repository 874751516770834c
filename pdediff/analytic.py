"""Exact solutions of the heat equation on the cell-centred grid (docs/conventions.rst §3).

On an axis ``[0, L]``, ``cos(k pi x / L)`` (Neumann), ``sin(k pi x / L)``
(Dirichlet) and ``sin(2 k pi x / L)`` (periodic) are eigenfunctions of the
Laplacian; a product of such modes over the axes decays as
``exp(-D sum_a rate_a t)``.  Used by the tests, the docs and the benchmarks.

Examples
--------
>>> import numpy as np
>>> from pdediff import analytic
>>> u0 = analytic.mode((32, 32), spacing=1 / 32, boundary="dirichlet")
>>> u1 = analytic.mode_solution((32, 32), 0.01, spacing=1 / 32, boundary="dirichlet")
>>> round(float(u1.max() / u0.max()), 6) == round(float(np.exp(-2 * np.pi**2 * 0.01)), 6)
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .grid import Grid

__all__ = ["mode", "mode_rate", "mode_solution", "gaussian_sigma", "time_for_sigma"]


def _wavenumbers(grid: Grid, k: Any) -> tuple[int, ...]:
    ks = np.broadcast_to(np.atleast_1d(np.asarray(k, dtype=int)), (grid.ndim,))
    if np.any(ks < 0) or (grid.boundary == "dirichlet" and np.any(ks < 1)):
        raise ValueError("mode numbers k must be >= 0 (>= 1 for Dirichlet)")
    return tuple(int(v) for v in ks)


def mode(shape, *, spacing: Any = 1.0, boundary: str = "neumann", k: Any = 1) -> np.ndarray:
    """The eigenmode ``prod_a phi_k(x_a)`` sampled at the cell centres (float64).

    Parameters
    ----------
    shape : tuple of int
        Grid shape (1–3 axes).
    spacing : float or sequence of float
        Cell width per axis; the domain is ``[0, n_a h_a]``.
    boundary : {"neumann", "dirichlet", "periodic"}
        Selects cos, sin or the periodic sine.
    k : int or sequence of int
        Mode number per axis.
    """
    g = Grid(shape, spacing, boundary)
    ks = _wavenumbers(g, k)
    out = np.ones(g.shape)
    for a, (x, L, ka) in enumerate(zip(g.mesh(), g.lengths, ks)):
        if boundary == "neumann":
            f = np.cos(ka * np.pi * x / L)
        elif boundary == "dirichlet":
            f = np.sin(ka * np.pi * x / L)
        else:
            f = np.sin(2 * ka * np.pi * x / L)
        out = out * f
    return out


def mode_rate(shape, *, spacing: Any = 1.0, boundary: str = "neumann", k: Any = 1,
              diffusivity: float = 1.0) -> float:
    """Continuous decay rate ``D sum_a (k_a pi / L_a)^2`` (``(2 k_a pi / L_a)^2`` periodic)."""
    g = Grid(shape, spacing, boundary)
    ks = _wavenumbers(g, k)
    f = 2.0 if boundary == "periodic" else 1.0
    return float(diffusivity * sum((f * ka * np.pi / L) ** 2 for ka, L in zip(ks, g.lengths)))


def mode_solution(shape, t: float, *, spacing: Any = 1.0, boundary: str = "neumann", k: Any = 1,
                  diffusivity: float = 1.0) -> np.ndarray:
    """Exact solution at time ``t`` starting from :func:`mode` (float64)."""
    rate = mode_rate(shape, spacing=spacing, boundary=boundary, k=k, diffusivity=diffusivity)
    return mode(shape, spacing=spacing, boundary=boundary, k=k) * np.exp(-rate * t)


def gaussian_sigma(t: float, diffusivity: float = 1.0) -> float:
    """Standard deviation ``sqrt(2 D t)`` of the Gaussian blur equal to heat flow for time ``t``."""
    return float(np.sqrt(2.0 * diffusivity * t))


def time_for_sigma(sigma: float, diffusivity: float = 1.0) -> float:
    """Heat-flow time ``sigma^2 / (2 D)`` equal to a Gaussian blur of standard deviation ``sigma``."""
    return float(sigma**2 / (2.0 * diffusivity))
