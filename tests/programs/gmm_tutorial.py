"""Gaussian mixture in the style of Pyro's GMM tutorial (tutorial/source/gmm.ipynb).

Global weights, a shared scale and per-component locations; each point picks a component with a
Categorical that the tutorial marks for enumeration with ``@config_enumerate``; the likelihood
indexes the locations with PLAIN indexing, ``locs[assignment]``, as the tutorial does.

Data: two well separated 1-D clusters (12 points near 0, 12 near 10), synthetic with a fixed seed.
Answer: posterior means of the sorted locations are close to the two cluster sample means
(with 12 points per cluster and a small common scale the assignment is unambiguous).
"""
import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import config_enumerate

K = 2

_rng = np.random.default_rng(1)
_left = _rng.normal(0.0, 0.8, 12)
_right = _rng.normal(10.0, 0.8, 12)
data = {"data": np.concatenate([_left, _right]).tolist()}
CLUSTER_MEANS = sorted([_left.mean(), _right.mean()])


@config_enumerate
def model(data):
    weights = pyro.sample("weights", dist.Dirichlet(0.5 * torch.ones(K)))
    scale = pyro.sample("scale", dist.LogNormal(0.0, 2.0))
    with pyro.plate("components", K):
        locs = pyro.sample("locs", dist.Normal(0.0, 10.0))
    with pyro.plate("data", len(data)):
        assignment = pyro.sample("assignment", dist.Categorical(weights))
        pyro.sample("obs", dist.Normal(locs[assignment], scale), obs=data)


METHODS = {
    "map": dict(steps=800, num_samples=100, lr=0.05),
    "nuts": dict(num_warmup=100, num_samples=100),  # sorted locs within 0.04 of the means (tol 0.8), seeds 0-2
}
SLOW_METHODS = {  # minutes of CI between them: run with PPGEN_FULL_CORPUS=1
    "svi": dict(steps=1500, num_samples=200, lr=0.05),
}
REFUSED = {
    "enum": "continuous",
    "numpyro-nuts": "Pyro only", "numpyro-svi": "Pyro only",
}


def check(fit):
    s = fit.samples
    locs = s["locs"].reshape(-1, K)
    sorted_locs = locs.sort(dim=-1).values.mean(0)
    tol = 0.6 if fit.method in ("map", "svi") else 0.8
    for got, want in zip(sorted_locs.tolist(), CLUSTER_MEANS):
        assert abs(got - want) < tol, (sorted_locs, CLUSTER_MEANS)
    w = s["weights"].reshape(-1, K).sort(dim=-1).values.mean(0)
    assert abs(w[0].item() - 0.5) < 0.2, w
    scale = s["scale"].reshape(-1).mean().item()
    assert 0.3 < scale < 1.2, scale
    a = s["assignment"].reshape(s["assignment"].shape[0], -1).float()
    # the first 12 points share one component and the last 12 the other, in every draw
    agree = (a[:, :12] == a[:, :1]).float().mean() * 0.5 + (a[:, 12:] == a[:, 12:13]).float().mean() * 0.5
    assert agree > 0.95, agree
    assert (a[:, 0] != a[:, -1]).float().mean() > 0.95
