"""Autoencoders and PCA (notes: autoencoders, representation learning).

An autoencoder is an encoder h = f(x) and a decoder r = g(h) trained to reconstruct their input::

    minimize_{f, g}  (1/N) sum_n L(x_n, g(f(x_n)))          h: (N, k), k < D: a bottleneck

With linear f, g and the squared loss the best rank-k reconstruction is the truncated SVD of the
centred data (Eckart-Young): keep the k largest singular values; the error is the sum of the others
squared, over N. :class:`PCA` computes it directly, :class:`Autoencoder` learns it (and anything
else, with other networks or losses). The VAE is the probabilistic sibling: a distribution over h.

As a Pyro program an autoencoder has parameters and no latent variables: one factor
``-L(x_n, g(f(x_n)))`` per data point, so MAP (or SVI, with nothing to infer) is minimizing the loss,
and it trains through ppgen's one loop (:func:`ppgen.inference.svi.train`).
"""
from __future__ import annotations

from typing import Callable, Sequence

import pyro
import torch
import torch.nn.functional as F
from torch import nn

from ppgen.data.images import load_digits
from ppgen.errors import DataError, NotApplicableError, UnknownNameError
from ppgen.models import register
from ppgen.nets import mlp

__all__ = ["Autoencoder", "PCA", "LOSSES", "autoencoder"]

# L(x, output) per data point, summed over features. "bernoulli": the decoder outputs logits.
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "squared": lambda x, out: (x - out).pow(2).sum(-1),
    "bernoulli": lambda x, logits: F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1),
}


def _check_data(x, n_features: int | None, like: torch.Tensor | None = None) -> torch.Tensor:
    """``x`` as an (N, n_features) finite floating tensor (on ``like``'s device and dtype if given)."""
    x = x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=torch.get_default_dtype())
    if like is not None:
        x = x.to(device=like.device, dtype=like.dtype)
    if x.ndim != 2 or (n_features is not None and x.shape[1] != n_features):
        want = f"(N, {n_features})" if n_features is not None else "(N, D)"
        raise DataError(f"x must be a {want} array of data points, got shape {tuple(x.shape)}")
    if not x.is_floating_point() or not torch.isfinite(x).all():
        raise DataError(f"x must hold finite floating-point values (dtype {x.dtype})")
    return x


class Autoencoder(nn.Module):
    """``decoder(encoder(x))`` with a reconstruction loss (``"squared"``, ``"bernoulli"`` or a callable
    ``loss(x, output) -> (N,)``). Any ``nn.Module`` pair works; :meth:`linear` and :meth:`mlp` build
    the usual ones."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, loss: str | Callable = "squared"):
        super().__init__()
        if isinstance(loss, str) and loss not in LOSSES:
            raise UnknownNameError(f"unknown loss {loss!r}; use one of {', '.join(LOSSES)} or a callable")
        self.encoder, self.decoder = encoder, decoder
        self.loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "custom")
        self.loss_fn = LOSSES[loss] if isinstance(loss, str) else loss
        self.n_features = next((m.in_features for m in encoder.modules() if isinstance(m, nn.Linear)), None)

    @classmethod
    def linear(cls, n_features: int, k: int, loss: str | Callable = "squared") -> "Autoencoder":
        """Linear encoder and decoder (with biases): the PCA case."""
        return cls(nn.Linear(n_features, k), nn.Linear(k, n_features), loss)

    @classmethod
    def mlp(cls, n_features: int, k: int, hidden: Sequence[int] = (64,), activation: type[nn.Module] = nn.ReLU,
            loss: str | Callable = "squared") -> "Autoencoder":
        """MLP encoder ``n_features -> hidden -> k`` and the mirrored decoder."""
        return cls(mlp([n_features, *hidden, k], activation), mlp([k, *reversed(hidden), n_features], activation), loss)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's output (logits for the Bernoulli loss)."""
        return self.decoder(self.encoder(x))

    def model(self, x: torch.Tensor, batch_size: int | None = None) -> None:
        """The Pyro program: a factor ``-L(x_n, g(f(x_n)))`` for each data point (minibatch of ``batch_size``)."""
        pyro.module("autoencoder", self, update_module_params=True)
        with pyro.plate("data", x.shape[0], subsample_size=batch_size) as i:
            xb = x if batch_size is None else x[i]  # (B, D)
            pyro.factor("reconstruction", -self.loss_fn(xb, self(xb)))

    def _check(self, x) -> torch.Tensor:
        return _check_data(x, self.n_features, like=next(self.parameters(), None))

    @torch.no_grad()
    def encode(self, x) -> torch.Tensor:
        return self.encoder(self._check(x))

    @torch.no_grad()
    def reconstruct(self, x) -> torch.Tensor:
        """``g(f(x))`` in data space (probabilities for the Bernoulli loss)."""
        out = self(self._check(x))
        return torch.sigmoid(out) if self.loss_name == "bernoulli" else out

    @torch.no_grad()
    def reconstruction_error(self, x) -> float:
        """The mean loss per data point."""
        x = self._check(x)
        return float(self.loss_fn(x, self(x)).mean())


def no_latents(*args, **kwargs) -> None:
    """The guide of a program without latent variables."""


class PCA:
    """Rank-k PCA by the SVD of the centred data ``x - mean = U S V^T``: encode with the top k
    right singular vectors. ``optimal_error`` is the Eckart-Young minimum of the squared
    reconstruction error over all rank-k reconstructions, ``sum_{i > k} s_i^2 / N``."""

    def __init__(self, k: int):
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k (the number of components) must be a positive integer, got {k!r}")
        self.k = k

    def fit(self, x) -> "PCA":
        x = _check_data(x, None)
        if self.k > min(x.shape):
            raise DataError(f"k={self.k} components need at least k data points and k features; x is {tuple(x.shape)}")
        self.mean_ = x.mean(0)
        _, s, vt = torch.linalg.svd(x - self.mean_, full_matrices=False)
        self.singular_values_, self.components_ = s, vt[: self.k]  # (min(N, D),), (k, D)
        self.optimal_error = float(s[self.k:].pow(2).sum() / len(x))
        return self

    def _check_fitted(self):
        if not hasattr(self, "components_"):
            raise NotApplicableError("this PCA is not fitted yet: call fit(x) first")

    def encode(self, x) -> torch.Tensor:
        self._check_fitted()
        return (_check_data(x, self.components_.shape[1], like=self.mean_) - self.mean_) @ self.components_.T

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        self._check_fitted()
        return h @ self.components_ + self.mean_

    def reconstruct(self, x) -> torch.Tensor:
        return self.decode(self.encode(x))

    def reconstruction_error(self, x) -> float:
        """Mean squared reconstruction error per data point (summed over features)."""
        x = _check_data(x, None, like=self.mean_)
        return float(LOSSES["squared"](x, self.reconstruct(x)).mean())

    @property
    def explained_variance_ratio(self) -> torch.Tensor:
        """Fraction of the total variance along each kept component."""
        self._check_fitted()
        power = self.singular_values_.pow(2)
        return power[: self.k] / power.sum()


def _digits() -> dict:
    return {"x": load_digits(binarize=False).x_train, "latent_dim": 8}


@register("autoencoder", data=_digits, default_method="map",
          description="deterministic MLP autoencoder as a Pyro program without latents (digits)")
def autoencoder(x, latent_dim=8, hidden=64, loss="squared", batch_size=None):
    """Autoencoder of ``x`` (N, D): MLP encoder ``D -> hidden -> latent_dim`` and mirrored decoder
    (``hidden=0``: linear, the PCA case), a factor ``-L(x_n, g(f(x_n)))`` per data point."""
    net = Autoencoder.mlp(x.shape[-1], int(latent_dim), (int(hidden),) if hidden else (), loss=loss).to(x)
    net.model(x, batch_size)  # the store's parameters replace the fresh network's after the first step
