"""numba.cuda kernels on CuPy arrays (optional extra ``pdediff[gpu]``); imported only for CuPy input."""
