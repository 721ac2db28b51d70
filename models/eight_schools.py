r"""Eight schools (Rubin 1981; BDA ch. 5): a hierarchical normal model, non-centered.

    mu ~ N(0, 5),  tau ~ HalfCauchy(5)
    theta_trans_j ~ N(0, 1),  theta_j = mu + tau * theta_trans_j     (j = 1..J)
    y_j ~ N(theta_j, sigma_j)

The graphical model (a plate is a box; ``y`` is observed)::

       mu       tau
        \       /
    +----\-----/------+
    |   theta_j        |
    |      |           |
    |     y_j  sigma_j |  J = 8
    +------------------+

Written once against ``pyroapi``, so the same program runs on Pyro (``nuts``, ``svi``, ...) and
NumPyro (``numpyro-nuts``). The centered form (theta_j ~ N(mu, tau)) is beside it: its funnel
between tau and theta is what non-centering removes.
"""
from pyroapi import distributions as dist
from pyroapi import pyro

from ppgen.data import eight_schools_reference, load_eight_schools
from ppgen.models import register


@register("eight_schools", data=load_eight_schools, backends=("pyro", "numpyro"), reference=eight_schools_reference)
def eight_schools(J, sigma, y=None):
    """Eight schools, non-centered parameterization (posteriordb eight_schools_noncentered)."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("school", J):
        theta_trans = pyro.sample("theta_trans", dist.Normal(0.0, 1.0))
        theta = pyro.deterministic("theta", mu + tau * theta_trans)
        pyro.sample("y", dist.Normal(theta, sigma), obs=y)


@register("eight_schools_centered", data=load_eight_schools, backends=("pyro", "numpyro"),
          reference=eight_schools_reference)
def eight_schools_centered(J, sigma, y=None):
    """Eight schools, centered parameterization (a funnel: expect divergences)."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("school", J):
        theta = pyro.sample("theta", dist.Normal(mu, tau))
        pyro.sample("y", dist.Normal(theta, sigma), obs=y)
