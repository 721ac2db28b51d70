r"""Data-parallel SVI over processes (``torch.distributed``: gloo on CPUs, NCCL on GPUs).

Each of W processes holds the rows :math:`R_r = [\lfloor rN/W \rfloor, \lfloor (r+1)N/W \rfloor)`
of the data plate (:math:`n_r` of its N rows) and at every step a batch :math:`b_r \subseteq R_r`
of them: all :math:`n_r`, or B if the model subsamples the plate (``subsample_size=B`` is then the
batch *per process*). Process r computes

.. math::

    L_r = \frac{n_r}{N}\,[\log p(z) - \log q(z)] + \frac{n_r}{|b_r|} \sum_{i \in b_r} \ell_i(z),
    \qquad \ell_i = \log p(x_i, z_i \mid z) - \log q(z_i \mid x_i)

(Pyro's plate scales the batch by :math:`N / |b_r|`; here every site is also scaled by
:math:`n_r / N`), so :math:`\sum_r L_r` is an unbiased estimate of the full-data ELBO, and equals it
at equal draws of the global z when each process uses its whole shard. The gradients are summed over
processes by one all-reduce per step, the losses with them; the parameters start equal (rank 0's
are broadcast), so every process takes the same optimizer step and holds the same parameters.

``ppgen.fit(..., method="svi")`` (and ``"map"``) does all of this by itself when launched by
``torchrun`` (``WORLD_SIZE`` > 1)::

    torchrun --nproc_per_node 2 my_fit.py                       # my_fit.py calls ppgen.fit(...)

The model must pick its rows through the plate's indices, which is how Pyro subsamples anyway::

    with pyro.plate("data", len(x)) as idx:                     # or subsample_size=B
        pyro.sample("obs", dist.Normal(loc(x[idx]), 1.0), obs=y[idx])   # or pyro.subsample(y, event_dim=0)

The data plate is the one around every observed site (``"data"`` if several are). A model that does
not select its rows is refused with an error naming the plate, before any fitting.
"""
from __future__ import annotations

import atexit
import math
import os
from collections import defaultdict
from typing import Callable

import pyro
import pyro.poutine as poutine
import torch
import torch.distributed as dist
from pyro.infer import JitTrace_ELBO
from pyro.util import check_site_shape

from ppgen.data.stream import RowSampler
from ppgen.errors import ConfigError
from ppgen.handlers import is_plate_index
from ppgen.inference.handlers.shard import Shard
from ppgen.inference.objectives import register_elbo

__all__ = ["DataParallel", "launched", "init", "data_plate"]

# Compiled objective (opt-in): the PyTorch JIT traces the model and guide once; measured in
# bench/scale.py to about double the steps/s of small models (eight schools), and not pay for
# network-heavy ones (VAE, diffusion), so it stays opt-in.
register_elbo("jit", lambda num_particles: JitTrace_ELBO(num_particles=num_particles, ignore_jit_warnings=True))


def launched() -> bool:
    """Whether this process is one of several started by ``torchrun`` (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> None:
    """Join the process group (``torchrun``'s ``env://`` rendezvous) if not yet: NCCL when the data is
    on a GPU (one GPU per process), gloo on the CPU."""
    if dist.is_initialized():
        return
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        local = int(os.environ.get("LOCAL_RANK", index))
        if index != local:
            raise ConfigError(f"this process (LOCAL_RANK={local}) has its data on cuda:{index}; each process needs its "
                              f"own GPU: fit with device=f'cuda:{{LOCAL_RANK}}'")
        torch.cuda.set_device(index)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())


def data_plate(problem, name: str | None = None) -> tuple[str, int]:
    """``(name, N)`` of the plate to shard: the one around every observed site (``"data"`` if there
    are several), with its full size from one run of the model."""
    observed = [s for s in problem.sites.values() if s.kind in ("observed", "factor")]
    common = set.intersection(*({p[0] for p in s.plates} for s in observed)) if observed else set()
    if name is None:
        if not common:
            raise ConfigError(f"data-parallel SVI shards the plate around every observed site; model {problem.name!r} "
                              f"has none (observed: {', '.join(s.name for s in observed) or 'nothing'})")
        name = "data" if "data" in common else next(iter(common)) if len(common) == 1 else None
        if name is None:
            raise ConfigError(f"model {problem.name!r}: which plate holds the data, {', '.join(sorted(common))}? "
                              f"name it 'data'")
    with torch.no_grad(), poutine.block(), problem.placement():
        trace = poutine.trace(problem.model).get_trace(**problem.data)
    sizes = {s["name"]: s["fn"].size for s in trace.nodes.values()
             if s["type"] == "sample" and is_plate_index(s["fn"])}
    if name not in sizes:
        raise ConfigError(f"model {problem.name!r} has no plate {name!r} with a size to shard (a plate given "
                          f"subsample=... explicitly cannot be sharded)")
    return name, int(sizes[name])


class DataParallel:
    """Process ``rank`` of ``world_size``: its rows of plate ``plate`` (full size ``size``), handlers
    that shard a model or guide, and the start and per-step hooks of :func:`~ppgen.inference.svi.train`."""

    def __init__(self, plate: str, size: int, rank: int, world_size: int):
        start, stop = rank * size // world_size, (rank + 1) * size // world_size
        if stop <= start:
            raise ConfigError(f"{world_size} processes for the {size} rows of plate {plate!r}: some would hold none")
        self.plate, self.size, self.rank, self.world_size = plate, size, rank, world_size
        self.rows = RowSampler(start, stop)
        self.weight = (stop - start) / size
        self._checked = False

    @classmethod
    def for_problem(cls, problem, plate: str | None = None, rank: int | None = None,
                    world_size: int | None = None) -> "DataParallel":
        """This process's share of ``problem`` (rank and world size from ``torchrun``'s environment
        unless given; the process group is joined then). Refuses, before any fitting, a model that
        does not select its rows through the plate's indices."""
        if rank is None or world_size is None:
            rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
            init(problem.device)
        parallel = cls(*data_plate(problem, plate), rank, world_size)
        parallel._check(problem)
        return parallel

    def shard(self, fn: Callable) -> Callable:
        """``fn`` (a model or guide) run on this process's rows, scaled by n_r / N."""
        return Shard(self)(fn)

    def _check(self, problem) -> None:
        try:
            with torch.no_grad(), poutine.block(), problem.placement(), pyro.validation_enabled(True):
                trace = poutine.trace(self.shard(problem.model)).get_trace(**problem.data)
                trace.compute_log_prob()
                for site in trace.nodes.values():
                    if site["type"] == "sample":
                        check_site_shape(site, math.inf)
        except (ValueError, RuntimeError, IndexError) as e:
            raise ConfigError(f"model {problem.name!r} cannot be sharded over plate {self.plate!r}: with rows "
                              f"{self.rows.start}..{self.rows.stop - 1} of {self.size} it fails ({type(e).__name__}: "
                              f"{str(e).splitlines()[0]}). Select the rows by the plate's indices: `with pyro.plate("
                              f"{self.plate!r}, N) as idx: y = y[idx]`, or "
                              f"`pyro.subsample(y, event_dim=...)`") from None

    def synchronize(self, model: Callable, guide: Callable, data: dict, seed: int | None = None) -> None:
        """Create every parameter (one pass of guide and model without gradients, from ``seed``, as
        the first step of :func:`train` would) and give all processes rank 0's values."""
        if seed is not None:
            pyro.set_rng_seed(seed)
        with torch.no_grad(), poutine.block():
            guide_trace = poutine.trace(guide).get_trace(**data)
            poutine.replay(model, trace=guide_trace)(**data)
        params = sorted(pyro.get_param_store().named_parameters())
        self._same_everywhere([name for name, _ in params], "parameters")
        with torch.no_grad():
            for _, value in params:
                dist.broadcast(value.data, src=0)

    def reduce(self, loss: float, params: dict) -> float:
        """The ``reduce`` hook of :func:`train`: sum the gradients of ``params`` and the loss over all
        processes (one all-reduce per dtype); returns the summed loss, the full-data -ELBO estimate."""
        names = sorted(params)
        if not self._checked:
            self._same_everywhere(names, "parameters with gradients")
            self._checked = True
        buckets = defaultdict(list)
        for name in names:
            p = params[name]
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            buckets[p.grad.dtype].append(p.grad)
        device = params[names[0]].device if names else torch.device("cpu")
        buckets[torch.float64].append(torch.tensor([float(loss)], dtype=torch.float64, device=device))
        for grads in buckets.values():
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)
            for g, part in zip(grads, flat.split([g.numel() for g in grads])):
                g.copy_(part.view_as(g))
        return float(buckets[torch.float64][-1])

    def _same_everywhere(self, names: list[str], what: str) -> None:
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, names)
        for rank, theirs in enumerate(gathered):
            if theirs != names:
                differ = sorted(set(theirs) ^ set(names))
                raise ConfigError(f"data-parallel SVI: process {rank} has other {what} than process {self.rank} "
                                  f"({', '.join(differ) or 'another order'}); every process must build the same ones")
