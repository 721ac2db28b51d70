"""The registry of ppgen's model programs.

Every module in this package registers its models with :func:`register` when it is imported;
:func:`names` and :func:`get` import them all on first use, so a new model is one new file.

A registered model is a :class:`ModelSpec`: the Pyro program, the bundled data it runs on by
default, and which backends can run it (``("pyro", "numpyro")`` for programs written against
``pyroapi``, see :mod:`ppgen.generic`).
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable

from ppgen.errors import UnknownNameError

__all__ = ["ModelSpec", "register", "get", "names", "specs"]

_REGISTRY: dict[str, "ModelSpec"] = {}
_LOADED = False


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


def register(name: str, **spec_kwargs) -> Callable:
    """Decorator registering a model program under ``name``; keyword arguments go to :class:`ModelSpec`."""

    def decorator(model: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name].model is not model:
            raise ValueError(f"model name {name!r} is registered twice")
        description = spec_kwargs.pop("description", None) or _first_line(model.__doc__)
        _REGISTRY[name] = ModelSpec(name=name, model=model, description=description, **spec_kwargs)
        return model

    return decorator


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n")[0]


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    _LOADED = True


def names() -> list[str]:
    """Names of all registered models, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def specs() -> list[ModelSpec]:
    _load_all()
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


def get(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered as ``name``; a clear error listing the names otherwise."""
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError(f"unknown model {name!r}; registered models: {', '.join(sorted(_REGISTRY))}") from None
