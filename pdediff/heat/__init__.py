"""Heat-equation solvers: explicit (FTCS), implicit (Crank–Nicolson / backward Euler, ADI) and spectral."""

from .explicit import ExplicitHeatSolver
from .implicit import ImplicitHeatSolver
from .solve import solve_heat
from .spectral import SpectralHeatSolver

__all__ = ["ExplicitHeatSolver", "ImplicitHeatSolver", "SpectralHeatSolver", "solve_heat"]
