"""A diffusion model on 2-D toy data, and the same chain as a hierarchical VAE with a learned encoder.

1. DDPM: T = 1000 steps (linear schedule), eps-MLP, fit through ``ppgen.fit`` with the forward
   process as the guide and the closed-form one-t estimator as the objective::

       chain = Diffusion(2, linear_schedule(1000))
       ppgen.fit(chain.model, {"x": x, "batch_size": 512}, method="svi", guide=chain.guide,
                 elbo="diffusion", num_samples=0)

   Scored on held-out points: the ELBO in nats and bits per dimension (every t summed), and
   samples drawn by ancestral sampling compared with the held-out data by MMD^2 and energy
   distance, next to the same statistics for a second draw of the data (the floor) and for
   N(0, I) (no model).
2. Few levels: a DDPM and a hierarchical VAE (same model program, learned encoder) with T = 4,
   both fit by Trace_ELBO over the whole chain; the learned encoder tightens the bound.

Writes ``diffusion_2d.png`` (data, samples, and the chain x_T -> x_0 in snapshots) under ``--out``.

    python examples/diffusion_2d.py                        # about three minutes on one CPU core
    python examples/diffusion_2d.py --data rings --steps 20000
    python examples/diffusion_2d.py --objective simple      # Ho et al.'s eps-MSE instead of the ELBO
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pyro  # noqa: E402
import torch  # noqa: E402

import ppgen  # noqa: E402
from ppgen.data import toy2d  # noqa: E402
from ppgen.inference.diffusion_elbo import heldout_elbo, trace_elbo  # noqa: E402
from ppgen.metrics import energy_distance, mmd2  # noqa: E402
from ppgen.models.diffusion import Diffusion, HierarchicalVAE, make_schedule  # noqa: E402


def fit(chain, x, args, elbo: str, steps: int, batch_size: int) -> float:
    """Fit ``chain`` on ``x`` through ppgen.fit; returns the seconds it took."""
    result = ppgen.fit(chain.model, {"x": x, "batch_size": batch_size}, method="svi", guide=chain.guide, elbo=elbo,
                       steps=steps, num_samples=0, seed=args.seed, device="cpu",
                       optim=pyro.optim.ClippedAdam({"lr": args.lr, "lrd": 0.05 ** (1 / steps), "clip_norm": 1e6}),
                       progress=not args.quiet)
    return result.seconds


def two_sample(samples, x_test, x_again) -> str:
    noise = torch.randn_like(x_test)
    rows = [("model samples", samples), ("second data draw (floor)", x_again), ("N(0, I) (no model)", noise)]
    lines = [f"  {'vs held-out data':<26} {'MMD^2':>9} {'energy':>9}"]
    for name, s in rows:
        lines.append(f"  {name:<26} {mmd2(s, x_test).item():9.5f} {energy_distance(s, x_test).item():9.5f}")
    return "\n".join(lines)


def plot(x_test, snapshots, T, path: Path) -> None:
    steps = sorted(snapshots, reverse=True)
    fig, axes = plt.subplots(1, len(steps) + 1, figsize=(2.6 * (len(steps) + 1), 2.8), sharex=True, sharey=True)
    axes[0].scatter(*x_test.T, s=1, alpha=0.4, color="k")
    axes[0].set_title("held-out data")
    for ax, t in zip(axes[1:], steps):
        ax.scatter(*snapshots[t].T, s=1, alpha=0.4, color="C0" if t else "C3")
        ax.set_title(f"x_{t}" + (" (samples)" if t == 0 else " (noise)" if t == T else ""))
    for ax in axes:
        ax.set_xlim(-4, 4)
        ax.set_ylim(-4, 4)
        ax.set_aspect("equal")
    fig.suptitle(f"ancestral sampling through the chain, T = {T}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(args) -> None:
    torch.set_num_threads(args.threads)
    pyro.set_rng_seed(args.seed)
    x = torch.as_tensor(toy2d.sample(args.data, args.n, seed=args.seed))
    x_test = torch.as_tensor(toy2d.sample(args.data, 2000, seed=args.seed + 1))
    x_again = torch.as_tensor(toy2d.sample(args.data, 2000, seed=args.seed + 2))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    print(f"1. DDPM on {args.data}: T = {args.T} ({args.schedule}), eps-MLP 3x{args.hidden}, "
          f"objective {args.objective!r}, {args.steps} steps")
    chain = Diffusion(2, make_schedule(args.schedule, args.T), hidden=(args.hidden,) * 3)
    seconds = fit(chain, x, args, "diffusion" if args.objective == "elbo" else "diffusion-simple", args.steps, 512)
    print(f"  trained in {seconds:.0f} s ({seconds / args.steps * 1e3:.1f} ms per step)")
    print(f"  held-out {heldout_elbo(chain, x_test)}")
    snapshots = chain.trajectory(2000, keep=sorted({args.T, args.T // 2, args.T // 4, args.T // 10, args.T // 20,
                                                    args.T // 50, 0}))
    print(two_sample(snapshots[0], x_test, x_again))
    plot(x_test, snapshots, args.T, out / "diffusion_2d.png")
    print(f"  wrote {out / 'diffusion_2d.png'}")

    levels = args.levels
    print(f"\n2. few levels (T = {levels}, linear schedule), both fit by Trace_ELBO over the chain, "
          f"{args.level_steps} steps")
    schedule = make_schedule("linear", levels)
    for name, model in (("DDPM (fixed encoder)", Diffusion(2, schedule, hidden=(args.hidden,) * 3, name="ddpm_few")),
                        ("HVAE (learned encoder)", HierarchicalVAE(2, schedule, hidden=(args.hidden,) * 3,
                                                                   name="hvae_few"))):
        start = time.perf_counter()
        fit(model, x, args, "trace", args.level_steps, 256)
        pyro.set_rng_seed(args.seed)
        held = trace_elbo(model, x_test, num_particles=32)
        mmd = mmd2(model.sample(2000), x_test).item()
        print(f"  {name:<24} held-out {held}; MMD^2 {mmd:.5f} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="moons", choices=toy2d.NAMES)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--schedule", default="linear", choices=("linear", "cosine"))
    parser.add_argument("--objective", default="elbo", choices=("elbo", "simple"))
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--levels", type=int, default=4, help="T of the few-level DDPM/HVAE comparison")
    parser.add_argument("--level-steps", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--out", default="out/diffusion_2d")
    main(parser.parse_args())
