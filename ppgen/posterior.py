"""Everything computed from posterior draws by re-running the model, vectorized over draws.

Each function takes flat draws ``{site: (N, *shape)}`` of the continuous latents and runs the model
once under a ``pyro.plate`` of size N placed left of all the model's plates (as
:class:`pyro.infer.Predictive` does), so the cost is one model evaluation, not N.

- :func:`complete` adds deterministic sites and samples discrete latents from their exact
  conditional posterior given the draws (``infer_discrete``), so every engine reports every site;
- :func:`pointwise_log_likelihood` gives ``log p(y_i | draw)`` per observed site and data point,
  with local discrete latents summed out;
- :func:`posterior_predictive` draws replicated data for every observed site.
"""
from __future__ import annotations

import math

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import infer_discrete
from pyro.poutine.messenger import Messenger

from ppgen.problem import Problem

_DRAWS = "_ppgen_draws"


def _num_draws(draws: dict) -> int:
    sizes = {v.shape[0] for v in draws.values()}
    if len(sizes) > 1:
        raise ValueError(f"draws disagree on their number: {sorted(sizes)}")
    return sizes.pop() if sizes else 1


def _vectorized(problem: Problem, model, draws: dict, n: int):
    """``model`` under an N-plate left of its plates, conditioned on ``draws`` reshaped to fit."""
    mpn = problem.max_plate_nesting
    reshaped = {}
    for name, value in draws.items():
        info = problem.sites[name]
        batch_ndim = len(info.shape) - info.event_dim
        reshaped[name] = value.reshape((n,) + (1,) * (mpn - batch_ndim) + tuple(info.shape))

    def vectorized_model(**data):
        with pyro.plate(_DRAWS, n, dim=-mpn - 1):
            return model(**data)

    return poutine.condition(vectorized_model, reshaped)


def _flatten(value: torch.Tensor, n: int, info_shape: tuple, pad: int) -> torch.Tensor:
    """A vectorized value, shaped ``(n, *[1] * pad, *info_shape)`` up to broadcasting, as ``(n, *info_shape)``."""
    full = (n,) + tuple(info_shape)
    if value.numel() == math.prod(full):
        return value.reshape(full)
    return value.expand((n,) + (1,) * pad + tuple(info_shape)).reshape(full)


def _pad(problem: Problem, name: str) -> int:
    info = problem.sites[name]
    return max(problem.max_plate_nesting - (len(info.shape) - info.event_dim), 0)


def complete(problem: Problem, draws: dict, temperature: int = 1, num_draws: int | None = None) -> dict:
    """Draws of every latent, discrete and deterministic site, from draws of the continuous latents.

    With ``temperature=0`` discrete sites take their jointly most probable values (MAP). For a model
    with no continuous latents, ``draws`` is empty and ``num_draws`` says how many to make.
    """
    n = _num_draws(draws) if draws else num_draws
    wanted = problem.names("latent", "discrete", "deterministic")
    if set(wanted) <= set(draws):
        return dict(draws)
    model = _vectorized(problem, problem.enum_model, draws, n)
    if problem.has_discrete:
        model = infer_discrete(model, first_available_dim=-problem.max_plate_nesting - 2, temperature=temperature)
    with torch.no_grad(), problem.placement(), poutine.block():
        tr = poutine.trace(model).get_trace(**problem.data)
    return {name: _flatten(tr.nodes[name]["value"], n, problem.sites[name].shape, _pad(problem, name)) for name in wanted}


def pointwise_log_likelihood(problem: Problem, draws: dict) -> dict:
    """``{observed site: (N, *batch_shape)}``: the log-likelihood of each data point under each draw.

    Discrete latents are enumerated and summed out of each observed site's term (exact for local
    latents such as mixture assignments; chains of discrete latents are not factorized per point).
    """
    n = _num_draws(draws)
    mpn = problem.max_plate_nesting
    continuous = {k: v for k, v in draws.items() if problem.sites[k].kind == "latent"}
    model = _vectorized(problem, problem.enum_model, continuous, n)
    if problem.has_discrete:
        model = poutine.enum(model, first_available_dim=-mpn - 2)
    with torch.no_grad(), problem.placement(), poutine.block():
        tr = poutine.trace(model).get_trace(**problem.data)
        tr.compute_log_prob()
    discrete = [tr.nodes[name]["log_prob"] for name in problem.names("discrete")]
    out = {}
    for name in problem.names("observed"):
        lp = tr.nodes[name]["log_prob"]
        if discrete:
            lp = sum((d for d in discrete if _enum_dims(d, mpn) & _enum_dims(lp, mpn)), lp)
            while lp.dim() > mpn + 1:
                lp = lp.logsumexp(0)
        info = problem.sites[name]
        out[name] = _flatten(lp, n, info.shape[: len(info.shape) - info.event_dim], _pad(problem, name))
    return out


def _enum_dims(t: torch.Tensor, mpn: int) -> set[int]:
    """The enumeration dims (left of the draws plate) along which ``t`` varies."""
    return {d for d in range(-t.dim(), -mpn - 1) if t.shape[d] > 1}


def posterior_predictive(problem: Problem, draws: dict) -> dict:
    """``{observed site: (N, *shape)}``: replicated data, one set per draw."""
    n = _num_draws(draws)
    continuous = {k: v for k, v in draws.items() if problem.sites[k].kind in ("latent", "discrete")}
    model = _vectorized(problem, _Replicate(problem.names("observed"))(problem.model), continuous, n)
    with torch.no_grad(), problem.placement(), poutine.block():
        tr = poutine.trace(model).get_trace(**problem.data)
    return {name: _flatten(tr.nodes[name]["value"], n, problem.sites[name].shape, _pad(problem, name))
            for name in problem.names("observed")}


class _Replicate(Messenger):
    """Sample the named observed sites afresh from their distribution (only those: a deterministic
    site, also "observed" in Pyro's trace, keeps its value)."""

    def __init__(self, names):
        super().__init__()
        self.names = set(names)

    def _pyro_sample(self, msg):
        if msg["name"] in self.names and msg["is_observed"]:
            msg["is_observed"] = False
            msg["infer"]["was_observed"] = True
            msg["value"] = None
            msg["done"] = False
