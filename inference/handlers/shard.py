"""``Shard``: under data-parallel SVI, the data plate draws its indices from this process's rows only, and
every other sample site is scaled by ``weight = n_r / N``, so the ELBOs of all processes sum to the
full-data ELBO (see :mod:`ppgen.inference.distributed`).

Example (one process holding rows 0..2 of 6, all of them per step)::

    parallel = DataParallel("data", size=6, rank=0, world_size=2)
    shard = Shard(parallel)
    shard(model)(x)      # the plate yields rows [0, 1, 2]; global sites are scaled by 1/2
"""
from __future__ import annotations

import torch

from ppgen.errors import ConfigError
from ppgen.handlers import is_plate_index
from ppgen.handlers.epochs import epochs

__all__ = ["Shard"]


class Shard(epochs):
    """The plate's indices from this process's rows; every sample site scaled by ``weight = n_r / N``."""

    def __init__(self, parallel):  # a ppgen.inference.distributed.DataParallel
        super().__init__(parallel.plate, parallel.rows)
        self.parallel = parallel

    def _pyro_sample(self, msg) -> None:
        super()._pyro_sample(msg)
        if not is_plate_index(msg["fn"]):
            msg["scale"] = self.parallel.weight * msg["scale"]

    def _draw(self, size: int, subsample_size: int | None, device) -> torch.Tensor:
        p = self.parallel
        if size != p.size:
            raise ConfigError(f"plate {p.plate!r} has {size} rows here, {p.size} when the shards were made")
        if subsample_size is None or subsample_size == len(p.rows):
            return p.rows.rows(device)
        if subsample_size >= size:
            raise ConfigError(f"plate {p.plate!r} asks for all its {size} rows, but this process holds "
                              f"{len(p.rows)}: an autoguide made from the unsharded model does this; give the guide "
                              f"by name ('normal', 'delta', ...) so that it is built on this process's rows")
        if subsample_size > len(p.rows):
            raise ConfigError(f"plate {p.plate!r} asks for {subsample_size} rows per step, but this process holds "
                              f"{len(p.rows)} of its {size}: under data-parallel SVI subsample_size is the batch "
                              f"per process")
        return p.rows.batch(subsample_size, device)
