"""Programs written the way Pyro's tutorials write them, each failing on ppgen before re-evaluation
stopped assuming broadcasting (issue 16): plain indexing, ``PyroModule`` priors, minibatch plates,
``examples/hmm.py``'s chain, Stan-style flat priors, heavy-tailed priors, dependent bounds."""
import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.distributions import constraints
from pyro.infer import config_enumerate
from pyro.nn import PyroModule, PyroSample
from pyroapi_programs import dependent, regression
from torch import nn

import ppgen
from ppgen import posterior
from ppgen.problem import prepare


def _post_fit(fit):
    """Every post-fit step: summary, ArviZ with LOO, run folder."""
    summary = fit.summary()
    idata = fit.to_arviz()
    assert "log_likelihood" in idata.groups() and "posterior_predictive" in idata.groups(), fit.errors
    assert not fit.errors
    return summary, idata


@config_enumerate
def gmm(data):
    weights = pyro.sample("weights", dist.Dirichlet(0.5 * torch.ones(2)))
    scale = pyro.sample("scale", dist.LogNormal(0.0, 2.0))
    with pyro.plate("components", 2):
        locs = pyro.sample("locs", dist.Normal(0.0, 10.0))
    with pyro.plate("data", len(data)):
        assignment = pyro.sample("assignment", dist.Categorical(weights))
        pyro.sample("obs", dist.Normal(locs[assignment], scale), obs=data)  # plain indexing


@pytest.mark.parametrize("method", ["svi", "map", "nuts"])
def test_gmm_with_plain_indexing_goes_through_every_post_fit_step(method, tmp_path):
    data = torch.tensor([0.0, 1.0, 10.0, 11.0, 12.0])
    # what is checked is the post-fit path, not the fit: a few draws do (NUTS on this enumerated
    # mixture: 50 + 50 took 12 s, 20 + 20 take 4)
    fit = ppgen.fit(gmm, {"data": data}, method=method, num_samples=20, num_warmup=20, steps=100, progress=False)
    summary, idata = _post_fit(fit)
    assert idata.log_likelihood["obs"].shape[-1] == 5 and "assignment[4]" in summary.index
    fit.save(tmp_path)
    assert (tmp_path / "summary.csv").exists() and (tmp_path / "posterior.nc").exists()
    assert not posterior.broadcasts(fit.problem)  # the probe sent it draw by draw


class BayesianRegression(PyroModule):
    def __init__(self):
        super().__init__()
        self.linear = PyroModule[nn.Linear](2, 1)
        self.linear.weight = PyroSample(dist.Normal(0.0, 1.0).expand([1, 2]).to_event(2))
        self.linear.bias = PyroSample(dist.Normal(0.0, 10.0).expand([1]).to_event(1))

    def forward(self, x, y=None):
        sigma = pyro.sample("sigma", dist.Uniform(0.0, 10.0))
        mean = self.linear(x).squeeze(-1)
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("obs", dist.Normal(mean, sigma), obs=y)


def test_pyromodule_regression_summarizes_and_recovers_its_coefficients():
    torch.manual_seed(0)
    x = torch.randn(60, 2)
    y = x @ torch.tensor([1.5, -0.5]) + 0.2 + 0.1 * torch.randn(60)
    fit = ppgen.fit(BayesianRegression(), {"x": x, "y": y}, method="nuts", num_samples=100, num_warmup=100,
                    progress=False)  # weights within 0.025 of the truth (tol 0.1), as with 150 + 150
    _post_fit(fit)
    weight = fit.samples["linear.weight"].mean(0).flatten()
    torch.testing.assert_close(weight, torch.tensor([1.5, -0.5]), atol=0.1, rtol=0)


def logistic(x, y):
    beta = pyro.sample("beta", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", x.shape[0], subsample_size=100) as idx:
        pyro.sample("obs", dist.Bernoulli(logits=x[idx] @ beta), obs=y[idx])


def test_subsampled_plate_fits_on_minibatches_and_scores_every_row():
    torch.manual_seed(0)
    x = torch.randn(500, 2)
    y = torch.bernoulli(torch.sigmoid(x @ torch.tensor([2.0, -1.0])))
    fit = ppgen.fit(logistic, {"x": x, "y": y}, method="svi", steps=1500, lr=0.05, num_samples=200, progress=False)
    _, idata = _post_fit(fit)
    assert fit.problem.subsampled
    assert idata.log_likelihood["obs"].shape == (1, 200, 500)  # every row, not the minibatch
    assert idata.posterior_predictive["obs"].shape == (1, 200, 500)
    torch.testing.assert_close(fit.samples["beta"].mean(0), torch.tensor([2.0, -1.0]), atol=0.35, rtol=0)


@config_enumerate
def hmm(sequences):
    num_steps, num_tones = sequences.shape
    probs_x = pyro.sample("probs_x", dist.Dirichlet(0.9 * torch.eye(2) + 0.1).to_event(1))
    probs_y = pyro.sample("probs_y", dist.Beta(0.1, 0.9).expand([2, num_tones]).to_event(2))
    tones_plate = pyro.plate("tones", num_tones, dim=-1)
    x = 0
    for t in pyro.markov(range(num_steps)):
        x = pyro.sample(f"x_{t}", dist.Categorical(probs_x[x]))  # plain indexing, x outside the tones plate
        with tones_plate:
            pyro.sample(f"y_{t}", dist.Bernoulli(probs_y[x.squeeze(-1)]), obs=sequences[t])


def test_examples_hmm_style_chain_fits_by_map():
    sequences = torch.bernoulli(0.3 * torch.ones(8, 3), generator=torch.Generator().manual_seed(0))
    fit = ppgen.fit(hmm, {"sequences": sequences}, method="map", steps=100, num_samples=50, progress=False)
    _post_fit(fit)
    assert fit.samples["x_7"].shape == (50,)


def flat_regression(x, y):
    beta = pyro.sample("beta", dist.ImproperUniform(constraints.real, (), (2,)))  # Stan: no prior
    sigma = pyro.sample("sigma", dist.ImproperUniform(constraints.positive, (), ()))
    with pyro.plate("data", len(x)):
        pyro.sample("y", dist.Normal(beta[0] + beta[1] * x, sigma), obs=y)


@pytest.mark.parametrize("method", ["nuts", "svi", "map"])
def test_flat_priors_are_validated_and_fit_to_least_squares(method):
    torch.manual_seed(0)
    x = torch.randn(40)
    y = 1.5 + 2.0 * x + 0.5 * torch.randn(40)
    options = {"lr": 0.02} if method != "nuts" else {}
    steps = 800 if method == "map" else 2000  # MAP is at least squares (to 1e-6) by 800 steps
    fit = ppgen.fit(flat_regression, {"x": x, "y": y}, method=method, num_samples=300, num_warmup=300, steps=steps,
                    progress=False, **options)
    _post_fit(fit)
    design = torch.stack([torch.ones(40), x], 1)
    ols = torch.linalg.lstsq(design, y.unsqueeze(-1)).solution.squeeze(-1)  # the flat-prior posterior mean / mode
    torch.testing.assert_close(fit.samples["beta"].mean(0), ols, atol=0.12, rtol=0)


def test_prior_predictive_of_a_flat_prior_is_refused_by_name():
    with pytest.raises(ppgen.NotApplicableError, match="'beta'.*ImproperUniform"):
        ppgen.prior_predictive(flat_regression, {"x": torch.zeros(3), "y": torch.zeros(3)})


def overflowing(y):
    x = pyro.sample("x", dist.Cauchy(0.0, 1e20))
    pyro.sample("y", dist.Normal(x**20, 1.0), obs=y)  # a prior draw overflows to inf


def test_validation_does_not_depend_on_a_lucky_prior_draw():
    pyro.set_rng_seed(0)
    problem = prepare(overflowing, {"y": torch.tensor(1.0)}, device="cpu")
    assert problem.names("latent") == ["x"]


@pytest.mark.parametrize("method", ["nuts", "numpyro-nuts"])
@pytest.mark.parametrize("flat", [False, True], ids=["uniform", "improper"])
def test_a_support_that_depends_on_another_latent_is_sampled_right(flat, method):
    """b ~ Uniform(0, 1 - a): E[a] = 1/2, E[b] = 1/4. Flat on the triangle: E[a] = E[b] = 1/3. With
    NUTS's transform fixed at the initial a, b would leave its support or pile up below 1 - a0."""
    problem = prepare(dependent, {"y": torch.tensor(0.0), "flat": flat}, device="cpu")
    assert problem.dependent == ("b",) and problem.sites["b"].kind == "deterministic"
    fit = ppgen.fit(problem, method=method, num_samples=800, num_warmup=300, progress=False)
    a, b = fit.samples["a"], fit.samples["b"]
    assert bool((b < 1 - a).all()) and bool((b > 0).all())
    expected = (1 / 3, 1 / 3) if flat else (1 / 2, 1 / 4)
    np.testing.assert_allclose([float(a.mean()), float(b.mean())], expected, atol=0.05)
    _post_fit(fit)


def test_a_post_fit_failure_keeps_the_draws_and_says_what_failed(tmp_path):
    """A program that cannot be re-run on its draws (here: it refuses any re-run) still hands back
    its draws and a run folder, with the failed steps named."""
    def fragile(y):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        if not torch.is_grad_enabled():  # validation and training pass; re-evaluation (no_grad) fails
            raise RuntimeError("no second life")
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    fit = ppgen.fit(fragile, {"y": torch.tensor(0.5)}, method="map", steps=3, num_samples=10, progress=False)
    assert fit.samples["mu"].shape == (10,)
    with pytest.warns(RuntimeWarning, match="left out"):
        idata = fit.to_arviz()
    assert "posterior" in idata.groups() and "log_likelihood" not in idata.groups()
    assert "no second life" in fit.errors["log_likelihood"]
    fit.save(tmp_path, plots=False)
    assert "log_likelihood" in ppgen.load(tmp_path).errors


def test_loo_on_a_corpus_style_program_uses_every_point():
    data = torch.tensor([0.0, 1.0, 10.0, 11.0, 12.0])
    fit = ppgen.fit(gmm, {"data": data}, method="svi", steps=100, num_samples=200, progress=False)
    from ppgen.arviz_bridge import az

    loo = az.loo(fit.to_arviz())
    assert loo.n_data_points == 5 and math.isfinite(loo.elpd_loo)


@pytest.mark.parametrize("method", ["nuts", "numpyro-nuts"])
def test_predictions_at_new_inputs_match_the_closed_form(method):
    torch.manual_seed(0)
    x = torch.linspace(-1.0, 1.0, 20)
    y = 1.0 + 2.0 * x + 0.5 * torch.randn(20)
    design = torch.stack([torch.ones(20), x], 1).double()
    precision = design.T @ design / 0.25 + torch.eye(2) / 100.0
    cov = torch.linalg.inv(precision)
    mean = cov @ design.T @ y.double() / 0.25
    new = torch.tensor([0.0, 2.0])
    at = torch.stack([torch.ones(2), new], 1).double()
    fit = ppgen.fit(regression, {"x": x, "y": y}, method=method, num_samples=1000, num_warmup=300, progress=False)
    predicted = fit.predict({"x": new})["y"].double()
    np.testing.assert_allclose(predicted.mean(0), at @ mean, atol=0.08)
    np.testing.assert_allclose(predicted.std(0), (torch.diag(at @ cov @ at.T) + 0.25).sqrt(), rtol=0.1)
    assert fit.to_arviz().predictions["y"].shape == (1, 1000, 2)


def test_prior_predictive_lands_in_arviz_groups():
    x = torch.linspace(-1.0, 1.0, 5)
    pyro.set_rng_seed(0)
    idata = ppgen.prior_predictive(regression, {"x": x, "y": torch.zeros(5)}, num_samples=2000)
    assert {"prior", "prior_predictive", "observed_data"} <= set(idata.groups())
    y = np.asarray(idata.prior_predictive["y"]).reshape(-1, 5)
    np.testing.assert_allclose(y.std(0), np.sqrt(100 + 100 * x.numpy() ** 2 + 0.25), rtol=0.08)
