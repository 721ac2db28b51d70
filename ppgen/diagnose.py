"""Reading a posterior the way a careful statistician would: ArviZ's summary plus a one-line flag,
with a hint, for each known failure of the method's family (:func:`flags`, :func:`diagnose`): r_hat,
ESS, MCSE, divergences, E-BFMI and tree depth for MCMC; the guide's Pareto k-hat, point estimates
and ELBO convergence for variational methods; the weights' Kish ESS and Pareto k-hat for importance
sampling (likelihood weighting); PSIS-LOO's Pareto k for all. And the pictures that
show them (:func:`plots`): trace, rank, pair with divergences marked, energy and posterior-predictive."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ppgen.arviz_bridge import az
from ppgen.plots import figure_of, predictive_checks, save_png, trace_and_rank

RHAT_MAX = 1.01
ESS_MIN = 400  # bulk and tail, over all chains (Vehtari et al. 2021)
MCSE_MAX = 0.1  # mcse_mean / sd: the same as an ESS of the mean below 1 / MCSE_MAX**2 = 100
BFMI_MIN = 0.3
PARETO_K_MAX = 0.7
ELBO_STRETCH = 0.2  # the last fifth of the optimization steps is where convergence is judged
ELBO_BATCHES = 10  # batch means over that stretch, for its trend and noise
ELBO_Z = 3.0  # the fall of the loss, in standard errors, that says it has not converged
ELBO_RTOL = 1e-3  # ... and relative to the loss, a fall too small to matter
MIN_STEPS = 2 * ELBO_BATCHES / ELBO_STRETCH  # below it the stretch is too short to judge
SAMPLE_STATS = ("lp", "energy", "step_size", "tree_depth", "n_steps", "diverging", "acceptance_rate")


@dataclass(frozen=True)
class Flag:
    check: str
    message: str
    hint: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.message} -> {self.hint}"


@dataclass(frozen=True)
class Check:
    """One check: ``ran`` or not, and ``note``, what it looked at or why it could not run."""

    check: str
    ran: bool
    note: str

    def __str__(self) -> str:
        return f"{self.check}: {self.note}" if self.ran else f"{self.check}: not run ({self.note})"


def flags(idata, summary=None, *, family: str | None = None, method: str | None = None,
          diagnostics: dict | None = None, losses=None) -> list[Flag]:
    """Every problem found in ``idata``; an empty list means no check failed. The checks are those
    of the method's ``family`` (see :func:`diagnose`)."""
    return diagnose(idata, summary, family=family, method=method, diagnostics=diagnostics, losses=losses)[1]


def diagnose(idata, summary=None, *, family: str | None = None, method: str | None = None,
             diagnostics: dict | None = None, losses=None) -> tuple[list[Check], list[Flag]]:
    """The checks that suit a run of ``method`` (default ``idata.attrs["ppgen_method"]``) of
    ``family`` (``"mcmc"``, ``"variational"``, ``"exact"``, ``"importance"``; ``None``: unknown, checked as MCMC),
    and the problems they find. ``diagnostics`` are the fit's own (``Fit.diagnostics``, saved in
    ``metrics.json``), ``losses`` its per-step losses.

    - MCMC: r_hat, bulk and tail ESS, MCSE, divergences, E-BFMI, tree-depth saturation, from the
      sampler statistics the run recorded (those it lacks are named, with the reason);
    - variational: the guide's Pareto k-hat (computed at fit time, it needs the model), whether the
      draws are one point (MAP), ELBO convergence; r_hat and ESS do not apply to independent draws;
    - importance: the weights' Kish ESS and the Pareto k-hat of their tail (computed at fit time:
      the resampled draws no longer carry the weights);
    - every family: PSIS-LOO's Pareto k per observation.
    """
    diagnostics = diagnostics or {}
    method = method or idata.attrs.get("ppgen_method", "this method")
    checks, found = [], []
    if family in ("mcmc", None):
        _mcmc_checks(idata, summary, diagnostics, checks, found)
    else:
        checks.append(Check("r_hat, ess, mcse", False, f"{method} ({family}) draws are independent, not a Markov "
                                                         f"chain"))
    if family == "variational":
        point = _variational_checks(idata, diagnostics, losses, checks, found)
    else:
        point = False
    if family == "importance":
        _importance_checks(diagnostics, checks, found)
    if point:
        checks.append(Check("pareto_k", False, "PSIS-LOO needs draws from a posterior, not one point"))
    else:
        _loo_check(idata, checks, found)
    return checks, found


def _mcmc_checks(idata, summary, diagnostics: dict, checks: list, found: list) -> None:
    if summary is None:
        with warnings.catch_warnings():  # constant draws give 0/0 in ESS, shown as NaN
            warnings.simplefilter("ignore")
            summary = az.summary(idata)
    nchains = idata.posterior.sizes.get("chain", 1)
    if nchains >= 2 and "r_hat" in summary:
        checks.append(Check("r_hat", True, f"{nchains} chains, flag above {RHAT_MAX}"))
        bad = summary[summary["r_hat"] > RHAT_MAX]
        if len(bad):
            found.append(Flag("r_hat", f"{len(bad)} parameter(s) with r_hat > {RHAT_MAX} (worst "
                                       f"{bad['r_hat'].max():.3f} at {bad['r_hat'].idxmax()})",
                              "run longer or more warmup; reparameterize if it persists"))
    else:
        checks.append(Check("r_hat", False, "one chain"))
        found.append(Flag("r_hat", "one chain: r_hat cannot compare chains", "run num_chains >= 2 (4 is usual)"))
    for col in ("ess_bulk", "ess_tail"):
        if col in summary:
            checks.append(Check(col, True, f"flag below {ESS_MIN}"))
            low = summary[summary[col] < ESS_MIN]
            if len(low):
                found.append(Flag(col, f"{len(low)} parameter(s) with {col} < {ESS_MIN} (lowest {low[col].min():.0f} "
                                       f"at {low[col].idxmin()})",
                                  "draw more samples, or reparameterize to reduce autocorrelation"))
    if {"mcse_mean", "sd"} <= set(summary):
        checks.append(Check("mcse", True, f"flag mcse_mean above {MCSE_MAX} sd"))
        ratio = summary["mcse_mean"] / summary["sd"]
        bad = ratio[ratio > MCSE_MAX]
        if len(bad):
            found.append(Flag("mcse", f"{len(bad)} parameter(s) whose mean's Monte Carlo error is over {MCSE_MAX} "
                                      f"posterior sd (worst {bad.max():.2f} at {bad.idxmax()})",
                              "the posterior means are not yet known to a tenth of an sd: draw more samples"))
    stats = getattr(idata, "sample_stats", None)
    recorded = set(stats.data_vars) if stats is not None else set()
    why = diagnostics.get("sample_stats_missing", {})
    missing = [s for s in SAMPLE_STATS if s not in recorded]
    if missing:
        checks.append(Check("sample_stats", False, "not recorded: " + "; ".join(
            f"{s} ({why.get(s, 'the run did not record it')})" for s in missing)))
    if "diverging" in recorded:
        checks.append(Check("divergences", True, "flag any after warmup"))
        n_div = int(np.asarray(stats["diverging"]).sum())
        if n_div:
            found.append(Flag("divergences", f"{n_div} divergent transition(s)",
                              "reparameterize (non-centered form for hierarchical scales) or raise "
                              "target_accept_prob"))
    if "energy" in recorded:
        checks.append(Check("bfmi", True, f"flag E-BFMI below {BFMI_MIN} in a chain"))
        bfmi = np.atleast_1d(az.bfmi(idata))
        if (bfmi < BFMI_MIN).any():
            found.append(Flag("bfmi", f"E-BFMI {bfmi.min():.2f} < {BFMI_MIN} in some chain",
                              "the momentum resampling explores energy poorly: reparameterize, longer warmup"))
    else:
        checks.append(Check("bfmi", False, "no energy recorded"))
    if "tree_depth" in recorded and "max_tree_depth" in diagnostics:
        _tree_depth_check(np.asarray(stats["tree_depth"]), diagnostics["max_tree_depth"], checks, found)
    else:
        checks.append(Check("tree_depth", False, "no tree depth recorded" if "tree_depth" not in recorded
                            else "the run did not record its max_tree_depth"))


def _tree_depth_check(depth: np.ndarray, max_depth: int, checks: list, found: list) -> None:
    """NUTS doubles its trajectory until it turns back, at most ``max_depth`` times; a draw that
    stops at the limit did not finish its trajectory (Stan flags any)."""
    checks.append(Check("tree_depth", True, f"flag draws at max_tree_depth={max_depth}"))
    hit = depth >= max_depth
    if hit.any():
        found.append(Flag("tree_depth", f"{int(hit.sum())} of {hit.size} draws ({hit.mean():.0%}) stopped at "
                                        f"max_tree_depth={max_depth}",
                          "the trajectories were cut short: raise max_tree_depth, or reparameterize (long, "
                          "narrow posteriors need many steps)"))


def _variational_checks(idata, diagnostics: dict, losses, checks: list, found: list) -> bool:
    """The guide's Pareto k-hat, whether the draws are one point, ELBO convergence; returns
    whether the draws are one point."""
    _pareto_check("guide_pareto_k", diagnostics.get("guide_pareto_k"), "the guide as importance proposal for the "
                  "posterior has", "the guide misses posterior mass: its draws understate the posterior's spread; "
                  "try a richer guide (mvn, flow) or nuts", checks, found)
    values = [np.asarray(v.values, dtype=float) for v in idata.posterior.data_vars.values()]
    point = all(np.allclose(v, v[:1, :1], rtol=1e-5, atol=1e-6) for v in values)  # up to the transforms' rounding
    checks.append(Check("point_estimate", True, "flag draws that are all one point"))
    if point:
        found.append(Flag("point_estimate", "the draws are one point (a MAP estimate), not a posterior: they carry "
                                            "no uncertainty", "for uncertainty fit a guide (svi) or sample (nuts)"))
    if losses is None or len(losses) < MIN_STEPS:
        checks.append(Check("elbo_convergence", False, f"needs the loss of >= {MIN_STEPS:.0f} steps"))
    else:
        _elbo_check(np.asarray(losses, dtype=float), checks, found)
    return point


def _importance_checks(diagnostics: dict, checks: list, found: list) -> None:
    """Kish's ``(sum w)^2 / sum w^2``: how many independent draws the weighted sample is worth; and
    the Pareto k-hat of the weights' right tail (above 0.7 a few weights dominate any estimate)."""
    ess = diagnostics.get("ess_kish")
    if isinstance(ess, (int, float)):
        checks.append(Check("ess_kish", True, f"{ess:.0f}, flag below {ESS_MIN}"))
        if ess < ESS_MIN:
            found.append(Flag("ess_kish", f"the weighted draws are worth {ess:.0f} independent ones (< {ESS_MIN})",
                              "draw more samples; evidence the prior finds unlikely starves the weights: try gibbs"))
    else:
        checks.append(Check("ess_kish", False, "the run did not record it"))
    _pareto_check("weights_pareto_k", diagnostics.get("weights_pareto_k"), "the importance weights have",
                  "a few samples carry the estimate: draw more samples, or use gibbs", checks, found)


def _pareto_check(name: str, k, what: str, hint: str, checks: list, found: list) -> None:
    """A Pareto k-hat the run recorded (a number, or why it has none), flagged above PARETO_K_MAX."""
    if not isinstance(k, (int, float)):
        checks.append(Check(name, False, k or "the run did not compute it"))
        return
    checks.append(Check(name, True, f"k-hat {k:.2f}, flag above {PARETO_K_MAX}"))
    if k > PARETO_K_MAX:
        found.append(Flag(name, f"{what} Pareto k-hat {k:.2f} > {PARETO_K_MAX}", hint))


def _elbo_check(losses: np.ndarray, checks: list, found: list) -> None:
    r"""Has the loss (-ELBO) stopped falling? The last :data:`ELBO_STRETCH` of the steps is cut into
    :data:`ELBO_BATCHES` batches (consecutive losses are correlated, batch means much less) and a
    least-squares line ``m_j = c + beta j`` fitted through the batch means. Its fall over the
    stretch, ``d = -beta B``, is compared with its standard error ``se = se(beta) B`` (from the
    residuals about the line, so the trend itself is not counted as noise). Not converged:
    ``d > ELBO_Z se`` and ``d > ELBO_RTOL |mean|`` (a fall that is real and large enough to matter)."""
    n = int(len(losses) * ELBO_STRETCH) // ELBO_BATCHES * ELBO_BATCHES
    means = losses[-n:].reshape(ELBO_BATCHES, -1).mean(-1)
    j = np.arange(ELBO_BATCHES) - (ELBO_BATCHES - 1) / 2
    beta = (j * means).sum() / (j * j).sum()
    residuals = means - means.mean() - beta * j
    se = np.sqrt((residuals**2).sum() / (ELBO_BATCHES - 2) / (j * j).sum()) * ELBO_BATCHES
    fall = -beta * ELBO_BATCHES
    z = fall / se if se > 0 else np.inf * np.sign(fall)
    checks.append(Check("elbo_convergence", True, f"the loss over the last {n} steps fell {fall:.3g} ({z:.1f} se), "
                                                  f"flag above {ELBO_Z:g} se and {ELBO_RTOL:.1%} of the loss"))
    if z > ELBO_Z and fall > ELBO_RTOL * abs(means.mean()):
        found.append(Flag("elbo_convergence", f"not converged: the loss still falls over the last {n} steps "
                                              f"(by {fall:.3g}, {z:.1f} standard errors)",
                          "run more steps or raise lr"))


def _loo_check(idata, checks: list, found: list) -> None:
    if not (hasattr(idata, "log_likelihood") and len(getattr(idata.log_likelihood, "data_vars", [])) == 1):
        checks.append(Check("pareto_k", False, "PSIS-LOO needs one observed site's pointwise log-likelihood"))
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loo = az.loo(idata, pointwise=True)
    k = np.asarray(loo.pareto_k)
    checks.append(Check("pareto_k", True, f"flag PSIS-LOO k above {PARETO_K_MAX} per observation"))
    if (k > PARETO_K_MAX).any():
        found.append(Flag("pareto_k", f"{int((k > PARETO_K_MAX).sum())} observation(s) with Pareto k > "
                                      f"{PARETO_K_MAX}",
                          "LOO is unreliable there: influential points; try a more robust likelihood or K-fold CV"))


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
        return "energy plot needs the sampler's Hamiltonian energy (nuts, hmc and numpyro-nuts record it)"
    return figure_of(az.plot_energy(idata, figsize=(6, 4)))
