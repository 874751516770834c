"""MNIST (IDX) and CIFAR-10 (python pickle batches) readers, on small files written here in those formats."""

import gzip
import os
import pickle
import struct

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import functools
import operator

from pdediff.errors import DatasetError
from pdediff.torch.data import cifar10, load_dataset, mnist


def _idx(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()


def _write(path, data: bytes, gz: bool):
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def _mnist_arrays(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


@pytest.fixture(params=[False, True], ids=["plain", "gzip"])
def mnist_dir(tmp_path, request):
    gz = request.param
    out = {}
    for split, (img, lab), n in (("train", ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), 20),
                                 ("t10k", ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"), 7)):
        x, y = _mnist_arrays(n, n)
        _write(tmp_path / img, _idx(x), gz)
        _write(tmp_path / lab, _idx(y), gz)
        out[split] = (x, y)
    return tmp_path, gz, out


def test_mnist_round_trip(mnist_dir):
    folder, _, arrays = mnist_dir
    for split, key in (("train", "train"), ("test", "t10k")):
        x, y = mnist(folder, split=split, return_labels=True)
        ex, ey = arrays[key]
        assert x.dtype == torch.float32 and x.shape == (len(ex), 1, 28, 28)
        np.testing.assert_array_equal(x[:, 0].numpy(), (ex / 255 * 2 - 1).astype(np.float32))
        assert y.dtype == torch.int64 and y.tolist() == ey.tolist()
    x = mnist(str(folder))
    assert isinstance(x, torch.Tensor) and x.shape == (20, 1, 28, 28)
    assert float(x.min()) >= -1 and float(x.max()) <= 1


def test_load_dataset_reads_an_mnist_folder_with_its_own_split(mnist_dir):
    folder, _, arrays = mnist_dir
    x, y = load_dataset(folder, split="train")
    assert x.shape == (20, 1, 28, 28) and y.tolist() == arrays["train"][1].tolist()
    x, y = load_dataset(folder, split="test")
    assert x.shape == (7, 1, 28, 28)
    x, y = load_dataset(folder, split="all", n=25)
    assert x.shape == (25, 1, 28, 28)
    assert y.tolist() == arrays["train"][1].tolist() + arrays["t10k"][1][:5].tolist()


def _corrupt(folder, gz, name, data):
    for suffix in ("", ".gz"):
        p = folder / (name + suffix)
        if p.exists():
            p.unlink()
    _write(folder / name, data, gz)


@pytest.mark.parametrize("case,match", [
    ("magic", "magic number"),
    ("ndim", "magic number"),
    ("truncated", "truncated or wrong sizes"),
    ("extra", "truncated or wrong sizes"),
    ("header", "truncated header"),
    ("huge", "truncated or wrong sizes"),
    ("count", "7 labels"),
    ("missing", "lacks train-labels-idx1-ubyte"),
])
def test_mnist_corrupt_files_raise_clear_errors(mnist_dir, case, match):
    folder, gz, arrays = mnist_dir
    x, y = arrays["train"]
    img, lab = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
    if case == "magic":
        _corrupt(folder, gz, img, b"\x00\x00\x09\x03" + _idx(x)[4:])
    elif case == "ndim":
        _corrupt(folder, gz, img, _idx(x.reshape(20, 784)))
    elif case == "truncated":
        _corrupt(folder, gz, img, _idx(x)[:-5])
    elif case == "extra":
        _corrupt(folder, gz, img, _idx(x) + b"\x00")
    elif case == "header":
        _corrupt(folder, gz, img, _idx(x)[:9])
    elif case == "huge":  # a hostile header: 4e9 images; nothing of that size is allocated
        _corrupt(folder, gz, img, b"\x00\x00\x08\x03" + struct.pack(">III", 4_000_000_000, 28, 28) + x.tobytes())
    elif case == "count":
        _corrupt(folder, gz, lab, _idx(y[:7]))
    elif case == "missing":
        for suffix in ("", ".gz"):
            if (folder / (lab + suffix)).exists():
                (folder / (lab + suffix)).unlink()
    with pytest.raises(DatasetError, match=match):
        mnist(folder, return_labels=True)


def test_mnist_bad_gzip_and_arguments(tmp_path):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DatasetError, match="corrupt"):
        mnist(tmp_path)
    with pytest.raises(DatasetError, match="split must be 'train' or 'test'"):
        mnist(tmp_path, split="validation")
    with pytest.raises(DatasetError, match="not a folder"):
        mnist(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="lacks t10k-images-idx3-ubyte"):
        mnist(tmp_path, split="test")


# ------------------------------------------------------------------------------ CIFAR-10
def _cifar_batch(n, seed, protocol=2, **override):
    rng = np.random.default_rng(seed)
    d = {b"batch_label": b"training batch", b"labels": rng.integers(0, 10, n).tolist(),
         b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
         b"filenames": [b"img%d.png" % i for i in range(n)]}
    d.update(override)
    return d


@pytest.fixture
def cifar_dir(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        d = _cifar_batch(4, i)
        batches[name] = d
        (folder / name).write_bytes(pickle.dumps(d, protocol=2 if i % 2 else 4))
    return tmp_path, folder, batches


def test_cifar10_round_trip(cifar_dir):
    root, folder, batches = cifar_dir
    x, y = cifar10(folder, return_labels=True)
    assert x.shape == (20, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    data = np.concatenate([batches[f"data_batch_{k}"][b"data"] for k in range(1, 6)])
    # channel-major rows of 1024 pixels: red, green, blue planes, each row by row
    np.testing.assert_array_equal(x.numpy(), (data.reshape(20, 3, 32, 32) / 255 * 2 - 1).astype(np.float32))
    assert y.tolist() == functools.reduce(operator.iadd, (batches[f"data_batch_{k}"][b"labels"] for k in range(1, 6)), [])
    xt = cifar10(root, split="test")  # the folder above cifar-10-batches-py works too
    assert xt.shape == (4, 3, 32, 32)
    x2, y2 = load_dataset(root, split="test")
    assert torch.equal(x2, xt) and y2.tolist() == batches["test_batch"][b"labels"]
    x3, _ = load_dataset(folder, split="all")
    assert x3.shape == (24, 3, 32, 32)


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


@pytest.mark.parametrize("case,match", [
    ("keys", "missing key"),
    ("not_dict", "expected a dict"),
    ("dtype", "uint8 array of shape"),
    ("shape", "uint8 array of shape"),
    ("count", "4 images but 3 labels"),
    ("label_range", "labels must be in 0..9"),
    ("truncated", "corrupt or truncated|refused or corrupt"),
    ("garbage", "refused or corrupt|corrupt or truncated"),
    ("missing", "lacks data_batch_3"),
])
def test_cifar10_corrupt_files_raise_clear_errors(cifar_dir, case, match):
    _, folder, batches = cifar_dir
    target = folder / "data_batch_3"
    good = batches["data_batch_3"]
    if case == "keys":
        target.write_bytes(pickle.dumps({b"pixels": good[b"data"], b"labels": good[b"labels"]}))
    elif case == "not_dict":
        target.write_bytes(pickle.dumps([good[b"data"]]))
    elif case == "dtype":
        target.write_bytes(pickle.dumps(_cifar_batch(4, 0, data=good[b"data"].astype(np.float32))))
    elif case == "shape":
        target.write_bytes(pickle.dumps(_cifar_batch(4, 0, data=good[b"data"][:, :3000])))
    elif case == "count":
        target.write_bytes(pickle.dumps(_cifar_batch(4, 0, labels=good[b"labels"][:3])))
    elif case == "label_range":
        target.write_bytes(pickle.dumps(_cifar_batch(4, 0, labels=[0, 1, 2, 10])))
    elif case == "truncated":
        target.write_bytes(pickle.dumps(good)[:2000])
    elif case == "garbage":
        target.write_bytes(b"this is not a pickle")
    elif case == "missing":
        target.unlink()
    with pytest.raises(DatasetError, match=match):
        cifar10(folder)


def test_cifar10_refuses_pickled_code_without_running_it(cifar_dir, tmp_path):
    _, folder, _ = cifar_dir
    witness = tmp_path / "code-ran"
    evil = _cifar_batch(4, 0, batch_label=_Evil(str(witness)))
    (folder / "data_batch_2").write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(DatasetError, match="posix.mkdir is not allowed|os.mkdir is not allowed|not allowed"):
        cifar10(folder)
    assert not witness.exists()
    # and the test's own pickle does run code with the plain loader: the refusal is what protected us
    pickle.loads((folder / "data_batch_2").read_bytes())
    assert witness.exists()


def test_cifar10_arguments(tmp_path):
    with pytest.raises(DatasetError, match="not a folder"):
        cifar10(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="split must be"):
        cifar10(tmp_path, split="val")
    with pytest.raises(DatasetError, match="lacks test_batch"):
        cifar10(tmp_path, split="test")
