r"""Probabilistic PCA (Tipping and Bishop, 1999): the linear-Gaussian latent variable model, where
every quantity of Lecture 5 is closed form, so the bounds can be checked against the truth.

Generative story (``N`` points, ``D`` dimensions, ``k`` latents)::

    z_n ~ N(0, I_k)                                  # (N, k)
    x_n | z_n ~ N(W z_n + mu, sigma^2 I_D)           # (N, D), W: (D, k)

The graphical model::

    +-----------+
    |  z_n      |
    |   |       |       W, mu, sigma: parameters
    |   v       |
    |  x_n      |  N
    +-----------+

Closed forms (``C = W W^T + sigma^2 I_D``, ``M = W^T W + sigma^2 I_k``)::

    p(x)     = N(x; mu, C)                                   exact log-likelihood
    p(z | x) = N(M^{-1} W^T (x - mu), sigma^2 M^{-1})         exact posterior: ELBO = log p(x)
    ML:  W = U_k (L_k - sigma^2 I)^{1/2},  sigma^2 = mean of the D - k smallest eigenvalues L
         of the sample covariance (columns of U_k: the top-k principal directions).

The autoencoder notes' linear case, beside it (:mod:`ppgen.models.autoencoder`): a linear
autoencoder trained on squared error and PCA (the top-k right singular vectors of the centered data,
the best rank-k reconstruction by Eckart-Young) span the column space of the ML ``W``
(:func:`principal_cosines` measures it), and as ``sigma -> 0`` the posterior mean
``W E[z | x] + mu`` becomes the orthogonal projection onto that subspace: PCA's reconstruction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints

from ppgen.data.images import load_digits
from ppgen.errors import DataError
from ppgen.models import register
from ppgen.models.vae import SeenTensors

__all__ = ["PPCA", "ppca", "ppca_guide", "principal_cosines", "check_points"]


@dataclass(frozen=True)
class PPCA:
    """PPCA's parameters with its closed forms. ``W``: (D, k), ``mu``: (D,), ``sigma``: scalar tensor."""

    W: torch.Tensor
    mu: torch.Tensor
    sigma: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor, k: int) -> "PPCA":
        """Maximum likelihood, closed form: the top-k eigenpairs of the sample covariance."""
        check_points(x, k)
        mu = x.mean(0)
        evals, evecs = torch.linalg.eigh(torch.cov((x - mu).T, correction=0))
        evals, evecs = evals.flip(0), evecs.flip(1)                             # descending
        sigma2 = evals[k:].mean()
        W = evecs[:, :k] * (evals[:k] - sigma2).clamp_min(0).sqrt()
        return cls(W, mu, sigma2.sqrt())

    @classmethod
    def from_param_store(cls) -> "PPCA":
        """The parameters the ``ppca`` program learned (``ppca.W``, ``ppca.mu``, ``ppca.sigma``)."""
        return cls(*(pyro.param(f"ppca.{n}").detach() for n in ("W", "mu", "sigma")))

    def marginal(self) -> dist.MultivariateNormal:
        """p(x) = N(mu, W W^T + sigma^2 I)."""
        D = self.W.shape[0]
        cov = self.W @ self.W.T + self.sigma**2 * torch.eye(D, dtype=self.W.dtype, device=self.W.device)
        return dist.MultivariateNormal(self.mu, covariance_matrix=cov)

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x_n): (N,)."""
        return self.marginal().log_prob(x)

    def posterior(self, x: torch.Tensor) -> dist.MultivariateNormal:
        """Exact p(z_n | x_n) = N(M^{-1} W^T (x_n - mu), sigma^2 M^{-1}): batch (N,), event (k,)."""
        k = self.W.shape[1]
        M = self.W.T @ self.W + self.sigma**2 * torch.eye(k, dtype=self.W.dtype, device=self.W.device)
        loc = torch.linalg.solve(M, self.W.T @ (x - self.mu).T).T                # (N, k)
        return dist.MultivariateNormal(loc, covariance_matrix=self.sigma**2 * torch.linalg.inv(M))

    def elbo(self, x: torch.Tensor, loc: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        """The exact ELBO of each x_n under a Gaussian guide q(z_n) = N(loc_n, cov_n), loc (N, k),
        cov (k, k) or (N, k, k)::

            E_q[log p(x | z)] = -D/2 log(2 pi sigma^2) - (||x - W m - mu||^2 + tr(W^T W S)) / (2 sigma^2)
            KL(q || p(z))     = (tr S + m^T m - k - log det S) / 2
        """
        D, k = self.W.shape
        s2 = self.sigma**2
        resid = x - loc @ self.W.T - self.mu
        trace_term = (self.W.T @ self.W * cov).sum((-2, -1))
        expected_loglik = -0.5 * D * torch.log(2 * math.pi * s2) - (resid.pow(2).sum(-1) + trace_term) / (2 * s2)
        kl = 0.5 * (cov.diagonal(dim1=-2, dim2=-1).sum(-1) + loc.pow(2).sum(-1) - k - torch.logdet(cov))
        return expected_loglik - kl

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws from p(x): (n, D)."""
        D, k = self.W.shape
        like = dict(dtype=self.W.dtype, device=self.W.device)
        z = torch.randn(n, k, generator=generator, **like)
        return z @ self.W.T + self.mu + self.sigma * torch.randn(n, D, generator=generator, **like)


_CHECKED = SeenTensors()


def check_points(x: torch.Tensor, k: int, site: str = "x") -> None:
    """Raise :class:`DataError` naming ``site`` unless ``x`` is a finite (N, D) matrix with D > k."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise DataError(f"site {site!r}: expected an (N, D) matrix, got {getattr(x, 'shape', type(x).__name__)}")
    if x.shape[1] <= k:
        raise DataError(f"site {site!r}: latent_dim={k} must be smaller than the data dimension D={x.shape[1]}")
    if not torch.isfinite(x).all():
        raise DataError(f"site {site!r}: the data contain NaN or infinite values")


def _params(x: torch.Tensor, k: int) -> PPCA:
    D = x.shape[1]
    W = pyro.param("ppca.W", lambda: 0.1 * torch.randn(D, k, dtype=x.dtype, device=x.device))
    mu = pyro.param("ppca.mu", lambda: x.mean(0))
    sigma = pyro.param("ppca.sigma", lambda: x.new_ones(()), constraint=constraints.positive)
    return PPCA(W, mu, sigma)


def _digits_grey() -> dict:
    return {"x": load_digits(binarize=False).x_train}


def ppca(x, latent_dim: int = 2) -> None:
    """Probabilistic PCA: z ~ N(0, I_k), x | z ~ N(W z + mu, sigma^2 I); W, mu, sigma are ML parameters."""
    if x not in _CHECKED:                                                       # once per data tensor
        check_points(x, latent_dim)
        _CHECKED.add(x)
    p = _params(x, latent_dim)
    with pyro.plate("data", x.shape[0], device=x.device):
        z = pyro.sample("z", dist.Normal(x.new_zeros(()), 1.0).expand([x.shape[0], latent_dim]).to_event(1))
        pyro.sample("x", dist.Normal(z @ p.W.T + p.mu, p.sigma).to_event(1), obs=x)   # z: (N, k) -> (N, D)


def ppca_guide(x, latent_dim: int = 2) -> None:
    """The exact posterior p(z | x) under the current parameters: with it the ELBO is log p(x), and
    SVI is exact EM (the E-step is this guide, the M-step the gradient step on W, mu, sigma)."""
    post = _params(x, latent_dim).posterior(x)
    with pyro.plate("data", x.shape[0], device=x.device):
        pyro.sample("z", post)


register("ppca", data=_digits_grey, default_method="svi", guide=ppca_guide, tags=("latent",),
         description="probabilistic PCA (linear-Gaussian latents): closed-form log p(x), exact-posterior guide; "
                     "digit grey levels")(ppca)


def principal_cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosines of the principal angles between the column spaces of ``a`` (D, k) and ``b`` (D, k),
    descending; all ones iff the two spaces are equal."""
    qa, qb = torch.linalg.qr(a)[0], torch.linalg.qr(b)[0]
    return torch.linalg.svdvals(qa.T @ qb)
