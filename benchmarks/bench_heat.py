"""Heat solvers against the copy roofline and the tools users would otherwise run.

Run with ``make bench`` (or ``pytest benchmarks/bench_heat.py --benchmark-only -p no:xdist``).
The cases (explicit step and ``step(u, 8)``, ADI, spectral solve; NumPy,
scipy.ndimage, py-pde, SciPy banded/sparse/FFT references; 2-D 1024² and
4096², 3-D 128³ and 256³, float32 and float64) are those of ``pdediff bench``
(:mod:`pdediff.bench._registry`); the ratios and their targets are printed at the
end of the session (see ``conftest.py``).
"""

from __future__ import annotations

import pytest
from conftest import declare, run_case

CASES = declare(["heat-explicit", "heat-adi", "heat-spectral"])


@pytest.mark.parametrize("group,impl,shape,dtype", CASES)
def test_heat(record, group, impl, shape, dtype):
    run_case(record, group, impl, shape, dtype)
