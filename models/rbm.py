r"""Restricted Boltzmann machine: binary visible units x (n of them) and binary hidden units z (m).

.. math::

    E(x, z) = -(b^\top x + c^\top z + x^\top W z), \qquad p(x, z) = e^{-E(x, z)} / Z .

No visible-visible and no hidden-hidden terms, so both conditionals factorize (block Gibbs):

.. math::

    p(z_j = 1 \mid x) = \sigma(c_j + x^\top W_{:j}), \qquad p(x_i = 1 \mid z) = \sigma(b_i + W_{i:} z),

and summing the hidden units out gives the *free energy*, the energy of the visible marginal:

.. math::

    F(x) = -b^\top x - \sum_j \mathrm{softplus}(c_j + x^\top W_{:j}), \qquad p(x) = e^{-F(x)} / Z .

Read as a product of experts, :math:`p(x) \propto e^{b^\top x} \prod_j (1 + e^{c_j + x^\top W_{:j}})`:
one expert per hidden unit. :math:`Z` has :math:`2^{n+m}` terms; summing one layer out analytically
leaves :math:`2^{\min(n, m)}`, exact for small models (what Gibbs, CD and AIS are tested against).
"""
from __future__ import annotations

import pyro
import torch
import torch.nn.functional as F
from torch import nn

from ppgen.errors import DataError, NotApplicableError
from ppgen.models import register

__all__ = ["RBM", "all_binary_states", "bernoulli", "check_binary", "rbm"]

MAX_ENUMERATED_UNITS = 24  # 2^24 states, summed in chunks of 2^16


def all_binary_states(n: int, like: torch.Tensor) -> torch.Tensor:
    """All :math:`2^n` binary vectors of length ``n``, shape ``(2^n, n)``, on ``like``'s device and dtype."""
    codes = torch.arange(2**n, device=like.device)
    bits = 2 ** torch.arange(n - 1, -1, -1, device=like.device)
    return (codes[:, None].bitwise_and(bits) > 0).to(like.dtype)


def bernoulli(probs: torch.Tensor) -> torch.Tensor:
    """0/1 draws with success probabilities ``probs`` (``torch.bernoulli``'s law; a uniform comparison
    is about 3x faster on the CPU)."""
    return (torch.rand_like(probs) < probs).to(probs.dtype)


def check_binary(x, n_units: int | None = None, site: str = "x") -> torch.Tensor:
    """``x`` as a 2-D tensor of 0/1 values (with ``n_units`` columns if given); a :class:`DataError`
    naming the site and what is wrong otherwise."""
    x = torch.as_tensor(x)
    if x.dim() != 2 or (n_units is not None and x.shape[1] != n_units):
        expected = f"(n, {n_units})" if n_units is not None else "a 2-D (n, units)"
        raise DataError(f"site {site!r}: expected {expected} array of binary units, got shape {tuple(x.shape)}")
    bad = (x != 0) & (x != 1)
    if bad.any():
        value = x[bad][0].item()
        raise DataError(
            f"site {site!r}: a binary RBM needs values in {{0, 1}}, got {value!r} "
            f"({int(bad.sum())} of {x.numel()} entries are not 0 or 1); binarize first, e.g. (x > 0.5)"
        )
    return x


class RBM(nn.Module):
    """Binary-binary RBM with weights ``W`` (n_visible, n_hidden), visible bias ``b``, hidden bias ``c``."""

    def __init__(self, n_visible: int, n_hidden: int, init_scale: float = 0.01, *, device=None, dtype=None):
        super().__init__()
        self.W = nn.Parameter(init_scale * torch.randn(n_visible, n_hidden, device=device, dtype=dtype))
        self.b = nn.Parameter(torch.zeros(n_visible, device=device, dtype=dtype))
        self.c = nn.Parameter(torch.zeros(n_hidden, device=device, dtype=dtype))

    @classmethod
    def from_params(cls, W: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> "RBM":
        """An RBM holding copies of the given parameters (``W``: (n, m), ``b``: (n,), ``c``: (m,))."""
        rbm = cls(*W.shape, device=W.device, dtype=W.dtype)
        with torch.no_grad():
            rbm.W.copy_(W), rbm.b.copy_(b), rbm.c.copy_(c)
        return rbm

    @classmethod
    def from_sklearn(cls, estimator, dtype=torch.float32, device=None) -> "RBM":
        """The RBM of a fitted :class:`sklearn.neural_network.BernoulliRBM` (``components_`` is ``W.T``)."""
        as_t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
        return cls.from_params(as_t(estimator.components_.T), as_t(estimator.intercept_visible_),
                               as_t(estimator.intercept_hidden_))

    @property
    def n_visible(self) -> int:
        return self.W.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[1]

    # -- energies ---------------------------------------------------------------------------------
    def joint_energy(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """:math:`E(x, z)`, shape ``(...,)`` for ``x`` (..., n) and ``z`` (..., m)."""
        return -(x @ self.b + z @ self.c + ((x @ self.W) * z).sum(-1))

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """The free energy :math:`F(x)`, energy of the visible marginal; shape ``(...,)``."""
        return -(x @ self.b) - F.softplus(x @ self.W + self.c).sum(-1)

    # -- conditionals and block Gibbs -------------------------------------------------------------
    def hidden_probs(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`p(z_j = 1 \\mid x)`, shape (..., m)."""
        return torch.sigmoid(x @ self.W + self.c)

    def visible_probs(self, z: torch.Tensor) -> torch.Tensor:
        """:math:`p(x_i = 1 \\mid z)`, shape (..., n)."""
        return torch.sigmoid(z @ self.W.T + self.b)

    def gibbs_sweep(self, x: torch.Tensor) -> torch.Tensor:
        """One block-Gibbs sweep ``x -> z ~ p(z | x) -> x' ~ p(x | z)``; leaves :math:`p(x)` invariant."""
        z = bernoulli(self.hidden_probs(x))
        return bernoulli(self.visible_probs(z))

    # -- exact quantities for small models -------------------------------------------------------
    def log_partition(self) -> torch.Tensor:
        """Exact :math:`\\log Z` by enumerating the smaller layer (:math:`2^{\\min(n, m)}` terms).

        Differentiable, so exact maximum likelihood works for small ``min(n, m)``.
        """
        n, m = self.W.shape
        k = min(n, m)
        if k > MAX_ENUMERATED_UNITS:
            raise NotApplicableError(
                f"exact log Z of an RBM with {n} visible and {m} hidden units needs 2^{k} terms "
                f"(limit 2^{MAX_ENUMERATED_UNITS}); estimate it with ppgen.inference.ais.ais_rbm"
            )
        states = all_binary_states(k, self.W)
        if m <= n:  # sum x out analytically: log sum_z exp(c^T z + sum_i softplus(b_i + W_i z))
            terms = lambda s: s @ self.c + F.softplus(s @ self.W.T + self.b).sum(-1)  # noqa: E731
        else:
            terms = lambda s: -self.energy(s)  # noqa: E731
        chunks = [terms(s) for s in states.split(2**16)]
        return torch.logsumexp(torch.cat(chunks), 0)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact :math:`\\log p(x) = -F(x) - \\log Z`, shape (...,). Small models only (see :meth:`log_partition`)."""
        return -self.energy(x) - self.log_partition()

    def pseudo_log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`\\sum_i \\log p(x_i \\mid x_{-i}) = \\sum_i \\log\\sigma(F(x^{(i)}) - F(x))`, with
        :math:`x^{(i)}` = ``x`` with bit i flipped; shape (batch,). No Z needed; exact (all bits)."""
        eye = torch.eye(self.n_visible, device=x.device, dtype=x.dtype)
        flipped = (x[:, None, :] - eye).abs()  # (batch, n, n): row i has bit i flipped
        return F.logsigmoid(self.energy(flipped) - self.energy(x)[:, None]).sum(-1)

    def extra_repr(self) -> str:
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}"


def _binarized_digits() -> dict:
    from ppgen.data.images import load_digits

    return {"x": load_digits(binarize=True).x_train}


@register(
    "rbm",
    data=_binarized_digits,
    default_method="map",
    description="binary RBM on binarized 8x8 digits, exact likelihood (log Z by enumerating 2^n_hidden states)",
    tags=("ebm",),
)
def rbm(x, n_hidden: int = 12):
    """Binary RBM as a Pyro program: ``pyro.factor`` adds the exact :math:`\\log p(x_n) = -F(x_n) - \\log Z`.

    All parameters are ``pyro.module`` parameters (no latent sites), so ``method="map"`` is exact
    maximum likelihood. For large hidden layers train with :mod:`ppgen.inference.ebm_training` (CD, PCD).
    """
    x = check_binary(x)  # (N, n)
    net = pyro.module("rbm", RBM(x.shape[1], n_hidden, device=x.device, dtype=x.dtype), update_module_params=True)
    with pyro.plate("data", x.shape[0]):
        pyro.factor("x", net.log_prob(x))  # (N,)
