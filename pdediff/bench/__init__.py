"""``pdediff bench``: every solver against the copy roofline and the tools users would otherwise run.

:func:`run_bench` measures the machine's copy bandwidth (the roofline of
memory-bound kernels), then times every method × size × dtype × backend (the
CPU at each Numba thread count, the GPU when CuPy and a device are present)
next to the peers that are installed, and reports time (median and IQR),
throughput, the ratio to the roofline and to each peer, the scaling exponent
over sizes and the performance targets, each with what it is measured against
(the roofline, a peer, a reference or another of pdediff's kernels).  It writes
``bench.json`` (:data:`BENCH_SCHEMA`), ``bench.md`` and two figures.
:mod:`pdediff.bench.cli` is the ``pdediff bench`` command's body.

The modules, bottom up: ``_spec`` (what a case is), ``_workload`` (inputs and
shared parameters), the implementations (``_baselines``: the copy roofline and
hand-written NumPy/SciPy references; ``_peers``: other libraries;
``_pdediff_cases``; ``_training``: a ``pdediff train`` step), ``_registry``
(the groups both this command and the pytest-benchmark suite ``make bench``
time), ``_targets`` (ratios and performance targets), ``_schema``, ``_derive``,
``_markdown``, ``_plots`` and ``_report`` (the outputs), ``_options`` (option
checks), ``_timing``, ``_hardware`` and ``_run`` (the run itself), then
``_compare`` (``pdediff bench --compare``: this code against a ``bench.json``
or a git revision, in alternating processes) and ``_worker`` (its child
process, run by path, which imports nothing of this package).
"""

from __future__ import annotations

from ._run import run_bench
from ._schema import BENCH_SCHEMA, OUTPUT_FILES, validate_bench

__all__ = ["run_bench", "BENCH_SCHEMA", "validate_bench", "OUTPUT_FILES"]
