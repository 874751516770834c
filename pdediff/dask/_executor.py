"""The Dask executor: plans carried out chunk by chunk, lazily (registered for ``dask.array.Array``).

:data:`pdediff._dispatch.EXECUTORS` imports this module by name the first
time a Dask array reaches a front door, and :func:`register` adds
:data:`DASK` for Dask's array type.  Importing it does not import Dask.
"""

from __future__ import annotations

from typing import Any

from .._plan import HeatPlan, PeronaMalikPlan

__all__ = ["DaskExecutor", "DASK", "register"]


class DaskExecutor:
    """Runs plans on Dask arrays: each chunk on the in-memory kernels of its own backend."""

    name = "dask"

    def prepare(self, x: Any, name: str, *, ndim: tuple[int, ...], check_finite: bool) -> Any:
        """Dtype and shape checked now, finiteness per chunk when computed (:func:`~pdediff.dask._core.float_input`)."""
        from ._core import prepare_input

        return prepare_input(x, name, ndim=ndim, check_finite=check_finite)

    def solve_heat(self, u: Any, plan: HeatPlan) -> Any:
        """A lazy Dask array with ``u``'s chunks (:func:`pdediff.dask._heat.run_heat`)."""
        from ._heat import run_heat

        return run_heat(u, plan)

    def perona_malik(self, u: Any, plan: PeronaMalikPlan) -> tuple[Any, float]:
        """A lazy Dask array with ``u``'s chunks and the kappa used (estimated now if asked)."""
        from ._pm import run_perona_malik

        return run_perona_malik(u, plan)

    def estimate_kappa(self, v: Any, spacing: tuple[float, ...], conductance: str) -> float:
        """The exact global median/MAD rule over all chunks, in streaming passes (computed now)."""
        from ._pm import estimate_kappa_dask

        return estimate_kappa_dask(v, tuple(spacing), conductance)

    def order_statistics(self, jobs: Any) -> list[list[float]]:
        """Exact order statistics of Dask arrays (radix select in four streaming passes; computed now)."""
        from ._select import order_statistics

        return order_statistics(jobs)

    # -- tensor diffusion (pdediff.tensor_diffusion calls these for Dask arrays) --------------------

    def compute_range(self, u: Any) -> tuple[float, float]:
        """``(nanmin, nanmax)`` of ``u``, computed now (the grey-value scale of the structure tensor)."""
        from ._tensor import value_range

        return value_range(u)

    def tensor_smoothed(self, u: Any, sigma: float, spacing: tuple[float, ...], boundary: str) -> Any:
        """The ``(C, *spatial)`` array smoothed as the tensor's input (lazy; for ``kappa="auto"``)."""
        from ._tensor import smoothed

        return smoothed(u, sigma, spacing, boundary)

    def tensor_diffusion(self, u: Any, setup: Any, num_iter: int) -> Any:
        """``num_iter`` steps of tensor diffusion, lazy (:mod:`pdediff.dask._tensor`)."""
        from ._tensor import run_tensor_diffusion

        return run_tensor_diffusion(u, setup, num_iter)


#: The one Dask executor.
DASK = DaskExecutor()


def register(dispatcher) -> None:
    """Route ``dask.array.Array`` to :data:`DASK` (run by the registry when a Dask array first shows up)."""
    from ._core import require_dask

    dispatcher.register(require_dask().Array, DASK)  # an ImportError naming the extra if Dask is blocked
