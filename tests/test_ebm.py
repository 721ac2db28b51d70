"""Continuous EBMs: samplers against known moments and exact marginals, normalizers in closed form,
products vs mixtures, the training objectives on a Gaussian with known answers, the denoising model,
and clear errors for bad step sizes and NaN energies."""
import math

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from torch import nn

from ppgen.data.toy2d import sample as toy_sample
from ppgen.errors import DataError, NotApplicableError, NumericalError
from ppgen.inference.ais import ais
from ppgen.inference.ebm_training import DenoisingScoreMatching, LangevinML, NoiseContrastiveEstimation, fit_energy
from ppgen.inference.samplers import langevin, mala, metropolis, nuts
from ppgen.models.ebm import (
    EnergyNet,
    IsingDenoiser,
    MixtureOfExperts,
    ProductOfExperts,
    ebm_2d,
    energy_program,
    grid,
    log_partition_enumerate,
    log_partition_grid,
    program_log_density,
)

MU, SD = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 1.0])


def gaussian_energy(x):
    return ((x - MU) / SD).pow(2).sum(-1) / 2


# a two-component Gaussian mixture with overlapping modes: known mean, sd and marginals
W, MUS, S = torch.tensor([0.3, 0.7]), torch.tensor([[-1.0, 0.5], [1.0, -0.5]]), 0.7


def mixture_energy(x):
    return -torch.logsumexp(-((x[:, None, :] - MUS) ** 2).sum(-1) / (2 * S**2) + W.log(), -1)


MIX_MEAN = (W[:, None] * MUS).sum(0)
MIX_SD = ((W[:, None] * (MUS**2 + S**2)).sum(0) - MIX_MEAN**2).sqrt()


def test_langevin_and_mala_reach_the_moments_of_a_gaussian():
    n, eps = 4000, 0.01
    pyro.set_rng_seed(0)
    x = langevin(gaussian_energy, torch.zeros(n, 2), steps=600, step_size=eps)
    # ULA's own stationary law: variance SD^2 / (1 - eps / (2 SD^2)), an O(eps) bias
    ula_sd = SD / (1 - eps / (2 * SD**2)).sqrt()
    assert torch.allclose(x.mean(0), MU, atol=5 * SD.max().item() / math.sqrt(n))
    assert torch.allclose(x.std(0), ula_sd, rtol=5 / math.sqrt(2 * n))
    x, accept = mala(gaussian_energy, torch.zeros(n, 2), steps=200, step_size=0.2)
    assert torch.allclose(x.mean(0), MU, atol=5 * SD.max().item() / math.sqrt(n))
    assert torch.allclose(x.std(0), SD, rtol=5 / math.sqrt(2 * n))
    assert 0.3 < accept.mean() < 1
    x, accept = metropolis(gaussian_energy, torch.zeros(n, 2), steps=300, scale=0.8)
    assert torch.allclose(x.mean(0), MU, atol=5 * SD.max().item() / math.sqrt(n))
    assert torch.allclose(x.std(0), SD, rtol=5 / math.sqrt(2 * n))


def test_langevin_and_mala_reach_the_moments_of_a_mixture():
    n = 2000
    pyro.set_rng_seed(1)
    start = 2 * torch.randn(n, 2)
    for x in (langevin(mixture_energy, start, steps=800, step_size=0.01),
              mala(mixture_energy, start, steps=400, step_size=0.2)[0]):
        assert torch.allclose(x.mean(0), MIX_MEAN, atol=5 * MIX_SD.max().item() / math.sqrt(n))
        assert torch.allclose(x.std(0), MIX_SD, rtol=0.05)  # 5 / sqrt(2n) = 0.08 MC error bound, tighter ok


def _x1_bins(samples, low=-3.5, high=3.5, bins=20):
    return torch.histc(samples[:, 0], bins, low, high) / len(samples)


def _exact_x1_bins(energy, low=-3.5, high=3.5, bins=20):
    points, _ = grid([low, -5.0], [high, 5.0], 400)
    p = (-energy(points)).exp()
    which = ((points[:, 0] - low) / (high - low) * bins).long().clamp(0, bins - 1)
    return torch.zeros(bins).index_add_(0, which, p / p.sum())


def _tv_quantile(p, n, q=0.99):
    """99% quantile of the TV distance between p and a histogram of n exact draws."""
    counts = np.random.default_rng(0).multinomial(n, p.double().numpy() / p.sum().item(), size=500)
    return np.quantile(0.5 * np.abs(counts / n - p.numpy()).sum(1), q)


def test_mala_and_nuts_samples_match_exact_marginals():
    exact = _exact_x1_bins(mixture_energy)
    pyro.set_rng_seed(2)
    x, _ = mala(mixture_energy, 2 * torch.randn(2000, 2), steps=300, step_size=0.2)
    assert 0.5 * (_x1_bins(x) - exact).abs().sum() < _tv_quantile(exact, 2000)
    # NUTS through the factor program, 20 independent copies in one state
    draws = nuts(mixture_energy, torch.zeros(20, 2), num_samples=100, num_warmup=100, seed=0).reshape(-1, 2)
    assert 0.5 * (_x1_bins(draws) - exact).abs().sum() < _tv_quantile(exact, len(draws) // 2)  # autocorrelated draws


def test_energy_program_puts_minus_the_energy_in_a_factor():
    program = energy_program(gaussian_energy, torch.zeros(2))
    x = torch.tensor([0.3, -1.0])
    tr = poutine.trace(poutine.condition(program, {"x": x})).get_trace()
    assert torch.allclose(tr.log_prob_sum(), -gaussian_energy(x[None])[0])


def test_ratios_and_argmax_need_no_normalizer():
    x, y = torch.randn(10, 2), torch.randn(10, 2)
    normal = dist.Normal(MU, SD).to_event(1)
    assert torch.allclose(gaussian_energy(y) - gaussian_energy(x), normal.log_prob(x) - normal.log_prob(y), atol=1e-5)
    # softmax is an EBM over a finite set: normalizing exp(-E) by enumeration is exactly softmax
    logits = torch.randn(7)
    energy = lambda k: -logits[k.squeeze(-1)]  # noqa: E731
    domain = torch.arange(7)[:, None]
    assert torch.allclose((-energy(domain) - log_partition_enumerate(energy, domain)).exp(), logits.softmax(0))
    # the mode on a grid is the same from normalized and unnormalized densities
    points, volume = grid([-4, -4], [4, 4], 50)
    normalized = -mixture_energy(points) - log_partition_grid(mixture_energy, [-4, -4], [4, 4], 50)
    assert torch.equal(normalized.argmax(), (-mixture_energy(points)).argmax())


def test_gaussian_and_exponential_normalizers_are_closed_form():
    sigma, lam = 1.7, 2.5
    z_gauss = log_partition_grid(lambda x: x[:, 0] ** 2 / (2 * sigma**2), -12 * sigma, 12 * sigma, 2000)
    assert abs(z_gauss.item() - 0.5 * math.log(2 * math.pi * sigma**2)) < 1e-4
    z_exp = log_partition_grid(lambda x: lam * x[:, 0], 0.0, 30 / lam, 4000)
    assert abs(z_exp.item() - math.log(1 / lam)) < 1e-4
    # AIS gets the Gaussian's from a wide base: log Z = log(2 pi) + sum log SD
    base = dist.MultivariateNormal(torch.zeros(2), 9 * torch.eye(2))
    result = ais(gaussian_energy, base, num_chains=500, num_betas=200, step_size=0.1, seed=0)
    exact = math.log(2 * math.pi) + SD.log().sum().item()
    assert abs(result.log_z - exact) < 4 * result.stderr + 0.02, (result, exact)
    assert result.stderr < 0.06


def test_product_of_experts_is_and_mixture_is_or():
    # experts on {0..7}^2: A puts 95% of its mass on x1 < 4, B on x2 < 4, uniform otherwise
    domain = torch.stack(torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij"), -1).reshape(-1, 2)

    def expert(axis):
        return lambda x: torch.where(x[:, axis] < 4, 0.95 / 32, 0.05 / 32).log()

    both = (domain[:, 0] < 4) & (domain[:, 1] < 4)
    either = (domain[:, 0] < 4) | (domain[:, 1] < 4)
    poe, mix = ProductOfExperts(expert(0), expert(1)), MixtureOfExperts(expert(0), expert(1))
    p_poe = (-poe.energy(domain) - log_partition_enumerate(poe.energy, domain)).exp()
    p_mix = (-mix.energy(domain) - log_partition_enumerate(mix.energy, domain)).exp()
    assert abs(log_partition_enumerate(mix.energy, domain).item()) < 1e-5  # a mixture is normalized already
    assert abs(p_poe[both].sum().item() - 0.95**2) < 1e-5  # AND: 0.9025 where both experts agree
    assert abs(p_mix[both].sum().item() - 0.475) < 1e-5  # OR: the mixture only 0.475 there ...
    assert abs(p_mix[either].sum().item() - 0.975) < 1e-5  # ... and spreads over the union


def test_product_of_two_gaussians_has_the_closed_form_normalizer():
    a, b = dist.Normal(torch.tensor([-1.0]), 0.8).to_event(1), dist.Normal(torch.tensor([2.0]), 1.5).to_event(1)
    poe = ProductOfExperts(a, b)
    # int N(x; m1, s1) N(x; m2, s2) dx = N(m1; m2, s1^2 + s2^2)
    log_z = log_partition_grid(poe.energy, -15.0, 15.0, 3000)
    assert abs(log_z.item() - dist.Normal(2.0, math.sqrt(0.8**2 + 1.5**2)).log_prob(torch.tensor(-1.0)).item()) < 1e-4


@pytest.mark.filterwarnings("ignore:.*does not define `arg_constraints`")  # zuko's own distribution class
def test_pyro_programs_and_flows_are_experts():
    def mixture(x):  # a finite mixture program with a discrete latent per point
        with pyro.plate("data", x.shape[0]):
            k = pyro.sample("k", dist.Categorical(torch.tensor([0.2, 0.8])))
            pyro.sample("x", dist.Normal(torch.tensor([-1.0, 2.0])[k], 1.0), obs=x[:, 0])

    x = torch.linspace(-3, 4, 6)[:, None]
    components = dist.Normal(torch.tensor([-1.0, 2.0]), 1.0).log_prob(x)
    expected = torch.logsumexp(components + torch.tensor([0.2, 0.8]).log(), -1)
    assert torch.allclose(program_log_density(mixture)(x), expected, atol=1e-5)

    def latent_gaussian(x):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(z, 1.0), obs=x[:, 0])

    with pytest.raises(NotApplicableError, match="latent site 'z'"):
        program_log_density(latent_gaussian)(x)

    import zuko

    flow = zuko.flows.MAF(2, transforms=1, hidden_features=(8,))
    points = torch.randn(5, 2)
    poe = ProductOfExperts(flow, dist.Normal(torch.zeros(2), 1.0).to_event(1))
    assert torch.allclose(poe.energy(points), -flow().log_prob(points) - dist.Normal(0.0, 1.0).log_prob(points).sum(-1))
    assert len(list(poe.parameters())) == len(list(flow.parameters()))  # the flow's parameters can train


class GaussianEnergy(nn.Module):
    """E(x) = sum ((x - loc) / scale)^2 / 2, log Z = sum log(scale sqrt(2 pi)): the answers are known."""

    def __init__(self, d):
        super().__init__()
        self.loc, self.log_scale = nn.Parameter(torch.zeros(d)), nn.Parameter(torch.zeros(d))

    def energy(self, x):
        return ((x - self.loc) / self.log_scale.exp()).pow(2).sum(-1) / 2

    def log_z(self):
        return (self.log_scale + 0.5 * math.log(2 * math.pi)).sum()


@pytest.fixture(scope="module")
def gaussian_data():
    torch.manual_seed(0)
    return torch.tensor([1.0, -1.0]) + torch.tensor([0.5, 1.5]) * torch.randn(4000, 2)


def _fit(objective, data, steps=500):
    model = GaussianEnergy(2)
    fit_energy(model, data, objective, steps=steps, batch_size=512, progress=False,
               optim=pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.995}))
    return model


def test_nce_recovers_the_gaussian_and_its_log_normalizer(gaussian_data):
    nce = NoiseContrastiveEstimation()
    model = _fit(nce, gaussian_data)
    assert torch.allclose(model.loc, gaussian_data.mean(0), atol=0.04)
    assert torch.allclose(model.log_scale.exp(), gaussian_data.std(0), rtol=0.03)
    assert abs(nce.log_z.item() - model.log_z().item()) < 0.03  # c estimates log Z


def test_denoising_score_matching_recovers_the_smoothed_gaussian(gaussian_data):
    sigma = 0.5
    model = _fit(DenoisingScoreMatching(sigma), gaussian_data)
    assert torch.allclose(model.loc, gaussian_data.mean(0), atol=0.05)
    smoothed = (gaussian_data.var(0) + sigma**2).sqrt()  # DSM fits the data convolved with N(0, sigma^2)
    assert torch.allclose(model.log_scale.exp(), smoothed, rtol=0.03)


def test_langevin_maximum_likelihood_recovers_the_gaussian(gaussian_data):
    objective = LangevinML(steps=20, step_size=0.05, alpha=0.0, fresh=0.0, buffer_size=1000)
    model = _fit(objective, gaussian_data, steps=400)
    assert torch.allclose(model.loc, gaussian_data.mean(0), atol=0.08)
    assert torch.allclose(model.log_scale.exp(), gaussian_data.std(0), rtol=0.1)


def test_registered_2d_ebm_is_normalized_on_its_box():
    x = torch.as_tensor(toy_sample("moons", 100, seed=0))
    tr = poutine.trace(ebm_2d).get_trace(x=x, hidden=16)
    net = EnergyNet(2, (16, 16), confinement=None)
    pyro.module("energy", net, update_module_params=True)
    log_p = lambda u: -net.energy(u) - log_partition_grid(net.energy, [-4, -4], [4, 4], 64)  # noqa: E731
    assert torch.allclose(tr.log_prob_sum(), log_p(x).sum(), atol=1e-3)
    points, volume = grid([-4, -4], [4, 4], 256)  # a 4x finer grid: the model's density integrates to 1
    assert abs((log_p(points).exp().sum() * volume).item() - 1) < 0.01


def test_trained_neural_energy_beats_the_best_gaussian_on_held_out_data():
    train, test = (torch.as_tensor(toy_sample("8gaussians", n, seed=s)) for n, s in ((2000, 0), (1000, 1)))
    gaussian = dist.MultivariateNormal(train.mean(0), torch.cov(train.T))
    torch.manual_seed(0)
    net = EnergyNet(2, (32, 32))
    fit_energy(net, train, NoiseContrastiveEstimation(), steps=300, batch_size=256, lr=0.01, progress=False)
    log_z = log_partition_grid(net.energy, [-6, -6], [6, 6], 200)
    held_out = (-net.energy(test) - log_z).mean().item()
    assert held_out > gaussian.log_prob(test).mean().item() + 0.5


def test_ising_denoiser_map_and_gibbs_need_no_normalizer():
    model = IsingDenoiser(coupling=0.8, fidelity=1.0)
    torch.manual_seed(0)
    x = torch.where(torch.rand(3, 3) < 0.5, 1.0, -1.0)
    states = 2 * torch.stack(torch.meshgrid(*[torch.tensor([0.0, 1.0])] * 9, indexing="ij"), -1).reshape(-1, 3, 3) - 1
    e = model.energy(states, x)
    log_p = -e - torch.logsumexp(-e, 0)  # the normalized posterior by enumeration (512 states)
    assert log_p.argmax() == (-e).argmax()  # same MAP from normalized and unnormalized
    y = model.icm(x)
    assert model.energy(y, x) >= e.min() - 1e-6
    flips = y * (1 - 2 * torch.eye(9).reshape(9, 3, 3))  # ICM stops where no single flip lowers E
    assert (model.energy(flips, x) >= model.energy(y, x) - 1e-6).all()
    pyro.set_rng_seed(0)
    draws = model.gibbs(x.expand(4000, 3, 3), sweeps=30)
    exact_marginals = (log_p.exp()[:, None, None] * (states > 0)).sum(0)
    assert torch.allclose((draws > 0).float().mean(0), exact_marginals, atol=4 * 0.5 / math.sqrt(4000))
    # on a larger image ICM removes most of the noise
    clean = -torch.ones(24, 24)
    clean[6:18, 6:18] = 1
    noisy = torch.where(torch.rand(24, 24) < 0.1, -clean, clean)
    assert (IsingDenoiser(1.0, 1.0).icm(noisy) != clean).float().mean() < 0.5 * (noisy != clean).float().mean()


class NaNEnergy(GaussianEnergy):
    def energy(self, x):
        return super().energy(x) * float("nan")


def test_bad_step_sizes_nan_energies_and_bad_data_are_named():
    x0 = torch.zeros(10, 2)
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="step_size must be a finite positive number"):
            langevin(gaussian_energy, x0, steps=1, step_size=bad)
        with pytest.raises(ValueError, match="step_size"):
            mala(gaussian_energy, x0, steps=1, step_size=bad)
        with pytest.raises(ValueError, match="step_size"):
            LangevinML(step_size=bad)
    with pytest.raises(ValueError, match="scale must be"):
        metropolis(gaussian_energy, x0, steps=1, scale=0)
    with pytest.raises(NumericalError, match="energy is nan at 10 of 10 starting points"):
        langevin(lambda x: x.sum(-1) * float("nan"), x0, steps=5, step_size=0.1)
    # an energy defined only for x >= 0 that pulls the chains below 0: the run stops, naming the step
    with pytest.raises(NumericalError, match="became NaN/inf by step"):
        langevin(lambda x: x.sqrt().sum(-1), torch.ones(10, 2), steps=200, step_size=0.5, check_every=10)
    with pytest.raises(ValueError, match="one value per point"):
        mala(lambda x: x.sum(), x0, steps=1, step_size=0.1)
    with pytest.raises(NumericalError, match="NaN/inf on 10 of the first 10 training points"):
        fit_energy(NaNEnergy(2), x0, NoiseContrastiveEstimation(), steps=1, progress=False)
    with pytest.raises(DataError, match="site 'x'.*NaN or inf"):
        fit_energy(GaussianEnergy(2), torch.full((10, 2), float("nan")), DenoisingScoreMatching(), steps=1,
                   progress=False)
    with pytest.raises(DataError, match=r"site 'x'.*\[-4.0, 4.0\]"):
        ebm_2d(x=torch.full((5, 2), 10.0))
    with pytest.raises(DataError, match="site 'x'.*spins"):
        IsingDenoiser().icm(torch.rand(4, 4))
