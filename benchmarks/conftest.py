"""Benchmark harness: every case records its median; the session ends with a ratio table.

The cases (implementations, sizes, dtypes, ratios and their targets) are
defined once in :mod:`pdediff.bench._registry` (the groups) and
:mod:`pdediff.bench._targets` (the ratios) and shared with ``pdediff bench``;
this suite runs them under pytest-benchmark (``make bench``; ``make
bench-save`` and ``make bench-compare`` use its saved runs and comparisons),
``pdediff bench`` is the report, and ``pdediff bench --compare REV`` compares
with another revision.  Ratios are taken
within one run (this machine is shared and noisy), per step: each pdediff
kernel against the copy-bandwidth roofline (``np.copyto`` of the same array)
and against the tools a user would otherwise run.  The table is printed and
written to ``.benchmarks/ratios.json``.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

import numpy as np
import pytest

from pdediff.bench._registry import group as _group
from pdediff.bench._spec import Unavailable, shape_name
from pdediff.bench._targets import RATIOS as _RATIOS

RESULTS: dict[str, dict[str, float]] = defaultdict(dict)
RATIOS: list = []


@pytest.fixture
def record(benchmark):
    """``record(group, name, fn, rounds=..., steps=...)``: benchmark ``fn``, remember its median per step (s)."""

    def run(group, name, fn, rounds=5, warmup=1, steps=1):
        benchmark.group = group
        benchmark.name = name
        benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=warmup)
        RESULTS[group][name] = benchmark.stats.stats.median / steps

    return run


def ratio(label, group, num, den, *, target=None, higher_is_better=True):
    """Declare a ratio ``num / den`` (of medians per step in ``group``) for the summary table."""
    RATIOS.append((label, group, num, den, target, higher_is_better))


def _label(group: str, shape, dtype: str) -> str:
    return f"{group}-{shape_name(shape)}-{dtype}"


def declare(groups: list[str]) -> list:
    """pytest parameters for every case of ``groups`` (at their full sizes), and their ratios declared."""
    params = []
    for gname in groups:
        g = _group(gname)
        for shape in g.shapes:
            for dt in g.dtypes:
                label = _label(gname, shape, dt)
                for r in _RATIOS:
                    if r.group == gname:
                        ratio(r.label, label, r.num, r.den, target=r.target, higher_is_better=r.higher_is_better)
                params += [pytest.param(g, im, shape, dt, id=f"{label}-{im.name}") for im in g.impls]
    return params


def run_case(record, group, impl, shape, dtype) -> None:
    """Build the case's input and callable (a missing peer or an inapplicable case skips) and time it."""
    u = group.data(shape, np.dtype(dtype))
    try:
        fn = impl.make(u)
    except Unavailable as exc:
        pytest.skip(str(exc))
    record(_label(group.name, shape, dtype), impl.name, fn, rounds=impl.rounds, steps=impl.steps)


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    rows = []
    for label, group, num, den, target, hib in RATIOS:
        g = RESULTS.get(group, {})
        if num in g and den in g:
            r = g[num] / g[den]
            ok = "" if target is None else ("meets" if (r >= target if hib else r <= target) else "MISSES")
            rows.append({"ratio": label, "group": group, "value": r, "target": target, "status": ok})
    tr = terminalreporter
    tr.section("pdediff ratios (one run)")
    for row in rows:
        tgt = "" if row["target"] is None else f"target {row['target']:g}"
        tr.write_line(f"{row['group']:<30} {row['ratio']:<48} {row['value']:8.2f}  {tgt:<12} {row['status']}")
    os.makedirs(".benchmarks", exist_ok=True)
    with open(".benchmarks/ratios.json", "w") as f:
        json.dump({"medians_per_step_s": RESULTS, "ratios": rows}, f, indent=1)
