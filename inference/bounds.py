r"""Importance weights and the bounds built from them: the ELBO, IWAE and the importance-sampling estimate of log p(x).

For a model p(x, z) and a guide q(z | x), every bound is a function of the log importance weights
``log w_k = log p(x, z_k) - log q(z_k | x)``, ``z_k ~ q`` (Lecture 5)::

    ELBO     = E_q[log w]                         = E_q[log p(x | z)] - KL(q(z | x) || p(z))
    IWAE_K   = E[log (1/K) sum_k w_k]             ELBO = IWAE_1 <= IWAE_K <= IWAE_{K+1} <= log p(x)
    p(x)     = E_q[w]                              so log((1/K) sum_k w_k) estimates log p(x) (biased low,
                                                   consistent), the guide being the proposal

All three are computed per data point, from one set of ``K`` particles drawn in parallel
(:func:`importance_sample`), for programs whose sample sites all sit in one data plate (VAEs,
PPCA); with global latents the "data point" is the whole data set.

* :class:`IWAE_ELBO` trains with IWAE_K (``elbo="iwae"`` in :func:`ppgen.inference.svi.train`).
  Pyro's ``RenyiELBO(alpha=0)`` is the same bound without subsampling, but it puts the minibatch
  scale ``N/B`` inside the exponent; here the scale multiplies the per-point bounds.

What the bounds are made of, and the gaps between them, is in :mod:`ppgen.inference.vi_diagnostics`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import pyro
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.infer import ELBO
from pyro.infer.util import get_dependent_plate_dims, torch_sum
from pyro.poutine.util import prune_subsample_sites

from ppgen.inference.objectives import register_elbo

__all__ = ["LogWeights", "log_weights", "ImportanceSample", "importance_sample", "IWAE_ELBO", "log_mean_exp",
           "max_plate_nesting", "particle_traces"]


def log_mean_exp(t: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log((1/K) sum_k exp(t_k)) along ``dim``, computed stably."""
    return torch.logsumexp(t, dim) - math.log(t.shape[dim])


# ---------------------------------------------------------------------------------------------
# log importance weights, K particles in parallel
# ---------------------------------------------------------------------------------------------
@dataclass
class LogWeights:
    """``values``: (K, *points) log weights ``log p(x, z_k) - log q(z_k | x)`` per particle and data
    point (unscaled); ``scale``: the subsample scale ``N / B`` that turns a minibatch sum into a
    full-data estimate."""

    values: torch.Tensor
    scale: float


def max_plate_nesting(model: Callable, guide: Callable, data: dict) -> int:
    """How many plates deep the program nests (one trace of guide and model)."""
    with poutine.block():
        guide_trace = poutine.trace(guide).get_trace(**data)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(**data)
    dims = [f.dim for tr in (guide_trace, model_trace) for s in tr.nodes.values() if s["type"] == "sample"
            for f in s["cond_indep_stack"] if f.vectorized]
    return -min(dims) if dims else 0


def log_weights(model: Callable, guide: Callable, data: dict, num_particles: int = 1,
                nesting: int | None = None, reparameterized: bool = False) -> LogWeights:
    """Log importance weights of ``num_particles`` draws from ``guide``, in parallel (a particle
    plate left of the program's plates). Differentiable in the guide's params when every latent is
    reparameterized (``reparameterized=True`` checks that).

    Log densities are summed over every plate that does not hold all sites, so with all sites in a
    ``"data"`` plate the result is (K, B): one weight per particle and data point.
    """
    nesting = max_plate_nesting(model, guide, data) if nesting is None else nesting
    particles = pyro.plate("iw_particles", num_particles, dim=-(nesting + 1))
    guide_trace, model_trace = particle_traces(model, guide, data, particles)
    latent = [s for s in guide_trace.nodes.values() if s["type"] == "sample" and not s["is_observed"]]
    if reparameterized:
        for site in latent:
            if not site["fn"].has_rsample:
                raise NotImplementedError(f"site {site['name']!r}: the IWAE gradient needs a reparameterizable guide "
                                          f"distribution, got {type(site['fn']).__name__}")
    sites = [(+1, s) for s in model_trace.nodes.values() if s["type"] == "sample"] + [(-1, s) for s in latent]
    sum_dims = get_dependent_plate_dims([s for _, s in sites])
    scales = {float(s["scale"]) for _, s in sites}
    if len(scales) > 1:
        raise NotImplementedError(f"importance weights need one subsample scale for all sites, got {sorted(scales)}")
    total = sum(sign * torch_sum(scale_and_mask(s["fn"].log_prob(s["value"]), 1.0, s["mask"]), sum_dims)
                for sign, s in sites)                                           # (K, *points)
    return LogWeights(total, scales.pop() if scales else 1.0)


def particle_traces(model: Callable, guide: Callable, data: dict, particles: pyro.plate):
    """Guide and model traces (subsample sites pruned) with the draws of every particle in parallel."""
    guide_trace = poutine.trace(particles(guide)).get_trace(**data)
    model_trace = poutine.trace(poutine.replay(particles(model), trace=guide_trace)).get_trace(**data)
    return prune_subsample_sites(guide_trace), prune_subsample_sites(model_trace)


@dataclass
class ImportanceSample:
    """``log_w``: (K, *points) log importance weights of K draws from the guide, per data point."""

    log_w: torch.Tensor

    @property
    def elbo(self) -> torch.Tensor:
        """ELBO estimate per data point: mean_k log w_k."""
        return self.log_w.mean(0)

    def iwae(self, k: int | None = None) -> torch.Tensor:
        """IWAE_k per data point (default k = K): the mean over the ``K // k`` disjoint groups of k
        particles, each an unbiased estimate of the bound."""
        k = self.log_w.shape[0] if k is None else k
        groups = self.log_w.shape[0] // k
        if groups < 1:
            raise ValueError(f"IWAE_{k} needs at least {k} particles, have {self.log_w.shape[0]}")
        lw = self.log_w[: groups * k].reshape(groups, k, *self.log_w.shape[1:])
        return log_mean_exp(lw, 1).mean(0)

    @property
    def log_evidence(self) -> torch.Tensor:
        """log p(x) estimate per data point: log of the importance-sampling estimate with all K draws."""
        return log_mean_exp(self.log_w, 0)

    @property
    def ess(self) -> torch.Tensor:
        """Effective sample size of the self-normalized weights, per data point (1..K)."""
        return torch.exp(2 * torch.logsumexp(self.log_w, 0) - torch.logsumexp(2 * self.log_w, 0))


@torch.no_grad()
def importance_sample(model: Callable, guide: Callable, data: dict, num_particles: int = 1000,
                      chunk_size: int = 500) -> ImportanceSample:
    """Draw ``num_particles`` particles from the guide, ``chunk_size`` at a time, and keep their log
    weights per data point. Pass the data unsubsampled (e.g. ``batch_size=None``) to score every point."""
    nesting = max_plate_nesting(model, guide, data)
    chunks, left = [], num_particles
    while left > 0:
        n = min(chunk_size, left)
        chunks.append(log_weights(model, guide, data, n, nesting).values)
        left -= n
    return ImportanceSample(torch.cat(chunks, 0))


class IWAE_ELBO(ELBO):
    r"""The importance-weighted bound as a training objective (Burda et al., 2016)::

        loss = -scale * sum_b log (1/K) sum_k w_kb,    scale = N / B for a minibatch of B points

    Its gradient, ``sum_k softmax(log w)_k grad log w_k``, is the reparameterized IWAE gradient;
    every latent site of the guide must be reparameterizable. ``K = 1`` is ``Trace_ELBO``.
    """

    def __init__(self, num_particles: int = 5):
        super().__init__(num_particles=num_particles, vectorize_particles=True)
        self._nesting: int | None = None

    def _get_trace(self, model, guide, args, kwargs):  # abstract in ELBO; the bound is computed directly
        raise NotImplementedError

    def bound(self, model, guide, *args, reparameterized: bool = False, **kwargs) -> torch.Tensor:
        """IWAE_K of the data (a minibatch's per-point bounds times N / B)."""
        if args:
            raise TypeError("IWAE_ELBO passes the data as keyword arguments only")
        if self._nesting is None:
            self._nesting = max_plate_nesting(model, guide, kwargs)
        lw = log_weights(model, guide, kwargs, self.num_particles, self._nesting, reparameterized)
        return lw.scale * log_mean_exp(lw.values, 0).sum()

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            return -float(self.bound(model, guide, *args, **kwargs))

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        return -self.bound(model, guide, *args, **kwargs)

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = -self.bound(model, guide, *args, reparameterized=True, **kwargs)
        loss.backward()
        return float(loss.detach())


register_elbo("iwae", lambda num_particles: IWAE_ELBO(num_particles=num_particles))
