"""Model-card numbers: PSNR of the shipped learned denoisers on held-out images, and inference time at 512².

Run from the repository root (``PYTHONPATH=. python docs/learned_denoisers/evaluate.py [--weights DIR]
[--baselines-only] [--out results.json]``).  Held-out images: scikit-image's camera, coins and moon (study
test images, never trained on), grey in [0, 1]; Gaussian noise of 5 / 10 / 20 % of the range, noise seeds
0, 1, 2.  Every method sees only the noisy image (BM3D is given the true sigma: its best case; the CNN
estimates its level; the learned models estimate the image's range from its 3x3 median filter).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

IMAGES = ("camera", "coins", "moon")
LEVELS = (0.05, 0.10, 0.20)
SEEDS = (0, 1, 2)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - b) ** 2)))


def cases(seeds=SEEDS):
    from skimage import data

    for name in IMAGES:
        clean = getattr(data, name)().astype(np.float64) / 255.0
        for level in LEVELS:
            for seed in seeds:
                rng = np.random.default_rng([seed, int(level * 1000)])
                yield name, level, seed, clean, clean + level * rng.standard_normal(clean.shape)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--weights", default=None, help="folder holding tnrd.npz and cnn.npz (default: the shipped ones)")
    p.add_argument("--baselines-only", action="store_true")
    p.add_argument("--models", default="tnrd,cnn", help="learned models to measure (default: tnrd,cnn)")
    p.add_argument("--out", default="learned_eval.json")
    p.add_argument("--seeds", type=int, default=len(SEEDS), help="noise seeds 0 .. N-1 (default 3)")
    args = p.parse_args()
    rows = json.load(open(args.out)) if os.path.exists(args.out) else {}
    import pdediff

    methods = {}
    if not args.baselines_only:
        import torch

        from pdediff.torch import CNNDenoiser, ReactionDiffusion, denoise_learned, load_denoiser

        models = {n: (load_denoiser(n) if args.weights is None else
                      (ReactionDiffusion if n == "tnrd" else CNNDenoiser).load(os.path.join(args.weights, f"{n}.npz")))
                  for n in args.models.split(",")}
        for n in models:
            methods[n] = (lambda x, lvl, n=n: denoise_learned(x, n, model=models[n]))
    else:
        methods["noisy"] = lambda x, lvl: x
        methods["pm_defaults"] = lambda x, lvl: pdediff.perona_malik(x)
        try:
            import bm3d

            methods["bm3d"] = lambda x, lvl: bm3d.bm3d(x, sigma_psd=lvl)
        except ImportError:
            pass
    for name, level, seed, clean, noisy in cases(tuple(range(args.seeds))):
        for m, f in methods.items():
            key = f"{m}|{name}|{level}|{seed}"
            if key in rows:
                continue
            t = time.perf_counter()
            out = f(noisy, level)
            rows[key] = {"psnr": psnr(out, clean), "seconds": time.perf_counter() - t}
        with open(args.out + ".tmp", "w") as fh:
            json.dump(rows, fh, indent=0)
        os.replace(args.out + ".tmp", args.out)
    if not args.baselines_only:  # inference time at 512 x 512, best of 3 (2 torch threads)
        torch.set_num_threads(2)
        x = np.random.default_rng(0).random((512, 512))
        for n in models:
            denoise_learned(x, n, model=models[n])
            best = min(_timed(lambda: denoise_learned(x, n, model=models[n])) for _ in range(3))
            rows[f"time512|{n}"] = best
        json.dump(rows, open(args.out, "w"), indent=0)
    summary(rows)


def _timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def summary(rows: dict) -> None:
    methods = sorted({k.split("|")[0] for k in rows if not k.startswith("time512")})
    print("method        " + "  ".join(f"{int(l * 100):>5d}%" for l in LEVELS) + "   (mean PSNR dB over images and seeds)")
    for m in methods:
        vals = []
        for lvl in LEVELS:
            v = [r["psnr"] for k, r in rows.items() if k.startswith(f"{m}|") and float(k.split("|")[2]) == lvl]
            vals.append(f"{np.mean(v):6.2f}" if v else "   n/a")
        print(f"{m:12s}  " + "  ".join(vals))
    for m in methods:
        for name in IMAGES:
            v = [f"{np.mean([r['psnr'] for k, r in rows.items() if k.startswith(f'{m}|{name}|{lvl}|')]):6.2f}"
                 for lvl in LEVELS if any(k.startswith(f'{m}|{name}|{lvl}|') for k in rows)]
            print(f"  {m:12s} {name:7s} " + "  ".join(v))
    for k, v in rows.items():
        if k.startswith("time512"):
            print(f"{k}: {v:.3f} s")


if __name__ == "__main__":
    main()
