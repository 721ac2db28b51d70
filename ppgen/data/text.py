"""Text for the word models of :mod:`ppgen.models.ngram` and :mod:`ppgen.models.word2vec`.

A tokenizer (words and single punctuation marks, one list per sentence), a :class:`Vocabulary` with
a minimum count, the symmetric co-occurrence table of a window, the skip-gram training pairs of a
window, any UTF-8 file (:func:`read_text`), and a corpus generated in code from a small grammar with
planted word classes (:func:`planted_corpus`), so what embeddings must recover is known.

The notes' examples, exactly::

    >>> sents = tokenize("I like deep learning. I like NLP. I enjoy flying.", lower=False)
    >>> vocab = Vocabulary.build(sents)
    >>> table = cooccurrence(vocab.encode(sents), len(vocab), window=1)
    >>> int(table[vocab.index("I"), vocab.index("like")])
    2
    >>> sents = tokenize("The quick brown fox jumps over the lazy dog")
    >>> vocab = Vocabulary.build(sents)
    >>> [tuple(vocab.decode(p)) for p in skipgram_pairs(vocab.encode(sents), window=2)[:3]]
    [('the', 'quick'), ('the', 'brown'), ('quick', 'the')]
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ppgen.errors import DataError

__all__ = ["tokenize", "read_text", "Vocabulary", "cooccurrence", "skipgram_pairs", "PlantedCorpus",
           "planted_corpus", "PLANTED_CLASSES"]

_TOKEN = re.compile(r"\w+(?:['\u2019]\w+)*|[^\w\s]")
_SENTENCE_END = frozenset(".!?")
_PARAGRAPH = re.compile(r"\n\s*\n")


def tokenize(text: str, lower: bool = True) -> list[list[str]]:
    """Sentences of tokens. A token is a word (letters, digits, inner apostrophes) or one punctuation
    mark; a sentence ends after ``.``, ``!`` or ``?`` (kept as its last token) or at a blank line."""
    if not isinstance(text, str):
        raise DataError(f"text must be a str, got {type(text).__name__}")
    if lower:
        text = text.lower()
    sentences: list[list[str]] = []
    for paragraph in _PARAGRAPH.split(text):
        current: list[str] = []
        for token in _TOKEN.findall(paragraph):
            current.append(token)
            if token in _SENTENCE_END:
                sentences.append(current)
                current = []
        if current:
            sentences.append(current)
    return sentences


def read_text(path: str | Path, lower: bool = True) -> list[list[str]]:
    """The sentences of a UTF-8 text file (see :func:`tokenize`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"text file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        bad = e.object[e.start:e.start + 1]
        raise DataError(f"text file {str(path)!r} is not UTF-8: byte {e.start} is {bad!r}") from None
    sentences = tokenize(text, lower=lower)
    if not sentences:
        raise DataError(f"text file {str(path)!r} has no words")
    return sentences


@dataclass(frozen=True)
class Vocabulary:
    """Words and their counts, most frequent first (ties in order of first appearance).

    ``unk``: the token that stands for every word left out (rarer than ``min_count`` or never seen);
    it is the last entry and its count is the number of tokens it replaced. Without ``unk``,
    :meth:`encode` refuses unknown words unless asked to drop them.
    """

    words: tuple[str, ...]
    counts: tuple[int, ...]
    unk: str | None = None

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], min_count: int = 1, max_size: int | None = None,
              unk: str | None = None) -> "Vocabulary":
        """The words occurring at least ``min_count`` times (at most ``max_size`` of them)."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counter = Counter(token for sentence in sentences for token in sentence)
        if not counter:
            raise DataError("cannot build a vocabulary from text without words")
        kept = [(w, c) for w, c in sorted(counter.items(), key=lambda wc: -wc[1]) if c >= min_count][:max_size]
        if unk is not None:
            if unk in counter:
                raise DataError(f"the unknown-word token {unk!r} occurs in the text; choose another with unk=...")
            kept.append((unk, sum(counter.values()) - sum(c for _, c in kept)))
        if not kept:
            raise DataError(f"no word occurs min_count={min_count} times "
                            f"(the most frequent occurs {max(counter.values())} times)")
        words, counts = zip(*kept)
        return cls(words=tuple(words), counts=tuple(counts), unk=unk)

    def __post_init__(self):
        object.__setattr__(self, "_ids", {w: i for i, w in enumerate(self.words)})

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self._ids

    def index(self, word: str) -> int:
        """The id of ``word`` (of ``unk`` for an unknown word when the vocabulary has one)."""
        i = self._ids.get(word)
        if i is None:
            if self.unk is None:
                raise DataError(f"word {word!r} is not in the vocabulary ({len(self)} words)")
            i = self._ids[self.unk]
        return i

    def encode(self, sentences: Iterable[Sequence[str]], drop_unknown: bool = False) -> list[np.ndarray]:
        """Each sentence as an int64 array of ids. Unknown words become ``unk``; without one they are
        dropped with ``drop_unknown=True`` and are an error otherwise."""
        out = []
        for sentence in sentences:
            if drop_unknown and self.unk is None:
                sentence = [w for w in sentence if w in self._ids]
            out.append(np.array([self.index(w) for w in sentence], dtype=np.int64))
        return out

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.words[int(i)] for i in ids]


def _concat(sentences: Sequence[np.ndarray], vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """All ids in one array and the sentence number of each, after checking the ids."""
    sentences = [np.asarray(s) for s in sentences]
    if not sentences or any(s.ndim != 1 for s in sentences):
        raise DataError("sentences must be a non-empty list of 1-D arrays of word ids")
    ids = np.concatenate(sentences).astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise DataError(f"word ids must lie in [0, {vocab_size}); got ids from {ids.min()} to {ids.max()}")
    sentence_of = np.repeat(np.arange(len(sentences)), [len(s) for s in sentences])
    return ids, sentence_of


def _check_window(window: int) -> None:
    if not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")


def cooccurrence(sentences: Sequence[np.ndarray], vocab_size: int, window: int) -> np.ndarray:
    """The symmetric ``(V, V)`` table ``X[i, j]``: how often word ``j`` occurs within ``window`` words
    of an occurrence of word ``i`` in the same sentence."""
    _check_window(window)
    ids, sentence_of = _concat(sentences, vocab_size)
    table = np.zeros((vocab_size, vocab_size), dtype=np.int64)
    for offset in range(1, window + 1):
        same = sentence_of[:-offset] == sentence_of[offset:]
        a, b = ids[:-offset][same], ids[offset:][same]
        np.add.at(table, (a, b), 1)
        np.add.at(table, (b, a), 1)
    return table


def skipgram_pairs(sentences: Sequence[np.ndarray], window: int, vocab_size: int | None = None) -> np.ndarray:
    """The skip-gram training pairs ``(centre, context)`` as an ``(n, 2)`` int64 array: for every
    position t of every sentence, the words at t + j for j = -window..window, j != 0, inside the
    sentence, in that order."""
    _check_window(window)
    if vocab_size is None:
        vocab_size = 1 + max((int(np.max(s)) for s in sentences if len(s)), default=0)
    ids, sentence_of = _concat(sentences, vocab_size)
    n = len(ids)
    offsets = [j for j in range(-window, window + 1) if j != 0]
    keys, pairs = [], []
    for rank, j in enumerate(offsets):
        t = np.arange(max(0, -j), min(n, n - j))
        t = t[sentence_of[t] == sentence_of[t + j]]
        keys.append(t * len(offsets) + rank)
        pairs.append(np.stack([ids[t], ids[t + j]], axis=1))
    order = np.argsort(np.concatenate(keys), kind="stable")
    return np.concatenate(pairs)[order]


# --- a corpus with planted word classes ---------------------------------------------------------

PLANTED_CLASSES: dict[str, tuple[str, ...]] = {
    "person": ("alice", "bob", "carol", "dave", "erin", "frank"),
    "animal": ("cat", "dog", "horse", "cow", "sheep", "goat"),
    "food": ("apple", "bread", "cheese", "rice", "soup", "cake"),
    "place": ("garden", "kitchen", "park", "field", "forest", "barn"),
    "colour": ("red", "green", "blue", "yellow", "black", "white"),
    "verb": ("eats", "likes", "wants", "finds", "smells", "takes"),
}

# Each template is a sentence with class slots in capitals; every word of a class is equally likely
# in every slot of that class, so words of one class share their contexts exactly.
_TEMPLATES = (
    "PERSON VERB the FOOD in the PLACE .",
    "the COLOUR ANIMAL VERB the FOOD .",
    "PERSON walks to the PLACE with the ANIMAL .",
    "the ANIMAL sleeps in the COLOUR PLACE .",
    "PERSON and PERSON share the COLOUR FOOD .",
)


@dataclass(frozen=True)
class PlantedCorpus:
    """Generated sentences and the class each content word was drawn from (``"the"``, ``"in"``,
    ``"."``... belong to no class)."""

    sentences: list[list[str]]
    word_class: dict[str, str]


def planted_corpus(n_sentences: int = 2000, seed: int = 0, words_per_class: int = 6) -> PlantedCorpus:
    """``n_sentences`` sentences from a small grammar (:data:`PLANTED_CLASSES` filled into five
    templates). With ``words_per_class`` above 6, classes grow by words named ``animal7``, ...."""
    if n_sentences < 1 or words_per_class < 2:
        raise ValueError(f"need n_sentences >= 1 and words_per_class >= 2, got {n_sentences}, {words_per_class}")
    classes = {c: (ws + tuple(f"{c}{i}" for i in range(len(ws) + 1, words_per_class + 1)))[:words_per_class]
               for c, ws in PLANTED_CLASSES.items()}
    rng = np.random.default_rng(seed)
    templates = [t.split() for t in _TEMPLATES]
    sentences = []
    for k in rng.integers(0, len(templates), n_sentences):
        sentences.append([classes[tok.lower()][rng.integers(words_per_class)] if tok.isupper() else tok
                          for tok in templates[k]])
    return PlantedCorpus(sentences, {w: c for c, ws in classes.items() for w in ws})
