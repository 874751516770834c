"""Exceptions raised by pdediff."""

from __future__ import annotations

__all__ = ["StabilityError", "StepLimitError"]


class StabilityError(ValueError):
    """A time step exceeds the stability limit of an explicit scheme.

    Subclass of :class:`ValueError`, so ``except ValueError`` catches it too.
    The message states the limit for the grid and coefficients at hand.
    """


class StepLimitError(ValueError):
    """A computation would take more time steps than ``max_steps`` allows.

    Raised before any work is done, with the estimated number of steps and the
    cheaper alternative (the spectral or implicit heat solver, a larger time
    step, the AOS scheme).  Pass ``max_steps=None`` to run anyway.  Subclass of
    :class:`ValueError`.
    """
