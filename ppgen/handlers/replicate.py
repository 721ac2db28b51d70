"""``Replicate``: the named observed sites are sampled afresh from their distribution, as a posterior
(or prior) predictive needs. Only observed *sample* sites change: a deterministic site, which Pyro
also marks observed, keeps its value.

Example:
    >>> import torch, pyro, pyro.distributions as dist
    >>> def model(y):
    ...     return pyro.sample("y", dist.Normal(0., 1.), obs=y)
    >>> pyro.set_rng_seed(0)
    >>> bool(Replicate(["y"])(model)(torch.tensor(100.)) != 100.)
    True
"""
from __future__ import annotations

from pyro.poutine.messenger import Messenger

__all__ = ["Replicate"]


class Replicate(Messenger):
    """Sample the sites ``names`` instead of observing them (``infer["was_observed"]`` marks them)."""

    def __init__(self, names):
        super().__init__()
        self.names = set(names)

    def _pyro_sample(self, msg):
        if msg["name"] in self.names and msg["is_observed"]:
            msg["is_observed"] = False
            msg["infer"]["was_observed"] = True
            msg["value"] = None
            msg["done"] = False
