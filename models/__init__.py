"""The registry of ppgen's model programs.

Every module in this package registers its models with :func:`register` when it is imported;
:func:`names` and :func:`get` import them all on first use, so a new model is one new file.

A registered model is a :class:`ModelSpec`: the Pyro program, the bundled data it runs on by
default, and which backends can run it (``("pyro", "numpyro")`` for programs written against
``pyroapi``, see :mod:`ppgen.generic`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ppgen.registry import Registry

__all__ = ["ModelSpec", "register", "get", "names", "specs"]


@dataclass(frozen=True)
class ModelSpec:
    """A model program with what ppgen needs to run it without further arguments.

    :param name: registry name.
    :param model: the Pyro program; it takes the data as keyword arguments.
    :param data: zero-argument callable returning the bundled data dict (``None``: no bundled data).
    :param backends: backends the program runs on: ``"pyro"`` and, for ``pyroapi`` programs, ``"numpyro"``.
    :param description: one line for ``ppgen list``.
    :param reference: optional zero-argument callable returning a reference posterior
        (``{param: {"mean": ..., "sd": ...}}``) for ``compare``.
    :param default_method: the method ``ppgen fit MODEL`` uses when none is given.
    :param guide: the guide ``svi``/``map`` use when the caller gives none: a guide program (e.g. an
        amortized encoder) or a guide name; ``None`` means the method's autoguide.
    """

    name: str
    model: Callable
    data: Callable[[], dict] | None = None
    backends: tuple[str, ...] = ("pyro",)
    description: str = ""
    reference: Callable[[], dict] | None = None
    default_method: str = "nuts"
    guide: Callable | str | None = None
    tags: tuple[str, ...] = field(default=())


_REGISTRY: Registry[ModelSpec] = Registry(__name__, __path__, "model")
names, specs, get = _REGISTRY.names, _REGISTRY.specs, _REGISTRY.get


def register(name: str, **spec_kwargs) -> Callable:
    """Decorator registering a model program under ``name``; keyword arguments go to :class:`ModelSpec`."""

    def decorator(model: Callable) -> Callable:
        known = _REGISTRY.entries.get(name)
        if known is not None and known.model is not model:
            raise ValueError(f"model name {name!r} is registered twice")
        description = spec_kwargs.pop("description", None) or (model.__doc__ or "").strip().split("\n")[0]
        _REGISTRY.add(name, ModelSpec(name=name, model=model, description=description, **spec_kwargs))
        return model

    return decorator
