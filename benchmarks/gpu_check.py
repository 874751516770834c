"""One script for a lent GPU: run the GPU test group, then time the kernels and print one table.

Usage (on the GPU machine, from the repository root)::

    python benchmarks/gpu_check.py            # tests + timings, under 5 minutes on an H200
    python benchmarks/gpu_check.py --no-tests # timings only

Times, at 2-D 4096² and 3-D 256³ in float32 and float64: the explicit heat
step, the Perona–Malik iteration (exponential), one ADI step, one AOS step and
the spectral solve.  Each row gives the time, the effective bandwidth (bytes
read + written once per cell / time), its ratio to the device copy bandwidth
measured in the same run (a CuPy device-to-device copy), the ratio to the
CPU path on this machine, and for the spectral solve the ratio to a bare
``cupyx.scipy.fft`` transform pair.
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


def gpu_time(fn, reps=10):
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


def cpu_time(fn, reps=2):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-tests", action="store_true")
    ap.add_argument("--no-cpu", action="store_true", help="skip the (slow) CPU reference timings")
    args = ap.parse_args()
    if not args.no_tests:
        print("== GPU test group (tests/gpu) ==", flush=True)
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-x", "tests/gpu"], cwd=ROOT)
        if rc != 0:
            print(f"GPU tests failed (exit {rc})")
            return rc

    import cupy as cp
    import cupyx.scipy.fft as cfft

    import pdediff
    from pdediff.kernels.gpu.backend import get_gpu_backend

    be = get_gpu_backend()
    print(f"\n== timings on {cp.cuda.runtime.getDeviceProperties(0)['name'].decode()} ==")
    header = f"{'case':<14}{'kernel':<16}{'time ms':>10}{'GB/s':>9}{'/copy BW':>10}{'CPU/GPU':>10}{'/fft pair':>11}"
    print(header)
    print("-" * len(header))
    for shape in [(4096, 4096), (256, 256, 256)]:
        for dtype in (np.float32, np.float64):
            case = f"{'x'.join(map(str, shape))} {np.dtype(dtype).name[-2:]}"
            host = np.random.default_rng(0).random(shape).astype(dtype)
            u = cp.asarray(host)
            v = cp.empty_like(u)
            t_copy = gpu_time(lambda: cp.copyto(v, u))
            bw_copy = 2 * u.nbytes / t_copy
            ex = pdediff.ExplicitHeatSolver(shape, dtype, dt=0.1)
            im = pdediff.ImplicitHeatSolver(shape, dtype, dt=1.0)
            sp = pdediff.SpectralHeatSolver(shape, dtype)
            cases = {
                "explicit step": (lambda: ex.step(u, 1), lambda: ex.step(host, 1), 2),
                "Perona-Malik": (
                    lambda: pdediff.perona_malik(u, num_iter=1, kappa=0.1, sigma=0, check_finite=False),
                    lambda: pdediff.perona_malik(host, num_iter=1, kappa=0.1, sigma=0, check_finite=False), 3),
                "ADI step": (lambda: im.step(u, 1), lambda: im.step(host, 1), None),
                "AOS step": (
                    lambda: pdediff.perona_malik(u, num_iter=1, kappa=0.1, sigma=0, method="aos", check_finite=False),
                    lambda: pdediff.perona_malik(host, num_iter=1, kappa=0.1, sigma=0, method="aos",
                                                 check_finite=False), None),
                "spectral solve": (lambda: sp.evolve(u, 1.0), lambda: sp.evolve(host, 1.0), None),
            }
            t_pair = gpu_time(lambda: cfft.idctn(cfft.dctn(u, type=2, norm="ortho"), type=2, norm="ortho",
                                                 overwrite_x=True))
            for name, (g, c, passes) in cases.items():
                tg = gpu_time(g)
                gbs = 2 * u.nbytes / tg / 1e9
                tc = float("nan") if args.no_cpu else cpu_time(c)
                pair = f"{tg / t_pair:>11.2f}" if name == "spectral solve" else f"{'':>11}"
                roof = f"{(2 * u.nbytes / tg) / bw_copy:>10.2f}" if passes else f"{'':>10}"
                print(f"{case:<14}{name:<16}{1e3 * tg:>10.2f}{gbs:>9.0f}{roof}{tc / tg:>10.1f}{pair}", flush=True)
            print(f"{case:<14}{'device copy':<16}{1e3 * t_copy:>10.2f}{bw_copy / 1e9:>9.0f}")
    _ = be
    return 0


if __name__ == "__main__":
    sys.exit(main())
