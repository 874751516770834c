"""ADI step / explicit step, timed interleaved in one process (the ADI target: <= 3).

Usage: ``python benchmarks/adi_ratio.py [--threads 2] [--rounds 7] [--shapes 1024x1024,4096x4096,256x256x256]
[--dtypes float32,float64] [--threading adaptive|parallel|serial]``.  Per case it prints the median time per
step (ms) of ``ImplicitHeatSolver(dt=1).step(u, 1)`` (the Douglas form, as ``pdediff bench`` times it) and of
``ExplicitHeatSolver.apply_operator(u, out, dt)`` (the benchmark suite's "explicit step"), the ratio of the two
per round (median and [min, max] over rounds), and the time of the step's overflow check
(``max(u.max(), -u.min())``, two NumPy passes) as a fraction of the explicit step.  Each round times both in
alternation (best of a few calls each), so a load change hits both.

``--threading serial`` runs every kernel single-threaded and times the calling thread's CPU time
(``time.thread_time``): on a machine shared with other jobs, the cost of the kernels themselves, unaffected by
descheduling (memory bandwidth is still shared).  Otherwise wall-clock time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def _best(f, reps, clock):
    best = float("inf")
    for _ in range(reps):
        t0 = clock()
        f()
        best = min(best, clock() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--shapes", default="1024x1024,4096x4096,256x256x256")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--threading", choices=("adaptive", "parallel", "serial"), default="adaptive")
    args = p.parse_args()
    os.environ["PDEDIFF_THREADING"] = args.threading  # read when pdediff is imported
    clock = time.thread_time if args.threading == "serial" else time.perf_counter
    import numba

    import pdediff

    numba.set_num_threads(1 if args.threading == "serial" else args.threads)
    print(f"{'shape':>13} {'dtype':>8} {'explicit ms':>12} {'ADI ms':>9} {'ratio':>6} {'[min, max]':>14} "
          f"{'max/min check':>14}")
    for s in args.shapes.split(","):
        shape = tuple(int(x) for x in s.split("x"))
        for dt in args.dtypes.split(","):
            u = np.random.default_rng(0).random(shape).astype(dt)
            ex = pdediff.ExplicitHeatSolver(shape, dt, dt=0.1)
            out = np.empty_like(u)
            im = pdediff.ImplicitHeatSolver(shape, dt, dt=1.0)
            w = u.copy()
            im.step(w, 1)  # compile and factorise outside the timing
            ex.apply_operator(u, out, 0.1)
            reps = 3 if u.nbytes > 32 << 20 else 10
            te, ta, r, rc = [], [], [], []
            for _ in range(args.rounds):
                a = _best(lambda: ex.apply_operator(u, out, 0.1), reps, clock)
                b = _best(lambda: im.step(w, 1), reps, clock)
                c = _best(lambda: max(float(w.max()), -float(w.min())), reps, clock)
                te.append(a)
                ta.append(b)
                r.append(b / a)
                rc.append(c / a)
            print(f"{s:>13} {dt:>8} {1e3 * statistics.median(te):12.3f} {1e3 * statistics.median(ta):9.3f} "
                  f"{statistics.median(r):6.2f} [{min(r):.2f}, {max(r):.2f}] {statistics.median(rc):13.2f}x",
                  flush=True)


if __name__ == "__main__":
    main()
