"""Argument checks shared by :mod:`pdediff.torch`'s training, sampling and run functions.

Every check raises :class:`~pdediff.errors.ParameterError` (a ``ValueError``)
whose template names the parameter as ``{name}``, so that the command line can
print its flag instead; the parameter's name is the caller's (``"seed"``,
``"num_inference_steps"``, ``"model.base"``, ...).
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import torch

from ..errors import ParameterError

#: Stands for "not given" where ``None`` is a meaningful value (deprecated keyword aliases).
NOT_GIVEN: Any = type("NotGiven", (), {"__repr__": lambda self: "<not given>"})()


def is_integer(value: Any) -> bool:
    """True for Python and NumPy integers (not ``bool``, not integral floats)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def integer(value: Any, name: str, lo: int, hi: int | None = None, *, message: str | None = None) -> int:
    """``value`` as an ``int`` in ``[lo, hi]``, else :class:`ParameterError` naming ``{name}``.

    ``message`` (a template) replaces the default "must be an integer >= lo" text.
    """
    if not is_integer(value) or int(value) < lo or (hi is not None and int(value) > hi):
        if message is None:
            rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            message = f"{{{name}}} must be an integer {rng}; got {value!r}"
        raise ParameterError(message, param=name)
    return int(value)


def seed(value: Any, name: str = "seed") -> int:
    """A non-negative integer seed below 2**63 (torch's generators take a signed 64-bit seed; floats refused)."""
    return integer(value, name, 0, 2**63 - 1,
                   message=f"{{{name}}} must be an integer in [0, 2**63 - 1]; got {value!r}")


def real(value: Any, name: str, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
         hi_open: bool = False) -> float:
    """A finite real number in the interval given (bounds ``None``: unbounded), as ``float``."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        v = float(value)
        ok = (lo is None or (v > lo if lo_open else v >= lo)) and (hi is None or (v < hi if hi_open else v <= hi))
    if not ok:
        left = "(-inf" if lo is None else ("(" if lo_open else "[") + f"{lo:g}"
        right = "inf)" if hi is None else f"{hi:g}" + (")" if hi_open else "]")
        raise ParameterError(f"{{{name}}} must be a finite number in {left}, {right}; got {value!r}", param=name)
    return float(value)


def device(value: Any, name: str = "device") -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a :class:`torch.device` (``None``: CUDA when available)."""
    if value is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise ParameterError(f"{{{name}}} must be 'cpu', 'cuda' or 'cuda:N'; got {value!r}", param=name) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"{{{name}}} {str(dev)!r}: CUDA is not available to this torch ({torch.__version__}); "
                             f"use {{{name}}} 'cpu'", param=name)
    if dev.type not in ("cpu", "cuda"):
        raise ParameterError(f"{{{name}}} must be 'cpu', 'cuda' or 'cuda:N'; got {value!r}", param=name)
    return dev


def renamed(new_value: Any, old_value: Any, *, new: str, old: str, default: Any = None, stacklevel: int = 3) -> Any:
    """The value of a keyword renamed from ``old`` to ``new``: the new one, else the old one with a FutureWarning.

    ``old_value`` is :data:`NOT_GIVEN` when the old keyword was not used;
    ``new_value`` equals ``default`` when the new one was not.  Both given:
    ``TypeError``.
    """
    if old_value is NOT_GIVEN:
        return new_value
    if new_value is not default:
        raise TypeError(f"pass {new}= only ({old}= is its deprecated spelling); got both")
    warnings.warn(f"{old}= is deprecated and will be removed; use {new}= (the same meaning)", FutureWarning,
                  stacklevel=stacklevel)
    return old_value


def learning_rate(value: Any, name: str = "lr") -> float:
    """A positive finite learning rate."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ParameterError(f"{{{name}}} must be a positive number; got {value!r}", param=name)
    return float(value)


def ema_decay(value: Any, name: str = "ema_decay") -> float:
    """An EMA decay in ``[0, 1)``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ParameterError(f"{{{name}}} must be in [0, 1); got {value!r}", param=name)
    return float(value)
