"""A small time-conditioned UNet for images from 8 × 8 to 64 × 64 (rectangular too)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["UNet"]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (integer or real) timesteps, shape ``(N, dim)`` (Vaswani et al.)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float().reshape(-1, 1) * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int) -> None:
        super().__init__()
        self.n1, self.c1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.t = nn.Linear(temb, cout)
        self.n2, self.c2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.silu(self.n1(x)))
        h = h + self.t(emb)[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """GroupNorm + SiLU residual UNet with a sinusoidal timestep embedding.

    Parameters
    ----------
    in_channels, out_channels : int
        Image channels (the output has the input's shape).
    base : int
        Channels of the first level; level i has base times mults[i] channels.
    mults : tuple of int
        One entry per resolution; each level after the first halves H and W
        (any size works: the decoder resizes to the skip connection's shape).
    num_res_blocks : int
        Residual blocks per level.

    Notes
    -----
    The output convolution is zero-initialised, so an untrained model outputs
    zeros (a neutral start for noise, residual and x0 prediction alike).
    ``forward(x, t)`` takes ``t`` as a tensor of per-sample timesteps or a scalar.
    """

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, base: int = 32,
                 mults: tuple[int, ...] = (1, 2, 2), num_res_blocks: int = 1) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.temb_dim = base * 4
        self.temb = nn.Sequential(nn.Linear(base, self.temb_dim), nn.SiLU(), nn.Linear(self.temb_dim, self.temb_dim))
        self.base = base
        self.inp = nn.Conv2d(in_channels, base, 3, padding=1)
        chans = [base * m for m in mults]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = base
        skips = [c]
        for i, ch in enumerate(chans):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(c, ch, self.temb_dim))
                c = ch
                skips.append(c)
            self.down.append(blocks)
            self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1) if i < len(chans) - 1 else nn.Identity())
            if i < len(chans) - 1:
                skips.append(c)
        self.mid = ResBlock(c, c, self.temb_dim)
        self.up = nn.ModuleList()
        for i, ch in reversed(list(enumerate(chans))):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(ResBlock(c + skips.pop(), ch, self.temb_dim))
                c = ch
            self.up.append(blocks)
        self.out_norm = _norm(c)
        self.out = nn.Conv2d(c, out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float | int) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.temb(timestep_embedding(t, self.base).to(x.dtype))
        h = self.inp(x)
        hs = [h]
        for blocks, ds in zip(self.down, self.downsample):
            for b in blocks:
                h = b(h, emb)
                hs.append(h)
            if not isinstance(ds, nn.Identity):
                h = ds(h)
                hs.append(h)
        h = self.mid(h, emb)
        for blocks in self.up:
            for b in blocks:
                s = hs.pop()
                if h.shape[-2:] != s.shape[-2:]:
                    h = F.interpolate(h, size=s.shape[-2:], mode="nearest")
                h = b(torch.cat([h, s], dim=1), emb)
        return self.out(F.silu(self.out_norm(h)))
