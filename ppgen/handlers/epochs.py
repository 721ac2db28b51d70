"""``epochs``: a subsampled plate draws its rows from shuffled passes over the data, each row once per
epoch and every batch sorted (reads go forward through a memory-mapped file), instead of Pyro's fresh
``randperm(N)`` at every step (see :mod:`ppgen.data.stream`).

Example:
    >>> import pyro
    >>> def model():
    ...     with pyro.plate("data", 6, subsample_size=3) as idx:
    ...         return idx
    >>> feed = epochs("data")
    >>> pyro.set_rng_seed(0)
    >>> sorted(feed(model)().tolist() + feed(model)().tolist())   # one epoch: every row once
    [0, 1, 2, 3, 4, 5]
"""
from __future__ import annotations

import pyro.poutine.subsample_messenger as subsample_messenger
import torch
from pyro.poutine.messenger import Messenger

from ppgen.data.stream import RowSampler
from ppgen.handlers import is_plate_index

__all__ = ["epochs"]


class _Subsample(subsample_messenger._Subsample):
    """Pyro's plate-index distribution with the indices drawn by a :class:`RowSampler`. (The class
    name is what Pyro checks to recognise a plate's index site: it must stay ``_Subsample``.)"""

    def __init__(self, base: subsample_messenger._Subsample, draw):
        super().__init__(base.size, base.subsample_size, device=base.device)
        self._draw = draw

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        if sample_shape:
            raise NotImplementedError
        return self._draw(self.size, self.subsample_size, self.device)


class epochs(Messenger):
    """Handler: the plate ``name`` draws its subsample from ``rows`` (default: all its rows) in
    shuffled epochs instead of from a fresh ``randperm`` at every step.

    Wrap the model and the guide with the same instance (``feed = epochs("data")``, then
    ``feed(model)``, ``feed(guide)``); Pyro replays the guide's indices in the model.
    """

    def __init__(self, name: str, rows: RowSampler | None = None):
        super().__init__()
        self.name, self.rows = name, rows

    def _pyro_sample(self, msg) -> None:
        if msg["name"] == self.name and is_plate_index(msg["fn"]) and msg["value"] is None:
            msg["fn"] = _Subsample(msg["fn"], self._draw)

    def _draw(self, size: int, subsample_size: int | None, device) -> torch.Tensor:
        if subsample_size is None or subsample_size >= size:
            return torch.arange(size, device=device)
        if self.rows is None or self.rows.stop > size:
            self.rows = RowSampler(0, size)
        return self.rows.batch(subsample_size, device)
