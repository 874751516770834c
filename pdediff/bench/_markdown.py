"""``bench.md``: the report's tables in markdown (also read back by ``benchmarks/make_readme_tables.py``)."""

from __future__ import annotations

from collections import defaultdict

from ._registry import GROUP_NAMES
from ._targets import target

#: The heading of the performance-targets section (``make_readme_tables.py`` finds the table by it).
TARGETS_HEADING = "Performance targets"
#: The heading of a comparison's section (``pdediff bench --compare``).
COMPARE_HEADING = "Comparison"


def _shape(shape) -> str:
    if shape is None:
        return "–"
    s = list(shape)
    if len(s) in (2, 3) and len(set(s)) == 1:
        return f"{len(s)}D {s[0]}{'²' if len(s) == 2 else '³'}"
    return ("batch " if len(s) == 4 else f"{len(s)}D ") + "×".join(map(str, s))


def _dt(dt) -> str:
    return "–" if dt is None else {"float32": "f32", "float64": "f64"}[dt]


def _f(x, spec=".3g") -> str:
    return "–" if x is None else format(x, spec)


def _ms(s) -> str:
    return "–" if s is None else (f"{s * 1e3:.3g}" if s * 1e3 >= 0.01 else f"{s * 1e3:.2e}")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _want(hib: bool, threshold) -> str:
    return "–" if threshold is None else f"{'≥' if hib else '≤'} {threshold:g}"


def summary_line(bench: dict) -> str:
    """One line: when, where, how (the README quotes it above the tables)."""
    cpu = bench["hardware"]["cpu"]
    gpu = bench["hardware"]["gpu"]
    s = bench["settings"]
    opts = (["--quick"] if bench["quick"] else []) + (["--peers"] if s["peers"] else []) + \
        (["--load"] if s["load"] else []) + ([f"--compare {s['compare']}"] if s.get("compare") else [])
    return (f"Measured {bench['created'][:10]} with `pdediff bench{' ' + ' '.join(opts) if opts else ''}` on "
            f"{cpu['model']} ({cpu['usable_cores']} usable cores, Numba threads {', '.join(map(str, s['threads']))}"
            f"{', ' + cpu['numba_threading_layer'] + ' layer' if cpu.get('numba_threading_layer') else ''}); "
            f"GPU: {gpu['name'] if gpu else 'none'}; {bench['wall_seconds']:.0f} s.")


def targets_table(bench: dict) -> list[str]:
    """The performance targets as markdown table lines: one row per target and measured case.

    ``against`` is what the target is measured against (:attr:`~pdediff.bench._targets.Target.source`;
    looked up by key for a ``bench.json`` written before rows carried it).
    """
    rows = []
    for t in bench["targets"]:
        rows.append([t["label"] + (" *" if t["issue_size"] and t["shape"] is not None else ""),
                     t.get("source") or target(t["key"]).source, _shape(t["shape"]), _dt(t["dtype"]),
                     _f(t["value"]), _want(t["higher_is_better"], t["threshold"]),
                     t["status"] + (f" ({t['detail']})" if t["detail"] else "")])
    return _table(["target", "against", "case", "dtype", "measured", "target value", "status"], rows)


def ratios_table(bench: dict) -> list[str]:
    """The within-run ratios as markdown table lines (one row per ratio and case)."""
    rows = []
    for r in bench["ratios"]:
        rows.append([r["group"], r["label"], r["device"], _shape(r["shape"]), _dt(r["dtype"]), _f(r["value"]),
                     _want(r["higher_is_better"], r["target"]), r["status"] or "–"])
    return _table(["group", "ratio (per step)", "device", "case", "dtype", "value", "target", "status"], rows)


def compare_summary(bench: dict) -> str:
    """One line: the baseline, how many cases got each verdict, the rounds."""
    c = bench["compare"]
    b = c["baseline"]
    what = (f"revision {b['name']}" + ("" if b["commit"] is None or b["commit"].startswith(b["name"])
                                        else f" ({b['commit'][:10]})")) if b["kind"] == "revision" \
        else f"{b['name']} (a run of {(b['created'] or '')[:10]})"
    counts = ", ".join(f"{n} {v}" for v, n in c["counts"].items() if n)
    return (f"Against {what}: {counts or 'no case'}; {c['rounds']} rounds ({c['order']}); a case is slower when "
            f"the lower bound of its {c['confidence'] * 100:g} % interval exceeds {c['threshold']:g}.")


def compare_table(bench: dict) -> list[str]:
    """The comparison as markdown table lines: one row per case (times per step, the ratio current / baseline
    with its interval, the verdict)."""
    c = bench["compare"]
    name = c["baseline"]["name"]
    rows = []
    for r in c["cases"]:
        ratio = "–" if r["ratio"] is None else f"{r['ratio']:.3g}"
        if r["ci_low"] is not None:
            ratio += f" [{r['ci_low']:.3g}, {r['ci_high']:.3g}]"
        steps = r["steps"]
        why = (r["verdict"] + (f" ({r['detail']})" if r["detail"] else "")).replace("|", "/")
        rows.append([r["label"], _shape(r["shape"]), _dt(r["dtype"]), "–" if r["threads"] is None else
                     str(r["threads"]), _ms(None if r["baseline_s"] is None else r["baseline_s"] / steps),
                     _ms(None if r["current_s"] is None else r["current_s"] / steps), ratio,
                     f"**{why}**" if r["verdict"] == "slower" else why])
    return _table(["case", "size", "dtype", "threads", f"{name} [ms/step]", "current [ms/step]",
                   f"current / {name} [{c['confidence'] * 100:g} % CI]", "verdict"], rows)


def _hardware_rows(bench: dict) -> list[list[str]]:
    hw = bench["hardware"]
    cpu = hw["cpu"]
    caches = ", ".join(f"L{c['level']}{'' if c['type'] == 'unified' else c['type'][0]} "
                       f"{(c['size_bytes'] or 0) // 1024} KiB" for c in cpu["caches"]) or "unknown"
    rows = [["CPU", cpu["model"]], ["cores (logical / usable)", f"{cpu['logical_cores']} / {cpu['usable_cores']}"],
            ["caches (one instance each)", caches], ["SIMD", ", ".join(cpu["simd"]) or "–"],
            ["Numba threads / layer", f"{cpu['numba_threads']} / {cpu['numba_threading_layer'] or '–'}"],
            ["environment", ", ".join(f"{k}={v}" for k, v in cpu["env"].items() if v is not None) or "–"]]
    if hw["gpu"]:
        g = hw["gpu"]
        rows += [["GPU", f"{g['name']}, {g['memory_bytes'] / 2**30:.0f} GiB, CUDA {g['cuda_runtime']} "
                  f"(driver {g['cuda_driver']}), CuPy {g['cupy']}"]]
    else:
        rows += [["GPU", "none"]]
    v = bench["versions"]
    rows += [["versions", ", ".join(f"{k} {val}" for k, val in v.items() if val is not None)]]
    return rows


def _compare_text(bench: dict) -> str:
    c = bench["compare"]
    lines = ["# pdediff bench", "", summary_line(bench), ""]
    if bench["quick"]:
        lines += ["*Quick run: small sizes and a short budget, a smoke test of the command; its numbers are not "
                  "results.*", ""]
    lines += [f"## {COMPARE_HEADING}", "", compare_summary(bench), "",
              "Each round times every case in a fresh process per version (the same worker, the library chosen by "
              "`PYTHONPATH`); a process's time is the median over its samples. Ratio: current / baseline (> 1: "
              "the current code is slower), the geometric mean over rounds with its t-interval; verdicts: "
              f"*slower* (the interval's lower bound above {c['threshold']:g}), *faster* (its upper bound below "
              f"1/{c['threshold']:g}), *within noise*, *not in baseline* (the baseline's code cannot run the "
              "case), *failed*.", ""]
    cur = c["current"]
    lines += [f"Current code: {cur['root']}" + ("" if cur["commit"] is None else
                                               f" at {cur['commit'][:10]}{' with changes' if cur['dirty'] else ''}")
              + ".", ""]
    lines += (compare_table(bench) if c["cases"] else ["No case to compare."]) + [""]
    if c["notes"]:
        lines += [f"- {n}" for n in c["notes"]] + [""]
    lines += ["## Hardware", ""] + _table(["item", "value"], _hardware_rows(bench)) + [""]
    return "\n".join(lines)


def write_markdown_text(bench: dict) -> str:
    """The text of ``bench.md`` for ``bench`` (a dict as :func:`pdediff.bench.run_bench` returns it; a
    comparison's, with a ``compare`` section and no results, is the comparison and the hardware)."""
    if bench.get("compare") is not None and not bench["results"]:
        return _compare_text(bench)
    lines = ["# pdediff bench", "", summary_line(bench), ""]
    if bench["quick"]:
        lines += ["*Quick run: small sizes and few repeats, a smoke test of the command; its numbers are not "
                  "results.*", ""]
    lines += ["Single runs on a shared machine are noisy: compare ratios taken within one run. Ratios divide "
              "time per step; pdediff's kernels at the largest thread count; peers with their own threading.", ""]
    lines += ["## Hardware", ""]
    lines += _table(["item", "value"], _hardware_rows(bench)) + [""]

    lines += ["## Roofline (copy bandwidth)", "", "`np.copyto` (CuPy `copyto` on the GPU) of an array of the case's "
              "shape and dtype: one read and one write per cell; single-threaded on the CPU.", ""]
    lines += _table(["device", "case", "dtype", "time [ms]", "GB/s"],
                    [[r["device"], _shape(r["shape"]), _dt(r["dtype"]), _ms(r["median_s"]), _f(r["gbps"], ".1f")]
                     for r in bench["roofline"]]) + [""]

    lines += [f"## {TARGETS_HEADING}", "", "Each target is a ratio against something measured in this run; "
              "*against* says what: the copy roofline (the memory bandwidth that bounds a one-pass kernel), a peer "
              "library, a reference (the bare transform pair) or another of pdediff's own kernels. `*`: a size the "
              "target is set for. pdediff at the largest thread count.", ""]
    lines += targets_table(bench) + [""]
    lines += ["## Ratios", "", "Peer / pdediff (> 1: pdediff faster) and pdediff's internal ratios, per step.", ""]
    lines += (ratios_table(bench) if bench["ratios"] else ["No ratio measured in this run."]) + [""]

    lines += ["## Times", "", "Median per call (IQR over the samples); throughput by the byte model below.", ""]
    by_group = defaultdict(list)
    for r in bench["results"]:
        if not r["loaded"]:
            by_group[r["group"]].append(r)
    for g in GROUP_NAMES:
        rs = by_group.get(g)
        if not rs:
            continue
        lines += [f"### {g}", ""]
        lines += _table(["implementation", "device", "threads", "case", "dtype", "steps", "median [ms]", "IQR [ms]",
                         "Mcells·steps/s", "GB/s", "× roofline"],
                        [[r["label"], r["device"], "own" if r["threads"] is None else str(r["threads"]),
                          _shape(r["shape"]), _dt(r["dtype"]), str(r["steps"]), _ms(r["median_s"]), _ms(r["iqr_s"]),
                          _f(r["cells_steps_per_s"] / 1e6), _f(r["gbps"], ".1f"), _f(r["roofline_ratio"], ".2f")]
                         for r in rs]) + [""]

    lines += ["## Scaling", "", "Exponent `p` of time per step ∝ cells^p, fitted over this run's sizes of one "
              "dimensionality (p ≈ 1 for stencils, slightly above for FFTs; small sizes that fit in cache bend it).",
              ""]
    lines += (_table(["implementation", "device", "threads", "dtype", "dims", "sizes", "p"],
                     [[s["impl"], s["device"], "own" if s["threads"] is None else str(s["threads"]), _dt(s["dtype"]),
                       f"{s['dims']}D", str(s["sizes"]), f"{s['p']:.2f}"] for s in bench["scaling"]])
              if bench["scaling"] else ["Fewer than two sizes per dimensionality: no exponent."]) + [""]

    if bench["load"] is not None:
        lines += ["## Under load", "", "Each pdediff CPU kernel and NumPy's reference step timed again while "
                  "another process keeps one core busy (pure-Python spin). `loaded / quiet serial`: against the "
                  "same kernel on one thread without load (the performance target: ≤ 1.3).", ""]
        lines += _table(["kernel", "case", "dtype", "threads", "quiet [ms]", "loaded [ms]", "loaded / quiet",
                         "loaded / quiet serial", "NumPy loaded / quiet"],
                        [[r["impl"], _shape(r["shape"]), _dt(r["dtype"]), str(r["threads"]), _ms(r["quiet_s"]),
                          _ms(r["loaded_s"]), _f(r["slowdown"], ".2f"), _f(r["vs_quiet_serial"], ".2f"),
                          _f(r["numpy_slowdown"], ".2f")] for r in bench["load"]]) + [""]

    lines += ["## Skipped", ""]
    lines += [f"- {s['group']} / {s['impl']}"
              + (f" ({_shape(s.get('shape'))} {_dt(s.get('dtype'))}, {s.get('device')})" if s.get("shape") else "")
              + f": {s['reason']}" for s in _dedupe_skips(bench["skipped"])] or ["- nothing"]
    lines += [f"- {n}" for n in bench["notes"]]
    lines += ["", "## Byte model", "", bench["byte_model"], ""]
    return "\n".join(lines)


def _dedupe_skips(skipped: list[dict]) -> list[dict]:
    """One line per (impl, reason) for 'not installed' and 'only' reasons that repeat at every size."""
    seen, out = set(), []
    for s in skipped:
        generic = "not installed" in s["reason"] or "only" in s["reason"] or "at most" in s["reason"]
        k = (s["group"], s["impl"], s["reason"]) if generic else id(s)
        if k in seen:
            continue
        seen.add(k)
        out.append({**s, "shape": None} if generic else s)
    return out
