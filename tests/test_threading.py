"""The adaptive threading policy (kernels/cpu/_common.py): its decisions under an injected clock, and
identical results whichever build runs."""

import numpy as np
import pytest

import pdediff
import pdediff.kernels.cpu._common as common
import pdediff.kernels.cpu.backend  # registers the kernels
from pdediff.kernels.cpu._common import ThreadPolicy


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class _FakeBuild:
    """Stands for a compiled build: advances the clock by its cost; ``overloads`` grows on a 'compile'."""

    def __init__(self, clock, cost):
        self.clock, self.cost, self.overloads, self.calls = clock, cost, {}, 0

    def __call__(self):
        self.calls += 1
        self.clock.t += self.cost


class _FakeKernel:
    def __init__(self, clock, serial, parallel):
        self.serial, self.parallel = _FakeBuild(clock, serial), _FakeBuild(clock, parallel)


def _run(pol, k, n):
    """``n`` calls through the policy; returns the builds chosen (True = parallel)."""
    chosen = []
    for _ in range(n):
        f = pol.wrap(k, "key", pol.choose("key"))
        chosen.append(f.parallel)
        f()
    return chosen


def test_quiet_machine_settles_on_parallel_and_probes_rarely():
    clock = _Clock()
    pol = ThreadPolicy("adaptive", clock, probe_min=4, probe_max=32)
    k = _FakeKernel(clock, serial=2.0, parallel=1.0)
    chosen = _run(pol, k, 200)
    assert chosen[0] is True and chosen[1] is False  # one measurement of each build, then the faster
    # after that only probes run serially, at intervals doubling 4, 8, 16, 32, 32...
    serial_calls = [i for i, p in enumerate(chosen) if not p]
    gaps = np.diff(serial_calls)
    # (2 - 1) / 0.05 = 20: a probe twice as slow runs at most every 20 calls, then doubling to the cap
    assert list(gaps[:2]) == [20, 32] and set(gaps[2:]) == {32}
    assert k.serial.calls <= 2 + 200 // 32 + 1


def test_load_switches_to_serial_and_back():
    clock = _Clock()
    pol = ThreadPolicy("adaptive", clock, probe_min=4, probe_max=64)
    k = _FakeKernel(clock, serial=2.0, parallel=1.0)
    _run(pol, k, 100)
    assert pol.state["key"].parallel
    k.parallel.cost = 8.0  # a competing process: the parallel build starves
    chosen = _run(pol, k, 100)
    assert chosen.index(False) <= 2  # the average exceeds the serial estimate within a call or two
    assert sum(chosen) <= 2 + 100 // 4  # afterwards parallel runs only as (backed-off) probes
    assert not pol.state["key"].parallel
    k.parallel.cost = 1.0  # the competitor is gone: the next probe finds the parallel build faster
    chosen = _run(pol, k, 100)
    first = chosen.index(True)
    assert all(chosen[first + 1 : first + 4]) and pol.state["key"].parallel


def test_compilation_is_not_measured():
    clock = _Clock()
    pol = ThreadPolicy("adaptive", clock)
    k = _FakeKernel(clock, serial=2.0, parallel=1.0)
    k.parallel.cost = 1000.0  # JIT compilation: a new overload appears during the call
    real = _FakeBuild.__call__
    k.parallel.__class__ = type("Compiling", (_FakeBuild,), {
        "__call__": lambda self: (self.overloads.setdefault(len(self.overloads), None), real(self))})
    pol.choose("key")
    pol.wrap(k, "key", True)()
    assert pol.state["key"].est == [None, None]
    k.parallel.__class__ = _FakeBuild
    k.parallel.cost = 1.0
    pol.wrap(k, "key", True)()
    assert pol.state["key"].est == [None, 1.0]


def test_modes_and_validation(monkeypatch):
    with pytest.raises(ValueError, match="threading mode must be one of"):
        ThreadPolicy("fast")
    kb = common.kernel_builds("heat", 2, "const")
    monkeypatch.setattr(common.numba.config, "NUMBA_NUM_THREADS", 2)
    old = common.set_threading("parallel")
    try:
        assert kb.for_size(1 << 20) is kb.parallel
        assert kb.for_size(16) is kb.serial  # below PARALLEL_MIN_CELLS: always serial
        common.set_threading("serial")
        assert kb.for_size(1 << 20) is kb.serial
        common.set_threading("adaptive")
        f = kb.for_size(1 << 20, "f")
        assert f.parallel in (True, False) and f is not kb.serial and f is not kb.parallel  # a timed wrapper
        assert kb.for_size(16) is kb.serial
    finally:
        common._POLICY = old


def _workload(rng):
    img = rng.random((70, 90)).astype(np.float32)
    vol = rng.random((20, 21, 22))
    rgb = rng.random((40, 50, 3))
    return (
        pdediff.perona_malik(img, num_iter=3, kappa=0.1),  # Catté smoothing + fused step, float32
        pdediff.perona_malik(vol, num_iter=2, kappa=0.1, sigma=1.0),  # 3-D, float64
        pdediff.perona_malik(rgb, num_iter=2, kappa=0.1, channel_axis=-1, method="aos"),
        pdediff.solve_heat(vol, 0.5, method="explicit"),
        pdediff.solve_heat(img, 0.5, method="implicit"),
    )


def test_results_identical_whichever_build_runs(rng, monkeypatch):
    """Serial, parallel and adaptive (switching between the two on the way) give the same bits."""
    monkeypatch.setattr(common, "PARALLEL_MIN_CELLS", 64)  # small arrays take the policy's path
    monkeypatch.setattr(common.numba.config, "NUMBA_NUM_THREADS", max(2, common.numba.config.NUMBA_NUM_THREADS))
    old = common._POLICY
    results = []
    try:
        for mode in ("serial", "parallel", "adaptive", "adaptive"):
            common.set_threading(mode)
            results.append(_workload(np.random.default_rng(5)))
    finally:
        common._POLICY = old
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_kappa_passes_follow_the_threading_policy(monkeypatch):
    """The kappa estimate's radix passes are chosen by the policy like every other kernel (a starved threaded
    build ran 2.2x its serial time under load), and either build gives the same estimate."""
    import pdediff.kernels.cpu.backend as be_mod
    from pdediff.kernels.cpu import _common

    v = np.random.default_rng(0).random((1, 256, 256))
    asked = []
    real = be_mod.kernel

    def spy(op, *args):
        asked.append(op)
        return real(op, *args)

    monkeypatch.setattr(be_mod, "kernel", spy)
    results = []
    for mode in ("serial", "parallel"):
        old = _common.set_threading(mode)
        try:
            results.append(be_mod.CPU.face_gradient_mad(v, (1.0, 1.0)))
        finally:
            _common._POLICY = old
    assert "kappa_pass" in asked
    assert results[0][:2] == results[1][:2]
