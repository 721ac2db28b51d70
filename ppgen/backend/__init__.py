"""One model program, two backends.

A model written against ``pyroapi`` (``from pyroapi import pyro, distributions as dist``) runs on
Pyro by default and on NumPyro inside :func:`numpyro_backend`. NumPyro's own ``pyroapi`` backend
(``numpyro.compat``) has only ``sample``, ``param``, ``plate`` and ``module``, and some of its names mean
something else than Pyro's (``ops.zeros`` returns ones). ppgen registers the backend ``"ppgen-numpyro"``
whose modules give Pyro's meanings: ``pyro`` (:mod:`.numpyro_primitives`: adds ``deterministic``,
``factor``, ``markov``, ``subsample``, ``config_enumerate``), ``ops`` (:mod:`.numpyro_ops`: torch's
signatures and values), ``distributions`` (:mod:`.numpyro_distributions`), ``handlers``
(:mod:`.numpyro_handlers`) and ``infer`` (:mod:`.numpyro_infer`). Names with no NumPyro counterpart raise
``NotImplementedError``.
"""
from __future__ import annotations

import contextlib

import numpy as np
import pyroapi
import torch

NUMPYRO = "ppgen-numpyro"

pyroapi.register_backend(
    NUMPYRO,
    {
        "distributions": "ppgen.backend.numpyro_distributions",
        "handlers": "ppgen.backend.numpyro_handlers",
        "infer": "ppgen.backend.numpyro_infer",
        "ops": "ppgen.backend.numpyro_ops",
        "optim": "numpyro.compat.optim",
        "pyro": "ppgen.backend.numpyro_primitives",
    },
)


@contextlib.contextmanager
def numpyro_backend():
    """Run ``pyroapi`` programs on NumPyro inside the block, funsor (NumPyro's enumeration) on JAX arrays:
    funsor's backend is one global, which Pyro's ``contrib.funsor`` sets to torch; that is restored after."""
    import funsor

    before = funsor.get_backend()
    funsor.set_backend("jax")
    try:
        with pyroapi.pyro_backend(NUMPYRO):
            yield
    finally:
        if before != "numpy":  # funsor cannot go back to numpy; Pyro's contrib.funsor sets torch when imported
            funsor.set_backend(before)


def to_jax(data: dict) -> dict:
    """Torch tensors and numpy arrays to JAX arrays (floats as float32 unless x64 is enabled)."""
    import jax.numpy as jnp

    out = {}
    for k, v in data.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu().numpy()
        out[k] = jnp.asarray(v) if isinstance(v, np.ndarray) else v
    return out


def vindex(x):
    """``Vindex(x)``: batched advanced indexing (``vindex(x)[..., i, :]``) on either backend's arrays."""
    if isinstance(x, torch.Tensor):
        from pyro.ops.indexing import Vindex
    else:
        from numpyro.ops.indexing import Vindex
    return Vindex(x)
