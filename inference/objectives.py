"""Guides and objectives by name: what ``guide="mvn"`` and ``elbo="iwae"`` mean to ``svi``/``map``.

Autoguides start from :func:`ppgen.init.init_to_median`. Other modules of this package add their own
with :func:`register_guide` (``"flow"``) and :func:`register_elbo` (``"iwae"``, ``"diffusion"``, ``"jit"``).

Example:
    >>> make_elbo("trace", num_particles=4).num_particles
    4
"""
from __future__ import annotations

from typing import Callable

from pyro.infer import Trace_ELBO, TraceEnum_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO
from pyro.infer.autoguide import AutoDelta, AutoLowRankMultivariateNormal, AutoMultivariateNormal, AutoNormal

from ppgen.errors import UnknownNameError
from ppgen.inference import load_all
from ppgen.init import init_to_median

__all__ = ["register_guide", "register_elbo", "make_guide", "make_elbo"]

GUIDES: dict[str, Callable] = {
    "normal": lambda model: AutoNormal(model, init_loc_fn=init_to_median),
    "delta": lambda model: AutoDelta(model, init_loc_fn=init_to_median),
    "mvn": lambda model: AutoMultivariateNormal(model, init_loc_fn=init_to_median),
    "lowrank": lambda model: AutoLowRankMultivariateNormal(model, init_loc_fn=init_to_median),
}

ELBOS: dict[str, Callable] = {
    "trace": lambda num_particles: Trace_ELBO(num_particles=num_particles),
    "tracegraph": lambda num_particles: TraceGraph_ELBO(num_particles=num_particles),
    "meanfield": lambda num_particles: TraceMeanField_ELBO(num_particles=num_particles),
    "enum": lambda num_particles: TraceEnum_ELBO(num_particles=num_particles),
}


def register_guide(name: str, factory: Callable) -> None:
    """Make ``guide=name`` available: ``factory(model) -> guide``."""
    GUIDES[name] = factory


def register_elbo(name: str, factory: Callable) -> None:
    """Make ``elbo=name`` available: ``factory(num_particles) -> pyro.infer.ELBO``."""
    ELBOS[name] = factory


def make_guide(guide, model: Callable):
    if guide is None or callable(guide):
        return guide
    load_all()  # guides registered by other modules of this package
    if guide not in GUIDES:
        raise UnknownNameError(f"unknown guide {guide!r}; guides: {', '.join(sorted(GUIDES))}, or pass a callable")
    return GUIDES[guide](model)


def make_elbo(elbo, num_particles: int = 1):
    if not isinstance(elbo, str):
        return elbo
    load_all()  # objectives registered by other modules of this package
    if elbo not in ELBOS:
        raise UnknownNameError(f"unknown elbo {elbo!r}; objectives: {', '.join(sorted(ELBOS))}, or pass a Pyro ELBO")
    return ELBOS[elbo](num_particles)
