"""Throughput of ppgen's flows against the same flows used directly in zuko, and the sequential cost
of sampling autoregressive models as the dimension grows.

One run, two tables.

1. For each flow kind, the *same* zuko layers (shared weights) used two ways:

   * ppgen:  ``Flow.distribution()`` (a Pyro ``TransformedDistribution`` around ``FlowTransform``,
     argument validation on, as ppgen runs) for ``log_prob`` and ``sample``; ``Flow.fit`` for training,
     i.e. ppgen's one loop (:func:`ppgen.inference.svi.train`) with the model's own objective
     (:class:`~ppgen.models.density.ExactLikelihood`: ``Trace_ELBO``'s numbers without its traces) and
     the loop's default optimizer (one ``torch.optim.Adam`` over all parameters);
   * zuko:   ``zuko.flows.Flow(layers, DiagNormal base)()`` for ``log_prob``/``sample`` and a hand-written
     loop (minibatch, ``-log_prob.mean()``, ``backward``, one ``torch.optim.Adam``), validation off as
     zuko sets it.

   Ratio = ppgen time / zuko time (target <= 1.15 for training at batch 512). The training row is also
   run as ppgen ran it before (``elbo="trace"``: Pyro's ``Trace_ELBO`` with the empty guide, and
   ``pyro.optim.Adam``, one optimizer per tensor), to show what those cost.

2. FVSBN, NADE and MADE: seconds to draw ``--ar-draws`` samples (n sequential steps) and to evaluate
   their exact log-likelihood (one pass), for n = 16 ... 512 binary variables.

Every cell is the median over ``--repeats`` interleaved rounds (after one warm-up round), timed in CPU
seconds of this process on the CPU (so other jobs on a shared machine do not count) and in wall
seconds on a GPU.

    python bench/flows.py                 # about three minutes on one CPU core
    python bench/flows.py --kinds realnvp --features 8 --device cuda
"""
from __future__ import annotations

import argparse
import statistics

import pyro
import torch
from common import elapsed, record
from zuko.distributions import DiagNormal
from zuko.flows import Flow as ZukoFlow
from zuko.lazy import UnconditionalDistribution

from ppgen.data import toy2d
from ppgen.models.autoregressive import FVSBN, MADE, NADE
from ppgen.models.flows import Flow


def timed(fn, device: torch.device) -> float:
    """Seconds ``fn`` takes: CPU time of this process on the CPU (other processes sharing the machine
    do not count), wall time on a GPU."""
    return elapsed(fn, device, cpu_time=True)


def zuko_twin(flow: Flow) -> ZukoFlow:
    """The same layers (same weights) as a plain zuko flow."""
    loc, scale = flow.loc, flow.scale
    return ZukoFlow(flow.transform, UnconditionalDistribution(DiagNormal, loc, scale, buffer=True))


def zuko_train(zflow: ZukoFlow, x: torch.Tensor, batch: int, steps: int, optimizer) -> None:
    with pyro.validation_enabled(False):
        for _ in range(steps):
            xb = x[torch.randperm(x.shape[0], device=x.device)[:batch]]
            loss = -zflow().log_prob(xb).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def flow_table(args, device) -> None:
    data = torch.as_tensor(toy2d.sample("moons", 4096, seed=0), device=device)
    if args.features > 2:  # embed the moons in more dimensions, with noise in the extra ones
        data = torch.cat([data, 0.3 * torch.randn(len(data), args.features - 2, device=device)], 1)
    rows = []
    for kind in args.kinds.split(","):
        torch.manual_seed(0)
        flow = Flow(args.features, kind, transforms=args.transforms, hidden=(args.hidden, args.hidden)).to(device)
        zflow = zuko_twin(flow)
        optimizer = torch.optim.Adam(flow.parameters(), lr=1e-3)
        pyro_adam = pyro.optim.Adam({"lr": 1e-3})
        x_eval = data[: args.eval_size]
        batches = [int(b) for b in args.batch.split(",")]
        train_keys = [f"train_{who}_{b}" for b in batches for who in ("ppgen", "zuko", "before")]
        cells = {k: [] for k in ("logp_ppgen", "logp_zuko", "sample_ppgen", "sample_zuko", *train_keys)}
        for round_ in range(args.repeats + 1):  # round 0 warms up and is dropped
            if round_ == 1:
                cells = {k: [] for k in cells}
            with torch.no_grad():
                cells["logp_ppgen"].append(timed(lambda: [flow.distribution().log_prob(x_eval)
                                                          for _ in range(args.calls)], device))
                with pyro.validation_enabled(False):
                    cells["logp_zuko"].append(timed(lambda: [zflow().log_prob(x_eval) for _ in range(args.calls)],
                                                    device))
                cells["sample_ppgen"].append(timed(lambda: [flow.distribution().sample((args.eval_size,))
                                                            for _ in range(args.calls)], device))
                with pyro.validation_enabled(False):
                    cells["sample_zuko"].append(timed(lambda: [zflow().sample((args.eval_size,))
                                                               for _ in range(args.calls)], device))
            for b in batches:
                cells[f"train_ppgen_{b}"].append(timed(lambda: flow.fit(data, steps=args.steps, lr=1e-3, batch_size=b,
                                                                        seed=None), device))
                cells[f"train_zuko_{b}"].append(timed(lambda: zuko_train(zflow, data, b, args.steps, optimizer),
                                                      device))
                cells[f"train_before_{b}"].append(timed(lambda: flow.fit(data, steps=args.steps, batch_size=b,
                                                                         seed=None, elbo="trace", optim=pyro_adam),
                                                        device))
        med = {k: statistics.median(v) for k, v in cells.items()}
        per_logp = args.calls * args.eval_size
        rows.append((kind, "log_prob", f"{per_logp / med['logp_ppgen'] / 1e3:.0f}k pts/s",
                     f"{per_logp / med['logp_zuko'] / 1e3:.0f}k pts/s", med["logp_ppgen"] / med["logp_zuko"]))
        rows.append((kind, "sample", f"{per_logp / med['sample_ppgen'] / 1e3:.0f}k pts/s",
                     f"{per_logp / med['sample_zuko'] / 1e3:.0f}k pts/s", med["sample_ppgen"] / med["sample_zuko"]))
        for b in batches:
            zuko_rate = f"{args.steps / med[f'train_zuko_{b}']:.0f} steps/s"
            rows.append((kind, f"train, batch {b}", f"{args.steps / med[f'train_ppgen_{b}']:.0f} steps/s", zuko_rate,
                         med[f"train_ppgen_{b}"] / med[f"train_zuko_{b}"]))
            if b == 512:
                record("flows", f"train {kind}, batch 512, vs zuko", rows[-1][-1], "<= 1.15")
            rows.append((kind, f"train, batch {b}, as before (Trace_ELBO, pyro.optim.Adam)",
                         f"{args.steps / med[f'train_before_{b}']:.0f} steps/s",
                         zuko_rate, med[f"train_before_{b}"] / med[f"train_zuko_{b}"]))
    print(f"\nflows on {args.features}-D data, {args.transforms} layers of ({args.hidden}, {args.hidden}); "
          f"log_prob/sample: {args.calls} calls of {args.eval_size} points; train: {args.steps} steps; "
          f"median of {args.repeats}; {device}")
    print("| flow | operation | ppgen | zuko directly | ratio ppgen/zuko |\n|---|---|---|---|---|")
    for kind, op, ours, theirs, ratio in rows:
        print(f"| {kind} | {op} | {ours} | {theirs} | {ratio:.2f} |")


def autoregressive_table(args, device) -> None:
    dims = [int(d) for d in args.dims.split(",")]
    models = {"FVSBN": lambda n: FVSBN(n), "NADE (d=64)": lambda n: NADE(n, 64),
              "MADE (h=128)": lambda n: MADE(n, (128,))}
    rows = []
    for name, build in models.items():
        base = None
        for n in dims:
            torch.manual_seed(0)
            net = build(n).to(device)
            x = torch.bernoulli(torch.full((args.ar_draws, n), 0.5, device=device))
            sample_s, logp_s = [], []
            with torch.no_grad():
                net.sample(2), net.log_prob(x)  # warm-up
                for _ in range(args.repeats):
                    sample_s.append(timed(lambda: net.sample(args.ar_draws), device))
                    logp_s.append(timed(lambda: net.log_prob(x), device))
            s, lp = statistics.median(sample_s), statistics.median(logp_s)
            base = base or s
            rows.append((name, n, s, lp, s / lp, s / base))
    print(f"\nautoregressive sampling vs exact likelihood, {args.ar_draws} draws; median of {args.repeats}; {device}")
    print("| model | n | sample (s) | log_prob (s) | sample / log_prob | sample time / at n={} |\n"
          "|---|---|---|---|---|---|"
          .format(dims[0]))
    for name, n, s, lp, ratio, growth in rows:
        print(f"| {name} | {n} | {s:.4f} | {lp:.5f} | {ratio:.1f} | {growth:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kinds", default="realnvp,maf,spline,iaf")
    parser.add_argument("--features", type=int, default=2)
    parser.add_argument("--transforms", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", default="512,4096", help="training batch sizes, comma-separated")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--eval-size", type=int, default=4096)
    parser.add_argument("--dims", default="16,64,256,512")
    parser.add_argument("--ar-draws", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    flow_table(args, device)
    autoregressive_table(args, device)


if __name__ == "__main__":
    main()
