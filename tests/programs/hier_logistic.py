"""Hierarchical logistic regression with group intercepts, non-centered, written with ``pyroapi``:
mu_a ~ N(0, 2), sigma_a ~ HalfNormal(1), a_raw_g ~ N(0, 1), a_g = mu_a + sigma_a a_raw_g,
b ~ N(0, 2), y_i ~ Bernoulli(logit^-1(a[group_i] + b x_i)).

Data: 6 groups x 60 rows, intercepts drawn once from N(-0.5, 1) (here mostly negative), b = 1.5, synthetic with a fixed seed.
Answer: REFERENCE, from a long raw NumPyro NUTS run (see its comment); it recovers b and the
intercepts within their posterior sds.
"""
import numpy as np
from pyroapi import distributions as dist
from pyroapi import pyro

G, PER = 6, 60
_rng = np.random.default_rng(8)
TRUE_A = _rng.normal(-0.5, 1.0, G)
TRUE_B = 1.5
_group = np.repeat(np.arange(G), PER)
_x = _rng.normal(size=G * PER)
_y = (_rng.uniform(size=G * PER) < 1 / (1 + np.exp(-(TRUE_A[_group] + TRUE_B * _x)))).astype(float)
data = {"num_groups": G, "group": _group.tolist(), "x": _x.tolist(), "y": _y.tolist()}


def model(num_groups, group, x, y=None):
    mu_a = pyro.sample("mu_a", dist.Normal(0.0, 2.0))
    sigma_a = pyro.sample("sigma_a", dist.HalfNormal(1.0))
    b = pyro.sample("b", dist.Normal(0.0, 2.0))
    with pyro.plate("groups", num_groups):
        a_raw = pyro.sample("a_raw", dist.Normal(0.0, 1.0))
        a = pyro.deterministic("a", mu_a + sigma_a * a_raw)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Bernoulli(logits=a[group] + b * x), obs=y)


# raw NumPyro 0.22 NUTS (tests/programs/_references.py), 4 chains x (1000 warmup + 4000 draws),
# PRNGKey(0), float32, 0 divergences: (mean, sd); a[g] is the deterministic intercept of group g
# (the simulating values: a = [-2.238, -1.837, -1.861, -0.852, -2.813, -0.689], b = 1.5)
REFERENCE = {"mu_a": (-1.8679, 0.5331), "sigma_a": (1.19, 0.3764), "b": (1.5934, 0.2071),
             "a[0]": (-2.9105, 0.4783), "a[1]": (-1.9112, 0.3766), "a[2]": (-2.0539, 0.3907),
             "a[3]": (-0.9179, 0.3332), "a[4]": (-3.38, 0.5789), "a[5]": (-0.6151, 0.3277)}

METHODS = {
    "map": dict(steps=500, num_samples=20, lr=0.02),  # the 1500-step mode to 0.015 (b to 0.0004)
    "numpyro-nuts": dict(num_warmup=500, num_samples=1000),
    "numpyro-map": dict(steps=500, num_samples=20, lr=0.02),
}
SLOW_METHODS = {  # minutes of CI between them: run with PPGEN_FULL_CORPUS=1
    "numpyro-svi": dict(steps=2000, num_samples=500, lr=0.02),
    "svi": dict(steps=2000, num_samples=500, lr=0.02),
    "nuts": dict(num_warmup=300, num_samples=300),
}
REFUSED = {"enum": "continuous"}


def check(fit):
    s = fit.samples
    assert "a" in s, "the deterministic site a is reported"
    a = s["a"].reshape(s["a"].shape[0], -1).double()
    if fit.method in ("map", "numpyro-map"):
        assert abs(s["b"].mean().item() - REFERENCE["b"][0]) < 0.5 * REFERENCE["b"][1] + 0.05, s["b"].mean()
        return
    for name, (mean, sd) in REFERENCE.items():
        d = a[:, int(name[2:-1])] if name.startswith("a[") else s[name].reshape(-1).double()
        tol = 0.8 if fit.method in ("svi", "numpyro-svi") else 0.4
        assert abs(d.mean().item() - mean) < tol * sd, (name, d.mean(), mean, sd)
        if fit.method not in ("svi", "numpyro-svi") and name != "sigma_a":
            assert 0.65 * sd < d.std().item() < 1.4 * sd, (name, d.std(), sd)
