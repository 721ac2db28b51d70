"""Exact inference by enumeration, for models whose latents are all discrete.

With every latent z summed out by variable elimination (Pyro's ``TraceEnum_ELBO`` contracts the
factors with opt_einsum along the plates and ``pyro.markov`` chains, so the cost follows the graph,
not the joint):

- ``log_evidence`` = log sum_z p(x, z), exactly (an empty guide makes the ELBO equal to it);
- ``extras["marginals"]`` = p(z_i | x) for each latent site, as probability tables;
- ``extras["map"]`` = argmax_z p(z | x), the jointly most probable assignment (max-product);
- draws: ``num_samples`` joint posterior samples (forward-filter backward-sample).

A Bayes net (a registered network, or a :class:`~ppgen.models.bayesnet.BayesNet` given to
:func:`ppgen.fit`) runs on its CPT tensors instead, by planned variable elimination
(:mod:`ppgen.inference.elimination`): one cached plan per marginal, max-product for the MAP, and
exact draws by the chain rule, ``x_v ~ p(x_v | e, the nodes drawn before it)``, one batched query
per node over all draws.
"""
from __future__ import annotations

import time

import pyro.poutine as poutine
import torch
from pyro.infer import TraceEnum_ELBO

from ppgen import posterior
from ppgen.errors import NotApplicableError
from ppgen.inference import elimination, register
from ppgen.models.bayesnet import BayesNet
from ppgen.problem import Problem, RunConfig
from ppgen.results import Fit


def _empty_guide(**data):
    pass


@register("enum", family="exact")
def run_enum(problem: Problem, config: RunConfig) -> Fit:
    """Exact posterior marginals, MAP assignment and log evidence by enumerating discrete latents."""
    if isinstance(problem.instance, BayesNet):
        return _run_on_net(problem, config, problem.instance)
    continuous = problem.names("latent")
    if continuous:
        raise NotApplicableError(f"enum needs every latent to be discrete; model {problem.name!r} has continuous "
                                 f"latent(s) {', '.join(continuous)}: use nuts, svi or map "
                                 f"(they sum the discrete ones out)")
    elbo = TraceEnum_ELBO(max_plate_nesting=problem.max_plate_nesting)
    start = time.perf_counter()
    with torch.no_grad(), problem.placement(), poutine.block():
        log_evidence = -elbo.loss(problem.enum_model, _empty_guide, **problem.data) if problem.has_discrete else \
            float(poutine.trace(problem.model).get_trace(**problem.data).log_prob_sum())
        marginals = {k: d.probs if hasattr(d, "probs") else d
                     for k, d in elbo.compute_marginals(problem.enum_model, _empty_guide, **problem.data).items()} \
            if problem.has_discrete else {}
        draws = posterior.complete(problem, {}, num_draws=config.num_samples) if config.num_samples > 0 else {}
        best = posterior.complete(problem, {}, num_draws=1, temperature=0)
    seconds = time.perf_counter() - start
    return Fit(method=config.method, model_name=problem.name, chains={k: v.unsqueeze(0) for k, v in draws.items()},
               seconds=seconds, log_evidence=float(log_evidence), problem=problem,
               extras={"marginals": marginals, "map": {k: v[0] for k, v in best.items()}})


def _run_on_net(problem: Problem, config: RunConfig, net: BayesNet) -> Fit:
    evidence = net._evidence({k: v for k, v in problem.data.items() if k in net.cards})
    free = [v for v in net.variables if v not in evidence]
    generator = torch.Generator(net.device).manual_seed(config.seed)
    start = time.perf_counter()
    marginals = {v: elimination.marginal(net, [v], evidence)[0] for v in free}
    log_evidence = float(elimination.log_evidence(net, evidence)[0]) if evidence else 0.0
    best, _ = elimination.max_product(net, evidence)
    draws = _chain_rule_draws(net, evidence, free, config.num_samples, generator) if config.num_samples > 0 else {}
    return Fit(method=config.method, model_name=problem.name, chains={k: v.unsqueeze(0) for k, v in draws.items()},
               seconds=time.perf_counter() - start, log_evidence=log_evidence, problem=problem,
               extras={"marginals": marginals, "map": {v: best[v][0] for v in free}})


def _chain_rule_draws(net: BayesNet, evidence: dict, free: list, n: int, generator) -> dict:
    """``n`` exact joint draws of the ``free`` nodes given ``evidence``: each node from its posterior
    given the evidence and the nodes drawn before it, all ``n`` draws as one batch."""
    given = {v: x.expand(n) for v, x in evidence.items()}
    for v in free:
        probs = elimination.marginal(net, [v], given)  # (n, card)
        given[v] = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    return {v: given[v] for v in free}
