"""Exact inference by enumeration: cost against hand-written and independent baselines, one run.

1. HMM log evidence, T = 100, 1k, 10k (3 states, 4 symbols): ``HMM.log_evidence`` (the forward
   algorithm on the HMM's tensors, its step matrices multiplied by a balanced tree of batched
   log-semiring products: linear work, ``log2 T`` sequential steps) vs the forward algorithm written by
   hand in torch (one ``logsumexp`` per step). Linear in T means a us/step column that does not grow
   (the tree's falls with T: its sequential depth is logarithmic).
2. Bayes net query, 20 / 40 / 60 nodes with 3 states (each node's parents among the 3 before it, so
   the treewidth stays small): ``BayesNet.query`` (variable elimination by opt_einsum over the
   enumerated program) vs pgmpy's ``VariableElimination.query``.

Every pair of answers is checked to agree before its time is reported. Times are medians of
``--repeats`` runs after one warm-up, with torch on one thread (the baselines are single-threaded).

    python bench/enumeration.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import logging
import statistics
import time

import numpy as np
import torch
from common import record

from ppgen.models.bayesnet import BayesNet
from ppgen.models.hmm import HMM


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: contraction paths, funsor's caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def forward_algorithm(hmm: HMM, y: torch.Tensor) -> torch.Tensor:
    """log p(y) by the textbook recursion alpha_t = logsumexp(alpha_{t-1} + log A) + log b(y_t)."""
    log_b = hmm.emission.log()[:, y]  # (K, T)
    log_a = hmm.transition.log()
    alpha = hmm.initial.log() + log_b[:, 0]
    for t in range(1, y.shape[0]):
        alpha = torch.logsumexp(alpha[:, None] + log_a, 0) + log_b[:, t]
    return torch.logsumexp(alpha, 0)


def bench_hmm(repeats: int) -> list[tuple]:
    rng = torch.Generator().manual_seed(0)
    simplex = lambda *s: torch.distributions.Dirichlet(torch.ones(*s, dtype=torch.float64)).sample()  # noqa: E731
    torch.manual_seed(0)
    hmm = HMM(simplex(3), simplex(3, 3), simplex(3, 4))
    rows = []
    for length in (100, 1_000, 10_000):
        y = torch.randint(0, 4, (length,), generator=rng)
        ours, theirs = hmm.log_evidence(y), forward_algorithm(hmm, y)
        assert abs(float(ours - theirs)) < 1e-8 * length, (float(ours), float(theirs))
        t_ours = median_seconds(lambda: hmm.log_evidence(y), repeats)
        t_base = median_seconds(lambda: forward_algorithm(hmm, y), repeats)
        rows.append((f"T={length:,}", t_ours, t_base, 1e6 * t_ours / length))
        if length == 100:
            record("enumeration", "HMM log evidence vs hand-written forward, T=100", t_ours / t_base, "<= 3")
    return rows


def banded_net(num_nodes: int, seed: int) -> BayesNet:
    rng = np.random.default_rng(seed)
    names = [f"x{i}" for i in range(num_nodes)]
    parents = {v: [names[j] for j in sorted(rng.choice(np.arange(max(0, i - 3), i), size=min(i, rng.integers(1, 3)),
                                                     replace=False))] for i, v in enumerate(names)}
    cpts = {v: rng.dirichlet(np.ones(3), size=[3] * len(ps)) for v, ps in parents.items()}
    return BayesNet(parents, cpts)


def to_pgmpy(bn: BayesNet):
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    model = DiscreteBayesianNetwork([(p, v) for v in bn.variables for p in bn.parents[v]])
    model.add_nodes_from(bn.variables)
    for v in bn.variables:
        ps = list(bn.parents[v])
        model.add_cpds(TabularCPD(v, bn.cards[v], bn.cpts[v].reshape(-1, bn.cards[v]).T.numpy(),
                                  evidence=ps or None, evidence_card=[3] * len(ps) or None))
    return model


def bench_bayesnet(repeats: int) -> list[tuple]:
    from pgmpy.inference import VariableElimination

    logging.getLogger("pgmpy").setLevel(logging.ERROR)
    rows = []
    for num_nodes in (20, 40, 60):
        bn = banded_net(num_nodes, seed=num_nodes)
        evidence = {f"x{num_nodes - 1}": 0, f"x{num_nodes // 3}": 2, f"x{num_nodes - 5}": 1}
        target = [f"x{num_nodes // 2}"]
        peer = VariableElimination(to_pgmpy(bn))
        ours = bn.query(target, evidence).numpy()
        theirs = peer.query(target, evidence=evidence, show_progress=False).values
        assert np.allclose(ours, theirs, atol=1e-9), (ours, theirs)
        t_ours = median_seconds(lambda: bn.query(target, evidence), repeats)
        t_base = median_seconds(lambda: peer.query(target, evidence=evidence, show_progress=False), repeats)
        rows.append((f"{num_nodes} nodes", t_ours, t_base, None))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)

    sections = [("HMM log evidence", "torch forward", bench_hmm(args.repeats)),
                ("Bayes net query", "pgmpy VE", bench_bayesnet(args.repeats))]
    header = ("task", "size", "ppgen s", "baseline", "baseline s", "ratio", "ppgen us/step")
    print("{:<18}{:<11}{:>10}  {:<15}{:>10}{:>8}{:>15}".format(*header))
    for task, baseline, rows in sections:
        for size, ours, theirs, per_step in rows:
            step = f"{per_step:>15.1f}" if per_step is not None else ""
            print(f"{task:<18}{size:<11}{ours:>10.4f}  {baseline:<15}{theirs:>10.4f}{ours / theirs:>8.2f}{step}")
    print("ratio = ppgen time / baseline time (below 1: ppgen is faster)")


if __name__ == "__main__":
    main()
