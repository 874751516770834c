"""Launch configurations of the GPU kernels: one function, checked against CUDA's per-dimension limits.

Every cell- or line-parallel kernel in :mod:`pdediff.kernels.gpu.kernels`
walks a C-ordered index space ``(N0, N1, N2)`` (the last axis contiguous in
memory) with grid-stride loops, ``threadIdx.x``/``blockIdx.x`` on the last
axis, ``y`` on the middle one and ``z`` on the first.  So a warp (32
consecutive ``threadIdx.x``) reads 32 consecutive cells, and a grid clipped to
the hardware limits still covers every cell.  Plain Python: importing it needs
neither numba.cuda nor a GPU.
"""

from __future__ import annotations

import math

__all__ = ["MAX_GRID", "MAX_BLOCK", "MAX_THREADS", "BLOCK_THREADS", "TILE", "launch_config", "tile_config"]

#: ``gridDim`` limits ``(x, y, z)`` of every CUDA device of compute capability >= 3.0.
MAX_GRID = (2**31 - 1, 65535, 65535)
#: ``blockDim`` limits ``(x, y, z)`` and the threads of one block.
MAX_BLOCK = (1024, 1024, 64)
MAX_THREADS = 1024
#: Threads per block of every pdediff kernel (the kernels' launch bound): 65536 registers / 256 threads
#: leaves each thread up to 255 registers, so no compiler or debug build can run out of them at launch.
BLOCK_THREADS = 256
#: Lines (and columns) of the shared-memory tiles of the row-wise tridiagonal kernels; one warp per tile.
TILE = 32


def _blocks(n, b, limit):
    return max(1, min(math.ceil(n / b), limit))


def launch_config(shape: tuple[int, ...]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """``(grid, block)``, each ``(x, y, z)``, for a kernel over the C-ordered index space ``shape``.

    Parameters
    ----------
    shape : tuple of int
        1 to 3 non-negative extents, last one contiguous in memory.  Leading
        extents of one (a 1-D or 2-D problem padded to 3-D) do not count.

    Returns
    -------
    grid, block : tuple of 3 int
        ``x`` maps to the last axis, ``y`` to the one before, ``z`` to the
        first.  Blocks have :data:`BLOCK_THREADS` threads: ``(256, 1, 1)``
        for one effective axis, ``(32, 8, 1)`` for two, ``(32, 4, 2)`` for
        three.  Grids are clipped to :data:`MAX_GRID`; the kernels' grid-stride
        loops cover the rest.

    Raises
    ------
    ValueError
        If ``shape`` has no or more than 3 axes, or a negative extent.
    """
    shape = tuple(int(s) for s in shape)
    if not 1 <= len(shape) <= 3 or any(s < 0 for s in shape):
        raise ValueError(f"shape must have 1 to 3 non-negative extents, got {shape}")
    n0, n1, n2 = (1,) * (3 - len(shape)) + shape
    if n0 > 1:
        block = (32, 4, 2)
    elif n1 > 1:
        block = (32, 8, 1)
    else:
        block = (BLOCK_THREADS, 1, 1)
    grid = tuple(_blocks(n, b, lim) for n, b, lim in zip((n2, n1, n0), block, MAX_GRID))
    return grid, block


def tile_config(lines: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """``(grid, block)`` of the tiled row kernels: one warp per :data:`TILE` lines, grid-stride over the rest."""
    return (_blocks(int(lines), TILE, MAX_GRID[0]), 1, 1), (TILE, 1, 1)
