"""Logistic regression with a subsampled data plate, as Pyro's SVI tutorials write it:
``with pyro.plate("data", N, subsample_size=B) as idx:`` and the rows taken as ``x[idx]``.

Data: 600 rows, 3 features, true beta = [1, -2, 0.5], synthetic with a fixed seed.
Answer: with N(0, 5) priors and 600 rows the posterior mean is within a few hundredths of the
maximum-likelihood estimate (computed here by Newton's method on all rows), posterior sd about the
MLE's standard error (~0.1-0.15). SVI with minibatches of 100 is noisy: tolerance 0.3.

Subsampling is for stochastic-gradient methods: ``svi`` and ``map`` fit the minibatches. MCMC on a
subsampled likelihood would not be exact, so ppgen's ``nuts`` runs the plate on all 600 rows (and
so do the log-likelihood, predictive and summaries of every method): its sds are the exact ones.
"""
import numpy as np
import pyro
import pyro.distributions as dist
import torch

TRUE_BETA = np.array([1.0, -2.0, 0.5])
_rng = np.random.default_rng(3)
_x = _rng.normal(size=(600, 3))
_y = (_rng.uniform(size=600) < 1 / (1 + np.exp(-_x @ TRUE_BETA))).astype(float)
data = {"x": _x.tolist(), "y": _y.tolist()}


def _mle(x, y, iters=25):
    beta = np.zeros(x.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-x @ beta))
        grad = x.T @ (y - p) - beta / 25.0
        hess = -(x.T * (p * (1 - p))) @ x - np.eye(len(beta)) / 25.0
        beta = beta - np.linalg.solve(hess, grad)
    return beta


MLE = _mle(_x, _y)


def model(x, y=None):
    beta = pyro.sample("beta", dist.Normal(torch.zeros(x.shape[1]), 5.0).to_event(1))
    with pyro.plate("data", x.shape[0], subsample_size=100) as idx:
        logits = x[idx] @ beta
        pyro.sample("obs", dist.Bernoulli(logits=logits), obs=y[idx] if y is not None else None)


METHODS = {
    "svi": dict(steps=2000, num_samples=300, lr=0.02),
    "nuts": dict(num_warmup=150, num_samples=150),
}
SLOW_METHODS = {  # minutes of CI between them: run with PPGEN_FULL_CORPUS=1
    "map": dict(steps=1500, num_samples=100, lr=0.02),
}
REFUSED = {
    "enum": "continuous",
    "numpyro-nuts": "Pyro only", "numpyro-svi": "Pyro only",
}


def check(fit):
    beta = fit.samples["beta"].reshape(-1, 3)
    assert np.allclose(beta.mean(0).numpy(), MLE, atol=0.3), (beta.mean(0), MLE)
    if fit.method == "svi":
        sd = beta.std(0).numpy()
        assert np.all(sd < 0.5), sd
    if fit.method == "nuts":  # all rows: the MLE's standard errors (0.1-0.15), not a minibatch's
        p = 1 / (1 + np.exp(-_x @ MLE))
        se = np.sqrt(np.diag(np.linalg.inv((_x.T * (p * (1 - p))) @ _x + np.eye(3) / 25.0)))
        assert np.allclose(beta.std(0).numpy(), se, rtol=0.35), (beta.std(0), se)
