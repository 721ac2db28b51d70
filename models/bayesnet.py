"""Discrete Bayes networks (lecture 2): a DAG with one conditional probability table per node,

    p(x_1, ..., x_n) = prod_i p(x_i | x_pa(i)),

so a net needs sum_i (card_i - 1) prod_{j in pa(i)} card_j parameters instead of prod_i card_i - 1.

The net *is* a Pyro program: the nodes in topological order, each
``x_v ~ Categorical(cpt_v[x_pa(v)])`` marked for parallel enumeration. Exact inference is variable
elimination over that program (:mod:`ppgen.inference.exact`): a query, the evidence and the MAP
assignment cost what the graph's treewidth says, not what the joint's size says.

Learning puts a Dirichlet prior on every CPT row and reads a table of rows with -1 for a missing
value; missing values are enumerated out. With complete data the posterior is conjugate,
``Dirichlet(concentration + counts)``; otherwise ``svi``, ``map`` or ``nuts`` through :func:`ppgen.fit`.

    >>> bn = sprinkler()
    >>> bn.query(["rain"], evidence={"wet": 1})     # p(rain | wet grass); bound by ppgen.estimators
    tensor([0.6423, 0.3577], dtype=torch.float64)

States have names (``"0"``, ``"1"``, ... unless given), and evidence takes either; the classic networks
of the bnlearn repository are bundled (:func:`classic`), and a net reads and writes BIF files
(:mod:`ppgen.bif`) and converts to and from pgmpy:

    >>> asia = classic("asia")
    >>> asia.states["xray"]
    ('yes', 'no')
    >>> round(float(asia.query(["lung"], {"xray": "yes"})[0]), 4)   # p(lung = yes | xray = yes)
    0.4887
"""
from __future__ import annotations

import contextlib
import math
import os
from importlib import resources
from typing import Mapping, Sequence

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.ops.indexing import Vindex

from ppgen import bif
from ppgen.errors import DataError, UnknownNameError
from ppgen.models import register

__all__ = ["BayesNet", "sprinkler", "student", "bundled_table", "classic", "CLASSIC"]

ENUM = {"enumerate": "parallel"}


class BayesNet:
    """A discrete Bayes network.

    :param parents: ``{variable: [its parents, in the order of the CPT's axes]}``.
    :param cpts: ``{variable: table}``; ``cpts[v]`` has shape ``(*cards of parents, card(v))`` and its
        last axis sums to 1. Cardinalities are read off the last axes.
    :param dtype, device: of the CPT tensors (float64 by default: exact answers to 1e-12).
    :param states: ``{variable: its state names}`` (str), one per value of its last CPT axis; a variable
        left out has states ``("0", "1", ...)``. Evidence takes a state's name or its index.
    """

    def __init__(self, parents: Mapping[str, Sequence[str]], cpts: Mapping[str, object],
                 dtype: torch.dtype = torch.float64, device: torch.device | str | None = None,
                 states: Mapping[str, Sequence[str]] | None = None):
        self.parents = {v: tuple(ps) for v, ps in parents.items()}
        self.variables = _topological_order(self.parents, cpts)
        self.cpts = {v: torch.as_tensor(cpts[v], dtype=dtype, device=device)
                     for v in self.variables}
        self.cards = {v: self.cpts[v].shape[-1] if self.cpts[v].dim() else 0 for v in self.variables}
        for v in self.variables:
            _check_cpt(v, self.cpts[v], [(p, self.cards[p]) for p in self.parents[v]])
        self.states = _check_states(states or {}, self.cards)

    @property
    def device(self) -> torch.device:
        return self.cpts[self.variables[0]].device

    def __repr__(self) -> str:
        nodes = ", ".join(f"{v}|{','.join(self.parents[v])}" if self.parents[v] else v for v in self.variables)
        return f"BayesNet({nodes})"

    def __eq__(self, other) -> bool:
        """The same variables, parents (in any order), state names, and CPTs to 1e-12."""
        if not isinstance(other, BayesNet):
            return NotImplemented
        return (set(self.variables) == set(other.variables) and self.states == other.states
                and all(_same_cpt(v, self, other) for v in self.variables))

    __hash__ = None  # mutable (``fit`` changes the CPTs)

    # ---- the generative story -------------------------------------------------------------
    def program(self, evidence: Mapping[str, torch.Tensor] | None = None, num_samples: int | None = None,
                keep: Sequence[str] | None = None):
        """The net as a Pyro program; ``evidence`` clamps some nodes, the others are enumerated.
        With ``num_samples`` the net is repeated ``num_samples`` times in a plate (dim -1). With
        ``keep``, only those nodes and their ancestors are generated: the other nodes are barren
        (they sum to 1), so the marginal of what is kept is unchanged."""
        variables = self.variables if keep is None else self.ancestors(keep)
        with pyro.plate("samples", num_samples) if num_samples else contextlib.nullcontext():
            return self._generate(self.cpts, evidence or {}, variables)

    def learning_program(self, x: torch.Tensor, concentration: float = 1.0):
        """Bayesian learning: every CPT row ~ Dirichlet(concentration), then the rows of the table
        ``x`` (n, num variables; -1 = missing, enumerated out) drawn from the net."""
        x = self.table(x)
        tables = {}
        for v in self.variables:  # cpt_v: (*parent cards, card_v), one simplex per row, on x's device
            alpha = torch.full(self.cpts[v].shape, concentration, dtype=torch.get_default_dtype(), device=x.device)
            tables[v] = pyro.sample(f"cpt_{v}", dist.Dirichlet(alpha).to_event(alpha.dim() - 1))
        with pyro.plate("rows", x.shape[0]):
            return self._generate(tables, {v: x[:, j] for j, v in enumerate(self.variables)}, self.variables)

    def model(self, **observed):
        """The net as a Pyro program for :func:`ppgen.fit`, the nodes given as keywords observed (a state's
        name, its index or a 0-dim tensor), the others enumerated: ``ppgen.fit(net, {"xray": "yes"},
        method="enum")``."""
        values = {}
        for v, value in observed.items():
            self._check_name(v, "observed")
            values[v] = torch.tensor(self.state_index(v, value), device=self.device)
        return self._generate(self.cpts, values, self.variables)

    def guide(self, **observed) -> None:
        """No guide is needed: every latent node is enumerated."""

    def _generate(self, tables: Mapping[str, torch.Tensor], observed: Mapping[str, torch.Tensor],
                  variables: Sequence[str]) -> dict:
        # tables[v]: (*batch, *parent cards, card_v); Vindex broadcasts batch and enumeration dims
        values = {}
        for v in variables:
            probs = Vindex(tables[v])[(..., *(values[p] for p in self.parents[v]), slice(None))]
            values[v] = _categorical(v, probs, observed.get(v))
        return values

    def ancestors(self, variables: Sequence[str]) -> tuple[str, ...]:
        """``variables`` and all their ancestors, in topological order."""
        closed, stack = set(), list(variables)
        while stack:
            v = stack.pop()
            if v not in closed:
                closed.add(v)
                stack.extend(self.parents[v])
        return tuple(v for v in self.variables if v in closed)

    # ---- parameters and learning ----------------------------------------------------------
    def num_parameters(self, factorized: bool = True) -> int:
        """Free parameters of the net; ``factorized=False``: of the full joint table, ``prod(cards) - 1``."""
        if not factorized:
            return math.prod(self.cards.values()) - 1
        return sum(math.prod(self.cards[p] for p in self.parents[v]) * (self.cards[v] - 1) for v in self.variables)

    def counts(self, data) -> dict[str, torch.Tensor]:
        """Sufficient statistics of a complete table: ``counts[v][*parent values, value]``."""
        x = self.table(data)
        counts = {}
        for v in self.variables:
            family = (*self.parents[v], v)
            shape = tuple(self.cards[u] for u in family)
            flat = torch.zeros_like(x[:, 0])
            for u in family:
                flat = flat * self.cards[u] + x[:, self.variables.index(u)]
            counts[v] = torch.bincount(flat, minlength=math.prod(shape)).reshape(shape).to(self.cpts[v])
        return counts

    # ---- validation -----------------------------------------------------------------------
    def table(self, data) -> torch.Tensor:
        """``data`` (an (n, num variables) array, or a dict / DataFrame of columns) as a validated long
        tensor (on the data's device if it is a tensor, else the CPTs'), columns in :attr:`variables`
        order; -1 marks a missing value."""
        if hasattr(data, "columns") or isinstance(data, Mapping):
            columns = {str(k): data[k] for k in (data.columns if hasattr(data, "columns") else data)}
            unknown = sorted(set(columns) - set(self.variables))
            if unknown:
                raise DataError(f"data has columns {unknown} that are not variables of the net {list(self.variables)}")
            missing = [v for v in self.variables if v not in columns]
            if missing:
                raise DataError(f"data lacks columns for variables {missing}")
            data = np.stack([np.asarray(columns[v]) for v in self.variables], -1)
        x = torch.as_tensor(data, device=data.device if isinstance(data, torch.Tensor) else self.device)
        if x.dim() != 2 or x.shape[1] != len(self.variables):
            raise DataError(f"data must be an (n, {len(self.variables)}) table with columns {list(self.variables)} "
                            f"(-1 = missing); got shape {tuple(x.shape)}")
        if x.is_floating_point() and not bool((x == x.round()).all()):
            raise DataError("data must hold integer states (-1 = missing); found non-integer values or NaN")
        x = x.long()
        for j, v in enumerate(self.variables):
            bad = (x[:, j] < -1) | (x[:, j] >= self.cards[v])
            if bool(bad.any()):
                value = int(x[:, j][bad][0])
                raise DataError(f"variable {v!r} takes values 0..{self.cards[v] - 1} (-1 = missing); "
                                f"row {int(bad.nonzero()[0])} has {value}")
        return x

    def _check_name(self, v: str, role: str) -> None:
        if v not in self.cards:
            raise DataError(f"{role} variable {v!r} is not in the net; variables: {list(self.variables)}")

    def state_index(self, v: str, value) -> int:
        """The index of ``value`` among ``v``'s states: ``value`` is a state's name or its index."""
        self._check_name(v, "evidence")
        if isinstance(value, str):
            if value not in self.states[v]:
                raise DataError(f"evidence {v}={value!r} is not a state of {v!r}; states: {', '.join(self.states[v])}")
            return self.states[v].index(value)
        try:
            index = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError):
            raise DataError(f"evidence on {v!r} must be a state's name or index; got {value!r}") from None
        if index.dim() != 0 or index.is_complex() or (index.is_floating_point() and index != index.round()):
            raise DataError(f"evidence on {v!r} must be one integer state; got {index.tolist()}")
        if not 0 <= int(index) < self.cards[v]:
            raise DataError(f"evidence {v}={int(index)} is out of range: {v!r} takes values 0..{self.cards[v] - 1}")
        return int(index)

    def _query(self, variables: Sequence[str], evidence: Mapping[str, object] | None
               ) -> tuple[tuple[str, ...], dict[str, torch.Tensor]]:
        """The queried variables, checked (known, not observed, listed once), and the checked evidence."""
        variables, evidence = tuple(variables), self._evidence(evidence)
        if not variables:
            raise DataError("query needs at least one variable")
        for v in variables:
            self._check_name(v, "queried")
            if v in evidence:
                raise DataError(f"variable {v!r} is both queried and observed (evidence {v}={evidence[v].tolist()})")
        if len(set(variables)) != len(variables):
            raise DataError(f"query lists a variable twice: {list(variables)}")
        return variables, evidence

    def _evidence(self, evidence: Mapping[str, object] | None) -> dict[str, torch.Tensor]:
        """``{v: long tensor}`` of shape ``()`` for one state (a name or an index) or ``(B,)`` for a batch
        of ``B`` (a 1-D sequence, array or tensor of names or indices); every batch has the same ``B``."""
        checked = {v: self._evidence_value(v, value) for v, value in (evidence or {}).items()}
        sizes = {v: value.shape[0] for v, value in checked.items() if value.dim()}
        if len(set(sizes.values())) > 1:
            raise DataError(f"batched evidence must have one batch size; got {sizes}")
        return checked

    def _evidence_value(self, v: str, value) -> torch.Tensor:
        self._check_name(v, "evidence")
        batched = isinstance(value, (Sequence, np.ndarray, torch.Tensor)) and getattr(value, "ndim", 1) > 0
        if isinstance(value, str) or not batched:
            return torch.tensor(self.state_index(v, value), device=self.device)
        items = value.tolist() if isinstance(value, np.ndarray) else value
        if any(isinstance(x, str) for x in items):
            return torch.tensor([self.state_index(v, x) for x in items], dtype=torch.long, device=self.device)
        try:
            batch = torch.as_tensor(value, device=self.device)
        except (TypeError, ValueError, RuntimeError):
            batch = None
        if batch is None or batch.dim() != 1 or batch.is_complex() or (
                batch.is_floating_point() and bool((batch != batch.round()).any())):
            raise DataError(f"evidence on {v!r} must be one state (a name or an index) or a 1-D batch of them; "
                            f"got {value!r}")
        bad = (batch < 0) | (batch >= self.cards[v])
        if bool(bad.any()):
            raise DataError(f"evidence {v}={batch[bad][0].item():g} is out of range: {v!r} takes values "
                            f"0..{self.cards[v] - 1}")
        return batch.long()

    # ---- BIF files and pgmpy --------------------------------------------------------------
    @classmethod
    def from_bif(cls, source: str | os.PathLike, **kwargs) -> "BayesNet":
        """A net read from a BIF file (or its text; see :func:`ppgen.bif.read`); ``kwargs`` go to the constructor."""
        parsed = bif.read(source)
        return cls(parsed.parents, parsed.tables, states=parsed.states, **kwargs)

    def to_bif(self, path: str | os.PathLike | None = None, name: str = "unknown") -> str | None:
        """Write the net as a BIF file at ``path`` (gzipped if it ends in ``.gz``), or return the text."""
        written = bif.BIF(name=name, variables=self.variables, states=dict(self.states), parents=dict(self.parents),
                          tables={v: self.cpts[v].detach().cpu().double().numpy() for v in self.variables})
        if path is None:
            return bif.dumps(written)
        bif.write(written, path)
        return None

    @classmethod
    def from_pgmpy(cls, model, **kwargs) -> "BayesNet":
        """A net from pgmpy's ``DiscreteBayesianNetwork`` of ``TabularCPD``s (state names become str);
        ``kwargs`` go to the constructor."""
        network_class, cpd_class = _pgmpy()
        if not isinstance(model, network_class):
            raise DataError(f"from_pgmpy takes a pgmpy DiscreteBayesianNetwork; got {type(model).__name__}")
        cpds = {}
        for node in model.nodes():
            cpd = model.get_cpds(node)
            if not isinstance(cpd, cpd_class):
                raise DataError(f"the pgmpy model has no TabularCPD for {str(node)!r}")
            cpds[str(node)] = cpd
        return cls(parents={v: [str(p) for p in cpd.variables[1:]] for v, cpd in cpds.items()},
                   cpts={v: torch.as_tensor(cpd.values).movedim(0, -1) for v, cpd in cpds.items()},
                   states={v: [str(s) for s in cpd.state_names[cpd.variable]] for v, cpd in cpds.items()}, **kwargs)

    def to_pgmpy(self):
        """The net as pgmpy's ``DiscreteBayesianNetwork``, with one ``TabularCPD`` (and its state names) per node."""
        network_class, cpd_class = _pgmpy()
        model = network_class([(p, v) for v in self.variables for p in self.parents[v]])
        model.add_nodes_from(self.variables)
        for v in self.variables:
            family = (v, *self.parents[v])
            values = self.cpts[v].detach().cpu().double().movedim(-1, 0).reshape(self.cards[v], -1).numpy()
            model.add_cpds(cpd_class(v, self.cards[v], values, evidence=list(self.parents[v]) or None,
                                     evidence_card=[self.cards[p] for p in self.parents[v]] or None,
                                     state_names={u: list(self.states[u]) for u in family}))
        return model


def _check_states(states: Mapping[str, Sequence[str]], cards: Mapping[str, int]) -> dict[str, tuple[str, ...]]:
    """Every variable's state names as a tuple of str, one per value, none twice; ``("0", "1", ...)`` by default."""
    unknown = sorted(set(states) - set(cards))
    if unknown:
        raise DataError(f"states given for {unknown}, which are not variables of the net {list(cards)}")
    checked = {}
    for v, card in cards.items():
        names = tuple(str(s) for s in states[v]) if v in states else tuple(map(str, range(card)))
        if len(names) != card:
            raise DataError(f"variable {v!r} has {card} states (its CPT's last axis) but {len(names)} state names "
                            f"were given: {', '.join(names)}")
        if len(set(names)) != card:
            raise DataError(f"variable {v!r} has a state name twice: {', '.join(names)}")
        checked[v] = names
    return checked


def _same_cpt(v: str, net: BayesNet, other: BayesNet) -> bool:
    """Whether ``v`` has the same parents and CPT in both nets, ``other``'s axes put in ``net``'s parent order."""
    ours, theirs = net.parents[v], other.parents[v]
    if set(ours) != set(theirs):
        return False
    table = other.cpts[v].permute(*(theirs.index(p) for p in ours), len(ours))
    return table.shape == net.cpts[v].shape and torch.allclose(table.to(net.cpts[v]), net.cpts[v], rtol=0, atol=1e-12)


def _pgmpy():
    """pgmpy's network and CPD classes, imported on first use (pgmpy is optional)."""
    try:
        from pgmpy.factors.discrete import TabularCPD
        from pgmpy.models import DiscreteBayesianNetwork
    except ImportError as error:
        raise ImportError("converting to or from pgmpy needs pgmpy: pip install pgmpy") from error
    return DiscreteBayesianNetwork, TabularCPD


def _categorical(name: str, probs: torch.Tensor, value: torch.Tensor | None) -> torch.Tensor:
    """``x ~ Categorical(probs)``: observed where ``value >= 0``, enumerated where it is -1 or ``None``.

    A partly observed column is enumerated in every row, with a log-indicator factor
    ``log 1[x = value]`` on the observed rows, so each row contributes exactly ``p(value | parents)``.
    """
    if value is None:
        return pyro.sample(name, dist.Categorical(probs), infer=ENUM)
    missing = value < 0
    if not bool(missing.any()):
        return pyro.sample(name, dist.Categorical(probs), obs=value)
    x = pyro.sample(name, dist.Categorical(probs), infer=ENUM)
    consistent = missing | (x == value)
    pyro.factor(f"{name}_observed", probs.new_zeros(consistent.shape).masked_fill(~consistent, -math.inf))
    return x


def _topological_order(parents: Mapping[str, tuple], cpts: Mapping[str, object]) -> tuple[str, ...]:
    """The variables, parents before children (Kahn's algorithm, stable in the given order);
    clear errors for a missing CPT, an unknown parent or a cycle."""
    for v in parents:
        if v not in cpts:
            raise DataError(f"variable {v!r} has no CPT")
    for v in cpts:
        if v not in parents:
            raise DataError(f"CPT given for {v!r}, which is not in parents (list its parents, [] for a root)")
    for v, ps in parents.items():
        for p in ps:
            if p not in parents:
                raise DataError(f"parent {p!r} of {v!r} is not a variable of the net")
        if len(set(ps)) != len(ps):
            raise DataError(f"variable {v!r} lists a parent twice: {list(ps)}")
    order, placed = [], set()
    while len(order) < len(parents):
        ready = [v for v in parents if v not in placed and all(p in placed for p in parents[v])]
        if not ready:
            raise DataError(f"the graph has a cycle: {' -> '.join(_cycle(parents, placed))}")
        order.extend(ready)
        placed.update(ready)
    return tuple(order)


def _cycle(parents: Mapping[str, tuple], placed: set) -> list[str]:
    """A cycle among the unplaced variables: follow unplaced parents until a variable repeats."""
    v = next(u for u in parents if u not in placed)
    path = []
    while v not in path:
        path.append(v)
        v = next(p for p in parents[v] if p not in placed)
    cycle = path[path.index(v):] + [v]
    return cycle[::-1]  # parent -> child


def _check_cpt(v: str, cpt: torch.Tensor, parents: list[tuple[str, int]]) -> None:
    expected = tuple(card for _, card in parents)
    if cpt.dim() != len(parents) + 1 or tuple(cpt.shape[:-1]) != expected or cpt.shape[-1] < 1:
        given = ", ".join(f"{p}: {card}" for p, card in parents) or "none"
        raise DataError(f"CPT of {v!r} must have shape (*cards of its parents, card of {v!r}) = "
                        f"{(*expected, 'card')} (parents {given}); got {tuple(cpt.shape)}")
    if not bool(torch.isfinite(cpt).all()) or bool((cpt < 0).any()):
        raise DataError(f"CPT of {v!r} has negative or non-finite entries")
    sums = cpt.sum(-1)
    bad = (sums - 1).abs() > 1e-6
    if bool(bad.any()):
        row = tuple(int(i) for i in bad.nonzero()[0])
        raise DataError(f"CPT rows of {v!r} must sum to 1; row {row} (parents {[p for p, _ in parents]}) "
                        f"sums to {float(sums[row]):.6g}")


# ---- built-in networks --------------------------------------------------------------------------
def sprinkler(**kwargs) -> BayesNet:
    """The lecture's sprinkler net: rain -> sprinkler, (rain, sprinkler) -> wet grass; p(rain | wet) = 0.3577."""
    return BayesNet(
        parents={"rain": [], "sprinkler": ["rain"], "wet": ["rain", "sprinkler"]},
        cpts={"rain": [0.8, 0.2],
              "sprinkler": [[0.6, 0.4], [0.99, 0.01]],
              "wet": [[[1.0, 0.0], [0.1, 0.9]],      # no rain: sprinkler off, on
                      [[0.2, 0.8], [0.01, 0.99]]]},  # rain:    sprinkler off, on
        **kwargs,
    )


def student(**kwargs) -> BayesNet:
    """Koller & Friedman's student net (the lecture's example): difficulty, intelligence -> grade;
    intelligence -> sat; grade -> letter. Grade 0 is the best (A); 15 parameters instead of 47."""
    return BayesNet(
        parents={"difficulty": [], "intelligence": [], "grade": ["difficulty", "intelligence"],
                 "sat": ["intelligence"], "letter": ["grade"]},
        cpts={"difficulty": [0.6, 0.4],
              "intelligence": [0.7, 0.3],
              "grade": [[[0.3, 0.4, 0.3], [0.9, 0.08, 0.02]],     # easy: low, high intelligence
                        [[0.05, 0.25, 0.7], [0.5, 0.3, 0.2]]],    # hard
              "sat": [[0.95, 0.05], [0.2, 0.8]],
              "letter": [[0.1, 0.9], [0.4, 0.6], [0.99, 0.01]]},
        **kwargs,
    )


CLASSIC = ("asia", "cancer", "earthquake", "survey", "sachs", "child", "insurance", "alarm", "water", "hailfinder")


def classic(name: str, **kwargs) -> BayesNet:
    """One of the classic networks of the bnlearn repository, bundled (``CLASSIC``; sources and licenses
    in ``ppgen/data/bnlearn/SOURCES.md``); ``kwargs`` go to the constructor (``dtype``, ``device``)."""
    if name not in CLASSIC:
        raise UnknownNameError(f"unknown classic network {name!r}; the bundled ones are {', '.join(CLASSIC)}")
    with resources.as_file(resources.files("ppgen.data").joinpath("bnlearn", f"{name}.bif.gz")) as path:
        return BayesNet.from_bif(path, **kwargs)


def bundled_table(net: BayesNet, n: int = 400, missing: float = 0.1, seed: int = 0) -> np.ndarray:
    """``n`` rows drawn from ``net`` with a fraction ``missing`` of the entries hidden (-1), at random."""
    x = net.sample(n, seed=seed)
    hide = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed + 1)) < missing
    return x.masked_fill(hide.to(x.device), -1).cpu().numpy()


_SPRINKLER, _STUDENT = sprinkler(), student()


@register("sprinkler", data=lambda: {"x": bundled_table(_SPRINKLER)}, default_method="svi",
          description="lecture 2's sprinkler Bayes net, CPTs ~ Dirichlet, 10% of the entries missing")
def sprinkler_model(x, concentration=1.0):
    """The sprinkler net's CPTs learned from a table x (n, 3: rain, sprinkler, wet; -1 = missing)."""
    return _SPRINKLER.learning_program(x, concentration)


@register("student", data=lambda: {"x": bundled_table(_STUDENT)}, default_method="svi",
          description="Koller & Friedman's student Bayes net, CPTs ~ Dirichlet, 10% of the entries missing")
def student_model(x, concentration=1.0):
    """The student net's CPTs learned from a table x (n, 5: difficulty, intelligence, grade, sat, letter)."""
    return _STUDENT.learning_program(x, concentration)
