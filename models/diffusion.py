"""Diffusion models as hierarchical latent chains (DDPM, Ho et al. 2020), and a hierarchical VAE
on the same chain.

The generative story, for data x_0 in R^D (sites ``x_T, ..., x_1`` latent, ``x_0`` observed):

    x_T ~ N(0, I)
    x_{t-1} | x_t ~ N(mu_theta(x_t, t), sigma_t^2 I),                      t = T, ..., 1
    mu_theta(x_t, t) = (x_t - beta_t / sqrt(1 - abar_t) * eps_theta(x_t, t)) / sqrt(alpha_t)

and beside it the guide, the forward (noising) process, fixed:

    q(x_{1:T} | x_0) = prod_t N(x_t; sqrt(1 - beta_t) x_{t-1}, beta_t I)
    q(x_t | x_0)     = N(sqrt(abar_t) x_0, (1 - abar_t) I),    alpha_t = 1 - beta_t, abar_t = prod_{s<=t} alpha_s

The network eps_theta predicts the noise eps in x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps. The
variance sigma_t^2 is fixed (``"fixed"``: the posterior variance beta~_t of q(x_{t-1} | x_t, x_0),
beta_1 at t = 1; ``"fixed_large"``: beta_t) or learned (``"learned"``: one free value per step).

A DDPM is a hierarchical VAE whose encoder is fixed. :class:`HierarchicalVAE` is the same program
with a learned encoder q_phi(x_t | x_{t-1}) in the guide's place. Both are plain Pyro programs that
``Trace_ELBO`` fits through the whole chain (O(T) per step); the diffusion's fixed encoder also
admits the O(1)-in-T estimator of :mod:`ppgen.inference.diffusion_elbo`, which finds the chain
through the :func:`chain_start` effect in the model.
"""
from __future__ import annotations

import math
from typing import Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro.poutine.runtime import effectful
from torch import nn

from ppgen.data import toy2d
from ppgen.errors import DataError, UnknownNameError
from ppgen.models import register
from ppgen.nets import mlp

__all__ = ["NoiseSchedule", "linear_schedule", "cosine_schedule", "make_schedule", "SCHEDULES",
           "TimeMLP", "AffineEps", "LatentChain", "Diffusion", "HierarchicalVAE", "chain_start",
           "affine_chain_marginal", "diffusion_2d"]


# ----------------------------------------------------------------------------------------- schedules

class NoiseSchedule:
    """beta_1..beta_T of the forward process and the tables that follow from them.

    Tables are indexed by t = 0..T so code reads like the equations: entry 0 is t = 0 (beta_0 = 0,
    abar_0 = 1). ``posterior_variance[t]`` is beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t, the
    variance of q(x_{t-1} | x_t, x_0) (0 at t = 1). Kept in float64; a chain copies them to its dtype.
    """

    def __init__(self, betas):
        betas = torch.as_tensor(betas, dtype=torch.float64).detach().cpu()
        if betas.ndim != 1 or betas.numel() < 1:
            raise ValueError(f"betas must be a 1-D sequence of T >= 1 noise levels, got shape {tuple(betas.shape)}")
        bad = ~((betas > 0) & (betas < 1))
        if bad.any():
            i = int(bad.nonzero()[0, 0])
            raise ValueError(f"betas must lie in the open interval (0, 1); beta_{i + 1} = {betas[i].item()!r} "
                             f"({int(bad.sum())} of {betas.numel()} value(s) outside)")
        self.betas = torch.cat([betas.new_zeros(1), betas])                    # (T+1,)
        self.alphas = 1 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, 0)
        abar = self.alpha_bars
        self.posterior_variance = torch.cat([abar.new_zeros(1), (1 - abar[:-1]) / (1 - abar[1:]) * self.betas[1:]])

    @property
    def T(self) -> int:
        return self.betas.numel() - 1

    def __repr__(self) -> str:
        return (f"NoiseSchedule(T={self.T}, beta_1={self.betas[1].item():.3g}, beta_T={self.betas[-1].item():.3g}, "
                f"abar_T={self.alpha_bars[-1].item():.3g})")


def _check_T(T) -> int:
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T (the number of diffusion steps) must be an integer >= 1, got {T!r}")
    return T


def linear_schedule(T: int, beta_min: float = 0.1, beta_max: float = 20.0) -> NoiseSchedule:
    """DDPM's linear schedule, written in continuous time so that it is valid for every T.

    beta(s) = beta_min + s (beta_max - beta_min) on s in [0, 1] and
    beta_t = 1 - exp(-integral of beta(s) over [(t-1)/T, t/T]); at T = 1000 this is DDPM's
    beta_1 = 1e-4 ... beta_T = 0.02, and abar_T = exp(-(beta_min + beta_max) / 2) ~ 4e-5 for every T.
    """
    T = _check_T(T)
    t = torch.arange(1, T + 1, dtype=torch.float64)
    integral = beta_min / T + (beta_max - beta_min) * (2 * t - 1) / (2 * T**2)
    return NoiseSchedule(-torch.expm1(-integral))


def cosine_schedule(T: int, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
    """Nichol & Dhariwal's cosine schedule: abar_t = f(t) / f(0), f(t) = cos((t/T + s) / (1 + s) pi/2)^2,
    beta_t = min(1 - abar_t / abar_{t-1}, max_beta). The last step has beta_T = max_beta, where the
    reverse mean divides by sqrt(alpha_t) ~ 0.03: an eps-error delta there costs about
    delta^2 / (2 (1 - max_beta)) nats per dimension, so at large T the linear schedule trains more easily."""
    T = _check_T(T)
    f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    return NoiseSchedule((1 - abar[1:] / abar[:-1]).clamp(max=max_beta))


SCHEDULES = {"linear": linear_schedule, "cosine": cosine_schedule}


def make_schedule(name: str, T: int) -> NoiseSchedule:
    """The schedule called ``name`` (``"linear"`` or ``"cosine"``) with ``T`` steps."""
    if name not in SCHEDULES:
        raise UnknownNameError(f"unknown noise schedule {name!r}; schedules: {', '.join(SCHEDULES)}")
    return SCHEDULES[name](T)


# ------------------------------------------------------------------------------------------ networks

class TimeMLP(nn.Module):
    """f(x, t): an MLP (``ppgen.nets.mlp``, SiLU) on [x, embed(t)], with the sinusoidal embedding
    embed(t)_k = sin / cos(w_k * 1000 t / T), w_k = 10000^(-k / (time_dim / 2)): a transformer's
    position code on a time axis scaled to DDPM's 1000 steps whatever T is."""

    def __init__(self, n_in: int, n_out: int, T: int, hidden: Sequence[int] = (128, 128, 128), time_dim: int = 32):
        super().__init__()
        half = time_dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half) / half) * (1000.0 / T))
        self.net = mlp([n_in + 2 * half, *hidden, n_out], nn.SiLU)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # x: (..., n_in), t: (...) integer steps  ->  (..., n_out)
        angle = t.to(x.dtype).unsqueeze(-1) * self.freqs
        return self.net(torch.cat([x, angle.sin(), angle.cos()], -1))


class AffineEps(nn.Module):
    """eps_theta(x_t, t) = w_t * x_t + b_t, coordinatewise. For Gaussian data N(m, diag(s^2)) every
    q(x_{t-1} | x_t) is Gaussian with a mean affine in x_t, so this family (with ``variance="learned"``)
    contains the exact reverse process: the ELBO can reach log-likelihood."""

    def __init__(self, data_dim: int, T: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(T, data_dim))
        self.bias = nn.Parameter(torch.zeros(T, data_dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.weight[t - 1] * x + self.bias[t - 1]


# ------------------------------------------------------------------------------------------- chains

@effectful(type="latent_chain")
def chain_start(chain: "LatentChain", x0: torch.Tensor) -> None:
    """Marks where a chain's latents begin, inside the data plate. A no-op, unless a handler takes
    the chain over from here (the fast diffusion ELBO reads ``chain``, ``x0`` and the plate's scale)."""


def _at(table: torch.Tensor, t) -> torch.Tensor:
    """``table[t]`` shaped to broadcast against (..., D): a scalar for an int t, (..., 1) for a tensor."""
    return table[t] if isinstance(t, int) else table[t].unsqueeze(-1)


def _from_t1(values: torch.Tensor) -> torch.Tensor:
    """A table for t = 1..T padded with a 0 for t = 0."""
    return torch.cat([values.new_zeros(1), values])


VARIANCES = ("fixed", "fixed_large", "learned")


class LatentChain(nn.Module):
    """The generative chain p(x_T) prod_t p_theta(x_{t-1} | x_t) and a Markov guide along it.

    :param data_dim: D, the size of one data point; every x_t has it.
    :param schedule: a :class:`NoiseSchedule` (its T is the chain's length).
    :param eps_net: eps_theta(x_t, t) -> (..., D); default a :class:`TimeMLP` with ``hidden`` layers.
    :param variance: ``"fixed"``, ``"fixed_large"`` or ``"learned"`` (see the module doc).
    :param name: the prefix of the chain's params in Pyro's param store.

    Subclasses give the guide's step q(x_t | x_{t-1}) as :meth:`encode`.
    """

    has_fixed_encoder = False

    def __init__(self, data_dim: int, schedule: NoiseSchedule, eps_net: nn.Module | None = None,
                 variance: str = "fixed", hidden: Sequence[int] = (128, 128, 128), name: str = "chain"):
        super().__init__()
        if not isinstance(schedule, NoiseSchedule):
            raise TypeError(f"schedule must be a NoiseSchedule (linear_schedule(T), cosine_schedule(T)), "
                            f"got {schedule!r}")
        if variance not in VARIANCES:
            raise UnknownNameError(f"unknown variance {variance!r}; choose from {', '.join(VARIANCES)}")
        self.data_dim, self.T, self.variance, self.name = data_dim, schedule.T, variance, name
        self.eps_net = eps_net if eps_net is not None else TimeMLP(data_dim, data_dim, schedule.T, hidden)
        s, dtype = schedule, torch.get_default_dtype()
        beta, alpha, abar = s.betas[1:], s.alphas[1:], s.alpha_bars            # t = 1..T; abar for t = 0..T
        tables = {
            "betas": s.betas,
            "alpha_bars": abar,
            "posterior_variance": s.posterior_variance,
            "sqrt_alphas": s.alphas.sqrt(),
            "sqrt_alpha_bars": abar.sqrt(),
            "sqrt_one_minus_alpha_bars": (1 - abar).sqrt(),
            "eps_coef": _from_t1(beta / (1 - abar[1:]).sqrt()),
            # q(x_{t-1} | x_t, x_0) mean = coef_x0 * x_0 + coef_xt * x_t
            "posterior_coef_x0": _from_t1(abar[:-1].sqrt() * beta / (1 - abar[1:])),
            "posterior_coef_xt": _from_t1(alpha.sqrt() * (1 - abar[:-1]) / (1 - abar[1:])),
        }
        for key, table in tables.items():
            self.register_buffer(key, table.to(dtype))
        small = torch.cat([s.betas[:2], s.posterior_variance[2:]])           # beta~_t, and beta_1 at t = 1
        if variance == "learned":
            self.log_var = nn.Parameter(small[1:].log().to(dtype))            # (T,), sigma_t^2 = exp(log_var[t-1])
        else:
            self.register_buffer("fixed_variance", (small if variance == "fixed" else s.betas).to(dtype))

    # the reverse step p_theta(x_{t-1} | x_t) -----------------------------------------------------

    def reverse_variance(self, t) -> torch.Tensor:
        """sigma_t^2 for an int t or a (...) tensor of steps (shaped by :func:`_at`)."""
        if self.variance == "learned":
            return _at(self.log_var, t - 1).exp()
        return _at(self.fixed_variance, t)

    def reverse(self, x_t: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """loc and scale of p_theta(x_{t-1} | x_t); x_t: (..., D), t: an int or a (...) tensor of steps."""
        steps = t if torch.is_tensor(t) else x_t.new_full(x_t.shape[:-1], t, dtype=torch.long)
        eps = self.eps_net(x_t, steps)
        loc = (x_t - _at(self.eps_coef, t) * eps) / _at(self.sqrt_alphas, t)
        return loc, self.reverse_variance(t).sqrt().expand_as(loc)

    # the Pyro programs -------------------------------------------------------------------------

    def model(self, x: torch.Tensor, batch_size: int | None = None) -> None:
        """p(x_T) prod_t p_theta(x_{t-1} | x_t) with x_0 = x observed; x: (N, D), minibatched by the plate."""
        x = self.check_data(x)
        pyro.module(self.name, self)
        with pyro.plate("data", x.shape[0], subsample_size=batch_size) as idx:
            x0 = x[idx]                                                          # (B, D)
            chain_start(self, x0)
            x_t = pyro.sample(f"x_{self.T}", dist.Normal(x0.new_zeros(x0.shape), 1.0).to_event(1))
            for t in range(self.T, 0, -1):
                loc, scale = self.reverse(x_t, t)
                x_t = pyro.sample(f"x_{t - 1}", dist.Normal(loc, scale).to_event(1), obs=x0 if t == 1 else None)

    def guide(self, x: torch.Tensor, batch_size: int | None = None) -> None:
        """q(x_{1:T} | x_0) = prod_t q(x_t | x_{t-1}) from x_0 = x upwards."""
        x = self.check_data(x)
        if not self.has_fixed_encoder:
            pyro.module(self.name, self)
        with pyro.plate("data", x.shape[0], subsample_size=batch_size) as idx:
            x_t = x[idx]
            for t in range(1, self.T + 1):
                loc, scale = self.encode(x_t, t)
                x_t = pyro.sample(f"x_{t}", dist.Normal(loc, scale).to_event(1))

    def encode(self, x_prev: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    # sampling ------------------------------------------------------------------------------------

    @torch.no_grad()
    def trajectory(self, n: int, keep: Sequence[int]) -> dict[int, torch.Tensor]:
        """Ancestral sampling x_T -> x_{T-1} -> ... -> x_0 of ``n`` chains; returns {t: x_t (n, D)} for t in
        ``keep``."""
        x_t = torch.randn(n, self.data_dim, device=self.betas.device, dtype=self.betas.dtype)
        kept = {self.T: x_t} if self.T in keep else {}
        for t in range(self.T, 0, -1):
            loc, scale = self.reverse(x_t, t)
            x_t = loc + scale * torch.randn_like(loc)
            if t - 1 in keep:
                kept[t - 1] = x_t
        return kept

    def sample(self, n: int) -> torch.Tensor:
        """``n`` draws of x_0 from the model, (n, D)."""
        return self.trajectory(n, keep=(0,))[0]

    def check_data(self, x) -> torch.Tensor:
        """x as the (N, D) floating tensor the chain observes, or a :class:`DataError` saying what is wrong."""
        if not torch.is_tensor(x):
            raise DataError(f"site 'x_0' (data x) must be a tensor of shape (N, {self.data_dim}), "
                            f"got {type(x).__name__}")
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] != self.data_dim:
            raise DataError(f"site 'x_0' (data x) must have shape (N, {self.data_dim}) with N >= 1, "
                            f"got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise DataError(f"site 'x_0' (data x) must be floating point (continuous data), got {x.dtype}")
        if x.device != self.betas.device:
            raise DataError(f"site 'x_0' (data x) is on {x.device} but the chain is on {self.betas.device}: "
                            f"move one of them (chain.to(x.device))")
        return x


class Diffusion(LatentChain):
    """DDPM: the chain with the fixed forward process q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)
    as its guide, and the closed forms that make the fast ELBO possible."""

    has_fixed_encoder = True

    def __init__(self, data_dim: int, schedule: NoiseSchedule, eps_net: nn.Module | None = None,
                 variance: str = "fixed", hidden: Sequence[int] = (128, 128, 128), name: str = "diffusion"):
        super().__init__(data_dim, schedule, eps_net, variance, hidden, name)

    def encode(self, x_prev, t):
        """q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)."""
        beta = self.betas[t]
        return (1 - beta).sqrt() * x_prev, beta.sqrt().expand_as(x_prev)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, a draw of q(x_t | x_0); t: (...) steps."""
        return _at(self.sqrt_alpha_bars, t) * x0 + _at(self.sqrt_one_minus_alpha_bars, t) * eps

    def q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """loc and variance of q(x_{t-1} | x_t, x_0) (variance 0 at t = 1, where x_{t-1} = x_0)."""
        loc = _at(self.posterior_coef_x0, t) * x0 + _at(self.posterior_coef_xt, t) * x_t
        return loc, _at(self.posterior_variance, t)


class HierarchicalVAE(LatentChain):
    """The same chain with a learned Markov encoder in place of the forward process:

        q_phi(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1} + delta_phi(x_{t-1}, t), beta_t exp(2 s_phi(x_{t-1}, t)) I).

    delta_phi and s_phi start at 0, so before training this *is* the diffusion model; fitting it with
    ``Trace_ELBO`` moves the encoder towards the model's posterior. Use few levels (T of 2 to 10).
    """

    def __init__(self, data_dim: int, schedule: NoiseSchedule, eps_net: nn.Module | None = None,
                 variance: str = "fixed", hidden: Sequence[int] = (128, 128, 128),
                 encoder_hidden: Sequence[int] = (64, 64), name: str = "hvae"):
        super().__init__(data_dim, schedule, eps_net, variance, hidden, name)
        self.encoder = TimeMLP(data_dim, 2 * data_dim, schedule.T, encoder_hidden)
        last = self.encoder.net[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def encode(self, x_prev, t):
        steps = x_prev.new_full(x_prev.shape[:-1], t, dtype=torch.long)
        delta, log_s = self.encoder(x_prev, steps).chunk(2, -1)
        beta = self.betas[t]
        return (1 - beta).sqrt() * x_prev + delta, beta.sqrt() * log_s.exp()


def affine_chain_marginal(chain: LatentChain) -> dist.Normal:
    """The exact p_theta(x_0) of a chain whose eps_net is :class:`AffineEps`: every step is
    x_{t-1} = a_t x_t + c_t + sigma_t eps, so x_0 is Gaussian with mean and variance by recursion
    from x_T ~ N(0, I). Returns a Normal of batch shape (D,)."""
    if not isinstance(chain.eps_net, AffineEps):
        raise TypeError("affine_chain_marginal needs a chain whose eps_net is AffineEps")
    w, b = chain.eps_net.weight, chain.eps_net.bias
    mean, var = w.new_zeros(chain.data_dim), w.new_ones(chain.data_dim)
    for t in range(chain.T, 0, -1):
        a = (1 - chain.eps_coef[t] * w[t - 1]) / chain.sqrt_alphas[t]
        c = -chain.eps_coef[t] * b[t - 1] / chain.sqrt_alphas[t]
        mean, var = a * mean + c, a**2 * var + chain.reverse_variance(t)
    return dist.Normal(mean, var.sqrt())


# ------------------------------------------------------------------------------------------ registry

TOY_T = 50


@register("diffusion_2d", factory=True, data=lambda: {"x": toy2d.sample("moons", 2000, seed=0), "batch_size": 256},
          default_method="svi", tags=("latent",),
          description=f"DDPM (T={TOY_T}, linear schedule, eps-MLP) on two moons; its guide is the forward process")
def diffusion_2d(x) -> Diffusion:
    """DDPM on 2-D toy data: p(x_T) prod_t p_theta(x_{t-1} | x_t); its guide is the forward process
    q(x_{1:T} | x_0). Fit with ``elbo="diffusion"`` (closed form, O(1) in T) or ``"trace"`` (the whole chain)."""
    return Diffusion(2, linear_schedule(TOY_T), name="diffusion_2d").to(x.device, x.dtype)
