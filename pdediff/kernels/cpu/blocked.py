"""Temporal blocking: several explicit steps per memory pass (heat, constant coefficients; Perona–Malik, sigma=0).

A plain explicit step streams the whole array through memory once, so ``n``
steps cost ``n`` memory passes.  Here the array is cut into tiles of rows (2-D),
planes x rows (3-D heat) or planes (3-D Perona–Malik); each tile is copied with a
halo of ``S`` rows/planes on each side into a cache-resident buffer, advanced ``S`` steps there (the valid
region shrinks by one row/plane per step: the overlapped, or trapezoid,
tiling -- halo cells are recomputed by the neighbouring tiles instead of
exchanged), and only its own rows are written back.  ``n`` steps then cost
``ceil(n / S)`` passes.  Tiles are independent, so they run in parallel.

Boundaries inside a tile: a tile edge that is a domain edge keeps the ghost
rule of :func:`pdediff.kernels.formulas.neighbour` (Neumann, Dirichlet) and
is never shrunk; with periodic boundaries the halo wraps around the domain
(rows taken modulo ``n0``), so every tile edge is interior.

Each cell is computed by the same expression, in the same operation order,
as :mod:`.stencil` / :mod:`.perona_malik` (the Perona–Malik tiles call
:func:`.perona_malik._pm_rows` itself), so the results equal ``n`` single
steps bit for bit (``tests/test_temporal_blocking.py``).

Measured on the 2-core development machine (shared; best of 5, interleaved with the plain loop, 8
steps, float32, 4096^2): heat 1.5x (1 thread) and 1.6-1.8x (2 threads) the throughput of single
steps; Perona–Malik 1.1x (its step is compute-bound: ~0.75x the copy roofline already).  In 3-D
(256^3) the tiles of planes x rows (heat) or planes (Perona–Malik) measured 0.4-1.1x, so
:func:`heat_steps` and :func:`pm_steps` take the single-step kernels for 3-D arrays unless a
``depth`` is given (the 3-D tiles stay exact and tested).

Perona–Malik is blocked only for ``sigma = 0`` (conductance from ``u``
itself): the Catté smoothing is a global Gaussian (or DCT) of each step's
``u``, which a tile cannot reproduce from a finite halo without changing the
result.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from ..formulas import PERIODIC, PLUS
from ._common import F, kernel, register_kernel, use_parallel
from .perona_malik import _pm_rows

__all__ = ["BLOCK_DEPTH", "TILE_BYTES", "heat_steps", "pm_steps"]

#: Steps per memory pass (the halo width).  Deeper blocks save passes but recompute more halo.
BLOCK_DEPTH = 8
#: Target size of one tile buffer in bytes (two are live per thread): L2/L3 resident.
TILE_BYTES = 1 << 20


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
def _heat2_tile(u, out, r0, r1, depth, dtd, beta, c0, c1, bc0, bc1, A, B):
    """``depth`` steps of rows ``r0..r1`` in the worker's buffers ``A``, ``B`` (the first ``L`` rows used)."""
    n0 = u.shape[0]
    a, L = _tile_span(r0, r1, n0, depth, bc0)
    for q in range(L):  # the tile and its halo into the buffer (rows wrap when periodic)
        A[q, :] = u[_wrap(a + q, n0)]
    for k in range(1, depth + 1):
        lo = max(0, r0 - a - (depth - k))
        hi = min(L, r1 - a + (depth - k))
        for q in range(lo, hi):
            qm, sm = _local_nb(q, L, -1, a, n0, bc0)
            qp, sp = _local_nb(q, L, 1, a, n0, bc0)
            o = out[a + q] if k == depth else B[q]
            _row2(A[q], A[qm], A[qp], sm, sp, o, dtd, beta, c0, c1, bc1)
        A, B = B, A


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


# --------------------------------------------------------------------------- heat, 3-D


@njit(cache=True)
def _heat3_tile(u, out, k0, k1, i0, i1, depth, dtd, beta, c0, c1, c2, bc0, bc1, bc2, A, B):
    """Tiles of planes x rows (whole contiguous rows): the halo shrinks along axes 0 and 1."""
    n0, n1 = u.shape[0], u.shape[1]
    ak, Lk = _tile_span(k0, k1, n0, depth, bc0)
    ai, Li = _tile_span(i0, i1, n1, depth, bc1)
    for q in range(Lk):
        g = _wrap(ak + q, n0)
        for p in range(Li):
            A[q, p, :] = u[g, _wrap(ai + p, n1)]
    for s in range(1, depth + 1):
        lok = max(0, k0 - ak - (depth - s))
        hik = min(Lk, k1 - ak + (depth - s))
        loi = max(0, i0 - ai - (depth - s))
        hii = min(Li, i1 - ai + (depth - s))
        for q in range(lok, hik):
            qm, rm = _local_nb(q, Lk, -1, ak, n0, bc0)
            qp, rp = _local_nb(q, Lk, 1, ak, n0, bc0)
            for p in range(loi, hii):
                pm, sm = _local_nb(p, Li, -1, ai, n1, bc1)
                pp, sp = _local_nb(p, Li, 1, ai, n1, bc1)
                o = out[ak + q, ai + p] if s == depth else B[q, p]
                _row3(A[q, p], A[qm, p], A[qp, p], rm, rp, A[q, pm], A[q, pp], sm, sp, o, dtd, beta, c0, c1, c2,
                      bc2)
        A, B = B, A


@register_kernel("heat_blocked", 3, "const")
def heat3_blocked(u, out, tile, depth, nworkers, dtd, beta, c0, c1, c2, bc0, bc1, bc2):
    n0, n1, n2 = u.shape
    tk = (n0 + tile - 1) // tile
    ti = (n1 + tile - 1) // tile
    L = tile + 2 * depth
    bufs = np.empty((nworkers, 2, L, L, n2), dtype=u.dtype)
    for w in prange(nworkers):
        for t in range(w, tk * ti, nworkers):
            k0 = (t // ti) * tile
            i0 = (t % ti) * tile
            _heat3_tile(u, out, k0, min(n0, k0 + tile), i0, min(n1, i0 + tile), depth, dtd, beta, c0, c1, c2, bc0,
                        bc1, bc2, bufs[w, 0], bufs[w, 1])


# --------------------------------------------------------------------------- Perona–Malik (sigma = 0)


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
    A[:, :, :] = u[:, a * step : (a + L) * step, :]
    nplane = step if is3d else L  # 3-D: rows per plane; 2-D: the buffer is one plane of L rows
    for k in range(1, depth + 1):
        lo = max(0, t0 - a - (depth - k))
        hi = min(L, t1 - a + (depth - k))
        _pm_rows(A, A, B, lo * step, hi * step, nplane, dt, ihz, ihy, ihx, kinv2, code, one, half)
        A, B = B, A
    out[:, t0 * step : t1 * step, :] = A[:, (t0 - a) * step : (t1 - a) * step, :]


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


def _single_heat_steps(v, w, n, t, dt, coefs, bcs, u, buf, beta):
    k = kernel("heat", v.ndim, "const", u.size)
    for _ in range(n):
        k(v, w, t(dt), t(beta), *(t(c) for c in coefs), *bcs)
        v, w = w, v
    return u if n % 2 == 0 else buf


def _nblocks(u, nz):
    """Blocks of planes for the single-step Perona–Malik kernel, as :meth:`CPUBackend.pm_step` chooses them."""
    return min(nz, 4 * numba.get_num_threads()) if use_parallel(u.size) else 1


def heat_steps(u: np.ndarray, buf: np.ndarray, n: int, dt: float, ih2, bcs, beta: float = 1.0,
               depth: int | None = None, tile: int | None = None) -> np.ndarray:
    """``n`` constant-coefficient explicit steps of ``u`` (1-D to 3-D), ``buf`` as scratch; returns the result.

    Arguments as :meth:`CPUBackend.heat_step` (``dt`` times ``ih2`` per axis, boundary codes); ``depth``
    steps per memory pass and ``tile`` rows (2-D) or planes (3-D) per tile, automatic when ``None``.
    The result is in ``u`` or ``buf``, whichever is returned; the other holds an intermediate state.
    """
    t = u.dtype.type
    v, w, coefs, bcs = _heat_view(u, buf, ih2, bcs)
    if depth is None and v.ndim == 3:
        return _single_heat_steps(v, w, n, t, dt, coefs, bcs, u, buf, beta)
    depth = max(1, min(int(depth or BLOCK_DEPTH), n))
    nthreads = numba.get_num_threads() if use_parallel(u.size) else 1
    if tile is None:
        if v.ndim == 3:  # square tiles of planes x rows, the buffer near TILE_BYTES
            side = int((TILE_BYTES // v[0, 0].nbytes) ** 0.5)
            tile = max(side - 2 * depth, depth, 1)
        else:
            tile = _tile_units(v[0].nbytes, depth, v.shape[0], nthreads)
    k = kernel("heat_blocked", v.ndim, "const", u.size)
    passes = _passes(n, depth)
    for s in passes:
        k(v, w, int(tile), s, nthreads, t(dt), t(beta), *(t(c) for c in coefs), *bcs)
        v, w = w, v
    return u if len(passes) % 2 == 0 else buf


def pm_steps(u: np.ndarray, buf: np.ndarray, n: int, dt: float, ih, kinv2: float, code: int,
             depth: int | None = None, tile: int | None = None) -> np.ndarray:
    """``n`` explicit Perona–Malik steps with the conductance from ``u`` itself (``sigma = 0``).

    ``(C, *spatial)`` arrays, arguments as :meth:`CPUBackend.pm_step`; returns ``u`` or ``buf``,
    whichever holds the result.
    """
    from .backend import _kernel_code, _row_view  # lazy: the backend imports this module

    t = u.dtype.type
    shp, nplane, ihs = _row_view(u.shape, ih)
    v, w = u.reshape(shp), buf.reshape(shp)
    R = shp[1]
    nz = R // nplane
    if depth is None and nz > 1:  # 3-D: measured slower blocked than single steps (module docstring)
        for _ in range(n):
            kernel("perona_malik", 0, "", u.size)(v, v, w, nplane, t(dt), *(t(x) for x in ihs), t(kinv2),
                                                  _kernel_code(code, u.dtype), t(1), t(0.5), _nblocks(u, nz))
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
        k(v, w, nplane, int(tile), s, nthreads, t(dt), *(t(x) for x in ihs), t(kinv2), _kernel_code(code, u.dtype), t(1),
          t(0.5))
        v, w = w, v
    return u if len(passes) % 2 == 0 else buf
