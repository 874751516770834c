"""What moves inverse heat dissipation closer to the data on digits: sampling noise, blur range, levels.

Reuses the full study's runs (``--study``, default ``study``) and trains the
variants next to them, one seed each, with the study's budget.  Prints one
Markdown table of Fréchet distances (classifier features, as in the study)
next to the real-vs-real floor.  Run after ``pdediff study all``:

    python docs/study/ihdm_variants.py --study /path/to/study --out /tmp/ihdm-variants
"""

from __future__ import annotations

import argparse
import glob
import os
import time

import numpy as np
import torch

from pdediff.metrics import FeatureExtractor, frechet_distance
from pdediff.torch import load_dataset, load_run, train_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default="study")
    ap.add_argument("--out", default="ihdm-variants")
    ap.add_argument("--steps", type=int, default=1500)
    args = ap.parse_args()
    torch.set_num_threads(1)
    train_x, train_y = load_dataset("digits", split="train", seed=0)
    test_x, _ = load_dataset("digits", split="test", seed=0)
    tr, te = train_x.numpy(), test_x.numpy()
    feats = FeatureExtractor.fit(tr, train_y.numpy(), seed=0)
    fte = feats.transform(te)
    n = len(te)
    idx = np.sort(np.random.default_rng(100).choice(len(tr), n, replace=False))
    floor = frechet_distance(feats.transform(tr[idx]), fte)
    rows = [("real vs real (floor)", floor, "", "")]

    def score(run, label, **overrides):
        for k, v in overrides.items():
            setattr(run.process, k, v)
        t0 = time.perf_counter()
        s = run.sample(n, seed=0)
        rows.append((label, frechet_distance(feats.transform(s), fte), f"{time.perf_counter() - t0:.0f}",
                     str(run.process.num_inference_steps)))

    # runs/<data>-<content digest>-<process>-seed<k> (runs of studies before the digest: <data>-<process>-...)
    found = sorted(glob.glob(os.path.join(args.study, "runs", "digits-*ihdm-seed0")))
    if not found:
        raise SystemExit(f"no IHDM run of seed 0 on digits under {args.study}/runs: run pdediff study first")
    base = load_run(found[0])
    for delta in (0.0, 0.0125, 0.025, 0.05):
        score(base, f"study's IHDM, sampling noise δ = {delta}", sampling_noise=delta)
    base.process.sampling_noise = 0.0125
    variants = {
        "σ_blur_max = 4 (prior keeps more of the image)": {"sigma_blur_max": 4.0},
        "100 levels": {"num_train_timesteps": 100},
        "training noise 0.02, δ = 0.025": {"training_noise": 0.02, "sampling_noise": 0.025},
    }
    for label, config in variants.items():
        folder = os.path.join(args.out, "-".join(f"{k}{v}" for k, v in config.items()))
        t0 = time.perf_counter()
        train_run(folder, process="ihdm", data="digits", steps=args.steps, base=16, mults=(1, 2),
                  batch_size=128, lr=1e-3, seed=0, config=config, progress=False)
        run = load_run(folder)
        score(run, f"{label} (trained {time.perf_counter() - t0:.0f} s)")
    print("| IHDM on digits, seed 0 | Fréchet | × floor | sample s | steps |")
    print("|---|---:|---:|---:|---:|")
    for label, fd, secs, steps in rows:
        print(f"| {label} | {fd:.2f} | {fd / floor:.1f} | {secs} | {steps} |")


if __name__ == "__main__":
    main()
