"""One script for a lent GPU: run the GPU tests, time the kernels, print the GPU targets of the benchmark issue.

Usage (on the GPU machine, from the repository root, with ``pip install -e ".[dev,gpu-cu12]"`` or
``[dev,gpu-cu13]`` matching ``nvidia-smi``)::

    python benchmarks/gpu_check.py            # tests + timings: about 5 minutes, under 10 on an H100/H200
    python benchmarks/gpu_check.py --quick    # float32 only, fewer repetitions (about 2 minutes)
    python benchmarks/gpu_check.py --no-tests # timings only

Rows, at 2-D 4096² and 3-D 256³ (float32, and float64 without ``--quick``), each timed on the device with
CUDA events (median of the repetitions):

* ``device copy``: ``cupy.copyto``, 2 passes (read + write): the roofline;
* ``explicit step``: ``ExplicitHeatSolver.step(u, 2) / 2`` (two steps ping-pong between ``u`` and the
  solver's buffer, so no copy-back): 2 passes per step;
* ``Perona-Malik``: one explicit Perona–Malik kernel step (``v = u``, ``sigma = 0``: reads ``u``, writes
  ``out``, 2 passes; the public ``perona_malik`` adds its own input copy, not counted here), next to the
  CPU kernel on 2 threads (the 2-core machine of the targets);
* ``ADI step``, ``AOS step`` (the public ``perona_malik(..., method="aos", num_iter=1)``), ``spectral
  solve`` (``SpectralHeatSolver.evolve``): times, as ratios to the explicit step and, for the spectral
  solve, to a bare ``cupyx.scipy.fft`` DCT-II pair.

``GB/s`` = passes × array bytes / time; ``/copy`` = that over the device copy bandwidth measured in the
same run.  The closing table checks the targets: explicit step ≥ 0.7 × copy bandwidth, spectral solve
≤ 1.2 × the FFT pair, Perona–Malik ≥ 50 × the 2-thread CPU kernel at 4096².
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TESTS = ["tests/gpu", "tests/test_backend_contract.py", "tests/test_gpu_ptx.py"]


def gpu_time(fn, reps=10):
    """Median device time of ``fn()`` in seconds (CUDA events on the current stream, after one warm-up)."""
    import cupy as cp

    fn()
    cp.cuda.Device().synchronize()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    ts = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        end.synchronize()
        ts.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
    return float(np.median(ts))


def cpu_time(fn, reps=3):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def measure(shape, dtype, *, reps=10, cpu_threads=2, cpu=True):
    """Rows ``{"case", "kernel", "time", "passes", "ratio"}`` for one shape and dtype (see the module doc)."""
    import cupy as cp
    import cupyx.scipy.fft as cfft
    import numba

    import pdediff
    from pdediff.kernels.cpu.backend import CPU
    from pdediff.kernels.gpu.backend import get_gpu_backend

    be = get_gpu_backend()
    case = f"{'x'.join(map(str, shape))} {np.dtype(dtype).name}"
    host = np.random.default_rng(0).random(shape).astype(dtype)
    u = cp.asarray(host)
    v = cp.empty_like(u)
    rows = []

    def row(kernel, t, passes=None, ratio=None, ref=None):
        rows.append({"case": case, "kernel": kernel, "time": t, "passes": passes, "nbytes": u.nbytes,
                     "ratio": ratio, "ref": ref})
        return t

    t_copy = row("device copy", gpu_time(lambda: cp.copyto(v, u), reps), 2)
    ex = pdediff.ExplicitHeatSolver(shape, dtype, dt=0.1)
    t_ex = row("explicit step", gpu_time(lambda: ex.step(u, 2), reps) / 2, 2)

    u4, o4 = u.reshape((1,) + shape), v.reshape((1,) + shape)
    ih = (1.0,) * len(shape)
    t_pm = gpu_time(lambda: be.pm_step(u4, u4, o4, 0.1, ih, 100.0, 0), reps)
    t_cpu = float("nan")
    if cpu:
        h4, ho = host.reshape((1,) + shape), np.empty((1,) + shape, dtype)
        old = numba.get_num_threads()
        numba.set_num_threads(min(cpu_threads, numba.config.NUMBA_NUM_THREADS))
        try:
            t_cpu = cpu_time(lambda: CPU.pm_step(h4, h4, ho, 0.1, ih, 100.0, 0))
        finally:
            numba.set_num_threads(old)
    row("Perona-Malik", t_pm, 2, t_cpu / t_pm, f"x CPU kernel ({cpu_threads} threads)")

    im = pdediff.ImplicitHeatSolver(shape, dtype, dt=1.0)
    row("ADI step", gpu_time(lambda: im.step(u, 1), reps), None, None, None)
    rows[-1]["ratio"], rows[-1]["ref"] = rows[-1]["time"] / t_ex, "x explicit step"
    t_aos = gpu_time(lambda: pdediff.perona_malik(u, num_iter=1, kappa=0.1, sigma=0, method="aos",
                                                  check_finite=False), reps)
    row("AOS step", t_aos, None, t_aos / t_ex, "x explicit step")
    sp = pdediff.SpectralHeatSolver(shape, dtype)
    t_pair = gpu_time(lambda: cfft.idctn(cfft.dctn(u, type=2, norm="ortho"), type=2, norm="ortho",
                                         overwrite_x=True), reps)
    t_sp = gpu_time(lambda: sp.evolve(u, 1.0), reps)
    row("spectral solve", t_sp, None, t_sp / t_pair, "x FFT pair")
    for r in rows:
        r["copy_bw"] = 2 * u.nbytes / t_copy
    return rows


def format_rows(rows):
    head = f"{'case':<18}{'kernel':<16}{'time ms':>10}{'passes':>8}{'GB/s':>9}{'/copy':>8}  ratio"
    out = [head, "-" * len(head)]
    for r in rows:
        gbs = r["passes"] * r["nbytes"] / r["time"] if r["passes"] else None
        bw = f"{gbs / 1e9:>9.0f}{gbs / r['copy_bw']:>8.2f}" if gbs else f"{'':>9}{'':>8}"
        ratio = f"  {r['ratio']:.2f} {r['ref']}" if r["ratio"] is not None else ""
        out.append(f"{r['case']:<18}{r['kernel']:<16}{1e3 * r['time']:>10.3f}{r['passes'] or '':>8}{bw}{ratio}")
    return "\n".join(out)


def targets(rows):
    """``(target, measured, ok)`` for the GPU targets of the benchmark issue, over every measured case."""
    out = []
    for r in rows:
        if r["kernel"] == "explicit step":
            frac = r["passes"] * r["nbytes"] / r["time"] / r["copy_bw"]
            out.append((f"explicit step >= 0.7 x copy BW ({r['case']})", f"{frac:.2f}", frac >= 0.7))
        elif r["kernel"] == "spectral solve":
            out.append((f"spectral <= 1.2 x FFT pair ({r['case']})", f"{r['ratio']:.2f}", r["ratio"] <= 1.2))
        elif r["kernel"] == "Perona-Malik" and r["case"].startswith("4096x4096"):
            out.append((f"PM >= 50 x 2-thread CPU kernel ({r['case']})", f"{r['ratio']:.1f}", r["ratio"] >= 50))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-tests", action="store_true", help="skip the GPU test group")
    ap.add_argument("--quick", action="store_true", help="float32 only, 5 repetitions")
    ap.add_argument("--no-cpu", action="store_true", help="skip the CPU kernel timings")
    ap.add_argument("--cpu-threads", type=int, default=2, help="threads of the CPU reference kernel (default 2)")
    args = ap.parse_args(argv)
    if not args.no_tests:
        print("== GPU tests: " + " ".join(TESTS) + " ==", flush=True)
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-x", *TESTS], cwd=ROOT)
        if rc != 0:
            print(f"GPU tests failed (exit {rc})")
            return rc

    import cupy as cp

    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    print(f"\n== {name}, {props['totalGlobalMem'] / 2**30:.0f} GiB, CUDA runtime "
          f"{cp.cuda.runtime.runtimeGetVersion()}, driver {cp.cuda.runtime.driverGetVersion()} ==", flush=True)
    dtypes = (np.float32,) if args.quick else (np.float32, np.float64)
    rows = []
    for shape in [(4096, 4096), (256, 256, 256)]:
        for dtype in dtypes:
            new = measure(shape, dtype, reps=5 if args.quick else 10, cpu_threads=args.cpu_threads,
                          cpu=not args.no_cpu)
            text = format_rows(new)
            print(text if not rows else text.split("\n", 2)[-1], flush=True)  # the header once
            rows += new
    print("\n== GPU targets (issue 12) ==")
    for target, got, ok in targets(rows):
        print(f"{'PASS' if ok else 'FAIL':<6}{target:<52}{got:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
