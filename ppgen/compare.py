"""Comparing inference algorithms on one model, honestly: ``ppgen.compare``.

Each method runs on the same model and data with its own seed; a method that cannot run the model
becomes a row saying why. Every run is measured against one reference posterior
(:mod:`ppgen.references`) in the reference's own units: for each scalar parameter j

    mean_err_j = (E_method[theta_j] - E_ref[theta_j]) / sd_ref(theta_j)
    sd_err_j   =  sd_method(theta_j) / sd_ref(theta_j) - 1

so 0 is perfect, ``mean_err = 0.1`` is a tenth of a posterior sd, and a mean-field guide on a
correlated posterior shows up as ``sd_err < 0`` (under-dispersion). ``enum`` is scored on its exact
marginals, not on its draws.

The table's columns (:data:`COLUMNS`), one row per run:

- ``status`` (``ok``, ``not applicable``, ``failed``) and ``note`` (why, or which run is the reference);
- ``wall_s``: wall time of the whole ``ppgen.fit`` call (compilation and warmup included);
  ``steps``: optimization steps, or MCMC iterations (warmup + draws, all chains); ``draws``: posterior draws;
- ``ess_bulk_per_s``, ``ess_tail_per_s``: the smallest bulk / tail ESS over parameters (ArviZ's
  rank-normalized estimators) per wall second, for MCMC and exact runs only: draws from a
  variational guide are independent by construction, and their error is the bias columns;
  importance runs (likelihood weighting) show the Kish ESS of their weights as bulk ESS;
- ``r_hat_max``: the largest rank-normalized split r_hat (needs two chains or more);
  ``divergences``: divergent transitions after warmup;
- ``mean_err_max``, ``mean_err_avg``, ``sd_err_max``, ``sd_err_avg``: max and mean of ``|mean_err_j|``
  and ``|sd_err_j|`` over the parameters the reference has (``table.detail``: each one, signed);
- ``elbo`` (variational runs), ``log_evidence`` (where the method computes it, e.g. ``enum``);
- ``peak_mem_mb``: the most memory the run added (see :class:`PeakMemory`).

``ppgen.compare_models`` (:mod:`ppgen.model_comparison`) ranks different models fit to the same data.
"""
from __future__ import annotations

import math
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ppgen import inference, references
from ppgen.api import fit, prepare, resolve_model
from ppgen.errors import NotApplicableError, NumericalError
from ppgen.memory import PeakMemory
from ppgen.references import Reference

__all__ = ["compare", "Comparison", "Run", "COLUMNS", "DEFAULT_METHODS", "DISCRETE_METHODS"]

DEFAULT_METHODS = ("svi", "map", "nuts", "numpyro-nuts", "enum")
DISCRETE_METHODS = ("enum", "likelihood-weighting", "gibbs")  # the default when every latent is discrete
COLUMNS = ["method", "family", "status", "seed", "wall_s", "steps", "draws", "ess_bulk_per_s", "ess_tail_per_s",
           "r_hat_max", "divergences", "mean_err_max", "mean_err_avg", "sd_err_max", "sd_err_avg", "elbo",
           "log_evidence", "peak_mem_mb", "note"]
DETAIL_COLUMNS = ["run", "param", "mean", "sd", "ref_mean", "ref_sd", "mean_err", "sd_err", "ess_bulk", "ess_tail",
                  "r_hat"]


@dataclass(frozen=True)
class Run:
    """One row of a comparison: ``method`` under the name ``label`` with its own ``ppgen.fit`` options
    (e.g. ``Run("svi-mvn", "svi", {"guide": "mvn", "lr": 0.05})``)."""

    label: str
    method: str
    options: dict = field(default_factory=dict)


class Comparison(pd.DataFrame):
    """The comparison table: one row per run (index: its label), :data:`COLUMNS` as columns.

    :ivar fits: ``{label: Fit}`` for the runs that ran.
    :ivar detail: per run and parameter: mean, sd, reference mean and sd, signed errors, ESS, r_hat.
    :ivar reference: the :class:`~ppgen.references.Reference` (``None`` when there was none).
    :ivar model_name: the model's name.
    :ivar problem: the prepared :class:`~ppgen.problem.Problem` every run fitted (its graph is in the report).
    """

    _metadata = ["fits", "detail", "reference", "model_name", "problem"]

    @property
    def _constructor(self):
        return Comparison

    def to_markdown(self, buf=None, columns=None) -> str | None:
        """A GitHub-flavoured Markdown table (3 significant digits; no ``tabulate`` needed)."""
        text = markdown(self, columns)
        if buf is None:
            return text
        buf.write(text)
        return None


def markdown(frame: pd.DataFrame, columns=None) -> str:
    """``frame`` (its index first) as a Markdown table, numbers to 3 significant digits, NaN blank."""
    columns = [c for c in (columns or frame.columns)]
    head = [frame.index.name or ""] + columns
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for label, row in frame.iterrows():
        lines.append("| " + " | ".join([str(label)] + [format_value(row[c]) for c in columns]) + " |")
    return "\n".join(lines) + "\n"


def format_value(x) -> str:
    """A table cell: integral floats without decimals, others to 3 significant digits, NaN empty."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, (float, np.floating)):
        return f"{x:.0f}" if float(x).is_integer() and abs(x) < 1e6 else f"{x:.3g}"
    return str(x).replace("|", "\\|").replace("\n", " ")


def compare(model, data: dict | None = None, methods=None, reference=None, seed: int = 0, *,
            num_samples: int = 1000, num_warmup: int = 1000, num_chains: int = 4, steps: int = 2000,
            options: dict | None = None, device="auto", dtype: torch.dtype | None = None,
            progress: bool = True) -> Comparison:
    """Fit ``model`` to ``data`` with each of ``methods`` and tabulate them against a reference.

    :param methods: method names (``ppgen.inference.names()``) and/or :class:`Run` entries (a method
        under another label with its own options); run ``i`` gets seed ``seed + i``. ``None``:
        :data:`DISCRETE_METHODS` when every latent is discrete (a Bayes net), else :data:`DEFAULT_METHODS`.
    :param reference: ``None``/``"auto"`` (the model's registered reference, else exact enumeration
        when every latent is discrete, else the longest MCMC run among ``methods``), ``"exact"``,
        ``"model"``, ``"longest"``, a run's label, a posteriordb ``*.draws.json.zip`` file, a JSON
        summary file, a ``{param: {"mean", "sd"}}`` or ``{param: draws}`` dict, a
        :class:`~ppgen.references.Reference` or a :class:`~ppgen.results.Fit`.
    :param options: ``{label or method: {fit option: value}}``, e.g. ``{"svi": {"lr": 0.05}}``.
    :param num_samples, num_warmup, num_chains, steps, device, dtype: as in :func:`ppgen.fit`, for every run.
        ``num_chains`` (4 by default, so that every MCMC row has its r_hat) is for the MCMC runs.

    Bad data, an unknown method and an unusable reference are refused before anything runs.
    """
    problem = prepare(model, data, device=device, dtype=dtype)
    if methods is None:
        methods = DISCRETE_METHODS if problem.has_discrete and not problem.names("latent") else DEFAULT_METHODS
    runs = _runs(methods, options or {})
    for run in runs:
        inference.get(run.method)  # an unknown name fails here, not after the first runs
    spec = resolve_model(model)
    ref = references.resolve(reference, problem, spec, [r.label for r in runs], device=device, dtype=dtype)
    common = dict(num_samples=num_samples, num_warmup=num_warmup, num_chains=num_chains, steps=steps,
                  device=device, dtype=dtype, progress=progress)
    fits, rows = {}, {}
    for i, run in enumerate(runs):
        if progress:
            print(f"compare [{i + 1}/{len(runs)}] {run.label}", file=sys.stderr, flush=True)
        rows[run.label], result = _run_one(model, data, problem, run, seed + i, common)
        if result is not None:
            fits[run.label] = result
    if isinstance(ref, str):  # the reference is one of the runs
        ref = references.from_runs(ref, fits, runs)
    detail = []
    for run in runs:
        if run.label in fits:
            stats, per_param = _measure(fits[run.label], ref, inference.get(run.method).family, run.label)
            row = rows[run.label]
            row.update(stats, ess_bulk_per_s=stats["ess_bulk_min"] / row["wall_s"],
                       ess_tail_per_s=stats["ess_tail_min"] / row["wall_s"])
            detail.append(per_param)
    if ref is not None and ref.method in rows:
        rows[ref.method]["note"] = f"the reference ({ref.source}): errors not shown"
        for col in ("mean_err_max", "mean_err_avg", "sd_err_max", "sd_err_avg"):
            rows[ref.method][col] = math.nan
    table = Comparison([{c: row.get(c, math.nan) for c in COLUMNS} for row in rows.values()], index=list(rows))
    table.index.name = "run"
    table.fits, table.reference, table.model_name, table.problem = fits, ref, problem.name, problem
    table.detail = pd.concat(detail, ignore_index=True) if detail else pd.DataFrame(columns=DETAIL_COLUMNS)
    return table


def _runs(methods, options: dict) -> list[Run]:
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    runs = [m if isinstance(m, Run) else Run(m, m) for m in methods]
    if not runs:
        raise ValueError("compare needs at least one method")
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"run labels must be unique, got {labels}; "
                         f"label repeated methods with Run(label, method, options)")
    unknown = set(options) - set(labels) - {r.method for r in runs}
    if unknown:
        raise ValueError(f"options given for {sorted(unknown)}, which are not among the runs {labels}")
    return [Run(r.label, r.method, {**options.get(r.method, {}), **options.get(r.label, {}), **r.options})
            for r in runs]


def _run_one(model, data, problem, run: Run, seed: int, common: dict) -> tuple[dict, object]:
    spec = inference.get(run.method)
    family = spec.family
    row = {"method": run.method, "family": family, "seed": seed, "status": "ok", "note": ""}
    kwargs = {**common, **run.options}
    try:
        if family != "exact" and not spec.discrete and not problem.names("latent"):
            raise NotApplicableError(f"model {problem.name!r} has no continuous latents (only discrete ones, "
                                     f"{', '.join(problem.names('discrete'))}): enumerate them with enum")
        with PeakMemory(problem.device) as memory:
            start = time.perf_counter()
            result = fit(model, data, method=run.method, seed=seed, **kwargs)
            wall = time.perf_counter() - start
    except NotApplicableError as e:
        return {**row, "status": "not applicable", "note": str(e)}, None
    except NumericalError as e:  # a method that blows up on this model is a result, not a crash
        return {**row, "status": "failed", "note": f"{type(e).__name__}: {e}"}, None
    if family == "variational":
        row["steps"] = kwargs["steps"]
    elif family == "mcmc":
        row["steps"] = (kwargs["num_warmup"] + kwargs["num_samples"]) * kwargs["num_chains"]
    row.update(wall_s=wall, peak_mem_mb=memory.peak_mb, elbo=result.diagnostics.get("elbo", math.nan),
               log_evidence=math.nan if result.log_evidence is None else result.log_evidence,
               divergences=result.diagnostics.get("divergences", math.nan))
    return row, result


def _measure(fit, ref: Reference | None, family: str, label: str) -> tuple[dict, pd.DataFrame]:
    """The table's draws-based columns for one fit, and its per-parameter detail."""
    names, draws = references.flatten(fit.chains)
    if not names:
        return {"draws": 0, "ess_bulk_min": math.nan, "ess_tail_min": math.nan}, pd.DataFrame(columns=DETAIL_COLUMNS)
    chains, ndraws, _ = draws.shape
    flat = draws.reshape(chains * ndraws, -1)
    mean, sd = flat.mean(0), (flat.std(0, ddof=1) if flat.shape[0] > 1 else np.zeros(flat.shape[1]))
    exact = references.exact_moments(fit)  # exact marginals (enum) beat the moments of its draws
    for i, name in enumerate(names):
        mean[i], sd[i] = exact.get(name, (mean[i], sd[i]))
    ess_bulk = ess_tail = rhat = np.full(len(names), math.nan)
    if family in ("mcmc", "exact") and ndraws >= 4:
        ess_bulk, ess_tail, rhat = _ess_rhat(draws)
    elif family == "importance":  # resampled draws repeat: they are worth at most the weights' Kish ESS
        ess_bulk = np.full(len(names), fit.diagnostics.get("ess_kish", math.nan))
    detail = pd.DataFrame({"run": label, "param": names, "mean": mean, "sd": sd, "ess_bulk": ess_bulk,
                           "ess_tail": ess_tail, "r_hat": rhat})
    detail["ref_mean"], detail["ref_sd"] = math.nan, math.nan
    if ref is not None:
        keys = [ref.lookup(n) for n in names]
        detail["ref_mean"] = [ref.mean[k] if k else math.nan for k in keys]
        detail["ref_sd"] = [ref.sd[k] if k else math.nan for k in keys]
    with np.errstate(divide="ignore", invalid="ignore"):
        usable = detail["ref_sd"] > 1e-12
        detail["mean_err"] = np.where(usable, (detail["mean"] - detail["ref_mean"]) / detail["ref_sd"], math.nan)
        detail["sd_err"] = np.where(usable, detail["sd"] / detail["ref_sd"] - 1, math.nan)
    stats = {"draws": chains * ndraws, "r_hat_max": _nanmax(rhat)}
    stats.update({f"{c}_max": _nanmax(detail[c].abs()) for c in ("mean_err", "sd_err")})
    stats.update({f"{c}_avg": _nanmean(detail[c].abs()) for c in ("mean_err", "sd_err")})
    stats["ess_bulk_min"], stats["ess_tail_min"] = _nanmin(ess_bulk), _nanmin(ess_tail)
    return stats, detail[DETAIL_COLUMNS]


def _ess_rhat(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bulk ESS, tail ESS and rank-normalized split r_hat of each column of ``(chain, draw, P)``."""
    from ppgen.arviz_bridge import az

    def column(stat) -> np.ndarray:
        return np.asarray(stat["p"].values, dtype=np.float64).reshape(-1)

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # constant columns (a discrete site that never moves) give NaN
        data = az.convert_to_dataset({"p": draws})
        bulk, tail = column(az.ess(data, method="bulk")), column(az.ess(data, method="tail"))
        rhat = column(az.rhat(data)) if draws.shape[0] >= 2 else np.full(draws.shape[-1], math.nan)
    return bulk, tail, rhat


def _nanmax(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmax(x)) if np.isfinite(x).any() else math.nan


def _nanmin(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmin(x)) if np.isfinite(x).any() else math.nan


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else math.nan
