"""The registry of ppgen's model programs.

Every module in this package registers its models with :func:`register` when it is imported;
:func:`names` and :func:`get` import them all on first use, so a new model is one new file.

A registered model is a :class:`~ppgen.spec.ModelSpec`: the Pyro program (or, for a model whose
networks hold state, a factory building an object with ``model``/``guide`` methods from the data),
the bundled data it runs on by default, and which backends can run it (``("pyro", "numpyro")`` for
programs written against ``pyroapi``, see :mod:`ppgen.backend`).

This package holds generative programs and their networks only: what a user does with a model
object beyond its programs (``BayesNet.query``, ``NaiveBayes.fit``, ...) is bound to it at the front
door (:mod:`ppgen.estimators`), on top of the engines in :mod:`ppgen.inference`.
"""
from __future__ import annotations

from typing import Callable

from ppgen.registry import Registry
from ppgen.spec import ModelSpec

__all__ = ["ModelSpec", "register", "get", "names", "specs"]


_REGISTRY: Registry[ModelSpec] = Registry(__name__, __path__, "model")
names, specs, get = _REGISTRY.names, _REGISTRY.specs, _REGISTRY.get


def register(name: str, *, factory: bool = False, **spec_kwargs) -> Callable:
    """Decorator registering a model program under ``name`` (``factory=True``: a function of the data
    returning an object with ``model``/``guide`` methods); keyword arguments go to :class:`ModelSpec`."""

    def decorator(target: Callable) -> Callable:
        known = _REGISTRY.entries.get(name)
        if known is not None and target not in (known.model, known.factory):
            raise ValueError(f"model name {name!r} is registered twice")
        description = spec_kwargs.pop("description", None) or (target.__doc__ or "").strip().split("\n")[0]
        program = {"factory": target} if factory else {"model": target}
        _REGISTRY.add(name, ModelSpec(name=name, description=description, **program, **spec_kwargs))
        return target

    return decorator
