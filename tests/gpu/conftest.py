import os

import pytest
from gpu_env import cuda_device, simulator

#: Modules that need neither the simulator nor a device (mocks, plain Python).
ANYWHERE = {"test_gpu_launch.py", "test_gpu_setup.py"}


def pytest_collection_modifyitems(config, items):
    if simulator() or cuda_device():
        return
    skip = pytest.mark.skip(reason="no CUDA device (numba.cuda.is_available() is False) and NUMBA_ENABLE_CUDASIM "
                                   "!= 1 (tests/test_gpu_simulator.py runs these under the simulator)")
    for item in items:
        path = str(item.fspath).replace(os.sep, "/")
        if "tests/gpu/" in path and os.path.basename(path) not in ANYWHERE:
            item.add_marker(skip)
