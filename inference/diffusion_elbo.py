"""The diffusion ELBO in closed form: an unbiased estimate whose cost does not grow with T.

For the chain of :mod:`ppgen.models.diffusion` with its fixed forward process as the guide,

    ELBO(x_0) = E_q[log p(x_{0:T}) - log q(x_{1:T} | x_0)]
              = -KL(q(x_T | x_0) || p(x_T)) - sum_{t=1}^T E_{q(x_t | x_0)}[L_{t-1}]
    L_{t-1}   = KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t))        for t >= 2
    L_0       = -log p_theta(x_0 | x_1)

with both Gaussians of the KL known in closed form. Drawing one t ~ U{1..T} per data point and
x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps from q(x_t | x_0) directly gives the unbiased estimate

    ELBO(x_0) ~= -KL(q(x_T | x_0) || N(0, I)) - T * L_{t-1}(x_t),

one network call per data point whatever T is. ``objective="simple"`` trains on Ho et al.'s
||eps - eps_theta(x_t, t)||^2 instead (not a bound; fixed variances only).

:class:`DiffusionELBO` is a Pyro ELBO, registered with the SVI loop as ``elbo="diffusion"`` and
``elbo="diffusion-simple"``: ``train(chain.model, chain.guide, {"x": x}, elbo="diffusion", ...)``.
It runs the model only up to its :func:`~ppgen.models.diffusion.chain_start` effect, where it reads
the chain, the minibatch and the plate's N/B scale; the guide is not run (it is the forward
process, used in closed form).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pyro
import torch
from pyro.infer import ELBO

from ppgen.errors import NotApplicableError, UnknownNameError
from ppgen.inference.handlers.chain_finder import ChainFinder, ChainReached
from ppgen.inference.objectives import register_elbo
from ppgen.models.diffusion import Diffusion, LatentChain

__all__ = ["DiffusionELBO", "prior_kl", "step_loss", "elbo_estimate", "simple_loss", "elbo_per_point", "heldout_elbo",
           "trace_elbo", "bits_per_dim", "HeldOut"]

OBJECTIVES = ("elbo", "simple")


def prior_kl(chain: Diffusion, x0: torch.Tensor) -> torch.Tensor:
    """KL(q(x_T | x_0) || N(0, I)) per data point, (...)."""
    abar = chain.alpha_bars[-1]
    return 0.5 * (abar * (x0.square() - 1) - torch.log1p(-abar)).sum(-1)


def step_loss(chain: Diffusion, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """L_{t-1} per data point at x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps: the Gaussian KL of
    q(x_{t-1} | x_t, x_0) from p_theta(x_{t-1} | x_t) for t >= 2, -log p_theta(x_0 | x_1) for t = 1.
    x0, eps: (..., D); t: (...) steps in 1..T. Returns (...)."""
    x_t = chain.q_sample(x0, t, eps)
    q_loc, q_var = chain.q_posterior(x0, x_t, t)        # q_loc = x_0, q_var = 0 at t = 1
    p_loc, p_scale = chain.reverse(x_t, t)
    p_var = p_scale.square()
    kl = p_var.log() - q_var.clamp_min(torch.finfo(q_var.dtype).tiny).log() + q_var / p_var - 1
    nll = torch.log(2 * math.pi * p_var)
    first = (t == 1).unsqueeze(-1)
    return 0.5 * ((q_loc - p_loc).square() / p_var + torch.where(first, nll, kl)).sum(-1)


def _draw(chain: Diffusion, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.randint(1, chain.T + 1, x0.shape[:-1], device=x0.device)
    return t, torch.randn_like(x0)


def elbo_estimate(chain: Diffusion, x0: torch.Tensor) -> torch.Tensor:
    """The one-t unbiased estimate of ELBO(x_0) per data point, (...)."""
    t, eps = _draw(chain, x0)
    return -prior_kl(chain, x0) - chain.T * step_loss(chain, x0, t, eps)


def simple_loss(chain: Diffusion, x0: torch.Tensor) -> torch.Tensor:
    """||eps - eps_theta(x_t, t)||^2 per data point at one t ~ U{1..T}, (...)."""
    t, eps = _draw(chain, x0)
    return (chain.eps_net(chain.q_sample(x0, t, eps), t) - eps).square().sum(-1)


def _find_chain(model, args, kwargs) -> ChainReached:
    try:
        with ChainFinder():
            model(*args, **kwargs)
    except ChainReached as reached:
        if not reached.chain.has_fixed_encoder:
            raise NotApplicableError(f"the diffusion ELBO needs the fixed forward process as the guide; "
                                     f"{type(reached.chain).__name__} learns its encoder: use elbo='trace'") from None
        return reached
    raise NotApplicableError(f"the diffusion ELBO needs a diffusion chain model "
                             f"(ppgen.models.diffusion.Diffusion.model); "
                             f"{getattr(model, '__name__', model)!r} never reached chain_start")


class DiffusionELBO(ELBO):
    """-ELBO of a :class:`~ppgen.models.diffusion.Diffusion` chain by the one-t closed-form estimator
    (``objective="elbo"``), or the simplified eps-MSE (``objective="simple"``), summed over the data
    (the minibatch scaled by N/B). ``num_particles`` draws of (t, eps) per data point are averaged."""

    def __init__(self, num_particles: int = 1, objective: str = "elbo"):
        if objective not in OBJECTIVES:
            raise UnknownNameError(f"unknown diffusion objective {objective!r}; choose from {', '.join(OBJECTIVES)}")
        super().__init__(num_particles=num_particles)
        self.objective = objective

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        found = _find_chain(model, args, kwargs)
        chain, x0 = found.chain, found.x0
        if self.num_particles > 1:
            x0 = x0.expand((self.num_particles,) + x0.shape)
        if self.objective == "simple":
            if chain.variance == "learned":
                raise NotApplicableError("the simple objective does not train a learned variance; "
                                         "use objective='elbo' or variance='fixed'")
            per_point = simple_loss(chain, x0)
        else:
            per_point = -elbo_estimate(chain, x0)
        return found.scale * per_point.sum() / self.num_particles

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            return float(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model, guide, *args, **kwargs) -> torch.Tensor:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return loss.detach()

    def _get_trace(self, model, guide, args, kwargs):
        raise NotImplementedError("DiffusionELBO computes the ELBO in closed form and draws no traces")


register_elbo("diffusion", lambda num_particles: DiffusionELBO(num_particles))
register_elbo("diffusion-simple", lambda num_particles: DiffusionELBO(num_particles, objective="simple"))


# -------------------------------------------------------------------------------------- evaluation

@dataclass(frozen=True)
class HeldOut:
    """The mean ELBO per data point in nats, its standard error over the points (data spread and Monte
    Carlo noise together), and the same mean in bits per dimension."""

    nats: float
    se: float
    bits_per_dim: float

    def __str__(self) -> str:
        return f"ELBO {self.nats:.4f} +- {self.se:.4f} nats ({self.bits_per_dim:.4f} bits/dim)"


def bits_per_dim(nats: float, dim: int, bin_width: float | None = None) -> float:
    """-ELBO in bits per dimension. For data quantized to bins of width ``bin_width`` (dequantized
    with uniform noise) log P(bin) >= ELBO + dim log(bin_width), and that bound is what is reported."""
    offset = dim * math.log(bin_width) if bin_width is not None else 0.0
    return -(nats + offset) / (dim * math.log(2))


def _summarize(per_point: torch.Tensor, dim: int, bin_width) -> HeldOut:
    mean = per_point.mean().item()
    se = (per_point.std() / math.sqrt(per_point.numel())).item() if per_point.numel() > 1 else float("nan")
    return HeldOut(mean, se, bits_per_dim(mean, dim, bin_width))


@torch.no_grad()
def elbo_per_point(chain: Diffusion, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """ELBO(x_0) of each row of ``x`` (N, D) with every t summed (one x_t draw per t and point):
    -KL(q(x_T | x_0) || p(x_T)) - sum_t L_{t-1}. T network calls per point; no variance from t. (N,)."""
    x = chain.check_data(x)
    parts = []
    for x0 in x.split(batch_size):
        total = -prior_kl(chain, x0)
        for t in range(1, chain.T + 1):
            steps = x0.new_full(x0.shape[:-1], t, dtype=torch.long)
            total = total - step_loss(chain, x0, steps, torch.randn_like(x0))
        parts.append(total)
    return torch.cat(parts)


def heldout_elbo(chain: Diffusion, x: torch.Tensor, *, bin_width: float | None = None) -> HeldOut:
    """Mean :func:`elbo_per_point` on held-out ``x``, its standard error, and bits per dimension."""
    return _summarize(elbo_per_point(chain, x), chain.data_dim, bin_width)


@torch.no_grad()
def trace_elbo(chain: LatentChain, x: torch.Tensor, *, num_particles: int = 16,
               bin_width: float | None = None) -> HeldOut:
    """The same ELBO for any chain (learned encoders too) from Pyro traces of the whole chain:
    log p(x_{0:T}) - log q(x_{1:T} | x_0) per point at a guide draw, averaged over ``num_particles`` draws."""
    x = chain.check_data(x)
    total = x.new_zeros(x.shape[0])
    with pyro.poutine.block():
        for _ in range(num_particles):
            guide = pyro.poutine.trace(chain.guide).get_trace(x)
            model = pyro.poutine.trace(pyro.poutine.replay(chain.model, trace=guide)).get_trace(x)
            total += _log_prob_per_point(model) - _log_prob_per_point(guide)
    return _summarize(total / num_particles, chain.data_dim, bin_width)


def _log_prob_per_point(trace) -> torch.Tensor:
    return sum(site["fn"].log_prob(site["value"]) for site in trace.nodes.values()
               if site["type"] == "sample" and site["name"] != "data")
