"""Eight schools, one chain: effective samples per second of Pyro NUTS, Pyro NUTS with JIT, ppgen's
``numpyro-nuts`` and raw NumPyro on the same model, in one run.

ESS is the smallest bulk ESS over all parameters (ArviZ); seconds are the wall time of the sampler
run (warmup and compilation included, as a user waits for them). Each NumPyro variant runs
``--repeats`` times, interleaved, and reports its fastest run (the least disturbed by other load on
the machine; the draws are identical across repeats of a seed); the ratio column is against raw NumPyro.

    python bench/nuts.py [--num-samples 2000] [--num-warmup 1000] [--repeats 3] [--device cpu]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

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


def ppgen_method(method: str, num_samples: int, num_warmup: int, seed: int, device: str, **options):
    fit = ppgen.fit("eight_schools", method=method, num_samples=num_samples, num_warmup=num_warmup, seed=seed,
                    progress=False, device=device, **options)
    return min_ess({k: v.cpu().numpy() for k, v in fit.samples.items()}), fit.seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-samples", type=int, default=2000)
    p.add_argument("--num-warmup", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    n, w = args.num_samples, args.num_warmup
    data = ppgen.data.load_eight_schools()
    rows = {}
    rows["Pyro NUTS"] = [ppgen_method("nuts", n, w, 0, args.device)]
    rows["Pyro NUTS (JIT)"] = [ppgen_method("nuts", n, w, 0, args.device, jit=True)]
    rows["ppgen numpyro-nuts"], rows["raw NumPyro"] = [], []
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits both alike
        rows["ppgen numpyro-nuts"].append(ppgen_method("numpyro-nuts", n, w, 0, args.device))
        rows["raw NumPyro"].append(raw_numpyro(data, n, w, 0))
    best = {k: min(v, key=lambda run: run[1]) for k, v in rows.items()}
    per_sec = {k: e / s for k, (e, s) in best.items()}
    base = per_sec["raw NumPyro"]
    print(f"eight schools, 1 chain, {n} draws after {w} warmup; NumPyro rows: fastest of {args.repeats}\n")
    print(f"| {'sampler':<20} | {'min ESS':>8} | {'seconds':>8} | {'ESS/s':>8} | {'vs raw NumPyro':>14} |")
    print(f"|{'-' * 22}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 16}|")
    for name, (ess, secs) in best.items():
        print(f"| {name:<20} | {ess:>8.0f} | {secs:>8.2f} | {per_sec[name]:>8.1f} | {per_sec[name] / base:>14.2f} |")


if __name__ == "__main__":
    main()
