r"""Autoregressive models over binary vectors (lecture 2, and the neural models it leads to).

The chain rule writes any joint over :math:`x \in \{0, 1\}^n` exactly as

.. math:: p(x) = \prod_{i=1}^n p(x_i \mid x_{<i}),

so a model only chooses how each conditional is parameterized. A table per conditional needs
:math:`1 + 2 + 4 + \dots + 2^{n-1} = 2^n - 1` numbers, the same as the full joint; the models here
trade that for a function whose :math:`i`-th output sees only :math:`x_{<i}`::

    model          p(x_i = 1 | x_<i)                                   parameters
    Independent    sigma(b_i)                                          n
    MarkovChain    sigma(b_i + w_i x_{i-1})                            2n - 1
    TabularChain   sigma(theta_i[x_<i]), one number per prefix         2^n - 1
    FVSBN          sigma(b_i + sum_{j<i} W_ij x_j)                     n(n+1)/2
    NADE           sigma(b_i + V_i . sigma(c + W_{:,<i} x_<i)), d      2nd + n + d
    MADE           one masked-MLP pass gives all n logits              sum_l (h_{l-1} + 1) h_l

Each model has the exact log-likelihood in one pass (the logits of all n conditionals at once,
"teacher forcing") and ancestral sampling in n sequential steps: NADE and FVSBN carry partial sums
forward, so one sample costs :math:`O(nd)` and :math:`O(n^2)`; MADE needs n full passes.

As a Pyro program, a model is one vectorized site whose ``log_prob`` is the chain rule::

    pyro.module("made", made)
    with pyro.plate("data", N):
        pyro.sample("x", AutoregressiveBernoulli(made), obs=x)       # x: (N, n) in {0, 1}

There are no latent variables, so the ELBO of the empty guide *is* :math:`\log p_\theta(x)` and
ppgen's one training loop (:func:`ppgen.inference.svi.train`, as ``model.fit(x)``) fits the model by
maximum likelihood. Every model here is a :class:`~ppgen.models.density.DensityModel`.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import constraints
from torch import nn

from ppgen.errors import ConfigError, DataError
from ppgen.models import register
from ppgen.models.density import DensityModel

__all__ = ["AutoregressiveBernoulli", "Autoregressive", "Independent", "MarkovChain",
           "TabularChain", "FVSBN", "NADE", "MADE", "PARAMETER_FORMULAS"]

class AutoregressiveBernoulli(dist.TorchDistribution):
    r""":math:`p(x) = \prod_i \mathrm{Bernoulli}(x_i; \sigma(\ell_i(x_{<i})))` for an :class:`Autoregressive`
    network; event shape ``(n,)``. ``log_prob`` is exact, ``sample`` is ancestral."""

    arg_constraints = {}
    support = constraints.independent(constraints.boolean, 1)
    has_rsample = False

    def __init__(self, net: "Autoregressive", validate_args=None):
        self.net = net
        super().__init__(torch.Size(), torch.Size([net.features]), validate_args=validate_args)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return self.net.log_likelihood(value)

    @torch.no_grad()
    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        return self.net.ancestral_sample(math.prod(shape)).reshape(shape + self.event_shape)


class Autoregressive(DensityModel):
    """Base class: :meth:`logits` maps ``x`` (..., n) to the logits of all n conditionals at once, the
    i-th depending only on ``x_<i`` (in :attr:`order`)."""

    support_name = "binary vectors"

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def distribution(self) -> AutoregressiveBernoulli:
        return AutoregressiveBernoulli(self)

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """Exact :math:`\\log p(x) = \\sum_i \\log p(x_i | x_{<i})`, one pass."""
        return -F.binary_cross_entropy_with_logits(self.logits(x), x, reduction="none").sum(-1)

    def ancestral_sample(self, num: int) -> torch.Tensor:
        """``x_1 ~ p(x_1)``, then ``x_2 ~ p(x_2 | x_1)``, ...: n sequential passes of :meth:`logits`."""
        like = next(self.parameters())
        x = like.new_zeros(num, self.features)
        for i in range(self.features):
            x[:, i] = torch.bernoulli(torch.sigmoid(self.logits(x)[:, i]))
        return x

    def check(self, x) -> torch.Tensor:
        x = super().check(x)
        bad = (x != 0) & (x != 1)
        if bad.any():
            row, col = (int(i) for i in bad.nonzero()[0])
            raise DataError(f"site 'x': {type(self).__name__} models binary vectors, values must be 0 or 1; "
                            f"got {float(x[row, col])!r} at row {row}, column {col}")
        return x


class Independent(Autoregressive):
    """Full independence, :math:`p(x_i = 1) = \\sigma(b_i)`: n parameters."""

    def __init__(self, n: int, name: str | None = None):
        super().__init__(n, name)
        self.bias = nn.Parameter(torch.zeros(n))

    def logits(self, x):
        return self.bias.expand(x.shape)


class MarkovChain(Autoregressive):
    """:math:`p(x_i = 1 \\mid x_{i-1}) = \\sigma(b_i + w_i x_{i-1})`: a first-order chain, 2n - 1 parameters."""

    def __init__(self, n: int, name: str | None = None):
        super().__init__(n, name)
        self.bias = nn.Parameter(torch.zeros(n))
        self.weight = nn.Parameter(torch.zeros(n - 1))

    def logits(self, x):
        previous = F.pad(x[..., :-1] * self.weight, (1, 0))  # (..., n): 0 for x_1, w_i x_{i-1} after
        return self.bias + previous


class TabularChain(Autoregressive):
    """The chain rule with a full table per conditional: :math:`2^{i-1}` numbers for :math:`x_i`, so
    :math:`2^n - 1` in all, as many as the joint itself (the lecture's curse of dimensionality)."""

    max_features = 20

    def __init__(self, n: int, name: str | None = None):
        if n > self.max_features:
            raise ConfigError(f"a full table over n={n} binary variables needs 2^{n} - 1 = {2**n - 1:.3g} parameters; "
                             f"TabularChain stops at n={self.max_features}: use FVSBN, NADE or MADE")
        super().__init__(n, name)
        self.table = nn.Parameter(torch.zeros(2**n - 1))
        self.register_buffer("offsets", 2 ** torch.arange(n) - 1)  # x_i's table starts at 2^{i-1} - 1
        self.register_buffer("powers", 2 ** torch.arange(n))

    def logits(self, x):
        codes = F.pad(torch.cumsum(x * self.powers, -1)[..., :-1], (1, 0))  # binary code of x_<i
        return self.table[self.offsets + codes.long()]


class FVSBN(Autoregressive):
    r"""Fully visible sigmoid belief net: a logistic regression per conditional,
    :math:`p(x_i = 1 \mid x_{<i}) = \sigma(b_i + \sum_{j<i} W_{ij} x_j)`; :math:`n(n+1)/2` parameters
    (only the strictly lower triangle of W is stored)."""

    def __init__(self, n: int, name: str | None = None):
        super().__init__(n, name)
        rows, cols = torch.tril_indices(n, n, offset=-1)
        self.register_buffer("rows", rows)
        self.register_buffer("cols", cols)
        self.weight = nn.Parameter(torch.zeros(n * (n - 1) // 2))
        self.bias = nn.Parameter(torch.zeros(n))

    def matrix(self) -> torch.Tensor:
        """The strictly lower-triangular (n, n) weight matrix W."""
        return self.weight.new_zeros(self.features, self.features).index_put((self.rows, self.cols), self.weight)

    def logits(self, x):
        return x @ self.matrix().T + self.bias

    def ancestral_sample(self, num):
        W = self.matrix()
        x = W.new_zeros(num, self.features)
        for i in range(self.features):  # O(i) per step: O(n^2) per sample
            x[:, i] = torch.bernoulli(torch.sigmoid(self.bias[i] + x[:, :i] @ W[i, :i]))
        return x


class NADE(Autoregressive):
    r"""Neural autoregressive density estimator: the hidden layer is shared across conditionals,

    .. math:: h_i = \sigma(c + W_{:, <i} x_{<i}),\qquad p(x_i = 1 \mid x_{<i}) = \sigma(b_i + V_i \cdot h_i)

    with :math:`W \in R^{d \times n}, c \in R^d, V \in R^{n \times d}, b \in R^n`: :math:`2nd + n + d`
    parameters. The pre-activations are running sums, so evaluation and sampling are :math:`O(nd)`.
    """

    def __init__(self, n: int, hidden: int = 64, name: str | None = None):
        super().__init__(n, name)
        self.hidden = hidden
        self.W = nn.Parameter(torch.randn(hidden, n) / math.sqrt(n))
        self.c = nn.Parameter(torch.zeros(hidden))
        self.V = nn.Parameter(torch.randn(n, hidden) / math.sqrt(hidden))
        self.b = nn.Parameter(torch.zeros(n))

    def logits(self, x):
        contributions = x.unsqueeze(-1) * self.W.T  # (..., n, d): W_{:, j} x_j
        pre = self.c + F.pad(torch.cumsum(contributions, -2)[..., :-1, :], (0, 0, 1, 0))  # sum over j < i
        return (torch.sigmoid(pre) * self.V).sum(-1) + self.b

    def ancestral_sample(self, num):
        x = self.W.new_zeros(num, self.features)
        pre = self.c.expand(num, self.hidden).clone()
        for i in range(self.features):
            x[:, i] = torch.bernoulli(torch.sigmoid(torch.sigmoid(pre) @ self.V[i] + self.b[i]))
            pre = pre + x[:, i : i + 1] * self.W[:, i]
        return x


class MADE(Autoregressive):
    r"""Masked autoencoder for distribution estimation: an MLP whose weights are masked so that output
    i depends only on the inputs before i in an ordering; one pass gives all n conditionals.

    Degrees (Germain et al., 2015): input d gets its position in the ordering, :math:`m(d) \in 1..n`;
    each hidden unit a degree :math:`m(k) \in [\min m_{\text{prev}}, n-1]`; a weight to unit k from
    unit k' is kept if :math:`m(k) \ge m(k')`, a weight to output i if :math:`m(i) > m(k)`.

    ``num_masks > 1`` makes the model order-agnostic: K orderings (the first is the natural order
    unless ``natural_order=False``) and K mask sets share the weights, and the density is the exact
    mixture :math:`p(x) = \frac1K \sum_k p_k(x)` (each :math:`p_k` a normalized chain rule). Parameters:
    those of the dense MLP, :math:`\sum_l (h_{l-1} + 1) h_l` with :math:`h_0 = h_L = n` (see
    :meth:`num_connections` for the unmasked ones).
    """

    def __init__(self, n: int, hidden: Sequence[int] = (128,), num_masks: int = 1, natural_order: bool = True,
                 seed: int = 0, name: str | None = None):
        if n < 2:
            raise ConfigError(f"MADE needs n >= 2 variables (hidden degrees lie in 1..n-1), got n={n}")
        if num_masks < 1:
            raise ConfigError(f"num_masks must be a positive integer, got {num_masks}")
        super().__init__(n, name)
        sizes = [n, *hidden, n]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        generator = torch.Generator().manual_seed(seed)
        orders, masks = zip(*(self._orders_and_masks(sizes, generator, natural_order and k == 0)
                              for k in range(num_masks)))
        self.register_buffer("orders", torch.stack(orders))  # (K, n): orders[k][t] = variable sampled at step t
        for layer, stacked in enumerate(zip(*masks)):
            self.register_buffer(f"mask{layer}", torch.stack(stacked).float())  # (K, out, in)

    @staticmethod
    def _orders_and_masks(sizes, generator, natural):
        n = sizes[0]
        order = torch.arange(n) if natural else torch.randperm(n, generator=generator)
        degree_in = torch.empty(n, dtype=torch.long)
        degree_in[order] = torch.arange(1, n + 1)
        degrees, masks = [degree_in], []
        for width in sizes[1:-1]:
            low = int(degrees[-1].min())
            degrees.append(torch.randint(low, n, (width,), generator=generator))
            masks.append(degrees[-1][:, None] >= degrees[-2][None, :])
        masks.append(degree_in[:, None] > degrees[-1][None, :])
        return order, masks

    @property
    def num_masks(self) -> int:
        return self.orders.shape[0]

    def logits(self, x, mask: int = 0):
        h = x
        for layer_index, layer in enumerate(self.layers):
            h = F.linear(h, layer.weight * getattr(self, f"mask{layer_index}")[mask], layer.bias)
            if layer_index < len(self.layers) - 1:
                h = F.relu(h)
        return h

    def log_likelihood(self, x):
        per_mask = torch.stack([-F.binary_cross_entropy_with_logits(self.logits(x, k), x, reduction="none").sum(-1)
                                for k in range(self.num_masks)])
        return torch.logsumexp(per_mask, 0) - math.log(self.num_masks)

    def ancestral_sample(self, num):
        """Pick a mask set per draw (uniformly), then sample in its ordering: n passes per mask set."""
        like = next(self.parameters())
        which = torch.randint(self.num_masks, (num,), device=like.device)
        x = like.new_zeros(num, self.features)
        for k in range(self.num_masks):
            rows = (which == k).nonzero().squeeze(-1)
            xk = x[rows]
            for i in self.orders[k].tolist():
                xk[:, i] = torch.bernoulli(torch.sigmoid(self.logits(xk, k)[:, i]))
            x[rows] = xk
        return x

    def num_connections(self, mask: int = 0) -> int:
        """Weights left by mask set ``mask`` plus biases: the parameters that actually act."""
        return sum(int(getattr(self, f"mask{i}")[mask].sum()) + layer.bias.numel()
                   for i, layer in enumerate(self.layers))


PARAMETER_FORMULAS: dict[str, tuple[str, Callable[..., int]]] = {
    "full joint": ("2^n - 1", lambda n, **_: 2**n - 1),
    "Independent": ("n", lambda n, **_: n),
    "MarkovChain": ("2n - 1", lambda n, **_: 2 * n - 1),
    "TabularChain": ("2^n - 1", lambda n, **_: 2**n - 1),
    "FVSBN": ("n(n+1)/2", lambda n, **_: n * (n + 1) // 2),
    "NADE": ("2nd + n + d", lambda n, hidden, **_: 2 * n * hidden + n + hidden),
    "MADE": ("sum_l (h_{l-1} + 1) h_l",
             lambda n, hidden, **_: sum((a + 1) * b for a, b in zip([n, *hidden], [*hidden, n]))),
}
"""Lecture formulas for the number of parameters: ``name -> (formula, f(n, hidden=...))``."""


# --- registered models: factories, one network per fit ----------------------------------------
def _digits() -> dict:
    from ppgen.data.images import load_digits

    return {"x": load_digits(binarize=True).x_train}


def _sized(net: Autoregressive, name: str, x: torch.Tensor) -> Autoregressive:
    net.name = name  # the prefix of its parameters in Pyro's param store
    return net.to(device=x.device, dtype=x.dtype)


@register("fvsbn_digits", factory=True, data=_digits, default_method="map",
          description="FVSBN (a logistic regression per pixel) on binarized 8x8 digits, exact likelihood")
def fvsbn_digits(x) -> FVSBN:
    return _sized(FVSBN(x.shape[-1]), "fvsbn_digits", x)


@register("nade_digits", factory=True, data=_digits, default_method="map",
          description="NADE (shared hidden layer) on binarized 8x8 digits, exact likelihood")
def nade_digits(x, hidden: int = 64) -> NADE:
    return _sized(NADE(x.shape[-1], hidden), "nade_digits", x)


@register("made_digits", factory=True, data=_digits, default_method="map",
          description="MADE (masked MLP, one pass per likelihood) on binarized 8x8 digits, exact likelihood")
def made_digits(x, hidden: int = 256, num_masks: int = 1) -> MADE:
    return _sized(MADE(x.shape[-1], (hidden,), num_masks=num_masks), "made_digits", x)
