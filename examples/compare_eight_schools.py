"""Why non-centering matters: the eight schools, centered and non-centered, by every method,
against posteriordb's reference posterior (Stan, 10 chains x 1000 draws).

The same posterior, two programs:

    centered:      theta_j ~ N(mu, tau)
    non-centered:  theta_trans_j ~ N(0, 1),  theta_j = mu + tau * theta_trans_j

With few schools and noisy data, tau can be near 0, and there the centered theta_j are squeezed
into a funnel of width tau whose neck no single HMC step size can explore: the sampler reports
divergences, mixes slowly (low ESS) and under-covers small tau. The non-centered program samples
independent unit normals instead, and the geometry problem is gone. Variational methods have their
own failure: the mean-field guide is too narrow, and MAP of the centered model runs into tau -> 0.

Writes, into OUT (default ``out/compare_eight_schools``): one report per program
(``centered/report.html``, ``noncentered/report.html``), ``summary.md`` with both tables, and
``funnel.png``: log tau against theta[0] from NUTS, divergent transitions in red.

    python examples/compare_eight_schools.py [OUT] [--num-samples 1000] [--num-warmup 500]
        [--num-chains 2] [--steps 2000]
        [--reference ../shared/posteriordb/eight_schools-eight_schools_noncentered.draws.json.zip]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import ppgen  # noqa: E402
from ppgen import report  # noqa: E402
from ppgen.compare import markdown  # noqa: E402

PROGRAMS = {"centered": "eight_schools_centered", "noncentered": "eight_schools"}
METHODS = ["svi", "map", "nuts", "numpyro-nuts", "enum"]
SHOWN = ["status", "wall_s", "ess_bulk_per_s", "ess_tail_per_s", "r_hat_max", "divergences", "mean_err_max",
         "sd_err_max", "elbo"]


def funnel(tables: dict, path: Path) -> None:
    """log tau against theta[0] from each program's numpyro-nuts run; divergent draws in red."""
    fig, axes = plt.subplots(1, len(tables), figsize=(5 * len(tables), 4), sharex=True, sharey=True)
    for ax, (name, table) in zip(np.atleast_1d(axes), tables.items()):
        fit = table.fits["numpyro-nuts"]
        tau, theta = fit.samples["tau"].double().numpy(), fit.samples["theta"][:, 0].double().numpy()
        diverging = fit.sample_stats["diverging"].reshape(-1).numpy().astype(bool)
        ax.scatter(theta[~diverging], np.log(tau[~diverging]), s=4, alpha=0.3, label="draws")
        ax.scatter(theta[diverging], np.log(tau[diverging]), s=12, color="C3", label=f"divergent ({diverging.sum()})")
        ax.set_title(f"{name}: {table.loc['numpyro-nuts', 'divergences']:.0f} divergences, "
                     f"min bulk ESS/s {table.loc['numpyro-nuts', 'ess_bulk_per_s']:.0f}", fontsize=9)
        ax.set_xlabel("theta[0]")
        ax.legend(fontsize=8, loc="lower right")
    np.atleast_1d(axes)[0].set_ylabel("log tau")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default="out/compare_eight_schools", help="output folder")
    parser.add_argument("--num-samples", type=int, default=1000, help="draws per chain (MCMC) or from the guide")
    parser.add_argument("--num-warmup", type=int, default=500)
    parser.add_argument("--num-chains", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2000, help="optimization steps (svi, map)")
    parser.add_argument("--reference", default="model",
                        help="'model' (the bundled posteriordb summary) or a posteriordb *.draws.json.zip")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)

    tables = {}
    for name, model in PROGRAMS.items():
        tables[name] = ppgen.compare(model, methods=METHODS, reference=args.reference, seed=args.seed,
                                     num_samples=args.num_samples, num_warmup=args.num_warmup,
                                     num_chains=args.num_chains, steps=args.steps,
                                     options={"svi": {"lr": 0.02}, "map": {"lr": 0.02}, "nuts": {"jit": True}})
        page = report.write(tables[name], out / name, title=f"eight schools, {name}: every method against posteriordb")
        print(f"{name}: {page}")
    funnel(tables, out / "funnel.png")

    both = pd.concat({name: t[SHOWN] for name, t in tables.items()}, names=["program", "run"])
    both.index = [f"{program} / {run}" for program, run in both.index]
    both.index.name = "program / run"
    text = markdown(both)
    (out / "summary.md").write_text(f"reference: {tables['noncentered'].reference.source}\n\n{text}")
    print(f"\nreference: {tables['noncentered'].reference.source}\n")
    print(text)
    for method in ("nuts", "numpyro-nuts"):
        c, n = tables["centered"].loc[method], tables["noncentered"].loc[method]
        print(f"{method}: divergences {c['divergences']:.0f} centered vs {n['divergences']:.0f} non-centered; "
              f"min bulk ESS/s {c['ess_bulk_per_s']:.1f} vs {n['ess_bulk_per_s']:.1f}; "
              f"worst mean error {c['mean_err_max']:.2f} vs {n['mean_err_max']:.2f} reference sd")
    print(f"funnel plot: {out / 'funnel.png'}")


if __name__ == "__main__":
    main()
