"""The discrete diffusion operators, re-exported for the heat solvers next to this module.

They live in :mod:`pdediff._operators`, the shared layer below the solvers and
both executors (the Dask path and Perona–Malik use them too).
"""

from .._operators import TridiagonalSystem, as_lines, constant_faces, face_diffusivities

__all__ = ["TridiagonalSystem", "as_lines", "constant_faces", "face_diffusivities"]
