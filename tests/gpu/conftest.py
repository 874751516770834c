import os

import pytest
from gpu_env import real_gpu, simulator


def pytest_collection_modifyitems(config, items):
    if simulator() or real_gpu():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU and NUMBA_ENABLE_CUDASIM != 1 (tests/test_gpu_simulator.py runs these)")
    for item in items:
        if "tests/gpu/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)
