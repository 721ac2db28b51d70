r"""What the ELBO is made of: importance weights, the bounds built from them, and the gaps between them.

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
* :func:`elbo_terms`: reconstruction and KL per data point, the KL analytic where
  ``torch.distributions`` knows it, and per latent dimension (posterior collapse shows as ~0 nats).
* :func:`refine_guide` / :func:`amortization_gap`: per-datapoint (non-amortized) Gaussian VI on
  held-out points, started from the encoder's output: ``log p(x) - ELBO(amortized)`` splits into the
  approximation gap ``log p(x) - ELBO(refined)`` and the amortization gap ``ELBO(refined) - ELBO(amortized)``
  (Cremer et al., 2018).
* :func:`gradient_samples`: repeated gradient estimates of an ELBO, to compare estimator variances
  (reparameterized ``Trace_ELBO`` vs score-function ``TraceGraph_ELBO``).
"""
from __future__ import annotations

import math
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Callable

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.distributions.util import scale_and_mask
from pyro.infer import ELBO, Trace_ELBO
from pyro.infer.util import get_dependent_plate_dims, torch_sum
from pyro.poutine.util import prune_subsample_sites
from torch.distributions import kl_divergence

from ppgen.inference.svi import register_elbo, train

__all__ = [
    "LogWeights", "log_weights", "ImportanceSample", "importance_sample", "IWAE_ELBO", "ELBOTerms", "elbo_terms",
    "refine_guide", "frozen_params", "amortization_gap", "AmortizationGap", "gradient_samples", "log_mean_exp",
    "max_plate_nesting",
]


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
    guide_trace, model_trace = _particle_traces(model, guide, data, particles)
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


def _particle_traces(model: Callable, guide: Callable, data: dict, particles: pyro.plate):
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


# ---------------------------------------------------------------------------------------------
# ELBO = reconstruction - KL, and the KL per latent dimension
# ---------------------------------------------------------------------------------------------
@dataclass
class ELBOTerms:
    """Per data point: ``reconstruction`` E_q[log p(x | z)] and ``kl`` KL(q(z | x) || p(z)) summed
    over latent sites, ``elbo = reconstruction - kl``; ``kl_per_dim``: site -> (event size,) KL per
    latent dimension averaged over the data (analytic sites only); ``analytic``: sites whose KL was
    computed in closed form (the others by Monte Carlo)."""

    reconstruction: torch.Tensor
    kl: torch.Tensor
    kl_per_dim: dict[str, torch.Tensor]
    analytic: tuple[str, ...]

    @property
    def elbo(self) -> torch.Tensor:
        return self.reconstruction - self.kl


@torch.no_grad()
def elbo_terms(model: Callable, guide: Callable, data: dict, num_particles: int = 100) -> ELBOTerms:
    """Split the ELBO of each data point into reconstruction and KL (Lecture 7), with
    ``num_particles`` draws for the Monte Carlo parts."""
    nesting = max_plate_nesting(model, guide, data)
    particles = pyro.plate("iw_particles", num_particles, dim=-(nesting + 1))
    guide_trace, model_trace = _particle_traces(model, guide, data, particles)
    sites = [s for s in model_trace.nodes.values() if s["type"] == "sample"]
    sum_dims = get_dependent_plate_dims(sites)

    def per_point(log_p: torch.Tensor) -> torch.Tensor:                      # (K, ...) -> (*points)
        return torch_sum(log_p, sum_dims).mean(0)

    reconstruction, kl, kl_per_dim, analytic = 0.0, 0.0, {}, []
    for site in sites:
        if site["is_observed"]:
            reconstruction = reconstruction + per_point(site["fn"].log_prob(site["value"]))
            continue
        q, p, z = guide_trace.nodes[site["name"]]["fn"], site["fn"], site["value"]
        try:
            elementwise = kl_divergence(_base(q), _base(p))                     # (K?, B, *event)
            kl = kl + per_point(_sum_event(elementwise, q.event_dim))
            kl_per_dim[site["name"]] = elementwise.reshape(-1, *q.event_shape).mean(0)
            analytic.append(site["name"])
        except NotImplementedError:
            kl = kl + per_point(q.log_prob(z) - p.log_prob(z))
    return ELBOTerms(torch.as_tensor(reconstruction), torch.as_tensor(kl), kl_per_dim, tuple(analytic))


def _base(d: dist.Distribution) -> dist.Distribution:
    """The distribution under ``Independent`` wrappers (the KL of an Independent is the sum of its base's)."""
    while isinstance(d, (dist.Independent, torch.distributions.Independent)):
        d = d.base_dist
    return d


def _sum_event(t: torch.Tensor, event_dim: int) -> torch.Tensor:
    return t.sum(tuple(range(-event_dim, 0))) if event_dim else t


# ---------------------------------------------------------------------------------------------
# the amortization gap: per-datapoint VI started from the encoder
# ---------------------------------------------------------------------------------------------
def refine_guide(model: Callable, guide: Callable, data: dict, steps: int = 500, lr: float = 0.01,
                 num_particles: int = 8, prefix: str = "refined", seed: int | None = 0,
                 progress: bool = False) -> Callable:
    """A non-amortized guide: one free Normal (loc, scale) per data point and latent, started from
    ``guide``'s output on ``data`` and optimized (``steps`` of Adam, ``num_particles`` vectorized
    particles per ELBO estimate) with the model's parameters held fixed.

    ``guide`` must put a (possibly ``Independent``) ``Normal`` on each latent site. Returns the
    trained guide; its params are ``{prefix}.{site}.loc`` / ``.scale`` in the param store.
    """
    store = pyro.get_param_store()
    for name in [n for n in store.keys() if n.startswith(prefix + ".")]:
        del store[name]
    with torch.no_grad(), poutine.block():
        trace = prune_subsample_sites(poutine.trace(guide).get_trace(**data))
    specs = []
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        base = _base(site["fn"])
        if not isinstance(base, torch.distributions.Normal):
            raise NotImplementedError(f"refine_guide needs a Normal guide at site {name!r}, "
                                      f"got {type(site['fn']).__name__}")
        if any(f.full_size not in (None, f.size) for f in site["cond_indep_stack"]):
            raise ValueError(f"site {name!r} is subsampled: pass the data whole (e.g. batch_size=None) to refine_guide")
        pyro.param(f"{prefix}.{name}.loc", base.loc.detach().expand(base.batch_shape).clone())
        pyro.param(f"{prefix}.{name}.scale", base.scale.detach().expand(base.batch_shape).clone(),
                   constraint=constraints.positive)
        specs.append((name, site["fn"].event_dim, [f for f in site["cond_indep_stack"] if f.vectorized]))

    def refined(**kwargs) -> None:
        for name, event_dim, frames in specs:
            with ExitStack() as stack:
                for f in frames:
                    stack.enter_context(pyro.plate(f.name, f.size, dim=f.dim))
                loc, scale = pyro.param(f"{prefix}.{name}.loc"), pyro.param(f"{prefix}.{name}.scale")
                pyro.sample(name, dist.Normal(loc, scale).to_event(event_dim))

    if steps:
        with frozen_params(model, data):
            elbo = Trace_ELBO(num_particles=num_particles, vectorize_particles=num_particles > 1)
            train(poutine.block(model, hide_types=["param"]), refined, data, steps=steps, lr=lr, elbo=elbo,
                  seed=seed, progress=progress)
    return refined


@contextmanager
def frozen_params(model: Callable, data: dict):
    """Within the context the model's own params take no gradient (they are not trained, and no
    stale ``.grad`` is left on them)."""
    with torch.no_grad(), poutine.block():
        trace = poutine.trace(model, param_only=True).get_trace(**data)
    params = [s["value"].unconstrained() for s in trace.nodes.values() if s["type"] == "param"]
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        with warnings.catch_warnings():  # pyro.module notes that it skips the frozen parameters
            warnings.filterwarnings("ignore", message=".*not registered in the param store because requires_grad=False")
            yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


@dataclass
class AmortizationGap:
    """Per data point (nats): the amortized ELBO, the refined (per-datapoint) ELBO, and the
    importance-sampling log p(x) estimate with the refined guide as proposal."""

    elbo_amortized: torch.Tensor
    elbo_refined: torch.Tensor
    log_evidence: torch.Tensor

    @property
    def amortization(self) -> torch.Tensor:
        """ELBO(refined) - ELBO(amortized): what a better encoder could gain."""
        return self.elbo_refined - self.elbo_amortized

    @property
    def approximation(self) -> torch.Tensor:
        """log p(x) - ELBO(refined): the cost of the Gaussian family itself."""
        return self.log_evidence - self.elbo_refined


def amortization_gap(model: Callable, guide: Callable, data: dict, steps: int = 500, lr: float = 0.01,
                     num_particles: int = 1000, seed: int | None = 0, progress: bool = False) -> AmortizationGap:
    """Refine ``guide`` per data point (:func:`refine_guide`) and compare the bounds, each from
    ``num_particles`` draws. The refined guide's params are removed from the param store after."""
    amortized = importance_sample(model, guide, data, num_particles)
    store, prefix = pyro.get_param_store(), "amortization_gap"
    try:
        refined_guide = refine_guide(model, guide, data, steps, lr, prefix=prefix, seed=seed, progress=progress)
        refined = importance_sample(model, refined_guide, data, num_particles)
    finally:
        for name in [n for n in store.keys() if n.startswith(prefix + ".")]:
            del store[name]
    return AmortizationGap(amortized.elbo, refined.elbo, refined.log_evidence)


# ---------------------------------------------------------------------------------------------
# gradient estimators
# ---------------------------------------------------------------------------------------------
def gradient_samples(elbo: ELBO, model: Callable, guide: Callable, data: dict, params: list[str],
                     num_samples: int = 200, seed: int = 0) -> dict[str, torch.Tensor]:
    """``num_samples`` independent gradient estimates of ``-ELBO`` with respect to the named params
    (as Pyro ELBO ``elbo`` computes them): name -> (num_samples, *param shape)."""
    pyro.set_rng_seed(seed)
    store = pyro.get_param_store()
    draws = {name: [] for name in params}
    for _ in range(num_samples):
        with poutine.trace(param_only=True) as captured:
            elbo.loss_and_grads(model, guide, **data)
        unconstrained = {s["name"]: s["value"].unconstrained() for s in captured.trace.nodes.values()}
        for name in params:
            p = unconstrained[name] if name in unconstrained else store.get_param(name).unconstrained()
            draws[name].append(p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
        for p in unconstrained.values():
            p.grad = None
    return {name: torch.stack(g) for name, g in draws.items()}
