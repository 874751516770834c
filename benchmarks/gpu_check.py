"""One command for a lent GPU: the GPU tests, then ``pdediff bench`` on the GPU and the CPU at 4096² and 256³.

Usage (on the GPU machine, from the repository root, with ``pip install -e ".[dev,gpu-cu12]"`` or
``[dev,gpu-cu13]`` matching ``nvidia-smi``)::

    python benchmarks/gpu_check.py                # tests, then the bench in float32 and float64
    python benchmarks/gpu_check.py --quick        # float32 only, fewer repeats
    python benchmarks/gpu_check.py --no-tests     # the bench only
    python benchmarks/gpu_check.py --out DIR      # bench.json / bench.md / figures (default: gpu-bench)

It runs ``pytest tests/gpu tests/test_backend_contract.py tests/test_gpu_ptx.py`` and then what
``pdediff bench --device all --only heat-explicit,heat-adi,heat-spectral,pm --sizes 4096x4096,256x256x256
--threads 2`` runs: every kernel on the GPU (CUDA-event timing) next to CuPy's own copy, FFT and
``cupyx.scipy.ndimage``, and on 2 CPU threads (the 2-core machine the GPU targets are stated against),
then prints the performance targets, in which the GPU rows are: explicit step >= 0.7 x the device
copy bandwidth (against the roofline), spectral solve <= 1.2 x a bare CuPy DCT pair (against a
reference), Perona-Malik iteration >= 50 x the 2-thread CPU kernel at 4096² (against pdediff's CPU
kernel).  About 3 minutes with ``--quick`` and 6-8 without on an H200 (most of it the CPU
side); the exit status is the tests' when they fail, 2 when no GPU is visible, else 0.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TESTS = ["tests/gpu", "tests/test_backend_contract.py", "tests/test_gpu_ptx.py"]
GROUPS = "heat-explicit,heat-adi,heat-spectral,pm"
SIZES = "4096x4096,256x256x256"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-tests", action="store_true", help="skip the GPU test group")
    ap.add_argument("--quick", action="store_true", help="float32 only, fewer repeats")
    ap.add_argument("--cpu-threads", type=int, default=2, help="threads of the CPU kernels (default 2)")
    ap.add_argument("--out", default="gpu-bench", help="folder for bench.json, bench.md and figures")
    args = ap.parse_args(argv)
    if not args.no_tests:
        print("== GPU tests: " + " ".join(TESTS) + " ==", flush=True)
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-x", *TESTS], cwd=ROOT)
        if rc != 0:
            print(f"GPU tests failed (exit {rc})")
            return rc

    from pdediff.bench import run_bench
    from pdediff.bench._hardware import gpu_available
    from pdediff.bench._markdown import targets_table

    ok, why = gpu_available()
    if not ok:
        print(f"no GPU to time: {why} (the CPU side alone is `pdediff bench`)")
        return 2
    print(f"\n== pdediff bench --device all --only {GROUPS} --sizes {SIZES} --threads {args.cpu_threads}"
          f"{' --dtypes float32' if args.quick else ''} ==", flush=True)
    bench = run_bench(out=args.out, force=True, only=GROUPS, sizes=SIZES,
                      dtypes="float32" if args.quick else None, device="all", threads=args.cpu_threads,
                      progress=True, figures=not args.quick)
    print("\n".join(["", "== performance targets ==", *targets_table(bench)]))
    print(f"\nfull report: {os.path.join(args.out, 'bench.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
