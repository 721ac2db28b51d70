"""Skip-gram word2vec as a probabilistic program: learn word vectors, look at their neighbours.

    v_w, u_w ~ N(0, I_d)                      centre and context vectors of every word w
    o | c ~ Categorical(softmax(u^T v_c))     every (centre, outside) pair within the window

fit by MAP (``--method map``) or SVI with a mean-field guide (``--method svi``) on minibatches of
pairs, with the full softmax or negative sampling (``--negatives 5``). On the default corpus,
generated from a small grammar with six planted word classes (people, animals, foods, places,
colours, verbs), the vectors must recover the classes: the script prints how often a word's nearest
neighbour shares its class, against chance, and the nearest neighbours of a few words. Give any
UTF-8 text with ``--text FILE`` instead (words rarer than ``--min-count`` are dropped).

Writes ``word2vec.png`` (the vectors projected on their two principal components, coloured by
class) under ``--out``.

    python examples/word2vec.py                       # about a minute on one CPU core
    python examples/word2vec.py --negatives 5 --method svi
    python examples/word2vec.py --text book.txt --min-count 5 --dim 50 --steps 20000
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ppgen.data.text import Vocabulary, planted_corpus, read_text, skipgram_pairs  # noqa: E402
from ppgen.inference.word2vec import fit_skipgram  # noqa: E402
from ppgen.models.autoencoder import PCA  # noqa: E402
from ppgen.models.word2vec import neighbour_accuracy  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--text", type=Path, help="a UTF-8 text file (default: the planted corpus)")
    p.add_argument("--sentences", type=int, default=2000, help="planted corpus size")
    p.add_argument("--min-count", type=int, default=1)
    p.add_argument("--window", type=int, default=2)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--method", choices=("map", "svi"), default="map")
    p.add_argument("--negatives", type=int, default=0, help="0: full softmax; k > 0: negative sampling")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("out/word2vec"))
    args = p.parse_args()

    if args.text:
        sentences, word_class = read_text(args.text), {}
    else:
        corpus = planted_corpus(args.sentences, seed=args.seed)
        sentences, word_class = corpus.sentences, corpus.word_class
    vocab = Vocabulary.build(sentences, min_count=args.min_count)
    pairs = skipgram_pairs(vocab.encode(sentences, drop_unknown=True), args.window, len(vocab))
    print(f"{sum(map(len, sentences))} tokens, {len(vocab)} words, {len(pairs)} (centre, outside) pairs, "
          f"theta = 2 x {args.dim} x {len(vocab)} = {2 * args.dim * len(vocab)} numbers")

    vectors = fit_skipgram(pairs, vocab, dim=args.dim, negatives=args.negatives, method=args.method,
                           steps=args.steps, batch_size=args.batch, lr=args.lr, seed=args.seed, progress=True)
    objective = f"negative sampling (k={args.negatives})" if args.negatives else "softmax"
    print(f"{args.method} with the {objective}: loss {vectors.losses[0]:.1f} -> {vectors.losses[-1]:.1f}")
    if word_class:
        accuracy, chance = neighbour_accuracy(vectors, word_class)
        print(f"nearest neighbour of the same planted class: {accuracy:.0%} of words (chance {chance:.0%})")

    queries = [w for w in ("cat", "bread", "alice", "red", "garden", "eats") if w in vocab] or list(vocab.words[:6])
    for word in queries:
        print(f"  {word:>8}: " + ", ".join(f"{w} ({s:.2f})" for w, s in vectors.nearest(word, k=5)))

    args.out.mkdir(parents=True, exist_ok=True)
    shown = list(vocab.words[:300])
    xy = PCA(2).fit(vectors.vectors).encode(vectors.vectors[[vocab.index(w) for w in shown]])
    classes = sorted({word_class.get(w, "other") for w in shown})
    colour = {c: plt.cm.tab10(i % 10) for i, c in enumerate(classes)}
    fig, ax = plt.subplots(figsize=(8, 7))
    for (x, y), word in zip(xy.tolist(), shown):
        ax.scatter(x, y, color=colour[word_class.get(word, "other")], s=12)
        ax.annotate(word, (x, y), fontsize=7, alpha=0.8)
    for c in classes:
        ax.scatter([], [], color=colour[c], label=c)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"skip-gram centre vectors (d={args.dim}, {objective}, {args.method}), first two principal components")
    fig.tight_layout()
    fig.savefig(args.out / "word2vec.png", dpi=120)
    print(f"wrote {args.out / 'word2vec.png'}")


if __name__ == "__main__":
    main()
