"""The one place where pdediff decides which backend runs a computation (docs/conventions.rst §1).

NumPy arrays (and anything array-like) run on the CPU backend; CuPy arrays on
the GPU backend, which is imported only when a CuPy array shows up, so
``import pdediff`` never touches CUDA.
"""

from __future__ import annotations

import sys
from typing import Any

from .kernels.cpu.backend import CPU


def is_cupy_array(x: Any) -> bool:
    # Look at the type's module instead of importing cupy: free when cupy is absent.
    return type(x).__module__.split(".")[0] == "cupy" and "cupy" in sys.modules


def backend_for(x: Any):
    """Return the backend object that computes on ``x``'s device."""
    if is_cupy_array(x):
        from .kernels.gpu.backend import get_gpu_backend

        return get_gpu_backend()
    return CPU
