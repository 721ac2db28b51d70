"""GAN (notes, for contrast with likelihood models): samples without a likelihood.

A generator pushes noise through a network, x = G(z) with z ~ N(0, I); a discriminator
D(x) = P(x is data) plays against it::

    min_G max_D  V(G, D) = E_data[log D(x)] + E_z[log(1 - D(G(z)))]

For a fixed G the best discriminator is D*(x) = p_data(x) / (p_data(x) + p_g(x)), and then
V(G, D*) = 2 JSD(p_data || p_g) - log 4: the game minimizes the Jensen-Shannon divergence, where
maximum likelihood minimizes KL(p_data || p_theta) (= cross-entropy minus the data's entropy).
KL is >= 0 and not symmetric; JSD is symmetric and at most log 2.

The generator's density p_g is never available, so a GAN is judged by a two-sample statistic
(:func:`ppgen.metrics.mmd2`, :func:`ppgen.metrics.energy_distance`), where flows and diffusion
models also report log-likelihoods. Two generator objectives: ``"minimax"``, E_z[log(1 - D(G(z)))],
saturates (its gradient vanishes when D rejects the fakes confidently, as early in training);
``"non-saturating"``, -E_z[log D(G(z))], has the same fixed points and strong gradients early.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ppgen.errors import DataError, UnknownNameError
from ppgen.nets import mlp

__all__ = ["GAN", "discriminator_loss", "generator_loss", "OBJECTIVES", "optimal_discriminator",
           "kl_divergence", "js_divergence", "gan_value"]

OBJECTIVES = ("non-saturating", "minimax")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``-V(G, D)`` estimated on a batch, with D = sigmoid(logits): ``-E log D(x) - E log(1 - D(G(z)))``."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, objective: str = "non-saturating") -> torch.Tensor:
    """``E log(1 - D(G(z)))`` (``"minimax"``) or ``-E log D(G(z))`` (``"non-saturating"``)."""
    if objective == "minimax":
        return -F.softplus(fake_logits).mean()
    if objective == "non-saturating":
        return F.softplus(-fake_logits).mean()
    raise UnknownNameError(f"unknown GAN objective {objective!r}; use one of {', '.join(OBJECTIVES)}")


class GAN(nn.Module):
    """Generator ``G: R^latent_dim -> R^data_dim`` and discriminator ``D: R^data_dim -> logit``, MLPs
    from :mod:`ppgen.nets` unless given (any modules with those shapes)."""

    def __init__(self, data_dim: int = 2, latent_dim: int = 2, hidden: Sequence[int] = (64, 64),
                 objective: str = "non-saturating", generator: nn.Module | None = None,
                 discriminator: nn.Module | None = None):
        super().__init__()
        if objective not in OBJECTIVES:
            raise UnknownNameError(f"unknown GAN objective {objective!r}; use one of {', '.join(OBJECTIVES)}")
        self.data_dim, self.latent_dim, self.objective = data_dim, latent_dim, objective
        self.generator = generator if generator is not None else mlp([latent_dim, *hidden, data_dim])
        self.discriminator = discriminator if discriminator is not None else mlp([data_dim, *hidden, 1])

    def _noise(self, n: int, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, device=like.device, dtype=like.dtype)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(x).squeeze(-1)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """``n`` draws ``G(z)``, ``z ~ N(0, I)``: (n, data_dim)."""
        like = next(self.generator.parameters())
        return self.generator(self._noise(n, like))

    @torch.no_grad()
    def discriminate(self, x) -> torch.Tensor:
        """``D(x)``: the discriminator's probability that each row of ``x`` is data."""
        return torch.sigmoid(self.logits(self._check(x)))

    def _check(self, x) -> torch.Tensor:
        like = next(self.discriminator.parameters())
        x = torch.as_tensor(x).to(device=like.device, dtype=like.dtype)
        if x.ndim != 2 or x.shape[1] != self.data_dim:
            raise DataError(f"x must be an (N, {self.data_dim}) array of data points, got shape {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise DataError("x has NaN/inf values")
        return x

    def fit(self, x, steps: int = 2000, batch_size: int = 256, lr: float = 2e-3, betas=(0.5, 0.999),
            train_generator: bool = True, seed: int = 0, progress: bool = False) -> "GAN":
        """Alternate one discriminator step (descending ``-V``) and one generator step on minibatches
        of ``x`` (N, data_dim). ``train_generator=False`` trains D against a fixed G (it approaches
        D*). ``self.losses_``: per-step ``{"discriminator": [...], "generator": [...]}``."""
        x = self._check(x)
        if steps < 1 or batch_size < 1:
            raise ValueError(f"steps and batch_size must be positive, got {steps}, {batch_size}")
        torch.manual_seed(seed)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas)
        d_losses, g_losses = x.new_zeros(steps), x.new_zeros(steps)
        for step in tqdm(range(steps), desc="gan", disable=not progress, mininterval=0.5):
            real = x[torch.randint(len(x), (batch_size,), device=x.device)]
            fake = self.generator(self._noise(batch_size, x))
            d_loss = discriminator_loss(self.logits(real), self.logits(fake.detach()))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            d_losses[step] = d_loss.detach()
            if train_generator:
                g_loss = generator_loss(self.logits(fake), self.objective)
                opt_g.zero_grad()
                g_loss.backward()
                opt_g.step()
                g_losses[step] = g_loss.detach()
        self.losses_ = {"discriminator": d_losses.tolist(), "generator": g_losses.tolist() if train_generator else []}
        return self


# --- the divergences behind the contrast (discrete distributions: probability vectors) -----------

def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``KL(p || q) = sum_i p_i log(p_i / q_i)`` over the last axis (0 log 0 = 0; inf where q_i = 0 < p_i)."""
    ratio = torch.where(p > 0, p / q, torch.ones_like(p))
    return (p * ratio.log()).sum(-1)


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``JSD(p || q) = KL(p || m) / 2 + KL(q || m) / 2``, ``m = (p + q) / 2``: symmetric, in [0, log 2]."""
    m = (p + q) / 2
    return (kl_divergence(p, m) + kl_divergence(q, m)) / 2


def optimal_discriminator(p_data: torch.Tensor, p_g: torch.Tensor) -> torch.Tensor:
    """``D*(x) = p_data(x) / (p_data(x) + p_g(x))`` from the two densities (or probabilities) at x."""
    return p_data / (p_data + p_g)


def gan_value(p_data: torch.Tensor, p_g: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``V(G, D) = sum_x p_data(x) log D(x) + p_g(x) log(1 - D(x))`` for discrete distributions."""
    return (torch.xlogy(p_data, d) + torch.xlogy(p_g, 1 - d)).sum(-1)
