"""Training runs on disk: one folder per run, trained, resumed and sampled by name.

A run folder holds

* ``run.json``: everything needed to rebuild the run, as plain JSON: the
  process (name, class and full constructor config), the model
  (:class:`~pdediff.torch.UNet` settings), the training settings, the data
  (spec, split and a SHA-256 of the training images) and the versions of
  pdediff, torch, NumPy and Python; after training also ``result`` (steps
  done, final loss, training wall time);
* ``checkpoint.pt``: model, EMA and optimiser state, generator state, loss
  history, step and process config, as tensors and plain values only, so
  that it loads with ``torch.load(..., weights_only=True)``
  (:func:`pdediff.torch.training.load_checkpoint`): loading a run never runs
  code stored in it.

:func:`train_run` creates or resumes a run, :func:`load_run` reads one back
as a :class:`Run` (EMA model, fitted process), :meth:`Run.sample` draws images.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import numbers
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import RunError
from ..io import atomic_path
from . import distributed as _dist
from .data import DATASETS, load_dataset
from .processes import BlurringDiffusion, ColdDiffusion, ForwardProcess, GaussianDiffusion, HeatDissipation
from .processes.gaussian import _NoisePrediction
from .training import CHECKPOINT, load_checkpoint, sample, train
from .unet import UNet

__all__ = ["PROCESSES", "make_process", "train_run", "load_run", "Run", "RUN_FILE"]

#: Process names accepted by :func:`make_process`, :func:`train_run` and ``pdediff train --process``.
PROCESSES = ("ddpm", "ihdm", "blurring", "cold-heat", "cold-pm")

_CLASSES: dict[str, type[ForwardProcess]] = {
    "ddpm": GaussianDiffusion,
    "ihdm": HeatDissipation,
    "blurring": BlurringDiffusion,
    "cold-heat": ColdDiffusion,
    "cold-pm": ColdDiffusion,
}
#: Constructor arguments a name fixes (a config may repeat them, not change them).
_FIXED = {"cold-heat": {"operator": "heat"}, "cold-pm": {"operator": "perona_malik"}}

RUN_FILE = "run.json"
RUN_FORMAT = "pdediff-run"
RUN_VERSION = 1
#: Fraction of the image size that the strongest blur of the heat-based processes spans (in pixels).
BLUR_FRACTION = 0.75
#: Explicit Perona–Malik time step in 2-D (the stability limit), used to size cold-pm's iterations.
_PM_DT = 0.25


# ------------------------------------------------------------------------------ processes
def _image_size(image_size: Any) -> tuple[int, int]:
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        image_size = (int(image_size), int(image_size))
    try:
        h, w = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be a positive integer or a pair (height, width); got {image_size!r}"
                         ) from None
    if h < 1 or w < 1:
        raise ValueError(f"image_size must be positive; got {image_size!r}")
    return h, w


def _read_config(config: Any) -> dict:
    if config is None:
        return {}
    if isinstance(config, dict):
        return dict(config)
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ValueError(f"config {path}: cannot read: {exc.strerror or exc}") from None
        try:
            out = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"config {path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(out, dict):
            raise ValueError(f"config {path}: expected a JSON object of constructor arguments; got "
                             f"{type(out).__name__}")
        return out
    raise ValueError(f"config must be a dict or the path of a JSON file; got {type(config).__name__}")


def default_process_config(name: str, image_size: Any, num_train_timesteps: int | None = None) -> dict:
    """The constructor arguments :func:`make_process` uses for ``name`` on images of ``image_size``.

    ``L = max(H, W)``; heat-based processes blur up to ``0.75 L`` pixels
    (heat time ``(0.75 L)^2 / 2``, which damps the slowest non-constant
    Neumann mode to ``exp(-pi^2 0.75^2 / 2)`` ≈ 6 %):

    * ``ddpm``: 200 timesteps, linear betas scaled by ``1000 / K`` (``1e-4``
      to ``0.02`` at ``K = 1000``; ``5e-4`` to ``0.1`` at 200), so that the
      last level is pure noise for any ``K``;
    * ``ihdm``: 50 timesteps, ``sigma_blur_min = 0.5``, ``sigma_blur_max = 0.75 L``;
    * ``blurring``: 200 timesteps, ``sigma_blur_max = 0.75 L``, cosine schedule;
    * ``cold-heat``: 50 timesteps, the IHDM blur schedule;
    * ``cold-pm``: 50 timesteps, ``kappa = 1.0`` (half the [-1, 1] data
      range: strong edges survive the first levels, the last level is nearly
      flat so that the mixture prior fits), and ``iters_per_level`` such that
      the ``K * iters_per_level`` explicit steps span at least the heat time
      of ``cold-heat``'s last level.
    """
    h, w = _image_size(image_size)
    L = max(h, w)
    smax = BLUR_FRACTION * L
    if name == "ddpm":
        K = 200 if num_train_timesteps is None else int(num_train_timesteps)
        scale = 1000.0 / max(K, 1)
        return {"num_train_timesteps": K, "beta_schedule": "linear", "beta_start": min(1e-4 * scale, 0.5),
                "beta_end": min(0.02 * scale, 0.999)}
    if name == "ihdm":
        K = 50 if num_train_timesteps is None else int(num_train_timesteps)
        return {"num_train_timesteps": K, "sigma_blur_min": 0.5, "sigma_blur_max": smax, "training_noise": 0.01,
                "sampling_noise": None}
    if name == "blurring":
        K = 200 if num_train_timesteps is None else int(num_train_timesteps)
        return {"num_train_timesteps": K, "sigma_blur_max": smax, "min_scale": 0.001, "beta_schedule": "cosine"}
    if name == "cold-heat":
        K = 50 if num_train_timesteps is None else int(num_train_timesteps)
        return {"num_train_timesteps": K, "operator": "heat", "sigma_blur_min": 0.5, "sigma_blur_max": smax}
    if name == "cold-pm":
        K = 50 if num_train_timesteps is None else int(num_train_timesteps)
        iters = max(1, math.ceil(smax**2 / 2 / _PM_DT / max(K, 1)))
        return {"num_train_timesteps": K, "operator": "perona_malik", "iters_per_level": iters, "kappa": 1.0,
                "sigma_blur_max": smax}
    raise ValueError(f"process must be one of {', '.join(map(repr, PROCESSES))}; got {name!r}")


def make_process(name: str, *, image_size: int | tuple[int, int], config: dict | str | os.PathLike | None = None
                 ) -> ForwardProcess:
    """Build a forward process by name, with defaults sized for small images.

    Parameters
    ----------
    name : {"ddpm", "ihdm", "blurring", "cold-heat", "cold-pm"}
        :class:`~pdediff.torch.GaussianDiffusion`,
        :class:`~pdediff.torch.HeatDissipation`,
        :class:`~pdediff.torch.BlurringDiffusion`, and
        :class:`~pdediff.torch.ColdDiffusion` with the heat or the
        Perona–Malik degradation (see :data:`PROCESSES`).
    image_size : int or (int, int)
        ``(H, W)`` of the training images; the blur range of the heat-based
        processes is sized to it (:func:`default_process_config` lists every
        default).
    config : dict or os.PathLike, optional
        Constructor arguments overriding the defaults, or a JSON file of them
        (e.g. written by :meth:`ForwardProcess.save_config`; its ``"class"``
        must then match ``name``).  A changed ``num_train_timesteps`` also
        rescales the defaults that depend on it (DDPM's betas, cold-pm's
        iterations per level) unless they are given too.

    Returns
    -------
    ForwardProcess
        Not yet fitted (``process.fit(data)`` builds the data-based priors).

    Raises
    ------
    ValueError
        Unknown ``name``; a config key the constructor does not take (the
        message lists the ones it takes); a key the name fixes (``operator``
        of the cold processes) set to another value; a ``"class"`` that is not
        ``name``'s; or a value the constructor refuses.
    """
    if name not in PROCESSES:
        raise ValueError(f"process must be one of {', '.join(map(repr, PROCESSES))}; got {name!r}")
    klass = _CLASSES[name]
    cfg = _read_config(config)
    cls_name = cfg.pop("class", klass.__name__)
    if cls_name != klass.__name__:
        raise ValueError(f"config is for {cls_name!r}, but process {name!r} is a {klass.__name__}")
    allowed = [p for p in inspect.signature(klass.__init__).parameters if p != "self"]
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise ValueError(f"config: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for "
                         f"process {name!r} ({klass.__name__}); allowed: {', '.join(allowed)}")
    for k, v in _FIXED.get(name, {}).items():
        if k in cfg and cfg[k] != v:
            raise ValueError(f"config: {k}={cfg[k]!r} contradicts process {name!r} ({k}={v!r}); "
                             f"choose the process by name instead")
    K = cfg.get("num_train_timesteps")
    if K is not None and (isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 1):
        raise ValueError(f"config: num_train_timesteps must be a positive integer; got {K!r}")
    kwargs = default_process_config(name, image_size, K) | cfg
    return klass(**kwargs)


# ------------------------------------------------------------------------------ runs
def _versions() -> dict:
    from .. import __version__

    return {"pdediff": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _device(device: Any) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N'; got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(dev)!r}: CUDA is not available to this torch ({torch.__version__}); "
                         "use device 'cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N'; got {device!r}")
    return dev


def _data_record(data: Any) -> dict:
    """The data part of run.json (without shape and hash), from a spec string/path or a dict."""
    opts = {"seed": 0, "test_fraction": 0.3, "n": None, "size": None}
    if isinstance(data, dict):
        extra = sorted(set(data) - {"spec", *opts})
        if "spec" not in data or extra:
            raise ValueError("data as a dict takes 'spec' and optionally 'seed', 'test_fraction', 'n', 'size'"
                             + (f"; got unknown {', '.join(map(repr, extra))}" if extra else "; 'spec' is missing"))
        opts |= {k: data[k] for k in opts if k in data}
        spec = data["spec"]
    else:
        spec = data
    if not isinstance(spec, (str, os.PathLike)):
        raise ValueError(f"data must be 'digits', 'shapes', a folder of images or a .npy file; got "
                         f"{type(spec).__name__}")
    spec = os.fspath(spec)
    if spec not in DATASETS and Path(spec).expanduser().exists():  # else load_dataset says what is wrong
        spec = str(Path(spec).expanduser().resolve())
    size = opts["size"]
    if size is not None:
        size = [int(size), int(size)] if isinstance(size, (int, np.integer)) else [int(v) for v in size]
    return {"spec": spec, "split": "train", "seed": int(opts["seed"]),
            "test_fraction": float(opts["test_fraction"]),
            "n": None if opts["n"] is None else int(opts["n"]), "size": size}


def _load_train_data(rec: dict) -> torch.Tensor:
    images, _ = load_dataset(rec["spec"], split=rec.get("split", "train"), seed=rec["seed"],
                             test_fraction=rec["test_fraction"], n=rec["n"], size=rec["size"])
    return images


def _sha256(images: torch.Tensor) -> str:
    return hashlib.sha256(images.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


#: Parts of run.json that must be equal for a rerun to resume (training.steps may grow).
_COMPARED = ("process", "model", "training", "data")


def _differences(old: dict, new: dict) -> list[str]:
    a = _flatten({k: old.get(k) for k in _COMPARED})
    b = _flatten({k: new.get(k) for k in _COMPARED})
    diffs = []
    for k in sorted(set(a) | set(b)):
        if k == "training.steps":
            continue
        if a.get(k, "<absent>") != b.get(k, "<absent>"):
            if k == "data.sha256":
                diffs.append("data (the training images' content changed)")
            else:
                diffs.append(f"{k}: {a.get(k, '<absent>')!r} in the run, {b.get(k, '<absent>')!r} now")
    return diffs


def _write_json(path: Path, obj: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


def _read_run_json(folder: Path) -> dict:
    p = folder / RUN_FILE
    try:
        rec = json.loads(p.read_text())
    except FileNotFoundError:
        raise RunError(f"{folder} is not a run folder (no {RUN_FILE}); train one with pdediff train / train_run"
                       ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunError(f"{p}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise RunError(f"{p} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(rec, dict) or rec.get("format") != RUN_FORMAT:
        raise RunError(f"{p} is not a pdediff run description (no \"format\": \"{RUN_FORMAT}\")")
    missing = [k for k in _COMPARED if not isinstance(rec.get(k), dict)]
    if missing:
        raise RunError(f"{p} lacks {', '.join(missing)}")
    return rec


@dataclass
class Run:
    """A trained run, as :func:`load_run` and :func:`train_run` return it.

    Attributes
    ----------
    path : pathlib.Path
        The run folder.
    config : dict
        The contents of ``run.json``.
    model : torch.nn.Module
        The EMA model, in eval mode, on the device asked for.
    process : ForwardProcess
        The run's process with its prior fitted (from the run's training data
        for IHDM and cold diffusion; a placeholder of the image shape for the
        Gaussian-prior processes, which need no data).
    losses : numpy.ndarray
        Training loss per step (float64).
    step : int
        Steps trained.
    resumed_from : int
        For :func:`train_run`: the step training resumed from (0 for a new run).
    """

    path: Path
    config: dict
    model: torch.nn.Module
    process: ForwardProcess
    losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    step: int = 0
    resumed_from: int = 0

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the run's images."""
        return tuple(self.config["data"]["shape"][1:])

    def sample(self, n: int, *, steps: int | None = None, seed: int = 0, trajectory: bool = False,
               progress: bool = False, batch_size: int | None = 1000, clip: bool = True
               ) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
        """Draw ``n`` images with :func:`pdediff.torch.sample` and a seeded generator.

        Parameters
        ----------
        n : int
            How many images.
        steps : int, optional
            Sampling steps (``process.set_timesteps``); default every trained
            timestep (``num_train_timesteps``).
        seed : int
            Seed of the one :class:`torch.Generator` that draws the prior and
            the sampling noise: equal arguments give equal images (on one device).
        trajectory : bool
            Also return the intermediate samples, prior first.
        progress : bool
            tqdm progress bar.
        batch_size : int or None
            Images per model call (memory); chunks are drawn in turn from the
            one generator, so the images depend on ``batch_size`` too.  ``None``:
            all at once.
        clip : bool
            Clip the final images to ``[-1, 1]`` (the data's range); the
            trajectory is never clipped.

        Returns
        -------
        images : numpy.ndarray
            float32, ``(n, C, H, W)``, in the data's ``[-1, 1]`` scale.
        trajectory : list of numpy.ndarray
            Only with ``trajectory=True``: ``steps + 1`` float32 arrays of
            shape ``(n, C, H, W)``, from the prior to the final (unclipped) sample.
        """
        if isinstance(n, bool) or int(n) != n or int(n) < 1:
            raise ValueError(f"n must be a positive integer; got {n!r}")
        K = self.process.num_train_timesteps
        k = K if steps is None else steps
        if isinstance(k, bool) or int(k) != k or not 1 <= int(k) <= K:
            raise ValueError(f"steps must be an integer in [1, {K}] (the process's timesteps); got {steps!r}")
        if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
            raise ValueError(f"batch_size must be a positive integer or None; got {batch_size!r}")
        n, k = int(n), int(k)
        chunk = n if batch_size is None else int(batch_size)
        gen = torch.Generator().manual_seed(int(seed))
        outs, trajs = [], []
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            res = sample(self.model, self.process, m, generator=gen, num_inference_steps=k,
                         return_trajectory=trajectory, progress=progress)
            if trajectory:
                x, tr = res
                trajs.append([t.detach().cpu().float().numpy() for t in tr])
            else:
                x = res
            outs.append(x.detach().cpu().float().numpy())
        images = np.concatenate(outs)
        if clip:
            np.clip(images, -1.0, 1.0, out=images)
        if not trajectory:
            return images
        return images, [np.concatenate([tr[i] for tr in trajs]) for i in range(len(trajs[0]))]

    # -- restoration ----------------------------------------------------------------------
    def _images(self, images: Any, name: str = "images") -> np.ndarray:
        """``images`` as float32 ``(N, C, H, W)`` of the run's image shape, finite, in [-1, 1]."""
        from .._validation import as_float_array

        try:
            x = as_float_array(images, name, ndim=(4,))
        except ValueError as exc:
            if np.ndim(images) in (2, 3):
                raise ValueError(f"{exc}: a batch (N, C, H, W) is expected; for one grey (H, W) image pass "
                                 "image[None, None], for one (C, H, W) image image[None]") from None
            raise
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"{name} must have shape (N, {', '.join(map(str, self.image_shape))}) (the run's "
                             f"images); got {tuple(x.shape)}")
        lo, hi = float(x.min()), float(x.max())
        if lo < -1.0 or hi > 1.0:
            raise ValueError(f"{name} must lie in [-1, 1] (the run's data scale); got values in [{lo:g}, {hi:g}]")
        return np.ascontiguousarray(x, dtype=np.float32)

    def _steps(self, steps: Any) -> int:
        K = self.process.num_train_timesteps
        k = K if steps is None else steps
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= K:
            raise ValueError(f"steps must be an integer in [1, {K}] (the process's timesteps) or None; got {steps!r}")
        return int(k)

    @staticmethod
    def _chunk(batch_size: Any) -> int:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
        return int(batch_size)

    @staticmethod
    def _seed(seed: Any) -> torch.Generator:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
        return torch.Generator().manual_seed(int(seed))

    def repaint(self, images: Any, mask: Any, *, seed: int = 0, steps: int | None = None, jump_length: int = 10,
                jump_n_sample: int = 10, progress: bool = False, batch_size: int = 1000) -> np.ndarray:
        """Inpaint the masked pixels of ``images`` with the run's model (:func:`pdediff.torch.repaint`).

        Parameters
        ----------
        images : array_like, shape ``(N, C, H, W)``
            Real floats (or integers) in ``[-1, 1]``, of the run's
            :attr:`image_shape`, finite; computed in float32.  Masked pixels are
            never read.
        mask : array_like of bool
            ``True`` = missing, broadcastable to ``images`` (e.g. ``(H, W)``).
        seed : int
            Seed of the one generator behind every random draw: equal
            arguments give equal images (on one device).
        steps : int, optional
            Sampling steps (default every trained timestep).
        jump_length, jump_n_sample : int
            RePaint's resampling (``jump_n_sample=1``: none); about
            ``steps * jump_n_sample`` model calls.
        progress : bool
            tqdm progress bar.
        batch_size : int
            Images per chunk (memory); chunks draw from the one generator in
            turn, so the result depends on ``batch_size`` too.

        Returns
        -------
        numpy.ndarray
            float32, ``(N, C, H, W)``: known pixels equal the (float32) input
            exactly; the filled pixels are clipped to ``[-1, 1]``, the data's
            range, as :meth:`sample` does.

        Raises
        ------
        TypeError
            ``images`` bool, complex or non-numeric; ``mask`` not boolean.
        ValueError
            Wrong shapes, values outside ``[-1, 1]`` or non-finite, a mask that
            does not broadcast, invalid ``steps``, ``seed``, ``batch_size``,
            ``jump_length`` or ``jump_n_sample``.
        """
        from .restoration import repaint

        x = self._images(images)
        m = np.asarray(mask)
        if m.dtype != np.bool_:
            raise TypeError(f"mask must be a boolean array (True = missing pixel); got dtype {m.dtype}")
        try:
            m = np.array(np.broadcast_to(m, x.shape))  # a writable copy: torch.from_numpy warns on read-only views
        except ValueError:
            raise ValueError(f"mask of shape {m.shape} does not broadcast to images of shape {x.shape}") from None
        k, chunk, gen = self._steps(steps), self._chunk(batch_size), self._seed(seed)
        outs = []
        for start in range(0, len(x), chunk):
            xt = torch.from_numpy(x[start:start + chunk])
            mt = torch.from_numpy(m[start:start + chunk])
            out = repaint(self.model, self.process, xt, mt, jump_length=jump_length, jump_n_sample=jump_n_sample,
                          num_inference_steps=k, generator=gen, progress=progress)
            outs.append(out.detach().cpu().numpy())
        out = np.concatenate(outs).astype(np.float32, copy=False)
        np.clip(out, -1.0, 1.0, out=out)  # only the filled pixels can leave the range
        out[~m] = x[~m]
        return out

    def restyle(self, images: Any, strength: float, *, seed: int = 0, steps: int | None = None,
                batch_size: int = 1000) -> np.ndarray:
        """SDEdit: degrade ``images`` by ``strength`` and reverse with the run's model (:func:`pdediff.torch.restyle`).

        Parameters
        ----------
        images : array_like, shape ``(N, C, H, W)``
            The guides: real floats (or integers) in ``[-1, 1]``, of the run's
            :attr:`image_shape`, finite; computed in float32.
        strength : float
            In ``[0, 1]``: 0 returns the images; 1 equals :meth:`sample` with
            the same ``seed``, ``steps`` and ``batch_size`` (the guides are ignored).
        seed : int
            Seed of the one generator behind every random draw.
        steps : int, optional
            Length of the full sampling schedule (default every trained
            timestep); ``strength`` runs its last ``floor(steps * strength)`` steps.
        batch_size : int
            Images per chunk; chunks draw from the one generator in turn.

        Returns
        -------
        numpy.ndarray
            float32, ``(N, C, H, W)``, clipped to ``[-1, 1]`` as :meth:`sample` does.

        Raises
        ------
        TypeError, ValueError
            As :meth:`repaint`; ``strength`` outside ``[0, 1]``.
        """
        from .restoration import _strength, restyle

        x = self._images(images)
        s = _strength(strength)
        k, chunk, gen = self._steps(steps), self._chunk(batch_size), self._seed(seed)
        outs = []
        for start in range(0, len(x), chunk):
            out = restyle(self.model, self.process, torch.from_numpy(x[start:start + chunk]), s,
                          num_inference_steps=k, generator=gen)
            outs.append(out.detach().cpu().numpy())
        out = np.concatenate(outs).astype(np.float32, copy=False)
        np.clip(out, -1.0, 1.0, out=out)
        return out


def train_run(
    out: str | os.PathLike,
    *,
    process: str = "ddpm",
    data: str | os.PathLike | dict = "digits",
    steps: int = 1500,
    base: int = 32,
    mults: tuple[int, ...] = (1, 2),
    num_res_blocks: int = 1,
    batch_size: int = 128,
    lr: float = 1e-3,
    ema_decay: float = 0.999,
    seed: int = 0,
    device: str | torch.device | None = None,
    config: dict | str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    progress: bool = True,
    distributed: bool | None = None,
) -> Run:
    """Train a :class:`~pdediff.torch.UNet` to reverse a named process, in a run folder that resumes exactly.

    Parameters
    ----------
    out : path-like
        The run folder (created, with its parents, if needed).  If it holds a
        run already, training resumes from its checkpoint up to ``steps``
        (bit for bit as an uninterrupted run on the CPU); every other setting
        must equal the run's.
    process : {"ddpm", "ihdm", "blurring", "cold-heat", "cold-pm"}
        See :func:`make_process`.
    data : str, os.PathLike or dict
        A :func:`~pdediff.torch.data.load_dataset` spec (``"digits"``,
        ``"shapes"``, a folder of images, a ``.npy`` file); its ``"train"``
        split is used (seed 0, test fraction 0.3).  A dict
        ``{"spec": ..., "seed": ..., "test_fraction": ..., "n": ..., "size": ...}``
        sets the split and size options too.  Paths are stored absolute; the
        images' SHA-256 is stored, so a run notices changed data.
    steps : int
        Total optimisation steps; a rerun may raise it (never lower it below
        the steps done).  Rerunning a finished run with equal settings
        changes nothing and returns it (a cache for studies).
    base, mults, num_res_blocks : int, tuple of int, int
        The UNet's width, per-level channel multipliers, blocks per level.
    batch_size, lr, ema_decay, seed : int, float, float, int
        Adam learning rate, EMA decay (with warm-up: update ``k`` uses
        ``min(ema_decay, (1 + k) / (10 + k))``, see :func:`~pdediff.torch.train`),
        and the seed of the model's initialisation and of the one generator
        that draws batches, timesteps and noise.
    device : str or torch.device, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``; default CUDA when available.  The
        model is initialised on the CPU either way; exact resumption holds on
        one device (GPU kernels may not be bitwise deterministic).
    config : dict or os.PathLike, optional
        Process constructor arguments over the defaults (:func:`make_process`).
    checkpoint_every : int
        Steps between checkpoints (and one at the end).  An interrupted run
        loses at most the steps since the last one.
    progress : bool
        tqdm progress bar showing the loss (rank 0's only across processes).
    distributed : bool, optional
        As for :func:`~pdediff.torch.train`: by default, a process launched by
        ``torchrun`` (or with ``torch.distributed`` initialised) trains
        data-parallel with the others; ``batch_size`` stays the global batch.
        Every rank reads the run folder, which must be on a file system they
        all see; rank 0 alone writes ``run.json`` and ``checkpoint.pt`` (the
        others wait for it), and ``result.world_size`` records the number of
        processes.  A run may be resumed with another number of processes.

    Returns
    -------
    Run
        As :func:`load_run` returns it (EMA model, fitted process), with
        ``resumed_from`` set; on every rank.

    Raises
    ------
    RunError
        The folder holds a run trained with other settings (the message names
        every differing key), holds more steps than ``steps``, holds a
        ``checkpoint.pt`` without ``run.json``, or is a file.
    ValueError
        Invalid settings (the message names the parameter).
    DatasetError, CheckpointError
        From loading the data or the checkpoint.
    ~pdediff.torch.distributed.DistributedError
        Across processes: an inconsistent launch (see :func:`~pdediff.torch.train`);
        when one rank fails to set up the run, all ranks stop.
    """
    if process not in PROCESSES:
        raise ValueError(f"process must be one of {', '.join(map(repr, PROCESSES))}; got {process!r}")
    for name, val, lo in (("steps", steps, 0), ("base", base, 1), ("num_res_blocks", num_res_blocks, 1),
                          ("batch_size", batch_size, 1), ("checkpoint_every", checkpoint_every, 1)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < lo:
            raise ValueError(f"{name} must be an integer >= {lo}; got {val!r}")
    try:
        mults_t = tuple(int(m) for m in mults)
    except (TypeError, ValueError):
        raise ValueError(f"mults must be a sequence of positive integers, e.g. (1, 2); got {mults!r}") from None
    if not mults_t or min(mults_t) < 1:
        raise ValueError(f"mults must be a non-empty sequence of positive integers, e.g. (1, 2); got {mults!r}")
    if isinstance(lr, bool) or not (isinstance(lr, numbers.Real) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number; got {lr!r}")
    if isinstance(ema_decay, bool) or not (isinstance(ema_decay, numbers.Real) and 0.0 <= ema_decay < 1.0):
        raise ValueError(f"ema_decay must be in [0, 1); got {ema_decay!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    ctx, dev = _dist._setup(distributed, _device(device), int(batch_size))
    folder = Path(out)
    error, state = None, None
    try:
        state = _prepare_run(folder, process, data, config, steps, base, mults_t, num_res_blocks, batch_size, lr,
                             ema_decay, seed)
    except Exception as exc:  # noqa: BLE001 - re-raised below, on every rank, once all ranks know
        error = exc
    # every rank stops together if one cannot set the run up (a lone failure would leave the others waiting)
    if not _dist._all_ok(ctx, error is None):
        raise error or _dist.DistributedError(f"another rank could not set up run {folder} (see its error); this "
                                              "rank stopped with it")
    record, images, proc, done, previous_seconds, finished = state
    if _dist._differing_ranks(ctx, _dist._digest(done, finished)):
        raise _dist.DistributedError(f"the ranks found run {folder} in different states (steps done, finished): "
                                     "the run folder must be on a file system all ranks see")
    if finished:
        run = _load_run(folder, device=dev, data=images)  # finished: touch nothing
        run.resumed_from = done
        return run
    if ctx.main:
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(folder / RUN_FILE, record)
    _dist._barrier(ctx)

    _, C, H, W = record["data"]["shape"]
    if isinstance(proc, _NoisePrediction):  # as load_run does: the white-noise prior needs only the shape
        proc.fit(torch.zeros((1, C, H, W)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = UNet(int(C), base=int(base), mults=mults_t, num_res_blocks=int(num_res_blocks))
    t0 = time.perf_counter()
    res = train(model, proc, images, steps=int(steps), batch_size=int(batch_size), lr=float(lr),
                ema_decay=float(ema_decay), seed=int(seed), checkpoint_dir=folder,
                checkpoint_every=int(checkpoint_every), progress=progress, device=dev, ema_warmup=True,
                distributed=distributed)
    seconds = time.perf_counter() - t0
    last = res.losses[-min(50, len(res.losses)):]
    record["result"] = {"step": int(res.step),
                        "final_loss": float(np.mean(last)) if last else None,
                        "train_seconds": previous_seconds + (seconds if res.step > done else 0.0),
                        "device": str(dev), "world_size": int(ctx.world_size)}
    if ctx.main:
        _write_json(folder / RUN_FILE, record)
    _dist._barrier(ctx)
    run = _load_run(folder, device=dev, data=images, process=proc)
    run.resumed_from = done
    return run


def _prepare_run(folder: Path, process, data, config, steps, base, mults_t, num_res_blocks, batch_size, lr, ema_decay,
                 seed) -> tuple:
    """:func:`train_run`'s reading part (no writes): the record, images, process, steps done, seconds, finished."""
    if folder.exists() and not folder.is_dir():
        raise RunError(f"out {folder} exists and is not a folder")

    data_rec = _data_record(data)
    images = _load_train_data(data_rec)
    N, C, H, W = images.shape
    proc = make_process(process, image_size=(H, W), config=config)
    record = {
        "format": RUN_FORMAT,
        "version": RUN_VERSION,
        "process": {"name": process, "class": type(proc).__name__, "config": dict(proc.config)},
        "model": {"class": "UNet", "in_channels": int(C), "base": int(base), "mults": list(mults_t),
                  "num_res_blocks": int(num_res_blocks)},
        "training": {"steps": int(steps), "batch_size": int(batch_size), "lr": float(lr),
                     "ema_decay": float(ema_decay), "ema_warmup": True, "seed": int(seed)},
        "data": data_rec | {"shape": [int(N), int(C), int(H), int(W)], "sha256": _sha256(images)},
        "versions": _versions(),
    }
    ckpt = folder / CHECKPOINT
    done, previous_seconds = 0, 0.0
    if (folder / RUN_FILE).exists():
        old = _read_run_json(folder)
        diffs = _differences(old, record)
        if diffs:
            raise RunError(f"run {folder} was trained with other settings: {'; '.join(diffs)}. Rerun with the "
                           "run's settings to resume (only steps may grow), or choose another output folder")
        if ckpt.exists():
            done = load_checkpoint(ckpt)["step"]
        if done > steps:
            raise RunError(f"run {folder} has trained {done} steps already, more than steps={steps}; steps may "
                           "only grow")
        if done == steps and ckpt.exists() and (old.get("result") or {}).get("step") == done:
            return record, images, proc, done, 0.0, True
        previous_seconds = float((old.get("result") or {}).get("train_seconds", 0.0))
        record["created"] = old.get("created")
        if old.get("result") is not None:
            record["result"] = old["result"]  # until this call finishes
    elif ckpt.exists():
        raise RunError(f"{folder} holds a {CHECKPOINT} but no {RUN_FILE}: not a run written by train_run; "
                       "choose another output folder")
    else:
        record["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return record, images, proc, done, previous_seconds, False


def load_run(path: str | os.PathLike, *, device: str | torch.device | None = None,
             data: str | os.PathLike | torch.Tensor | None = None) -> Run:
    """Read a run folder written by :func:`train_run`, without running any code stored in it.

    Parameters
    ----------
    path : path-like
        The run folder (or its ``run.json``).
    device : str or torch.device, optional
        Where the model goes (default CUDA when available, else CPU).
    data : str, os.PathLike or Tensor, optional
        Where the run's training images are now, if they moved (a spec as for
        :func:`~pdediff.torch.data.load_dataset`, split as the run says), or
        the images themselves.  Only IHDM and cold diffusion need them (their
        prior is built from the data, refitted deterministically); they must
        hash to the SHA-256 the run stored.

    Returns
    -------
    Run

    Raises
    ------
    RunError
        No run at ``path``, no checkpoint yet, a malformed ``run.json``,
        ``run.json`` and the checkpoint disagreeing (process or model), or
        training data that differ from the run's.
    CheckpointError
        A corrupt checkpoint, or one carrying pickled code (refused unread:
        checkpoints load with ``torch.load(..., weights_only=True)``).
    """
    return _load_run(path, device=device, data=data)


def _load_run(path, *, device=None, data=None, process: ForwardProcess | None = None) -> Run:
    """:func:`load_run`; ``process``: the run's process already fitted (by :func:`train_run`), not refitted."""
    folder = Path(path)
    if folder.name == RUN_FILE and folder.is_file():
        folder = folder.parent
    if not folder.exists():
        raise RunError(f"run {folder} does not exist")
    if not folder.is_dir():
        raise RunError(f"run {folder} is not a folder (expected a run folder written by pdediff train)")
    rec = _read_run_json(folder)
    dev = _device(device)
    ckpt = folder / CHECKPOINT
    if not ckpt.exists():
        raise RunError(f"run {folder} has no {CHECKPOINT} yet (training stopped before its first checkpoint); "
                       "rerun pdediff train with the same settings")
    state = load_checkpoint(ckpt)
    p = rec["process"]
    name = p.get("name")
    if name not in PROCESSES or not isinstance(p.get("config"), dict):
        raise RunError(f"{folder / RUN_FILE}: process must name one of {', '.join(PROCESSES)} with its config; "
                       f"got {name!r}")
    if state["process"] != dict(p["config"]) | {"class": p.get("class")}:
        raise RunError(f"run {folder}: {RUN_FILE} and {CHECKPOINT} disagree on the process "
                       f"({p.get('class')} {p['config']} vs {state['process']})")
    shape = rec["data"].get("shape")
    if not (isinstance(shape, list) and len(shape) == 4 and all(isinstance(v, int) and v > 0 for v in shape)):
        raise RunError(f"{folder / RUN_FILE}: data.shape must be [N, C, H, W]; got {shape!r}")
    _, C, H, W = shape
    try:
        proc = make_process(name, image_size=(H, W), config=dict(p["config"]) | {"class": p.get("class")})
    except (ValueError, TypeError) as exc:
        raise RunError(f"{folder / RUN_FILE}: process config: {exc}") from None
    m = rec["model"]
    try:
        if m.get("class", "UNet") != "UNet" or int(m["in_channels"]) != C:
            raise ValueError(f"a UNet with in_channels={C} expected")
        model = UNet(int(m["in_channels"]), base=int(m["base"]), mults=tuple(int(v) for v in m["mults"]),
                     num_res_blocks=int(m.get("num_res_blocks", 1)))
        model.load_state_dict(state["ema"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise RunError(f"run {folder}: the checkpoint does not fit the model in {RUN_FILE} ({m}): "
                       f"{str(exc).strip().splitlines()[0]}") from None
    for q in model.parameters():
        q.requires_grad_(False)
    model.to(dev).eval()

    if process is not None and process.config == proc.config and process.prior_data is not None:
        proc = process
    elif isinstance(proc, _NoisePrediction):  # white-noise prior: only the image shape is needed
        proc.fit(torch.zeros((1, C, H, W)))
    else:
        if isinstance(data, torch.Tensor):
            images = data
        else:
            drec = dict(rec["data"]) | ({"spec": os.fspath(data)} if data is not None else {})
            images = _load_train_data(drec)
        if list(images.shape) != shape or images.dtype != torch.float32 or _sha256(images) != rec["data"].get(
                "sha256"):
            which = rec["data"]["spec"] if data is None else "given"
            raise RunError(f"run {folder}: the training data ({which}) "
                           f"differ from the ones the run was trained on (shape/SHA-256 in {RUN_FILE}); the "
                           f"{name} prior is built from them: pass data= where the run's data are now")
        proc.fit(images)
    return Run(path=folder, config=rec, model=model, process=proc,
               losses=np.asarray(state["losses"], dtype=np.float64), step=state["step"])
