"""Words (notes: representation learning with words): n-gram language models and skip-gram word2vec.

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

**Skip-gram word2vec.** Every word w has a centre vector v_w and a context vector u_w (theta in
R^{2dV})::

    v_w, u_w ~ N(0, s^2 I_d)                          (w = 1..V; the prior is weight decay for MAP)
    o | c ~ Categorical(softmax(u^T v_c))             for each (centre c, outside o) pair of a window

trained by MAP or SVI on minibatches of pairs (:func:`fit_skipgram`). ``negatives=k`` swaps the
softmax for negative sampling, ``log s(u_o.v_c) + sum_k log s(-u_{n_k}.v_c)`` with n_k drawn from the
unigram distribution to the 3/4: the cheap objective (O(k d) per pair instead of O(V d)).
:class:`WordVectors` answers nearest-neighbour and analogy queries.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import constraints
from pyro.infer.autoguide import AutoDelta, AutoNormal, init_to_sample
from scipy.special import gammaln

from ppgen.data.text import Vocabulary, planted_corpus, skipgram_pairs
from ppgen.errors import DataError, NotApplicableError, UnknownNameError
from ppgen.inference.svi import train
from ppgen.models import register

__all__ = ["ngram", "NGramModel", "ngram_contexts", "skipgram", "SoftmaxCategorical", "lookup", "negative_sampling",
           "unigram_noise", "fit_skipgram", "WordVectors", "neighbour_accuracy"]


def _check_aligned(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Two per-token (or per-pair) id arrays: 1-D, the same length."""
    if a.ndim != 1 or b.shape != a.shape:
        raise DataError(f"{name_a!r} and {name_b!r} must be 1-D arrays of word ids of the same length, got shapes "
                        f"{tuple(a.shape)} and {tuple(b.shape)}")


# --- n-gram language model ----------------------------------------------------------------------

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


@register("ngram", data=lambda: NGramModel(order=2, alpha=1.0).fit(*_planted_ids(300)).pyro_data(),
          default_method="map", description="bigram language model, Dirichlet priors on transitions (planted corpus)")
def ngram(history, word, num_contexts, vocab_size, alpha=1.0, batch_size=None):
    """n-gram language model: ``theta_c ~ Dirichlet(alpha 1_V)``, ``word_i ~ Categorical(theta_{history_i})``.

    ``history``: (N,) row index of each token's context (its n - 1 previous words) in
    [0, num_contexts); ``word``: (N,) ids.
    Build both with :meth:`NGramModel.pyro_data`.
    """
    _check_aligned("history", history, "word", word)
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


def _planted_ids(n_sentences: int, seed: int = 0) -> tuple[list[np.ndarray], int]:
    corpus = planted_corpus(n_sentences, seed=seed)
    vocab = Vocabulary.build(corpus.sentences)
    return vocab.encode(corpus.sentences), len(vocab)


# --- skip-gram word2vec -------------------------------------------------------------------------

def lookup(table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Rows ``ids`` of ``table`` (..., V, d): the product ``one_hot(ids) @ table`` (word2vec's hidden
    layer) computed as the gather it is. Leading axes (e.g. posterior draws) are kept."""
    return table[..., ids, :]


def unigram_noise(words, vocab_size: int, power: float = 0.75) -> torch.Tensor:
    """word2vec's noise distribution for negative sampling: unigram frequencies to the ``power``."""
    counts = torch.bincount(torch.as_tensor(words), minlength=int(vocab_size)).to(torch.get_default_dtype())
    weights = counts.pow(power)
    return weights / weights.sum()


def negative_sampling(v_c: torch.Tensor, u: torch.Tensor, o: torch.Tensor, noise: torch.Tensor, k: int) -> torch.Tensor:
    """``log s(u_o . v_c) + sum_{j<=k} log s(-u_{n_j} . v_c)``, ``n_j ~ noise``, for each pair: (B,)."""
    negatives = torch.multinomial(noise, v_c.shape[-2] * k, replacement=True).view(-1, k)  # (B, k)
    positive = (v_c * lookup(u, o)).sum(-1)  # (B,)
    negative = (v_c.unsqueeze(-2) * lookup(u, negatives)).sum(-1)  # (B, k)
    return F.logsigmoid(positive) + F.logsigmoid(-negative).sum(-1)


class SoftmaxCategorical(dist.TorchDistribution):
    """``Categorical(softmax(logits))`` whose ``log_prob`` is one fused ``log_softmax`` and a gather.
    torch's ``Categorical`` normalizes the logits in separate passes at construction, which for the
    (batch, V) logits of the skip-gram softmax is a large share of a training step."""

    arg_constraints = {"logits": constraints.real_vector}

    def __init__(self, logits: torch.Tensor, validate_args=None):
        self.logits = logits
        super().__init__(logits.shape[:-1], validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return constraints.integer_interval(0, self.logits.shape[-1] - 1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value, log_pmf = torch.broadcast_tensors(value.long().unsqueeze(-1), F.log_softmax(self.logits, -1))
        return log_pmf.gather(-1, value[..., :1]).squeeze(-1)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return dist.Categorical(logits=self.logits).sample(sample_shape)


def _planted_pairs(n_sentences: int = 300, window: int = 2) -> dict:
    sentences, V = _planted_ids(n_sentences)
    pairs = skipgram_pairs(sentences, window, V)
    return {"centre": pairs[:, 0], "outside": pairs[:, 1], "vocab_size": V, "dim": 8, "batch_size": 256}


@register("skipgram", data=_planted_pairs, default_method="map",
          description="skip-gram word2vec: softmax over u^T v_c, centre/context tables (planted corpus)")
def skipgram(centre, outside, vocab_size, dim=16, prior_scale=1.0, negatives=0, noise=None, batch_size=None):
    """Skip-gram: ``v_w, u_w ~ N(0, s^2 I_d)``; ``outside_i ~ Categorical(softmax(u^T v_{centre_i}))``.

    ``centre``, ``outside``: (N,) word ids of the training pairs (centre word c, outside word o);
    ``batch_size`` pairs per step. ``negatives=k > 0`` replaces the softmax likelihood by the
    negative-sampling objective (a factor; ``noise``: (V,) probabilities, by default the unigram
    distribution of ``outside`` to the 3/4).
    """
    _check_aligned("centre", centre, "outside", outside)
    V, d = int(vocab_size), int(dim)
    zero = torch.zeros(d, device=centre.device)
    with pyro.plate("vocabulary", V):
        v = pyro.sample("centre_vectors", dist.Normal(zero, zero + prior_scale).to_event(1))  # (V, d)
        u = pyro.sample("context_vectors", dist.Normal(zero, zero + prior_scale).to_event(1))  # (V, d)
    with pyro.plate("pairs", centre.shape[0], subsample_size=batch_size) as i:
        v_c = lookup(v, centre[i])  # (B, d)
        if negatives:
            noise = unigram_noise(outside, V) if noise is None else noise
            pyro.factor("outside", negative_sampling(v_c, u, outside[i], noise.to(v_c), int(negatives)))
        else:
            pyro.sample("outside", SoftmaxCategorical(v_c @ u.transpose(-1, -2)), obs=outside[i])  # logits (B, V)


def fit_skipgram(pairs, vocab: Vocabulary, *, dim: int = 16, negatives: int = 0, method: str = "map",
                 steps: int = 2000, batch_size: int = 256, lr: float = 0.05, prior_scale: float = 1.0,
                 seed: int = 0, progress: bool = False, device: str | torch.device = "cpu") -> "WordVectors":
    """Fit :func:`skipgram` to ``(n, 2)`` (centre, outside) ``pairs`` by ``"map"`` (point estimate,
    started from a prior draw: at 0 the gradients vanish by symmetry) or ``"svi"`` (mean-field Normal
    guide; its means are returned). The learned tables stay in Pyro's param store."""
    pairs = torch.as_tensor(np.asarray(pairs), device=device)
    V = len(vocab)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.dtype not in (torch.int32, torch.int64):
        raise DataError(f"pairs must be an (n, 2) integer array of (centre, outside) ids, got shape "
                        f"{tuple(pairs.shape)} and dtype {pairs.dtype}")
    if len(pairs) == 0 or pairs.min() < 0 or pairs.max() >= V:
        raise DataError(f"pairs must be a non-empty array of word ids in [0, {V}) (the vocabulary's size)")
    guides = {"map": AutoDelta, "svi": AutoNormal}
    if method not in guides:
        raise UnknownNameError(f"unknown method {method!r} for fit_skipgram; use 'map' or 'svi'")
    data = {"centre": pairs[:, 0], "outside": pairs[:, 1], "vocab_size": V, "dim": dim, "prior_scale": prior_scale,
            "negatives": negatives, "batch_size": min(batch_size, len(pairs))}
    if negatives:
        data["noise"] = unigram_noise(pairs[:, 1], V).to(device)
    guide = guides[method](skipgram, init_loc_fn=init_to_sample)
    losses = train(skipgram, guide, data, steps=steps, lr=lr, seed=seed, progress=progress)
    with torch.no_grad():
        tables = guide.median(**data)
    return WordVectors(tables["centre_vectors"].detach(), vocab, context_vectors=tables["context_vectors"].detach(),
                       losses=losses)


@dataclass
class WordVectors:
    """Learned word vectors (rows of ``vectors``, (V, d): the centre vectors of a skip-gram fit) with
    cosine-similarity queries; ``context_vectors`` and the training ``losses`` when fitted."""

    vectors: torch.Tensor
    vocab: Vocabulary
    context_vectors: torch.Tensor | None = None
    losses: list | None = None

    def __post_init__(self):
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.vocab):
            raise DataError(f"vectors must be (V, d) with V = {len(self.vocab)} (the vocabulary's size), "
                            f"got {tuple(self.vectors.shape)}")
        self.unit = F.normalize(self.vectors, dim=-1)

    def _id(self, word: str) -> int:
        if word not in self.vocab:
            raise DataError(f"word {word!r} is not in the vocabulary ({len(self.vocab)} words)")
        return self.vocab.index(word)

    def similarity(self, a: str, b: str) -> float:
        return float(self.unit[self._id(a)] @ self.unit[self._id(b)])

    def _closest(self, query: torch.Tensor, exclude: list[int], k: int) -> list[tuple[str, float]]:
        scores = self.unit @ F.normalize(query, dim=-1)
        scores[exclude] = -float("inf")
        top = scores.topk(min(k, len(scores) - len(exclude)))
        return [(self.vocab.words[i], float(s)) for s, i in zip(top.values.tolist(), top.indices.tolist())]

    def nearest(self, word: str, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` words most cosine-similar to ``word`` (itself excluded), with their similarities."""
        i = self._id(word)
        return self._closest(self.vectors[i], [i], k)

    def analogy(self, a: str, b: str, c: str, k: int = 1) -> list[tuple[str, float]]:
        """"``a`` is to ``b`` as ``c`` is to ?": the words closest to ``v_b - v_a + v_c`` (a, b, c excluded)."""
        ia, ib, ic = self._id(a), self._id(b), self._id(c)
        return self._closest(self.unit[ib] - self.unit[ia] + self.unit[ic], [ia, ib, ic], k)


def neighbour_accuracy(vectors: WordVectors, word_class: dict[str, str]) -> tuple[float, float]:
    """How often a classed word's nearest classed word (itself excluded) is of its class, and the
    same rate for a neighbour drawn at random (chance)."""
    words = [w for w in vectors.vocab.words if w in word_class]
    if len(words) < 2:
        raise DataError("neighbour_accuracy needs at least two vocabulary words with a class")
    ids = torch.tensor([vectors.vocab.index(w) for w in words], device=vectors.vectors.device)
    unit = vectors.unit[ids]
    scores = unit @ unit.T
    scores.fill_diagonal_(-float("inf"))
    labels = np.array([word_class[w] for w in words])
    hits = labels[scores.argmax(1).cpu().numpy()] == labels
    same = (labels[:, None] == labels[None, :]).sum(1) - 1
    return float(hits.mean()), float((same / (len(words) - 1)).mean())
