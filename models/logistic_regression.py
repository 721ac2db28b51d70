"""Bayesian multinomial logistic regression (lecture 2): the discriminative counterpart of naive Bayes::

    W_jc, b_c ~ Normal(0, prior_scale)
    y_n | x_n ~ Categorical(softmax(x_n W + b))

Duplicate a feature and naive Bayes double-counts it; this model splits the weight between the copies.
"""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

from ppgen.models.classifier import Classifier

__all__ = ["LogisticRegression"]


class LogisticRegression(Classifier):
    """Bayesian multinomial logistic regression, the discriminative model:
    ``W_jc, b_c ~ Normal(0, prior_scale)``, ``y | x ~ Categorical(logits = x W + b)``.

    ``fit`` runs :func:`ppgen.fit` (``method`` "map", "svi" or "nuts"; ``options`` go to it; bound by
    :mod:`ppgen.estimators`); ``predict_proba`` averages ``softmax(x W + b)`` over the posterior draws.
    """

    def __init__(self, prior_scale: float = 1.0, method: str = "map", **options):
        self.prior_scale, self.method, self.options = prior_scale, method, options

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None, num_classes: int = 2):
        w = pyro.sample("w", dist.Normal(x.new_zeros(x.shape[1], num_classes), self.prior_scale).to_event(2))
        b = pyro.sample("b", dist.Normal(x.new_zeros(num_classes), self.prior_scale).to_event(1))
        with pyro.plate("rows", x.shape[0]):
            pyro.sample("y", dist.Categorical(logits=x @ w + b), obs=y)

    def predict_proba(self, X) -> torch.Tensor:
        x = self._features(X)
        logits = x @ self.coef_draws_ + self.intercept_draws_[:, None, :]  # (draws, n, C)
        return logits.softmax(-1).mean(0)
