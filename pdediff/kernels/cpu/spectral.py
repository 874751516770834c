"""Separable scaling of spectral coefficients: ``c[b, k0, k1, ...] *= prod_a e_a[b, k_a]``.

Done in one pass instead of materialising the full decay factor, which keeps
the spectral solve within a few percent of the bare transform pair.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True)
def scale1(c, e0):
    B, n0 = c.shape
    for b in range(B):
        for i in range(n0):
            c[b, i] *= e0[b, i]


@njit(cache=True)
def scale2(c, e0, e1):
    B, n0, n1 = c.shape
    for t in range(B * n0):
        b = t // n0
        i = t % n0
        f = e0[b, i]
        for j in range(n1):
            c[b, i, j] *= f * e1[b, j]


@njit(cache=True)
def scale3(c, e0, e1, e2):
    B, n0, n1, n2 = c.shape
    for t in range(B * n0 * n1):
        b = t // (n0 * n1)
        k = (t // n1) % n0
        i = t % n1
        f = e0[b, k] * e1[b, i]
        for j in range(n2):
            c[b, k, i, j] *= f * e2[b, j]
