"""Generative vs discriminative (lecture 2): naive Bayes p(y) prod_j p(x_j | y) against Bayesian
logistic regression p(y | x) = softmax(W x + b), on binarized 8x8 digits, as the training set grows.

Naive Bayes makes the stronger assumption (pixels independent given the digit), so it needs fewer
examples; logistic regression assumes less and wins once there is enough data. One plot:
test accuracy against the number of training examples.

    python examples/naive_bayes_vs_logistic.py [OUT_DIR] [--method svi|map|nuts] [--steps 500]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from ppgen.data.images import load_digits  # noqa: E402
from ppgen.models.logistic_regression import LogisticRegression  # noqa: E402
from ppgen.models.naive_bayes import BernoulliNaiveBayes  # noqa: E402

SIZES = (20, 50, 100, 200, 500, 1000, 1437)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default="out", help="folder for the plot (default ./out)")
    parser.add_argument("--method", default="svi", help="how logistic regression is fit: svi, map or nuts")
    parser.add_argument("--steps", type=int, default=500, help="optimization steps for svi/map")
    parser.add_argument("--repeats", type=int, default=2, help="random training subsets per size")
    args = parser.parse_args()

    digits = load_digits(binarize=True)
    rng = np.random.default_rng(0)
    accuracy = {name: np.zeros((len(SIZES), args.repeats)) for name in ("naive Bayes", "logistic regression")}
    if args.method in ("svi", "map"):
        fit_options = {"steps": args.steps, "lr": 0.05}
    else:
        fit_options = {"num_samples": 200, "num_warmup": 200}
    for i, n in enumerate(tqdm(SIZES, desc="training sizes")):
        for r in range(args.repeats):
            subset = rng.permutation(len(digits.y_train))[:n]
            x, y = digits.x_train[subset], digits.y_train[subset]
            accuracy["naive Bayes"][i, r] = BernoulliNaiveBayes().fit(x, y).score(digits.x_test, digits.y_test)
            lr = LogisticRegression(prior_scale=1.0, method=args.method, **fit_options).fit(x, y)
            accuracy["logistic regression"][i, r] = lr.score(digits.x_test, digits.y_test)

    print(f"{'n train':>8}{'naive Bayes':>14}{'logistic':>10}")
    for i, n in enumerate(SIZES):
        print(f"{n:>8}{accuracy['naive Bayes'][i].mean():>14.3f}{accuracy['logistic regression'][i].mean():>10.3f}")

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, acc in accuracy.items():
        ax.errorbar(SIZES, acc.mean(1), yerr=acc.std(1), marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("training examples")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"binarized digits: generative vs discriminative ({args.method})")
    ax.legend()
    fig.tight_layout()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "naive_bayes_vs_logistic.png", dpi=120)
    print(f"wrote {out / 'naive_bayes_vs_logistic.png'}")


if __name__ == "__main__":
    main()
