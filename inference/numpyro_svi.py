r"""NumPyro's SVI on the same model program: ``numpyro-svi`` and ``numpyro-map``.

As ``svi`` and ``map`` do (:mod:`ppgen.inference.svi`), it maximizes the evidence lower bound

    ELBO(q) = E_q[log p(x, z) - log q(z)] <= log p(x)

over a guide q by stochastic gradients (Adam), here on a ``pyroapi`` program run under ppgen's
NumPyro backend (:mod:`ppgen.backend`) and compiled by JAX: each chunk of steps is one compiled
``lax.scan``. ``numpyro-svi`` uses a mean-field Normal guide (``AutoNormal``) unless given another;
``numpyro-map`` uses point masses (``AutoDelta``), which makes the ELBO the log joint (maximum a
posteriori). Discrete latents are summed out (``TraceEnum_ELBO``, through funsor), then drawn from
their exact conditional on the Pyro side, as for every engine (:func:`ppgen.posterior.completed`).

Guides by name: ``"normal"``, ``"delta"``, ``"mvn"``, ``"lowrank"`` (NumPyro's autoguides of the
same names as ``svi``'s), or a guide written with ``pyroapi``. Params keep NumPyro's names
(``mu_auto_loc``). A loss or gradient that turns NaN/inf stops the fit with
:class:`~ppgen.errors.NumericalError` at the values before that step. With a checkpoint folder the
state is saved every ``checkpoint_every`` steps (and at the end, on a NaN and on SIGINT/SIGTERM), and
a run pointed at a folder that holds one resumes from it.

What JAX compiles for a fit (the chunk of steps, the guide's draws, the importance weights) is kept
for the next fit of the same program on the same data with the same guide, objective and optimizer
(:func:`compiled_for`): another seed, more steps of the same chunk size, a resumed run or a comparison
pays no compilation again. The guide is set up afresh each fit, so a cached fit gives what a fresh
one gives.
"""
from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyro.poutine as poutine
import torch
from tqdm.auto import tqdm

from ppgen import posterior
from ppgen.arviz_bridge import az
from ppgen.backend import numpyro_backend, to_jax
from ppgen.errors import ConfigError, NotApplicableError, NumericalError, RunFolderError
from ppgen.inference import checkpoint as checkpointing
from ppgen.inference import register
from ppgen.inference.numpyro_nuts import check_runs_on_numpyro
from ppgen.inference.options import anything, positive, positive_int
from ppgen.inference.svi import PARETO_BUDGET, PARETO_DRAWS, PARETO_MAX_LATENT
from ppgen.problem import Problem, RunConfig
from ppgen.results import Fit
from ppgen.runfolder import read_torch, write_torch

GUIDES = {"normal": "AutoNormal", "delta": "AutoDelta", "mvn": "AutoMultivariateNormal",
          "lowrank": "AutoLowRankMultivariateNormal"}
ELBOS = {"trace": "Trace_ELBO", "tracegraph": "TraceGraph_ELBO", "meanfield": "TraceMeanField_ELBO",
         "enum": "TraceEnum_ELBO"}
CHUNKS = 20  # compiled scans per run without a checkpoint: the progress bar moves this often
CACHE_SIZE = 8  # fits whose compiled functions are kept (least recently used dropped first)
FORMAT = "ppgen-numpyro-svi-checkpoint/1"


def _guide(chosen, model, problem: Problem, method: str):
    """The guide ``chosen`` (a name or a pyroapi callable) for ``model``, its discrete latents hidden."""
    from numpyro import handlers
    from numpyro.infer import autoguide, init_to_median

    if callable(chosen):
        return chosen
    if chosen not in GUIDES:
        raise ConfigError(f"{method} has no guide {chosen!r}; its guides: {', '.join(sorted(GUIDES))}, or a callable "
                          f"written with `from pyroapi import pyro, distributions as dist`")
    covered = handlers.block(model, hide=problem.names("discrete")) if problem.has_discrete else model
    return getattr(autoguide, GUIDES[chosen])(covered, init_loc_fn=init_to_median)


def _elbo(problem: Problem, elbo, num_particles: int, method: str):
    """The ELBO ``elbo`` names (a NumPyro ELBO passes through): ``TraceEnum_ELBO`` over
    ``max_plate_nesting`` dims where the model has discrete latents, else ``Trace_ELBO``."""
    from numpyro import infer

    if not isinstance(elbo, str):
        return elbo
    if elbo not in ELBOS:
        raise ConfigError(f"{method} has no elbo {elbo!r}; its objectives: {', '.join(sorted(ELBOS))}, "
                          f"or pass a NumPyro ELBO")
    if problem.has_discrete and elbo != "enum":
        raise ConfigError(f"model {problem.name!r} has discrete latents {problem.names('discrete')}; "
                          f"they are summed out by elbo='enum', not {elbo!r}")
    if elbo == "enum":
        return infer.TraceEnum_ELBO(num_particles=num_particles, max_plate_nesting=problem.max_plate_nesting)
    return getattr(infer, ELBOS[elbo])(num_particles=num_particles)


def _numerical_error(svi, state, data: dict, step: int) -> NumericalError:
    """Replays the failed step (same state, same key) unguarded to name the params it made NaN/inf
    (with NumPyro's argument checks off: they would stop at the first distribution given a NaN)."""
    import jax.numpy as jnp
    from numpyro.distributions.distribution import validation_enabled

    with validation_enabled(False):
        new, loss = svi.update(state, **data)
    bad = tuple(k for k, v in svi.optim.get_params(new.optim_state).items() if not jnp.isfinite(v).all())
    what = f"gradient of {', '.join(bad)}" if bad else "loss"
    return NumericalError(f"SVI step {step}: the {what} became NaN/inf (loss={float(loss)}); the fit keeps the "
                          f"values before this step. Try a smaller lr, or check the data.", step=step, sites=bad)


def _save(path: Path, state, step: int, losses: list) -> None:
    import jax

    write_torch(path, {"format": FORMAT, "step": step, "losses": list(losses),
                       "state": [np.asarray(leaf) for leaf in jax.tree.leaves(state)]})


def _load(path: Path, state) -> tuple:
    """The saved state in the structure of ``state`` (a fresh ``svi.init``), its step and losses."""
    import jax
    import jax.numpy as jnp

    saved = read_torch(path, "a ppgen checkpoint", weights_only=False)
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise RunFolderError(f"{str(path)!r} is not a {FORMAT} checkpoint")
    leaves, tree = jax.tree.flatten(state)
    if [np.shape(v) for v in saved["state"]] != [np.shape(v) for v in leaves]:
        raise RunFolderError(f"{str(path)!r} holds the state of another model or guide")
    return jax.tree.unflatten(tree, [jnp.asarray(v) for v in saved["state"]]), saved["step"], list(saved["losses"])


def _train(compiled: Compiled, data: dict, config: RunConfig, opts: dict, key) -> tuple:
    """``config.steps`` steps of ``compiled.svi`` in compiled chunks: the final state and the per-step losses."""
    svi, size = compiled.svi, compiled.size
    checkpoint = Path(config.checkpoint_dir) / "checkpoint.pt" if config.checkpoint_dir is not None else None
    log_every, callback = opts.pop("log_every", 100), opts.pop("callback", None)
    compiled.fresh_guide()
    state, step, losses = svi.init(key, **data), 0, []
    if checkpoint is not None and checkpoint.exists():
        state, step, losses = _load(checkpoint, state)
    arrays = _arrays(data)

    bar = tqdm(desc=config.method, total=config.steps, initial=step, disable=not config.progress, mininterval=0.5)
    with checkpointing.StopRequest() as stop, bar:
        while step < config.steps:
            n = min(size, config.steps - step)
            state, chunk_losses = compiled.run(state, n, arrays)
            failed = np.flatnonzero(~np.isfinite(chunk_losses))
            taken = int(failed[0]) if failed.size else n
            losses += chunk_losses[:taken].tolist()
            if callback is not None:
                for done in range(step + 1, step + taken + 1):
                    if done % log_every == 0 or done == config.steps:
                        callback(done - 1, losses[done - 1])
            step += taken
            bar.update(taken)
            if taken:
                bar.set_postfix(loss=f"{losses[-1]:.4g}", refresh=False)
            if checkpoint is not None:
                _save(checkpoint, state, step, losses)
            if failed.size:
                raise _numerical_error(svi, state, data, step)
            if stop.requested and step < config.steps:
                where = f"; saved to {checkpoint}" if checkpoint is not None else ""
                raise checkpointing.Interrupted(f"SVI interrupted after step {step} of {config.steps}{where}",
                                                step=step)
    return state, losses


def _guide_draws(problem: Problem, compiled: Compiled, params: dict, data: dict, key) -> dict:
    """``num_samples`` draws of each continuous latent from the fitted guide, on all rows."""
    if compiled.draws is None:
        return {}
    samples = compiled.draws(key, params, _arrays(data))
    return {k: torch.as_tensor(np.array(v), dtype=problem.dtype) for k, v in samples.items()}


def _completed(problem: Problem, draws: dict, config: RunConfig, errors: dict) -> dict:
    """The guide's draws with the discrete latents (from their exact conditional) and deterministic
    sites added on the Pyro side, as one chain, as ``svi`` gives them."""
    if config.num_samples <= 0 or not problem.names("latent", "discrete"):
        return {}
    with problem.placement(), torch.no_grad(), poutine.block():
        draws = posterior.completed(problem, {k: v.to(problem.device) for k, v in draws.items()}, errors,
                                    num_draws=config.num_samples)
    return {k: v.unsqueeze(0) for k, v in draws.items()}


def guide_pareto_k(problem: Problem, compiled: Compiled, params: dict, data: dict, key) -> float | str:
    """The Pareto k-hat of the fitted guide as an importance proposal for the posterior, as
    :func:`ppgen.inference.svi.guide_pareto_k` defines it, from ``log w = log p(x, z) - log q(z)`` of
    guide draws vectorized by ``jax.vmap``; a string says why it was not computed."""
    import jax
    from numpyro.infer import autoguide

    if isinstance(compiled.guide, autoguide.AutoDelta):
        return "not computed: a point estimate (MAP) has no density, so its draws are one point, not a posterior"
    if problem.has_discrete:
        return "not computed: discrete latents are summed out of the model, not drawn by the guide"
    size = sum(v.numel() for v in problem.data.values() if torch.is_tensor(v))
    if size * PARETO_DRAWS > PARETO_BUDGET:
        return f"not computed: {PARETO_DRAWS} draws on {size} data elements exceed the budget of {PARETO_BUDGET}"
    keys, arrays = jax.random.split(key, PARETO_DRAWS), _arrays(data)
    try:
        shapes = jax.eval_shape(compiled.draw_one, key, params, arrays)
        latent = sum(np.prod(v.shape, dtype=int) for k, v in shapes.items() if k in problem.sites)
        if latent > PARETO_MAX_LATENT:
            return (f"not computed: a guide draw holds {latent} latent values (more than {PARETO_MAX_LATENT}: "
                    f"local latents of every data point, as an amortized guide draws), where one joint "
                    f"importance weight is not informative")
        log_w = compiled.log_weights(keys, params, arrays)
    except Exception as e:  # noqa: BLE001 - a post-fit check: the fit is kept whatever it raises
        return f"not computed: {type(e).__name__}: {e}"
    _, k = az.psislw(np.asarray(log_w, dtype=np.float64))
    return float(k)


def _arrays(data: dict) -> dict:
    """The JAX arrays of ``data``: what compiled functions take as arguments (the rest, sizes and
    flags, are Python values fixed when they compile)."""
    import jax

    return {k: v for k, v in data.items() if isinstance(v, jax.Array)}


@dataclass
class Compiled:
    """The SVI of one fit and the functions JAX compiles for it, kept for the next fit of the same
    program on the same data with the same guide, objective, optimizer and sizes (:func:`compiled_for`).

    ``run(state, n, arrays)`` takes ``n <= size`` steps (stopping before one whose loss or gradient is
    NaN/inf); ``draws(key, params, arrays)`` gives ``num_samples`` draws of the guide's latents;
    ``log_weights(keys, params, arrays)`` gives ``log p(x, z) - log q(z)`` at one guide draw per key."""

    latent: tuple  # the continuous latents' names
    subsampled: bool
    model: object
    guide: object
    svi: object
    size: int
    num_samples: int
    scalars: dict

    def __post_init__(self) -> None:
        import jax

        self.chunk = jax.jit(self._chunk)  # size steps, unguarded but for stable_update's own check
        self.guarded = jax.jit(self._guarded)  # compiled only where needed: a short last chunk, a NaN
        self.draws = jax.jit(self._draws) if self.num_samples > 0 and self.latent else None
        self.log_weights = jax.jit(jax.vmap(self._log_weight, in_axes=(0, None, None)))

    def fresh_guide(self) -> None:
        """Set the guide up again at the next fit's first call (its initial values come from that
        fit's key, as they would for a new guide); what was compiled depends only on its structure."""
        if hasattr(self.guide, "prototype_trace"):
            self.guide.prototype_trace = None

    def run(self, state, n: int, arrays: dict) -> tuple:
        """The state after ``n`` steps (or before the first whose loss or gradient is NaN/inf) and the
        ``n`` losses (NaN from that step on). A whole chunk runs as a scan of NumPyro's own steps would; the
        guarded one (each step taken only while all before it were finite) runs only where fewer steps
        are left than a chunk holds, or a whole chunk failed."""
        if n == self.size:
            new, losses = self.chunk(state, arrays)
            losses = np.asarray(losses, dtype=np.float64)
            if np.isfinite(losses).all():
                return new, losses
        new, losses = self.guarded(state, n, arrays)
        return new, np.asarray(losses[:n], dtype=np.float64)

    def _chunk(self, state, arrays):
        import jax
        import jax.numpy as jnp

        step = lambda state, _: self.svi.stable_update(state, **arrays, **self.scalars)  # noqa: E731
        return jax.lax.scan(step, state, jnp.arange(self.size))

    def _guarded(self, state, n, arrays):
        import jax
        import jax.numpy as jnp

        def body(state, i):
            new, loss = self.svi.stable_update(state, **arrays, **self.scalars)  # NaN where not finite
            keep = (i < n) & jnp.isfinite(loss)  # a failed step keeps the state, key too: the next fails alike
            return jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, state), loss

        return jax.lax.scan(body, state, jnp.arange(self.size))

    def _full(self, program):
        from ppgen.backend.numpyro_full_data import FullData

        return FullData()(program) if self.subsampled else program

    def draw_one(self, key, params, arrays) -> dict:
        """One draw of every sample site of the guide at ``params`` (auxiliary ones too), on all rows."""
        from numpyro import handlers

        guide = handlers.seed(handlers.substitute(self._full(self.guide), data=params), key)
        trace = handlers.trace(guide).get_trace(**arrays, **self.scalars)
        return {k: s["value"] for k, s in trace.items() if s["type"] == "sample" and not s["is_observed"]}

    def _draws(self, key, params, arrays) -> dict:
        import jax

        latent = self.latent
        draws = jax.lax.map(lambda k: self.draw_one(k, params, arrays), jax.random.split(key, self.num_samples))
        return {k: v for k, v in draws.items() if k in latent}

    def _log_weight(self, key, params, arrays):
        from numpyro.infer.util import log_density

        data = {**arrays, **self.scalars}
        z = self.draw_one(key, params, arrays)
        return (log_density(self._full(self.model), (), data, z)[0]
                - log_density(self._full(self.guide), (), data, {**params, **z})[0])


_CACHE: OrderedDict = OrderedDict()


def compiled_for(problem: Problem, config: RunConfig, opts: dict, default_guide: str, data: dict) -> Compiled:
    """The :class:`Compiled` of this fit: the cached one where a fit of the same program on the same
    data (by value), guide, objective, optimizer, chunk size and number of draws came before; else a
    new one, cached. Takes ``elbo``, ``num_particles``, ``optim``, ``lr`` and ``checkpoint_every`` out of
    ``opts``."""
    from numpyro import optim
    from numpyro.infer import SVI

    from ppgen.backend.numpyro_dependent_support import DependentSupport

    chosen = next(g for g in (config.guide, problem.guide, default_guide) if g is not None)
    elbo_spec = (opts.pop("elbo", "enum" if problem.has_discrete else "trace"), opts.pop("num_particles", 1))
    optim_spec = (opts.pop("optim", None), opts.pop("lr", 0.01))  # svi's default lr
    checkpointed = config.checkpoint_dir is not None
    size = opts.pop("checkpoint_every", 100) if checkpointed else math.ceil(config.steps / CHUNKS)
    arrays = _arrays(data)
    scalars = {k: v for k, v in data.items() if k not in arrays}
    key = (problem.program, problem.dependent, problem.max_plate_nesting, chosen, elbo_spec, optim_spec, size,
           config.num_samples, repr(sorted(scalars.items())), _fingerprint(problem.data))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    model = DependentSupport(problem.dependent)(problem.program) if problem.dependent else problem.program
    if problem.has_discrete:
        from numpyro.contrib.funsor import config_enumerate

        model = config_enumerate(model)
    guide = _guide(chosen, model, problem, config.method)
    elbo = _elbo(problem, *elbo_spec, config.method)
    optimizer = optim_spec[0] or optim.Adam(optim_spec[1])
    compiled = Compiled(tuple(problem.names("latent")), problem.subsampled, model, guide,
                        SVI(model, guide, optimizer, elbo), size, config.num_samples, scalars)
    _CACHE[key] = compiled
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return compiled


def _fingerprint(data: dict) -> str:
    """A digest of the data's names, shapes, dtypes and values."""
    digest = hashlib.blake2b(digest_size=16)
    for k, v in sorted(data.items()):
        digest.update(k.encode())
        if torch.is_tensor(v):
            v = v.detach().cpu().contiguous()
            digest.update(f"{tuple(v.shape)}{v.dtype}".encode())
            digest.update(v.view(-1).view(torch.uint8).numpy().tobytes() if v.numel() else b"")
        else:
            digest.update(repr(v).encode())
    return digest.hexdigest()


def _fit(problem: Problem, config: RunConfig, default_guide: str, bound: bool) -> Fit:
    """Fit the guide (``default_guide`` unless the caller or the model gives one); ``bound``: the
    objective is the ELBO (with a point-mass guide it is the log joint, not a bound on the evidence)."""
    import jax
    from numpyro.compat.pyro import clear_param_store

    if "numpyro" not in problem.backends:
        raise NotApplicableError(f"model {problem.name!r} is written for Pyro only; {config.method} needs a program "
                                 f"written with `from pyroapi import pyro, distributions as dist`")
    opts, data, errors = dict(config.options), to_jax(problem.data), {}
    compiled = compiled_for(problem, config, opts, default_guide, data)
    check_runs_on_numpyro(problem)
    clear_param_store()  # every fit starts afresh, as Pyro's engines clear Pyro's param store
    fit_key, draws_key, pareto_key = jax.random.split(jax.random.PRNGKey(config.seed), 3)
    start = time.perf_counter()
    try:
        with numpyro_backend():
            state, losses = _train(compiled, data, config, opts, fit_key)
            params = compiled.svi.get_params(state)
            draws = _guide_draws(problem, compiled, params, data, draws_key)
    except NotImplementedError as e:
        raise NotApplicableError(f"model {problem.name!r} uses something the NumPyro backend lacks: {e}") from None
    chains = _completed(problem, draws, config, errors)  # the program on Pyro, outside the NumPyro backend
    seconds = time.perf_counter() - start
    with numpyro_backend():
        pareto_k = guide_pareto_k(problem, compiled, params, data, pareto_key)
    tail = losses[-min(len(losses), 100):]
    diagnostics = {"final_loss": sum(tail) / len(tail), "guide_pareto_k": pareto_k}
    if bound:
        diagnostics["elbo"] = -diagnostics["final_loss"]
    params = {k: torch.as_tensor(np.array(v), dtype=problem.dtype) for k, v in params.items()}
    return Fit(method=config.method, model_name=problem.name, chains=chains, seconds=seconds, losses=losses,
               diagnostics=diagnostics, params=params, guide=compiled.guide, problem=problem, errors=errors)


OPTIONS = {"lr": positive, "elbo": anything, "num_particles": positive_int, "optim": anything,
           "log_every": positive_int, "callback": anything, "checkpoint_every": positive_int}


@register("numpyro-svi", family="variational", backend="numpyro", options=OPTIONS)
def run_numpyro_svi(problem: Problem, config: RunConfig) -> Fit:
    """NumPyro's SVI on the same (pyroapi) program, compiled by JAX (AutoNormal guide unless one is given)."""
    return _fit(problem, config, "normal", bound=True)


@register("numpyro-map", family="variational", backend="numpyro", options=OPTIONS)
def run_numpyro_map(problem: Problem, config: RunConfig) -> Fit:
    """NumPyro's maximum a posteriori point estimate (AutoDelta guide), compiled by JAX."""
    return _fit(problem, config, "delta", bound=False)
