r"""What an ELBO is made of, and where a guide falls short (Lecture 5; the bounds are in
:mod:`ppgen.inference.bounds`):

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

import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Callable

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.infer import ELBO, Trace_ELBO
from pyro.infer.util import get_dependent_plate_dims, torch_sum
from pyro.poutine.util import prune_subsample_sites
from torch.distributions import kl_divergence

from ppgen.inference.bounds import importance_sample, max_plate_nesting, particle_traces
from ppgen.inference.svi import train

__all__ = ["ELBOTerms", "elbo_terms", "refine_guide", "frozen_params", "AmortizationGap", "amortization_gap",
           "gradient_samples"]


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
    guide_trace, model_trace = particle_traces(model, guide, data, particles)
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
