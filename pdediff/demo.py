"""``pdediff demo``: the main job, a fast showcase on data that ships with the package."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from . import analytic
from .heat import solve_heat

__all__ = ["heat_demo", "denoise_demo", "inpaint_demo", "best_linear_blur", "run_demo", "PARTS"]

#: The parts of the demo, in the order ``pdediff demo`` runs them.
PARTS = ("heat", "denoise", "inpaint")


def _timed(fn):
    fn()  # first call compiles (or loads Numba's on-disk cache)
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def heat_demo(outdir: Path, *, shape=(192, 256), t: float = 0.01, figure: bool = True) -> dict:
    """Solve a 2-D Neumann problem with a known solution by all three methods.

    ``u0`` is a sum of two cosine modes on the unit square; each decays as
    ``exp(-D pi^2 (kx^2 + ky^2) t)``.  Prints a table of the error against the
    exact solution and the wall time, and saves a figure.
    """
    h = tuple(1.0 / n for n in shape)
    modes = [((1, 1), 1.0), ((3, 2), 0.5)]
    u0 = sum(a * analytic.mode(shape, spacing=h, k=k) for k, a in modes)
    exact = sum(a * analytic.mode_solution(shape, t, spacing=h, k=k) for k, a in modes)
    # Explicit steps at the stability limit; implicit (unconditionally stable) takes 20 large steps.
    dt_explicit = 1.0 / (2 * sum(1 / hh**2 for hh in h))
    setups = {
        "spectral": ({}, 1),
        "explicit": ({}, int(np.ceil(t / dt_explicit * (1 - 1e-12)))),
        "implicit": ({"dt": t / 20}, 20),
    }
    results = {}
    for method, (kw, steps) in setups.items():
        u, wall = _timed(lambda m=method, kw=kw: solve_heat(u0, t, method=m, spacing=h, **kw))
        err = float(np.abs(u - exact).max() / np.abs(exact).max())
        results[method] = {"u": u, "error": err, "seconds": wall, "steps": steps}
    print(f"Heat equation u_t = lap u on [0,1]^2, grid {shape[0]}x{shape[1]}, Neumann, t = {t}")
    print(f"{'method':<22}{'steps':>7}{'max rel. error':>16}{'wall time [ms]':>16}")
    labels = {"spectral": "spectral (DCT)", "explicit": "explicit (FTCS)", "implicit": "implicit (CN-ADI)"}
    for m, r in results.items():
        print(f"{labels[m]:<22}{r['steps']:>7}{r['error']:>16.3e}{1e3 * r['seconds']:>16.2f}")
    if figure:
        path = outdir / "heat_demo.png"
        _heat_figure(path, u0, exact, results, labels)
        print(f"figure: {path}")
    return results


def _heat_figure(path: Path, u0, exact, results, labels) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 4, figsize=(14, 6.5), constrained_layout=True)
    vmin, vmax = u0.min(), u0.max()
    ax[0, 0].imshow(u0, vmin=vmin, vmax=vmax, cmap="viridis")
    ax[0, 0].set_title("u0")
    ax[1, 0].imshow(exact, vmin=vmin, vmax=vmax, cmap="viridis")
    ax[1, 0].set_title("exact u(t)")
    for j, (m, r) in enumerate(results.items(), start=1):
        ax[0, j].imshow(r["u"], vmin=vmin, vmax=vmax, cmap="viridis")
        ax[0, j].set_title(labels[m])
        im = ax[1, j].imshow(r["u"] - exact, cmap="RdBu_r")
        ax[1, j].set_title(f"error, max rel {r['error']:.1e}")
        fig.colorbar(im, ax=ax[1, j], shrink=0.8)
    for a in ax.ravel():
        a.set_axis_off()
    _save_atomic(fig, path)
    plt.close(fig)


def _save_atomic(fig, path: Path) -> None:
    from ._figures import save_atomic

    save_atomic(fig, path, dpi=90)


def best_linear_blur(clean: np.ndarray, noisy: np.ndarray, *, data_range: float) -> tuple[np.ndarray, float]:
    """The heat-equation blur with the best PSNR against ``clean`` (an oracle over blur times).

    Returns the blurred image and its Gaussian sigma; the search is over
    ``sigma = sqrt(2 t)`` in 0.1-pixel steps up to 5 pixels (spectral solver, Neumann).
    """
    from .metrics import psnr

    best, best_s, best_p = noisy, 0.0, psnr(clean, noisy, data_range=data_range)
    for s in np.arange(0.1, 5.0001, 0.1):
        u = solve_heat(noisy, analytic.time_for_sigma(s))
        p = psnr(clean, u, data_range=data_range)
        if p > best_p:
            best, best_s, best_p = u, float(s), p
    return best, best_s


def denoise_demo(outdir: Path, *, noise: float = 0.05, seed: int = 0, figure: bool = True) -> dict:
    """Denoise matplotlib's bundled MRI slice with seeded Gaussian noise; print PSNR/SSIM."""
    from .anisotropic import perona_malik, tensor_diffusion
    from .data import mri_slice
    from .data import noisy as make_noisy
    from .metrics import psnr, ssim

    clean = mri_slice().astype(np.float64)
    r = float(clean.max() - clean.min())
    noisy = make_noisy(clean, noise, seed=seed)
    linear, s_lin = best_linear_blur(clean, noisy, data_range=r)
    pm, info = perona_malik(noisy, return_info=True)
    pm_aos, info_aos = perona_malik(noisy, method="aos", return_info=True)
    eed, info_eed = tensor_diffusion(noisy, kind="eed", return_info=True)
    rows = {
        "noisy input": noisy,
        f"best linear blur (sigma={s_lin:.1f})": linear,
        "Perona–Malik explicit": pm,
        "Perona–Malik AOS": pm_aos,
        "edge-enhancing diffusion (EED)": eed,
    }
    print()
    print(f"Denoising matplotlib's MRI slice (256x256, uint16), Gaussian noise {100 * noise:g}% of range, seed {seed}")
    print(f"auto kappa = {info.kappa:.4g}; explicit: {info.num_iter} steps of dt={info.dt:g}; "
          f"AOS: {info_aos.num_iter} steps of dt={info_aos.dt:g}; Catte sigma = {info.sigma:g}; "
          f"EED: {info_eed.num_iter} steps of dt={info_eed.dt:g}")
    print(f"{'result':<34}{'PSNR [dB]':>10}{'SSIM':>8}")
    scores = {}
    for name, img in rows.items():
        scores[name] = (psnr(clean, img, data_range=r), ssim(clean, img, data_range=r))
        print(f"{name:<34}{scores[name][0]:>10.2f}{scores[name][1]:>8.3f}")
    if figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, len(rows) + 1, figsize=(4 * (len(rows) + 1), 4.6), constrained_layout=True)
        for a, (name, img) in zip(ax, [("clean", clean)] + list(rows.items())):
            a.imshow(img, cmap="gray", vmin=0, vmax=clean.max())
            title = name if name == "clean" else f"{name}\n{scores[name][0]:.2f} dB, SSIM {scores[name][1]:.3f}"
            a.set_title(title)
            a.set_axis_off()
        path = outdir / "denoise_demo.png"
        _save_atomic(fig, path)
        plt.close(fig)
        print(f"figure: {path}")
    return scores


def _masked_scores(clean: np.ndarray, img: np.ndarray, mask: np.ndarray, data_range: float) -> tuple[float, float]:
    """PSNR and SSIM inside ``mask`` only: the known pixels are exact for every method and would flatter them.

    SSIM: the local SSIM map of the whole colour image (scikit-image, Gaussian window), averaged over the mask.
    """
    from skimage.metrics import structural_similarity

    err = (clean - img)[mask]
    mse = float(np.mean(err**2))
    p = float("inf") if mse == 0 else 10 * np.log10(data_range**2 / mse)
    _, smap = structural_similarity(clean, img, data_range=data_range, channel_axis=-1, gaussian_weights=True,
                                    full=True)
    return p, float(smap.mean(axis=-1)[mask].mean())


#: Said when the OpenCV rows of :func:`inpaint_demo` are skipped.
_NO_CV2 = ('the cv2 module (OpenCV) is not installed; pip install opencv-python-headless, or pip install '
           '"pdediff[bench]"')


def inpaint_demo(outdir: Path, *, image: str = "astronaut", seed: int = 0, figure: bool = True) -> dict:
    """Repair a bundled colour picture with synthetic cracks and a missing block; print PSNR/SSIM in the holes.

    scikit-image's ``astronaut`` (512x512 RGB, ships with scikit-image), damaged by
    :func:`pdediff.data.crack_mask` and :func:`pdediff.data.block_mask`, filled by the
    harmonic, biharmonic and Perona–Malik methods of :func:`pdediff.inpaint` — and, when
    installed, OpenCV's Telea and Navier–Stokes inpainting and scikit-image's biharmonic
    inpainting, the tools a user would otherwise reach for.
    """
    import skimage.data

    from .data import block_mask, crack_mask
    from .restoration import inpaint

    clean = getattr(skimage.data, image)().astype(np.float64) / 255.0
    mask = crack_mask(clean.shape[:2], seed=seed) | block_mask(clean.shape[:2], seed=seed, num_blocks=1,
                                                               min_size=0.06, max_size=0.08)
    damaged = clean.copy()
    damaged[mask] = 1.0
    methods = {
        "pdediff harmonic": lambda: inpaint(damaged, mask, method="harmonic", channel_axis=-1),
        "pdediff biharmonic": lambda: inpaint(damaged, mask, method="biharmonic", channel_axis=-1),
        "pdediff Perona–Malik": lambda: inpaint(damaged, mask, method="perona_malik", channel_axis=-1),
    }
    missing_cv2 = False
    try:
        import cv2

        u8 = np.rint(damaged * 255).astype(np.uint8)
        m8 = mask.astype(np.uint8)
        methods["OpenCV Telea"] = lambda: cv2.inpaint(u8, m8, 3, cv2.INPAINT_TELEA).astype(np.float64) / 255
        methods["OpenCV Navier–Stokes"] = lambda: cv2.inpaint(u8, m8, 3, cv2.INPAINT_NS).astype(np.float64) / 255
    except ImportError:
        missing_cv2 = True
    from skimage.restoration import inpaint_biharmonic

    methods["scikit-image biharmonic"] = lambda: inpaint_biharmonic(damaged, mask, channel_axis=-1)
    results = {}
    for name, fn in methods.items():
        out, wall = _timed(fn)  # the first call compiles (or loads Numba's cache): not timed
        results[name] = {"image": out, "seconds": wall, "scores": _masked_scores(clean, out, mask, 1.0)}
    print()
    print(f"Inpainting scikit-image's {image} ({clean.shape[0]}x{clean.shape[1]} RGB): cracks and a missing block, "
          f"{100 * mask.mean():.1f}% of the pixels, seed {seed}; scores inside the holes only")
    print(f"{'method':<26}{'PSNR [dB]':>10}{'SSIM':>8}{'wall time [ms]':>16}")
    for name, r in results.items():
        p, q = r["scores"]
        print(f"{name:<26}{p:>10.2f}{q:>8.3f}{1e3 * r['seconds']:>16.1f}")
    if missing_cv2:
        print(f"(OpenCV rows skipped: {_NO_CV2})")
    if figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ys, xs = np.nonzero(block_mask(clean.shape[:2], seed=seed, num_blocks=1, min_size=0.06, max_size=0.08))
        cy, cx = int(ys.mean()), int(xs.mean())
        y0, x0 = max(0, min(cy - 64, clean.shape[0] - 128)), max(0, min(cx - 64, clean.shape[1] - 128))
        crop = (slice(y0, y0 + 128), slice(x0, x0 + 128))
        shown = [("clean", clean), ("damaged", damaged)] + [(k, v["image"]) for k, v in results.items()]
        fig, ax = plt.subplots(2, len(shown), figsize=(2.6 * len(shown), 5.6), constrained_layout=True)
        for j, (name, img) in enumerate(shown):
            ax[0, j].imshow(np.clip(img, 0, 1))
            ax[1, j].imshow(np.clip(img[crop], 0, 1), interpolation="nearest")
            title = name if name not in results else f"{name}\n{results[name]['scores'][0]:.2f} dB in holes"
            ax[0, j].set_title(title, fontsize=8)
        for a in ax.ravel():
            a.set_axis_off()
        path = outdir / "inpaint_demo.png"
        _save_atomic(fig, path)
        plt.close(fig)
        print(f"figure: {path}")
    return {k: v["scores"] for k, v in results.items()}


def run_demo(outdir: str | os.PathLike = "pdediff-output", *, figure: bool = True, parts=PARTS) -> None:
    """Run the demo's ``parts`` (default: all of :data:`PARTS`), writing figures to ``outdir``."""
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"parts must be among {', '.join(PARTS)}; got {', '.join(map(str, unknown))}")
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    if "heat" in parts:
        heat_demo(out, figure=figure)
    if "denoise" in parts:
        denoise_demo(out, figure=figure)
    if "inpaint" in parts:
        inpaint_demo(out, figure=figure)
