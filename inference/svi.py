"""Stochastic variational inference: the one optimization loop of ppgen, and the ``svi`` and ``map``
methods built on it.

SVI maximizes the evidence lower bound

    ELBO(q) = E_q[log p(x, z) - log q(z)] <= log p(x)

over a guide q by stochastic gradients (:func:`train`). ``svi`` uses a mean-field Normal guide
(``AutoNormal``) unless given another; ``map`` uses point masses (``AutoDelta``), which turns the
ELBO into the log joint: maximum a posteriori. Discrete latents are summed out exactly
(``TraceEnum_ELBO``) rather than put in the guide.

Guides and objectives are looked up by name in two small registries that other modules extend:
:func:`register_guide` and :func:`register_elbo`.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import pyro
import pyro.optim
import pyro.poutine as poutine
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO
from pyro.infer.autoguide import AutoDelta, AutoLowRankMultivariateNormal, AutoMultivariateNormal, AutoNormal
from pyro.infer.util import zero_grads
from tqdm.auto import tqdm

from ppgen import posterior
from ppgen.inference import checkpoint as checkpointing
from ppgen.errors import NumericalError, UnknownNameError
from ppgen.full_data import FullData
from ppgen.inference import load_all, register
from ppgen.init import init_to_median
from ppgen.problem import Problem, RunConfig
from ppgen.results import Fit

__all__ = ["train", "register_guide", "register_elbo", "make_guide", "make_elbo"]

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


def train(model: Callable, guide: Callable, data: dict, *, steps: int, lr: float = 0.01, optim=None,
          elbo="trace", num_particles: int = 1, seed: int | None = 0, progress: bool = True,
          clip_norm: float | None = None, log_every: int = 100, callback: Callable | None = None,
          checkpoint: str | Path | None = None, checkpoint_every: int = 100,
          reduce: Callable | None = None) -> list[float]:
    """Maximize the ELBO of ``guide`` for ``model`` on ``data`` (keyword arguments of both) for
    ``steps`` steps of ``optim`` (Adam with ``lr`` by default). Returns the per-step losses (-ELBO).

    A NaN/inf loss or gradient stops the loop with :class:`~ppgen.errors.NumericalError` naming the
    step and the params with bad gradients, before the optimizer touches them: the param store keeps
    the last good values (and so does the checkpoint, if any). ``callback(step, loss)`` runs every
    ``log_every`` steps.

    With ``checkpoint`` (a file path), the state is saved every ``checkpoint_every`` steps, at the
    end, on a NaN, and on SIGINT/SIGTERM (which then raise :class:`Interrupted`); if the file exists
    the run resumes from it, giving bit-identical results on the CPU to an uninterrupted run.

    ``reduce(loss, params) -> loss`` runs after each backward pass, before the NaN check and the
    optimizer: data-parallel training (:mod:`~ppgen.inference.distributed`) sums the gradients and
    the loss over processes there.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    loss_fn = make_elbo(elbo, num_particles)
    clip = {"clip_norm": clip_norm} if clip_norm else None
    optim = optim or pyro.optim.Adam({"lr": lr}, clip_args=clip)
    start, losses = 0, []
    if checkpoint is not None and Path(checkpoint).exists():
        start, losses = checkpointing.load_svi(Path(checkpoint), optim, lambda: _warm_up(guide, data))
    elif seed is not None:
        pyro.set_rng_seed(seed)
    bar = tqdm(range(start, steps), desc="svi", disable=not progress, mininterval=0.5, initial=start, total=steps)
    with checkpointing.StopRequest() as stop:
        for step in bar:
            # arguments are validated on the first step; after that the same code sees the same kinds
            # of values, and the checks cost up to a third of a small model's step
            with poutine.trace(param_only=True) as captured, pyro.validation_enabled(step == start):
                loss = loss_fn.loss_and_grads(model, guide, **data)
            params = {site["name"]: site["value"].unconstrained() for site in captured.trace.nodes.values()}
            if reduce is not None:
                loss = reduce(loss, params)
            try:
                _check_finite(loss, params, step)
            except NumericalError:
                if checkpoint is not None:
                    zero_grads(params.values())
                    checkpointing.save_svi(Path(checkpoint), step, losses, optim)
                raise
            optim(params.values())
            zero_grads(params.values())
            losses.append(float(loss))
            done = step + 1
            if done % log_every == 0 or done == steps:
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                if callback is not None:
                    callback(step, loss)
            if checkpoint is not None and (done % checkpoint_every == 0 or done == steps or stop.requested):
                checkpointing.save_svi(Path(checkpoint), done, losses, optim)
            if stop.requested and done < steps:
                where = f"; saved to {checkpoint}" if checkpoint is not None else ""
                raise checkpointing.Interrupted(f"SVI interrupted after step {done} of {steps}{where}", step=done)
    return losses


def _warm_up(guide: Callable, data: dict) -> None:
    """Call the guide once so it builds its structure (an autoguide traces the model): done before
    restoring the RNG state on resume, as the uninterrupted run did it before its first step."""
    with torch.no_grad(), poutine.block():
        guide(**data)


def _check_finite(loss, params: dict, step: int) -> None:
    grads = [p.grad for p in params.values() if p.grad is not None]
    total = torch.stack([g.sum() for g in grads]).sum() + loss if grads else torch.as_tensor(loss)
    if torch.isfinite(total):  # the cheap path: one reduction, one sync
        return
    bad = tuple(n for n, p in params.items() if p.grad is not None and not torch.isfinite(p.grad).all())
    if not bad and math.isfinite(float(loss)):
        return  # finite values whose sum overflowed
    what = f"gradient of {', '.join(bad)}" if bad else "loss"
    raise NumericalError(f"SVI step {step}: the {what} became NaN/inf (loss={float(loss)}); the param store "
                         f"keeps the values before this step. Try a smaller lr, clip_norm=..., or check the data.",
                         step=step, sites=bad)


def _fit_variational(problem: Problem, config: RunConfig, default_guide: str) -> Fit:
    from ppgen.inference import distributed

    opts = dict(config.options)
    model, guide_model = problem.enum_model, problem.continuous_model
    parallel = distributed.DataParallel.for_problem(problem) if distributed.launched() else None
    if parallel is not None:  # under torchrun: this process fits its shard; gradients are summed over processes
        model, guide_model, opts["reduce"] = parallel.shard(model), parallel.shard(guide_model), parallel.reduce
    chosen = next(g for g in (config.guide, problem.guide, default_guide) if g is not None)
    guide = make_guide(chosen, guide_model)
    elbo = opts.pop("elbo", "enum" if problem.has_discrete else "trace")
    if problem.has_discrete and isinstance(elbo, str) and elbo != "enum":
        raise UnknownNameError(f"model {problem.name!r} has discrete latents {problem.names('discrete')}; "
                               f"they are summed out by elbo='enum', not {elbo!r}")
    if isinstance(elbo, str) and elbo == "enum":
        elbo = TraceEnum_ELBO(num_particles=opts.pop("num_particles", 1), max_plate_nesting=problem.max_plate_nesting)
    pyro.clear_param_store()  # every fit starts afresh (a checkpoint, if any, restores its own state)
    start = time.perf_counter()
    with problem.placement():
        if config.checkpoint_dir is not None:
            opts.setdefault("checkpoint", Path(config.checkpoint_dir) / "checkpoint.pt")
        if parallel is not None:
            guide = parallel.shard(guide)
            parallel.synchronize(model, guide, problem.data, seed=config.seed)
        losses = train(model, guide, problem.data, steps=config.steps, seed=config.seed,
                       progress=config.progress and (parallel is None or parallel.rank == 0), elbo=elbo, **opts)
        if parallel is not None:  # the trained guide covers this process's rows: draw from one over all rows
            guide = make_guide(chosen, problem.continuous_model)
        errors = {}
        chains = _guide_draws(problem, guide, config, errors)
    seconds = time.perf_counter() - start
    params = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    tail = losses[-min(len(losses), 100):]
    diagnostics = {"final_loss": sum(tail) / len(tail)}
    if config.method == "svi":  # with a point-mass guide the objective is the log joint, not a bound
        diagnostics["elbo"] = -diagnostics["final_loss"]
    return Fit(method=config.method, model_name=problem.name, chains=chains, seconds=seconds, losses=losses,
               diagnostics=diagnostics, params=params, guide=guide, problem=problem, errors=errors)


def _guide_draws(problem: Problem, guide, config: RunConfig, errors: dict) -> dict:
    """``num_samples`` draws of every latent from the guide (discrete ones from their exact
    conditional), as one chain."""
    if config.num_samples <= 0 or not problem.names("latent", "discrete"):
        return {}
    latent = problem.names("latent")
    guide = FullData()(guide) if problem.subsampled else guide  # local latents for every row, not a minibatch
    with torch.no_grad(), poutine.block():
        draws = posterior.guide_draws(problem, guide, latent, config.num_samples) if latent else {}
        draws = posterior.completed(problem, draws, errors, num_draws=config.num_samples)
    return {k: v.unsqueeze(0) for k, v in draws.items()}


OPTIONS = ("lr", "elbo", "num_particles", "optim", "clip_norm", "log_every", "callback", "checkpoint_every")


@register("svi", family="variational", options=OPTIONS)
def run_svi(problem: Problem, config: RunConfig) -> Fit:
    """Variational inference (Trace_ELBO; AutoNormal guide unless one is given)."""
    return _fit_variational(problem, config, "normal")


@register("map", family="variational", options=OPTIONS)
def run_map(problem: Problem, config: RunConfig) -> Fit:
    """Maximum a posteriori point estimate (AutoDelta guide)."""
    return _fit_variational(problem, config, "delta")
