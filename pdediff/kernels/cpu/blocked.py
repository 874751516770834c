"""Temporal blocking: several explicit steps per memory pass (heat, constant coefficients; Perona–Malik, sigma=0).

A plain explicit step streams the whole array through memory once, so ``n``
steps cost ``n`` memory passes.  Here ``n`` steps cost ``ceil(n / depth)`` passes:

* 1-D/2-D (heat) and Perona–Malik: the array is cut into tiles of rows (2-D) or planes (3-D
  Perona–Malik); each tile is advanced ``depth`` steps in a cache-resident buffer together with a halo
  of ``depth`` rows/planes on each side (the valid region shrinks by one row/plane per step: the
  overlapped, or trapezoid, tiling -- halo cells are recomputed by the neighbouring tiles instead of
  exchanged), and only its own rows are written back.  The first heat step reads the tile straight
  from ``u`` (no copy) unless its halo wraps around a periodic domain; the last writes into ``out``.
* 3-D heat: wavefront (2.5-D) blocking, :func:`_heat3_wave`.  A block of planes x rows streams once
  through the planes: level ``s`` (``s`` steps done) of plane ``k`` is computed right after level
  ``s - 1`` of plane ``k + 1``, so each level needs only three planes (a ring buffer); there is no
  halo along z except at the ends of a slab.  The ring (``depth`` x 3 planes) is kept within
  :data:`RING_BYTES` per worker by cutting the planes into bands of rows with trapezoid halos when
  whole planes do not fit; the planes are cut into one slab per thread (trapezoid z halos) unless
  there are bands enough to keep the threads busy.

Tiles, slabs and bands are independent, so they run in parallel (one parallel region per pass).

Boundaries inside a tile: a tile edge that is a domain edge keeps the ghost
rule of :func:`pdediff.kernels.formulas.neighbour` (Neumann, Dirichlet) and
is never shrunk; with periodic boundaries the halo wraps around the domain
(rows taken modulo ``n0``), so every tile edge is interior.

Each cell is computed by the same expression, in the same operation order,
as :mod:`.stencil` / :mod:`.perona_malik` (the Perona–Malik tiles call
:func:`.perona_malik._pm_rows` itself), so the results equal ``n`` single
steps bit for bit (``tests/test_temporal_blocking.py``).  The heat rows without a ghost cell along
the outer axes run as one loop nest without the ghost selects (:func:`_band2`, :func:`_band3`; the
same expression, since ``F.ghost(x, +1)`` is ``x``): 0.44 against 0.80 ns/cell for a 3-D plane in L2
(float32, one thread), which is what makes the blocking pay -- the stencil is nearly compute-bound
once it no longer waits for DRAM.

Measured on the 2-core development machine (AMD EPYC, AVX2, 1 MiB L2 per core, 32 MiB L3), 8 steps,
best of 5 interleaved with the plain loop of 8 single steps in one process, two full rounds and up
to two spot checks; the machine was shared with another engineer's benchmarks (load average 2.5-4),
which slows the threaded single steps most (their barriers; one parallel region per pass here), so
the 2-thread ratios flatter, and the spread is noise, not a property of the shapes::

    ratio = time(8 single steps) / time(heat_steps / pm_steps)   1 thread    2 threads
    heat     4096^2   float32                                     1.58-2.46   1.96-2.17
    heat     4096^2   float64                                     1.50        1.53-1.77
    heat     256^3    float32  (wavefront, whole planes)          1.33-2.42   1.53-1.89
    heat     256^3    float64  (wavefront, 2 bands of 128 rows)   1.21-1.67   1.56
    PM       4096^2   float32  (C = 1, tiles of rows)             0.94-0.95   1.00-1.02
    PM       256^3    float32  (tiles of planes, depth=8)         0.41-0.53   0.54-0.56

The best absolute times (1 thread, float32) were 41 ms for 8 blocked steps against 71 ms for 8
single steps at 4096^2 and 63 against 115 ms at 256^3 (1.7-1.8x between bests).

Before the wavefront, the 3-D heat tiles of planes x rows measured 0.4-0.5x (their 16 x 16 tiles
recomputed a halo over twice their size); depth 4 and 16 measured below depth 8 (256^3: 1.76 and
1.65 against 1.89 float32, 1 thread); tiles of 112 rows (``TILE_BYTES`` 2 MiB) 1.98 against 1.72
for 48 rows (4096^2 float32, 1 thread).  In cache the 3-D float32 step costs ~0.44 ns/cell (that
loop nest) against ~0.95 ns/cell streamed from DRAM, so ~2.2x is the bound on one thread.

Perona–Malik is compute-bound (2-5 ns/cell per step against ~0.6 ns/cell of memory traffic), so
blocking cannot win much and the halo recomputation costs about as much as it saves;
:func:`pm_steps` takes the single-step kernel for 3-D arrays unless a ``depth`` is given (the 3-D
tiles stay exact and tested).  Perona–Malik is blocked only for ``sigma = 0`` (conductance from ``u``
itself): the Catté smoothing is a global Gaussian (or DCT) of each step's
``u``, which a tile cannot reproduce from a finite halo without changing the
result.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from ..formulas import PERIODIC, PLUS
from ._common import F, kernel, kernel_code, register_kernel, row_view, use_parallel
from .perona_malik import _pm_rows

__all__ = ["BLOCK_DEPTH", "RING_BYTES", "TILE_BYTES", "heat_steps", "pm_steps"]

#: Steps per memory pass (the halo width).  Deeper blocks save passes but recompute more halo.
BLOCK_DEPTH = 8
#: Target size of one tile buffer in bytes (two are live per thread): L2/L3 resident.
TILE_BYTES = 2 << 20
#: Bytes of the 3-D wavefront's plane buffers per worker (``depth`` levels x 3 planes or bands of planes): L3 resident.
RING_BYTES = 8 << 20


def _tile_units(unit_bytes: int, depth: int, units: int, nthreads: int) -> int:
    """Rows (2-D) or planes (3-D) per tile: the tile's buffer near TILE_BYTES, at least ``depth`` units,
    and enough tiles to keep every thread busy."""
    t = max(TILE_BYTES // max(unit_bytes, 1) - 2 * depth, depth, 1)
    if nthreads > 1:
        t = min(t, max(1, -(-units // (2 * nthreads))))
    return int(min(t, units))


# --------------------------------------------------------------------------- shared row formulas


@njit(cache=True, inline="always")
def _edge_row2(ctr, dn, up, sm, sp, o, dtd, beta, c0, c1, bc1):
    """The two edge columns of a 2-D row (as ``F.around2`` in :func:`.stencil._row2_const`)."""
    n1 = ctr.shape[0]
    for j in (0, n1 - 1):
        jm, tm = F.neighbour(j, n1, bc1, -1)
        jp, tp = F.neighbour(j, n1, bc1, 1)
        c = ctr[j]
        vm, vp = F.ghost(dn[j], sm), F.ghost(up[j], sp)
        wm, wp = F.ghost(ctr[jm], tm), F.ghost(ctr[jp], tp)
        o[j] = beta * c + dtd * (c0 * F.second_difference(c, vm, vp) + c1 * F.second_difference(c, wm, wp))


@njit(cache=True)
def _row2(ctr, dn, up, sm, sp, o, dtd, beta, c0, c1, bc1):
    """One row of the 2-D constant-coefficient step from its row and the rows below/above (1-D views)."""
    n1 = ctr.shape[0]
    m = n1 - 2
    if m > 0:
        c_, l_, r_ = ctr[1 : n1 - 1], ctr[0 : n1 - 2], ctr[2:n1]
        d_, u_, o_ = dn[1 : n1 - 1], up[1 : n1 - 1], o[1 : n1 - 1]
        for j in range(m):
            c = c_[j]
            s = c0 * F.second_difference(c, F.ghost(d_[j], sm), F.ghost(u_[j], sp)) + c1 * F.second_difference(
                c, l_[j], r_[j])
            o_[j] = beta * c + dtd * s
    _edge_row2(ctr, dn, up, sm, sp, o, dtd, beta, c0, c1, bc1)


@njit(cache=True)
def _row3(ctr, zdn, zup, rm, rp, dn, up, sm, sp, o, dtd, beta, c0, c1, c2, bc2):
    """One row of the 3-D constant-coefficient step (as :func:`.stencil._row3_const`)."""
    n2 = ctr.shape[0]
    m = n2 - 2
    if m > 0:
        c_, l_, r_ = ctr[1 : n2 - 1], ctr[0 : n2 - 2], ctr[2:n2]
        zd, zu = zdn[1 : n2 - 1], zup[1 : n2 - 1]
        d_, u_, o_ = dn[1 : n2 - 1], up[1 : n2 - 1], o[1 : n2 - 1]
        for j in range(m):
            c = c_[j]
            s = (c0 * F.second_difference(c, F.ghost(zd[j], rm), F.ghost(zu[j], rp))
                 + c1 * F.second_difference(c, F.ghost(d_[j], sm), F.ghost(u_[j], sp))
                 + c2 * F.second_difference(c, l_[j], r_[j]))
            o_[j] = beta * c + dtd * s
    for j in (0, n2 - 1):
        jm, tm = F.neighbour(j, n2, bc2, -1)
        jp, tp = F.neighbour(j, n2, bc2, 1)
        c = ctr[j]
        zm, zp = F.ghost(zdn[j], rm), F.ghost(zup[j], rp)
        vm, vp = F.ghost(dn[j], sm), F.ghost(up[j], sp)
        wm, wp = F.ghost(ctr[jm], tm), F.ghost(ctr[jp], tp)
        s = c0 * F.second_difference(c, zm, zp) + c1 * F.second_difference(c, vm, vp) + c2 * F.second_difference(
            c, wm, wp)
        o[j] = beta * c + dtd * s


# --------------------------------------------------------------------------- tile geometry


@njit(cache=True, inline="always")
def _tile_span(r0, r1, n0, depth, bc0):
    """First global unit ``a`` of the tile's buffer and its length; periodic halos wrap (may leave 0..n0)."""
    if bc0 == PERIODIC:
        return r0 - depth, r1 - r0 + 2 * depth
    a = max(0, r0 - depth)
    b = min(n0, r1 + depth)
    return a, b - a


@njit(cache=True, inline="always")
def _wrap(g, n0):
    return ((g % n0) + n0) % n0


@njit(cache=True, inline="always")
def _local_nb(q, L, side, a, n0, bc0):
    """Buffer index and ghost sign of the neighbour of buffer unit ``q`` on ``side`` (tile of ``L`` from ``a``).

    Inside the buffer it is ``q +- 1``; at a buffer end that is a domain edge the ghost rule applies
    (the cell itself, with the boundary's sign).  Buffer ends that are not domain edges are never
    asked for: the computed range shrinks away from them.
    """
    if side < 0:
        if q > 0:
            return q - 1, PLUS
        _, s = F.neighbour(a, n0, bc0, -1)
        return q, s
    if q < L - 1:
        return q + 1, PLUS
    _, s = F.neighbour(a + L - 1, n0, bc0, 1)
    return q, s


# --------------------------------------------------------------------------- heat, 2-D


@njit(cache=True)
def _band2(A, O, oo, lo, hi, a, L, n0, dtd, beta, c0, c1, bc0, bc1):
    """Rows ``lo..hi`` of a tile buffer ``A`` (``L`` rows from global row ``a``) one step on, into ``O[q + oo]``.

    The cells of :func:`_row2`, whose expression this repeats: rows with no ghost cell along axis 0 (all
    but domain edges) as one loop nest over 2-D arrays without the ghost selects (``F.ghost(x, PLUS)`` is
    ``x``) and without a call per row, which LLVM vectorises with fewer alias checks; domain-edge rows
    through :func:`_row2` itself.
    """
    n1 = A.shape[1]
    for q in range(lo, hi):
        qm, sm = _local_nb(q, L, -1, a, n0, bc0)
        qp, sp = _local_nb(q, L, 1, a, n0, bc0)
        o = q + oo
        if qm == q - 1 and qp == q + 1 and n1 > 2:
            for j in range(1, n1 - 1):
                c = A[q, j]
                s = c0 * F.second_difference(c, A[q - 1, j], A[q + 1, j]) + c1 * F.second_difference(
                    c, A[q, j - 1], A[q, j + 1])
                O[o, j] = beta * c + dtd * s
            _edge_row2(A[q], A[q - 1], A[q + 1], PLUS, PLUS, O[o], dtd, beta, c0, c1, bc1)
        else:
            _row2(A[q], A[qm], A[qp], sm, sp, O[o], dtd, beta, c0, c1, bc1)


@njit(cache=True)
def _heat2_tile(u, out, r0, r1, depth, dtd, beta, c0, c1, bc0, bc1, A, B):
    """``depth`` steps of rows ``r0..r1`` in the worker's buffers ``A``, ``B`` (the first ``L`` rows used).

    The first step reads the tile and its halo straight from ``u`` where they do not wrap around the
    domain (else they are copied into ``A`` first); the last writes straight into ``out``.
    """
    n0 = u.shape[0]
    a, L = _tile_span(r0, r1, n0, depth, bc0)
    if 0 <= a and a + L <= n0:
        src = u[a : a + L]
    else:
        for q in range(L):  # the tile and its halo into the buffer (rows wrap when periodic)
            A[q, :] = u[_wrap(a + q, n0)]
        src = A[:L]
    for k in range(1, depth + 1):
        lo = max(0, r0 - a - (depth - k))
        hi = min(L, r1 - a + (depth - k))
        if k == depth:
            _band2(src, out, a, lo, hi, a, L, n0, dtd, beta, c0, c1, bc0, bc1)
        else:  # ping-pong: B, A, B, ... (A is free once the first step has read it)
            nxt = B[:L] if k % 2 == 1 else A[:L]
            _band2(src, nxt, 0, lo, hi, a, L, n0, dtd, beta, c0, c1, bc0, bc1)
            src = nxt


@register_kernel("heat_blocked", 2, "const")
def heat2_blocked(u, out, tile, depth, nworkers, dtd, beta, c0, c1, bc0, bc1):
    n0, n1 = u.shape
    ntiles = (n0 + tile - 1) // tile
    # One pair of buffers per worker, allocated once: fresh pages per tile cost more than the step.
    bufs = np.empty((nworkers, 2, tile + 2 * depth, n1), dtype=u.dtype)
    for w in prange(nworkers):
        for t in range(w, ntiles, nworkers):
            r0 = t * tile
            _heat2_tile(u, out, r0, min(n0, r0 + tile), depth, dtd, beta, c0, c1, bc0, bc1, bufs[w, 0], bufs[w, 1])


# --------------------------------------------------------------------------- heat, 3-D wavefront


@njit(cache=True)
def _band3(P, Pm, Pp, rm, rp, O, oo, plo, phi, a, L, bc1, n1, dtd, beta, c0, c1, c2, bc2):
    """Rows ``plo..phi`` of one plane of a band buffer (``L`` rows from global row ``a``) into ``O[p + oo]``.

    ``P`` is the plane's own rows, ``Pm``/``Pp`` the planes below/above (ghost signs ``rm``, ``rp``).  The
    cells of :func:`_row3`, whose expression this repeats: rows with no ghost cell along axes 0 and 1 (all
    but domain edges, when ``rm = rp = +1``) as one loop nest over 2-D arrays without the ghost selects
    (``F.ghost(x, PLUS)`` is ``x``), which LLVM vectorises with fewer alias checks and no call per row
    (0.44 against 0.80 ns/cell in L2, float32); the others through :func:`_row3` itself.
    """
    n2 = P.shape[1]
    zin = rm == PLUS and rp == PLUS and n2 > 2
    for p in range(plo, phi):
        pm, sm = _local_nb(p, L, -1, a, n1, bc1)
        pp, sp = _local_nb(p, L, 1, a, n1, bc1)
        o = p + oo
        if zin and pm == p - 1 and pp == p + 1:
            for j in range(1, n2 - 1):
                c = P[p, j]
                s = (c0 * F.second_difference(c, Pm[p, j], Pp[p, j])
                     + c1 * F.second_difference(c, P[p - 1, j], P[p + 1, j])
                     + c2 * F.second_difference(c, P[p, j - 1], P[p, j + 1]))
                O[o, j] = beta * c + dtd * s
            for j in (0, n2 - 1):
                jm, tm = F.neighbour(j, n2, bc2, -1)
                jp, tp = F.neighbour(j, n2, bc2, 1)
                c = P[p, j]
                wm, wp = F.ghost(P[p, jm], tm), F.ghost(P[p, jp], tp)
                s = (c0 * F.second_difference(c, Pm[p, j], Pp[p, j])
                     + c1 * F.second_difference(c, P[p - 1, j], P[p + 1, j])
                     + c2 * F.second_difference(c, wm, wp))
                O[o, j] = beta * c + dtd * s
        else:
            _row3(P[p], Pm[p], Pp[p], rm, rp, P[pm], P[pp], sm, sp, O[o], dtd, beta, c0, c1, c2, bc2)


@njit(cache=True, inline="always")
def _slab_range(k0, k1, n0, lag, periodic):
    """Planes ``[lo, hi)`` a slab ``k0..k1`` computes ``lag`` steps before its last (periodic: may leave 0..n0)."""
    if periodic:
        return k0 - lag, k1 + lag
    return max(0, k0 - lag), min(n0, k1 + lag)


@njit(cache=True)
def _heat3_wave(u, out, k0, k1, i0, i1, depth, dtd, beta, c0, c1, c2, bc0, bc1, bc2, ring):
    """``depth`` steps of the block of planes ``k0..k1`` x rows ``i0..i1``, streaming once through ``u``.

    Wavefront (2.5-D) blocking: level ``s`` (``s`` steps done) of plane ``k`` is computed in iteration
    ``k + s`` from the planes ``k - 1, k, k + 1`` of level ``s - 1``, which that iteration has just
    completed.  Levels ``0 .. depth - 1`` live in ``ring[s]``, three planes each (plane ``k`` in slot
    ``k mod 3``), as bands of ``L`` rows from global row ``a`` (the block's rows and a halo of
    ``depth``, wrapping when periodic); level 0 is copied from ``u``, level ``depth`` written to ``out``.
    Level ``s`` covers the block widened by ``depth - s`` planes and rows on each side (trapezoid
    halos); a domain edge keeps its ghost rule and is never widened past.
    """
    n0, n1 = u.shape[0], u.shape[1]
    zper = bc0 == PERIODIC
    a, L = _tile_span(i0, i1, n1, depth, bc1)
    direct = 0 <= a and a + L <= n1  # level 0 read from u itself; else (a periodic band wraps) copied
    lo0, hi0 = _slab_range(k0, k1, n0, depth, zper)
    for kk in range(lo0, hi0 + depth):
        if kk < hi0 and not direct:  # level 0: the band of plane kk
            g = _wrap(kk, n0)
            R = ring[0, _wrap(kk, 3)]
            for q in range(L):
                R[q, :] = u[g, _wrap(a + q, n1)]
        for s in range(1, depth + 1):
            k = kk - s
            lo, hi = _slab_range(k0, k1, n0, depth - s, zper)
            if k < lo or k >= hi:
                continue
            if zper:
                km, rm, kp, rp = k - 1, PLUS, k + 1, PLUS
            else:
                km, rm = F.neighbour(k, n0, bc0, -1)
                kp, rp = F.neighbour(k, n0, bc0, 1)
            if s == 1 and direct:
                P, Pm, Pp = u[_wrap(k, n0), a : a + L], u[_wrap(km, n0), a : a + L], u[_wrap(kp, n0), a : a + L]
            else:
                P, Pm, Pp = ring[s - 1, _wrap(k, 3)], ring[s - 1, _wrap(km, 3)], ring[s - 1, _wrap(kp, 3)]
            plo = max(0, i0 - a - (depth - s))
            phi = min(L, i1 - a + (depth - s))
            if s == depth:
                _band3(P, Pm, Pp, rm, rp, out[k], a, plo, phi, a, L, bc1, n1, dtd, beta, c0, c1, c2, bc2)
            else:
                _band3(P, Pm, Pp, rm, rp, ring[s, _wrap(k, 3)], 0, plo, phi, a, L, bc1, n1, dtd, beta, c0, c1, c2,
                       bc2)


@register_kernel("heat_wave", 3, "const")
def heat3_wave(u, out, ktile, itile, depth, nworkers, dtd, beta, c0, c1, c2, bc0, bc1, bc2):
    """Blocks of ``ktile`` planes x ``itile`` rows (:func:`_heat3_wave`), spread over ``nworkers`` workers."""
    n0, n1, n2 = u.shape
    tk = (n0 + ktile - 1) // ktile
    ti = (n1 + itile - 1) // itile
    rows = min(itile, n1) + 2 * depth  # a band and its halos (wrapping rows repeat when periodic)
    ring = np.empty((nworkers, depth, 3, rows if bc1 == PERIODIC else min(rows, n1), n2), dtype=u.dtype)
    for w in prange(nworkers):
        for t in range(w, tk * ti, nworkers):
            k0 = (t // ti) * ktile
            i0 = (t % ti) * itile
            _heat3_wave(u, out, k0, min(n0, k0 + ktile), i0, min(n1, i0 + itile), depth, dtd, beta, c0, c1, c2,
                        bc0, bc1, bc2, ring[w])


# --------------------------------------------------------------------------- Perona–Malik (sigma = 0)


@njit(cache=True)
def _copy_rows(dst, d0, src, s0, rows):
    """``dst[:, d0 : d0 + rows] = src[:, s0 : s0 + rows]`` for ``(C, R, n)`` arrays, a contiguous row at a time
    (a plain loop: Numba's generic slice assignment was measured slower than the rows' compute in cache)."""
    n = dst.shape[2]
    for c in range(dst.shape[0]):
        for r in range(rows):
            o, i = dst[c, d0 + r], src[c, s0 + r]
            for j in range(n):
                o[j] = i[j]


@njit(cache=True, error_model="numpy")
def _pm_tile(u, out, t0, t1, units, step, is3d, depth, dt, ihz, ihy, ihx, kinv2, code, one, half, bufs):
    """``depth`` steps of the units (rows in 2-D, planes of ``step`` rows in 3-D) ``t0..t1`` of ``(C, R, n)``.

    The buffer's ends are Neumann boundaries to :func:`._pm_rows` -- right at a domain edge, and
    harmless elsewhere, where the shrinking range never reads the rows they spoil.  Full-size tiles
    reuse the worker's buffers ``bufs`` ``(2, C, rows, n)``; the smaller ones at the domain's ends get
    their own (:func:`._pm_rows` reads the buffer's extent from its shape).
    """
    C, n = u.shape[0], u.shape[2]
    a = max(0, t0 - depth)
    L = min(units, t1 + depth) - a
    if L * step == bufs.shape[2]:
        A, B = bufs[0], bufs[1]
    else:
        A = np.empty((C, L * step, n), dtype=u.dtype)
        B = np.empty((C, L * step, n), dtype=u.dtype)
    _copy_rows(A, 0, u, a * step, L * step)
    nplane = step if is3d else L  # 3-D: rows per plane; 2-D: the buffer is one plane of L rows
    for k in range(1, depth + 1):
        lo = max(0, t0 - a - (depth - k))
        hi = min(L, t1 - a + (depth - k))
        _pm_rows(A, A, B, lo * step, hi * step, nplane, dt, ihz, ihy, ihx, kinv2, code, one, half)
        A, B = B, A
    _copy_rows(out, t0 * step, A, (t0 - a) * step, (t1 - t0) * step)


@register_kernel("pm_blocked", 0, "", error_model="numpy")
def pm_blocked(u, out, nplane, tile, depth, nworkers, dt, ihz, ihy, ihx, kinv2, code, one, half):
    C, R, n = u.shape
    nz = R // nplane
    units = nz if nz > 1 else R
    step = nplane if nz > 1 else 1
    ntiles = (units + tile - 1) // tile
    bufs = np.empty((nworkers, 2, C, (tile + 2 * depth) * step, n), dtype=u.dtype)
    for w in prange(nworkers):
        for t in range(w, ntiles, nworkers):
            t0 = t * tile
            _pm_tile(u, out, t0, min(units, t0 + tile), units, step, nz > 1, depth, dt, ihz, ihy, ihx, kinv2, code,
                     one, half, bufs[w])


# --------------------------------------------------------------------------- drivers


def _passes(n: int, depth: int):
    """Step counts of the memory passes: ``depth`` each, the remainder in the last."""
    full, rest = divmod(n, depth)
    return [depth] * full + ([rest] if rest else [])


def _heat_view(u, buf, ih2, bcs):
    """1-D problems run as ``(1, n)`` through the 2-D kernel, no flux along the padded axis (as the backend)."""
    if u.ndim == 1:
        n = u.shape[0]
        return u.reshape(1, n), buf.reshape(1, n), (0.0, ih2[0]), (0, bcs[0])
    return u, buf, tuple(ih2), tuple(bcs)


def _nblocks(u, nz):
    """Blocks of planes for the single-step Perona–Malik kernel, as :meth:`CPUBackend.pm_step` chooses them."""
    return min(nz, 4 * numba.get_num_threads()) if use_parallel(u.size) else 1


def _wave_blocks(shape, itemsize: int, depth: int, nthreads: int):
    """Planes per slab and rows per band of the 3-D wavefront: ``depth`` levels x 3 bands of planes within
    RING_BYTES per worker (whole planes when they fit), rows balanced over the bands; the planes split
    into one slab per worker unless the bands alone keep every thread busy (slab halos cost recomputation)."""
    n0, n1, n2 = shape
    rows = max(RING_BYTES // (3 * depth * max(n2 * itemsize, 1)) - 2 * depth, depth, 1)
    nb = -(-n1 // rows)
    band = -(-n1 // nb)
    slab = n0 if nb >= 2 * nthreads else -(-n0 // nthreads)
    return int(slab), int(band)


def heat_steps(u: np.ndarray, buf: np.ndarray, n: int, dt: float, ih2, bcs, beta: float = 1.0,
               depth: int | None = None, tile: int | None = None, band: int | None = None) -> np.ndarray:
    """``n`` constant-coefficient explicit steps of ``u`` (1-D to 3-D), ``buf`` as scratch; returns the result.

    Arguments as :meth:`CPUBackend.heat_step` (``dt`` times ``ih2`` per axis, boundary codes); ``depth``
    steps per memory pass; ``tile`` rows per tile (1-D, 2-D) or planes per slab (3-D wavefront) and
    ``band`` rows per band (3-D), automatic when ``None``.  The result is in ``u`` or ``buf``, whichever
    is returned; the other holds an intermediate state.
    """
    t = u.dtype.type
    v, w, coefs, bcs = _heat_view(u, buf, ih2, bcs)
    depth = max(1, min(int(depth or BLOCK_DEPTH), n))
    if v.ndim == 3:
        k = kernel("heat_wave", 3, "const", u.size)
        nthreads = numba.get_num_threads() if k.parallel else 1
        slab, rows = _wave_blocks(v.shape, v.itemsize, depth, nthreads)
        args = (int(tile or slab), int(band or rows))
    else:
        k = kernel("heat_blocked", 2, "const", u.size)
        nthreads = numba.get_num_threads() if k.parallel else 1
        args = (int(tile or _tile_units(v[0].nbytes, depth, v.shape[0], nthreads)),)
    passes = _passes(n, depth)
    for s in passes:
        k(v, w, *args, s, nthreads, t(dt), t(beta), *(t(c) for c in coefs), *bcs)
        v, w = w, v
    return u if len(passes) % 2 == 0 else buf


def pm_steps(u: np.ndarray, buf: np.ndarray, n: int, dt: float, ih, kinv2: float, code: int,
             depth: int | None = None, tile: int | None = None) -> np.ndarray:
    """``n`` explicit Perona–Malik steps with the conductance from ``u`` itself (``sigma = 0``).

    ``(C, *spatial)`` arrays, arguments as :meth:`CPUBackend.pm_step`; returns ``u`` or ``buf``,
    whichever holds the result.
    """
    t = u.dtype.type
    shp, nplane, ihs = row_view(u.shape, ih)
    v, w = u.reshape(shp), buf.reshape(shp)
    R = shp[1]
    nz = R // nplane
    if depth is None and nz > 1:  # 3-D: measured slower blocked than single steps (module docstring)
        for _ in range(n):
            kernel("perona_malik", 0, "", u.size)(v, v, w, nplane, t(dt), *(t(x) for x in ihs), t(kinv2),
                                                  kernel_code(code, u.dtype), t(1), t(0.5), _nblocks(u, nz))
            v, w = w, v
        return u if n % 2 == 0 else buf
    units = nz if nz > 1 else R
    unit_bytes = v.itemsize * shp[0] * shp[2] * (R // units)
    depth = max(1, min(int(depth or BLOCK_DEPTH), n))
    nthreads = numba.get_num_threads() if use_parallel(u.size) else 1
    if tile is None:
        tile = _tile_units(unit_bytes, depth, units, nthreads)
    k = kernel("pm_blocked", 0, "", u.size)
    passes = _passes(n, depth)
    for s in passes:
        k(v, w, nplane, int(tile), s, nthreads, t(dt), *(t(x) for x in ihs), t(kinv2), kernel_code(code, u.dtype), t(1),
          t(0.5))
        v, w = w, v
    return u if len(passes) % 2 == 0 else buf
