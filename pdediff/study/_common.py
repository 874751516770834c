"""What both studies share: the per-arm cache that makes a study resumable, timing, versions."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from contextlib import contextmanager
from typing import Any, Callable

from ..io import atomic_path


def versions() -> dict[str, str]:
    """Versions of everything that can change a number in the results."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("pdediff", "numpy", "scipy", "numba", "torch", "scikit-image", "scikit-learn", "bm3d"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def machine() -> dict[str, Any]:
    """The machine the numbers were measured on (CPU model, logical cores, GPU if used)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu": cpu, "logical_cores": os.cpu_count(), "platform": platform.platform()}
    try:
        info["usable_cores"] = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        pass
    return info


def key_of(*parts: Any) -> str:
    """A short stable file name for one arm's settings."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ArmCache:
    """One JSON file per finished arm under ``folder``: an interrupted study skips what it has done.

    An arm is the smallest unit of work whose result is worth keeping (one
    method on one image at one noise level and seed; one trained process and
    its metrics).  Its key hashes every setting that changes its numbers, so a
    rerun with other settings never reuses a stale result.
    """

    def __init__(self, folder: str | os.PathLike | None) -> None:
        self.folder = None if folder is None else os.fspath(folder)
        if self.folder is not None:
            os.makedirs(self.folder, exist_ok=True)
        self.hits = 0
        self.misses = 0

    def get_or_run(self, name: str, settings: dict, run: Callable[[], dict]) -> dict:
        path = None
        if self.folder is not None:
            path = os.path.join(self.folder, f"{name}-{key_of(name, settings)}.json")
            if os.path.exists(path):
                try:
                    with open(path) as f:
                        stored = json.load(f)
                    if stored.get("settings") == json.loads(json.dumps(settings, default=str)):
                        self.hits += 1
                        return stored["result"]
                except (OSError, ValueError, KeyError):
                    pass  # a damaged cache entry is recomputed
        self.misses += 1
        result = run()
        if path is not None:
            with atomic_path(path) as tmp:
                with open(tmp, "w") as f:
                    json.dump({"settings": settings, "result": result}, f, default=float)
        return result


@contextmanager
def timed(into: dict, key: str = "seconds"):
    """Store the wall time of the block in ``into[key]``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        into[key] = time.perf_counter() - t0
