"""Normalizing flows: invertibility and log-determinants of every transform, the lecture's change of
variables, normalization on a grid, flow guides against AutoNormal (funnel, banana), NeuTra, bad input."""
import math
import subprocess
import sys

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoNormal, init_to_median

import ppgen
from ppgen.data import toy2d
from ppgen.errors import ConfigError, DataError, UnknownNameError
from ppgen.inference.flow_guides import AmortizedFlow, AutoFlow, neutra
from ppgen.inference.svi import train
from ppgen.models.flows import KINDS, Flow, LinearTransform, build_transform


def _perturb(module: torch.nn.Module, seed: int, scale: float = 0.3) -> None:
    """Move every weight off its initial value so no layer is near the identity."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))


def _flow_transform(kind):
    torch.manual_seed(0)
    flow = Flow(3, kind, transforms=3, hidden=(16, 16)).double()
    _perturb(flow, 1)
    return flow.distribution().transforms[0]


def _linear_transform():
    return LinearTransform(torch.tensor([[2.0, 0.5, 0.0], [0.3, 1.0, -0.4], [0.0, 0.2, 0.7]], dtype=torch.float64))


def _autoflow_transform():
    zero = torch.zeros((), dtype=torch.float64)

    def model():  # three unconstrained numbers, one of them a positive site's log
        pyro.sample("a", dist.Normal(zero, 1.0))
        pyro.sample("b", dist.LogNormal(zero, 1.0).expand([2]).to_event(1))

    torch.manual_seed(0)
    guide = AutoFlow(model, kind="iaf")
    guide._setup_prototype()
    _perturb(guide, 2)
    return guide.get_transform()


def _amortized_transform():
    torch.manual_seed(0)
    amortized = AmortizedFlow(3, context_dim=2, kind="spline").double()
    _perturb(amortized, 3)
    return amortized(torch.tensor([0.5, -1.0], dtype=torch.float64)).transforms[0]


TRANSFORMS = {**{kind: (lambda k=kind: _flow_transform(k)) for kind in KINDS}, "linear": _linear_transform,
              "autoflow": _autoflow_transform, "amortized-spline": _amortized_transform}


@pytest.mark.parametrize("name", TRANSFORMS)
def test_inverse_of_forward_is_identity_and_log_det_matches_autograd(name):
    transform = TRANSFORMS[name]()
    torch.manual_seed(4)
    z = 1.5 * torch.randn(6, 3, dtype=torch.float64)
    x = transform(z)
    assert not torch.allclose(x, z, atol=1e-2)  # a real transform, not the identity
    z_back = transform.inv(x.clone())  # a new tensor: no cached shortcut
    assert torch.allclose(z_back, z, atol=1e-5, rtol=0)
    assert torch.allclose(transform(transform.inv(x.clone()).clone()), x, atol=1e-5, rtol=0)
    jacobians = torch.stack([torch.autograd.functional.jacobian(transform, zi.clone()) for zi in z])
    expected = torch.linalg.slogdet(jacobians).logabsdet
    assert torch.allclose(transform.log_abs_det_jacobian(z, x), expected, atol=1e-4, rtol=0)
    fresh_z, fresh_x = z.clone(), x.clone()  # the uncached path gives the same log-det
    assert torch.allclose(transform.log_abs_det_jacobian(fresh_z, fresh_x), expected, atol=1e-4, rtol=0)


def test_change_of_variables_examples_of_the_lecture():
    # Z ~ U(0, 2), X = 4Z: p_X = 1/8 on [0, 8], not 1/2
    scaled = dist.TransformedDistribution(dist.Uniform(0.0, 2.0), [dist.transforms.AffineTransform(0.0, 4.0)])
    assert torch.allclose(scaled.log_prob(torch.tensor([0.5, 3.0, 7.9])).exp(), torch.full((3,), 1 / 8))
    # X = exp(Z): p_X(x) = 1 / (2x) on [1, e^2]
    x = torch.tensor([1.2, 3.0, 7.0])
    exp = dist.TransformedDistribution(dist.Uniform(0.0, 2.0), [dist.transforms.ExpTransform()])
    assert torch.allclose(exp.log_prob(x).exp(), 1 / (2 * x))
    # linear A: p_X(x) = p_Z(A^-1 x) / |det A|, i.e. N(0, A A^T)
    A = torch.tensor([[2.0, 0.5], [-1.0, 1.5]], dtype=torch.float64)
    base = dist.Normal(torch.zeros(2, dtype=A.dtype), 1.0).to_event(1)
    linear = dist.TransformedDistribution(base, LinearTransform(A))
    x = torch.tensor([[0.3, -2.0], [1.0, 1.0]], dtype=A.dtype)
    direct = dist.Normal(0.0, 1.0).log_prob(torch.linalg.solve(A, x.T).T).sum(-1) - torch.linalg.det(A).abs().log()
    assert torch.allclose(linear.log_prob(x), direct)
    gaussian = dist.MultivariateNormal(torch.zeros(2, dtype=A.dtype), A @ A.T)
    assert torch.allclose(linear.log_prob(x), gaussian.log_prob(x))


@pytest.mark.parametrize("kind", KINDS)
def test_trained_2d_density_integrates_to_one_on_a_grid(kind):
    torch.manual_seed(0)
    flow = Flow(2, kind, transforms=4, hidden=(32, 32))
    losses = flow.fit(toy2d.sample("moons", 512, seed=0), steps=80, lr=5e-3, batch_size=256).losses_
    assert losses[-1] < losses[0] - 0.3  # it learned something: the density is no longer N(0, I)
    with torch.no_grad():
        outside = float((flow.sample(20_000).abs() > 10).any(1).float().mean())
        assert outside < 2e-3  # the mass outside the grid is well under the 1% tolerance
        g = torch.linspace(-10, 10, 501)
        xx, yy = torch.meshgrid(g, g, indexing="ij")
        density = flow.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp()
    assert float(density.sum() * (g[1] - g[0]) ** 2) == pytest.approx(1.0, abs=0.01)


# --- flow guides ---------------------------------------------------------------------------------
def funnel(dim: int = 2):
    """Neal's funnel: v ~ N(0, 3^2), x_i | v ~ N(0, e^v). Normalized, so log Z = 0."""
    v = pyro.sample("v", dist.Normal(0.0, 3.0))
    with pyro.plate("dims", dim):
        pyro.sample("x", dist.Normal(0.0, torch.exp(v / 2)))


def banana(y):
    """a, b ~ N(0, 1), y_i ~ N(a + b^2, 0.5^2): a curved (two-armed) posterior."""
    a = pyro.sample("a", dist.Normal(0.0, 1.0))
    b = pyro.sample("b", dist.Normal(0.0, 1.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(a + b**2, 0.5), obs=y)


def _banana_log_evidence(y: torch.Tensor) -> float:
    g = torch.linspace(-6, 6, 1201, dtype=torch.float64)
    a, b = torch.meshgrid(g, g, indexing="ij")
    log_joint = (dist.Normal(0.0, 1.0).log_prob(a) + dist.Normal(0.0, 1.0).log_prob(b)
                 + dist.Normal((a + b**2)[..., None], 0.5).log_prob(y.double()).sum(-1))
    return float(torch.logsumexp(log_joint.flatten(), 0) + 2 * torch.log(g[1] - g[0]))


def _elbo(model, guide, data, particles=4000, repeats=3):
    """ELBO estimate and its Monte Carlo standard error."""
    pyro.set_rng_seed(1)
    estimator = Trace_ELBO(num_particles=particles, vectorize_particles=True, max_plate_nesting=1)
    values = torch.tensor([-estimator.loss(model, guide, **data) for _ in range(repeats)])
    return float(values.mean()), float(values.std() / math.sqrt(repeats))


@pytest.mark.parametrize("name", ["funnel", "banana"])
def test_flow_guide_beats_autonormal_elbo(name):
    model, data = (funnel, {}) if name == "funnel" else (banana, {"y": torch.full((5,), 1.0)})
    log_z = 0.0 if name == "funnel" else _banana_log_evidence(data["y"])
    elbos = {}
    for label, guide in [("normal", AutoNormal(model, init_loc_fn=init_to_median)), ("flow", AutoFlow(model))]:
        pyro.clear_param_store()
        train(model, guide, data, steps=400, lr=0.01, seed=0, progress=False,
              elbo=Trace_ELBO(num_particles=8, vectorize_particles=True, max_plate_nesting=1))
        elbos[label] = _elbo(model, guide, data)
    (normal, se_normal), (flow, se_flow) = elbos["normal"], elbos["flow"]
    # measured (seeds fixed): funnel -1.30 vs -0.80 (log Z = 0), banana -4.89 vs -3.69 (log Z = -3.01)
    assert flow > normal + 0.3 + 5 * (se_normal + se_flow)
    assert flow < log_z + 5 * se_flow and normal < log_z + 5 * se_normal


def test_flow_guide_by_name_in_ppgen_fit():
    fit = ppgen.fit(banana, {"y": [1.0, 1.1, 0.9]}, method="svi", guide="flow", steps=30, num_samples=200,
                        progress=False)
    assert isinstance(fit.guide, AutoFlow)
    assert fit.samples["a"].shape == (200,) and fit.samples["b"].shape == (200,)
    assert any(k.startswith("AutoFlow.flow$$$") for k in fit.params)


def test_amortized_flow_posterior_reaches_the_exact_evidence():
    """z_n ~ N(0, 1), x_n ~ N(z_n, 0.5^2): the exact posterior is Gaussian in x_n, so the amortized
    flow can match it and the ELBO per point reaches log p(x_n) = log N(x_n; 0, 1.25)."""
    x = torch.linspace(-2.5, 2.5, 32)
    torch.manual_seed(0)
    posterior = AmortizedFlow(1, context_dim=1, kind="iaf", transforms=1, hidden=(16,))

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([x.shape[0], 1]).to_event(1))
            pyro.sample("x", dist.Normal(z.squeeze(-1), 0.5), obs=x)

    def guide(x):
        pyro.module("posterior", posterior)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", posterior(x.unsqueeze(-1)))

    train(model, guide, {"x": x}, steps=600, lr=0.02, seed=0, progress=False)
    elbo, se = _elbo(model, guide, {"x": x}, particles=2000)
    exact = float(dist.Normal(0.0, math.sqrt(1.25)).log_prob(x).sum())
    assert exact - 0.05 * len(x) < elbo < exact + 5 * se  # within 0.05 nats per point of log p(x)


def test_neutra_nuts_recovers_a_known_posterior():
    """mu ~ N(0, 1), y_i ~ N(mu, 1): the posterior is N(sum y / (n + 1), 1 / (n + 1))."""
    def model(y):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", y.shape[0]):
            pyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    y = torch.tensor([1.0, 2.0, 0.5, 1.5])
    fit = neutra(model, {"y": y}, steps=100, num_samples=400, num_warmup=100, progress=False, device="cpu")
    draws = fit.samples["mu"]
    assert fit.method == "neutra" and draws.shape == (400,) and "warped" in fit.extras
    mean, sd = float(y.sum() / 5), math.sqrt(1 / 5)
    assert abs(float(draws.mean()) - mean) < 4 * sd / math.sqrt(100)  # ESS >= 100 of 400 draws
    assert abs(float(draws.std()) - sd) < 0.15 * sd


# --- registry, bad input, side effects -----------------------------------------------------------
def test_registered_flow_runs_under_the_generic_fit_path():
    fit = ppgen.fit("flow_moons", method="map", steps=5, progress=False)
    assert len(fit.losses) == 5 and fit.losses[-1] < fit.losses[0]


def test_wrong_dimension_to_a_trained_flow_is_refused():
    flow = Flow(2, "maf", transforms=2, hidden=(8,))
    flow.fit(toy2d.sample("rings", 64, seed=0), steps=2)
    with pytest.raises(DataError, match=r"site 'x'.*2-dimensional.*shape \(n, 2\); got shape \(5, 3\)"):
        flow.log_prob(torch.zeros(5, 3))
    with pytest.raises(DataError, match=r"site 'x'.*got shape \(4,\)"):
        flow.fit(torch.zeros(4), steps=1)
    with pytest.raises(DataError, match="NaN"):
        flow.score(torch.tensor([[0.0, float("nan")]]))


def test_non_invertible_configurations_are_refused():
    with pytest.raises(ConfigError, match="singular"):
        LinearTransform(torch.tensor([[1.0, 2.0], [2.0, 4.0]]))
    with pytest.raises(ConfigError, match="slope must be > 0"):
        Flow(2, "spline", slope=0.0)
    with pytest.raises(ConfigError, match="coupling flow.*features=1"):
        Flow(1, "realnvp")
    with pytest.raises(ConfigError, match="at least one transform"):
        build_transform("maf", 3, transforms=0)
    with pytest.raises(UnknownNameError, match="kinds: nice, realnvp, maf, iaf, spline"):
        Flow(2, "glow")


def test_importing_zuko_through_ppgen_keeps_argument_validation_on():
    """zuko alone sets torch's Distribution._validate_args = False on import; ppgen's import puts it back.
    Checked in a fresh interpreter, where nothing else has imported zuko first."""
    script = ("import pyro, torch, ppgen.models.flows, zuko.flows\n"
              "assert torch.distributions.Distribution._validate_args\n"
              "try:\n    pyro.distributions.Normal(0.0, -1.0)\nexcept ValueError:\n    pass\n"
              "else:\n    raise SystemExit('validation is off')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.gpu
def test_flows_and_autoregressive_models_run_on_the_gpu():
    from ppgen.models.autoregressive import MADE

    device = torch.device("cuda")
    moons = torch.as_tensor(toy2d.sample("moons", 256), device=device)
    for net, x in [(Flow(2, "spline", hidden=(16,)).to(device), moons),
                   (MADE(8, (32,), num_masks=2).to(device), torch.bernoulli(torch.full((256, 8), 0.5, device=device)))]:
        assert len(net.fit(x, steps=3, batch_size=64).losses_) == 3
        assert net.log_prob(x).device.type == "cuda" and net.sample(5).device.type == "cuda"
    fit = ppgen.fit("flow_moons", method="map", steps=2, device="cuda", progress=False)
    assert all(v.device.type == "cuda" for v in fit.params.values())
