"""MNIST (or any IDX-format data set) read from files the user already has; nothing downloads.

The IDX format (LeCun's MNIST page): a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim``
big-endian uint32 sizes, then the values in big-endian C order. ``<type>`` is one of
``08`` uint8, ``09`` int8, ``0B`` int16, ``0C`` int32, ``0D`` float32, ``0E`` float64.
Files may be gzip-compressed (``.gz``), as they are distributed.

>>> split = load_mnist("~/data/mnist")          # doctest: +SKIP
>>> split.x_train.shape, split.shape             # doctest: +SKIP
((60000, 784), (28, 28))
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ppgen.data.images import ImageSplit
from ppgen.errors import DataError

__all__ = ["read_idx", "write_idx", "load_mnist", "MNIST_FILES"]

_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

# split -> (images, labels) base names, as on the MNIST page (Fashion-MNIST uses the same names)
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (optionally gzipped), with its stored shape and dtype (native byte order).

    Raises :class:`DataError` naming the file for a missing file, a foreign file (bad magic number),
    a truncated file or trailing bytes.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"IDX file {str(path)!r} does not exist")
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(
            f"{str(path)!r} is not an IDX file: expected magic bytes 00 00 <type in "
            f"{{{', '.join(f'{t:02X}' for t in _DTYPES)}}}> <ndim>, got {raw[:4].hex(' ').upper() or 'an empty file'}"
        )
    dtype, ndim = np.dtype(_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {str(path)!r} is truncated: its header needs {header} bytes, "
                        f"the file has {len(raw)}")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(
            f"IDX file {str(path)!r} is {what}: shape {shape} of {dtype.name} needs {expected} bytes, "
            f"the file has {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzipped if ``path`` ends in ``.gz``); the inverse of :func:`read_idx`."""
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"IDX cannot store dtype {array.dtype}; one of {sorted(str(d) for d in codes)}")
    payload = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload += array.astype(_DTYPES[code]).tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)
    return path


def load_mnist(root: str | Path, binarize: bool = True, threshold: float = 0.5) -> ImageSplit:
    """MNIST's train and test splits from the four IDX files in ``root`` (plain or ``.gz``).

    Images become rows of ``rows * cols`` float32 pixels in [0, 1] (``/ 255``), or ``{0, 1}`` with
    ``binarize=True`` (``x > threshold``); labels are int64.
    """
    root = Path(root).expanduser()
    splits, shapes = {}, set()
    for split, (images, labels) in MNIST_FILES.items():
        x, y = read_idx(_find(root, images)), read_idx(_find(root, labels))
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise DataError(
                f"MNIST {split} split in {str(root)!r}: expected images (n, rows, cols) and labels (n,) "
                f"with the same n, got {x.shape} and {y.shape}"
            )
        shapes.add(x.shape[1:])
        x = x.reshape(x.shape[0], -1).astype(np.float32) / 255.0
        splits[split] = ((x > threshold).astype(np.float32) if binarize else x, y.astype(np.int64))
    if len(shapes) != 1:
        raise DataError(f"MNIST files in {str(root)!r}: train and test images differ in size: {sorted(shapes)}")
    (x_tr, y_tr), (x_te, y_te) = splits["train"], splits["test"]
    return ImageSplit(x_tr, y_tr, x_te, y_te, shape=shapes.pop())


def _find(root: Path, base: str) -> Path:
    for name in (base, base + ".gz", base.replace("-idx", ".idx"), base.replace("-idx", ".idx") + ".gz"):
        if (root / name).is_file():
            return root / name
    raise DataError(f"no {base!r} (or {base}.gz) in {str(root)!r}; ppgen never downloads: "
                    f"put the MNIST IDX files there")


def _read_bytes(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as e:
        raise DataError(f"{str(path)!r} is not a valid gzip file ({e})") from None
