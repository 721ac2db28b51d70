"""A VAE on binarized digits, and what its ELBO is made of (Lectures 5 and 7).

Trains a VAE (Bernoulli decoder, amortized Gaussian encoder, 2-D latent by default) on the 8x8
digits with ``ppgen.fit(..., method="svi")``, then on the held-out digits reports, in nats per image:

* the ELBO, split into reconstruction E_q[log p(x | z)] and KL(q(z | x) || p(z)), the KL per latent
  dimension (a dimension near 0 nats has collapsed onto the prior);
* log p(x) estimated by importance sampling with the encoder as proposal, K = 5000 (IWAE-5000);
* the amortization gap: per-image Gaussian VI started from the encoder's output, ELBO(refined) -
  ELBO(encoder), and the approximation gap log p(x) - ELBO(refined) that remains.

Writes under ``--out``: ``loss.png`` (training curve), ``reconstructions.png``, ``samples.png``,
``latent_map.png`` (test digits' encoder means coloured by class; with Z = 2 also the decoded grid),
``traversals.png`` and ``metrics.json``.

    python examples/vae_digits.py --out runs/vae_digits            # about a minute on one CPU core
    python examples/vae_digits.py --latent 8 --mnist ~/data/mnist  # MNIST from local IDX files
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import ppgen  # noqa: E402
from ppgen.data.images import load_digits  # noqa: E402
from ppgen.data.mnist import load_mnist  # noqa: E402
from ppgen.inference.bounds import importance_sample  # noqa: E402
from ppgen.inference.vi_diagnostics import amortization_gap, elbo_terms  # noqa: E402
from ppgen.models.vae import VAE  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("vae_digits"))
    p.add_argument("--latent", type=int, default=2)
    p.add_argument("--hidden", type=int, nargs="+", default=[256])
    p.add_argument("--conv", action="store_true", help="convolutional encoder features and decoder output")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--particles", type=int, default=5000, help="K of the IWAE / importance-sampling estimate")
    p.add_argument("--gap-points", type=int, default=100, help="test images refined for the amortization gap")
    p.add_argument("--gap-steps", type=int, default=1000)
    p.add_argument("--mnist", type=Path, help="a folder with MNIST's four IDX files, instead of the 8x8 digits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    data = load_mnist(args.mnist) if args.mnist else load_digits(binarize=True)
    device = torch.device(args.device)
    x, x_test = torch.as_tensor(data.x_train, device=device), torch.as_tensor(data.x_test, device=device)
    torch.manual_seed(args.seed)
    net = VAE(x.shape[1], args.latent, args.hidden, image_shape=data.shape, conv=args.conv).to(device)
    steps = args.epochs * -(-len(x) // args.batch_size)
    fit = ppgen.fit(net.model, {"x": x, "batch_size": args.batch_size}, method="svi", guide=net.guide,
                    steps=steps, lr=args.lr, num_samples=0, seed=args.seed, device=args.device)
    print(f"{len(x)} training images, {steps} steps ({args.epochs} epochs) in {fit.seconds:.0f} s")

    test = {"x": x_test}
    terms = elbo_terms(net.model, net.guide, test, num_particles=100)
    iw = importance_sample(net.model, net.guide, test, num_particles=args.particles)
    gap = amortization_gap(net.model, net.guide, {"x": x_test[: args.gap_points]}, steps=args.gap_steps,
                           num_particles=1000, progress=True)
    metrics = {
        "test_images": len(x_test),
        "elbo": float(iw.elbo.mean()),
        "reconstruction": float(terms.reconstruction.mean()),
        "kl": float(terms.kl.mean()),
        "kl_per_dim": terms.kl_per_dim["z"].tolist(),
        f"iwae_{args.particles}": float(iw.log_evidence.mean()),
        "iwae_minus_elbo": float((iw.log_evidence - iw.elbo).mean()),
        "ess_median": float(iw.ess.median()),
        "gap_images": int(gap.elbo_amortized.numel()),
        "amortization_gap": float(gap.amortization.mean()),
        "approximation_gap": float(gap.approximation.mean()),
        "train_seconds": fit.seconds,
    }
    print(f"\nheld-out digits, nats per image ({len(x_test)} images; gaps on the first {metrics['gap_images']})")
    print("| quantity | value |\n|---|---|")
    for key in ("elbo", "reconstruction", "kl", f"iwae_{args.particles}", "iwae_minus_elbo",
                "amortization_gap", "approximation_gap"):
        print(f"| {key} | {metrics[key]:.3f} |")
    print(f"| KL per latent dim | {', '.join(f'{v:.2f}' for v in metrics['kl_per_dim'])} |")
    print(f"| median ESS of {args.particles} | {metrics['ess_median']:.0f} |")
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot(args.out, net, fit.losses, len(x), x_test, torch.as_tensor(data.y_test), data.shape)
    print(f"\nwrote {', '.join(sorted(p.name for p in args.out.iterdir()))} to {args.out}")


def plot(out: Path, net: VAE, losses, n_train: int, x: torch.Tensor, y: torch.Tensor, shape) -> None:
    per_image = np.asarray(losses) / n_train
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(per_image, lw=0.5, alpha=0.4, label="minibatch estimate")
    window = max(1, len(per_image) // 100)
    ax.plot(np.convolve(per_image, np.ones(window) / window, mode="valid"), label=f"mean of {window}")
    ax.set(xlabel="step", ylabel="-ELBO per training image (nats)", ylim=(None, np.percentile(per_image, 99)))
    ax.legend()
    save(fig, out / "loss.png")

    grid(torch.cat([x[:12], net.reconstruct(x[:12])]), 2, shape, out / "reconstructions.png",
         "test digits (top) and decoder means at the encoder's mean (bottom)")
    grid(net.sample(48, generator=torch.Generator().manual_seed(0)), 4, shape, out / "samples.png",
         "decoder means of z ~ N(0, I)")
    values = torch.linspace(-2.5, 2.5, 9).to(x)
    grid(net.traverse(values).reshape(-1, x.shape[1]), net.z_dim, shape, out / "traversals.png",
         "latent traversals: row k moves z_k from -2.5 to 2.5")

    loc, _ = net.encode(x)
    two_d = net.z_dim == 2
    fig, axes = plt.subplots(1, 2 if two_d else 1, figsize=(11 if two_d else 5.5, 5), squeeze=False)
    ax = axes[0, 0]
    points = ax.scatter(loc[:, 0].cpu(), loc[:, 1].cpu(), c=y, cmap="tab10", s=8)
    fig.colorbar(points, ax=ax, label="digit")
    ax.set(xlabel="z_1 (encoder mean)", ylabel="z_2", title="test digits in latent space")
    if two_d:  # the decoder over the same square: the clusters, and the holes between them
        ticks = torch.linspace(-3, 3, 15)
        z = torch.stack(torch.meshgrid(ticks, ticks.flip(0), indexing="xy"), -1).reshape(-1, 2).to(x)
        tiles = net.decoder.mean(z).detach().cpu().reshape(15, 15, *shape)                 # (row, col, h, w)
        img = tiles.permute(0, 2, 1, 3).reshape(15 * shape[0], 15 * shape[1])
        axes[0, 1].imshow(img, cmap="gray_r", extent=(-3, 3, -3, 3))
        axes[0, 1].set(title="decoder means over z in [-3, 3]^2", xlabel="z_1", ylabel="z_2")
    save(fig, out / "latent_map.png")


def grid(images: torch.Tensor, rows: int, shape, path: Path, title: str) -> None:
    cols = -(-len(images) // rows)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.8, rows * 0.8 + 0.4), squeeze=False)
    for ax, image in zip(axes.flat, images.detach().cpu()):
        ax.imshow(image.reshape(shape), cmap="gray_r", vmin=0, vmax=1)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    save(fig, path)


def save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
