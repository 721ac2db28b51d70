"""Estimator conveniences on ppgen's model objects, bound to their classes here, at the front door.

The model files hold generative programs and what is closed-form about them (a Bayes net's CPTs and
conjugate counts, an HMM's forward algorithm, naive Bayes' conjugate update). What runs an engine lives
one layer up: exact queries by enumeration (:mod:`ppgen.inference.exact`), fits by any method
(:func:`ppgen.fit`), the SVI loop (:func:`ppgen.inference.svi.train`). Importing :mod:`ppgen` binds
them, so a user calls them as methods, scikit-learn style:

Example:
    >>> import ppgen
    >>> from ppgen.models.bayesnet import sprinkler
    >>> net = sprinkler()
    >>> round(float(net.query(["rain"], {"wet": 1})[1]), 4)   # p(rain | wet grass)
    0.3577
"""
from __future__ import annotations

import contextlib
from typing import Callable, Mapping, Sequence

import pyro
import pyro.distributions as dist
import torch

from ppgen.api import fit as run_fit
from ppgen.errors import ConfigError, DataError, NotApplicableError
from ppgen.inference import elimination
from ppgen.inference.exact import enumerated_trace, infer_values
from ppgen.inference.gibbs import gibbs
from ppgen.inference.likelihood_weighting import likelihood_weighting
from ppgen.inference.svi import train
from ppgen.models.autoencoder import Autoencoder, no_latents
from ppgen.models.bayesnet import BayesNet
from ppgen.models.density import DensityModel
from ppgen.models.hmm import HMM, hmm_model
from ppgen.models.logistic_regression import LogisticRegression
from ppgen.models.naive_bayes import NaiveBayes

__all__ = ["bound_to"]


def bound_to(cls: type, name: str, wrap: Callable | None = None) -> Callable:
    """Decorator: the function becomes method ``name`` of ``cls`` (``wrap``: e.g. ``classmethod``), and
    stays a plain function of this module too (``bayesnet_query(net, ...)`` is ``net.query(...)``)."""

    def bind(fn: Callable) -> Callable:
        method = wrap(fn) if wrap else fn
        setattr(cls, name, method)
        return fn

    return bind


# --- Bayes nets: exact queries by variable elimination, learning by conjugacy or any method


APPROXIMATE = {"likelihood-weighting": likelihood_weighting, "gibbs": gibbs}


@bound_to(BayesNet, "query")
def bayesnet_query(self, variables: Sequence[str], evidence: Mapping | None = None, *, method: str = "exact",
                   as_frame: bool = False, **options):
    """The posterior ``p(variables | evidence)``: a table with one axis per variable, in the order
    given, and states in the order of :attr:`states` (``net.states[v][i]`` names index ``i``).

    Evidence values are states by index or by name; a 1-D array of them per variable asks B queries at
    once (one contraction), and the table gets a leading axis of size B. ``as_frame=True``: a pandas
    DataFrame indexed by the state names (one column ``"p"``, or one per query of a batch).

    ``method="exact"``: variable elimination, planned once per pattern of queried and observed nodes
    (:mod:`ppgen.inference.elimination`). ``"likelihood-weighting"`` or ``"gibbs"`` (for nets too wide
    to eliminate; ``options`` such as ``num_samples`` and ``seed`` go to them): an
    :class:`~ppgen.inference.likelihood_weighting.Estimate` with the table, its standard errors and
    effective sample size (``as_frame``: columns ``"p"`` and ``"stderr"``).
    """
    if method in APPROXIMATE:
        estimate = APPROXIMATE[method](self, variables, evidence, **options)
        if not as_frame:
            return estimate
        frame = _frame(self, list(estimate.variables), estimate.probs, batched=False)
        frame["stderr"] = estimate.stderr.reshape(-1).cpu().numpy()
        return frame
    if method != "exact" or options:
        raise ConfigError(f"query's method is 'exact', 'likelihood-weighting' or 'gibbs', got {method!r}"
                          if method != "exact" else f"exact queries take no options; got {sorted(options)}")
    variables, evidence = self._query(variables, evidence)
    table = elimination.marginal(self, variables, evidence)
    batched = any(x.dim() for x in evidence.values())
    impossible = table.reshape(table.shape[0], -1).isnan().any(-1)
    if bool(impossible.any()):
        row = int(impossible.nonzero()[0])
        given = ", ".join(f"{v}={self.states[v][int(x[row] if x.dim() else x)]}" for v, x in evidence.items())
        raise DataError(f"the evidence {given} has probability 0 under the net"
                        + (f" (query {row} of the batch)" if batched else ""))
    table = table if batched else table[0]
    return _frame(self, list(variables), table, batched) if as_frame else table


def _frame(net: BayesNet, variables: list[str], table: torch.Tensor, batched: bool):
    import pandas as pd

    index = pd.MultiIndex.from_product([net.states[v] for v in variables], names=variables) if len(variables) > 1 \
        else pd.Index(net.states[variables[0]], name=variables[0])
    flat = table.reshape(table.shape[0], -1).T if batched else table.reshape(-1, 1)
    return pd.DataFrame(flat.cpu().numpy(), index=index, columns=range(table.shape[0]) if batched else ["p"])


@bound_to(BayesNet, "log_evidence")
def bayesnet_log_evidence(self, evidence: Mapping | None = None) -> torch.Tensor:
    """``log p(evidence)``, all other nodes summed out (0 for no evidence); ``(B,)`` for a batch."""
    evidence = self._evidence(evidence)
    if not evidence:
        return self.cpts[self.variables[0]].new_zeros(())
    out = elimination.log_evidence(self, evidence)
    return out if any(x.dim() for x in evidence.values()) else out[0]


@bound_to(BayesNet, "map")
def bayesnet_map(self, evidence: Mapping | None = None, *, as_names: bool = False) -> dict:
    """The most probable joint assignment of all unobserved nodes, ``argmax_z p(z | evidence)``, by
    max-product elimination and backtracking: ``{v: state index}`` (``as_names``: state names); for
    a batch of evidence, ``{v: (B,) indices}`` (``as_names``: lists of names)."""
    evidence = self._evidence(evidence)
    values, _ = elimination.max_product(self, evidence)
    batched = any(x.dim() for x in evidence.values())
    out = {}
    for v in self.variables:
        if v in evidence:
            continue
        x = values[v]
        if as_names:
            out[v] = [self.states[v][i] for i in x.tolist()] if batched else self.states[v][int(x[0])]
        else:
            out[v] = x if batched else int(x[0])
    return out


@bound_to(BayesNet, "sample")
def bayesnet_sample(self, n: int, evidence: Mapping[str, int] | None = None, seed: int | None = None) -> torch.Tensor:
    """``n`` exact draws from ``p(x | evidence)`` as an ``(n, num variables)`` long table (columns in
    :attr:`variables` order): ancestral sampling, or forward filtering / backward sampling given evidence."""
    evidence = self._evidence(evidence)
    with torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext():
        if seed is not None:
            torch.manual_seed(seed)
        values = infer_values(self.program, evidence, n, temperature=1, first_available_dim=-2)
    return torch.stack([evidence[v].expand(n) if v in evidence else values[v].reshape(n)
                        for v in self.variables], -1).to(device=self.device, dtype=torch.long)


@bound_to(BayesNet, "fit")
def bayesnet_fit(self, data, method: str = "auto", concentration: float = 1.0, **options) -> "BayesNet":
    """Learn the CPTs from a table with -1 for missing values; returns ``self``.

    ``method="exact"`` (complete data only): the conjugate posterior ``Dirichlet(concentration + counts)``
    in :attr:`posterior_`; the CPTs become its mean. ``"map"``, ``"svi"``, ``"nuts"``: :func:`ppgen.fit`
    on :meth:`learning_program` (missing values enumerated out; ``options`` go to it); the
    :class:`ppgen.results.Fit` is kept in :attr:`fit_` and the CPTs become the posterior mean
    (the MAP point for ``map``). ``"auto"``: exact when the table is complete, else ``map``.
    """
    x = self.table(data)
    complete = bool((x >= 0).all())
    if method == "auto":
        method = "exact" if complete else "map"
    if method == "exact":
        if not complete:
            raise NotApplicableError("the conjugate posterior needs complete data; the table has -1 entries "
                                     "(use method='map', 'svi' or 'nuts' to enumerate them out)")
        counts = self.counts(x)
        self.posterior_ = {v: dist.Dirichlet(concentration + counts[v]) for v in self.variables}
        self.cpts = {v: self.posterior_[v].mean for v in self.variables}
        return self
    if method == "map":
        options.setdefault("num_samples", 1)  # a point mass: one draw says it all
    with pyro.get_param_store().scope():  # fresh guide parameters for every fit
        self.fit_ = run_fit(self.learning_program, {"x": x, "concentration": concentration},
                            method=method, **options)
    for v in self.variables:
        mean = self.fit_.samples[f"cpt_{v}"].mean(0).to(self.cpts[v])
        self.cpts[v] = mean / mean.sum(-1, keepdim=True)
    return self


# --- HMMs: learning by any method (log evidence, Viterbi and marginals are closed-form, in models/hmm.py)


@bound_to(HMM, "fit", classmethod)
def hmm_fit(cls, y, num_states: int, method: str = "map", num_categories: int | None = None,
            concentration: float = 1.0, **options) -> "HMM":
    """Learn an HMM from sequences ``y`` with :func:`hmm_model` (categorical emissions for integer
    ``y``, Gaussian for floating ``y``) and :func:`ppgen.fit`; the result holds the posterior
    mean (the MAP point for ``map``) and the :class:`~ppgen.results.Fit` in ``fit_``."""
    y = torch.as_tensor(y)
    data = {"y": y, "num_states": num_states, "concentration": concentration}
    if not y.is_floating_point():
        data["num_categories"] = num_categories or int(y.max()) + 1
    if method == "map":
        options.setdefault("num_samples", 1)
    with pyro.get_param_store().scope():  # fresh guide parameters for every fit
        fitted = run_fit(hmm_model, data, method=method, **options)
    mean = {k: fitted.samples[k].mean(0) for k in ("initial", "transition", "emission", "loc", "scale")
            if k in fitted.samples}
    for k in ("initial", "transition", "emission"):  # rows of simplex draws average to a simplex
        if k in mean:
            mean[k] = mean[k] / mean[k].sum(-1, keepdim=True)
    hmm = cls(**mean, dtype=y.dtype if y.is_floating_point() else torch.float64, device=y.device)
    hmm.fit_ = fitted
    return hmm


# --- classifiers: Bayes' rule by enumeration; the discriminative model by any method


@bound_to(NaiveBayes, "predict_proba")
def naive_bayes_predict_proba(self, X) -> torch.Tensor:
    """Bayes' rule ``p(y | x, D) = p(y, x | D) / sum_y p(y, x | D)`` for every row, ``(n, C)``,
    with ``y`` enumerated in :meth:`predictive_program`; NaN features are marginalized."""
    x = self._features(X, allow_missing=True)
    trace = enumerated_trace(self.predictive_program, x, first_available_dim=-2)
    log_joint = trace.nodes["y"]["log_prob"] + trace.nodes["x"]["log_prob"]  # (C, n)
    return log_joint.softmax(0).T


@bound_to(LogisticRegression, "fit")
def logistic_regression_fit(self, X, y) -> "LogisticRegression":
    x = self._features(X)
    index = self._labels(y, x.shape[0]).to(x.device)
    self.n_features_, self._device = x.shape[1], x.device
    options = {"num_samples": 1 if self.method == "map" else 200, "progress": False, **self.options}
    with pyro.get_param_store().scope():  # fresh guide parameters for every fit
        self.fit_ = run_fit(self.model, {"x": x, "y": index, "num_classes": len(self.classes_)},
                            method=self.method, device=x.device, dtype=x.dtype, **options)
    self.coef_draws_ = self.fit_.samples["w"].to(x)  # (draws, d, C)
    self.intercept_draws_ = self.fit_.samples["b"].to(x)  # (draws, C)
    return self


# --- networks fit by maximum likelihood with the SVI loop


@bound_to(DensityModel, "fit")
def density_model_fit(self, x, *, steps: int = 1000, lr: float = 1e-3, batch_size: int | None = None,
                      seed: int | None = 0, progress: bool = False, **train_options) -> "DensityModel":
    """Maximum likelihood by :func:`ppgen.inference.svi.train` (minibatches of ``batch_size`` rows;
    ``train_options`` go to it). Returns ``self``; ``self.losses_`` holds the per-step loss as the
    negative log-likelihood per data point (nats).

    The objective is the model's own (:meth:`DensityModel.objective`: ``Trace_ELBO``'s numbers
    without its traces) unless ``train_options`` name an ``elbo`` or several particles."""
    x = self.check(x)
    if batch_size is not None and not 0 < batch_size <= x.shape[0]:
        raise ConfigError(f"batch_size must be in 1..{x.shape[0]} (the number of rows of x), got {batch_size}")
    if "elbo" not in train_options and train_options.get("num_particles", 1) == 1:
        train_options["elbo"] = self.objective() or "trace"
    losses = train(self.model, self.guide, {"x": x, "batch_size": batch_size}, steps=steps, lr=lr, seed=seed,
                   progress=progress, **train_options)
    self.losses_ = [loss / x.shape[0] for loss in losses]
    return self


@bound_to(Autoencoder, "fit")
def autoencoder_fit(self, x, steps: int = 2000, lr: float = 1e-2, batch_size: int | None = None,
                    seed: int | None = 0, progress: bool = False) -> "Autoencoder":
    """Minimize the mean loss on ``x`` (N, D) with Adam; ``self.losses_`` holds the per-step
    values (mean loss per data point)."""
    x = self._check(x)
    if batch_size is not None and not 0 < batch_size <= len(x):
        raise ValueError(f"batch_size must be in 1..{len(x)} (the number of rows of x), got {batch_size}")
    with pyro.get_param_store().scope():  # a store of its own: only this network's parameters
        losses = train(self.model, no_latents, {"x": x, "batch_size": batch_size}, steps=steps, lr=lr,
                       seed=seed, progress=progress)
    self.losses_ = [loss / len(x) for loss in losses]
    return self
