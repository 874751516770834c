import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile(
    "pdediff", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile("pdediff")

BOUNDARIES = ["neumann", "dirichlet", "periodic"]
DTYPES = [np.float32, np.float64]
SHAPES = {1: (13,), 2: (9, 12), 3: (5, 6, 7)}


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
