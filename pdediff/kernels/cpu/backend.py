"""The CPU backend: the Numba kernels on NumPy arrays, behind the contract of :mod:`pdediff._backend`.

Shape adaptation lives here: 1-D problems run through the 2-D kernels as
``(1, n)`` views (with ``ih2_0 = 0``, no flux along the padded axis), 3-D
Perona–Malik volumes as ``(C, n0 * n1, n2)`` row blocks; the serial or the
threaded build of each kernel is chosen per call by size and by the adaptive
threading policy (:func:`._common.kernel`, :class:`._common.ThreadPolicy`).
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
import scipy.fft
import scipy.ndimage

from ..formulas import TAU_MAX
from . import adi, aos, blocked, gaussian, inplace, kappa, perona_malik, spectral, stencil, tridiag  # noqa: F401 - registers kernels
from ._common import cache_share, kernel, kernel_builds, kernel_code, row_view, use_parallel

__all__ = ["CPUBackend", "CPU", "blocking_pays"]


def _tag(x, shape=None) -> str:
    """What the threading policy keys its timing estimates on besides kernel and size class: the dtype
    and the geometry (calls of equal size but other shapes -- an ADI step's axis 0 and axis 1 lines,
    float32 and float64 -- cost differently, and one estimate for both made the policy switch at random)."""
    return _tag_of(x.dtype.char, tuple(x.shape) if shape is None else tuple(shape))


@functools.lru_cache(maxsize=256)
def _tag_of(char: str, shape: tuple[int, ...]) -> str:
    return f"{char}{shape}"  # cached: formatting the tuple cost ~1 us per kernel call


#: Per float dtype: the unsigned integer type of its bits and the mask that clears the sign bit (|x| as bits).
_ABS_BITS = {np.dtype(np.float32): (np.uint32, np.uint32(0x7FFFFFFF)),
             np.dtype(np.float64): (np.uint64, np.uint64(0x7FFFFFFFFFFFFFFF))}


def _lines(shape: tuple[int, ...], axis: int) -> tuple[int, int, int]:
    """``(pre, n, post)``: a C-contiguous array of ``shape`` viewed with ``n`` along ``axis``."""
    pre = int(np.prod(shape[:axis], dtype=np.int64))
    post = int(np.prod(shape[axis + 1 :], dtype=np.int64))
    return pre, shape[axis], post


def blocking_pays(u, nthreads: int | None = None) -> bool:
    """Whether several explicit steps of ``u`` should run temporally blocked (:mod:`.blocked`) on this machine.

    Blocking saves memory passes, so it pays only once the working set -- ``u`` and the scratch array of
    the same size -- no longer stays in the share of the last-level cache that the threads running the
    steps can count on (:func:`._common.cache_share`: the cache read from sysfs at run time, or
    :data:`._common.LLC_FALLBACK_BYTES`), taken as half that share (the cache also holds code, the tiles'
    buffers and other processes' data; its associativity and replacement evict before it is full); below
    that the single steps already stream from cache and the halos only cost.  Measured on a 2-core AMD
    EPYC with a 32 MiB L3 (2 threads, float32, blocked / single steps per step, medians of 4, shared
    machine): 2048² (a 32 MiB working set) 0.49 at 16 steps, 4096² 0.91 / 0.48 / 0.50 at 2 / 8 / 16
    steps, 256³ 0.88 / 0.53 / 0.58 / 0.56 at 2 / 4 / 8 / 16; on a 300 MiB L3 a 4096² float32 field stays in
    cache, where blocking lost 2x at 2 steps.  ``nthreads``: the threads the steps run on (default:
    Numba's, or 1 where the array is too small for the threaded build).
    """
    if nthreads is None:
        nthreads = numba.get_num_threads() if use_parallel(u.size) else 1
    return 2 * u.nbytes > cache_share(nthreads) // 2


class CPUBackend:
    """Numba kernels on NumPy arrays (see :class:`pdediff._backend.Backend` for the contract)."""

    name = "cpu"
    xp = np
    fft = scipy.fft
    fft_kwargs = {"workers": -1}

    def asarray(self, x):
        return np.asarray(x)

    def abs_max(self, u) -> float:
        """``max|u|`` of a float32/float64 array in one fused pass (NaN if ``u`` holds a NaN; 0 when empty).

        The magnitude bits of every element are compared as unsigned integers (:func:`.stencil.abs_max_bits`),
        which orders them as their magnitudes (inf above every finite value, NaN above inf) and vectorises;
        ``max(u.max(), -u.min())`` costs two slower passes.  Other dtypes and non-contiguous arrays: NumPy.
        """
        if u.size == 0:
            return 0.0
        if u.dtype not in (np.float32, np.float64) or not u.flags.c_contiguous:
            return float(np.nanmax(np.abs(u))) if not np.isnan(u).any() else float("nan")
        ut = np.uint32 if u.dtype == np.float32 else np.uint64
        bits = u.reshape(-1).view(ut)
        k = kernel("abs_max_bits", 0, "", u.size, _tag(u))
        nblocks = min(u.size // 4096 + 1, 4 * numba.get_num_threads()) if k.parallel else 1
        m = k(bits, ut(np.iinfo(ut).max >> 1), nblocks)
        return float(np.array(m, dtype=ut).view(u.dtype))

    # -- explicit heat step --------------------------------------------------------
    def heat_step(self, u, out, dt, ih2, bcs, beta=1.0, faces=None):
        t = u.dtype.type
        if u.ndim == 1:  # (1, n) through the 2-D kernel, no flux along the padded axis
            n = u.shape[0]
            u, out = u.reshape(1, n), out.reshape(1, n)
            ih2, bcs = (0.0, ih2[0]), (0, bcs[0])
            if faces is not None:
                faces = (np.zeros((2, n), dtype=u.dtype), faces[0].reshape(1, n + 1))
        coefs = tuple(t(c) for c in ih2)
        if faces is None and u.ndim == 3:
            # the 3-D kernel sweeps whole planes through flat (n0, n1 n2) views of the same memory
            k = kernel("heat", 3, "const", u.size, _tag(u))
            flat = (u.shape[0], u.shape[1] * u.shape[2])
            if not (u.flags.c_contiguous and out.flags.c_contiguous):
                u, tmp = np.ascontiguousarray(u), np.empty(u.shape, dtype=out.dtype)
                k(u, tmp, u.reshape(flat), tmp.reshape(flat), t(dt), t(beta), *coefs, *bcs)
                out[...] = tmp
                return
            k(u, out, u.reshape(flat), out.reshape(flat), t(dt), t(beta), *coefs, *bcs)
        elif faces is None:
            kernel("heat", u.ndim, "const", u.size, _tag(u))(u, out, t(dt), t(beta), *coefs, *bcs)
        else:
            kernel("heat", u.ndim, "var", u.size, _tag(u))(u, out, *faces, t(dt), t(beta), *coefs, *bcs)

    def heat_step_inplace(self, u, dt, ih2, bcs, beta=1.0):
        """One constant-coefficient explicit step written into ``u`` itself (C-contiguous, 1-D to 3-D) in one
        memory pass, bit for bit :meth:`heat_step` into another array (a rolling line buffer, :mod:`.inplace`)."""
        t = u.dtype.type
        if u.ndim == 1:  # (1, n) through the 2-D kernel, as heat_step
            u, ih2, bcs = u.reshape(1, -1), (0.0, ih2[0]), (0, bcs[0])
        k = kernel("heat_inplace", u.ndim, "const", u.size, _tag(u))
        # a few blocks per thread (rows in 2-D, planes in 3-D); each saves the two neighbours of its ends
        nblocks = min(u.shape[0], 4 * numba.get_num_threads()) if k.parallel else 1
        saved = np.empty((nblocks, 2) + u.shape[1:], dtype=u.dtype)
        k(u, saved, nblocks, t(dt), t(beta), *(t(c) for c in ih2), *bcs)
        return u

    def heat_step_amax(self, u, out, dt, ih2, bcs, beta=1.0) -> float:
        """:meth:`heat_step` (constant coefficients, C-contiguous float32/float64 ``u`` and ``out``, 1-D to 3-D)
        that also returns ``max|u|``, scanned row by row (plane by plane) while each is in cache: the solvers'
        overflow check without a pass of its own (NaN if ``u`` holds a NaN, as :meth:`abs_max`)."""
        t = u.dtype.type
        if u.ndim == 1:  # (1, n) through the 2-D kernel, as heat_step
            u, out, ih2, bcs = u.reshape(1, -1), out.reshape(1, -1), (0.0, ih2[0]), (0, bcs[0])
        ut, mask = _ABS_BITS[u.dtype]
        coefs = tuple(t(c) for c in ih2)
        part = np.empty(u.shape[0], dtype=ut)
        k = kernel("heat_amax", u.ndim, "const", u.size, _tag(u))
        if u.ndim == 3:
            flat = (u.shape[0], u.shape[1] * u.shape[2])
            uf = u.reshape(flat)
            k(u, out, uf, out.reshape(flat), uf.view(ut), part, mask, t(dt), t(beta), *coefs, *bcs)
        else:
            k(u, out, u.view(ut), part, mask, t(dt), t(beta), *coefs, *bcs)
        return float(part.max().view(u.dtype))

    # -- several explicit steps per memory pass (optional: solvers use them when a backend has them) --
    def heat_steps(self, u, buf, n, dt, ih2, bcs, beta=1.0, *, amax_limit: float | None = None):
        """``n`` constant-coefficient explicit steps, temporally blocked where that pays on this machine
        (:func:`blocking_pays`: the working set exceeds the threads' share of the last-level cache; single
        steps below, where they already stream from cache and the halos only cost): tiles of rows in 1-D/2-D, the
        wavefront in 3-D (1.5-2.2x at 4096² and 256³, :mod:`.blocked`); returns ``u`` or ``buf``, whichever holds
        the result (single steps: always ``u``, an odd count taking one step in place, :meth:`heat_step_inplace`).

        ``amax_limit``: the solvers' overflow check.  When ``max|u|`` is finite and above it, nothing is computed,
        ``u`` is left as it was and ``None`` is returned (the caller scales and calls again).  Single steps scan
        ``u`` within their first step (:meth:`heat_step_amax`), taken out of place so that ``u`` is intact until
        the check has passed, and where blocking pays the other ``n - 1`` steps follow in one blocked pass from ``buf``
        into ``u`` if they fit one (``n - 1 <=`` :data:`.blocked.BLOCK_DEPTH`); more steps scan first
        (:meth:`abs_max`), then run blocked from ``u``.
        """
        fused = (amax_limit is not None and n >= 2 and u.dtype in (np.float32, np.float64)
                 and u.flags.c_contiguous and buf.flags.c_contiguous)
        blocking = blocking_pays(u)
        # Blocked, the check is fused only where the other steps then fit one blocked pass (which ends in u, no
        # copy back): at 2 steps a scan of its own plus one pass of 2 ending in buf cost 1.3-1.45x the single steps
        # (4096², 256³); beyond one pass the blocked passes from u with a scan first cost less.
        if fused and blocking and n - 1 > blocked.BLOCK_DEPTH:
            fused = False
        if amax_limit is not None and not fused:
            amax = self.abs_max(u)
            if math.isfinite(amax) and amax > amax_limit:
                return None
        if fused:
            amax = self.heat_step_amax(u, buf, dt, ih2, bcs, beta)
            if math.isfinite(amax) and amax > amax_limit:
                return None  # buf holds a discarded step; u is untouched
            if blocking and n > 2:  # the other n - 1 steps in one blocked pass, from buf into u
                return blocked.heat_steps(buf, u, n - 1, dt, ih2, bcs, beta)
            # the result must end in u: an even number of steps out of place in all
            if n % 2 == 1:
                self.heat_step_inplace(buf, dt, ih2, bcs, beta)
                n -= 1
            u, buf = buf, u
            n -= 1
        elif blocking:
            return blocked.heat_steps(u, buf, n, dt, ih2, bcs, beta)
        elif n % 2 == 1 and u.flags.c_contiguous:  # the odd step in place: the result ends in u, not buf
            self.heat_step_inplace(u, dt, ih2, bcs, beta)
            n -= 1
        for _ in range(n):
            self.heat_step(u, buf, dt, ih2, bcs, beta)
            u, buf = buf, u
        return u

    def pm_steps(self, u, buf, n, dt, ih, kinv2, code):
        """``n`` explicit Perona–Malik steps, conductance from ``u`` (Catté sigma = 0), temporally blocked for
        2-D arrays where :func:`blocking_pays` (as :meth:`heat_steps`; 3-D takes single steps: the step
        is compute-bound, see :mod:`.blocked`)."""
        if not blocking_pays(u):
            for _ in range(n):
                self.pm_step(u, u, buf, dt, ih, kinv2, code)
                u, buf = buf, u
            return u
        return blocked.pm_steps(u, buf, n, dt, ih, kinv2, code)

    # -- ADI, first sweep fused (optional: ImplicitHeatSolver uses it when a backend has it) --
    def heat_adi_first(self, u, w, coefs, bcs, coef):
        """``w = (I - r L_last)^{-1} (sum_a coefs_a D_a u)`` for 2-D/3-D constant coefficients, in one pass.

        ``D_a`` is the second difference along axis ``a`` with boundary ``bcs[a]``
        (what :meth:`heat_step` applies with ``dt = 1``, ``beta = 0``) and ``coef``
        the factorised system of the last (contiguous) axis, as for
        :meth:`tri_solve`.  Rows are evaluated and solved in tiles (:mod:`.adi`).
        """
        t = u.dtype.type
        cyclic = coef.z is not None
        sq = (slice(None), slice(None), 0)
        z, vn, qf = (coef.z, coef.vn, coef.qf) if cyclic else (coef.cp, coef.cp, coef.cp)
        sys_ = (coef.a[sq], coef.cp[sq], coef.inv[sq], z[sq], vn[sq], qf[sq])
        c = tuple(t(x) for x in coefs)
        k = kernel("adi_first", u.ndim, "", u.size, _tag(u))
        if u.ndim == 2:
            k(u, w, *sys_, t(1), *c, *bcs, cyclic)
        else:
            k(u, w, w.reshape(-1, u.shape[-1]), *sys_, t(1), *c, *bcs, cyclic)

    # -- ADI in combined form, first sweep fused (optional, as heat_adi_first: for large time steps) --
    def heat_adi_combined(self, u, w, x, coef, inv_theta, update_u):
        """First sweep of a combined-form ADI step (2-D/3-D, constant coefficients), in one pass: ``X = S u``
        along the last axis (``coef``: its factorised system, as for :meth:`tri_solve`), ``w = 2 X - u``, then
        ``u -= inv_theta X`` (``update_u``) or ``x = X`` (:mod:`.adi`)."""
        t = u.dtype.type
        cyclic = coef.z is not None
        sq = (slice(None), slice(None), 0)
        z, vn, qf = (coef.z, coef.vn, coef.qf) if cyclic else (coef.cp, coef.cp, coef.cp)
        rows = (-1, u.shape[-1])
        kernel("adi_combined", 0, "", u.size, _tag(u))(
            u.reshape(rows), w.reshape(rows), x.reshape(rows), coef.a[sq], coef.cp[sq], coef.inv[sq], z[sq], vn[sq],
            qf[sq], t(inv_theta), bool(update_u), cyclic)

    # -- batched tridiagonal -------------------------------------------------------
    def tri_factor(self, a, b, c, cp, inv):
        kernel("tri_factor", 0, "", b.size, _tag(b))(a, b, c, cp, inv)

    def tri_solve(self, d, x, out, coef, alpha=1.0, accumulate=False):
        """Solve along axis 1 of the ``(pre, n, post)`` views ``d`` -> ``x`` (may alias).

        With ``accumulate``, ``out += alpha * x`` and ``x`` is scratch space
        (its content afterwards is unspecified).
        """
        pre, n, post = d.shape
        t = d.dtype.type
        cyclic = coef.z is not None
        z, vn, qf = (coef.z, coef.vn, coef.qf) if cyclic else (coef.cp, coef.cp, coef.cp)
        if post == 1:
            sq = (slice(None), slice(None), 0)
            block = 8  # measured: 8 lines per transposed block beat 16-64 (less scatter, L1-resident)
            kernel("tri_solve_last", 0, "", d.size, _tag(d))(
                d[:, :, 0], x[:, :, 0], out[:, :, 0], coef.a[sq], coef.cp[sq], coef.inv[sq], z[sq], vn[sq],
                qf[sq], block, t(alpha), accumulate, cyclic)
        else:
            # columns per block: wide (long contiguous row segments stream best: measured at 4096² and 256³,
            # 2048 columns beat 1024 by 10-20 % and 256 by 1.5-2x) but at least one work item per thread (a
            # 2-D axis-0 solve has a single line block, pre = 1)
            nt = numba.get_num_threads()
            per = -(-post // nt) if pre < nt else post
            block = int(max(64, min(post, 2048, -(-per // 64) * 64)))
            kernel("tri_solve_mid", 0, "", d.size, _tag(d))(d, x, out, coef.a, coef.cp, coef.inv, z, vn, qf, block,
                                                    t(alpha), accumulate, cyclic)

    # -- Perona–Malik -----------------------------------------------------------------
    def pm_step(self, u, v, out, dt, ih, kinv2, code):
        """Fused explicit Perona–Malik step on ``(C, n)``, ``(C, n0, n1)`` or ``(C, n0, n1, n2)`` arrays."""
        t = u.dtype.type
        shp, nplane, ihs = row_view(u.shape, ih)
        k = kernel("perona_malik", 0, "", u.size, _tag(u))
        n0 = u.shape[1] if u.ndim > 2 else 1  # blocks start on planes (3-D) or rows (2-D)
        nblocks = min(n0, 4 * numba.get_num_threads()) if k.parallel else 1
        k(
            u.reshape(shp), v.reshape(shp), out.reshape(shp), nplane, t(dt), *(t(x) for x in ihs), t(kinv2),
            kernel_code(code, u.dtype), t(1), t(0.5), nblocks)

    def aos_coefficients(self, v, axis, a, b, c, tau, ih, kinv2, code):
        """Lines of ``I - tau A_axis(v)`` for ``v`` ``(C, *spatial)`` into ``(pre, n, post)`` arrays."""
        t = v.dtype.type
        pre, n, post = _lines(v.shape[1:], axis)
        v4 = v.reshape(v.shape[0], pre, n, post)
        args = (t(min(tau, TAU_MAX)), t(ih), t(kinv2), kernel_code(code, v.dtype), t(1), t(0.5))
        if post == 1:
            sq = (slice(None), slice(None), 0)
            kernel("aos_coefficients", 0, "last", v.size, _tag(v4))(v4[..., 0], a[sq], b[sq], c[sq], *args)
        else:
            kernel("aos_coefficients", 0, "mid", v.size, _tag(v4))(v4, a, b, c, *args)

    def aos_axis(self, u, v, out, axis, tau, ih, kinv2, code, alpha):
        """One AOS term, fused: ``out += alpha (I - tau A_axis(v))^{-1} u`` for ``(C, *spatial)`` arrays.

        Conductances, factorisation and solve in one forward and one backward
        sweep (:mod:`.aos`), equal to :meth:`aos_coefficients` + :meth:`tri_factor`
        + :meth:`tri_solve` to rounding.  ``v`` and ``out`` have ``u``'s shape and
        dtype; ``out`` must not overlap ``u`` or ``v``.
        """
        t = u.dtype.type
        C = u.shape[0]
        pre, n, post = _lines(u.shape[1:], axis)
        args = (t(min(tau, TAU_MAX)), t(ih), t(kinv2), kernel_code(code, u.dtype), t(1), t(0.5), t(alpha))
        if post == 1:
            shp = (C, pre, n)
            kernel("aos_axis", 0, "last", u.size, _tag(u, shp))(
                u.reshape(shp), v.reshape(shp), out.reshape(shp), *args, v is u)
        else:
            shp = (C, pre, n, post)
            kernel("aos_axis", 0, "mid", u.size, _tag(u, shp))(u.reshape(shp), v.reshape(shp), out.reshape(shp),
                                                                *args)

    # -- smoothing -----------------------------------------------------------------------
    def gaussian_filter(self, u, sigma, out=None):
        """Gaussian smoothing of each channel of ``(C, *spatial)`` ``u``: std ``sigma`` (pixels, per axis).

        Equal to ``scipy.ndimage.gaussian_filter(u[c], sigma, mode="reflect",
        truncate=4.0)`` (float64: to rounding; float32: computed in float32, to
        a few ulp of ``max|u|``), by the fused kernel of :mod:`.gaussian`.  Other
        dtypes go to SciPy itself.  Returns ``out`` (C-contiguous, ``u``'s shape
        and dtype, not overlapping ``u``), or a new array when it is ``None``.
        """
        if out is None:
            out = np.empty_like(u)
        elif out.shape != u.shape or out.dtype != u.dtype or not out.flags.c_contiguous or np.shares_memory(u, out):
            raise ValueError("out must be a C-contiguous array of u's shape and dtype, separate from u")
        if u.dtype not in (np.float32, np.float64) or not 1 <= u.ndim - 1 <= 3:
            for ch in range(u.shape[0]):
                scipy.ndimage.gaussian_filter(u[ch], sigma, mode="reflect", output=out[ch])
            return out
        u = np.ascontiguousarray(u)
        w = [gaussian.gaussian_weights(s, u.dtype) for s in sigma]
        if u.ndim == 2:  # 1-D (C, n) as (C, 1, n)
            u3, out3, w = u.reshape(u.shape[0], 1, -1), out.reshape(u.shape[0], 1, -1), [np.ones(1, u.dtype), *w]
        else:
            u3, out3 = u, out
        nd = u3.ndim - 1
        k = kernel("gaussian", nd, "", u.size, _tag(u) + str(sum(len(x) for x in w)))
        # a few blocks per thread and channel (rows in 2-D, planes in 3-D): balance without tiny blocks
        nblocks = min(u3.shape[1], 4 * numba.get_num_threads()) if k.parallel else 1
        k(u3, out3, *w, nblocks)
        return out

    def face_gradient_mad(self, v, spacing):
        """``(median, mad, mean)`` of the face-gradient magnitudes of ``v`` ``(C, *spatial)``, 1-D to 3-D.

        Magnitudes ``s = sqrt(sum_c ((v_j - v_i) / h_a)^2)`` of every interior
        face of every axis, pooled; ``mad = median(|s - median(s)|)``.  Medians
        are NumPy's (mean of the two middle values for even counts), selected
        exactly among the float32-rounded magnitudes by the fused radix select
        of :mod:`.kappa`: four passes over ``v``, nothing input-sized allocated.
        NaN magnitudes are skipped, ``+inf`` counts.  ``mean`` (of the non-NaN
        ``s``) costs a fifth pass and is computed only when ``mad`` is 0; it is
        NaN otherwise.  No faces, or only NaN ones: ``(nan, nan, nan)``.
        """
        v = np.ascontiguousarray(v)
        if v.dtype not in (np.float32, np.float64):
            v = v.astype(np.float64)
        nd = v.ndim - 1
        if v.size == 0 or nd == 0:
            return float("nan"), float("nan"), float("nan")
        v3_shape, nplane, ihs = row_view(v.shape, [1.0 / float(h) for h in spacing])
        v3 = v.reshape(v3_shape)
        if use_parallel(v.size) and v.size >= kappa.PARALLEL_MIN_CELLS:
            # threaded or serial as the adaptive policy decides, per kind of pass (they cost differently; one
            # estimate for all kept the serial build on a quiet machine), in blocks for the threads either way
            # (a serial run over the blocks gives the same histograms)
            def pick(kind):
                return kernel("kappa_pass", 0, "", v.size, f"{_tag(v3)}{kind}")

            nblocks = min(v3.shape[1], numba.get_num_threads())
        else:
            serial = kernel_builds("kappa_pass", 0, "").serial

            def pick(kind):
                return serial

            nblocks = 1
        return kappa.median_mad(v3, nplane, *ihs, nblocks, pick)

    # -- spectral ----------------------------------------------------------------------
    def scale_separable(self, c, factors):
        """In place ``c *= prod_a factors[a]`` with ``c`` of shape ``(B, *spectral)``."""
        k = (spectral.scale1, spectral.scale2, spectral.scale3)[len(factors) - 1]
        k(c, *factors)


CPU = CPUBackend()
