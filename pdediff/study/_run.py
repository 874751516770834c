""":func:`run_study`: check the arguments, run the chosen studies, and write (or merge) the results."""

from __future__ import annotations

import operator
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import datetime, timezone
from typing import Any, Literal

import numpy as np

from ..errors import ParameterError
from ._common import machine, versions
from ._denoise import DenoiseSettings
from ._generate import GenerateSettings
from ._report import SCHEMA_ID, validate_results

#: What :func:`run_study` can run.
KINDS = ("denoise", "generate", "all")


def run_study(
    kind: Literal["denoise", "generate", "all"] = "all",
    *,
    out: str | os.PathLike,
    quick: bool = False,
    seeds: int | None = None,
    steps: int | None = None,
    data: str | os.PathLike | tuple[str | os.PathLike, ...] | None = None,
    figures: bool = True,
    progress: bool = True,
    device: str | None = None,
    threads: int | None = None,
) -> dict:
    """Run the denoising and/or generation study and write its results into ``out``.

    Parameters
    ----------
    kind : {"denoise", "generate", "all"}
        Which study.
    out : str or os.PathLike
        Output folder (created): ``results.json``, ``results.md``,
        ``figures/``, and ``cache/`` + ``runs/`` for resuming.  Rerunning into
        the same folder with the same settings reuses every finished arm.  A
        section that this call does not run (the generation study for
        ``kind="denoise"``, the denoising study for ``kind="generate"``) is
        kept from the ``results.json`` already in ``out``, marked as kept
        (``results["kept"]``, and a note in ``results.md``), instead of being
        dropped.
    quick : bool
        Tiny images, grids and models: the whole study in about a minute on two
        CPU cores.  A smoke test of the pipeline; its numbers are not results.
    seeds : int, optional
        Independent repetitions (noise draws, model initialisations, sample
        draws); tables report mean ± sd over them.  Default 3 (1 with
        ``quick``).
    steps : int, optional
        Training steps of every learned model (default: 1500 for the generative
        models, 500 for the two learned denoisers; 60 and 20 with ``quick``).
    data : str, os.PathLike or tuple of them, optional
        Generation data: ``"digits"`` (scikit-learn, 8 × 8, labelled),
        ``"shapes"`` (seeded synthetic 16 × 16), or a folder of images / an
        ``.npy`` (see :func:`pdediff.torch.load_dataset`).  Default ``"digits"``.
    figures : bool
        Write the figures (crops, sample grids, trajectories).
    progress : bool
        tqdm progress bars, and one line on stderr naming the sections kept
        from an earlier ``results.json``.
    device : str, optional
        Torch device for the learned models (``"cuda"`` on a GPU machine).
    threads : int, optional
        CPU threads of torch and of Numba's parallel kernels
        (:func:`torch.set_num_threads`, :func:`numba.set_num_threads`), set
        for the study and restored afterwards.  Default: torch's own (all cores), fastest on an idle
        machine; pass 1 when other work shares the cores, where torch's
        spinning threads otherwise slow training several-fold.

    Returns
    -------
    dict
        What ``results.json`` holds (validated against :data:`RESULTS_SCHEMA`).

    Raises
    ------
    TypeError
        An argument of the wrong type (the message names the parameter and
        the types it accepts), e.g. ``out=None``.
    pdediff.errors.ParameterError
        An argument of the right type but a value out of range (a
        :class:`ValueError`).

    Examples
    --------
    >>> from pdediff.study import run_study
    >>> results = run_study("denoise", out="study-out", quick=True, seeds=1)  # doctest: +SKIP
    >>> sorted(results["denoise"]["methods"])[:3]  # doctest: +SKIP
    ['bilateral', 'bm3d', 'cold_pm']
    """
    if not isinstance(kind, str):
        raise TypeError(f"kind must be a str, one of {', '.join(map(repr, KINDS))}; got {_what(kind)}")
    if kind not in KINDS:
        raise ParameterError(f"{{kind}} must be one of {', '.join(map(repr, KINDS))}; got {kind!r}", param="kind")
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a str or os.PathLike naming a folder; got {_what(out)}")
    out = os.fspath(out)
    if isinstance(out, bytes):
        raise TypeError(f"out must be a str or os.PathLike naming a folder; got a bytes path {out!r}")
    if not out.strip():
        raise ParameterError("{out} must name a folder; got an empty string", param="out")
    for name, value in (("quick", quick), ("figures", figures), ("progress", progress)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool; got {_what(value)}")
    seeds = _count("seeds", 1 if seeds is None and quick else 3 if seeds is None else seeds)
    steps = None if steps is None else _count("steps", steps)
    threads = None if threads is None else _count("threads", threads)
    data = _data(data)
    if device is not None and not isinstance(device, str) and type(device).__name__ != "device":
        raise TypeError(f"device must be a str (e.g. 'cpu', 'cuda'), a torch.device or None; got {_what(device)}")
    with _threads(threads):
        return _run(kind, out=out, quick=bool(quick), seeds=seeds, steps=steps, data=data, figures=bool(figures),
                    progress=bool(progress), device=device)


def _what(value: Any) -> str:
    """``type value`` for a message: ``NoneType None``, ``float 2.5``."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _count(name: str, value: Any) -> int:
    """A positive integer argument: TypeError for another type (floats and bools included), else its value."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int; got {_what(value)}")
    try:
        n = operator.index(value)  # int and NumPy integers; not floats, not strings
    except TypeError:
        raise TypeError(f"{name} must be an int; got {_what(value)}") from None
    if n < 1:
        raise ParameterError(f"{{{name}}} must be a positive integer; got {n}", param=name)
    return n


def _data(data: Any) -> tuple[str, ...] | None:
    """``data`` as a tuple of names/paths (``None`` stays ``None``)."""
    if data is None:
        return None
    items = (data,) if isinstance(data, (str, os.PathLike)) else data
    if not isinstance(items, (tuple, list)):
        raise TypeError("data must be a str, an os.PathLike or a tuple of them; got " + _what(data))
    if not items:
        raise ParameterError("{data} must name at least one data set; got an empty sequence", param="data")
    for d in items:
        if not isinstance(d, (str, os.PathLike)):
            raise TypeError("data must be a str, an os.PathLike or a tuple of them; got an item " + _what(d))
    return tuple(d if isinstance(d, str) else os.fspath(d) for d in items)


@contextmanager
def _threads(threads: int | None):
    """Torch and Numba thread counts for the duration of the study (restored afterwards)."""
    if threads is None:
        yield
        return
    import numba
    import torch

    before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(int(threads))
    # Numba's parallel kernels (batched Perona–Malik of the cold processes) spin like torch's threads.
    numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])


def _run(kind, *, out, quick, seeds, steps, data, figures, progress, device) -> dict:
    os.makedirs(out, exist_ok=True)
    dn = DenoiseSettings.quick() if quick else DenoiseSettings()
    gen = GenerateSettings.quick() if quick else GenerateSettings()
    if steps is not None:
        dn, gen = replace(dn, steps=int(steps)), replace(gen, steps=int(steps))
    if data is not None:
        gen = replace(gen, data=data)
    results = {"schema": SCHEMA_ID, "kind": kind, "quick": bool(quick),
               "settings": {"seeds": seeds, "denoise": asdict(dn), "generate": asdict(gen)},
               "versions": versions(), "machine": machine(),
               "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "wall_seconds": {},
               "denoise": None, "generate": None}
    from . import _denoise, _generate, _report

    if kind in ("generate", "all"):  # bad data fail now, not after the denoising study
        from ..torch import load_dataset

        for d in gen.data:
            load_dataset(d, split="train", seed=0)

    if kind in ("denoise", "all"):
        t0 = time.perf_counter()
        results["denoise"] = _denoise.run_denoise(dn, seeds=seeds, out=out, progress=progress)
        if figures:
            _denoise.crops_figure(dn, results["denoise"]["rows"], os.path.join(out, "figures", "denoise-crops.png"))
        results["wall_seconds"]["denoise"] = time.perf_counter() - t0
    if kind in ("generate", "all"):
        t0 = time.perf_counter()
        results["generate"] = _generate.run_generate(gen, seeds=seeds, out=out, progress=progress, device=device)
        if figures:
            _generate.figures(results["generate"], out)
        results["wall_seconds"]["generate"] = time.perf_counter() - t0
    results = _report._clean(results)
    path = os.path.join(out, "results.json")
    earlier, problem = _report.read_earlier(path)
    kept = _report.merge_sections(results, earlier)
    validate_results(results)
    _report.write_json(results, path)
    _report.write_markdown(results, os.path.join(out, "results.md"))
    if progress and (kept or problem):
        print(_report.kept_message(results, path, problem), file=sys.stderr)
    return results
