"""The front door's entry points: ``ppgen.fit``, ``ppgen.prepare`` and ``ppgen.prior_predictive``, which
take a model by registered name as well as a program, an object, a factory's spec or a file."""
from __future__ import annotations

import sys

import pyro
import torch

from ppgen import inference, models, predictive
from ppgen import problem as problems
from ppgen.errors import ConfigError
from ppgen.problem import Problem
from ppgen.results import Fit
from ppgen.spec import ModelSpec, spec_of

__all__ = ["fit", "prepare", "prior_predictive", "resolve_model"]


def resolve_model(model) -> ModelSpec:
    """The :class:`~ppgen.spec.ModelSpec` of a registered name (``ppgen.models.names()``), or of
    anything :func:`ppgen.spec.spec_of` takes."""
    if isinstance(model, str) and not (":" in model and model.split(":")[0].endswith(".py")):
        return models.get(model)
    return spec_of(model)


def prepare(model, data: dict | None = None, device="auto", dtype: torch.dtype | None = None,
            require_observed: bool = True) -> Problem:
    """:func:`ppgen.problem.prepare` for any model :func:`resolve_model` takes."""
    return problems.prepare(resolve_model(model), data, device=device, dtype=dtype, require_observed=require_observed)


def prior_predictive(model, data: dict | None = None, num_samples: int = 500, seed: int = 0, device="auto",
                     dtype: torch.dtype | None = None):
    """:func:`ppgen.predictive.prior_predictive` for any model :func:`resolve_model` takes."""
    return predictive.prior_predictive(resolve_model(model), data, num_samples=num_samples, seed=seed,
                                       device=device, dtype=dtype)


def fit(model, data: dict | None = None, method: str = "nuts", guide=None, num_samples: int = 1000,
        num_warmup: int = 1000, num_chains: int = 1, steps: int = 2000, seed: int = 0, device="auto",
        dtype: torch.dtype | None = None, progress: bool = True, checkpoint_dir=None, **options) -> Fit:
    """Fit ``model`` to ``data`` with ``method``.

    :param model: a Pyro program taking the data as keyword arguments, a registered name
        (``ppgen.models.names()``), ``"path/to/file.py:function"``, an object with ``model``/``guide``
        methods, or a :class:`~ppgen.problem.Problem` already validated by :func:`prepare` (then
        ``data``, ``device`` and ``dtype`` are its own).
    :param data: dict of arrays, lists, scalars or tensors (``None``: the model's bundled data).
    :param method: one of ``ppgen.inference.names()``.
    :param guide: for ``svi``/``map``: a guide callable or a guide name (``"normal"``, ``"mvn"``, ...).
    :param num_samples: posterior draws per chain (MCMC) or from the guide (SVI; 0 skips them).
    :param num_warmup: MCMC warmup (adaptation) steps per chain.
    :param steps: optimization steps for ``svi``/``map``.
    :param device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``: where the data and every tensor live.
    :param dtype: floating dtype for array data (default: torch's default dtype).
    :param progress: progress bars where they can redraw (a terminal, a notebook); in a log or a pipe,
        a line when the fit starts and one when it ends.
    :param checkpoint_dir: a folder for long runs: SVI saves its state there every
        ``checkpoint_every`` steps, MCMC each finished chain; a run pointed at a folder that holds
        such state resumes from it. SIGINT/SIGTERM stop cleanly after saving.
    :param options: method-specific options, each checked by the method (``ppgen.inference.get(method).options``:
        ``lr``, ``elbo``, ``num_particles``, ``clip_norm`` for SVI; ``jit``, ``target_accept_prob``,
        ``max_tree_depth`` for NUTS; ...).

    The options, then the model and data together, are validated before any fitting
    (:class:`ppgen.ConfigError`, :class:`ppgen.DataError`).
    """
    inference.check_settings(method, options, num_samples=num_samples, num_warmup=num_warmup, steps=steps,
                             num_chains=num_chains)
    if isinstance(model, Problem) and data is not None:
        raise ConfigError("a prepared Problem carries its own data: pass data=None")
    pyro.set_rng_seed(seed)  # one seed fixes torch, numpy and Python's RNGs (a factory's networks too);
                             # JAX keys derive from it
    problem = model if isinstance(model, Problem) else prepare(model, data, device=device, dtype=dtype)
    bars = progress and _redraws()
    if progress and not bars:  # a log or a pipe gets one line per stage, not a bar's carriage returns
        print(f"ppgen: {method} on {problem.name} ...", file=sys.stderr, flush=True)
    result = inference.run(problem, method, guide=guide, num_samples=num_samples, num_warmup=num_warmup,
                           num_chains=num_chains, steps=steps, seed=seed, progress=bars,
                           checkpoint_dir=checkpoint_dir, **options)
    if progress and not bars:
        print(f"ppgen: {method} on {problem.name}: done in {result.seconds:.1f} s", file=sys.stderr, flush=True)
    result.config = {"model": problem.name, "method": method, "num_samples": num_samples, "num_warmup": num_warmup,
                     "num_chains": num_chains, "steps": steps, "seed": seed, "device": str(problem.device),
                     "dtype": str(problem.dtype), "guide": guide if isinstance(guide, str) or guide is None else
                     getattr(guide, "__name__", type(guide).__name__),
                     "options": {k: v if isinstance(v, (int, float, str, bool)) else repr(v)
                                 for k, v in options.items()}}
    return result


def _redraws() -> bool:
    """Whether a progress bar can redraw in place: stderr is a terminal, or a notebook shows it."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules
