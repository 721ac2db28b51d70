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
"""
from __future__ import annotations

import math
import time
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


def _elbo(problem: Problem, opts: dict, method: str):
    """The ELBO the ``elbo`` option names (a NumPyro ELBO passes through): ``TraceEnum_ELBO`` over
    ``max_plate_nesting`` dims where the model has discrete latents, else ``Trace_ELBO``."""
    from numpyro import infer

    elbo = opts.pop("elbo", "enum" if problem.has_discrete else "trace")
    num_particles = opts.pop("num_particles", 1)
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
    """Replays the failed step (same state, same key) unguarded to name the params it made NaN/inf."""
    import jax.numpy as jnp

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


def _train(svi, data: dict, config: RunConfig, opts: dict, key) -> tuple:
    """``config.steps`` steps of ``svi`` in compiled chunks: the final state and the per-step losses."""
    import jax
    import jax.numpy as jnp

    checkpoint = Path(config.checkpoint_dir) / "checkpoint.pt" if config.checkpoint_dir is not None else None
    log_every, callback = opts.pop("log_every", 100), opts.pop("callback", None)
    size = opts.pop("checkpoint_every", 100) if checkpoint else math.ceil(config.steps / CHUNKS)
    state, step, losses = svi.init(key, **data), 0, []
    if checkpoint is not None and checkpoint.exists():
        state, step, losses = _load(checkpoint, state)

    arrays = {k: v for k, v in data.items() if isinstance(v, jax.Array)}  # the rest (sizes) stay Python values
    scalars = {k: v for k, v in data.items() if k not in arrays}

    @jax.jit
    def chunk(state, n, arrays):  # `size` steps, the first `n` of them taken; a NaN freezes the state before it
        def body(state, i):
            new, loss = svi.stable_update(state, **arrays, **scalars)  # NaN where the loss or a gradient is not finite
            keep = (i < n) & jnp.isfinite(loss)
            return jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, state), loss

        return jax.lax.scan(body, state, jnp.arange(size))

    bar = tqdm(desc=config.method, total=config.steps, initial=step, disable=not config.progress, mininterval=0.5)
    with checkpointing.StopRequest() as stop, bar:
        while step < config.steps:
            n = min(size, config.steps - step)
            state, chunk_losses = chunk(state, n, arrays)
            chunk_losses = np.asarray(chunk_losses[:n], dtype=np.float64)
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


def _guide_draws(problem: Problem, guide, params: dict, data: dict, config: RunConfig, key) -> dict:
    """``num_samples`` draws of each continuous latent from the fitted guide, on all rows."""
    from numpyro.infer import Predictive

    from ppgen.backend.numpyro_full_data import FullData

    latent = problem.names("latent")
    if config.num_samples <= 0 or not latent:
        return {}
    guide = FullData()(guide) if problem.subsampled else guide
    samples = Predictive(guide, params=params, num_samples=config.num_samples)(key, **data)
    return {k: torch.as_tensor(np.array(samples[k]), dtype=problem.dtype) for k in latent}


def _completed(problem: Problem, draws: dict, config: RunConfig, errors: dict) -> dict:
    """The guide's draws with the discrete latents (from their exact conditional) and deterministic
    sites added on the Pyro side, as one chain, as ``svi`` gives them."""
    if config.num_samples <= 0 or not problem.names("latent", "discrete"):
        return {}
    with problem.placement(), torch.no_grad(), poutine.block():
        draws = posterior.completed(problem, {k: v.to(problem.device) for k, v in draws.items()}, errors,
                                    num_draws=config.num_samples)
    return {k: v.unsqueeze(0) for k, v in draws.items()}


def guide_pareto_k(problem: Problem, model, guide, params: dict, data: dict, key) -> float | str:
    """The Pareto k-hat of the fitted guide as an importance proposal for the posterior, as
    :func:`ppgen.inference.svi.guide_pareto_k` defines it, from ``log w = log p(x, z) - log q(z)`` of
    guide draws vectorized by ``jax.vmap``; a string says why it was not computed."""
    import jax
    from numpyro import handlers
    from numpyro.infer import autoguide
    from numpyro.infer.util import log_density

    from ppgen.backend.numpyro_full_data import FullData

    if isinstance(guide, autoguide.AutoDelta):
        return "not computed: a point estimate (MAP) has no density, so its draws are one point, not a posterior"
    if problem.has_discrete:
        return "not computed: discrete latents are summed out of the model, not drawn by the guide"
    size = sum(v.numel() for v in problem.data.values() if torch.is_tensor(v))
    if size * PARETO_DRAWS > PARETO_BUDGET:
        return f"not computed: {PARETO_DRAWS} draws on {size} data elements exceed the budget of {PARETO_BUDGET}"
    if problem.subsampled:
        model, guide = FullData()(model), FullData()(guide)

    def draw(key):
        trace = handlers.trace(handlers.seed(handlers.substitute(guide, data=params), key)).get_trace(**data)
        return {k: s["value"] for k, s in trace.items() if s["type"] == "sample" and not s["is_observed"]}

    def log_weight(key):
        z = draw(key)
        return log_density(model, (), data, z)[0] - log_density(guide, (), data, {**params, **z})[0]

    try:
        latent = sum(np.prod(v.shape, dtype=int) for k, v in jax.eval_shape(draw, key).items() if k in problem.sites)
        if latent > PARETO_MAX_LATENT:
            return (f"not computed: a guide draw holds {latent} latent values (more than {PARETO_MAX_LATENT}: "
                    f"local latents of every data point, as an amortized guide draws), where one joint "
                    f"importance weight is not informative")
        log_w = jax.jit(jax.vmap(log_weight))(jax.random.split(key, PARETO_DRAWS))
    except Exception as e:  # noqa: BLE001 - a post-fit check: the fit is kept whatever it raises
        return f"not computed: {type(e).__name__}: {e}"
    _, k = az.psislw(np.asarray(log_w, dtype=np.float64))
    return float(k)


def _fit(problem: Problem, config: RunConfig, default_guide: str, bound: bool) -> Fit:
    """Fit the guide (``default_guide`` unless the caller or the model gives one); ``bound``: the
    objective is the ELBO (with a point-mass guide it is the log joint, not a bound on the evidence)."""
    import jax
    from numpyro import optim
    from numpyro.compat.pyro import clear_param_store
    from numpyro.infer import SVI

    from ppgen.backend.numpyro_dependent_support import DependentSupport

    if "numpyro" not in problem.backends:
        raise NotApplicableError(f"model {problem.name!r} is written for Pyro only; {config.method} needs a program "
                                 f"written with `from pyroapi import pyro, distributions as dist`")
    opts = dict(config.options)
    model = DependentSupport(problem.dependent)(problem.program) if problem.dependent else problem.program
    if problem.has_discrete:
        from numpyro.contrib.funsor import config_enumerate

        model = config_enumerate(model)
    chosen = next(g for g in (config.guide, problem.guide, default_guide) if g is not None)
    guide = _guide(chosen, model, problem, config.method)
    elbo = _elbo(problem, opts, config.method)
    optimizer = opts.pop("optim", None) or optim.Adam(opts.pop("lr", 0.01))  # svi's default lr
    check_runs_on_numpyro(problem)
    clear_param_store()  # every fit starts afresh, as Pyro's engines clear Pyro's param store
    data, errors = to_jax(problem.data), {}
    fit_key, draws_key, pareto_key = jax.random.split(jax.random.PRNGKey(config.seed), 3)
    start = time.perf_counter()
    try:
        with numpyro_backend():
            svi = SVI(model, guide, optimizer, elbo)
            state, losses = _train(svi, data, config, opts, fit_key)
            params = svi.get_params(state)
            draws = _guide_draws(problem, guide, params, data, config, draws_key)
    except NotImplementedError as e:
        raise NotApplicableError(f"model {problem.name!r} uses something the NumPyro backend lacks: {e}") from None
    chains = _completed(problem, draws, config, errors)  # the program on Pyro, outside the NumPyro backend
    seconds = time.perf_counter() - start
    with numpyro_backend():
        pareto_k = guide_pareto_k(problem, model, guide, params, data, pareto_key)
    tail = losses[-min(len(losses), 100):]
    diagnostics = {"final_loss": sum(tail) / len(tail), "guide_pareto_k": pareto_k}
    if bound:
        diagnostics["elbo"] = -diagnostics["final_loss"]
    params = {k: torch.as_tensor(np.array(v), dtype=problem.dtype) for k, v in params.items()}
    return Fit(method=config.method, model_name=problem.name, chains=chains, seconds=seconds, losses=losses,
               diagnostics=diagnostics, params=params, guide=guide, problem=problem, errors=errors)


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
