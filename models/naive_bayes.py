"""Naive Bayes (lecture 2): a generative classifier, beside its discriminative counterpart.

The generative story, for C classes and d features::

    pi    ~ Dirichlet(class_concentration)           class frequencies, (C,)
    theta ~ conjugate prior                          per-class feature parameters, (C, d, ...)
    y_n   ~ Categorical(pi)
    x_nj  ~ p(x_j | theta_{y_n, j})                  features independent given the class

The graphical model::

     pi        +---------------+
      |        |  theta_cj     |  C x d
      |        +-------|-------+
    +-|----------------|--------------+
    | y_n ------> x_nj  (j = 1..d)    |  N
    +---------------------------------+

with Bernoulli (Beta prior), categorical (Dirichlet prior) or Gaussian (Normal-Gamma prior) features.
``fit`` is the conjugate update; a new point is classified by Bayes' rule with the parameters
integrated out, ``p(y | x, D) ∝ p(y | D) prod_j p(x_j | y, D)``, computed by enumerating ``y`` in
:meth:`NaiveBayes.predictive_program` (``predict_proba``, bound by :mod:`ppgen.estimators`). A missing
feature (NaN) is simply left out of the product: only a generative model can marginalize an input.

With Beta(alpha, alpha) priors the predictive feature probabilities ``(N_cj + alpha) / (N_c + 2 alpha)``
are exactly scikit-learn's smoothed estimates (``BernoulliNB(alpha)``; ``CategoricalNB(alpha)`` likewise).

Naive Bayes double-counts correlated features (duplicate one and it becomes overconfident);
:class:`~ppgen.models.logistic_regression.LogisticRegression`, ``p(y | x) = softmax(W x + b)`` with a
Gaussian prior, splits the weight between the copies. With little data the generative model's stronger
assumptions can win.
"""
from __future__ import annotations

import contextlib

import pyro
import pyro.distributions as dist
import torch
from pyro.ops.indexing import Vindex

from ppgen.errors import DataError
from ppgen.models.classifier import Classifier

__all__ = ["NaiveBayes", "BernoulliNaiveBayes", "CategoricalNaiveBayes", "GaussianNaiveBayes"]

ENUM = {"enumerate": "parallel"}


class NaiveBayes(Classifier):
    """The shared machinery; subclasses give the feature prior, its conjugate update and predictive."""

    def __init__(self, class_concentration: float = 1.0):
        self.class_concentration = class_concentration

    # ---- the generative story -------------------------------------------------------------
    def model(self, x: torch.Tensor, y: torch.Tensor | None = None, num_classes: int | None = None):
        """The Bayesian program: parameters from their priors, then every row's class (enumerated
        where ``y`` is None) and features."""
        num_classes = num_classes or int(y.max()) + 1
        pi = pyro.sample("pi", dist.Dirichlet(x.new_full((num_classes,), self.class_concentration)))
        theta = self._sample_parameters(num_classes, x)
        with pyro.plate("rows", x.shape[0]):
            label = pyro.sample("y", dist.Categorical(pi), obs=y, infer=ENUM)
            pyro.sample("x", self._likelihood(theta, label).to_event(1), obs=x)

    def predictive_program(self, x: torch.Tensor | None = None, num_rows: int | None = None):
        """The fitted model with its parameters integrated out: ``y ~ p(y | D)``, ``x | y ~ prod_j p(x_j | y, D)``.
        ``x`` given: the class is enumerated and NaN features left out; else ``num_rows`` rows are drawn."""
        observed = None if x is None else ~torch.isnan(x)
        with pyro.plate("rows", num_rows if x is None else x.shape[0]):
            label = pyro.sample("y", dist.Categorical(self.class_probs_), infer=ENUM)
            features = self._predictive(label)
            if x is not None:
                features = features.mask(observed)
                x = x.nan_to_num(0.0)
            return label, pyro.sample("x", features.to_event(1), obs=x)

    # ---- scikit-learn interface -----------------------------------------------------------
    def fit(self, X, y) -> "NaiveBayes":
        """The conjugate posterior given labelled rows; returns ``self``."""
        x = self._features(X)
        self._check_support(x)
        index = self._labels(y, x.shape[0]).to(x.device)
        onehot = torch.nn.functional.one_hot(index, len(self.classes_)).to(x)  # (n, C)
        self.n_features_ = x.shape[1]
        self._device = x.device
        self.class_count_ = onehot.sum(0)
        self.posterior_ = {"pi": dist.Dirichlet(self.class_concentration + self.class_count_)}
        self.posterior_.update(self._update(x, onehot))
        self.class_probs_ = self.posterior_["pi"].mean
        return self

    def sample(self, n: int, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` new labelled rows ``(X, y)`` from the posterior predictive distribution."""
        with torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext():
            if seed is not None:
                torch.manual_seed(seed)
            label, x = self.predictive_program(num_rows=n)
        return x, self.classes_.to(self._device)[label]

    # ---- the family-specific parts ----------------------------------------------------------
    def _check_support(self, x: torch.Tensor) -> None:
        pass

    def _sample_parameters(self, num_classes: int, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _likelihood(self, theta: dict, label: torch.Tensor) -> dist.Distribution:
        raise NotImplementedError

    def _update(self, x: torch.Tensor, onehot: torch.Tensor) -> dict[str, dist.Distribution]:
        raise NotImplementedError

    def _predictive(self, label: torch.Tensor) -> dist.Distribution:
        raise NotImplementedError


class BernoulliNaiveBayes(NaiveBayes):
    """Binary features: ``theta_cj ~ Beta(alpha, alpha)``, ``x_j | y=c ~ Bernoulli(theta_cj)``."""

    def __init__(self, alpha: float = 1.0, class_concentration: float = 1.0):
        super().__init__(class_concentration)
        self.alpha = alpha

    def _check_support(self, x):
        if not bool(((x == 0) | (x == 1)).all()):
            raise DataError("BernoulliNaiveBayes needs binary features (0 or 1); binarize X first")

    def _sample_parameters(self, num_classes, x):  # theta: (C, d)
        alpha = x.new_full((num_classes, x.shape[1]), self.alpha)
        return {"theta": pyro.sample("theta", dist.Beta(alpha, alpha).to_event(2))}

    def _likelihood(self, theta, label):
        return dist.Bernoulli(probs=Vindex(theta["theta"])[..., label, :])

    def _update(self, x, onehot):
        ones = onehot.T @ x  # (C, d): N_cj, rows of class c with feature j on
        return {"theta": dist.Beta(self.alpha + ones, self.alpha + self.class_count_[:, None] - ones)}

    def _predictive(self, label):
        return dist.Bernoulli(probs=self.posterior_["theta"].mean[label])


class CategoricalNaiveBayes(NaiveBayes):
    """Features with ``num_categories`` values 0..K-1: ``theta_cj ~ Dirichlet(alpha)``,
    ``x_j | y=c ~ Categorical(theta_cj)`` (K: ``num_categories`` or the largest value seen + 1)."""

    def __init__(self, alpha: float = 1.0, class_concentration: float = 1.0, num_categories: int | None = None):
        super().__init__(class_concentration)
        self.alpha = alpha
        self.num_categories = num_categories

    def _check_support(self, x):
        if bool((x < 0).any()) or bool((x != x.round()).any()):
            raise DataError("CategoricalNaiveBayes needs integer category codes 0..K-1 in X")
        self.num_categories_ = max(int(x.max()) + 1, self.num_categories or 0)

    def _sample_parameters(self, num_classes, x):  # theta: (C, d, K)
        k = self.num_categories or int(x.max()) + 1
        alpha = x.new_full((num_classes, x.shape[1], k), self.alpha)
        return {"theta": pyro.sample("theta", dist.Dirichlet(alpha).to_event(2))}

    def _likelihood(self, theta, label):
        return dist.Categorical(probs=Vindex(theta["theta"])[..., label, :, :])

    def _update(self, x, onehot):
        levels = torch.nn.functional.one_hot(x.long(), self.num_categories_).to(x)  # (n, d, K)
        counts = torch.einsum("nc,ndk->cdk", onehot, levels)
        return {"theta": dist.Dirichlet(self.alpha + counts)}

    def _predictive(self, label):
        return dist.Categorical(probs=self.posterior_["theta"].mean[label])


class GaussianNaiveBayes(NaiveBayes):
    """Real features with a Normal-Gamma prior per class and feature:
    ``tau ~ Gamma(shape, rate)``, ``mu | tau ~ Normal(loc, 1 / sqrt(kappa tau))``,
    ``x_j | y=c ~ Normal(mu, 1 / sqrt(tau))``.
    The predictive of a feature is a Student t with ``2 shape_n`` degrees of freedom."""

    def __init__(self, loc: float = 0.0, kappa: float = 1.0, shape: float = 1.0, rate: float = 1.0,
                 class_concentration: float = 1.0):
        super().__init__(class_concentration)
        self.loc, self.kappa, self.shape, self.rate = loc, kappa, shape, rate

    def _sample_parameters(self, num_classes, x):  # precision, mu: (C, d)
        shape = x.new_full((num_classes, x.shape[1]), self.shape)
        precision = pyro.sample("precision", dist.Gamma(shape, self.rate).to_event(2))
        mu = pyro.sample("mu", dist.Normal(self.loc, (self.kappa * precision).rsqrt()).to_event(2))
        return {"precision": precision, "mu": mu}

    def _likelihood(self, theta, label):
        return dist.Normal(Vindex(theta["mu"])[..., label, :], Vindex(theta["precision"])[..., label, :].rsqrt())

    def _update(self, x, onehot):
        n = self.class_count_[:, None]  # (C, 1)
        mean = (onehot.T @ x) / n.clamp(min=1)  # (C, d)
        squares = onehot.T @ x**2 - n * mean**2  # sum over the class of (x - mean)^2
        self.kappa_ = self.kappa + n
        self.loc_ = (self.kappa * self.loc + n * mean) / self.kappa_
        self.shape_ = self.shape + n / 2
        self.rate_ = self.rate + squares.clamp(min=0) / 2 + self.kappa * n * (mean - self.loc) ** 2 / (2 * self.kappa_)
        return {"precision": dist.Gamma(self.shape_.expand_as(mean), self.rate_)}

    def _predictive(self, label):
        scale = (self.rate_ * (self.kappa_ + 1) / (self.shape_ * self.kappa_)).sqrt()
        df = (2 * self.shape_).expand_as(scale)
        return dist.StudentT(df[label], self.loc_[label], scale[label])
