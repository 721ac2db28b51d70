r"""``DensityModel``: the base of every model with an exact log-likelihood and no latent variables
(the autoregressive models, the normalizing flows).

A subclass gives :meth:`DensityModel.distribution`, a distribution over vectors of ``features``
numbers; the base turns it into a Pyro program (one vectorized site, ``obs=x``, on a minibatch of
the ``"data"`` plate) with an empty guide, so the ELBO *is* :math:`\log p_\theta(x)` and SVI is
maximum likelihood (``model.fit(x)``, bound at the front door by :mod:`ppgen.estimators`), plus
scikit-learn's ``log_prob`` / ``score`` / ``sample``.

``model.fit`` computes that objective directly (:class:`ExactLikelihood`): the numbers Pyro's
``Trace_ELBO`` gets from tracing the program and its empty guide, the same minibatch drawn the same
way, without the traces (on small networks their bookkeeping costs a tenth to a third of a step).
"""
from __future__ import annotations

import itertools

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ppgen.errors import ConfigError, DataError
from ppgen.nets import ModuleParams

__all__ = ["DensityModel", "ExactLikelihood"]

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

    def objective(self) -> ExactLikelihood | None:
        """The direct objective of :meth:`model` and :meth:`guide` (``None`` where a subclass replaces
        either program, whose objective is then only known to Pyro's ELBO)."""
        cls = type(self)
        if cls.model is DensityModel.model and cls.guide is DensityModel.guide:
            return ExactLikelihood(self)
        return None

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


class ExactLikelihood:
    r"""The maximum-likelihood objective of a :class:`DensityModel`'s program, for ppgen's training
    loop (it takes the place of a Pyro ELBO: ``loss_and_grads(model, guide, **data)``).

    With no latent variables the ELBO of :meth:`DensityModel.model` and its empty guide is the
    log-likelihood of the minibatch scaled to the data, :math:`\frac{N}{B} \sum_{i \in b} \log p_\theta(x_i)`,
    and this is how ``Trace_ELBO`` computes it: the ``"data"`` plate draws ``randperm(N)[:B]`` (all
    rows, no draw, without ``batch_size``), the site's ``log_prob`` is scaled by ``N / B`` and
    summed, the loss is its negative and its gradient the negative scaled sum's. The same operations
    on the same tensors here give the same loss, gradients and random draws, bit for bit on the CPU
    (``tests/test_svi_overheads.py``), without tracing two programs, replaying one into the other and
    copying both traces at every step. The parameters are registered as the program registers them,
    so the loop sees and steps the same tensors under the same names (:class:`~ppgen.nets.ModuleParams`).
    """

    def __init__(self, density: DensityModel):
        self.density = density
        self.registered = ModuleParams((density.name, density))  # as the program registers the network

    def loss_and_grads(self, model, guide, x: torch.Tensor, batch_size: int | None = None) -> float:
        d = self.density
        if model != d.model or guide != d.guide:
            raise ValueError(f"this objective is {d.name!r}'s own: it trains {d.name}.model and {d.name}.guide only")
        self.registered.register()
        n = x.shape[0]
        if batch_size is None or batch_size >= n:  # the plate's whole-data case: every row, weight 1
            log_p = d.distribution().log_prob(x)
        else:
            idx = torch.randperm(n, device=x.device)[:batch_size].clone()
            log_p = d.distribution().log_prob(x[idx]) * (1.0 * n / batch_size)
        total = log_p.sum()
        (-total).backward()
        return -total.item()
