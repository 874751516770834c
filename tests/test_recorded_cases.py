"""Every public solver's result equals the one recorded before the issue-19 refactor.

Bit for bit on a CPU of the recording kind (same LLVM host CPU name: the
compiled kernels are the same machine code); elsewhere, where another vector
width may change the order of a reduction, to a few ulp.
"""
from __future__ import annotations

import numpy as np
import pytest

import recorded_cases as rc

RECORDED = np.load(rc.PATH)
SAME_CPU = str(RECORDED["__machine__"]).split()[-1] == rc._cpu_name()
CASES = dict(rc.cases())


def test_every_case_is_recorded():
    assert sorted(CASES) == sorted(k for k in RECORDED.files if k != "__machine__")


@pytest.mark.parametrize("name", sorted(CASES))
def test_recorded(name):
    got = np.asarray(CASES[name]())
    want = RECORDED[name]
    assert got.dtype == want.dtype and got.shape == want.shape
    if SAME_CPU:
        np.testing.assert_array_equal(got, want)
    else:
        eps = np.finfo(want.dtype).eps if want.dtype.kind == "f" else 0
        scale = np.abs(want).max() if want.size else 1
        np.testing.assert_allclose(got, want, rtol=0, atol=64 * eps * scale)
