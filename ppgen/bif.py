"""Discrete Bayes networks in the BIF format (the Bayesian network Interchange Format, as bnlearn and
pgmpy write it), read and written without any third-party parser.

A file is a list of blocks; ``//`` and ``/* */`` are comments, names are bare words or ``"quoted"``,
commas between list items are optional::

    network asia {                                 // the network's name; property lines may follow
    }
    variable either {                              // one block per variable: its states, in order
      type discrete [ 2 ] { yes, no };
    }
    probability ( either | lung, tub ) {           // p(child | parents); parents in the table's axis order
      (yes, yes) 1.0, 0.0;                         // one row per parent configuration, keyed by the
      (no, yes) 1.0, 0.0;                          //   parents' state NAMES, in any order of rows;
      default 0.0, 1.0;                            //   ``default`` covers the configurations not listed
    }
    probability ( smoke ) {
      table 0.5, 0.5;                              // ``table``: all values, the child's state slowest
    }

:func:`read` returns a :class:`BIF` with every table as an array of shape ``(*parent cards, card)``;
:func:`write` and :func:`dumps` write one back (floats as ``repr``, so a round trip is exact). A
malformed file raises :class:`ppgen.errors.DataError` naming the variable and the (1-based) line.
"""
from __future__ import annotations

import gzip
import itertools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, NoReturn

import numpy as np

from ppgen.errors import DataError

__all__ = ["BIF", "read", "write", "dumps"]

TOLERANCE = 1e-6  # how far a distribution's sum may be from 1

_WORD = r'(?:[^\s{}()\[\]|,;"/]|/(?![/*]))+'  # a bare name or number; "/" only when no comment starts there
_TOKENS = re.compile(rf"""
    (?P<space>\s+|,)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<open_comment>/\*)
  | "(?P<quoted>[^"]*)"
  | (?P<punct>[{{}}()\[\]|;])
  | (?P<word>{_WORD})
  | (?P<bad>.)
""", re.VERBOSE | re.DOTALL)


@dataclass
class BIF:
    """A parsed BIF file.

    :ivar name: the network's name (``"unknown"`` in bnlearn's files).
    :ivar variables: the variables in the order the file declares them.
    :ivar states: ``{v: its state names, in order}``.
    :ivar parents: ``{v: its parents, in the order of its table's axes}``.
    :ivar tables: ``{v: array of shape (*parent cards, card)}``, each last axis summing to 1.
    :ivar properties: ``{v: the text of each of its variable block's property lines}`` (kept, not interpreted).
    :ivar network_properties: the text of the network block's property lines.
    """

    name: str
    variables: tuple[str, ...]
    states: dict[str, tuple[str, ...]]
    parents: dict[str, tuple[str, ...]]
    tables: dict[str, np.ndarray]
    properties: dict[str, tuple[str, ...]] = field(default_factory=dict)
    network_properties: tuple[str, ...] = ()


# ---- reading -------------------------------------------------------------------------------------
def read(source: str | os.PathLike) -> BIF:
    """Parse a BIF file: a path (``.gz`` is decompressed), or the text itself (a ``str`` holding ``{``)."""
    if isinstance(source, str) and "{" in source:
        return _Parser(source, "BIF text").parse()
    path = Path(source)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return _Parser(f.read(), str(path)).parse()


class _Token(NamedTuple):
    text: str
    line: int
    start: int  # the offset in the source (a property line keeps its own text)
    punct: bool  # one of { } ( ) [ ] | ; (not a name that happens to be spelled so)


@dataclass
class _Entry:
    """One statement of a probability block: ``table``, ``default`` or a row ``(states)``."""

    kind: str
    keys: tuple[str, ...]
    values: tuple[float, ...]
    line: int


@dataclass
class _Block:
    """A probability block as written: its variable, parents and entries, with their lines."""

    variable: str
    parents: tuple[str, ...]
    parent_lines: tuple[int, ...]
    entries: list[_Entry]
    line: int


class _Parser:
    """Recursive descent over the tokens: syntax first (:meth:`parse` collects the blocks), then
    meaning (:meth:`_resolve` checks names, states and sums, and builds the tables)."""

    def __init__(self, text: str, source: str):
        self.text, self.source = text, source
        self.tokens = _tokenize(text, source)
        self.at = 0
        self.name = "unknown"
        self.network_properties: list[str] = []
        self.declared: dict[str, tuple[tuple[str, ...], list[str], int]] = {}  # v: (states, properties, line)
        self.blocks: dict[str, _Block] = {}

    def parse(self) -> BIF:
        while self.peek() is not None:
            keyword = self.word("'network', 'variable' or 'probability'")
            if keyword.text == "network":
                self.network()
            elif keyword.text == "variable":
                self.variable()
            elif keyword.text == "probability":
                self.probability(keyword.line)
            else:
                self.fail(keyword.line, f"expected 'network', 'variable' or 'probability', got {keyword.text!r}")
        return self._resolve()

    # -- tokens
    def fail(self, line: int, message: str) -> NoReturn:
        raise DataError(f"{self.source}, line {line}: {message}")

    def peek(self) -> _Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def next(self, expected: str) -> _Token:
        token = self.peek()
        if token is None:
            last = self.tokens[-1].line if self.tokens else 1
            self.fail(last, f"expected {expected}, got the end of the file")
        self.at += 1
        return token

    def expect(self, punct: str, context: str = "") -> _Token:
        """The next token, which must be ``punct``; a missing one is reported on the line it should end."""
        token = self.next(f"{punct!r}")
        if not token.punct or token.text != punct:
            line = self.tokens[self.at - 2].line if self.at >= 2 else token.line
            self.fail(line, f"expected {punct!r}{context}, got {token.text!r}")
        return token

    def word(self, expected: str) -> _Token:
        token = self.next(expected)
        if token.punct:
            self.fail(token.line, f"expected {expected}, got {token.text!r}")
        return token

    def at_punct(self, punct: str) -> bool:
        token = self.peek()
        return token is not None and token.punct and token.text == punct

    def words_until(self, close: str, expected: str) -> list[_Token]:
        """Words up to and including ``close`` (the tokenizer drops the commas between them)."""
        words = []
        while not self.at_punct(close):
            words.append(self.word(expected))
        self.at += 1
        return words

    def property(self) -> str:
        """The text of a ``property ...;`` line after the keyword (which was just read)."""
        start = self.peek()
        while not self.at_punct(";"):
            self.next("';' after the property")
        end = self.next("';'")
        return self.text[start.start:end.start].strip()

    # -- blocks
    def network(self) -> None:
        if not self.at_punct("{"):
            self.name = self.word("the network's name").text
        self.expect("{", " after the network's name")
        while not self.at_punct("}"):
            keyword = self.word("'property' or '}'")
            if keyword.text != "property":
                self.fail(keyword.line, f"expected 'property' or '}}' in the network block, got {keyword.text!r}")
            self.network_properties.append(self.property())
        self.at += 1

    def variable(self) -> None:
        name = self.word("a variable name")
        if name.text in self.declared:
            self.fail(name.line, f"variable {name.text!r} is declared twice (first on line "
                                 f"{self.declared[name.text][2]})")
        self.expect("{", f" after 'variable {name.text}'")
        states, properties = None, []
        while not self.at_punct("}"):
            keyword = self.word("'type', 'property' or '}'")
            if keyword.text == "property":
                properties.append(self.property())
            elif keyword.text == "type":
                states = self.states(name.text, keyword.line)
            else:
                self.fail(keyword.line, f"expected 'type', 'property' or '}}' in variable {name.text!r}, "
                                        f"got {keyword.text!r}")
        self.at += 1
        if states is None:
            self.fail(name.line, f"variable {name.text!r} has no 'type discrete [ n ] {{ states }};' line")
        self.declared[name.text] = (states, properties, name.line)

    def states(self, v: str, line: int) -> tuple[str, ...]:
        """``discrete [ n ] { s1, s2, ... };`` after ``type``."""
        kind = self.word("'discrete'")
        if kind.text != "discrete":
            self.fail(kind.line, f"variable {v!r} is of type {kind.text!r}; only 'discrete' is supported")
        self.expect("[", " after 'discrete'")
        count = self.word("the number of states")
        if not count.text.isdigit():
            self.fail(count.line, f"expected the number of states of {v!r}, got {count.text!r}")
        self.expect("]", " after the number of states")
        self.expect("{", " before the states")
        states = tuple(t.text for t in self.words_until("}", f"a state name of {v!r} or '}}'"))
        self.expect(";", f" after the states of {v!r}")
        if len(states) != int(count.text) or not states:
            self.fail(line, f"variable {v!r} declares {count.text} states but lists {len(states)}")
        if len(set(states)) != len(states):
            self.fail(line, f"variable {v!r} lists a state twice: {', '.join(states)}")
        return states

    def probability(self, line: int) -> None:
        """``( v | p1, p2 ) { entries }``; the ``|`` may be left out (the older ``( v p1 p2 )``)."""
        self.expect("(", " after 'probability'")
        v = self.word("a variable name").text
        if v in self.blocks:
            self.fail(line, f"variable {v!r} has two probability blocks (first on line {self.blocks[v].line})")
        if self.at_punct("|"):
            self.at += 1
        parents = self.words_until(")", f"a parent of {v!r} or ')'")
        self.expect("{", f" after 'probability ( {v} ... )'")
        entries = []
        while not self.at_punct("}"):
            entry = self.entry(v)
            if entry is not None:
                entries.append(entry)
        self.at += 1
        self.blocks[v] = _Block(v, tuple(p.text for p in parents), tuple(p.line for p in parents), entries, line)

    def entry(self, v: str) -> _Entry | None:
        """``table p, ...;``, ``default p, ...;``, ``(s1, s2) p, ...;`` or a property line (None)."""
        token = self.next(f"a row of {v!r}'s table or '}}'")
        if token.punct and token.text == "(":
            keys = tuple(t.text for t in self.words_until(")", "a parent's state or ')'"))
            return _Entry("row", keys, self.numbers(v), token.line)
        if not token.punct and token.text in ("table", "default"):
            return _Entry(token.text, (), self.numbers(v), token.line)
        if not token.punct and token.text == "property":
            self.property()
            return None
        self.fail(token.line, f"expected 'table', 'default', '(' or '}}' in the probability block of {v!r}, "
                              f"got {token.text!r}")

    def numbers(self, v: str) -> tuple[float, ...]:
        """Probabilities up to and including ``;``."""
        values = []
        for token in self.words_until(";", f"a probability of {v!r} or ';'"):
            try:
                values.append(float(token.text))
            except ValueError:
                self.fail(token.line, f"expected a probability (a number) in the table of {v!r}, got {token.text!r}")
        return tuple(values)

    # -- meaning
    def _resolve(self) -> BIF:
        for v, block in self.blocks.items():
            if v not in self.declared:
                self.fail(block.line, f"probability block for {v!r}, which is not declared as a variable")
            for p, line in zip(block.parents, block.parent_lines):
                if p not in self.declared:
                    self.fail(line, f"parent {p!r} of {v!r} is not declared as a variable")
            if len(set(block.parents)) != len(block.parents):
                self.fail(block.line, f"variable {v!r} lists a parent twice: {', '.join(block.parents)}")
        for v, (_, _, line) in self.declared.items():
            if v not in self.blocks:
                self.fail(line, f"variable {v!r} has no probability block (no table)")
        states = {v: s for v, (s, _, _) in self.declared.items()}
        return BIF(name=self.name, variables=tuple(self.declared), states=states,
                   parents={v: self.blocks[v].parents for v in self.declared},
                   tables={v: self._table(self.blocks[v], states) for v in self.declared},
                   properties={v: tuple(props) for v, (_, props, _) in self.declared.items() if props},
                   network_properties=tuple(self.network_properties))

    def _table(self, block: _Block, states: dict[str, tuple[str, ...]]) -> np.ndarray:
        """The block's entries as one array of shape (*parent cards, card), every configuration given once."""
        v, parents = block.variable, block.parents
        card, shape = len(states[v]), tuple(len(states[p]) for p in parents)
        table = np.zeros((*shape, card))
        given: dict[tuple[int, ...], int] = {}  # parent configuration: the line that gave it
        default = None
        for entry in block.entries:
            if entry.kind == "default":
                self._check_count(entry, v, card, "the default row")
                default = entry
                continue
            rows = self._rows(entry, v, parents, states, card, shape)
            for config, values in rows:
                if config in given:
                    self.fail(entry.line, f"the table of {v!r} gives ({_describe(parents, config, states)}) twice "
                                          f"(first on line {given[config]})")
                self._check_sum(entry.line, v, parents, config, states, values)
                table[config], given[config] = values, entry.line
        for config in itertools.product(*map(range, shape)):
            if config not in given:
                if default is None:
                    self.fail(block.line, f"the table of {v!r} lacks a row for ({_describe(parents, config, states)})")
                self._check_sum(default.line, v, parents, config, states, default.values)
                table[config] = default.values
        return table

    def _rows(self, entry: _Entry, v: str, parents: tuple[str, ...], states: dict, card: int,
              shape: tuple[int, ...]) -> list[tuple[tuple[int, ...], tuple[float, ...]]]:
        """The (parent configuration, probabilities) pairs a ``table`` or ``(states)`` entry gives."""
        if entry.kind == "table":
            self._check_count(entry, v, card * math.prod(shape), "the table", f"{card} states x {math.prod(shape)} "
                              f"parent configurations" if parents else f"{card} states")
            values = np.moveaxis(np.array(entry.values).reshape(card, *shape), 0, -1)
            return [(config, tuple(values[config])) for config in itertools.product(*map(range, shape))]
        if len(entry.keys) != len(parents):
            self.fail(entry.line, f"the row ({', '.join(entry.keys)}) of {v!r} names {len(entry.keys)} states, one per "
                                  f"parent of {v!r}: expected {len(parents)} ({', '.join(parents) or 'no parents'})")
        config = []
        for p, key in zip(parents, entry.keys):
            if key not in states[p]:
                self.fail(entry.line, f"in the row ({', '.join(entry.keys)}) of {v!r}: {key!r} is not a state of "
                                      f"parent {p!r}; states: {', '.join(states[p])}")
            config.append(states[p].index(key))
        self._check_count(entry, v, card, f"the row ({', '.join(entry.keys)})")
        return [(tuple(config), entry.values)]

    def _check_count(self, entry: _Entry, v: str, count: int, what: str, why: str = "") -> None:
        if len(entry.values) != count:
            self.fail(entry.line, f"{what} of {v!r} has {len(entry.values)} values; expected {count} "
                                  f"({why or f'{v!r} has {count} states'})")

    def _check_sum(self, line: int, v: str, parents: tuple[str, ...], config: tuple[int, ...], states: dict,
                   values) -> None:
        total = math.fsum(values)
        if not abs(total - 1) <= TOLERANCE or min(values) < 0:  # `not <=` catches NaN
            given = f" | {_describe(parents, config, states)}" if parents else ""
            self.fail(line, f"p({v}{given}) must be non-negative and sum to 1; got {', '.join(map(str, values))} "
                            f"(sum {total:.9g})")


def _tokenize(text: str, source: str) -> list[_Token]:
    """Names, numbers and punctuation with their lines; spaces, commas and comments dropped."""
    tokens, line = [], 1
    for match in _TOKENS.finditer(text):
        kind = match.lastgroup
        if kind in ("bad", "open_comment"):
            what = "an unterminated '/*' comment" if kind == "open_comment" else f"unexpected character {match[0]!r}"
            raise DataError(f"{source}, line {line}: {what}")
        if kind in ("word", "quoted", "punct"):
            tokens.append(_Token(match[kind], line, match.start(), kind == "punct"))
        line += match[0].count("\n")
    return tokens


def _describe(parents: tuple[str, ...], config: tuple[int, ...], states: dict) -> str:
    """A parent configuration by name: ``lung=yes, tub=no``."""
    return ", ".join(f"{p}={states[p][i]}" for p, i in zip(parents, config))


# ---- writing -------------------------------------------------------------------------------------
def dumps(bif: BIF) -> str:
    """The BIF text of ``bif``: rows keyed by state names for conditional tables, ``table`` for roots."""
    lines = [f"network {_name(bif.name)} {{", *(f"  property {p};" for p in bif.network_properties), "}"]
    for v in bif.variables:
        states = ", ".join(map(_name, bif.states[v]))
        lines += [f"variable {_name(v)} {{", f"  type discrete [ {len(bif.states[v])} ] {{ {states} }};",
                  *(f"  property {p};" for p in bif.properties.get(v, ())), "}"]
    for v in bif.variables:
        lines += _probability_block(v, bif)
    return "\n".join(lines) + "\n"


def write(bif: BIF, path: str | os.PathLike) -> None:
    """Write ``bif`` to ``path`` (gzipped if it ends in ``.gz``)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.write(dumps(bif))


def _probability_block(v: str, bif: BIF) -> list[str]:
    parents, table = bif.parents[v], np.asarray(bif.tables[v], dtype=float)
    if not parents:
        return [f"probability ( {_name(v)} ) {{", f"  table {_numbers(table)};", "}"]
    rows = [f"  ({', '.join(_name(bif.states[p][i]) for p, i in zip(parents, config))}) {_numbers(table[config])};"
            for config in itertools.product(*(range(len(bif.states[p])) for p in parents))]
    return [f"probability ( {_name(v)} | {', '.join(map(_name, parents))} ) {{", *rows, "}"]


def _numbers(values: np.ndarray) -> str:
    return ", ".join(repr(float(x)) for x in values)


def _name(name: str) -> str:
    """A name as a bare word where it is one, else quoted."""
    return name if re.fullmatch(_WORD, name) else f'"{name}"'
