"""Numba CPU kernels.  Each kernel has a plain NumPy/SciPy reference in ``tests/``."""
