"""The registry of inference methods.

Each module in this package registers its engines with :func:`register` on import. An engine is a
function ``run(problem, config) -> Fit`` where ``problem`` is a validated
:class:`ppgen.problem.Problem` (model, data on its device, sites found by one trace) and ``config``
a :class:`ppgen.problem.RunConfig` (seed, draws, steps, guide, extra options).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ppgen.registry import Registry

__all__ = ["MethodSpec", "register", "get", "names", "specs"]


@dataclass(frozen=True)
class MethodSpec:
    """An inference engine and what kind of answer it gives.

    :param family: ``"mcmc"`` (draws from the exact posterior), ``"variational"`` (an optimized
        approximation, draws from the guide) or ``"exact"`` (enumeration).
    :param backend: ``"pyro"`` or ``"numpyro"``: which backend runs the model program.
    :param options: the method-specific keyword arguments ``ppgen.fit`` accepts for it.
    """

    name: str
    run: Callable
    family: str
    description: str = ""
    backend: str = "pyro"
    options: tuple[str, ...] = ()


_REGISTRY: Registry[MethodSpec] = Registry(__name__, __path__, "method")
names, specs, get, load_all = _REGISTRY.names, _REGISTRY.specs, _REGISTRY.get, _REGISTRY.load_all


def register(name: str, *, family: str, backend: str = "pyro", description: str = "",
             options: tuple[str, ...] = ()) -> Callable:
    """Decorator registering ``run(problem, config) -> Fit`` under ``name``."""
    if family not in ("mcmc", "variational", "exact"):
        raise ValueError(f"family must be 'mcmc', 'variational' or 'exact', not {family!r}")

    def decorator(run: Callable) -> Callable:
        doc = description or (run.__doc__ or "").strip().split("\n")[0]
        _REGISTRY.add(name, MethodSpec(name=name, run=run, family=family, description=doc, backend=backend,
                                       options=tuple(options)))
        return run

    return decorator
