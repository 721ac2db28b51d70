"""Five normalizing flows on four 2-D toy densities: exact test NLL, density heat maps and samples.

For each data set (two moons, rings, 8 Gaussians, checkerboard) and each flow kind (NICE, RealNVP,
MAF, IAF, spline), fit :class:`ppgen.models.flows.Flow` by maximum likelihood through ppgen's one
training loop and report the held-out negative log-likelihood

    NLL = -mean_i log p(x_i),   log p(x) = log N(h(x); 0, I) + log |det dh/dx|   (nats per point),

beside a full-covariance Gaussian fitted to the same training points. One PNG per data set: the
data, each flow's density (with its test NLL) and each flow's samples.

    python examples/flows_2d.py                       # about three minutes on one CPU core
    python examples/flows_2d.py --steps 5000 --transforms 8 --out out/flows_long
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from ppgen.data import toy2d  # noqa: E402
from ppgen.models.flows import KINDS, Flow  # noqa: E402


def gaussian_nll(train: torch.Tensor, test: torch.Tensor) -> float:
    """The baseline: test NLL of the maximum-likelihood Gaussian."""
    cov = torch.cov(train.T) + 1e-6 * torch.eye(2)
    return -float(torch.distributions.MultivariateNormal(train.mean(0), cov).log_prob(test).mean())


def plot(name: str, data: torch.Tensor, flows: dict, nll: dict, out: Path, lim: float = 4.5, grid: int = 200) -> Path:
    g = torch.linspace(-lim, lim, grid)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    points = torch.stack([xx.flatten(), yy.flatten()], 1)
    fig, axes = plt.subplots(2, len(flows) + 1, figsize=(2.6 * (len(flows) + 1), 5.4))
    for ax in axes.flat:
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xticks=[], yticks=[], aspect="equal")
    axes[0, 0].scatter(*data[:2000].T, s=1, c="k")
    axes[0, 0].set_title(f"{name}: data")
    axes[1, 0].text(0, 0, f"Gaussian\ntest NLL\n{nll['gaussian']:.3f} nats", ha="center", va="center")
    for col, (kind, flow) in enumerate(flows.items(), start=1):
        with torch.no_grad():
            density = flow.log_prob(points).exp().reshape(grid, grid)
            samples = flow.sample(2000)
        axes[0, col].imshow(density, extent=(-lim, lim, -lim, lim), origin="lower", cmap="viridis")
        axes[0, col].set_title(f"{kind}: {nll[kind]:.3f} nats")
        axes[1, col].scatter(*samples.T, s=1, c="tab:blue")
        axes[1, col].set_title(f"{kind} samples")
    fig.tight_layout()
    path = out / f"flows_{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(toy2d.NAMES))
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--transforms", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--n-train", type=int, default=4096)
    parser.add_argument("--n-test", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=Path("out/flows_2d"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    datasets, kinds = args.datasets.split(","), args.kinds.split(",")

    table = {}
    bar = tqdm(total=len(datasets) * len(kinds), desc="flows")
    for name in datasets:
        train = torch.as_tensor(toy2d.sample(name, args.n_train, seed=args.seed))
        test = torch.as_tensor(toy2d.sample(name, args.n_test, seed=args.seed + 1))
        nll, flows = {"gaussian": gaussian_nll(train, test)}, {}
        for kind in kinds:
            torch.manual_seed(args.seed)
            flow = Flow(2, kind, transforms=args.transforms, hidden=(args.hidden, args.hidden))
            start = time.perf_counter()
            flow.fit(train, steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed)
            nll[kind], flows[kind] = -flow.score(test), flow
            table[name, kind] = (nll[kind], time.perf_counter() - start)
            bar.update()
        table[name, "gaussian"] = (nll["gaussian"], 0.0)
        plot(name, train, flows, nll, args.out)
    bar.close()

    columns = ["gaussian", *kinds]
    print(f"\ntest NLL (nats per point; lower is better), {args.steps} steps, {args.transforms} transforms, "
          f"{args.n_test} test points; fit seconds in brackets")
    print(f"| data | {' | '.join(columns)} |\n|---|{'---|' * len(columns)}")
    for name in datasets:
        cells = [f"{table[name, c][0]:.3f}" + (f" ({table[name, c][1]:.0f}s)" if c != "gaussian" else "")
                 for c in columns]
        print(f"| {name} | {' | '.join(cells)} |")
    print(f"\nplots: {', '.join(str(args.out / f'flows_{n}.png') for n in datasets)}")


if __name__ == "__main__":
    main()
