"""What a model is to ppgen: a :class:`ModelSpec`, made from whatever a user hands over.

A model is a Pyro program taking its data as keyword arguments, an object with ``model``/``guide``
methods (as Pyro's ``examples/vae.py`` writes a VAE), a ``PyroModule`` whose ``forward`` is the
program, a file (``"path/to/file.py:function"``), or a *factory*: a function of the data that builds
such an object, for models whose networks hold state. :func:`spec_of` turns each into a spec;
registered names are looked up one layer up (:func:`ppgen.api.resolve_model`), since the registry of
ppgen's own models lives in :mod:`ppgen.models`.

Example:
    >>> import torch, pyro, pyro.distributions as dist
    >>> def coin(flips):
    ...     p = pyro.sample("p", dist.Beta(1.0, 1.0))
    ...     with pyro.plate("flips", len(flips)):
    ...         pyro.sample("obs", dist.Bernoulli(p), obs=flips)
    >>> spec_of(coin).name
    'coin'
    >>> spec_of(coin).build({"flips": torch.ones(3)}).program is coin
    True
"""
from __future__ import annotations

import dataclasses
import importlib.util
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ppgen.errors import DataError, UnknownNameError

__all__ = ["ModelSpec", "Built", "spec_of", "signature", "check_keys"]


@dataclass(frozen=True)
class Built:
    """A spec made concrete for one data set: the program to run, its guide, the data it takes, and
    the object a factory built (``None`` for a plain program)."""

    program: Callable
    guide: Callable | str | None
    data: dict
    instance: Any = None


@dataclass(frozen=True)
class ModelSpec:
    """A model program with what ppgen needs to run it without further arguments.

    :param name: registry name.
    :param model: the Pyro program; it takes the data as keyword arguments (``None`` for a factory).
    :param factory: instead of ``model``, a function building an object with ``model``/``guide``
        methods from the data (a network sized by ``x``, say). Each data key goes to whichever of the
        factory and the object's ``model`` names it (both, for ``x``); every fit builds a fresh object.
    :param data: zero-argument callable returning the bundled data dict (``None``: no bundled data).
    :param backends: backends the program runs on: ``"pyro"`` and, for ``pyroapi`` programs, ``"numpyro"``.
    :param description: one line for ``ppgen list``.
    :param reference: optional zero-argument callable returning a reference posterior
        (``{param: {"mean": ..., "sd": ...}}``) for ``compare``.
    :param default_method: the method ``ppgen fit MODEL`` uses when none is given.
    :param guide: the guide ``svi``/``map`` use when the caller gives none: a guide program (e.g. an
        amortized encoder) or a guide name; ``None`` means the object's ``guide`` method for a
        factory, else the method's autoguide.
    """

    name: str
    model: Callable | None = None
    data: Callable[[], dict] | None = None
    backends: tuple[str, ...] = ("pyro",)
    description: str = ""
    reference: Callable[[], dict] | None = None
    default_method: str = "nuts"
    guide: Callable | str | None = None
    tags: tuple[str, ...] = field(default=())
    factory: Callable[..., Any] | None = None

    def build(self, data: dict) -> Built:
        """The program, guide and data for ``data``: a factory builds its object here, from the keys
        it names; the object's ``model`` gets the keys it names and any key neither names (which
        :func:`check_keys` then refuses)."""
        if self.factory is None:
            return Built(self.model, self.guide, data)
        takes = signature(self.factory).parameters
        check_keys(self.name, {k: p for k, p in takes.items()}, {k: v for k, v in data.items() if k in takes})
        instance = self.factory(**{k: v for k, v in data.items() if k in takes})
        model_takes = signature(instance.model).parameters
        guide = self.guide if self.guide is not None else getattr(instance, "guide", None)
        return Built(instance.model, guide, {k: v for k, v in data.items() if k in model_takes or k not in takes},
                     instance)


def signature(program: Callable) -> inspect.Signature:
    """The signature a program is called with (a module's ``forward``)."""
    return inspect.signature(program.forward if isinstance(program, torch.nn.Module) else program)


def spec_of(model) -> ModelSpec:
    """The :class:`ModelSpec` of a callable, an object with ``model``/``guide`` methods, a
    ``PyroModule`` or ``"path/to/file.py:function"`` (a spec is returned as it is)."""
    if isinstance(model, ModelSpec):
        return model
    if callable(getattr(model, "model", None)):  # an object with model/guide methods (Pyro's examples/vae)
        guide = getattr(model, "guide", None)  # built by a factory returning the object itself, so engines
        # that use more than its program (a Bayes net's CPTs, say) find it as ``problem.instance``
        return ModelSpec(type(model).__name__, factory=lambda: model, guide=guide if callable(guide) else None,
                         backends=_backends_of(model.model))
    if callable(model):  # a function, or a PyroModule whose forward is the model
        name = getattr(model, "__name__", None) or type(model).__name__
        return ModelSpec(name, model, backends=_backends_of(model))
    if isinstance(model, str) and ":" in model and model.split(":")[0].endswith(".py"):
        return _load_user_model(model)
    if isinstance(model, str):
        raise UnknownNameError(f"{model!r} names a model: registered names are looked up by ppgen.fit, ppgen.prepare "
                               f"and ppgen.models.get, not by ppgen.problem.prepare")
    raise UnknownNameError(f"model must be a Pyro program, an object with a model method, a registered name or "
                           f"'file.py:function', got {type(model).__name__} {model!r}")


def _load_user_model(target: str) -> ModelSpec:
    path, _, fn_name = target.rpartition(":")
    if not Path(path).exists():
        raise UnknownNameError(f"model file {path!r} does not exist")
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    program = getattr(module, fn_name, None)
    if not (callable(program) or callable(getattr(program, "model", None))):
        raise UnknownNameError(f"{path!r} has no function {fn_name!r} (nor an object with a model method)")
    data = getattr(module, "data", None)  # bundled data: a dict, or a function returning one
    found = spec_of(program)
    guide = getattr(module, "guide", None) if found.guide is None else found.guide
    return dataclasses.replace(found, name=fn_name, data=data if data is None or callable(data) else lambda: data,
                               guide=guide if callable(guide) else None)


def _backends_of(program: Callable) -> tuple[str, ...]:
    """A program whose ``pyro`` is ``pyroapi``'s dispatching module runs on both backends."""
    from pyroapi.dispatch import GenericModule

    namespace = getattr(inspect.unwrap(program), "__globals__", {})
    return ("pyro", "numpyro") if isinstance(namespace.get("pyro"), GenericModule) else ("pyro",)


def check_keys(name: str, params: dict[str, inspect.Parameter], data: dict) -> None:
    """Every data key is one of ``params`` (a program's parameters), and every one without a default is given."""
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [p for p in params if params[p].kind in (params[p].POSITIONAL_OR_KEYWORD, params[p].KEYWORD_ONLY)]
    extra = [k for k in data if k not in accepted]
    if extra:
        raise DataError(f"data key(s) {', '.join(map(repr, extra))} are not arguments of model {name!r}; "
                        f"it takes: {', '.join(accepted)}")
    missing = [p for p in accepted if params[p].default is inspect.Parameter.empty and p not in data]
    if missing:
        raise DataError(f"model {name!r} needs data key(s) {', '.join(map(repr, missing))}; "
                        f"got: {', '.join(data) or 'nothing'}")
