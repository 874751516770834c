"""Data-parallel training across processes: the torch.distributed plumbing behind :func:`~pdediff.torch.train`.

Private helpers: :func:`pdediff.torch.train` and :func:`pdediff.torch.train_run`
call them, so that a script (or ``pdediff train``) launched by ``torchrun``
trains data-parallel without code of its own.  What a rank is, how the global
batch is split and what matches a one-process run is documented in
``docs/learned_diffusion.rst`` ("Training across processes").
"""

from __future__ import annotations

import atexit
import datetime
import gc
import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import ParameterError

__all__ = ["DistributedError"]


class DistributedError(ValueError, RuntimeError):
    """Training across processes was launched inconsistently, or its ranks disagree.

    Raised for a partial or contradictory torchrun environment (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK``), for
    ranks started with different settings, data or checkpoints, and for
    ranks whose weights differ (which data-parallel training never produces).
    The message names what differs and on which ranks.  Subclass of
    :class:`ValueError` and :class:`RuntimeError`.
    """

#: What torchrun (and ``torch.distributed``'s ``env://`` initialisation) sets for every process.
_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
_LAUNCH = "launch with `torchrun --nproc_per_node N ...` (or `python -m torch.distributed.run`), which sets them all"


@dataclass(frozen=True)
class _Context:
    """Where this process stands: one process (``world_size == 1``, no communication) or one rank of many."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def comm_device(self) -> torch.device:
        # NCCL reduces CUDA tensors only; gloo (our CPU backend) takes CPU tensors
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")


_SINGLE = _Context()


def _env_int(name: str, value: str, lo: int) -> int:
    try:
        v = int(value)
    except ValueError:
        v = lo - 1
    if v < lo:
        raise DistributedError(f"environment variable {name} must be an integer >= {lo}; got {value!r} ({_LAUNCH})")
    return v


def _from_env() -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` from the torchrun environment, ``None`` if not launched that way."""
    env = os.environ
    if not any(k in env for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")):
        return None
    if env.get("WORLD_SIZE", "").strip() == "1":  # torchrun --nproc_per_node 1: one process, nothing to join
        return 0, 1, 0
    missing = [k for k in _ENV if not env.get(k)]
    if missing:
        raise DistributedError(f"inconsistent launch: {', '.join(k for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK') if k in env)}"
                           f" set but {', '.join(missing)} missing from the environment; {_LAUNCH}")
    world = _env_int("WORLD_SIZE", env["WORLD_SIZE"], 1)
    rank = _env_int("RANK", env["RANK"], 0)
    if rank >= world:
        raise DistributedError(f"inconsistent launch: RANK={rank} but WORLD_SIZE={world} (ranks are 0..WORLD_SIZE-1); "
                           f"{_LAUNCH}")
    port = _env_int("MASTER_PORT", env["MASTER_PORT"], 1)
    if port > 65535:
        raise DistributedError(f"environment variable MASTER_PORT must be a TCP port in 1..65535; got {port}")
    local = _env_int("LOCAL_RANK", env.get("LOCAL_RANK", "0"), 0)
    return rank, world, local


def _cuda_index(device: torch.device, local_rank: int) -> int:
    n = torch.cuda.device_count()
    if device.index is not None:
        return device.index
    if n == 1:  # one GPU visible per process (CUDA_VISIBLE_DEVICES set per rank by the launcher)
        return 0
    if local_rank >= n:
        raise DistributedError(f"inconsistent launch: LOCAL_RANK={local_rank} but only {n} GPUs are visible on this "
                           f"node; start at most {n} processes per node (--nproc_per_node) or train on device 'cpu'")
    return local_rank


def _setup(distributed: bool | None, device: torch.device, batch_size: int) -> tuple[_Context, torch.device]:
    """Join (or start) the process group this process belongs to; the context and this rank's device.

    ``distributed``: ``None`` detects an initialised process group or the
    torchrun environment; ``False`` trains in this process alone; ``True``
    requires one of the two.  The global ``batch_size`` must divide by the
    number of processes (checked before anything is initialised).  CPU
    training uses gloo, CUDA training NCCL with ``cuda:LOCAL_RANK`` (or the
    one visible GPU).  A group this function starts is destroyed at exit.
    """
    if distributed is not None and not isinstance(distributed, bool):
        raise ParameterError(f"{{distributed}} must be None (detect torchrun), True or False; got {distributed!r}",
                             param="distributed")
    if distributed is False:
        return _SINGLE, device
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", "0") or 0)
        backend = str(dist.get_backend())
        started = False
    else:
        found = _from_env() if dist.is_available() else None
        if found is None:
            if distributed:
                raise DistributedError("distributed=True, but torch.distributed is not initialised and the torchrun "
                                   f"environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) is absent; {_LAUNCH}")
            return _SINGLE, device
        rank, world, local = found
        backend, started = None, True
    if world > 1 and batch_size % world:
        raise ParameterError(f"{{batch_size={batch_size}}} is the global batch and must be divisible by the number "
                             f"of processes ({world}): each takes {{batch_size}} / {world} samples; choose a "
                             f"multiple of {world}", param="batch_size")
    if device.type == "cuda":
        device = torch.device("cuda", _cuda_index(device, local))
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ParameterError(f"distributed training runs on 'cpu' (gloo) or 'cuda' (NCCL); got {{device}} "
                             f"{str(device)!r}", param="device")
    if world == 1 and not dist.is_initialized():
        return _SINGLE, device
    if started:
        backend = "nccl" if device.type == "cuda" else "gloo"
        if backend == "nccl" and not dist.is_nccl_available():
            raise DistributedError("training on CUDA across processes needs NCCL, which this torch build lacks")
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world)
        atexit.register(_destroy)
    if backend == "nccl" and device.type != "cuda":
        raise ParameterError("the process group uses NCCL, which reduces CUDA tensors only; train on {device} "
                             "'cuda' or initialise the group with backend 'gloo'", param="device")
    return _Context(rank=rank, world_size=world, local_rank=local, backend=backend), device


#: How long the ranks wait for each other at exit before each tears its group down alone (seconds).
_EXIT_BARRIER_S = 30


def _destroy() -> None:
    """At exit: the ranks meet (gloo: a barrier with a timeout, so a rank that died cannot hang the others),
    then each destroys its group while the interpreter is fully alive.  A rank that tore its group down
    while its peer was still finishing the last collective was seen to abort at exit (gloo, "terminate called
    without an active exception", 2 of 26 two-rank test launches here) after all work was done."""
    if not dist.is_initialized():
        return
    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=_EXIT_BARRIER_S))
    except Exception:  # noqa: BLE001 - a peer that died or left: tear down alone, as before
        pass
    dist.destroy_process_group()
    gc.collect()  # pending work objects of the group go now, not during interpreter finalisation


def _barrier(ctx: _Context) -> None:
    """Every rank waits here until all arrived (an all-reduce, so it works alike on gloo and NCCL)."""
    if ctx.active:
        dist.all_reduce(torch.zeros(1, device=ctx.comm_device))


def _mean(ctx: _Context, value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar over the ranks (gloo has no AVG: a sum divided by the world size)."""
    if not ctx.active:
        return value
    buf = value.detach().reshape(1).to(ctx.comm_device, torch.float32, copy=True)
    dist.all_reduce(buf)
    return buf[0] / ctx.world_size


def _all_ok(ctx: _Context, ok: bool) -> bool:
    """``True`` if ``ok`` on every rank: lets all ranks stop together when one fails, instead of hanging."""
    if not ctx.active:
        return ok
    flag = torch.tensor([0 if ok else 1], dtype=torch.int64, device=ctx.comm_device)
    dist.all_reduce(flag)
    return int(flag.item()) == 0


def _digest(*parts: object) -> bytes:
    """SHA-256 of strings, bytes and tensors (bytes of the CPU copy), in order."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, torch.Tensor):
            h.update(str((p.dtype, tuple(p.shape))).encode())
            h.update(p.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(p, bytes):
            h.update(p)
        else:
            h.update(repr(p).encode())
    return h.digest()


def _differing_ranks(ctx: _Context, value: bytes) -> list[int]:
    """The ranks whose ``value`` (a digest) differs from rank 0's; ``[]`` when all agree."""
    if not ctx.active:
        return []
    mine = torch.frombuffer(bytearray(hashlib.sha256(value).digest()), dtype=torch.uint8).to(ctx.comm_device)
    got = [torch.empty_like(mine) for _ in range(ctx.world_size)]
    dist.all_gather(got, mine)
    return [r for r in range(1, ctx.world_size) if not torch.equal(got[r], got[0])]
