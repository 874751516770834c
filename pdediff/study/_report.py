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
                   "sigma_hat": {"type": "number"}, "returns_input": {"type": "boolean"}},
}
_METRICS = {
    "type": "object",
    "required": ["frechet", "sliced_wasserstein", "one_nn_accuracy", "memorisation_ratio", "spectrum"],
    "properties": {"frechet": {"type": "number", "minimum": 0}, "sliced_wasserstein": {"type": "number"},
                   "one_nn_accuracy": {"type": "number", "minimum": 0, "maximum": 1},
                   "one_nn_n": {"type": "integer", "minimum": 1},
                   "memorisation_ratio": {"type": ["number", "null"]}, "spectrum": {"type": "object"}},
}
_RUN = {
    "type": "object",
    "required": ["train_seconds", "sample_seconds", "sampling_steps", "metrics", "prior", "final_loss"],
    "properties": {"train_seconds": _NUM, "load_seconds": _NUM, "sample_seconds": {"type": "number"},
                   "sampling_steps": {"type": "integer", "minimum": 1}, "metrics": _METRICS,
                   "prior": {"type": "object", "required": ["frechet"]}, "final_loss": {"type": "number"}},
}
_KEPT = {  # a section kept from an earlier run into the same folder: which run it came from
    "type": "object",
    "required": ["kind", "quick", "seeds", "started"],
    "properties": {"kind": {"enum": ["denoise", "generate", "all"]}, "quick": {"type": "boolean"},
                   "seeds": {"type": "integer", "minimum": 1}, "started": {"type": ["string", "null"]},
                   "wall_seconds": _NUM, "versions": {"type": "object"}},
}
#: The two sections of the results, in the order they are run and reported.
SECTIONS = ("denoise", "generate")
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
        "kept": {"type": "object", "propertyNames": {"enum": ["denoise", "generate"]},
                 "additionalProperties": _KEPT},
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


def mark_returned_input(rows: list[dict]) -> list[dict]:
    """Set ``returns_input`` on every denoising row that lacks it (rows of an earlier version).

    A method returned its noisy input unchanged (the cold-PM denoiser tuned to
    level 0, say) when its PSNR *and* SSIM equal, to the last bit, those of
    the ``noisy`` row of the same image, noise level and seed.  Rows computed
    now carry the flag from comparing the arrays themselves.

    Parameters
    ----------
    rows : list of dict
        Rows of the ``denoise`` section (changed in place).

    Returns
    -------
    list of dict
        ``rows``.
    """
    noisy = {(r["image"], r["dim"], r["level"], r["seed"]): r for r in rows if r["method"] == "noisy"}
    for r in rows:
        if "returns_input" in r:
            continue
        ref = noisy.get((r["image"], r["dim"], r["level"], r["seed"]))
        r["returns_input"] = bool(r["method"] != "noisy" and ref is not None and r["psnr"] is not None
                                  and r["psnr"] == ref["psnr"] and r["ssim"] == ref["ssim"])
    return rows


def read_earlier(path: str | os.PathLike) -> tuple[dict | None, str | None]:
    """The valid ``results.json`` at ``path`` if there is one, else ``None`` and what was wrong with it.

    Returns
    -------
    earlier : dict or None
        The earlier results (validated), or ``None``.
    problem : str or None
        Why a file that exists could not be used (``None`` if it was used or
        there was none).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        return None, None
    try:
        return load_results(path), None
    except Exception as exc:  # noqa: BLE001 - any unreadable or invalid file is replaced, and said so
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"the earlier {os.path.basename(path)} could not be read ({first[:200]}) and was replaced"


def merge_sections(results: dict, earlier: dict | None) -> list[str]:
    """Keep the sections of ``earlier`` that ``results`` did not run (changes ``results`` in place).

    ``pdediff study denoise`` into a folder that holds an earlier ``study
    all`` reruns the denoising section only: the generation section, its
    settings and its provenance are carried over into ``results`` and listed
    under ``results["kept"]`` (the earlier run's kind, quick flag, seeds,
    start time, wall time and versions), so the tables say where each section
    came from.  A section kept once is kept with its original provenance.

    Parameters
    ----------
    results : dict
        This run's results (its ``kind`` says which sections it ran).
    earlier : dict or None
        The results found in the output folder before this run.

    Returns
    -------
    list of str
        The sections kept, in report order (empty when nothing was kept).
    """
    ran = {"denoise": results["kind"] in ("denoise", "all"), "generate": results["kind"] in ("generate", "all")}
    kept = {}
    for section in SECTIONS:
        if ran[section] or not earlier or not earlier.get(section):
            continue
        results[section] = earlier[section]
        results["settings"][section] = (earlier.get("settings") or {}).get(section)
        origin = (earlier.get("kept") or {}).get(section)
        if origin is None:
            origin = {"kind": earlier["kind"], "quick": bool(earlier["quick"]),
                      "seeds": int(earlier["settings"]["seeds"]), "started": earlier.get("started"),
                      "wall_seconds": (earlier.get("wall_seconds") or {}).get(section),
                      "versions": earlier.get("versions") or {}}
        kept[section] = origin
    if kept:
        results["kept"] = kept
    else:
        results.pop("kept", None)
    return list(kept)


def kept_message(results: dict, path: str, problem: str | None = None) -> str:
    """One line for the user: which sections of ``path`` were kept from an earlier run (and any problem)."""
    parts = []
    for section, origin in (results.get("kept") or {}).items():
        parts.append(f"kept the {_SECTION_NAMES[section]} section of {path} from an earlier run "
                     f"({_command(origin)}, started {origin.get('started') or 'at an unknown time'}); "
                     f"this run did not redo it")
    if problem:
        parts.append(problem)
    return "; ".join(parts)


_SECTION_NAMES = {"denoise": "denoising", "generate": "generation"}


def _command(info: dict, code: bool = False) -> str:
    """``pdediff study KIND [--quick] --seeds N`` of a run's provenance record (in backticks if ``code``)."""
    text = f"pdediff study {info['kind']}{' --quick' if info.get('quick') else ''} --seeds {info['seeds']}"
    return f"`{text}`" if code else text


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


#: Marks a table cell whose rows returned the noisy input unchanged (see the footnote of the tables).
RETURNS_INPUT = "†"


def _returned(rows: list[dict]) -> str:
    """`` †`` if every row returned its input, `` †k/n`` if k of n did, else nothing."""
    k = sum(bool(r.get("returns_input")) for r in rows)
    if k == 0:
        return ""
    return f" {RETURNS_INPUT}" if k == len(rows) else f" {RETURNS_INPUT}{k}/{len(rows)}"


def _training_line(training: dict) -> str:
    """The learned denoisers' training, per seed: steps and the training time recorded when they trained."""

    def one(name: str, v: dict) -> str:
        steps, timed, sec = v["steps"], v.get("timed_steps"), v.get("train_seconds")
        if sec is None or timed == 0:
            return f"{name} {steps} steps (training time not recorded)"
        part = f" ({timed} of them timed)" if timed is not None and timed != steps else ""
        return f"{name} {steps} steps{part} in {sec:.0f} s"

    legacy = any(v.get("timed_steps") is None for info in training.values() for v in info.values())
    what = ("as recorded by an earlier version of the study: a value may include a rerun's time to load the "
            "model, or cover only the call that resumed an interrupted training" if legacy else
            "the time recorded when they were trained, not the time to load them on a rerun")
    return (f"Learned denoisers' training (per seed; {what}): "
            + "; ".join(f"seed {s}: " + ", ".join(one(m, v) for m, v in info.items())
                        for s, info in training.items()))


def denoise_tables(section: dict) -> list[str]:
    """``results.md``'s denoising tables (PSNR, SSIM, time per image; 2-D and 3-D) as lines of Markdown."""
    rows, labels = mark_returned_input([dict(r) for r in section["rows"]]), section["methods"]
    lines = []
    flagged = False
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
                    mark = _returned(by[(m, lv)])
                    flagged = flagged or bool(mark)
                    cells.append((f"**{s}**" if best[lv] == m else s) + mark)
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
    if flagged:
        lines += [f"{RETURNS_INPUT} returns its input: the method handed back the noisy image unchanged (e.g. the "
                  "cold-diffusion denoiser tuned to level 0), so its value is the noisy input's, not a denoiser's; "
                  f"{RETURNS_INPUT}k/n: on k of the n images and seeds.", ""]
    if section.get("training"):
        lines += [_training_line(section["training"]), ""]
    for note in section.get("notes", []):
        lines += [f"*{note}*", ""]
    return lines


def _one_nn_legend(entry: dict) -> str:
    """What the 1-NN column's values mean for this data set, true for the sizes actually compared."""
    mets = [m for m in entry["floor"]["seeds"]] + [r["metrics"] for runs in entry["runs"].values() for r in runs]
    sizes = {m.get("one_nn_n") for m in mets}
    if None not in sizes and len(sizes) == 1:
        k = sizes.pop()
        return f"1-NN accuracy: {k} samples against {k} held-out images, 0.5 is best (1.0: fully separable)"
    if None not in sizes:
        return (f"1-NN accuracy: equal sizes per row ({', '.join(map(str, sorted(sizes)))}), 0.5 is best "
                "(1.0: fully separable)")
    if entry["n_samples"] == entry["n_test"]:
        return (f"1-NN accuracy: {entry['n_samples']} samples against {entry['n_test']} held-out images, 0.5 is "
                "best (1.0: fully separable)")
    return (f"1-NN accuracy: {entry['n_samples']} samples against {entry['n_test']} held-out images, unequal sizes, "
            "so 0.5 is out of reach: read each value against the floor row's, which is the best reachable")


def _train_legend(entry: dict) -> str:
    """What the ``train s`` column holds (results of an earlier version timed the call, not the training)."""
    if all("load_seconds" in r for runs in entry["runs"].values() for r in runs):
        return "the training time recorded in each run when it was trained (never a time to load it)"
    return ("wall time of the call that trained each run, as an earlier version of the study recorded it (a "
            "run trained before that call was only loaded)")


def generate_tables(section: dict) -> list[str]:
    """``results.md``'s generation table per data set (metrics, the real-vs-real floor, times) as Markdown."""
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
            # The floor's "samples" are training images: memorisation compares them with themselves (n/a).
            memo = _fmt([m["memorisation_ratio"] for m in mets]) if runs else "n/a"
            cells = [_ms(fr), f"{np.mean(fr) / fmean:.2f}" if fmean > 0 else "–",
                     _ms([r["prior"]["frechet"] for r in runs]) if runs else "–",
                     _ms([m["sliced_wasserstein"] for m in mets]), _fmt([m["one_nn_accuracy"] for m in mets]),
                     _fmt([m.get("precision") for m in mets]), _fmt([m.get("recall") for m in mets]),
                     _fmt([m.get("density") for m in mets]), _fmt([m.get("coverage") for m in mets]),
                     _fmt([m.get("label_entropy") for m in mets]), memo,
                     _ms([_high_band(m["spectrum"]) for m in mets]),
                     _ms([r["train_seconds"] for r in runs]) if runs else "–",
                     _ms([r["sample_seconds"] for r in runs]) if runs else "–",
                     str(runs[0]["sampling_steps"]) if runs else "–"]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")

        row("real vs real (floor)", entry["floor"]["seeds"])
        for proc, runs in entry["runs"].items():
            row(labels.get(proc, proc), [r["metrics"] for r in runs], runs)
        lines += ["", f"mean ± sd over {len(entry['floor']['seeds'])} seeds; {_one_nn_legend(entry)}; "
                  "memorisation: median distance of a sample to its nearest training image over that of a held-out "
                  "image, ≈ 1 is normal, ≪ 1 means copies of training images, n/a for the floor (its samples are "
                  f"training images, so the ratio would be 0 by construction); train s: {_train_legend(entry)}; "
                  "spectrum error: mean |Δ log10 power| in the highest radial-frequency "
                  "band.", ""]
    return lines


def _high_band(spec: dict) -> float | None:
    bands = sorted((k for k in spec if k.startswith("band_") and k[5:].isdigit()), key=lambda k: int(k[5:]))
    return spec[bands[-1]] if bands else None


def write_markdown(results: dict, path: str) -> None:
    """Write ``results.md``: the header (command, machine, versions, wall times) and each section's tables."""
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write("\n".join(markdown(results)) + "\n")


def markdown(results: dict) -> list[str]:
    """The lines of ``results.md`` (see :func:`write_markdown`)."""
    s = results["settings"]
    m = results["machine"]
    kept = results.get("kept") or {}
    this = {"kind": results["kind"], "quick": results["quick"], "seeds": s["seeds"]}
    lines = ["# pdediff study: classical versus learned diffusion", "",
             f"{_command(this, code=True)} — "
             f"{m.get('cpu')}, {m.get('usable_cores', m.get('logical_cores'))} cores; pdediff "
             f"{results['versions'].get('pdediff')}, torch {results['versions'].get('torch')}; wall time "
             + ", ".join(f"{k} {v / 60:.1f} min" for k, v in results["wall_seconds"].items()) + ".", ""]
    if results.get("quick"):
        which = " (in the sections this run made)" if kept else ""
        lines += [f"*Quick settings{which}: tiny models and grids, a smoke test of the pipeline — these numbers "
                  "are not results.*", ""]
    for section, title, tables in (("denoise", "Denoising (one step, no sampling)", denoise_tables),
                                   ("generate", "Generation", generate_tables)):
        if not results.get(section):
            continue
        lines += [f"## {title}", ""]
        if section in kept:
            o = kept[section]
            wall = f", wall time {o['wall_seconds'] / 60:.1f} min" if o.get("wall_seconds") is not None else ""
            lines += [f"*Kept from an earlier run into this folder ({_command(o, code=True)}, started "
                      f"{o.get('started') or 'at an unknown time'}{wall}, pdediff "
                      f"{(o.get('versions') or {}).get('pdediff')}): {_command(this, code=True)} did not redo this "
                      "section" + (" — its quick settings make these numbers not results" if o.get("quick") else "")
                      + ".*", ""]
        lines += tables(results[section])
    return lines


def load_results(path: str | os.PathLike) -> dict:
    """Read and validate a ``results.json`` (a file or the study's output folder)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "results.json")
    with open(path) as f:
        results = json.load(f)
    validate_results(results)
    return results
