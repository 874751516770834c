"""The run-folder format: ``run.json`` written, read and compared, and the records it is made of.

A run folder holds ``run.json`` (every setting, as plain JSON: the process,
the model, the training settings, the data with a SHA-256 of the images, the
versions; after training a ``result``) and ``checkpoint.pt``
(:func:`pdediff.torch.training.load_checkpoint`).  This module knows the JSON
side; :mod:`pdediff.torch.runs` trains and loads runs with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ParameterError, RunError
from ..io import atomic_path
from .data import DATASETS, load_dataset

__all__ = ["RUN_FILE", "RUN_FORMAT", "RUN_VERSION", "COMPARED", "RunSettingsError"]

RUN_FILE = "run.json"
RUN_FORMAT = "pdediff-run"
RUN_VERSION = 1
#: Parts of run.json that must be equal for a rerun to resume (training.steps may grow).
COMPARED = ("process", "model", "training", "data")


class RunSettingsError(RunError, ParameterError):
    """A rerun's settings differ from the run's: a :class:`~pdediff.errors.RunError` that names the settings.

    Its template names each differing setting as it stands in ``run.json``
    (``{training.lr}``, ``{model.base}``, ``{process.config.kappa}``, ...);
    :attr:`param` is the first of them.
    """


def versions() -> dict:
    """The versions recorded in ``run.json``: pdediff, torch, NumPy, Python."""
    from .. import __version__

    return {"pdediff": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def data_record(data: Any) -> dict:
    """The data part of run.json (without shape and hash), from a spec string/path or a dict."""
    opts = {"seed": 0, "test_fraction": 0.3, "n": None, "size": None}
    if isinstance(data, dict):
        extra = sorted(set(data) - {"spec", *opts})
        if "spec" not in data or extra:
            raise ParameterError("{data} as a dict takes 'spec' and optionally 'seed', 'test_fraction', 'n', 'size'"
                                 + (f"; got unknown {', '.join(map(repr, extra))}" if extra
                                    else "; 'spec' is missing"), param="data")
        opts |= {k: data[k] for k in opts if k in data}
        spec = data["spec"]
    else:
        spec = data
    if not isinstance(spec, (str, os.PathLike)):
        raise ParameterError(f"{{data}} must be 'digits', 'shapes', a folder of images or a .npy file; got "
                             f"{type(spec).__name__}", param="data")
    spec = os.fspath(spec)
    if spec not in DATASETS and Path(spec).expanduser().exists():  # else load_dataset says what is wrong
        spec = str(Path(spec).expanduser().resolve())
    size = opts["size"]
    if size is not None:
        size = [int(size), int(size)] if isinstance(size, (int, np.integer)) else [int(v) for v in size]
    return {"spec": spec, "split": "train", "seed": int(opts["seed"]),
            "test_fraction": float(opts["test_fraction"]),
            "n": None if opts["n"] is None else int(opts["n"]), "size": size}


def load_train_data(rec: dict) -> torch.Tensor:
    """The training images a data record names."""
    images, _ = load_dataset(rec["spec"], split=rec.get("split", "train"), seed=rec["seed"],
                             test_fraction=rec["test_fraction"], n=rec["n"], size=rec["size"])
    return images


def sha256(images: torch.Tensor) -> str:
    """SHA-256 of the images' bytes (C order), as stored in ``data.sha256``."""
    return hashlib.sha256(images.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def _literal(text: str) -> str:
    """A value for a message template: braces (which would read as references) as parentheses."""
    return text.replace("{", "(").replace("}", ")")


def check_resumable(folder: Path, old: dict, new: dict) -> None:
    """Refuse (:class:`RunSettingsError`) a rerun whose settings differ from the run's, naming every difference."""
    a = _flatten({k: old.get(k) for k in COMPARED})
    b = _flatten({k: new.get(k) for k in COMPARED})
    diffs, keys = [], []
    for k in sorted(set(a) | set(b)):
        if k == "training.steps":
            continue
        if a.get(k, "<absent>") != b.get(k, "<absent>"):
            if k == "data.sha256":
                diffs.append("{data} (the training images' content changed)")
                keys.append("data")
            else:
                was, now = _literal(repr(a.get(k, "<absent>"))), _literal(repr(b.get(k, "<absent>")))
                diffs.append(f"{{{k}}}: {was} in the run, {now} now")
                keys.append(k)
    if diffs:
        raise RunSettingsError(f"run {_literal(str(folder))} was trained with other settings: {'; '.join(diffs)}. "
                               "Rerun with the run's settings to resume (only steps may grow), or choose another "
                               "output folder", param=keys[0])


def write_json(path: Path, obj: dict) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


def read_run_json(folder: Path) -> dict:
    """``folder/run.json``, checked to be a pdediff run description with its compared parts (:class:`RunError`)."""
    p = folder / RUN_FILE
    try:
        rec = json.loads(p.read_text())
    except FileNotFoundError:
        raise RunError(f"{folder} is not a run folder (no {RUN_FILE}); train one with pdediff train / train_run"
                       ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunError(f"{p}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise RunError(f"{p} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(rec, dict) or rec.get("format") != RUN_FORMAT:
        raise RunError(f"{p} is not a pdediff run description (no \"format\": \"{RUN_FORMAT}\")")
    missing = [k for k in COMPARED if not isinstance(rec.get(k), dict)]
    if missing:
        raise RunError(f"{p} lacks {', '.join(missing)}")
    return rec
