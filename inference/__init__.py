"""The registry of inference methods, and :func:`run`, the one way to run one.

Each module in this package registers its engines with :func:`register` on import. An engine is a
function ``run(problem, config) -> Fit`` where ``problem`` is a validated
:class:`ppgen.problem.Problem` (model, data on its device, sites found by one trace) and ``config``
a :class:`ppgen.problem.RunConfig` (seed, draws, steps, guide, extra options). Each method declares
the options it takes with their checks (:mod:`ppgen.inference.options`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import pyro

from ppgen.errors import ConfigError, NotApplicableError, UnknownNameError
from ppgen.problem import Problem, RunConfig
from ppgen.registry import Registry

__all__ = ["MethodSpec", "register", "get", "names", "specs", "run", "FAMILIES"]

FAMILIES = ("mcmc", "variational", "exact", "importance")


@dataclass(frozen=True)
class MethodSpec:
    """An inference engine and what kind of answer it gives.

    :param family: ``"mcmc"`` (draws from the exact posterior), ``"variational"`` (an optimized
        approximation, draws from the guide), ``"exact"`` (enumeration) or ``"importance"``
        (weighted draws from a proposal, resampled: their error is the weights', not a chain's).
    :param backend: ``"pyro"`` or ``"numpyro"``: which backend runs the model program.
    :param options: the method-specific keyword arguments it takes, each with its check
        (``name -> check(name, value)``, raising :class:`~ppgen.errors.ConfigError`).
    :param discrete: the method samples discrete latents itself (a Bayes net's nodes), so it runs on
        a model whose latents are all discrete.
    """

    name: str
    run: Callable
    family: str
    description: str = ""
    backend: str = "pyro"
    options: Mapping[str, Callable] = field(default_factory=dict)
    discrete: bool = False

    def check(self, options: dict) -> None:
        """Refuse an option this method does not take, or a value its check refuses."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise UnknownNameError(f"method {self.name!r} takes no option(s) {', '.join(map(repr, unknown))}; "
                                   f"its options: {', '.join(self.options) or 'none'}")
        for name, value in options.items():
            self.options[name](name, value)


_REGISTRY: Registry[MethodSpec] = Registry(__name__, __path__, "method")
names, specs, get, load_all = _REGISTRY.names, _REGISTRY.specs, _REGISTRY.get, _REGISTRY.load_all


def register(name: str, *, family: str, backend: str = "pyro", description: str = "",
             options: Mapping[str, Callable] | None = None, discrete: bool = False) -> Callable:
    """Decorator registering ``run(problem, config) -> Fit`` under ``name``."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(map(repr, FAMILIES))}, not {family!r}")

    def decorator(engine: Callable) -> Callable:
        doc = description or (engine.__doc__ or "").strip().split("\n")[0]
        _REGISTRY.add(name, MethodSpec(name=name, run=engine, family=family, description=doc, backend=backend,
                                       options=dict(options or {}), discrete=discrete))
        return engine

    return decorator


def check_settings(method: str, options: dict, **settings: int) -> MethodSpec:
    """The method's spec, once its options and the common settings (``num_samples=...``) are valid."""
    spec = get(method)
    spec.check(options)
    least = {"num_samples": 0, "num_warmup": 0, "steps": 1, "num_chains": 1}
    for name, value in settings.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < least[name]:
            raise ConfigError(f"{name} must be an integer >= {least[name]}, got {value!r}")
    return spec


def run(problem: Problem, method: str, *, guide=None, num_samples: int = 1000, num_warmup: int = 1000,
        num_chains: int = 1, steps: int = 2000, seed: int = 0, progress: bool = True, checkpoint_dir=None,
        **options):
    """Run ``method`` on a prepared ``problem`` from ``seed``: the :class:`~ppgen.results.Fit`."""
    spec = check_settings(method, options, num_samples=num_samples, num_warmup=num_warmup, steps=steps,
                          num_chains=num_chains)
    if spec.family == "mcmc" and not spec.discrete and not problem.names("latent"):
        found = problem.names("discrete")
        hint = (f"its discrete latent(s) {', '.join(found)} are summed out exactly by method='enum'" if found
                else "fit its params with method='map' (maximum likelihood)")
        raise NotApplicableError(f"model {problem.name!r} has no continuous latent for {method} to sample: {hint}")
    config = RunConfig(method=method, guide=guide, num_samples=num_samples, num_warmup=num_warmup,
                       num_chains=num_chains, steps=steps, seed=seed, progress=progress, options=options,
                       checkpoint_dir=checkpoint_dir)
    pyro.set_rng_seed(seed)  # the run starts from the seed, whatever preparing drew (a trace)
    with pyro.validation_enabled(True):
        return spec.run(problem, config)
