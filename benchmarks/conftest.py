"""Benchmark harness: every case records its median; the session ends with a ratio table.

Ratios are taken within one run (this machine is shared and noisy): each
pdediff kernel against the copy-bandwidth roofline (``np.copyto`` of the same
array) and against the tools a user would otherwise run.  The table is printed
and written to ``.benchmarks/ratios.json``.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

import pytest

RESULTS: dict[str, dict[str, float]] = defaultdict(dict)
RATIOS: list = []



@pytest.fixture
def record(benchmark):
    """``record(group, name, fn, rounds=...)``: benchmark ``fn`` and remember its median (seconds)."""

    def run(group, name, fn, rounds=5, warmup=1):
        benchmark.group = group
        benchmark.name = name
        benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=warmup)
        RESULTS[group][name] = benchmark.stats.stats.median

    return run


def ratio(label, group, num, den, *, target=None, higher_is_better=True):
    """Declare a ratio ``num / den`` (of medians in ``group``) for the summary table."""
    RATIOS.append((label, group, num, den, target, higher_is_better))


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
        tr.write_line(f"{row['group']:<28} {row['ratio']:<48} {row['value']:8.2f}  {tgt:<12} {row['status']}")
    os.makedirs(".benchmarks", exist_ok=True)
    with open(".benchmarks/ratios.json", "w") as f:
        json.dump({"medians_s": RESULTS, "ratios": rows}, f, indent=1)
