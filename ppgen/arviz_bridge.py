"""ppgen's own converter to ArviZ, built on ``az.from_dict`` (present in ArviZ 0.x and 1.x).

ArviZ 1.x has no ``from_pyro`` and 0.x's drops deterministic sites and files them as
log-likelihood. Here every group is built from the model program itself:

- ``posterior``: every latent, discrete and deterministic site, ``(chain, draw, *shape)``;
- ``log_likelihood``: pointwise, one array per observed site (so ``az.loo(idata)`` needs no
  ``var_name`` for a model with one likelihood);
- ``posterior_predictive``: replicated data per observed site; ``observed_data``: the data;
- ``sample_stats``: divergences, acceptance, energy, ... where the engine reports them;
- dims named after the plates around each site.
"""
from __future__ import annotations

import inspect
import warnings

import numpy as np
import torch

from ppgen import posterior as post
from ppgen.errors import record_failure
from ppgen.problem import Problem

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # ArviZ 0.23 announces its 1.0 refactor on import
    import arviz as az


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _by_chain(flat: dict, chains: int) -> dict:
    return {k: _np(v).reshape((chains, -1) + tuple(v.shape[1:])) for k, v in flat.items()}


def from_dict(groups: dict, dims: dict, attrs: dict | None = None):
    """``az.from_dict`` across ArviZ lines: 0.x takes one keyword per group, 1.x one dict of groups."""
    groups = {k: v for k, v in groups.items() if v}
    if "posterior" in inspect.signature(az.from_dict).parameters:
        return az.from_dict(**groups, dims=dims, attrs=attrs)
    return az.from_dict(groups, dims=dims, attrs=attrs)  # ArviZ >= 1.0 (DataTree)


def to_inference_data(problem: Problem, chains: dict, sample_stats: dict | None = None,
                      log_likelihood: bool = True, predictive: bool = True, attrs: dict | None = None,
                      errors: dict | None = None, groups: dict | None = None):
    """An ``InferenceData`` from draws grouped by chain, ``{site: (chain, draw, *shape)}``.

    A group that cannot be computed (the program fails on re-evaluation) is left out with a
    warning, and ``errors[group]`` says why: the posterior itself is never lost. ``groups`` adds
    ready-made groups (``prior``, ``prior_predictive``, ``predictions``: ``{site: (chain, draw, ...)}``).
    """
    errors = {} if errors is None else errors
    n_chains = next(iter(chains.values())).shape[0] if chains else 1
    flat = {k: v.reshape((-1,) + tuple(v.shape[2:])) for k, v in chains.items()}
    dims = {name: info.dim_names() for name, info in problem.sites.items()}
    groups = {"posterior": _by_chain(flat, n_chains),
              "sample_stats": {k: _np(v) for k, v in (sample_stats or {}).items()},
              **{k: {n: _np(v) for n, v in g.items()} for k, g in (groups or {}).items()}}
    observed = problem.names("observed")
    latent = set(problem.names("latent", "discrete"))
    if observed and flat and latent <= set(flat):
        if log_likelihood:
            groups["log_likelihood"] = _attempt("log_likelihood", errors, lambda: _by_chain(
                post.pointwise_log_likelihood(problem, flat), n_chains))
        if predictive:
            groups["posterior_predictive"] = _attempt("posterior_predictive", errors, lambda: _by_chain(
                post.posterior_predictive(problem, flat), n_chains))
    if observed:
        groups["observed_data"] = {name: _np(problem.observed[name]) for name in observed}
    for name in observed:  # one dims entry serves all groups only where the site has no event dims
        if problem.sites[name].event_dim:
            dims.pop(name)
    return from_dict(groups, dims=_dims_for(groups, dims), attrs=attrs)


def _attempt(group: str, errors: dict, compute):
    try:
        return compute()
    except Exception as e:  # noqa: BLE001 - whatever the program raises, the other groups are kept
        record_failure(errors, group, e, f"ArviZ group {group!r} left out")
        return {}


def _dims_for(groups: dict, dims: dict) -> dict:
    names = {k for g in groups.values() for k in g}
    return {k: v for k, v in dims.items() if k in names}
