"""Constants shared by the test modules."""

import numpy as np

BOUNDARIES = ["neumann", "dirichlet", "periodic"]
DTYPES = [np.float32, np.float64]
SHAPES = {1: (13,), 2: (9, 12), 3: (5, 6, 7)}
