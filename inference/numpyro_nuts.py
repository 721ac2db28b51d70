"""NumPyro's NUTS on the same model program.

A model written against ``pyroapi`` (``from pyroapi import pyro, distributions as dist``) runs here
under ppgen's NumPyro backend (:mod:`ppgen.backend`): the same source, traced and compiled by JAX.
Discrete latents are enumerated by NumPyro (through funsor); afterwards every engine's draws are
completed the same way, on the Pyro side (deterministic sites, discrete latents from their exact
conditional), so ``numpyro-nuts`` and ``nuts`` report the same sites.

A chain of discrete states under ``pyro.markov`` (an HMM) is where this engine pays most: JAX traces
the program's Python once and the sampler runs compiled, with the states summed out by funsor, where
Pyro's NUTS re-runs the Python (and its enumeration) at every leapfrog step. The cost that is left
grows with the chain's length through JAX's compilation of the unrolled chain (bench/hmm.py). The
check that a program runs on NumPyro happens at the sampler's own first trace of it, before anything compiles.

Options: ``chain_method`` (``"vectorized"``, the default for several chains: one compiled sampler runs them in
lockstep; ``"sequential"``; ``"parallel"`` across JAX devices), ``init_strategy`` (a NumPyro init strategy,
``numpyro.infer.init_to_median`` and the like), and NUTS's own (``target_accept_prob``, ``max_tree_depth``, ...).

Chains start at the prior median (``init_to_median``), except in programs with discrete latents summed
out (mixtures, HMMs): there they start at a uniform(-2, 2) draw on the unconstrained space
(``init_to_uniform``, NumPyro's default). The prior median of exchangeable components or states
(Dirichlet rows, say) is the label-symmetric point, where every state is the same and the gradient
cannot pull them apart: a chain started there mixes far worse (bench/hmm.py: a 100-step HMM, 200
draws, min bulk ESS 6 against 45, and a slower warmup).

Models that use torch directly cannot run here; registered models say which backends they support.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from ppgen.backend import numpyro_backend, to_jax
from ppgen.errors import NotApplicableError
from ppgen.inference import register
from ppgen.inference.mcmc import mcmc_fit, sample_chains
from ppgen.inference.options import anything, flag, one_of, positive, positive_int, probability
from ppgen.problem import Problem, RunConfig
from ppgen.results import Fit

EXTRA_FIELDS = ("diverging", "accept_prob", "energy", "num_steps", "potential_energy", "adapt_state.step_size")


def sample_stats(extra: dict) -> dict:
    """NumPyro's extra fields, ``(chain, draw)`` each, as ArviZ names them: ``lp`` = -potential
    energy, ``energy`` (the Hamiltonian at the selected point), ``n_steps`` (leapfrog steps),
    ``tree_depth`` (doublings: the bit length of ``n_steps``, a tree of depth d having 2^(d-1) to
    2^d - 1 steps), ``step_size``, ``diverging``, ``acceptance_rate``."""
    n_steps = np.asarray(extra["num_steps"]).astype(np.int64)
    stats = {"lp": -np.asarray(extra["potential_energy"], dtype=np.float64),
             "energy": np.asarray(extra["energy"], dtype=np.float64),
             "step_size": np.asarray(extra["adapt_state.step_size"], dtype=np.float64),
             "n_steps": n_steps, "tree_depth": np.floor(np.log2(n_steps)).astype(np.int64) + 1,
             "diverging": np.asarray(extra["diverging"]), "acceptance_rate": np.asarray(extra["accept_prob"])}
    return {name: torch.as_tensor(np.array(value)) for name, value in stats.items()}  # JAX's arrays are read-only


def numpyro_mcmc(problem: Problem, config: RunConfig, num_chains: int):
    """A configured (not yet run) ``numpyro.infer.MCMC`` for ``problem``'s program."""
    from numpyro.infer import MCMC, NUTS, init_to_median, init_to_uniform

    opts = dict(config.options)
    chain_method = opts.pop("chain_method", "vectorized" if num_chains > 1 else "sequential")
    init_strategy = opts.pop("init_strategy", init_to_uniform if problem.has_discrete else init_to_median)
    model = checked_at_first_run(problem, numpyro_program(problem))
    if problem.has_discrete:
        from numpyro.contrib.funsor import config_enumerate

        model = config_enumerate(model)
    kernel = NUTS(model, init_strategy=init_strategy, **opts)
    return MCMC(kernel, num_warmup=config.num_warmup, num_samples=config.num_samples, num_chains=num_chains,
                chain_method=chain_method, progress_bar=config.progress)


def numpyro_program(problem: Problem):
    """The user's program as NumPyro's NUTS must see it: on all rows of a subsampled plate, with
    each site whose support depends on another latent sampled on its unconstrained space (as the
    Pyro engines do, :mod:`ppgen.backend.numpyro_dependent_support`, :mod:`ppgen.backend.numpyro_full_data`)."""
    from ppgen.backend.numpyro_dependent_support import DependentSupport
    from ppgen.backend.numpyro_full_data import FullData

    program = DependentSupport(problem.dependent)(problem.program) if problem.dependent else problem.program
    return FullData()(program) if problem.subsampled else program


def _numpyro_run(problem: Problem, config: RunConfig):
    import jax

    data = to_jax(problem.data)

    def run(num_chains: int, seed: int) -> tuple[dict, dict]:
        from numpyro.compat.pyro import clear_param_store

        clear_param_store()  # every fit starts afresh, as Pyro's engines clear Pyro's param store
        mcmc = numpyro_mcmc(problem, config, num_chains)
        with numpyro_backend():
            mcmc.run(jax.random.PRNGKey(seed), extra_fields=EXTRA_FIELDS, **data)
            samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
        draws = {k: torch.as_tensor(np.array(samples[k]), dtype=problem.dtype) for k in problem.names("latent")}
        return draws, sample_stats(mcmc.get_extra_fields(group_by_chain=True))

    return run


def _not_on_numpyro(problem: Problem, error: Exception) -> NotApplicableError:
    if isinstance(error, NotImplementedError):
        return NotApplicableError(f"model {problem.name!r} uses something the NumPyro backend lacks: {error}")
    return NotApplicableError(f"model {problem.name!r} does not run on NumPyro ({type(error).__name__}: {error}); "
                              f"write it with `from pyroapi import pyro, distributions as dist`")


def _check_sites(problem: Problem, sites) -> None:
    missing = [k for k in problem.names("latent") if k not in sites]
    if missing:
        raise NotApplicableError(f"model {problem.name!r} did not run on NumPyro: latent(s) {', '.join(missing)} never "
                                 f"reached it (write it with `from pyroapi import pyro, distributions as dist`)")


def check_runs_on_numpyro(problem: Problem) -> None:
    """One NumPyro trace, traced by JAX but never run (abstract values: no compilation, so a long
    ``pyro.markov`` chain costs no more than its Python): every latent of the Pyro trace must appear in it.
    The sampler traces the program the same way, so what fails here would fail there."""
    import jax
    from numpyro import handlers
    from numpyro.infer import init_to_median

    data, sites = to_jax(problem.data), []

    def trace_once():  # at the values NUTS starts from (an improper prior cannot be sampled)
        program = handlers.substitute(handlers.seed(numpyro_program(problem), 0), substitute_fn=init_to_median)
        sites.extend(handlers.trace(program).get_trace(**data))

    try:
        with numpyro_backend():
            jax.make_jaxpr(trace_once)()
    except Exception as e:  # noqa: BLE001 - torch code fed JAX arrays fails in many ways
        raise _not_on_numpyro(problem, e) from None
    _check_sites(problem, sites)


def checked_at_first_run(problem: Problem, program):
    """``program``, checked as :func:`check_runs_on_numpyro` checks it, but at its first run inside the
    sampler (NumPyro's own first trace, at the chain's initial values) instead of in a trace of its own:
    a failure there, or a latent that never reached NumPyro, raises the same ``NotApplicableError``
    before any compilation starts. Later runs go straight to the program."""
    from numpyro.primitives import Messenger

    checked, sites = False, set()

    class SiteNames(Messenger):
        def postprocess_message(self, msg):
            sites.add(msg["name"])

    def run(*args, **kwargs):
        nonlocal checked
        if checked:
            return program(*args, **kwargs)
        try:
            with SiteNames():
                value = program(*args, **kwargs)
        except NotApplicableError:
            raise
        except Exception as e:  # noqa: BLE001 - as in check_runs_on_numpyro
            raise _not_on_numpyro(problem, e) from None
        _check_sites(problem, sites)
        checked = True
        return value

    return run


@register("numpyro-nuts", family="mcmc", backend="numpyro",
          options={"chain_method": one_of("sequential", "parallel", "vectorized"), "init_strategy": anything,
                   "target_accept_prob": probability,
                   "max_tree_depth": positive_int, "step_size": positive, "adapt_step_size": flag,
                   "adapt_mass_matrix": flag, "dense_mass": anything})
def run_numpyro_nuts(problem: Problem, config: RunConfig) -> Fit:
    """NumPyro's No-U-Turn sampler on the same (pyroapi) program, compiled by JAX."""
    if "numpyro" not in problem.backends:
        raise NotApplicableError(f"model {problem.name!r} is written for Pyro only; numpyro-nuts needs a program "
                                 f"written with `from pyroapi import pyro, distributions as dist`")
    start = time.perf_counter()
    grouped, stats = sample_chains(config, _numpyro_run(problem, config))
    return mcmc_fit(problem, config, grouped, stats, time.perf_counter() - start)
