"""The Dask path: :func:`pdediff.solve_heat` and :func:`pdediff.perona_malik` on ``dask.array`` arrays.

This package is the Dask *executor*: the front doors check their arguments and
build a plan (``pdediff._plan``), and the executor registry
(``pdediff._dispatch``) hands a Dask array and its plan to this package, which
it imports by name the first time a Dask array shows up (the solvers never
import it, and ``import pdediff`` does not import Dask).  The result is a lazy
Dask array with the input's chunks.  Each chunk runs the ordinary kernels of
its own backend (NumPy chunks on the Numba CPU kernels, CuPy chunks on the GPU
kernels), so the physical boundaries are the kernels' own (Neumann, Dirichlet,
periodic) and the results equal the in-memory ones:

* explicit heat and explicit Perona–Malik: one halo exchange
  (``dask.array.map_overlap``) every ``k`` steps, halo ``k * r`` cells
  (``r = 1`` for the heat stencil, ``1 + R`` for Perona–Malik with a Catté
  convolution radius ``R``);
* spectral heat, implicit (ADI) heat and AOS Perona–Malik: one axis at a
  time, that axis rechunked whole;
* ``kappa="auto"``: one global exact median/MAD (radix select over Dask
  reductions), computed when :func:`pdediff.perona_malik` is called;
* EED's default step count (:func:`pdediff.tensor_diffusion`): the noise
  estimate's median and percentiles as exact order statistics
  (:mod:`pdediff.dask._select`), so it equals the in-memory count.

Needs the ``dask`` extra: ``pip install "pdediff[dask]"``.  See docs/scaling.rst.
"""

from ._core import is_dask_array, require_dask

__all__ = ["is_dask_array", "require_dask"]
