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
- ``r_hat_max``: the largest rank-normalized split r_hat (needs two chains or more);
  ``divergences``: divergent transitions after warmup;
- ``mean_err_max``, ``mean_err_avg``, ``sd_err_max``, ``sd_err_avg``: max and mean of ``|mean_err_j|``
  and ``|sd_err_j|`` over the parameters the reference has (``table.detail``: each one, signed);
- ``elbo`` (variational runs), ``log_evidence`` (where the method computes it, e.g. ``enum``);
- ``peak_mem_mb``: the most memory the run added (see :class:`PeakMemory`).

``ppgen.compare_models`` ranks different models fit to the same data by PSIS-LOO or WAIC (``az.compare``).
"""
from __future__ import annotations

import math
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ppgen import inference, references
from ppgen.errors import DataError, NotApplicableError, NumericalError, UnknownNameError
from ppgen.problem import prepare, resolve_model
from ppgen.references import Reference

__all__ = ["compare", "compare_models", "Comparison", "Run", "COLUMNS", "DEFAULT_METHODS"]

DEFAULT_METHODS = ("svi", "map", "nuts", "numpyro-nuts", "enum")
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
    """

    _metadata = ["fits", "detail", "reference", "model_name"]

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


def compare(model, data: dict | None = None, methods=DEFAULT_METHODS, reference=None, seed: int = 0, *,
            num_samples: int = 1000, num_warmup: int = 1000, num_chains: int = 1, steps: int = 2000,
            options: dict | None = None, device="auto", dtype: torch.dtype | None = None,
            progress: bool = True) -> Comparison:
    """Fit ``model`` to ``data`` with each of ``methods`` and tabulate them against a reference.

    :param methods: method names (``ppgen.inference.names()``) and/or :class:`Run` entries (a method
        under another label with its own options); run ``i`` gets seed ``seed + i``.
    :param reference: ``None``/``"auto"`` (the model's registered reference, else exact enumeration
        when every latent is discrete, else the longest MCMC run among ``methods``), ``"exact"``,
        ``"model"``, ``"longest"``, a run's label, a posteriordb ``*.draws.json.zip`` file, a JSON
        summary file, a ``{param: {"mean", "sd"}}`` or ``{param: draws}`` dict, a
        :class:`~ppgen.references.Reference` or a :class:`~ppgen.results.Fit`.
    :param options: ``{label or method: {fit option: value}}``, e.g. ``{"svi": {"lr": 0.05}}``.
    :param num_samples, num_warmup, num_chains, steps, device, dtype: as in :func:`ppgen.fit`, for every run.

    Bad data, an unknown method and an unusable reference are refused before anything runs.
    """
    runs = _runs(methods, options or {})
    for run in runs:
        inference.get(run.method)  # an unknown name fails here, not after the first runs
    problem = prepare(model, data, device=device, dtype=dtype)
    spec = resolve_model(model)
    ref = _reference(reference, problem, spec, [r.label for r in runs], device=device, dtype=dtype)
    common = dict(num_samples=num_samples, num_warmup=num_warmup, num_chains=num_chains, steps=steps,
                  device=device, dtype=dtype, progress=progress)
    fits, rows = {}, {}
    for i, run in enumerate(runs):
        if progress:
            print(f"compare [{i + 1}/{len(runs)}] {run.label}", file=sys.stderr, flush=True)
        rows[run.label], fit = _run_one(model, data, problem, run, seed + i, common)
        if fit is not None:
            fits[run.label] = fit
    if isinstance(ref, str):  # the reference is one of the runs
        ref = _reference_from_runs(ref, fits, runs)
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
    table.fits, table.reference, table.model_name = fits, ref, problem.name
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
        raise ValueError(f"run labels must be unique, got {labels}; label repeated methods with Run(label, method, options)")
    unknown = set(options) - set(labels) - {r.method for r in runs}
    if unknown:
        raise ValueError(f"options given for {sorted(unknown)}, which are not among the runs {labels}")
    return [Run(r.label, r.method, {**options.get(r.method, {}), **options.get(r.label, {}), **r.options}) for r in runs]


def _run_one(model, data, problem, run: Run, seed: int, common: dict) -> tuple[dict, object]:
    import ppgen

    family = inference.get(run.method).family
    row = {"method": run.method, "family": family, "seed": seed, "status": "ok", "note": ""}
    kwargs = {**common, **run.options}
    try:
        if family != "exact" and not problem.names("latent"):
            raise NotApplicableError(f"model {problem.name!r} has no continuous latents (only discrete ones, "
                                     f"{', '.join(problem.names('discrete'))}): enumerate them with enum")
        with PeakMemory(problem.device) as memory:
            start = time.perf_counter()
            fit = ppgen.fit(model, data, method=run.method, seed=seed, **kwargs)
            wall = time.perf_counter() - start
    except NotApplicableError as e:
        return {**row, "status": "not applicable", "note": str(e)}, None
    except NumericalError as e:  # a method that blows up on this model is a result, not a crash
        return {**row, "status": "failed", "note": f"{type(e).__name__}: {e}"}, None
    if family == "variational":
        row["steps"] = kwargs["steps"]
    elif family == "mcmc":
        row["steps"] = (kwargs["num_warmup"] + kwargs["num_samples"]) * kwargs["num_chains"]
    row.update(wall_s=wall, peak_mem_mb=memory.peak_mb, elbo=fit.diagnostics.get("elbo", math.nan),
               log_evidence=math.nan if fit.log_evidence is None else fit.log_evidence,
               divergences=fit.diagnostics.get("divergences", math.nan))
    return row, fit


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
    if family != "variational" and ndraws >= 4:
        ess_bulk, ess_tail, rhat = _ess_rhat(draws)
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


# ------------------------------------------------------------------------------------ reference
def _reference(spec, problem, model_spec, labels: list[str], device, dtype) -> Reference | str | None:
    """A :class:`Reference`, or the label of the run (or ``"longest"``) that will serve as one."""
    from pathlib import Path

    from ppgen.results import Fit

    if spec is None or (isinstance(spec, str) and spec == "auto"):
        if model_spec.reference is not None:
            return _coerce(model_spec.reference(), f"the reference registered with model {problem.name!r}")
        if not problem.names("latent") and problem.has_discrete:
            return references.exact(problem.model, problem.data, device=device, dtype=dtype)
        return "longest"
    if isinstance(spec, (Reference, Fit, dict)) or callable(spec):
        return _coerce(spec() if callable(spec) else spec, "the given reference")
    if isinstance(spec, str) and spec in labels + ["longest"]:
        return spec
    if spec in ("exact", "enum"):
        return references.exact(problem.model, problem.data, device=device, dtype=dtype)
    if spec == "model":
        if model_spec.reference is None:
            raise UnknownNameError(f"model {problem.name!r} has no registered reference; choose another reference")
        return _coerce(model_spec.reference(), f"the reference registered with model {problem.name!r}")
    path = Path(spec)
    if path.suffix == ".zip" and path.exists():
        return references.from_draws_file(path)
    if path.suffix == ".json" and path.exists():
        return references.from_summary_file(path)
    raise UnknownNameError(f"unknown reference {spec!r}: use 'auto', 'exact', 'model', 'longest', a run label "
                           f"({', '.join(labels)}), a *.draws.json.zip or summary .json file that exists, a dict, "
                           f"a Reference or a Fit")


def _coerce(obj, source: str) -> Reference:
    from ppgen.results import Fit

    if isinstance(obj, Reference):
        return obj
    if isinstance(obj, Fit):
        return references.from_fit(obj)
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        return references.from_summary(obj, source=source)
    if isinstance(obj, dict) and obj:
        return references.from_draws(obj, source=source)
    raise DataError(f"cannot use {type(obj).__name__} as a reference posterior: give a Reference, a Fit, "
                    f"{{param: {{'mean': m, 'sd': s}}}} or {{param: draws}}")


def _reference_from_runs(which: str, fits: dict, runs: list[Run]) -> Reference | None:
    if which != "longest":
        if which not in fits or not fits[which].chains:
            warnings.warn(f"reference run {which!r} gave no draws; the comparison has no reference")
            return None
        ref = references.from_fit(fits[which], source=f"the {which} run")
        ref.method = which
        return ref
    mcmc = [r.label for r in runs
            if r.label in fits and fits[r.label].chains and inference.get(r.method).family == "mcmc"]
    if not mcmc:
        return None
    longest = max(mcmc, key=lambda label: math.prod(next(iter(fits[label].chains.values())).shape[:2]))
    ref = references.from_fit(fits[longest], source=f"the longest MCMC run ({longest}); nothing better was known")
    ref.method = longest
    return ref


# ------------------------------------------------------------------------------------ memory
class PeakMemory:
    """Peak memory a block adds: resident set size sampled every ``interval`` seconds (50 ms) by a thread
    (``/proc/self/statm``; elsewhere the process's lifetime peak from ``resource``), minus the size
    when the block started; on a CUDA device, ``torch.cuda.max_memory_allocated`` instead.
    In MiB as ``peak_mb``. Imports a method triggers (JAX for ``numpyro-nuts``) count as its memory."""

    def __init__(self, device=None, interval: float = 0.05):
        self.device, self.interval, self.peak_mb = torch.device(device or "cpu"), interval, math.nan
        self._stop = threading.Event()

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            return self
        self._start = self._peak = _rss()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, _rss())

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._start) / 2**20
            return False
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(max(self._peak, _rss()) - self._start, 0) / 2**20
        return False


def _rss() -> int:
    """Resident set size in bytes."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


# ------------------------------------------------------------------------------------ models
def compare_models(fits, ic: str = "loo", var_name: str | None = None, **kwargs) -> pd.DataFrame:
    """Rank models fit to the same data by expected log predictive density, through ``az.compare``.

    :param fits: a list of fits (or ``InferenceData``), or ``{name: fit}``; names default to
        ``model-method``.
    :param ic: ``"loo"`` (PSIS-LOO; check the ``warning`` column and Pareto k) or ``"waic"``.
    :param var_name: the observed site whose log-likelihood counts, for models with several.
    :returns: ArviZ's table: ``rank``, ``elpd_<ic>``, ``p_<ic>``, ``elpd_diff``, ``weight``, ``se``, ``dse``, ...

    Fits of different data cannot be compared: that is refused with :class:`~ppgen.DataError`.
    """
    from ppgen.arviz_bridge import az

    named = dict(fits) if isinstance(fits, dict) else _names(fits)
    if len(named) < 2:
        raise ValueError(f"compare_models needs at least two fits, got {len(named)}")
    idatas = {name: f.to_arviz() if hasattr(f, "to_arviz") else f for name, f in named.items()}
    for name, idata in idatas.items():
        if not hasattr(idata, "log_likelihood"):
            raise ValueError(f"{name!r} has no pointwise log-likelihood (no posterior draws or no observed site); "
                             f"refit it with num_samples > 0")
    _same_data(idatas)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the warning column says it, per model
        return az.compare(idatas, ic=ic, var_name=var_name, **kwargs)


def _names(fits) -> dict:
    out = {}
    for f in fits:
        base = f"{f.model_name}-{f.method}" if hasattr(f, "model_name") else "model"
        name, k = base, 2
        while name in out:
            name, k = f"{base}-{k}", k + 1
        out[name] = f
    return out


def _same_data(idatas: dict) -> None:
    first_name, first = next(iter(idatas.items()))
    for name, idata in idatas.items():
        if not hasattr(idata, "observed_data") or not hasattr(first, "observed_data"):
            continue
        for var in set(first.observed_data.data_vars) & set(idata.observed_data.data_vars):
            a, b = np.asarray(first.observed_data[var]), np.asarray(idata.observed_data[var])
            if a.shape != b.shape or not np.allclose(a, b):
                raise DataError(f"{name!r} and {first_name!r} were fit to different data (observed site {var!r}: "
                                f"shapes {b.shape} and {a.shape}); LOO/WAIC compare models on the same data only")
