"""Autoencoders beside PCA on the 8x8 digits: reconstruction error against the bottleneck size k.

For each k the script fits

* PCA: the rank-k truncated SVD of the centred training digits, the best linear rank-k
  reconstruction there is (Eckart-Young);
* a linear autoencoder, h = W_1 x + b_1, r = W_2 h + b_2, trained by gradient descent on the squared
  error: it should land on PCA's error, not below;
* an MLP autoencoder (64 -> 128 -> k -> 128 -> 64, ReLU): a nonlinear code can beat PCA at small k.

Both autoencoders train through ppgen's one SVI loop, as Pyro programs with parameters and no
latent variables. Prints the training and held-out error per digit for each k and writes
``autoencoder_pca.png`` (error against k; reconstructions of test digits at k = 4) under ``--out``.

    python examples/autoencoder_pca.py                    # about two minutes on one CPU core
    python examples/autoencoder_pca.py --ks 2 8 32 --steps 5000
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ppgen.data.images import load_digits  # noqa: E402
from ppgen.models.autoencoder import PCA, Autoencoder  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--shown-k", type=int, default=4, help="bottleneck of the reconstructions in the figure")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("out/autoencoder_pca"))
    args = p.parse_args()

    digits = load_digits(binarize=False)
    x, x_test = torch.as_tensor(digits.x_train), torch.as_tensor(digits.x_test)
    rows, shown = [], {}
    print(f"squared reconstruction error per digit (sum over 64 pixels in [0, 1]); "
          f"{len(x)} train, {len(x_test)} test\n")
    print(f"| {'k':>3} | {'PCA train':>9} | {'linear AE train':>15} | {'MLP AE train':>12} | {'PCA test':>8} | "
          f"{'linear AE test':>14} | {'MLP AE test':>11} |")
    print("|-----|-----------|-----------------|--------------|----------|----------------|-------------|")
    for k in args.ks:
        pca = PCA(k).fit(x)
        torch.manual_seed(args.seed)
        linear = Autoencoder.linear(64, k).fit(x, steps=args.steps, lr=args.lr, seed=args.seed)
        deep = Autoencoder.mlp(64, k, hidden=(128,)).fit(x, steps=args.steps, lr=args.lr / 5, batch_size=256,
                                                         seed=args.seed)
        models = {"PCA": pca, "linear AE": linear, "MLP AE": deep}
        train_err = {name: m.reconstruction_error(x) for name, m in models.items()}
        test_err = {name: m.reconstruction_error(x_test) for name, m in models.items()}
        rows.append((k, train_err, test_err))
        print(f"| {k:>3} | {train_err['PCA']:9.3f} | {train_err['linear AE']:15.3f} | {train_err['MLP AE']:12.3f} | "
              f"{test_err['PCA']:8.3f} | {test_err['linear AE']:14.3f} | {test_err['MLP AE']:11.3f} |")
        if k == args.shown_k:
            shown = {name: m.reconstruct(x_test[:8]) for name, m in models.items()}

    args.out.mkdir(parents=True, exist_ok=True)
    fig = plt.figure(figsize=(11, 5))
    ax = fig.add_subplot(1, 2, 1)
    ks = [k for k, _, _ in rows]
    for name, style in (("PCA", "k-"), ("linear AE", "o--"), ("MLP AE", "s-")):
        ax.plot(ks, [test[name] for _, _, test in rows], style, label=f"{name} (test)")
    ax.plot(ks, [train["PCA"] for _, train, _ in rows], "k:", label="PCA (train): Eckart-Young")
    ax.set(xscale="log", xlabel="bottleneck k", ylabel="squared error per digit", title="reconstruction error vs k")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.legend()
    if shown:
        grid = torch.cat([x_test[:8], *shown.values()]).reshape(4, 8, 8, 8).permute(0, 2, 1, 3).reshape(32, 64)
        ax = fig.add_subplot(1, 2, 2)
        ax.imshow(grid.clamp(0, 1).numpy(), cmap="gray_r")
        ax.set_yticks([4, 12, 20, 28], ["test digits", *shown])
        ax.set_xticks([])
        ax.set_title(f"reconstructions, k = {args.shown_k}")
    fig.tight_layout()
    fig.savefig(args.out / "autoencoder_pca.png", dpi=120)
    print(f"\nwrote {args.out / 'autoencoder_pca.png'}")


if __name__ == "__main__":
    main()
