"""A binary RBM on binarized 8x8 digits, against scikit-learn's ``BernoulliRBM``, in one run.

Same data, sizes and algorithm as scikit-learn (persistent CD, one Gibbs sweep per update, plain SGD
with the same learning rate, batch size and number of epochs):

* ppgen PCD    ``fit_energy(rbm, x, ContrastiveDivergence(persistent=True), optim=SGD)``;
* ppgen CD-1   the same with chains restarted at the data;
* sklearn PCD  ``BernoulliRBM(...).fit(x)``;
* exact ML     ``ppgen.fit("rbm", method="map")``: the registered program, whose likelihood has the
               exact log Z (12 hidden units, 2^12 terms); it also checks AIS against the exact value.

Each model is scored on the test digits three ways: the exact pseudo-log-likelihood (all 64 bits),
scikit-learn's ``score_samples`` (a one-bit Monte Carlo estimate of the same), and the log-likelihood
with log Z from annealed importance sampling (+- its standard error). Writes ``filters.png`` and
``samples.png`` (Gibbs chains started at test digits) under ``--out``.

    python examples/rbm_digits.py             # about two minutes on one CPU core
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyro  # noqa: E402
import torch  # noqa: E402
from sklearn.neural_network import BernoulliRBM  # noqa: E402

import ppgen  # noqa: E402
from ppgen.data.images import load_digits  # noqa: E402
from ppgen.inference.ais import ais_rbm  # noqa: E402
from ppgen.inference.ebm_training import ContrastiveDivergence, fit_energy  # noqa: E402
from ppgen.inference.samplers import gibbs  # noqa: E402
from ppgen.models.rbm import RBM  # noqa: E402


def train_ppgen(x, args, persistent: bool) -> tuple[RBM, float]:
    torch.manual_seed(args.seed)
    rbm = RBM(x.shape[1], args.hidden)
    steps = args.epochs * math.ceil(len(x) / args.batch_size)
    start = time.perf_counter()
    fit_energy(rbm, x, ContrastiveDivergence(k=1, persistent=persistent), steps=steps, batch_size=args.batch_size,
               optim=pyro.optim.SGD({"lr": args.lr}), seed=args.seed, progress=False,
               name="rbm_pcd" if persistent else "rbm_cd")
    return rbm, time.perf_counter() - start


def train_sklearn(x, args) -> tuple[RBM, float]:
    est = BernoulliRBM(n_components=args.hidden, learning_rate=args.lr, batch_size=args.batch_size,
                       n_iter=args.epochs, random_state=args.seed)
    start = time.perf_counter()
    est.fit(x.numpy())
    return RBM.from_sklearn(est), time.perf_counter() - start


def as_sklearn(rbm: RBM, seed: int) -> BernoulliRBM:
    """A ``BernoulliRBM`` holding ``rbm``'s parameters, to score any model with scikit-learn's own metric."""
    est = BernoulliRBM(n_components=rbm.n_hidden, random_state=seed)
    est.components_ = rbm.W.detach().T.double().numpy()
    est.intercept_hidden_ = rbm.c.detach().double().numpy()
    est.intercept_visible_ = rbm.b.detach().double().numpy()
    est.n_features_in_ = rbm.n_visible
    return est


def train_exact(x, args) -> tuple[RBM, float]:
    pyro.set_rng_seed(args.seed)  # the parameters are initialized when ppgen.fit first traces the program
    fit = ppgen.fit("rbm", {"x": x.numpy()}, method="map", steps=args.exact_steps, lr=0.05, seed=args.seed,
                    device="cpu", progress=False)
    params = {k.split("$$$")[1]: v for k, v in fit.params.items() if k.startswith("rbm$$$")}
    return RBM.from_params(params["W"], params["b"], params["c"]), fit.seconds


def scores(rbm: RBM, x_train, x_test, args) -> dict:
    with torch.no_grad():
        pll = rbm.pseudo_log_likelihood(x_test).mean().item()
        ais = ais_rbm(rbm, num_chains=args.ais_chains, num_betas=args.ais_betas, data=x_train, seed=args.seed)
        row = {"pll": pll, "sk_pll": float(as_sklearn(rbm, args.seed).score_samples(x_test.numpy()).mean()),
               "ais_ll": -rbm.energy(x_test).mean().item() - ais.log_z, "ais_se": ais.stderr}
        if min(rbm.n_visible, rbm.n_hidden) <= 16:
            row["exact_ll"] = rbm.log_prob(x_test).mean().item()
    return row


def tile(images: np.ndarray, ncols: int) -> np.ndarray:
    """(k, 8, 8) -> one image, ``ncols`` per row, 1-pixel gaps."""
    k = len(images)
    rows = math.ceil(k / ncols)
    canvas = np.full((rows * 9 + 1, ncols * 9 + 1), np.nan)
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        canvas[1 + 9 * r:9 * (r + 1), 1 + 9 * c:9 * (c + 1)] = img
    return canvas


def plot(models: dict, x_test, args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 4.4))
    for ax, (name, rbm) in zip(axes, models.items()):
        filters = rbm.W.detach().T.reshape(-1, 8, 8).numpy()
        ax.imshow(tile(filters / np.abs(filters).max((1, 2), keepdims=True), 8), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(f"{name}: filters W[:, j]")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "filters.png", dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(models) + 1, figsize=(3.2 * (len(models) + 1), 3.6))
    start = x_test[:16]
    axes[0].imshow(tile(start.reshape(-1, 8, 8).numpy(), 4), cmap="gray_r")
    axes[0].set_title("test digits (chain starts)")
    for ax, (name, rbm) in zip(axes[1:], models.items()):
        pyro.set_rng_seed(args.seed)
        with torch.no_grad():
            x = gibbs(rbm, start, sweeps=args.sample_sweeps)
            probs = rbm.visible_probs(torch.bernoulli(rbm.hidden_probs(x)))  # mean of the last half-sweep
        ax.imshow(tile(probs.reshape(-1, 8, 8).numpy(), 4), cmap="gray_r")
        ax.set_title(f"{name}: {args.sample_sweeps} sweeps")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "samples.png", dpi=100)
    plt.close(fig)


def main(args) -> None:
    torch.set_num_threads(args.threads)
    digits = load_digits(binarize=True)
    x_train, x_test = torch.as_tensor(digits.x_train), torch.as_tensor(digits.x_test)
    print(f"binarized digits: {len(x_train)} train, {len(x_test)} test, 64 pixels; {args.hidden} hidden units, "
          f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr}")

    ours_pcd, t_pcd = train_ppgen(x_train, args, persistent=True)
    ours_cd, t_cd = train_ppgen(x_train, args, persistent=False)
    theirs, t_sk = train_sklearn(x_train, args)
    exact, t_exact = train_exact(x_train, args)
    rows = [("ppgen PCD", ours_pcd, t_pcd), ("ppgen CD-1", ours_cd, t_cd), ("sklearn PCD", theirs, t_sk),
            ("exact ML (map)", exact, t_exact)]

    print(f"\n{'model':16} {'hidden':>6} {'train s':>8} {'PLL':>8} {'PLL(sk)':>8} {'AIS log-lik':>16} "
          f"{'exact log-lik':>13}")
    for name, rbm, seconds in rows:
        s = scores(rbm, x_train, x_test, args)
        exact_ll = f"{s['exact_ll']:13.3f}" if "exact_ll" in s else f"{'-':>13}"
        print(f"{name:16} {rbm.n_hidden:6d} {seconds:8.1f} {s['pll']:8.3f} {s['sk_pll']:8.3f} "
              f"{s['ais_ll']:9.3f} +- {s['ais_se']:.3f} {exact_ll}")
    print("\nPLL: exact pseudo-log-likelihood (sum over the 64 bits), nats per test digit; PLL(sk): sklearn's "
          "score_samples (64 x one random bit); AIS log-lik: mean -F(x) - log Z_AIS "
          f"({args.ais_chains} chains x {args.ais_betas} temperatures)")
    plot({name: rbm for name, rbm, _ in rows[:3]}, x_test, args)
    print(f"wrote {Path(args.out) / 'filters.png'} and {Path(args.out) / 'samples.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--exact-steps", type=int, default=300, help="Adam steps of exact ML for the 12-unit RBM")
    parser.add_argument("--ais-chains", type=int, default=100)
    parser.add_argument("--ais-betas", type=int, default=20000)
    parser.add_argument("--sample-sweeps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="out/rbm_digits")
    main(parser.parse_args())
