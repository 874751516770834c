"""Larger than memory: ``pdediff denoise --chunks`` on a volume four times the memory budget.

A child process (so that its peak resident memory is its own) denoises a 128 MiB float32 ``.npy`` volume
into a Zarr store in 1 MiB chunks, with one Dask worker thread, and reports ``VmHWM`` (peak resident
set) from /proc/self/status.  Before the run it processes a tiny volume (imports, compiled kernels)
and resets the peak (``/proc/self/clear_refs`` = 5), so that what is measured is the run itself:

    peak - baseline  <=  BUDGET + SLACK

with BUDGET = 32 MiB (the volume is 4 x larger) and SLACK = 16 MiB (allocator arenas, thread stacks,
Dask's task bookkeeping; measured run: about 31 MiB above the baseline on a loaded 2-core machine).
The output is compared with the in-memory result slab by slab: with a fixed kappa the result at a voxel
depends on the input within ``num_iter * (1 + R)`` voxels (R = 3, the Catté radius), so each slab is
computed in memory from the slab plus that margin, and neither volume is ever loaded whole.

The slab layout (chunks along the first axis only: 128 x 1 x 1 chunks) is chosen on purpose: Dask keeps
the chunks of a band of blocks across the volume in memory while it exchanges halos
(docs/scaling.rst, "Memory"), so the peak grows with the number of chunks in one block plane.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("dask")
pytest.importorskip("zarr")

MIB = 2**20
SHAPE = (8192, 64, 64)  # float32: 128 MiB
BUDGET = 32 * MIB
SLACK = 16 * MIB
KAPPA, NUM_ITER, MARGIN = 0.2, 2, 2 * (1 + 3)

CHILD = textwrap.dedent("""
    import sys, numpy as np, dask
    from pdediff.cli import main
    dask.config.set(scheduler="threads", num_workers=1)
    src, dst, tiny = sys.argv[1:4]
    np.save(tiny + ".npy", np.random.default_rng(0).random((20, 20, 20), dtype=np.float32))
    args = ["--chunks", "64", "--quiet", "--kappa", "{kappa}", "--num-iter", "{n}"]
    assert main(["denoise", tiny + ".npy", "-o", tiny + ".zarr"] + args) == 0
    def rss(key):
        return [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key)][0]
    open("/proc/self/clear_refs", "w").write("5")
    base = rss("VmRSS:")
    assert main(["denoise", src, "-o", dst] + args) == 0
    print(base, rss("VmHWM:"))
""").format(kappa=KAPPA, n=NUM_ITER)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak memory from /proc (Linux)")
def test_denoise_chunks_volume_four_times_the_budget(tmp_path):
    import zarr

    import pdediff

    src = tmp_path / "vol.npy"
    vol = np.lib.format.open_memmap(src, mode="w+", dtype=np.float32, shape=SHAPE)
    rng = np.random.default_rng(0)
    for i in range(0, SHAPE[0], 1024):  # written slab by slab: the test process stays small too
        vol[i:i + 1024] = rng.random((1024,) + SHAPE[1:], dtype=np.float32)
    vol.flush()
    del vol
    assert src.stat().st_size >= 4 * BUDGET
    r = subprocess.run([sys.executable, "-c", CHILD, str(src), str(tmp_path / "out.zarr"), str(tmp_path / "tiny")],
                       check=False, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    base, peak = (int(v) for v in r.stdout.split()[-2:])
    assert peak - base <= BUDGET + SLACK, f"peak {(peak - base) / MIB:.1f} MiB above the baseline"

    vol = np.load(src, mmap_mode="r")
    out = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    step = 1024
    for a in range(0, SHAPE[0], step):
        lo, hi = max(a - MARGIN, 0), min(a + step + MARGIN, SHAPE[0])
        ref = pdediff.perona_malik(np.array(vol[lo:hi]), kappa=KAPPA, num_iter=NUM_ITER)[a - lo:a - lo + step]
        np.testing.assert_allclose(out[a:a + step], ref, rtol=1e-6, atol=0)
