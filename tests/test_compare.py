"""``ppgen.compare`` against answers known exactly: a conjugate Gaussian posterior (closed form),
a mixture with fixed parameters (brute-force enumeration), posteriordb's draws, exact LOO."""
import itertools
import json
import math
import time
from pathlib import Path

import numpy as np
import pyro.optim
import pytest
import torch
from pyroapi import distributions as dist
from pyroapi import pyro

import ppgen
from ppgen import references
from ppgen.compare import COLUMNS, Run
from ppgen.models.gmm import gmm

POSTERIORDB = Path(__file__).resolve().parents[2] / "shared" / "posteriordb"

# ------------------------------------------------------------------ a strongly correlated 2-D posterior
N_OBS = 10


def sum_of_two(y):
    """z ~ N(0, I_2), y_i ~ N(z_0 + z_1, 1): the data only see the sum, so the posterior of z is a
    Gaussian with correlation -n/(n+1) (-0.91 for n = 10)."""
    z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    with pyro.plate("data", len(y)):
        pyro.sample("y", dist.Normal(z[..., 0] + z[..., 1], 1.0), obs=y)


Y = np.random.default_rng(0).normal(1.0, 1.0, size=N_OBS)
A = np.array([[1.0, 1.0]])
PRECISION = np.eye(2) + N_OBS * A.T @ A  # posterior precision: prior I plus n A^T A


@pytest.fixture(scope="module")
def conjugate():
    ref = references.linear_gaussian(Y, A, 1.0, np.zeros(2), np.eye(2), site="z")
    # a decaying step size lets the mean-field guide settle at its optimum instead of jittering around it
    svi_optim = pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.998})
    table = ppgen.compare(sum_of_two, {"y": Y}, methods=["enum", "svi", "map", "nuts", "numpyro-nuts"], reference=ref,
                          seed=0, num_samples=250, num_warmup=200, steps=1500, progress=False,
                          options={"svi": {"optim": svi_optim}, "map": {"lr": 0.05}})
    return table, ref


def test_linear_gaussian_reference_is_the_closed_form():
    ref = references.linear_gaussian(Y, A, 1.0, np.zeros(2), np.eye(2), site="z")
    cov = np.linalg.inv(PRECISION)
    np.testing.assert_allclose([ref.mean["z[0]"], ref.mean["z[1]"]], cov @ A.T[:, 0] * Y.sum(), rtol=1e-12)
    np.testing.assert_allclose([ref.sd["z[0]"], ref.sd["z[1]"]], np.sqrt(np.diag(cov)), rtol=1e-12)
    # log p(y) two ways: the stacked Gaussian (the reference) and p(y | z) p(z) / p(z | y) at z = 0
    from scipy.stats import multivariate_normal, norm

    at_zero = norm.logpdf(Y, 0.0, 1.0).sum() + multivariate_normal.logpdf([0, 0], np.zeros(2), np.eye(2)) \
        - multivariate_normal.logpdf([0, 0], cov @ A.T[:, 0] * Y.sum(), cov)
    assert ref.log_evidence == pytest.approx(at_zero, abs=1e-9)


def test_table_has_every_column_and_a_row_per_method(conjugate):
    table, _ = conjugate
    assert list(table.columns) == COLUMNS
    assert list(table.index) == ["enum", "svi", "map", "nuts", "numpyro-nuts"]
    assert list(table["seed"]) == [0, 1, 2, 3, 4]  # each run its own seed
    enum = table.loc["enum"]
    assert enum["status"] == "not applicable" and "continuous latent" in enum["note"]
    ok = table[table["status"] == "ok"]
    assert (ok["wall_s"] > 0).all() and (ok["peak_mem_mb"] >= 0).all()
    assert list(ok["draws"]) == [250, 250, 1000, 1000]  # guide draws (the mode repeated for map); 4 chains of 250
    assert table.loc["nuts", "steps"] == 4 * 450 and table.loc["svi", "steps"] == 1500
    assert (table.loc[["nuts", "numpyro-nuts"], "r_hat_max"] < 1.05).all()
    assert table.loc["nuts", "divergences"] == 0
    assert np.isfinite(table.loc[["nuts", "numpyro-nuts"], ["ess_bulk_per_s", "ess_tail_per_s"]].to_numpy()).all()
    assert np.isnan(table.loc["svi", "ess_bulk_per_s"])  # guide draws: their error is the bias columns
    md = table.to_markdown()
    assert md.splitlines()[0].startswith("| run | method |") and md.count("\n") == 2 + len(table)


def test_mcmc_recovers_the_closed_form(conjugate):
    """Errors within Monte Carlo error: sd(mean estimate) = 1/sqrt(ESS) reference sds, and the sd
    of a sample sd is about 1/sqrt(2 ESS) of it; 4.5 of those for 8 checks."""
    table, _ = conjugate
    for run in ("nuts", "numpyro-nuts"):
        rows = table.detail[table.detail["run"] == run].set_index("param")
        for param, row in rows.iterrows():
            where = (run, param, row["mean_err"], row["sd_err"], row["ess_bulk"], row["ess_tail"])
            assert abs(row["mean_err"]) < 4.5 / math.sqrt(row["ess_bulk"]), where
            assert abs(row["sd_err"]) < 4.5 / math.sqrt(2 * row["ess_tail"]), where


def test_mean_field_svi_under_disperses_as_predicted(conjugate):
    """For a Gaussian posterior N(m, Lambda^-1) the best mean-field Normal (min KL(q || p)) has the
    exact means and variances 1 / Lambda_ii, so sd / ref sd = 1 / sqrt(Lambda_ii Sigma_ii)
    (sqrt(1 - rho^2) = 0.417 here), and ELBO = log p(y) - KL with
    KL = (sum_i log Lambda_ii - log det Lambda) / 2 = 0.876."""
    table, ref = conjugate
    cov = np.linalg.inv(PRECISION)
    expected_sd_err = 1 / np.sqrt(np.diag(PRECISION) * np.diag(cov)) - 1
    rows = table.detail[table.detail["run"] == "svi"].set_index("param")
    np.testing.assert_allclose(rows.loc[["z[0]", "z[1]"], "sd_err"], expected_sd_err, atol=0.05)
    assert (rows["mean_err"].abs() < 0.12).all()
    kl = 0.5 * (np.log(np.diag(PRECISION)).sum() - np.linalg.slogdet(PRECISION)[1])
    assert table.loc["svi", "elbo"] < ref.log_evidence
    assert table.loc["svi", "elbo"] == pytest.approx(ref.log_evidence - kl, abs=0.3)


def test_map_finds_the_mean_and_no_spread(conjugate):
    table, _ = conjugate
    rows = table.detail[table.detail["run"] == "map"]
    assert (rows["mean_err"].abs() < 1e-3).all()  # a Gaussian's mode is its mean
    assert (rows["sd_err"] == -1).all()  # a point estimate carries no uncertainty


# ------------------------------------------------------------------ a mixture with fixed parameters: exact
GMM = {"x": np.array([[-1.2], [0.3], [2.2], [0.9], [-0.1]]), "K": 3, "weights": np.array([0.2, 0.3, 0.5]),
       "locs": np.array([[-1.0], [0.0], [1.5]]), "scales": np.array([[0.7], [0.5], [1.2]])}


def _brute_force_gmm():
    """log p(x) and the mean and sd of each z_n under p(z | x), summing over all K^N assignments."""
    from scipy.stats import norm

    x, w, m, s = GMM["x"][:, 0], GMM["weights"], GMM["locs"][:, 0], GMM["scales"][:, 0]
    z = np.array(list(itertools.product(range(GMM["K"]), repeat=len(x))))  # (K^N, N)
    log_joint = (np.log(w[z]) + norm.logpdf(x, m[z], s[z])).sum(1)
    log_z = np.logaddexp.reduce(log_joint)
    p = np.exp(log_joint - log_z)
    mean = p @ z
    sd = np.sqrt(p @ z**2 - mean**2)
    return log_z, {f"z[{n}]": {"mean": mean[n], "sd": sd[n]} for n in range(len(x))}


def test_gmm_enum_column_is_exact():
    log_z, truth = _brute_force_gmm()
    table = ppgen.compare(gmm, GMM, methods=["enum", "nuts", "svi"], reference=truth, num_samples=200,
                          progress=False, dtype=torch.float64)
    enum = table.loc["enum"]
    assert enum["status"] == "ok"
    assert enum["mean_err_max"] < 1e-9 and enum["sd_err_max"] < 1e-9
    assert enum["log_evidence"] == pytest.approx(log_z, abs=1e-9)
    for method in ("nuts", "svi"):  # nothing continuous to sample or fit: said, not crashed
        assert table.loc[method, "status"] == "not applicable"
        assert "no continuous latents" in table.loc[method, "note"]
    # with no reference given, exact enumeration is chosen, and it is the brute-force answer
    auto = ppgen.compare(gmm, GMM, methods=["enum"], num_samples=10, progress=False, dtype=torch.float64).reference
    assert auto.kind == "exact" and auto.log_evidence == pytest.approx(log_z, abs=1e-9)
    for name, moments in truth.items():
        assert auto.mean[name] == pytest.approx(moments["mean"], abs=1e-9)
        assert auto.sd[name] == pytest.approx(moments["sd"], abs=1e-9)


# ------------------------------------------------------------------ references from elsewhere
def normal_mean(x):
    mu = pyro.sample("mu", dist.Normal(0.0, 2.0))
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(mu, 1.0), obs=x)


X = np.random.default_rng(3).normal(1.5, 1.0, size=20)


@pytest.mark.skipif(not (POSTERIORDB / "eight_schools-eight_schools_noncentered.draws.json.zip").exists(),
                    reason="../shared/posteriordb is not beside the repository")
def test_posteriordb_draws_file_matches_its_summary(tmp_path):
    ref = references.from_draws_file(POSTERIORDB / "eight_schools-eight_schools_noncentered.draws.json.zip")
    summary = json.loads((POSTERIORDB / "reference_summaries.json").read_text())
    params = summary["eight_schools-eight_schools_noncentered"]["params"]
    assert len(ref.draws["mu"]) == 10_000
    assert ref.lookup("theta[0]") == "theta[0]" and "theta[8]" not in ref.mean  # Stan's theta[1] is theta[0]
    for stan_name, moments in params.items():
        name = ppgen.data.stan_to_python_index(stan_name)
        assert ref.mean[name] == pytest.approx(moments["mean"], rel=1e-9)
        assert ref.sd[name] == pytest.approx(moments["sd"], rel=1e-4)  # n vs n - 1 in the sd: 5e-5 apart
    entry = tmp_path / "entry.json"  # one entry of reference_summaries.json, as a summary file
    entry.write_text(json.dumps(summary["eight_schools-eight_schools_noncentered"]))
    from_file = references.from_summary_file(entry)
    assert from_file.mean["theta[0]"] == params["theta[1]"]["mean"] and from_file.sd["tau"] == params["tau"]["sd"]


def test_longest_mcmc_run_is_the_reference_when_nothing_better():
    table = ppgen.compare(normal_mean, {"x": X}, methods=[Run("nuts-short", "nuts", {"num_samples": 100}), "map",
                                                          Run("nuts-long", "nuts", {"num_samples": 300})],
                          num_warmup=100, steps=300, options={"map": {"lr": 0.05}}, progress=False)
    assert table.reference.method == "nuts-long" and "longest" in table.reference.source
    assert "the reference" in table.loc["nuts-long", "note"] and np.isnan(table.loc["nuts-long", "mean_err_max"])
    precision = 1 / 2.0**2 + len(X)
    assert table.reference.mean["mu"] == pytest.approx(X.sum() / precision, abs=4 * precision**-0.5 / math.sqrt(100))
    assert table.loc["map", "mean_err_max"] < 0.5


def test_bad_references_and_methods_are_refused_before_running():
    for kwargs, error, match in [({"reference": "no-such-thing"}, ppgen.UnknownNameError, "unknown reference"),
                                 ({"reference": "model"}, ppgen.UnknownNameError, "no registered reference"),
                                 ({"methods": ["svi", "nutz"]}, ppgen.UnknownNameError, "unknown method 'nutz'"),
                                 ({"reference": {"mu": {"mean": 0.0}}}, ppgen.DataError, "'mean' and 'sd'")]:
        start = time.perf_counter()
        with pytest.raises(error, match=match):
            ppgen.compare(normal_mean, {"x": X}, **{"methods": ["svi"], **kwargs}, progress=False)
        assert time.perf_counter() - start < 5.0
    with pytest.raises(ppgen.DataError, match="site 'x'"):
        ppgen.compare(normal_mean, {"x": X[:, None]}, methods=["svi"], progress=False)


# ------------------------------------------------------------------ model comparison
def _exact_loo(x, noise_sd, prior_sd=2.0):
    """sum_i log p(x_i | x_-i) for mu ~ N(0, prior_sd^2), x_i ~ N(mu, noise_sd^2)."""
    from scipy.stats import norm

    total = 0.0
    for i in range(len(x)):
        rest = np.delete(x, i)
        precision = 1 / prior_sd**2 + len(rest) / noise_sd**2
        total += norm.logpdf(x[i], rest.sum() / noise_sd**2 / precision, math.sqrt(noise_sd**2 + 1 / precision))
    return total


def wide_noise(x):
    mu = pyro.sample("mu", dist.Normal(0.0, 2.0))
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(mu, 3.0), obs=x)


def _exact_fit(model, noise_sd, num_draws=4000, prior_sd=2.0):
    """A Fit holding draws from the exact conjugate posterior of ``model`` on ``X``."""
    from ppgen.problem import prepare

    precision = 1 / prior_sd**2 + len(X) / noise_sd**2
    draws = np.random.default_rng(1).normal(X.sum() / noise_sd**2 / precision, precision**-0.5, num_draws)
    problem = prepare(model, {"x": X})
    return ppgen.Fit(method="exact", model_name=problem.name, chains={"mu": torch.as_tensor(draws)[None].float()},
                     seconds=0.0, problem=problem)


def test_compare_models_ranks_by_loo_and_matches_exact_loo():
    """PSIS-LOO from exact posterior draws, through ppgen's pointwise log-likelihood and az.compare,
    matches the exact leave-one-out predictive density (4000 draws: Monte Carlo error ~0.01)."""
    fits = {"noise 1": _exact_fit(normal_mean, 1.0), "noise 3": _exact_fit(wide_noise, 3.0)}
    ranked = ppgen.compare_models(fits)
    assert list(ranked.index) == ["noise 1", "noise 3"]  # the data were drawn with noise sd 1
    assert ranked.loc["noise 1", "elpd_loo"] == pytest.approx(_exact_loo(X, 1.0), abs=0.05)
    assert ranked.loc["noise 3", "elpd_loo"] == pytest.approx(_exact_loo(X, 3.0), abs=0.05)
    assert ranked.loc["noise 3", "elpd_diff"] == pytest.approx(_exact_loo(X, 1.0) - _exact_loo(X, 3.0), abs=0.1)
    waic = ppgen.compare_models(list(fits.values()), ic="waic")
    assert list(waic.index) == ["normal_mean-exact", "wide_noise-exact"] and "elpd_waic" in waic.columns
    other = ppgen.fit(normal_mean, {"x": X[:10]}, method="svi", steps=50, num_samples=100, progress=False)
    with pytest.raises(ppgen.DataError, match="different data"):
        ppgen.compare_models([fits["noise 1"], other])
