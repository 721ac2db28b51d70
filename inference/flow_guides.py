r"""Normalizing flows as variational families, and NeuTra: MCMC in the flow's base space.

**AutoFlow** (``guide="flow"`` in ``ppgen.fit``): for any model whose latents are continuous, pack
them, each mapped to the real line, into one vector :math:`u` (Pyro's ``AutoContinuous``) and let

.. math:: u = \mu + \sigma \odot f(\varepsilon),\quad \varepsilon \sim N(0, I),\qquad
          \log q(u) = \log N(\varepsilon; 0, I) - \log|\det \partial f/\partial\varepsilon|
          - \textstyle\sum_i \log\sigma_i

with :math:`f` a flow (IAF by default: drawing :math:`u` and evaluating :math:`\log q(u)` of that
draw both cost one pass). :math:`f = \mathrm{id}` is the mean-field Normal, so the flow family
contains AutoNormal's; both start from the same point (the prior median, scale ``init_scale``).

**AmortizedFlow**: :math:`q(z \mid c)`, a flow over a local latent conditioned on features
:math:`c` of its data point (a flow posterior inside a VAE's amortized guide).

**neutra** (Hoffman et al., 2019): after fitting AutoFlow, run NUTS on :math:`\varepsilon` with
:math:`u = T(\varepsilon)`: the target :math:`p(T(\varepsilon), x)\,|\det \partial T/\partial\varepsilon|` is close
to :math:`N(0, I)` wherever :math:`q` is close to the posterior, so a funnel's neck and mouth get one
step size. The draws are mapped back to the model's sites.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.distributions.transforms import AffineTransform, ComposeTransform
from pyro.infer.autoguide import AutoContinuous
from pyro.infer.reparam import NeuTraReparam
from pyro.nn import PyroParam
from torch import nn

from ppgen import inference
from ppgen.errors import ConfigError, DataError, NotApplicableError
from ppgen.inference.objectives import register_guide
from ppgen.init import init_to_median
from ppgen.models.flows import FlowTransform, build_transform
from ppgen.problem import prepare
from ppgen.results import Fit

__all__ = ["AutoFlow", "AmortizedFlow", "neutra"]


class AutoFlow(AutoContinuous):
    """A normalizing-flow guide over all continuous latents of ``model`` (see the module doc).

    :param kind: flow kind (:data:`ppgen.models.flows.KINDS`); ``"iaf"`` and the coupling kinds
        (``"realnvp"``, ``"nice"``, ``"spline"``) sample in one pass, ``"maf"`` needs one pass per latent.
    :param transforms: number of flow layers.
    :param hidden: hidden widths of each layer's network (default: two layers of ``max(32, 4 * D)``
        for ``D`` latent numbers).
    :param init_scale: initial scale :math:`\\sigma` around the initial location.
    :param flow_options: ``slope``, ``bins`` of :func:`ppgen.models.flows.build_transform`.
    """

    def __init__(self, model: Callable, kind: str = "iaf", transforms: int = 2, hidden: Sequence[int] | None = None,
                 init_loc_fn: Callable = init_to_median, init_scale: float = 0.1, **flow_options):
        if not init_scale > 0:
            raise ConfigError(f"init_scale must be positive, got {init_scale}")
        self._flow_config = dict(kind=kind, transforms=transforms, hidden=hidden, **flow_options)
        self._init_scale = init_scale
        super().__init__(model, init_loc_fn=init_loc_fn)

    def _setup_prototype(self, *args, **kwargs):
        super()._setup_prototype(*args, **kwargs)
        config = dict(self._flow_config)
        config["hidden"] = config["hidden"] or (max(32, 4 * self.latent_dim),) * 2
        loc = self._init_loc()
        self.flow = build_transform(config.pop("kind"), self.latent_dim,
                                    **config).to(device=loc.device, dtype=loc.dtype)
        self.loc = nn.Parameter(loc)
        self.scale = PyroParam(torch.full_like(loc, self._init_scale), constraint=constraints.softplus_positive)

    def get_base_dist(self):
        return dist.Normal(torch.zeros_like(self.loc), torch.ones_like(self.loc)).to_event(1)

    def get_transform(self, *args, **kwargs):
        """:math:`\\varepsilon \\mapsto \\mu + \\sigma \\odot f(\\varepsilon)`."""
        return ComposeTransform([FlowTransform(self.flow()), AffineTransform(self.loc, self.scale, event_dim=1)])


class AmortizedFlow(nn.Module):
    """:math:`q(z \\mid c)`: a flow over ``latent_dim`` numbers conditioned on ``context_dim`` features.

    ``AmortizedFlow(z_dim, features)(c)`` is a Pyro ``TransformedDistribution`` with batch shape
    ``c.shape[:-1]`` and event shape ``(z_dim,)``; in a guide, inside the data plate::

        pyro.module("posterior", amortized)
        pyro.sample("z", amortized(features(x_batch)))
    """

    def __init__(self, latent_dim: int, context_dim: int, kind: str = "iaf", transforms: int = 2,
                 hidden: Sequence[int] = (64, 64), **flow_options):
        super().__init__()
        if context_dim < 1:
            raise ConfigError(f"an amortized flow needs context_dim >= 1 features to condition on, got {context_dim}")
        self.latent_dim, self.context_dim = latent_dim, context_dim
        self.transform = build_transform(kind, latent_dim, context=context_dim, transforms=transforms, hidden=hidden,
                                         **flow_options)

    def forward(self, context: torch.Tensor) -> dist.TransformedDistribution:
        if context.shape[-1] != self.context_dim:
            raise DataError(f"context: this amortized flow conditions on {self.context_dim} features, so the context "
                            f"must have shape (..., {self.context_dim}); got {tuple(context.shape)}")
        base = dist.Normal(context.new_zeros(context.shape[:-1] + (self.latent_dim,)), 1.0).to_event(1)
        return dist.TransformedDistribution(base, FlowTransform(self.transform(context)))


def neutra(model, data: dict | None = None, *, guide: AutoContinuous | None = None, kind: str = "iaf",
           steps: int = 2000, lr: float = 0.01, num_samples: int = 1000, num_warmup: int = 500, num_chains: int = 1,
           seed: int = 0, progress: bool = True, device="auto", svi_options: dict | None = None, **nuts_options) -> Fit:
    """NeuTra NUTS: fit ``guide`` (``AutoFlow(kind=kind)`` by default) by SVI for ``steps`` steps, then run
    NUTS in its base space and map the draws back.

    Returns the NUTS :class:`~ppgen.results.Fit` for the original model's sites (``method="neutra"``);
    ``extras`` holds ``"guide_fit"`` (the SVI fit) and ``"warped"`` (the draws in the base space).
    """
    pyro.set_rng_seed(seed)
    problem = prepare(model, data, device=device)
    if problem.has_discrete:
        raise NotApplicableError(f"neutra needs continuous latents; model {problem.name!r} has discrete ones "
                                 f"{problem.names('discrete')}")
    guide = guide if guide is not None else AutoFlow(problem.model, kind=kind)
    guide_fit = inference.run(problem, "svi", guide=guide, steps=steps, lr=lr, num_samples=0, seed=seed,
                              progress=progress, **(svi_options or {}))
    reparam = NeuTraReparam(guide)
    warped = prepare(reparam.reparam(problem.model), problem.data, device=problem.device, dtype=problem.dtype)
    warped_fit = inference.run(warped, "nuts", num_samples=num_samples, num_warmup=num_warmup, num_chains=num_chains,
                               seed=seed, progress=progress, **nuts_options)
    (base_name, base_draws), = warped_fit.get_samples().items()
    n = base_draws.shape[0]  # draw dims must sit left of the model's plates when mapped back
    with torch.no_grad(), problem.placement():
        draws = reparam.transform_sample(base_draws.reshape((n,) + (1,) * problem.max_plate_nesting + (-1,)))
    chains = {k: v.reshape((num_chains, num_samples) + problem.sites[k].shape) for k, v in draws.items()}
    return dataclasses.replace(warped_fit, method="neutra", model_name=problem.name, chains=chains, problem=problem,
                               seconds=guide_fit.seconds + warped_fit.seconds, _idata=None,
                               extras={"guide_fit": guide_fit, "warped": warped_fit.chains, "base_site": base_name})


register_guide("flow", lambda model: AutoFlow(model))
