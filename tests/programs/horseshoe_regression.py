"""Sparse linear regression with a horseshoe prior (Carvalho, Polson and Scott 2010), in the style of
NumPyro's examples (sparse_regression / horseshoe_regression), written with ``pyroapi``:
a global scale tau ~ HalfCauchy(1), local scales lambda_d ~ HalfCauchy(1), beta_d ~ N(0, tau lambda_d).

Data: 60 rows, 8 standardized features, y = X @ beta + N(0, 0.5^2) with beta nonzero at 0, 1 and 7
([2, -1.5, 0, 0, 0, 0, 0, 1]), synthetic with a fixed seed.
Answer: the three nonzero coefficients have posterior means near their values and away from 0, the
five zeros are shrunk to near 0 (thresholds checked against a long raw NumPyro run, REFERENCE).
"""
import numpy as np
from pyroapi import distributions as dist
from pyroapi import pyro

TRUE_BETA = np.array([2.0, -1.5, 0, 0, 0, 0, 0, 1.0])
NONZERO = [0, 1, 7]
_rng = np.random.default_rng(7)
_X = _rng.normal(size=(60, 8))
_y = _X @ TRUE_BETA + _rng.normal(0, 0.5, 60)
data = {"X": _X.tolist(), "y": _y.tolist()}


def model(X, y=None):
    D = X.shape[1]
    tau = pyro.sample("tau", dist.HalfCauchy(1.0))
    with pyro.plate("features", D):
        lam = pyro.sample("lambda", dist.HalfCauchy(1.0))
        beta = pyro.sample("beta", dist.Normal(0.0, tau * lam))
    sigma = pyro.sample("sigma", dist.HalfNormal(2.0))
    with pyro.plate("data", X.shape[0]):
        pyro.sample("obs", dist.Normal(X @ beta, sigma), obs=y)


# raw NumPyro 0.22 NUTS (tests/programs/_references.py), 4 chains x (1000 warmup + 4000 draws),
# target_accept_prob 0.95, PRNGKey(0), float32 (606 divergences of 16000: the horseshoe's funnels):
# posterior mean and sd of beta
REFERENCE = {"beta_mean": [1.9474, -1.5374, 0.0172, 0.1228, 0.0727, 0.0965, 0.0434, 1.1246],
             "beta_sd": [0.0713, 0.0702, 0.0498, 0.0723, 0.0686, 0.0694, 0.0599, 0.0647]}

METHODS = {
    # 800 steps: beta within 0.08 of the 2000-step mode (nonzero errors <= 0.13 of 0.35, zeros <= 0.15 of 0.2)
    "map": dict(steps=800, num_samples=20, lr=0.02),
    "numpyro-map": dict(steps=800, num_samples=20, lr=0.02),
}
SLOW_METHODS = {  # minutes of CI between them: run with PPGEN_FULL_CORPUS=1
    "numpyro-svi": dict(steps=3000, num_samples=500, lr=0.02),
    "numpyro-nuts": dict(num_warmup=1000, num_samples=1000, target_accept_prob=0.95),
    "svi": dict(steps=3000, num_samples=500, lr=0.02),
    "nuts": dict(num_warmup=300, num_samples=300, target_accept_prob=0.9),
}
REFUSED = {"enum": "continuous"}


def check(fit):
    beta = fit.samples["beta"].reshape(-1, 8).double().numpy()
    mean = beta.mean(0)
    zeros = [d for d in range(8) if d not in NONZERO]
    for d in NONZERO:
        assert abs(mean[d] - TRUE_BETA[d]) < 0.35, (d, mean)
    assert np.all(np.abs(mean[zeros]) < 0.2), mean
    if fit.method in ("nuts", "numpyro-nuts"):
        ref_mean, ref_sd = np.array(REFERENCE["beta_mean"]), np.array(REFERENCE["beta_sd"])
        assert np.all(np.abs(mean - ref_mean) < 0.6 * ref_sd + 0.02), (mean, ref_mean)
        # nonzero: the 90% interval is clearly away from 0; zeros: their intervals reach down to near 0
        lo, hi = np.quantile(beta, [0.05, 0.95], axis=0)
        assert np.all((lo[NONZERO] > 0.5) | (hi[NONZERO] < -0.5)), (lo, hi)
        assert np.all(lo[zeros] < 0.1) and np.all(hi[zeros] > -0.1), (lo, hi)
