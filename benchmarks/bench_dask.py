"""The Dask path against the in-memory path: overhead, strong scaling on one machine, peak memory.

Run as a script (``python benchmarks/bench_dask.py [--repeat 3]``; it defines no pytest cases).  For
each case (4096² and 256³ float32, 20 explicit heat steps, 4 and 8 chunks) it times, in one process and
alternating so that load changes hit both alike, the in-memory ``solve_heat`` and the Dask path with
1 and 2 worker threads (the threaded scheduler; Numba kernels single-threaded inside each task so that
the workers are the only parallelism), and reports the best of ``--repeat`` runs, the ratio Dask /
in-memory and the peak of the NumPy memory traced while the Dask result is computed chunk by chunk
into a discarding store (tracemalloc; the input array itself excluded), in chunks.
On a shared machine the numbers are noisy: they are labelled with the load average at the start.
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np

CASES = [  # (shape, chunks): 4 and 8 chunks
    ((4096, 4096), (2048, 2048)),
    ((4096, 4096), (2048, 1024)),
    ((256, 256, 256), (256, 128, 128)),
    ((256, 256, 256), (128, 128, 128)),
]
STEPS = 20


class _Sink:
    """A store target that discards what it is given (the peak then excludes the result itself)."""

    def __setitem__(self, key, value) -> None:
        pass


def _best(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run(repeat: int = 3) -> list[dict]:
    import dask
    import dask.array as da

    import pdediff
    from pdediff.heat.explicit import ExplicitHeatSolver

    rows = []
    for shape, chunks in CASES:
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        t_end = STEPS * ExplicitHeatSolver(shape, np.float32).dt_max
        d = da.from_array(x, chunks=chunks)
        def mem(x=x, t_end=t_end):
            return pdediff.solve_heat(x, t_end, method="explicit")

        lazy = pdediff.solve_heat(d, t_end, method="explicit")
        mem(), lazy.compute(scheduler="threads", num_workers=1)  # compile, warm up
        times = {"memory": [], "dask-1": [], "dask-2": []}
        for _ in range(repeat):  # alternate: load changes hit every variant alike
            times["memory"].append(_best(mem, 1))
            for w in (1, 2):
                times[f"dask-{w}"].append(_best(lambda w=w, lazy=lazy: lazy.compute(scheduler="threads", num_workers=w), 1))
        peaks = {}
        for w in (1, 2):
            tracemalloc.start()
            with dask.config.set(scheduler="threads", num_workers=w):
                da.store(lazy, _Sink(), lock=False)  # chunks dropped once computed: the working set only
            peaks[w] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        chunk_bytes = int(np.prod(chunks)) * 4
        row = {"shape": shape, "chunks": chunks, "nchunks": int(np.prod(d.numblocks)),
               **{k: min(v) for k, v in times.items()},
               "peak_chunks_1": peaks[1] / chunk_bytes, "peak_chunks_2": peaks[2] / chunk_bytes}
        rows.append(row)
        print(f"{'x'.join(map(str, shape)):>11} chunks {'x'.join(map(str, chunks)):>11} ({row['nchunks']}): "
              f"memory {row['memory']:.3f} s, dask 1 worker {row['dask-1']:.3f} s "
              f"({row['dask-1'] / row['memory']:.2f}x), 2 workers {row['dask-2']:.3f} s "
              f"({row['dask-2'] / row['memory']:.2f}x); peak traced {row['peak_chunks_1']:.1f} / "
              f"{row['peak_chunks_2']:.1f} chunks (1 / 2 workers)", flush=True)
    return rows


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (numbers are noisy)")
    run(args.repeat)
