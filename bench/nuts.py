"""Effective samples per second of NUTS, one chain, in one run.

Eight schools: Pyro NUTS without JIT (``jit=False``), ppgen's ``nuts`` as it runs by default (the
potential energy compiled once the check before sampling passes), ppgen's ``numpyro-nuts`` and raw
NumPyro on the same model. A user's plain Pyro regression (no pyroapi: ``y ~ Normal(a + b x, sigma)``,
100 points): the two Pyro rows. Both Pyro rows run the same sampler from the same seed and initial
values, so their ratio is what compiling the potential gives.

ESS is the smallest bulk ESS over all parameters (ArviZ); seconds are the wall time of the sampler
run (warmup, the JIT check and compilation included, as a user waits for them; CPU seconds, this
process's, are shown beside them, as other load on the machine stretches wall time). Each variant
runs ``--repeats`` times (the Pyro rows ``--pyro-repeats``), interleaved, and reports its fastest run
(the least disturbed by other load; the draws are identical across repeats of a seed). Ratio columns:
ESS/s against raw NumPyro, and against Pyro NUTS without JIT.

    python bench/nuts.py [--num-samples 2000] [--num-warmup 1000] [--repeats 3] [--pyro-repeats 1] [--device cpu]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from common import record

import ppgen
from ppgen.arviz_bridge import az


def min_ess(samples: dict) -> float:
    """Smallest bulk ESS over every scalar component of every site (one chain)."""
    columns = [c for v in samples.values() for c in np.asarray(v, dtype=float).reshape(len(v), -1).T]
    return float(min(az.ess(c[None]) for c in columns))


def raw_numpyro(data: dict, num_samples: int, num_warmup: int, seed: int) -> tuple[float, float]:
    """The same model written directly in NumPyro, no ppgen in the loop."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS, init_to_median

    def model(J, sigma, y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
        tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
        with numpyro.plate("school", J):
            theta_trans = numpyro.sample("theta_trans", dist.Normal(0.0, 1.0))
            theta = numpyro.deterministic("theta", mu + tau * theta_trans)
            numpyro.sample("y", dist.Normal(theta, sigma), obs=y)

    mcmc = MCMC(NUTS(model, init_strategy=init_to_median), num_warmup=num_warmup, num_samples=num_samples,
                progress_bar=False)
    start = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(seed), J=data["J"], sigma=jnp.asarray(data["sigma"]), y=jnp.asarray(data["y"]))
    samples = jax.block_until_ready(mcmc.get_samples())
    seconds = time.perf_counter() - start
    return min_ess({k: np.asarray(v) for k, v in samples.items()}), seconds


def regression(x, y=None):
    """A user's program, written with Pyro itself: y ~ Normal(a + b x, sigma)."""
    import pyro
    import pyro.distributions as dist

    a = pyro.sample("a", dist.Normal(0.0, 10.0))
    b = pyro.sample("b", dist.Normal(0.0, 10.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(5.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(a + b * x, sigma), obs=y)


def regression_data(n: int = 100, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return {"x": x, "y": 1.0 + 2.0 * x + 0.5 * rng.normal(size=n)}


def ppgen_method(model, data, method: str, num_samples: int, num_warmup: int, seed: int, device: str, **options):
    """(min ESS, wall seconds of the sampler, this process's CPU seconds, the fit's JIT status)."""
    cpu = time.process_time()
    fit = ppgen.fit(model, data, method=method, num_samples=num_samples, num_warmup=num_warmup, seed=seed,
                    progress=False, device=device, **options)
    cpu = time.process_time() - cpu
    return min_ess({k: v.cpu().numpy() for k, v in fit.samples.items()}), fit.seconds, cpu, fit.diagnostics.get("jit")


def best_of(runs: list) -> tuple:
    return min(runs, key=lambda run: run[1])


def table(title: str, best: dict, bases: dict) -> dict:
    """One row per sampler: its fastest run and its ESS/s against each of ``bases`` (column -> row).
    Returns each sampler's ESS/s."""
    per_sec = {k: run[0] / run[1] for k, run in best.items()}
    print(title + "\n")
    columns = "".join(f" {name:>22} |" for name in bases)
    print(f"| {'sampler':<22} | {'min ESS':>8} | {'seconds':>8} | {'CPU s':>7} | {'ESS/s':>8} |{columns}")
    print(f"|{'-' * 24}|{'-' * 10}|{'-' * 10}|{'-' * 9}|{'-' * 10}|" + f"{'-' * 24}|" * len(bases))
    for name, (ess, secs, cpu, _) in best.items():
        ratios = "".join(f" {per_sec[name] / per_sec[row]:>22.2f} |" for row in bases.values())
        print(f"| {name:<22} | {ess:>8.0f} | {secs:>8.2f} | {cpu:>7.2f} | {per_sec[name]:>8.1f} |{ratios}")
    jit = {name: run[3] for name, run in best.items() if run[3] is not None}
    print("\njit: " + "; ".join(f"{name}: {status}" for name, status in jit.items()) + "\n")
    return per_sec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-samples", type=int, default=2000)
    p.add_argument("--num-warmup", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--pyro-repeats", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    n, w, dev = args.num_samples, args.num_warmup, args.device
    data = ppgen.data.load_eight_schools()
    plain, default = "Pyro NUTS without JIT", "ppgen nuts (default)"
    rows = {plain: [], default: [], "ppgen numpyro-nuts": [], "raw NumPyro": []}
    for _ in range(args.pyro_repeats):  # interleaved, so drifting machine load hits both alike
        rows[plain].append(ppgen_method("eight_schools", None, "nuts", n, w, 0, dev, jit=False))
        rows[default].append(ppgen_method("eight_schools", None, "nuts", n, w, 0, dev))
    for _ in range(args.repeats):
        rows["ppgen numpyro-nuts"].append(ppgen_method("eight_schools", None, "numpyro-nuts", n, w, 0, dev))
        cpu = time.process_time()
        ess, secs = raw_numpyro(data, n, w, 0)
        rows["raw NumPyro"].append((ess, secs, time.process_time() - cpu, None))
    reg = regression_data()
    reg_rows = {plain: [], default: []}
    for _ in range(args.pyro_repeats):
        reg_rows[plain].append(ppgen_method(regression, reg, "nuts", n, w, 0, dev, jit=False))
        reg_rows[default].append(ppgen_method(regression, reg, "nuts", n, w, 0, dev))
    fastest = f"Pyro rows: fastest of {args.pyro_repeats}; NumPyro rows: fastest of {args.repeats}"
    schools = table(f"eight schools, 1 chain, {n} draws after {w} warmup; {fastest}",
                    {k: best_of(v) for k, v in rows.items()},
                    {"vs raw NumPyro": "raw NumPyro", "vs Pyro without JIT": plain})
    plain_reg = table(f"plain Pyro regression (100 points, a, b, sigma), 1 chain, {n} draws after {w} warmup; "
                      f"fastest of {args.pyro_repeats}", {k: best_of(v) for k, v in reg_rows.items()},
                      {"vs Pyro without JIT": plain})
    record("nuts", "nuts default / Pyro NUTS without JIT ESS/s, eight schools", schools[default] / schools[plain],
           ">= 1.8")
    record("nuts", "nuts default / Pyro NUTS without JIT ESS/s, plain Pyro regression",
           plain_reg[default] / plain_reg[plain], ">= 1.8")
    record("nuts", "numpyro-nuts / raw NumPyro ESS/s, eight schools",
           schools["ppgen numpyro-nuts"] / schools["raw NumPyro"], ">= 0.9")


if __name__ == "__main__":
    main()
