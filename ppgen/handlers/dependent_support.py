"""Sites whose support depends on another latent, and the reparameterization that makes them safe.

A Stan port's ``real<lower=0, upper=1-alpha> beta`` becomes ``beta ~ Uniform(0, 1 - alpha)``: the
support of ``beta`` moves with ``alpha``. Pyro's HMC/NUTS fix each site's transform to the support
it had at the initial value, so such a posterior comes out silently wrong. :func:`dependent_sites`
finds them (their bounds differ between two traces at different values), and
:class:`DependentSupport` samples each one as Stan does: an unconstrained value ``u`` (a flat
site ``{name}_unconstrained``), mapped into the *current* support, ``x = T(u)``, with density

    log p(x | parents) + log |dT/du|

so every engine sees a fixed (real) support. ``x`` stays in the trace as a deterministic site.
Drawn without a value (prior sampling, an init strategy's median), ``u = T^{-1}(x)`` for ``x``
drawn from the site's own distribution, so the prior is unchanged.

Example:
    >>> import pyro, pyro.distributions as dist
    >>> def model():
    ...     a = pyro.sample("a", dist.Uniform(0., 1.))
    ...     return pyro.sample("b", dist.Uniform(0., 1. - a))
    >>> tr = pyro.poutine.trace(DependentSupport(["b"])(model)).get_trace()
    >>> sorted(n for n in tr.nodes if n != "_INPUT" and n != "_RETURN")
    ['a', 'b', 'b_unconstrained']
"""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.poutine.messenger import Messenger
from torch.distributions import biject_to, constraints

__all__ = ["DependentSupport", "bounds", "dependent_sites", "UNCONSTRAINED"]

UNCONSTRAINED = "{}_unconstrained"
TRANSFORMED = "_ppgen_transformed"  # infer flag on the site that DependentSupport maps into its support


def bounds(constraint) -> list[torch.Tensor]:
    """The tensors a constraint is built from (an interval's ends, a lower bound, ...)."""
    while isinstance(constraint, constraints.independent):
        constraint = constraint.base_constraint
    found = []
    for attr in ("lower_bound", "upper_bound"):
        value = getattr(constraint, attr, None)
        if value is not None:
            found.append(torch.as_tensor(value))
    return found


def dependent_sites(first, second, names) -> list[str]:
    """The sites among ``names`` whose support bounds differ between traces ``first`` and ``second``."""
    out = []
    for name in names:
        a, b = bounds(first.nodes[name]["fn"].support), bounds(second.nodes[name]["fn"].support)
        if len(a) != len(b) or any(x.shape != y.shape or not torch.equal(x, y) for x, y in zip(a, b)):
            out.append(name)
    return out


class DependentSupport(Messenger):
    """Sample each named site on the unconstrained space and map it into its current support."""

    def __init__(self, names):
        super().__init__()
        self.names = set(names)

    def _pyro_sample(self, msg):
        if msg["name"] not in self.names or msg["is_observed"]:
            return
        fn = msg["fn"]
        transform = biject_to(fn.support)
        u = pyro.sample(UNCONSTRAINED.format(msg["name"]), _Unconstrained(fn, transform))
        value = transform(u)
        log_density = fn.log_prob(value) + transform.log_abs_det_jacobian(u, value)
        msg["fn"] = dist.Delta(value, log_density=log_density, event_dim=fn.event_dim)
        msg["value"] = value
        msg["is_observed"] = True
        msg["infer"] = {**msg["infer"], TRANSFORMED: True}


class _Unconstrained(dist.TorchDistribution):
    """Flat on the unconstrained space of ``base``'s support; its draws are ``T^{-1}`` of ``base``'s."""

    arg_constraints = {}

    def __init__(self, base, transform):
        self.base, self.transform = base, transform
        shape = transform.inverse_shape(base.batch_shape + base.event_shape)
        super().__init__(base.batch_shape, shape[len(base.batch_shape):], validate_args=False)

    @property
    def support(self):
        return constraints.independent(constraints.real, len(self.event_shape))

    def sample(self, sample_shape=torch.Size()):
        return self.transform.inv(self.base.sample(sample_shape)).detach()

    def log_prob(self, value):
        return value.new_zeros(value.shape[: value.dim() - len(self.event_shape)])
