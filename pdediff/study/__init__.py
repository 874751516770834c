"""Classical versus learned diffusion, measured: the study behind ``pdediff study``.

Two studies share one output folder:

* **denoise** — one step, no sampling: heat blur, Perona–Malik, scikit-image's
  TV/bilateral/wavelet/non-local means, BM3D and two learned denoisers (a DDPM
  model's x̂₀ at the matching timestep, and a cold-diffusion model over
  Perona–Malik) on held-out test images at 2, 5, 10 and 20 % Gaussian noise;
  PSNR, SSIM and time per image (:mod:`pdediff.study._denoise`).
* **generate** — DDPM, inverse heat dissipation, blurring diffusion and cold
  diffusion with heat and with Perona–Malik degradation, trained with the same
  network, optimiser, batch size, steps and data, compared by offline metrics in
  the feature space of a locally trained classifier, next to the real-vs-real
  floor (:mod:`pdediff.study._generate`).

:func:`run_study` writes ``results.json`` (every number with its settings,
versions, seeds and wall times; :data:`RESULTS_SCHEMA`), ``results.md`` and
figures, and keeps every finished arm under ``cache/`` and every trained
model under ``runs/`` so that an interrupted study resumes where it stopped.
Needs the ``study`` extra (``pip install "pdediff[study]"``: PyTorch,
scikit-image, scikit-learn, jsonschema, and BM3D, which is skipped with a note
when absent).
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import datetime, timezone
from typing import Literal

from ._common import machine, versions
from ._denoise import LEVELS, METHODS, TEST_IMAGES, TRAIN_IMAGES, DenoiseSettings
from ._generate import PROCESSES, GenerateSettings
from ._report import RESULTS_SCHEMA, load_results, validate_results

__all__ = ["run_study", "load_results", "validate_results", "RESULTS_SCHEMA", "DenoiseSettings",
           "GenerateSettings", "TEST_IMAGES", "TRAIN_IMAGES", "LEVELS", "METHODS", "PROCESSES"]

KINDS = ("denoise", "generate", "all")


def run_study(
    kind: Literal["denoise", "generate", "all"] = "all",
    *,
    out: str | os.PathLike,
    quick: bool = False,
    seeds: int | None = None,
    steps: int | None = None,
    data: str | tuple[str, ...] | None = None,
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
    out : path
        Output folder (created): ``results.json``, ``results.md``,
        ``figures/``, and ``cache/`` + ``runs/`` for resuming.  Rerunning into
        the same folder with the same settings reuses every finished arm.
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
    data : str or tuple of str, optional
        Generation data: ``"digits"`` (scikit-learn, 8 × 8, labelled),
        ``"shapes"`` (seeded synthetic 16 × 16), or a folder of images / an
        ``.npy`` (see :func:`pdediff.torch.load_dataset`).  Default ``"digits"``.
    figures : bool
        Write the figures (crops, sample grids, trajectories).
    progress : bool
        tqdm progress bars.
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

    Examples
    --------
    >>> from pdediff.study import run_study
    >>> results = run_study("denoise", out="study-out", quick=True, seeds=1)  # doctest: +SKIP
    >>> sorted(results["denoise"]["methods"])[:3]  # doctest: +SKIP
    ['bilateral', 'bm3d', 'cold_pm']
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if seeds is None:
        seeds = 1 if quick else 3
    if isinstance(seeds, bool) or int(seeds) != seeds or int(seeds) < 1:
        raise ValueError(f"seeds must be a positive integer; got {seeds!r}")
    seeds = int(seeds)
    if steps is not None and (isinstance(steps, bool) or int(steps) != steps or int(steps) < 1):
        raise ValueError(f"steps must be a positive integer; got {steps!r}")
    if threads is not None and (isinstance(threads, bool) or int(threads) != threads or int(threads) < 1):
        raise ValueError(f"threads must be a positive integer; got {threads!r}")
    with _threads(threads):
        return _run(kind, out=out, quick=quick, seeds=seeds, steps=steps, data=data, figures=figures,
                    progress=progress, device=device)


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
    out = os.fspath(out)
    if not out.strip():
        raise ValueError("out must name a folder; got an empty string")
    os.makedirs(out, exist_ok=True)
    dn = DenoiseSettings.quick() if quick else DenoiseSettings()
    gen = GenerateSettings.quick() if quick else GenerateSettings()
    if steps is not None:
        dn, gen = replace(dn, steps=int(steps)), replace(gen, steps=int(steps))
    if data is not None:
        gen = replace(gen, data=(data,) if isinstance(data, (str, os.PathLike)) else tuple(data))
    results = {"schema": "pdediff-study/1", "kind": kind, "quick": bool(quick),
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
    validate_results(results)
    _report.write_json(results, os.path.join(out, "results.json"))
    _report.write_markdown(results, os.path.join(out, "results.md"))
    return results
