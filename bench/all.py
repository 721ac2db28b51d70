"""Every benchmark at a quick size, one after another, and one table of their headline ratios, each
beside its target.

Each benchmark runs as its own process (its own threads and compilation caches) with the arguments
below and prints its full table as it goes; it hands its headline ratios over with
:func:`bench.common.record`. The summary table is printed last, in Markdown, and written to
``bench/RESULTS.md`` (not committed: the numbers belong to the machine that measured them).

    python bench/all.py [--only vae,flows] [--out bench/RESULTS.md]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK = {  # benchmark -> its arguments at a quick size
    "svi": ["--steps", "3000"],
    "nuts": ["--num-samples", "1000", "--num-warmup", "500", "--repeats", "2"],  # the first NumPyro run starts JAX
    "hmm": ["--repeats", "2"],
    "vae": ["--epochs", "20", "--seeds", "1"],  # 20 epochs: a median steady enough for a 1.25x target
    "flows": ["--kinds", "realnvp,maf", "--batch", "512", "--dims", "16", "--repeats", "3"],
    "enumeration": ["--repeats", "3"],
    "bayesnet": ["--queries", "50"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(QUICK), help="comma-separated benchmarks")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(QUICK))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {', '.join(QUICK)}")
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as f:
        results = Path(f.name)
    env = {**os.environ, "PPGEN_BENCH_RESULTS": str(results)}
    failed, seconds = [], {}
    for name in names:
        print(f"\n## {name}\n", flush=True)
        start = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / f"{name}.py"), *QUICK[name]], env=env)
        seconds[name] = time.perf_counter() - start
        if rc:
            failed.append(name)
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    results.unlink()
    lines = ["| benchmark | what | ratio | target | met |", "|---|---|---|---|---|"]
    lines += [f"| {r['bench']} | {r['what']} | {r['ratio']:.2f} | {r['target']} | {'yes' if r['met'] else 'NO'} |"
              for r in rows]
    lines.append("")
    lines.append("seconds per benchmark: " + ", ".join(f"{n} {s:.0f}" for n, s in seconds.items()))
    if failed:
        lines.append(f"failed: {', '.join(failed)} (see their output above)")
    table = "\n".join(lines) + "\n"
    print("\n## summary\n\n" + table, end="")
    Path(args.out).write_text(table, encoding="utf-8")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
