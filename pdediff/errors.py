"""Exceptions raised by pdediff."""

from __future__ import annotations

__all__ = ["StabilityError", "StepLimitError", "CheckpointError", "DatasetError", "RunError"]


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


class CheckpointError(ValueError):
    """A training checkpoint cannot be used: corrupt, not a checkpoint, or unsafe to load.

    pdediff loads checkpoints with ``torch.load(..., weights_only=True)``, which
    never runs code stored in the file; a file that needs more than tensors and
    plain containers (a pickled object, i.e. code) is refused with this error,
    without loading it.  Subclass of :class:`ValueError`.
    """


class DatasetError(ValueError):
    """Training images cannot be loaded: unknown name, missing path, empty folder, mixed shapes, bad array.

    The message names the parameter at fault (usually ``spec``) and the
    allowed values.  Subclass of :class:`ValueError`.
    """


class RunError(ValueError):
    """A training run folder cannot be used: missing, incomplete, or its settings differ from the ones asked.

    Subclass of :class:`ValueError`.
    """
