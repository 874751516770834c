"""Exceptions raised by pdediff."""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["ParameterError", "StabilityError", "StepLimitError", "LargeStepWarning", "CheckpointError", "DatasetError",
           "RunError"]

# ``{name}`` names a parameter, ``{name=value}`` a setting of it (e.g. ``{max_steps=None}``).
_REF = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)(?:=([^{}]*))?\}")


def _api_spelling(name: str, value: str | None) -> str:
    return name if value is None else f"{name}={value}"


class ParameterError(ValueError):
    """A parameter's value is not allowed.

    Carries the parameter's name (:attr:`param`) and the message as a
    *template* in which every parameter the message mentions is written as
    ``{name}`` (the parameter) or ``{name=value}`` (a setting of it, as in
    "pass ``{max_steps=None}`` to run anyway").  ``str(error)`` spells them as
    Python keywords (``max_steps=None``); a front end with other spellings --
    the command line's flags -- renders the same template with
    :meth:`render`, so no message is ever rewritten by substring.

    Subclass of :class:`ValueError`, so ``except ValueError`` catches it.

    Parameters
    ----------
    template : str
        The message, with ``{name}``/``{name=value}`` references.  Literal
        braces are not allowed in it (format values into it first).
    param : str
        The parameter at fault (a Python keyword name, e.g. ``"num_iter"``).

    Examples
    --------
    >>> err = ParameterError("{num_iter} must be a positive integer; got 0", param="num_iter")
    >>> str(err)
    'num_iter must be a positive integer; got 0'
    >>> err.render(lambda name, value: "--" + name.replace("_", "-") + ("" if value is None else " " + value))
    '--num-iter must be a positive integer; got 0'
    """

    def __init__(self, template: str, *, param: str):
        self.template = template
        self.param = param
        super().__init__(self.render())

    @property
    def mentioned(self) -> list[str]:
        """Every parameter name the message refers to, in order (the faulty one included if mentioned)."""
        return [m.group(1) for m in _REF.finditer(self.template)]

    def render(self, spell: Callable[[str, str | None], str] = _api_spelling) -> str:
        """The message with each ``{name}``/``{name=value}`` spelled by ``spell(name, value_or_None)``."""
        return _REF.sub(lambda m: spell(m.group(1), m.group(2)), self.template)

    def __reduce__(self):  # picklable across processes (Dask workers, torchrun)
        return (_rebuild, (type(self), self.template, self.param))


def _rebuild(cls, template, param):
    return cls(template, param=param)


class StabilityError(ParameterError):
    """A time step exceeds the stability limit of an explicit scheme.

    Subclass of :class:`ValueError`, so ``except ValueError`` catches it too.
    The message states the limit for the grid and coefficients at hand.
    Its :attr:`~ParameterError.param` is the time step (``"dt"``).
    """


class StepLimitError(ParameterError):
    """A computation would take more time steps than ``max_steps`` allows.

    Raised before any work is done, with the estimated number of steps and the
    cheaper alternative (the spectral or implicit heat solver, a larger time
    step, the AOS scheme).  Pass ``max_steps=None`` to run anyway.  Subclass of
    :class:`ValueError`.
    """


class LargeStepWarning(RuntimeWarning):
    """An implicit 2-D/3-D time step so large that the split (ADI) scheme is far from the heat flow.

    Issued by :func:`pdediff.solve_heat` with ``method="implicit"`` when even
    the slowest mode that varies along two or more axes keeps at least half its
    amplitude per step while the heat flow over that step would remove 99 % of
    it (docs/theory_heat.rst, "Very large steps").  The result is finite and
    stable, but not a shortcut to the steady state.  The message names ``dt``
    and the remedies: ``method="spectral"`` (exact in time) or smaller steps
    (``dt=None``).  Silence it with :func:`warnings.filterwarnings` where such
    steps are meant.  Subclass of :class:`RuntimeWarning`.
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
