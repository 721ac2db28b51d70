"""Exact and approximate queries on the ALARM network (37 nodes, the bnlearn repository's BIF file).

p(HYPOVOLEMIA | BP = LOW, CVP = HIGH) exactly by variable elimination, then by likelihood weighting
and by Gibbs sampling at growing numbers of samples: one plot of each estimate with its own
two-standard-error band around the exact answer, so it shows both how fast each converges and
whether its error estimate is honest. Also a BIF round trip and a batch of 1000 evidence sets in
one call.

    python examples/bayesnet_alarm.py [OUT_DIR]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import ppgen  # noqa: E402,F401  (binds BayesNet.query)
from ppgen.models.bayesnet import BayesNet, classic  # noqa: E402

QUERY, EVIDENCE = ["HYPOVOLEMIA"], {"BP": "LOW", "CVP": "HIGH"}
SAMPLES = (250, 500, 1000, 2000, 4000, 8000, 16000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default="runs/bayesnet_alarm")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)

    net = classic("alarm")
    net.to_bif(out / "alarm.bif")
    assert BayesNet.from_bif(out / "alarm.bif") == net  # the file round-trips exactly
    exact = float(net.query(QUERY, EVIDENCE)[0])
    print(f"p(HYPOVOLEMIA = TRUE | BP = LOW, CVP = HIGH) = {exact:.4f} (exact)")

    bp = torch.randint(0, 3, (1000,), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    batch = net.query(QUERY, {"BP": bp, "CVP": "HIGH"})
    print(f"1000 evidence sets in one call: {1e3 * (time.perf_counter() - start):.1f} ms, table {tuple(batch.shape)}")

    fig, ax = plt.subplots(figsize=(6, 4))
    for method, colour in (("likelihood-weighting", "tab:blue"), ("gibbs", "tab:orange")):
        estimates = [net.query(QUERY, EVIDENCE, method=method, num_samples=n, seed=1) for n in SAMPLES]
        p = [float(e.probs[0]) for e in estimates]
        se = [float(e.stderr[0]) for e in estimates]
        ax.errorbar(SAMPLES, p, yerr=[2 * s for s in se], fmt="o-", color=colour, capsize=3, label=method)
        print(f"{method:>21}: " + ", ".join(f"{n}: {q:.3f}±{s:.3f}" for n, q, s in zip(SAMPLES, p, se)))
    ax.axhline(exact, color="black", lw=1, label="exact (variable elimination)")
    ax.set(xscale="log", xlabel="samples (Gibbs: per chain, 4 chains)", ylabel="p(HYPOVOLEMIA = TRUE | evidence)",
           title="ALARM: estimates with two standard errors")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "estimates.png", dpi=120)
    print(f"wrote {out / 'estimates.png'}")


if __name__ == "__main__":
    main()
