"""What a benchmark case is: an implementation (:class:`Impl`) in a group (:class:`Group`), planned as a
:class:`Case` at one shape, dtype, device and thread count.

An implementation is a factory ``make(u) -> fn``: it does the setup (solver
construction, factorisation, peer objects) outside the timing and returns the
zero-argument callable that is timed.  A factory raises :class:`Unavailable`
(with the reason) when its library is missing or the case does not apply
(e.g. OpenCV on a volume); ``pdediff bench`` reports those as skipped, the
pytest files turn them into ``pytest.skip``.

Factories marked for the GPU are written against the array's own module
(NumPy or CuPy, :func:`array_module`): pdediff's public API dispatches on the
array type.

This module is the bottom of :mod:`pdediff.bench`: it imports nothing of pdediff.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class Unavailable(Exception):
    """A case cannot run here: a peer library is missing, or the case does not apply to this shape."""


def is_gpu_array(u: Any) -> bool:
    """Whether ``u`` is a CuPy array (by its type's module; CuPy is not imported)."""
    return type(u).__module__.split(".")[0] == "cupy"


def array_module(u: Any):
    """``cupy`` for a CuPy array, else ``numpy``."""
    if is_gpu_array(u):
        import cupy

        return cupy
    return np


def need(module: str, what: str | None = None):
    """Import ``module``, or raise :class:`Unavailable` saying that ``what`` (default: the module) is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise Unavailable(f"{what or module} is not installed") from None


@dataclass(frozen=True)
class Impl:
    """One implementation.

    ``kind``: ``"pdediff"`` (ours; timed at every thread count), ``"roofline"``
    (the copy), ``"reference"`` (always timed: NumPy's step and kappa formula,
    the bare FFT pairs) or ``"peer"`` (another library, with ``--peers``).
    Byte model: one call moves ``passes * 2 * itemsize * cells * steps`` bytes
    (a *pass* reads and writes the field once; the compulsory traffic of an
    ideal kernel, not what a cache simulator would count).  The case's name
    (:attr:`name`, the id in ``bench.json`` and the pytest ids) is the
    factory's ``__name__``.
    """

    make: Callable[[Any], Callable[[], Any]]
    label: str
    kind: str = "pdediff"
    library: str = "pdediff"
    passes: float = 1.0
    steps: int = 1
    rounds: int = 5
    channels: int = 1
    gpu: bool = False
    gpu_library: str | None = None

    @property
    def name(self) -> str:
        return self.make.__name__


@dataclass(frozen=True)
class Group:
    """Implementations timed on the same data; ratios are taken within a group."""

    name: str
    suite: str  # what ``--only`` selects: heat, pm or torch
    shapes: tuple[tuple[int, ...], ...]
    quick_shapes: tuple[tuple[int, ...], ...]
    impls: tuple[Impl, ...]
    data: Callable[..., Any]
    dtypes: tuple[str, ...] = ("float32", "float64")
    takes_sizes: bool = True  # --sizes replaces ``shapes`` (the torch batch keeps its own)


@dataclass
class Case:
    """One planned measurement (made by :func:`pdediff.bench._run.plan_cases`)."""

    group: Group
    impl: Impl
    shape: tuple[int, ...]
    dtype: str
    device: str
    threads: int | None
    extra: dict = field(default_factory=dict)


def shape_name(shape: tuple[int, ...]) -> str:
    """``(1024, 1024) -> "2d-1024"`` for cubes, ``"2d-512x1024"`` otherwise (the pytest ids)."""
    dims = len(shape)
    if dims == 4:  # the torch batch
        return "x".join(map(str, shape))
    body = str(shape[0]) if len(set(shape)) == 1 else "x".join(map(str, shape))
    return f"{dims}d-{body}"
