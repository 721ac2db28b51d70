"""The classic networks of the bnlearn repository (asia, alarm, hailfinder, ...), registered as models.

Each is a :class:`~ppgen.models.bayesnet.BayesNet` read from its bundled BIF file, run as the program
``net.model(**observed)``: every node ``x_v ~ Categorical(cpt_v[x_pa(v)])``, the observed ones clamped,
the rest enumerated. Its bundled data is an evidence set a diagnosis would start from: the states of
(up to) three leaves (symptoms, readings) in one ancestral draw from the net, seeded, so

    ppgen fit alarm --method enum        # p(every other node | the three readings), exactly
    ppgen compare alarm                  # enumeration, likelihood weighting and Gibbs against it
"""
from __future__ import annotations

import torch

from ppgen.models import register
from ppgen.models.bayesnet import CLASSIC, BayesNet, classic

__all__ = ["leaf_evidence"]

SIZES = {"asia": 8, "cancer": 5, "earthquake": 5, "survey": 6, "sachs": 11, "child": 20, "insurance": 27,
         "alarm": 37, "water": 32, "hailfinder": 56}


def leaf_evidence(net: BayesNet, num_leaves: int = 3, seed: int = 0) -> dict[str, str]:
    """The states (by name) of the first ``num_leaves`` leaves of ``net`` in one ancestral draw."""
    generator = torch.Generator().manual_seed(seed)
    values = {}
    for v in net.variables:  # parents before children: x_v ~ cpt_v[x_pa(v)]
        row = net.cpts[v][tuple(values[p] for p in net.parents[v])]
        values[v] = int(torch.multinomial(row.cpu().float(), 1, generator=generator))
    children = {p for v in net.variables for p in net.parents[v]}
    leaves = [v for v in net.variables if v not in children][:num_leaves]
    return {v: net.states[v][values[v]] for v in leaves}


def _register(name: str) -> None:
    def data() -> dict:
        return leaf_evidence(classic(name))

    def network() -> BayesNet:
        return classic(name)

    network.__doc__ = f"bnlearn's {name} network ({SIZES[name]} nodes), up to three leaves observed; exact by enum"
    register(name, factory=True, data=data, default_method="enum", description=network.__doc__)(network)


for _name in CLASSIC:
    _register(_name)
