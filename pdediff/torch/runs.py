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
The processes are named by :data:`pdediff.catalogue.PROCESSES` and built by
:func:`make_process`; the JSON side of the format lives in
``pdediff/torch/_run_folder.py``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..catalogue import PROCESS_NAMES, TRAIN_DEFAULTS
from ..errors import ParameterError, RunError
from . import _checks
from . import distributed as _dist
from ._checks import NOT_GIVEN
from ._make import BLUR_FRACTION, default_process_config, make_process
from ._run_folder import (
    RUN_FILE,
    RunSettingsError,
    _literal,
    RUN_FORMAT,
    RUN_VERSION,
    check_resumable,
    data_record,
    load_train_data,
    read_run_json,
    sha256,
    versions,
    write_json,
)
from .processes import ForwardProcess
from .processes.gaussian import _NoisePrediction
from .training import CHECKPOINT, load_checkpoint, sample, train
from .unet import UNet

__all__ = ["PROCESSES", "make_process", "default_process_config", "train_run", "load_run", "Run", "RUN_FILE",
           "MAX_SAMPLES", "BLUR_FRACTION", "RUN_FORMAT", "RUN_VERSION"]

#: Process names accepted by :func:`make_process`, :func:`train_run` and ``pdediff train --process``:
#: :data:`pdediff.catalogue.PROCESS_NAMES`.
PROCESSES = PROCESS_NAMES

#: Default of :meth:`Run.sample`'s ``max_samples``: more images in one call are refused up front.
MAX_SAMPLES = 100_000


def _state_dict_mismatch(model: torch.nn.Module, state: Any) -> str | None:
    """Every missing and unexpected key and every shape mismatch of ``state`` against ``model``, or None."""
    if not isinstance(state, dict):
        return f"the EMA weights are a {type(state).__name__}, not a state dict"
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} in the checkpoint vs {tuple(v.shape)} in the model" for k, v in own.items()
              if k in state and isinstance(state[k], torch.Tensor) and tuple(state[k].shape) != tuple(v.shape)]
    parts = []
    for what, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            shown = ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "")
            parts.append(f"{len(items)} {what}: {shown}")
    return "; ".join(parts) or None


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

    def sample(self, n: int, *, num_inference_steps: int | None = None, seed: int = 0, trajectory: bool = False,
               progress: bool = False, batch_size: int | None = 1000, clip: bool = True,
               max_samples: int | None = MAX_SAMPLES, steps: Any = NOT_GIVEN
               ) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
        """Draw ``n`` images with :func:`pdediff.torch.sample` and a seeded generator.

        Parameters
        ----------
        n : int
            How many images, at most ``max_samples``.
        num_inference_steps : int, optional
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
        max_samples : int or None
            Refuse (before any work) an ``n`` above it: the images are held in
            memory at once (``n * C * H * W * 4`` bytes, times
            ``num_inference_steps + 1`` with ``trajectory``).  Default
            :data:`MAX_SAMPLES` (100 000); ``None``: no limit.
        steps : int, optional
            Deprecated spelling of ``num_inference_steps`` (a FutureWarning).

        Returns
        -------
        images : numpy.ndarray
            float32, ``(n, C, H, W)``, in the data's ``[-1, 1]`` scale.
        trajectory : list of numpy.ndarray
            Only with ``trajectory=True``: ``num_inference_steps + 1`` float32
            arrays of shape ``(n, C, H, W)``, from the prior to the final
            (unclipped) sample.

        Raises
        ------
        ~pdediff.errors.ParameterError
            ``n``, ``num_inference_steps``, ``seed``, ``batch_size`` or
            ``max_samples`` invalid, or ``n`` above ``max_samples``.
        """
        num_inference_steps = _checks.renamed(num_inference_steps, steps, new="num_inference_steps", old="steps")
        n = _checks.integer(n, "n", 1, message=f"{{n}} must be a positive integer; got {n!r}")
        if max_samples is not None:
            limit = _checks.integer(max_samples, "max_samples", 1)
            if n > limit:
                raise ParameterError(f"{{n={n}}} images exceed the limit of {limit} per call ({{max_samples}}): "
                                     f"they are held in memory at once; draw them in parts, or pass a larger "
                                     f"{{max_samples}} ({{max_samples=None}}: no limit)", param="n")
        k = self._steps(num_inference_steps)
        if batch_size is not None:
            _checks.integer(batch_size, "batch_size", 1,
                            message=f"{{batch_size}} must be a positive integer or None; got {batch_size!r}")
        chunk = n if batch_size is None else int(batch_size)
        gen = self._seed(seed)
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

    def _steps(self, num_inference_steps: Any) -> int:
        K = self.process.num_train_timesteps
        if num_inference_steps is None:
            return K
        return _checks.integer(num_inference_steps, "num_inference_steps", 1, K,
                               message=f"{{num_inference_steps}} must be an integer in [1, {K}] (the process's "
                               f"timesteps) or None; got {num_inference_steps!r}")

    @staticmethod
    def _chunk(batch_size: Any) -> int:
        return _checks.integer(batch_size, "batch_size", 1,
                               message=f"{{batch_size}} must be a positive integer; got {batch_size!r}")

    @staticmethod
    def _seed(seed: Any) -> torch.Generator:
        return torch.Generator().manual_seed(_checks.seed(seed))

    def repaint(self, images: Any, mask: Any, *, seed: int = 0, num_inference_steps: int | None = None,
                jump_length: int = 10, jump_n_sample: int = 10, progress: bool = False, batch_size: int = 1000,
                steps: Any = NOT_GIVEN) -> np.ndarray:
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
        num_inference_steps : int, optional
            Sampling steps (default every trained timestep).
        jump_length, jump_n_sample : int
            RePaint's resampling (``jump_n_sample=1``: none); about
            ``num_inference_steps * jump_n_sample`` model calls.
        progress : bool
            tqdm progress bar.
        batch_size : int
            Images per chunk (memory); chunks draw from the one generator in
            turn, so the result depends on ``batch_size`` too.
        steps : int, optional
            Deprecated spelling of ``num_inference_steps`` (a FutureWarning).

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
            does not broadcast; :class:`~pdediff.errors.ParameterError`: invalid
            ``num_inference_steps``, ``seed``, ``batch_size``, ``jump_length``
            or ``jump_n_sample``.
        """
        from .restoration import repaint

        num_inference_steps = _checks.renamed(num_inference_steps, steps, new="num_inference_steps", old="steps")
        x = self._images(images)
        m = np.asarray(mask)
        if m.dtype != np.bool_:
            raise TypeError(f"mask must be a boolean array (True = missing pixel); got dtype {m.dtype}")
        try:
            m = np.array(np.broadcast_to(m, x.shape))  # a writable copy: torch.from_numpy warns on read-only views
        except ValueError:
            raise ValueError(f"mask of shape {m.shape} does not broadcast to images of shape {x.shape}") from None
        k, chunk, gen = self._steps(num_inference_steps), self._chunk(batch_size), self._seed(seed)
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

    def restyle(self, images: Any, strength: float, *, seed: int = 0, num_inference_steps: int | None = None,
                batch_size: int = 1000, steps: Any = NOT_GIVEN) -> np.ndarray:
        """SDEdit: degrade ``images`` by ``strength`` and reverse with the run's model (:func:`pdediff.torch.restyle`).

        Parameters
        ----------
        images : array_like, shape ``(N, C, H, W)``
            The guides: real floats (or integers) in ``[-1, 1]``, of the run's
            :attr:`image_shape`, finite; computed in float32.
        strength : float
            In ``[0, 1]``: 0 returns the images; 1 equals :meth:`sample` with
            the same ``seed``, ``num_inference_steps`` and ``batch_size`` (the
            guides are ignored).
        seed : int
            Seed of the one generator behind every random draw.
        num_inference_steps : int, optional
            Length ``n`` of the full sampling schedule (default every trained
            timestep); ``strength`` runs its last ``floor(n * strength)`` steps.
        batch_size : int
            Images per chunk; chunks draw from the one generator in turn.
        steps : int, optional
            Deprecated spelling of ``num_inference_steps`` (a FutureWarning).

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

        num_inference_steps = _checks.renamed(num_inference_steps, steps, new="num_inference_steps", old="steps")
        x = self._images(images)
        s = _strength(strength)
        k, chunk, gen = self._steps(num_inference_steps), self._chunk(batch_size), self._seed(seed)
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
    steps: int = TRAIN_DEFAULTS.steps,
    base: int = TRAIN_DEFAULTS.base,
    mults: tuple[int, ...] = TRAIN_DEFAULTS.mults,
    num_res_blocks: int = TRAIN_DEFAULTS.num_res_blocks,
    batch_size: int = TRAIN_DEFAULTS.batch_size,
    lr: float = TRAIN_DEFAULTS.lr,
    ema_decay: float = TRAIN_DEFAULTS.ema_decay,
    seed: int = TRAIN_DEFAULTS.seed,
    device: str | torch.device | None = None,
    config: dict | str | os.PathLike | None = None,
    checkpoint_every: int = TRAIN_DEFAULTS.checkpoint_every,
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
        Total optimiser steps (default and every other default:
        :data:`pdediff.catalogue.TRAIN_DEFAULTS`); a rerun may raise it (never lower it below
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
    ~pdediff.errors.ParameterError
        Invalid settings (the message names the parameter as ``{name}``).
    DatasetError, CheckpointError
        From loading the data or the checkpoint.
    ~pdediff.torch.distributed.DistributedError
        Across processes: an inconsistent launch (see :func:`~pdediff.torch.train`);
        when one rank fails to set up the run, all ranks stop.
    """
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a path (str or os.PathLike); got {type(out).__name__}")
    if process not in PROCESSES:
        raise ParameterError(f"{{process}} must be one of {', '.join(map(repr, PROCESSES))}; got {process!r}",
                             param="process")
    for name, val, lo in (("steps", steps, 0), ("base", base, 1), ("num_res_blocks", num_res_blocks, 1),
                          ("batch_size", batch_size, 1), ("checkpoint_every", checkpoint_every, 1)):
        _checks.integer(val, name, lo)
    mults_t = _mults(mults)
    _checks.learning_rate(lr)
    _checks.ema_decay(ema_decay)
    _checks.seed(seed)
    ctx, dev = _dist._setup(distributed, _checks.device(device), int(batch_size))
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
        write_json(folder / RUN_FILE, record)
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
        write_json(folder / RUN_FILE, record)
    _dist._barrier(ctx)
    run = _load_run(folder, device=dev, data=images, process=proc)
    run.resumed_from = done
    return run


def _prepare_run(folder: Path, process, data, config, steps, base, mults_t, num_res_blocks, batch_size, lr, ema_decay,
                 seed) -> tuple:
    """:func:`train_run`'s reading part (no writes): the record, images, process, steps done, seconds, finished."""
    if folder.exists() and not folder.is_dir():
        raise RunError(f"out {folder} exists and is not a folder")

    data_rec = data_record(data)
    images = load_train_data(data_rec)
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
        "data": data_rec | {"shape": [int(N), int(C), int(H), int(W)], "sha256": sha256(images)},
        "versions": versions(),
    }
    ckpt = folder / CHECKPOINT
    done, previous_seconds = 0, 0.0
    if (folder / RUN_FILE).exists():
        old = read_run_json(folder)
        check_resumable(folder, old, record)
        if ckpt.exists():
            done = load_checkpoint(ckpt)["step"]
        if done > steps:
            raise RunSettingsError(f"run {_literal(str(folder))} has trained {done} steps already, more than "
                                   f"{{steps={steps}}}; {{steps}} may only grow", param="steps")
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
        hash to the SHA-256 the run stored.  A run whose process starts from
        white noise (DDPM, blurring, edge-preserving diffusion) uses none, and
        refuses ``data`` rather than ignore it.

    Returns
    -------
    Run

    Raises
    ------
    TypeError
        ``path`` not a path, ``data`` not a path or tensor.
    RunError
        No run at ``path``, no checkpoint yet, a malformed ``run.json``,
        ``run.json`` and the checkpoint disagreeing (process, or model: the
        message lists every missing and unexpected weight and every shape
        mismatch), or training data that differ from the run's.
    ~pdediff.errors.ParameterError
        An invalid ``device``, or ``data`` given for a run that uses none.
    CheckpointError
        A corrupt checkpoint, or one carrying pickled code (refused unread:
        checkpoints load with ``torch.load(..., weights_only=True)``).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a run folder (str or os.PathLike); got {type(path).__name__}")
    if data is not None and not isinstance(data, (str, os.PathLike, torch.Tensor)):
        raise TypeError(f"data must be a path, a data set name or a torch.Tensor; got {type(data).__name__}")
    return _load_run(path, device=device, data=data, refuse_unused_data=True)


def _load_run(path, *, device=None, data=None, process: ForwardProcess | None = None,
              refuse_unused_data: bool = False) -> Run:
    """:func:`load_run`; ``process``: the run's process already fitted (by :func:`train_run`), not refitted;
    ``refuse_unused_data``: raise for ``data`` given to a white-noise-prior run (train_run passes its images
    whatever the process)."""
    folder = Path(path)
    if folder.name == RUN_FILE and folder.is_file():
        folder = folder.parent
    if not folder.exists():
        raise RunError(f"run {folder} does not exist")
    if not folder.is_dir():
        raise RunError(f"run {folder} is not a folder (expected a run folder written by pdediff train)")
    rec = read_run_json(folder)
    dev = _checks.device(device)
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
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(f"run {folder}: {RUN_FILE} describes no valid model ({m}): {why}") from None
    mismatch = _state_dict_mismatch(model, state["ema"])
    if mismatch is None:
        try:
            model.load_state_dict(state["ema"])
        except (TypeError, ValueError, RuntimeError) as exc:
            mismatch = " ".join(str(exc).split())
    if mismatch is not None:
        raise RunError(f"run {folder}: the checkpoint does not fit the model in {RUN_FILE} ({m}): {mismatch}")
    for q in model.parameters():
        q.requires_grad_(False)
    model.to(dev).eval()

    if process is not None and process.config == proc.config and process.prior_data is not None:
        proc = process
    elif isinstance(proc, _NoisePrediction):  # white-noise prior: only the image shape is needed
        if data is not None and refuse_unused_data:
            raise ParameterError(f"run {_literal(str(folder))}: its process ({name}) starts from white noise and "
                                 "does not read the training data; leave out {data} (only IHDM and cold diffusion "
                                 "build their prior from the data)", param="data")
        proc.fit(torch.zeros((1, C, H, W)))
    else:
        if isinstance(data, torch.Tensor):
            images = data
        else:
            drec = dict(rec["data"]) | ({"spec": os.fspath(data)} if data is not None else {})
            images = load_train_data(drec)
        if list(images.shape) != shape or images.dtype != torch.float32 or sha256(images) != rec["data"].get(
                "sha256"):
            which = rec["data"]["spec"] if data is None else "given"
            raise RunSettingsError(f"run {_literal(str(folder))}: the training data ({_literal(str(which))}) "
                                   f"differ from the ones the run was trained on (shape/SHA-256 in {RUN_FILE}); "
                                   f"the {name} prior is built from them: pass {{data=}} where the run's data are "
                                   "now", param="data")
        proc.fit(images)
    return Run(path=folder, config=rec, model=model, process=proc,
               losses=np.asarray(state["losses"], dtype=np.float64), step=state["step"])


def _mults(mults: Any) -> tuple[int, ...]:
    """The UNet's channel multipliers: a non-empty sequence of positive integers."""
    try:
        out = tuple(mults)
    except TypeError:
        out = None
    if not out or not all(_checks.is_integer(m) and m >= 1 for m in out):
        raise ParameterError(f"{{mults}} must be a non-empty sequence of positive integers, e.g. (1, 2); got "
                             f"{mults!r}", param="mults")
    return tuple(int(m) for m in out)
