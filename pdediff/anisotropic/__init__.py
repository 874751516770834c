"""Anisotropic (edge-preserving) diffusion: Perona–Malik, explicit and AOS (DESIGN.md §4)."""

from .kappa import estimate_kappa
from .perona_malik import CONDUCTANCES, PeronaMalikResult, perona_malik

__all__ = ["perona_malik", "estimate_kappa", "CONDUCTANCES", "PeronaMalikResult"]
