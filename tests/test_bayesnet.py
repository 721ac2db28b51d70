"""Bayes nets: exact answers against an independent peer (pgmpy's variable elimination), brute-force
enumeration of the joint, textbook numbers, and the conjugate posterior."""
import logging
import math
import string

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO

import ppgen
from ppgen.device import placement
from ppgen.errors import DataError, NotApplicableError
from ppgen.models.bayesnet import BayesNet, bundled_table, sprinkler, student

pgmpy = pytest.importorskip("pgmpy")
from pgmpy.estimators import BayesianEstimator  # noqa: E402
from pgmpy.factors.discrete import TabularCPD  # noqa: E402
from pgmpy.inference import VariableElimination  # noqa: E402
from pgmpy.models import DiscreteBayesianNetwork  # noqa: E402

logging.getLogger("pgmpy").setLevel(logging.ERROR)


def random_net(seed: int, max_nodes: int = 12, max_joint: int = 2**20) -> BayesNet:
    """Up to ``max_nodes`` nodes with 2-4 states and up to 3 parents each, CPT rows ~ Dirichlet(1),
    listed in a shuffled order (so the net must sort them)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, max_nodes + 1))
    cards = rng.integers(2, 5, size=n)
    while np.prod(cards.astype(float)) > max_joint:  # keep the brute-force joint in memory
        cards[np.argmax(cards)] -= 1
    names = [f"v{i}" for i in range(n)]
    parents = {names[i]: [names[j] for j in rng.permutation(i)[: rng.integers(0, min(i, 3) + 1)]] for i in range(n)}
    cpts = {v: rng.dirichlet(np.ones(cards[names.index(v)]), size=[cards[names.index(p)] for p in ps])
            for v, ps in parents.items()}
    order = rng.permutation(n)
    return BayesNet({names[i]: parents[names[i]] for i in order}, {names[i]: cpts[names[i]] for i in order})


def to_pgmpy(bn: BayesNet) -> DiscreteBayesianNetwork:
    model = DiscreteBayesianNetwork([(p, v) for v in bn.variables for p in bn.parents[v]])
    model.add_nodes_from(bn.variables)
    for v in bn.variables:
        ps = list(bn.parents[v])
        values = bn.cpts[v].reshape(-1, bn.cards[v]).T.numpy()  # (card, parent configurations)
        model.add_cpds(TabularCPD(v, bn.cards[v], values, evidence=ps or None,
                                  evidence_card=[bn.cards[p] for p in ps] or None))
    assert model.check_model()
    return model


def brute_force_joint(bn: BayesNet) -> np.ndarray:
    """The full joint table, axes in ``bn.variables`` order: the product of all CPTs."""
    letters = dict(zip(bn.variables, string.ascii_letters))
    inputs = ",".join("".join(letters[u] for u in (*bn.parents[v], v)) for v in bn.variables)
    output = "".join(letters[v] for v in bn.variables)
    return np.einsum(f"{inputs}->{output}", *(bn.cpts[v].numpy() for v in bn.variables), optimize=True)


def random_evidence(bn: BayesNet, rng) -> dict:
    chosen = rng.permutation(len(bn.variables))[: rng.integers(0, 4)]
    return {bn.variables[i]: int(rng.integers(bn.cards[bn.variables[i]])) for i in chosen}


@pytest.mark.parametrize("seed", range(20))
def test_queries_and_evidence_match_pgmpy_and_map_matches_brute_force(seed):
    bn = random_net(seed)
    peer = VariableElimination(to_pgmpy(bn))
    joint = brute_force_joint(bn)
    rng = np.random.default_rng(1000 + seed)
    for _ in range(3):
        evidence = random_evidence(bn, rng)
        free = [v for v in bn.variables if v not in evidence]
        targets = [free[i] for i in rng.permutation(len(free))[: rng.integers(1, min(3, len(free)) + 1)]]

        ours = bn.query(targets, evidence)
        factor = peer.query(targets, evidence=evidence or None, joint=True, show_progress=False)
        theirs = np.transpose(factor.values, [factor.variables.index(v) for v in targets])
        np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-6, rtol=0)

        if evidence:
            marginal = peer.query(list(evidence), joint=True, show_progress=False)
            expected = math.log(marginal.get_value(**evidence))
        else:
            expected = 0.0
        assert float(bn.log_evidence(evidence)) == pytest.approx(expected, abs=1e-6)

        index = tuple(evidence.get(v, slice(None)) for v in bn.variables)
        conditional = joint[index]  # axes: the free variables, in bn.variables order
        best = np.unravel_index(np.argmax(conditional), conditional.shape)
        assert bn.map(evidence) == {v: int(b) for v, b in zip(free, best)}


def test_textbook_numbers():
    """The sprinkler net's p(rain | wet grass) and Koller & Friedman's student-net queries."""
    assert float(sprinkler().query(["rain"], {"wet": 1})[1]) == pytest.approx(0.3577, abs=5e-5)
    s = student()
    p = lambda var, value, **evidence: float(s.query([var], evidence)[value])  # noqa: E731
    assert p("letter", 1) == pytest.approx(0.502, abs=5e-4)
    assert p("letter", 1, intelligence=0) == pytest.approx(0.389, abs=5e-4)
    assert p("letter", 1, intelligence=0, difficulty=0) == pytest.approx(0.513, abs=5e-4)
    assert p("intelligence", 1, grade=2) == pytest.approx(0.079, abs=5e-4)
    assert p("intelligence", 1, grade=2, sat=1) == pytest.approx(0.578, abs=5e-4)
    assert p("intelligence", 1, letter=0) == pytest.approx(0.140, abs=5e-4)
    assert p("intelligence", 1, grade=2, difficulty=1) == pytest.approx(0.109, abs=5e-4)


def test_parameter_counts_follow_the_graph():
    """Lecture 2: 2^n - 1 for the joint (and for the chain rule), n for independence, 2n - 1 for a chain."""
    n = 6
    names = [f"x{i}" for i in range(n)]
    coin = lambda k: np.full((2,) * k + (2,), 0.5)  # noqa: E731
    chain = BayesNet({v: names[i - 1:i] for i, v in enumerate(names)},
                     {v: coin(min(i, 1)) for i, v in enumerate(names)})
    independent = BayesNet({v: [] for v in names}, {v: coin(0) for v in names})
    chain_rule = BayesNet({v: names[:i] for i, v in enumerate(names)}, {v: coin(i) for i, v in enumerate(names)})
    assert chain.num_parameters() == 2 * n - 1
    assert independent.num_parameters() == n
    assert chain_rule.num_parameters() == chain_rule.num_parameters(factorized=False) == 2**n - 1
    assert student().num_parameters() == 15 and student().num_parameters(factorized=False) == 47


def test_sampling_matches_exact_marginals():
    """Ancestral samples and posterior samples given evidence agree with the exact marginals
    (tolerance: 5 binomial standard errors)."""
    s, n = student(), 20000
    for evidence in ({}, {"letter": 0, "sat": 1}):
        x = s.sample(n, evidence, seed=0)
        assert x.shape == (n, 5) and x.dtype == torch.long
        for j, v in enumerate(s.variables):
            if v in evidence:
                assert bool((x[:, j] == evidence[v]).all())
                continue
            exact = s.query([v], evidence)
            freq = torch.bincount(x[:, j], minlength=s.cards[v]).double() / n
            assert bool(((freq - exact).abs() <= 5 * (exact * (1 - exact) / n).sqrt() + 1e-12).all()), v


def test_complete_data_posterior_is_conjugate_and_matches_pgmpy():
    """Dirichlet(c + counts): its mean equals pgmpy's Bayesian estimate with pseudo-counts c, and its
    log density differs from the learning program's log joint by a constant (it is the posterior)."""
    import pandas as pd

    s, c = student(), 2.0
    x = s.sample(300, seed=3)
    fitted = student().fit(x, concentration=c)
    frame = pd.DataFrame(x.numpy(), columns=s.variables)
    estimator = BayesianEstimator(to_pgmpy(s), frame, state_names={v: list(range(s.cards[v])) for v in s.variables})
    for v in s.variables:
        configurations = math.prod(s.cards[p] for p in s.parents[v])
        cpd = estimator.estimate_cpd(v, prior_type="dirichlet", pseudo_counts=np.full((s.cards[v], configurations), c))
        theirs = cpd.get_values().T.reshape(fitted.cpts[v].shape)
        np.testing.assert_allclose(fitted.cpts[v].numpy(), theirs, atol=1e-12)

    def log_joint(cpts):
        conditioned = poutine.condition(s.learning_program, {f"cpt_{v}": cpts[v] for v in s.variables})
        return poutine.trace(conditioned).get_trace(x, c).log_prob_sum()

    def log_posterior(cpts):
        return sum(fitted.posterior_[v].to_event(cpts[v].dim() - 1).log_prob(cpts[v]) for v in s.variables)

    draws = [{v: fitted.posterior_[v].sample() for v in s.variables} for _ in range(3)]
    gaps = [float(log_joint(d) - log_posterior(d)) for d in draws]
    assert max(gaps) - min(gaps) < 1e-9


def test_learning_program_sums_out_missing_values_exactly():
    """log p(cpts, x_observed) of the learning program = Dirichlet prior + each row's exact evidence."""
    s, c = student(), 2.0
    x = torch.as_tensor(bundled_table(s, n=40, missing=0.3, seed=5))
    conditioned = poutine.condition(s.learning_program, {f"cpt_{v}": s.cpts[v] for v in s.variables})
    with placement(torch.device("cpu"), torch.float64):  # the program's prior in float64, as ppgen.fit(dtype=...) does
        ours = -TraceEnum_ELBO(max_plate_nesting=1).loss(conditioned, lambda x, c: None, x, c)
    prior = sum(dist.Dirichlet(torch.full_like(s.cpts[v], c)).to_event(s.cpts[v].dim() - 1).log_prob(s.cpts[v])
                for v in s.variables)
    rows = sum(float(s.log_evidence({v: int(r[j]) for j, v in enumerate(s.variables) if r[j] >= 0})) for r in x)
    assert ours == pytest.approx(float(prior) + rows, abs=1e-8)


def test_map_fit_with_missing_leaf_values_is_the_closed_form_mode():
    """A missing leaf value sums to 1, so MAP with missing wet-grass values is the Dirichlet mode of
    the counts over the rows where it is observed (and over all rows for the other nodes)."""
    net, c = sprinkler(), 2.0
    x = net.sample(200, seed=1)
    hidden = torch.rand(200, generator=torch.Generator().manual_seed(0)) < 0.3
    x[hidden, 2] = -1
    fitted = sprinkler().fit(x, method="map", concentration=c, steps=200, lr=0.1, progress=False)
    counts = {**net.counts(x.clamp(min=0)), "wet": net.counts(x[~hidden])["wet"]}
    for v in net.variables:
        mode = (counts[v] + c - 1) / (counts[v] + c - 1).sum(-1, keepdim=True)
        torch.testing.assert_close(fitted.cpts[v], mode, atol=1e-4, rtol=0)
    with pytest.raises(NotApplicableError, match="complete data"):
        sprinkler().fit(x, method="exact")


def test_registered_nets_run_on_their_bundled_data():
    for name, net in (("sprinkler", sprinkler()), ("student", student())):
        spec = ppgen.models.get(name)
        x = spec.data()["x"]
        assert x.shape == (400, len(net.variables)) and (x == -1).any()
        trace = poutine.trace(spec.model).get_trace(torch.as_tensor(x))
        assert {f"cpt_{v}" for v in net.variables} <= set(trace.nodes)
        loss = TraceEnum_ELBO(max_plate_nesting=1).loss(
            poutine.condition(spec.model, {f"cpt_{v}": net.cpts[v] for v in net.variables}), lambda x: None,
            torch.as_tensor(x))
        assert math.isfinite(loss)


def test_bad_input_names_the_variable():
    W = [[[1.0, 0.0], [0.1, 0.9]], [[0.2, 0.8], [0.01, 0.99]]]
    parents = {"rain": [], "sprinkler": ["rain"], "wet": ["rain", "sprinkler"]}
    good = {"rain": [0.8, 0.2], "sprinkler": [[0.6, 0.4], [0.99, 0.01]], "wet": W}
    bn = BayesNet(parents, good)
    with pytest.raises(DataError, match="'cloudy'"):
        bn.query(["rain"], {"cloudy": 1})
    with pytest.raises(DataError, match="wet=2 is out of range"):
        bn.log_evidence({"wet": 2})
    with pytest.raises(DataError, match="'sprinkler'.*sum to 1"):
        BayesNet(parents, {**good, "sprinkler": [[0.6, 0.3], [0.99, 0.01]]})
    with pytest.raises(DataError, match="cycle: .*rain -> sprinkler -> rain|cycle: .*sprinkler -> rain -> sprinkler"):
        BayesNet({**parents, "rain": ["sprinkler"]}, {**good, "rain": [[0.8, 0.2], [0.5, 0.5]]})
    with pytest.raises(DataError, match="parent 'cloudy' of 'rain'"):
        BayesNet({**parents, "rain": ["cloudy"]}, good)
    with pytest.raises(DataError, match="CPT of 'wet' must have shape"):
        BayesNet(parents, {**good, "wet": [[0.5, 0.5], [0.5, 0.5]]})
    with pytest.raises(DataError, match="'wet' has no CPT"):
        BayesNet(parents, {"rain": good["rain"], "sprinkler": good["sprinkler"]})
    with pytest.raises(DataError, match="'rain' is both queried and observed"):
        bn.query(["rain"], {"rain": 1})
    with pytest.raises(DataError, match="variable 'wet' takes values 0..1"):
        bn.fit(np.array([[0, 1, 3]]))
    with pytest.raises(DataError, match=r"\(n, 3\) table"):
        bn.fit(np.zeros((5, 4), dtype=int))
