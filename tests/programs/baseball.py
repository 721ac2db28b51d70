"""Partial pooling of batting averages, in the style of Pyro's examples/baseball.py
(``partially_pooled_with_logit``), written with ``pyroapi`` so NumPyro runs it too.

Efron and Morris (1975): 18 players' hits in their first 45 at-bats of the 1970 season.
loc ~ N(-1, 1), scale ~ HalfCauchy(1), alpha_i ~ N(loc, scale), hits_i ~ Binomial(45, logit^-1 alpha_i).

Answer: REFERENCE, from a long raw NumPyro NUTS run (see its comment).
"""
import numpy as np
from pyroapi import distributions as dist
from pyroapi import pyro

PLAYERS = ["Clemente", "Robinson", "Howard", "Johnstone", "Berry", "Spencer", "Kessinger", "Alvarado",
           "Santo", "Swaboda", "Petrocelli", "Rodriguez", "Scott", "Unser", "Williams", "Campaneris",
           "Munson", "Alvis"]
data = {"at_bats": [45] * 18,
        "hits": [18, 17, 16, 15, 14, 14, 13, 12, 11, 11, 10, 10, 10, 10, 10, 9, 8, 7]}


def model(at_bats, hits=None):
    num_players = at_bats.shape[0]
    loc = pyro.sample("loc", dist.Normal(-1.0, 1.0))
    scale = pyro.sample("scale", dist.HalfCauchy(1.0))
    with pyro.plate("num_players", num_players):
        alpha = pyro.sample("alpha", dist.Normal(loc, scale))
        return pyro.sample("obs", dist.Binomial(at_bats, logits=alpha), obs=hits)


# raw NumPyro 0.22 NUTS (tests/programs/_references.py), 4 chains x (2000 warmup + 5000 draws),
# target_accept_prob 0.9, PRNGKey(0), float32 (71 divergences of 20000: the centered funnel): (mean, sd)
REFERENCE = {"loc": (-1.0255, 0.0923), "scale": (0.1727, 0.1065), "alpha[0]": (-0.8791, 0.2012),
             "alpha[5]": (-0.9742, 0.1764), "alpha[10]": (-1.0737, 0.1765), "alpha[17]": (-1.1483, 0.2048)}

METHODS = {
    "map": dict(steps=500, num_samples=20, lr=0.02),  # the 1500-step mode to 0.003
    "numpyro-nuts": dict(num_warmup=1000, num_samples=2000, target_accept_prob=0.9),
    "numpyro-map": dict(steps=500, num_samples=20, lr=0.02),
}
SLOW_METHODS = {  # minutes of CI between them: run with PPGEN_FULL_CORPUS=1
    "numpyro-svi": dict(steps=2000, num_samples=500, lr=0.02),
    "svi": dict(steps=2000, num_samples=500, lr=0.02),
    "nuts": dict(num_warmup=300, num_samples=300, target_accept_prob=0.9),
}
REFUSED = {"enum": "continuous"}


def check(fit):
    s = fit.samples
    if fit.method in ("map", "numpyro-map"):  # centered hierarchy: the mode pools hard; loc near the pooled logit
        assert abs(s["loc"].mean().item() - REFERENCE["loc"][0]) < 0.3, s["loc"].mean()
        return
    for name, (mean, sd) in REFERENCE.items():
        if name.startswith("alpha["):
            j = int(name[6:-1])
            d = s["alpha"].reshape(s["alpha"].shape[0], -1)[:, j].double()
        else:
            d = s[name].reshape(-1).double()
        if fit.method in ("svi", "numpyro-svi"):  # mean-field VI on the centered funnel: its optimum puts scale's
            # mean at 0.25-0.29 (svi and numpyro-svi alike, seeds 0-2, 6000 steps at lr 0.005), 0.8-1.1 sd above
            tol = 1.3 if name == "scale" else 1.0
            assert abs(d.mean().item() - mean) < tol * sd, (name, d.mean(), mean, sd)
            continue
        tol = 0.3 if fit.method == "numpyro-nuts" else 0.45
        assert abs(d.mean().item() - mean) < tol * sd, (name, d.mean(), mean, sd)
        if name != "scale":  # scale's sd is heavy-tailed (HalfCauchy): noisy with few draws
            assert 0.65 * sd < d.std().item() < 1.4 * sd, (name, d.std(), sd)
