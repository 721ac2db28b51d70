"""HMM chains: the enumeration engines against brute-force sums over all K^T state paths."""
import itertools

import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO

from ppgen.errors import DataError
from ppgen.inference.exact import log_joint
from ppgen.models.hmm import HMM, hmm_model

K, V, T = 3, 4, 6


def simplex(*shape):
    return torch.distributions.Dirichlet(torch.ones(*shape, dtype=torch.float64)).sample()


def random_hmm(seed: int, gaussian: bool) -> HMM:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if gaussian:
        loc = torch.randn(K, generator=g, dtype=torch.float64) * 2
        return HMM(simplex(K), simplex(K, K), loc=loc, scale=0.5 + torch.rand(K, generator=g, dtype=torch.float64))
    return HMM(simplex(K), simplex(K, K), simplex(K, V))


def brute_force(hmm: HMM, y: torch.Tensor):
    """Every state path of one sequence with its log joint ``log p(z, y)``."""
    paths = torch.tensor(list(itertools.product(range(hmm.num_states), repeat=len(y))))
    log_p = hmm.initial.log()[paths[:, 0]] + hmm.emit(paths).log_prob(y).sum(-1)
    log_p = log_p + sum(hmm.transition.log()[paths[:, t - 1], paths[:, t]] for t in range(1, len(y)))
    return paths, log_p


def brute_force_marginals(hmm: HMM, y: torch.Tensor) -> torch.Tensor:
    paths, log_p = brute_force(hmm, y)
    posterior = (log_p - log_p.logsumexp(0)).exp()
    return torch.stack([posterior.new_zeros(hmm.num_states).index_add(0, paths[:, t], posterior)
                        for t in range(len(y))])


CASES = [(seed, gaussian, n) for seed, gaussian in ((0, False), (1, True)) for n in (None, 3)]


@pytest.mark.parametrize("seed,gaussian,num_sequences", CASES)
def test_exact_inference_equals_brute_force(seed, gaussian, num_sequences):
    hmm = random_hmm(seed, gaussian)
    _, y = hmm.sample(T, num_sequences, seed=seed)
    batch = y if num_sequences else y[None]

    expected = sum(brute_force(hmm, seq)[1].logsumexp(0) for seq in batch)
    assert float(hmm.log_evidence(y)) == pytest.approx(float(expected), abs=1e-9)

    viterbi = hmm.viterbi(y) if num_sequences else hmm.viterbi(y)[None]
    marginals = hmm.marginals(y) if num_sequences else hmm.marginals(y)[None]
    for seq, path, marginal in zip(batch, viterbi, marginals):
        paths, log_p = brute_force(hmm, seq)
        assert path.tolist() == paths[log_p.argmax()].tolist()
        torch.testing.assert_close(marginal, brute_force_marginals(hmm, seq), atol=1e-9, rtol=0)


@pytest.mark.parametrize("length,num_sequences", [(1, None), (2, None), (2, 3)])
def test_short_chains(length, num_sequences):
    hmm = random_hmm(6, gaussian=False)
    _, y = hmm.sample(length, num_sequences, seed=6)
    batch = y if num_sequences else y[None]
    expected = sum(brute_force(hmm, seq)[1].logsumexp(0) for seq in batch)
    assert float(hmm.log_evidence(y)) == pytest.approx(float(expected), abs=1e-9)
    marginals = hmm.marginals(y) if num_sequences else hmm.marginals(y)[None]
    for seq, marginal in zip(batch, marginals):
        torch.testing.assert_close(marginal, brute_force_marginals(hmm, seq), atol=1e-9, rtol=0)


def test_sequential_markov_program_gives_the_same_evidence():
    """The plain ``pyro.markov`` program, contracted by Pyro's TraceEnum machinery, agrees with the
    vectorized ``contrib.funsor`` scan and with brute force."""
    hmm = random_hmm(2, gaussian=False)
    _, y = hmm.sample(T, seed=2)
    expected = brute_force(hmm, y)[1].logsumexp(0)
    assert float(log_joint(hmm.program, (), y[None])) == pytest.approx(float(expected), abs=1e-9)
    assert float(hmm.log_evidence(y)) == pytest.approx(float(expected), abs=1e-9)


def test_marginals_on_a_long_chain_are_distributions():
    hmm = random_hmm(3, gaussian=True)
    _, y = hmm.sample(3000, seed=3)
    marginals = hmm.marginals(y)
    assert marginals.shape == (3000, K)
    torch.testing.assert_close(marginals.sum(-1), torch.ones(3000, dtype=torch.float64))
    assert bool((marginals >= -1e-12).all())


def test_sampler_follows_the_transition_matrix():
    hmm = random_hmm(4, gaussian=False)
    z, y = hmm.sample(20000, seed=4)
    counts = torch.zeros(K, K, dtype=torch.float64).index_put_((z[:-1], z[1:]), torch.ones(19999, dtype=torch.float64),
                                                               accumulate=True)
    freq = counts / counts.sum(-1, keepdim=True)
    se = (hmm.transition * (1 - hmm.transition) / counts.sum(-1, keepdim=True)).sqrt()
    assert bool(((freq - hmm.transition).abs() <= 5 * se + 1e-3).all())


def test_learning_program_sums_the_states_out_exactly():
    """log p(params, y) of :func:`hmm_model` with the states enumerated = its priors + log p(y | params)."""
    hmm = random_hmm(5, gaussian=False)
    _, y = hmm.sample(T, num_sequences=2, seed=5)
    params = {"initial": hmm.initial, "transition": hmm.transition, "emission": hmm.emission}
    conditioned = poutine.condition(hmm_model, params)
    ours = -TraceEnum_ELBO(max_plate_nesting=1).loss(conditioned, lambda **kw: None, y=y, num_states=K,
                                                     num_categories=V, concentration=1.5)
    prior = (dist.Dirichlet(torch.full((K,), 1.5, dtype=torch.float64)).log_prob(hmm.initial)
             + dist.Dirichlet(torch.full((K, K), 1.5, dtype=torch.float64)).log_prob(hmm.transition).sum()
             + dist.Dirichlet(torch.full((K, V), 1.5, dtype=torch.float64)).log_prob(hmm.emission).sum())
    assert ours == pytest.approx(float(prior + hmm.log_evidence(y)), abs=1e-8)


def test_map_fit_recovers_well_separated_gaussian_states():
    truth = HMM([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], loc=[-2.0, 2.0], scale=[0.5, 0.5])
    _, y = truth.sample(30, seed=0)
    fitted = HMM.fit(y, num_states=2, method="map", steps=30, lr=0.2, progress=False)
    order = fitted.loc.argsort()
    torch.testing.assert_close(fitted.loc[order], truth.loc, atol=0.3, rtol=0)
    assert float(fitted.log_evidence(y)) >= float(truth.log_evidence(y)) - 1.0


def test_bad_input_is_named():
    with pytest.raises(DataError, match="transition must hold probabilities"):
        HMM([0.5, 0.5], [[0.9, 0.2], [0.5, 0.5]], emission=[[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(DataError, match=r"loc must have shape \(2,\)"):
        HMM([0.5, 0.5], [[0.9, 0.1], [0.5, 0.5]], loc=[0.0, 1.0, 2.0], scale=[1.0, 1.0])
    hmm = HMM([0.5, 0.5], [[0.9, 0.1], [0.5, 0.5]], emission=[[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(DataError, match="symbol 2; the emissions take 0..1"):
        hmm.log_evidence([0, 1, 2])


def test_forward_backward_works_once_jax_is_imported():
    """NumPyro imports JAX; funsor then checks every value for a jitted JAX function, which failed
    until its JAX backend had been loaded (a numpyro-nuts fit, then HMM.marginals, crashed)."""
    import subprocess
    import sys

    script = ("import jax, torch, ppgen\n"
              "from ppgen.models.hmm import HMM\n"
              "hmm = HMM(torch.tensor([0.5, 0.5]), torch.tensor([[0.9, 0.1], [0.1, 0.9]]),\n"
              "          emission=torch.tensor([[0.8, 0.2], [0.2, 0.8]]))\n"
              "print(float(hmm.marginals(torch.tensor([0, 0, 1, 1, 1])).sum()))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert abs(float(out.stdout.strip()) - 5.0) < 1e-9
