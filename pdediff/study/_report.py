"""results.json (its schema and validation) and results.md (tables of mean ± sd)."""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from typing import Any

import numpy as np

SCHEMA_ID = "pdediff-study/1"

_NUM = {"type": ["number", "null"]}
_ROW = {
    "type": "object",
    "required": ["image", "dim", "level", "seed", "method", "psnr", "ssim", "seconds", "sigma_hat"],
    "properties": {"image": {"type": "string"}, "dim": {"enum": [2, 3]}, "level": {"type": "number"},
                   "seed": {"type": "integer", "minimum": 0}, "method": {"type": "string"},
                   "psnr": _NUM, "ssim": _NUM, "seconds": {"type": "number", "minimum": 0},
                   "sigma_hat": {"type": "number"}},
}
_METRICS = {
    "type": "object",
    "required": ["frechet", "sliced_wasserstein", "one_nn_accuracy", "memorisation_ratio", "spectrum"],
    "properties": {"frechet": {"type": "number", "minimum": 0}, "sliced_wasserstein": {"type": "number"},
                   "one_nn_accuracy": {"type": "number", "minimum": 0, "maximum": 1},
                   "memorisation_ratio": {"type": ["number", "null"]}, "spectrum": {"type": "object"}},
}
_RUN = {
    "type": "object",
    "required": ["train_seconds", "sample_seconds", "sampling_steps", "metrics", "prior", "final_loss"],
    "properties": {"train_seconds": {"type": "number"}, "sample_seconds": {"type": "number"},
                   "sampling_steps": {"type": "integer", "minimum": 1}, "metrics": _METRICS,
                   "prior": {"type": "object", "required": ["frechet"]}, "final_loss": {"type": "number"}},
}
#: JSON Schema (draft 2020-12) of ``results.json``.
RESULTS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "pdediff study results",
    "type": "object",
    "required": ["schema", "kind", "quick", "settings", "versions", "machine", "wall_seconds"],
    "properties": {
        "schema": {"const": SCHEMA_ID},
        "kind": {"enum": ["denoise", "generate", "all"]},
        "quick": {"type": "boolean"},
        "settings": {"type": "object", "required": ["seeds"]},
        "versions": {"type": "object"},
        "machine": {"type": "object"},
        "wall_seconds": {"type": "object"},
        "denoise": {"type": ["object", "null"], "required": ["rows", "methods"],
                    "properties": {"rows": {"type": "array", "items": _ROW}, "methods": {"type": "object"}}},
        "generate": {"type": ["object", "null"], "required": ["datasets"],
                     "properties": {"datasets": {"type": "object", "additionalProperties": {
                         "type": "object", "required": ["floor", "runs", "n_samples", "features"],
                         "properties": {"floor": {"type": "object", "required": ["seeds"],
                                                  "properties": {"seeds": {"type": "array", "items": _METRICS}}},
                                        "runs": {"type": "object", "additionalProperties": {
                                            "type": "array", "items": _RUN}}}}}}},
    },
}


def validate_results(results: dict) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``results`` follows :data:`RESULTS_SCHEMA`."""
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema comes with the study extra
        raise ImportError('validating results needs jsonschema: pip install "pdediff[study]"') from None
    jsonschema.validate(results, RESULTS_SCHEMA)


def _clean(x: Any) -> Any:
    """JSON has no NaN/inf: store them as null (PSNR of a perfect copy is inf)."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    return x


def write_json(results: dict, path: str) -> None:
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(_clean(results), f, indent=1, sort_keys=False)


def _mean_sd(values, mean: str, sd: str | None = None) -> str:
    """``mean ± sd`` of the non-missing values in the given formats ("–" if none, the value if one)."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return "–"
    if v.size == 1:
        return format(v[0], mean)
    return f"{format(v.mean(), mean)} ± {format(v.std(ddof=1), sd or mean)}"


def _ms(values) -> str:
    return _mean_sd(values, ".3g", ".2g")


def _fmt(values, digits=2) -> str:
    return _mean_sd(values, f".{digits}f")


def denoise_tables(section: dict) -> list[str]:
    rows, labels = section["rows"], section["methods"]
    lines = []
    for dim in (2, 3):
        sub = [r for r in rows if r["dim"] == dim]
        if not sub:
            continue
        levels = sorted({r["level"] for r in sub})
        images = sorted({r["image"] for r in sub})
        methods = [m for m in labels if any(r["method"] == m for r in sub)]
        by = defaultdict(list)
        for r in sub:
            by[(r["method"], r["level"])].append(r)
        title = "2-D test images" if dim == 2 else "3-D phantom"
        for metric, unit, digits in (("psnr", " (dB)", 2), ("ssim", "", 3)):
            lines += [f"### {title}: {metric.upper()}{unit}, mean ± sd over {', '.join(images)} and seeds", "",
                      "| method | " + " | ".join(f"{lv:.0%} noise" for lv in levels) + " |",
                      "|---|" + "---:|" * len(levels)]
            best = {lv: max(methods, key=lambda m: np.mean([r[metric] or -np.inf for r in by[(m, lv)]] or [-np.inf]))
                    for lv in levels}
            for m in methods:
                cells = []
                for lv in levels:
                    s = _fmt([r[metric] for r in by[(m, lv)]], digits)
                    cells.append(f"**{s}**" if best[lv] == m else s)
                lines.append(f"| {labels[m]} | " + " | ".join(cells) + " |")
            lines.append("")
        lines += [f"### {title}: time per image (s, median)", "",
                  "| method | " + " | ".join(f"{lv:.0%}" for lv in levels) + " |", "|---|" + "---:|" * len(levels)]
        for m in methods:
            lines.append(f"| {labels[m]} | " + " | ".join(
                f"{np.median([r['seconds'] for r in by[(m, lv)]]):.3g}" for lv in levels) + " |")
        lines.append("")
        winners = []
        for lv in levels:
            ranked = sorted(methods, key=lambda m: -np.mean([r["psnr"] or -np.inf for r in by[(m, lv)]]))
            winners.append(f"{lv:.0%}: {labels[ranked[0]]}")
        lines += ["Winner by mean PSNR per noise level — " + "; ".join(winners) + ".", ""]
    if section.get("training"):
        lines += ["Learned denoisers' training (per seed): " + "; ".join(
            f"seed {s}: " + ", ".join(f"{m} {v['steps']} steps in " + (f"{v['train_seconds']:.0f} s" if v.get(
                "train_seconds") is not None else "(time not recorded)") for m, v in info.items())
            for s, info in section["training"].items()), ""]
    for note in section.get("notes", []):
        lines += [f"*{note}*", ""]
    return lines


def generate_tables(section: dict) -> list[str]:
    lines = []
    labels = section.get("processes", {})
    for data, entry in section["datasets"].items():
        floor = [m["frechet"] for m in entry["floor"]["seeds"]]
        fmean = float(np.mean(floor))
        feat = entry["features"]
        q = ", ".join(f"{k} {v:.3f}" for k, v in feat.items() if k in ("accuracy", "reconstruction_error"))
        lines += [f"### {data}: {entry['n_samples']} samples per model against {entry['n_test']} held-out images",
                  "", f"Features: {feat['kind']} trained on the {entry['n_train']} training images ({q}). "
                  "Fréchet distance in that feature space: FID's formula, *not* FID, not comparable with "
                  "published numbers.", "",
                  "| | Fréchet | × floor | prior Fréchet | sliced W. | 1-NN acc. | precision | recall | density "
                  "| coverage | label entropy | memorisation | spectrum err. (high band) | train s | sample s "
                  "| sampling steps |",
                  "|---|" + "---:|" * 15]

        def row(name, mets, runs=None):
            fr = [m["frechet"] for m in mets]
            cells = [_ms(fr), f"{np.mean(fr) / fmean:.2f}" if fmean > 0 else "–",
                     _ms([r["prior"]["frechet"] for r in runs]) if runs else "–",
                     _ms([m["sliced_wasserstein"] for m in mets]), _fmt([m["one_nn_accuracy"] for m in mets]),
                     _fmt([m.get("precision") for m in mets]), _fmt([m.get("recall") for m in mets]),
                     _fmt([m.get("density") for m in mets]), _fmt([m.get("coverage") for m in mets]),
                     _fmt([m.get("label_entropy") for m in mets]), _fmt([m["memorisation_ratio"] for m in mets]),
                     _ms([_high_band(m["spectrum"]) for m in mets]),
                     _ms([r["train_seconds"] for r in runs]) if runs else "–",
                     _ms([r["sample_seconds"] for r in runs]) if runs else "–",
                     str(runs[0]["sampling_steps"]) if runs else "–"]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")

        row("real vs real (floor)", entry["floor"]["seeds"])
        for proc, runs in entry["runs"].items():
            row(labels.get(proc, proc), [r["metrics"] for r in runs], runs)
        lines += ["", f"mean ± sd over {len(entry['floor']['seeds'])} seeds; 1-NN accuracy 0.5 is best; "
                  "memorisation ≈ 1 is normal, ≪ 1 means copies of training images; spectrum error: mean |Δ log10 "
                  "power| in the highest radial-frequency band.", ""]
    return lines


def _high_band(spec: dict) -> float | None:
    bands = sorted((k for k in spec if k.startswith("band_") and k[5:].isdigit()), key=lambda k: int(k[5:]))
    return spec[bands[-1]] if bands else None


def write_markdown(results: dict, path: str) -> None:
    from ..io import atomic_path

    s = results["settings"]
    m = results["machine"]
    lines = ["# pdediff study: classical versus learned diffusion", "",
             f"`pdediff study {results['kind']}{' --quick' if results['quick'] else ''} --seeds {s['seeds']}` — "
             f"{m.get('cpu')}, {m.get('usable_cores', m.get('logical_cores'))} cores; pdediff "
             f"{results['versions'].get('pdediff')}, torch {results['versions'].get('torch')}; wall time "
             + ", ".join(f"{k} {v / 60:.1f} min" for k, v in results["wall_seconds"].items()) + ".", ""]
    if results.get("quick"):
        lines += ["*Quick settings: tiny models and grids, a smoke test of the pipeline — these numbers are "
                  "not results.*", ""]
    if results.get("denoise"):
        lines += ["## Denoising (one step, no sampling)", ""] + denoise_tables(results["denoise"])
    if results.get("generate"):
        lines += ["## Generation", ""] + generate_tables(results["generate"])
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")


def load_results(path: str | os.PathLike) -> dict:
    """Read and validate a ``results.json`` (a file or the study's output folder)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "results.json")
    with open(path) as f:
        results = json.load(f)
    validate_results(results)
    return results
