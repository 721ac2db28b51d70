r"""Simulation-based calibration: ``ppgen.sbc``, how to compare inference methods where no reference
posterior exists (Talts, Betancourt, Simpson, Vehtari, Gelman 2018, "Validating Bayesian inference
algorithms with simulation-based calibration", arXiv:1804.06788).

For s = 1..N: draw parameters from the prior and data from the model given them,

    theta~_s ~ p(theta),    y~_s ~ p(y | theta~_s),

fit the model to y~_s with the method, keep L (thinned) posterior draws theta_1..theta_L and record,
for each scalar parameter j, the rank of the prior draw among them,

    r_sj = #{l : theta_lj < theta~_sj}  in {0, ..., L}      (ties broken uniformly at random).

Since theta~_s is itself a draw from p(theta | y~_s) (the joint p(theta) p(y | theta) read the other
way round), an exact method makes r_sj uniform on {0..L}; a method that is too narrow puts theta~ in
the posterior's tails (a U-shaped histogram: MAP, whose draws are all the mode, gives only 0 and L),
one that is too wide puts it in the middle (a hump), a biased one tilts the histogram.

Two checks of uniformity per method and parameter (the table's columns):

- ``chi2_p``: Pearson's chi-square test of the ranks binned into B bins of (near-)equal width,
  B = min(L + 1, N // 5) so that every bin expects >= 5 ranks;
- ``ecdf_p``, ``outside_95``, ``outside_99``: the ECDF test of Säilynoja, Bürkner and Vehtari (2022,
  "Graphical test for discrete uniformity and its applications in goodness-of-fit evaluation and
  multiple sample comparison", Statistics and Computing 32:32). Under uniformity the number of ranks
  <= k is c_k ~ Binomial(N, z_k), z_k = (k + 1) / (L + 1), for k = 0..L-1; the statistic is the
  smallest two-sided pointwise tail probability,

      gamma = min_k 2 min(F(c_k; N, z_k), 1 - F(c_k - 1; N, z_k)),

  and its null distribution is simulated (:data:`ECDF_TRIALS` sets of N uniform ranks, fixed seed):
  ``ecdf_p = P(gamma_null <= gamma)`` (its resolution: 1 / (ECDF_TRIALS + 1)). The simultaneous
  1 - alpha band is the set of counts whose pointwise tail probability exceeds the alpha-quantile of
  gamma_null: the whole ECDF stays inside it with probability 1 - alpha, and it leaves it exactly when
  gamma is that small (``ecdf.png`` draws the ECDF minus z_k inside the 95% and 99% bands). The band
  agrees with ArviZ's exact "optimized" one (``arviz.stats.ecdf_utils.ecdf_confidence_band``) to
  one count; simulating the null gives the test's p-value as well.

The other columns: ``sims`` (simulations fit; ``failed`` ones, where the method raised a numerical
or data error, are left out, which biases the ranks when failing depends on the data: their count is
the warning), ``L``, ``bins`` (B), ``chi2`` (the statistic), ``ess_bulk`` (below), ``fit_s`` (mean wall
seconds per fit) and ``note``. ``calibrated`` is both p-values >= ``alpha`` (0.01). With many
parameters, expect a few rows of a calibrated method to fail by chance (1 in 100 per test at 0.01).

Thinning. The rank of theta~ among L draws is uniform only if the draws are independent: the draws of
one MCMC chain are autocorrelated, which also shows up as a U shape. Talts et al. thin the chain so
that the kept draws are about as many as its effective sample size. ppgen keeps every ``thin``-th
draw of each chain, L = num_chains * (num_samples // thin); ``thin`` defaults to 1 for methods whose
draws are independent (``svi``, ``map``, ``enum``) and to :data:`MCMC_THIN` for MCMC. The table's
``ess_bulk`` (median over simulations of each parameter's bulk ESS before thinning) says whether that
sufficed: where it is below L the note asks for a larger ``thin`` (or ``num_samples``).

Simulated data. Each observed site's simulated value replaces the data argument the site observes
(:func:`observed_keys`: ``y`` for ``pyro.sample("obs", ..., obs=y)``); the other arguments (inputs,
sizes) stay as given. A model whose observed value is computed from its arguments, or that has
``pyro.factor`` sites, cannot be simulated this way and is refused before anything runs.

Simulations run in a process pool (``forkserver``, else ``spawn``: forking a process that has run
torch is not safe), each one seeded from ``seed`` and its index alone, so the result is the same for
any number of ``workers``. A model passed as a Python function must be importable by the workers (a
function defined at the top of a module or script is; a lambda, a local function or one typed into
an interactive session is not: those run in this process, with a warning).

``ppgen sbc MODEL --methods nuts,svi --num-sims N`` writes ``sbc.csv``, ``ranks.json``, ``ranks.png``
and ``ecdf.png`` (:meth:`SBCResult.save`) into ``runs/sbc-MODEL``.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import pickle
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyro
import torch
from scipy import stats
from tqdm.auto import tqdm

from ppgen import inference, predictive, references
from ppgen.api import fit, prepare, resolve_model
from ppgen.compare import Run, _ess_rhat, _runs, markdown
from ppgen.errors import ConfigError, DataError, NotApplicableError, NumericalError, PPGenWarning
from ppgen.problem import Problem

__all__ = ["sbc", "SBCResult", "ranks_of", "chi_square_test", "ecdf_test", "ecdf_band", "DEFAULT_METHODS",
           "COLUMNS"]

DEFAULT_METHODS = ("nuts", "svi")
MCMC_THIN = 4  # default thinning of MCMC chains (check the table's ess_bulk against L)
MIN_EXPECTED = 5  # ranks each chi-square bin expects, at least
ECDF_TRIALS = 5000  # simulated uniform rank sets behind the ECDF test's null distribution
MAX_PARAMS = 8  # parameters drawn per method in ranks.png and ecdf.png (the table has them all)
COLUMNS = ["method", "param", "sims", "failed", "L", "bins", "chi2", "chi2_p", "ecdf_p", "outside_95",
           "outside_99", "calibrated", "ess_bulk", "fit_s", "note"]


@dataclass
class SBCResult:
    """What :func:`sbc` returns.

    :ivar table: one row per method and scalar parameter (:data:`COLUMNS`; see the module doc).
    :ivar ranks: ``{method: {param: int array (sims,)}}``, each rank in ``0..num_ranks[method]``.
    :ivar num_ranks: ``{method: L}``, the posterior draws each rank is taken among (every ``thin``-th
        draw of each chain; a variational method draws one "chain" whatever ``num_chains`` says).
    :ivar notes: ``{method: why}`` for the methods with no ranks or with failed simulations.
    """

    model_name: str
    num_sims: int
    seed: int
    table: pd.DataFrame
    ranks: dict[str, dict[str, np.ndarray]]
    num_ranks: dict[str, int]
    notes: dict[str, str] = field(default_factory=dict)

    def plot(self, folder) -> dict[str, Path]:
        """Write ``ranks.png`` (rank histograms, one row per method, one column per parameter, with the
        99% band of a uniform histogram) and ``ecdf.png`` (ECDF minus the uniform CDF with the
        simultaneous 95% and 99% bands) into ``folder``; returns ``{"ranks": path, "ecdf": path}``."""
        folder = Path(folder)
        return {"ranks": _plot(self, folder / "ranks.png", _histogram_panel, "simulations"),
                "ecdf": _plot(self, folder / "ecdf.png", _ecdf_panel, "ECDF - uniform CDF")}

    def save(self, folder) -> dict[str, Path]:
        """Write ``sbc.csv`` (the table), ``ranks.json`` and both plots into ``folder``; returns their paths."""
        from ppgen.runfolder import atomic_path, write_json

        folder = Path(folder)
        with atomic_path(folder / "sbc.csv") as tmp:
            self.table.to_csv(tmp, index=False)
        write_json(folder / "ranks.json", {
            "model": self.model_name, "num_sims": self.num_sims, "seed": self.seed, "notes": self.notes,
            "methods": {m: {"L": self.num_ranks[m], "ranks": ranks} for m, ranks in self.ranks.items()}})
        return {"table": folder / "sbc.csv", "ranks_json": folder / "ranks.json", **self.plot(folder)}

    def to_markdown(self) -> str:
        return markdown(self.table.set_index("method"), [c for c in COLUMNS if c not in ("method", "note")])


def sbc(model, data: dict | None = None, methods=DEFAULT_METHODS, num_sims: int = 100, seed: int = 0, *,
        num_samples: int = 400, num_warmup: int = 400, num_chains: int = 1, steps: int = 2000,
        thin: int | None = None, alpha: float = 0.01, options: dict | None = None, workers: int | None = None,
        device="auto", dtype: torch.dtype | None = None, progress: bool = True) -> SBCResult:
    """Simulation-based calibration of each of ``methods`` on ``model`` (see the module doc).

    :param data: the model's inputs (``None``: its bundled data). Its observed values only fix the
        shapes: each simulation replaces them with data drawn from the prior predictive.
    :param methods: method names and/or :class:`~ppgen.compare.Run` entries, as in :func:`ppgen.compare`.
    :param num_sims: N, the simulated data sets; each method is fit to the same N.
    :param seed: the prior draws come from ``seed``; simulation s fits with seed ``seed + s``.
    :param thin: keep every ``thin``-th draw (default 1, or :data:`MCMC_THIN` for MCMC methods).
    :param alpha: the level of the ``calibrated`` column.
    :param options: ``{label or method: {fit option: value}}``, as in :func:`ppgen.compare`.
    :param workers: processes to run simulations in (default ``os.cpu_count()``; 1 runs them here).
    :param num_samples, num_warmup, num_chains, steps, device, dtype: as in :func:`ppgen.fit`.
    """
    runs = _runs(methods, options or {})
    for run in runs:
        inference.get(run.method)  # an unknown name fails here, not after the first simulations
    if num_sims < 2:
        raise ConfigError(f"sbc needs num_sims >= 2, got {num_sims}")
    thins = {r.label: _thin(r, thin) for r in runs}
    empty = [r.label for r in runs if r.options.get("num_samples", num_samples) < thins[r.label]]
    if empty:
        raise ConfigError(f"thinning leaves no draws for {empty}: num_samples must be >= thin")
    problem = prepare(model, data, device=device, dtype=dtype)
    keys = observed_keys(problem)
    raw = data if data is not None else resolve_model(model).data()
    pyro.set_rng_seed(seed)
    with torch.no_grad():
        groups = predictive.prior_groups(problem, num_sims)
    truths = {k: v[0].detach().cpu() for k, v in groups["prior"].items()}
    simulated = {k: v[0].detach().cpu() for k, v in groups["prior_predictive"].items()}
    common = dict(num_samples=num_samples, num_warmup=num_warmup, num_chains=num_chains, steps=steps,
                  device=device, dtype=dtype, progress=False)
    # each job gets copies: a view would carry (and pickle) the draws of every simulation
    jobs = [_Job(model, {**raw, **{key: simulated[site][s].reshape(problem.data[key].shape)
                                   .to(problem.data[key].dtype, copy=True) for site, key in keys.items()}},
                 {k: v[s].clone() for k, v in truths.items()}, runs, thins, common, seed, s) for s in range(num_sims)]
    _check_replaced(model, problem, keys, jobs[0].data, {site: v[0] for site, v in simulated.items()})
    results = _map(jobs, _workers(model, workers, num_sims), progress)
    return _collect(problem.name, runs, results, num_sims, seed, alpha)


def observed_keys(problem: Problem) -> dict[str, str]:
    """``{observed site: data key}``: the data argument each observed site takes its value from (the
    same array, else the one array holding the same values), which a simulation replaces."""
    factors = problem.names("factor")
    if factors:
        raise NotApplicableError(f"model {problem.name!r} has factor site(s) {', '.join(map(repr, factors))}: a "
                                 f"factor adds to the density but cannot be simulated, so SBC cannot draw its data")
    out = {}
    for site, value in problem.observed.items():
        arrays = {k: v for k, v in problem.data.items() if isinstance(v, torch.Tensor)}
        found = [k for k, v in arrays.items() if v is value] or [
            k for k, v in arrays.items() if v.numel() == value.numel() and v.dtype == value.dtype
            and torch.equal(v.reshape(value.shape), value)]
        if len(found) != 1:
            why = "is none of its data arguments" if not found else f"matches several data arguments ({found})"
            raise DataError(f"model {problem.name!r}: the value of observed site {site!r} {why} "
                            f"({', '.join(arrays) or 'none'}), so SBC cannot replace it with simulated data; "
                            f"pass it as its own argument and observe it as it is, e.g. "
                            f"`def model(..., {site}=None): ... pyro.sample({site!r}, ..., obs={site})`")
        out[site] = found[0]
    shared = {key for key in out.values() if list(out.values()).count(key) > 1}
    if shared:
        sites = [site for site, key in out.items() if key in shared]
        raise DataError(f"model {problem.name!r}: observed sites {', '.join(map(repr, sites))} all take their value "
                        f"from data argument(s) {', '.join(map(repr, sorted(shared)))}, so SBC cannot give each its "
                        f"own simulated data; observe each site from its own argument")
    return out


def _check_replaced(model, problem: Problem, keys: dict, data: dict, simulated: dict) -> None:
    """The model run on simulated ``data`` observes exactly the simulated values: a data argument matched
    by its values alone (the model reshapes or casts it) could still be transformed on the way."""
    check = prepare(model, data, device=problem.device, dtype=problem.dtype)
    for site, key in keys.items():
        seen = check.observed[site].detach().cpu()
        if not torch.equal(seen.reshape(-1), simulated[site].to(seen.dtype).reshape(-1)):
            raise DataError(f"model {problem.name!r}: observed site {site!r} does not observe data argument {key!r} "
                            f"as given (the model transforms it), so SBC cannot replace it with simulated data; "
                            f"observe the argument as it is, e.g. `pyro.sample({site!r}, ..., obs={key})`")


def ranks_of(truth: np.ndarray, draws: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The rank of each ``truth[j]`` among the draws ``draws[:, j]`` (``(L, P)``): the number of draws
    below it, ties with it broken uniformly at random, so the rank lies in ``0..L``."""
    below = (draws < truth).sum(0)
    ties = (draws == truth).sum(0)
    return below + rng.integers(0, ties + 1)


def _bins(num_sims: int, num_ranks: int) -> list[np.ndarray]:
    count = max(2, min(num_ranks + 1, num_sims // MIN_EXPECTED))
    return np.array_split(np.arange(num_ranks + 1), count)


def chi_square_test(ranks: np.ndarray, num_ranks: int) -> tuple[float, float, int]:
    """Pearson's chi-square test of ranks uniform on ``0..num_ranks``, binned as the module doc says:
    ``(statistic, p-value, bins)``."""
    bins = _bins(len(ranks), num_ranks)
    counts = np.bincount(ranks, minlength=num_ranks + 1)
    observed = np.array([counts[b].sum() for b in bins])
    expected = len(ranks) * np.array([len(b) for b in bins]) / (num_ranks + 1)
    statistic, p = stats.chisquare(observed, expected)
    return float(statistic), float(p), len(bins)


def _gamma(counts: np.ndarray, num_sims: int, z: np.ndarray) -> np.ndarray:
    """The ECDF statistic of each row of ``counts`` (ranks <= k, k = 0..L-1)."""
    tails = np.minimum(stats.binom.cdf(counts, num_sims, z), stats.binom.sf(counts - 1, num_sims, z))
    return 2 * tails.min(-1)


def _z(num_ranks: int) -> np.ndarray:
    return np.arange(1, num_ranks + 1) / (num_ranks + 1)


@lru_cache(maxsize=32)
def _null_gamma(num_sims: int, num_ranks: int) -> np.ndarray:
    """The sorted ECDF statistic of :data:`ECDF_TRIALS` sets of ``num_sims`` uniform ranks."""
    rng = np.random.default_rng(0)
    ranks = rng.integers(0, num_ranks + 1, size=(ECDF_TRIALS, num_sims))
    offsets = (np.arange(ECDF_TRIALS) * (num_ranks + 1))[:, None]
    hist = np.bincount((ranks + offsets).ravel(), minlength=ECDF_TRIALS * (num_ranks + 1))
    counts = hist.reshape(ECDF_TRIALS, num_ranks + 1).cumsum(-1)[:, :-1]
    return np.sort(_gamma(counts, num_sims, _z(num_ranks)))


def _ecdf_counts(ranks: np.ndarray, num_ranks: int) -> np.ndarray:
    return np.bincount(ranks, minlength=num_ranks + 1).cumsum()[:-1]


def _statistic(ranks: np.ndarray, num_ranks: int) -> float:
    return float(_gamma(_ecdf_counts(ranks, num_ranks), len(ranks), _z(num_ranks)))


def ecdf_test(ranks: np.ndarray, num_ranks: int) -> float:
    """The p-value of the ECDF uniformity test of ranks on ``0..num_ranks`` (module doc)."""
    null = _null_gamma(len(ranks), num_ranks)
    return float((1 + np.searchsorted(null, _statistic(ranks, num_ranks), side="right")) / (len(null) + 1))


def _critical_gamma(num_sims: int, num_ranks: int, prob: float) -> float:
    """The largest null statistic with at most ``1 - prob`` of the null at or below it."""
    null = _null_gamma(num_sims, num_ranks)
    share = np.searchsorted(null, null, side="right") / len(null)
    inside = null[share <= 1 - prob]
    return float(inside.max()) if inside.size else 0.0


def ecdf_band(num_sims: int, num_ranks: int, prob: float = 0.99) -> tuple[np.ndarray, np.ndarray]:
    """The simultaneous ``prob`` band of the ECDF of ``num_sims`` uniform ranks on ``0..num_ranks``:
    the smallest and largest count of ranks <= k allowed for k = 0..L-1 (divide by N for the ECDF)."""
    critical = _critical_gamma(num_sims, num_ranks, prob)
    c = np.arange(num_sims + 1)[None, :]
    z = _z(num_ranks)[:, None]
    allowed = np.minimum(stats.binom.cdf(c, num_sims, z), stats.binom.sf(c - 1, num_sims, z)) * 2 > critical
    return allowed.argmax(1), num_sims - allowed[:, ::-1].argmax(1)


def _outside(ranks: np.ndarray, num_ranks: int, prob: float) -> bool:
    """Whether the ECDF of ``ranks`` leaves the simultaneous ``prob`` band (:func:`ecdf_band`) anywhere."""
    return _statistic(ranks, num_ranks) <= _critical_gamma(len(ranks), num_ranks, prob)


# ------------------------------------------------------------------ the simulations


@dataclass
class _Job:
    """One simulation: the data drawn for it, the prior draw it came from, and every run to fit."""

    model: object
    data: dict
    truth: dict
    runs: list[Run]
    thins: dict
    common: dict
    seed: int
    index: int


def _thin(run: Run, thin: int | None) -> int:
    if thin is not None:
        if thin < 1:
            raise ConfigError(f"thin must be >= 1, got {thin}")
        return thin
    return MCMC_THIN if inference.get(run.method).family == "mcmc" else 1


@lru_cache(maxsize=4)
def _spec(name: str):
    """A model given by name or ``file.py:function``, resolved once per worker (a file is run once)."""
    return resolve_model(name)


def _simulate(job: _Job) -> dict:
    """Fit every run to one simulated data set: ``{label: {"ranks", "names", "ess", "wall"} or {"status", "note"}}``."""
    model = _spec(job.model) if isinstance(job.model, str) else job.model
    out = {}
    for run in job.runs:
        try:
            start = time.perf_counter()
            result = fit(model, job.data, method=run.method, seed=job.seed + job.index,
                         **{**job.common, **run.options})
            wall = time.perf_counter() - start
        except NotApplicableError as e:
            out[run.label] = {"status": "not applicable", "note": str(e)}
            continue
        except (NumericalError, DataError) as e:  # one simulated data set a method cannot fit: counted
            out[run.label] = {"status": "failed", "note": f"{type(e).__name__}: {e}"}
            continue
        chains = {k: v for k, v in result.chains.items() if k in job.truth}
        names, draws = references.flatten(chains)
        _, truth = references.flatten({k: job.truth[k][None, None] for k in chains})
        thin = job.thins[run.label]
        kept = draws[:, thin - 1::thin].reshape(-1, len(names))
        rng = np.random.default_rng([job.seed, job.index])
        ess = (_ess_rhat(draws)[0] if inference.get(run.method).family == "mcmc" and draws.shape[1] >= 4
               else np.full(len(names), math.nan))
        out[run.label] = {"status": "ok", "names": names, "ranks": ranks_of(truth[0, 0], kept, rng), "L": len(kept),
                          "ess": ess, "wall": wall}
    return out


def _workers(model, workers: int | None, num_sims: int) -> int:
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    workers = min(workers or os.cpu_count() or 1, num_sims)
    if workers == 1:
        return 1
    main = sys.modules.get("__main__")
    try:
        pickle.dumps(model)
        if getattr(model, "__module__", None) == "__main__" and not hasattr(main, "__file__"):
            raise pickle.PicklingError("it is defined in an interactive session, which worker processes cannot import")
    except (pickle.PicklingError, AttributeError, TypeError) as e:
        warnings.warn(f"ppgen.sbc: the model cannot be sent to worker processes ({e}); running the "
                      f"simulations in this process (define it at the top of a module to run them in parallel)",
                      PPGenWarning, stacklevel=3)
        return 1
    return workers


def _context():
    """``forkserver`` where there is one: a server process that imports ppgen once (and never runs torch,
    whose threads make forking a busy process unsafe) forks each worker; else ``spawn``."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["ppgen"])  # takes effect when the server starts, the first time
    return context


def _map(jobs: list[_Job], workers: int, progress: bool) -> list[dict]:
    bar = tqdm(total=len(jobs), desc="sbc", unit="sim", disable=not progress, mininterval=0.5)
    if workers == 1:
        results = []
        for job in jobs:
            results.append(_simulate(job))
            bar.update()
        bar.close()
        return results
    results = [None] * len(jobs)
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, mp_context=_context(),
                             initializer=torch.set_num_threads, initargs=(threads,)) as pool:
        futures = {pool.submit(_simulate, job): job.index for job in jobs}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.update()
    bar.close()
    return results


# ------------------------------------------------------------------ the table


def _collect(name: str, runs: list[Run], results: list[dict], num_sims: int, seed: int, alpha: float) -> SBCResult:
    rows, ranks, sizes, notes = [], {}, {}, {}
    for run in runs:
        done = [r[run.label] for r in results if r[run.label]["status"] == "ok"]
        failed = [r[run.label] for r in results if r[run.label]["status"] != "ok"]
        if failed:
            notes[run.label] = (f"{len(failed)} of {num_sims} simulations {failed[0]['status']}: "
                                f"{failed[0]['note']}")
        if len(done) < 2:
            status = failed[0]["status"] if failed else "failed"
            rows.append({"method": run.label, "param": "", "sims": len(done), "failed": len(failed),
                         "note": f"{status}: {notes.get(run.label, 'no simulation ran')}"})
            continue
        names, size = done[0]["names"], done[0]["L"]  # the same in every simulation: the same settings
        sizes[run.label] = size
        drawn = np.stack([d["ranks"] for d in done])  # (sims, params)
        ess = np.median(np.stack([d["ess"] for d in done]), 0)
        wall = float(np.mean([d["wall"] for d in done]))
        ranks[run.label] = {p: drawn[:, j] for j, p in enumerate(names)}
        for j, param in enumerate(names):
            chi2, chi2_p, bins = chi_square_test(drawn[:, j], size)
            ecdf_p = ecdf_test(drawn[:, j], size)
            note = f"ESS {ess[j]:.0f} < L: thinned draws are autocorrelated, raise thin" if ess[j] < size else ""
            rows.append({"method": run.label, "param": param, "sims": len(done), "failed": len(failed), "L": size,
                         "bins": bins, "chi2": chi2, "chi2_p": chi2_p, "ecdf_p": ecdf_p,
                         "outside_95": _outside(drawn[:, j], size, 0.95),
                         "outside_99": _outside(drawn[:, j], size, 0.99),
                         "calibrated": chi2_p >= alpha and ecdf_p >= alpha, "ess_bulk": ess[j], "fit_s": wall,
                         "note": note})
    table = pd.DataFrame([{c: row.get(c, math.nan) for c in COLUMNS} for row in rows], columns=COLUMNS)
    return SBCResult(name, num_sims, seed, table, ranks, sizes, notes)


# ------------------------------------------------------------------ the plots


def _plot(result: SBCResult, path: Path, panel, ylabel: str) -> Path:
    """One panel per method (row) and parameter (column), on the fractional rank r / (L + 1) so that
    methods with different L share the x axis; a row shares its y axis (the same N)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ppgen.plots import save_png

    methods = list(result.ranks)
    params = max((list(r) for r in result.ranks.values()), key=len, default=[])[:MAX_PARAMS]
    rows, cols = max(1, len(methods)), max(1, len(params))
    fig, axes = plt.subplots(rows, cols, squeeze=False, sharex=True, sharey="row", figsize=(2.2 * cols, 1.9 * rows))
    for i, method in enumerate(methods):
        for j, param in enumerate(params):
            if param in result.ranks[method]:
                panel(axes[i, j], result.ranks[method][param], result.num_ranks[method])
            axes[i, j].set_title(f"{method}: {param}", fontsize=8)
        axes[i, 0].set_ylabel(ylabel, fontsize=8)
    for ax in axes.flat:
        ax.set_xlim(0, 1)
        ax.set_xticks([0, 0.5, 1], ["0", "0.5", "1"])
        ax.tick_params(labelsize=7)
    if not methods:
        axes[0, 0].text(0.5, 0.5, "no method produced ranks", ha="center", va="center")
    for ax in axes[-1]:
        ax.set_xlabel("rank / (L + 1)", fontsize=8)
    total = max((len(r) for r in result.ranks.values()), default=0)
    shown = f" (the first {MAX_PARAMS} of {total} parameters)" if total > MAX_PARAMS else ""
    fig.suptitle(f"SBC of {result.model_name}: {result.num_sims} simulations{shown}", fontsize=9)
    fig.subplots_adjust(hspace=0.5, wspace=0.12)  # tight_layout measures every tick label: slow on big grids
    return save_png(fig, path)


def _histogram_panel(ax, ranks: np.ndarray, num_ranks: int) -> None:
    """Ranks binned as the chi-square test bins them, over the 99% band of each bin's count."""
    bins = _bins(len(ranks), num_ranks)
    counts = np.bincount(ranks, minlength=num_ranks + 1)
    edges = np.r_[[b[0] for b in bins], num_ranks + 1] / (num_ranks + 1)
    share = np.diff(edges)
    low, high = stats.binom.ppf([[0.005], [0.995]], len(ranks), share)
    ax.fill_between(np.repeat(edges, 2)[1:-1], np.repeat(low, 2), np.repeat(high, 2), color="0.85", lw=0)
    ax.bar(edges[:-1], [counts[b].sum() for b in bins], width=0.9 * share, align="edge", color="C0")
    ax.stairs(len(ranks) * share, edges, baseline=None, color="0.4", lw=0.8)


def _ecdf_panel(ax, ranks: np.ndarray, num_ranks: int) -> None:
    """The ECDF of the ranks minus the uniform CDF, inside the simultaneous 95% and 99% bands."""
    n, z = len(ranks), _z(num_ranks)
    for prob, shade in ((0.99, "0.88"), (0.95, "0.75")):
        low, high = ecdf_band(n, num_ranks, prob)
        ax.fill_between(z, low / n - z, high / n - z, step="mid", color=shade, lw=0)
    ax.step(z, _ecdf_counts(ranks, num_ranks) / n - z, where="mid", color="C0", lw=1.2)
    ax.axhline(0, color="0.4", lw=0.6)
