"""Image restoration: inpainting of missing pixels (classical PDE methods and a learned model).

Modelled on :mod:`skimage.restoration`: :func:`inpaint` takes the array first
and keyword-only options.
"""

from ._inpaint import InpaintResult, inpaint

__all__ = ["InpaintResult", "inpaint"]
