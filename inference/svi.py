"""Stochastic variational inference: the one optimization loop of ppgen, and the ``svi`` and ``map``
methods built on it.

SVI maximizes the evidence lower bound

    ELBO(q) = E_q[log p(x, z) - log q(z)] <= log p(x)

over a guide q by stochastic gradients (:func:`train`). ``svi`` uses a mean-field Normal guide
(``AutoNormal``) unless given another; ``map`` uses point masses (``AutoDelta``), which turns the
ELBO into the log joint: maximum a posteriori. Discrete latents are summed out exactly
(``TraceEnum_ELBO``) rather than put in the guide.

Guides and objectives given by name are looked up in :mod:`ppgen.inference.objectives`.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyro
import pyro.optim
import pyro.poutine as poutine
import torch
from pyro.infer import TraceEnum_ELBO
from pyro.infer.autoguide import AutoDelta
from pyro.infer.util import zero_grads
from pyro.util import get_rng_state, set_rng_state
from tqdm.auto import tqdm

from ppgen import posterior
from ppgen.arviz_bridge import az
from ppgen.errors import NumericalError, RunFolderError, UnknownNameError
from ppgen.handlers.full_data import FullData
from ppgen.inference import checkpoint as checkpointing
from ppgen.inference import distributed, register
from ppgen.inference.bounds import importance_sample
from ppgen.inference.objectives import make_elbo, make_guide
from ppgen.inference.options import anything, positive, positive_int
from ppgen.problem import Problem, RunConfig
from ppgen.results import Fit
from ppgen.runfolder import read_torch, write_torch

__all__ = ["SVI", "SVIState", "train", "guide_pareto_k"]

PARETO_DRAWS = 1000  # guide draws the Pareto k-hat of a fitted guide is estimated from
PARETO_BUDGET = 2**24  # data elements times draws: beyond it k-hat is not computed
PARETO_MAX_LATENT = 1000  # latent values per guide draw: beyond it (local latents of many data points) neither
                          # is one joint importance weight informative nor its cost small

@dataclass
class SVIState:
    """Where an SVI run stands: ``step`` steps done, their ``losses``, and (``snapshot``) copies of
    what the next step reads: the param store, the optimizer's state and the RNG states. A state
    :meth:`SVI.update` returns has no snapshot: it is the live state, the param store as it is now.
    """

    step: int
    losses: list
    snapshot: dict | None = None

    def save(self, path: str | Path) -> None:
        """Write the state (with its snapshot) to ``path`` atomically."""
        if self.snapshot is None:
            raise ValueError("a live state has no snapshot to save: take one with SVI.snapshot(state)")
        write_torch(Path(path), {"format": checkpointing.SVI_FORMAT, "step": self.step, "losses": list(self.losses),
                                 **self.snapshot})

    @classmethod
    def load(cls, path: str | Path) -> SVIState:
        """A state saved by :meth:`save` (an unreadable or foreign file is refused)."""
        state = read_torch(Path(path), "a ppgen checkpoint", weights_only=False)  # RNG and optimizer states
        if not isinstance(state, dict) or state.get("format") != checkpointing.SVI_FORMAT:
            raise RunFolderError(f"{str(path)!r} is not a {checkpointing.SVI_FORMAT} checkpoint")
        return cls(state["step"], list(state["losses"]),
                   {k: state[k] for k in ("param_store", "optim", "rng")})


class SVI:
    r"""Stochastic variational inference for one model/guide pair, as NumPyro's ``SVI`` is shaped: an
    explicit state, :meth:`init`, :meth:`update` and :meth:`run`, and a run resumed by passing its
    state back. It maximizes

        ELBO(q) = E_q[log p(x, z) - log q(z)] <= log p(x)

    by stochastic gradients of ``elbo`` (a name, see :mod:`ppgen.inference.objectives`, or a Pyro ELBO)
    with ``optim`` (Adam with ``lr`` by default; ``clip_norm`` clips the gradients' norm).
    ``reduce(loss, params) -> loss`` runs after each backward pass, before the NaN check and the
    optimizer: data-parallel training (:mod:`~ppgen.inference.distributed`) sums the gradients and
    the loss over processes there.

    Example:
        >>> import torch, pyro, pyro.distributions as dist
        >>> from pyro.infer.autoguide import AutoDelta
        >>> def model(y):
        ...     mu = pyro.sample("mu", dist.Normal(0., 10.))
        ...     with pyro.plate("n", len(y)):
        ...         pyro.sample("y", dist.Normal(mu, 1.), obs=y)
        >>> svi = SVI(model, AutoDelta(model), lr=0.1)
        >>> data = {"y": torch.full((20,), 3.0)}
        >>> state = svi.run(data, 100, progress=False)                  # 100 steps
        >>> state = svi.run(data, 300, state=state, progress=False)     # resumed: steps 101..300
        >>> state.step, round(pyro.param("AutoDelta.mu").item(), 1)
        (300, 3.0)
    """

    def __init__(self, model: Callable, guide: Callable, optim=None, elbo="trace", *, lr: float = 0.01,
                 num_particles: int = 1, clip_norm: float | None = None, reduce: Callable | None = None):
        self.model, self.guide, self.reduce = model, guide, reduce
        self.loss = make_elbo(elbo, num_particles)
        self.optim = optim or pyro.optim.Adam({"lr": lr}, clip_args={"clip_norm": clip_norm} if clip_norm else None)

    def init(self, seed: int | None = 0) -> SVIState:
        """The state before the first step, the RNGs seeded with ``seed`` (``None``: as they are)."""
        if seed is not None:
            pyro.set_rng_seed(seed)
        return SVIState(0, [])

    def snapshot(self, state: SVIState) -> SVIState:
        """``state`` with copies of the param store, the optimizer's state and the RNG states."""
        store = pyro.get_param_store().get_state()
        params = {"params": {k: v.detach().clone() for k, v in store["params"].items()},
                  "constraints": dict(store["constraints"])}
        optim = copy.deepcopy(self.optim.get_state()) if hasattr(self.optim, "get_state") else None
        return SVIState(state.step, list(state.losses), {"param_store": params, "optim": optim, "rng": get_rng_state()})

    def restore(self, state: SVIState, data: dict) -> None:
        """Make ``state`` the live one: its param store and optimizer state, the guide called once so
        that it builds its structure (as the run did before its first step), then its RNG states."""
        snapshot = copy.deepcopy(state.snapshot)
        pyro.get_param_store().set_state(snapshot["param_store"])
        if snapshot["optim"] is not None and hasattr(self.optim, "set_state"):
            self.optim.set_state(snapshot["optim"])
        with torch.no_grad(), poutine.block():
            self.guide(**data)
        set_rng_state(snapshot["rng"])

    def update(self, state: SVIState, data: dict, validate: bool = False) -> tuple[SVIState, float]:
        """One step from the live ``state``: the new (live) state and the step's loss (-ELBO).

        A NaN/inf loss or gradient raises :class:`~ppgen.errors.NumericalError` naming the step and the
        params with bad gradients, before the optimizer touches them (the param store keeps the last
        good values)."""
        with poutine.trace(param_only=True) as captured, pyro.validation_enabled(validate):
            loss = self.loss.loss_and_grads(self.model, self.guide, **data)
        params = {site["name"]: site["value"].unconstrained() for site in captured.trace.nodes.values()}
        if self.reduce is not None:
            loss = self.reduce(loss, params)
        if not _finite(loss, params):
            error = _numerical_error(loss, params, state.step)
            if error is not None:
                zero_grads(params.values())
                raise error
        self.optim(params.values())
        zero_grads(params.values())
        return SVIState(state.step + 1, [*state.losses, float(loss)]), loss

    def run(self, data: dict, steps: int, state: SVIState | None = None, *, seed: int | None = 0,
            progress: bool = True, log_every: int = 100, callback: Callable | None = None,
            checkpoint: str | Path | None = None, checkpoint_every: int = 100) -> SVIState:
        """Steps up to ``steps`` in all, from ``state`` (restored first where it holds a snapshot; a
        live state goes on as it is) or from :meth:`init` with ``seed``; returns the final state, with
        a snapshot. ``callback(step, loss)`` runs every ``log_every`` steps.

        With ``checkpoint`` (a file path), the state is saved every ``checkpoint_every`` steps, at the
        end, on a NaN, and on SIGINT/SIGTERM (which then raise :class:`Interrupted`). A resumed run
        gives bit-identical results on the CPU to an uninterrupted one.
        """
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if state is None:
            state = self.init(seed)
        elif state.snapshot is not None:
            self.restore(state, data)
        start = state.step
        bar = tqdm(range(start, steps), desc="svi", disable=not progress, mininterval=0.5, initial=start, total=steps)
        with checkpointing.StopRequest() as stop:
            for _ in bar:
                # arguments are validated on the first step; after that the same code sees the same kinds
                # of values, and the checks cost up to a third of a small model's step
                try:
                    state, loss = self.update(state, data, validate=state.step == start)
                except NumericalError:
                    if checkpoint is not None:
                        self.snapshot(state).save(checkpoint)
                    raise
                done = state.step
                if done % log_every == 0 or done == steps:
                    bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                    if callback is not None:
                        callback(done - 1, loss)
                if checkpoint is not None and (done % checkpoint_every == 0 or done == steps or stop.requested):
                    self.snapshot(state).save(checkpoint)
                if stop.requested and done < steps:
                    where = f"; saved to {checkpoint}" if checkpoint is not None else ""
                    raise checkpointing.Interrupted(f"SVI interrupted after step {done} of {steps}{where}", step=done)
        return self.snapshot(state)


def train(model: Callable, guide: Callable, data: dict, *, steps: int, lr: float = 0.01, optim=None,
          elbo="trace", num_particles: int = 1, seed: int | None = 0, progress: bool = True,
          clip_norm: float | None = None, log_every: int = 100, callback: Callable | None = None,
          checkpoint: str | Path | None = None, checkpoint_every: int = 100,
          reduce: Callable | None = None) -> list[float]:
    """:class:`SVI` ``.run`` in one call: maximize the ELBO of ``guide`` for ``model`` on ``data``
    (keyword arguments of both) for ``steps`` steps; returns the per-step losses (-ELBO). If the
    ``checkpoint`` file exists the run resumes from the state saved there."""
    svi = SVI(model, guide, optim, elbo, lr=lr, num_particles=num_particles, clip_norm=clip_norm, reduce=reduce)
    state = SVIState.load(checkpoint) if checkpoint is not None and Path(checkpoint).exists() else None
    state = svi.run(data, steps, state, seed=seed, progress=progress, log_every=log_every, callback=callback,
                    checkpoint=checkpoint, checkpoint_every=checkpoint_every)
    return state.losses


def _finite(loss, params: dict) -> bool:
    """Whether the loss and every gradient are finite (the cheap path: one reduction, one sync)."""
    grads = [p.grad for p in params.values() if p.grad is not None]
    total = torch.stack([g.sum() for g in grads]).sum() + loss if grads else torch.as_tensor(loss)
    return bool(torch.isfinite(total))


def _numerical_error(loss, params: dict, step: int) -> NumericalError | None:
    """The error to raise for a non-finite step (``None``: finite values whose sum overflowed)."""
    bad = tuple(n for n, p in params.items() if p.grad is not None and not torch.isfinite(p.grad).all())
    if not bad and math.isfinite(float(loss)):
        return None
    what = f"gradient of {', '.join(bad)}" if bad else "loss"
    return NumericalError(f"SVI step {step}: the {what} became NaN/inf (loss={float(loss)}); the param store "
                          f"keeps the values before this step. Try a smaller lr, clip_norm=..., or check the data.",
                          step=step, sites=bad)


def _fit_variational(problem: Problem, config: RunConfig, default_guide: str, bound: bool) -> Fit:
    """Fit the guide (``default_guide`` unless the caller or the model gives one); ``bound``: the
    objective is the ELBO (with a point-mass guide it is the log joint, not a bound on the evidence)."""
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
    diagnostics = {"final_loss": sum(tail) / len(tail), "guide_pareto_k": guide_pareto_k(problem, guide)}
    if bound:
        diagnostics["elbo"] = -diagnostics["final_loss"]
    return Fit(method=config.method, model_name=problem.name, chains=chains, seconds=seconds, losses=losses,
               diagnostics=diagnostics, params=params, guide=guide, problem=problem, errors=errors)


def guide_pareto_k(problem: Problem, guide, num_draws: int = PARETO_DRAWS) -> float | str:
    r"""The Pareto k-hat of a fitted guide q as an importance proposal for the posterior (Yao et
    al., 2018, "Yes, but did it work?"): the log weights

        log w_s = log p(x, z_s) - log q(z_s),    z_s ~ q,  s = 1..num_draws,

    of draws on all rows of the data, smoothed by PSIS (``az.psislw``); k-hat is the shape of the
    generalized Pareto distribution fitted to the largest weights. The posterior's tails past q's
    make the weights heavy-tailed: k < 0.5, q covers the posterior; 0.5 < k < 0.7, q is usable with
    care; k > 0.7, importance weights have (nearly) infinite variance: q misses posterior mass.

    A string says why it was not computed: a point-mass guide (MAP) has no density, discrete
    latents are summed out of the model rather than drawn by the guide, the data or the guide's
    draws are too large, or the program does not run under a vectorized plate of draws (the error)."""
    if isinstance(guide, AutoDelta):
        return "not computed: a point estimate (MAP) has no density, so its draws are one point, not a posterior"
    if problem.has_discrete:
        return "not computed: discrete latents are summed out of the model, not drawn by the guide"
    size = sum(v.numel() for v in problem.data.values() if torch.is_tensor(v))
    if size * num_draws > PARETO_BUDGET:
        return f"not computed: {num_draws} draws on {size} data elements exceed the budget of {PARETO_BUDGET}"
    model, guide = problem.full_model, (FullData()(guide) if problem.subsampled else guide)
    try:
        with problem.placement(), poutine.block():
            one = poutine.trace(guide).get_trace(**problem.data)
            latent = sum(site["value"].numel() for site in one.nodes.values()
                         if site["type"] == "sample" and not site["is_observed"])
            if latent > PARETO_MAX_LATENT:
                return (f"not computed: a guide draw holds {latent} latent values (more than {PARETO_MAX_LATENT}: "
                        f"local latents of every data point, as an amortized guide draws), where one joint "
                        f"importance weight is not informative")
            log_w = importance_sample(model, guide, problem.data, num_draws)
    except Exception as e:  # noqa: BLE001 - a post-fit check: the fit is kept whatever it raises
        return f"not computed: {type(e).__name__}: {e}"
    log_w = log_w.log_w.reshape(num_draws, -1).sum(-1).double().cpu().numpy()  # all data points: one joint weight
    _, k = az.psislw(log_w)
    return float(k)


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


OPTIONS = {"lr": positive, "elbo": anything, "num_particles": positive_int, "optim": anything, "clip_norm": positive,
           "log_every": positive_int, "callback": anything, "checkpoint_every": positive_int}


@register("svi", family="variational", options=OPTIONS)
def run_svi(problem: Problem, config: RunConfig) -> Fit:
    """Variational inference (Trace_ELBO; AutoNormal guide unless one is given)."""
    return _fit_variational(problem, config, "normal", bound=True)


@register("map", family="variational", options=OPTIONS)
def run_map(problem: Problem, config: RunConfig) -> Fit:
    """Maximum a posteriori point estimate (AutoDelta guide)."""
    return _fit_variational(problem, config, "delta", bound=False)
