"""Energy-based models: RBM Gibbs sampling and CD training against scikit-learn, Langevin steps/s.

One run, three tables, on the binarized digits (1437 x 64) and in the same process:

* Gibbs sweeps/s   ppgen ``samplers.gibbs`` (torch) vs ``BernoulliRBM.gibbs`` (numpy), same parameters,
                   same number of parallel chains;
* CD training      training digits per second of persistent CD (one sweep per update, SGD, same batch
                   size and hidden units): ppgen ``fit_energy(..., ContrastiveDivergence(persistent=True))``
                   (through ppgen's SVI loop) vs ``BernoulliRBM.fit``;
* Langevin         steps/s of ``samplers.langevin`` and ``samplers.mala`` on an ``EnergyNet`` vs a
                   hand-written PyTorch Langevin loop (the baseline: no checks).

Ratio = ppgen / baseline (> 1: ppgen faster). Every cell is the median of ``--repeats`` interleaved
rounds, with ``--threads`` threads for torch and for numpy's BLAS.

    python bench/ebm.py                       # about a minute on one CPU core
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import pyro
import torch
from sklearn.neural_network import BernoulliRBM
from threadpoolctl import threadpool_limits

from ppgen.data.images import load_digits
from ppgen.inference.ebm_training import ContrastiveDivergence, fit_energy
from ppgen.inference.samplers import gibbs, langevin, mala
from ppgen.models.ebm import EnergyNet
from ppgen.models.rbm import RBM


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_rates(fns: dict, work: float, repeats: int) -> dict:
    """``work`` units per second for each function, the median over interleaved rounds."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return {name: work / statistics.median(t) for name, t in times.items()}


def sklearn_rbm(x: np.ndarray, hidden: int, batch: int, epochs: int = 1) -> BernoulliRBM:
    return BernoulliRBM(n_components=hidden, learning_rate=0.05, batch_size=batch, n_iter=epochs, random_state=0)


def gibbs_table(x: np.ndarray, args) -> None:
    print(f"\nGibbs sweeps per second ({args.sweeps} sweeps per round)")
    print(f"{'hidden':>6} {'chains':>6} {'ppgen':>10} {'sklearn':>10} {'ratio':>6}")
    for hidden, chains in ((64, 100), (64, len(x)), (256, len(x))):
        est = sklearn_rbm(x, hidden, 10).fit(x[:100])
        rbm = RBM.from_sklearn(est)
        v_np, v_t = x[:chains].copy(), torch.as_tensor(x[:chains])

        def sk():
            v = v_np
            for _ in range(args.sweeps):
                v = est.gibbs(v)

        rates = median_rates({"ppgen": lambda: gibbs(rbm, v_t, args.sweeps), "sklearn": sk}, args.sweeps, args.repeats)
        print(f"{hidden:6d} {chains:6d} {rates['ppgen']:10.0f} {rates['sklearn']:10.0f} "
              f"{rates['ppgen'] / rates['sklearn']:6.2f}")


def cd_table(x: np.ndarray, args) -> None:
    print(f"\nPersistent-CD training, digits per second ({args.epochs} epochs of {len(x)} per round)")
    print(f"{'hidden':>6} {'batch':>6} {'ppgen':>10} {'sklearn':>10} {'ratio':>6}")
    xt = torch.as_tensor(x)
    for hidden, batch in ((64, 10), (64, 100), (256, 100)):
        steps = args.epochs * math.ceil(len(x) / batch)

        def ours():
            fit_energy(RBM(x.shape[1], hidden), xt, ContrastiveDivergence(persistent=True), steps=steps,
                       batch_size=batch, optim=pyro.optim.SGD({"lr": 0.05}), progress=False, seed=0)

        rates = median_rates({"ppgen": ours, "sklearn": lambda: sklearn_rbm(x, hidden, batch, args.epochs).fit(x)},
                             args.epochs * len(x), args.repeats)
        print(f"{hidden:6d} {batch:6d} {rates['ppgen']:10.0f} {rates['sklearn']:10.0f} "
              f"{rates['ppgen'] / rates['sklearn']:6.2f}")


def plain_langevin(energy, x, steps: int, step_size: float) -> torch.Tensor:
    """The baseline: Langevin dynamics written directly in PyTorch."""
    for _ in range(steps):
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(x).sum(), x)
        x = x - step_size * grad + math.sqrt(2 * step_size) * torch.randn_like(x)
    return x.detach()


def langevin_table(args) -> None:
    print(f"\nLangevin steps per second on an EnergyNet ({args.langevin_steps} steps per round)")
    print(f"{'dim':>4} {'hidden':>6} {'chains':>6} {'ppgen ULA':>10} {'ppgen MALA':>10} {'PyTorch':>10} "
          f"{'ULA ratio':>9}")
    torch.manual_seed(0)
    for dim, hidden, chains in ((2, 64, 1000), (64, 256, 256)):
        net = EnergyNet(dim, (hidden, hidden))
        start = torch.rand(chains, dim)
        n, eps = args.langevin_steps, 0.01
        rates = median_rates({
            "ula": lambda: langevin(net.energy, start, steps=n, step_size=eps),
            "mala": lambda: mala(net.energy, start, steps=n, step_size=eps),
            "torch": lambda: plain_langevin(net.energy, start, n, eps),
        }, n, args.repeats)
        print(f"{dim:4d} {hidden:6d} {chains:6d} {rates['ula']:10.0f} {rates['mala']:10.0f} {rates['torch']:10.0f} "
              f"{rates['ula'] / rates['torch']:9.2f}")


def main(args) -> None:
    torch.set_num_threads(args.threads)
    x = load_digits(binarize=True).x_train  # float32 for both libraries
    print(f"torch {torch.__version__}, {args.threads} thread(s); binarized digits {x.shape}; "
          f"median of {args.repeats} rounds; ratio = ppgen / baseline")
    with threadpool_limits(limits=args.threads):
        gibbs_table(x, args)
        cd_table(x, args)
        langevin_table(args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweeps", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--langevin-steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    main(parser.parse_args())
