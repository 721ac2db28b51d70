"""Words (notes: representation learning with words): the n-gram language model.

**n-gram model.** The chain rule cut to the last n - 1 words, with a Dirichlet prior on each
context's transition probabilities (Bayesian smoothing)::

    theta_c ~ Dirichlet(alpha 1_V)                    for each context c = (w_{i-n+1}, ..., w_{i-1})
    w_i | c_i ~ Categorical(theta_{c_i})              (sentences padded on the left with <s>)

Conjugacy puts everything in closed form (:class:`NGramModel`): the posterior is
``Dirichlet(alpha + n_c)`` with ``n_c[w]`` the count of ``(c, w)``, the maximum-likelihood estimate is
the count ratio ``n_c[w] / n_c``, the MAP ``(n_c[w] + alpha - 1) / (n_c + V (alpha - 1))``, the
posterior predictive ``(n_c[w] + alpha) / (n_c + V alpha)`` (add-alpha smoothing) and the evidence.
The Pyro program :func:`ngram` is the same model for the generic engines (MAP, SVI, NUTS), which
must agree with it; it holds a (contexts x V) table, so it is for small vocabularies, where the
closed forms scale to any text.
"""
from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from scipy.special import gammaln

from ppgen.data.text import Vocabulary, planted_corpus
from ppgen.errors import DataError, NotApplicableError, UnknownNameError
from ppgen.models import register

__all__ = ["ngram", "NGramModel", "ngram_contexts", "check_aligned", "planted_ids"]


def check_aligned(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Two per-token (or per-pair) id arrays: 1-D, the same length."""
    if a.ndim != 1 or b.shape != a.shape:
        raise DataError(f"{name_a!r} and {name_b!r} must be 1-D arrays of word ids of the same length, got shapes "
                        f"{tuple(a.shape)} and {tuple(b.shape)}")



def ngram_contexts(sentences, order: int, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """For every token of every sentence, its context (the ``order - 1`` previous ids, ``vocab_size``
    standing for the padding <s>) and its id: ``(contexts (N, order - 1), words (N,))``."""
    if not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"order must be a positive integer (1: unigram, 2: bigram, ...), got {order!r}")
    contexts, words = [], []
    for s in sentences:
        s = np.asarray(s, dtype=np.int64)
        if s.ndim != 1 or (s.size and (s.min() < 0 or s.max() >= vocab_size)):
            raise DataError(f"each sentence must be a 1-D array of word ids in [0, {vocab_size}); got {s!r}")
        padded = np.concatenate([np.full(order - 1, vocab_size), s])
        contexts.append(np.lib.stride_tricks.sliding_window_view(padded, order)[:, :-1])
        words.append(s)
    if not words or not sum(len(w) for w in words):
        raise DataError("no tokens: the sentences are empty")
    return np.concatenate(contexts), np.concatenate(words)


@register("ngram", data=lambda: NGramModel(order=2, alpha=1.0).fit(*planted_ids(300)).pyro_data(),
          default_method="map", description="bigram language model, Dirichlet priors on transitions (planted corpus)")
def ngram(history, word, num_contexts, vocab_size, alpha=1.0, batch_size=None):
    """n-gram language model: ``theta_c ~ Dirichlet(alpha 1_V)``, ``word_i ~ Categorical(theta_{history_i})``.

    ``history``: (N,) row index of each token's context (its n - 1 previous words) in
    [0, num_contexts); ``word``: (N,) ids.
    Build both with :meth:`NGramModel.pyro_data`.
    """
    check_aligned("history", history, "word", word)
    C, V = int(num_contexts), int(vocab_size)
    concentration = torch.full((V,), float(alpha), device=word.device)
    with pyro.plate("contexts", C):
        theta = pyro.sample("theta", dist.Dirichlet(concentration))  # (C, V)
    with pyro.plate("tokens", word.shape[0], subsample_size=batch_size) as i:
        pyro.sample("word", dist.Categorical(theta[..., history[i], :]), obs=word[i])  # probs (..., N, V)


class NGramModel:
    """The n-gram model in closed form: fit counts, then MLE, MAP, the Dirichlet posterior, and
    perplexity on held-out text (``estimate`` in ``"mle"``, ``"map"``, ``"mean"``: the posterior
    predictive). Counts are stored sparsely, so a vocabulary of tens of thousands of words is fine.

    A context never seen in training has no counts: the MLE is undefined there and gives the word
    probability 0 (so held-out perplexity is infinite, the reason for smoothing); MAP and the
    posterior predictive fall back to the prior's uniform 1/V.

    Example:
        >>> import numpy as np
        >>> lm = NGramModel(order=2, alpha=1.0).fit([np.array([0, 1, 2]), np.array([0, 1, 1])], vocab_size=3)
        >>> lm.perplexity([np.array([0, 1, 2])], estimate="mean") < 3   # better than uniform over 3 words
        True
    """

    def __init__(self, order: int = 2, alpha: float = 1.0):
        if not alpha > 0:
            raise ValueError(f"alpha (the Dirichlet concentration) must be positive, got {alpha!r}")
        self.order, self.alpha = order, float(alpha)

    def fit(self, sentences, vocab_size: int) -> "NGramModel":
        """Count the n-grams of ``sentences`` (lists/arrays of ids in [0, vocab_size))."""
        self.vocab_size = int(vocab_size)
        if (self.vocab_size + 1) ** (self.order - 1) >= 2**62:
            raise ValueError(f"order {self.order} with {self.vocab_size} words has too many possible contexts to index")
        contexts, self.words_ = ngram_contexts(sentences, self.order, self.vocab_size)
        self.context_keys_, self.rows_ = np.unique(self._keys(contexts), return_inverse=True)
        self.context_totals_ = np.bincount(self.rows_, minlength=len(self.context_keys_))
        self.pair_keys_, self.pair_counts_ = np.unique(self.rows_ * self.vocab_size + self.words_, return_counts=True)
        return self

    def _keys(self, contexts: np.ndarray) -> np.ndarray:
        base = self.vocab_size + 1  # ids and the padding
        return (contexts * base ** np.arange(contexts.shape[1], dtype=np.int64)).sum(1)

    def _check_fitted(self):
        if not hasattr(self, "pair_keys_"):
            raise NotApplicableError("this NGramModel is not fitted yet: call fit(sentences, vocab_size) first")

    def _counts(self, contexts: np.ndarray, words: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(n_c[w], n_c, seen)`` for each (context, word)."""
        keys = self._keys(contexts)
        rows = np.searchsorted(self.context_keys_, keys).clip(max=len(self.context_keys_) - 1)
        seen = self.context_keys_[rows] == keys
        pair = rows * self.vocab_size + words
        at = np.searchsorted(self.pair_keys_, pair).clip(max=len(self.pair_keys_) - 1)
        n_cw = np.where(seen & (self.pair_keys_[at] == pair), self.pair_counts_[at], 0)
        return n_cw, np.where(seen, self.context_totals_[rows], 0), seen

    def probability(self, contexts, words, estimate: str = "mean") -> np.ndarray:
        """p(word | context) for rows of ``contexts`` ((M, order-1) ids, padding = vocab_size) and ``words`` (M,)."""
        self._check_fitted()
        n_cw, n_c, seen = self._counts(np.asarray(contexts, dtype=np.int64).reshape(len(words), self.order - 1),
                                       np.asarray(words, dtype=np.int64))
        V, a = self.vocab_size, self.alpha
        if estimate == "mle":
            return np.where(seen, n_cw / np.maximum(n_c, 1), 0.0)
        if estimate == "map":
            if a < 1:
                raise NotApplicableError(f"the Dirichlet({a}) prior has no interior mode (alpha < 1): MAP is on the "
                                         f"boundary; use estimate='mean' or alpha >= 1")
            denominator = n_c + V * (a - 1)
            return np.where(denominator > 0, (n_cw + a - 1) / np.maximum(denominator, 1e-300), 1.0 / V)
        if estimate == "mean":
            return (n_cw + a) / (n_c + V * a)
        raise UnknownNameError(f"unknown estimate {estimate!r}; use 'mle', 'map' or 'mean'")

    def log_prob(self, sentences, estimate: str = "mean") -> tuple[float, int]:
        """``(sum of log p(w_i | context_i), number of tokens)`` over ``sentences``."""
        contexts, words = ngram_contexts(sentences, self.order, self.vocab_size)
        with np.errstate(divide="ignore"):
            return float(np.log(self.probability(contexts, words, estimate)).sum()), len(words)

    def perplexity(self, sentences, estimate: str = "mean") -> float:
        """``exp(-(1/N) sum_i log p(w_i | context_i))`` on (held-out) ``sentences``; V for a uniform model."""
        total, n = self.log_prob(sentences, estimate)
        return float(np.exp(-total / n))

    def posterior(self, context) -> dist.Dirichlet:
        """The exact posterior ``Dirichlet(alpha + n_c)`` of one context's transition probabilities."""
        self._check_fitted()
        context = np.asarray(context, dtype=np.int64).reshape(1, self.order - 1)
        n_c, _, _ = self._counts(np.repeat(context, self.vocab_size, 0), np.arange(self.vocab_size))
        return dist.Dirichlet(torch.as_tensor(n_c + self.alpha, dtype=torch.get_default_dtype()))

    def log_evidence(self) -> float:
        """``log p(words)`` with theta integrated out (Dirichlet-multinomial): the sum over contexts of
        ``log B(alpha + n_c) - log B(alpha 1_V)``, ``B`` the multivariate Beta function."""
        self._check_fitted()
        a, V = self.alpha, self.vocab_size
        rows = self.pair_keys_ // V
        per_context = np.bincount(rows, gammaln(self.pair_counts_ + a) - gammaln(a), minlength=len(self.context_keys_))
        return float((per_context + gammaln(V * a) - gammaln(self.context_totals_ + V * a)).sum())

    def pyro_data(self, batch_size: int | None = None) -> dict:
        """The training tokens as data for the Pyro program :func:`ngram`."""
        self._check_fitted()
        return {"history": self.rows_, "word": self.words_, "num_contexts": len(self.context_keys_),
                "vocab_size": self.vocab_size, "alpha": self.alpha, "batch_size": batch_size}

    def context_rows(self) -> np.ndarray:
        """The training contexts as ``(num_contexts, order - 1)`` ids, in the row order of ``theta``."""
        self._check_fitted()
        base = self.vocab_size + 1
        return (self.context_keys_[:, None] // base ** np.arange(self.order - 1)) % base


def planted_ids(n_sentences: int, seed: int = 0) -> tuple[list[np.ndarray], int]:
    corpus = planted_corpus(n_sentences, seed=seed)
    vocab = Vocabulary.build(corpus.sentences)
    return vocab.encode(corpus.sentences), len(vocab)


