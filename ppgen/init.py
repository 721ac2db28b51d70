"""Initial values that never depend on sampling a prior.

Stan initializes every parameter uniformly in (-2, 2) on the unconstrained space; that needs only
the site's support and shape, so it works for improper priors (``dist.ImproperUniform``: a Stan
port's flat prior, or a bounded parameter with no prior) and for heavy-tailed ones whose draws
overflow. ppgen uses it wherever a value is needed before any fitting:

- :func:`init_to_unconstrained_uniform`: Stan's rule, for any continuous site;
- :func:`init_to_median`: the prior median where the prior can be sampled, Stan's rule otherwise.
  Every engine starts here (Pyro's NUTS/HMC, SVI's autoguides, and NumPyro's ``init_to_median``,
  which falls back to its own uniform rule the same way), so a site with an improper prior is
  initialized alike by all of them.

Example:
    >>> import pyro, pyro.distributions as dist
    >>> from pyro.infer.autoguide.initialization import InitMessenger
    >>> def model():
    ...     return pyro.sample("sigma", dist.ImproperUniform(dist.constraints.positive, (), ()))
    >>> bool(InitMessenger(init_to_median)(model)() > 0)
    True
"""
from __future__ import annotations

import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import MaskedDistribution
from torch.distributions import biject_to

__all__ = ["init_to_median", "init_to_feasible", "init_to_unconstrained_uniform", "can_sample"]


def init_to_unconstrained_uniform(site: dict, radius: float = 2.0) -> torch.Tensor:
    """A uniform draw in ``(-radius, radius)`` on the unconstrained space, mapped into the support
    (a discrete site, always proper, is drawn from its distribution)."""
    fn = site["fn"]
    if fn.support.is_discrete:
        return fn.sample().detach()
    transform = biject_to(fn.support)
    shape = transform.inverse_shape(fn.batch_shape + fn.event_shape)
    value = transform(torch.rand(shape, **_placement(fn)) * (2 * radius) - radius).detach()
    value._pyro_custom_init = False
    return value


def can_sample(fn) -> bool:
    """Whether ``fn`` can be sampled: false for improper densities (``ImproperUniform``), also
    when wrapped (``.expand``, ``.to_event``, ``.mask``)."""
    while isinstance(fn, (dist.Independent, dist.ExpandedDistribution, MaskedDistribution)):
        fn = fn.base_dist
    return not isinstance(fn, dist.ImproperUniform)


def _placement(fn) -> dict:
    """The dtype and device of a distribution's parameters (torch's defaults for one with none)."""
    while fn is not None:
        for value in vars(fn).values():
            if torch.is_tensor(value) and value.is_floating_point():
                return {"dtype": value.dtype, "device": value.device}
        fn = getattr(fn, "base_dist", None)
    return {}


def _is_multivariate(fn) -> bool:
    """A truly joint event (a simplex, a correlation matrix), not independent scalars ``.to_event``-ed."""
    while isinstance(fn, (dist.Independent, MaskedDistribution)):
        fn = fn.base_dist
    return any(size > 1 for size in fn.event_shape)


def init_to_feasible(site: dict) -> torch.Tensor:
    """The point of the support at zero on the unconstrained space (a uniform simplex, a zero
    vector, an identity correlation): Pyro's rule for a multivariate site."""
    fn = site["fn"]
    if fn.support.is_discrete:
        return fn.sample().detach()
    transform = biject_to(fn.support)
    if can_sample(fn):  # a draw gives the prototype, as in Pyro (so a seed gives Pyro's initial values)
        value = transform(torch.zeros_like(transform.inv(fn.sample().detach())))
    else:
        value = transform(torch.zeros(transform.inverse_shape(fn.batch_shape + fn.event_shape), **_placement(fn)))
    value = value.detach()
    value._pyro_custom_init = False
    return value


def init_to_median(site: dict | None = None, num_samples: int = 15) -> torch.Tensor:
    """The median of ``num_samples`` prior draws, as Pyro's ``init_to_median`` (a multivariate site
    takes :func:`init_to_feasible`); Stan's uniform rule where the prior cannot be sampled or its
    median is not a finite point of the support."""
    if site is None:
        return init_to_median
    fn = site["fn"]
    if _is_multivariate(fn):
        return init_to_feasible(site)
    if can_sample(fn):
        try:
            value = fn.sample((num_samples,)).detach().median(dim=0)[0]
            if torch.isfinite(value).all() and bool(fn.support.check(value).all()):
                value._pyro_custom_init = False
                return value
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    return init_to_unconstrained_uniform(site)
