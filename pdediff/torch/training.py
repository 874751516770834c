"""One training loop and one sampler for every forward process.

Nothing here knows which process it drives: the loop asks the process for
timesteps, degraded samples and targets, the sampler for a prior and reverse
steps (see :mod:`pdediff.torch.processes`).
"""

from __future__ import annotations

import copy
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn import functional as F

from ..catalogue import TRAIN_DEFAULTS
from ..errors import CheckpointError
from ..io import atomic_path
from . import _checks
from . import distributed as _dist
from .data import as_tensor
from .processes import ForwardProcess

__all__ = ["train", "sample", "TrainResult", "load_checkpoint", "CHECKPOINT_KEYS"]

CHECKPOINT = "checkpoint.pt"

#: What a checkpoint holds (a dict of tensors, state dicts and plain values only):
#: ``model``/``ema``/``optimizer`` state dicts, ``generator`` (uint8 tensor of
#: :meth:`torch.Generator.get_state`), ``losses`` (float64 tensor, one per step),
#: ``step`` (int) and ``process`` (the process's config plus ``"class"``).
CHECKPOINT_KEYS = ("model", "ema", "optimizer", "generator", "losses", "step", "process")


@dataclass
class TrainResult:
    """What :func:`train` returns: the loss per step and the EMA copy of the model."""

    losses: list[float] = field(default_factory=list)
    ema_model: torch.nn.Module | None = None
    step: int = 0


def _save_atomic(obj: Any, path: str) -> None:
    with atomic_path(path) as tmp:
        # through a file object, so the archive's inner name does not depend on the temporary file's name
        with open(tmp, "wb") as f:
            torch.save(obj, f)


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device | None = "cpu") -> dict:
    """Read a checkpoint written by :func:`train` without running any code stored in it.

    Parameters
    ----------
    path : path-like
        The ``checkpoint.pt`` file.
    map_location : str or torch.device, optional
        Where tensors are loaded (default ``"cpu"``; ``load_state_dict`` moves
        them to the model's device).

    Returns
    -------
    dict
        The keys of :data:`CHECKPOINT_KEYS`; ``losses`` as a list of floats,
        ``step`` as an int.

    Raises
    ------
    CheckpointError
        The file does not exist, is corrupt or not a pdediff checkpoint, or
        contains pickled code (objects other than tensors and plain
        containers).  It is loaded with ``torch.load(..., weights_only=True)``,
        which refuses such a file before running anything in it.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch warns before refusing a pickled object: the error below says it
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = str(exc).strip().splitlines()
        why = next((ln.strip() for ln in lines if "Unsupported global" in ln or "GLOBAL" in ln), "")
        if not why:  # not objects refused, but bytes that are no checkpoint (nothing was run either)
            why = next((ln.strip() for ln in lines if "Unsupported" in ln), lines[0] if lines else "")
            raise CheckpointError(f"checkpoint {path} is corrupt or not a torch checkpoint ({why}); not loaded"
                                  ) from None
        raise CheckpointError(
            f"checkpoint {path} contains pickled code (objects other than tensors and plain containers) and was "
            f"not loaded: pdediff loads checkpoints with weights_only=True and never runs code from a file"
            f" ({why})"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, AttributeError, KeyError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch checkpoint ({msg})") from None
    if not isinstance(state, dict) or not all(k in state for k in CHECKPOINT_KEYS):
        missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
        raise CheckpointError(f"checkpoint {path} is not a pdediff training checkpoint "
                              f"(missing {', '.join(missing)})")
    state = dict(state)
    losses = state["losses"]
    state["losses"] = [float(v) for v in (losses.tolist() if isinstance(losses, torch.Tensor) else losses)]
    state["step"] = int(state["step"])
    gen = state["generator"]
    if not isinstance(gen, torch.Tensor) or gen.dtype != torch.uint8:
        raise CheckpointError(f"checkpoint {path}: 'generator' must be a uint8 tensor "
                              "(torch.Generator.get_state())")
    if state["step"] != len(state["losses"]):
        raise CheckpointError(f"checkpoint {path} is inconsistent: step {state['step']} but "
                              f"{len(state['losses'])} losses")
    return state


def _process_record(process: ForwardProcess) -> dict:
    return dict(process.config) | {"class": type(process).__name__}


def train(
    model: torch.nn.Module,
    process: ForwardProcess,
    data: Any,
    *,
    steps: int,
    batch_size: int = TRAIN_DEFAULTS.batch_size,
    lr: float = TRAIN_DEFAULTS.lr,
    ema_decay: float = TRAIN_DEFAULTS.ema_decay,
    seed: int = TRAIN_DEFAULTS.seed,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = TRAIN_DEFAULTS.checkpoint_every,
    progress: bool = True,
    device: str | torch.device | None = None,
    ema_warmup: bool = TRAIN_DEFAULTS.ema_warmup,
    distributed: bool | None = None,
) -> TrainResult:
    """Train ``model`` to reverse ``process`` on ``data`` with MSE on the process's target.

    Parameters
    ----------
    model : torch.nn.Module
        Called as ``model(x_t, timesteps)``; e.g. :class:`pdediff.torch.UNet`.
        Trained in place.
    process : ForwardProcess
        Any of pdediff's processes (or one with the same interface).
    data : Tensor or ndarray, shape ``(N, C, H, W)``
        Training images (e.g. :func:`pdediff.torch.data.digits`).  Also fitted
        as the process's prior if it has none.
    steps : int
        Total optimiser steps (a resumed run continues up to this number).
    batch_size, lr, ema_decay, seed
        Images per step, Adam learning rate, exponential moving average of the
        weights, and the seed (an integer) of the one generator that draws
        batches, timesteps and noise.  ``batch_size`` is the global batch:
        across ``P`` processes each takes ``batch_size / P`` samples of it (it
        must divide by ``P``).  Defaults: :data:`pdediff.catalogue.TRAIN_DEFAULTS`
        (128, 1e-3, 0.999, 0), the same as :func:`~pdediff.torch.train_run`'s
        and ``pdediff train``'s.
    checkpoint_dir : os.PathLike, optional
        Where ``checkpoint.pt`` is written every ``checkpoint_every`` steps and
        at the end (atomically).  If it exists, training resumes from it
        exactly: model, EMA, optimiser and generator state, and loss history,
        so the loss curve equals an uninterrupted run's bit for bit on the CPU.
        The checkpoint holds tensors and plain values only and is read with
        ``torch.load(weights_only=True)`` (:func:`load_checkpoint`): a file
        carrying pickled code is refused (:class:`~pdediff.errors.CheckpointError`),
        as is a checkpoint written for another process configuration.  Across
        processes, rank 0 alone writes it (the others wait) and every rank
        reads it to resume: it must lie on a file system all ranks see.
    progress : bool
        tqdm progress bar (on rank 0 only across processes).
    device : optional
        Where the model trains (default: the model's device).  Across
        processes ``"cuda"`` means ``cuda:LOCAL_RANK`` (or the one GPU a rank
        sees).
    ema_warmup : bool
        Use ``min(ema_decay, (1 + k) / (10 + k))`` as the decay of update
        ``k`` (as diffusers' ``EMAModel``), so that the EMA forgets the
        initial weights within the first few hundred steps; without it, the
        EMA of a short run is mostly the untrained model (``0.999**1500`` ≈
        0.22 of the initial weights remain after 1500 steps).  On by default
        (:data:`pdediff.catalogue.TRAIN_DEFAULTS`), as for
        :func:`~pdediff.torch.train_run`.
    distributed : bool, optional
        ``None`` (default): train data-parallel when ``torch.distributed`` is
        initialised or the process was launched by ``torchrun`` (``RANK``,
        ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` set; the group is then
        initialised here: gloo on the CPU, NCCL on CUDA), else in this process
        alone.  ``False``: always alone (e.g. independent runs per rank);
        ``True``: refuse to run alone.

    Returns
    -------
    TrainResult
        ``losses`` (one per step, from step 0; across processes the mean over
        the global batch, equal on every rank), ``ema_model``, ``step``.

    Raises
    ------
    ~pdediff.errors.ParameterError
        A setting out of range or of the wrong kind (the message names it as
        ``{name}``; e.g. a float ``seed``).
    ValueError
        ``batch_size`` not divisible by the number of processes.
    CheckpointError
        An unusable checkpoint in ``checkpoint_dir`` (see above).
    ~pdediff.torch.distributed.DistributedError
        An inconsistent launch (partial torchrun environment, ranks with other
        settings, data or checkpoints), or ranks whose weights differ.
    FloatingPointError
        A non-finite loss (before the update; on every rank together).

    Notes
    -----
    Across ``P`` processes the model is wrapped in
    :class:`~torch.nn.parallel.DistributedDataParallel`.  Every rank draws the
    whole global batch (indices, timesteps and noise) from the same seeded
    generator, exactly as one process does, and keeps the contiguous shard
    ``[r B/P, (r+1) B/P)``: the shards are disjoint and their union is the
    one-process batch, sample for sample.  DDP averages the gradients of the
    per-rank mean losses, which is the gradient of the mean over the global
    batch, so each update equals the one-process update up to the order of
    floating-point reductions; the recorded loss is the mean of the ranks'
    losses (the global batch's mean).  Weights and EMA stay identical on all
    ranks (checked at every checkpoint).  Resuming is exact for the same
    number of processes; with another number it continues the same
    trajectory up to rounding.

    Examples
    --------
    >>> from pdediff.torch import GaussianDiffusion, UNet, train
    >>> from pdediff.torch.data import digits
    >>> res = train(UNet(1, base=8, mults=(1,)), GaussianDiffusion(num_train_timesteps=50), digits()[:64],
    ...             steps=2, batch_size=8, progress=False)
    >>> len(res.losses)
    2

    The same script launched by ``torchrun --nproc_per_node 2 script.py``
    trains on two processes, each with 4 samples of every batch of 8.
    """
    _checks.integer(steps, "steps", 0, message=f"{{steps}} must be a non-negative integer; got {steps!r}")
    _checks.integer(batch_size, "batch_size", 1, message=f"{{batch_size}} must be a positive integer; got "
                    f"{batch_size!r}")
    _checks.learning_rate(lr)
    _checks.ema_decay(ema_decay)
    _checks.seed(seed)
    _checks.integer(checkpoint_every, "checkpoint_every", 1,
                    message=f"{{checkpoint_every}} must be a positive integer; got {checkpoint_every!r}")
    data = as_tensor(data)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    ctx, device = _dist._setup(distributed, device, int(batch_size))
    if process.prior_data is None:
        process.fit(data)
    model.to(device).train()
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(int(seed))
    result = TrainResult(ema_model=ema)
    ckpt = None
    if checkpoint_dir is not None:
        if ctx.main:
            os.makedirs(checkpoint_dir, exist_ok=True)
        ckpt = os.path.join(os.fspath(checkpoint_dir), CHECKPOINT)
        error = None
        try:
            if os.path.exists(ckpt):
                _resume(ckpt, process, model, ema, opt, gen, result)
        except CheckpointError as exc:
            error = exc
        # all ranks stop together if one cannot resume (a lone failure would leave the others waiting)
        if not _dist._all_ok(ctx, error is None):
            raise error or _dist.DistributedError(
                f"another rank could not resume from {ckpt} (see its error); this rank stopped with it")
    if ctx.active:
        _check_ranks_agree(ctx, "at the start", model, ema, gen, result, data, process,
                           (int(steps), int(batch_size), float(lr), float(ema_decay), int(seed), int(checkpoint_every),
                            bool(ema_warmup), device.type, checkpoint_dir is not None))
    net = model
    if ctx.active:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def save():
        # tensors, state dicts and plain values only: loads with torch.load(weights_only=True)
        if ckpt is None:
            return
        if ctx.active:
            _check_ranks_agree(ctx, f"at step {result.step}", model, ema, gen, result)
        if ctx.main:
            _save_atomic({"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                          "generator": gen.get_state(), "losses": torch.tensor(result.losses, dtype=torch.float64),
                          "step": int(result.step), "process": _process_record(process)}, ckpt)
        _dist._barrier(ctx)  # the others return (or go on) once the file is complete

    iterator = range(result.step, int(steps))
    show = progress and ctx.main
    if show:
        from tqdm.auto import tqdm

        desc = f"train {type(process).__name__}" + (f" x{ctx.world_size} processes" if ctx.active else "")
        iterator = tqdm(iterator, desc=desc, initial=result.step, total=int(steps), disable=None)
    n = data.shape[0]
    B = int(batch_size)
    lo, hi = ctx.rank * B // ctx.world_size, (ctx.rank + 1) * B // ctx.world_size
    shape = (B, *data.shape[1:])
    for _ in iterator:
        # The global batch's draws, in the one-process order, on every rank; each keeps its shard.
        idx = torch.randint(0, n, (B,), generator=gen)
        t = process.sample_timesteps(B, gen)
        noise = torch.randn(shape, generator=gen, dtype=data.dtype)
        if ctx.active:
            idx, t, noise = idx[lo:hi], t[lo:hi], noise[lo:hi]
        x0 = data[idx]
        xt = process.add_noise(x0, noise, t)
        target = process.training_target(x0, noise, t)
        out = net(process.scale_model_input(xt, t).to(device), t.to(device))
        loss = F.mse_loss(out, target.to(device))
        reported = _dist._mean(ctx, loss.detach())  # the global batch's mean loss, the same on every rank
        if not torch.isfinite(reported):
            # Before the update: the model, the EMA and the last checkpoint stay as they were.
            raise FloatingPointError(
                f"training diverged at step {result.step}: the loss is {float(reported)} (non-finite inputs or "
                f"targets from the process {process!r}, or a learning rate too large); nothing was updated")
        opt.zero_grad(set_to_none=True)
        loss.backward()  # DDP averages the gradients over the ranks here
        opt.step()
        decay = min(float(ema_decay), (1 + result.step) / (10 + result.step)) if ema_warmup else ema_decay
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.mul_(decay).add_(pm.detach(), alpha=1 - decay)
            for be, bm in zip(ema.buffers(), model.buffers()):
                be.copy_(bm)
        result.losses.append(float(reported))
        result.step += 1
        if ckpt is not None and result.step % int(checkpoint_every) == 0:
            save()
        if show and hasattr(iterator, "set_postfix"):
            iterator.set_postfix(loss=f"{result.losses[-1]:.4f}")
    save()
    return result


def _resume(ckpt: str, process, model, ema, opt, gen, result: TrainResult) -> None:
    state = load_checkpoint(ckpt)
    if state["process"] != _process_record(process):
        raise CheckpointError(f"checkpoint {ckpt} was written for {state['process']}, not for "
                              f"{_process_record(process)}; use another checkpoint_dir")
    try:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {ckpt} does not fit this model/optimiser: "
                              f"{str(exc).strip().splitlines()[0]}") from None
    gen.set_state(state["generator"])
    result.losses = state["losses"]
    result.step = state["step"]


def _check_ranks_agree(ctx, when: str, model, ema, gen, result: TrainResult, data=None, process=None,
                       settings=None) -> None:
    """Compare the ranks' settings, data, step, generator, weights and EMA; stop all ranks if any differ.

    Collective: every rank calls it at the same point.  Data parallelism keeps
    these equal by construction; a difference means an inconsistent launch
    (other arguments or data, a checkpoint folder not shared) or a model whose
    update depends on the rank.
    """
    checks = []
    if settings is not None:
        what = "settings (steps, batch_size, lr, ema_decay, seed, checkpoint_every, ema_warmup, device type)"
        checks.append((what, _dist._digest(settings)))
        checks.append(("training data", _dist._digest(data)))
        checks.append(("process", _dist._digest(sorted(_process_record(process).items(), key=str))))
    checks.append(("step resumed from or reached (is the checkpoint folder shared by all ranks?)",
                   _dist._digest(result.step, torch.tensor(result.losses, dtype=torch.float64))))
    checks.append(("generator state", _dist._digest(gen.get_state())))
    checks.append(("model weights", _dist._digest(*model.state_dict().values())))
    checks.append(("EMA weights", _dist._digest(*ema.state_dict().values())))
    bad = _dist._differing_ranks(ctx, b"".join(d for _, d in checks))
    if not bad:
        return
    # one more round to say what differs (the same on every rank, so all raise the same message)
    what = [name for name, d in checks if _dist._differing_ranks(ctx, d)]
    raise _dist.DistributedError(
        f"the {ctx.world_size} training processes disagree {when}: {'; '.join(what)} differ between rank 0 and "
        f"rank{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))}; launch every rank with the same arguments, "
        "data and checkpoint folder")


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    process: ForwardProcess,
    n: int | torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    num_inference_steps: int | None = None,
    return_trajectory: bool = False,
    progress: bool = True,
) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
    """Draw ``n`` samples: start from ``process.sample_prior`` and apply ``process.step`` down the schedule.

    Parameters
    ----------
    model : torch.nn.Module
        Trained to reverse ``process``, called as ``model(x_t, timesteps)``.
    process : ForwardProcess
        The model's process, its prior fitted (``process.fit``) unless ``n`` is data.
    n : int or Tensor
        How many samples, or a batch of data ``(N, C, H, W)`` for the
        processes whose prior is built from data (``sample_prior(data)``).
    generator : torch.Generator, optional
        Draws the prior and the reverse steps' noise.
    num_inference_steps : int, optional
        Sampling steps in ``[1, num_train_timesteps]``
        (``process.set_timesteps``); default the process's current schedule.
    return_trajectory : bool
        Also return the intermediate samples, prior first.
    progress : bool
        tqdm progress bar.

    Returns
    -------
    Tensor or (Tensor, list of Tensor)
        The samples ``(n, C, H, W)`` (not clipped), and with
        ``return_trajectory`` the ``num_inference_steps + 1`` intermediate ones.

    Raises
    ------
    ~pdediff.errors.ParameterError
        ``n`` not a positive integer (or a tensor), ``num_inference_steps``
        out of range.
    """
    if not isinstance(n, torch.Tensor):
        _checks.integer(n, "n", 1, message=f"{{n}} must be a positive integer or a batch of data; got {n!r}")
    if num_inference_steps is not None:
        K = process.num_train_timesteps
        _checks.integer(num_inference_steps, "num_inference_steps", 1, K,
                        message=f"{{num_inference_steps}} must be an integer in [1, {K}] (the process's "
                        f"timesteps) or None; got {num_inference_steps!r}")
        process.set_timesteps(num_inference_steps)
    model.eval()
    device = next(model.parameters()).device
    x = process.sample_prior(n, generator)
    traj = [x.clone()] if return_trajectory else None
    ts = process.timesteps.tolist()
    iterator = ts
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(ts, desc=f"sample {type(process).__name__}", disable=None)
    for t in iterator:
        tt = torch.full((x.shape[0],), int(t), dtype=torch.long)
        out = model(process.scale_model_input(x, t).to(device), tt.to(device)).to(x.device, x.dtype)
        x = process.step(out, t, x, generator=generator).prev_sample
        if traj is not None:
            traj.append(x.clone())
    return (x, traj) if return_trajectory else x
