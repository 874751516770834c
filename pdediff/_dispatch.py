"""The executor registry: which code runs a planned computation, chosen by the array's type.

The front doors (:func:`pdediff.solve_heat`, :func:`pdediff.perona_malik`,
:func:`pdediff.estimate_kappa`) validate their arguments once, build a frozen
plan (:mod:`pdediff._plan`) and hand array and plan to the *executor* that
:data:`EXECUTORS` returns for the array's type.  They never test array types
themselves and never import an executor: the registry is keyed on the type
(looked up along its method resolution order) and registers the executors of
optional libraries *lazily*, by the top-level module of the array's type, the
first time such an array shows up (after dask-image's ``dispatch``).  So
``import pdediff`` imports neither Dask nor CuPy, and the solvers do not
import :mod:`pdediff.dask`.

Executors
---------
An executor is an object with the methods of :class:`Executor`:

* in memory, NumPy and CuPy arrays through the backend contract
  (:mod:`pdediff._memory`, registered for ``numpy`` and ``cupy``);
* chunk by chunk, lazy, Dask arrays (:mod:`pdediff.dask`, registered for
  ``dask``).

Adding one (e.g. for another array library ``foo``): write a module with an
object implementing :class:`Executor` and a function ``register(dispatcher)``
that calls ``dispatcher.register(foo.Array, executor)``; add one line here,
``EXECUTORS.register_lazy("foo", "pdediff.foo_executor:register")``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

from ._arrays import is_array_like

__all__ = ["Dispatcher", "EXECUTORS", "Executor", "executor_for"]


class Executor(Protocol):
    """What an executor does with a validated array and a plan; it re-checks nothing."""

    #: Short name, for messages and reports.
    name: str

    def prepare(self, x: Any, name: str, *, ndim: tuple[int, ...], check_finite: bool) -> Any:
        """``x`` checked (dtype, dimensions, emptiness, finiteness) and as float32/float64, ``x``'s kind of array.

        Where the array is lazy, checks that need its values run when it is computed.
        """

    def solve_heat(self, u: Any, plan: Any) -> Any:
        """:func:`pdediff.solve_heat` of a prepared ``u`` by a :class:`pdediff._plan.HeatPlan`."""

    def perona_malik(self, u: Any, plan: Any) -> tuple[Any, float]:
        """:func:`pdediff.perona_malik` of a prepared ``u`` by a :class:`pdediff._plan.PeronaMalikPlan`;
        returns the result and the ``kappa`` used (caller's units)."""

    def estimate_kappa(self, v: Any, spacing: tuple[float, ...], conductance: str) -> float:
        """:func:`pdediff.estimate_kappa` of a ``(C, *spatial)`` ``v`` (computed now)."""


class Dispatcher:
    """A registry of implementations keyed on a value's type.

    ``dispatch(cls)`` walks ``cls.__mro__`` for a registered type; a type not
    found whose top-level module has a lazy registration runs that
    registration once (importing the module that registers the type) and
    looks again.

    Parameters
    ----------
    name : str
        What is dispatched, for messages.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lookup: dict[type, Any] = {}
        self._lazy: dict[str, str | Callable[[Dispatcher], None]] = {}

    def register(self, cls: type, impl: Any) -> Any:
        """Dispatch ``cls`` (and its subclasses) to ``impl``; returns ``impl``."""
        self._lookup[cls] = impl
        return impl

    def unregister(self, cls: type) -> None:
        """Forget ``cls`` (its lazy registration, if any, is not run again)."""
        self._lookup.pop(cls, None)

    def register_lazy(self, toplevel: str, loader: str | Callable[[Dispatcher], None]) -> None:
        """Register the types of library ``toplevel`` on first use.

        ``loader``: ``"module:function"``, imported and called with this
        dispatcher, or a callable taking it.  It runs the first time a value
        of a type from ``toplevel`` is dispatched and no registered type matches.
        """
        self._lazy[toplevel] = loader

    def _load(self, toplevel: str) -> bool:
        loader = self._lazy.get(toplevel)
        if loader is None:
            return False
        if isinstance(loader, str):
            module, _, func = loader.partition(":")
            loader = getattr(importlib.import_module(module), func)
        loader(self)  # may raise (an optional library blocked): then it is tried again next time
        self._lazy.pop(toplevel, None)
        return True

    def dispatch(self, cls: type) -> Any:
        """The implementation for ``cls``; :class:`LookupError` when none is registered."""
        for _ in range(2):
            for base in cls.__mro__:
                if base in self._lookup:
                    return self._lookup[base]
            if not self._load(cls.__module__.split(".")[0]):
                break
        raise LookupError(f"no {self.name} registered for {cls.__module__}.{cls.__qualname__}")


#: The executors, by array type.  NumPy and CuPy arrays run in memory, Dask arrays chunk by chunk.
EXECUTORS = Dispatcher("executor")
EXECUTORS.register_lazy("numpy", "pdediff._memory:register_numpy")
EXECUTORS.register_lazy("cupy", "pdediff._memory:register_cupy")
EXECUTORS.register_lazy("dask", "pdediff.dask._executor:register")


def executor_for(x: Any, name: str) -> Executor:
    """The executor of the array argument ``x`` (parameter ``name``).

    A type with no executor runs in memory when NumPy converts it (lists,
    scalars, objects with ``__array__``: the in-memory ``prepare`` then
    accepts or refuses it, naming ``name``); any other type is a
    :class:`TypeError` listing the supported kinds of arrays.
    """
    from ._validation import refuse_foreign_array

    refuse_foreign_array(x, name)  # a torch tensor or a masked array: converting would drop something
    try:
        return EXECUTORS.dispatch(type(x))
    except LookupError:
        if is_array_like(x):
            import numpy as np

            return EXECUTORS.dispatch(np.ndarray)
    supported = ", ".join(["numpy.ndarray", "cupy.ndarray", "dask.array.Array"]
                          + [f"{c.__module__}.{c.__qualname__}" for c in EXECUTORS._lookup
                             if c.__module__.split(".")[0] not in ("numpy", "cupy", "dask")])
    raise TypeError(f"{name} must be an array ({supported}, or array-like); got {type(x).__module__}."
                    f"{type(x).__qualname__}")
