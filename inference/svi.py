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
import inspect
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
from pyro.infer.util import is_validation_enabled, zero_grads
from pyro.poutine.messenger import Messenger
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
from ppgen.nets import ModuleParams
from ppgen.problem import Problem, RunConfig
from ppgen.results import Fit
from ppgen.runfolder import read_torch, write_torch

__all__ = ["SVI", "SVIState", "SingleOptimizer", "train", "guide_pareto_k"]

PARETO_DRAWS = 1000  # guide draws the Pareto k-hat of a fitted guide is estimated from
PARETO_BUDGET = 2**24  # data elements times draws: beyond it k-hat is not computed
PARETO_MAX_LATENT = 1000  # latent values per guide draw: beyond it (local latents of many data points) neither
                          # is one joint importance weight informative nor its cost small

class SingleOptimizer:
    """The ``optim`` of :class:`SVI` by default: one ``torch.optim`` optimizer (``optimizer``, Adam
    unless given, with ``optim_args``) over every parameter the loop hands it, where ``pyro.optim``
    builds one optimizer per tensor and pays an optimizer step's fixed cost once per tensor.

    The math is ``pyro.optim``'s, parameter by parameter: each parameter has its own state and step
    count; a step moves only the parameters of that step's trace, a parameter without a gradient in
    it is skipped until its first gradient and takes a zero gradient after that (``pyro.optim`` zeroes
    gradients, it does not drop them); ``clip_norm`` clips each parameter's gradient by its own norm,
    as ``pyro.optim``'s ``clip_args={"clip_norm": ...}`` do. :meth:`get_state` and :meth:`set_state`
    use ``pyro.optim``'s format, one single-tensor optimizer state per parameter name, so a checkpoint
    written with either resumes with the other.

    Example:
        >>> import torch
        >>> optim = SingleOptimizer(torch.optim.Adam, {"lr": 0.01})   # what SVI(..., lr=0.01) uses
    """

    def __init__(self, optimizer: type = torch.optim.Adam, optim_args: dict | None = None,
                 clip_norm: float | None = None):
        self.optimizer_class, self.optim_args, self.clip_norm = optimizer, dict(optim_args or {}), clip_norm
        if "foreach" not in self.optim_args and "foreach" in inspect.signature(optimizer).parameters:
            # torch's multi-tensor kernels, which torch itself uses on a GPU: on the CPU as well, one call per
            # operation rather than one per operation and tensor, with the same numbers (the same arithmetic
            # on each tensor; tests/test_svi_overheads.py compares them bit for bit)
            self.optim_args["foreach"] = True
        self.optimizer: torch.optim.Optimizer | None = None
        self._known: dict = {}     # every parameter in self.optimizer (a dict: tensors hash by identity)
        self._waiting: dict = {}   # name -> saved state (set_state) of a parameter not seen since
        self._defaults: dict | None = None

    def __call__(self, params) -> None:
        """One step of the parameters ``params`` (those of this step's trace)."""
        params = list(params)
        if not params:  # a program without parameters
            return
        new = [p for p in params if p not in self._known]
        if new:
            self._add(new)
        state = self.optimizer.state
        for p in params:
            if p.grad is None and state.get(p):  # stepped before: pyro.optim would see a zeroed gradient
                p.grad = torch.zeros_like(p)
        if self.clip_norm is not None:
            for p in params:
                torch.nn.utils.clip_grad_norm_(p, self.clip_norm)
        if len(params) == len(self._known):
            self.optimizer.step()
            return
        current = set(params)  # a parameter outside this step's trace does not move, whatever its gradient
        held = [(p, p.grad) for p in self._known if p not in current and p.grad is not None]
        for p, _ in held:
            p.grad = None
        try:
            self.optimizer.step()
        finally:
            for p, grad in held:
                p.grad = grad

    def _add(self, new: list) -> None:
        store = pyro.get_param_store()
        if self._defaults is None:
            self._defaults = _hyper(self.optimizer_class([new[0]], **self.optim_args).param_groups[0])
        batches: list[tuple[dict, list]] = []  # (hyperparameters, parameters) of the new parameters
        loaded = {}
        for p in new:
            saved = self._waiting.pop(store.param_name(p), None)
            hyper = self._defaults
            if saved is not None:  # pyro.optim's per-tensor state: load it as a one-tensor optimizer would
                one = self.optimizer_class([p], **self.optim_args)
                one.load_state_dict(saved)
                hyper = _hyper(one.param_groups[0])
                if "foreach" in hyper:  # how the arithmetic is dispatched, not what it is: this optimizer's choice
                    hyper["foreach"] = self._defaults["foreach"]
                if one.state.get(p):
                    loaded[p] = one.state[p]
            batch = next((b for b in batches if _same(b[0], hyper)), None)
            if batch is None:
                batches.append((hyper, [p]))
            else:
                batch[1].append(p)
        for hyper, ps in batches:
            if self.optimizer is None and _same(hyper, self._defaults):
                self.optimizer = self.optimizer_class(ps, **self.optim_args)
                continue
            group = None if self.optimizer is None else next(
                (g for g in self.optimizer.param_groups if _same(_hyper(g), hyper)), None)
            if group is not None:
                group["params"].extend(ps)
            elif self.optimizer is None:
                self.optimizer = self.optimizer_class(ps, **self.optim_args)
                self.optimizer.param_groups[0].update(hyper)
            else:
                self.optimizer.add_param_group({**hyper, "params": ps})
        for p in new:
            self._known[p] = None
        self.optimizer.state.update(loaded)

    def get_state(self) -> dict:
        """``{param name: the state dict of a one-parameter optimizer}``, as ``pyro.optim`` gives it."""
        store = pyro.get_param_store()
        out = dict(self._waiting)
        if self.optimizer is not None:
            for group in self.optimizer.param_groups:
                hyper = _hyper(group)
                for p in group["params"]:
                    name = store.param_name(p)
                    if name is not None:
                        state = self.optimizer.state.get(p)
                        out[name] = {"state": {0: dict(state)} if state else {},
                                     "param_groups": [{**hyper, "params": [0]}]}
        return out

    def set_state(self, state: dict) -> None:
        """Make ``state`` (from :meth:`get_state`, or ``pyro.optim``'s) the whole state: each parameter
        takes its saved state when it is next seen."""
        self.optimizer, self._known, self._waiting = None, {}, dict(state)


def _like(t: torch.Tensor) -> tuple:
    return t.shape, t.dtype, t.device


def _hyper(group: dict) -> dict:
    return {k: v for k, v in group.items() if k != "params"}


def _same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k, x in a.items():
        y = b[k]
        if torch.is_tensor(x) or torch.is_tensor(y):
            if not (torch.is_tensor(x) and torch.is_tensor(y) and x.shape == y.shape and bool((x == y).all())):
                return False
        elif type(x) is not type(y) or x != y:
            return False
    return True


class _ParamCapture(Messenger):
    """The params of one step by name (what ``poutine.trace(param_only=True)`` records, without
    building a trace); installed once per step, built once per :class:`SVI`."""

    def __init__(self):
        super().__init__()
        self.params: dict = {}

    def __enter__(self):
        self.params = {}
        return super().__enter__()

    def _pyro_post_param(self, msg) -> None:
        self.params[msg["name"]] = msg["value"]


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
    with ``optim`` (by default Adam with ``lr``, one ``torch.optim.Adam`` over all parameters: a
    :class:`SingleOptimizer`; ``clip_norm`` clips each parameter's gradient norm; any ``pyro.optim``
    optimizer works too).
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
        self.optim = optim or SingleOptimizer(torch.optim.Adam, {"lr": lr}, clip_norm=clip_norm)
        self._capture = _ParamCapture()

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
        """Make ``state`` the live one: the guide (and the model, replayed on it) called once so that
        they build their structure and register their parameters (as the run did before its first
        step), the saved values copied into those parameters, the optimizer's state, then the RNG states.

        Values go into the tensors the programs hold (a network registered with ``pyro.module`` keeps
        its own parameters, which a new tensor in the param store would leave behind, untrained); a
        saved param that no program registered, or of another shape, is set as a new tensor."""
        snapshot = copy.deepcopy(state.snapshot)
        store = pyro.get_param_store()
        with torch.no_grad(), poutine.block():
            guide_trace = poutine.trace(self.guide).get_trace(**data)
            try:
                poutine.replay(self.model, trace=guide_trace)(**data)
            except Exception:  # noqa: BLE001 - registration only: a model that cannot run here (one that takes
                pass           # gradients itself) registers at its first step, as before
        saved, fresh = snapshot["param_store"], {}
        with torch.no_grad():
            for name, value in saved["params"].items():
                live = store._params.get(name)
                if live is not None and _like(live) == _like(value):
                    live.copy_(value)
                else:
                    fresh[name] = value.requires_grad_(True)  # as the param store keeps its tensors
        store.set_state({"params": fresh, "constraints": saved["constraints"]})
        if snapshot["optim"] is not None and hasattr(self.optim, "set_state"):
            if isinstance(self.optim, pyro.optim.PyroOptim):  # its per-tensor optimizers would keep their state:
                self.optim.optim_objs.clear()                  # the saved one is taken up as each param is seen
                self.optim.grad_clip.clear()
            self.optim.set_state(snapshot["optim"])
        set_rng_state(snapshot["rng"])

    def update(self, state: SVIState, data: dict, validate: bool = False) -> tuple[SVIState, float]:
        """One step from the live ``state``: the new (live) state and the step's loss (-ELBO).

        A NaN/inf loss or gradient raises :class:`~ppgen.errors.NumericalError` naming the step and the
        params with bad gradients, before the optimizer touches them (the param store keeps the last
        good values)."""
        with pyro.validation_enabled(validate):
            loss = self._step(data, state.step)
        return SVIState(state.step + 1, [*state.losses, float(loss)]), loss

    def _step(self, data: dict, step: int):
        """One step (``step`` steps done before it): gradients, the NaN guard, the optimizer; the loss."""
        with self._capture as capture:
            loss = self.loss.loss_and_grads(self.model, self.guide, **data)
        own = getattr(self.loss, "registered", None)  # the objective of a ppgen model names its networks' params
        params = (own.params if isinstance(own, ModuleParams)
                  else {name: value.unconstrained() for name, value in capture.params.items()})
        if self.reduce is not None:
            loss = self.reduce(loss, params)
        if not _finite(loss, params):
            error = _numerical_error(loss, params, step)
            if error is not None:
                self._clear_grads(params.values())
                raise error
        self.optim(params.values())
        self._clear_grads(params.values())
        return loss

    def _clear_grads(self, params) -> None:
        if isinstance(self.optim, SingleOptimizer):  # dropped, not zeroed: the next backward writes them afresh
            for p in params:
                p.grad = None
        else:  # pyro.optim steps a parameter with a zero gradient
            zero_grads(params)

    def run(self, data: dict, steps: int, state: SVIState | None = None, *, seed: int | None = 0,
            progress: bool = True, log_every: int = 100, callback: Callable | None = None,
            checkpoint: str | Path | None = None, checkpoint_every: int = 100) -> SVIState:
        """Steps up to ``steps`` in all, from ``state`` (restored first where it holds a snapshot; a
        live state goes on as it is) or from :meth:`init` with ``seed``; returns the final state, with
        a snapshot. ``callback(step, loss)`` runs every ``log_every`` steps.

        With ``checkpoint`` (a file path), the state is saved every ``checkpoint_every`` steps, at the
        end, on a NaN, and on SIGINT/SIGTERM (which then raise :class:`Interrupted`). A resumed run
        gives bit-identical results on the CPU to an uninterrupted one.

        Pyro's argument validation (where it is enabled, as it is by default) checks the first step;
        the steps after it run without it, and a value that turns bad later is caught by the NaN guard.
        """
        return self._run(data, steps, state, seed=seed, progress=progress, log_every=log_every, callback=callback,
                         checkpoint=checkpoint, checkpoint_every=checkpoint_every)

    def _run(self, data: dict, steps: int, state: SVIState | None, *, seed, progress, log_every, callback,
             checkpoint, checkpoint_every, snapshot: bool = True) -> SVIState:
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        if state is None:
            state = self.init(seed)
        elif state.snapshot is not None:
            self.restore(state, data)
        start, done, losses = state.step, state.step, list(state.losses)
        validate = is_validation_enabled()
        bar = tqdm(desc="svi", mininterval=0.5, initial=start, total=steps) if progress else None
        try:
            with checkpointing.StopRequest() as stop:
                for done in range(start + 1, steps + 1):
                    try:
                        # arguments are checked on the first step only: later steps see the same kinds of
                        # values, and the checks cost up to a third of a small model's step
                        with pyro.validation_enabled(validate and done == start + 1):
                            loss = self._step(data, done - 1)
                    except NumericalError:
                        if checkpoint is not None:
                            self.snapshot(SVIState(done - 1, losses)).save(checkpoint)
                        raise
                    losses.append(float(loss))
                    if bar is not None:
                        bar.update()
                    if done % log_every == 0 or done == steps:
                        if bar is not None:
                            bar.set_postfix(loss=f"{float(loss):.4g}", refresh=False)
                        if callback is not None:
                            callback(done - 1, loss)
                    if checkpoint is not None and (done % checkpoint_every == 0 or done == steps or stop.requested):
                        self.snapshot(SVIState(done, losses)).save(checkpoint)
                    if stop.requested and done < steps:
                        where = f"; saved to {checkpoint}" if checkpoint is not None else ""
                        raise checkpointing.Interrupted(f"SVI interrupted after step {done} of {steps}{where}",
                                                        step=done)
        finally:
            if bar is not None:
                bar.close()
        final = SVIState(done, losses)
        return self.snapshot(final) if snapshot else final


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
    state = svi._run(data, steps, state, seed=seed, progress=progress, log_every=log_every, callback=callback,
                     checkpoint=checkpoint, checkpoint_every=checkpoint_every, snapshot=False)  # no copies to return
    return state.losses


def _finite(loss, params: dict) -> bool:
    """Whether the loss and every gradient are finite (the cheap path: one reduction, one sync)."""
    grads = [p.grad for p in params.values() if p.grad is not None]
    if isinstance(loss, float):  # Pyro's ELBOs return the loss as a number
        if not math.isfinite(loss):
            return False
        return not grads or bool(torch.isfinite(torch.stack([g.sum() for g in grads]).sum()))
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
    elbo = opts.pop("elbo", None) or _own_objective(problem, model, guide, opts, parallel)
    elbo = elbo or ("enum" if problem.has_discrete else "trace")
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


def _own_objective(problem: Problem, model: Callable, guide: Callable, opts: dict, parallel) -> object | None:
    """The model's own objective where it has one (``objective()`` of the instance behind a registered
    model: a VAE's or a density model's, Trace_ELBO's numbers without the traces) and the fit trains
    its own two programs by the default ELBO with one particle, in one process."""
    instance = problem.instance
    if (parallel is not None or opts.get("num_particles", 1) != 1 or not hasattr(instance, "objective")
            or model != getattr(instance, "model", None) or guide != getattr(instance, "guide", None)):
        return None
    return instance.objective()


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
