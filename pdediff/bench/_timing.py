"""Timing: medians with IQR on the host clock or CUDA events, thread counts, and a competing busy process."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Per-call seconds: median and interquartile range over ``repeats`` samples of ``number`` calls each."""

    median: float
    iqr: float
    repeats: int
    number: int


@dataclass(frozen=True)
class Budget:
    """How hard to measure: ``repeats`` samples, each at least ``min_sample`` s of calls (at most
    ``max_number`` calls), and at most about ``max_case`` s per case (fewer repeats for slow cases)."""

    repeats: int
    min_sample: float
    max_number: int
    max_case: float


QUICK = Budget(repeats=5, min_sample=2e-3, max_number=50, max_case=0.25)
FULL = Budget(repeats=7, min_sample=5e-3, max_number=1000, max_case=20.0)


def _summary(samples: list[float], number: int) -> Timing:
    per = np.asarray(samples) / number
    q1, med, q3 = np.percentile(per, [25, 50, 75])
    return Timing(float(med), float(q3 - q1), len(samples), number)


def _plan(first: float, budget: Budget) -> tuple[int, int]:
    """Calls per sample and samples, from the time of one call."""
    first = max(first, 1e-7)
    number = int(min(budget.max_number, max(1, math.ceil(budget.min_sample / first))))
    repeats = int(max(1, min(budget.repeats, budget.max_case // (first * number))))
    return number, repeats


def time_host(fn: Callable[[], object], budget: Budget) -> Timing:
    """Wall time (``perf_counter``) of ``fn``; the first call (compilation, caches) is not counted."""
    fn()
    t0 = time.perf_counter()
    fn()
    number, repeats = _plan(time.perf_counter() - t0, budget)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append(time.perf_counter() - t0)
    return _summary(samples, number)


def time_cuda(fn: Callable[[], object], budget: Budget) -> Timing:
    """Device time of ``fn`` by CUDA events on the current stream (kernels are asynchronous)."""
    import cupy as cp

    fn()
    cp.cuda.Device().synchronize()
    start, end = cp.cuda.Event(), cp.cuda.Event()

    def sample(number: int) -> float:
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        return cp.cuda.get_elapsed_time(start, end) / 1e3

    number, repeats = _plan(sample(1), budget)
    return _summary([sample(number) for _ in range(repeats)], number)


@contextmanager
def numba_threads(n: int | None) -> Iterator[None]:
    """Numba's thread count for the block (restored afterwards); ``None`` leaves it."""
    if n is None:
        yield
        return
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


#: What the competing process runs: one core spinning in pure Python (no threads, no memory traffic).
_SPIN = "while True:\n    pass\n"


@contextmanager
def busy_process() -> Iterator[int]:
    """A competing process keeping one core busy for the block; yields its pid and always ends it."""
    proc = subprocess.Popen([sys.executable, "-c", _SPIN], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.2)  # let it start spinning before the first measurement
        if proc.poll() is not None:
            raise RuntimeError(f"the competing busy process exited at once (status {proc.returncode})")
        yield proc.pid
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
