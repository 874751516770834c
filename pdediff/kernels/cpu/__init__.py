"""Numba CPU kernels.  Each kernel has a plain NumPy/SciPy reference in ``tests/``."""

from ._common import threading_policy  # noqa: F401  (public: the policy in force, e.g. to run kernels serial)
