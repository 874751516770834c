"""Reading and writing scans: NumPy, PNG/JPEG, TIFF (stacks as volumes) and NIfTI.

Every write is atomic: the data go to a temporary file in the destination's
folder, which is renamed over the destination only once complete, so an
interrupted write never leaves a partial file.

Formats and the optional libraries they need (``pip install "pdediff[io]"``):

======================  ==========  =====================================
suffix                  library     notes
======================  ==========  =====================================
``.npy``, ``.npz``      NumPy       ``.npz`` keeps ``spacing`` too
``.png``                imageio     8/16-bit, grey or RGB(A)
``.jpg``, ``.jpeg``     imageio     8-bit, grey or RGB (lossy)
``.tif``, ``.tiff``     tifffile    8/16/32-bit int, float; 3-D stacks
``.nii``, ``.nii.gz``   nibabel     affine, header and voxel spacing kept
======================  ==========  =====================================
"""

from ._atomic import atomic_path
from ._scan import FORMATS, Scan, ScanIOError, cast_like, format_of, read_scan, write_scan

__all__ = ["Scan", "ScanIOError", "read_scan", "write_scan", "atomic_path", "format_of", "FORMATS", "cast_like"]
