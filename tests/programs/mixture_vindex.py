"""A 2-D Gaussian mixture whose likelihood picks each point's component mean with
``Vindex(locs)[..., z, :]`` (Pyro's batched indexing, as the enumeration tutorial recommends for
indexing with enumerated variables), the assignment ``z`` marked for parallel enumeration.

Data: 3 clusters of 15 points around (-4, 0), (4, 0) and (0, 5), unit noise, synthetic with a fixed seed.
Answer: the clusters are far apart next to their spread, so each component's location posterior is
close to N(cluster sample mean, I / 15); label switching is undone by matching components to
clusters with the best permutation per draw.
"""
import itertools

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.ops.indexing import Vindex

K, D = 3, 2
CENTERS = np.array([[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]])
_rng = np.random.default_rng(11)
_points = np.concatenate([c + _rng.normal(size=(15, 2)) for c in CENTERS])
data = {"data": _points.tolist()}
CLUSTER_MEANS = np.stack([_points[15 * k:15 * (k + 1)].mean(0) for k in range(K)])


def model(data):
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(K)))
    with pyro.plate("components", K):
        locs = pyro.sample("locs", dist.Normal(torch.zeros(D), 10.0).to_event(1))
    with pyro.plate("data", data.shape[0]):
        z = pyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
        pyro.sample("obs", dist.Normal(Vindex(locs)[..., z, :], 1.0).to_event(1), obs=data)


METHODS = {
    "map": dict(steps=400, num_samples=50, lr=0.1),  # converged: the 1000-step mode to 4 decimals
    # 100 + 100: means within 0.04 (tol 0.45), sds 0.83-1.26 x 1/sqrt(15) (bounds 0.5-1.8), seeds 0-2
    "nuts": dict(num_warmup=100, num_samples=100),
}
SLOW_METHODS = {  # minutes of CI between them: run with PPGEN_FULL_CORPUS=1
    "svi": dict(steps=1500, num_samples=200, lr=0.1),
}
REFUSED = {"enum": "continuous", "numpyro-nuts": "Pyro only", "numpyro-svi": "Pyro only"}


def _matched(locs):
    """Per draw, the permutation of components that best matches the cluster means."""
    perms = [list(p) for p in itertools.permutations(range(K))]
    out = []
    for draw in locs:
        cost = [np.abs(draw[p] - CLUSTER_MEANS).sum() for p in perms]
        out.append(draw[perms[int(np.argmin(cost))]])
    return np.stack(out)


def check(fit):
    locs = _matched(fit.samples["locs"].reshape(-1, K, D).double().numpy())
    assert np.allclose(locs.mean(0), CLUSTER_MEANS, atol=0.45), (locs.mean(0), CLUSTER_MEANS)
    if fit.method in ("nuts", "hmc"):
        sd = locs.std(0)
        assert np.all((sd > 0.5 / np.sqrt(15)) & (sd < 1.8 / np.sqrt(15))), sd
    z = fit.samples["z"].reshape(fit.samples["z"].shape[0], -1)
    # points of one cluster share a component in (almost) every draw
    for k in range(K):
        block = z[:, 15 * k:15 * (k + 1)]
        assert (block == block[:, :1]).float().mean() > 0.95
