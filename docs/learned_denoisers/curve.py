"""PSNR at 10 % noise against training minutes, for both shipped learned denoisers, next to the classical ones.

Where, on this machine, does learned overtake classical?  Each model is trained from scratch with its shipped
recipe (:func:`pdediff.torch.retrain_denoiser`: the recipe's schedule, stopped at a growing number of steps;
each stop resumes the same run bit for bit, so the points lie on one training run) and evaluated after each
stop on the model card's held-out images (scikit-image's camera, coins and moon, grey in [0, 1], Gaussian
noise of 10 % of the range, noise seeds 0, 1, 2; see ``evaluate.py``).  BM3D, non-local means (the study's
settings) and Perona–Malik's defaults are the flat lines; BM3D and non-local means are given the true noise
level (their best case), the learned models and Perona–Malik see only the noisy image.

Run from the repository root; resumable (``--out`` keeps the runs and ``curve.json``)::

    PYTHONPATH=. python docs/learned_denoisers/curve.py --out runs/curve

Training minutes are the training process's CPU time on one torch thread (``time.process_time``), which
is what an otherwise idle core would take as wall time; the wall time is recorded as well (it depends on
whatever else the machine was running).  The PSNR points do not depend on the load.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import evaluate  # the model cards' held-out cases and PSNR (this folder)
import numpy as np
from evaluate import psnr

LEVEL = 0.10
POINTS = {"tnrd": (25, 50, 100, 200, 350, 500, 750, 1000),
          "cnn": (25, 50, 100, 200, 400, 800, 1600, 2400, 3200, 4000, 4800, 5400, 6000)}


def _cases():

    return [(name, seed, clean, noisy) for name, level, seed, clean, noisy in evaluate.cases()
            if level == LEVEL]


def baselines(cases) -> dict[str, float]:
    import pdediff
    from pdediff.study._denoise import _bm3d, _nl_means  # the study's settings, given the true sigma

    methods = {
        "BM3D (true sigma)": lambda y: _bm3d(y, LEVEL),
        "non-local means (true sigma)": lambda y: _nl_means(y, LEVEL),
        "Perona–Malik, defaults": lambda y: pdediff.perona_malik(y),
        "noisy input": lambda y: y,
    }
    return {m: float(np.mean([psnr(f(noisy), clean) for _, _, clean, noisy in cases])) for m, f in methods.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/curve"))
    ap.add_argument("--models", default="tnrd,cnn")
    ap.add_argument("--figure", type=Path, default=Path(__file__).resolve().parent / "psnr_vs_minutes.png")
    args = ap.parse_args(argv)
    import torch

    from pdediff.torch import denoise_learned, retrain_denoiser

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    record = args.out / "curve.json"
    rows = json.loads(record.read_text()) if record.exists() else {}

    def save():
        tmp = record.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows, indent=1))
        os.replace(tmp, record)

    cases = _cases()
    if "baselines" not in rows:
        rows["baselines"] = baselines(cases)
        save()
    for name in args.models.split(","):
        pts = rows.setdefault(name, [])
        cpu = pts[-1]["cpu_minutes"] if pts else 0.0
        wall = pts[-1]["wall_minutes"] if pts else 0.0
        for steps in POINTS[name]:
            if any(p["steps"] == steps for p in pts):
                continue
            c0 = time.process_time()
            model, rec = retrain_denoiser(name, args.out / name, steps=steps)
            cpu += (time.process_time() - c0) / 60.0
            wall += rec["wall_seconds_this_call"] / 60.0
            p = float(np.mean([psnr(denoise_learned(noisy, name, model=model), clean) for _, _, clean, noisy in cases]))
            pts.append({"steps": steps, "cpu_minutes": round(cpu, 2), "wall_minutes": round(wall, 2),
                        "psnr": round(p, 3),
                        "loss_last_50": rec["loss_per_50_steps"][-1] if rec["loss_per_50_steps"] else None})
            print(f"{name}: {steps} steps, {cpu:.1f} CPU min ({wall:.1f} wall), PSNR {p:.2f} dB", flush=True)
            save()
    figure(rows, args.figure)


def figure(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pdediff._figures import save_atomic

    fig, ax = plt.subplots(figsize=(7, 4.2), constrained_layout=True)
    labels = {"tnrd": "trainable reaction–diffusion (TNRD)", "cnn": "CNN (noise-conditional)"}
    for name in ("tnrd", "cnn"):
        if rows.get(name):
            ax.plot([p["cpu_minutes"] for p in rows[name]], [p["psnr"] for p in rows[name]], "o-", label=labels[name])
    styles = ["--", "-.", ":"]
    flat = [(m, v) for m, v in rows["baselines"].items() if m != "noisy input"]  # 20 dB: far below, in the title
    for (m, v), ls in zip(flat, styles):
        ax.axhline(v, color="grey", ls=ls, lw=1)
        ax.annotate(f"{m} {v:.2f}", (0.99, v), xycoords=("axes fraction", "data"), fontsize=8, ha="right",
                    va="bottom", color="dimgrey")
    ax.set_ylim(25.5, max(v for _, v in flat) + 0.6)
    ax.set_xlabel("training time [CPU minutes, one torch thread]")
    ax.set_ylabel("PSNR at 10 % noise [dB]")
    ax.set_title(f"Held-out camera, coins, moon; 3 noise seeds (noisy input {rows['baselines']['noisy input']:.2f} dB)",
                 fontsize=10)
    ax.legend(loc="center right", fontsize=8)
    save_atomic(fig, path, dpi=100)
    plt.close(fig)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
