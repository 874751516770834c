"""Compute kernels, one subpackage per backend.

``cpu``: Numba (``cache=True``) kernels on NumPy arrays.  ``gpu`` (optional):
``numba.cuda`` kernels on CuPy arrays.  Solvers never import a backend
directly; they go through :mod:`pdediff._backend`.
"""
