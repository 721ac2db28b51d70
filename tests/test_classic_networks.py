"""The bundled classic networks: planned variable elimination against pgmpy's (50 random queries per
network, evidence drawn from the net so that it is possible), batches against single queries, the
MAP against brute-force max-product where the joint fits in memory (a local-optimality certificate
elsewhere), and the registered models through ppgen.fit and ppgen.compare."""
import functools
import logging
import math
import string

import numpy as np
import pytest
import torch

import ppgen
from ppgen.errors import DataError
from ppgen.inference import elimination
from ppgen.models.bayesnet import CLASSIC, BayesNet, classic

pytest.importorskip("pgmpy")
from pgmpy.inference import VariableElimination  # noqa: E402

logging.getLogger("pgmpy").setLevel(logging.ERROR)
SMALL = [n for n in CLASSIC if math.prod(classic(n).cards.values()) <= 2**20]  # asia ... sachs


@functools.cache
def net(name: str) -> BayesNet:
    return classic(name)


def forward_draw(bn: BayesNet, rng) -> dict[str, int]:
    values = {}
    for v in bn.variables:
        row = bn.cpts[v][tuple(values[p] for p in bn.parents[v])].numpy()
        values[v] = int(rng.choice(len(row), p=row / row.sum()))
    return values


def random_query(bn: BayesNet, rng) -> tuple[list[str], dict[str, int]]:
    """1-2 queried nodes and 0-4 observed ones, the observed states taken from one forward draw."""
    draw, order = forward_draw(bn, rng), rng.permutation(len(bn.variables))
    num_observed = int(rng.integers(0, 5))
    observed = [bn.variables[i] for i in order[:num_observed]]
    targets = [bn.variables[i] for i in order[num_observed:num_observed + int(rng.integers(1, 3))]]
    return targets, {v: draw[v] for v in observed}


def log_joint(bn: BayesNet, x: dict[str, int]) -> float:
    """log p(x) of a full assignment (-inf where a CPT entry is 0)."""
    p = [float(bn.cpts[v][tuple(x[u] for u in bn.parents[v]) + (x[v],)]) for v in bn.variables]
    return sum(math.log(q) for q in p) if min(p) > 0 else -math.inf


@pytest.mark.parametrize("name", CLASSIC)
def test_fifty_random_queries_equal_pgmpy(name):
    bn = net(name)
    peer = VariableElimination(bn.to_pgmpy())
    rng = np.random.default_rng(CLASSIC.index(name))
    for _ in range(50):
        targets, evidence = random_query(bn, rng)
        named = {v: bn.states[v][i] for v, i in evidence.items()}
        factor = peer.query(targets, evidence=named or None, joint=True, show_progress=False)
        theirs = np.transpose(factor.values, [factor.variables.index(v) for v in targets])
        for given in (evidence, named):  # by index and by name
            np.testing.assert_allclose(bn.query(targets, given).numpy(), theirs, atol=1e-6, rtol=0)
        if evidence:
            marginal = peer.query(list(named), joint=True, show_progress=False)
            assert float(bn.log_evidence(evidence)) == pytest.approx(math.log(marginal.get_value(**named)), abs=1e-6)


@pytest.mark.parametrize("name", ["asia", "alarm", "water"])
def test_a_batch_is_the_same_queries_one_by_one(name):
    bn, rng = net(name), np.random.default_rng(7)
    targets, evidence = random_query(bn, rng)
    while not evidence:
        targets, evidence = random_query(bn, rng)
    draws = [forward_draw(bn, rng) for _ in range(12)]
    batch = {v: [d[v] for d in draws] for v in evidence}
    together = bn.query(targets, batch)
    assert together.shape == (12, *(bn.cards[v] for v in targets))
    for i, d in enumerate(draws):
        one = {v: d[v] for v in evidence}
        torch.testing.assert_close(together[i], bn.query(targets, one), atol=1e-12, rtol=0)
        assert float(bn.log_evidence(batch)[i]) == pytest.approx(float(bn.log_evidence(one)), abs=1e-10)
    best = bn.map(batch)
    assert all(best[v].shape == (12,) for v in best)
    for i, d in enumerate(draws[:3]):
        assert {v: int(x[i]) for v, x in best.items()} == bn.map({v: d[v] for v in evidence})


def brute_force_map(bn: BayesNet, evidence: dict[str, int]) -> float:
    """max_z log p(z, e) over the whole joint table."""
    letters = dict(zip(bn.variables, string.ascii_letters))
    inputs = ",".join("".join(letters[u] for u in (*bn.parents[v], v)) for v in bn.variables)
    joint = np.einsum(f"{inputs}->{''.join(letters[v] for v in bn.variables)}",
                      *(bn.cpts[v].numpy() for v in bn.variables), optimize=True)
    return math.log(joint[tuple(evidence.get(v, slice(None)) for v in bn.variables)].max())


@pytest.mark.parametrize("name", CLASSIC)
def test_map_is_the_max_product_assignment(name):
    """Small nets: the MAP's probability is the brute-force maximum of the joint. Every net: the value
    max-product reports is the probability of the assignment it returns, and no single node's change
    raises it (a certificate a wrong backtrack fails)."""
    bn, rng = net(name), np.random.default_rng(100 + CLASSIC.index(name))
    for _ in range(5 if name in SMALL else 3):
        _, evidence = random_query(bn, rng)
        best = bn.map(evidence)
        x = {**evidence, **best}
        value = log_joint(bn, x)
        _, reported = elimination.max_product(bn, bn._evidence(evidence))
        assert value == pytest.approx(float(reported[0]), abs=1e-9)
        if name in SMALL:
            assert value == pytest.approx(brute_force_map(bn, evidence), abs=1e-9)
        for v in best:
            for state in range(bn.cards[v]):
                assert log_joint(bn, {**x, v: state}) <= value + 1e-9, (v, state)


def test_results_name_their_states():
    bn = net("asia")
    frame = bn.query(["lung", "tub"], {"xray": "yes"}, as_frame=True)
    assert list(frame.index.names) == ["lung", "tub"] and list(frame.columns) == ["p"]
    assert frame.loc[("yes", "no"), "p"] == pytest.approx(float(bn.query(["lung", "tub"], {"xray": 0})[0, 1]))
    assert bn.map({"xray": "yes", "dysp": "yes"}, as_names=True)["either"] in bn.states["either"]
    batch = bn.query(["lung"], {"xray": ["yes", "no"]}, as_frame=True)
    assert list(batch.columns) == [0, 1] and batch.loc["yes", 0] > batch.loc["yes", 1]


def test_impossible_evidence_is_refused():
    bn = net("asia")  # either = lung or tub, deterministically
    with pytest.raises(DataError, match="probability 0"):
        bn.query(["asia"], {"lung": "yes", "either": "no"})


def test_plans_are_cached_per_pattern():
    bn = net("child")
    elimination._PLANS.clear()
    for state in range(bn.cards["LowerBodyO2"]):
        bn.query(["Disease"], {"LowerBodyO2": state})
    assert len(elimination._PLANS) == 1
    bn.query(["Disease"], {"LowerBodyO2": 0, "CO2Report": 1})
    assert len(elimination._PLANS) == 2


def test_registered_networks_fit_by_enum_and_compare():
    fit = ppgen.fit("alarm", method="enum", num_samples=500, progress=False)
    evidence = ppgen.models.get("alarm").data()
    bn = net("alarm")
    assert fit.log_evidence == pytest.approx(float(bn.log_evidence(evidence)), abs=1e-9)
    for v, probs in fit.extras["marginals"].items():
        torch.testing.assert_close(probs, bn.query([v], evidence), atol=1e-12, rtol=0)
    draws = fit.samples["HYPOVOLEMIA"]  # exact joint draws: frequencies within 5 binomial standard errors
    exact = bn.query(["HYPOVOLEMIA"], evidence)
    freq = torch.bincount(draws.reshape(-1), minlength=2).double() / draws.numel()
    assert bool(((freq - exact).abs() <= 5 * (exact * (1 - exact) / draws.numel()).sqrt() + 1e-9).all())
    assert fit.extras["map"] == {v: torch.tensor(x) for v, x in bn.map(evidence).items()}

    table = ppgen.compare("asia", num_samples=2000, num_warmup=200, num_chains=2, progress=False)
    assert list(table.index) == ["enum", "likelihood-weighting", "gibbs"] and (table["status"] == "ok").all()
    assert table.reference.source == "exact enumeration"
    assert table.loc["likelihood-weighting", "mean_err_max"] < 0.5


def test_approximate_queries_share_the_interface_and_agree_with_exact():
    bn = net("insurance")
    evidence = {"PropCost": "Thousand", "Accident": "None"}
    exact = bn.query(["RiskAversion"], evidence)
    for method in ("likelihood-weighting", "gibbs"):
        estimate = bn.query(["RiskAversion"], evidence, method=method, num_samples=4000, seed=1)
        assert estimate.probs.shape == exact.shape and bool((estimate.stderr < 0.05).all())
        assert bool(((estimate.probs - exact).abs() <= 5 * estimate.stderr + 1e-3).all()), method
        frame = bn.query(["RiskAversion"], evidence, method=method, as_frame=True, num_samples=500, seed=1)
        assert list(frame.columns) == ["p", "stderr"] and list(frame.index) == list(bn.states["RiskAversion"])
    with pytest.raises(ppgen.errors.ConfigError, match="'exact', 'likelihood-weighting' or 'gibbs'"):
        bn.query(["RiskAversion"], evidence, method="bp")
