"""Perona–Malik's steppers, re-exported; they live in :mod:`pdediff._steppers` (shared by both executors)."""

from .._steppers import SPECTRAL_SMOOTHING_MIN_PIXELS, aos_term, face_conductances, make_smoother, make_stepper

__all__ = ["make_smoother", "make_stepper", "aos_term", "face_conductances", "SPECTRAL_SMOOTHING_MIN_PIXELS"]
