"""Exact order statistics of Dask arrays by radix select, in streaming passes.

The ``k``-th smallest value of a float array is found from its 64-bit keys (the float64 bit patterns
mapped so that they sort as the values do), 16 bits per pass: each pass reads every chunk once and
keeps one 65 536-bin histogram per rank still open, so memory stays that of a few chunks whatever
the array's size, and the result is the exact order statistic (what ``numpy.partition`` gives in
memory), not an approximation.  Several arrays are selected in the same passes (their chunks are
computed together, so a graph they share is read once per pass).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._core import require_dask

__all__ = ["order_statistics"]

_DIGIT = 16
_BINS = 1 << _DIGIT
_SIGN = np.uint64(1 << 63)


def _keys(b) -> np.ndarray:
    """uint64 keys of a chunk's values (as float64) that sort like the values; NaN above +inf."""
    x = np.asarray(b, dtype=np.float64).ravel()
    x = np.where(np.isnan(x), np.nan, x)  # one positive NaN: every NaN sorts last, as numpy.partition does
    bits = x.view(np.uint64)
    neg = (bits & _SIGN) != 0
    return np.where(neg, ~bits, bits | _SIGN)


def _hist(b, prefixes: tuple[int, ...], shift: int) -> np.ndarray:
    """Per prefix (the key's bits above ``shift + 16``), the histogram of the next 16 bits in a chunk."""
    k = _keys(b)
    out = np.zeros((len(prefixes), _BINS), dtype=np.int64)
    top = shift + _DIGIT
    for i, p in enumerate(prefixes):
        sel = k if top == 64 else k[(k >> np.uint64(top)) == np.uint64(p)]
        out[i] = np.bincount(((sel >> np.uint64(shift)) & np.uint64(_BINS - 1)).astype(np.int64),
                             minlength=_BINS)
    return out


def order_statistics(jobs: Sequence[tuple[Any, Sequence[int]]]) -> list[list[float]]:
    """The exact order statistics of Dask arrays, computed now.

    Parameters
    ----------
    jobs : sequence of (dask.array.Array, sequence of int)
        Arrays (any shape, real dtype; flattened) and the 0-based ranks wanted in each, every rank in
        ``[0, x.size)``.

    Returns
    -------
    list of list of float
        Per array, the values at its ranks (float64, as ``numpy.partition(x.ravel(), k)[k]``; NaN sorts
        last).  Four streaming passes over the arrays, computed together.
    """
    import dask
    from dask import delayed

    da = require_dask()
    state = []  # per array, per rank: [prefix, before]  (the key's high bits fixed so far, count below)
    for x, ranks in jobs:
        n = int(x.size)
        for r in ranks:
            if not 0 <= int(r) < n:
                raise ValueError(f"rank {r} outside [0, {n})")
        state.append([[0, int(r)] for r in ranks])
    for shift in range(64 - _DIGIT, -1, -_DIGIT):
        totals, groups = [], []
        for (x, _), st in zip(jobs, state):
            prefixes = tuple(sorted({p for p, _ in st}))
            groups.append(prefixes)
            parts = [da.from_delayed(delayed(_hist)(b, prefixes, shift), shape=(len(prefixes), _BINS),
                                     dtype=np.int64)[None] for b in x.to_delayed().ravel()]
            totals.append(da.concatenate(parts).sum(axis=0, split_every=4))
        hists = dask.compute(*totals)
        for st, prefixes, hist in zip(state, groups, hists):
            for entry in st:
                prefix, rem = entry
                cum = np.cumsum(hist[prefixes.index(prefix)])
                d = int(np.searchsorted(cum, rem, side="right"))
                entry[0] = (prefix << _DIGIT) | d
                entry[1] = rem - (int(cum[d - 1]) if d > 0 else 0)
    out = []
    for st in state:
        vals = []
        for key, _ in st:
            k = np.uint64(key)
            bits = k & ~_SIGN if k & _SIGN else ~k
            vals.append(float(np.array([bits], dtype=np.uint64).view(np.float64)[0]))
        out.append(vals)
    return out
