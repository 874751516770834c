"""Exceptions raised by pdediff."""

from __future__ import annotations

__all__ = ["StabilityError"]


class StabilityError(ValueError):
    """A time step exceeds the stability limit of an explicit scheme.

    Subclass of :class:`ValueError`, so ``except ValueError`` catches it too.
    The message states the limit for the grid and coefficients at hand.
    """
