"""Gaussian mixture (lecture 5): cluster the data so that each p(x | z) is simple.

    w ~ Dirichlet(alpha * 1_K)
    mu_k ~ N(m, s^2 I),  sigma_kd ~ LogNormal(0, 1)          (k = 1..K, d = 1..D)
    z_n ~ Categorical(w),  x_n | z_n ~ N(mu_{z_n}, diag(sigma_{z_n}^2))   (n = 1..N)

The graphical model::

                  +----------------+
       w          |  mu_k  sigma_k |  K
       |          +----------------+
    +--|-------------------|--+
    |  z_n ------------> x_n  |  N
    +-------------------------+

The assignments z are discrete latents: every method sums them out by enumeration, and reports
their exact conditional posterior. Passing ``weights``, ``locs`` and ``scales`` as data fixes them,
leaving only z latent: then ``enum`` gives the exact posterior and log evidence.

Bundled data: Old Faithful (eruption duration, waiting time), standardized; the lecture's point is
that one Gaussian puts mass where there is no data and two fit.
"""
from pyroapi import distributions as dist
from pyroapi import ops, pyro

from ppgen.backend import vindex
from ppgen.data import load_faithful
from ppgen.errors import DataError
from ppgen.models import register


def _faithful():
    return {"x": load_faithful(standardize=True), "K": 2}


@register("gmm", data=_faithful, backends=("pyro", "numpyro"))
def gmm(x, K=2, weights=None, locs=None, scales=None):
    """Gaussian mixture with K components and diagonal covariances; x is (N, D)."""
    if len(x.shape) != 2:
        raise DataError(f"site 'x': expected an (N, D) array of points, got shape {tuple(x.shape)}")
    N, D = x.shape
    if weights is None:
        weights = pyro.sample("weights", dist.Dirichlet(ops.ones(K) * 2.0))
    with pyro.plate("component", K):
        if locs is None:
            locs = pyro.sample("locs", dist.Normal(0.0, 2.0).expand([D]).to_event(1))  # (K, D)
        if scales is None:
            scales = pyro.sample("scales", dist.LogNormal(0.0, 1.0).expand([D]).to_event(1))  # (K, D)
    with pyro.plate("data", N):
        z = pyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
        # locs[..., None, :, :] lines the parameters' batch dims up with the data plate, so the
        # same line serves a single draw, a batch of draws and an enumerated z
        loc = vindex(locs[..., None, :, :])[..., z, :]  # (..., N, D)
        scale = vindex(scales[..., None, :, :])[..., z, :]
        pyro.sample("x", dist.Normal(loc, scale).to_event(1), obs=x)
