"""The cell-centred grid and its boundary conditions (docs/conventions.rst §2).

An axis with ``n`` cells of width ``h`` has centres ``x_i = (i + 1/2) h`` on the
domain ``[0, n h]``; boundaries lie on the outer cell faces.  Ghost cells:

* ``"neumann"``: ``u[-1] = u[0]`` (zero flux, SciPy ``mode="reflect"``), eigenbasis DCT-II;
* ``"dirichlet"``: ``u[-1] = -u[0]`` (zero on the face), eigenbasis DST-II;
* ``"periodic"``: wrap-around, eigenbasis FFT.

Every solver in pdediff discretises the same problem on this grid, so explicit,
implicit and spectral results converge to the same solution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._validation import BOUNDARIES, check_option, positive_per_axis
from .errors import ParameterError

Boundary = Literal["neumann", "dirichlet", "periodic"]

#: Cell widths pdediff accepts (any physical unit): squares and inverse squares stay within float64.
SPACING_RANGE = (1e-100, 1e100)
#: Largest ratio of cell widths across axes: solvers rescale lengths by a power of two near the finest
#: width, and the coarsest width's square must stay within float64 then (spacing (1e-100, 1e100) made
#: AOS Perona-Malik fail with a bare OverflowError).
SPACING_RATIO_MAX = 1e100

#: Integer codes of the boundaries, as the Numba kernels receive them.
BC_CODE = {"neumann": 0, "dirichlet": 1, "periodic": 2}

__all__ = ["Grid", "Boundary", "axis_symbol"]


@dataclass(frozen=True)
class Grid:
    """A 1–3 dimensional cell-centred grid with one boundary condition.

    Parameters
    ----------
    shape : tuple of int
        Number of cells per axis (1 to 3 axes).
    spacing : float or tuple of float
        Cell width per axis in physical units (e.g. mm); a scalar applies to all axes.  Each between
        1e-100 and 1e100 (:data:`SPACING_RANGE`), the largest at most 1e100 times the smallest
        (:data:`SPACING_RATIO_MAX`); otherwise :class:`~pdediff.ParameterError` naming ``spacing``.
    boundary : {"neumann", "dirichlet", "periodic"}
        Boundary condition on every outer face.
    """

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    boundary: str = "neumann"

    def __init__(self, shape, spacing=1.0, boundary: Boundary = "neumann") -> None:
        shape = tuple(int(s) for s in np.atleast_1d(shape))
        if not 1 <= len(shape) <= 3 or any(s < 1 for s in shape):
            raise ValueError(f"shape must have 1 to 3 positive entries; got {shape}")
        object.__setattr__(self, "shape", shape)
        spacing = positive_per_axis(spacing, "spacing", len(shape))
        if not all(SPACING_RANGE[0] <= h <= SPACING_RANGE[1] for h in spacing):
            # beyond this, 1/h^2 or h^2 leave float64's range and no time step can be represented
            raise ParameterError(f"{{spacing}} must lie between {SPACING_RANGE[0]:g} and {SPACING_RANGE[1]:g} "
                                 f"(physical units per cell; rescale the units); got {spacing}", param="spacing")
        if max(spacing) / min(spacing) > SPACING_RATIO_MAX:
            raise ParameterError(f"{{spacing}}: the ratio of the largest to the smallest cell width must be at "
                                 f"most {SPACING_RATIO_MAX:g} (their squares, in units of the finest, must stay "
                                 f"within float64); got {spacing}", param="spacing")
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "boundary", check_option("boundary", boundary, BOUNDARIES))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def bc_code(self) -> int:
        return BC_CODE[self.boundary]

    @property
    def lengths(self) -> tuple[float, ...]:
        """Domain length ``n h`` per axis."""
        return tuple(n * h for n, h in zip(self.shape, self.spacing))

    def centres(self, axis: int) -> np.ndarray:
        """Cell centres ``(i + 1/2) h`` along ``axis`` (float64)."""
        return (np.arange(self.shape[axis]) + 0.5) * self.spacing[axis]

    def mesh(self) -> tuple[np.ndarray, ...]:
        """Broadcastable cell-centre coordinates, one array per axis."""
        return tuple(np.meshgrid(*(self.centres(a) for a in range(self.ndim)), indexing="ij", sparse=True))

    def explicit_dt_limit(self, diffusivity_max: float = 1.0) -> float:
        """Forward-Euler stability limit ``1 / (2 D_max sum_a 1/h_a^2)``."""
        return 1.0 / (2.0 * diffusivity_max * sum(1.0 / h**2 for h in self.spacing))

    def symbol(self, spectrum: str = "continuous") -> tuple[np.ndarray, ...]:
        """Per-axis eigenvalues ``lambda_a(k)`` of ``-d^2/dx_a^2`` in the boundary's eigenbasis.

        The eigenvalue of the full Laplacian is ``sum_a lambda_a(k_a)``.  Arrays are
        ordered as the transform returns coefficients (DCT-II: ``k = 0..n-1``;
        DST-II: ``k = 1..n``; real FFT along the last axis, full FFT on others).
        """
        spectrum = check_option("spectrum", spectrum, ("continuous", "discrete"))
        return tuple(
            axis_symbol(n, h, self.boundary, spectrum, half=(a == self.ndim - 1))
            for a, (n, h) in enumerate(zip(self.shape, self.spacing))
        )


def axis_symbol(n: int, h: float, boundary: str, spectrum: str, *, half: bool = False) -> np.ndarray:
    """Eigenvalues of ``-d^2/dx^2`` along one axis (see :meth:`Grid.symbol`).

    ``half=True`` with ``"periodic"`` returns the ``n // 2 + 1`` frequencies of a real FFT.
    """
    L = n * h
    if boundary == "periodic":
        k = np.fft.rfftfreq(n) * n if half else np.fft.fftfreq(n) * n
        if spectrum == "continuous":
            return (2.0 * np.pi * k / L) ** 2
        return (4.0 / h**2) * np.sin(np.pi * k / n) ** 2
    k = np.arange(n) if boundary == "neumann" else np.arange(1, n + 1)
    if spectrum == "continuous":
        return (np.pi * k / L) ** 2
    return (4.0 / h**2) * np.sin(np.pi * k / (2 * n)) ** 2
