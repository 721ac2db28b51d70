"""``ppgen.sbc``: simulation-based calibration on a conjugate normal model (NUTS calibrated, MAP read as a
posterior flagged), its rank and uniformity statistics on ranks known to be uniform or not, and ``ppgen sbc``."""
import json

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen
from ppgen.cli import main
from ppgen.sbc import COLUMNS, chi_square_test, ecdf_band, ecdf_test, observed_keys, ranks_of

N_OBS = 10
DATA = {"y": torch.zeros(N_OBS)}  # only its shape matters: every simulation draws its own y


def model(y=None):
    """mu ~ N(0, 1), y_i ~ N(mu, 1): the posterior is N(sum(y) / (n + 1), 1 / (n + 1))."""
    mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    with pyro.plate("data", N_OBS):
        pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)


def doubled(y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    with pyro.plate("data", N_OBS):
        pyro.sample("obs", dist.Normal(mu, 1.0), obs=2 * y)


def with_factor(y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    pyro.factor("shrink", -mu**2)
    with pyro.plate("data", N_OBS):
        pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)


# ------------------------------------------------------------------ the statistics, on known ranks


def test_rank_counts_the_draws_below_and_breaks_ties_at_random():
    draws = np.arange(10.0)[:, None].repeat(3, 1)  # L = 10 draws 0..9 of three parameters
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(ranks_of(np.array([-1.0, 4.5, 99.0]), draws, rng), [0, 5, 10])
    tied = [ranks_of(np.array([3.0]), np.full((4, 1), 3.0), rng)[0] for _ in range(2000)]  # all four draws tie
    assert set(tied) == {0, 1, 2, 3, 4}
    assert np.bincount(tied).min() > 300  # uniform: 400 each


def test_uniformity_tests_accept_uniform_ranks_and_reject_ranks_all_zero():
    L = 9
    uniform = np.repeat(np.arange(L + 1), 5)  # every rank exactly as often: N = 50
    assert chi_square_test(uniform, L)[1] == pytest.approx(1.0) and ecdf_test(uniform, L) > 0.99
    for bad in (np.zeros(50, int), np.r_[np.zeros(25, int), np.full(25, L)]):  # all 0; U-shaped (MAP's ranks)
        assert chi_square_test(bad, L)[1] < 1e-10 and ecdf_test(bad, L) < 1e-3
    low, high = ecdf_band(50, L, 0.99)
    counts = np.arange(1, L + 1) * 5  # the uniform ranks' ECDF counts, ranks <= k
    assert np.all((low <= counts) & (counts <= high))
    assert high[0] < 50  # ranks all 0 (50 of them <= 0) leave it at once


def test_band_is_simultaneous_and_matches_arviz():
    from arviz.stats.ecdf_utils import ecdf_confidence_band

    from ppgen.sbc import _outside

    N, L = 40, 19
    z = np.arange(1, L + 1) / (L + 1)
    low, high = ecdf_band(N, L, 0.95)
    arviz_low, arviz_high = ecdf_confidence_band(N, z, z, prob=0.95, method="optimized")
    assert np.abs(low - arviz_low * N).max() <= 1 and np.abs(high - arviz_high * N).max() <= 1  # ArviZ's exact band
    rng = np.random.default_rng(1)
    samples = rng.integers(0, L + 1, size=(400, N))  # uniform ranks leave a 95% band 5% of the time, not more
    outside = [_outside(r, L, 0.95) for r in samples]
    assert 0.02 < np.mean(outside) < 0.09
    counts = np.stack([np.bincount(r, minlength=L + 1).cumsum()[:-1] for r in samples])
    np.testing.assert_array_equal(outside, ((counts < low) | (counts > high)).any(1))  # the test is the band's
    assert 0.02 < np.mean([ecdf_test(r, L) < 0.05 for r in samples]) < 0.09
    assert 0.02 < np.mean([chi_square_test(r, L)[1] < 0.05 for r in samples]) < 0.09


# ------------------------------------------------------------------ the simulations


@pytest.fixture(scope="module")
def calibration():
    # 30 simulations in this process: 8-30 s measured on two shared cores, where a pool of two gained nothing
    return ppgen.sbc(model, DATA, methods=["nuts", "map"], num_sims=30, seed=0, num_samples=60, num_warmup=40,
                     steps=30, workers=1, progress=False)


def test_nuts_is_calibrated(calibration):
    row = calibration.table.set_index("method").loc["nuts"]
    assert list(calibration.table.columns) == COLUMNS and row["param"] == "mu"
    assert row["sims"] == 30 and row["failed"] == 0 and row["L"] == 15  # 60 draws thinned by MCMC_THIN = 4
    assert row["ess_bulk"] > row["L"] and not row["note"]  # the thinned draws are about independent
    ranks = calibration.ranks["nuts"]["mu"]
    assert ranks.min() >= 0 and ranks.max() <= 15 and len(np.unique(ranks)) > 10
    assert row["chi2_p"] > 0.01 and row["ecdf_p"] > 0.01 and not row["outside_99"] and row["calibrated"]


def test_map_read_as_a_posterior_is_flagged(calibration):
    row = calibration.table.set_index("method").loc["map"]
    assert row["L"] == 60  # independent draws are not thinned
    ranks = calibration.ranks["map"]["mu"]
    assert set(np.unique(ranks)) <= {0, 60}  # every draw is the mode: the truth lies below or above all of them
    assert row["chi2_p"] < 1e-6 and row["ecdf_p"] < 1e-3 and row["outside_95"] and row["outside_99"]
    assert not row["calibrated"]


def test_results_do_not_depend_on_the_number_of_workers():
    options = dict(methods=["map"], num_sims=4, seed=3, steps=30, num_samples=5, progress=False)
    inline = ppgen.sbc(model, DATA, workers=1, **options)
    pooled = ppgen.sbc(model, DATA, workers=2, **options)  # spawned processes import this module's model
    np.testing.assert_array_equal(inline.ranks["map"]["mu"], pooled.ranks["map"]["mu"])


def test_unpicklable_model_runs_inline_with_a_warning():
    local = lambda y=None: model(y)  # noqa: E731  (a lambda cannot be pickled by reference)
    with pytest.warns(ppgen.errors.PPGenWarning, match="cannot be sent to worker processes"):
        result = ppgen.sbc(local, DATA, methods=["map"], num_sims=2, steps=10, num_samples=2, workers=2,
                           progress=False)
    assert len(result.ranks["map"]["mu"]) == 2


def test_observed_site_without_a_data_argument_is_refused():
    assert observed_keys(ppgen.prepare(model, DATA)) == {"obs": "y"}
    with pytest.raises(ppgen.DataError, match="observed site 'obs' is none of its data arguments"):
        ppgen.sbc(doubled, {"y": torch.ones(N_OBS)}, methods=["map"], num_sims=2, workers=1, progress=False)
    # 2 * 0 == 0: matched by its values, the argument is caught on the simulated data, before any fit
    with pytest.raises(ppgen.DataError, match="does not observe data argument 'y' as given"):
        ppgen.sbc(doubled, DATA, methods=["map"], num_sims=2, workers=1, progress=False)
    with pytest.raises(ppgen.NotApplicableError, match="factor site\\(s\\) 'shrink'"):
        ppgen.sbc(with_factor, DATA, methods=["map"], num_sims=2, workers=1, progress=False)


def test_cli_writes_table_ranks_and_plots(tmp_path, capsys):
    out = tmp_path / "sbc"
    code = main(["sbc", "eight_schools", "--methods", "map,svi", "--num-sims", "6", "--steps", "20",
                 "--num-samples", "9", "--workers", "1", "--out", str(out), "--no-progress"])
    assert code == 0
    for name in ("sbc.csv", "ranks.json", "ranks.png", "ecdf.png"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob(".*.tmp"))
    saved = json.loads((out / "ranks.json").read_text())
    assert saved["num_sims"] == 6 and saved["methods"]["svi"]["L"] == 9
    assert len(saved["methods"]["map"]["ranks"]["theta[7]"]) == 6
    table = (out / "sbc.csv").read_text()
    assert table.startswith(",".join(COLUMNS)) and "tau" in table
    printed = capsys.readouterr().out
    assert "chi2_p" in printed and "theta_trans[0]" in printed and str(out) in printed
