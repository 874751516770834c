"""Robust estimation of the edge threshold ``kappa`` (Black et al. 1998), a front door.

The rule (:func:`pdediff._plan.kappa_from_spread`) is written once; the
executor of ``v``'s array type (:mod:`pdediff._dispatch`) measures the
spread: in memory by the backend's fused passes, on Dask arrays in streaming
passes over the chunks.
"""

from __future__ import annotations

from typing import Any

from .._dispatch import executor_for
from .._plan import BASE, CALIBRATION, FACTORS

__all__ = ["estimate_kappa", "BASE", "CALIBRATION", "FACTORS"]

# BASE, CALIBRATION and FACTORS (kappa = BASE * CALIBRATION * sigma_e per conductance, see
# pdediff._plan) are imported above so that they stay attributes of this module.


def estimate_kappa(v: Any, spacing: tuple[float, ...], conductance: str = "exponential") -> float:
    """``kappa = factor * 1.4826 * MAD(|grad v|)`` from the face gradient magnitudes of ``v`` [Black1998]_.

    Parameters
    ----------
    v : ndarray, shape ``(C, *spatial)``
        The image that feeds the conductance (smoothed if ``sigma > 0``).  A
        Dask array is reduced over all its chunks at once (computed now).
    spacing : tuple of float
        Cell width per spatial axis.
    conductance : str
        Selects the factor (:data:`FACTORS`); a callable conductance uses the
        exponential's.

    Returns
    -------
    float
        A positive threshold in intensity units per physical length; falls back
        to the mean face gradient (or 1), times the factor, on images whose MAD is zero.

    Notes
    -----
    The magnitudes are never stored: the backend's ``face_gradient_mad``
    recomputes them in a few fused passes over ``v`` and selects both medians
    exactly among their float32-rounded values (a radix select, see
    :mod:`pdediff.kernels.cpu.kappa`), so the estimate adds no input-sized
    array to the memory peak and agrees with the sort-based formula on the
    unrounded magnitudes to ~1e-7 relatively (the MAD to ~2^-23 times
    median + MAD).  Faces whose magnitude is NaN (NaN input with
    ``check_finite=False``) are left out; ``+inf`` ones count.

    References
    ----------
    .. [Black1998] M. J. Black, G. Sapiro, D. Marimont, D. Heeger, "Robust anisotropic
       diffusion", IEEE TIP 7(3), 1998.
    """
    return executor_for(v, "v").estimate_kappa(v, tuple(spacing), conductance)
