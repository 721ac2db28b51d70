r"""Samplers for energy-based models :math:`p(x) \propto e^{-E(x)}`: none of them needs :math:`Z`.

- :func:`gibbs`: block Gibbs for an RBM, ``x -> z ~ p(z | x) -> x ~ p(x | z)``.
- :func:`metropolis`: random-walk Metropolis-Hastings, the lecture's "local search": propose
  :math:`x' = x + \text{noise}`, accept if the energy drops, otherwise with probability
  :math:`e^{E(x) - E(x')}`; the occasional uphill move is what makes it a sampler, not an optimizer.
- :func:`langevin`: unadjusted Langevin dynamics
  :math:`x' = x - \epsilon \nabla_x E(x) + \sqrt{2\epsilon}\,\xi`: exact only as :math:`\epsilon \to 0`.
- :func:`mala`: the Langevin move as a proposal with a Metropolis-Hastings correction: exact for any
  :math:`\epsilon`.
- :func:`nuts` / ``kernel="hmc"``: Pyro's HMC/NUTS on :func:`ppgen.models.ebm.energy_program`, run
  through :func:`ppgen.fit`.

Chains run in parallel along the first axis: ``x0`` is ``(chains, d)``. The energy is checked on the
starting points (one value per chain, finite) before any step, and for NaN/inf every
``check_every`` steps (a :class:`~ppgen.errors.NumericalError` names the step).
"""
from __future__ import annotations

import math
from typing import Callable

import pyro
import torch

from ppgen import inference
from ppgen.errors import NumericalError
from ppgen.models.ebm import energy_program
from ppgen.problem import prepare

__all__ = ["gibbs", "metropolis", "langevin", "mala", "nuts", "energy_and_grad", "check_positive"]

Energy = Callable[[torch.Tensor], torch.Tensor]


def check_positive(name: str, value) -> float:
    """``value`` as a float if it is a finite positive number; a ``ValueError`` naming ``name`` otherwise."""
    try:
        ok = math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")
    return float(value)


def _check_energy(energy: Energy, x: torch.Tensor, what: str = "starting points") -> torch.Tensor:
    """``energy(x)``, after checking it is one finite value per row of ``x``."""
    e = energy(x)
    if not torch.is_tensor(e) or e.shape != x.shape[:1]:
        shape = tuple(e.shape) if torch.is_tensor(e) else type(e).__name__
        raise ValueError(f"the energy must return one value per point: expected shape ({x.shape[0]},) for x of shape "
                         f"{tuple(x.shape)}, got {shape}")
    bad = ~torch.isfinite(e)
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise NumericalError(f"the energy is {e[i].item()} at {int(bad.sum())} of {len(e)} {what}, e.g. "
                             f"x={x[i].tolist()}; an energy must be finite wherever the sampler can go", step=0)
    return e


class _Watch:
    """Accumulates a non-finite flag on the device; syncs only every ``every`` steps."""

    def __init__(self, like: torch.Tensor, every: int, sampler: str):
        self.bad = torch.zeros((), dtype=torch.bool, device=like.device)
        self.every, self.sampler = every, sampler

    def __call__(self, step: int, *values: torch.Tensor) -> None:
        for v in values:
            self.bad |= ~torch.isfinite(v).all()
        if (step + 1) % self.every == 0 and bool(self.bad):
            raise NumericalError(f"{self.sampler}: the energy or its gradient became NaN/inf by step {step + 1}; "
                                 "the chains left the region where the energy is defined (try a smaller step_size)",
                                 step=step)


def energy_and_grad(energy: Energy, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r""":math:`(E(x), \nabla_x E(x))`, detached; gradients w.r.t. the energy's parameters are not kept."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        e = energy(x)
        (grad,) = torch.autograd.grad(e.sum(), x)
    return e.detach(), grad


# -- RBM ----------------------------------------------------------------------------------------------
@torch.no_grad()
def gibbs(rbm, x0: torch.Tensor, sweeps: int) -> torch.Tensor:
    """``sweeps`` block-Gibbs sweeps of ``rbm`` from binary ``x0`` (chains, n_visible); the final states."""
    from ppgen.models.rbm import check_binary

    x = check_binary(x0, rbm.n_visible, site="x0")
    for _ in range(int(sweeps)):
        x = rbm.gibbs_sweep(x)
    return x


# -- continuous energies --------------------------------------------------------------------------------
@torch.no_grad()
def metropolis(energy: Energy, x0: torch.Tensor, *, steps: int, scale: float, check_every: int = 100):
    """Random-walk Metropolis with Gaussian proposals of standard deviation ``scale``.

    Returns ``(x, accept_rate)``: final states (chains, d) and each chain's acceptance rate (chains,).
    """
    scale = check_positive("scale", scale)
    e = _check_energy(energy, x0)
    x, accepted, watch = x0, torch.zeros_like(e), _Watch(x0, check_every, "metropolis")
    for step in range(steps):
        proposal = x + scale * torch.randn_like(x)
        e_new = energy(proposal)
        watch(step, e_new)
        accept = torch.rand_like(e).log() < e - e_new  # always when E drops
        x = torch.where(accept[:, None], proposal, x)
        e = torch.where(accept, e_new, e)
        accepted += accept
    return x, accepted / max(steps, 1)


def langevin(energy: Energy, x0: torch.Tensor, *, steps: int, step_size: float, noise_scale: float = 1.0,
             check_every: int = 100) -> torch.Tensor:
    r"""Unadjusted Langevin: :math:`x \leftarrow x - \epsilon \nabla_x E(x) + \text{noise\_scale}\sqrt{2\epsilon}\,\xi`.

    With ``noise_scale=1`` the chain targets :math:`e^{-E}` up to an :math:`O(\epsilon)` bias;
    ``noise_scale < 1`` is the "short-run" variant used for training negatives. Returns the final states.
    """
    step_size = check_positive("step_size", step_size)
    _check_energy(energy, x0)
    x, watch = x0.detach(), _Watch(x0, check_every, "langevin")
    noise = noise_scale * math.sqrt(2 * step_size)
    for step in range(steps):
        _, grad = energy_and_grad(energy, x)
        watch(step, grad)
        x = x - step_size * grad + noise * torch.randn_like(x)
    return x


def _mala_step(energy: Energy, x, e, grad, step_size: float):
    """One Metropolis-adjusted Langevin move; returns ``(x, e, grad, accepted)``."""
    mean = x - step_size * grad
    proposal = mean + math.sqrt(2 * step_size) * torch.randn_like(x)
    e_new, grad_new = energy_and_grad(energy, proposal)
    log_q_forward = -(proposal - mean).pow(2).sum(-1) / (4 * step_size)
    log_q_backward = -(x - (proposal - step_size * grad_new)).pow(2).sum(-1) / (4 * step_size)
    log_alpha = e - e_new + log_q_backward - log_q_forward
    accept = torch.rand_like(e).log() < log_alpha  # NaN never accepts
    keep = accept[:, None]
    return (torch.where(keep, proposal, x), torch.where(accept, e_new, e), torch.where(keep, grad_new, grad), accept)


def mala(energy: Energy, x0: torch.Tensor, *, steps: int, step_size: float, check_every: int = 100):
    """Metropolis-adjusted Langevin: returns ``(x, accept_rate)``, final states (chains, d) and each
    chain's acceptance rate (chains,). Tune ``step_size`` for an acceptance rate near 0.6."""
    step_size = check_positive("step_size", step_size)
    _check_energy(energy, x0)
    x = x0.detach()
    e, grad = energy_and_grad(energy, x)
    accepted, watch = torch.zeros_like(e), _Watch(x0, check_every, "mala")
    for step in range(steps):
        x, e, grad, accept = _mala_step(energy, x, e, grad, step_size)
        watch(step, e, grad)
        accepted += accept
    return x, accepted / max(steps, 1)


def nuts(energy: Energy, like: torch.Tensor, *, num_samples: int = 500, num_warmup: int = 500, kernel: str = "nuts",
         seed: int = 0, progress: bool = False, **options) -> torch.Tensor:
    """Draws of ``x ~ exp(-E(x))`` by Pyro's NUTS (``kernel="hmc"``: HMC), run by :func:`ppgen.inference.run`.

    ``like`` fixes one draw's shape, device and dtype: ``(d,)``, or ``(k, d)`` for ``k`` independent
    copies in one state. Returns ``(num_samples, *like.shape)``; ``options`` go to the kernel.
    """

    _check_energy(energy, torch.zeros_like(like).reshape(-1, like.shape[-1]), what="points at the origin")
    pyro.set_rng_seed(seed)
    problem = prepare(energy_program(energy, like), {}, device=like.device, dtype=like.dtype)
    result = inference.run(problem, kernel, num_samples=num_samples, num_warmup=num_warmup, seed=seed,
                           progress=progress, **options)
    return result.samples["x"]
