"""The numbers derived from the timings: throughput, ratios, scaling exponents, the load table, the targets.

:func:`derive` fills them into a ``bench`` dict whose ``roofline`` and
``results`` are measured; it is pure arithmetic on the dict (the tests feed it
chosen times).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from ._registry import kind_of
from ._targets import RATIOS, TARGETS


def _key(shape, dtype, device):
    return tuple(shape), dtype, device


def derive(bench: dict) -> None:
    """Add throughput and roofline ratio to each result, then ratios, scaling, targets and the load table."""
    roof = {_key(r["shape"], r["dtype"], r["device"]): r["gbps"] for r in bench["roofline"]}
    for r in bench["results"]:
        r["cells_steps_per_s"] = r["cells"] * r["steps"] / r["median_s"]
        r["gbps"] = r["bytes"] / r["median_s"] / 1e9
        shape = r["shape"] + ([3] if r["cells"] == 3 * math.prod(r["shape"]) else [])
        ref = roof.get(_key(shape, r["dtype"], r["device"]))
        r["roofline_ratio"] = None if ref is None else r["gbps"] / ref
    top = max(bench["settings"]["threads"])
    bench["ratios"] = _ratios(bench, top)
    bench["scaling"] = _scaling(bench["results"])
    bench["load"] = _load_table(bench, top) if bench["settings"]["load"] else None
    bench["targets"] = _targets(bench, top)


def _per_step(bench: dict, top: int) -> dict:
    """``(impl, shape, dtype, device) -> seconds per step`` on the quiet machine; pdediff at ``top`` threads,
    the copies (``copy``, ``copy_n``) from the roofline."""
    out = {}
    for r in bench["results"]:
        if r["loaded"] or (r["kind"] == "pdediff" and r["device"] == "cpu" and r["threads"] != top):
            continue
        out[(r["impl"],) + _key(r["shape"], r["dtype"], r["device"])] = r["median_s"] / r["steps"]
    for r in bench["roofline"]:
        if len(r["shape"]) <= 3:
            for name in ("copy", "copy_n"):
                out[(name,) + _key(r["shape"], r["dtype"], r["device"])] = r["median_s"]
    return out


def _cases_measured(bench: dict) -> list[tuple]:
    seen = []
    for r in bench["results"]:
        k = (r["group"],) + _key(r["shape"], r["dtype"], r["device"])
        if k not in seen:
            seen.append(k)
    return seen


def _summed(per: dict, name: str, shape, dt, dev) -> float | None:
    """Seconds per step of ``name``, or the sum over ``"a+b"`` (None when one is not measured)."""
    parts = [per.get((n, shape, dt, dev)) for n in name.split("+")]
    return None if None in parts else sum(parts)


def _ratios(bench: dict, top: int) -> list[dict]:
    per = _per_step(bench, top)
    libs = {(r["impl"], r["device"]): r["library"] for r in bench["results"]}
    rows = []
    groups_at = defaultdict(list)
    for g, shape, dt, dev in _cases_measured(bench):
        groups_at[g].append((shape, dt, dev))
    for ratio in RATIOS:
        for shape, dt, dev in groups_at.get(ratio.group, []):
            a, b = _summed(per, ratio.num, shape, dt, dev), _summed(per, ratio.den, shape, dt, dev)
            if a is None or b is None:
                continue
            value = a / b
            ok = ratio.meets(value)
            peer = ratio.num if kind_of(ratio.num) == "peer" else (ratio.den if kind_of(ratio.den) == "peer"
                                                                    else None)
            rows.append({"label": ratio.label, "group": ratio.group, "num": ratio.num, "den": ratio.den,
                         "device": dev, "shape": list(shape), "dtype": dt, "value": value, "target": ratio.target,
                         "higher_is_better": ratio.higher_is_better,
                         "status": "" if ok is None else ("meets" if ok else "misses"),
                         "peer": None if peer is None else libs.get((peer, dev), peer)})
    return rows


def _scaling(results: list[dict]) -> list[dict]:
    """Least-squares ``p`` in ``time per step ∝ cells^p`` over the sizes of one dimensionality."""
    series = defaultdict(dict)
    for r in results:
        if r["loaded"]:
            continue
        k = (r["impl"], r["device"], r["threads"], r["dtype"], len(r["shape"]))
        series[k][r["cells"]] = r["median_s"] / r["steps"]
    rows = []
    for (impl, dev, thr, dt, dims), pts in series.items():
        if len(pts) < 2:
            continue
        n = np.log(np.array(list(pts.keys()), dtype=float))
        t = np.log(np.array(list(pts.values()), dtype=float))
        p = float(np.polyfit(n, t, 1)[0])
        rows.append({"impl": impl, "device": dev, "threads": thr, "dtype": dt, "dims": dims, "sizes": len(pts),
                     "p": p})
    return rows


def _load_table(bench: dict, top: int) -> list[dict]:
    quiet, loaded = {}, {}
    for r in bench["results"]:
        if r["device"] != "cpu":
            continue
        k = (r["impl"], tuple(r["shape"]), r["dtype"], r["threads"])
        (loaded if r["loaded"] else quiet)[k] = r
    rows = []
    for k, rl in loaded.items():
        rq = quiet.get(k)
        if rq is None or rl["kind"] != "pdediff":
            continue
        impl, shape, dt, thr = k
        serial = quiet.get((impl, shape, dt, 1))
        nq, nl = quiet.get(("numpy_step", shape, dt, None)), loaded.get(("numpy_step", shape, dt, None))
        rows.append({"impl": impl, "group": rl["group"], "shape": list(shape), "dtype": dt, "threads": thr,
                     "quiet_s": rq["median_s"], "loaded_s": rl["median_s"], "slowdown": rl["median_s"] / rq["median_s"],
                     "vs_quiet_serial": None if serial is None else rl["median_s"] / serial["median_s"],
                     "numpy_slowdown": None if nq is None or nl is None else nl["median_s"] / nq["median_s"]})
    return rows


def _targets(bench: dict, top: int) -> list[dict]:
    per = _per_step(bench, top)
    devices = bench["settings"]["devices"]
    roofratio = {}
    for r in bench["results"]:
        if not r["loaded"] and not (r["kind"] == "pdediff" and r["device"] == "cpu" and r["threads"] != top):
            roofratio[(r["impl"],) + _key(r["shape"], r["dtype"], r["device"])] = r["roofline_ratio"]
    measured = _cases_measured(bench)
    rows = []
    for t in TARGETS:
        got = []
        if t.kind == "load":
            worst: dict = {}
            for row in bench["load"] or []:
                if row["threads"] != top or row["vs_quiet_serial"] is None:
                    continue
                k = (tuple(row["shape"]), row["dtype"])
                if k not in worst or row["vs_quiet_serial"] > worst[k][0]:
                    worst[k] = (row["vs_quiet_serial"], row["impl"])
            for (shape, dt), (v, impl) in worst.items():
                got.append((shape, dt, v, f"slowest: {impl} at {top} threads"))
        elif t.device in devices:
            for g, shape, dt, dev in measured:
                if g != t.group or dev != t.device or (t.dtypes and dt not in t.dtypes):
                    continue
                if t.kind == "ratio":
                    a, b = per.get((t.num, shape, dt, dev)), per.get((t.den, shape, dt, dev))
                    v = None if a is None or b is None else a / b
                elif t.kind == "roofline":
                    v = roofratio.get((t.num, shape, dt, dev))
                else:  # "cross": CPU time / GPU time per step
                    a, b = per.get((t.num, shape, dt, "cpu")), per.get((t.num, shape, dt, "gpu"))
                    v = None if a is None or b is None else a / b
                if v is not None:
                    got.append((shape, dt, v, ""))
        for shape, dt, v, detail in got:
            rows.append({"key": t.key, "label": t.label, "shape": list(shape), "dtype": dt, "value": v,
                         "threshold": t.threshold, "higher_is_better": t.higher_is_better,
                         "status": "meets" if t.meets(v) else "misses",
                         "issue_size": not t.stated_shapes or tuple(shape) in t.stated_shapes, "detail": detail,
                         "source": t.source})
        if not got:
            why = (f"needs {t.needs}" if t.needs else "") or "its cases were not in this run"
            if t.needs and ((t.needs == "--peers" and bench["settings"]["peers"])
                            or (t.needs == "--load" and bench["settings"]["load"])
                            or (t.needs == "a GPU" and "gpu" in devices)):
                why = "its cases were not in this run (sizes, dtypes or groups) or were skipped"
            rows.append({"key": t.key, "label": t.label, "shape": None, "dtype": None, "value": None,
                         "threshold": t.threshold, "higher_is_better": t.higher_is_better, "status": "not measured",
                         "issue_size": False, "detail": why, "source": t.source})
    return rows
