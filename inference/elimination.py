"""Variable elimination on a Bayes net's CPT tensors, planned once per query pattern.

A query ``p(q | e)`` on a net ``p(x) = prod_v p(x_v | x_pa(v))`` is a sum of products:

    p(q, e) = sum_{x \\ (q, e)} prod_v p(x_v | x_pa(v))        (sum-product)
    max_z p(z, e) = max_{x \\ e} prod_v p(x_v | x_pa(v))         (max-product, then backtracking)

Its cost is set by the pattern, not by the values: which nodes are queried and which observed. A
:class:`Plan` is built once per pattern and cached: the nodes that matter (for a sum, the ancestors of
``q`` and ``e``: every other node is barren and sums to 1), each CPT with its observed axes indexed
away, and an elimination order chosen greedily (the variable whose elimination makes the smallest
table first), with each step's axis layout precomputed. Running it is then a short loop of tensor
products and reductions on the CPTs' device: no Pyro trace, no search.

Evidence values are index tensors of shape ``(B,)``: B queries with the same pattern run as one
contraction, with a batch axis through every table the evidence touches.
"""
from __future__ import annotations

import math
import string
from collections import OrderedDict
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

__all__ = ["Plan", "plan", "marginal", "log_evidence", "max_product"]

BATCH = "#batch"  # the axis of the B queries run together
CACHE_SIZE = 1024
MAX_ELEMENTS = 2**24  # the largest table a step may build, batch included: larger batches run in chunks
EINSUM_FROM = 2**12  # a sum step whose product has this many entries runs as one einsum (cheaper than
# materializing the product there; below it, a broadcast product costs less per call)


@dataclass(frozen=True)
class Step:
    """Multiply the tables in ``inputs`` (each viewed on the union of their scopes by ``views``) and sum
    or maximize out axis ``axis``, giving the table in ``output``."""

    inputs: tuple[int, ...]
    views: tuple[tuple[tuple[int, ...] | None, tuple[int, ...]], ...]  # per input: (permutation, shape on the union)
    axis: int
    output: int
    variable: str
    scope: tuple[str, ...]  # of the output table
    equations: tuple[str, ...] | None  # for a large sum: pairwise einsums that multiply and sum as they go


class Plan:
    """Variable elimination for one pattern: ``targets`` kept (in that order), ``observed`` indexed.

    :param scopes: ``{v: (*parents of v, v)}``, the axes of each CPT, for the nodes that take part.
    :param cards: every variable's number of states.
    :param semiring: ``"sum"`` (marginals, evidence) or ``"max"`` (MAP assignment, by backtracking).
    """

    def __init__(self, scopes: Mapping[str, tuple[str, ...]], cards: Mapping[str, int], targets: Sequence[str],
                 observed: Sequence[str], semiring: str = "sum"):
        self.semiring, self.targets, self.observed = semiring, tuple(targets), tuple(observed)
        self.leaves = []  # per CPT: (its variable, permutation putting observed axes first, those observed)
        scope_of = []
        for v, scope in scopes.items():
            seen = tuple(u for u in scope if u in self.observed)
            kept = tuple(u for u in scope if u not in self.observed)
            self.leaves.append((v, _unless_identity(tuple(scope.index(u) for u in (*seen, *kept))), seen))
            scope_of.append(((BATCH,) if seen else ()) + kept)
        sizes = {**cards, BATCH: 1}
        self.steps, self.largest = [], 1
        free = {u for s in scope_of for u in s} - set(self.targets) - {BATCH}
        for v in _greedy_order(scope_of, free, sizes):
            inputs = tuple(i for i, s in enumerate(scope_of) if s is not None and v in s)
            union = _union([scope_of[i] for i in inputs])
            views = tuple(_view(scope_of[i], union, sizes) for i in inputs)
            out = tuple(u for u in union if u != v)
            size = math.prod(sizes[u] for u in union)
            equations = _pairwise([scope_of[i] for i in inputs], out) if semiring == "sum" and size >= EINSUM_FROM \
                else None
            self.steps.append(Step(inputs, views, union.index(v), len(scope_of), v, out, equations))
            self.largest = max(self.largest, size)
            for i in inputs:
                scope_of[i] = None
            scope_of.append(out)
        self.remaining = tuple(i for i, s in enumerate(scope_of) if s is not None)
        final = (BATCH, *self.targets)
        self.final_views = tuple(_view(scope_of[i], final, sizes) for i in self.remaining)

    def run(self, cpts: Mapping[str, torch.Tensor], values: Mapping[str, torch.Tensor], batch: int):
        """The table over ``(batch, *targets)``: ``p(targets, e)`` (sum) or ``max p(x, e)`` over the rest
        (max, with the argmax tables for :meth:`backtrack`). ``values``: observed states, each ``(batch,)``."""
        tables = []
        for v, perm, seen in self.leaves:  # observed axes indexed away: (batch, *the rest) where seen
            t = cpts[v] if perm is None else cpts[v].permute(perm)
            tables.append(t[tuple(values[u] for u in seen)] if seen else t)
        argmax = {}
        for step in self.steps:
            if step.equations is not None:
                first, *rest = (tables[i] for i in step.inputs)
                if not rest:
                    first = torch.einsum(step.equations[0], first)
                for equation, t in zip(step.equations, rest):
                    first = torch.einsum(equation, first, t)
                tables.append(first)
                continue
            product = _product([_lay(tables[i], p, s) for i, (p, s) in zip(step.inputs, step.views)])
            if self.semiring == "sum":
                tables.append(product.sum(step.axis))
            else:
                best, argmax[step.variable] = product.max(step.axis)
                tables.append(best)
            for i in step.inputs:
                tables[i] = None
        pieces = [_lay(tables[i], p, s) for i, (p, s) in zip(self.remaining, self.final_views)]
        result = _product(pieces)  # axes (batch, *targets); the batch axis has size 1 or batch
        return result.expand(batch, *result.shape[1:]), argmax

    def backtrack(self, argmax: Mapping[str, torch.Tensor], batch: int, device) -> dict[str, torch.Tensor]:
        """The maximizing state of every eliminated variable, ``(batch,)`` each, in reverse order."""
        values = {BATCH: torch.arange(batch, device=device)}
        for step in reversed(self.steps):
            table = argmax[step.variable]  # axes: step.scope, batch axis of size 1 or batch
            index = tuple(values[u] if u != BATCH or table.shape[0] > 1 else torch.zeros_like(values[u])
                          for u in step.scope)
            values[step.variable] = table[index].expand(batch) if index else table.expand(batch)
        del values[BATCH]
        return values


def _union(scopes: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    """The variables of ``scopes`` in first-seen order, the batch axis first."""
    seen = dict.fromkeys(u for s in scopes for u in s)
    return ((BATCH,) if BATCH in seen else ()) + tuple(u for u in seen if u != BATCH)


def _view(scope: tuple[str, ...], union: tuple[str, ...], sizes: Mapping[str, int]):
    """The permutation and shape that lay a table over ``scope`` on the axes of ``union`` (size 1 where
    it does not depend on an axis; the batch axis stays -1 so it broadcasts from 1 or B)."""
    perm = tuple(sorted(range(len(scope)), key=lambda j: union.index(scope[j])))
    shape = tuple((-1 if u == BATCH else sizes[u]) if u in scope else 1 for u in union)
    return _unless_identity(perm), shape


def _pairwise(inputs: Sequence[tuple[str, ...]], output: tuple[str, ...]) -> tuple[str, ...]:
    """Einsum equations multiplying ``inputs`` left to right, two at a time (so torch searches no path),
    each result keeping only the axes a later input or the output needs; one equation for one input."""
    letters = dict(zip(_union(inputs), string.ascii_letters))  # a union has < 52 axes: 2**52 entries would not fit
    word = lambda scope: "".join(letters[u] for u in scope)  # noqa: E731
    if len(inputs) == 1:
        return (f"{word(inputs[0])}->{word(output)}",)
    equations, left = [], inputs[0]
    for j, right in enumerate(inputs[1:], start=1):
        needed = set(output).union(*inputs[j + 1:])
        result = tuple(u for u in _union([left, right]) if u in needed)
        equations.append(f"{word(left)},{word(right)}->{word(result)}")
        left = result
    return tuple(equations)


def _unless_identity(perm: tuple[int, ...]) -> tuple[int, ...] | None:
    return None if perm == tuple(range(len(perm))) else perm


def _lay(table: torch.Tensor, perm: tuple[int, ...] | None, shape: tuple[int, ...]) -> torch.Tensor:
    return (table if perm is None else table.permute(perm)).reshape(shape)


def _product(tables: Sequence[torch.Tensor]) -> torch.Tensor:
    out = tables[0]
    for t in tables[1:]:
        out = out * t
    return out


def _greedy_order(scopes: Sequence[tuple[str, ...]], free: set, sizes: Mapping[str, int]) -> list[str]:
    """Min-weight elimination: repeatedly the free variable whose neighbours (those sharing a table
    with it) span the smallest table; only the neighbours' weights change after each step."""
    neighbours = {u: set() for u in free}
    for s in scopes:
        for u in s:
            if u in neighbours:
                neighbours[u].update(w for w in s if w != u and w != BATCH)
    weight = {u: math.prod(sizes[w] for w in neighbours[u]) * sizes[u] for u in free}
    order = []
    while weight:
        v = min(weight, key=weight.__getitem__)
        order.append(v)
        del weight[v]
        around = neighbours.pop(v)
        for u in around:
            if u in neighbours:
                neighbours[u] |= around - {u}
                neighbours[u].discard(v)
                if u in weight:
                    weight[u] = math.prod(sizes[w] for w in neighbours[u]) * sizes[u]
    return order


_PLANS: OrderedDict = OrderedDict()


def plan(net, targets: Sequence[str], observed: Sequence[str], semiring: str = "sum") -> Plan:
    """The cached :class:`Plan` for this pattern of ``net`` (its graph and cardinalities, not its CPT
    values, which may change after a fit). For a sum only the ancestors of targets and observed nodes
    take part; a max ranges over every node."""
    observed = tuple(v for v in net.variables if v in set(observed))
    key = (tuple((v, net.parents[v], net.cards[v]) for v in net.variables), tuple(targets), observed, semiring)
    found = _PLANS.get(key)
    if found is None:
        nodes = net.ancestors([*targets, *observed]) if semiring == "sum" else net.variables
        found = Plan({v: (*net.parents[v], v) for v in nodes}, net.cards, targets, observed, semiring)
        _PLANS[key] = found
        if len(_PLANS) > CACHE_SIZE:
            _PLANS.popitem(last=False)
    else:
        _PLANS.move_to_end(key)
    return found


def _batched(evidence: Mapping[str, torch.Tensor]) -> tuple[dict, int]:
    """Evidence values as ``(B,)`` index tensors (0-dim ones broadcast), and B (1 when none is batched)."""
    batch = max([int(x.shape[0]) for x in evidence.values() if x.dim()] or [1])
    return {v: x.expand(batch) for v, x in evidence.items()}, batch


def _chunks(p: Plan, values: dict, batch: int):
    """``values`` split along the batch so that no step builds a table over :data:`MAX_ELEMENTS`."""
    size = max(1, MAX_ELEMENTS // p.largest)
    for start in range(0, batch, size):
        stop = min(batch, start + size)
        yield {v: x[start:stop] for v, x in values.items()}, stop - start


def marginal(net, targets: Sequence[str], evidence: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``p(targets | evidence)``: a table ``(B, *cards of targets)``, one row per query of the batch."""
    values, batch = _batched(evidence)
    p = plan(net, targets, values)
    tables = [p.run(net.cpts, chunk, n)[0] for chunk, n in _chunks(p, values, batch)]
    joint = torch.cat(tables) if len(tables) > 1 else tables[0]
    return joint / joint.sum(tuple(range(1, joint.dim())), keepdim=True)


def log_evidence(net, evidence: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``log p(evidence)``, ``(B,)``: every unobserved node summed out."""
    values, batch = _batched(evidence)
    p = plan(net, (), values)
    return torch.cat([p.run(net.cpts, chunk, n)[0] for chunk, n in _chunks(p, values, batch)]).log()


def max_product(net, evidence: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The most probable assignment of the unobserved nodes, ``{v: (B,)}``, and ``log max_z p(z, e)``, ``(B,)``."""
    values, batch = _batched(evidence)
    p = plan(net, (), values, semiring="max")
    assignments, best = [], []
    for chunk, n in _chunks(p, values, batch):
        table, argmax = p.run(net.cpts, chunk, n)
        assignments.append(p.backtrack(argmax, n, table.device))
        best.append(table.log())
    return {v: torch.cat([a[v] for a in assignments]) for v in assignments[0]}, torch.cat(best)
