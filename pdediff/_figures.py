"""Figure helpers shared by the demo, the CLI and the study: tile mosaics and atomic saving."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np


def mosaic(tiles: Sequence[np.ndarray], cols: int, *, fill: float) -> np.ndarray:
    """Tiles of one shape ``(h, w, ...)`` laid out row by row, ``cols`` per row, 1-pixel ``fill`` borders."""
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // cols)
    out = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1) + tiles[0].shape[2:], float(fill))
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        out[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + c * (w + 1): 1 + c * (w + 1) + w] = t
    return out


def save_atomic(fig, path: str | os.PathLike, *, dpi: int) -> None:
    """``fig.savefig`` all-or-nothing (:func:`pdediff.io.atomic_path`), format from the suffix (default PNG)."""
    from .io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=os.path.splitext(os.fspath(path))[1].lstrip(".") or "png")
