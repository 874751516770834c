"""The shared scalar formulas: plain Python, the CPU build and (under the simulator) the GPU build agree."""

import math

import numpy as np
import pytest

from pdediff.kernels import formulas as plain
from pdediff.kernels.cpu._common import F as cpu


@pytest.mark.parametrize("bc", [plain.NEUMANN, plain.DIRICHLET, plain.PERIODIC])
@pytest.mark.parametrize("n", [1, 2, 5])
def test_neighbour_rule(n, bc):
    """Ghost cells of docs/conventions.rst §2, written out case by case."""
    for i in range(n):
        for side in (-1, 1):
            j = i + side
            if 0 <= j < n:
                expect = (j, 1.0)
            elif bc == plain.PERIODIC:
                expect = (j % n, 1.0)
            elif bc == plain.DIRICHLET:
                expect = (i, -1.0)
            else:
                expect = (i, 1.0)
            assert plain.neighbour(i, n, bc, side) == expect
            assert cpu.neighbour(i, n, bc, side) == expect


X = [0.0, 1e-12, 0.3, 1.0, 1.0000001, 2.5, 86.9, 87.5, 700.0, 709.0, 1e30, math.inf, math.nan]


@pytest.mark.parametrize("code,name", [(0, "exponential"), (1, "rational"), (2, "tukey")])
def test_conductances_agree_with_the_definition(code, name):
    for x in X:
        if math.isnan(x) or math.isinf(x):
            want = 0.0  # a non-finite argument conducts nothing (inf: the limit is 0 too)
        elif name == "exponential":
            want = math.exp(-x)
        elif name == "rational":
            want = 1 / (1 + x)
        else:
            want = 0.5 * (1 - x) ** 2 if x <= 1 else 0.0
        assert plain.conductance(x, code, 1.0, 0.5) == pytest.approx(want, rel=1e-15, abs=1e-300)
        got = cpu.conductance(x, code, 1.0, 0.5)
        # the CPU exponential is a polynomial flushed to 0 below float64's normal range
        assert got == pytest.approx(want, rel=1e-14, abs=3e-308)
        got32 = cpu.conductance(np.float32(x), 3 if code == 0 else code, np.float32(1), np.float32(0.5))
        assert isinstance(got32, (float, np.floating))
        assert got32 == pytest.approx(want, rel=2e-6, abs=2e-38)


def test_flux_forms(rng):
    c, vm, vp, fm, fp = rng.standard_normal(5)
    assert cpu.axis_flux(c, vm, vp, fm, fp) == pytest.approx(fm * (vm - c) + fp * (vp - c))
    assert cpu.second_difference(c, vm, vp) == pytest.approx(cpu.axis_flux(c, vm, vp, 1.0, 1.0))
    u = rng.standard_normal((3, 4, 5))
    # around3 at a corner with Dirichlet on axis 0, periodic on axis 2
    vals = cpu.around3(u, 0, 1, 4, plain.DIRICHLET, plain.NEUMANN, plain.PERIODIC)
    assert vals == (u[0, 1, 4], -u[0, 1, 4], u[1, 1, 4], u[0, 0, 4], u[0, 2, 4], u[0, 1, 3], u[0, 1, 0])
