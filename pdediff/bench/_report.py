"""bench.json (its schema, validation and the derived numbers) and bench.md (the tables)."""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from . import _cases

SCHEMA_ID = "pdediff-bench/1"
#: The files one run writes into its folder (all or none).
OUTPUT_FILES = ("bench.json", "bench.md", "bench-throughput.png", "bench-peers.png")

BYTE_MODEL = ("compulsory traffic of an ideal kernel: one pass reads and writes the field once (2 x itemsize bytes "
              "per cell); copy, explicit stencil step and Perona-Malik iteration: 1 pass per step; spectral "
              "solve and transform pairs: 2; ADI step: 3 (explicit half, forward and backward sweeps); NumPy "
              "slicing step: 6 (pad, shifted sums, update); ndimage step: 3; kappa estimate: 0.5 (one read); "
              "OpenCV/pdediff 3-channel cases count 3 cells per pixel. GB/s = bytes / time; roofline ratio = "
              "GB/s / GB/s of np.copyto (single-threaded) of the same shape and dtype.")

_NUM = {"type": "number"}
_NUMN = {"type": ["number", "null"]}
_POS = {"type": "number", "exclusiveMinimum": 0}
_SHAPE = {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 4}
_DTYPE = {"enum": ["float32", "float64"]}
_DEVICE = {"enum": ["cpu", "gpu"]}
_STATUS = {"enum": ["meets", "misses", "not measured", ""]}

_RESULT = {
    "type": "object",
    "required": ["group", "impl", "label", "kind", "library", "device", "threads", "loaded", "shape", "dtype",
                 "cells", "steps", "passes", "bytes", "median_s", "iqr_s", "repeats", "number",
                 "cells_steps_per_s", "gbps", "roofline_ratio"],
    "properties": {
        "group": {"enum": list(_cases.GROUP_NAMES)}, "impl": {"type": "string"}, "label": {"type": "string"},
        "kind": {"enum": ["pdediff", "reference", "peer", "roofline"]}, "library": {"type": "string"},
        "device": _DEVICE, "threads": {"type": ["integer", "null"], "minimum": 1}, "loaded": {"type": "boolean"},
        "shape": _SHAPE, "dtype": _DTYPE, "cells": {"type": "integer", "minimum": 1},
        "steps": {"type": "integer", "minimum": 1}, "passes": _NUM, "bytes": _NUM,
        "median_s": _POS, "iqr_s": {"type": "number", "minimum": 0},
        "repeats": {"type": "integer", "minimum": 1}, "number": {"type": "integer", "minimum": 1},
        "cells_steps_per_s": _POS, "gbps": _NUM, "roofline_ratio": _NUMN,
    },
}
_RATIO = {
    "type": "object",
    "required": ["label", "group", "num", "den", "device", "shape", "dtype", "value", "target", "higher_is_better",
                 "status", "peer"],
    "properties": {"label": {"type": "string"}, "group": {"type": "string"}, "num": {"type": "string"},
                   "den": {"type": "string"}, "device": _DEVICE, "shape": _SHAPE, "dtype": _DTYPE, "value": _POS,
                   "target": _NUMN, "higher_is_better": {"type": "boolean"}, "status": _STATUS,
                   "peer": {"type": ["string", "null"]}},
}
_TARGET = {
    "type": "object",
    "required": ["key", "label", "shape", "dtype", "value", "threshold", "higher_is_better", "status",
                 "issue_size", "detail"],
    "properties": {"key": {"enum": [t.key for t in _cases.TARGETS]}, "label": {"type": "string"},
                   "shape": {"oneOf": [_SHAPE, {"type": "null"}]}, "dtype": {"oneOf": [_DTYPE, {"type": "null"}]},
                   "value": _NUMN, "threshold": _NUM, "higher_is_better": {"type": "boolean"}, "status": _STATUS,
                   "issue_size": {"type": "boolean"}, "detail": {"type": "string"}},
}
_LOAD = {
    "type": "object",
    "required": ["impl", "group", "shape", "dtype", "threads", "quiet_s", "loaded_s", "slowdown",
                 "vs_quiet_serial", "numpy_slowdown"],
    "properties": {"impl": {"type": "string"}, "group": {"type": "string"}, "shape": _SHAPE, "dtype": _DTYPE,
                   "threads": {"type": ["integer", "null"]}, "quiet_s": _POS, "loaded_s": _POS, "slowdown": _POS,
                   "vs_quiet_serial": _NUMN, "numpy_slowdown": _NUMN},
}

#: JSON Schema (draft 2020-12) of ``bench.json``.
BENCH_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "pdediff bench results",
    "type": "object",
    "required": ["schema", "created", "quick", "settings", "versions", "hardware", "byte_model", "roofline",
                 "results", "ratios", "scaling", "targets", "load", "skipped", "notes", "wall_seconds"],
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "created": {"type": "string"},
        "quick": {"type": "boolean"},
        "settings": {"type": "object",
                     "required": ["groups", "sizes", "dtypes", "device", "devices", "threads", "peers", "load"],
                     "properties": {"groups": {"type": "array", "items": {"enum": list(_cases.GROUP_NAMES)}},
                                    "dtypes": {"type": "array", "items": _DTYPE},
                                    "device": {"enum": ["cpu", "gpu", "all"]},
                                    "devices": {"type": "array", "items": _DEVICE},
                                    "threads": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                                    "peers": {"type": "boolean"}, "load": {"type": "boolean"}}},
        "versions": {"type": "object", "required": ["pdediff", "numpy", "numba"]},
        "hardware": {"type": "object", "required": ["cpu", "gpu"],
                     "properties": {"cpu": {"type": "object",
                                            "required": ["model", "logical_cores", "usable_cores", "caches"]},
                                    "gpu": {"type": ["object", "null"]}}},
        "byte_model": {"type": "string"},
        "roofline": {"type": "array", "items": {
            "type": "object", "required": ["device", "shape", "dtype", "median_s", "iqr_s", "gbps"],
            "properties": {"device": _DEVICE, "shape": _SHAPE, "dtype": _DTYPE, "median_s": _POS,
                           "iqr_s": {"type": "number", "minimum": 0}, "gbps": _POS}}},
        "results": {"type": "array", "items": _RESULT},
        "ratios": {"type": "array", "items": _RATIO},
        "scaling": {"type": "array", "items": {
            "type": "object", "required": ["impl", "device", "threads", "dtype", "dims", "sizes", "p"],
            "properties": {"impl": {"type": "string"}, "device": _DEVICE, "threads": {"type": ["integer", "null"]},
                           "dtype": _DTYPE, "dims": {"type": "integer"}, "sizes": {"type": "integer", "minimum": 2},
                           "p": _NUM}}},
        "targets": {"type": "array", "items": _TARGET},
        "load": {"type": ["array", "null"], "items": _LOAD},
        "skipped": {"type": "array", "items": {"type": "object", "required": ["group", "impl", "reason"]}},
        "notes": {"type": "array", "items": {"type": "string"}},
        "wall_seconds": {"type": "number", "minimum": 0},
    },
}


def validate_bench(bench: dict) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``bench`` follows :data:`BENCH_SCHEMA`.

    Raises
    ------
    ImportError
        jsonschema is not installed.
    """
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema comes with the study and dev extras
        raise ImportError('validating bench.json needs jsonschema: pip install jsonschema') from None
    jsonschema.validate(bench, BENCH_SCHEMA)


def clean(x: Any) -> Any:
    """Plain JSON types; NaN/inf become null."""
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


# ---------------------------------------------------------------- derived numbers
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


def _kind_of(name: str) -> str | None:
    for g in _cases.GROUPS:
        for i in g.impls:
            if i.name == name:
                return i.kind
    return None


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
    for ratio in _cases.RATIOS:
        for shape, dt, dev in groups_at.get(ratio.group, []):
            a, b = _summed(per, ratio.num, shape, dt, dev), _summed(per, ratio.den, shape, dt, dev)
            if a is None or b is None:
                continue
            value = a / b
            ok = ratio.meets(value)
            peer = ratio.num if _kind_of(ratio.num) == "peer" else (ratio.den if _kind_of(ratio.den) == "peer"
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
    for t in _cases.TARGETS:
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
                         "issue_size": not t.issue_shapes or tuple(shape) in t.issue_shapes, "detail": detail})
        if not got:
            why = (f"needs {t.needs}" if t.needs else "") or "its cases were not in this run"
            if t.needs and ((t.needs == "--peers" and bench["settings"]["peers"])
                            or (t.needs == "--load" and bench["settings"]["load"])
                            or (t.needs == "a GPU" and "gpu" in devices)):
                why = "its cases were not in this run (sizes, dtypes or groups) or were skipped"
            rows.append({"key": t.key, "label": t.label, "shape": None, "dtype": None, "value": None,
                         "threshold": t.threshold, "higher_is_better": t.higher_is_better, "status": "not measured",
                         "issue_size": False, "detail": why})
    return rows


# ---------------------------------------------------------------- markdown
def _shape(shape) -> str:
    if shape is None:
        return "–"
    s = list(shape)
    if len(s) in (2, 3) and len(set(s)) == 1:
        return f"{len(s)}D {s[0]}{'²' if len(s) == 2 else '³'}"
    return ("batch " if len(s) == 4 else f"{len(s)}D ") + "×".join(map(str, s))


def _dt(dt) -> str:
    return "–" if dt is None else {"float32": "f32", "float64": "f64"}[dt]


def _f(x, spec=".3g") -> str:
    return "–" if x is None else format(x, spec)


def _ms(s) -> str:
    return "–" if s is None else (f"{s * 1e3:.3g}" if s * 1e3 >= 0.01 else f"{s * 1e3:.2e}")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _want(hib: bool, threshold) -> str:
    return "–" if threshold is None else f"{'≥' if hib else '≤'} {threshold:g}"


def summary_line(bench: dict) -> str:
    """One line: when, where, how (the README quotes it above the tables)."""
    cpu = bench["hardware"]["cpu"]
    gpu = bench["hardware"]["gpu"]
    s = bench["settings"]
    opts = (["--quick"] if bench["quick"] else []) + (["--peers"] if s["peers"] else []) + \
        (["--load"] if s["load"] else [])
    return (f"Measured {bench['created'][:10]} with `pdediff bench{' ' + ' '.join(opts) if opts else ''}` on "
            f"{cpu['model']} ({cpu['usable_cores']} usable cores, Numba threads {', '.join(map(str, s['threads']))}"
            f"{', ' + cpu['numba_threading_layer'] + ' layer' if cpu.get('numba_threading_layer') else ''}); "
            f"GPU: {gpu['name'] if gpu else 'none'}; {bench['wall_seconds']:.0f} s.")


def targets_table(bench: dict) -> list[str]:
    rows = []
    for t in bench["targets"]:
        rows.append([t["label"] + (" *" if t["issue_size"] and t["shape"] is not None else ""), _shape(t["shape"]),
                     _dt(t["dtype"]), _f(t["value"]), _want(t["higher_is_better"], t["threshold"]),
                     t["status"] + (f" ({t['detail']})" if t["detail"] else "")])
    return _table(["target", "case", "dtype", "measured", "target value", "status"], rows)


def ratios_table(bench: dict) -> list[str]:
    rows = []
    for r in bench["ratios"]:
        rows.append([r["group"], r["label"], r["device"], _shape(r["shape"]), _dt(r["dtype"]), _f(r["value"]),
                     _want(r["higher_is_better"], r["target"]), r["status"] or "–"])
    return _table(["group", "ratio (per step)", "device", "case", "dtype", "value", "target", "status"], rows)


def write_markdown_text(bench: dict) -> str:
    hw = bench["hardware"]
    cpu = hw["cpu"]
    lines = ["# pdediff bench", "", summary_line(bench), ""]
    if bench["quick"]:
        lines += ["*Quick run: small sizes and few repeats, a smoke test of the command; its numbers are not "
                  "results.*", ""]
    lines += ["Single runs on a shared machine are noisy: compare ratios taken within one run. Ratios divide "
              "time per step; pdediff's kernels at the largest thread count; peers with their own threading.", ""]
    lines += ["## Hardware", ""]
    caches = ", ".join(f"L{c['level']}{'' if c['type'] == 'unified' else c['type'][0]} "
                       f"{(c['size_bytes'] or 0) // 1024} KiB" for c in cpu["caches"]) or "unknown"
    rows = [["CPU", cpu["model"]], ["cores (logical / usable)", f"{cpu['logical_cores']} / {cpu['usable_cores']}"],
            ["caches (one instance each)", caches], ["SIMD", ", ".join(cpu["simd"]) or "–"],
            ["Numba threads / layer", f"{cpu['numba_threads']} / {cpu['numba_threading_layer'] or '–'}"],
            ["environment", ", ".join(f"{k}={v}" for k, v in cpu["env"].items() if v is not None) or "–"]]
    if hw["gpu"]:
        g = hw["gpu"]
        rows += [["GPU", f"{g['name']}, {g['memory_bytes'] / 2**30:.0f} GiB, CUDA {g['cuda_runtime']} "
                  f"(driver {g['cuda_driver']}), CuPy {g['cupy']}"]]
    else:
        rows += [["GPU", "none"]]
    v = bench["versions"]
    rows += [["versions", ", ".join(f"{k} {val}" for k, val in v.items() if val is not None)]]
    lines += _table(["item", "value"], rows) + [""]

    lines += ["## Roofline (copy bandwidth)", "", "`np.copyto` (CuPy `copyto` on the GPU) of an array of the case's "
              "shape and dtype: one read and one write per cell; single-threaded on the CPU.", ""]
    lines += _table(["device", "case", "dtype", "time [ms]", "GB/s"],
                    [[r["device"], _shape(r["shape"]), _dt(r["dtype"]), _ms(r["median_s"]), _f(r["gbps"], ".1f")]
                     for r in bench["roofline"]]) + [""]

    lines += ["## Targets (issue 12)", "", "`*`: a size the issue names. pdediff at the largest thread count.", ""]
    lines += targets_table(bench) + [""]
    lines += ["## Ratios", "", "Peer / pdediff (> 1: pdediff faster) and pdediff's internal ratios, per step.", ""]
    lines += (ratios_table(bench) if bench["ratios"] else ["No ratio measured in this run."]) + [""]

    lines += ["## Times", "", "Median per call (IQR over the samples); throughput by the byte model below.", ""]
    by_group = defaultdict(list)
    for r in bench["results"]:
        if not r["loaded"]:
            by_group[r["group"]].append(r)
    for g in _cases.GROUP_NAMES:
        rs = by_group.get(g)
        if not rs:
            continue
        lines += [f"### {g}", ""]
        lines += _table(["implementation", "device", "threads", "case", "dtype", "steps", "median [ms]", "IQR [ms]",
                         "Mcells·steps/s", "GB/s", "× roofline"],
                        [[r["label"], r["device"], "own" if r["threads"] is None else str(r["threads"]),
                          _shape(r["shape"]), _dt(r["dtype"]), str(r["steps"]), _ms(r["median_s"]), _ms(r["iqr_s"]),
                          _f(r["cells_steps_per_s"] / 1e6), _f(r["gbps"], ".1f"), _f(r["roofline_ratio"], ".2f")]
                         for r in rs]) + [""]

    lines += ["## Scaling", "", "Exponent `p` of time per step ∝ cells^p, fitted over this run's sizes of one "
              "dimensionality (p ≈ 1 for stencils, slightly above for FFTs; small sizes that fit in cache bend it).",
              ""]
    lines += (_table(["implementation", "device", "threads", "dtype", "dims", "sizes", "p"],
                     [[s["impl"], s["device"], "own" if s["threads"] is None else str(s["threads"]), _dt(s["dtype"]),
                       f"{s['dims']}D", str(s["sizes"]), f"{s['p']:.2f}"] for s in bench["scaling"]])
              if bench["scaling"] else ["Fewer than two sizes per dimensionality: no exponent."]) + [""]

    if bench["load"] is not None:
        lines += ["## Under load", "", "Each pdediff CPU kernel and NumPy's reference step timed again while "
                  "another process keeps one core busy (pure-Python spin). `loaded / quiet serial`: against the "
                  "same kernel on one thread without load (issue 12: ≤ 1.3).", ""]
        lines += _table(["kernel", "case", "dtype", "threads", "quiet [ms]", "loaded [ms]", "loaded / quiet",
                         "loaded / quiet serial", "NumPy loaded / quiet"],
                        [[r["impl"], _shape(r["shape"]), _dt(r["dtype"]), str(r["threads"]), _ms(r["quiet_s"]),
                          _ms(r["loaded_s"]), _f(r["slowdown"], ".2f"), _f(r["vs_quiet_serial"], ".2f"),
                          _f(r["numpy_slowdown"], ".2f")] for r in bench["load"]]) + [""]

    lines += ["## Skipped", ""]
    lines += [f"- {s['group']} / {s['impl']}"
              + (f" ({_shape(s.get('shape'))} {_dt(s.get('dtype'))}, {s.get('device')})" if s.get("shape") else "")
              + f": {s['reason']}" for s in _dedupe_skips(bench["skipped"])] or ["- nothing"]
    lines += [f"- {n}" for n in bench["notes"]]
    lines += ["", "## Byte model", "", bench["byte_model"], ""]
    return "\n".join(lines)


def _dedupe_skips(skipped: list[dict]) -> list[dict]:
    """One line per (impl, reason) for 'not installed' and 'only' reasons that repeat at every size."""
    seen, out = set(), []
    for s in skipped:
        generic = "not installed" in s["reason"] or "only" in s["reason"] or "at most" in s["reason"]
        k = (s["group"], s["impl"], s["reason"]) if generic else id(s)
        if k in seen:
            continue
        seen.add(k)
        out.append({**s, "shape": None} if generic else s)
    return out


def write_outputs(bench: dict, out: Path, *, figures: bool) -> list[Path]:
    """bench.json, bench.md and the figures into ``out``, all or none (:func:`pdediff.io.atomic_paths`)."""
    from ..io import atomic_paths

    out.mkdir(parents=True, exist_ok=True)
    names = OUTPUT_FILES if figures else OUTPUT_FILES[:2]
    paths = [out / n for n in names]
    with atomic_paths(paths) as tmps:
        with open(tmps[0], "w") as f:
            json.dump(bench, f, indent=1)
        with open(tmps[1], "w", encoding="utf-8") as f:
            f.write(write_markdown_text(bench))
        if figures:
            from ._plots import peers_figure, throughput_figure

            throughput_figure(bench, tmps[2])
            peers_figure(bench, tmps[3])
    return paths


def load_bench(path: str | os.PathLike) -> dict:
    """Read and validate a ``bench.json``."""
    with open(path) as f:
        bench = json.load(f)
    validate_bench(bench)
    return bench
