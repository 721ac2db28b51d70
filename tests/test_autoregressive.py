"""Autoregressive models over binary vectors: exact normalization, the autoregressive property,
ancestral sampling against the exact likelihood, the lecture's parameter counts, and bad input."""
import itertools

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO

import ppgen
from ppgen.errors import ConfigError, DataError
from ppgen.models.autoregressive import FVSBN, MADE, NADE, PARAMETER_FORMULAS, Independent, MarkovChain, TabularChain

BUILDERS = {
    "Independent": lambda n: Independent(n),
    "MarkovChain": lambda n: MarkovChain(n),
    "TabularChain": lambda n: TabularChain(n),
    "FVSBN": lambda n: FVSBN(n),
    "NADE": lambda n: NADE(n, hidden=8),
    "MADE": lambda n: MADE(n, hidden=(16, 12)),
    "MADE-3-orders": lambda n: MADE(n, hidden=(24,), num_masks=3, natural_order=False, seed=1),
}


def _random(name: str, n: int, seed: int = 0):
    """A model with random (not fitted, not zero) parameters, in float64."""
    torch.manual_seed(seed)
    net = BUILDERS[name](n).double()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 1.0)
    return net


def _all_binary(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


@pytest.mark.parametrize("name", BUILDERS)
def test_probabilities_of_all_2_pow_n_inputs_sum_to_one(name):
    net = _random(name, 10)
    log_p = net.log_prob(_all_binary(10))
    assert log_p.shape == (1024,)
    assert abs(float(torch.logsumexp(log_p.detach(), 0))) < 1e-9


@pytest.mark.parametrize("name", [b for b in BUILDERS if b != "TabularChain"])  # a table lookup has no gradient
def test_conditional_i_depends_only_on_the_variables_before_it(name):
    net = _random(name, 6)
    for k in range(getattr(net, "num_masks", 1)):
        order = net.orders[k] if isinstance(net, MADE) else torch.arange(6)
        position = torch.empty(6, dtype=torch.long)
        position[order] = torch.arange(6)
        x = torch.rand(6, dtype=torch.float64)
        logits = (lambda v: net.logits(v, k)) if isinstance(net, MADE) else net.logits
        jac = torch.autograd.functional.jacobian(logits, x)  # jac[i, j] = d logit_i / d x_j
        allowed = position[None, :] < position[:, None]  # x_j comes before x_i
        assert torch.all(jac[~allowed] == 0)


@pytest.mark.parametrize("name", BUILDERS)
def test_ancestral_samples_follow_the_exact_likelihood(name):
    n, draws = 4, 40_000
    net = _random(name, n, seed=1)
    pyro.set_rng_seed(0)
    x = net.sample(draws)
    assert x.shape == (draws, n) and set(x.unique().tolist()) <= {0.0, 1.0}
    codes = (x * 2 ** torch.arange(n, dtype=x.dtype)).sum(1).long()
    empirical = torch.bincount(codes, minlength=2**n).double() / draws
    exact = net.log_prob(_all_binary(n).flip(-1)).exp()  # same binary code order as `codes`
    # total variation of 16 cells from 40k draws: E[TV] <= 0.5 * sum sqrt(p(1-p)/N) <= 0.01
    assert 0.5 * (empirical - exact).abs().sum() < 0.02


def test_parameter_counts_match_the_lecture_formulas():
    n, d = 10, 8
    assert Independent(n).num_parameters() == PARAMETER_FORMULAS["Independent"][1](n) == n
    assert MarkovChain(n).num_parameters() == PARAMETER_FORMULAS["MarkovChain"][1](n) == 2 * n - 1
    assert TabularChain(n).num_parameters() == PARAMETER_FORMULAS["TabularChain"][1](n) == 2**n - 1 == 1023
    assert sum(2**i for i in range(n)) == 2**n - 1  # the chain rule's 1 + 2 + 4 + ...
    assert FVSBN(n).num_parameters() == PARAMETER_FORMULAS["FVSBN"][1](n) == sum(range(1, n + 1))
    assert NADE(n, d).num_parameters() == PARAMETER_FORMULAS["NADE"][1](n, hidden=d) == 2 * n * d + n + d
    made = MADE(n, hidden=(16, 12))
    assert made.num_parameters() == PARAMETER_FORMULAS["MADE"][1](n, hidden=(16, 12)) == 11 * 16 + 17 * 12 + 13 * n
    # the masks cut connections: the strictly triangular output layer at most
    assert made.num_connections() < made.num_parameters()


def test_empty_guide_elbo_is_the_exact_log_likelihood_and_fit_raises_it():
    x = torch.bernoulli(torch.full((64, 12), 0.3, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    net = NADE(12, hidden=8).double()
    before = float(net.log_prob(x).detach().sum())
    assert Trace_ELBO().loss(net.model, net.guide, x) == pytest.approx(-before, rel=1e-12)
    losses = net.fit(x, steps=60, lr=0.05).losses_
    assert losses[0] == pytest.approx(-before / 64, rel=1e-9)
    assert net.score(x) > before / 64 + 0.5


def test_registered_autoregressive_model_runs_under_the_generic_fit_path():
    fit = ppgen.fit("made_digits", method="map", steps=3, progress=False)
    assert len(fit.losses) == 3 and all(torch.isfinite(torch.tensor(fit.losses)))
    assert any(name.startswith("made_digits$$$") for name in fit.params)


def test_bad_input_is_refused_with_the_site_and_shapes():
    net = NADE(5, hidden=4)
    with pytest.raises(DataError, match=r"site 'x'.*shape \(n, 5\).*\(3, 6\)"):
        net.log_prob(torch.zeros(3, 6))
    with pytest.raises(DataError, match=r"site 'x'.*0 or 1.*0.5.*row 1, column 2"):
        net.log_prob(torch.tensor([[0.0] * 5, [0, 1, 0.5, 0, 0]]))
    with pytest.raises(DataError, match="values must lie in the support"):
        ppgen.fit("fvsbn_digits", {"x": torch.full((4, 64), 0.5)}, method="map", steps=1, progress=False)
    with pytest.raises(ConfigError, match=r"2\^30 - 1"):
        TabularChain(30)
    with pytest.raises(ConfigError, match="n >= 2"):
        MADE(1)
