"""Data that does not fit in memory: rows of a memory-mapped array, read a minibatch at a time.

A model that subsamples its data plate reads only the rows the plate picks::

    x = stream.open_memmap("pixels.npy")                 # (N, D) on disk; nothing read yet

    def model(x, batch_size=256):
        with pyro.plate("data", len(x), subsample_size=batch_size) as idx:
            xb = x[idx]                                   # (B, D): B rows read now, on x's device and dtype
            ...                                           # (or: xb = pyro.subsample(x, event_dim=1))

    feed = epochs("data")                                 # the plate's indices (ppgen.handlers.epochs)
    losses = train(feed(model), feed(guide), {"x": x.to("cuda")}, steps=...)

Pyro scales the minibatch log-likelihood by N / B, so each step's ELBO is an unbiased estimate of
the full-data ELBO. By default Pyro draws the plate's indices with ``randperm(N)`` at every step:
O(N) time and memory per step, and rows scattered over the whole file. :class:`~ppgen.handlers.epochs.epochs` draws them
instead from a shuffled pass over the rows, each row once per epoch, and sorts every batch so the
reads go forward through the file. The same sampler, over one process's rows, feeds data-parallel
SVI (:mod:`ppgen.inference.distributed`).

:func:`create_memmap` writes a ``.npy`` file chunk by chunk, for data produced in pieces.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ppgen.errors import DataError

__all__ = ["MemmapArray", "open_memmap", "create_memmap", "RowSampler"]


class MemmapArray:
    """The rows of an array on disk (a ``.npy`` file opened memory-mapped, or any ``np.memmap``),
    indexed like a tensor along its first axis.

    ``x[idx]`` (``idx`` a tensor or array of row indices, a slice or an int) reads those rows and
    returns a tensor on :attr:`device`; floating data comes out in :attr:`dtype` (default: torch's
    default dtype when read, as :func:`ppgen.fit` casts in-memory data), integers as int64.
    """

    def __init__(self, array: np.ndarray, device: torch.device | str = "cpu", dtype: torch.dtype | None = None):
        if array.ndim < 1:
            raise DataError(f"a streamed array needs at least one axis (its rows), got shape {array.shape}")
        if array.dtype.kind not in "fiub":
            raise DataError(f"a streamed array must be numeric, got dtype {array.dtype}")
        self.array, self.device, self._dtype = array, torch.device(device), dtype

    @property
    def shape(self) -> torch.Size:
        return torch.Size(self.array.shape)

    @property
    def dtype(self) -> torch.dtype:
        if self.array.dtype.kind == "f":
            return self._dtype or torch.get_default_dtype()
        return torch.bool if self.array.dtype.kind == "b" else torch.int64

    def dim(self) -> int:
        return self.array.ndim

    def __len__(self) -> int:
        return self.array.shape[0]

    def __repr__(self) -> str:
        return f"MemmapArray(shape={tuple(self.shape)}, dtype={self.dtype}, device={self.device})"

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "MemmapArray":
        """The same rows, delivered on ``device`` (and floats in ``dtype``); nothing is read."""
        return MemmapArray(self.array, self.device if device is None else device, dtype or self._dtype)

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        if isinstance(index, (slice, int, np.integer)):
            rows = np.asarray(self.array[index])
        else:
            index = np.asarray(index, dtype=np.int64).reshape(-1)
            order = np.argsort(index, kind="stable")  # read forward through the file, then restore the order
            rows = np.empty((len(index),) + self.array.shape[1:], dtype=self.array.dtype)
            rows[order] = self.array[index[order]]
        return torch.from_numpy(np.ascontiguousarray(rows)).to(device=self.device, dtype=self.dtype)

    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        """What ``pyro.subsample(x, event_dim)`` calls inside a subsampled plate (rows only)."""
        if dim not in (0, -self.dim()):
            raise DataError(f"a streamed array is subsampled along its rows (dim 0), not dim {dim}: "
                            f"give pyro.subsample event_dim={self.dim() - 1}")
        return self[index]


def open_memmap(path: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype | None = None) -> MemmapArray:
    """A ``.npy`` file as a :class:`MemmapArray` (opened read-only and memory-mapped: nothing is read)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {str(path)!r} does not exist")
    try:
        array = np.load(path, mmap_mode="r")
    except ValueError as e:
        raise DataError(f"data file {str(path)!r} is not a .npy array ({e})") from None
    return MemmapArray(array, device, dtype)


def create_memmap(path: str | Path, shape: tuple[int, ...], dtype=np.float32) -> np.memmap:
    """A new ``.npy`` file of ``shape``, memory-mapped for writing: fill it by slices
    (``out[i:j] = chunk``), ``flush()`` it, then read it with :func:`open_memmap`."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=tuple(shape))


class RowSampler:
    """Minibatches of row indices from ``range(start, stop)`` in shuffled epochs: each row once per
    epoch, every batch sorted. Shuffles use torch's global RNG, so ``pyro.set_rng_seed`` (and an
    SVI checkpoint) fixes them."""

    def __init__(self, start: int, stop: int):
        if not 0 <= start < stop:
            raise ValueError(f"a row sampler needs 0 <= start < stop, got {start}, {stop}")
        self.start, self.stop = start, stop
        self._order, self._pos = None, 0

    def __len__(self) -> int:
        return self.stop - self.start

    def rows(self, device) -> torch.Tensor:
        """Every row, in order."""
        return torch.arange(self.start, self.stop, device=device)

    def batch(self, size: int, device) -> torch.Tensor:
        """The next ``size`` rows of the current epoch (a new shuffle when it runs out), sorted."""
        if not 0 < size <= len(self):
            raise ValueError(f"a batch of {size} rows from {len(self)}")
        parts, need = [], size
        while need:
            if self._order is None or self._pos == len(self):
                self._order, self._pos = torch.randperm(len(self)), 0
            taken = self._order[self._pos: self._pos + need]
            parts.append(taken)
            self._pos, need = self._pos + len(taken), need - len(taken)
        return (torch.cat(parts).sort().values + self.start).to(device)
