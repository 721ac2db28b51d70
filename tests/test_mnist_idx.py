"""The IDX reader on small files written here (nothing downloads), and its errors on bad files."""
import gzip

import numpy as np
import pytest

from ppgen.data.mnist import MNIST_FILES, load_mnist, read_idx, write_idx
from ppgen.errors import DataError


def _write_mnist(root, n_train=6, n_test=4, side=28, gz=False):
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        img_name, lab_name = MNIST_FILES[split]
        write_idx(root / (img_name + suffix), images)
        write_idx(root / (lab_name + suffix), labels)
        arrays[split] = (images, labels)
    return arrays


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
def test_idx_round_trip_every_type(tmp_path, dtype):
    a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == "uint8":
        a = np.abs(a).astype(dtype)
    out = read_idx(write_idx(tmp_path / "a.idx", a))
    assert out.dtype == np.dtype(dtype) and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, a)


def test_idx_header_is_big_endian_as_specified(tmp_path):
    path = write_idx(tmp_path / "labels", np.array([7, 2, 1], dtype=np.uint8))
    assert path.read_bytes() == bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 2, 1])
    path = write_idx(tmp_path / "ints", np.array([258], dtype=np.int32))
    assert path.read_bytes()[-4:] == bytes([0, 0, 1, 2])


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_reads_the_four_files(tmp_path, gz):
    arrays = _write_mnist(tmp_path, gz=gz)
    split = load_mnist(tmp_path, binarize=False)
    assert split.shape == (28, 28)
    assert split.x_train.shape == (6, 784) and split.x_test.shape == (4, 784)
    assert split.x_train.dtype == np.float32 and split.y_train.dtype == np.int64
    np.testing.assert_allclose(split.x_train, arrays["train"][0].reshape(6, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(split.y_test, arrays["test"][1])
    binary = load_mnist(tmp_path, binarize=True)
    np.testing.assert_array_equal(binary.x_test, (arrays["test"][0].reshape(4, -1) / 255.0 > 0.5).astype(np.float32))


def test_truncated_foreign_and_missing_files_are_named(tmp_path):
    path = write_idx(tmp_path / "x.idx", np.zeros((3, 4, 4), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"x\.idx.*truncated.*\(3, 4, 4\).*needs 64 bytes, the file has 59"):
        read_idx(path)
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DataError, match="truncated: its header needs 16 bytes"):
        read_idx(path)
    png = tmp_path / "digit.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(DataError, match=r"digit\.png.*not an IDX file.*got 89 50 4E 47"):
        read_idx(png)
    longer = write_idx(tmp_path / "y.idx", np.zeros(3, dtype=np.uint8))
    longer.write_bytes(longer.read_bytes() + b"\0")
    with pytest.raises(DataError, match="longer than its header says"):
        read_idx(longer)
    not_gzip = tmp_path / "z.idx.gz"
    not_gzip.write_bytes(b"plain bytes")
    with pytest.raises(DataError, match="not a valid gzip file"):
        read_idx(not_gzip)
    truncated_gzip = tmp_path / "t.idx.gz"
    truncated_gzip.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]))[:-6])
    with pytest.raises(DataError, match="not a valid gzip file"):
        read_idx(truncated_gzip)
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope.idx")


def test_load_mnist_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*never downloads"):
        load_mnist(tmp_path)
    _write_mnist(tmp_path)
    write_idx(tmp_path / MNIST_FILES["test"][1], np.zeros(5, dtype=np.uint8))   # 4 images, 5 labels
    with pytest.raises(DataError, match=r"test split.*\(4, 28, 28\) and \(5,\)"):
        load_mnist(tmp_path)
    _write_mnist(tmp_path, side=28)
    write_idx(tmp_path / MNIST_FILES["test"][0], np.zeros((4, 8, 8), dtype=np.uint8))
    with pytest.raises(DataError, match="differ in size"):
        load_mnist(tmp_path)
