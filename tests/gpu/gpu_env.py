"""Where the GPU tests can run: Numba's CUDA simulator, or a real GPU with CuPy."""

import os


def simulator() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def real_gpu() -> bool:
    if simulator():
        return False
    try:
        import cupy  # noqa: F401
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - missing driver, broken install: no GPU
        return False
