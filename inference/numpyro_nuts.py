"""NumPyro's NUTS on the same model program.

A model written against ``pyroapi`` (``from pyroapi import pyro, distributions as dist``) runs here
under ppgen's NumPyro backend (:mod:`ppgen.backend`): the same source, traced and compiled by JAX.
Discrete latents are enumerated by NumPyro (through funsor); afterwards every engine's draws are
completed the same way, on the Pyro side (deterministic sites, discrete latents from their exact
conditional), so ``numpyro-nuts`` and ``nuts`` report the same sites.

Models that use torch directly cannot run here; registered models say which backends they support.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from ppgen import posterior
from ppgen.backend import numpyro_backend, to_jax
from ppgen.errors import NotApplicableError
from ppgen.inference import register
from ppgen.problem import Problem, RunConfig
from ppgen.results import Fit


def numpyro_mcmc(problem: Problem, config: RunConfig):
    """A configured (not yet run) ``numpyro.infer.MCMC`` for ``problem``'s program."""
    from numpyro.infer import MCMC, NUTS, init_to_median

    opts = dict(config.options)
    chain_method = opts.pop("chain_method", "sequential")
    model = problem.model
    if problem.has_discrete:
        from numpyro.contrib.funsor import config_enumerate

        model = config_enumerate(model)
    kernel = NUTS(model, init_strategy=init_to_median, **opts)
    return MCMC(kernel, num_warmup=config.num_warmup, num_samples=config.num_samples, num_chains=config.num_chains,
                chain_method=chain_method, progress_bar=config.progress)


@register("numpyro-nuts", family="mcmc", backend="numpyro")
def run_numpyro_nuts(problem: Problem, config: RunConfig) -> Fit:
    """NumPyro's No-U-Turn sampler on the same (pyroapi) program, compiled by JAX."""
    import jax

    if "numpyro" not in problem.backends:
        raise NotApplicableError(f"model {problem.name!r} is written for Pyro only; numpyro-nuts needs a program "
                                 f"written with `from pyroapi import pyro, distributions as dist`")
    mcmc = numpyro_mcmc(problem, config)
    data = to_jax(problem.data)
    start = time.perf_counter()
    try:
        with numpyro_backend():
            mcmc.run(jax.random.PRNGKey(config.seed), extra_fields=("diverging", "accept_prob", "energy", "num_steps"), **data)
            samples = mcmc.get_samples(group_by_chain=True)
    except NotImplementedError as e:
        raise NotApplicableError(f"model {problem.name!r} uses something the NumPyro backend lacks: {e}") from None
    jax.block_until_ready(samples)
    seconds = time.perf_counter() - start
    c, d = config.num_chains, config.num_samples
    latent = {k: torch.as_tensor(np.asarray(samples[k]), device=problem.device, dtype=problem.dtype)
              for k in problem.names("latent")}
    with problem.placement():
        flat = posterior.complete(problem, {k: v.reshape((c * d,) + tuple(v.shape[2:])) for k, v in latent.items()})
    chains = {k: v.reshape((c, d) + tuple(v.shape[1:])) for k, v in flat.items()}
    extra = {k: torch.as_tensor(np.asarray(v)) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    stats = {"diverging": extra["diverging"], "acceptance_rate": extra["accept_prob"], "energy": extra["energy"],
             "n_steps": extra["num_steps"]}
    return Fit(method=config.method, model_name=problem.name, chains=chains, seconds=seconds,
               diagnostics={"divergences": int(extra["diverging"].sum()),
                            "accept_rate": extra["accept_prob"].mean(-1).tolist()},
               sample_stats=stats, problem=problem)
