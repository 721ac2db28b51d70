r"""Training energy-based models without computing the partition function.

Maximum likelihood needs samples from the model, because
:math:`\nabla_\theta \log Z = -\mathbb{E}_{p_\theta}[\nabla_\theta E]`:

.. math::

    \nabla_\theta \log p_\theta(x) = -\nabla_\theta E_\theta(x)
    + \mathbb{E}_{x' \sim p_\theta}[\nabla_\theta E_\theta(x')] .

Each objective here is a loss on a minibatch whose gradient is an estimator of the above, or of a
criterion that needs no samples at all:

- :class:`ContrastiveDivergence` (``k`` sweeps, ``persistent``): the negatives :math:`x'` by block Gibbs
  from the data (CD-k) or from chains kept across steps (PCD); for RBMs.
- :class:`LangevinML`: negatives by short-run Langevin dynamics started from a replay buffer of past
  negatives (5% fresh noise); for neural energies. A small penalty on :math:`E^2` keeps energies bounded.
- :class:`DenoisingScoreMatching`: match the model's score :math:`-\nabla_x E` at :math:`\tilde x = x + \sigma\epsilon`
  to the score of the Gaussian-smoothed data, :math:`-\epsilon/\sigma`; no sampling, no :math:`Z`.
- :class:`NoiseContrastiveEstimation`: logistic regression of data against noise samples with
  :math:`\log p_\theta = -E_\theta - c`; the learned :math:`c` estimates :math:`\log Z`.

:func:`fit_energy` writes the objective as a Pyro program (``pyro.factor`` adds minus the loss) and
hands it to ppgen's one optimization loop, :func:`ppgen.inference.svi.train`, with an empty guide.
"""
from __future__ import annotations

import math
from typing import Callable

import pyro
import torch
import torch.nn.functional as F
from torch import nn

from ppgen.errors import DataError, NumericalError
from ppgen.inference.samplers import check_positive, langevin

__all__ = [
    "ContrastiveDivergence",
    "LangevinML",
    "DenoisingScoreMatching",
    "NoiseContrastiveEstimation",
    "ReplayBuffer",
    "fit_energy",
]


class Objective(nn.Module):
    """A training criterion for an energy model: :meth:`setup` once with the data, then :meth:`loss`
    per minibatch. Subclasses may hold parameters (NCE's log-normalizer) and chain state."""

    def setup(self, model: nn.Module, x: torch.Tensor, batch_size: int) -> None:
        """Check ``x`` suits this objective and initialize state (chains, buffers, noise)."""

    def loss(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _ml_surrogate(model, batch, negatives) -> torch.Tensor:
    """:math:`\\bar E(\\text{data}) - \\bar E(\\text{negatives})`: its gradient is minus the ML gradient estimate."""
    return model.energy(batch).mean() - model.energy(negatives).mean()


class ContrastiveDivergence(Objective):
    """CD-k (``persistent=False``: chains restart at the data batch) or persistent CD (PCD: ``num_chains``
    chains, default the batch size, continue across steps). The model needs ``gibbs_sweep`` and binary data."""

    def __init__(self, k: int = 1, persistent: bool = False, num_chains: int | None = None):
        super().__init__()
        if int(k) < 1:
            raise ValueError(f"k (Gibbs sweeps per step) must be a positive integer, got {k!r}")
        self.k, self.persistent, self.num_chains = int(k), persistent, num_chains
        self.chains: torch.Tensor | None = None

    def setup(self, model, x, batch_size):
        from ppgen.models.rbm import check_binary

        if not hasattr(model, "gibbs_sweep"):
            raise TypeError(f"contrastive divergence needs a model with gibbs_sweep (an RBM), "
                            f"got {type(model).__name__}")
        check_binary(x, model.n_visible)
        if self.persistent:
            start = torch.randint(0, x.shape[0], (self.num_chains or batch_size,), device=x.device)
            self.chains = x[start]

    def loss(self, model, batch):
        x = self.chains if self.persistent else batch
        with torch.no_grad():
            for _ in range(self.k):
                x = model.gibbs_sweep(x)
        if self.persistent:
            self.chains = x
        return _ml_surrogate(model, batch, x)


class ReplayBuffer:
    """The last ``capacity`` negatives; :meth:`sample` returns ``n`` of them, a fraction ``fresh``
    replaced by new draws of ``init(n)`` so the chains keep exploring."""

    def __init__(self, init: Callable[[int], torch.Tensor], capacity: int = 10000, fresh: float = 0.05):
        self.init, self.fresh = init, fresh
        self.data = init(capacity)

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.data), (n,), device=self.data.device)
        x = self.data[idx]
        renew = torch.rand(n, device=x.device) < self.fresh
        return torch.where(renew[:, None], self.init(n), x), idx

    def push(self, x: torch.Tensor, idx: torch.Tensor) -> None:
        self.data[idx] = x.detach()


class LangevinML(Objective):
    """Maximum likelihood with negatives from ``steps`` Langevin steps (``step_size``, ``noise_scale``)
    started from a :class:`ReplayBuffer`; fresh starts are uniform on the data's bounding box, widened
    by ``margin``. ``alpha`` weights the energy-magnitude penalty :math:`\\alpha(E(x)^2 + E(x')^2)`."""

    def __init__(self, steps: int = 30, step_size: float = 0.01, noise_scale: float = 1.0, alpha: float = 0.1,
                 buffer_size: int = 10000, fresh: float = 0.05, margin: float = 0.1):
        super().__init__()
        self.steps, self.step_size = steps, check_positive("step_size", step_size)
        self.noise_scale, self.alpha, self.margin = noise_scale, alpha, margin
        self.buffer_size, self.fresh = buffer_size, fresh
        self.buffer: ReplayBuffer | None = None

    def setup(self, model, x, batch_size):
        low, high = x.min(0).values, x.max(0).values
        pad = self.margin * (high - low)
        low, high = low - pad, high + pad
        uniform = lambda n: low + (high - low) * torch.rand(n, x.shape[1], device=x.device, dtype=x.dtype)  # noqa: E731
        self.buffer = ReplayBuffer(uniform, capacity=self.buffer_size, fresh=self.fresh)

    def loss(self, model, batch):
        start, idx = self.buffer.sample(batch.shape[0])
        negatives = langevin(model.energy, start, steps=self.steps, step_size=self.step_size,
                             noise_scale=self.noise_scale)
        self.buffer.push(negatives, idx)
        e_pos, e_neg = model.energy(batch), model.energy(negatives)
        return e_pos.mean() - e_neg.mean() + self.alpha * (e_pos.pow(2) + e_neg.pow(2)).mean()


class DenoisingScoreMatching(Objective):
    r""":math:`\tfrac{\sigma^2}{2}\,\mathbb{E}\lVert -\nabla_x E(x + \sigma\epsilon) + \epsilon/\sigma \rVert^2`
    (Vincent, 2011). Minimized when :math:`-\nabla_x E` is the score of the data smoothed by :math:`N(0, \sigma^2)`."""

    def __init__(self, sigma: float = 0.1):
        super().__init__()
        self.sigma = check_positive("sigma", sigma)

    def loss(self, model, batch):
        eps = torch.randn_like(batch)
        noisy = (batch + self.sigma * eps).requires_grad_(True)
        (grad,) = torch.autograd.grad(model.energy(noisy).sum(), noisy, create_graph=True)  # grad = -score
        return 0.5 * (self.sigma * grad - eps).pow(2).sum(-1).mean()


class NoiseContrastiveEstimation(Objective):
    r"""Classify data against ``ratio`` times as many noise draws with the logit
    :math:`G(u) = -E(u) - c - \log q(u) - \log \nu`. ``noise`` is a distribution with ``sample`` and
    ``log_prob`` (default: a Gaussian with the data's mean and covariance, scales widened by 1.5).
    At the optimum :math:`c = \log Z` (Gutmann and Hyvarinen, 2010): read it from :attr:`log_z`."""

    def __init__(self, noise=None, ratio: float = 1.0):
        super().__init__()
        self.noise, self.ratio = noise, check_positive("ratio", ratio)
        self.log_z = nn.Parameter(torch.zeros(()))

    def setup(self, model, x, batch_size):
        if self.noise is None:
            centred = x - x.mean(0)
            cov = centred.T @ centred / (x.shape[0] - 1) + 1e-3 * torch.eye(x.shape[1], device=x.device, dtype=x.dtype)
            self.noise = torch.distributions.MultivariateNormal(x.mean(0), covariance_matrix=1.5**2 * cov)

    def loss(self, model, batch):
        num_noise = max(1, round(self.ratio * batch.shape[0]))
        noise = self.noise.sample((num_noise,))
        log_nu = math.log(self.ratio)
        logit = lambda u: -model.energy(u) - self.log_z - self.noise.log_prob(u) - log_nu  # noqa: E731
        return -(F.logsigmoid(logit(batch)).mean() + self.ratio * F.logsigmoid(-logit(noise)).mean())


def fit_energy(model: nn.Module, x, objective: Objective, *, steps: int, batch_size: int = 128, lr: float = 1e-3,
               optim=None, seed: int | None = 0, progress: bool = True, name: str = "ebm") -> list[float]:
    """Minimize ``objective`` for the energy ``model`` (an ``nn.Module`` with ``energy(x) -> (n,)``) on
    data ``x`` (n, d), ``batch_size`` rows per step drawn at random, for ``steps`` steps.

    The loss enters a Pyro program through ``pyro.factor``; ``model``'s (and the objective's) parameters
    are registered as ``pyro.module(name)`` (replacing what the param store held under that name) and
    optimized by :func:`ppgen.inference.svi.train` with ``optim`` (default Adam with ``lr``; pass
    ``pyro.optim.SGD({"lr": ...})`` for plain SGD). Returns the per-step losses.
    """
    from ppgen.inference.svi import train

    x = _check_data(x, model)
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    batch_size = min(batch_size, x.shape[0])
    if seed is not None:
        pyro.set_rng_seed(seed)
    objective.to(device=x.device, dtype=x.dtype).setup(model, x, batch_size)
    _check_energy(model, x)
    store = pyro.get_param_store()
    for key in [k for k in store.keys() if k.split("$$$")[0] in (name, f"{name}_objective")]:
        del store[key]

    def program(x):
        net = pyro.module(name, model)
        if list(objective.parameters()):
            pyro.module(f"{name}_objective", objective)
        batch = x[torch.randint(0, x.shape[0], (batch_size,), device=x.device)]
        pyro.factor(type(objective).__name__, -objective.loss(net, batch))

    def no_guide(x):
        pass

    return train(program, no_guide, {"x": x}, steps=steps, lr=lr, optim=optim, seed=None, progress=progress)


def _check_data(x, model) -> torch.Tensor:
    """``x`` as a finite 2-D tensor on the model's device and dtype."""
    param = next(model.parameters(), None)
    x = torch.as_tensor(x)
    if param is not None:
        x = x.to(device=param.device, dtype=param.dtype)
    if x.dim() != 2 or x.shape[0] < 1:
        raise DataError(f"site 'x': expected a non-empty (n, d) array of training points, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise DataError(f"site 'x': {int((~torch.isfinite(x)).any(-1).sum())} training points contain NaN or inf")
    return x


def _check_energy(model, x: torch.Tensor) -> None:
    """The model's energies on the first training points are one finite number per point."""
    with torch.no_grad():
        e = model.energy(x[:256])
    if e.shape != x[:256].shape[:1]:
        raise ValueError(f"model.energy must return one value per point: expected ({min(256, len(x))},), "
                         f"got {tuple(e.shape)}")
    if not torch.isfinite(e).all():
        raise NumericalError(f"model.energy is NaN/inf on {int((~torch.isfinite(e)).sum())} of the first {len(e)} "
                             "training points, before any training", step=0)
