"""Reading a posterior the way a careful statistician would: ArviZ's summary plus a one-line flag,
with a hint, for each known failure (r_hat, ESS, divergences, BFMI, Pareto k)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppgen.arviz_bridge import az

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
                                     f"at {bad['r_hat'].idxmax()})", "run longer or more warmup; reparameterize if it persists"))
    elif nchains < 2:
        out.append(Flag("r_hat", "one chain: r_hat cannot compare chains", "run num_chains >= 2 (4 is usual)"))
    for col in ("ess_bulk", "ess_tail"):
        if col in summary:
            low = summary[summary[col] < ESS_MIN]
            if len(low):
                out.append(Flag(col, f"{len(low)} parameter(s) with {col} < {ESS_MIN} (lowest {low[col].min():.0f} at "
                                     f"{low[col].idxmin()})", "draw more samples, or reparameterize to reduce autocorrelation"))
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
            out.append(Flag("pareto_k", f"{int((k > PARETO_K_MAX).sum())} observation(s) with Pareto k > {PARETO_K_MAX}",
                            "LOO is unreliable there: influential points; try a more robust likelihood or K-fold CV"))
    return out
