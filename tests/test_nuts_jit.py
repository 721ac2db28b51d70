"""NUTS/HMC compile the potential energy by default, once a check finds the trace faithful, and
fall back to the plain potential (saying why) where it is not; the long-enumerated-chain hint."""
import math
import random
import types
import warnings

import pyro as torch_pyro
import pyro.distributions as tdist
import pytest
import torch
from pyroapi import distributions as dist
from pyroapi import pyro

import ppgen
from ppgen.errors import ConfigError, PPGenWarning
from ppgen.inference import mcmc

N, PRIOR_SD = 20, 2.0


def _normal_data(seed: int = 0) -> dict:
    return {"x": 0.3 + torch.randn(N, generator=torch.Generator().manual_seed(seed))}


def _closed_form(x: torch.Tensor) -> tuple[float, float]:
    """Posterior mean and sd of mu for x_i ~ N(mu, 1), mu ~ N(0, PRIOR_SD^2)."""
    precision = 1 / PRIOR_SD**2 + len(x)
    return float(x.sum()) / precision, precision**-0.5


def branching(x):
    """A conjugate normal mean, written with Python control flow on the latent: both branches give
    the same location, but a trace keeps one of them."""
    mu = pyro.sample("mu", dist.Normal(0.0, PRIOR_SD))
    if mu > 0:  # the line the fallback names
        loc = mu
    else:
        loc = -(-mu)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(loc, 1.0), obs=x)


BRANCH_LINE = branching.__code__.co_firstlineno + 4


def python_random(x):
    """A conjugate normal mean whose location has a tiny Python-side random jitter: a trace freezes it."""
    mu = pyro.sample("mu", dist.Normal(0.0, PRIOR_SD))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(mu + 0.05 * (random.random() - 0.5), 1.0), obs=x)


def _fit(model, data, **kwargs):
    options = {"num_samples": 300, "num_warmup": 200, "seed": 1, "progress": False, **kwargs}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = ppgen.fit(model, data, method=options.pop("method", "nuts"), **options)
    return fit, [w for w in caught if issubclass(w.category, PPGenWarning)]


def _mean_and_se(draws: torch.Tensor) -> tuple[float, float]:
    """The mean of one chain's draws and its Monte Carlo standard error (bulk ESS)."""
    from ppgen.arviz_bridge import az

    values = draws.detach().double().reshape(1, -1).numpy()
    return float(values.mean()), float(values.std() / math.sqrt(float(az.ess(values))))


def test_default_compiles_eight_schools_and_agrees_with_plain():
    default, warned = _fit("eight_schools", None)
    assert default.diagnostics["jit"] == "on"
    assert not warned  # no fallback and no enumerated-chain hint
    plain, _ = _fit("eight_schools", None, jit=False)
    assert plain.diagnostics["jit"] == "off: jit=False"
    for site in ("mu", "tau"):
        (m1, se1), (m2, se2) = _mean_and_se(default.samples[site]), _mean_and_se(plain.samples[site])
        assert abs(m1 - m2) < 4 * math.hypot(se1, se2), site


def test_control_flow_on_a_latent_falls_back_with_the_reason_and_stays_right():
    data = _normal_data()
    fit, warned = _fit(branching, data)
    reason = fit.diagnostics["jit"]
    assert reason.startswith("off: the program reads a value of its latents into Python")
    assert f"test_nuts_jit.py:{BRANCH_LINE}" in reason
    assert len(warned) == 1 and reason[5:] in str(warned[0].message)
    mean, sd = _closed_form(data["x"])
    m, se = _mean_and_se(fit.samples["mu"])
    assert abs(m - mean) < 4 * se
    assert float(fit.samples["mu"].std()) == pytest.approx(sd, rel=0.2)


def test_python_randomness_falls_back():
    data = _normal_data(1)
    fit, warned = _fit(python_random, data, method="hmc", num_steps=5, num_samples=200, num_warmup=100)
    assert fit.diagnostics["jit"].startswith("off: the potential energy changes between two evaluations")
    assert len(warned) == 1
    mean, _ = _closed_form(data["x"])
    m, se = _mean_and_se(fit.samples["mu"])
    assert abs(m - mean) < 4 * se + 0.025  # the jitter moves the location by at most 0.025


def test_forced_jit_refuses_an_unfaithful_trace_with_the_reason():
    with pytest.raises(ConfigError, match=f"jit=True.*reads a value of its latents into Python at "
                                          f"test_nuts_jit.py:{BRANCH_LINE}"):
        ppgen.fit(branching, _normal_data(), method="nuts", num_samples=5, num_warmup=5, progress=False, jit=True)


def test_forced_jit_runs_where_the_check_passes():
    fit, warned = _fit("eight_schools", None, num_samples=20, num_warmup=20, jit=True)
    assert fit.diagnostics["jit"] == "on" and not warned


def test_jit_false_skips_the_check(monkeypatch):
    calls = []
    real = mcmc.jit_mismatch
    monkeypatch.setattr(mcmc, "jit_mismatch", lambda *args: calls.append(1) or real(*args))
    fit, _ = _fit("eight_schools", None, num_samples=20, num_warmup=20, jit=False)
    assert fit.diagnostics["jit"] == "off: jit=False" and not calls
    fit, _ = _fit("eight_schools", None, num_samples=20, num_warmup=20, num_chains=2)
    assert fit.diagnostics["jit"] == "on" and len(calls) == 2  # each chain checks the trace it samples


def test_the_check_leaves_the_random_stream_alone():
    """The check draws its points from a generator of its own: compiled or not, a seed gives the same chain."""
    default, _ = _fit("eight_schools", None, num_samples=30, num_warmup=30)
    plain, _ = _fit("eight_schools", None, num_samples=30, num_warmup=30, jit=False)
    assert torch.allclose(default.samples["mu"][:5], plain.samples["mu"][:5], atol=1e-3)


def test_mismatch_found_where_the_compiled_potential_differs():
    """A compiled potential that disagrees with the plain one away from the initial values."""
    z0 = {"a": torch.zeros(3)}

    def plain(z):
        return (z["a"] ** 2).sum()

    def compiled(z):
        return (z["a"] ** 2).sum() + 1e-2 * (z["a"] != 0).any()

    assert "differs from the plain one at a perturbation" in mcmc.jit_mismatch(compiled, plain, z0)
    assert mcmc.jit_mismatch(plain, plain, z0) is None


T = 30


def switching(y):
    """A two-state switching mean (an HMM), states enumerated along a pyro.markov chain; written with
    pyroapi, so it runs on NumPyro too."""
    stay = pyro.sample("stay", dist.Beta(2.0, 2.0))
    low = pyro.sample("low", dist.Normal(-1.0, 1.0))
    high = pyro.sample("high", dist.Normal(1.0, 1.0))
    z = 0.0
    for t in pyro.markov(range(y.shape[0])):
        z = pyro.sample(f"z_{t}", dist.Bernoulli(z * stay + (1 - z) * (1 - stay)), infer={"enumerate": "parallel"})
        pyro.sample(f"y_{t}", dist.Normal(z * high + (1 - z) * low, 1.0), obs=y[t])


# the same code with Pyro itself as its ``pyro``: it runs on Pyro only
switching_pyro_only = types.FunctionType(switching.__code__, {"pyro": torch_pyro, "dist": tdist,
                                                              "__builtins__": __builtins__}, "switching_pyro_only")


def _switching_data() -> dict:
    states = (torch.arange(T) // 10) % 2
    return {"y": states * 2.0 - 1.0 + 0.5 * torch.randn(T, generator=torch.Generator().manual_seed(0))}


def test_a_long_enumerated_chain_on_numpyro_gets_the_hint():
    fit, warned = _fit(switching, _switching_data(), num_samples=2, num_warmup=2, max_tree_depth=2, jit=False)
    hints = [w for w in warned if "enumerated sites" in str(w.message)]
    assert len(hints) == 1
    assert (f"this chain of {T} enumerated sites is slow in Pyro's NUTS: numpyro-nuts runs the same program "
            f"compiled") in str(hints[0].message)
    assert fit.samples["stay"].shape[-1] == 2


def test_no_hint_for_a_program_that_runs_on_pyro_only():
    problem = ppgen.prepare(switching_pyro_only, _switching_data())
    assert len(problem.names("discrete")) == T
    with warnings.catch_warnings():
        warnings.simplefilter("error", PPGenWarning)
        mcmc.long_chain_hint(problem, "nuts")
    numpyro_problem = ppgen.prepare(switching, _switching_data())
    with pytest.warns(PPGenWarning, match="numpyro-nuts"):
        mcmc.long_chain_hint(numpyro_problem, "nuts")
