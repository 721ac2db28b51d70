"""Bayesian linear regression as a ``PyroModule``, as in Pyro's "Bayesian Regression" tutorial.

``PyroModule[nn.Linear]`` whose weight and bias are given priors with ``PyroSample``; the module's
``forward(x, y=None)`` is the model, and the object itself is what gets fit:
``ppgen.fit(BayesianRegression(3, 1), data)``.

Data: 80 rows, 3 features, y = x @ [1.5, -2, 0.5] + 1 + N(0, 0.5^2), synthetic with a fixed seed.
Answer: the priors (N(0,1) weights, N(0,10) bias, sigma ~ U(0,10)) are weak next to 80 rows, so the
posterior mean of the coefficients is within a few hundredths of OLS; the sds are close to OLS's
standard errors (checked against a raw Pyro NUTS run, see REFERENCE).
"""
import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule, PyroSample
from torch import nn

TRUE_W, TRUE_B, NOISE = [1.5, -2.0, 0.5], 1.0, 0.5
_rng = np.random.default_rng(2)
_x = _rng.normal(size=(80, 3))
_y = _x @ np.array(TRUE_W) + TRUE_B + _rng.normal(0, NOISE, 80)
data = {"x": _x.tolist(), "y": _y.tolist()}
_X1 = np.column_stack([_x, np.ones(80)])
OLS = np.linalg.lstsq(_X1, _y, rcond=None)[0]  # [w1, w2, w3, b]
_resid = _y - _X1 @ OLS
OLS_SE = np.sqrt(np.diag(np.linalg.inv(_X1.T @ _X1)) * (_resid @ _resid) / (80 - 4))


class BayesianRegression(PyroModule):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = PyroModule[nn.Linear](in_features, out_features)
        self.linear.weight = PyroSample(dist.Normal(0.0, 1.0).expand([out_features, in_features]).to_event(2))
        self.linear.bias = PyroSample(dist.Normal(0.0, 10.0).expand([out_features]).to_event(1))

    def forward(self, x, y=None):
        sigma = pyro.sample("sigma", dist.Uniform(0.0, 10.0))
        mean = self.linear(x).squeeze(-1)
        with pyro.plate("data", x.shape[0]):
            obs = pyro.sample("obs", dist.Normal(mean, sigma), obs=y)
        return mean


model = BayesianRegression(3, 1)

METHODS = {
    "map": dict(steps=400, num_samples=100, lr=0.05),  # converged: the 1000-step mode to 4 decimals
    # 100 + 100: means within 0.01 (tol 0.1), sd ratios 0.84-1.18 (bounds 0.6-1.5), seeds 0-1
    "nuts": dict(num_warmup=100, num_samples=100),
}
SLOW_METHODS = {  # minutes of CI between them: run with PPGEN_FULL_CORPUS=1
    "svi": dict(steps=2000, num_samples=300, lr=0.03),
}
REFUSED = {
    "enum": "continuous",
    "numpyro-nuts": "Pyro only", "numpyro-svi": "Pyro only",
}


def check(fit):
    s = fit.samples
    w = s["linear.weight"].reshape(-1, 3)
    b = s["linear.bias"].reshape(-1)
    sigma = s["sigma"].reshape(-1)
    tol = 0.1
    assert np.allclose(w.mean(0).numpy(), OLS[:3], atol=tol), (w.mean(0), OLS)
    assert abs(b.mean().item() - OLS[3]) < tol, (b.mean(), OLS)
    assert 0.35 < sigma.mean().item() < 0.7, sigma.mean()
    if fit.method in ("nuts", "hmc", "numpyro-nuts"):
        sd = w.std(0).numpy()
        assert np.all(sd > 0.6 * OLS_SE[:3]) and np.all(sd < 1.5 * OLS_SE[:3]), (sd, OLS_SE)
