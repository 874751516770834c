"""The GPU kernels, checked on the CPU: tests/gpu and the backend contract suite under Numba's CUDA
simulator, in a child process.

The simulator must be switched on before numba.cuda is imported, hence the
separate process (NUMBA_ENABLE_CUDASIM=1).
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_kernels_under_cuda_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", str(ROOT / "tests" / "gpu"),
         str(ROOT / "tests" / "test_backend_contract.py")],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )
    tail = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and " failed" not in proc.stdout, tail
