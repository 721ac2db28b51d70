"""What the benchmarks share: the time of a call with the GPU's queue drained, one
``torch.optim.Adam`` as the ``optim`` of ppgen's training loop, and :func:`record`, which hands a
benchmark's headline ratios to ``bench/all.py``."""
from __future__ import annotations

import json
import operator
import os
import time

import torch


def elapsed(fn, device: torch.device, cpu_time: bool = False) -> float:
    """Seconds ``fn()`` takes, GPU work included. With ``cpu_time`` on the CPU: this process's CPU
    time, so that other processes sharing the machine do not count."""
    clock = time.process_time if cpu_time and device.type == "cpu" else time.perf_counter
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = clock()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return clock() - start


class OneAdam:
    """``optim`` for :func:`ppgen.inference.svi.train`: one ``torch.optim.Adam`` over every parameter
    it is handed (``pyro.optim.Adam`` keeps one optimizer per tensor)."""

    def __init__(self, lr: float):
        self.lr, self.optimizer, self.known = lr, None, set()

    def __call__(self, params) -> None:
        new = [p for p in params if p not in self.known]
        if new:
            self.known.update(new)
            if self.optimizer is None:
                self.optimizer = torch.optim.Adam(new, lr=self.lr)
            else:
                self.optimizer.add_param_group({"params": new})
        self.optimizer.step()


TARGETS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


def record(bench: str, what: str, ratio: float, target: str) -> None:
    """One headline ratio of a benchmark (``target`` like ``"<= 1.25"``), appended as a JSON line to
    the file ``$PPGEN_BENCH_RESULTS`` names when ``bench/all.py`` runs it; nothing otherwise."""
    path = os.environ.get("PPGEN_BENCH_RESULTS")
    if not path:
        return
    sign, bound = target.split()
    row = {"bench": bench, "what": what, "ratio": float(ratio), "target": target,
           "met": bool(TARGETS[sign](float(ratio), float(bound)))}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
