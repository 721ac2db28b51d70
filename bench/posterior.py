"""Re-evaluating a model on its draws, vectorized vs draw by draw (``ppgen.posterior``).

For eight schools, the Gaussian mixture (discrete assignments completed by ``infer_discrete``) and
a VAE on 200 digits (a local latent per digit), 1000 draws from a short SVI fit are completed
(deterministic and discrete sites), scored (pointwise log-likelihood) and replicated (posterior
predictive) both ways; the ratio is draw-by-draw time over vectorized time, and the vectorized
answer is checked against the draw-by-draw one (log-likelihoods equal to 1e-4).

    python bench/posterior.py [--num-draws 1000] [--device cpu]
"""
from __future__ import annotations

import argparse
import warnings

import torch
from common import elapsed

import ppgen
from ppgen import posterior
from ppgen.data.images import load_digits


def workloads() -> dict:
    digits = load_digits(binarize=True).x_train[:200]
    return {
        "eight_schools": ("eight_schools", None),
        "gmm": ("gmm", None),
        "vae (200 digits)": ("vae", {"x": digits}),
    }


def run(problem, draws: dict, vectorized: bool) -> tuple[dict, dict[str, float]]:
    problem.cache["broadcasts"] = vectorized
    continuous = {k: v for k, v in draws.items() if problem.sites[k].kind == "latent"}
    out, seconds = {}, {}
    steps = {"complete": lambda: posterior.complete(problem, continuous, num_draws=len(next(iter(draws.values())))),
             "log-likelihood": lambda: posterior.pointwise_log_likelihood(problem, draws),
             "predictive": lambda: posterior.posterior_predictive(problem, draws)}
    for name, step in steps.items():
        seconds[name] = elapsed(lambda: out.__setitem__(name, step()), problem.device)
    return out, seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--num-draws", type=int, default=1000)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    print(f"{'model':<18} {'step':<15} {'vectorized s':>13} {'draw by draw s':>15} {'ratio':>7}")
    for label, (name, data) in workloads().items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = ppgen.fit(name, data, method="svi", steps=50, num_samples=args.num_draws, progress=False,
                            device=args.device)
        draws = fit.samples
        fast, fast_s = run(fit.problem, draws, vectorized=True)
        slow, slow_s = run(fit.problem, draws, vectorized=False)
        for site, value in fast["log-likelihood"].items():
            torch.testing.assert_close(value, slow["log-likelihood"][site], rtol=1e-4, atol=1e-4)
        for step in fast_s:
            print(f"{label:<18} {step:<15} {fast_s[step]:>13.3f} {slow_s[step]:>15.3f} "
                  f"{slow_s[step] / fast_s[step]:>7.1f}")
        fit.problem.cache.clear()
        print(f"{label:<18} {'probe says':<15} "
              f"{'vectorized' if posterior.broadcasts(fit.problem) else 'draw by draw':>13}")


if __name__ == "__main__":
    main()
