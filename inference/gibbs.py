r"""Gibbs sampling on a discrete Bayes net, for queries too big to eliminate exactly.

A systematic scan visits the free (non-evidence) nodes in topological order and draws each from its
full conditional, which only involves its Markov blanket (parents, children, children's parents):

    p(x_v | x_-v, e)  ∝  p(x_v | x_pa(v)) * prod_{c : v in pa(c)} p(x_c | x_pa(c)).

Per node the factors are precomputed as log-CPTs with ``v``'s axis moved last, so one sweep is a
few gathers per node, vectorized over the chains. Each chain starts from a likelihood-weighted
forward sample (:mod:`~ppgen.inference.likelihood_weighting`) resampled by its weight, so it starts
where ``p(x, e) > 0``; a Gibbs move never leaves that set.

The error of a cell ``c`` of the query table comes from the draws themselves: with
``p_c = mean of f_t = 1[x^(t)_Q = c]`` over all chains and draws, and ``ESS_c`` ArviZ's effective
sample size of the indicator series ``f`` (``method="mean"``, from its autocorrelation within and
across chains),

    se_c = sqrt(p_c (1 - p_c) / ESS_c),

with the rank-normalized split r_hat of ``f`` to say whether the chains agree. A cell no chain
visited has ``p_c = 0`` and ``se_c = 0``: no error seen, which is not the same as none.

Gibbs sampling is ergodic only when the chain can move between every pair of states of positive
probability one node at a time. Deterministic CPTs (rows with zeros, e.g. an OR or XOR node) can
cut the states consistent with the evidence into islands that single-node moves cannot cross; the
chains then stay where they started, and the estimate is wrong however long they run. Several
chains with r_hat can reveal it (each chain stuck on its own island), not cure it: use likelihood
weighting or exact elimination there.

    >>> from ppgen.models.bayesnet import sprinkler
    >>> est = gibbs(sprinkler(), ["rain"], {"wet": 1}, num_samples=5000, seed=0)
    >>> bool(abs(est.probs[1] - 0.3577) < 5 * est.stderr[1])
    True
"""
from __future__ import annotations

import math
import time
import warnings
from typing import Mapping, Sequence

import numpy as np
import torch

from ppgen.diagnose import SAMPLE_STATS
from ppgen.errors import ConfigError
from ppgen.inference import likelihood_weighting as lw
from ppgen.inference import register
from ppgen.models.bayesnet import BayesNet
from ppgen.problem import Problem, RunConfig
from ppgen.results import Fit

__all__ = ["gibbs", "gibbs_chains"]

INIT_DRAWS = 1000  # forward samples per chain the initial states are resampled from
INIT_TRIES = 3  # ... ten times more at each try, while every weight is zero


def gibbs(net: BayesNet, variables: Sequence[str], evidence: Mapping | None = None, num_samples: int = 2000,
          num_warmup: int = 500, num_chains: int = 4, seed: int | None = None) -> lw.Estimate:
    """``p(variables | evidence)`` from ``num_chains`` Gibbs chains of ``num_samples`` draws each,
    after ``num_warmup`` sweeps (see the module doc)."""
    from ppgen.arviz_bridge import az

    variables, evidence = lw.check_query(net, variables, evidence)
    draws = gibbs_chains(net, evidence, num_samples, num_warmup, num_chains, lw.generator_for(net, seed))
    shape = tuple(net.cards[v] for v in variables)
    cells = lw.cell_index(net, variables, draws)  # (chains, draws)
    indicators = torch.nn.functional.one_hot(cells, math.prod(shape)).double()
    probs = indicators.mean((0, 1))
    series = az.convert_to_dataset({"f": indicators.cpu().numpy()})
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # a cell never (or always) visited has a constant series: NaN
        ess = torch.as_tensor(az.ess(series, method="mean")["f"].values).to(probs)
        r_hat = torch.as_tensor(az.rhat(series)["f"].values).to(probs)
    var = probs * (1 - probs)
    stderr = torch.where(var > 0, (var / ess).sqrt(), torch.zeros_like(var))
    return lw.Estimate(variables, probs.reshape(shape), stderr.reshape(shape), ess.reshape(shape), draws, "gibbs",
                       r_hat=r_hat.reshape(shape))


def gibbs_chains(net: BayesNet, evidence: Mapping[str, torch.Tensor], num_samples: int, num_warmup: int,
                 num_chains: int, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
    """``{free variable: (num_chains, num_samples)}`` draws after ``num_warmup`` sweeps."""
    if num_samples < 1 or num_chains < 1:
        raise ConfigError(f"gibbs needs num_samples >= 1 and num_chains >= 1, got {num_samples} and {num_chains}")
    free = [v for v in net.variables if v not in evidence]
    blankets = {v: _blanket(net, v) for v in free}
    state = _initial_state(net, evidence, num_chains, generator)
    out = torch.empty((len(free), num_chains, num_samples), dtype=torch.long, device=net.device)
    for sweep in range(num_warmup + num_samples):
        for v in free:
            logits = sum(table[tuple(state[u] for u in names)] for table, names in blankets[v])
            state[v] = gumbel_max(logits, num_chains, generator)
        if sweep >= num_warmup:
            for i, v in enumerate(free):
                out[i, :, sweep - num_warmup] = state[v]
    return dict(zip(free, out))


def gumbel_max(logits: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per row of ``softmax(logits)`` ``(n, K)`` (or of one ``(K,)`` row for all ``n``):
    ``argmax_k logits_k + G_k`` with ``G_k`` standard Gumbel; a ``-inf`` logit is never drawn."""
    u = torch.rand((n, logits.shape[-1]), generator=generator, dtype=logits.dtype, device=logits.device)
    return (logits - (-u.log()).log()).argmax(-1)


def _blanket(net: BayesNet, v: str) -> list[tuple[torch.Tensor, tuple[str, ...]]]:
    """The factors of ``v``'s full conditional: log-CPTs with ``v``'s axis last, and the variables
    whose values index their other axes (``v``'s parents; a child's other parents and the child)."""
    factors = [(net.cpts[v].log(), net.parents[v])]
    for c in net.variables:
        if v in net.parents[c]:
            i = net.parents[c].index(v)
            factors.append((net.cpts[c].log().movedim(i, -1).contiguous(),
                            (*net.parents[c][:i], *net.parents[c][i + 1:], c)))
    return factors


def _initial_state(net: BayesNet, evidence: Mapping[str, torch.Tensor], num_chains: int,
                   generator: torch.Generator | None) -> dict[str, torch.Tensor]:
    """One state per chain, ``{variable: (num_chains,)}``, resampled by weight from forward samples
    with the evidence clamped: each has ``p(x, e) > 0``."""
    for attempt in range(INIT_TRIES):
        values, log_w = lw.weighted_samples(net, evidence, INIT_DRAWS * num_chains * 10**attempt, generator)
        if bool(torch.isfinite(log_w).any()):
            break
    lw.require_weight(log_w, evidence, "gibbs found no state to start its chains from: check the evidence "
                                       "with net.log_evidence")
    pick = lw.resample(log_w, num_chains, generator)
    return {v: x[pick] for v, x in values.items()}


@register("gibbs", family="mcmc", discrete=True)
def run_gibbs(problem: Problem, config: RunConfig) -> Fit:
    """Gibbs sampling on a Bayes net: each free node drawn from its full conditional, in systematic scans."""
    net = lw.bayes_net(problem, config.method)
    evidence = lw.evidence_of(net, problem.data)
    start = time.perf_counter()
    chains = gibbs_chains(net, evidence, config.num_samples, config.num_warmup, config.num_chains,
                          lw.generator_for(net, config.seed))
    why = "Gibbs sampling has none"
    return Fit(method=config.method, model_name=problem.name, chains=chains, seconds=time.perf_counter() - start,
               problem=problem, diagnostics={"sample_stats_missing": dict.fromkeys(SAMPLE_STATS, why)})
