"""Approximate inference on Bayes nets: likelihood weighting and Gibbs sampling against the exact
answers of variable elimination, each within a few of its own standard errors."""
import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import ppgen  # binds BayesNet.query
from ppgen import diagnose
from ppgen.arviz_bridge import az
from ppgen.errors import DataError, NotApplicableError, NumericalError
from ppgen.inference.gibbs import gibbs
from ppgen.inference.likelihood_weighting import likelihood_weighting
from ppgen.models.bayesnet import BayesNet, sprinkler, student

Z = 4.5  # how many of its own standard errors an estimate may be off
SLACK = 2e-3  # a cell this unlikely may go unvisited, with a standard error of 0


def random_net(seed: int, max_nodes: int = 8) -> BayesNet:
    """Up to ``max_nodes`` nodes with 2-4 states and up to 3 parents each, CPT rows ~ Dirichlet(1)
    (as in test_bayesnet.py)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, max_nodes + 1))
    cards = rng.integers(2, 5, size=n)
    names = [f"v{i}" for i in range(n)]
    parents = {names[i]: [names[j] for j in rng.permutation(i)[: rng.integers(0, min(i, 3) + 1)]] for i in range(n)}
    cpts = {v: rng.dirichlet(np.ones(cards[names.index(v)]), size=[cards[names.index(p)] for p in ps])
            for v, ps in parents.items()}
    return BayesNet(parents, cpts)


def cases():
    """(name, net, query, evidence): the student net, and random nets with evidence on 1-2 nodes that
    have parents (evidence on a root gives every sample the same weight)."""
    net = student()
    yield "student", net, ["intelligence"], {}
    yield "student", net, ["grade", "difficulty"], {"letter": 0, "sat": 1}
    yield "student", net, ["intelligence", "difficulty"], {"grade": 2}
    for seed in range(3):
        net, rng = random_net(seed), np.random.default_rng(100 + seed)
        order = sorted(net.variables, key=lambda v: (not net.parents[v], rng.random()))  # children first, shuffled
        evidence = {v: int(rng.integers(net.cards[v])) for v in order[: 1 + seed % 2]}
        yield f"random-{seed}", net, [order[-1]], evidence


CASES = list(cases())


def assert_close(estimate, exact, max_stderr: float):
    error = (estimate.probs - exact).abs()
    assert bool((error <= Z * estimate.stderr + SLACK).all()), (estimate.probs, exact, estimate.stderr)
    assert float(estimate.stderr.max()) < max_stderr
    assert estimate.probs.shape == exact.shape and float(estimate.probs.sum()) == pytest.approx(1.0)


@pytest.mark.parametrize("name, net, query, evidence", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_likelihood_weighting_matches_exact(name, net, query, evidence):
    estimate = likelihood_weighting(net, query, evidence, num_samples=10000, seed=0)
    assert_close(estimate, net.query(query, evidence), max_stderr=0.05)
    assert 0 < estimate.ess <= 10000
    assert estimate.log_evidence == pytest.approx(float(net.log_evidence(evidence)),
                                                  abs=Z * math.sqrt(1 / estimate.ess - 1 / 10000) + 1e-9)
    draws = estimate.draws[query[0]]
    assert draws.shape == (1, 10000) and draws.dtype == torch.long and set(estimate.draws) == {
        v for v in net.variables if v not in evidence}


@pytest.mark.parametrize("name, net, query, evidence", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_gibbs_matches_exact(name, net, query, evidence):
    estimate = gibbs(net, query, evidence, num_samples=1500, num_warmup=200, num_chains=4, seed=0)
    assert_close(estimate, net.query(query, evidence), max_stderr=0.05)
    assert bool((estimate.r_hat[estimate.probs > 0.01] < 1.05).all())
    assert estimate.draws[query[0]].shape == (4, 1500)


def test_without_evidence_the_weights_are_all_one():
    net = student()
    estimate = likelihood_weighting(net, ["grade"], num_samples=5000, seed=1)
    assert estimate.ess == pytest.approx(5000, rel=1e-9) and estimate.log_evidence == pytest.approx(0, abs=1e-12)
    p = estimate.probs
    assert torch.allclose(estimate.stderr, (p * (1 - p) / 5000).sqrt())  # the binomial standard error


def test_impossible_evidence_is_a_clear_error():
    net = BayesNet({"x": [], "y": ["x"], "z": ["y"]},  # y is a copy of x
                   {"x": [0.5, 0.5], "y": [[1.0, 0.0], [0.0, 1.0]], "z": [[0.3, 0.7], [0.6, 0.4]]})
    with pytest.raises(NumericalError, match="weight 0: the evidence x=0, y=1 is impossible.*use gibbs"):
        likelihood_weighting(net, ["z"], {"x": 0, "y": 1}, num_samples=100, seed=0)
    with pytest.raises(NumericalError, match="gibbs found no state to start"):
        gibbs(net, ["z"], {"x": 0, "y": 1}, num_samples=10, seed=0)
    with pytest.raises(DataError, match="both queried and observed"):
        likelihood_weighting(net, ["x"], {"x": 0})
    assert likelihood_weighting(net, ["z"], {"x": 0, "y": 0}, num_samples=10, seed=0).ess == pytest.approx(10)


def test_gibbs_is_stuck_by_a_deterministic_cpt_and_r_hat_says_so():
    """c = a OR b: with a, b and c moved one at a time, c never changes (to turn it off, a and b must
    both be off first, and neither can go while c is on), so each chain keeps the c it started with."""
    net = BayesNet({"a": [], "b": [], "c": ["a", "b"], "d": ["c"]},
                   {"a": [0.7, 0.3], "b": [0.8, 0.2], "c": [[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]],
                    "d": [[0.5, 0.5], [0.4, 0.6]]})
    estimate = gibbs(net, ["c"], {"d": 1}, num_samples=500, num_warmup=50, num_chains=4, seed=0)
    c = estimate.draws["c"]
    assert bool((c == c[:, :1]).all()) and len(set(c[:, 0].tolist())) == 2  # constant chains, both islands
    assert float(estimate.r_hat.max()) > 1.5
    assert_close(likelihood_weighting(net, ["c"], {"d": 1}, seed=0), net.query(["c"], {"d": 1}), max_stderr=0.05)


@pytest.mark.skipif(not hasattr(BayesNet, "model"), reason="BayesNet.model (a net as a Pyro program) not there yet")
def test_fit_draws_match_exact():
    net = sprinkler()
    fit = ppgen.fit(net, {"wet": 1}, method="gibbs", num_samples=3000, num_warmup=200, num_chains=2, progress=False)
    assert set(fit.chains) == {"rain", "sprinkler"} and fit.chains["rain"].shape == (2, 3000)
    for v, draws in fit.chains.items():  # (rain, sprinkler) | wet mixes slowly: its ESS is small, the test too
        p = float(net.query([v], {"wet": 1})[1])
        ess = float(az.ess(draws.double().numpy(), method="mean"))
        assert abs(float(draws.double().mean()) - p) < Z * math.sqrt(p * (1 - p) / ess)

    fit = ppgen.fit(net, {"wet": 1}, method="likelihood-weighting", num_samples=20000, seed=3, progress=False)
    assert fit.chains["rain"].shape == (1, 20000) and 0 < fit.diagnostics["ess_kish"] < 20000
    p, ess = float(net.query(["rain"], {"wet": 1})[1]), fit.diagnostics["ess_kish"]
    resampled = math.sqrt(p * (1 - p) * (1 / ess + 1 / 20000))  # the weights' error, and the resampling's
    assert float(fit.chains["rain"].double().mean()) == pytest.approx(p, abs=Z * resampled)
    assert fit.log_evidence == pytest.approx(float(net.log_evidence({"wet": 1})), abs=0.05)
    checks, found = diagnose.diagnose(fit.to_arviz(), family="importance", method=fit.method,
                                      diagnostics=fit.diagnostics)
    ran = {c.check for c in checks if c.ran}
    assert {"ess_kish", "weights_pareto_k"} <= ran and "r_hat" not in ran
    assert not [f for f in found if f.check in ("ess_kish", "weights_pareto_k")]


@pytest.mark.skipif(not hasattr(BayesNet, "model"), reason="BayesNet.model (a net as a Pyro program) not there yet")
def test_compare_runs_the_sampling_methods_on_a_net_by_default():
    table = ppgen.compare(student(), {"letter": 0, "sat": 1}, num_samples=500, num_warmup=100, progress=False)
    assert list(table.index) == ["enum", "likelihood-weighting", "gibbs"]
    assert (table["status"] == "ok").all(), table["note"]
    assert list(table["family"]) == ["exact", "importance", "mcmc"]
    assert table.reference.kind == "exact" and (table["mean_err_max"].iloc[1:] < 0.5).all()
    assert table.loc["gibbs", "r_hat_max"] < 1.05 and table.loc["likelihood-weighting", "ess_bulk_per_s"] > 0


def test_a_program_that_is_not_a_net_is_refused():
    def mixture(y):
        z = pyro.sample("z", dist.Bernoulli(0.5))
        pyro.sample("y", dist.Normal(z, 1.0), obs=y)

    for method in ("gibbs", "likelihood-weighting"):
        with pytest.raises(NotApplicableError, match="needs a discrete Bayes net"):
            ppgen.fit(mixture, {"y": torch.tensor(0.3)}, method=method, progress=False)
