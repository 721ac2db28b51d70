"""``FullData`` for NumPyro: every subsampled plate takes all its rows (MCMC needs the full potential),
the counterpart of :mod:`ppgen.handlers.full_data`.

Example:
    >>> import numpyro
    >>> def model():
    ...     with numpyro.plate("data", 1000, subsample_size=10) as idx:
    ...         return idx
    >>> len(FullData(model)())
    1000
"""
from __future__ import annotations

import jax.numpy as jnp
from numpyro.primitives import Messenger

__all__ = ["FullData"]


class FullData(Messenger):
    """Every subsampled plate takes all its rows."""

    def process_message(self, msg):
        if msg["type"] == "plate" and msg["args"][1] is not None:
            size = msg["args"][0]
            msg["args"] = (size, size)
            msg["value"] = jnp.arange(size)
