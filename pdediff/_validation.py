"""Input checks shared by every public function (docs/conventions.rst §1).

Each check raises a specific exception whose message names the parameter and
what is allowed, so a user can fix the call without reading the source.  A
value that is not allowed raises :class:`~pdediff.errors.ParameterError` (a
``ValueError``) carrying the parameter's name (``err.param``) and a message
template that writes every parameter as ``{name}``, so the command line can
print its flags instead (``err.render``); a value of the wrong *type* raises
:class:`TypeError`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from .catalogue import BOUNDARIES
from .errors import ParameterError, StepLimitError

__all__ = [
    "BOUNDARIES", "DEFAULT_MAX_STEPS", "check_option", "float_dtype_of", "as_float_array", "positive_per_axis",
    "nonnegative_scalar", "positive_scalar", "times_array", "positive_step", "max_steps_value",
    "check_step_count", "nonnegative_int", "positive_int", "positive_or_auto", "channel_axis_value",
    "refuse_foreign_array",
]

#: Default cap on the number of time steps one call may take (``max_steps``).  At the
#: explicit stability limit 10**5 steps already diffuse any grid of up to ~300 cells per
#: axis to its mean; beyond it a user almost always wants the spectral or implicit solver.
DEFAULT_MAX_STEPS = 100_000


def check_option(name: str, value: Any, allowed: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``allowed`` (case-insensitive), else raise."""
    if not isinstance(value, str) or value.lower() not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ParameterError(f"{{{name}}} must be one of {choices}; got {value!r}", param=name)
    return value.lower()


def float_dtype_of(dtype: np.dtype, name: str) -> np.dtype:
    """The native-byte-order floating dtype an array of ``dtype`` is computed in.

    float32/float64 are kept (in either byte order); float16 is promoted to
    float32 and integers to float64 (exact for every integer up to 2**53, no
    rescaling); bool, complex, object, strings and datetimes raise :class:`TypeError`.
    """
    dtype = np.dtype(dtype)
    if dtype == np.bool_ or dtype.kind in "cOUSVMm":
        raise TypeError(
            f"{name} must be a real floating-point or integer array; got dtype {dtype} "
            "(allowed: float16/32/64, int8-64, uint8-64, in any byte order)"
        )
    if dtype.kind in "iu":
        return np.dtype(np.float64)
    if dtype.kind == "f" and dtype.itemsize in (2, 4, 8):
        return np.dtype(np.float32) if dtype.itemsize <= 4 else np.dtype(np.float64)
    raise TypeError(f"{name} must be float16, float32 or float64 (or an integer image); got dtype {dtype}")


def refuse_foreign_array(x: Any, name: str) -> None:
    """Refuse, naming ``name``, arrays that NumPy would convert by dropping something the caller meant.

    A torch tensor (its gradient, device and dtype would be lost, bfloat16 cannot convert at all, and an
    ndarray would come back): the torch operators of :mod:`pdediff.torch` take it.  A NumPy masked array
    (its mask would be ignored): fill it, or give the mask to :func:`pdediff.inpaint`.
    """
    lib = type(x).__module__.split(".")[0]
    if lib == "torch":
        raise TypeError(f"{name} is a torch.Tensor: use pdediff.torch's operators (heat_blur, perona_malik, "
                        "tensor_diffusion: differentiable, on the tensor's device and dtype), or pass "
                        f"{name}.detach().cpu().numpy() for a NumPy result")
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(f"{name} is a masked array, whose mask pdediff would ignore: pass {name}.filled(value) "
                        "(or .data), or fill the masked pixels with pdediff.inpaint(image, mask)")


def as_float_array(
    x: Any,
    name: str,
    *,
    ndim: tuple[int, ...] = (1, 2, 3),
    check_finite: bool = True,
    xp: Any = np,
) -> Any:
    """Validate an array argument and return it as float32/float64.

    The input is never modified; a copy is made only when the dtype or the
    byte order changes (big-endian data are converted to native order).
    """
    if xp is np:
        if isinstance(x, (bool, numbers.Number)) or x is None:
            raise TypeError(f"{name} must be an array with {_ndims(ndim)} dimensions; got {type(x).__name__}")
        refuse_foreign_array(x, name)
        x = np.asarray(x)
    if x.dtype == object:
        raise TypeError(f"{name} must be a real float32/float64 (or integer) array; got dtype object")
    dtype = float_dtype_of(x.dtype, name)
    if x.ndim not in ndim:
        raise ParameterError(f"{{{name}}} must have {_ndims(ndim)} dimensions; got shape {tuple(x.shape)}",
                             param=name)
    if any(s == 0 for s in x.shape):
        raise ParameterError(f"{{{name}}} must not be empty; got shape {tuple(x.shape)}", param=name)
    x = x.astype(dtype, copy=False)
    if check_finite and not bool(xp.isfinite(x).all()):
        raise not_finite(name)
    return x


def not_finite(name: str) -> ParameterError:
    """The error for NaN/inf in array argument ``name`` (raised by the eager and the lazy checks alike)."""
    return ParameterError(f"{{{name}}} contains NaN or infinity; pass {{check_finite=False}} to skip this check",
                          param=name)


def _ndims(ndim: tuple[int, ...]) -> str:
    return " or ".join(str(n) for n in ndim)


def positive_per_axis(value: Any, name: str, ndim: int) -> tuple[float, ...]:
    """A positive finite scalar or one value per axis, returned as a tuple."""
    arr = np.atleast_1d(np.asarray(value, dtype=object))
    if arr.ndim != 1 or arr.size not in (1, ndim):
        per_axis = "" if ndim == 1 else f" or {ndim} positive numbers (one per axis)"
        raise ParameterError(f"{{{name}}} must be a positive number{per_axis}; got {value!r}", param=name)
    out = []
    for v in arr:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.floating, np.integer)):
            raise TypeError(f"{name} must be a positive number or one per axis; got {value!r}")
        v = float(v)
        if not (math.isfinite(v) and v > 0):
            raise ParameterError(f"{{{name}}} must be positive and finite; got {value!r}", param=name)
        out.append(v)
    return tuple(out) * ndim if len(out) == 1 else tuple(out)


def nonnegative_scalar(value: Any, name: str) -> float:
    """A non-negative finite number (bool rejected), as float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a non-negative number; got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ParameterError(f"{{{name}}} must be non-negative and finite; got {value!r}", param=name)
    return v


def positive_scalar(value: Any, name: str) -> float:
    """A positive finite number (bool rejected), as float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a positive number; got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ParameterError(f"{{{name}}} must be positive and finite; got {value!r}", param=name)
    return v


def times_array(t: Any) -> tuple[np.ndarray, bool]:
    """Normalise ``t`` to a 1-D float64 array; return ``(times, is_sequence)``."""
    if isinstance(t, (bool, np.bool_)):
        raise TypeError(f"t must be a non-negative number or an increasing 1-D sequence; got {t!r}")
    if np.ndim(t) == 0:
        return np.array([nonnegative_scalar(t, "t")]), False
    try:
        arr = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"t must be a non-negative number or an increasing 1-D sequence; got {t!r}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ParameterError(f"{{t}} must be a number or a non-empty 1-D sequence of times; got shape {arr.shape}",
                             param="t")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ParameterError("{t} must contain only non-negative finite times", param="t")
    if np.any(np.diff(arr) < 0):
        raise ParameterError("{t} must be non-decreasing when given as a sequence", param="t")
    return arr, True


def positive_step(dt: Any) -> float:
    """A time step: a positive finite number (bool rejected)."""
    if isinstance(dt, (bool, np.bool_)) or not np.isscalar(dt):
        raise TypeError(f"dt must be a positive number; got {dt!r}")
    try:
        v = float(dt)
    except (TypeError, ValueError):
        raise TypeError(f"dt must be a positive number; got {dt!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ParameterError(f"{{dt}} must be positive and finite; got {dt!r}", param="dt")
    return v


def max_steps_value(max_steps: Any) -> float:
    """``max_steps`` as a number: a positive integer, or ``None`` for no limit (returned as inf)."""
    if max_steps is None:
        return math.inf
    if isinstance(max_steps, (bool, np.bool_)) or not isinstance(max_steps, numbers.Integral):
        raise TypeError(f"max_steps must be a positive integer or None (no limit); got {max_steps!r}")
    if max_steps < 1:  # an integer of the wrong value (0 is the command line's "no limit", not the API's)
        raise ParameterError(f"{{max_steps}} must be a positive integer, or {{max_steps=None}} for no limit; "
                             f"got {max_steps!r}", param="max_steps")
    return float(max_steps)


def check_step_count(n: float, max_steps: Any, what: str, advice: str) -> None:
    """Raise :class:`~pdediff.errors.StepLimitError` when ``n`` steps exceed ``max_steps``.

    ``what`` describes the request (e.g. ``"t=1e12 with dt=0.25"``), ``advice`` the cheaper alternative.
    """
    limit = max_steps_value(max_steps)
    if n > limit:
        raise StepLimitError(
            f"{what} needs {n:.3g} time steps, more than {{max_steps={int(limit)}}}; {advice}, "
            "or pass {max_steps=None} to run them anyway",
            param="max_steps",
        )


def step_phrase(dt: Any, dt_: float, default: str) -> str:
    """How a step-limit message names the time step: ``{dt=...}`` when the caller passed ``dt``, else the
    default's value and rule (``default``, e.g. ``"0.8 x the stability limit"``), with no ``{dt}`` (a
    message naming ``--dt`` for a step the user did not give misleads)."""
    if dt is not None:
        return f"{{dt={dt_:.6g}}}"
    return f"the default time step {dt_:.6g} ({default})"


def nonnegative_int(value: Any, name: str) -> int:
    """A non-negative integer (bool and floats rejected)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative integer; got {value!r}")
    if value < 0:
        raise ParameterError(f"{{{name}}} must be a non-negative integer; got {value}", param=name)
    return int(value)


def positive_int(value: Any, name: str) -> int:
    """A positive integer (bool and floats rejected)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer; got {value!r}")
    n = nonnegative_int(value, name)
    if n == 0:
        raise ParameterError(f"{{{name}}} must be a positive integer; got 0", param=name)
    return n


def positive_or_auto(value: Any, name: str) -> float | None:
    """A positive finite number, or ``"auto"`` returned as ``None``.

    Used for ``kappa``: an infinite edge threshold would silently be linear diffusion, so it is refused
    (pointing to :func:`pdediff.solve_heat`), as ``sigma``/``dt``/``spacing`` = inf are."""
    if isinstance(value, str):
        if value.lower() != "auto":
            raise ParameterError(f"{{{name}}} must be a positive number or 'auto'; got {value!r}", param=name)
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number or 'auto'; got {value!r}")
    v = float(value)
    if not v > 0:  # also rejects NaN
        raise ParameterError(f"{{{name}}} must be positive; got {value!r}", param=name)
    if math.isinf(v):
        hint = " (an infinite kappa is linear diffusion: use pdediff.solve_heat)" if name == "kappa" else ""
        raise ParameterError(f"{{{name}}} must be a positive finite number or 'auto'{hint}; got {value!r}",
                             param=name)
    return v


def channel_axis_value(channel_axis: Any, ndim: int) -> int | None:
    """``None``, or ``channel_axis`` as a non-negative axis of an array with ``ndim`` dimensions."""
    if channel_axis is None:
        return None
    if isinstance(channel_axis, (bool, np.bool_)) or not isinstance(channel_axis, numbers.Integral):
        raise TypeError(f"channel_axis must be an integer axis or None; got {channel_axis!r}")
    if not -ndim <= channel_axis < ndim:
        raise ParameterError(f"{{channel_axis={channel_axis}}} is out of range for an array with {ndim} dimensions",
                             param="channel_axis")
    return int(channel_axis) % ndim
