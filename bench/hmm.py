"""A hidden Markov model with its states summed out, one chain: effective samples per second of
ppgen's ``numpyro-nuts`` on a ``pyroapi`` program, raw NumPyro on the same model, and ppgen's
``nuts`` (Pyro), in one run.

The model: ``T`` steps (default 100), 3 states, 4 symbols; transition and emission rows ~ Dirichlet(1);
the states ``z_t`` under ``pyro.markov``, marked ``infer={"enumerate": "parallel"}`` and summed out of
the potential (NumPyro through funsor, Pyro through ``TraceEnum``). Data: one sequence from a sticky
3-state HMM (seed 0). Every run starts with JAX's caches cleared, as a fresh process would.

- **ppgen numpyro-nuts**: ``ppgen.fit(program, method="numpyro-nuts")``, the program written once with
  ``from pyroapi import pyro, distributions as dist`` (it is also what ``nuts`` runs);
- **raw NumPyro**: the same model written directly in NumPyro, ``MCMC(NUTS(model))``: NumPyro's
  defaults (``init_to_uniform``, which ppgen also starts from when discrete latents are summed out), so
  with the same key both draw the same chain: the same ESS, and the ratio is one of times. The
  baseline of the ratio column;
- **raw NumPyro, init_to_median**: ``NUTS(model, init_strategy=init_to_median)``, ppgen's start for
  models without discrete latents: the label-symmetric point of this posterior (all states alike),
  shown for what it costs (another chain; this posterior mixes slowly, so its ESS also differs by chance);
- **ppgen nuts (Pyro)**: Pyro's NUTS on the same program; it re-runs the program's Python for every
  leapfrog step, so it gets a shorter run (``--pyro-draws`` warmup + draws; its ESS is rough).

ESS is the smallest bulk ESS over every component of ``trans`` and ``emit`` (ArviZ); seconds are the
wall time a user waits: the whole ``ppgen.fit`` call (checks, JAX tracing and compilation, warmup,
sampling, and completing the discrete states from their exact conditional) for ppgen, ``mcmc.run``
for raw NumPyro; CPU seconds are this process's (all its threads: JAX compiles and runs on several),
which other processes on a shared machine disturb less. The NumPyro variants run ``--repeats`` times,
interleaved (each first in turn), and report their fastest run (the least disturbed by other load);
ratios are against raw NumPyro. Imports (JAX, NumPyro, funsor) are done before any run is timed;
torch runs on one thread.

    python bench/hmm.py [--length 100] [--num-samples 200] [--num-warmup 200] [--repeats 3] [--pyro-draws 25]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import record
from pyroapi import distributions as dist
from pyroapi import ops, pyro

import ppgen
from ppgen.arviz_bridge import az
from ppgen.backend import vindex
from ppgen.models.hmm import HMM

CONTINUOUS = ("trans", "emit")


def hmm(y, num_states: int = 3, num_categories: int = 4):
    """The pyroapi program: runs on Pyro and, under ppgen's NumPyro backend, on NumPyro."""
    trans = pyro.sample("trans", dist.Dirichlet(ops.ones((num_states, num_states))).to_event(1))
    emit = pyro.sample("emit", dist.Dirichlet(ops.ones((num_states, num_categories))).to_event(1))
    z = 0
    for t in pyro.markov(range(y.shape[0])):
        z = pyro.sample(f"z_{t}", dist.Categorical(vindex(trans)[..., z, :]), infer={"enumerate": "parallel"})
        pyro.sample(f"y_{t}", dist.Categorical(vindex(emit)[..., z, :]), obs=y[t])


def sequence(length: int) -> torch.Tensor:
    truth = HMM(initial=[1.0, 0.0, 0.0], transition=[[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]],
                emission=[[0.8, 0.1, 0.05, 0.05], [0.05, 0.8, 0.1, 0.05], [0.05, 0.05, 0.1, 0.8]])
    return truth.sample(length, seed=0)[1]


def min_ess(samples: dict) -> float:
    """Smallest bulk ESS over every scalar component of the continuous sites (one chain)."""
    columns = [c for k in CONTINUOUS for c in np.asarray(samples[k], dtype=float).reshape(len(samples[k]), -1).T]
    return float(min(az.ess(c[None]) for c in columns))


def cold() -> None:
    """Forget every compiled JAX function, so each run pays its compilation as a fresh process would
    (otherwise a run finds the previous run's identical programs compiled)."""
    import jax

    jax.clear_caches()


def raw_numpyro(y: torch.Tensor, num_samples: int, num_warmup: int, seed: int,
                median: bool = False) -> tuple[float, float, float, dict]:
    """The same model written directly in NumPyro, no ppgen in the loop (``median``: started at the
    prior median instead of NumPyro's default ``init_to_uniform``)."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as ndist
    from numpyro.contrib.funsor import markov
    from numpyro.infer import MCMC, NUTS, init_to_median
    from numpyro.ops.indexing import Vindex

    def model(y, num_states=3, num_categories=4):
        trans = numpyro.sample("trans", ndist.Dirichlet(jnp.ones((num_states, num_states))).to_event(1))
        emit = numpyro.sample("emit", ndist.Dirichlet(jnp.ones((num_states, num_categories))).to_event(1))
        z = 0
        for t in markov(range(y.shape[0])):
            z = numpyro.sample(f"z_{t}", ndist.Categorical(Vindex(trans)[..., z, :]), infer={"enumerate": "parallel"})
            numpyro.sample(f"y_{t}", ndist.Categorical(Vindex(emit)[..., z, :]), obs=y[t])

    cold()
    start, cpu = time.perf_counter(), time.process_time()
    kernel = NUTS(model, init_strategy=init_to_median) if median else NUTS(model)
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), jnp.asarray(y.numpy()))
    samples = {k: np.asarray(v) for k, v in jax.block_until_ready(mcmc.get_samples()).items()}
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return min_ess(samples), seconds, cpu, samples


NOTES: dict = {}  # what a ppgen run says about itself (Pyro's JIT status, mean leapfrog steps)


def ppgen_method(method: str, y: torch.Tensor, num_samples: int, num_warmup: int, seed: int):
    cold()
    start, cpu = time.perf_counter(), time.process_time()
    fit = ppgen.fit(hmm, {"y": y}, method=method, num_samples=num_samples, num_warmup=num_warmup, seed=seed,
                    progress=False)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    samples = {k: fit.samples[k].cpu().numpy() for k in CONTINUOUS}
    assert all(fit.samples[f"z_{t}"].shape == (num_samples,) for t in range(len(y)))  # the states, completed
    NOTES[method] = (f"jit {fit.diagnostics.get('jit', '-')}, "
                     f"{float(fit.sample_stats['n_steps'].double().mean()):.0f} leapfrog steps per draw")
    return min_ess(samples), seconds, cpu, samples


def warm_imports() -> None:
    """Import what both NumPyro variants use, start JAX's CPU backend and its compiler (one trivial
    compilation) before any run is timed: the first run would pay them alone, a fresh process pays
    them for either."""
    import funsor  # noqa: F401
    import jax
    import jax.numpy as jnp
    import numpyro.contrib.funsor  # noqa: F401
    import numpyro.infer  # noqa: F401

    jax.jit(lambda x: x + 1)(jnp.zeros(1)).block_until_ready()


def main() -> None:
    import warnings

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--length", type=int, default=100)
    p.add_argument("--num-samples", type=int, default=200)
    p.add_argument("--num-warmup", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--pyro-draws", type=int, default=25, help="warmup and draws of the Pyro NUTS run (each)")
    args = p.parse_args()
    torch.set_num_threads(1)  # ppgen's torch steps (preparing, completing the states) and Pyro's NUTS use tiny
    # tensors: torch's thread pool only adds waits for threads that other load on the machine deschedules
    n, w, y = args.num_samples, args.num_warmup, sequence(args.length)
    warm_imports()
    runs = {"ppgen numpyro-nuts": lambda: ppgen_method("numpyro-nuts", y, n, w, 0),
            "raw NumPyro": lambda: raw_numpyro(y, n, w, 0),
            "raw NumPyro, init_to_median": lambda: raw_numpyro(y, n, w, 0, median=True)}
    rows = {name: [] for name in runs}
    names = list(runs)
    for i in range(args.repeats):  # interleaved, each first in turn, so drifting load hits all alike
        for name in names[i % len(names):] + names[:i % len(names)]:
            rows[name].append(runs[name]())
    best = {k: min(v, key=lambda run: run[1]) for k, v in rows.items()}
    same = all(np.allclose(best["ppgen numpyro-nuts"][3][k], best["raw NumPyro"][3][k], atol=1e-5) for k in CONTINUOUS)
    if args.pyro_draws:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the hint that numpyro-nuts is faster on this chain
            best[f"ppgen nuts (Pyro, {args.pyro_draws}+{args.pyro_draws})"] = ppgen_method(
                "nuts", y, args.pyro_draws, args.pyro_draws, 0)
    per_sec = {k: e / s for k, (e, s, _, _) in best.items()}
    per_cpu = {k: e / c for k, (e, _, c, _) in best.items()}
    base, base_cpu = per_sec["raw NumPyro"], per_cpu["raw NumPyro"]
    print(f"HMM, T={args.length}, 3 states enumerated, 4 symbols; 1 chain, {n} draws after {w} warmup "
          f"(Pyro: as its row says); NumPyro rows: fastest of {args.repeats}; "
          f"ppgen's and raw NumPyro's draws {'identical' if same else 'DIFFER'}\n")
    print(f"| {'sampler':<28} | {'min ESS':>8} | {'seconds':>8} | {'ESS/s':>8} | {'vs raw NumPyro':>14} "
          f"| {'CPU s':>8} | {'vs raw, CPU':>11} |")
    print(f"|{'-' * 30}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 16}|{'-' * 10}|{'-' * 13}|")
    for name, (ess, secs, cpu, _) in best.items():
        print(f"| {name:<28} | {ess:>8.0f} | {secs:>8.2f} | {per_sec[name]:>8.3f} | {per_sec[name] / base:>14.3f} "
              f"| {cpu:>8.2f} | {per_cpu[name] / base_cpu:>11.3f} |")
    ours = per_sec["ppgen numpyro-nuts"]
    record("hmm", f"numpyro-nuts / raw NumPyro ESS/s, HMM T={args.length}", ours / base, ">= 0.9")
    pyro_rows = [k for k in best if k.startswith("ppgen nuts")]
    if pyro_rows:
        record("hmm", f"numpyro-nuts / Pyro nuts ESS/s, HMM T={args.length} (Pyro's run shorter)",
               ours / per_sec[pyro_rows[0]], "> 1")
    runs = ", ".join(f"{k}: " + " / ".join(f"{s:.1f}" for _, s, _, _ in v) for k, v in rows.items())
    print(f"\nseconds of every NumPyro run: {runs}")
    print("; ".join(f"{k}: {v}" for k, v in NOTES.items()))


if __name__ == "__main__":
    main()
