"""The denoising study: one step, no sampling — classical and learned denoisers on the same noisy images.

Every method sees only the noisy image.  Parameters that have no accepted
default (heat time, Perona–Malik's ``kappa`` and time, EED's ``kappa``, ``sigma``
and time, TV weight, bilateral widths, the cold model's level) are tuned on *training* images, once per
noise level, and chosen at test time by the noise level *estimated* from the
noisy image (:func:`skimage.restoration.estimate_sigma`); methods with their
own theory (wavelet BayesShrink, non-local means, BM3D, the DDPM model's
timestep) are given that same estimate.  Only the "heat, oracle time" arm
looks at the clean image: it is the best any heat blur can do.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._common import ArmCache, timed
from ._report import mark_returned_input

#: Held-out test images (2-D), and the training images (disjoint) that tuning and learning may see.
TEST_IMAGES = ("mri", "camera", "coins", "moon", "shepp_logan", "shapes")
TRAIN_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "clock", "cell", "brick", "page")
#: Gaussian noise standard deviation, as a fraction of the image range.
LEVELS = (0.02, 0.05, 0.10, 0.20)

METHODS = {
    # name: (label, dims it supports, needs)
    "noisy": ("noisy input", (2, 3)),
    "heat_oracle": ("heat, oracle time", (2, 3)),
    "heat": ("heat, time from the data", (2, 3)),
    "pm_explicit": ("Perona–Malik defaults (explicit)", (2, 3)),
    "pm_aos": ("Perona–Malik defaults (AOS)", (2, 3)),
    "pm_tuned": ("Perona–Malik tuned on training images (AOS)", (2, 3)),
    "eed": ("EED defaults (tensor diffusion)", (2, 3)),
    "eed_tuned": ("EED tuned on training images", (2, 3)),
    "tv": ("TV (Chambolle)", (2, 3)),
    "bilateral": ("bilateral", (2,)),
    "wavelet": ("wavelet (BayesShrink)", (2, 3)),
    "nl_means": ("non-local means", (2, 3)),
    "bm3d": ("BM3D", (2,)),
    "tnrd": ("learned: trainable reaction–diffusion (shipped weights)", (2, 3)),
    "cnn": ("learned: noise-conditional CNN (shipped weights)", (2, 3)),
    "ddpm": ("learned: DDPM x̂₀ at the matching timestep", (2,)),
    "cold_pm": ("learned: cold diffusion over Perona–Malik", (2,)),
}
#: Learned denoisers the study trains itself (``steps`` steps on ``patch``-sized crops, minutes): not in the default
#: study, since the shipped models (``tnrd``, ``cnn``; tens of minutes of training, model cards in
#: docs/learned_denoisers.rst) are the learned side worth comparing; kept for :meth:`DenoiseSettings.quick` and
#: for studies that ask for them.
TRAINED_HERE = ("ddpm", "cold_pm")
#: The default study's methods.
DEFAULT_METHODS = tuple(m for m in METHODS if m not in TRAINED_HERE)


@dataclass(frozen=True)
class DenoiseSettings:
    size: int = 192  # test and training images are resized to size × size
    size3d: int = 40  # the 3-D phantom
    train_images: int = 3  # how many training images tuning uses
    patch: int = 24  # learned models train on patch × patch crops of all training images
    patches: int = 4096
    base: int = 16
    batch_size: int = 32
    steps: int = 500
    lr: float = 1e-3
    images: tuple = TEST_IMAGES
    levels: tuple = LEVELS
    methods: tuple = DEFAULT_METHODS

    @classmethod
    def quick(cls) -> DenoiseSettings:
        """Tiny settings: the whole pipeline in about a minute, the models trained here included."""
        return cls(size=48, size3d=16, train_images=1, patch=16, patches=128, base=8, batch_size=16, steps=20,
                   images=("camera", "shapes"), levels=(0.05, 0.2), methods=tuple(METHODS))


# ----------------------------------------------------------------------------- images
def _square(img: np.ndarray, size: int) -> np.ndarray:
    from skimage.transform import resize

    img = np.asarray(img, dtype=np.float64)
    if img.ndim == 3:
        img = img[..., :3] @ np.array([0.2125, 0.7154, 0.0721])  # scikit-image's rgb2gray weights
    h, w = img.shape
    s = min(h, w)
    img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    img = resize(img, (size, size), anti_aliasing=True, preserve_range=True)
    lo, hi = img.min(), img.max()
    return (img - lo) / (hi - lo)


def load_image(name: str, size: int) -> np.ndarray:
    """A test or training image as float64 in ``[0, 1]``, ``size × size`` (centre square, resized)."""
    from skimage import data as skdata

    from .. import data

    if name == "mri":
        return _square(data.mri_slice(), size)
    if name == "shapes":
        return _square(data.phantom((size, size), seed=3), size)
    if name == "shepp_logan":
        return _square(skdata.shepp_logan_phantom(), size)
    return _square(getattr(skdata, name)(), size)


def _noisy(clean: np.ndarray, level: float, seed: int, tag: str) -> np.ndarray:
    from ._common import key_of

    rng = np.random.default_rng([seed, int(key_of(tag, level), 16) % (2**32)])
    return clean + level * rng.standard_normal(clean.shape)


def estimate_noise(noisy: np.ndarray) -> float:
    """Noise standard deviation from the image alone (wavelet MAD, Donoho & Johnstone)."""
    from skimage.restoration import estimate_sigma

    return float(estimate_sigma(noisy))


# ----------------------------------------------------------------------------- methods
def _heat(y: np.ndarray, t: float) -> np.ndarray:
    from .. import solve_heat

    return solve_heat(y, float(t), method="spectral") if t > 0 else y.copy()


def _heat_oracle(y: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, float]:
    from scipy.optimize import minimize_scalar

    def err(logt):
        return float(np.mean((_heat(y, np.exp(logt)) - clean) ** 2))

    res = minimize_scalar(err, bounds=(np.log(1e-3), np.log(200.0)), method="bounded",
                          options={"xatol": 0.02})
    return _heat(y, np.exp(res.x)), float(np.exp(res.x))


def _pm(y: np.ndarray, kappa_factor: float, time_: float) -> np.ndarray:
    """AOS Perona–Malik for diffusion time ``time_`` with ``kappa_factor`` times the automatic kappa."""
    from .. import perona_malik

    _, info = perona_malik(y, num_iter=1, return_info=True)  # the automatic (Black et al.) kappa
    n = max(1, int(np.ceil(time_)))
    return perona_malik(y, method="aos", kappa=max(kappa_factor * info.kappa, 1e-12), num_iter=n,
                        dt=float(time_) / n)


def _eed(y: np.ndarray, kappa_factor: float, sigma: float, steps: float) -> np.ndarray:
    """Edge-enhancing diffusion: ``steps`` explicit steps, Gaussian scale ``sigma`` (pixels) and
    ``kappa_factor`` times the automatic ``kappa`` (the one :func:`~pdediff.tensor_diffusion` picks for that
    ``sigma``)."""
    from .. import tensor_diffusion

    _, info = tensor_diffusion(y, kind="eed", sigma=sigma, num_iter=0, return_info=True)
    return tensor_diffusion(y, kind="eed", sigma=sigma, kappa=max(kappa_factor * info.kappa, 1e-12),
                            num_iter=int(steps))


def _tv(y, weight):
    from skimage.restoration import denoise_tv_chambolle

    return denoise_tv_chambolle(y, weight=weight)


def _bilateral(y, color, spatial):
    from skimage.restoration import denoise_bilateral

    lo, hi = float(y.min()), float(y.max())  # denoise_bilateral wants non-negative data
    out = denoise_bilateral((y - lo) / (hi - lo), sigma_color=color / (hi - lo), sigma_spatial=spatial)
    return out * (hi - lo) + lo


def _wavelet(y, sigma_hat):
    from skimage.restoration import denoise_wavelet

    return denoise_wavelet(y, sigma=sigma_hat, method="BayesShrink", mode="soft", rescale_sigma=True)


def _nl_means(y, sigma_hat):
    from skimage.restoration import denoise_nl_means

    # scikit-image's recommended settings (its NL-means example): h = 0.8 sigma, sigma given, fast mode.
    return denoise_nl_means(y, h=0.8 * sigma_hat, sigma=sigma_hat, patch_size=5, patch_distance=6,
                            fast_mode=True)


def _bm3d(y, sigma_hat):
    import bm3d

    return np.asarray(bm3d.bm3d(y, sigma_psd=sigma_hat), dtype=np.float64)


#: Parameter grids tuned on training images (per noise level).
GRIDS: dict[str, list[tuple]] = {
    "heat": [(t,) for t in np.geomspace(0.05, 30.0, 18).tolist()],
    "pm_tuned": [(a, T) for a in (0.5, 0.75, 1.0, 1.5, 2.0) for T in (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)],
    "eed_tuned": [(a, s, n) for a in (1.0, 2.0, 3.0) for s in (1.0, 2.0) for n in (5, 10, 20, 40)],
    "tv": [(w,) for w in np.geomspace(0.005, 0.5, 12).tolist()],
    "bilateral": [(c, s) for c in (0.5, 1.0, 2.0, 4.0) for s in (1.0, 2.0)],
    "cold_pm": [(k,) for k in (0, 1, 2, 4, 8, 16)],
}


def _apply(method: str, y: np.ndarray, sigma_hat: float, params: tuple, models: dict) -> np.ndarray:
    """Denoise ``y`` by ``method`` (any but ``heat_oracle``, which needs the clean image).

    ``params`` are the tuned ones for the methods in :data:`GRIDS` (empty otherwise); ``models`` the
    learned denoisers.
    """
    if method == "noisy":
        return y
    if method in ("pm_explicit", "pm_aos"):
        from .. import perona_malik

        return perona_malik(y, method="aos" if method == "pm_aos" else "explicit")
    if method == "eed":
        from .. import tensor_diffusion

        return tensor_diffusion(y, kind="eed")
    if method == "wavelet":
        return _wavelet(y, sigma_hat)
    if method == "nl_means":
        return _nl_means(y, sigma_hat)
    if method == "bm3d":
        return _bm3d(y, sigma_hat)
    if method in ("tnrd", "cnn"):
        from ..torch import denoise_learned

        # the clean images span [0, 1] (the range every method's PSNR is taken on); the CNN gets the noise
        # estimate BM3D and NL-means get
        return denoise_learned(y, method, sigma=sigma_hat if method == "cnn" else None, data_range=(0.0, 1.0))
    if method == "ddpm":
        return models["ddpm"].denoise(y, sigma_hat)
    if method == "heat":
        return _heat(y, params[0])
    if method == "pm_tuned":
        return _pm(y, params[0], params[1])
    if method == "eed_tuned":
        return _eed(y, *params)
    if method == "tv":
        return _tv(y, params[0])
    if method == "bilateral":
        return _bilateral(y, params[0] * sigma_hat, params[1])
    if method == "cold_pm":
        return models["cold_pm"].denoise(y, level=int(params[0]))
    raise KeyError(method)


# ----------------------------------------------------------------------------- learned denoisers
class _DDPMDenoiser:
    """x̂₀ of a Gaussian-diffusion model at the timestep whose noise matches the estimate.

    The noisy image ``y = x + s ε`` (in the model's [-1, 1] units) is, once
    scaled by ``sqrt(ᾱ_t)``, a sample ``x_t`` of the forward process at the
    timestep with ``(1 - ᾱ_t) / ᾱ_t = s²``; one model call gives ε̂ and so x̂₀.
    """

    def __init__(self, model, process) -> None:
        self.model, self.process = model, process

    def denoise(self, y: np.ndarray, sigma_hat: float) -> np.ndarray:
        import torch

        s = 2.0 * sigma_hat  # [0, 1] -> [-1, 1] doubles the noise
        ab = self.process.alphas_cumprod.double().numpy()
        t = int(np.argmin(np.abs((1 - ab) / ab - s * s)))
        a = float(ab[t])
        x = torch.from_numpy((2 * y - 1)[None, None] * np.sqrt(a)).float()
        with torch.no_grad():
            eps = self.model(x, torch.tensor([t])).double()
        x0 = (x.double() - np.sqrt(1 - a) * eps) / np.sqrt(a)
        return (x0[0, 0].numpy() + 1) / 2


class _ColdPMDenoiser:
    """Perona–Malik removes the noise (``level`` cold-diffusion levels), the cold model restores the detail.

    The model was trained by :class:`pdediff.torch.ColdDiffusion` to predict
    ``x0`` from Perona–Malik-degraded images ``D(x0, k)``; applied once to
    ``D(y, k)`` it is a one-step learned reversal of the classical filter.
    ``level = 0`` returns the noisy input.
    """

    def __init__(self, model, process) -> None:
        self.model, self.process = model, process

    def denoise(self, y: np.ndarray, level: int) -> np.ndarray:
        import torch

        if level <= 0:
            return y.copy()
        k = min(level, self.process.num_train_timesteps) - 1
        x = torch.from_numpy((2 * y - 1)[None, None]).float()
        with torch.no_grad():
            xk = self.process.degrade(x, k)
            x0 = self.model(xk, torch.tensor([k])).double()
        return (x0[0, 0].numpy() + 1) / 2


def _training_record(folder: str | None, before: int, after: int, seconds: float) -> dict:
    """The training time of one learned denoiser, from the record kept next to its checkpoint.

    :func:`pdediff.torch.train` resumes from the checkpoint in ``folder``, so
    a rerun of a finished training only loads it: that call's wall time is a
    load time and is reported as such, never added to the training time.
    The record ``seconds.json`` holds the training seconds, the step they
    reach and how many of those steps were timed (a training interrupted
    before any record was written leaves steps that no record times).

    Parameters
    ----------
    folder : str or None
        The checkpoint folder (``None``: no checkpoint, nothing is kept).
    before, after : int
        Steps in the checkpoint before and after this call.
    seconds : float
        Wall time of this call of :func:`~pdediff.torch.train`.

    Returns
    -------
    dict
        ``train_seconds`` (float, or ``None`` where no step was timed),
        ``timed_steps`` (int, steps whose training time ``train_seconds``
        covers) and ``load_seconds`` (this call's time when it trained
        nothing, else ``None``).
    """
    import json

    from ..io import atomic_path

    trained = after > before
    if folder is None:
        return {"train_seconds": float(seconds) if trained else None, "timed_steps": after - before,
                "load_seconds": None if trained else float(seconds)}
    path = os.path.join(folder, "seconds.json")
    prev_seconds, prev_timed = 0.0, 0
    try:
        with open(path) as f:
            stored = json.load(f)
        # A record without its step (written by an earlier version) may hold load times: not trusted.
        if int(stored["step"]) <= before:
            prev_seconds, prev_timed = float(stored["seconds"]), int(stored["timed_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if not trained:
        return {"train_seconds": prev_seconds if prev_timed else None, "timed_steps": prev_timed,
                "load_seconds": float(seconds)}
    total, timed = prev_seconds + float(seconds), prev_timed + (after - before)
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump({"seconds": total, "step": after, "timed_steps": timed}, f)
    return {"train_seconds": total, "timed_steps": timed, "load_seconds": None}


def _checkpoint_step(folder: str | None) -> int:
    """Steps stored in the training checkpoint in ``folder`` (0 if there is none)."""
    from ..torch.training import CHECKPOINT, load_checkpoint

    if folder is None or not os.path.exists(os.path.join(folder, CHECKPOINT)):
        return 0
    return int(load_checkpoint(os.path.join(folder, CHECKPOINT))["step"])


def _train_denoisers(settings: DenoiseSettings, seed: int, folder: str | None, progress: bool) -> tuple[dict, dict]:
    """Train both learned denoisers on patches of the training images (resumable through checkpoints)."""
    import torch

    from ..torch import ColdDiffusion, GaussianDiffusion, UNet, train

    rng = np.random.default_rng(seed)
    pics = [load_image(n, max(settings.size, 2 * settings.patch)) for n in TRAIN_IMAGES]
    p = settings.patch
    patches = np.empty((settings.patches, 1, p, p), np.float32)
    for i in range(settings.patches):
        img = pics[rng.integers(len(pics))]
        y, x = rng.integers(0, img.shape[0] - p + 1, 2)
        patches[i, 0] = img[y : y + p, x : x + p] * 2 - 1
    data = torch.from_numpy(patches)
    # The Gaussian schedule covers the noise range of the study (s up to 0.6 in [-1, 1] units) densely.
    processes = {"ddpm": GaussianDiffusion(100, beta_start=1e-4, beta_end=0.006),
                 "cold_pm": ColdDiffusion(16, operator="perona_malik", iters_per_level=2, kappa=0.3)}
    models, info = {}, {}
    for name, proc in processes.items():
        torch.manual_seed(seed)
        model = UNet(1, base=settings.base, mults=(1, 2))
        ckpt = None if folder is None else os.path.join(folder, f"denoiser-{name}-seed{seed}-{settings.steps}")
        before = _checkpoint_step(ckpt)
        t0 = time.perf_counter()
        res = train(model, proc, data, steps=settings.steps, batch_size=settings.batch_size, lr=settings.lr,
                    seed=seed, checkpoint_dir=ckpt, progress=progress,
                    ema_warmup=False)  # as the committed results were trained (before one set of defaults)
        info[name] = {**_training_record(ckpt, before, res.step, time.perf_counter() - t0),
                      "final_loss": float(np.mean(res.losses[-20:])), "steps": settings.steps, "process": repr(proc)}
        wrapper = _DDPMDenoiser if name == "ddpm" else _ColdPMDenoiser
        models[name] = wrapper(res.ema_model.eval(), proc)
    return models, info


# ----------------------------------------------------------------------------- tuning
def _tune(method: str, settings: DenoiseSettings, seed: int, models: dict) -> dict[float, dict]:
    """Best grid point per noise level on training images (mean PSNR), and the mean noise estimate there."""
    from ..metrics import psnr

    out = {}
    names = TRAIN_IMAGES[: settings.train_images]
    for level in settings.levels:
        cases = []
        for name in names:
            clean = load_image(name, settings.size)
            y = _noisy(clean, level, seed + 1000, name)
            cases.append((clean, y, estimate_noise(y)))
        scores = []
        for params in GRIDS[method]:
            scores.append(np.mean([psnr(c, _apply(method, y, s, params, models), data_range=1.0)
                                   for c, y, s in cases]))
        best = int(np.argmax(scores))
        out[level] = {"params": list(GRIDS[method][best]), "train_psnr": float(scores[best]),
                      "sigma_hat": float(np.mean([s for _, _, s in cases]))}
    return out


def _pick(tuned: dict, sigma_hat: float) -> tuple:
    """The tuned parameters of the training noise level nearest (in log) to the estimate."""
    level = min(tuned, key=lambda lv: abs(np.log(tuned[lv]["sigma_hat"]) - np.log(max(sigma_hat, 1e-12))))
    return tuple(tuned[level]["params"])


# ----------------------------------------------------------------------------- the study
def run_denoise(settings: DenoiseSettings, *, seeds: int, out: str | None, progress: bool = True) -> dict:
    """Run the denoising study; returns the ``denoise`` section of ``results.json``."""
    from tqdm.auto import tqdm

    cache = ArmCache(None if out is None else os.path.join(out, "cache", "denoise"))
    methods = [m for m in settings.methods if m in METHODS]
    notes = []
    try:
        import bm3d  # noqa: F401
    except ImportError:
        if "bm3d" in methods:
            methods.remove("bm3d")
            notes.append("BM3D skipped: the optional package `bm3d` is not installed (pip install \"pdediff[study]\").")
    learned = [m for m in TRAINED_HERE if m in methods]
    try:
        import torch  # noqa: F401
    except ImportError:
        for m in learned + [m for m in ("tnrd", "cnn") if m in methods]:
            methods.remove(m)
        notes.append("Learned denoisers skipped: PyTorch is not installed (pip install \"pdediff[torch]\").")
        learned = []

    rows, training, tuning = [], {}, {}
    weights = _shipped_weights([m for m in ("tnrd", "cnn") if m in methods])
    for seed in range(seeds):
        models, info = {}, {}
        if learned:
            folder = None if out is None else os.path.join(out, "cache", "denoise")
            models, info = _train_denoisers(settings, seed, folder, progress)
            training[str(seed)] = info
        tuned = {}
        for m in methods:
            if m in GRIDS:
                key = {"method": m, "seed": seed, **_settings_key(settings)}
                t = cache.get_or_run(f"tune-{m}", key, lambda m=m: {str(k): v for k, v in
                                                                   _tune(m, settings, seed, models).items()})
                tuned[m] = {float(k): v for k, v in t.items()}
        tuning[str(seed)] = {m: {str(k): v for k, v in t.items()} for m, t in tuned.items()}

        cases = [(name, 2) for name in settings.images] + [("phantom3d", 3)]
        bar = tqdm(total=len(cases) * len(settings.levels), desc=f"denoise seed {seed}", disable=not progress,
                   leave=False)
        for name, dim in cases:
            clean = (load_image(name, settings.size) if dim == 2
                     else _phantom3d(settings.size3d))
            for level in settings.levels:
                key = {"image": name, "level": level, "seed": seed, "methods": methods, "tuned": tuning[str(seed)],
                       "weights": weights, **_settings_key(settings)}

                def run_case(clean=clean, level=level, name=name, dim=dim):
                    return {"rows": _run_case(clean, name, dim, level, seed, methods, tuned, models)}

                rows.extend(cache.get_or_run(f"case-{name}-{level}-{seed}", key, run_case)["rows"])
                bar.update()
        bar.close()
    mark_returned_input(rows)  # rows cached by an earlier version carry no flag
    return {"rows": rows, "training": training, "tuning": tuning, "notes": notes,
            "methods": {m: METHODS[m][0] for m in methods}, "cache": {"hits": cache.hits, "misses": cache.misses}}


def _run_case(clean: np.ndarray, name: str, dim: int, level: float, seed: int, methods: list[str],
              tuned: dict, models: dict) -> list[dict]:
    """Every method on one noisy draw of ``clean``: one row each (PSNR, SSIM, seconds, parameters used)."""
    from ..metrics import psnr, ssim

    y = _noisy(clean, level, seed, name)
    sigma_hat = estimate_noise(y)
    rows = []
    for m in methods:
        if dim not in METHODS[m][1]:
            continue
        rec: dict[str, Any] = {"image": name, "dim": dim, "level": level, "seed": seed, "method": m,
                               "sigma_hat": sigma_hat}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with timed(rec):
                if m == "heat_oracle":
                    z, rec["t"] = _heat_oracle(y, clean)
                else:
                    params = _pick(tuned[m], sigma_hat) if m in GRIDS else ()
                    if m in GRIDS:
                        rec["params"] = list(params)
                    z = _apply(m, y, sigma_hat, params, models)
        # A method that hands back the noisy input (cold PM tuned to level 0) must not pass for a denoiser.
        rec["returns_input"] = m != "noisy" and np.shape(z) == np.shape(y) and bool(np.array_equal(z, y))
        rec["psnr"] = psnr(clean, z, data_range=1.0)
        rec["ssim"] = ssim(clean, z, data_range=1.0)
        rows.append(rec)
    return rows


def _phantom3d(n: int) -> np.ndarray:
    from .. import data

    return data.phantom((n, n, n), seed=5)


def _shipped_weights(names: list[str]) -> dict[str, str]:
    """SHA-256 (16 hex digits) of each shipped model's weights file: part of a case's cache key, so that
    rows cached with other weights are recomputed, not reported for the models shipped now."""
    import hashlib
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "torch" / "weights"
    return {n: hashlib.sha256((folder / f"{n}.npz").read_bytes()).hexdigest()[:16] for n in names
            if (folder / f"{n}.npz").is_file()}


def _settings_key(settings: DenoiseSettings) -> dict:
    from dataclasses import asdict

    d = asdict(settings)
    d.pop("methods")
    return d


#: Column titles of the crops figure (the table labels are too long for a narrow column).
_SHORT = {"heat": "heat", "pm_explicit": "PM defaults", "pm_tuned": "PM tuned", "eed": "EED", "eed_tuned": "EED tuned",
          "tv": "TV", "nl_means": "NL-means", "tnrd": "TNRD", "cnn": "CNN",
          "wavelet": "wavelet", "bm3d": "BM3D", "noisy": "noisy"}


def crops_figure(settings: DenoiseSettings, rows: list[dict], path: str, *, seed: int = 0,
                 models: dict | None = None) -> None:
    """Figure: a crop of one test image at each noise level, through the methods that run without training here
    (the shipped learned denoisers included where PyTorch is installed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._figures import save_atomic

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    name = settings.images[0]
    clean = load_image(name, settings.size)
    methods = ["noisy", "heat", "pm_explicit", "pm_tuned", "eed", "tv", "wavelet", "nl_means"]
    for m, module in (("bm3d", "bm3d"), ("tnrd", "torch"), ("cnn", "torch")):
        try:
            __import__(module)
        except ImportError:
            continue
        if m in settings.methods:
            methods.append(m)
    tuned = {}
    for r in rows:
        if r["image"] == name and r["seed"] == seed and "params" in r:
            tuned.setdefault(r["method"], {})[r["level"]] = tuple(r["params"])
    c = settings.size // 2
    sl = (slice(max(0, c - settings.size // 4), c + settings.size // 4),) * 2
    fig, axes = plt.subplots(len(settings.levels), len(methods) + 1,
                             figsize=(1.6 * (len(methods) + 1), 1.7 * len(settings.levels)), squeeze=False)
    for i, level in enumerate(settings.levels):
        y = _noisy(clean, level, seed, name)
        s = estimate_noise(y)
        axes[i, 0].imshow(clean[sl], cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_ylabel(f"{level:.0%}")
        for j, m in enumerate(methods, start=1):
            if m in GRIDS and level not in tuned.get(m, {}):
                z = np.full_like(y, np.nan)
            else:
                z = _apply(m, y, s, tuned.get(m, {}).get(level, ()), models or {})
            axes[i, j].imshow(np.clip(z[sl], 0, 1), cmap="gray", vmin=0, vmax=1)
            if i == 0:
                axes[i, j].set_title(_SHORT.get(m, METHODS[m][0].split(" (")[0]), fontsize=7)
        if i == 0:
            axes[i, 0].set_title("clean", fontsize=7)
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    save_atomic(fig, path, dpi=110)
    plt.close(fig)
