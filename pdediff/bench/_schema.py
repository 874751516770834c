"""``bench.json``: its JSON Schema (:data:`BENCH_SCHEMA`), validation, and conversion to plain JSON types."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._registry import GROUP_NAMES
from ._targets import TARGETS

SCHEMA_ID = "pdediff-bench/1"
#: The files one run writes into its folder (all or none).
OUTPUT_FILES = ("bench.json", "bench.md", "bench-throughput.png", "bench-peers.png")

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
        "group": {"enum": list(GROUP_NAMES)}, "impl": {"type": "string"}, "label": {"type": "string"},
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
    "properties": {"key": {"enum": [t.key for t in TARGETS]}, "label": {"type": "string"},
                   "shape": {"oneOf": [_SHAPE, {"type": "null"}]}, "dtype": {"oneOf": [_DTYPE, {"type": "null"}]},
                   "value": _NUMN, "threshold": _NUM, "higher_is_better": {"type": "boolean"}, "status": _STATUS,
                   "issue_size": {"type": "boolean", "description": "the case is at a size the target is set for"},
                   "detail": {"type": "string"},
                   "source": {"type": "string", "description": "what the target is measured against"}},
}
_LOAD = {
    "type": "object",
    "required": ["impl", "group", "shape", "dtype", "threads", "quiet_s", "loaded_s", "slowdown",
                 "vs_quiet_serial", "numpy_slowdown"],
    "properties": {"impl": {"type": "string"}, "group": {"type": "string"}, "shape": _SHAPE, "dtype": _DTYPE,
                   "threads": {"type": ["integer", "null"]}, "quiet_s": _POS, "loaded_s": _POS, "slowdown": _POS,
                   "vs_quiet_serial": _NUMN, "numpy_slowdown": _NUMN},
}

_COMPARE_CASE = {
    "type": "object",
    "required": ["group", "impl", "label", "shape", "dtype", "threads", "steps", "baseline_s", "current_s", "ratio",
                 "ci_low", "ci_high", "verdict", "detail", "baseline_rounds_s", "current_rounds_s"],
    "properties": {
        "group": {"enum": list(GROUP_NAMES)}, "impl": {"type": "string"}, "label": {"type": "string"},
        "shape": _SHAPE, "dtype": _DTYPE, "threads": {"type": ["integer", "null"], "minimum": 1},
        "steps": {"type": "integer", "minimum": 1},
        "baseline_s": {"type": ["number", "null"], "exclusiveMinimum": 0,
                       "description": "the baseline's seconds per call (median over rounds)"},
        "current_s": {"type": ["number", "null"], "exclusiveMinimum": 0,
                      "description": "the current code's seconds per call (median over rounds)"},
        "ratio": {"type": ["number", "null"], "exclusiveMinimum": 0,
                  "description": "current / baseline: geometric mean of the per-round ratios"},
        "ci_low": _NUMN, "ci_high": _NUMN,
        "verdict": {"enum": ["slower", "within noise", "faster", "not in baseline", "failed"]},
        "detail": {"type": "string"},
        "baseline_rounds_s": {"type": "array", "items": _POS},
        "current_rounds_s": {"type": "array", "items": _POS},
    },
}
#: ``pdediff bench --compare``'s section (absent from other runs and from files written before it existed).
_COMPARE = {
    "type": "object",
    "required": ["baseline", "current", "rounds", "order", "statistic", "confidence", "threshold", "budget",
                 "cases", "counts", "notes"],
    "properties": {
        "baseline": {"type": "object", "required": ["kind", "name", "path", "commit", "created", "versions"],
                     "properties": {"kind": {"enum": ["file", "revision"]}, "name": {"type": "string"},
                                    "path": {"type": ["string", "null"]}, "commit": {"type": ["string", "null"]},
                                    "created": {"type": ["string", "null"]},
                                    "versions": {"type": ["object", "null"]}}},
        "current": {"type": "object", "required": ["root", "commit", "dirty", "versions"]},
        "rounds": {"type": "integer", "minimum": 2}, "order": {"type": "string"}, "statistic": {"type": "string"},
        "confidence": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}, "threshold": _POS,
        "budget": {"type": "object"}, "cases": {"type": "array", "items": _COMPARE_CASE},
        "counts": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
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
                     "properties": {"groups": {"type": "array", "items": {"enum": list(GROUP_NAMES)}},
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
        "compare": _COMPARE,
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
