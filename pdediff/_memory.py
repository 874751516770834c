"""The in-memory executor: NumPy arrays on the CPU kernels, CuPy arrays on the GPU, through the backend contract.

Registered with :data:`pdediff._dispatch.EXECUTORS` for ``numpy.ndarray`` and
``cupy.ndarray`` the first time such an array reaches a front door.  It
carries out a plan of :mod:`pdediff._plan` on a whole array and checks
nothing the plan already checked.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ._backend import backend_for
from ._dispatch import Dispatcher
from ._plan import (
    HeatPlan,
    PeronaMalikPlan,
    callable_conductance,
    intensity_scale,
    inverse_square,
    kappa_from_spread,
)
from ._steppers import make_smoother, make_stepper
from ._validation import as_float_array

__all__ = ["InMemoryExecutor", "IN_MEMORY", "register_numpy", "register_cupy"]


class InMemoryExecutor:
    """Runs plans on NumPy (CPU) and CuPy (GPU) arrays; the backend follows the array (:func:`backend_for`)."""

    name = "in-memory"

    def prepare(self, x: Any, name: str, *, ndim: tuple[int, ...], check_finite: bool) -> Any:
        """``x`` as a checked float32/float64 array on its device (a copy only where the dtype changes)."""
        return as_float_array(x, name, ndim=ndim, check_finite=check_finite, xp=backend_for(x).xp)

    def solve_heat(self, u0: Any, plan: HeatPlan) -> Any:
        """``u(t)`` for every planned time (a leading time axis when ``t`` was a sequence)."""
        be = backend_for(u0)
        solver = plan.solver
        if plan.method == "spectral":
            out = solver.evolve_many(u0, np.asarray(plan.times, dtype=np.float64))
            return out if plan.sequence else out[0]
        u = be.xp.array(u0, copy=True, order="C")
        out = be.xp.empty((len(plan.times),) + tuple(u0.shape), dtype=u0.dtype)
        for k, (n, dt_k) in enumerate(plan.steps):
            if n:
                solver.step(u, n, dt=dt_k)
            out[k] = u
        return out if plan.sequence else out[0]

    def perona_malik(self, image: Any, plan: PeronaMalikPlan) -> tuple[Any, float]:
        """The filtered image and the ``kappa`` used (caller's units)."""
        be = backend_for(image)
        xp = be.xp
        ch = plan.channel_axis
        u = image[None] if ch is None else xp.moveaxis(image, ch, 0)  # (C, *spatial)
        # The dimensionless copy: intensities and lengths scaled by powers of two.  Perona–Malik commutes
        # with u -> a u, h -> c h (kappa -> a kappa / c, dt -> c^2 dt); with a, c powers of two every
        # product below is the same floating-point operation, exactly scaled, as on the caller's data,
        # while |u| < 1 and h_min in [1, 2) keep d^2 / kappa^2 and 1 / h^2 far from overflow and
        # underflow whatever the input's magnitude (1e30 float32 data are safe).
        abs_max = getattr(be, "abs_max", None)  # one fused pass where the backend has it (the CPU)
        a = intensity_scale(u, xp, abs_max(u) if abs_max is not None and u.flags.c_contiguous else None)
        c, hs = plan.length_scale, plan.scaled_spacing
        u = xp.ascontiguousarray(u * u.dtype.type(a))  # also the copy that protects the caller's array
        smooth = make_smoother(plan.sigma * c, hs, u.shape, u.dtype, be)
        v0 = None  # the smoothed input, computed once if kappa needs it and reused by the first step
        if plan.kappa is None:
            v0 = smooth(u)
            kappa_s = self.estimate_kappa(v0, hs, plan.kappa_conductance)
            kappa_ = kappa_s * c / a
        else:
            kappa_ = plan.kappa
            kappa_s = plan.kappa * a / c
        n = plan.num_iter
        if n > 0:
            g = None if plan.conductance_fn is None else callable_conductance(plan.conductance_fn, c / a, kappa_, xp)
            stepper = make_stepper(u, hs, plan.scaled_dt, inverse_square(kappa_s, u.dtype), plan.code, g,
                                   plan.method, be)
            iterator = range(n)
            if plan.progress:
                from tqdm.auto import tqdm

                iterator = tqdm(iterator, desc=f"Perona–Malik ({plan.method})", unit="it", leave=False, disable=None)
            buf = xp.empty_like(u)
            if plan.sigma == 0 and not plan.progress and hasattr(stepper, "steps"):
                # no smoothing: several steps per memory pass where the backend offers it, bit for bit the same
                u = stepper.steps(u, buf, n)
            else:
                for _ in iterator:
                    v = smooth(u) if v0 is None else v0
                    v0 = None
                    stepper(u, v, buf)
                    u, buf = buf, u
        if a != 1.0:
            u *= u.dtype.type(1.0 / a)
        out = u[0] if ch is None else xp.moveaxis(u, 0, ch)
        return xp.ascontiguousarray(out), kappa_

    def estimate_kappa(self, v: Any, spacing: tuple[float, ...], conductance: str) -> float:
        """The robust kappa of ``(C, *spatial)`` ``v`` from the backend's fused face-gradient median/MAD."""
        be = backend_for(v)
        v = be.xp.asarray(v)
        spatial = v.shape[1:]
        if 0 in spatial or max(spatial, default=1) < 2:  # no interior face at all
            return 1.0
        # One fused pass per radix-select step on the backend: no magnitude array is materialised.
        _, mad, mean = be.face_gradient_mad(v, tuple(spacing))
        return kappa_from_spread(mad, mean, conductance)


#: The one in-memory executor.
IN_MEMORY = InMemoryExecutor()


def register_numpy(dispatcher: Dispatcher) -> None:
    """Route ``numpy.ndarray`` (and subclasses: memory maps, masked arrays' data) to :data:`IN_MEMORY`."""
    dispatcher.register(np.ndarray, IN_MEMORY)


def register_cupy(dispatcher: Dispatcher) -> None:
    """Route ``cupy.ndarray`` to :data:`IN_MEMORY` (its backend is the GPU one); run when a CuPy array shows up."""
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        dispatcher.register(cupy.ndarray, IN_MEMORY)
