"""Reading a posterior the way a careful statistician would: ArviZ's summary plus a one-line flag,
with a hint, for each known failure (r_hat, ESS, divergences, BFMI, Pareto k) (:func:`flags`), and
the pictures that show them (:func:`plots`): trace, rank, pair with divergences marked, energy and
posterior-predictive."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ppgen.arviz_bridge import az
from ppgen.plots import figure_of, predictive_checks, save_png, trace_and_rank

RHAT_MAX = 1.01
ESS_MIN = 400  # bulk and tail, over all chains (Vehtari et al. 2021)
BFMI_MIN = 0.3
PARETO_K_MAX = 0.7


@dataclass(frozen=True)
class Flag:
    check: str
    message: str
    hint: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.message} -> {self.hint}"


def flags(idata, summary=None) -> list[Flag]:
    """Every problem found in ``idata``; an empty list means no check failed."""
    out = []
    summary = summary if summary is not None else az.summary(idata)
    nchains = idata.posterior.sizes.get("chain", 1)
    if nchains >= 2 and "r_hat" in summary:
        bad = summary[summary["r_hat"] > RHAT_MAX]
        if len(bad):
            out.append(Flag("r_hat", f"{len(bad)} parameter(s) with r_hat > {RHAT_MAX} (worst {bad['r_hat'].max():.3f} "
                                     f"at {bad['r_hat'].idxmax()})",
                            "run longer or more warmup; reparameterize if it persists"))
    elif nchains < 2:
        out.append(Flag("r_hat", "one chain: r_hat cannot compare chains", "run num_chains >= 2 (4 is usual)"))
    for col in ("ess_bulk", "ess_tail"):
        if col in summary:
            low = summary[summary[col] < ESS_MIN]
            if len(low):
                out.append(Flag(col, f"{len(low)} parameter(s) with {col} < {ESS_MIN} (lowest {low[col].min():.0f} at "
                                     f"{low[col].idxmin()})",
                                "draw more samples, or reparameterize to reduce autocorrelation"))
    stats = getattr(idata, "sample_stats", None)
    if stats is not None and "diverging" in stats:
        n_div = int(np.asarray(stats["diverging"]).sum())
        if n_div:
            out.append(Flag("divergences", f"{n_div} divergent transition(s)",
                            "reparameterize (non-centered form for hierarchical scales) or raise target_accept_prob"))
    if stats is not None and "energy" in stats:
        bfmi = np.atleast_1d(az.bfmi(idata))
        if (bfmi < BFMI_MIN).any():
            out.append(Flag("bfmi", f"E-BFMI {bfmi.min():.2f} < {BFMI_MIN} in some chain",
                            "the momentum resampling explores energy poorly: reparameterize, longer warmup"))
    if hasattr(idata, "log_likelihood") and len(getattr(idata.log_likelihood, "data_vars", [])) == 1:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loo = az.loo(idata, pointwise=True)
        k = np.asarray(loo.pareto_k)
        if (k > PARETO_K_MAX).any():
            out.append(Flag("pareto_k", f"{int((k > PARETO_K_MAX).sum())} observation(s) with Pareto k > "
                                        f"{PARETO_K_MAX}",
                            "LOO is unreliable there: influential points; try a more robust likelihood or K-fold CV"))
    return out


PAIR_VARS = 4  # scalar parameters in the pair plot


def plots(idata, folder: str | Path) -> dict[str, Path | str]:
    """Write ``trace.png``, ``rank.png``, ``pair.png`` (divergent draws in red), ``energy.png`` (the
    marginal energy and energy-transition distributions of HMC; E-BFMI in the legend) and ``ppc.png``
    (observed data over replicated data) into ``folder``. Returns ``{plot: path}``, or for a plot
    that cannot be drawn from this run ``{plot: reason}``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path | str] = trace_and_rank(idata, folder)
    drawers = {"pair": _pair, "energy": _energy}
    for name, draw in drawers.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig = draw(idata)
        if isinstance(fig, str):
            out[name] = fig
            continue
        fig.tight_layout()
        out[name] = save_png(fig, folder / f"{name}.png")
    out.update(predictive_checks(idata, folder))
    return out


def _pair(idata):
    """Up to :data:`PAIR_VARS` scalars (scalar sites first, then the first element of the others)."""
    from ppgen.arviz_bridge import from_dict

    post = idata.posterior
    chosen = {}
    for name in sorted(post.data_vars, key=lambda n: post[n].ndim):
        values = np.asarray(post[name].values, dtype=float)
        chosen[name if values.ndim == 2 else f"{name}[0]"] = values.reshape(values.shape[:2] + (-1,))[..., 0]
        if len(chosen) == PAIR_VARS:
            break
    if len(chosen) < 2:
        return "pair plot needs at least two parameters"
    stats = getattr(idata, "sample_stats", None)
    has_div = stats is not None and "diverging" in stats
    sample_stats = {"diverging": np.asarray(stats["diverging"])} if has_div else {}
    light = from_dict({"posterior": chosen, "sample_stats": sample_stats}, dims={})
    n = len(chosen)
    axes = az.plot_pair(light, divergences=has_div, figsize=(2.6 * n, 2.6 * n), scatter_kwargs={"alpha": 0.3},
                        divergences_kwargs={"color": "C3", "markersize": 4})
    return figure_of(axes)


def _energy(idata):
    stats = getattr(idata, "sample_stats", None)
    if stats is None or "energy" not in stats:
        return "energy plot needs the sampler's Hamiltonian energy (numpyro-nuts records it)"
    return figure_of(az.plot_energy(idata, figsize=(6, 4)))
