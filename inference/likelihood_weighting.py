r"""Likelihood weighting: approximate queries on a discrete Bayes net too big to eliminate exactly.

Each of ``n`` samples runs the net forward in topological order: a free node is drawn from its CPT
row given its parents' values, an evidence node is clamped to its value ``e_j`` and the sample's
weight picks up the probability of that value,

    x^(i)_v ~ p(x_v | x^(i)_pa(v))  (v free),      w_i = prod_{j in E} p(e_j | x^(i)_pa(j)).

The proposal is the net with the evidence clamped, so ``w_i = p(x^(i), e) / q(x^(i))`` and
``E_q[w] = p(e)``: the mean weight is an unbiased estimate of the evidence (``log_evidence`` is its
log). For a cell ``c`` of the query table, with ``f_i = 1[x^(i)_Q = c]`` and normalized weights
``~w_i = w_i / sum_k w_k``, the self-normalized estimate and its delta-method standard error are

    p_c = sum_i ~w_i f_i,        se_c^2 = sum_i ~w_i^2 (f_i - p_c)^2,

the first-order variance of the ratio ``sum w f / sum w``. How many independent draws the weighted
sample is worth is Kish's effective sample size ``ESS = (sum w)^2 / sum w^2 = 1 / sum ~w^2``: ``n``
without evidence (``se_c^2`` is then ``p_c (1 - p_c) / n``), far fewer when the evidence is unlikely
under the prior. Unweighted draws come from resampling ``n`` samples with probabilities ``~w``
(sampling importance resampling).

Everything is vectorized over the samples on the CPTs' device; the only loops are over the nodes
and their states.

    >>> from ppgen.models.bayesnet import sprinkler
    >>> est = likelihood_weighting(sprinkler(), ["rain"], {"wet": 1}, num_samples=100_000, seed=0)
    >>> bool(abs(est.probs[1] - 0.3577) < 4 * est.stderr[1])
    True
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch

from ppgen.errors import ConfigError, DataError, NotApplicableError, NumericalError
from ppgen.inference import register
from ppgen.models.bayesnet import BayesNet
from ppgen.problem import Problem, RunConfig
from ppgen.results import Fit

__all__ = ["Estimate", "likelihood_weighting", "weighted_samples", "resample", "bayes_net", "evidence_of"]

ADVICE = "draw more samples, or use gibbs (its chains need only one sample of nonzero weight to start from)"


@dataclass
class Estimate:
    """A Monte Carlo estimate of ``p(variables | evidence)``.

    :ivar variables: the queried variables, one axis of ``probs`` each, in this order.
    :ivar probs: the estimated table, shape ``(*cards of variables)``.
    :ivar stderr: the standard error of each cell, same shape.
    :ivar ess: effective sample size: Kish's of the weights (likelihood weighting), ArviZ's of each
        cell's indicator series (Gibbs, a tensor like ``probs``).
    :ivar draws: ``{unobserved variable: (chains, draws)}`` unweighted draws from the posterior.
    :ivar method: ``"likelihood-weighting"`` or ``"gibbs"``.
    :ivar r_hat: Gibbs: the rank-normalized split r_hat of each cell's indicator series.
    :ivar log_evidence: likelihood weighting: ``log`` of the mean weight, an estimate of ``log p(e)``.
    """

    variables: tuple[str, ...]
    probs: torch.Tensor
    stderr: torch.Tensor
    ess: float | torch.Tensor
    draws: dict[str, torch.Tensor] = field(repr=False)
    method: str
    r_hat: torch.Tensor | None = None
    log_evidence: float | None = None


def likelihood_weighting(net: BayesNet, variables: Sequence[str], evidence: Mapping | None = None,
                         num_samples: int = 10000, seed: int | None = None) -> Estimate:
    """``p(variables | evidence)`` from ``num_samples`` weighted forward samples (see the module doc);
    raises :class:`~ppgen.errors.NumericalError` when every weight is zero."""
    variables, evidence = check_query(net, variables, evidence)
    generator = generator_for(net, seed)
    values, log_w = weighted_samples(net, evidence, num_samples, generator)
    require_weight(log_w, evidence, ADVICE)
    w = (log_w - log_w.logsumexp(0)).exp()  # normalized weights
    cells, shape = cell_index(net, variables, values), tuple(net.cards[v] for v in variables)
    size = math.prod(shape)
    probs = torch.bincount(cells, w, minlength=size)
    squares = torch.bincount(cells, w * w, minlength=size)
    var = (squares - 2 * probs * squares + probs**2 * (w * w).sum()).clamp_min(0)  # sum ~w^2 (f - p)^2
    pick = resample(log_w, num_samples, generator)
    return Estimate(variables, probs.reshape(shape), var.sqrt().reshape(shape), kish_ess(log_w),
                    {v: x[pick].unsqueeze(0) for v, x in values.items() if v not in evidence},
                    "likelihood-weighting", log_evidence=log_mean_weight(log_w))


def weighted_samples(net: BayesNet, evidence: Mapping[str, torch.Tensor], num_samples: int,
                     generator: torch.Generator | None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``num_samples`` forward samples with the evidence clamped: ``{variable: (n,)}`` (evidence
    included) and their log weights ``(n,)``. A free node is drawn by inversion, ``x = #{k < K - 1 :
    F_k <= u}`` with ``u ~ U[0, 1)`` and ``F`` its CPT row's cumulative sums scaled to end at exactly 1,
    so a state of probability 0 is never drawn."""
    if num_samples < 1:
        raise ConfigError(f"likelihood weighting needs num_samples >= 1, got {num_samples}")
    values, log_w = {}, net.cpts[net.variables[0]].new_zeros(num_samples)
    for v in net.variables:
        table = net.cpts[v].reshape(-1, net.cards[v])  # one row per configuration of the parents
        row = torch.zeros(num_samples, dtype=torch.long, device=net.device)
        for p in net.parents[v]:
            row = row * net.cards[p] + values[p]
        if v in evidence:
            values[v] = evidence[v].expand(num_samples)
            log_w = log_w + table[row, evidence[v]].log()
        else:
            cdf = table.cumsum(-1)
            cdf = (cdf / cdf[:, -1:]).T.contiguous()  # (K, rows): one column of F per state
            u = torch.rand(num_samples, generator=generator, dtype=cdf.dtype, device=cdf.device)
            values[v] = torch.zeros_like(row)
            for k in range(net.cards[v] - 1):
                values[v] += cdf[k][row] <= u
    return values, log_w


def require_weight(log_w: torch.Tensor, evidence: Mapping[str, torch.Tensor], advice: str) -> None:
    """Raise :class:`~ppgen.errors.NumericalError` when every weight is zero."""
    if not bool(torch.isfinite(log_w).any()):
        given = ", ".join(f"{v}={int(e)}" for v, e in evidence.items())
        raise NumericalError(f"all {len(log_w)} forward samples have weight 0: the evidence {given} is impossible "
                             f"under the sampled ancestors; {advice}", step=0)


def resample(log_w: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """``n`` indices drawn with replacement with probabilities proportional to ``exp(log_w)``, by
    inverting the cumulative weights of the samples with nonzero weight (so none of weight 0 is drawn)."""
    support = torch.isfinite(log_w).nonzero().squeeze(-1)
    cdf = (log_w[support] - log_w[support].max()).exp().cumsum(0)
    u = torch.rand(n, generator=generator, dtype=cdf.dtype, device=cdf.device) * cdf[-1]
    return support[torch.searchsorted(cdf, u, right=True).clamp_max(len(support) - 1)]


def kish_ess(log_w: torch.Tensor) -> float:
    """``(sum w)^2 / sum w^2`` (``w`` scaled by its largest value, which cancels)."""
    w = (log_w - log_w.max()).exp()
    return float(w.sum() ** 2 / (w * w).sum())


def log_mean_weight(log_w: torch.Tensor) -> float:
    """``log (1/n) sum w``, the log of an unbiased estimate of ``p(e)``."""
    return float(log_w.logsumexp(0) - math.log(len(log_w)))


def pareto_k(log_w: torch.Tensor) -> float | str:
    """PSIS's Pareto k-hat of the weights' right tail (Vehtari et al. 2024), or why it cannot be fitted."""
    from ppgen.arviz_bridge import az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = float(az.psislw(log_w[torch.isfinite(log_w)].cpu().numpy())[1])
    return k if math.isfinite(k) else ("the weights take too few distinct values for a Pareto fit of their tail "
                                       "(a net's weights are bounded, their variance finite)")


def cell_index(net: BayesNet, variables: Sequence[str], values: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The flat (row-major) cell of the query table each sample falls in."""
    cells = torch.zeros_like(values[variables[0]])
    for v in variables:
        cells = cells * net.cards[v] + values[v]
    return cells


def check_query(net: BayesNet, variables: Sequence[str], evidence: Mapping | None
                ) -> tuple[tuple[str, ...], dict[str, torch.Tensor]]:
    """The queried variables and the validated evidence (one assignment, not a batch)."""
    variables, _ = net._query(variables, evidence)
    return variables, evidence_of(net, evidence)


def evidence_of(net: BayesNet, evidence: Mapping | None) -> dict[str, torch.Tensor]:
    """``net._evidence(evidence)``, refusing a batch of evidence assignments."""
    checked = net._evidence({v: e for v, e in (evidence or {}).items() if e is not None})
    batched = [v for v, e in checked.items() if e.dim()]
    if batched:
        raise DataError(f"sampling takes one evidence assignment; the evidence on {', '.join(batched)} is a batch "
                        f"(query each assignment on its own, or use the exact net.query)")
    return checked


def generator_for(net: BayesNet, seed: int | None) -> torch.Generator | None:
    return None if seed is None else torch.Generator(net.device).manual_seed(seed)


def bayes_net(problem: Problem, method: str) -> BayesNet:
    """The net a problem was built from (a registered network, or a net given to :func:`ppgen.fit`)."""
    net = problem.instance
    if not isinstance(net, BayesNet):
        raise NotApplicableError(f"{method} needs a discrete Bayes net, e.g. ppgen.fit(net, evidence) or a registered "
                                 f"network; model {problem.name!r} is not one")
    return net


@register("likelihood-weighting", family="importance", discrete=True)
def run_likelihood_weighting(problem: Problem, config: RunConfig) -> Fit:
    """Likelihood weighting on a Bayes net: weighted forward samples, resampled into unweighted draws."""
    net = bayes_net(problem, config.method)
    evidence = evidence_of(net, problem.data)
    start, generator = time.perf_counter(), generator_for(net, config.seed)
    values, log_w = weighted_samples(net, evidence, config.num_samples, generator)
    require_weight(log_w, evidence, ADVICE)
    pick = resample(log_w, config.num_samples, generator)
    seconds = time.perf_counter() - start
    return Fit(method=config.method, model_name=problem.name, seconds=seconds, problem=problem,
               chains={v: x[pick].unsqueeze(0) for v, x in values.items() if v not in evidence},
               log_evidence=log_mean_weight(log_w),
               diagnostics={"ess_kish": kish_ess(log_w), "weights_pareto_k": pareto_k(log_w)})
