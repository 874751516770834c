"""The scalar formulas of pdediff's kernels, written once as plain Python and compiled per target.

Every CPU kernel (:mod:`pdediff.kernels.cpu`, ``numba.njit``) and every GPU
kernel (:mod:`pdediff.kernels.gpu`, ``numba.cuda.jit(device=True)``) takes
the boundary rule, the ghost cells, the flux-form stencil and the
conductances from here, through :func:`compile_formulas`, so the two targets
cannot drift.  Each target supplies only its primitive ``exp_neg`` (a
vectorisable polynomial on the CPU, the hardware ``exp`` on the GPU); run as
plain Python (``math.exp``) the functions below are also the scalar reference
the tests compare the compiled kernels with.

Conventions (docs/conventions.rst §2–§4):

* boundary codes :data:`NEUMANN`, :data:`DIRICHLET`, :data:`PERIODIC`; the
  ghost cell beyond a face is the cell itself, its negative, or the cell on
  the far side;
* conductance codes :data:`EXPONENTIAL`, :data:`RATIONAL`, :data:`TUKEY` and
  :data:`EXPONENTIAL32` (the exponential evaluated in float32 arithmetic on
  float32 data), as functions of ``x = s^2 / kappa^2``; a non-finite ``x``
  (NaN data, or an overflowed gradient) gives ``g = 0``: no flux.

Adding a boundary condition or a conductance means adding a branch here (and
its code to :mod:`pdediff.grid` / :mod:`pdediff.anisotropic`); the kernels
need no change.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable

__all__ = ["NEUMANN", "DIRICHLET", "PERIODIC", "EXPONENTIAL", "RATIONAL", "TUKEY", "EXPONENTIAL32", "TAU_MAX",
           "FORMULAS", "compile_formulas"]

NEUMANN, DIRICHLET, PERIODIC = 0, 1, 2
EXPONENTIAL, RATIONAL, TUKEY, EXPONENTIAL32 = 0, 1, 2, 3
INF = math.inf
#: Ghost-cell signs of :func:`neighbour`.  Only compared, never multiplied, so a target may supply its own
#: (the GPU passes integers: a float64 sign would put float64 registers and compares in float32 kernels).
PLUS, MINUS = 1.0, -1.0
#: The largest face coupling ``tau g`` (``tau = theta dt / h^2`` or ``m dt / h^2``) an implicit line solve uses:
#: ``2**100``.  Beyond it a face couples its two cells completely to float64 precision (the coupling's
#: effect on the solution is ``O(n^2 / tau)``), while the factors stay far from float32's overflow
#: (a float32 ``tau`` of ``inf``, from ``dt > 3.4e38``, would give ``inf * 0 = NaN`` on faces that conduct nothing).
TAU_MAX = 2.0**100


def exp_neg(x):
    """``exp(-x)`` for ``x >= 0``, 0 for NaN: the plain-Python primitive each target replaces."""
    return math.exp(-x) if x < INF else 0.0


exp_neg32 = exp_neg  # float32 flavour of the primitive (the CPU target supplies a float32 polynomial)


def neighbour(i, n, bc, side):
    """Index and sign of the neighbour of cell ``i`` (of ``n``) on ``side`` -1 or +1.

    Beyond a boundary face the ghost cell is the edge cell itself (Neumann),
    its negative (Dirichlet) or the cell on the far side (periodic); the sign
    multiplies the value read at the returned index.  (Indices come from
    ``i +- 1``, ``0`` and ``n - 1`` only, so an unsigned loop index in a
    Numba ``prange`` keeps an integer type.)
    """
    if side < 0:
        if i > 0:
            return i - 1, PLUS
        edge, far = 0, n - 1
    else:
        if i < n - 1:
            return i + 1, PLUS
        edge, far = n - 1, 0
    if bc == PERIODIC:
        return far, PLUS
    if bc == DIRICHLET:
        return edge, MINUS
    return edge, PLUS


def ghost(value, sign):
    """The neighbour's value with its ghost-cell sign applied."""
    return -value if sign < 0 else value


def second_difference(c, vm, vp):
    """``(vm - c) + (vp - c)``: one axis of the constant-coefficient Laplacian times ``h^2``.

    (:func:`axis_flux` with unit faces, written without the multiplications so that
    float32 data stay in float32 arithmetic.)
    """
    return (vm - c) + (vp - c)


def axis_flux(c, vm, vp, fm, fp):
    """``fm (vm - c) + fp (vp - c)``: one axis of the flux-form Laplacian times ``h^2``, faces ``fm, fp``."""
    return fm * (vm - c) + fp * (vp - c)


def around2(u, i, j, bc0, bc1):
    """Cell ``(i, j)`` of a 2-D array and its four neighbours (ghost cells applied): ``c, y-, y+, x-, x+``."""
    n0, n1 = u.shape
    im, sm = neighbour(i, n0, bc0, -1)
    ip, sp = neighbour(i, n0, bc0, 1)
    jm, tm = neighbour(j, n1, bc1, -1)
    jp, tp = neighbour(j, n1, bc1, 1)
    return u[i, j], ghost(u[im, j], sm), ghost(u[ip, j], sp), ghost(u[i, jm], tm), ghost(u[i, jp], tp)


def around3(u, k, i, j, bc0, bc1, bc2):
    """Cell ``(k, i, j)`` of a 3-D array and its six neighbours: ``c, z-, z+, y-, y+, x-, x+``."""
    n0, n1, n2 = u.shape
    km, rm = neighbour(k, n0, bc0, -1)
    kp, rp = neighbour(k, n0, bc0, 1)
    im, sm = neighbour(i, n1, bc1, -1)
    ip, sp = neighbour(i, n1, bc1, 1)
    jm, tm = neighbour(j, n2, bc2, -1)
    jp, tp = neighbour(j, n2, bc2, 1)
    return (u[k, i, j], ghost(u[km, i, j], rm), ghost(u[kp, i, j], rp), ghost(u[k, im, j], sm),
            ghost(u[k, ip, j], sp), ghost(u[k, i, jm], tm), ghost(u[k, i, jp], tp))


def conductance(x, code, one, half):
    """Perona–Malik conductance ``g`` of ``x = s^2 / kappa^2 >= 0``; 0 for a non-finite ``x``.

    ``one`` and ``half`` carry the data's type, so float32 data stay float32.
    """
    if code == RATIONAL:
        # x - x == 0 exactly when x is finite: a test in x's own type (no float64 promotion of float32 lanes)
        return one / (one + x) if x - x == one - one else one - one
    if code == TUKEY:
        t = one - x
        return half * t * t if x <= one else one - one
    if code == EXPONENTIAL32:
        return exp_neg32(x)
    return exp_neg(x)


#: The formulas :func:`compile_formulas` compiles, in dependency order.
FORMULAS = ("neighbour", "ghost", "second_difference", "axis_flux", "around2", "around3", "conductance")


def compile_formulas(jit: Callable, name: str, **primitives: Callable) -> types.ModuleType:
    """Compile every formula with ``jit`` (e.g. ``numba.njit(inline="always")``), one target's copy.

    ``primitives`` (``exp_neg``, ``exp_neg32``; the constants ``PLUS``/``MINUS``) replace the plain-Python ones.
    The functions are re-created over one shared namespace, so a formula that
    calls another calls that target's compiled version.  Returned as a module
    named ``name`` (Numba resolves ``F.neighbour`` on a module global).
    """
    namespace = {"INF": INF, "NEUMANN": NEUMANN, "DIRICHLET": DIRICHLET, "PERIODIC": PERIODIC,
                 "EXPONENTIAL": EXPONENTIAL, "RATIONAL": RATIONAL, "TUKEY": TUKEY,
                 "EXPONENTIAL32": EXPONENTIAL32, "exp_neg": exp_neg, "exp_neg32": exp_neg32, "PLUS": PLUS,
                 "MINUS": MINUS}
    namespace.update(primitives)
    compiled = {}
    for name in FORMULAS:
        fn = globals()[name]
        clone = types.FunctionType(fn.__code__, namespace, name, fn.__defaults__, fn.__closure__)
        clone.__qualname__ = fn.__qualname__
        clone.__module__ = __name__
        clone.__doc__ = fn.__doc__
        namespace[name] = compiled[name] = jit(clone)
    module = types.ModuleType(name, f"pdediff.kernels.formulas compiled for {name}")
    for key, fn in compiled.items():
        setattr(module, key, fn)
    return module
