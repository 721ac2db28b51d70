"""``DependentSupport`` for NumPyro: the counterpart of :mod:`ppgen.handlers.dependent_support`, so
``numpyro-nuts`` samples the same density as ``nuts``. Each named site is sampled on its
unconstrained space and mapped into its *current* support, with density
``log p(x | parents) + log |dT/du|``. (NumPyro replays the model for a support that depends on
another latent only when it recognises the constraint: it misses an ``ImproperUniform``'s.)

Example:
    >>> import numpyro, numpyro.distributions as dist
    >>> from numpyro import handlers
    >>> def model():
    ...     a = numpyro.sample("a", dist.Uniform(0., 1.))
    ...     return numpyro.sample("b", dist.Uniform(0., 1. - a))
    >>> tr = handlers.trace(handlers.seed(DependentSupport(["b"])(model), 0)).get_trace()
    >>> sorted(tr)
    ['a', 'b', 'b_unconstrained']
"""
from __future__ import annotations

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to
from numpyro.primitives import Messenger

from ppgen.handlers.dependent_support import UNCONSTRAINED

__all__ = ["DependentSupport"]


class _Unconstrained(dist.Distribution):
    """Flat on the unconstrained space of ``base``'s support; its draws are ``T^{-1}`` of ``base``'s."""

    arg_constraints = {}

    def __init__(self, base, transform):
        self.base, self.transform = base, transform
        shape = transform.inverse_shape(base.batch_shape + base.event_shape)
        super().__init__(base.batch_shape, shape[len(base.batch_shape):], validate_args=False)

    @property
    def support(self):
        return constraints.independent(constraints.real, len(self.event_shape))

    def sample(self, key, sample_shape=()):
        return self.transform.inv(self.base.sample(key, sample_shape))

    def log_prob(self, value):
        return jnp.zeros(jnp.shape(value)[: jnp.ndim(value) - len(self.event_shape)])


class DependentSupport(Messenger):
    """Sample each named site on the unconstrained space and map it into its current support."""

    def __init__(self, names=(), fn=None):
        self.names = set(names)
        super().__init__(fn)  # DependentSupport(names)(model) wraps the model, as the Pyro handler does

    def process_message(self, msg):
        if msg["type"] != "sample" or msg["name"] not in self.names or msg["is_observed"]:
            return
        fn = msg["fn"]
        transform = biject_to(fn.support)
        u = numpyro.sample(UNCONSTRAINED.format(msg["name"]), _Unconstrained(fn, transform))
        value = transform(u)
        log_density = fn.log_prob(value) + transform.log_abs_det_jacobian(u, value)
        msg["fn"] = dist.Delta(value, log_density=log_density, event_dim=fn.event_dim)
        msg["value"] = value
        msg["is_observed"] = True
