"""Time per epoch of ppgen's VAE against the same VAE hand-written in PyTorch, and their test ELBOs.

Both sides start from the same weights (one ``VAE`` deep-copied) and take the same steps: random
minibatches of ``--batch-size`` (``randperm(N)[:B]``), the single-sample ELBO estimate
``log p(x | z) + log p(z) - log q(z | x)`` scaled by ``N / B``, Adam with ``--lr``.

* ppgen: ``VAE.model`` / ``VAE.guide`` through ppgen's one loop (:func:`ppgen.inference.svi.train`)
  as ``ppgen.fit("vae", method="svi")`` runs it: the VAE's own objective
  (:class:`~ppgen.models.vae.AmortizedELBO`: ``Trace_ELBO``'s numbers, bit for bit, without its
  traces), its default optimizer: one ``torch.optim.Adam`` over all parameters, a
  :class:`~ppgen.inference.svi.SingleOptimizer`, passed in so that its state carries over from epoch
  to epoch), Pyro's argument validation as the user gets it (on, for the first step of each call);
* torch: the encoder and ``decoder.net`` called directly, the loss written out (BCE with logits, the
  two Gaussian log densities), one ``torch.optim.Adam``, ``zero_grad / backward / step``.

Two more ppgen columns split the gap: the same loop on Pyro's ``Trace_ELBO`` (what a VAE written
by a user, or one with a replaced program, trains by), and that with ``pyro.optim.Adam`` (ppgen's
optimizer before: one optimizer per tensor).

Rows: the 8x8 digits, and the same digits upsampled to 28x28 (MNIST-sized, 784 pixels) with a wider
network. Time per epoch is the median over ``--epochs`` epochs run in interleaved pairs (ppgen, torch).
Test ELBO and IWAE-1000 (nats per image, held-out digits, 1000 particles, the same evaluation code
for both) after the same epochs, mean +- sd over ``--seeds`` seeds: they should agree within noise.

    python bench/vae.py                  # about five minutes on one CPU core
    python bench/vae.py --epochs 40 --seeds 1 --threads 2
"""
from __future__ import annotations

import argparse
import copy
import math
import statistics
import time

import pyro
import torch
import torch.nn.functional as F
from common import record
from pyro.infer.util import is_validation_enabled

from ppgen.data.images import load_digits
from ppgen.inference.bounds import importance_sample
from ppgen.inference.svi import SingleOptimizer, train
from ppgen.models.vae import VAE

CONFIGS = {  # name: (side, hidden, latent)
    "digits 8x8": (8, (256,), 8),
    "digits 28x28": (28, (512,), 16),
}


def images(side: int):
    split = load_digits(binarize=False)
    x, x_test = (torch.as_tensor(a) for a in (split.x_train, split.x_test))
    if side != 8:
        x, x_test = (F.interpolate(a.reshape(-1, 1, 8, 8), size=(side, side), mode="bilinear").reshape(len(a), -1)
                     for a in (x, x_test))
    return (x > 0.5).float(), (x_test > 0.5).float()


class HandWritten:
    """The same networks trained by a plain PyTorch loop: no Pyro anywhere."""

    def __init__(self, net: VAE, x: torch.Tensor, batch_size: int, lr: float):
        self.net, self.x, self.batch_size = net, x, batch_size
        self.opt = torch.optim.Adam(net.parameters(), lr=lr)

    def step(self) -> float:
        n, b = len(self.x), self.batch_size
        xb = self.x[torch.randperm(n)[:b]]
        loc, scale = self.net.encoder(xb)
        eps = torch.randn_like(loc)
        z = loc + scale * eps
        log_px = -F.binary_cross_entropy_with_logits(self.net.decoder.net(z), xb, reduction="none").sum(-1)
        log_pz = -0.5 * (z**2).sum(-1)                                          # the 2 pi terms cancel
        log_qz = -0.5 * (eps**2).sum(-1) - scale.log().sum(-1)
        loss = -(n / b) * (log_px + log_pz - log_qz).sum()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return float(loss.detach())


def run(name: str, epochs: int, batch_size: int, lr: float, seed: int) -> dict:
    """Train the four variants side by side from the same weights; median seconds per epoch, and
    test ELBO / IWAE-1000 of ppgen (default loop) and torch."""
    side, hidden, latent = CONFIGS[name]
    x, x_test = images(side)
    steps = math.ceil(len(x) / batch_size)
    torch.manual_seed(seed)
    ours = VAE(side * side, latent, hidden, image_shape=(side, side))
    variants = {  # name: (network, optimizer, own objective)
        "ppgen": (ours, SingleOptimizer(torch.optim.Adam, {"lr": lr}), True),
        "ppgen_trace": (copy.deepcopy(ours), SingleOptimizer(torch.optim.Adam, {"lr": lr}), False),
        "ppgen_pyro_adam": (copy.deepcopy(ours), pyro.optim.Adam({"lr": lr}), False),
    }
    for i, (net, _, _) in enumerate(variants.values()):
        net.name = f"vae{i}"                                                    # separate names in the param store
    theirs = HandWritten(copy.deepcopy(ours), x, batch_size, lr)
    pyro.clear_param_store()
    data = {"x": x, "batch_size": batch_size}
    times, objectives = {k: [] for k in (*variants, "torch")}, {}
    pyro.set_rng_seed(seed)
    for _ in range(epochs):
        for key, (net, optim, own) in variants.items():
            elbo = objectives.setdefault(key, net.objective()) if own else "trace"
            start = time.perf_counter()
            train(net.model, net.guide, data, steps=steps, optim=optim, elbo=elbo, seed=None, progress=False)
            times[key].append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(steps):
            theirs.step()
        times["torch"].append(time.perf_counter() - start)
    result = {k: statistics.median(v) for k, v in times.items()}
    for label, net in (("ppgen", ours), ("torch", theirs.net)):
        s = importance_sample(net.model, net.guide, {"x": x_test}, num_particles=1000)
        result[f"{label}_elbo"], result[f"{label}_iwae"] = float(s.elbo.mean()), float(s.log_evidence.mean())
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.epochs} epochs, batch {args.batch_size}, Adam lr {args.lr}, {args.seeds} seeds, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}, pyro {pyro.__version__}, "
          f"Pyro validation {'on' if is_validation_enabled() else 'off'}\n")
    results = {name: [run(name, args.epochs, args.batch_size, args.lr, seed) for seed in range(args.seeds)]
               for name in args.configs}

    def cell(runs: list[dict], key: str, fmt: str = ".2f") -> str:
        values = [r[key] for r in runs]
        sd = f" +- {statistics.stdev(values):{fmt}}" if len(values) > 1 else ""
        return f"{statistics.mean(values):{fmt}}{sd}"

    def ratio(runs: list[dict], key: str) -> str:
        return f"{statistics.median(r[key] / r['torch'] for r in runs):.2f}"

    print("seconds per epoch (median over epochs; mean +- sd over seeds) and ratio to torch\n")
    print("| data | ppgen | torch | **ratio** | ppgen, Trace_ELBO | ratio | ppgen, Trace_ELBO, pyro.optim.Adam "
          "| ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        print(f"| {name} | {cell(runs, 'ppgen', '.3f')} | {cell(runs, 'torch', '.3f')} | **{ratio(runs, 'ppgen')}** | "
              f"{cell(runs, 'ppgen_trace', '.3f')} | {ratio(runs, 'ppgen_trace')} | "
              f"{cell(runs, 'ppgen_pyro_adam', '.3f')} | {ratio(runs, 'ppgen_pyro_adam')} |")
        record("vae", f"epoch vs hand-written PyTorch, {name}", float(ratio(runs, "ppgen")), "<= 1.25")
    print(f"\nheld-out digits after {args.epochs} epochs, nats per image (1000 particles; mean +- sd over seeds)\n")
    print("| data | ppgen test ELBO | torch test ELBO | ppgen IWAE-1000 | torch IWAE-1000 |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        print(f"| {name} | {cell(runs, 'ppgen_elbo')} | {cell(runs, 'torch_elbo')} | {cell(runs, 'ppgen_iwae')} | "
              f"{cell(runs, 'torch_iwae')} |")


if __name__ == "__main__":
    main()
