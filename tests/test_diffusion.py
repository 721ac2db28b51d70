"""Diffusion models as latent chains: schedules, the closed-form marginal q(x_t | x_0), the fast ELBO
against Pyro's Trace_ELBO over the whole chain, a trained chain's ELBO against the exact
log-likelihood, the hierarchical VAE on the same chain, the registered model, and bad input."""
import math

import pyro
import pyro.optim
import pytest
import torch
from pyro.infer import Trace_ELBO

import ppgen
from ppgen.data import toy2d
from ppgen.device import placement
from ppgen.errors import DataError, NotApplicableError, UnknownNameError
from ppgen.inference.diffusion_elbo import (
    DiffusionELBO,
    bits_per_dim,
    elbo_estimate,
    elbo_per_point,
    heldout_elbo,
    trace_elbo,
)
from ppgen.inference.svi import train
from ppgen.models.diffusion import (
    AffineEps,
    Diffusion,
    HierarchicalVAE,
    NoiseSchedule,
    affine_chain_marginal,
    cosine_schedule,
    linear_schedule,
    make_schedule,
)

DATA_MEAN, DATA_SD = 0.7, 0.5


def moons(n, seed):
    return torch.as_tensor(toy2d.sample("moons", n, seed=seed))


def within(a, b, se, k=4.0):
    """|a - b| < k standard errors (and the standard error is a real number)."""
    return math.isfinite(se) and abs(a - b) < k * se


# --------------------------------------------------------------------------------------- schedules

@pytest.mark.parametrize("make", [linear_schedule, cosine_schedule])
@pytest.mark.parametrize("T", [10, 100, 1000])
def test_schedule_ends_in_noise(make, T):
    s = make(T)
    betas = s.betas[1:]
    assert s.T == T and ((betas > 0) & (betas < 1)).all()
    torch.testing.assert_close(s.alpha_bars[1:], torch.cumprod(1 - betas, 0))  # abar_t = prod_{s<=t} (1 - beta_s)
    assert (s.alpha_bars[1:] < s.alpha_bars[:-1]).all()
    assert s.alpha_bars[-1] < 1e-4  # q(x_T | x_0) ~ N(0, I)


def test_linear_schedule_is_ddpms_at_T_1000():
    s = linear_schedule(1000)
    assert s.betas[1].item() == pytest.approx(1e-4, rel=0.1)
    assert s.betas[-1].item() == pytest.approx(0.02, rel=0.02)


def test_posterior_of_the_forward_process_is_gaussian_conditioning():
    """q(x_{t-1} | x_t, x_0) from conditioning the joint Gaussian of (x_{t-1}, x_t) given x_0:
    Cov = sqrt(alpha_t) (1 - abar_{t-1}), Var x_t = 1 - abar_t."""
    with placement(torch.device("cpu"), torch.float64):
        chain = Diffusion(1, cosine_schedule(20), hidden=(8,))
    abar, alpha = chain.alpha_bars, 1 - chain.betas
    for t in range(1, 21):
        slope = alpha[t].sqrt() * (1 - abar[t - 1]) / (1 - abar[t])
        x0, xt = torch.tensor([[0.3]], dtype=torch.float64), torch.tensor([[-1.1]], dtype=torch.float64)
        loc, var = chain.q_posterior(x0, xt, torch.tensor([t]))
        expected_loc = abar[t - 1].sqrt() * x0 + slope * (xt - abar[t].sqrt() * x0)
        expected_var = (1 - abar[t - 1]) - slope**2 * (1 - abar[t])
        torch.testing.assert_close(loc, expected_loc)
        torch.testing.assert_close(var.squeeze(), expected_var, atol=1e-12, rtol=1e-9)


@pytest.mark.parametrize("make", [linear_schedule, cosine_schedule])
def test_forward_chain_matches_the_closed_form_marginal(make):
    """Running the guide (the Markov chain x_0 -> x_1 -> ... -> x_T) reproduces
    q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) at every t."""
    T, n = 10, 20000
    chain = Diffusion(2, make(T), hidden=(8,))
    x0 = torch.tensor([1.5, -2.0])
    pyro.set_rng_seed(0)
    trace = pyro.poutine.trace(chain.guide).get_trace(x0.expand(n, 2))
    for t in range(1, T + 1):
        xt = trace.nodes[f"x_{t}"]["value"]
        abar = chain.alpha_bars[t]
        mean, var = abar.sqrt() * x0, 1 - abar
        for d in range(2):
            assert within(xt[:, d].mean().item(), mean[d].item(), (var / n).sqrt().item(), k=4.5)
            assert within(xt[:, d].var().item(), var.item(), (var * math.sqrt(2 / (n - 1))).item(), k=4.5)


# --------------------------------------------------------------------------- the fast ELBO estimator

@pytest.mark.parametrize("variance", ["fixed", "learned"])
def test_fast_estimator_is_unbiased_for_the_full_chain_elbo(variance):
    """Mean of the one-t closed-form estimator == mean of Trace_ELBO over the whole chain (and of
    the every-t sum), within Monte Carlo error, on T = 5 with an untrained network."""
    pyro.set_rng_seed(0)
    T, n = 5, 32
    chain = Diffusion(2, cosine_schedule(T), hidden=(32, 32), variance=variance)
    if variance == "learned":
        with torch.no_grad():
            chain.log_var.add_(0.5 * torch.randn(T))
    x = moons(n, seed=1)
    k_full, k_fast, k_sum = 600, 20000, 200
    full = torch.tensor([-Trace_ELBO().loss(chain.model, chain.guide, x) for _ in range(k_full)])
    with torch.no_grad():
        fast = elbo_estimate(chain, x.expand(k_fast, n, 2)).sum(-1)
    summed = elbo_per_point(chain, x.repeat(k_sum, 1)).reshape(k_sum, n).sum(-1)
    se_full, se_fast, se_sum = (v.std().item() / math.sqrt(len(v)) for v in (full, fast, summed))
    assert se_fast < 0.01 * abs(fast.mean().item())  # the check has power
    assert within(fast.mean().item(), full.mean().item(), math.hypot(se_full, se_fast))
    assert within(fast.mean().item(), summed.mean().item(), math.hypot(se_sum, se_fast))
    # the Pyro ELBO object returns the same estimate, negated
    loss = DiffusionELBO(num_particles=5000).loss(chain.model, chain.guide, x)
    assert within(-loss, fast.mean().item(), se_fast * math.sqrt(k_fast / 5000))


def test_simple_objective_is_the_noise_prediction_error():
    """With eps_theta = 0 the simplified loss is sum ||eps||^2: n * D in expectation."""
    pyro.set_rng_seed(0)
    n, dim = 2000, 2
    chain = Diffusion(dim, linear_schedule(10), eps_net=AffineEps(dim, 10))
    loss = DiffusionELBO(objective="simple").loss(chain.model, chain.guide, moons(n, seed=0))
    assert within(loss, n * dim, math.sqrt(2 * n * dim))


# ----------------------------------------------------------------------- training to the optimum

@pytest.fixture(scope="module")
def gaussian_chain():
    """A chain with per-step affine eps_theta and learned variances, trained by the fast ELBO
    through the SVI loop on 1-D Gaussian data: its family contains the exact reverse process."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    T = 10
    x = DATA_MEAN + DATA_SD * torch.randn(4096, 1)
    chain = Diffusion(1, linear_schedule(T), eps_net=AffineEps(1, T), variance="learned")
    train(chain.model, chain.guide, {"x": x, "batch_size": 1024}, steps=500, elbo="diffusion", progress=False,
          optim=pyro.optim.ClippedAdam({"lr": 0.08, "lrd": 0.99}))
    pyro.clear_param_store()
    return chain, DATA_MEAN + DATA_SD * torch.randn(2000, 1)


def _paired_gap(chain, x, reps=8):
    """log p_theta(x) - ELBO(x) per point (the ELBO averaged over ``reps`` draws), and log p_theta(x)."""
    elbo = elbo_per_point(chain, x.repeat(reps, 1)).reshape(reps, -1).mean(0)
    with torch.no_grad():
        log_p = affine_chain_marginal(chain).log_prob(x).sum(-1)
    return log_p - elbo, elbo


def test_trained_elbo_reaches_the_exact_log_likelihood(gaussian_chain):
    chain, x_test = gaussian_chain
    gap, elbo = _paired_gap(chain, x_test)
    se = gap.std().item() / math.sqrt(len(gap))
    assert gap.mean().item() > -4 * se            # ELBO <= log p_theta(x)
    assert gap.mean().item() < 0.05               # ... and within 0.05 nats of it
    log_p_data = torch.distributions.Normal(DATA_MEAN, DATA_SD).log_prob(x_test).sum(-1)
    assert abs((log_p_data - elbo).mean().item()) < 0.05  # and of the data's own log-density


def test_untrained_chain_has_a_real_gap():
    """Same check before training: ELBO <= log p_theta(x) holds with a gap far above 0.05 nats."""
    pyro.set_rng_seed(1)
    chain = Diffusion(1, linear_schedule(10), eps_net=AffineEps(1, 10), variance="learned")
    gap, _ = _paired_gap(chain, DATA_MEAN + DATA_SD * torch.randn(2000, 1))
    assert gap.mean().item() > 0.5


def test_ancestral_samples_follow_the_models_marginal(gaussian_chain):
    chain, _ = gaussian_chain
    pyro.set_rng_seed(2)
    n = 20000
    draws = chain.sample(n)[:, 0]
    exact = affine_chain_marginal(chain)
    mean, sd = exact.loc.item(), exact.scale.item()
    assert within(draws.mean().item(), mean, sd / math.sqrt(n), k=4.5)
    assert within(draws.var().item(), sd**2, sd**2 * math.sqrt(2 / (n - 1)), k=4.5)
    assert abs(mean - DATA_MEAN) < 0.03 and abs(sd - DATA_SD) < 0.03
    snapshots = chain.trajectory(100, keep=(10, 5, 0))
    assert sorted(snapshots) == [0, 5, 10] and all(v.shape == (100, 1) for v in snapshots.values())


def test_heldout_report_in_bits_per_dim(gaussian_chain):
    chain, x_test = gaussian_chain
    report = heldout_elbo(chain, x_test)
    assert report.bits_per_dim == pytest.approx(-report.nats / math.log(2))
    # a uniform density on [-1, 1]^D is exact for data uniform over K bins of width 2/K: log2(K) bits
    assert bits_per_dim(-5 * math.log(2), 5, bin_width=2 / 17) == pytest.approx(math.log2(17))


# ---------------------------------------------------------------------------- hierarchical VAE

def test_hvae_starts_as_the_diffusion_and_learns_its_encoder():
    schedule = linear_schedule(3)
    pyro.set_rng_seed(0)
    hvae = HierarchicalVAE(2, schedule, hidden=(32, 32), encoder_hidden=(32,))
    ddpm = Diffusion(2, schedule, hidden=(32, 32))
    ddpm.eps_net.load_state_dict(hvae.eps_net.state_dict())
    x, x_test = moons(512, seed=0), moons(256, seed=1)
    for seed in range(3):  # same draws, same ELBO: a DDPM is an HVAE whose encoder is the forward process
        pyro.set_rng_seed(seed)
        a = Trace_ELBO().loss(hvae.model, hvae.guide, x)
        pyro.set_rng_seed(seed)
        b = Trace_ELBO().loss(ddpm.model, ddpm.guide, x)
        assert a == pytest.approx(b, rel=1e-5)
    pyro.set_rng_seed(0)  # the two evaluators agree: Pyro traces of the whole chain, and every-t closed form
    by_traces, closed_form = trace_elbo(ddpm, x_test, num_particles=16), heldout_elbo(ddpm, x_test)
    assert within(by_traces.nats, closed_form.nats, math.hypot(by_traces.se, closed_form.se))
    before = trace_elbo(hvae, x_test, num_particles=16)
    train(hvae.model, hvae.guide, {"x": x, "batch_size": 128}, steps=200, lr=0.01, elbo="trace", progress=False)
    after = trace_elbo(hvae, x_test, num_particles=16)
    assert after.nats > before.nats + 10 * math.hypot(before.se, after.se)
    assert hvae.encoder.net[-1].weight.abs().sum() > 0  # the encoder moved off the forward process
    with pytest.raises(NotApplicableError, match="learns its encoder"):
        DiffusionELBO().loss(hvae.model, hvae.guide, x)


# ------------------------------------------------------------------------------- registry, fit

def test_registered_model_fits_through_its_own_guide():
    spec = ppgen.models.get("diffusion_2d")
    data = spec.data()
    assert data["x"].shape == (2000, 2)
    data["batch_size"] = 32
    for elbo in ("diffusion", "trace"):
        pyro.clear_param_store()
        fit = ppgen.fit("diffusion_2d", data, method="svi", steps=3, num_samples=0,
                        elbo=elbo, device="cpu", progress=False)
        assert len(fit.losses) == 3 and all(math.isfinite(v) for v in fit.losses)


# ---------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("betas, where", [([0.1, 1.0], "beta_2"), ([0.0, 0.5], "beta_1"), ([-0.2], "beta_1"),
                                           ([0.1, float("nan")], "beta_2")])
def test_schedule_rejects_betas_outside_the_unit_interval(betas, where):
    with pytest.raises(ValueError, match=rf"\(0, 1\).*{where}"):
        NoiseSchedule(betas)


@pytest.mark.parametrize("T", [0, -3, 2.5, True])
@pytest.mark.parametrize("make", [linear_schedule, cosine_schedule])
def test_schedule_rejects_a_bad_T(make, T):
    with pytest.raises(ValueError, match=r"T \(the number of diffusion steps\) must be an integer >= 1"):
        make(T)


def test_unknown_names_are_listed():
    with pytest.raises(UnknownNameError, match="linear, cosine"):
        make_schedule("quadratic", 10)
    with pytest.raises(UnknownNameError, match="fixed, fixed_large, learned"):
        Diffusion(2, linear_schedule(5), variance="big")
    with pytest.raises(UnknownNameError, match="elbo, simple"):
        DiffusionELBO(objective="hybrid")


@pytest.mark.parametrize("x, message", [
    (torch.zeros(10, 3), r"shape \(N, 2\) with N >= 1, got \(10, 3\)"),
    (torch.zeros(10), r"shape \(N, 2\) with N >= 1, got \(10,\)"),
    (torch.zeros(0, 2), r"got \(0, 2\)"),
    (torch.zeros(10, 2, dtype=torch.long), "floating point"),
    ([[0.0, 1.0]], "must be a tensor"),
])
def test_wrong_data_is_a_data_error_before_any_step(x, message):
    chain = Diffusion(2, linear_schedule(5), hidden=(8,))
    for run in (lambda: chain.model(x), lambda: chain.guide(x),
                lambda: DiffusionELBO().loss(chain.model, chain.guide, x=x)):
        with pytest.raises(DataError, match=r"site 'x_0' \(data x\).*" + message):
            run()


def test_fast_elbo_refuses_what_it_cannot_estimate():
    x = moons(16, seed=0)

    def not_a_chain(x):
        pyro.sample("obs", pyro.distributions.Normal(0.0, 1.0).expand(x.shape).to_event(2), obs=x)

    with pytest.raises(NotApplicableError, match="never reached chain_start"):
        DiffusionELBO().loss(not_a_chain, lambda x: None, x)
    learned = Diffusion(2, linear_schedule(5), hidden=(8,), variance="learned")
    with pytest.raises(NotApplicableError, match="does not train a learned variance"):
        DiffusionELBO(objective="simple").loss(learned.model, learned.guide, x)
