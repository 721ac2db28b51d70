"""A GAN against likelihood models on 2-D toy data: samples for all, likelihoods for some.

The notes' contrast. A GAN's generator x = G(z) has no density; it is trained by the min-max game
min_G max_D E_data[log D(x)] + E_z[log(1 - D(G(z)))] and can only be judged by comparing its samples
with held-out data. The likelihood models on the same data also report a held-out log-likelihood:

* GAN, non-saturating and minimax generator objectives (MLP generator and discriminator);
* a normalizing flow (RealNVP, :mod:`ppgen.models.flows`): exact log p(x), maximum likelihood;
* a DDPM (:mod:`ppgen.models.diffusion`, linear schedule): an ELBO, a lower bound on log p(x);
* a Gaussian mixture (scikit-learn, EM): exact log p(x), maximum likelihood, no neural network.

Every model draws 2000 samples, compared with 2000 held-out points by MMD^2 and the energy distance
(:mod:`ppgen.metrics`); a second draw of the data gives the floor. Writes ``gan_vs_likelihood_2d.png``
(samples side by side) under ``--out``.

    python examples/gan_vs_likelihood_2d.py                   # about three minutes on one CPU core
    python examples/gan_vs_likelihood_2d.py --data 8gaussians --steps 6000
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402

from ppgen.data import toy2d  # noqa: E402
from ppgen.inference.diffusion_elbo import heldout_elbo  # noqa: E402
from ppgen.inference.svi import train  # noqa: E402
from ppgen.metrics import energy_distance, mmd2  # noqa: E402
from ppgen.models.diffusion import Diffusion, linear_schedule  # noqa: E402
from ppgen.models.flows import Flow  # noqa: E402
from ppgen.models.gan import GAN  # noqa: E402


def fit_gan(x, objective, args):
    gan = GAN(hidden=(args.hidden,) * 2, objective=objective).fit(x, steps=args.steps, batch_size=256, seed=args.seed)
    return gan.sample, None, "none: no density"


def fit_flow(x, args):
    flow = Flow(2, "realnvp", transforms=6, hidden=(args.hidden,) * 2)
    flow.fit(x, steps=args.steps, lr=1e-3, batch_size=512, seed=args.seed)
    return flow.sample, flow.score, "exact"


def fit_ddpm(x, args):
    chain = Diffusion(2, linear_schedule(args.T), hidden=(args.hidden,) * 3, name="example_ddpm")
    train(chain.model, chain.guide, {"x": x, "batch_size": 512}, steps=args.steps, lr=2e-3, elbo="diffusion",
          seed=args.seed, progress=False)
    return chain.sample, lambda x_test: heldout_elbo(chain, x_test).nats, "ELBO, a bound"


def fit_gmm(x, args):
    gmm = GaussianMixture(args.components, random_state=args.seed).fit(x.numpy())
    return (lambda n: torch.as_tensor(gmm.sample(n)[0], dtype=x.dtype),
            lambda x_test: float(gmm.score(x_test.numpy())), "exact")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="moons", choices=toy2d.NAMES)
    p.add_argument("--n", type=int, default=8000)
    p.add_argument("--steps", type=int, default=3000, help="training steps of every neural model")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--T", type=int, default=100, help="diffusion steps of the DDPM")
    p.add_argument("--components", type=int, default=10, help="Gaussian mixture components")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("out/gan_vs_likelihood_2d"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    x = torch.as_tensor(toy2d.sample(args.data, args.n, seed=args.seed))
    x_test = torch.as_tensor(toy2d.sample(args.data, 2000, seed=args.seed + 1))
    x_again = torch.as_tensor(toy2d.sample(args.data, 2000, seed=args.seed + 2))
    fitters = {
        "GAN (non-saturating)": lambda: fit_gan(x, "non-saturating", args),
        "GAN (minimax)": lambda: fit_gan(x, "minimax", args),
        "flow (RealNVP)": lambda: fit_flow(x, args),
        f"DDPM (T={args.T})": lambda: fit_ddpm(x, args),
        f"Gaussian mixture (K={args.components})": lambda: fit_gmm(x, args),
    }

    print(f"{args.data}: {args.n} training points; samples vs 2000 held-out points\n")
    print(f"| {'model':<26} | {'held-out log p(x), nats':>28} | {'MMD^2':>8} | {'energy dist.':>12} | {'fit s':>6} |")
    print(f"|{'-' * 28}|{'-' * 30}|{'-' * 10}|{'-' * 14}|{'-' * 8}|")
    print(f"| {'second draw of the data':<26} | {'':>28} | {float(mmd2(x_again, x_test)):8.5f} | "
          f"{float(energy_distance(x_again, x_test)):12.5f} | {'':>6} |")
    samples = {}
    for name, fitter in fitters.items():
        start = time.perf_counter()
        sample, score, kind = fitter()
        seconds = time.perf_counter() - start
        with torch.no_grad():
            samples[name] = sample(2000)
            loglik = f"{score(x_test):.3f} ({kind})" if score else kind
        print(f"| {name:<26} | {loglik:>28} | {float(mmd2(samples[name], x_test)):8.5f} | "
              f"{float(energy_distance(samples[name], x_test)):12.5f} | {seconds:6.0f} |")

    args.out.mkdir(parents=True, exist_ok=True)
    panels = {"held-out data": x_test, **samples}
    fig, axes = plt.subplots(1, len(panels), figsize=(2.8 * len(panels), 3.0), sharex=True, sharey=True)
    for ax, (name, points) in zip(axes, panels.items()):
        ax.scatter(*points.T, s=1, alpha=0.4, color="k" if name == "held-out data" else "C0")
        ax.set_title(name, fontsize=9)
        ax.set(xlim=(-4, 4), ylim=(-4, 4), aspect="equal")
    fig.tight_layout()
    fig.savefig(args.out / "gan_vs_likelihood_2d.png", dpi=110)
    print(f"\nwrote {args.out / 'gan_vs_likelihood_2d.png'}")


if __name__ == "__main__":
    main()
