"""The two figures of ``pdediff bench``: throughput against size with the roofline, and ratio bars per peer."""

from __future__ import annotations

import os
from collections import defaultdict

import numpy as np

from ._registry import kind_of


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    fig.savefig(path, dpi=110, format="png")


def throughput_figure(bench: dict, path: str | os.PathLike) -> None:
    """GB/s (byte model) against cells, one panel per device × dtype, pdediff's kernels at the largest thread
    count, and the copy roofline drawn as a dashed black line."""
    plt = _plt()
    top = max(bench["settings"]["threads"])
    panels = sorted({(r["device"], r["dtype"]) for r in bench["results"] if not r["loaded"]})
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.2 * max(1, len(panels)), 4.2), squeeze=False)
    for ax, (dev, dt) in zip(axes[0], panels):
        series = defaultdict(list)
        for r in bench["results"]:
            if r["loaded"] or r["device"] != dev or r["dtype"] != dt or r["kind"] == "peer":
                continue
            if r["kind"] == "pdediff" and dev == "cpu" and r["threads"] != top:
                continue
            series[r["label"]].append((r["cells"], r["gbps"]))
        for label, pts in sorted(series.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, lw=1, label=label)
        roof = sorted((int(np.prod(r["shape"])), r["gbps"]) for r in bench["roofline"]
                      if r["device"] == dev and r["dtype"] == dt)
        if roof:
            ax.plot([p[0] for p in roof], [p[1] for p in roof], "k--", lw=2, label="copy roofline")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("cells")
        ax.set_ylabel("GB/s (byte model)")
        ax.set_title(f"{dev.upper()} {dt}" + (f", pdediff at {top} threads" if dev == "cpu" else ""), fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=5.5, loc="best")
    if not panels:
        axes[0, 0].text(0.5, 0.5, "no measurements", ha="center", va="center")
        axes[0, 0].set_axis_off()
    fig.tight_layout()
    try:
        _save(fig, path)
    finally:
        plt.close(fig)


def peers_figure(bench: dict, path: str | os.PathLike) -> None:
    """Horizontal bars of peer time / pdediff time per step (log scale, > 1: pdediff faster), one bar per
    ratio × case, grouped by peer; targets marked."""
    plt = _plt()

    bars = []
    for r in bench["ratios"]:
        if r["peer"] is None:
            continue
        # A peer in the denominator (spectral solve / transform pair) is turned round: peer / pdediff throughout.
        peer_first = kind_of(r["num"]) == "peer"
        value = r["value"] if peer_first else 1.0 / r["value"]
        target = r["target"] if peer_first or r["target"] is None else 1.0 / r["target"]
        label = r["label"] if peer_first else f"{r['peer']} / {r['num']}"
        bars.append((r["peer"], f"{label} {_case(r)}", value, target))
    bars.sort(key=lambda b: (b[0], b[1]))
    height = max(2.5, 0.22 * len(bars) + 1.2)
    fig, ax = plt.subplots(figsize=(8.5, height))
    if bars:
        y = np.arange(len(bars))
        peers = sorted({b[0] for b in bars})
        colours = {p: plt.cm.tab10(i % 10) for i, p in enumerate(peers)}
        ax.barh(y, [b[2] for b in bars], color=[colours[b[0]] for b in bars])
        for yi, b in zip(y, bars):
            if b[3] is not None:
                ax.plot([b[3], b[3]], [yi - 0.4, yi + 0.4], "k-", lw=1.5)
        ax.set_yticks(y)
        ax.set_yticklabels([f"{b[0]}: {b[1]}" for b in bars], fontsize=6)
        ax.axvline(1.0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("peer time / pdediff time per step (> 1: pdediff faster; black tick: target)")
        ax.invert_yaxis()
    else:
        ax.text(0.5, 0.5, "no peers timed in this run (pdediff bench --peers)", ha="center", va="center")
        ax.set_axis_off()
    fig.tight_layout()
    try:
        _save(fig, path)
    finally:
        plt.close(fig)


def _case(r: dict) -> str:
    s = r["shape"]
    body = f"{s[0]}{'²' if len(s) == 2 else '³'}" if len(set(s)) == 1 and len(s) in (2, 3) else "×".join(map(str, s))
    return f"{body} {r['dtype'][-2:]} {r['device']}"
