"""Bayes net queries on the classic networks: ppgen's planned variable elimination vs pgmpy's, one run.

For each network, 50 random queries (one node given three observed, their states from one forward
draw so the evidence is possible) are answered by ``BayesNet.query`` and by pgmpy's
``VariableElimination.query``; every pair of answers is checked to agree to 1e-9 before any time is
reported. ppgen is timed twice: *cold* (plan cache emptied first, so each query plans its own
elimination, as pgmpy does) and *warm* (the same 50 again: each plan cached). Then one pattern asked
1000 times as one batch (evidence arrays of length 1000), against the same 1000 asked one by one.
Torch runs on one thread (pgmpy is single-threaded).

    python bench/bayesnet.py [--queries 50] [--batch 1000]
"""
from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch
from common import record

import ppgen  # noqa: F401  (binds BayesNet.query)
from ppgen.inference import elimination
from ppgen.models.bayesnet import BayesNet, classic

NETWORKS = ("asia", "child", "insurance", "alarm", "water", "hailfinder")


def forward_draws(bn: BayesNet, n: int, seed: int) -> dict[str, torch.Tensor]:
    generator, values = torch.Generator().manual_seed(seed), {}
    for v in bn.variables:
        rows = bn.cpts[v][tuple(values[p] for p in bn.parents[v])] if bn.parents[v] else bn.cpts[v].expand(n, -1)
        values[v] = torch.multinomial(rows, 1, generator=generator).squeeze(-1)
    return values


def random_queries(bn: BayesNet, n: int, seed: int) -> list[tuple[list[str], dict[str, int]]]:
    rng, draws = np.random.default_rng(seed), forward_draws(bn, n, seed)
    queries = []
    for i in range(n):
        order = rng.permutation(len(bn.variables))
        observed = [bn.variables[j] for j in order[:3]]
        queries.append(([bn.variables[order[3]]], {v: int(draws[v][i]) for v in observed}))
    return queries


def seconds_per_query(answer, queries) -> float:
    start = time.perf_counter()
    for targets, evidence in queries:
        answer(targets, evidence)
    return (time.perf_counter() - start) / len(queries)


def bench_network(name: str, num_queries: int, batch: int) -> dict:
    from pgmpy.inference import VariableElimination

    bn = classic(name)
    peer = VariableElimination(bn.to_pgmpy())
    queries = random_queries(bn, num_queries, seed=0)

    def theirs(targets, evidence):
        return peer.query(targets, evidence={v: bn.states[v][x] for v, x in evidence.items()},
                          show_progress=False).values

    for targets, evidence in queries:
        assert np.allclose(bn.query(targets, evidence).numpy(), theirs(targets, evidence), atol=1e-9)
    elimination._PLANS.clear()
    cold = seconds_per_query(bn.query, queries)
    warm = seconds_per_query(bn.query, queries)
    t_pgmpy = seconds_per_query(theirs, queries)

    targets, evidence = queries[0]
    draws = forward_draws(bn, batch, seed=1)
    arrays = {v: draws[v] for v in evidence}
    singles = [(targets, {v: int(arrays[v][i]) for v in evidence}) for i in range(batch)]
    together = bn.query(targets, arrays)
    assert torch.allclose(together[:5], torch.stack([bn.query(t, e) for t, e in singles[:5]]), atol=1e-12)
    start = time.perf_counter()
    bn.query(targets, arrays)
    batched = time.perf_counter() - start
    one_by_one = seconds_per_query(bn.query, singles)
    return {"network": name, "nodes": len(bn.variables), "cold_ms": 1e3 * cold, "warm_ms": 1e3 * warm,
            "pgmpy_ms": 1e3 * t_pgmpy, "batch_qps": batch / batched, "single_qps": 1 / one_by_one}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("pgmpy").setLevel(logging.ERROR)
    rows = [bench_network(name, args.queries, args.batch) for name in NETWORKS]
    print("| network | nodes | ppgen cold ms | ppgen warm ms | pgmpy VE ms | ratio cold | ratio warm "
          "| batched queries/s | one-by-one queries/s | batch speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['network']} | {r['nodes']} | {r['cold_ms']:.3f} | {r['warm_ms']:.3f} | {r['pgmpy_ms']:.3f} "
              f"| {r['cold_ms'] / r['pgmpy_ms']:.2f} | {r['warm_ms'] / r['pgmpy_ms']:.2f} | {r['batch_qps']:,.0f} "
              f"| {r['single_qps']:,.0f} | {r['batch_qps'] / r['single_qps']:.1f}x |")
        record("bayesnet", f"query vs pgmpy VE, {r['network']} (plans made anew)", r["cold_ms"] / r["pgmpy_ms"], "< 1")
    print(f"ratio = ppgen time per query / pgmpy's (target < 1); cold: every plan made anew; "
          f"batch: {args.batch} evidence draws of one pattern in one call")


if __name__ == "__main__":
    main()
