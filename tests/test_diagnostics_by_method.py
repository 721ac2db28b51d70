"""Diagnostics that suit the method: chain checks and sampler statistics for MCMC, the guide's
Pareto k-hat, point estimates and ELBO convergence for variational runs."""
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen import diagnose
from ppgen.cli import main

STATS = {"lp", "energy", "step_size", "tree_depth", "n_steps", "diverging", "acceptance_rate"}
CHAIN_CHECKS = {"r_hat", "ess_bulk", "ess_tail", "mcse"}


def _checks(fit, family):
    return diagnose.diagnose(fit.to_arviz(), family=family, method=fit.method, diagnostics=fit.diagnostics,
                             losses=fit.losses)


def normal_mean(y):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("data", len(y)):
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)


Y = 3.0 + torch.randn(50, generator=torch.Generator().manual_seed(0))


def test_svi_on_centered_eight_schools_warns_of_the_guide_not_of_chains(tmp_path, capsys):
    fit = ppgen.fit("eight_schools_centered", method="svi", steps=500, num_samples=200, seed=0, progress=False)
    k = fit.diagnostics["guide_pareto_k"]
    assert isinstance(k, float) and k > diagnose.PARETO_K_MAX  # mean-field Normal vs the funnel
    found = {f.check for f in diagnose.flags(fit.to_arviz(), family="variational", diagnostics=fit.diagnostics,
                                             losses=fit.losses)}
    assert "guide_pareto_k" in found and not found & CHAIN_CHECKS
    fit.save(tmp_path / "run", plots=False)  # the CLI sees k-hat in metrics.json, the method in posterior.nc
    assert ppgen.load(tmp_path / "run").to_arviz().attrs["ppgen_method"] == "svi"
    assert main(["diagnose", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "checks for svi (variational)" in out and "[guide_pareto_k]" in out and "richer guide" in out
    assert "[r_hat]" not in out and "num_chains" not in out and "[ess_bulk]" not in out


def test_map_draws_are_said_to_be_a_point():
    fit = ppgen.fit("eight_schools", method="map", steps=200, num_samples=20, progress=False)
    assert "point estimate" in fit.diagnostics["guide_pareto_k"]  # not computed, and why
    checks, found = _checks(fit, "variational")
    assert "point_estimate" in {f.check for f in found} and not {f.check for f in found} & CHAIN_CHECKS
    assert any(c.check == "guide_pareto_k" and not c.ran for c in checks)


def test_a_bad_nuts_run_gets_chain_divergence_and_tree_depth_flags():
    # a fixed step size far too large for the funnel, and trees cut at depth 3
    fit = ppgen.fit("eight_schools_centered", method="nuts", num_samples=150, num_warmup=50, num_chains=2, seed=0,
                    step_size=10.0, adapt_step_size=False, max_tree_depth=3, progress=False)
    checks, found = _checks(fit, "mcmc")
    flagged = {f.check: f for f in found}
    assert {"r_hat", "ess_bulk", "mcse", "divergences", "tree_depth"} <= set(flagged)
    depth = fit.to_arviz().sample_stats["tree_depth"].values
    assert depth.max() == 3 and f"{int((depth == 3).sum())} of {depth.size} draws" in flagged["tree_depth"].message
    assert fit.diagnostics["divergences"] == int(fit.to_arviz().sample_stats["diverging"].values.sum()) > 0
    assert {c.check for c in checks if c.ran} >= CHAIN_CHECKS | {"divergences", "bfmi", "tree_depth"}


def _check_hmc_stats(stats, chains, draws, selected_energy):
    assert STATS <= set(stats.data_vars)
    for name in STATS:
        assert stats[name].shape == (chains, draws), name
    n_steps, depth = stats["n_steps"].values, stats["tree_depth"].values
    assert (n_steps >= 2 ** (depth - 1)).all() and (n_steps <= 2**depth - 1).all()  # d doublings
    accept = stats["acceptance_rate"].values
    assert stats["diverging"].dtype == bool and ((accept >= 0) & (accept <= 1)).all()
    lp, energy = stats["lp"].values, stats["energy"].values
    assert np.isfinite(lp).all() and (stats["step_size"].values > 0).all()
    # H = U(z) + K(r) >= U(z) = -lp, at the draw (NumPyro) or at the draw the trajectory starts from (Pyro)
    if selected_energy:
        assert (energy >= -lp - 1e-4).all()
    else:
        assert (energy[:, 1:] >= -lp[:, :-1] - 1e-6).all()


def test_pyro_nuts_records_sample_stats_and_gets_e_bfmi():
    fit = ppgen.fit("eight_schools", method="nuts", num_samples=100, num_warmup=100, num_chains=2, seed=0,
                    progress=False)
    idata = fit.to_arviz()
    _check_hmc_stats(idata.sample_stats, 2, 100, selected_energy=False)
    bfmi = np.asarray(ppgen.arviz_bridge.az.bfmi(idata))
    assert bfmi.shape == (2,) and (bfmi > 0).all()
    checks, _ = _checks(fit, "mcmc")
    ran = {c.check for c in checks if c.ran}
    assert {"bfmi", "tree_depth", "divergences"} <= ran and "sample_stats" not in {c.check for c in checks}


def test_numpyro_nuts_stats_are_named_as_arviz_names_them():
    fit = ppgen.fit("eight_schools", method="numpyro-nuts", num_samples=100, num_warmup=100, seed=0, progress=False)
    _check_hmc_stats(fit.to_arviz().sample_stats, 1, 100, selected_energy=True)
    assert fit.diagnostics["max_tree_depth"] == 10


def test_hmc_says_which_stat_it_lacks_and_why():
    fit = ppgen.fit("eight_schools", method="hmc", num_samples=50, num_warmup=50, seed=0, num_steps=5,
                    progress=False)
    stats = fit.to_arviz().sample_stats
    assert STATS - set(stats.data_vars) == {"tree_depth"}
    # Pyro's HMC keeps the trajectory length (initial step size 1 times 5 steps) as the step size adapts
    assert (stats["n_steps"].values == np.maximum(1, (5.0 / stats["step_size"].values).astype(int))).all()
    checks, _ = _checks(fit, "mcmc")
    missing = next(c for c in checks if c.check == "sample_stats")
    assert not missing.ran and "tree_depth" in missing.note and "builds no tree" in missing.note


@pytest.mark.parametrize("steps, lr, converged", [(1000, 0.05, True), (300, 0.01, False)])
def test_elbo_convergence_of_a_conjugate_model(steps, lr, converged):
    fit = ppgen.fit(normal_mean, {"y": Y}, method="svi", steps=steps, lr=lr, num_samples=200, seed=0, progress=False)
    checks, found = _checks(fit, "variational")
    assert ("elbo_convergence" not in {f.check for f in found}) == converged
    assert any(c.check == "elbo_convergence" and c.ran for c in checks)
    if converged:  # a Normal guide for a Normal posterior: the guide is the posterior
        assert fit.diagnostics["guide_pareto_k"] < 0.5


def test_elbo_rule_tells_a_falling_loss_from_noise():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=2000)
    found = []
    diagnose._elbo_check(100.0 + noise, [], found)
    assert found == []
    diagnose._elbo_check(100.0 + noise - np.linspace(0, 20, 2000), [], found)  # falls 2 per 200 steps
    assert [f.check for f in found] == ["elbo_convergence"]
    found = []
    diagnose._elbo_check(1e6 + noise - np.linspace(0, 20, 2000), [], found)  # real, but tiny against the loss
    assert found == []
