"""Where the GPU tests can run: Numba's CUDA simulator, a CUDA device (numba.cuda), CuPy on that device."""

import os


def simulator() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def cuda_device() -> bool:
    """A real CUDA device that numba.cuda can launch on (CuPy not needed)."""
    if simulator():
        return False
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - missing driver, broken install: no device
        return False


def cupy_available() -> bool:
    try:
        import cupy  # noqa: F401
    except Exception:  # noqa: BLE001 - a CuPy built for another CUDA fails in many ways
        return False
    return True


def real_gpu() -> bool:
    return cuda_device() and cupy_available()


def cupy_skip_reason() -> str | None:
    """Why the CuPy tests cannot run here, naming the missing piece; ``None`` when they can."""
    if simulator():
        return "under the CUDA simulator (it cannot run CuPy)"
    if not cupy_available():
        return 'no CuPy (pip install "pdediff[gpu-cu12]" or "pdediff[gpu-cu13]")'
    if not cuda_device():
        return "no CUDA device (numba.cuda.is_available() is False)"
    return None
