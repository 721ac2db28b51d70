"""One neural energy on 2-D toy data, four ways to train it, and what each learned.

The same ``EnergyNet`` (MLP with SiLU units) is trained by

* exact ML        ``ppgen.fit(ebm_2d, method="map")``: the registered program, log Z by quadrature
                  on the box [-4, 4]^2 (possible only because x is 2-D);
* Langevin ML     negatives by short-run Langevin from a replay buffer (``LangevinML``);
* score matching  denoising score matching (``DenoisingScoreMatching``), no sampling, no Z;
* NCE             noise-contrastive estimation against a wide Gaussian, no sampling; its learned
                  constant c estimates log Z.

Because x is 2-D, every model is scored exactly: the held-out log-likelihood with log Z by quadrature.
Samples come from MALA chains started uniformly on the box (the way an EBM is sampled), compared to
held-out data by MMD^2 (Gaussian kernel, bandwidth ``--bandwidth``). ``ebm_2d.png`` shows exp(-E) / Z
and the samples for each method.

    python examples/ebm_2d.py                   # about two minutes on one CPU core
    python examples/ebm_2d.py --data rings
"""
from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pyro  # noqa: E402
import torch  # noqa: E402

import ppgen  # noqa: E402
from ppgen.data import toy2d  # noqa: E402
from ppgen.inference.ebm_training import DenoisingScoreMatching, LangevinML, NoiseContrastiveEstimation, fit_energy  # noqa: E402
from ppgen.inference.samplers import mala  # noqa: E402
from ppgen.metrics import mmd2  # noqa: E402
from ppgen.models.ebm import EnergyNet, ebm_2d, grid, log_partition_grid  # noqa: E402

BOX = 4.0  # the registered model's box; quadrature and plots use it for every model


def train_exact(x, args) -> tuple[EnergyNet, float, float]:
    program = functools.partial(ebm_2d, hidden=args.hidden, box=BOX)  # the registered program, sized like the rest
    pyro.set_rng_seed(args.seed)  # the parameters are initialized when ppgen.fit first traces the program
    fit = ppgen.fit(program, {"x": x.numpy()}, method="map", steps=args.steps, lr=args.lr, seed=args.seed,
                    device="cpu", progress=False)
    net = EnergyNet(2, (args.hidden, args.hidden), confinement=None)
    net.load_state_dict({k.split("$$$")[1]: v for k, v in fit.params.items() if k.startswith("energy$$$")})
    return net, fit.seconds, BOX  # the model lives on the box


def train_objective(x, objective, args) -> tuple[EnergyNet, float, float]:
    torch.manual_seed(args.seed)
    net = EnergyNet(2, (args.hidden, args.hidden), confinement=BOX)
    start = time.perf_counter()
    fit_energy(net, x, objective, steps=args.steps, batch_size=args.batch_size, seed=args.seed, progress=False,
               optim=pyro.optim.ClippedAdam({"lr": args.lr, "lrd": 0.1 ** (1 / args.steps)}))  # lr decays 10x
    return net, time.perf_counter() - start, 2 * BOX  # on R^2; [-8, 8]^2 holds all but a negligible mass


def main(args) -> None:
    torch.set_num_threads(args.threads)
    x = torch.as_tensor(toy2d.sample(args.data, args.n, seed=args.seed))
    test = torch.as_tensor(toy2d.sample(args.data, 2000, seed=args.seed + 1))
    nce = NoiseContrastiveEstimation()
    methods = {
        "exact ML (quadrature)": lambda: train_exact(x, args),
        "Langevin ML + buffer": lambda: train_objective(x, LangevinML(steps=args.langevin_steps, step_size=0.005),
                                                        args),
        "denoising score matching": lambda: train_objective(x, DenoisingScoreMatching(sigma=0.1), args),
        "NCE": lambda: train_objective(x, nce, args),
    }
    points, _ = grid([-BOX, -BOX], [BOX, BOX], 200)
    start = -BOX + 2 * BOX * torch.rand(args.chains, 2)
    results = {}
    print(f"{args.data}: {args.n} training points, {args.steps} steps per method\n")
    print(f"{'method':26} {'train s':>8} {'test log-lik':>12} {'MMD^2':>8} {'MALA accept':>11}")
    for name, train in methods.items():
        net, seconds, support = train()
        with torch.no_grad():
            log_z = log_partition_grid(net.energy, [-support, -support], [support, support], round(50 * support))
            log_lik = (-net.energy(test) - log_z).mean().item()
        pyro.set_rng_seed(args.seed)
        samples, accept = mala(net.energy, start, steps=args.sample_steps, step_size=args.sample_step_size)
        mmd = mmd2(samples, test, bandwidth=args.bandwidth).item()
        results[name] = (net, samples, log_z)
        print(f"{name:26} {seconds:8.1f} {log_lik:12.3f} {mmd:8.4f} {accept.mean().item():11.2f}")
    print(f"\nNCE's learned c = {nce.log_z.item():.3f} vs log Z by quadrature = {results['NCE'][2].item():.3f}")
    print(f"test log-lik: nats per point, log Z by quadrature on each model's support ([-{BOX:g}, {BOX:g}]^2 for exact "
          f"ML, [-{2 * BOX:g}, {2 * BOX:g}]^2 for the others); samples: {args.chains} MALA chains x "
          f"{args.sample_steps} steps from uniform starts on the box")

    fig, axes = plt.subplots(2, len(methods) + 1, figsize=(3.2 * (len(methods) + 1), 6.4))
    axes[0, 0].scatter(*x[:2000].T, s=1, alpha=0.5)
    axes[0, 0].set_title(f"data ({args.data})")
    axes[1, 0].axis("off")
    for col, (name, (net, samples, log_z)) in enumerate(results.items(), start=1):
        with torch.no_grad():
            density = (-net.energy(points) - log_z).exp().reshape(200, 200)
        axes[0, col].imshow(density.T, origin="lower", extent=(-BOX, BOX, -BOX, BOX), cmap="viridis")
        axes[0, col].set_title(f"{name}\nexp(-E) / Z", fontsize=9)
        axes[1, col].scatter(*samples.T, s=1, alpha=0.5)
        axes[1, col].set_title("MALA samples", fontsize=9)
    for ax in axes.flat:
        ax.set_xlim(-BOX, BOX)
        ax.set_ylim(-BOX, BOX)
        ax.set_aspect("equal")
    fig.tight_layout()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "ebm_2d.png", dpi=100)
    print(f"wrote {out / 'ebm_2d.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="8gaussians", choices=toy2d.NAMES)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--langevin-steps", type=int, default=20)
    parser.add_argument("--chains", type=int, default=2000)
    parser.add_argument("--sample-steps", type=int, default=500)
    parser.add_argument("--sample-step-size", type=float, default=0.03)
    parser.add_argument("--bandwidth", type=float, default=0.5, help="MMD kernel bandwidth")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="out/ebm_2d")
    main(parser.parse_args())
