"""GAN (notes, the contrast with likelihood models): the trained discriminator approaches
p_data / (p_data + p_g), the game's value at D* is 2 JSD - log 4, the minimax generator loss
saturates where the non-saturating one does not, a GAN learns 2-D data as judged by MMD; and the
divergences behind the contrast: KL >= 0, not symmetric, maximum likelihood = minimum KL."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ppgen.data import toy2d
from ppgen.errors import DataError, UnknownNameError
from ppgen.metrics import mmd2
from ppgen.models.gan import (
    GAN,
    discriminator_loss,
    gan_value,
    generator_loss,
    js_divergence,
    kl_divergence,
    optimal_discriminator,
)

normal = torch.distributions.Normal


def test_trained_discriminator_approaches_p_data_over_p_data_plus_p_g():
    """p_data = N(0, 1); a fixed generator G(z) = 1 + 1.5 z makes p_g = N(1, 1.5^2) in closed form."""
    torch.manual_seed(0)
    x = torch.randn(20000, 1)
    generator = nn.Linear(1, 1)
    with torch.no_grad():
        generator.weight.fill_(1.5)
        generator.bias.fill_(1.0)
    gan = GAN(data_dim=1, latent_dim=1, hidden=(32, 32), generator=generator)
    gan.fit(x, steps=1000, batch_size=512, lr=2e-3, train_generator=False)
    assert torch.equal(generator.weight, torch.full((1, 1), 1.5))  # G stayed fixed
    grid = torch.linspace(-2.0, 3.0, 51)
    best = optimal_discriminator(normal(0.0, 1.0).log_prob(grid).exp(), normal(1.0, 1.5).log_prob(grid).exp())
    error = (gan.discriminate(grid[:, None]) - best).abs()
    # D* runs from 0.29 to 0.69 here; a constant 1/2 would be off by 0.21 somewhere
    assert float(error.max()) < 0.05, error


def test_value_at_the_optimal_discriminator_is_twice_jsd_minus_log_4():
    p_data = torch.distributions.Dirichlet(torch.ones(7)).sample((20,))
    p_g = torch.distributions.Dirichlet(torch.ones(7)).sample((20,))
    d_star = optimal_discriminator(p_data, p_g)
    torch.testing.assert_close(gan_value(p_data, p_g, d_star), 2 * js_divergence(p_data, p_g) - math.log(4))
    other = torch.rand(20, 7)  # any other discriminator does worse
    assert (gan_value(p_data, p_g, other) < gan_value(p_data, p_g, d_star)).all()
    # and the generator's best answer, p_g = p_data, leaves V = -log 4
    torch.testing.assert_close(gan_value(p_data, p_data, optimal_discriminator(p_data, p_data)),
                               torch.full((20,), -math.log(4)))


def test_minimax_generator_loss_saturates_and_the_non_saturating_one_does_not():
    logits = torch.tensor([-12.0, 0.0], requires_grad=True)  # D(G(z)) ~ 6e-6 (confidently fake), 1/2
    grads = {}
    for objective in ("minimax", "non-saturating"):
        logits.grad = None
        generator_loss(logits, objective).backward()
        grads[objective] = logits.grad.clone()
    assert abs(grads["minimax"][0]) < 1e-5 and abs(grads["non-saturating"][0]) > 0.49
    torch.testing.assert_close(grads["minimax"][1], grads["non-saturating"][1])  # same at D = 1/2
    # the discriminator loss is -V: log 4 when D = 1/2 everywhere
    assert float(discriminator_loss(torch.zeros(5), torch.zeros(5))) == pytest.approx(math.log(4))


@pytest.mark.parametrize("objective", ["non-saturating", "minimax"])
def test_gan_learns_two_moons_as_judged_by_mmd(objective):
    data = torch.as_tensor(toy2d.sample("moons", 4000, seed=0))
    held_out = torch.as_tensor(toy2d.sample("moons", 800, seed=1))
    torch.manual_seed(0)
    gan = GAN(objective=objective, hidden=(64, 64))
    before = float(mmd2(gan.sample(800), held_out))
    gan.fit(data, steps=1000, batch_size=256)
    after = float(mmd2(gan.sample(800), held_out))
    assert after < 0.05 * before, (before, after)  # 0.41 -> about 0.002 (two data samples: about 0.0006)


# --- the divergences behind the contrast ---------------------------------------------------------

def probability_vectors(size: int):
    return st.lists(st.floats(0.01, 10.0), min_size=size, max_size=size).map(lambda w: torch.tensor(w) / sum(w))


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 6).flatmap(lambda n: st.tuples(probability_vectors(n), probability_vectors(n))))
def test_kl_is_nonnegative_and_zero_only_at_equality(pq):
    p, q = pq
    assert float(kl_divergence(p, q)) >= -1e-6
    assert float(kl_divergence(p, q)) > 0 or torch.allclose(p, q, atol=1e-3)
    assert float(kl_divergence(p, p)) == pytest.approx(0.0, abs=1e-6)
    assert 0 <= float(js_divergence(p, q)) <= math.log(2) + 1e-6
    assert float(js_divergence(p, q)) == pytest.approx(float(js_divergence(q, p)), abs=1e-6)


def test_kl_is_not_symmetric():
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.9, 0.1])
    assert float(kl_divergence(p, q)) == pytest.approx(0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(5.0))  # 0.511
    assert float(kl_divergence(q, p)) == pytest.approx(0.9 * math.log(1.8) + 0.1 * math.log(0.2))  # 0.368
    assert float(kl_divergence(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0]))) == math.inf


def test_maximum_likelihood_is_minimum_kl_from_the_data():
    """The mean negative log-likelihood of a sample under q is H(p_data) + KL(p_data || q) for the
    sample's empirical distribution p_data: it is smallest, at H(p_data), where q = p_data (the MLE)."""
    rng = np.random.default_rng(0)
    sample = torch.as_tensor(rng.choice(5, size=400, p=[0.4, 0.3, 0.15, 0.1, 0.05]))
    p_data = torch.bincount(sample, minlength=5).double() / len(sample)
    entropy = -(p_data * p_data.log()).sum()
    for q in [p_data, torch.full((5,), 0.2), torch.tensor([0.1, 0.1, 0.2, 0.3, 0.3])]:
        q = q.to(torch.float64)
        nll = -torch.distributions.Categorical(probs=q).log_prob(sample).mean()
        torch.testing.assert_close(nll, entropy + kl_divergence(p_data, q))


def test_bad_input_is_refused():
    gan = GAN()
    with pytest.raises(DataError, match=r"\(N, 2\).*got shape \(10, 3\)"):
        gan.fit(torch.zeros(10, 3))
    with pytest.raises(DataError, match="NaN"):
        gan.fit(torch.full((10, 2), float("nan")))
    with pytest.raises(UnknownNameError, match="unknown GAN objective 'wasserstein'"):
        GAN(objective="wasserstein")
