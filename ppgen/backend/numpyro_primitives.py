"""The ``pyro`` module of the ``"ppgen-numpyro"`` backend: NumPyro's primitives under Pyro's names and arguments.

``sample``, ``subsample``, ``get_param_store``/``clear_param_store`` are NumPyro's (``numpyro.compat``);
``deterministic``/``factor``/``markov`` accept Pyro's extra keywords (``event_dim``, ``has_rsample``,
``dim``/``name``: metadata Pyro itself does not act on); ``param`` takes Pyro's zero-argument init functions
and remembers values it was given, so ``pyro.param("p")`` returns them as on Pyro; ``plate`` takes Pyro's
arguments and iterates as Pyro's sequential plate; ``module`` (a torch ``nn.Module`` on Pyro) raises.
"""
from __future__ import annotations

import contextlib

import numpyro
from numpyro.compat.pyro import clear_param_store, get_param_store  # noqa: F401
from numpyro.contrib.funsor import config_enumerate  # noqa: F401
from numpyro.contrib.funsor import markov as _markov
from numpyro.handlers import scale as _scale
from numpyro.primitives import sample, subsample  # noqa: F401
from numpyro.util import not_jax_tracer

from numpyro.compat.pyro import _PARAM_STORE  # isort: skip


def deterministic(name, value, event_dim=None):
    return numpyro.deterministic(name, value)


def factor(name, log_factor, *, has_rsample=None):
    numpyro.factor(name, log_factor)


def markov(fn=None, history=1, keep=False, dim=None, name=None):
    return _markov(fn, history=history, keep=keep)


def param(name, init_tensor=None, constraint=None, event_dim=None):
    kwargs = {k: v for k, v in (("constraint", constraint), ("event_dim", event_dim)) if v is not None}
    if init_tensor is None:
        value = numpyro.param(name, **kwargs)
        return _PARAM_STORE.get(name) if value is None else value
    if name in _PARAM_STORE:  # Pyro: a stored value wins over the init value
        init_tensor = _PARAM_STORE[name]
    elif callable(init_tensor):  # Pyro's init functions take no arguments (NumPyro's take a PRNG key)
        init_tensor = init_tensor()
    value = numpyro.param(name, init_tensor, **kwargs)
    if not_jax_tracer(value):
        _PARAM_STORE[name] = value
    return value


class plate(numpyro.plate):
    """``numpyro.plate`` with Pyro's arguments; ``for i in plate(...)`` is Pyro's sequential plate."""

    def __new__(cls, *args, **kwargs):
        # NumPyro's enumeration (``plate_to_enum_plate``) sets ``numpyro.plate.__new__`` to make funsor's
        # enum plates, and on leaving to make bare ``numpyro.plate``s whatever the class: defer to it
        # inside, and build this class outside (else no later NumPyro run of the process has a plate)
        hook = vars(numpyro.plate).get("__new__")
        made = hook(cls, *args, **kwargs) if hook is not None else None
        return made if made is not None and type(made) is not numpyro.plate else object.__new__(cls)

    def __init__(self, name, size=None, subsample_size=None, subsample=None, dim=None, use_cuda=None, device=None):  # noqa: F811
        if subsample is not None:
            raise NotImplementedError("pyro.plate(subsample=...) has no NumPyro counterpart; use subsample_size")
        if size is None:
            raise NotImplementedError("pyro.plate without a size has no NumPyro counterpart")
        super().__init__(name, size, subsample_size=subsample_size, dim=dim)

    def __iter__(self):
        factor = self.size / self.subsample_size
        for i in self._indices:
            with _scale(scale=factor) if factor != 1 else contextlib.nullcontext():
                yield int(i)


def module(name, nn_module, update_module_params=False):
    if hasattr(nn_module, "parameters") and hasattr(nn_module, "forward"):
        raise NotImplementedError(f"pyro.module({name!r}, ...) registers a torch nn.Module, which cannot run on the "
                                  f"NumPyro backend; use numpyro.module with a (init_fn, apply_fn) pair instead")
    return numpyro.module(name, nn_module)
