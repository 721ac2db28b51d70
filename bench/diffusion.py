"""Time per training step of a diffusion model, against T and against hand-written PyTorch.

One run, one table. For T = 10, 100, 1000 and the same eps-network (TimeMLP, 2-D data):

* ppgen, fast ELBO      ``train(chain.model, chain.guide, ..., elbo="diffusion")``: one t per point,
                        closed-form KL; should not grow with T (target: T=1000 within 1.3x of T=10);
* ppgen, simple loss    ``elbo="diffusion-simple"`` (Ho et al.'s eps-MSE) through the same loop;
* PyTorch, simple loss  a hand-written DDPM step (randperm minibatch, q-sample, MSE, Adam): the
                        baseline; target ppgen / PyTorch <= 1.2;
* ppgen, full chain     ``elbo="trace"``: Pyro's Trace_ELBO over all T sites, O(T) per step.

Every cell is the median over ``--repeats`` rounds of ``--steps`` steps, the rounds interleaved over
T and objectives; the full chain runs last with ``--chain-steps`` steps per round. One process,
``--threads`` torch threads; pyro.clear_param_store() is never needed (each chain has its own name).

    python bench/diffusion.py                 # about two minutes on one CPU core
    python bench/diffusion.py --device cuda
"""
from __future__ import annotations

import argparse
import statistics

import pyro
import torch
from common import elapsed

import ppgen.inference.diffusion_elbo  # noqa: F401  (registers elbo="diffusion" and "diffusion-simple")
from ppgen.data import toy2d
from ppgen.inference.svi import train
from ppgen.models.diffusion import Diffusion, TimeMLP, linear_schedule

TS = (10, 100, 1000)
FULL = "ppgen full-chain Trace_ELBO"


def ppgen_steps(chain: Diffusion, x: torch.Tensor, batch: int, elbo: str, steps: int, lr: float) -> None:
    train(chain.model, chain.guide, {"x": x, "batch_size": batch}, steps=steps, lr=lr, elbo=elbo,
          seed=None, progress=False)


class PyTorchDDPM:
    """The baseline: the DDPM simple loss written by hand around the same network."""

    def __init__(self, net: torch.nn.Module, chain: Diffusion, lr: float):
        self.net, self.T = net, chain.T
        self.sqrt_ab, self.sqrt_1m_ab = chain.sqrt_alpha_bars, chain.sqrt_one_minus_alpha_bars
        self.opt = torch.optim.Adam(net.parameters(), lr=lr)

    def steps(self, x: torch.Tensor, batch: int, steps: int) -> list[float]:
        losses = []
        for _ in range(steps):
            x0 = x[torch.randperm(x.shape[0], device=x.device)[:batch]]
            t = torch.randint(1, self.T + 1, (batch,), device=x.device)
            eps = torch.randn_like(x0)
            x_t = self.sqrt_ab[t, None] * x0 + self.sqrt_1m_ab[t, None] * eps
            loss = (self.net(x_t, t) - eps).square().sum()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            losses.append(loss.item())
        return losses


def timed(fn, steps: int, device: torch.device) -> float:
    """Milliseconds per step of ``fn()`` (which runs ``steps`` steps)."""
    return elapsed(fn, device) / steps * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--n", type=int, default=8192, help="training points (minibatched)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--steps", type=int, default=100, help="steps per timing round (fast objectives)")
    p.add_argument("--chain-steps", type=int, nargs=3, default=(20, 4, 1), metavar=("T10", "T100", "T1000"),
                   help="steps per round of the full-chain Trace_ELBO at each T")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    pyro.set_rng_seed(0)
    x = torch.as_tensor(toy2d.sample("moons", args.n, seed=0), device=device)
    hidden = (args.hidden,) * args.layers
    lr = 1e-3

    chains, baselines = {}, {}
    for T in TS:
        chains[T] = Diffusion(2, linear_schedule(T), hidden=hidden, name=f"bench_T{T}").to(device)
        baselines[T] = PyTorchDDPM(TimeMLP(2, 2, T, hidden).to(device), chains[T], lr)
    fast = {
        "ppgen fast ELBO": lambda T: ppgen_steps(chains[T], x, args.batch, "diffusion", args.steps, lr),
        "ppgen simple loss": lambda T: ppgen_steps(chains[T], x, args.batch, "diffusion-simple", args.steps, lr),
        "PyTorch simple loss": lambda T: baselines[T].steps(x, args.batch, args.steps),
    }
    chain_steps = dict(zip(TS, args.chain_steps))
    times = {(name, T): [] for name in [*fast, FULL] for T in TS}
    for T in TS:  # warm up
        for fn in fast.values():
            fn(T)
    for _ in range(args.repeats):  # interleaved over T and objectives: a busy moment hits every cell alike
        for T in TS:
            for name, fn in fast.items():
                times[name, T].append(timed(lambda: fn(T), args.steps, device))
    for T in TS:  # the full chain last, so its large graphs do not disturb the fast rows
        ppgen_steps(chains[T], x, args.batch, "trace", 1, lr)
        for _ in range(args.repeats):
            times[FULL, T].append(timed(lambda: ppgen_steps(chains[T], x, args.batch, "trace", chain_steps[T], lr),
                                        chain_steps[T], device))
    rows = {name: {T: statistics.median(times[name, T]) for T in TS} for name in [*fast, FULL]}

    print(f"\nms per training step: 2-D data, batch {args.batch} of {args.n}, eps-MLP {args.layers}x{args.hidden} "
          f"SiLU, Adam, device {device}, {args.threads} thread(s), median of {args.repeats} rounds\n")
    print(f"| {'objective':<28} | " + " | ".join(f"T={T:>4}" for T in TS) + " | T=1000 / T=10 |")
    print(f"|{'-' * 30}|" + "|".join("-" * 8 for _ in TS) + "|---------------|")
    for name, by_T in rows.items():
        print(f"| {name:<28} | " + " | ".join(f"{by_T[T]:6.2f}" for T in TS) +
              f" | {by_T[TS[-1]] / by_T[TS[0]]:13.2f} |")
    base = rows["PyTorch simple loss"]
    print("\nratio to the hand-written PyTorch step (same network, same T):\n")
    print(f"| {'objective':<28} | " + " | ".join(f"T={T:>4}" for T in TS) + " |")
    print(f"|{'-' * 30}|" + "|".join("-" * 8 for _ in TS) + "|")
    for name in ("ppgen simple loss", "ppgen fast ELBO", FULL):
        print(f"| {name:<28} | " + " | ".join(f"{rows[name][T] / base[T]:6.2f}" for T in TS) + " |")


if __name__ == "__main__":
    main()
