"""What the benchmarks share: the time of a call with the GPU's queue drained, and one
``torch.optim.Adam`` as the ``optim`` of ppgen's training loop."""
from __future__ import annotations

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
