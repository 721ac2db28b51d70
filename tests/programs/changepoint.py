"""A changepoint in Poisson counts (the coal-mining-disasters model): a discrete switch time
tau ~ Categorical(uniform over T), an early and a late rate with Gamma(2, 1) priors, counts before
tau at the early rate and from tau on at the late one. tau is marked for parallel enumeration.

Data: T = 40 yearly counts simulated with a fixed seed, rate 3 up to year 22 and 1 after.
Answer by brute force (conjugacy): for each tau, integrate each rate out in closed form
(Gamma-Poisson), normalize over tau; E[rate | y] = sum_tau p(tau | y) (a + s) / (b + n) per segment.
"""
import math

import numpy as np
import pyro
import pyro.distributions as dist
import torch

T, A, B = 40, 2.0, 1.0
_rng = np.random.default_rng(12)
_counts = np.concatenate([_rng.poisson(3.0, 22), _rng.poisson(1.0, T - 22)])
data = {"counts": _counts.astype(float).tolist()}


def _exact():
    y = _counts.astype(float)

    def seg(s, n):  # log of the Gamma-Poisson marginal of a segment, without the 1/prod(y!) term
        return A * math.log(B) - math.lgamma(A) + math.lgamma(A + s) - (A + s) * math.log(B + n)

    logp, early, late = [], [], []
    for tau in range(T):
        s1, n1, s2, n2 = y[:tau].sum(), tau, y[tau:].sum(), T - tau
        logp.append(seg(s1, n1) + seg(s2, n2))
        early.append((A + s1) / (B + n1))
        late.append((A + s2) / (B + n2))
    logp = np.array(logp)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    return p, float(p @ np.array(early)), float(p @ np.array(late))


TAU_POSTERIOR, EARLY_MEAN, LATE_MEAN = _exact()


def model(counts):
    early_rate = pyro.sample("early_rate", dist.Gamma(A, B))
    late_rate = pyro.sample("late_rate", dist.Gamma(A, B))
    tau = pyro.sample("tau", dist.Categorical(torch.ones(len(counts)) / len(counts)),
                      infer={"enumerate": "parallel"})
    years = torch.arange(len(counts))
    rate = torch.where(years < tau, early_rate, late_rate)
    with pyro.plate("years", len(counts)):
        pyro.sample("obs", dist.Poisson(rate), obs=counts)


METHODS = {
    "map": dict(steps=400, num_samples=200, lr=0.05),  # converged: the 1000-step rates to 4 decimals
    "svi": dict(steps=1500, num_samples=1000, lr=0.05),
}
SLOW_METHODS = {  # minutes of CI between them: run with PPGEN_FULL_CORPUS=1
    "nuts": dict(num_warmup=200, num_samples=400),
}
REFUSED = {"enum": "continuous", "numpyro-nuts": "Pyro only", "numpyro-svi": "Pyro only"}


def check(fit):
    tau = fit.samples["tau"].reshape(-1).long()
    hist = torch.bincount(tau, minlength=T).double().numpy() / len(tau)
    mode = int(np.argmax(TAU_POSTERIOR))
    if fit.method == "map":  # rates at their mode; tau drawn from p(tau | y, rates): the exact mode dominates
        assert abs(int(np.argmax(hist)) - mode) <= 1, (np.argmax(hist), mode)
        assert abs(fit.samples["early_rate"].mean().item() - EARLY_MEAN) < 0.5
        return
    tv = 0.5 * np.abs(hist - TAU_POSTERIOR).sum()
    assert tv < (0.2 if fit.method == "svi" else 0.12), (tv, hist.round(2), TAU_POSTERIOR.round(2))
    early = fit.samples["early_rate"].reshape(-1).double().mean().item()
    late = fit.samples["late_rate"].reshape(-1).double().mean().item()
    assert abs(early - EARLY_MEAN) < 0.25, (early, EARLY_MEAN)
    assert abs(late - LATE_MEAN) < 0.2, (late, LATE_MEAN)
