"""Markov chain Monte Carlo with Pyro: ``nuts`` (the No-U-Turn sampler) and ``hmc`` (Hamiltonian
Monte Carlo with a fixed trajectory length), both with step size and mass matrix adapted in warmup.

Discrete latents are summed out of the potential energy by enumeration, then sampled from their
exact conditional given each draw (:func:`ppgen.posterior.complete`). ``jit=True`` compiles the
potential energy with the PyTorch JIT (often several times faster; opt-in, as tracing fails on
programs whose structure depends on values). Initialization tries the prior median (Stan's
uniform(-2, 2) on the unconstrained space where the prior cannot be sampled, :mod:`ppgen.init`),
then Stan's rule at fresh random points, and says when both fail. A subsampled plate takes all
its rows: a minibatch potential would make the sampler's accept step wrong.

With a checkpoint folder, chains run one at a time and each is written when it finishes; a resumed
run starts at the first chain not written.

Each draw's sampler statistics are recorded by the kernel itself (:class:`RecordingNUTS`,
:class:`RecordingHMC`) and named as ArviZ names them (``lp``, ``energy``, ``step_size``, ``n_steps``,
``tree_depth``, ``diverging``, ``acceptance_rate``), so E-BFMI and tree-depth saturation can be checked.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import pyro
import torch
from pyro.infer import HMC, MCMC, NUTS

from ppgen import posterior
from ppgen.errors import NotApplicableError
from ppgen.inference import checkpoint as checkpointing
from ppgen.inference import register
from ppgen.inference.options import anything, flag, positive, positive_int, probability
from ppgen.init import init_to_median, init_to_unconstrained_uniform
from ppgen.problem import Problem, RunConfig
from ppgen.results import Fit

INIT_STRATEGIES = (init_to_median, init_to_unconstrained_uniform)
KERNEL_OPTIONS = {"jit": flag, "init_strategy": anything, "step_size": positive, "adapt_step_size": flag,
                  "adapt_mass_matrix": flag, "full_mass": anything, "target_accept_prob": probability}
MAX_TREE_DEPTH = 10  # the default of Pyro's and NumPyro's NUTS


class _Recording:
    """A Pyro HMC kernel that records, for each draw of the sampling stage,

    - ``lp``: minus the potential energy at the draw, ``log p(x, z)`` on the unconstrained space
      (with the Jacobian of the transform), up to a constant;
    - ``energy``: the Hamiltonian ``H = U(z) + r' M^-1 r / 2`` at the start of the draw's trajectory,
      just after the momentum ``r`` is resampled (what E-BFMI compares across draws; the
      integrator keeps H nearly constant along the trajectory);
    - ``step_size``, ``n_steps`` (leapfrog steps), ``diverging`` (the energy error passed the
      divergence threshold);
    - ``acceptance_rate``: the Metropolis acceptance probability (NUTS: its mean over the
      trajectory), recovered exactly from Pyro's running mean ``m_n = m_{n-1} + (a_n - m_{n-1}) / n``.

    The record is returned with :meth:`diagnostics`, which Pyro sends back from every chain, also
    from chains run in subprocesses (where a ``hook_fn`` would record into a copy and lose it).
    """

    STATS = ("lp", "energy", "step_size", "n_steps", "diverging", "acceptance_rate")

    def _reset(self):
        super()._reset()
        self._stats = {name: [] for name in self.STATS}
        self._start_energy = float("nan")

    def _sample_r(self, name):
        r, r_unscaled = super()._sample_r(name)
        self._start_energy = float(self._kinetic_energy(r_unscaled) + self._potential_energy_last)
        return r, r_unscaled

    def sample(self, params):
        mean_before, divergences, step_size = self._mean_accept_prob, len(self._divergences), self.step_size
        params = super().sample(params)
        n = self._t - self._warmup_steps
        if n > 0:
            accept = n * self._mean_accept_prob - (n - 1) * mean_before
            steps = self._steps_taken()
            values = {"lp": -float(self._potential_energy_last), "energy": self._start_energy,
                      "step_size": float(step_size), "n_steps": steps, "tree_depth": steps.bit_length(),
                      "diverging": len(self._divergences) > divergences, "acceptance_rate": min(max(accept, 0.0), 1.0)}
            for name, record in self._stats.items():
                record.append(values[name])
        return params

    def diagnostics(self):
        return {**super().diagnostics(), "sample_stats": self._stats}


class RecordingHMC(_Recording, HMC):
    """Pyro's :class:`~pyro.infer.HMC`, recording each draw's statistics (:class:`_Recording`)."""

    def _steps_taken(self) -> int:
        return self.num_steps


class RecordingNUTS(_Recording, NUTS):
    """Pyro's :class:`~pyro.infer.NUTS`, recording each draw's statistics (:class:`_Recording`) and
    ``tree_depth``, the number of doublings: a tree of depth d has 2^(d-1) to 2^d - 1 leapfrog steps
    (the last doubling may stop early), so d is the bit length of ``n_steps``, as in Stan."""

    STATS = (*_Recording.STATS, "tree_depth")

    def sample(self, params):
        self._leapfrogs = 0
        return super().sample(params)

    def _build_basetree(self, *args, **kwargs):
        self._leapfrogs += 1  # one leapfrog step per leaf
        return super()._build_basetree(*args, **kwargs)

    def _steps_taken(self) -> int:
        return self._leapfrogs


def sample_chains(config: RunConfig, run: Callable) -> tuple[dict, dict]:
    """``run(num_chains, seed) -> (draws, stats)``, each ``{name: (chains, draws, ...)}``.

    Without a checkpoint folder, one call runs every chain. With one, each chain is a call of its
    own (seed + chain index) whose result is saved when it finishes; saved chains are loaded instead.
    """
    if config.checkpoint_dir is None:
        return run(config.num_chains, config.seed)
    parts = []
    for chain in range(config.num_chains):
        saved = checkpointing.load_chain(Path(config.checkpoint_dir), chain)
        if saved is None:
            with checkpointing.StopRequest() as stop:
                saved = run(1, config.seed + chain)
            checkpointing.save_chain(Path(config.checkpoint_dir), chain, *saved)
            if stop.requested and chain + 1 < config.num_chains:
                raise checkpointing.Interrupted(f"MCMC interrupted after chain {chain + 1} of {config.num_chains}; "
                                                f"finished chains saved in {config.checkpoint_dir}")
        parts.append(saved)
    return ({k: torch.cat([p[0][k] for p in parts]) for k in parts[0][0]},
            {k: torch.cat([p[1][k] for p in parts]) for k in parts[0][1]})


def mcmc_fit(problem: Problem, config: RunConfig, grouped: dict, stats: dict, seconds: float,
             missing: dict | None = None) -> Fit:
    """A :class:`Fit` from draws of the continuous latents grouped by chain, completed with the
    deterministic and discrete sites; ``missing`` says which sampler statistics the method does not
    give and why (kept in ``diagnostics["sample_stats_missing"]``, for ``ppgen diagnose``)."""
    c, d = config.num_chains, config.num_samples
    errors = {}
    with problem.placement():
        draws = {k: v.to(problem.device).reshape((c * d,) + tuple(v.shape[2:])) for k, v in grouped.items()}
        flat = posterior.completed(problem, draws, errors)
    chains = {k: v.reshape((c, d) + tuple(v.shape[1:])) for k, v in flat.items()}
    diagnostics = {"divergences": int(stats["diverging"].sum())}
    if "acceptance_rate" in stats:
        diagnostics["accept_rate"] = stats["acceptance_rate"].float().mean(-1).tolist()
    if "tree_depth" in stats:  # the bar for tree-depth saturation
        diagnostics["max_tree_depth"] = config.options.get("max_tree_depth", MAX_TREE_DEPTH)
    if missing:
        diagnostics["sample_stats_missing"] = dict(missing)
    return Fit(method=config.method, model_name=problem.name, chains=chains, seconds=seconds,
               diagnostics=diagnostics, sample_stats=stats, problem=problem, errors=errors)


def _pyro_run(problem: Problem, config: RunConfig, kernel_cls) -> Callable:
    opts = dict(config.options)
    jit = opts.pop("jit", False)
    strategies = (opts.pop("init_strategy"),) if "init_strategy" in opts else INIT_STRATEGIES

    def run(num_chains: int, seed: int) -> tuple[dict, dict]:
        for i, strategy in enumerate(strategies):
            kernel = kernel_cls(problem.enumerated(problem.full_model), max_plate_nesting=problem.max_plate_nesting,
                                jit_compile=jit, ignore_jit_warnings=True, init_strategy=strategy, **opts)
            mcmc = MCMC(kernel, num_samples=config.num_samples, warmup_steps=config.num_warmup,
                        num_chains=num_chains, disable_progbar=not config.progress)
            pyro.set_rng_seed(seed)
            try:
                with problem.placement():
                    mcmc.run(**problem.data)
                break
            except RuntimeError as e:
                if "cannot find valid initial params" not in str(e):
                    raise
                if i + 1 == len(strategies):
                    raise NotApplicableError(f"{config.method}: no valid initial values for model {problem.name!r} "
                                             f"after trying {', '.join(s.__name__ for s in strategies)}: "
                                             f"the log density is -inf or NaN at all of them; "
                                             f"check priors and data support") from None
        grouped = {k: v.detach().cpu() for k, v in mcmc.get_samples(group_by_chain=True).items()}
        # each chain's kernel diagnostics (mcmc.diagnostics() would also compute r_hat, which needs >= 4 draws)
        records = [mcmc._diagnostics[chain]["sample_stats"] for chain in range(num_chains)]
        return grouped, {name: torch.as_tensor(np.array([r[name] for r in records]).reshape(num_chains, -1))
                         for name in kernel.STATS}

    return run


def _run(problem: Problem, config: RunConfig, kernel_cls, missing: dict | None = None) -> Fit:
    start = time.perf_counter()
    grouped, stats = sample_chains(config, _pyro_run(problem, config, kernel_cls))
    return mcmc_fit(problem, config, grouped, stats, time.perf_counter() - start, missing)


@register("nuts", family="mcmc", options={**KERNEL_OPTIONS, "max_tree_depth": positive_int})
def run_nuts(problem: Problem, config: RunConfig) -> Fit:
    """Pyro's No-U-Turn sampler (adaptive HMC)."""
    return _run(problem, config, RecordingNUTS)


@register("hmc", family="mcmc", options={**KERNEL_OPTIONS, "num_steps": positive_int, "trajectory_length": positive})
def run_hmc(problem: Problem, config: RunConfig) -> Fit:
    """Pyro's Hamiltonian Monte Carlo (trajectory length from ``num_steps`` or ``trajectory_length``)."""
    return _run(problem, config, RecordingHMC,
                {"tree_depth": "HMC runs a fixed number of leapfrog steps (n_steps): it builds no tree"})
