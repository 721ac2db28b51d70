"""Markov chain Monte Carlo with Pyro: ``nuts`` (the No-U-Turn sampler) and ``hmc`` (Hamiltonian
Monte Carlo with a fixed trajectory length), both with step size and mass matrix adapted in warmup.

Discrete latents are summed out of the potential energy by enumeration, then sampled from their
exact conditional given each draw (:func:`ppgen.posterior.complete`). ``jit=True`` compiles the
potential energy with the PyTorch JIT.
"""
from __future__ import annotations

import time

import pyro
import torch
from pyro.infer import HMC, MCMC, NUTS
from pyro.infer.autoguide.initialization import init_to_median

from ppgen import posterior
from ppgen.inference import register
from ppgen.problem import Problem, RunConfig
from ppgen.results import Fit


def _run(problem: Problem, config: RunConfig, kernel_cls) -> Fit:
    opts = dict(config.options)
    jit = opts.pop("jit", False)
    kernel = kernel_cls(problem.enum_model, max_plate_nesting=problem.max_plate_nesting, jit_compile=jit,
                        ignore_jit_warnings=True, init_strategy=opts.pop("init_strategy", init_to_median), **opts)
    mcmc = MCMC(kernel, num_samples=config.num_samples, warmup_steps=config.num_warmup,
                num_chains=config.num_chains, disable_progbar=not config.progress)
    pyro.set_rng_seed(config.seed)
    start = time.perf_counter()
    with problem.placement():
        mcmc.run(**problem.data)
    seconds = time.perf_counter() - start
    grouped = mcmc.get_samples(group_by_chain=True)
    c, d = config.num_chains, config.num_samples
    with problem.placement():
        flat = posterior.complete(problem, {k: v.reshape((c * d,) + tuple(v.shape[2:])) for k, v in grouped.items()})
    chains = {k: v.reshape((c, d) + tuple(v.shape[1:])) for k, v in flat.items()}
    stats = mcmc.diagnostics()
    diverging = torch.zeros(c, d, dtype=torch.bool)
    for i in range(c):
        idx = [j for j in stats.get("divergences", {}).get(f"chain {i}", []) if 0 <= j < d]  # warmup ones are negative
        diverging[i, idx] = True
    accept = [float(v) for v in stats.get("acceptance rate", {}).values()]
    return Fit(method=config.method, model_name=problem.name, chains=chains, seconds=seconds,
               diagnostics={"divergences": int(diverging.sum()), "accept_rate": accept},
               sample_stats={"diverging": diverging}, problem=problem)


@register("nuts", family="mcmc")
def run_nuts(problem: Problem, config: RunConfig) -> Fit:
    """Pyro's No-U-Turn sampler (adaptive HMC)."""
    return _run(problem, config, NUTS)


@register("hmc", family="mcmc")
def run_hmc(problem: Problem, config: RunConfig) -> Fit:
    """Pyro's Hamiltonian Monte Carlo (trajectory length from ``num_steps`` or ``trajectory_length``)."""
    return _run(problem, config, HMC)
