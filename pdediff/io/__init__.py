"""Reading and writing scans: NumPy, PNG/JPEG, TIFF, NIfTI, MGH/MGZ, NIfTI/Analyze pairs and DICOM.

Every write is atomic: the data go to a temporary file (a hidden temporary
folder for a DICOM series) beside the destination, which is renamed over the
destination only once complete, so an interrupted write never leaves a
partial file.  Before writing, :func:`check_writable` refuses what the format
cannot hold unchanged (``ValueError`` naming the alternatives): nothing is
silently converted, squeezed or turned into something else.  Before reading,
the size a header claims is compared with the file and with the memory
available (:class:`ScanIOError`, one line), so a small hostile or truncated
file never makes pdediff allocate gigabytes.

Formats and the optional libraries they need (``pip install "pdediff[io]"``):

=========================  ==========  ==========================================================
suffix                     library     notes
=========================  ==========  ==========================================================
``.npy``, ``.npz``         NumPy       any numeric array; ``.npz`` keeps ``spacing`` and
                                       ``channel_axis`` too
``.png``                   imageio     2-D, uint8/uint16 grey; uint8 grey+alpha, RGB, RGBA
                                       (``alpha`` set); 16-bit colour PNGs are refused on reading
                                       (Pillow would reduce them to 8 bits); palettes read as RGB
                                       (RGBA with a transparent entry), with a note
``.jpg``, ``.jpeg``        imageio     2-D, uint8 grey or RGB (lossy); CMYK read as RGB (Pillow's
                                       conversion), with a note
``.tif``, ``.tiff``        tifffile    (u)int8-64, float16-64, complex; pages are a volume;
                                       1-4 channels last (alpha from ExtraSamples); CMYK, Lab,
                                       undecoded YCbCr and palette TIFFs refused; spacing from
                                       X/YResolution and ImageJ ``spacing``, written back the same
                                       way (ImageJ hyperstack for uint8/uint16/float32)
``.nii``, ``.nii.gz``      nibabel     2-D/3-D grey; affine, header and voxel spacing kept;
                                       ``scl_slope``/``scl_inter`` applied on reading
                                       (``stored_dtype``, ``scaled``) and chosen by nibabel on
                                       writing with ``stored_dtype=numpy.int16``
``.mgz``, ``.mgh``         nibabel     FreeSurfer MGH: 2-D/3-D grey, uint8/int16/int32/float32;
                                       affine and spacing kept
``.hdr`` + ``.img``        nibabel     NIfTI-1/2 pairs (magic ``ni1``) and Analyze 7.5: read only
                                       (write ``.nii``); ``meta["pair"]`` says which
``.dcm``, a folder         pydicom     one file (also multi-frame) or a folder holding one series,
                                       as ``(z, y, x)`` with spacing ``(dz, dy, dx)``: slices
                                       ordered along the slice normal, evenly spaced, rescale
                                       applied (an RT Dose's ``DoseGridScaling`` too, and kept on
                                       writing); compressed files need a pydicom decoder plugin.
                                       Written as a new series (one file per slice, uncompressed,
                                       the input's integer type with a per-slice slope/intercept),
                                       or one ``.dcm`` for a 2-D image
``.zarr`` (a folder)       zarr        a Zarr array store (``pdediff[dask]``): any numeric array;
                                       ``spacing`` and ``channel_axis`` in its attributes; also
                                       read lazily and written chunk by chunk (below)
=========================  ==========  ==========================================================

Larger than memory (``pip install "pdediff[dask]"``): :func:`open_chunked` gives a lazy Dask
array over a ``.npy`` file (memory map), an uncompressed ``.nii`` (nibabel's array proxy) or a
``.zarr`` store, reading nothing but headers; :func:`write_chunked` computes a Dask array chunk by
chunk into a ``.zarr`` store or a ``.nii`` file, atomically (docs/scaling.rst).

Choosing the format.  The destination's suffix names the format (in any case; the longest known suffix wins).
A path without a known suffix is a DICOM series folder only when it is an existing folder, ends
in ``/``, or ``format="dicom"`` is passed; otherwise it is refused (``ValueError``), as is an
empty path, ``.`` or ``..``.  A ``.dcm`` path is one 2-D DICOM image.  DICOM → NIfTI writes
nibabel's ``(x, y, z)`` order with the affine from the DICOM geometry (LPS converted to RAS).

Replacing.  The writers replace an existing destination by default (``overwrite=True``); with
``overwrite=False`` (the command line without ``--force``) they refuse an existing one and commit
without replacing anything, so of two processes writing one path the second fails with
:class:`DestinationExistsError` and leaves nothing behind.  A folder is replaced only by its own
kind (a DICOM series folder by a series, a Zarr store by a store; :func:`replace_problem`), and
nothing that is neither a file nor a folder (a FIFO, a device: :class:`ScanIOError`) ever is.  A
destination that is a symbolic link is *followed*: its target is replaced atomically and the
link stays.

Formats are records in a registry (:class:`Format`, :func:`get_format`,
:func:`registered_formats`): each module of :mod:`pdediff.io.formats` defines its own, so adding
a format is one new module there.
"""

from ._atomic import atomic_path, atomic_paths, follow_link
from ._base import DestinationExistsError
from ._chunked import open_chunked, write_chunked
from ._format import Format, WriteRequest, get_format, registered_formats
from ._limits import available_memory
from . import _scan
from ._scan import (
    FORMATS,
    Scan,
    ScanIOError,
    cast_like,
    check_writable,
    format_of,
    is_directory_format,
    read_scan,
    replace_problem,
    write_scan,
)
from .formats._zarr import is_zarr_store

__all__ = ["DestinationExistsError", "Format", "WriteRequest", "atomic_path", "atomic_paths", "available_memory",
           "follow_link", "get_format", "is_zarr_store", "open_chunked", "registered_formats", "write_chunked",
           *_scan.__all__]
