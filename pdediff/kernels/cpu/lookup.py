"""Piecewise-linear table lookup, one table row per channel: the inference path of trainable reaction–diffusion.

``out[b, k, j] = v[k, i] + f d[k, i]`` with ``z = clip((s[b, k, j] - start) * inv_h, 0, n - 1)``,
``i = floor(z)``, ``f = z - i`` and ``d[k, i] = v[k, i + 1] - v[k, i]`` (``d[k, n - 1] = 0``): linear
interpolation of row ``k`` of a table sampled at ``start + i h``, held constant beyond its ends.  One read of
``s`` and one write of ``out``, where the same sequence of tensor operations made seven passes (and an int64
index array).  Serial: torch's threads run the matrix products around it.  The reference is
:meth:`pdediff.torch.ReactionDiffusion._influence_table`'s tensor path (tested to float32 rounding).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy", boundscheck=False)
def interpolate_rows(s: np.ndarray, values: np.ndarray, slopes: np.ndarray, start: float, inv_h: float,
                     out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Fill ``out`` (``(B, N, L)`` float32) from ``s`` (same shape) and the ``(N, n)`` float32 tables."""
    B, N, L = s.shape
    n = values.shape[1]
    top = np.float32(n - 1)
    a = np.float32(inv_h)
    c = np.float32(-start * inv_h)
    for b in range(B):
        for k in range(N):
            v = values[k]
            d = slopes[k]
            src = s[b, k]
            dst = out[b, k]
            for j in range(L):
                z = src[j] * a + c
                if z != z:  # NaN in, NaN out
                    dst[j] = z
                    continue
                z = min(max(z, np.float32(0.0)), top)
                i = int(z)
                dst[j] = v[i] + (z - np.float32(i)) * d[i]
