"""The run: plan the cases, measure the roofline and every case, derive the numbers, write the report."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ..errors import ParameterError
from ._baselines import copy
from ._derive import derive
from ._hardware import cpu_info, gpu_available, gpu_info, versions
from ._options import check_out, parse_device, parse_dtypes, parse_only, parse_sizes, parse_threads
from ._registry import BYTE_MODEL, group, impl
from ._report import write_outputs
from ._schema import SCHEMA_ID, clean, validate_bench
from ._spec import Case, Group, Unavailable, shape_name
from ._timing import FULL, QUICK, busy_process, numba_threads, time_cuda, time_host


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
    out : os.PathLike, optional
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
        ``"pm-kappa"``, ``"torch"``, ``"torch-train"``), comma-separated or
        as a list.  Default: all.
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
        ``"gpu"`` needs CuPy and a CUDA device (else ``ParameterError``);
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
        ratio to the roofline), ``ratios``, ``scaling``, ``targets`` (the
        performance targets, each with what it is measured against),
        ``load`` and ``skipped``.

    Raises
    ------
    pdediff.errors.ParameterError
        (a ``ValueError`` naming the option) An unknown ``only``/``dtypes``/``device`` value, a bad size or thread
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

    notes: list[str] = []
    devices = ["cpu"] if dev in ("cpu", "all") else []
    if dev in ("gpu", "all"):
        ok, why = gpu_available()
        if ok:
            devices.append("gpu")
        elif dev == "gpu":
            raise ParameterError(f"{{device=gpu}} is not available here: {why}", param="device")
        else:
            notes.append(f"GPU skipped: {why}")
    budget = QUICK if quick else FULL
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t_start = time.perf_counter()

    plan, skipped = plan_cases(groups, shapes, dts, devices, thr, quick, peers, load)
    state = _Runner(budget, progress, len(plan) + len(_roofline_keys(plan)) + sum(c.extra.get("load", 0)
                                                                               for c in plan))
    try:
        roofline = state.roofline(plan)
        results = state.measure(plan, skipped)
        if load:
            results += state.measure_loaded(plan, skipped)
    finally:
        state.close()

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
        "byte_model": BYTE_MODEL,
        "roofline": roofline,
        "results": results,
        "skipped": skipped,
        "notes": notes,
    }
    derive(bench)
    bench["wall_seconds"] = time.perf_counter() - t_start
    bench = clean(bench)
    validate_bench(bench)
    if out_path is not None:
        write_outputs(bench, out_path, figures=figures)
    return bench


def _shapes_for(g: Group, shapes, quick: bool) -> tuple[tuple[int, ...], ...]:
    if shapes is not None and g.takes_sizes:
        return shapes
    return g.quick_shapes if quick else g.shapes


def plan_cases(groups, shapes, dtypes, devices, threads, quick, peers, load) -> tuple[list[Case], list[dict]]:
    """The cases to time, in order, and the ones skipped up front (peers not asked for, dtypes)."""
    plan: list[Case] = []
    skipped: list[dict] = []
    seen: set = set()
    top = max(threads)
    for device in devices:
        for gname in groups:
            g = group(gname)
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
                            plan.append(Case(g, im, shape, dt, device, n, {"load": again, "top": top}))
                    if load and device == "cpu" and g.takes_sizes:
                        ref = impl("heat-explicit", "numpy_step")
                        key = (ref.name, shape, dt, device, None)
                        if key not in seen:
                            seen.add(key)
                            plan.append(Case(group("heat-explicit"), ref, shape, dt, device, None,
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
        return time_cuda if device == "gpu" else time_host

    def _input(self, c: Case):
        data = c.extra.get("data", c.group.data)
        key = (data, c.shape, c.dtype, c.device)
        if key != self._data_key:
            self._data = None  # free the previous inputs first (large cases)
            self._data = data(c.shape, np.dtype(c.dtype), self._xp(c.device))
            self._data_key = key
        return self._data

    def roofline(self, plan) -> list[dict]:
        rows = []
        for shape, dt, device in _roofline_keys(plan):
            self.bar.set_postfix_str(f"copy {shape_name(shape)} {dt} {device}", refresh=False)
            xp = self._xp(device)
            u = xp.asarray(np.random.default_rng(0).random(shape).astype(dt))
            # the roofline is cheap and everything is judged against it: twice the repeats
            t = self._timer(device)(copy(u), replace(self.budget, repeats=2 * self.budget.repeats))
            nbytes = 2 * u.nbytes
            rows.append({"device": device, "shape": list(shape), "dtype": dt, "median_s": t.median, "iqr_s": t.iqr,
                         "repeats": t.repeats, "number": t.number, "gbps": nbytes / t.median / 1e9})
            del u
            self.bar.update()
        return rows

    def _one(self, c: Case, skipped: list[dict], loaded: bool) -> dict | None:
        self.bar.set_postfix_str(f"{c.impl.name} {shape_name(c.shape)} {c.dtype} {c.device}"
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
        except Unavailable as exc:
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
        rows = []
        with busy_process():
            for c in plan:
                if c.extra.get("load"):
                    r = self._one(c, skipped, loaded=True)
                    if r is not None:
                        rows.append(r)
        return rows
