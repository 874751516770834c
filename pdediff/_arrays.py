"""Recognising array types without importing their libraries (the lowest layer).

Every test of "which kind of array is this" in pdediff is one of these
functions.  Each looks at the top-level module of the value's type instead of
importing the library, so it costs nothing when the library is absent and
``import pdediff`` never imports Dask or CuPy.  The front doors do not call
them to choose a code path: they ask the executor registry
(:mod:`pdediff._dispatch`), which is keyed on the array type.
"""

from __future__ import annotations

import numbers
import sys
from typing import Any

__all__ = ["array_library", "is_array_like", "is_cupy_array", "is_dask_array"]


def array_library(x: Any) -> str:
    """The top-level module of ``x``'s type (``"numpy"``, ``"cupy"``, ``"dask"``, ``"builtins"``...)."""
    return type(x).__module__.split(".")[0]


def is_dask_array(x: Any) -> bool:
    """Whether ``x`` is a ``dask.array.Array`` (looked up by type module: free when Dask is absent)."""
    return array_library(x) == "dask" and "dask" in sys.modules and hasattr(x, "chunks")


def is_cupy_array(x: Any) -> bool:
    """Whether ``x`` is a CuPy array (looked up by type module: free when CuPy is absent)."""
    return array_library(x) == "cupy" and "cupy" in sys.modules


def is_array_like(x: Any) -> bool:
    """Whether NumPy converts ``x`` as the in-memory path always has: nested sequences, scalars, ``None``
    (refused later with a message naming the parameter) and objects exposing the array protocols."""
    return (x is None or isinstance(x, (list, tuple, numbers.Number))
            or any(hasattr(x, a) for a in ("__array__", "__array_interface__", "__array_struct__")))
