"""pdediff: heat-equation and Perona–Malik diffusion on a Numba core.

Public API
----------
perona_malik
    Edge-preserving anisotropic diffusion (explicit and AOS), 1-D/2-D/3-D, colour.
tensor_diffusion
    Weickert's edge- and coherence-enhancing tensor diffusion (EED/CED), 2-D/3-D, non-negative stencil.
inpaint
    Fill missing pixels (cracks, holes): harmonic, biharmonic, Perona–Malik, or a trained model (RePaint).
solve_heat
    Explicit, implicit (Crank–Nicolson / backward Euler, ADI) and spectral heat solvers.
ExplicitHeatSolver, ImplicitHeatSolver, SpectralHeatSolver
    The steppers behind :func:`solve_heat`, built once per grid and reused.
Grid
    The cell-centred grid and its boundary conditions.
analytic
    Exact solutions used by tests, docs and benchmarks.
ParameterError
    A parameter's value is not allowed (a ``ValueError`` naming the parameter).
StabilityError
    Raised for explicit time steps above the stability limit.
StepLimitError
    Raised, before any work, when a call would take more than ``max_steps`` time steps.
LargeStepWarning
    Warned when an implicit 2-D/3-D step is so large that the ADI splitting hardly damps mixed modes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Every public name is loaded on first access (PEP 562), so that ``import pdediff`` and the command line's
# start cost milliseconds: Numba and the kernels load when a solver is first named, and a Ctrl-C during that
# load is inside ``pdediff.cli.main``, which reports it in one line instead of a traceback.
_PUBLIC = {
    "perona_malik": ".anisotropic",
    "tensor_diffusion": ".anisotropic",
    "estimate_kappa": ".anisotropic",
    "inpaint": ".restoration",
    "solve_heat": ".heat",
    "ExplicitHeatSolver": ".heat",
    "ImplicitHeatSolver": ".heat",
    "SpectralHeatSolver": ".heat",
    "Grid": ".grid",
    "ParameterError": ".errors",
    "StabilityError": ".errors",
    "StepLimitError": ".errors",
    "LargeStepWarning": ".errors",
}

#: Submodules loaded on first access (``pdediff.data.mri_slice()`` works after ``import pdediff``),
#: so that ``import pdediff`` stays light and never imports torch or the format libraries.
_LAZY_SUBMODULES = ("analytic", "data", "io", "metrics", "torch", "cli", "demo")

if TYPE_CHECKING:  # static checkers and IDEs see the names eagerly
    from . import analytic
    from .anisotropic import estimate_kappa, perona_malik, tensor_diffusion
    from .errors import LargeStepWarning, ParameterError, StabilityError, StepLimitError
    from .grid import Grid
    from .heat import ExplicitHeatSolver, ImplicitHeatSolver, SpectralHeatSolver, solve_heat
    from .restoration import inpaint


def __getattr__(name: str):
    import importlib

    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
        globals()[name] = value  # later accesses skip this hook
        return value
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC) | set(_LAZY_SUBMODULES))

__all__ = [
    "solve_heat",
    "perona_malik",
    "tensor_diffusion",
    "estimate_kappa",
    "inpaint",
    "ExplicitHeatSolver",
    "ImplicitHeatSolver",
    "SpectralHeatSolver",
    "Grid",
    "analytic",
    "ParameterError",
    "StabilityError",
    "StepLimitError",
    "LargeStepWarning",
    "__version__",
]
