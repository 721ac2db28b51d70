"""``FullData``: every subsampled plate takes all its rows.

A program written for minibatch SVI (``with pyro.plate("data", N, subsample_size=200) as idx``)
fits on a new minibatch each step; MCMC, the pointwise log-likelihood (for LOO), the posterior
predictive and every summary need all N rows. Under this handler each such plate yields
``arange(N)`` with scale 1, and the program's own indexing (``x[idx]``) does the rest.

The size a plate was asked to subsample is checked against its indices inside ``pyro.plate``'s
constructor, before any handler sees a message, so the handler swaps that constructor step for
the duration of the block (and restores it after).

Example:
    >>> import pyro, torch
    >>> def model():
    ...     with pyro.plate("data", 1000, subsample_size=10) as idx:
    ...         return idx
    >>> len(model()), len(FullData()(model)())
    (10, 1000)
"""
from __future__ import annotations

from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import SubsampleMessenger

__all__ = ["FullData"]



class FullData(Messenger):
    """Subsampled plates take all their rows inside this handler; ``subsampled`` collects the names
    of the plates it widened."""

    def __init__(self):
        super().__init__()
        self.subsampled: set[str] = set()

    def __enter__(self):
        self._saved = SubsampleMessenger.__dict__["_subsample"]
        original = self._saved.__func__

        def all_rows(name, size=None, subsample_size=None, subsample=None, use_cuda=None, device=None):
            if subsample is None and size is not None and subsample_size is not None and subsample_size < size:
                self.subsampled.add(name)
                subsample_size = None  # the plate's index site then draws arange(size)
            return original(name, size, subsample_size, subsample, use_cuda, device)

        SubsampleMessenger._subsample = staticmethod(all_rows)
        return super().__enter__()

    def __exit__(self, *exc):
        SubsampleMessenger._subsample = self._saved
        return super().__exit__(*exc)
