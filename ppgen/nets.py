"""Small networks shared by the models: an MLP with a chosen activation, a split head for
networks that output the parameters of a distribution (e.g. a Gaussian's loc and scale), and the
registration of networks' parameters for an objective that trains them without running the programs."""
from __future__ import annotations

from typing import Sequence

import pyro
import torch
import torch.nn.functional as F
from pyro.params import param_with_module_name
from torch import nn


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU,
        final_activation: nn.Module | None = None) -> nn.Sequential:
    """``Linear -> activation -> ... -> Linear`` over ``sizes = (in, hidden..., out)``."""
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least input and output sizes, got {tuple(sizes)}")
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    if final_activation is not None:
        layers.append(final_activation)
    return nn.Sequential(*layers)


class GaussianHead(nn.Module):
    """An MLP whose output is split into a loc and a positive scale (softplus), each of size ``out``.

    ``forward(x) -> (loc, scale)`` with shapes ``(..., out)``.
    """

    def __init__(self, n_in: int, hidden: Sequence[int], out: int, activation: type[nn.Module] = nn.ReLU,
                 min_scale: float = 1e-4):
        super().__init__()
        self.net = mlp([n_in, *hidden, 2 * out], activation)
        self.min_scale = min_scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw = self.net(x).chunk(2, dim=-1)
        return loc, F.softplus(raw) + self.min_scale


class ModuleParams:
    """The trainable parameters of networks as ``pyro.module(name, net)`` registers them, for an
    objective that computes its loss without running the programs that register them.

    :meth:`register` (once per step) walks the modules with ``pyro.module`` (param messages, which
    the training loop records) at the first step, and again whenever the param store no longer holds
    these very tensors (cleared between fits); at the other steps it only checks that it does.
    :attr:`params` names the tensors (``{store name: tensor}``) for the loop, as the messages would.

    Example:
        >>> pyro.clear_param_store()
        >>> net = nn.Linear(2, 1)
        >>> own = ModuleParams(("net", net))
        >>> own.register()
        >>> sorted(own.params), own.params["net$$$bias"] is net.bias
        (['net$$$bias', 'net$$$weight'], True)
    """

    def __init__(self, *named_nets: tuple[str, nn.Module]):
        self.nets = named_nets
        self.params: dict[str, torch.Tensor] = {}

    def register(self) -> None:
        store = pyro.get_param_store()._params
        if self.params and all(store.get(name) is p for name, p in self.params.items()):
            return
        self.params = {}
        for name, net in self.nets:  # in the order the programs register them
            pyro.module(name, net)
            self.params.update((param_with_module_name(name, k), p) for k, p in net.named_parameters()
                               if p.requires_grad)


def import_zuko() -> None:
    """Import zuko without its side effect: ``zuko.distributions`` sets
    ``torch.distributions.Distribution._validate_args = False`` and ``arg_constraints = {}`` on import,
    which would silently switch off argument validation for every Pyro model in the process. ppgen
    imports zuko through here once, first, so later plain ``import zuko`` statements change nothing."""
    from torch.distributions import Distribution

    validate, arg_constraints = Distribution._validate_args, Distribution.__dict__["arg_constraints"]
    import zuko.flows  # noqa: F401

    Distribution._validate_args, Distribution.arg_constraints = validate, arg_constraints
