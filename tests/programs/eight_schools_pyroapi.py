"""Eight schools, non-centered, written once with ``pyroapi`` (``from pyroapi import pyro,
distributions as dist``) so it runs on Pyro and on NumPyro; posteriordb's
``eight_schools_noncentered``: mu ~ N(0, 5), tau ~ HalfCauchy(5), theta = mu + tau * theta_tilde.

Answer: posteriordb's reference posterior (Stan, 10 chains x 1000 draws), means and sds from its
``reference_summaries.json`` embedded below (posteriordb commit 28f8d3d6e975; Stan's theta[j] is
``theta[..., j - 1]`` here).
"""
import numpy as np
from pyroapi import distributions as dist
from pyroapi import pyro

data = {"J": 8, "y": [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0],
        "sigma": [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]}

REFERENCE = {
    "theta[1]": (6.150502293344254, 5.6155826186981495),
    "theta[2]": (4.939581140742195, 4.645345829227882),
    "theta[3]": (3.9059060900158236, 5.280447910017913),
    "theta[4]": (4.79601675138494, 4.770699471227277),
    "theta[5]": (3.6144363246798967, 4.614489950432583),
    "theta[6]": (4.051147578967499, 4.796008582193885),
    "theta[7]": (6.317169758868928, 5.002605246153888),
    "theta[8]": (4.8839969435328845, 5.317426164826876),
    "mu": (4.4105183369549295, 3.3091310077656892),
    "tau": (3.602059523640593, 3.1983177430947864),
}


def model(J, sigma, y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("J", J):
        theta_tilde = pyro.sample("theta_tilde", dist.Normal(0.0, 1.0))
        theta = pyro.deterministic("theta", mu + tau * theta_tilde)
        pyro.sample("obs", dist.Normal(theta, sigma), obs=y)


METHODS = {
    "map": dict(steps=1000, num_samples=20, lr=0.02),
    "numpyro-nuts": dict(num_warmup=1000, num_samples=2000),
    "numpyro-svi": dict(steps=2000, num_samples=500, lr=0.02),
    "numpyro-map": dict(steps=1000, num_samples=20, lr=0.02),
}
SLOW_METHODS = {  # minutes of CI between them: run with PPGEN_FULL_CORPUS=1
    "nuts": dict(num_warmup=300, num_samples=300),
    "svi": dict(steps=2000, num_samples=500, lr=0.02),
    "hmc": dict(num_warmup=200, num_samples=200, num_steps=10),
}
REFUSED = {"enum": "continuous"}


def _draws(fit, name):
    if name.startswith("theta["):
        j = int(name[6:-1]) - 1
        return fit.samples["theta"].reshape(fit.samples["theta"].shape[0], -1)[:, j].double()
    return fit.samples[name].reshape(-1).double()


def check(fit):
    assert "theta" in fit.samples and "theta_tilde" in fit.samples
    if fit.method in ("map", "numpyro-map"):  # non-centered MAP: tau collapses toward 0, theta toward mu
        # mu near the pooled mean
        mu = _draws(fit, "mu").mean().item()
        assert 0.0 < mu < 10.0, mu
        return
    for name, (mean, sd) in REFERENCE.items():
        d = _draws(fit, name)
        if fit.method in ("svi", "numpyro-svi"):  # mean-field VI: means within a posterior sd, sds not checked tightly
            assert abs(d.mean().item() - mean) < 1.0 * sd, (name, d.mean(), mean, sd)
            continue
        tol = 0.3 if fit.method == "numpyro-nuts" else 0.45
        assert abs(d.mean().item() - mean) < tol * sd, (name, d.mean(), mean, sd)
        assert 0.65 * sd < d.std().item() < 1.4 * sd, (name, d.std(), sd)
