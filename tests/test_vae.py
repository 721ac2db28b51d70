"""VAEs on the 8x8 digits: bad input named before fitting, NaN caught mid-training, the bounds of a
trained VAE in the right order, ELBO = reconstruction - KL, the amortization gap, traversals, the
conv / conditional / semi-supervised (enumerated) variants."""
import math

import numpy as np
import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO

import ppgen
from ppgen.data.images import load_digits
from ppgen.errors import DataError, NumericalError
from ppgen.inference.bounds import importance_sample, log_weights
from ppgen.inference.svi import train
from ppgen.inference.vi_diagnostics import amortization_gap, elbo_terms
from ppgen.models import get
from ppgen.models.vae import VAE, cvae, vae
from ppgen.models.vae_m2 import M2

DIGITS = load_digits(binarize=True)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test draws the same random numbers whatever runs before it."""
    pyro.set_rng_seed(0)


@pytest.fixture(scope="module")
def trained():
    """A VAE (Z = 4) trained for 600 minibatch steps, and 60 held-out digits."""
    pyro.clear_param_store()
    torch.manual_seed(0)
    net = VAE(64, 4, (128,), image_shape=(8, 8))
    losses = train(net.model, net.guide, {"x": torch.as_tensor(DIGITS.x_train), "batch_size": 128},
                   steps=600, lr=3e-3, progress=False)
    pyro.clear_param_store()
    return net, losses, torch.as_tensor(DIGITS.x_test[:60])


# -- bad input --------------------------------------------------------------------------------
def test_bernoulli_decoder_rejects_grey_levels_before_fitting():
    grey = load_digits(binarize=False).x_train
    with pytest.raises(DataError, match=r"site 'x'.*binary pixels in \{0, 1\}.*likelihood='gaussian'"):
        ppgen.fit("vae", {"x": grey}, method="svi", steps=5, num_samples=0, progress=False)
    assert len(pyro.get_param_store()) == 0                                     # nothing was fitted
    with pytest.raises(DataError, match="site 'x'.*floating-point"):
        vae(torch.ones(4, 64, dtype=torch.uint8))


def test_wrong_image_size_is_named():
    with pytest.raises(DataError, match=r"site 'x': expected images of shape \(n, 64\) or \(n, 8, 8\), got \(5, 49\)"):
        ppgen.fit("vae", {"x": np.zeros((5, 49))}, method="svi", steps=5, num_samples=0, progress=False)
    with pytest.raises(DataError, match=r"got \(5, 7, 7\)"):
        vae(torch.zeros(5, 7, 7)).model(torch.zeros(5, 7, 7))
    with pytest.raises(DataError, match="site 'y'.*0..9, got 0..10"):
        cvae(torch.zeros(3, 64)).model(torch.zeros(3, 64), torch.tensor([0, 4, 10]))
    with pytest.raises(DataError, match=r"site 'y': expected 3 labels.*\(2,\)"):
        cvae(torch.zeros(3, 64)).guide(torch.zeros(3, 64), torch.tensor([0, 4]))
    net = VAE(64, 2, likelihood="gaussian")
    bad = torch.rand(4, 64)
    bad[1, 2] = float("inf")
    with pytest.raises(DataError, match="site 'x'.*NaN or infinite"):
        net.model(bad)
    net.model(torch.rand(4, 64))                                                # grey levels are fine here


@pytest.mark.filterwarnings("ignore:Encountered NaN")
def test_nan_loss_mid_training_stops_with_the_last_good_parameters():
    net = VAE(64, 2, (32,))
    x = torch.as_tensor(DIGITS.x_train[:64])
    calls, snapshot = [0], {}

    def poisoned(x):
        calls[0] += 1
        if calls[0] == 4:                                                       # the 4th step goes bad
            snapshot.update({k: v.detach().clone() for k, v in pyro.get_param_store().items()})
            with pyro.validation_enabled(False):                                # as a diverging network would
                pyro.factor("poison", x.new_tensor(float("nan")))
        net.model(x)

    with pytest.raises(NumericalError, match="SVI step 3"):
        train(poisoned, net.guide, {"x": x}, steps=10, lr=0.01, progress=False)
    assert snapshot
    for name, value in pyro.get_param_store().items():
        torch.testing.assert_close(value, snapshot[name], rtol=0, atol=0)


# -- the bounds of a trained VAE ----------------------------------------------------------------
def test_training_lowers_the_loss_and_bounds_are_ordered(trained):
    net, losses, x = trained
    assert np.mean(losses[-50:]) < 0.75 * np.mean(losses[:50])
    s = importance_sample(net.model, net.guide, {"x": x}, num_particles=2000)
    per_k = {k: torch.logsumexp(s.log_w.reshape(-1, k, 60), 1).sub(math.log(k)).sum(-1) for k in (1, 10, 200)}
    means = {k: v.mean() for k, v in per_k.items()}
    ses = {k: v.std() / math.sqrt(len(v)) for k, v in per_k.items()}
    assert means[1] < means[10] - 3 * math.hypot(ses[1], ses[10])              # ELBO < IWAE_10
    assert means[10] < means[200] + 3 * math.hypot(ses[10], ses[200])          # IWAE_10 <= IWAE_200
    assert means[200] <= s.log_evidence.sum() + 3 * ses[200]
    assert (s.ess >= 1).all() and (s.ess <= 2000).all()


def test_elbo_is_reconstruction_minus_analytic_kl_per_dimension(trained):
    net, _, x = trained
    terms = elbo_terms(net.model, net.guide, {"x": x}, num_particles=400)
    loc, scale = net.encode(x)
    kl = 0.5 * (loc**2 + scale**2 - 1) - scale.log()                            # KL(N(m, s^2) || N(0, 1)) per dim
    torch.testing.assert_close(terms.kl, kl.sum(-1))
    torch.testing.assert_close(terms.kl_per_dim["z"], kl.mean(0))
    assert (terms.kl_per_dim["z"] >= 0).all()
    s = importance_sample(net.model, net.guide, {"x": x}, num_particles=400)
    se = float(s.log_w.sum(-1).std()) / 20
    assert abs(float(terms.elbo.sum() - s.elbo.sum())) < 4 * math.sqrt(2) * se


def test_per_datapoint_refinement_beats_the_encoder(trained):
    net, _, x = trained
    before = [(p.clone(), None if p.grad is None else p.grad.clone()) for p in net.decoder.parameters()]
    gap = amortization_gap(net.model, net.guide, {"x": x[:20]}, steps=300, lr=0.01, num_particles=1000)
    assert float(gap.amortization.mean()) > 0.05                               # ~0.2 nats measured
    assert float(gap.approximation.mean()) > -0.05                              # and stays below log p(x)
    assert not any(n.startswith("amortization_gap.") for n in pyro.get_param_store().keys())
    for p, (value, grad) in zip(net.decoder.parameters(), before):            # the decoder was held fixed
        assert p.requires_grad and torch.equal(p, value)
        assert (p.grad is None and grad is None) or torch.equal(p.grad, grad)


def test_latent_traversal_moves_one_axis(trained):
    net, _, _ = trained
    values = torch.linspace(-2, 2, 5)
    base = torch.tensor([0.3, -0.1, 0.2, 0.0])
    grid = net.traverse(values, base)                                           # (Z, V, D)
    assert grid.shape == (4, 5, 64)
    z = base.repeat(5, 1)
    z[:, 2] = values
    torch.testing.assert_close(grid[2], net.decoder.mean(z))
    assert ((grid >= 0) & (grid <= 1)).all()
    assert net.sample(7, generator=torch.Generator().manual_seed(0)).shape == (7, 64)


# -- variants ---------------------------------------------------------------------------------
@pytest.mark.parametrize("side,likelihood", [(8, "bernoulli"), (28, "bernoulli"), (8, "gaussian")])
def test_conv_vae_scores_particles_per_image(side, likelihood):
    net = VAE(side * side, 3, (32,), likelihood=likelihood, image_shape=(side, side), conv=True)
    x = (torch.rand(6, side, side) > 0.5).float()                              # (n, rows, cols) is accepted
    lw = log_weights(net.model, net.guide, {"x": x}, num_particles=5).values
    assert lw.shape == (5, 6) and torch.isfinite(lw).all()
    assert net.reconstruct(x).shape == (6, side * side)
    with pytest.raises(ValueError, match="divisible by 4"):
        VAE(36, 2, image_shape=(6, 6), conv=True)


def test_iwae_objective_trains_a_vae():
    net = VAE(64, 2, (64,))
    losses = train(net.model, net.guide, {"x": torch.as_tensor(DIGITS.x_train[:256]), "batch_size": 64},
                   steps=150, lr=3e-3, elbo="iwae", num_particles=5, progress=False)
    assert np.isfinite(losses).all() and np.mean(losses[-20:]) < 0.8 * np.mean(losses[:20])


def test_conditional_vae_uses_the_label():
    net = VAE(64, 2, (32,), num_classes=10)
    x = torch.as_tensor(DIGITS.x_train[:1]).expand(10, 64)
    loc, _ = net.encode(x, torch.arange(10))                                    # same image, ten labels
    assert loc.unique(dim=0).shape[0] == 10
    assert net.sample(10, torch.arange(10)).shape == (10, 64)
    with pytest.raises(DataError, match="site 'y'.*needs labels"):
        net.model(x)


@pytest.mark.filterwarnings("ignore:y_unlabeled")  # Trace_ELBO samples the site marked for enumeration: on purpose
def test_m2_enumerated_class_gives_the_sampled_elbo_with_less_variance():
    """Summing y out (TraceEnum_ELBO) and sampling it from q(y | x) (Trace_ELBO, score function)
    are unbiased for the same ELBO; the sum has less variance."""
    net = M2(64, 4, (32,))
    data = {"x": torch.as_tensor(DIGITS.x_train[:10]), "y": torch.as_tensor(DIGITS.y_train[:10]),
            "x_unlabeled": torch.as_tensor(DIGITS.x_train[10:40])}
    enum = torch.tensor([TraceEnum_ELBO(max_plate_nesting=1).loss(net.model, net.guide, **data) for _ in range(100)])
    sampled = torch.tensor([Trace_ELBO(max_plate_nesting=1).loss(net.model, net.guide, **data) for _ in range(100)])
    se = math.sqrt(enum.var() / 100 + sampled.var() / 100)
    assert abs(float(enum.mean() - sampled.mean())) < 4 * se
    assert enum.var() < sampled.var()                                           # 2-4x smaller measured


def test_registered_factory_builds_fresh_networks_for_each_fit():
    spec = get("vae")
    assert spec.factory is vae and spec.model is None and spec.default_method == "svi"
    first = ppgen.fit("vae", method="svi", steps=3, num_samples=0, lr=1e-3, progress=False)   # its own guide
    second = ppgen.fit("vae", method="svi", steps=3, num_samples=0, lr=1e-3, seed=1, progress=False)
    assert isinstance(first.problem.instance, VAE) and first.problem.instance is not second.problem.instance
    assert len(first.losses) == 3 and np.isfinite(first.losses).all()
    a, b = (fit.problem.instance.decoder.state_dict() for fit in (first, second))
    assert any(not torch.equal(a[k], b[k]) for k in a)                       # two fits, two sets of networks
    assert first.problem.model == first.problem.instance.model               # post-fit steps use the trained ones


@pytest.mark.gpu
def test_vae_runs_on_the_gpu():
    net = VAE(64, 2, (32,)).cuda()
    x = torch.as_tensor(DIGITS.x_train[:32], device="cuda")
    s = importance_sample(net.model, net.guide, {"x": x}, num_particles=10)
    assert s.log_w.device.type == "cuda" and s.log_w.shape == (10, 32)
    assert net.sample(3).device.type == "cuda"
