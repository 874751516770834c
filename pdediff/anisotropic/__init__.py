"""Anisotropic (edge-preserving) diffusion: Perona–Malik, explicit and AOS (docs/conventions.rst §4)."""

from .kappa import estimate_kappa
from .perona_malik import CONDUCTANCES, PeronaMalikResult, perona_malik
from .tensor import TensorDiffusionResult, tensor_diffusion

__all__ = ["perona_malik", "estimate_kappa", "CONDUCTANCES", "PeronaMalikResult", "tensor_diffusion",
           "TensorDiffusionResult"]
