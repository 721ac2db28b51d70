r"""``DensityModel``: the base of every model with an exact log-likelihood and no latent variables
(the autoregressive models, the normalizing flows).

A subclass gives :meth:`DensityModel.distribution`, a distribution over vectors of ``features``
numbers; the base turns it into a Pyro program (one vectorized site, ``obs=x``, on a minibatch of
the ``"data"`` plate) with an empty guide, so the ELBO *is* :math:`\log p_\theta(x)` and SVI is
maximum likelihood (``model.fit(x)``, bound at the front door by :mod:`ppgen.estimators`), plus
scikit-learn's ``log_prob`` / ``score`` / ``sample``.
"""
from __future__ import annotations

import itertools

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ppgen.errors import ConfigError, DataError

__all__ = ["DensityModel"]

_counter = itertools.count()


class DensityModel(nn.Module):
    r"""A density :math:`p_\theta(x)` over vectors of ``features`` numbers with an exact log-likelihood.

    Subclasses give :meth:`distribution` (a Pyro distribution with event shape ``(features,)``).
    This class adds the Pyro program, maximum-likelihood fitting through ppgen's training loop and
    scikit-learn-style ``log_prob`` / ``score`` / ``sample`` on validated inputs.
    """

    features: int
    support_name = "real vectors"

    def __init__(self, features: int, name: str | None = None):
        super().__init__()
        if not isinstance(features, int) or features < 1:
            raise ConfigError(f"features must be a positive integer, got {features!r}")
        self.features = features
        self.name = name or f"{type(self).__name__.lower()}{next(_counter)}"

    def distribution(self) -> dist.TorchDistribution:
        raise NotImplementedError

    # --- the Pyro program -------------------------------------------------------------------
    def model(self, x: torch.Tensor, batch_size: int | None = None) -> None:
        """Every row of ``x`` (N, features) is an observation of the site ``"x"``."""
        pyro.module(self.name, self)
        with pyro.plate("data", x.shape[0], subsample_size=batch_size, device=x.device) as idx:
            pyro.sample("x", self.distribution(), obs=x[idx] if batch_size else x)

    def guide(self, x: torch.Tensor, batch_size: int | None = None) -> None:
        """No latent variables: the guide only draws the minibatch (replayed in :meth:`model`)."""
        with pyro.plate("data", x.shape[0], subsample_size=batch_size, device=x.device):
            pass

    # --- scikit-learn style -----------------------------------------------------------------
    def log_prob(self, x) -> torch.Tensor:
        """:math:`\\log p_\\theta(x)` per row of ``x`` (nats)."""
        return self.distribution().log_prob(self.check(x))

    @torch.no_grad()
    def score(self, x) -> float:
        """Mean log-likelihood per data point (nats); the test NLL is ``-score(x_test)``."""
        return float(self.log_prob(x).mean())

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """``n`` independent draws, shape ``(n, features)``."""
        return self.distribution().sample((n,))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def check(self, x) -> torch.Tensor:
        """``x`` as a ``(n, features)`` tensor on this model's device and dtype, or a :class:`DataError`."""
        like = next(itertools.chain(self.parameters(), self.buffers()))
        x = torch.as_tensor(x, device=like.device, dtype=like.dtype)
        if x.ndim != 2 or x.shape[1] != self.features:
            raise DataError(f"site 'x': {type(self).__name__} models {self.features}-dimensional {self.support_name}, "
                            f"so x must have shape (n, {self.features}); got shape {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise DataError(f"site 'x': x has NaN/inf values "
                            f"(first at row {int((~torch.isfinite(x)).any(1).nonzero()[0])})")
        return x
