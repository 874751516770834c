"""The checks of :func:`pdediff.bench.run_bench`'s options, shared with ``pdediff bench``.

Each check raises :class:`~pdediff.errors.ParameterError` naming the option as
``{name}`` in its message template, so the API prints ``only must ...`` and the
command line, rendering the same template, ``--only must ...``.  Options of the
wrong type raise ``TypeError``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParameterError
from ._registry import GROUP_NAMES, GROUPS, SUITES
from ._schema import OUTPUT_FILES

DEVICES = ("cpu", "gpu", "all")
DTYPES = ("float32", "float64")
#: Axis length limits of ``sizes`` (the stencils need a few cells; beyond 65536 per axis is not a benchmark).
MIN_AXIS, MAX_AXIS = 8, 65536
#: Working memory per cell assumed when checking ``sizes`` (bytes): about 16 float64 arrays of the shape are
#: alive at once in the heaviest cases (NumPy's padded step, the py-pde and sparse references).
_BYTES_PER_CELL = 128


def _split(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, Sequence):
        items = [str(v).strip() for v in value]
    else:
        raise TypeError(f"{name} must be a comma-separated string or a sequence of strings; got {value!r}")
    if not items or any(not v for v in items):
        raise ParameterError(f"{{{name}}} must list at least one value, separated by commas; got {value!r}",
                             param=name)
    return items


def parse_only(value: Any) -> tuple[str, ...]:
    """Group names selected by suite (``heat``, ``pm``, ``torch``) or group name; ``None``: every group."""
    if value is None:
        return GROUP_NAMES
    allowed = tuple(dict.fromkeys(SUITES + GROUP_NAMES))  # "pm" and "torch" are both
    out: list[str] = []
    for v in _split(value, "only"):
        v = v.lower()
        if v not in allowed:
            raise ParameterError(f"{{only}} must be a comma-separated list of {', '.join(allowed)}; got {v!r}",
                                 param="only")
        out += [g.name for g in GROUPS if v in (g.suite, g.name) and g.name not in out]
    return tuple(g for g in GROUP_NAMES if g in out)


def parse_dtypes(value: Any) -> tuple[str, ...]:
    """``"float32"``, ``"float64"`` or both, comma-separated or as a list; ``None``: both."""
    if value is None:
        return DTYPES
    out = []
    for v in _split(value, "dtypes"):
        d = v.lower()
        if d not in DTYPES:
            raise ParameterError(f"{{dtypes}} must be a comma-separated list of float32, float64; got {v!r}",
                                 param="dtypes")
        if d not in out:
            out.append(d)
    return tuple(out)


def parse_device(value: Any) -> str:
    """``"cpu"``, ``"gpu"`` or ``"all"`` (any case)."""
    if not isinstance(value, str) or value.lower() not in DEVICES:
        raise ParameterError(f"{{device}} must be one of {', '.join(DEVICES)}; got {value!r}", param="device")
    return value.lower()


def _max_threads() -> int:
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


def parse_threads(value: Any) -> tuple[int, ...]:
    """Numba thread counts, each in ``1 .. NUMBA_NUM_THREADS`` (the pool size fixed when Numba starts)."""
    top = _max_threads()
    if value is None:
        return tuple(sorted({1, top}))
    out = []
    for v in (_split(value, "threads") if isinstance(value, str) else [str(x) for x in _as_list(value)]):
        try:
            n = int(v)
        except ValueError:
            raise ParameterError(f"{{threads}} must be positive integers separated by commas; got {v!r}",
                                 param="threads") from None
        if n < 1 or n > top or str(n) != v.strip().lstrip("+"):
            raise ParameterError(f"{{threads}} must be integers from 1 to {top} (NUMBA_NUM_THREADS, fixed when "
                                 f"Numba starts); got {v!r}", param="threads")
        if n not in out:
            out.append(n)
    return tuple(sorted(out))


def _as_list(value: Any) -> list:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0:
        return list(value)
    raise ParameterError(f"{{threads}} must be a positive integer or a non-empty list of them; got {value!r}",
                         param="threads")


_SIZE = re.compile(r"^(?:([23])d-(\d+)|(\d+(?:x\d+){1,2}))$")


def parse_sizes(value: Any) -> tuple[tuple[int, ...], ...] | None:
    """Grid shapes: ``"512x512"``, ``"64x64x64"``, ``"2d-1024"`` (a square/cube) or tuples; 2-D or 3-D."""
    if value is None:
        return None
    if isinstance(value, str):
        tokens: list[Any] = _split(value, "sizes")
    elif isinstance(value, Sequence) and value and all(isinstance(v, (tuple, list)) for v in value):
        tokens = [tuple(v) for v in value]
    else:
        tokens = _split(value, "sizes")
    shapes = []
    for tok in tokens:
        if isinstance(tok, tuple):
            if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in tok):
                raise ParameterError(f"{{sizes}}: a shape must be 2 or 3 integers; got {tok!r}", param="sizes")
            shape = tuple(int(n) for n in tok)
        else:
            m = _SIZE.match(tok.lower().replace(" ", ""))
            if m is None:
                raise ParameterError(f"{{sizes}} must be shapes like 512x512, 64x64x64 or 2d-1024, 3d-128, "
                                     f"separated by commas; got {tok!r}", param="sizes")
            shape = (int(m[2]),) * int(m[1]) if m[1] else tuple(int(n) for n in m[3].split("x"))
        if len(shape) not in (2, 3):
            raise ParameterError(f"{{sizes}}: shapes must be 2-D or 3-D; got {shape}", param="sizes")
        if any(n < MIN_AXIS or n > MAX_AXIS for n in shape):
            raise ParameterError(f"{{sizes}}: every axis must have {MIN_AXIS} to {MAX_AXIS} cells; got {shape}",
                                 param="sizes")
        need = math.prod(shape) * _BYTES_PER_CELL
        avail = _physical_memory()
        if avail is not None and need > avail // 2:
            raise ParameterError(f"{{sizes}}: {shape} needs about {need / 2**30:.1f} GiB of working memory, more "
                                 f"than half of this machine's {avail / 2**30:.1f} GiB; choose smaller sizes",
                                 param="sizes")
        if shape not in shapes:
            shapes.append(shape)
    return tuple(shapes)


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def check_out(out: Any, force: bool) -> Path:
    """The output folder: new, empty, or an earlier bench folder; any other folder only with ``force``."""
    if not isinstance(out, (str, os.PathLike)) or not str(os.fspath(out)).strip():
        raise ParameterError(f"{{out}} must name a folder; got {out!r}", param="out")
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise ParameterError(f"{{out}} {p} exists and is not a folder; choose a folder", param="out")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise ParameterError(f"{{out}} {p}: folder is not writable", param="out")
        entries = [e for e in os.listdir(p) if not e.startswith(".")]
        if entries and not force and not _is_bench_folder(p):
            raise ParameterError(f"{{out}} {p} is a folder that holds other files and no bench.json; pass "
                                 f"{{force=True}} to write {', '.join(OUTPUT_FILES)} there anyway", param="out")
        return p
    parent = p.parent
    while not parent.exists():  # created with its missing parents: the nearest existing one must be writable
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ParameterError(f"{{out}} {p}: folder {parent} is not writable", param="out")
    return p


def _is_bench_folder(p: Path) -> bool:
    try:
        with open(p / "bench.json") as f:
            return str(json.load(f).get("schema", "")).startswith("pdediff-bench/")
    except (OSError, ValueError, AttributeError):
        return False
