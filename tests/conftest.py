import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))

# Two xdist workers share two cores: a busy-waiting OpenMP pool in torch next to Numba's
# threads in the other worker slows both down by 10-50x.  One torch thread per worker.
os.environ.setdefault("OMP_NUM_THREADS", "1")
try:
    import torch

    torch.set_num_threads(1)
except ImportError:
    pass

settings.register_profile(
    "pdediff", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile("pdediff")



@pytest.fixture
def rng():
    return np.random.default_rng(12345)
