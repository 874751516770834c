"""Writing a run's report (``bench.json``, ``bench.md`` and the two figures, all or none) and reading it back."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ._markdown import write_markdown_text
from ._plots import peers_figure, throughput_figure
from ._schema import OUTPUT_FILES, validate_bench


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
            throughput_figure(bench, tmps[2])
            peers_figure(bench, tmps[3])
    return paths


def load_bench(path: str | os.PathLike) -> dict:
    """Read and validate a ``bench.json``."""
    with open(path) as f:
        bench = json.load(f)
    validate_bench(bench)
    return bench
