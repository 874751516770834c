"""One module per file format; each defines ``FORMATS``, a tuple of :class:`pdediff.io.Format` records.

The registry (:mod:`pdediff.io._format`) imports every module of this package the first time a
format is looked up, so adding a format is one new module here:

.. code-block:: python

    # pdediff/io/formats/_pfm.py
    from .._format import Format, WriteRequest

    def read_pfm(path): ...                      # -> pdediff.io.Scan
    def write_pfm(path, data, like, spacing, channel_axis): ...
    def check_pfm(request: WriteRequest): ...    # raise ValueError for what PFM cannot hold

    FORMATS = (Format("pfm", "PFM", (".pfm",), read=read_pfm, write=write_pfm, check=check_pfm),)

Format modules import optional libraries inside their functions (through ``_base._require``), so
importing them all costs nothing when a library is missing.  They import only the layer below
(``_base``, ``_limits``, ``_format``), never ``_scan`` or ``_chunked``.
"""
