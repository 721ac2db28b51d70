"""Programs written with ``pyroapi`` (so they run on both backends), for tests that need their
closed-form answers."""
from pyroapi import distributions as dist
from pyroapi import pyro


def regression(x, y=None):
    """y ~ N(a + b x, 0.5^2), a, b ~ N(0, 10^2): the posterior and the predictive are Gaussian."""
    a = pyro.sample("a", dist.Normal(0.0, 10.0))
    b = pyro.sample("b", dist.Normal(0.0, 10.0))
    with pyro.plate("data", x.shape[0]):
        return pyro.sample("y", dist.Normal(a + b * x, 0.5), obs=y)


def dependent(y, flat: bool = False):
    """a ~ U(0, 1), b ~ U(0, 1 - a) (or flat on that interval): a support that depends on another
    latent. The data says nothing, so the posterior is the prior."""
    a = pyro.sample("a", dist.Uniform(0.0, 1.0))
    bounded = (dist.ImproperUniform(dist.constraints.interval(0.0, 1.0 - a), (), ()) if flat
               else dist.Uniform(0.0, 1.0 - a))
    b = pyro.sample("b", bounded)
    pyro.sample("y", dist.Normal(0.0, 1.0), obs=y)
    return b
