r"""Energy-based models: a density known up to its normalizer,

.. math::

    p_\theta(x) = \frac{e^{-E_\theta(x)}}{Z(\theta)}, \qquad Z(\theta) = \int e^{-E_\theta(x)}\,dx .

- Ratios :math:`p(x)/p(x') = e^{E(x') - E(x)}` need no :math:`Z`; neither do argmax, Langevin
  dynamics or MCMC, which only see :math:`E` and :math:`\nabla_x E`.
- :func:`energy_program` turns any energy into a Pyro program (``x`` latent, ``pyro.factor`` adds
  :math:`-E(x)`), so Pyro's HMC/NUTS sample from it.
- :class:`EnergyNet` is a neural energy for 2-D toy data and digits.
- :class:`ProductOfExperts` multiplies normalized models into one EBM (AND: mass where *every*
  expert is high); :class:`MixtureOfExperts` averages them (OR: mass where *any* is high).
- :class:`IsingDenoiser` is the lecture's denoising EBM: its MAP (iterated conditional modes) and
  Gibbs samples need no :math:`Z`.
- Small domains have exact :math:`Z`: :func:`log_partition_enumerate` on a finite set (softmax is an
  EBM over a finite set), :func:`log_partition_grid` by quadrature in one to three dimensions.

Shapes: an energy maps a batch of points ``(n, d)`` to ``(n,)``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ppgen.errors import DataError, NotApplicableError
from ppgen.models import register
from ppgen.nets import mlp

__all__ = [
    "EnergyNet",
    "ProductOfExperts",
    "MixtureOfExperts",
    "as_log_density",
    "program_log_density",
    "energy_program",
    "grid",
    "log_partition_enumerate",
    "log_partition_grid",
    "IsingDenoiser",
    "ebm_2d",
]

Energy = Callable[[torch.Tensor], torch.Tensor]


class EnergyNet(nn.Module):
    r""":math:`E_\theta(x) = f_\theta(x) + \lVert x - \mu\rVert^2 / (2 s^2)`.

    :math:`f_\theta` is an MLP with smooth (SiLU) activations, so :math:`\nabla_x E` exists everywhere
    for Langevin dynamics and HMC; it grows at most linearly, so the Gaussian confinement with scale
    ``confinement`` (``s``, centred at ``center``) keeps :math:`e^{-E}` integrable on
    :math:`\mathbb{R}^d` (pass ``None`` to drop it, e.g. on a bounded domain).
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (64, 64), confinement: float | None = 4.0,
                 center: float = 0.0):
        super().__init__()
        self.f = mlp([dim, *hidden, 1], activation=nn.SiLU)
        self.confinement = confinement
        self.center = center

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """(n, dim) -> (n,)."""
        e = self.f(x).squeeze(-1)
        if self.confinement is not None:
            e = e + (x - self.center).pow(2).sum(-1) / (2 * self.confinement**2)
        return e

    forward = energy


# -- products and mixtures of any ppgen models -----------------------------------------------------
def as_log_density(expert) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> log p(x)`` of shape (n,) for a model given as: anything with ``log_prob`` (torch/Pyro
    distributions), a zuko flow (``flow().log_prob``), or a callable already returning log densities.
    For a Pyro program use :func:`program_log_density`."""
    try:
        from zuko.lazy import LazyDistribution
    except ImportError:  # pragma: no cover - zuko is a dependency
        LazyDistribution = ()
    if isinstance(expert, LazyDistribution):
        return lambda x: expert().log_prob(x)
    if hasattr(expert, "log_prob"):
        return expert.log_prob
    if callable(expert):
        return expert
    raise TypeError(f"an expert needs a log_prob method or must be a callable x -> log p(x), "
                    f"got {type(expert).__name__}")


def program_log_density(model: Callable, data_name: str = "x", **kwargs) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> log p(x)`` (n,) of a Pyro program with its current parameters, observing ``data_name``.

    Discrete latent sites are summed out exactly (``TraceEnum_ELBO`` with an empty guide, one row
    at a time), so flows, autoregressive models and finite mixtures all qualify; a program with a
    continuous latent site has no closed-form ``log p(x)`` and raises :class:`NotApplicableError`.
    """
    from pyro import poutine
    from pyro.infer import TraceEnum_ELBO, config_enumerate
    from pyro.poutine.util import site_is_subsample

    enumerated = config_enumerate(model)
    elbo = TraceEnum_ELBO()

    def empty_guide(**_):
        pass

    def log_density(x: torch.Tensor) -> torch.Tensor:
        trace = poutine.trace(model).get_trace(**{data_name: x[:1]}, **kwargs)
        for name, site in trace.nodes.items():
            if (site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)
                    and not site["fn"].has_enumerate_support):
                raise NotApplicableError(
                    f"latent site {name!r} of {getattr(model, '__name__', model)!r} is continuous: "
                    "log p(x) is not available in closed form; pass a model with log_prob instead"
                )
        x = x if x.requires_grad else x.detach().requires_grad_(True)  # differentiable_loss needs a graph
        rows = [-elbo.differentiable_loss(enumerated, empty_guide, **{data_name: row[None]}, **kwargs) for row in x]
        return torch.stack(rows)

    return log_density


class ProductOfExperts(nn.Module):
    r"""One EBM from several models: :math:`E(x) = -\sum_i \log p_i(x)`, i.e.
    :math:`p(x) \propto \prod_i p_i(x)`. Like AND: a point is likely only where every expert agrees.
    :math:`Z = \int \prod_i p_i \neq 1` in general (exact on small domains, AIS otherwise)."""

    def __init__(self, *experts):
        super().__init__()
        if not experts:
            raise ValueError("a product of experts needs at least one expert")
        self.experts = nn.ModuleList([e for e in experts if isinstance(e, nn.Module)])  # their parameters train
        self._log_densities = [as_log_density(e) for e in experts]

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return -sum(log_p(x) for log_p in self._log_densities)

    forward = energy


class MixtureOfExperts(nn.Module):
    r""":math:`p(x) = \sum_i w_i p_i(x)`: normalized when the experts are. Like OR: a point is likely
    where any expert is. ``weights`` default to uniform."""

    def __init__(self, *experts, weights: Sequence[float] | torch.Tensor | None = None):
        super().__init__()
        if not experts:
            raise ValueError("a mixture needs at least one expert")
        self.experts = nn.ModuleList([e for e in experts if isinstance(e, nn.Module)])
        self._log_densities = [as_log_density(e) for e in experts]
        w = (torch.full((len(experts),), 1.0 / len(experts)) if weights is None
             else torch.as_tensor(weights, dtype=torch.float))
        if w.shape != (len(experts),) or (w < 0).any() or abs(float(w.sum()) - 1) > 1e-6:
            raise ValueError(f"weights must be {len(experts)} non-negative numbers summing to 1, got {w.tolist()}")
        self.register_buffer("log_weights", w.log())

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        log_ps = torch.stack([log_p(x) for log_p in self._log_densities], -1)  # (n, experts)
        return torch.logsumexp(log_ps + self.log_weights.to(log_ps), -1)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return -self.log_prob(x)

    forward = energy


# -- exact normalizers on small domains ---------------------------------------------------------------
def log_partition_enumerate(energy: Energy, domain: torch.Tensor) -> torch.Tensor:
    r""":math:`\log Z = \log\sum_{x \in \text{domain}} e^{-E(x)}` over a finite domain (rows of ``domain``)."""
    return torch.logsumexp(-energy(domain), 0)


def grid(low: Sequence[float] | float, high: Sequence[float] | float, size: int, like: torch.Tensor | None = None):
    """Midpoints of a regular grid with ``size`` cells per axis on the box ``[low, high]``.

    Returns ``(points, cell_volume)``: points ``(size^d, d)``, on ``like``'s device and dtype.
    """
    like = torch.empty(()) if like is None else like
    low = torch.as_tensor(low, device=like.device, dtype=like.dtype).reshape(-1)
    high = torch.as_tensor(high, device=like.device, dtype=like.dtype).reshape(-1)
    if low.shape != high.shape or (high <= low).any():
        raise ValueError(f"grid needs low < high on every axis, got low={low.tolist()}, high={high.tolist()}")
    u = (torch.arange(size, device=like.device, dtype=like.dtype) + 0.5) / size  # (size,)
    axes = [lo + (hi - lo) * u for lo, hi in zip(low, high)]
    points = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))
    return points, torch.prod((high - low) / size)


def log_partition_grid(energy: Energy, low, high, size: int = 200, like: torch.Tensor | None = None) -> torch.Tensor:
    r""":math:`\log \int_{\text{box}} e^{-E(x)}\,dx` by the midpoint rule (error :math:`O(h^2)`); for 1-3 dimensions.

    Exact up to discretization for a density supported on the box, and the whole :math:`Z` when the
    mass outside the box is negligible.
    """
    points, volume = grid(low, high, size, like)
    if points.shape[1] > 3:
        raise NotApplicableError(f"quadrature on a grid is for 1-3 dimensions, got {points.shape[1]}; "
                                 f"use ppgen.inference.ais")
    return log_partition_enumerate(energy, points) + volume.log()


# -- the lecture's denoising model ---------------------------------------------------------------------
class IsingDenoiser(nn.Module):
    r"""Denoise a noisy binary image :math:`x \in \{-1, 1\}^{H \times W}` with the energy

    .. math::

        E(y; x) = -\eta \sum_i x_i y_i - \beta \sum_{i \sim j} y_i y_j

    over clean images :math:`y` (4-neighbour grid): :math:`\eta` (``fidelity``) couples each pixel to
    its noisy observation, :math:`\beta` (``coupling``) neighbours to each other. With the local field
    :math:`h_i = \eta x_i + \beta \sum_{j \sim i} y_j`, :math:`p(y_i = 1 \mid y_{-i}, x) = \sigma(2 h_i)`:
    iterated conditional modes sets :math:`y_i = \mathrm{sign}(h_i)` (a local MAP), Gibbs samples it.
    Same-colour pixels of a checkerboard are conditionally independent, so each half updates at once.
    Shapes: ``x``, ``y``: (..., H, W).
    """

    def __init__(self, coupling: float = 1.0, fidelity: float = 2.0):
        super().__init__()
        self.coupling, self.fidelity = coupling, fidelity

    def energy(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        pairs = (y[..., 1:, :] * y[..., :-1, :]).sum((-2, -1)) + (y[..., :, 1:] * y[..., :, :-1]).sum((-2, -1))
        return -self.fidelity * (x * y).sum((-2, -1)) - self.coupling * pairs

    def local_field(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        padded = nn.functional.pad(y, (1, 1, 1, 1))
        neighbours = padded[..., :-2, 1:-1] + padded[..., 2:, 1:-1] + padded[..., 1:-1, :-2] + padded[..., 1:-1, 2:]
        return self.fidelity * x + self.coupling * neighbours

    def icm(self, x: torch.Tensor, sweeps: int = 10) -> torch.Tensor:
        """Iterated conditional modes from ``y = x``: every update lowers (or keeps) the energy."""
        return self._sweep(x, sweeps, lambda h, y: torch.where(h == 0, y, h.sign()))

    def gibbs(self, x: torch.Tensor, sweeps: int = 100) -> torch.Tensor:
        r"""A draw of :math:`y \sim p(y \mid x)` after ``sweeps`` Gibbs sweeps from ``y = x``."""
        return self._sweep(x, sweeps, lambda h, y: 2 * (torch.rand_like(h) < torch.sigmoid(2 * h)).to(y) - 1)

    @torch.no_grad()
    def _sweep(self, x: torch.Tensor, sweeps: int, update) -> torch.Tensor:
        if x.dim() < 2 or ((x != 1) & (x != -1)).any():
            raise DataError(f"site 'x': expected an (..., H, W) image of spins in {{-1, 1}}, "
                            f"got shape {tuple(x.shape)} with values {torch.unique(x)[:5].tolist()}; "
                            f"map binary pixels with 2 * x - 1")
        h_idx = torch.arange(x.shape[-2], device=x.device)[:, None]
        w_idx = torch.arange(x.shape[-1], device=x.device)
        black = (h_idx + w_idx) % 2 == 0
        y = x.clone()
        for _ in range(sweeps):
            for colour in (black, ~black):
                y = torch.where(colour, update(self.local_field(y, x), y), y)
        return y


# -- EBMs as Pyro programs ---------------------------------------------------------------------------
def energy_program(energy: Energy, like: torch.Tensor, site: str = "x") -> Callable[[], None]:
    r"""A Pyro program whose latent site ``site`` has density :math:`\propto e^{-E(x)}`.

    ``like`` fixes the site's shape, device and dtype: ``(d,)`` for one point, ``(k, d)`` for ``k``
    independent copies in one state. The prior is a masked normal (log density 0, so flat; it is
    there only to draw initial points), and ``pyro.factor`` adds :math:`-E(x)`. Run Pyro's HMC/NUTS on
    it (:func:`ppgen.inference.samplers.nuts`).
    """
    flat = dist.Normal(torch.zeros_like(like), torch.ones_like(like)).to_event(like.dim()).mask(False)
    d = like.shape[-1]

    def program():
        x = pyro.sample(site, flat)
        pyro.factor("energy", -energy(x.reshape(-1, d)).sum())

    return program


# -- registered: a 2-D neural EBM with exact likelihood by quadrature --------------------------------
def _moons() -> dict:
    from ppgen.data.toy2d import sample

    return {"x": sample("moons", 1000, seed=0)}


@register(
    "ebm_2d",
    data=_moons,
    default_method="map",
    description="neural energy on 2-D toy data (moons), exact likelihood with log Z by quadrature on a box",
    tags=("ebm",),
)
def ebm_2d(x, hidden: int = 64, box: float = 4.0, grid_size: int = 64):
    r"""Neural EBM on the box :math:`[-b, b]^2`: ``pyro.factor`` adds :math:`-E_\theta(x_n) - \log Z(\theta)`,
    with :math:`\log Z` by the midpoint rule on a ``grid_size``\ :sup:`2` grid (differentiable).

    All parameters are ``pyro.module`` parameters (no latent sites): ``method="map"`` is maximum
    likelihood. Compare the training methods that need no Z in :mod:`ppgen.inference.ebm_training`.
    """
    if not (torch.is_tensor(x) and x.dim() == 2 and x.shape[1] == 2):
        raise DataError(f"site 'x': expected a (n, 2) array of points, got shape {tuple(torch.as_tensor(x).shape)}")
    outside = ~torch.isfinite(x) | (x.abs() > box)
    if outside.any():
        raise DataError(f"site 'x': every coordinate must be finite and in [-{box}, {box}] (the model's box); "
                        f"{int(outside.any(-1).sum())} points are not, e.g. {x[outside.any(-1)][0].tolist()}")
    net = pyro.module("energy", EnergyNet(2, (hidden, hidden), confinement=None).to(x), update_module_params=True)
    log_z = log_partition_grid(net.energy, [-box, -box], [box, box], grid_size, like=x)
    with pyro.plate("data", x.shape[0]):
        pyro.factor("x", -net.energy(x) - log_z)  # (N,)
