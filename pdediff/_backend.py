"""The backend contract, and the one place where pdediff decides which backend runs a computation.

A *backend* is everything a solver asks of a device.  Solvers
(:mod:`pdediff.heat`, :mod:`pdediff.anisotropic`) call only the methods of
:class:`Backend` below, on whole arrays of 1–3 spatial dimensions (plus a
leading channel axis where stated); they never test which backend they hold,
never adapt shapes to a kernel's calling convention and never cache device
data on themselves.  Shape adaptation, launch configuration, thread counts and
device transfers live behind the contract.

Implementations: :class:`pdediff.kernels.cpu.backend.CPUBackend` (Numba on
NumPy arrays) and :class:`pdediff.kernels.gpu.backend.GPUBackend` (numba.cuda
on CuPy arrays).  A new backend (another device or array library) is one
module that implements the contract and registers a predicate with
:func:`register_backend`; ``tests/test_backend_contract.py`` runs the same
checks against every backend available in the process (the GPU one under
Numba's CUDA simulator in CI).  Dask arrays are not a backend but an executor
(:mod:`pdediff._dispatch`, :mod:`pdediff.dask`) whose chunks reach these backends.

Optional methods, used by the solvers when a backend has them (the CPU backend
does; others need not), each a fusion of required methods that saves passes
over memory:

* ``heat_steps(u, buf, n, dt, ih2, bcs, beta, *, amax_limit=None)`` and
  ``pm_steps(u, buf, n, dt, ih, kinv2, code)``: ``n`` explicit steps with
  several steps per memory pass (temporal blocking), returning whichever of
  ``u``/``buf`` holds the result, bit for bit equal to ``n`` single steps;
  with ``amax_limit``, ``heat_steps`` also makes the overflow check (``None``,
  ``u`` untouched, where ``max|u|`` is finite and above the limit), fused into
  its first step where it can;
* ``heat_step_inplace(u, dt, ih2, bcs, beta)``: one constant-coefficient
  explicit step written into ``u`` itself in one memory pass, bit for bit
  ``heat_step`` into another array;
* ``abs_max(u)``: ``max|u|`` (NaN if ``u`` holds one) in one pass, for the
  power-of-two overflow scaling of the front doors;
* ``heat_adi_combined(u, w, x, coef, inv_theta, update_u)``: the first sweep of
  a combined-form ADI step for constant coefficients (2-D/3-D): ``X = (I - r
  L_last)^{-1} u``, ``w = 2 X - u`` and ``u -= inv_theta X`` (``update_u``) or
  ``x = X``, in one pass (the other axes follow through ``tri_solve``; the axis
  operators commute, so the order is free);
* ``aos_axis(u, v, out, axis, tau, ih, kinv2, code, alpha)``: one AOS term
  ``out += alpha (I - tau A_axis(v))^{-1} u`` -- conductances, factorisation
  and solve in one forward and one backward sweep, equal to
  ``aos_coefficients`` + ``tri_factor`` + ``tri_solve`` to rounding.

Optional methods that move a whole solver onto a backend (the GPU one has
them; :func:`pdediff.tensor_diffusion` runs its explicit step on a backend that
has ``tensor_links``, and on the CPU kernels of :mod:`pdediff.kernels.cpu.tensor`
otherwise):

* ``tensor_structure(v, spacing, bc)``: the structure tensor of ``(C,
  *spatial)`` ``v``, a new ``(3 | 6, *spatial)`` array;
* ``tensor_links(f, mode, cond, kinv2, gmin, alpha, cstar, spacing, bc, W,
  O)``: every cell's diffusion tensor and its Selling links into ``W``/``O``,
  returning ``(failures, per-axis reach)``;
* ``tensor_apply(u, W, O, reach, bc, dt, out, dg, with_diag)``: ``out = u +
  dt A u`` (and ``dg = -A_xx``, returning its maximum).

Arrays, dtypes and conventions: float32 or float64, C-contiguous, native byte
order; boundary codes and conductance codes as in
:mod:`pdediff.kernels.formulas`; ``ih`` = ``1/h_a`` and ``ih2`` = ``1/h_a^2``
per spatial axis (docs/conventions.rst §2–§4).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from ._arrays import is_cupy_array

__all__ = ["Backend", "backend_for", "register_backend", "is_cupy_array"]


@runtime_checkable
class Backend(Protocol):
    """What a solver may ask of a device.  Every method works in place on the arrays it is given."""

    #: Short name, for messages and reports only (solvers never branch on it).
    name: str
    #: The array module (``numpy`` or ``cupy``): allocation, reductions, elementwise maths.
    xp: Any
    #: The FFT module (``scipy.fft`` or ``cupyx.scipy.fft``) and the keywords its calls take.
    fft: Any
    fft_kwargs: dict

    def asarray(self, x: Any) -> Any:
        """``x`` on this backend's device (no copy when it is already there)."""

    def heat_step(self, u: Any, out: Any, dt: float, ih2: tuple[float, ...], bcs: tuple[int, ...],
                  beta: float = 1.0, faces: tuple[Any, ...] | None = None) -> None:
        """``out = beta u + dt sum_a ih2_a (F_a^- (u_a^- - u) + F_a^+ (u_a^+ - u))`` for 1-D to 3-D ``u``.

        ``faces``: per axis, face diffusivities of shape ``u.shape`` plus one
        along that axis (on this device, see :meth:`asarray`); ``None`` for
        constant coefficients (then ``dt`` holds ``dt D``).
        """

    def pm_step(self, u: Any, v: Any, out: Any, dt: float, ih: tuple[float, ...], kinv2: float, code: int) -> None:
        """One explicit Perona–Malik step of ``(C, *spatial)`` arrays, conductance from ``v``, Neumann."""

    def aos_coefficients(self, v: Any, axis: int, a: Any, b: Any, c: Any, tau: float, ih: float, kinv2: float,
                         code: int) -> None:
        """Tridiagonal lines of ``I - tau A_axis(v)`` for ``v`` ``(C, *spatial)``, into ``(pre, n, post)`` lines
        (``b``: the row sums, as :meth:`tri_factor` takes them)."""

    def tri_factor(self, a: Any, b: Any, c: Any, cp: Any, inv: Any) -> None:
        """Thomas factors of the ``(P, n, Q)`` systems ``a x_{i-1} + d x_i + c x_{i+1}``, given ``a``, ``c`` and the
        **row sums** ``b = a + d + c`` (the subtraction-free form: accurate for any time step in float32)."""

    def tri_solve(self, d: Any, x: Any, out: Any, coef: Any, alpha: float = 1.0, accumulate: bool = False) -> None:
        """Solve along axis 1 of the ``(pre, n, post)`` views (``out += alpha x`` with ``accumulate``)."""

    def gaussian_filter(self, u: Any, sigma: tuple[float, ...]) -> Any:
        """Gaussian smoothing (std in pixels per spatial axis, reflecting boundaries) of ``(C, *spatial)``."""

    def scale_separable(self, c: Any, factors: tuple[Any, ...]) -> None:
        """In place ``c *= prod_a factors[a]`` with ``c`` of shape ``(B, *spectral)``."""

    def face_gradient_mad(self, v: Any, spacing: tuple[float, ...]) -> tuple[float, float, float]:
        """``(median, MAD, mean)`` of the face-gradient magnitudes of ``(C, *spatial)`` ``v``."""


_REGISTRY: list[tuple[Callable[[Any], bool], Callable[[], Backend]]] = []


def register_backend(accepts: Callable[[Any], bool], get: Callable[[], Backend]) -> None:
    """Route arrays for which ``accepts(x)`` is true to the backend ``get()`` returns (checked newest first)."""
    _REGISTRY.insert(0, (accepts, get))


def _gpu() -> Backend:
    from .kernels.gpu.backend import get_gpu_backend

    return get_gpu_backend()


def backend_for(x: Any) -> Backend:
    """The backend that computes on ``x``'s device: NumPy (and array-likes) on the CPU, CuPy on the GPU.

    The GPU backend is imported only when a CuPy array shows up, so
    ``import pdediff`` never touches CUDA.
    """
    for accepts, get in _REGISTRY:
        if accepts(x):
            return get()
    from .kernels.cpu.backend import CPU

    return CPU


register_backend(is_cupy_array, _gpu)
