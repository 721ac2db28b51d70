"""``ppgen.fit`` over every method: exact answers where they exist, the ArviZ bridge on every
result, and bad input caught before any fitting."""
import itertools
import math
import time

import numpy as np
import pytest
import torch
from pyroapi import distributions as dist
from pyroapi import pyro

import ppgen
from ppgen.arviz_bridge import az
from ppgen.models.gmm import gmm


def normal_mean(x, prior_sd=2.0):
    """mu ~ N(0, prior_sd^2), x_i ~ N(mu, 1): conjugate, posterior known in closed form."""
    mu = pyro.sample("mu", dist.Normal(0.0, prior_sd))
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(mu, 1.0), obs=x)


def conjugate_posterior(x, prior_sd=2.0):
    precision = 1 / prior_sd**2 + len(x)
    return x.sum() / precision, precision**-0.5


X = np.random.default_rng(0).normal(1.5, 1.0, size=20)


@pytest.mark.parametrize("method", ["svi", "nuts", "numpyro-nuts", "hmc"])
def test_conjugate_posterior_recovered(method):
    mean, sd = conjugate_posterior(X)
    fit = ppgen.fit(normal_mean, {"x": X}, method=method, num_samples=1500, num_warmup=300, steps=1500,
                    progress=False, **({"lr": 0.02} if method == "svi" else {}))
    draws = fit.samples["mu"].double()
    assert abs(draws.mean().item() - mean) < 0.12 * sd
    assert abs(draws.std().item() / sd - 1) < 0.12


def test_map_is_the_posterior_mode():
    mean, _ = conjugate_posterior(X)
    fit = ppgen.fit(normal_mean, {"x": X}, method="map", steps=800, lr=0.05, num_samples=10, progress=False)
    assert abs(fit.params["AutoDelta.mu"].item() - mean) < 1e-3
    assert fit.losses[-1] <= fit.losses[0]


def _gmm_data():
    x = np.array([[-1.2], [0.3], [2.2], [0.9], [-0.1]])
    return {"x": x, "K": 3, "weights": np.array([0.2, 0.3, 0.5]), "locs": np.array([[-1.0], [0.0], [1.5]]),
            "scales": np.array([[0.7], [0.5], [1.2]])}


def _brute_force(d):
    """log p(x) and p(z_n = k | x) by summing the joint over all K^N assignments."""
    from scipy.stats import norm

    x, w, m, s = d["x"][:, 0], d["weights"], d["locs"][:, 0], d["scales"][:, 0]
    joints = {}
    for z in itertools.product(range(d["K"]), repeat=len(x)):
        z = np.array(z)
        joints[tuple(z)] = np.sum(np.log(w[z]) + norm.logpdf(x, m[z], s[z]))
    log_z = np.logaddexp.reduce(list(joints.values()))
    marginals = np.zeros((len(x), d["K"]))
    for z, lp in joints.items():
        marginals[np.arange(len(x)), z] += math.exp(lp - log_z)
    best = max(joints, key=joints.get)
    return log_z, marginals, np.array(best)


def test_gmm_enum_equals_brute_force():
    d = _gmm_data()
    fit = ppgen.fit(gmm, d, method="enum", num_samples=4000, progress=False, dtype=torch.float64)
    log_z, marginals, best = _brute_force(d)
    assert abs(fit.log_evidence - log_z) < 1e-6
    np.testing.assert_allclose(fit.extras["marginals"]["z"].numpy(), marginals, atol=1e-6)
    np.testing.assert_array_equal(fit.extras["map"]["z"].numpy(), best)
    # joint posterior draws: their frequencies match the exact marginals within Monte Carlo error
    freq = torch.nn.functional.one_hot(fit.samples["z"], 3).double().mean(0).numpy()
    assert np.abs(freq - marginals).max() < 4 * 0.5 / math.sqrt(4000)


def test_enum_refuses_continuous_latents():
    with pytest.raises(ppgen.NotApplicableError, match="continuous latent"):
        ppgen.fit("gmm", method="enum", progress=False)


@pytest.mark.parametrize("method", ["svi", "map", "nuts", "hmc", "numpyro-nuts"])
def test_every_method_goes_through_the_arviz_bridge(method):
    fit = ppgen.fit("eight_schools", method=method, num_samples=60, num_warmup=40, steps=50, progress=False)
    idata = fit.to_arviz()
    for group in ("posterior", "log_likelihood", "posterior_predictive", "observed_data"):
        assert hasattr(idata, group), group
    assert set(idata.posterior.data_vars) == {"mu", "tau", "theta_trans", "theta"}  # the deterministic site too
    assert list(idata.log_likelihood.data_vars) == ["y"]
    assert idata.posterior["theta"].dims == ("chain", "draw", "school")
    assert idata.log_likelihood["y"].shape == (fit.num_chains, 60, 8)
    # the pointwise log-likelihood is the model's: check one draw by hand
    s = fit.samples
    expected = torch.distributions.Normal(s["theta"][0], torch.tensor(ppgen.data.load_eight_schools()["sigma"])
                                          .float()).log_prob(torch.tensor(ppgen.data.load_eight_schools()["y"]).float())
    np.testing.assert_allclose(idata.log_likelihood["y"].values[0, 0], expected.numpy(), rtol=1e-5, atol=1e-5)
    summary = fit.summary()
    assert {"mean", "sd", "ess_bulk", "r_hat"} <= set(summary.columns)
    assert az.loo(idata).elpd_loo < 0


def test_enum_fit_goes_through_the_arviz_bridge():
    fit = ppgen.fit(gmm, _gmm_data(), method="enum", num_samples=50, progress=False)
    idata = fit.to_arviz()
    assert idata.posterior["z"].shape == (1, 50, 5)
    assert az.loo(idata).elpd_loo < 0


def test_discrete_latents_are_enumerated_out_for_nuts():
    """GMM with free parameters by NUTS: assignments z are summed out in sampling, then drawn from
    their exact conditional; the pointwise log-likelihood marginalizes z."""
    x = np.concatenate([np.random.default_rng(1).normal(-2, 0.4, (8, 1)),
                        np.random.default_rng(2).normal(2, 0.4, (8, 1))])
    fit = ppgen.fit(gmm, {"x": x, "K": 2}, method="nuts", num_samples=40, num_warmup=40, progress=False, jit=True)
    assert fit.samples["z"].shape == (40, 16)
    z = fit.samples["z"]
    # points in the same true cluster share an assignment in (almost) every draw, the two clusters differ
    assert (z[:, :8] == z[:, :1]).float().mean() > 0.95 and (z[:, 8:] == z[:, 8:9]).float().mean() > 0.95
    assert (z[:, 0] != z[:, 8]).float().mean() > 0.95
    ll = fit.to_arviz().log_likelihood["x"].values[0]
    assert ll.shape == (40, 16) and np.isfinite(ll).all()


def test_float64_data_gives_float64_draws():
    fit = ppgen.fit("eight_schools", method="svi", steps=20, num_samples=10, dtype=torch.float64, progress=False)
    assert all(v.dtype == torch.float64 for v in fit.samples.values())
    assert all(v.dtype == torch.float64 for v in fit.params.values())


# ---------------------------------------------------------------- bad input, before any fitting
SCHOOLS = ppgen.data.load_eight_schools()


def _fails_fast(exc, match, *args, **kwargs):
    start = time.perf_counter()
    with pytest.raises(exc, match=match):
        ppgen.fit(*args, progress=False, **kwargs)
    assert time.perf_counter() - start < 5.0


def test_missing_data_key():
    _fails_fast(ppgen.DataError, "'sigma'", "eight_schools", {"J": 8, "y": SCHOOLS["y"]})


def test_missing_observation_says_nothing_is_observed():
    _fails_fast(ppgen.DataError, "observes nothing.*y", "eight_schools", {"J": 8, "sigma": SCHOOLS["sigma"]})


def test_extra_data_key():
    _fails_fast(ppgen.DataError, "'sigmas'.*not arguments", "eight_schools", {**SCHOOLS, "sigmas": SCHOOLS["sigma"]})


def test_wrong_shape_names_the_site():
    _fails_fast(ppgen.DataError, r"site 'y'.*expected shape \(8,\).*got \(7,\)", "eight_schools",
                {**SCHOOLS, "y": SCHOOLS["y"][:7]})


def test_nan_in_observed_data():
    y = SCHOOLS["y"].copy()
    y[3] = np.nan
    _fails_fast(ppgen.DataError, r"data\['y'\].*NaN.*index \(3,\)", "eight_schools", {**SCHOOLS, "y": y})


def test_value_outside_support_names_the_site():
    def counts(x):
        rate = pyro.sample("rate", dist.Gamma(2.0, 1.0))
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Poisson(rate), obs=x)

    _fails_fast(ppgen.DataError, "site 'x'.*support", counts, {"x": np.array([1.0, 2.0, -3.0])})


def test_unknown_method_and_model():
    _fails_fast(ppgen.UnknownNameError, "unknown method 'nutz'.*nuts", "eight_schools", method="nutz")
    _fails_fast(ppgen.UnknownNameError, "unknown model 'eight_school'.*eight_schools", "eight_school")


def test_pyro_only_model_refused_by_numpyro():
    _fails_fast(ppgen.NotApplicableError, "Pyro only|pyroapi", _pyro_only, {"x": X}, method="numpyro-nuts")


def _pyro_only(x):
    import pyro as torch_pyro
    import pyro.distributions as torch_dist

    mu = torch_pyro.sample("mu", torch_dist.Normal(torch.zeros(()), 1.0))
    with torch_pyro.plate("data", len(x)):
        torch_pyro.sample("x", torch_dist.Normal(mu, 1.0), obs=x)


def _coin(y):
    z = pyro.sample("z", dist.Bernoulli(0.3), infer={"enumerate": "parallel"})
    with pyro.plate("n", len(y)):
        pyro.sample("y", dist.Normal(2.0 * z, 1.0), obs=y)


def test_model_without_continuous_latents():
    """MCMC has nothing to sample and says what to use; SVI's draws of z come from its exact conditional."""
    y = [1.5, 0.3, 2.2]
    _fails_fast(ppgen.NotApplicableError, "no continuous latent.*method='enum'", _coin, {"y": y}, method="nuts")
    fit = ppgen.fit(_coin, {"y": y}, method="svi", steps=1, num_samples=4000, progress=False)
    like = [math.prod(math.exp(-0.5 * (v - 2.0 * z) ** 2) for v in y) for z in (0, 1)]
    exact = 0.3 * like[1] / (0.3 * like[1] + 0.7 * like[0])
    assert abs(fit.samples["z"].mean().item() - exact) < 4 * math.sqrt(exact * (1 - exact) / 4000)


def _scalar_only(y):
    mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    with pyro.plate("n", len(y)):
        pyro.sample("y", dist.Normal(mu.item(), 1.0), obs=y)  # item(): cannot broadcast over draws


@pytest.mark.parametrize("model", [gmm, _scalar_only], ids=["vectorized", "draw-by-draw"])
def test_svi_draws_follow_the_guide(model):
    """Draws are vectorized over samples where the program allows it, else drawn one by one; either
    way their moments are the AutoNormal guide's loc and scale."""
    data = {"y": np.array([0.4, -0.2, 1.1])} if model is _scalar_only else None
    fit = ppgen.fit(model if data else "gmm", data, method="svi", steps=50, num_samples=4000, progress=False)
    name = "mu" if data else "locs"
    loc, scale = fit.params[f"AutoNormal.locs.{name}"], fit.params[f"AutoNormal.scales.{name}"]
    draws = fit.samples[name]
    assert torch.all((draws.mean(0) - loc).abs() < 4 * scale / math.sqrt(4000))
    assert torch.allclose(draws.std(0), scale, rtol=0.06)
