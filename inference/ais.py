r"""Annealed importance sampling (Neal, 2001) for :math:`\log Z` of an energy-based model.

Anneal from a base :math:`p_0 = f_0 / Z_0` with known :math:`Z_0` to the target :math:`f_1 = e^{-E}`
through :math:`f_\beta = f_0^{1-\beta} f_1^{\beta}`, :math:`0 = \beta_0 < \dots < \beta_K = 1`:

.. math::

    x_0 \sim p_0, \quad x_k \sim T_{\beta_k}(\cdot \mid x_{k-1}), \qquad
    \log w = \sum_{k=1}^{K} \log f_{\beta_k}(x_{k-1}) - \log f_{\beta_{k-1}}(x_{k-1}),

with :math:`T_\beta` any kernel leaving :math:`p_\beta` invariant. Then :math:`\mathbb{E}[w] = Z / Z_0`, so
:math:`\log \hat Z = \log Z_0 + \log \tfrac1N \sum_i w_i` is unbiased in :math:`Z` and, by Jensen, a
stochastic lower bound on :math:`\log Z`. The standard error is the delta-method one,
:math:`\mathrm{sd}(w) / (\sqrt N\, \bar w)`.

- :func:`ais_rbm`: the base is independent pixels with biases ``b_A`` (fit to data: the "base-rate"
  model); every :math:`p_\beta` is itself an RBM with parameters :math:`(\beta W, (1-\beta) b_A + \beta b, \beta c)`,
  so :math:`T_\beta` is one block-Gibbs sweep (Salakhutdinov and Murray, 2008).
- :func:`ais`: any continuous energy, a base distribution with ``sample``/``log_prob``, MALA kernels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import pyro
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ppgen.errors import NumericalError
from ppgen.inference.samplers import _check_energy, _mala_step, check_positive, energy_and_grad

__all__ = ["AISResult", "ais", "ais_rbm", "log_mean_exp", "schedule"]


@dataclass(frozen=True)
class AISResult:
    """``log_z`` with its standard error ``stderr``, the ``log_weights`` (num_chains,) (including
    :math:`\\log Z_0`) and their effective sample size ``ess``."""

    log_z: float
    stderr: float
    ess: float
    log_weights: torch.Tensor

    def __str__(self) -> str:
        return f"log Z = {self.log_z:.4f} +- {self.stderr:.4f} (ESS {self.ess:.0f} of {len(self.log_weights)})"


def log_mean_exp(log_w: torch.Tensor) -> AISResult:
    r""":math:`\log \frac1N \sum e^{\log w_i}` with its delta-method standard error and ESS."""
    w = (log_w - log_w.max()).exp()
    mean = w.mean()
    log_z = (mean.log() + log_w.max()).item()
    stderr = (w.std() / (math.sqrt(len(w)) * mean)).item() if len(w) > 1 else float("inf")
    ess = (w.sum().pow(2) / w.pow(2).sum()).item()
    return AISResult(log_z, stderr, ess, log_w)


def schedule(num_betas: int, like: torch.Tensor | None = None) -> torch.Tensor:
    """``num_betas`` inverse temperatures from 0 to 1, spaced geometrically after a linear start (denser
    near 0, where the intermediate distributions change fastest)."""
    if num_betas < 3:
        raise ValueError(f"num_betas must be at least 3 (0, one intermediate, 1), got {num_betas}")
    like = torch.empty(()) if like is None else like
    k = max(1, num_betas // 4)
    linear = torch.linspace(0, 0.01, k + 1, device=like.device, dtype=like.dtype)[:-1]
    geometric = torch.logspace(-2, 0, num_betas - k, device=like.device, dtype=like.dtype)
    return torch.cat([linear, geometric])


def _base_bias(rbm, data: torch.Tensor | None) -> torch.Tensor:
    if data is None:
        return torch.zeros_like(rbm.b)
    p = (data.to(rbm.b).mean(0) * data.shape[0] + 1) / (data.shape[0] + 2)  # Laplace-smoothed pixel means
    return torch.logit(p)


@torch.no_grad()
def ais_rbm(rbm, *, num_chains: int = 100, num_betas: int = 10000, data: torch.Tensor | None = None,
            seed: int | None = 0, progress: bool = False) -> AISResult:
    """AIS estimate of an RBM's :math:`\\log Z`, from the independent-pixel base fit to ``data``
    (uniform when ``data`` is None) through ``num_betas`` temperatures, one Gibbs sweep each."""
    from ppgen.models.rbm import bernoulli, check_binary

    if data is not None:
        check_binary(data, rbm.n_visible, site="data")
    if seed is not None:
        pyro.set_rng_seed(seed)
    W, b, c = rbm.W.detach(), rbm.b.detach(), rbm.c.detach()
    b_a = _base_bias(rbm, data)
    betas = schedule(num_betas, like=W)

    def log_f(x_dot_b, pre, beta):  # log f_beta(x) = ((1-beta) b_A + beta b)^T x + sum_j softplus(beta (c + x W)_j)
        return (1 - beta) * x_dot_b[0] + beta * x_dot_b[1] + F.softplus(beta * pre).sum(-1)

    x = bernoulli(torch.sigmoid(b_a).expand(num_chains, -1))
    log_z_base = rbm.n_hidden * math.log(2) + F.softplus(b_a).sum()  # 2^m prod_i (1 + e^{b_A,i})
    log_w = log_z_base.expand(num_chains).clone()
    for k in tqdm(range(1, len(betas)), desc="ais", disable=not progress, mininterval=0.5):
        pre, x_dot_b = x @ W + c, (x @ b_a, x @ b)
        log_w += log_f(x_dot_b, pre, betas[k]) - log_f(x_dot_b, pre, betas[k - 1])
        z = bernoulli(torch.sigmoid(betas[k] * pre))
        x = bernoulli(torch.sigmoid((1 - betas[k]) * b_a + betas[k] * (b + z @ W.T)))
    return log_mean_exp(log_w)


def ais(energy: Callable[[torch.Tensor], torch.Tensor], base, *, num_chains: int = 256, num_betas: int = 200,
        step_size: float = 0.05, mcmc_steps: int = 1, seed: int | None = 0, progress: bool = False) -> AISResult:
    """AIS estimate of :math:`\\log \\int e^{-E(x)} dx` from ``base`` (a distribution with ``sample`` and
    ``log_prob`` over points (d,), e.g. a wide ``MultivariateNormal``) with ``mcmc_steps`` MALA moves of
    ``step_size`` per temperature."""
    step_size = check_positive("step_size", step_size)
    if seed is not None:
        pyro.set_rng_seed(seed)
    x = base.sample((num_chains,))
    _check_energy(energy, x, what="draws from the base distribution")
    betas = schedule(num_betas, like=x)
    log_w = torch.zeros(num_chains, device=x.device, dtype=x.dtype)
    for k in tqdm(range(1, len(betas)), desc="ais", disable=not progress, mininterval=0.5):
        beta_prev, beta = betas[k - 1], betas[k]
        intermediate = lambda u: (1 - beta) * -base.log_prob(u) + beta * energy(u)  # noqa: E731  (-log f_beta)
        with torch.no_grad():
            log_w += (beta - beta_prev) * (-energy(x) - base.log_prob(x))
        e, grad = energy_and_grad(intermediate, x)
        for _ in range(mcmc_steps):
            x, e, grad, _ = _mala_step(intermediate, x, e, grad, step_size)
    if not torch.isfinite(log_w).all():
        raise NumericalError("AIS: some log weights are NaN/inf: the energy is not finite where the chains went "
                             "(try a smaller step_size)", step=len(betas) - 1)
    return log_mean_exp(log_w)
