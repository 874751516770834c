"""Helpers shared by the CPU kernels: ghost-cell indexing and the parallel threshold."""

from __future__ import annotations

import numba
from numba import njit

#: Arrays with fewer cells than this run on one thread.  Measured on a 2-core
#: machine (benchmarks/bench_parallel.py): below ~2**18 cells the launch cost of a
#: parallel region outweighs the gain of a second core for memory-bound stencils.
PARALLEL_MIN_CELLS = 1 << 18


def use_parallel(size: int) -> bool:
    return size >= PARALLEL_MIN_CELLS and numba.config.NUMBA_NUM_THREADS > 1


@njit(cache=True)
def lo(i, n, bc):
    """Index and sign of the lower neighbour of cell ``i`` (ghost cells at the boundary).

    ``bc``: 0 Neumann (ghost = cell), 1 Dirichlet (ghost = -cell), 2 periodic.
    """
    if i > 0:
        return i - 1, 1.0
    if bc == 2:
        return n - 1, 1.0
    if bc == 1:
        return 0, -1.0
    return 0, 1.0


@njit(cache=True)
def hi(i, n, bc):
    """Index and sign of the upper neighbour of cell ``i``."""
    if i < n - 1:
        return i + 1, 1.0
    if bc == 2:
        return 0, 1.0
    if bc == 1:
        return n - 1, -1.0
    return n - 1, 1.0
