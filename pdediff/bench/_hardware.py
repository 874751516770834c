"""The machine the numbers come from: CPU model, cores, caches, threading settings; GPU when present."""

from __future__ import annotations

import os
import platform
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _size_bytes(text: str) -> int | None:
    text = text.strip().upper()
    mult = {"K": 1024, "M": 1024**2, "G": 1024**3}
    try:
        return int(text[:-1]) * mult[text[-1]] if text and text[-1] in mult else int(text)
    except ValueError:
        return None


def _caches() -> list[dict[str, Any]]:
    """Cache levels of CPU 0 from sysfs (Linux): level, type, size of one instance, CPUs sharing it."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    out = []
    try:
        entries = sorted(e for e in os.listdir(base) if e.startswith("index"))
    except OSError:
        return out
    for e in entries:
        def read(name, e=e):
            try:
                with open(os.path.join(base, e, name)) as f:
                    return f.read().strip()
            except OSError:
                return None

        level, kind, size = read("level"), read("type"), read("size")
        shared = read("shared_cpu_list")
        if level is None or size is None:
            continue
        out.append({"level": int(level), "type": (kind or "").lower(), "size_bytes": _size_bytes(size),
                    "shared_cpus": shared})
    return out


def cpu_info() -> dict[str, Any]:
    import numba

    flags = _cpu_flags()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        usable = os.cpu_count()
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        layer = None
    return {
        "model": _cpu_model(),
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "caches": _caches(),
        "simd": [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f") if f in flags],
        "numba_threads": int(numba.config.NUMBA_NUM_THREADS),
        "numba_threading_layer": layer,
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_WAIT_POLICY",
                                                 "NUMBA_THREADING_LAYER")},
    }


def gpu_available() -> tuple[bool, str]:
    """``(True, "")`` when CuPy imports and sees a CUDA device, else ``(False, why)`` in one line."""
    try:
        import cupy
    except ImportError:
        return False, 'CuPy is not installed (pip install "pdediff[gpu]")'
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - CUDA driver errors come in many types
        return False, f"CuPy sees no CUDA device ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    if n < 1:
        return False, "CuPy sees no CUDA device"
    try:
        from numba import cuda

        if not cuda.is_available():
            return False, "numba.cuda sees no CUDA device (pdediff's GPU kernels need it)"
    except ImportError:
        return False, 'numba-cuda is not installed (pip install "pdediff[gpu]")'
    return True, ""


def gpu_info() -> dict[str, Any] | None:
    ok, _ = gpu_available()
    if not ok:
        return None
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"]

    def version(v: int) -> str:
        return f"{v // 1000}.{(v % 1000) // 10}"

    return {"name": name.decode() if isinstance(name, bytes) else str(name),
            "memory_bytes": int(props["totalGlobalMem"]),
            "cuda_runtime": version(cupy.cuda.runtime.runtimeGetVersion()),
            "cuda_driver": version(cupy.cuda.runtime.driverGetVersion()),
            "cupy": cupy.__version__}


def versions() -> dict[str, str | None]:
    """Versions of pdediff and of every library timed."""
    import importlib.metadata as md

    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("pdediff", "numpy", "scipy", "numba", "torch", "py-pde", "SimpleITK", "medpy",
                "opencv-contrib-python-headless", "scikit-image", "cupy-cuda12x"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out
