"""The cost of ``ppgen.compare`` over running the same methods by hand.

By hand: ``ppgen.fit`` once per method with the seeds ``compare`` gives them (``seed + i``), nothing
else. ``compare``: the same fits plus what it adds (validating once up front, the reference, the
peak-memory sampler, ESS / r_hat / errors per parameter, the table). Both arms run ``--repeats``
times, interleaved after one discarded warm-up round (imports, JAX's first compilation). Machine
load moves single runs by more than the effect measured, so each method's time is its fastest of
the repeats in each arm (by hand: its ``ppgen.fit`` call; compare: the row's ``wall_s``), and
compare's own work (its total minus its rows' ``wall_s``) is its fastest round's. The ratio is
against by hand. A last row times ``ppgen.report.write`` (plots and HTML), which ``compare`` does not do.

    python bench/compare.py [--model eight_schools] [--methods svi,map,nuts,numpyro-nuts]
        [--num-samples 1000] [--num-warmup 500] [--steps 2000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import ppgen
from ppgen import report


def by_hand(model: str, methods: list[str], seed: int, **kwargs) -> dict[str, float]:
    """Wall seconds of ``ppgen.fit`` per method."""
    seconds = {}
    for i, method in enumerate(methods):
        start = time.perf_counter()
        ppgen.fit(model, method=method, seed=seed + i, progress=False, **kwargs)
        seconds[method] = time.perf_counter() - start
    return seconds


def with_compare(model: str, methods: list[str], seed: int, **kwargs):
    """Wall seconds of the whole ``ppgen.compare`` call, and its table."""
    start = time.perf_counter()
    table = ppgen.compare(model, methods=methods, seed=seed, progress=False, **kwargs)
    return time.perf_counter() - start, table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="eight_schools")
    p.add_argument("--methods", default="svi,map,nuts,numpyro-nuts")
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--num-warmup", type=int, default=500)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    methods = args.methods.split(",")
    kwargs = dict(num_samples=args.num_samples, num_warmup=args.num_warmup, steps=args.steps)

    by_hand(args.model, methods, 0, **kwargs)  # warm-up round, discarded
    hand, comp = [], []
    for _ in range(args.repeats):
        hand.append(by_hand(args.model, methods, 0, **kwargs))
        comp.append(with_compare(args.model, methods, 0, **kwargs))
    fits_by_hand = {m: min(run[m] for run in hand) for m in methods}
    fits_in_compare = {m: min(float(table.loc[m, "wall_s"]) for _, table in comp) for m in methods}
    own = min(total - float(table["wall_s"].sum()) for total, table in comp)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report.write(comp[-1][1], tmp)
        report_s = time.perf_counter() - start

    base = sum(fits_by_hand.values())
    total = sum(fits_in_compare.values()) + own
    print(f"{args.model}, methods {', '.join(methods)}: {args.num_samples} draws after {args.num_warmup} warmup, "
          f"{args.steps} steps; per method the fastest of {args.repeats} interleaved rounds\n")
    print(f"| {'':<28} | {'by hand s':>9} | {'in compare s':>12} | {'ratio':>6} |")
    print(f"|{'-' * 30}|{'-' * 11}|{'-' * 14}|{'-' * 8}|")
    for m in methods:
        print(f"| {'fit: ' + m:<28} | {fits_by_hand[m]:>9.2f} | {fits_in_compare[m]:>12.2f} | "
              f"{fits_in_compare[m] / fits_by_hand[m]:>6.3f} |")
    print(f"| {'compare itself (ESS, errors)':<28} | {'':>9} | {own:>12.2f} | {'':>6} |")
    print(f"| {'total':<28} | {base:>9.2f} | {total:>12.2f} | {total / base:>6.3f} |")
    print(f"| {'report.write (plots + HTML)':<28} | {'':>9} | {report_s:>12.2f} | {'':>6} |")
    print(f"\noverhead of compare over by hand: {100 * (total / base - 1):+.1f}% (target <= 5%); compare's own "
          f"work is {100 * own / base:.1f}% of the fits")


if __name__ == "__main__":
    main()
