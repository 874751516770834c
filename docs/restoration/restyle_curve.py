"""Style transfer (SDEdit, ``pdediff.torch.restyle``): realism against faithfulness over the strength.

Run by hand (a few minutes per model on one CPU core; runs are cached in the run folder):

    OMP_NUM_THREADS=1 python docs/restoration/restyle_curve.py [--runs /tmp/pdediff-restyle-runs]

Pair: handwritten digits (scikit-learn, 8x8, test split) upsampled 2x (nearest) to 16x16 are the
guides; the target style is pdediff's synthetic piecewise-constant ``shapes`` (16x16), on which a
DDPM and an IHDM model are trained with ``train_run``.  Both sets ship with installed packages
(nothing downloaded), share size and range, and differ in style (strokes against flat blobs), so
the question "does the output still look like the guide's layout while looking like a shape
image?" has a clear answer at both ends.

Realism: Fréchet distance between the restyled images and the held-out shapes in the features of
``pdediff.metrics.FeatureExtractor`` fitted on the shapes' training split with their labels (the
study's metric).  Faithfulness: PSNR and SSIM between the guide and the output after the same
low-pass, a Gaussian blur of sigma = 2 px (the heat flow to t = 2, ``pdediff.torch.heat_blur``),
so that composition (where the mass is) counts and the texture the model is asked to change does
not.  Writes ``restyle_results.md`` and ``restyle_curve.png`` next to this script.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
STRENGTHS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0)
PROCESSES = {"ddpm": ("DDPM (Gaussian)", {"num_train_timesteps": 100}),
             "ihdm": ("IHDM (heat dissipation)", {"num_train_timesteps": 50})}
N_GUIDES = 300
LOWPASS_SIGMA = 2.0


def _lowpass(x: np.ndarray) -> np.ndarray:
    import torch

    from pdediff.torch import heat_blur

    return heat_blur(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)), LOWPASS_SIGMA**2 / 2).numpy()


def _faithfulness(guides: np.ndarray, out: np.ndarray) -> tuple[float, float]:
    from pdediff.metrics import psnr, ssim

    a, b = _lowpass(guides), _lowpass(out)
    p = float(np.mean([psnr(g[0], o[0], data_range=2.0) for g, o in zip(a, b)]))
    s = float(np.mean([ssim(g[0], o[0], data_range=2.0) for g, o in zip(a, b)]))
    return p, s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="/tmp/pdediff-restyle-runs", help="folder for the training runs (cached)")
    ap.add_argument("--steps", type=int, default=600, help="training steps per model")
    args = ap.parse_args(argv)

    import torch

    from pdediff.metrics import FeatureExtractor, frechet_distance
    from pdediff.torch import load_dataset, train_run

    torch.set_num_threads(1)
    train_x, train_y = load_dataset("shapes", split="train")
    test_x, _ = load_dataset("shapes", split="test")
    digits, _ = load_dataset("digits", split="test")
    guides = np.kron(digits[:N_GUIDES].numpy(), np.ones((1, 1, 2, 2), dtype=np.float32))  # 8x8 -> 16x16
    features = FeatureExtractor.fit(train_x.numpy(), train_y.numpy(), seed=0)
    f_test = features.transform(test_x.numpy())
    floor = frechet_distance(features.transform(train_x.numpy()[: len(test_x)]), f_test)
    rows, curves, info = [], {}, {}
    for name, (label, config) in PROCESSES.items():
        t0 = time.perf_counter()
        run = train_run(os.path.join(args.runs, name), process=name, data="shapes", steps=args.steps, base=16,
                        mults=(1, 2), batch_size=64, lr=1e-3, seed=0, device="cpu", config=config, progress=False)
        info[name] = {"train_seconds": run.config["result"]["train_seconds"], "steps": run.step,
                      "timesteps": run.process.num_train_timesteps}
        curve = []
        for s in STRENGTHS:
            t1 = time.perf_counter()
            out = run.restyle(guides, s, seed=0)
            fd = frechet_distance(features.transform(out), f_test)
            p, q = _faithfulness(guides, out)
            curve.append({"strength": s, "frechet": fd, "psnr": p, "ssim": q,
                          "seconds": time.perf_counter() - t1})
            rows.append((label, s, fd, p, q))
            print(f"{label:26s} strength {s:g}: FD {fd:8.2f}  PSNR {p:6.2f} dB  SSIM {q:.3f}", flush=True)
        curves[name] = curve
        print(f"{label}: {time.perf_counter() - t0:.0f} s", flush=True)

    verdict = _verdict(curves)
    _write_md(rows, floor, info, verdict)
    _plot(curves, floor)
    print(verdict)
    return 0


def _interp_psnr(curve: list[dict], fd: float) -> float | None:
    """PSNR of a curve at a given Fréchet distance, linear between neighbouring strengths (None outside it)."""
    pts = sorted((c["frechet"], c["psnr"]) for c in curve if np.isfinite(c["psnr"]))
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    if not xs[0] <= fd <= xs[-1]:
        return None
    return float(np.interp(fd, xs, ys))


def _verdict(curves: dict) -> str:
    a, b = "ddpm", "ihdm"
    lo = max(min(c["frechet"] for c in curves[k]) for k in (a, b))
    hi = min(max(c["frechet"] for c in curves[k] if c["strength"] > 0) for k in (a, b))
    if not lo < hi:
        return ("The two curves do not overlap in realism (Fréchet distance), so no comparison at equal realism "
                "is possible from these strengths.")
    levels = np.linspace(lo, hi, 7)
    diffs = [(fd, _interp_psnr(curves[a], fd), _interp_psnr(curves[b], fd)) for fd in levels]
    diffs = [(fd, pa, pb) for fd, pa, pb in diffs if pa is not None and pb is not None]
    better = sum(pb > pa for _, pa, pb in diffs)
    mean = float(np.mean([pb - pa for _, pa, pb in diffs]))
    who = "IHDM" if better > len(diffs) / 2 else "DDPM"
    return (f"At equal realism (Fréchet distance {lo:.1f} to {hi:.1f}, {len(diffs)} levels, PSNR interpolated "
            f"along each curve), IHDM's low-passed PSNR is higher than DDPM's at {better} of {len(diffs)} levels "
            f"(mean difference IHDM - DDPM {mean:+.2f} dB): {who} keeps the composition better.")


def _write_md(rows, floor, info, verdict) -> None:
    from pdediff.io import atomic_path

    lines = ["# Style transfer (SDEdit): digits restyled as shapes", "",
             ("Generated by `docs/restoration/restyle_curve.py` (do not edit). Guides: "
             f"{N_GUIDES} test digits upsampled to 16x16; targets: `shapes` 16x16. Realism: Fréchet distance to the "
             "held-out shapes in the study's classifier features (lower is more shape-like; real-vs-real floor "
             f"{floor:.2f}). Faithfulness: PSNR/SSIM to the guide after a Gaussian low-pass of sigma = "
             f"{LOWPASS_SIGMA:g} px (heat flow to t = {LOWPASS_SIGMA**2 / 2:g}), data range 2."), "",
             "| process | strength | Fréchet distance | low-pass PSNR [dB] | low-pass SSIM |",
             "|---|---:|---:|---:|---:|"]
    for label, s, fd, p, q in rows:
        lines.append(f"| {label} | {s:g} | {fd:.2f} | {p:.2f} | {q:.3f} |")
    lines += ["", "Models: " + "; ".join(
        f"{k}: {v['steps']} steps, {v['timesteps']} timesteps, UNet base 16 mults (1, 2), trained in "
        f"{v['train_seconds']:.0f} s on one CPU thread" for k, v in info.items()) + ".", "",
        ("Strength s runs the last floor(s n) of the n sampling steps (every trained timestep) from "
        "`add_noise` of the guide; 1 is unconditional sampling (the guide is ignored), 0 returns the guide."), "",
        verdict, ""]
    with atomic_path(os.path.join(HERE, "restyle_results.md")) as tmp:
        tmp.write_text("\n".join(lines))


def _plot(curves, floor) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pdediff._figures import save_atomic

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for k, c in curves.items():
        fd = [r["frechet"] for r in c]
        for ax, key, lab in ((axes[0], "psnr", "low-pass PSNR [dB]"), (axes[1], "ssim", "low-pass SSIM")):
            y = [r[key] if np.isfinite(r[key]) else np.nan for r in c]
            ax.plot(fd, y, "o-", label=PROCESSES[k][0])
            for r, yy in zip(c, y):
                ax.annotate(f"{r['strength']:g}", (r["frechet"], yy), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
            ax.set_ylabel(lab)
    for ax in axes:
        ax.axvline(floor, color="0.6", ls=":", label="real-vs-real floor")
        ax.set_xlabel("Fréchet distance to shapes (realism, lower is better)")
        ax.legend(fontsize=8)
    fig.suptitle("SDEdit digits -> shapes: faithfulness vs realism over strength (labels)")
    fig.tight_layout()
    save_atomic(fig, os.path.join(HERE, "restyle_curve.png"), dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
