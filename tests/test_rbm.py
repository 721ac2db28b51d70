"""RBMs against brute-force enumeration: free energy, log Z, Gibbs, CD, AIS, pseudo-likelihood, bad input."""
import math

import numpy as np
import pyro
import pyro.poutine as poutine
import pytest
import torch

import ppgen
from ppgen.errors import DataError, NotApplicableError
from ppgen.inference.ais import ais_rbm, schedule
from ppgen.inference.ebm_training import ContrastiveDivergence, fit_energy
from ppgen.inference.samplers import gibbs
from ppgen.models.rbm import RBM, all_binary_states
from ppgen.models.rbm import rbm as rbm_program


def random_rbm(n_visible, n_hidden, scale=1.0, seed=0):
    torch.manual_seed(seed)
    r = RBM(n_visible, n_hidden, init_scale=scale)
    with torch.no_grad():
        r.b.normal_(0, 1)
        r.c.normal_(0, 1)
    return r


def exact_probs(r):
    xs = all_binary_states(r.n_visible, r.W)
    with torch.no_grad():
        return xs, r.log_prob(xs).exp()


def tv_null_quantile(p, n, q=0.99, reps=500, seed=0):
    """The q-quantile of the TV distance between p and the histogram of n exact draws from p."""
    rng = np.random.default_rng(seed)
    p = p.double().numpy()
    counts = rng.multinomial(n, p / p.sum(), size=reps)
    return np.quantile(0.5 * np.abs(counts / n - p).sum(1), q)


@pytest.mark.parametrize("n_visible,n_hidden", [(5, 3), (3, 5)])  # both enumeration branches
def test_free_energy_and_log_partition_match_the_joint_sum(n_visible, n_hidden):
    r = random_rbm(n_visible, n_hidden)
    xs, zs = all_binary_states(n_visible, r.W), all_binary_states(n_hidden, r.W)
    with torch.no_grad():
        joint = -r.joint_energy(xs[:, None, :], zs[None, :, :])  # (2^n, 2^m): every term of Z
        assert torch.allclose(-r.energy(xs), torch.logsumexp(joint, 1), atol=1e-5)  # F sums z out
        assert torch.allclose(r.log_partition(), torch.logsumexp(joint.flatten(), 0), atol=1e-5)
        # conditionals from the joint table
        p_xz = (joint - torch.logsumexp(joint, 1, keepdim=True)).exp()  # p(z | x)
        assert torch.allclose(p_xz @ zs, r.hidden_probs(xs), atol=1e-5)
        p_zx = (joint - torch.logsumexp(joint, 0, keepdim=True)).exp()  # p(x | z)
        assert torch.allclose(p_zx.T @ xs, r.visible_probs(zs), atol=1e-5)
        assert torch.allclose(r.log_prob(xs).exp().sum(), torch.tensor(1.0), atol=1e-5)


def test_grad_log_z_is_the_model_expectation_of_grad_minus_energy():
    # the identity behind contrastive divergence: grad log Z = E_{x ~ p}[grad (-F(x))]
    r = random_rbm(6, 4)
    xs, p = exact_probs(r)
    params = [r.W, r.b, r.c]
    grad_log_z = torch.autograd.grad(r.log_partition(), params)
    expectation = torch.autograd.grad((p * -r.energy(xs)).sum(), params)  # p held fixed
    for g, e in zip(grad_log_z, expectation):
        assert torch.allclose(g, e, atol=1e-5)


def test_likelihood_ratios_need_no_partition_function():
    r = random_rbm(6, 4)
    xs, p = exact_probs(r)
    a, b = xs[:32], xs[32:]
    with torch.no_grad():
        assert torch.allclose(r.energy(b) - r.energy(a), (p[:32] / p[32:]).log(), atol=1e-4)
        # the pseudo-likelihood (no Z either) equals sum_i log p(x_i | x_-i) from the normalized table
        idx = torch.arange(64)
        flip = 2 ** torch.arange(5, -1, -1)  # flipping bit i moves the state index by +-2^(5-i)
        neighbour = idx[:, None] ^ flip  # (64, 6)
        exact_pl = (p[:, None] / (p[:, None] + p[neighbour])).log().sum(1)
        assert torch.allclose(r.pseudo_log_likelihood(xs), exact_pl, atol=1e-4)


def test_exact_log_z_refuses_models_too_large_to_enumerate():
    with pytest.raises(NotApplicableError, match="2\\^30 terms"):
        RBM(30, 40).log_partition()


def test_ais_log_z_is_within_a_tenth_of_a_nat_of_exact():
    for n in (3, 10, 1001):
        betas = schedule(n)
        assert len(betas) == n and betas[0] == 0 and betas[-1] == 1 and (betas.diff() > 0).all()
    r = random_rbm(20, 8, scale=1.5, seed=1)
    exact = r.log_partition().item()
    data = torch.bernoulli(torch.full((100, 20), 0.3))
    for base_data in (None, data):  # uniform base and base-rate base
        result = ais_rbm(r, num_chains=200, num_betas=1000, data=base_data, seed=0)
        assert abs(result.log_z - exact) < 0.1, (result, exact)
        assert result.stderr < 0.05 and abs(result.log_z - exact) < 5 * result.stderr + 0.02


def test_block_gibbs_matches_exact_marginals():
    r = random_rbm(6, 4, scale=1.5, seed=2)
    xs, p = exact_probs(r)
    n = 4000
    pyro.set_rng_seed(0)
    x = gibbs(r, torch.bernoulli(torch.full((n, 6), 0.5)), sweeps=50)  # n independent chains
    idx = (x * 2 ** torch.arange(5, -1, -1)).sum(1).long()
    empirical = torch.bincount(idx, minlength=64).float() / n
    tv = 0.5 * (empirical - p).abs().sum().item()
    assert tv < tv_null_quantile(p, n), tv
    assert torch.allclose(x.mean(0), p @ xs, atol=4 * 0.5 / math.sqrt(n))  # per-pixel marginals


def test_one_cd_step_raises_the_exact_log_likelihood_on_average():
    target = random_rbm(8, 4, scale=2.0, seed=3)
    xs, p = exact_probs(target)
    torch.manual_seed(0)
    data = xs[torch.multinomial(p, 500, replacement=True)]
    start = random_rbm(8, 4, scale=0.1, seed=4)
    before = start.log_prob(data).mean().item()
    gains = []
    for seed in range(20):
        model = RBM.from_params(start.W, start.b, start.c)
        fit_energy(model, data, ContrastiveDivergence(k=1), steps=1, batch_size=100, seed=seed, progress=False,
                   optim=pyro.optim.SGD({"lr": 0.1}))
        gains.append(model.log_prob(data).mean().item() - before)
    gains = torch.tensor(gains)
    assert gains.mean() > 4 * gains.std() / math.sqrt(len(gains)), gains


@pytest.mark.parametrize("persistent", [False, True])
def test_contrastive_divergence_training_approaches_the_data_distribution(persistent):
    target = random_rbm(8, 4, scale=2.0, seed=3)
    xs, p = exact_probs(target)
    torch.manual_seed(0)
    data = xs[torch.multinomial(p, 2000, replacement=True)]
    model = random_rbm(8, 4, scale=0.1, seed=5)
    start = model.log_prob(data).mean().item()
    fit_energy(model, data, ContrastiveDivergence(k=1, persistent=persistent), steps=300, batch_size=100, lr=0.05,
               progress=False)
    final, best = model.log_prob(data).mean().item(), target.log_prob(data).mean().item()
    assert final - start > 0.8 * (best - start), (start, final, best)  # most of the way to the true model


def test_registered_program_is_the_exact_likelihood_and_map_fits_it():
    torch.manual_seed(0)
    x = torch.bernoulli(torch.full((50, 10), 0.3))
    tr = poutine.trace(rbm_program).get_trace(x=x, n_hidden=4)
    net = RBM.from_params(*(pyro.param(f"rbm$$${k}") for k in ("W", "b", "c")))
    assert torch.allclose(tr.log_prob_sum(), net.log_prob(x).sum(), atol=1e-3)
    fit = ppgen.fit("rbm", {"x": x.numpy()}, method="map", steps=30, progress=False, device="cpu")
    assert fit.losses[-1] < fit.losses[0]


def test_free_energy_and_conditionals_match_scikit_learn():
    from sklearn.neural_network import BernoulliRBM

    x = np.random.default_rng(0).binomial(1, 0.4, size=(40, 12)).astype(np.float64)
    est = BernoulliRBM(n_components=5, n_iter=2, random_state=0).fit(x)
    r = RBM.from_sklearn(est, dtype=torch.float64)
    xt = torch.as_tensor(x)
    with torch.no_grad():
        assert np.allclose(r.energy(xt).numpy(), est._free_energy(x))
        assert np.allclose(r.hidden_probs(xt).numpy(), est.transform(x))


def test_non_binary_data_is_rejected_with_the_site_and_value():
    grey = torch.rand(20, 6)
    r = RBM(6, 3)
    with pytest.raises(DataError, match=r"site 'x'.*\{0, 1\}"):
        fit_energy(r, grey, ContrastiveDivergence(), steps=1, progress=False)
    with pytest.raises(DataError, match=r"site 'x'.*\(n, 6\).*\(20, 5\)"):
        fit_energy(r, (grey[:, :5] > 0.5).float(), ContrastiveDivergence(), steps=1, progress=False)
    with pytest.raises(DataError, match="site 'data'"):
        ais_rbm(r, data=grey)
    with pytest.raises(DataError, match="site 'x0'"):
        gibbs(r, grey, sweeps=1)
    with pytest.raises(DataError, match=r"site 'x'.*not 0 or 1"):
        ppgen.fit("rbm", {"x": grey.numpy()}, method="map", steps=1, progress=False, device="cpu")
