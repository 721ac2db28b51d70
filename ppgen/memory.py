"""``PeakMemory``: the most memory a block of code adds, for :func:`ppgen.compare`'s ``peak_mem_mb``.

Example:
    >>> import mmap
    >>> with PeakMemory() as memory:  # 50 MiB of pages new to the process, each written
    ...     block = mmap.mmap(-1, 50 * 2**20)
    ...     block.write(b"x" * len(block))
    52428800
    >>> memory.peak_mb > 0
    True
"""
from __future__ import annotations

import math
import os
import sys
import threading

import torch

__all__ = ["PeakMemory"]


class PeakMemory:
    """Peak memory a block adds: resident set size sampled every ``interval`` seconds (50 ms) by a thread
    (``/proc/self/statm``; elsewhere the process's lifetime peak from ``resource``), minus the size
    when the block started; on a CUDA device, ``torch.cuda.max_memory_allocated`` instead.
    In MiB as ``peak_mb``. Imports a method triggers (JAX for ``numpyro-nuts``) count as its memory."""

    def __init__(self, device=None, interval: float = 0.05):
        self.device, self.interval, self.peak_mb = torch.device(device or "cpu"), interval, math.nan
        self._stop = threading.Event()

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            return self
        self._start = self._peak = _rss()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, _rss())

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._start) / 2**20
            return False
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(max(self._peak, _rss()) - self._start, 0) / 2**20
        return False


def _rss() -> int:
    """Resident set size in bytes."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
