"""Words (notes: representation learning with words): the notes' exact examples, n-gram models
against their closed forms, and skip-gram embeddings that must recover planted word classes."""
import collections
import math

import numpy as np
import pyro
import pyro.poutine as poutine
import pytest
import torch

import ppgen
from ppgen.data.text import Vocabulary, cooccurrence, planted_corpus, read_text, skipgram_pairs, tokenize
from ppgen.errors import DataError, NotApplicableError
from ppgen.inference.word2vec import fit_skipgram
from ppgen.models.ngram import NGramModel, ngram, ngram_contexts
from ppgen.models.word2vec import SoftmaxCategorical, WordVectors, lookup, neighbour_accuracy, skipgram

# --- the notes' examples --------------------------------------------------------------------------

def test_cooccurrence_table_of_the_three_sentences_window_1():
    sentences = tokenize("I like deep learning. I like NLP. I enjoy flying.", lower=False)
    vocab = Vocabulary.build(sentences)
    table = cooccurrence(vocab.encode(sentences), len(vocab), window=1)
    expected = {("I", "like"): 2, ("I", "enjoy"): 1, ("like", "deep"): 1, ("like", "NLP"): 1, ("enjoy", "flying"): 1,
                ("deep", "learning"): 1, ("learning", "."): 1, ("NLP", "."): 1, ("flying", "."): 1}
    want = np.zeros_like(table)
    for (a, b), n in expected.items():
        want[vocab.index(a), vocab.index(b)] = want[vocab.index(b), vocab.index(a)] = n
    np.testing.assert_array_equal(table, want)  # every other entry is 0: windows stop at sentence ends


def test_skipgram_pairs_window_2_of_the_quick_brown_fox():
    sentences = tokenize("The quick brown fox jumps over the lazy dog")
    vocab = Vocabulary.build(sentences)
    pairs = [tuple(vocab.decode(p)) for p in skipgram_pairs(vocab.encode(sentences), window=2)]
    assert pairs[:9] == [("the", "quick"), ("the", "brown"), ("quick", "the"), ("quick", "brown"), ("quick", "fox"),
                         ("brown", "the"), ("brown", "quick"), ("brown", "fox"), ("brown", "jumps")]
    assert len(pairs) == 2 + 3 + 5 * 4 + 3 + 2  # 9 words: edge words have fewer neighbours
    assert pairs[-2:] == [("dog", "the"), ("dog", "lazy")]


def test_one_hot_row_times_the_table_picks_that_row():
    table = torch.randn(10, 4)
    ids = torch.tensor([3, 0, 9, 3])
    one_hot = torch.nn.functional.one_hot(ids, 10).to(table.dtype)
    torch.testing.assert_close(lookup(table, ids), one_hot @ table)


def test_fused_softmax_likelihood_is_the_categorical():
    logits, value = torch.randn(6, 9), torch.randint(9, (4, 6))
    expected = torch.distributions.Categorical(logits=logits).log_prob(value)
    torch.testing.assert_close(SoftmaxCategorical(logits).log_prob(value), expected)
    with pytest.raises(ValueError, match="support"):
        SoftmaxCategorical(logits, validate_args=True).log_prob(torch.full((6,), 9))


def test_skipgram_parameters_theta_have_size_2dV():
    corpus = planted_corpus(40, seed=0)
    vocab = Vocabulary.build(corpus.sentences)
    pairs = skipgram_pairs(vocab.encode(corpus.sentences), window=2)
    d, V = 5, len(vocab)
    trace = poutine.trace(skipgram).get_trace(centre=torch.as_tensor(pairs[:, 0]), outside=torch.as_tensor(pairs[:, 1]),
                                              vocab_size=V, dim=d)
    assert trace.nodes["centre_vectors"]["value"].shape == (V, d) == trace.nodes["context_vectors"]["value"].shape
    fit_skipgram(pairs, vocab, dim=d, steps=2)
    assert sum(p.numel() for p in pyro.get_param_store().values()) == 2 * d * V


# --- skip-gram recovers the planted classes -------------------------------------------------------

@pytest.fixture(scope="module")
def planted():
    corpus = planted_corpus(400, seed=0)
    vocab = Vocabulary.build(corpus.sentences)
    return corpus, vocab, skipgram_pairs(vocab.encode(corpus.sentences), window=2)


@pytest.mark.parametrize("negatives", [0, 5])
def test_skipgram_neighbours_share_the_planted_class(planted, negatives):
    corpus, vocab, pairs = planted
    vectors = fit_skipgram(pairs, vocab, dim=10, negatives=negatives, steps=400, batch_size=256, lr=0.05, seed=0)
    accuracy, chance = neighbour_accuracy(vectors, corpus.word_class)
    assert chance < 0.2  # 6 classes of 6 words: a random neighbour shares the class 5/35 of the time
    assert accuracy >= 0.9, (accuracy, vectors.nearest("cat"))
    assert vectors.losses[-1] < vectors.losses[0]


def test_nearest_and_analogy_on_vectors_with_known_geometry():
    words = ["man", "woman", "king", "queen", "apple"]
    vocab = Vocabulary(tuple(words), (1,) * 5)
    #                         male royal fruit
    vectors = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    wv = WordVectors(vectors, vocab)
    assert wv.analogy("man", "king", "woman")[0][0] == "queen"
    assert wv.similarity("king", "queen") == pytest.approx(0.0, abs=1e-6)  # orthogonal: (1, 1, 0) vs (-1, 1, 0)
    assert wv.nearest("king", k=1)[0][0] in ("man", "queen")
    assert wv.nearest("apple", k=4)[-1][1] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(DataError, match="'prince' is not in the vocabulary"):
        wv.nearest("prince")


# --- n-gram models --------------------------------------------------------------------------------

def _brute_force_counts(sentences, order, pad):
    counts = collections.Counter()
    for s in sentences:
        padded = [pad] * (order - 1) + list(s)
        for i in range(order - 1, len(padded)):
            counts[tuple(padded[i - order + 1:i]), padded[i]] += 1
    return counts


@pytest.mark.parametrize("order", [1, 2, 3])
def test_ngram_maximum_likelihood_is_the_count_ratio(order):
    corpus = planted_corpus(150, seed=3)
    vocab = Vocabulary.build(corpus.sentences)
    sentences = vocab.encode(corpus.sentences)
    V = len(vocab)
    lm = NGramModel(order=order).fit(sentences, V)
    counts = _brute_force_counts(sentences, order, pad=V)
    totals = collections.Counter()
    for (context, _), n in counts.items():
        totals[context] += n
    keys = list(counts)
    contexts = np.array([c for c, _ in keys]).reshape(len(keys), order - 1)
    words = np.array([w for _, w in keys])
    np.testing.assert_allclose(lm.probability(contexts, words, "mle"), [counts[k] / totals[k[0]] for k in keys])


def test_count_ratios_maximize_the_likelihood():
    sentences = [np.array([0, 1, 0, 2, 1, 1, 2, 0]), np.array([2, 2, 1, 0, 1])]
    lm = NGramModel(order=2).fit(sentences, 3)
    contexts, words = ngram_contexts(sentences, 2, 3)
    best = np.log(lm.probability(contexts, words, "mle")).sum()
    rows = np.searchsorted(lm.context_keys_, lm._keys(contexts))
    rng = np.random.default_rng(0)
    for _ in range(200):  # any other transition table has a lower likelihood
        table = rng.dirichlet(np.ones(3), size=len(lm.context_keys_))
        assert np.log(table[rows, words]).sum() < best


def test_ngram_probabilities_sum_to_one_in_every_context():
    corpus = planted_corpus(100, seed=1)
    vocab = Vocabulary.build(corpus.sentences)
    V = len(vocab)
    lm = NGramModel(order=2, alpha=1.5).fit(vocab.encode(corpus.sentences), V)
    for context in [*lm.context_rows()[:5], np.array([vocab.index("cat")])]:
        for estimate in ("mle", "map", "mean"):
            p = lm.probability(np.repeat(context[None], V, 0), np.arange(V), estimate)
            assert p.sum() == pytest.approx(1.0)
    unseen = np.array([vocab.index(".")])  # "." ends every sentence: it is never a context
    assert lm.probability(np.repeat(unseen[None], V, 0), np.arange(V), "mean") == pytest.approx(np.full(V, 1 / V))


def test_perplexity_held_out():
    vocab = Vocabulary.build(planted_corpus(1000, seed=0).sentences)
    train = vocab.encode(planted_corpus(300, seed=0).sentences)
    held_out = vocab.encode(planted_corpus(200, seed=1).sentences)
    V = len(vocab)
    lm = NGramModel(order=2, alpha=0.1).fit(train, V)
    assert lm.perplexity(held_out, "mle") == math.inf  # a bigram of the held-out text was never seen
    smoothed = lm.perplexity(held_out, "mean")
    assert lm.perplexity(train, "mle") <= lm.perplexity(train, "mean") < smoothed < V / 5  # far below uniform
    assert NGramModel(order=2, alpha=1e9).fit(train, V).perplexity(held_out) == pytest.approx(V, rel=1e-6)
    unigram = NGramModel(order=1, alpha=0.1).fit(train, V).perplexity(held_out)
    assert smoothed < unigram  # the previous word carries information
    with pytest.raises(NotApplicableError, match="alpha < 1"):
        lm.perplexity(held_out, "map")


def _tiny_bigram(alpha):
    sentences = [np.array([0, 1, 0, 2, 1, 1, 2, 0]), np.array([2, 2, 1, 0, 1])]
    return NGramModel(order=2, alpha=alpha).fit(sentences, 3)


def test_pyro_program_map_matches_the_closed_form():
    lm = _tiny_bigram(alpha=2.0)
    fit = ppgen.fit(ngram, lm.pyro_data(), method="map", steps=500, lr=0.1, num_samples=0, progress=False)
    theta = next(v for k, v in fit.params.items() if k.endswith("theta"))
    V = lm.vocab_size
    closed = np.stack([lm.probability(np.repeat(c[None], V, 0), np.arange(V), "map") for c in lm.context_rows()])
    np.testing.assert_allclose(theta.numpy(), closed, atol=1e-4)


def test_pyro_program_joint_is_the_conjugate_posterior_times_the_evidence():
    """log p(words, theta) - log p(theta | words) = log p(words) for every theta: the program and
    the closed-form posterior Dirichlet(alpha + counts) describe the same model."""
    lm = _tiny_bigram(alpha=0.7)
    data = {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in lm.pyro_data().items()}
    posteriors = [lm.posterior(c) for c in lm.context_rows()]
    for _ in range(5):
        theta = torch.stack([p.sample() for p in posteriors])
        joint = poutine.trace(poutine.condition(ngram, {"theta": theta})).get_trace(**data).log_prob_sum()
        posterior = sum(p.log_prob(t) for p, t in zip(posteriors, theta))
        assert float(joint - posterior) == pytest.approx(lm.log_evidence(), abs=1e-4)


# --- text and bad input ---------------------------------------------------------------------------

def test_any_utf8_file_and_the_vocabulary(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("Le café est naïve. Le café!\n\nUn thé", encoding="utf-8")
    sentences = read_text(path)
    assert sentences == [["le", "café", "est", "naïve", "."], ["le", "café", "!"], ["un", "thé"]]
    vocab = Vocabulary.build(sentences, min_count=2, unk="<unk>")
    assert vocab.words == ("le", "café", "<unk>") and vocab.counts == (2, 2, 6)
    assert vocab.decode(vocab.encode([["le", "thé"]])[0]) == ["le", "<unk>"]
    strict = Vocabulary.build(sentences, min_count=2)
    assert strict.encode([["le", "thé"]], drop_unknown=True)[0].tolist() == [0]
    with pytest.raises(DataError, match="'thé' is not in the vocabulary"):
        strict.encode([["le", "thé"]])
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_text(tmp_path / "latin1.txt")
    with pytest.raises(DataError, match="does not exist"):
        read_text(tmp_path / "missing.txt")


def test_bad_input_is_refused_before_fitting(planted):
    _, vocab, pairs = planted
    with pytest.raises(DataError, match=r"ids in \[0, 3\)"):
        NGramModel().fit([np.array([0, 1, 5])], 3)
    with pytest.raises(DataError, match=r"\(n, 2\) integer array"):
        fit_skipgram(pairs[:, 0], vocab)
    with pytest.raises(DataError, match="word ids in"):
        fit_skipgram(pairs + len(vocab), vocab)
    with pytest.raises(ValueError, match="window must be a positive integer"):
        skipgram_pairs(vocab.encode([["the", "cat"]]), window=0)
    data = _tiny_bigram(alpha=1.0).pyro_data()
    with pytest.raises(DataError, match="'history' and 'word' must be 1-D arrays of word ids of the same length"):
        ppgen.fit(ngram, {**data, "history": data["history"][:, None]}, method="map", steps=1, progress=False)
    bad = {"centre": pairs[:, 0], "outside": pairs[:, 1], "vocab_size": len(vocab) - 1}
    with pytest.raises(DataError, match="out of bounds"):  # a centre id past the table
        ppgen.fit("skipgram", bad, method="map", steps=1, progress=False)
