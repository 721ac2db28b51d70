"""``numpyro-svi`` and ``numpyro-map``: NumPyro's SVI on the pyroapi programs ``svi`` fits, agreeing
with it (posterior means, ELBO), the closed-form mode, enumerated discrete latents, and refusals."""
import numpy as np
import pytest
import torch
from pyroapi import distributions as dist
from pyroapi import pyro

import ppgen
from ppgen.backend import numpyro_backend


def normal_mean(x, prior_sd=2.0):
    """mu ~ N(0, prior_sd^2), x_i ~ N(mu, 1): the posterior mode is sum(x) / (1 / prior_sd^2 + n)."""
    mu = pyro.sample("mu", dist.Normal(0.0, prior_sd))
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(mu, 1.0), obs=x)


X = np.random.default_rng(0).normal(1.5, 1.0, size=20)


def test_eight_schools_agrees_with_svi():
    pyro_fit, fit = (ppgen.fit("eight_schools", method=method, steps=1000, lr=0.02, num_samples=1000, seed=0,
                               progress=False) for method in ("svi", "numpyro-svi"))
    assert set(fit.chains) == set(pyro_fit.chains) == {"mu", "tau", "theta_trans", "theta"}
    assert fit.chains["theta"].shape == (1, 1000, 8) and fit.chains["theta"].dtype == torch.float32
    assert len(fit.losses) == 1000 and fit.diagnostics["elbo"] == pytest.approx(-np.mean(fit.losses[-100:]))
    for site in ("mu", "tau", "theta_trans"):  # mean-field Normal guides: one optimum, reached up to SGD noise
        ours, theirs = (f.samples[site].double() for f in (fit, pyro_fit))
        if site == "tau":  # the guide's own (unconstrained) scale, where the draws are Normal
            ours, theirs = ours.log(), theirs.log()
        sd = theirs.std(0)
        assert ((ours.mean(0) - theirs.mean(0)).abs() < 0.75 * sd).all(), site
        assert ((ours.std(0) / sd - 1).abs() < 0.3).all(), site
    assert abs(fit.diagnostics["elbo"] - pyro_fit.diagnostics["elbo"]) < 1.0
    assert 0 < fit.diagnostics["guide_pareto_k"] < 1.5


def test_map_is_the_posterior_mode():
    mode = X.sum() / (1 / 2.0**2 + len(X))
    fit = ppgen.fit(normal_mean, {"x": X}, method="numpyro-map", steps=800, lr=0.05, num_samples=10, progress=False)
    assert abs(fit.params["mu_auto_loc"].item() - mode) < 1e-2
    assert torch.allclose(fit.samples["mu"], torch.tensor(mode, dtype=torch.float32), atol=1e-2)
    assert "elbo" not in fit.diagnostics and "not computed" in fit.diagnostics["guide_pareto_k"]


def test_gmm_sums_out_its_assignments():
    fits = {method: ppgen.fit("gmm", method=method, steps=300, lr=0.1, num_samples=50, seed=0, progress=False)
            for method in ("svi", "numpyro-svi")}
    fit = fits["numpyro-svi"]
    assert fit.samples["z"].shape == (50, 272) and set(fit.samples["z"].unique().tolist()) <= {0, 1}
    assert np.isfinite(fit.diagnostics["elbo"])
    assert abs(fit.diagnostics["elbo"] - fits["svi"].diagnostics["elbo"]) < 5.0
    with pytest.raises(ppgen.ConfigError, match="elbo='enum'"):
        ppgen.fit("gmm", method="numpyro-svi", elbo="trace", progress=False)
    with numpyro_backend(), pyro.plate("rows", 3) as rows:  # enumeration left the backend's plates working
        assert rows.shape == (3,)


def test_pyro_only_model_refused():
    import pyro as torch_pyro
    import pyro.distributions as torch_dist

    def pyro_only(x):
        mu = torch_pyro.sample("mu", torch_dist.Normal(torch.zeros(()), 1.0))
        with torch_pyro.plate("data", len(x)):
            torch_pyro.sample("x", torch_dist.Normal(mu, 1.0), obs=x)

    with pytest.raises(ppgen.NotApplicableError, match="Pyro only|pyroapi"):
        ppgen.fit(pyro_only, {"x": X}, method="numpyro-svi", progress=False)


def test_unknown_guide_refused():
    with pytest.raises(ppgen.ConfigError, match="guide 'flow'.*delta, lowrank, mvn, normal"):
        ppgen.fit(normal_mean, {"x": X}, method="numpyro-svi", guide="flow", progress=False)


def test_a_refit_reuses_what_was_compiled_and_answers_as_a_fresh_fit():
    from ppgen.inference import numpyro_svi

    kwargs = dict(method="numpyro-svi", steps=200, lr=0.05, num_samples=50, progress=False)
    numpyro_svi._CACHE.clear()
    fresh = ppgen.fit(normal_mean, {"x": X}, seed=1, **kwargs)
    other = ppgen.fit(normal_mean, {"x": X}, seed=0, **kwargs)  # the guide set up again, at seed 0's values
    again = ppgen.fit(normal_mean, {"x": X}, seed=1, **kwargs)
    assert again.guide is other.guide is fresh.guide and len(numpyro_svi._CACHE) == 1
    assert again.losses == fresh.losses != other.losses
    assert torch.equal(again.samples["mu"], fresh.samples["mu"])
    assert again.diagnostics["guide_pareto_k"] == fresh.diagnostics["guide_pareto_k"]
    shifted = ppgen.fit(normal_mean, {"x": X + 3.0}, seed=1, **kwargs)  # other values, the same shapes: not reused
    assert shifted.guide is not fresh.guide and len(numpyro_svi._CACHE) == 2
    mean = (X + 3.0).sum() / (1 / 2.0**2 + len(X))
    assert abs(shifted.samples["mu"].mean().item() - mean) < 0.15


def test_resume_is_bit_identical(tmp_path):
    kwargs = dict(method="numpyro-svi", num_samples=20, lr=0.05, progress=False, seed=3)
    full = ppgen.fit("eight_schools", steps=60, checkpoint_dir=tmp_path / "full", checkpoint_every=10, **kwargs)
    ppgen.fit("eight_schools", steps=25, checkpoint_dir=tmp_path / "cut", checkpoint_every=10, **kwargs)
    resumed = ppgen.fit("eight_schools", steps=60, checkpoint_dir=tmp_path / "cut", checkpoint_every=10, **kwargs)
    assert len(resumed.losses) == 60 and resumed.losses == full.losses
    for name in full.params:
        assert torch.equal(full.params[name], resumed.params[name]), name


def exploding(x):
    """A likelihood whose location overflows once Adam moves w far."""
    w = pyro.sample("w", dist.Normal(1.0, 1.0))
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(w * 1e10 * w, 1.0), obs=x)


@pytest.mark.parametrize("every", [1, 20])  # one step a chunk; the failed step inside a chunk
def test_nan_stops_the_fit_at_its_step(tmp_path, every):
    kwargs = dict(method="numpyro-map", lr=1e30, progress=False, checkpoint_every=every)
    with pytest.raises(ppgen.NumericalError, match="SVI step [0-9]+: the (gradient of w_auto_loc|loss)") as info:
        ppgen.fit(exploding, {"x": X}, steps=50, checkpoint_dir=tmp_path / "failed", **kwargs)
    saved = torch.load(tmp_path / "failed" / "checkpoint.pt", weights_only=False)
    assert saved["step"] == info.value.step == len(saved["losses"]) and np.isfinite(saved["losses"]).all()
    if saved["step"]:  # the state kept is that of a fit stopped just before the failing step
        cut = ppgen.fit(exploding, {"x": X}, steps=saved["step"], checkpoint_dir=tmp_path / "cut", **kwargs)
        state = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)["state"]
        assert cut.losses == saved["losses"]
        assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(state, saved["state"], strict=True))
