"""Exact inference by enumeration, on any Pyro program whose discrete latents are marked
``infer={"enumerate": "parallel"}``.

Enumeration gives every latent site its own tensor dimension, so the program's log-probabilities
become a factor graph of small tensors. Variable elimination is a tensor contraction over it
(Pyro's :func:`~pyro.ops.contract.contract_to_tensor`, ordered by opt_einsum), so the cost follows
the graph (its treewidth), not the size of the joint::

    log p(q, e) = log sum_{z \\ q} prod_i p(x_i | pa(x_i))        (sum-product, q kept)
    log p(e)    = log sum_z        prod_i p(x_i | pa(x_i))        (nothing kept)
    argmax_z p(z | e)                                              (max-product + backtracking)

``log_joint`` answers the first two; ``infer_values`` the last one (``temperature=0``), or draws
exact posterior samples (``temperature=1``) by forward filtering, backward sampling.
"""
from __future__ import annotations

from collections import OrderedDict
from itertools import chain
from typing import Callable, Sequence

import torch
from pyro import poutine
from pyro.infer import infer_discrete
from pyro.ops.contract import contract_to_tensor

__all__ = ["enumerated_trace", "log_joint", "infer_values"]


def enumerated_trace(model: Callable, *args, first_available_dim: int = -1, **kwargs) -> poutine.Trace:
    """One run of ``model`` with every enumerable site enumerated; log-probs computed and packed."""
    with poutine.block(), poutine.enum(first_available_dim=first_available_dim):
        trace = poutine.trace(model).get_trace(*args, **kwargs)
    trace.compute_log_prob()
    trace.pack_tensors()
    return trace


def log_joint(model: Callable, targets: Sequence[str] = (), *args, **kwargs) -> torch.Tensor:
    """``log p(targets, observed)`` as a table, one axis per target site in the order given.

    With no targets this is the log evidence ``log p(observed)`` (a 0-dim tensor). With targets,
    connected components of the factor graph that touch no target are left out (they only add a
    constant), so normalize the table to get the posterior ``p(targets | observed)``. The program
    must have no plates: every site is one variable.
    """
    trace = enumerated_trace(model, *args, **kwargs)
    if trace.plate_to_symbol:
        raise ValueError(f"log_joint needs a program without plates; found {sorted(trace.plate_to_symbol)}")
    symbols = []
    for name in targets:
        site = trace.nodes.get(name)
        if site is None or site["type"] != "sample" or "_enumerate_symbol" not in site["infer"]:
            raise ValueError(f"target {name!r} is not an enumerated latent site of the program")
        symbols.append(site["infer"]["_enumerate_symbol"])
    factors = [site["packed"]["log_prob"] for site in trace.nodes.values() if site["type"] == "sample"]
    sum_dims = set(chain.from_iterable(f._pyro_dims for f in factors))
    table = contract_to_tensor(OrderedDict([(frozenset(), factors)]), sum_dims, target_dims=set(symbols))
    return table.permute([table._pyro_dims.index(s) for s in symbols])


def infer_values(model: Callable, *args, temperature: int = 0, first_available_dim: int = -1, **kwargs) -> dict:
    """The values of all latent sites: the joint MAP assignment (``temperature=0``, max-product)
    or one exact draw from the posterior (``temperature=1``). Observed sites are left out."""
    decoded = infer_discrete(model, first_available_dim=first_available_dim, temperature=temperature)
    trace = poutine.trace(decoded).get_trace(*args, **kwargs)
    return {
        name: site["value"]
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"]
    }
