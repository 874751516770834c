"""Semi-implicit vs explicit EED: CG iterations per step, time and PSNR at one diffusion time (issue 24).

Usage::

    nice -n 19 python benchmarks/tensor_semi_implicit.py [--cg-size 256] [--size 512] [--time 5] [--repeats 2]

Image: ``skimage.data.camera() / 255`` (resized to the size asked; 512 is the original) plus Gaussian
noise of standard deviation 0.1 (seed 0), float32; EED with its defaults (``kappa="auto"``, ``sigma = 1``).

1. CG iterations per step on the ``--cg-size`` image for ``dt`` = 1, 5, 25 times the explicit limit
   ``dt_max = 0.25`` (two steps each; iterations from ``info.cg_iterations``).
2. On the ``--size`` image, the diffusion time ``T = --time``: explicit steps at ``dt_max``; semi-implicit
   steps of 5 ``dt_max``, and one step of ``T`` (``T / dt_max`` times the limit; 25 ``dt_max`` exceeds
   ``T = 5``, so one step of 25 ``dt_max``, a longer time, is listed too).  Wall time (best of
   ``--repeats``, after a warm-up call that compiles) and PSNR against the clean image.  The machine is
   shared: the times are indicative, their ratios within one run are what compares.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _images(size: int) -> tuple[np.ndarray, np.ndarray]:
    from skimage.data import camera
    from skimage.transform import resize

    clean = camera().astype(np.float64) / 255.0
    if clean.shape != (size, size):
        clean = resize(clean, (size, size), anti_aliasing=True)
    noisy = clean + 0.1 * np.random.default_rng(0).standard_normal(clean.shape)
    return clean.astype(np.float32), noisy.astype(np.float32)


def _psnr(clean: np.ndarray, x: np.ndarray) -> float:
    mse = float(np.mean((x.astype(np.float64) - clean.astype(np.float64)) ** 2))
    return 10.0 * np.log10(1.0 / mse)


def main() -> None:
    import pdediff

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cg-size", type=int, default=256)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--time", type=float, default=5.0)
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    dt_max = 0.25

    _, noisy = _images(a.cg_size)
    print(f"CG iterations per step, {a.cg_size}^2 float32 EED defaults, 2 steps:")
    for f in (1, 5, 25):
        _, info = pdediff.tensor_diffusion(noisy, kind="eed", method="semi-implicit", dt=f * dt_max,
                                           num_iter=2, return_info=True)
        print(f"  dt = {f:>2} dt_max: {info.cg_iterations / 2:.1f} iterations per step")

    clean, noisy = _images(a.size)
    T = a.time
    runs = [("explicit", dt_max), ("semi-implicit", 5 * dt_max), ("semi-implicit", T),
            ("semi-implicit", 25 * dt_max)]
    print(f"\n{a.size}^2 float32 EED defaults to T = {T} (noisy PSNR {_psnr(clean, noisy):.2f} dB):")
    pdediff.tensor_diffusion(noisy[:64, :64], kind="eed", num_iter=1)  # compile
    pdediff.tensor_diffusion(noisy[:64, :64], kind="eed", num_iter=1, method="semi-implicit")
    for method, dt in runs:
        n = max(1, int(round(T / dt)))
        best = np.inf
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            out, info = pdediff.tensor_diffusion(noisy, kind="eed", method=method, dt=dt, num_iter=n,
                                                 return_info=True)
            best = min(best, time.perf_counter() - t0)
        extra = f", CG {info.cg_iterations} it." if method != "explicit" else f", sub-steps {info.substeps}"
        print(f"  {method:<13} dt = {dt / dt_max:>4g} dt_max x {n:>2} (T = {n * dt:g}): {best:6.2f} s, "
              f"PSNR {_psnr(clean, out):.2f} dB{extra}")


if __name__ == "__main__":
    main()
