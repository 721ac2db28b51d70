"""Words (notes: representation learning with words): skip-gram word2vec.

Every word w has a centre vector v_w and a context vector u_w (theta in
R^{2dV})::

    v_w, u_w ~ N(0, s^2 I_d)                          (w = 1..V; the prior is weight decay for MAP)
    o | c ~ Categorical(softmax(u^T v_c))             for each (centre c, outside o) pair of a window

trained by MAP or SVI on minibatches of pairs (:func:`ppgen.inference.word2vec.fit_skipgram`). ``negatives=k`` swaps the
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

from ppgen.data.text import Vocabulary, skipgram_pairs
from ppgen.errors import DataError
from ppgen.models import register
from ppgen.models.ngram import check_aligned, planted_ids

__all__ = ["skipgram", "SoftmaxCategorical", "lookup", "negative_sampling", "unigram_noise", "WordVectors",
           "neighbour_accuracy"]



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
    sentences, V = planted_ids(n_sentences)
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
    check_aligned("centre", centre, "outside", outside)
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
