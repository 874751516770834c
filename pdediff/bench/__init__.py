"""``pdediff bench``: every solver against the copy roofline and the tools users would otherwise run.

:func:`run_bench` measures the machine's copy bandwidth (the roofline of
memory-bound kernels), then times every method × size × dtype × backend (the
CPU at each Numba thread count, the GPU when CuPy and a device are present)
next to the peers that are installed, and reports time (median and IQR),
throughput, the ratio to the roofline and to each peer, the scaling exponent
over sizes and the performance targets of issue 12.  It writes ``bench.json``
(:data:`BENCH_SCHEMA`), ``bench.md`` and two figures.  The cases are those of
the pytest-benchmark suite (``make bench``), defined once in
:mod:`pdediff.bench._cases`.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from . import _cases
from ._report import BENCH_SCHEMA, OUTPUT_FILES, SCHEMA_ID, validate_bench

__all__ = ["run_bench", "BENCH_SCHEMA", "validate_bench", "OUTPUT_FILES"]

DEVICES = ("cpu", "gpu", "all")
DTYPES = ("float32", "float64")
#: Axis length limits of ``sizes`` (the stencils need a few cells; beyond 65536 per axis is not a benchmark).
MIN_AXIS, MAX_AXIS = 8, 65536
#: Working memory per cell assumed when checking ``sizes`` (bytes): about 16 float64 arrays of the shape are
#: alive at once in the heaviest cases (NumPy's padded step, the py-pde and sparse references).
_BYTES_PER_CELL = 128


# ---------------------------------------------------------------- argument checks (shared with the CLI)
def _split(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, Sequence):
        items = [str(v).strip() for v in value]
    else:
        raise TypeError(f"{name} must be a comma-separated string or a sequence of strings; got {value!r}")
    if not items or any(not v for v in items):
        raise ValueError(f"{name} must list at least one value, separated by commas; got {value!r}")
    return items


def parse_only(value: Any, name: str = "only") -> tuple[str, ...]:
    """Group names selected by suite (``heat``, ``pm``, ``torch``) or group name."""
    if value is None:
        return _cases.GROUP_NAMES
    allowed = tuple(dict.fromkeys(_cases.SUITES + _cases.GROUP_NAMES))  # "pm" and "torch" are both
    out: list[str] = []
    for v in _split(value, name):
        v = v.lower()
        if v not in allowed:
            raise ValueError(f"{name} must be a comma-separated list of {', '.join(allowed)}; got {v!r}")
        out += [g.name for g in _cases.GROUPS if v in (g.suite, g.name) and g.name not in out]
    return tuple(g for g in _cases.GROUP_NAMES if g in out)


def parse_dtypes(value: Any, name: str = "dtypes") -> tuple[str, ...]:
    if value is None:
        return DTYPES
    out = []
    for v in _split(value, name):
        try:
            d = np.dtype(v).name if not isinstance(v, str) or v.lower() in ("float32", "float64") else v.lower()
        except TypeError:
            d = str(v)
        if d not in DTYPES:
            raise ValueError(f"{name} must be a comma-separated list of float32, float64; got {v!r}")
        if d not in out:
            out.append(d)
    return tuple(out)


def parse_device(value: Any, name: str = "device") -> str:
    if not isinstance(value, str) or value.lower() not in DEVICES:
        raise ValueError(f"{name} must be one of {', '.join(DEVICES)}; got {value!r}")
    return value.lower()


def _max_threads() -> int:
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


def parse_threads(value: Any, name: str = "threads") -> tuple[int, ...]:
    """Numba thread counts, each in ``1 .. NUMBA_NUM_THREADS`` (the pool size fixed when Numba starts)."""
    top = _max_threads()
    if value is None:
        return tuple(sorted({1, top}))
    out = []
    for v in (_split(value, name) if isinstance(value, str) else [str(x) for x in _as_list(value, name)]):
        try:
            n = int(v)
        except ValueError:
            raise ValueError(f"{name} must be positive integers separated by commas; got {v!r}") from None
        if n < 1 or n > top or str(n) != v.strip().lstrip("+"):
            raise ValueError(f"{name} must be integers from 1 to {top} (NUMBA_NUM_THREADS, fixed when Numba "
                             f"starts); got {v!r}")
        if n not in out:
            out.append(n)
    return tuple(sorted(out))


def _as_list(value: Any, name: str) -> list:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0:
        return list(value)
    raise ValueError(f"{name} must be a positive integer or a non-empty list of them; got {value!r}")


_SIZE = re.compile(r"^(?:([23])d-(\d+)|(\d+(?:x\d+){1,2}))$")


def parse_sizes(value: Any, name: str = "sizes") -> tuple[tuple[int, ...], ...] | None:
    """Grid shapes: ``"512x512"``, ``"64x64x64"``, ``"2d-1024"`` (a square/cube) or tuples; 2-D or 3-D."""
    if value is None:
        return None
    if isinstance(value, str):
        tokens: list[Any] = _split(value, name)
    elif isinstance(value, Sequence) and value and all(isinstance(v, (tuple, list)) for v in value):
        tokens = [tuple(v) for v in value]
    else:
        tokens = _split(value, name)
    shapes = []
    for tok in tokens:
        if isinstance(tok, tuple):
            if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in tok):
                raise ValueError(f"{name}: a shape must be 2 or 3 integers; got {tok!r}")
            shape = tuple(int(n) for n in tok)
        else:
            m = _SIZE.match(tok.lower().replace(" ", ""))
            if m is None:
                raise ValueError(f"{name} must be shapes like 512x512, 64x64x64 or 2d-1024, 3d-128, separated by "
                                 f"commas; got {tok!r}")
            shape = (int(m[2]),) * int(m[1]) if m[1] else tuple(int(n) for n in m[3].split("x"))
        if len(shape) not in (2, 3):
            raise ValueError(f"{name}: shapes must be 2-D or 3-D; got {shape}")
        if any(n < MIN_AXIS or n > MAX_AXIS for n in shape):
            raise ValueError(f"{name}: every axis must have {MIN_AXIS} to {MAX_AXIS} cells; got {shape}")
        need = math.prod(shape) * _BYTES_PER_CELL
        avail = _physical_memory()
        if avail is not None and need > avail // 2:
            raise ValueError(f"{name}: {shape} needs about {need / 2**30:.1f} GiB of working memory, more than half "
                             f"of this machine's {avail / 2**30:.1f} GiB; choose smaller sizes")
        if shape not in shapes:
            shapes.append(shape)
    return tuple(shapes)


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def check_out(out: Any, force: bool, name: str = "out") -> Path:
    """The output folder: new, empty, or an earlier bench folder; any other folder only with ``force``."""
    if not isinstance(out, (str, os.PathLike)) or not str(os.fspath(out)).strip():
        raise ValueError(f"{name} must name a folder; got {out!r}")
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{name} {p} exists and is not a folder; choose a folder")
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise ValueError(f"{name} {p}: folder is not writable")
        entries = [e for e in os.listdir(p) if not e.startswith(".")]
        if entries and not force and not _is_bench_folder(p):
            raise ValueError(f"{name} {p} is a folder that holds other files and no bench.json; pass force=True "
                             f"(--force) to write {', '.join(OUTPUT_FILES)} there anyway")
        return p
    parent = p.parent
    while not parent.exists():  # created with its missing parents: the nearest existing one must be writable
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {p}: folder {parent} is not writable")
    return p


def _is_bench_folder(p: Path) -> bool:
    import json

    try:
        with open(p / "bench.json") as f:
            return str(json.load(f).get("schema", "")).startswith("pdediff-bench/")
    except (OSError, ValueError, AttributeError):
        return False


# ---------------------------------------------------------------- the run
def run_bench(
    *,
    out: str | os.PathLike | None = None,
    quick: bool = False,
    only: str | Sequence[str] | None = None,
    sizes: str | Sequence[Any] | None = None,
    dtypes: str | Sequence[str] | None = None,
    device: str = "cpu",
    threads: str | int | Sequence[int] | None = None,
    peers: bool = False,
    load: bool = False,
    force: bool = False,
    figures: bool = True,
    progress: bool = True,
) -> dict:
    """Time pdediff's solvers against the copy roofline and the installed peers; write the report.

    Parameters
    ----------
    out : path, optional
        Folder for ``bench.json``, ``bench.md``, ``bench-throughput.png`` and
        ``bench-peers.png`` (written all or none).  Created if missing; a
        folder that holds other files and no ``bench.json`` is refused unless
        ``force``.  ``None``: nothing is written.
    quick : bool
        Small sizes (128², 256², 24³, 40³; a 32 × 1 × 32 × 32 torch batch)
        and few repeats: under a minute on two cores.  Its numbers are a
        smoke test, not results.
    only : str or sequence of str, optional
        Suites (``"heat"``, ``"pm"``, ``"torch"``) or groups
        (``"heat-explicit"``, ``"heat-adi"``, ``"heat-spectral"``, ``"pm"``,
        ``"pm-kappa"``), comma-separated or as a list.  Default: all.
    sizes : str or sequence, optional
        Grid shapes replacing the defaults of the heat and Perona–Malik
        groups: ``"1024x1024,128x128x128"``, ``"2d-1024,3d-128"`` or tuples;
        2-D or 3-D, 8 to 65536 cells per axis, and refused when one case
        would need more than half the physical memory (about 128 bytes per
        cell).  Run time grows with the sizes (linearly for stencils) and is
        not otherwise bounded.  The torch batch keeps its shape.
    dtypes : str or sequence of str, optional
        ``"float32"``, ``"float64"`` or both (default).
    device : {"cpu", "gpu", "all"}
        ``"gpu"`` needs CuPy and a CUDA device (else ``ValueError``);
        ``"all"`` adds the GPU when present and notes its absence otherwise.
    threads : str, int or sequence of int, optional
        Numba thread counts the CPU kernels are timed at
        (:func:`numba.set_num_threads`, restored afterwards), each from 1 to
        ``NUMBA_NUM_THREADS``.  Default: 1 and ``NUMBA_NUM_THREADS``.  Peers
        run once, with their own threading.
    peers : bool
        Also time the peer libraries that are installed (py-pde, SciPy sparse,
        banded, scipy.ndimage, MedPy, SimpleITK, OpenCV, scikit-image;
        ``cupyx`` on the GPU); missing ones are listed as skipped.  The copy
        roofline and the references (NumPy's step and kappa formula, the
        bare FFT pairs) always run.
    load : bool
        Time pdediff's CPU kernels and NumPy's reference step a second time
        while a competing process keeps one core busy, and report each
        kernel's slowdown next to NumPy's.
    force : bool
        Write into a folder that is not a bench folder (only the four output
        names are written; other files are never touched).
    figures : bool
        Write the two figures.
    progress : bool
        A tqdm progress bar.

    Returns
    -------
    dict
        What ``bench.json`` holds (valid against :data:`BENCH_SCHEMA`):
        ``hardware``, ``roofline``, ``results`` (one entry per case: median
        and IQR seconds per call, cells·steps/s, GB/s by the byte model,
        ratio to the roofline), ``ratios``, ``scaling``, ``targets``,
        ``load`` and ``skipped``.

    Raises
    ------
    ValueError
        An unknown ``only``/``dtypes``/``device`` value, a bad size or thread
        count, ``device="gpu"`` without CuPy and a device, or an unusable
        ``out`` (a file, not writable, a foreign folder without ``force``).
    TypeError
        Options of the wrong type.

    Notes
    -----
    Times are medians over repeated samples, each sample enough back-to-back
    calls to last about 5 ms (1 ms with ``quick``); the first call
    (compilation, caches) is not timed.  GPU cases are timed by CUDA events.
    The byte model counts the compulsory traffic of an ideal kernel: a *pass*
    reads and writes the field once (``2 * itemsize`` bytes per cell); the
    copy and a stencil step are one pass, the spectral solve two, an ADI
    step three.  Ratios to peers divide time per step, pdediff at the largest
    thread count.  On a shared machine single runs are noisy; compare ratios
    within one run.

    Examples
    --------
    >>> from pdediff.bench import run_bench
    >>> res = run_bench(quick=True, only="heat", dtypes="float32", progress=False)  # doctest: +SKIP
    >>> sorted({r["impl"] for r in res["results"]})[:2]  # doctest: +SKIP
    ['numpy_step', 'pdediff_adi']
    """
    groups = parse_only(only)
    shapes = parse_sizes(sizes)
    dts = parse_dtypes(dtypes)
    dev = parse_device(device)
    thr = parse_threads(threads)
    for flag, val in (("quick", quick), ("peers", peers), ("load", load), ("force", force), ("figures", figures),
                      ("progress", progress)):
        if not isinstance(val, (bool, np.bool_)):
            raise TypeError(f"{flag} must be True or False; got {val!r}")
    out_path = None if out is None else check_out(out, force)

    from ._hardware import cpu_info, gpu_available, gpu_info, versions
    from ._timing import FULL, QUICK

    notes: list[str] = []
    devices = ["cpu"] if dev in ("cpu", "all") else []
    if dev in ("gpu", "all"):
        ok, why = gpu_available()
        if ok:
            devices.append("gpu")
        elif dev == "gpu":
            raise ValueError(f"device 'gpu' is not available here: {why}")
        else:
            notes.append(f"GPU skipped: {why}")
    budget = QUICK if quick else FULL
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t_start = time.perf_counter()

    plan, skipped = _plan(groups, shapes, dts, devices, thr, quick, peers, load)
    state = _Runner(budget, progress, len(plan) + len(_roofline_keys(plan)) + sum(c.extra.get("load", 0)
                                                                               for c in plan))
    try:
        roofline = state.roofline(plan)
        results = state.measure(plan, skipped)
        if load:
            results += state.measure_loaded(plan, skipped)
    finally:
        state.close()

    from . import _report

    bench = {
        "schema": SCHEMA_ID,
        "created": started,
        "quick": bool(quick),
        "settings": {"groups": list(groups), "sizes": None if shapes is None else [list(s) for s in shapes],
                     "dtypes": list(dts), "device": dev, "devices": devices, "threads": list(thr),
                     "peers": bool(peers), "load": bool(load),
                     "budget": {"repeats": budget.repeats, "min_sample_s": budget.min_sample,
                                "max_number": budget.max_number, "max_case_s": budget.max_case}},
        "versions": versions(),
        "hardware": {"cpu": cpu_info(), "gpu": gpu_info() if "gpu" in devices else None},
        "byte_model": _report.BYTE_MODEL,
        "roofline": roofline,
        "results": results,
        "skipped": skipped,
        "notes": notes,
    }
    _report.derive(bench)
    bench["wall_seconds"] = time.perf_counter() - t_start
    bench = _report.clean(bench)
    validate_bench(bench)
    if out_path is not None:
        _report.write_outputs(bench, out_path, figures=figures)
    return bench


def _shapes_for(g: _cases.Group, shapes, quick: bool) -> tuple[tuple[int, ...], ...]:
    if shapes is not None and g.takes_sizes:
        return shapes
    return g.quick_shapes if quick else g.shapes


def _plan(groups, shapes, dtypes, devices, threads, quick, peers, load):
    """The cases to time, in order, and the ones skipped up front (peers not asked for, dtypes)."""
    plan: list[_cases.Case] = []
    skipped: list[dict] = []
    seen: set = set()
    top = max(threads)
    for device in devices:
        for gname in groups:
            g = _cases.group(gname)
            dts = [d for d in dtypes if d in g.dtypes]
            if not dts:
                skipped.append({"group": g.name, "impl": "*", "device": device, "shape": None, "dtype": None,
                                "reason": f"{g.name} runs in {', '.join(g.dtypes)} only"})
                continue
            for shape in _shapes_for(g, shapes, quick):
                for dt in dts:
                    for im in g.impls:
                        if im.kind == "roofline":
                            continue  # measured once per shape and dtype before everything else
                        if device == "gpu" and not im.gpu:
                            continue
                        if im.kind == "peer" and not peers:
                            continue
                        counts = threads if (im.kind == "pdediff" and device == "cpu") else (None,)
                        for n in counts:
                            key = (im.name, shape, dt, device, n)
                            if key in seen:
                                continue
                            seen.add(key)
                            # under --load: pdediff's CPU kernels, and NumPy's reference (below)
                            again = int(load and device == "cpu" and im.kind == "pdediff")
                            plan.append(_cases.Case(g, im, shape, dt, device, n, {"load": again, "top": top}))
                    if load and device == "cpu" and g.takes_sizes:
                        ref = _cases.impl("heat-explicit", "numpy_step")
                        key = (ref.name, shape, dt, device, None)
                        if key not in seen:
                            seen.add(key)
                            plan.append(_cases.Case(_cases.group("heat-explicit"), ref, shape, dt, device, None,
                                                    {"load": 1, "top": top, "data": g.data}))
                        else:
                            for c in plan:
                                if (c.impl.name, c.shape, c.dtype, c.device, c.threads) == key:
                                    c.extra["load"] = 1
    if not peers:
        skipped.append({"group": "*", "impl": "peers", "device": "*", "shape": None, "dtype": None,
                        "reason": "peer libraries not timed (pass peers=True / --peers)"})
    return plan, skipped


def _roofline_keys(plan) -> list[tuple]:
    keys = []
    for c in plan:
        shape = c.shape + ((c.impl.channels,) if c.impl.channels > 1 else ())
        k = (shape, c.dtype, c.device)
        if k not in keys:
            keys.append(k)
    return keys


class _Runner:
    """Measures cases with one progress bar; keeps the input arrays of the current group/shape/dtype."""

    def __init__(self, budget, progress: bool, total: int) -> None:
        from tqdm.auto import tqdm

        self.budget = budget
        self.bar = tqdm(total=total, desc="pdediff bench", unit="case", disable=not progress or None,
                        leave=False)
        self._data_key = None
        self._data = None

    def close(self) -> None:
        self.bar.close()

    def _xp(self, device):
        if device == "gpu":
            import cupy

            return cupy
        return np

    def _timer(self, device):
        from ._timing import time_cuda, time_host

        return time_cuda if device == "gpu" else time_host

    def _input(self, c: _cases.Case):
        data = c.extra.get("data", c.group.data)
        key = (data, c.shape, c.dtype, c.device)
        if key != self._data_key:
            self._data = None  # free the previous inputs first (large cases)
            self._data = data(c.shape, np.dtype(c.dtype), self._xp(c.device))
            self._data_key = key
        return self._data

    def roofline(self, plan) -> list[dict]:
        from dataclasses import replace

        rows = []
        for shape, dt, device in _roofline_keys(plan):
            self.bar.set_postfix_str(f"copy {_cases.shape_name(shape)} {dt} {device}", refresh=False)
            xp = self._xp(device)
            u = xp.asarray(np.random.default_rng(0).random(shape).astype(dt))
            # the roofline is cheap and everything is judged against it: twice the repeats
            t = self._timer(device)(_cases.copy(u), replace(self.budget, repeats=2 * self.budget.repeats))
            nbytes = 2 * u.nbytes
            rows.append({"device": device, "shape": list(shape), "dtype": dt, "median_s": t.median, "iqr_s": t.iqr,
                         "repeats": t.repeats, "number": t.number, "gbps": nbytes / t.median / 1e9})
            del u
            self.bar.update()
        return rows

    def _one(self, c: _cases.Case, skipped: list[dict], loaded: bool) -> dict | None:
        from ._timing import numba_threads

        self.bar.set_postfix_str(f"{c.impl.name} {_cases.shape_name(c.shape)} {c.dtype} {c.device}"
                                 f"{'' if c.threads is None else f' t={c.threads}'}{' load' if loaded else ''}",
                                 refresh=False)
        where = {"group": c.group.name, "impl": c.impl.name, "device": c.device, "shape": list(c.shape),
                 "dtype": c.dtype}
        try:
            # peers and references run with the largest thread count (py-pde's kernels are Numba's too)
            with numba_threads(c.threads if c.threads is not None else (c.extra["top"] if c.device == "cpu"
                                                                        else None)):
                fn = c.impl.make(self._input(c))
                t = self._timer(c.device)(fn, self.budget)
                del fn
        except _cases.Unavailable as exc:
            if not loaded:
                skipped.append({**where, "reason": str(exc)})
            return None
        except (ImportError, MemoryError, RuntimeError, ValueError, TypeError, OSError) as exc:
            # a peer failing (or a case too large here) must not lose the rest of the run: reported
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            skipped.append({**where, "reason": f"failed: {type(exc).__name__}: {msg}"})
            return None
        finally:
            self.bar.update()
        cells = math.prod(c.shape) * c.impl.channels
        itemsize = np.dtype(c.dtype).itemsize
        return {"group": c.group.name, "impl": c.impl.name, "label": c.impl.label, "kind": c.impl.kind,
                "library": (c.impl.gpu_library or c.impl.library) if c.device == "gpu" else c.impl.library,
                "device": c.device, "threads": c.threads, "loaded": loaded, "shape": list(c.shape),
                "dtype": c.dtype, "cells": cells, "steps": c.impl.steps, "passes": c.impl.passes,
                "bytes": c.impl.passes * 2 * itemsize * cells * c.impl.steps,
                "median_s": t.median, "iqr_s": t.iqr, "repeats": t.repeats, "number": t.number}

    def measure(self, plan, skipped) -> list[dict]:
        rows = []
        for c in plan:
            r = self._one(c, skipped, loaded=False)
            if r is not None:
                rows.append(r)
        return rows

    def measure_loaded(self, plan, skipped) -> list[dict]:
        from ._timing import busy_process

        rows = []
        with busy_process():
            for c in plan:
                if c.extra.get("load"):
                    r = self._one(c, skipped, loaded=True)
                    if r is not None:
                        rows.append(r)
        return rows
