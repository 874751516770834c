"""Training data that ship with installed packages, or are synthesised (nothing is downloaded).

Every loader returns a float32 tensor of shape ``(N, C, H, W)`` scaled to ``[-1, 1]``.
:func:`load_dataset` names a data set by a string (``"digits"``, ``"shapes"``,
a folder of images or a ``.npy`` file) and splits it into train and test sets.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetError, ParameterError

__all__ = ["digits", "shapes", "image_patches", "mnist", "cifar10", "as_tensor", "load_dataset", "DATASETS",
           "IMAGE_SUFFIXES"]


class DatasetParameterError(DatasetError, ParameterError):
    """A :class:`~pdediff.errors.DatasetError` about one parameter of :func:`load_dataset`.

    Also a :class:`~pdediff.errors.ParameterError`: :attr:`param` is ``"spec"``,
    ``"size"``, ``"split"``, ``"test_fraction"`` or ``"n"``, written ``{spec}``...
    in the message template (the command line prints its flag, e.g. ``--data``).
    """


def _data_error(param: str, rest: str) -> DatasetParameterError:
    """``DatasetParameterError`` for ``param``: the message is ``param`` followed by ``rest`` (literal text)."""
    return DatasetParameterError("{" + param + "}" + rest.replace("{", "(").replace("}", ")"), param=param)

#: Data sets :func:`load_dataset` knows by name (anything else must be a path).
DATASETS = ("digits", "shapes")
#: Suffixes read from a folder of images (case-insensitive); other files are ignored.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
#: Images :func:`load_dataset` generates for ``"shapes"`` unless ``n`` says otherwise.
SHAPES_N = 2048
#: Size of the ``"shapes"`` images unless ``size`` says otherwise.
SHAPES_SIZE = (16, 16)
SPLITS = ("train", "test", "all")


def _to_unit(x: np.ndarray, lo: float, hi: float) -> torch.Tensor:
    return torch.from_numpy(((x - lo) / (hi - lo) * 2 - 1).astype(np.float32))


def digits() -> torch.Tensor:
    """scikit-learn's handwritten digits: 1797 images of 8 × 8 (values 0..16), shape ``(1797, 1, 8, 8)``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError('digits() needs scikit-learn: pip install "pdediff[torch]"') from None
    return _to_unit(load_digits().images[:, None], 0.0, 16.0)


def shapes(n: int = 1024, size: tuple[int, int] = (16, 16), *, seed: int = 0) -> torch.Tensor:
    """Seeded piecewise-constant images: a background and 1–3 rectangles or ellipses of random grey levels.

    Edge preservation is what matters on these, which separates Perona–Malik
    from linear blur as a forward process.
    """
    return _shapes(n, size, seed)[0]


def _shapes(n: int, size: tuple[int, int], seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """:func:`shapes` and the number of shapes drawn on each image (1–3; later ones may cover earlier ones)."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")
    out = np.empty((n, 1, h, w))
    counts = np.empty(n, dtype=np.int64)
    for i in range(n):
        img = np.full((h, w), rng.uniform(0, 0.3))
        counts[i] = rng.integers(1, 4)
        for _ in range(counts[i]):
            cy, cx = rng.uniform(0.2, 0.8, 2)
            ry, rx = rng.uniform(0.1, 0.35, 2)
            if rng.random() < 0.5:
                m = (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
            else:
                m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            img[m] = rng.uniform(0.3, 1.0)
        out[i, 0] = img
    return _to_unit(out, 0.0, 1.0), counts


def image_patches(n: int = 1024, size: tuple[int, int] = (32, 32), *, images=("camera", "coins", "moon"),
                  seed: int = 0) -> torch.Tensor:
    """Random grey patches of scikit-image's bundled images (``camera``, ``coins``, ... load offline)."""
    from skimage import data as skdata

    rng = np.random.default_rng(seed)
    pics = [np.asarray(getattr(skdata, name)(), dtype=np.float64) for name in images]
    pics = [p.mean(-1) if p.ndim == 3 else p for p in pics]
    h, w = size
    out = np.empty((n, 1, h, w))
    for i in range(n):
        p = pics[rng.integers(len(pics))]
        y, x = rng.integers(0, p.shape[0] - h + 1), rng.integers(0, p.shape[1] - w + 1)
        out[i, 0] = p[y : y + h, x : x + w]
    return _to_unit(out, 0.0, 255.0)


def as_tensor(data) -> torch.Tensor:
    """Accept any ``(N, C, H, W)`` tensor or NumPy array (float) as training data."""
    t = torch.as_tensor(np.asarray(data) if not isinstance(data, torch.Tensor) else data)
    if t.ndim != 4:
        raise ValueError(f"training data must have shape (N, C, H, W); got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"training data must be floating point; got {t.dtype}")
    return t


# ------------------------------------------------------------------------------ MNIST and CIFAR-10 files
#: File stems of the MNIST IDX files per split (each may also end in ``.gz``).
MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
#: The CIFAR-10 python batches per split (in ``cifar-10-batches-py``).
CIFAR10_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
CIFAR10_DIR = "cifar-10-batches-py"
_READ_CHUNK = 1 << 22


def _split_arg(split) -> str:
    if split not in ("train", "test"):
        raise _data_error("split", f" must be 'train' or 'test'; got {split!r}")
    return split


#: 0..255 -> [-1, 1] as the image-folder reader scales uint8 (in float64, rounded once to float32)
_UINT8_LUT = (np.arange(256, dtype=np.float64) / 255 * 2 - 1).astype(np.float32)


def _uint8_to_unit(x: np.ndarray) -> torch.Tensor:
    # a table look-up: float32 out without a float64 copy (CIFAR-10's training set would take 1.2 GB)
    return torch.from_numpy(_UINT8_LUT[x])


def _find_mnist(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise DatasetError(f"MNIST folder {str(folder)!r} lacks {stem} (or {stem}.gz); expected the IDX files "
                       f"{', '.join(s for pair in MNIST_FILES.values() for s in pair)} (each optionally .gz)")


def _read_idx(path: Path, kind: int, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes with ``ndim`` dimensions (magic ``0x0000 08 ndim``), checked before allocating."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] != kind or head[3] != ndim:
                got = head.hex() if len(head) == 4 else f"{len(head)} bytes"
                raise DatasetError(f"{path}: not an MNIST IDX file of {ndim}-D unsigned bytes (magic number "
                                   f"{got}, expected 0000{kind:02x}{ndim:02x})")
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DatasetError(f"{path}: truncated header ({4 + len(dims_raw)} bytes, expected {4 + 4 * ndim})")
            dims = struct.unpack(">" + "I" * ndim, dims_raw)
            expected = math.prod(int(d) for d in dims)  # Python ints: a hostile header cannot overflow
            if path.suffix != ".gz":  # the size is known before reading: a hostile header allocates nothing
                actual = path.stat().st_size - 4 - 4 * ndim
                if actual != expected:
                    raise DatasetError(f"{path}: the header says {'x'.join(map(str, dims))} = {expected} bytes of "
                                       f"data but the file holds {actual} (truncated or wrong sizes)")
            chunks, got = [], 0
            while got <= expected:  # read one byte past the end to notice trailing data
                c = f.read(min(_READ_CHUNK, expected + 1 - got))
                if not c:
                    break
                chunks.append(c)
                got += len(c)
    except DatasetError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read ({exc}); the file is corrupt or not gzip/IDX") from None
    if got != expected:
        raise DatasetError(f"{path}: the header says {'x'.join(map(str, dims))} = {expected} bytes of data but the "
                           f"file holds {'more' if got > expected else got} (truncated or wrong sizes)")
    return np.frombuffer(b"".join(chunks), dtype=np.uint8).reshape(dims)


def mnist(path: str | os.PathLike, *, split: str = "train", return_labels: bool = False):
    """Read MNIST from its IDX files (as distributed by LeCun et al.), nothing downloaded.

    Parameters
    ----------
    path : path-like
        The folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each plain or
        gzipped (``.gz``); only the chosen split's two files are needed.
        Fashion-MNIST, KMNIST and other sets in the same format read too.
    split : {"train", "test"}
        ``train-*`` (60000 images) or ``t10k-*`` (10000).
    return_labels : bool
        Also return the labels.

    Returns
    -------
    images : torch.Tensor
        float32, ``(N, 1, H, W)`` (28 × 28 for MNIST), pixels 0..255 scaled to ``[-1, 1]``.
    labels : torch.Tensor
        int64, ``(N,)``; only with ``return_labels=True``.

    Raises
    ------
    DatasetError
        A missing file (the message lists the expected names), a bad magic
        number, a header whose sizes disagree with the data (truncated or extra
        bytes; checked before allocating for plain files), a corrupt gzip
        stream, or image and label counts that differ.

    Examples
    --------
    >>> from pdediff.torch.data import mnist
    >>> x, y = mnist("~/data/mnist", split="test", return_labels=True)  # doctest: +SKIP
    >>> x.shape, y.shape                                                # doctest: +SKIP
    (torch.Size([10000, 1, 28, 28]), torch.Size([10000]))
    """
    split = _split_arg(split)
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"path {str(folder)!r} is not a folder; mnist() reads the folder holding the IDX files")
    img_stem, lab_stem = MNIST_FILES[split]
    images = _read_idx(_find_mnist(folder, img_stem), 0x08, 3)
    if not return_labels:
        return _uint8_to_unit(images[:, None])
    lab_path = _find_mnist(folder, lab_stem)
    labels = _read_idx(lab_path, 0x08, 1)
    if labels.shape[0] != images.shape[0]:
        raise DatasetError(f"MNIST folder {str(folder)!r}: {images.shape[0]} images in {img_stem} but "
                           f"{labels.shape[0]} labels in {lab_path.name}")
    return _uint8_to_unit(images[:, None]), torch.from_numpy(labels.astype(np.int64))


def _np_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _load_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DatasetError(f"CIFAR-10 folder {str(path.parent)!r} lacks {path.name}; expected the python batches "
                           f"{', '.join(CIFAR10_FILES['train'] + CIFAR10_FILES['test'])} (cifar-10-python.tar.gz "
                           f"extracted)")
    try:
        with open(path, "rb") as f:
            obj = _CifarUnpickler(io.BufferedReader(f), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise DatasetError(f"{path}: refused or corrupt pickle ({exc}); CIFAR-10 batches hold only a dict of "
                           "bytes, lists and NumPy arrays, and nothing else is unpickled") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, OSError, MemoryError) as exc:
        raise DatasetError(f"{path}: corrupt or truncated CIFAR-10 batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: expected a dict with keys b'data' and b'labels'; got {type(obj).__name__}")
    d = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    missing = [k for k in ("data", "labels") if k not in d]
    if missing:
        raise DatasetError(f"{path}: not a CIFAR-10 batch: missing key{'s' if len(missing) > 1 else ''} "
                           f"{', '.join(missing)} (expected 'data' (N, 3072) uint8 and 'labels'); has "
                           f"{', '.join(map(repr, sorted(map(str, d))))}")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        what = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetError(f"{path}: 'data' must be a uint8 array of shape (N, 3072); got {what}")
    try:
        labels = np.asarray(d["labels"])
    except (TypeError, ValueError):  # ragged or otherwise no list of integers: refused below
        labels = np.asarray([None])
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DatasetError(f"{path}: 'labels' must be a list of integers; got {type(d['labels']).__name__}")
    if labels.shape[0] != data.shape[0]:
        raise DatasetError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetError(f"{path}: labels must be in 0..9; got {int(labels.min())}..{int(labels.max())}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


class _CifarUnpickler(pickle.Unpickler):
    """Plain containers and NumPy arrays only: any other global (code) is refused before anything runs."""

    def find_class(self, module, name):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return _np_reconstruct()
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module == "_codecs" and name == "encode":  # how Python 3 pickles bytes at protocol 2
            return _latin1_encode
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "scalar":
            return _np_scalar()
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed (only NumPy arrays)")


def _latin1_encode(text, encoding="utf-8"):
    """``_codecs.encode`` restricted to latin-1 text (the only use of it in a pickle of bytes)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("only latin-1 encoding of text is allowed in a CIFAR-10 batch")
    return text.encode("latin1")


def _np_scalar():
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import scalar
    return scalar


def _cifar_folder(path: Path) -> Path:
    if (path / CIFAR10_DIR).is_dir() and not (path / "test_batch").exists():
        return path / CIFAR10_DIR
    return path


def cifar10(path: str | os.PathLike, *, split: str = "train", return_labels: bool = False):
    """Read CIFAR-10 from its python batches (``cifar-10-batches-py``), nothing downloaded, no code unpickled.

    Parameters
    ----------
    path : path-like
        The ``cifar-10-batches-py`` folder of the extracted
        ``cifar-10-python.tar.gz`` (or the folder that holds it), with
        ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``; only the
        chosen split's files are needed.
    split : {"train", "test"}
        The five training batches in order (50000 images) or ``test_batch`` (10000).
    return_labels : bool
        Also return the labels.

    Returns
    -------
    images : torch.Tensor
        float32, ``(N, 3, 32, 32)``, pixels 0..255 scaled to ``[-1, 1]``.
    labels : torch.Tensor
        int64, ``(N,)`` in 0..9; only with ``return_labels=True``.

    Raises
    ------
    DatasetError
        A missing batch (the message lists the expected names); a file that is
        no pickle, is truncated, or asks for any global but NumPy's array
        reconstruction (refused before anything runs: the batches are read
        with a restricted :class:`pickle.Unpickler`, never ``pickle.load``);
        a dict without ``data``/``labels``, data that are not ``uint8`` of
        shape ``(N, 3072)``, labels outside 0..9, or counts that differ.

    Examples
    --------
    >>> from pdediff.torch.data import cifar10
    >>> x = cifar10("~/data/cifar-10-batches-py", split="test")  # doctest: +SKIP
    >>> x.shape                                                  # doctest: +SKIP
    torch.Size([10000, 3, 32, 32])
    """
    split = _split_arg(split)
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"path {str(folder)!r} is not a folder; cifar10() reads the {CIFAR10_DIR} folder")
    folder = _cifar_folder(folder)
    parts = [_load_cifar_batch(folder / name) for name in CIFAR10_FILES[split]]
    images = _uint8_to_unit(np.concatenate([p[0] for p in parts]))
    if not return_labels:
        return images
    return images, torch.from_numpy(np.concatenate([p[1] for p in parts]))


def _folder_kind(folder: Path) -> str | None:
    """``"mnist"`` or ``"cifar10"`` when the folder holds those files, else ``None`` (a folder of images)."""
    names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    if any(stem in names or stem + ".gz" in names for pair in MNIST_FILES.values() for stem in pair):
        return "mnist"
    if any(n in names for n in CIFAR10_FILES["train"] + CIFAR10_FILES["test"]) or (
            CIFAR10_DIR in names and (folder / CIFAR10_DIR).is_dir()):
        return "cifar10"
    return None


# ------------------------------------------------------------------------------ load_dataset
def _allowed() -> str:
    return "'digits', 'shapes', a folder of images (" + "/".join(x.lstrip(".") for x in IMAGE_SUFFIXES) + \
        "), a folder of MNIST IDX files or CIFAR-10 python batches, or a .npy file"


def _check_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise _data_error("size", f" must be a positive integer or a pair (height, width); got {size!r}") from None
    if h < 1 or w < 1:
        raise _data_error("size", f" must be positive; got {size!r}")
    return h, w


def _scale_integer(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.bool_:
        return img.astype(np.float64) * 2 - 1
    info = np.iinfo(img.dtype)
    return (img.astype(np.float64) - info.min) / (info.max - info.min) * 2 - 1


def _scale_float(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise _data_error("spec", f" {what}: the data contain NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if not hi > lo:
        raise _data_error("spec", f" {what}: every value is {lo:g}; cannot rescale constant data to [-1, 1]")
    return (x - lo) / (hi - lo) * 2 - 1


def _read_folder(folder: Path) -> np.ndarray:
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise _data_error("spec", f" {str(folder)!r}: the folder holds no images (expected "
                           f"{', '.join(IMAGE_SUFFIXES)} files; subfolders are not searched)")
    try:
        import imageio.v3 as iio
    except ImportError:
        raise ImportError('reading a folder of images needs imageio: pip install "pdediff[io]"') from None
    imgs, kinds = [], []
    first = None
    for f in files:
        try:
            img = np.asarray(iio.imread(f))
        except Exception as exc:  # imageio raises many types for a broken file
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise _data_error("spec", f" {str(folder)!r}: cannot read image {f.name}: {msg}") from None
        if img.ndim == 3 and img.shape[-1] in (2, 4):  # grey+alpha, RGBA: drop an opaque alpha channel
            alpha = img[..., -1]
            opaque = np.iinfo(img.dtype).max if img.dtype.kind in "iu" else 1.0
            if not np.all(alpha == opaque):
                raise _data_error("spec", f" {str(folder)!r}: image {f.name} has a transparent alpha channel; "
                                   "expected grey or RGB images")
            img = img[..., :-1]
        if img.ndim == 2:
            img = img[None]
        elif img.ndim == 3 and img.shape[-1] in (1, 3):
            img = np.moveaxis(img, -1, 0)
        else:
            raise _data_error("spec", f" {str(folder)!r}: image {f.name} has shape {img.shape}; expected a 2-D grey "
                               "or RGB image")
        if img.dtype.kind not in "biuf":
            raise _data_error("spec", f" {str(folder)!r}: image {f.name} has unsupported pixel type {img.dtype}")
        if first is None:
            first = (f.name, img.shape)
        elif img.shape != first[1]:
            raise _data_error(
                "spec", f" {str(folder)!r}: images of different shapes: {first[0]} is {_chw(first[1])}, {f.name} "
                f"is {_chw(img.shape)}; every image must have the same size and channels")
        imgs.append(img)
        kinds.append(img.dtype.kind == "f")
    out = np.empty((len(imgs),) + first[1])
    for i, img in enumerate(imgs):
        if not kinds[i]:
            out[i] = _scale_integer(img)
    if any(kinds):  # float images: one min/max over all of them
        fl = np.array([i for i, k in enumerate(kinds) if k])
        out[fl] = _scale_float(np.stack([imgs[i] for i in fl]), repr(str(folder)))
    return out


def _chw(shape) -> str:
    c, h, w = shape
    return f"{h}x{w} {'grey' if c == 1 else 'RGB'}"


def _read_npy(path: Path) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False, mmap_mode="r")
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _data_error("spec", f" {str(path)!r}: cannot read {path.name}: {msg}") from None
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] in (1, 3):
        pass
    elif x.ndim == 4 and x.shape[-1] in (1, 3):
        x = np.moveaxis(x, -1, 1)
    elif x.ndim == 4:
        raise _data_error("spec", f" {str(path)!r}: array of shape {x.shape} has no channel axis of length 1 or 3; "
                           "expected (N, H, W), (N, C, H, W) or (N, H, W, C) with C in {1, 3}")
    else:
        raise _data_error("spec", f" {str(path)!r}: array of shape {x.shape} has {x.ndim} dimensions; expected "
                           "(N, H, W), (N, C, H, W) or (N, H, W, C) with C in {1, 3}")
    if x.dtype.kind not in "biuf":
        raise _data_error("spec", f" {str(path)!r}: unsupported data type {x.dtype}; expected integers or floats")
    if x.shape[0] < 1 or min(x.shape[2:]) < 1:
        raise _data_error("spec", f" {str(path)!r}: the array holds no images (shape {x.shape})")
    x = np.asarray(x)
    return _scale_float(x, repr(str(path))) if x.dtype.kind == "f" else _scale_integer(x)


def load_dataset(
    spec: str | os.PathLike,
    *,
    split: str = "train",
    seed: int = 0,
    test_fraction: float = 0.3,
    n: int | None = None,
    size: int | tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Load a data set by name or path and return one split of it.

    Parameters
    ----------
    spec : str or path-like
        ``"digits"``: scikit-learn's 1797 handwritten digits, 1 × 8 × 8, with
        their labels 0–9.  ``"shapes"``: :func:`shapes` (seeded synthetic
        piecewise-constant images, 1 × 16 × 16 by default, ``n`` of them,
        2048 by default) with label ``k - 1`` for an image on which ``k`` shapes
        (1–3) were drawn (a later shape may cover an earlier one).  Or a path:
        a folder of images (``.png``, ``.jpg``, ``.tif``, ``.bmp``, read with
        imageio in name order; other files and subfolders are ignored), all of
        one shape, grey or RGB (an opaque alpha channel is dropped), or a
        ``.npy`` file of shape ``(N, H, W)``, ``(N, C, H, W)`` or
        ``(N, H, W, C)`` with ``C`` in {1, 3}.  A folder holding MNIST IDX files
        (:func:`mnist`: ``train-images-idx3-ubyte[.gz]`` ...) or CIFAR-10 python
        batches (:func:`cifar10`: ``data_batch_1`` ..., or their
        ``cifar-10-batches-py`` folder) is read with those readers, with labels,
        and split as the files are (``"train"``, ``"test"``, ``"all"`` = both;
        ``seed`` and ``test_fraction`` are not used; ``n`` takes the first ``n``
        of the split).  Other paths have no labels.
    split : {"train", "test", "all"}
        Which part: a seeded random ``1 - test_fraction`` / ``test_fraction``
        partition of the images (disjoint; in the data's order within each part).
    seed : int
        Seed of the partition (and of the ``"shapes"`` generator).
    test_fraction : float
        Fraction of the images in the test part, in (0, 1); the test part holds
        ``round(N * test_fraction)`` images, at least 1 and at most ``N - 1``.
    n : int, optional
        ``"shapes"``: how many to generate.  Other data: use only the first
        ``n`` images (before splitting).
    size : int or (int, int), optional
        ``"shapes"``: the image size (default 16 × 16).  Other data: the size
        the images must have (checked; pdediff never resizes).

    Returns
    -------
    images : torch.Tensor
        float32, ``(N, C, H, W)``, in ``[-1, 1]``.  Integer pixels are scaled by
        their type's range (``uint8``: 0..255 → -1..1, ``uint16``: 0..65535);
        float pixels (``.npy``, float TIFF) are rescaled from the data's own
        minimum and maximum (over all images) to -1..1.
    labels : torch.Tensor or None
        int64 labels for ``"digits"`` and ``"shapes"``, else ``None``.

    Raises
    ------
    DatasetError
        (a :class:`ValueError`) for an unknown name (listing the allowed ones),
        a path that does not exist, an empty folder, images of different
        shapes, an unreadable file (named), an array of the wrong shape, and
        invalid ``split``, ``test_fraction``, ``n`` or ``size``.
    """
    if split not in SPLITS:
        raise _data_error("split", f" must be one of {', '.join(map(repr, SPLITS))}; got {split!r}")
    try:
        tf = float(test_fraction)
    except (TypeError, ValueError):
        raise _data_error("test_fraction", f" must be a number in (0, 1); got {test_fraction!r}") from None
    if not 0.0 < tf < 1.0:
        raise _data_error("test_fraction", f" must be in (0, 1); got {test_fraction!r}")
    if n is not None and (isinstance(n, bool) or int(n) != n or int(n) < 1):
        raise _data_error("n", f" must be a positive integer or None; got {n!r}")
    hw = _check_size(size)
    if not isinstance(spec, (str, os.PathLike)):
        raise _data_error("spec", f" must be {_allowed()}; got {type(spec).__name__}")
    labels = None
    name = os.fspath(spec)
    if name == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise ImportError('the "digits" data set needs scikit-learn: pip install "pdediff[torch]"') from None
        d = load_digits()
        images, labels = _to_unit(d.images[:, None], 0.0, 16.0), torch.from_numpy(d.target.astype(np.int64))
    elif name == "shapes":
        images, counts = _shapes(int(n) if n is not None else SHAPES_N, hw or SHAPES_SIZE, int(seed))
        labels = torch.from_numpy(counts - 1)
    else:
        path = Path(name).expanduser()
        if not path.exists():
            if os.sep not in name and "/" not in name and not path.suffix:
                raise _data_error("spec", f" {name!r} is not a known data set or an existing path; expected "
                                   f"{_allowed()}")
            raise _data_error("spec", f" {name!r}: no such file or folder; expected {_allowed()}")
        kind = _folder_kind(path) if path.is_dir() else None
        if kind is not None:
            # the files' own train/test split, not a random one (test_fraction and seed are not used)
            reader = mnist if kind == "mnist" else cifar10
            parts = [reader(path, split=p, return_labels=True) for p in (("train", "test") if split == "all"
                                                                           else (split,))]
            images = torch.cat([p[0] for p in parts])
            labels = torch.cat([p[1] for p in parts])
            if n is not None:
                if int(n) > images.shape[0]:
                    raise _data_error("n", f"={int(n)} exceeds the {images.shape[0]} {split} images of spec {name!r}")
                images, labels = images[: int(n)], labels[: int(n)]
            if hw is not None and tuple(images.shape[-2:]) != hw:
                raise _data_error("size", f"={hw}: the images of spec {name!r} are {tuple(images.shape[-2:])}; "
                                   "pdediff does not resize (leave size unset)")
            return images.contiguous(), labels.contiguous()
        if path.is_dir():
            arr = _read_folder(path)
        elif path.suffix.lower() == ".npy":
            arr = _read_npy(path)
        else:
            raise _data_error("spec", f" {name!r}: unsupported file type {path.suffix or '(none)'}; expected "
                               f"{_allowed()}")
        images = torch.from_numpy(arr.astype(np.float32))
    if n is not None and name != "shapes":
        if int(n) > images.shape[0]:
            raise _data_error("n", f"={int(n)} exceeds the {images.shape[0]} images of spec {name!r}")
        images = images[: int(n)]
        labels = labels[: int(n)] if labels is not None else None
    if hw is not None and tuple(images.shape[-2:]) != hw:
        raise _data_error("size", f"={hw}: the images of spec {name!r} are {tuple(images.shape[-2:])}; pdediff "
                           "does not resize (leave size unset)")
    images = images.contiguous()
    if split == "all":
        return images, labels
    N = images.shape[0]
    if N < 2:
        raise _data_error("spec", f" {name!r} holds {N} image; a train/test split needs at least 2 (or split='all')")
    n_test = min(max(round(N * tf), 1), N - 1)
    perm = np.random.default_rng(int(seed)).permutation(N)
    idx = np.sort(perm[:n_test] if split == "test" else perm[n_test:])
    idx_t = torch.from_numpy(idx)
    return images[idx_t].contiguous(), (labels[idx_t].contiguous() if labels is not None else None)
