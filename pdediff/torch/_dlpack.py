"""Zero-copy hand-over between torch tensors and the backends' arrays (DLPack)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def to_array(x: torch.Tensor) -> Any:
    """The tensor's memory as a NumPy (CPU) or CuPy (CUDA) array, without copying.

    ``x`` must be contiguous (callers make it so); gradients are not tracked.
    """
    x = x.detach()
    if x.device.type == "cpu":
        return np.from_dlpack(x)
    if x.device.type == "cuda":
        try:
            import cupy
        except ImportError:
            raise ImportError('CUDA tensors need the GPU extra: pip install "pdediff[gpu]"') from None
        return cupy.from_dlpack(x)
    raise TypeError(f"tensors on device {x.device.type!r} are not supported (cpu or cuda)")


def from_array(a: Any, like: torch.Tensor) -> torch.Tensor:
    """Wrap a backend array as a tensor on ``like``'s device, without copying."""
    t = torch.from_dlpack(a)
    return t if t.device == like.device else t.to(like.device)
