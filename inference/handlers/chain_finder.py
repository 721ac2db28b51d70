"""``ChainFinder``: runs a diffusion model only up to its :func:`~ppgen.models.diffusion.chain_start`
effect and hands over what the closed-form diffusion ELBO needs there (the chain, the minibatch
``x0`` and the plate's scale), by raising :class:`ChainReached`.

Example::

    try:
        with ChainFinder():
            chain.model(x)
    except ChainReached as reached:
        reached.chain, reached.x0, reached.scale
"""
from __future__ import annotations

from pyro.poutine.messenger import Messenger

__all__ = ["ChainFinder", "ChainReached"]


class ChainReached(Exception):
    """The model reached its latent chain: ``chain``, the minibatch ``x0`` and its ``scale``."""

    def __init__(self, chain, x0, scale):
        super().__init__("the model reached its latent chain")
        self.chain, self.x0, self.scale = chain, x0, scale


class ChainFinder(Messenger):
    """Stops the model at its ``latent_chain`` effect (:func:`~ppgen.models.diffusion.chain_start`)."""

    def _pyro_latent_chain(self, msg):
        raise ChainReached(*msg["args"], msg["scale"])
