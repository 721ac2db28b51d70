"""FVSBN, NADE and MADE on binarized 8x8 digits: exact test NLL, parameter counts, samples; the VAE beside them.

The chain rule p(x) = prod_i p(x_i | x_<i) is exact, so each model's test negative log-likelihood
(nats per image, 64 binary pixels) is computed exactly, on the same fixed split as every ppgen digits
example. The lecture's counting argument is printed beside it: a table needs 2^64 - 1 numbers, full
independence 64, FVSBN n(n+1)/2, NADE 2nd + n + d. The VAE has no exact likelihood: its line is the
importance-weighted estimate IWAE_K = log (1/K) sum_k p(x, z_k) / q(z_k | x) (a lower bound on
log p(x) in expectation, tight as K grows).

    python examples/autoregressive_digits.py                  # about three minutes on one CPU core
    python examples/autoregressive_digits.py --steps 20000 --made-masks 8 --out out/ar_long
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ppgen.data.images import load_digits  # noqa: E402
from ppgen.models.autoregressive import FVSBN, MADE, NADE, PARAMETER_FORMULAS, Independent  # noqa: E402


def vae_iwae(x_train: torch.Tensor, x_test: torch.Tensor, steps: int, particles: int, seed: int) -> tuple[float, float]:
    """Train the VAE of ``ppgen.models.vae`` on the same split; IWAE_K estimate of the test NLL."""
    from ppgen.inference.bounds import importance_sample
    from ppgen.inference.svi import train
    from ppgen.models.vae import VAE

    torch.manual_seed(seed)
    vae = VAE(x_dim=64, z_dim=8, hidden=(256,), name="vae_beside_ar")
    start = time.perf_counter()
    train(vae.model, vae.guide, {"x": x_train, "batch_size": 128}, steps=steps, lr=1e-3, seed=seed, progress=False)
    with torch.no_grad():
        log_px = importance_sample(vae.model, vae.guide, {"x": x_test}, num_particles=particles).log_evidence
    return -float(log_px.mean()), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--nade-hidden", type=int, default=64)
    parser.add_argument("--made-hidden", type=int, default=256)
    parser.add_argument("--made-masks", type=int, default=1, help="order-agnostic MADE: number of orderings")
    parser.add_argument("--vae-particles", type=int, default=1000, help="K of the VAE's IWAE estimate (0: no VAE)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=Path("out/autoregressive_digits"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    split = load_digits(binarize=True, seed=args.seed)
    x_train, x_test = torch.as_tensor(split.x_train), torch.as_tensor(split.x_test)
    n = x_train.shape[1]

    builders = {
        "Independent": (lambda: Independent(n), {}),
        "FVSBN": (lambda: FVSBN(n), {}),
        "NADE": (lambda: NADE(n, args.nade_hidden), {"hidden": args.nade_hidden}),
        "MADE": (lambda: MADE(n, (args.made_hidden,), num_masks=args.made_masks, seed=args.seed),
                 {"hidden": (args.made_hidden,)}),
    }
    rows, samples = [], {}
    for name, (build, sizes) in builders.items():
        torch.manual_seed(args.seed)
        net = build()
        start = time.perf_counter()
        net.fit(x_train, steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed, progress=True)
        seconds = time.perf_counter() - start
        formula, count = PARAMETER_FORMULAS[name]
        assert net.num_parameters() == count(n, **sizes)
        rows.append((name, -net.score(x_train), -net.score(x_test), f"{formula} = {net.num_parameters()}", seconds))
        samples[name] = net.sample(16)
    if args.vae_particles:
        nll, seconds = vae_iwae(x_train, x_test, args.steps, args.vae_particles, args.seed)
        rows.append((f"VAE (z=8), IWAE_{args.vae_particles}", float("nan"), nll, "-", seconds))

    print(f"\nbinarized digits, {len(x_train)} train / {len(x_test)} test images of {n} pixels, {args.steps} steps;"
          f" a full table would need 2^{n} - 1 = {PARAMETER_FORMULAS['full joint'][1](n):.3g} parameters")
    print("| model | train NLL | test NLL (nats) | parameters | fit seconds |\n|---|---|---|---|---|")
    for name, train_nll, test_nll, params, seconds in rows:
        train_cell = "-" if train_nll != train_nll else f"{train_nll:.2f}"
        print(f"| {name} | {train_cell} | {test_nll:.2f} | {params} | {seconds:.0f} |")

    fig, axes = plt.subplots(len(samples), 16, figsize=(12, 0.85 * len(samples)))
    for row, (name, images) in enumerate(samples.items()):
        for col in range(16):
            axes[row, col].imshow(images[col].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            axes[row, col].axis("off")
        axes[row, 0].set_title(name, fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(args.out / "samples.png", dpi=110)
    print(f"\nsamples: {args.out / 'samples.png'}")


if __name__ == "__main__":
    main()
