"""The result of a fit, whatever the method: draws, timings, losses, diagnostics, and a way to
save it as a run folder and load it back."""
from __future__ import annotations

import platform
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppgen.errors import record_failure
from ppgen.problem import Problem
from ppgen.runfolder import FORMAT, atomic_path, check_format, read_json, read_torch, write_json, write_torch

__all__ = ["Fit", "load"]

PRIOR_DRAWS = 200  # prior predictive draws a run folder's prior_ppc.png is drawn from


@dataclass
class Fit:
    """What ``ppgen.fit`` returns.

    :ivar method: the inference method's registry name.
    :ivar model_name: the model's name.
    :ivar chains: draws grouped by chain, ``{site: (chain, draw, *shape)}``.
    :ivar seconds: wall time of the inference itself.
    :ivar losses: per-step loss (-ELBO) for optimization methods.
    :ivar log_evidence: ``log p(data)`` where the method gives it (exact for ``enum``), or the final ELBO.
    :ivar diagnostics: divergences, acceptance rate, ... where the method reports them.
    :ivar params: learned Pyro params (optimization methods).
    :ivar extras: method-specific results (e.g. ``marginals`` and ``map`` for ``enum``).
    :ivar errors: post-fit steps that failed, ``{step: message}`` (the draws are kept whatever fails).
    :ivar groups: extra ArviZ groups (``prior``, ``prior_predictive``, ``predictions``),
        ``{group: {site: (chain, draw, ...)}}``.

    Example:
        >>> import ppgen
        >>> fit = ppgen.fit("eight_schools", method="map", steps=200, num_samples=1, progress=False)
        >>> fit.method, sorted(fit.samples)[:3], tuple(fit.samples["theta"].shape)
        ('map', ['mu', 'tau', 'theta'], (1, 8))
    """

    method: str
    model_name: str
    chains: dict
    seconds: float
    losses: list | None = None
    log_evidence: float | None = None
    diagnostics: dict = field(default_factory=dict)
    params: dict | None = None
    guide: Any = None
    extras: dict = field(default_factory=dict)
    sample_stats: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict, repr=False)
    problem: Problem | None = field(default=None, repr=False)
    _idata: Any = field(default=None, repr=False)

    @property
    def samples(self) -> dict:
        """``{site: (draws, *shape)}``, all chains concatenated."""
        return self.get_samples()

    def get_samples(self, group_by_chain: bool = False) -> dict:
        return dict(self.chains) if group_by_chain else _flat(self.chains)

    @property
    def num_chains(self) -> int:
        return next(iter(self.chains.values())).shape[0] if self.chains else 0

    def to_arviz(self):
        """An ArviZ ``InferenceData`` (posterior, sample_stats, log_likelihood, posterior_predictive, observed_data)."""
        if self._idata is None:
            if self.problem is None:
                raise ValueError("this Fit has neither its model nor a saved posterior; nothing to convert")
            from ppgen.arviz_bridge import to_inference_data

            self._idata = to_inference_data(self.problem, self.chains, self.sample_stats, errors=self.errors,
                                            groups=self.groups,
                                            attrs={"ppgen_method": self.method, "ppgen_model": self.model_name})
        return self._idata

    def prior_predictive(self, num_samples: int = 500) -> dict:
        """Draws from the prior and the prior predictive on this fit's data, ``{site: (num_samples, ...)}``;
        also added to :meth:`to_arviz` as the ``prior`` and ``prior_predictive`` groups."""
        from ppgen.predictive import prior_groups

        self.groups.update(prior_groups(self._require_problem(), num_samples))
        self._idata = None
        return _flat({**self.groups["prior"], **self.groups["prior_predictive"]})

    def predict(self, data: dict, sites: list[str] | None = None) -> dict:
        """The posterior predictive at new inputs (``def model(x, y=None)`` with ``data={"x": new_x}``):
        ``{site: (draws, ...)}`` for every site the posterior does not fix (by default), each
        draw of the posterior conditioning one run of the model; also the ``predictions`` group of
        :meth:`to_arviz`."""
        from ppgen.predictive import predictions

        self.groups["predictions"] = predictions(self._require_problem(), self.chains, data, sites)
        self._idata = None
        return _flat(self.groups["predictions"])

    def _require_problem(self) -> Problem:
        if self.problem is None:
            raise ValueError("this Fit was loaded from a run folder without its model; fit again to predict")
        return self.problem

    def summary(self, **kwargs):
        """ArviZ's summary table (pandas): mean, sd, hdi, mcse, ess_bulk, ess_tail, r_hat per parameter."""
        from ppgen.arviz_bridge import az

        idata = self.to_arviz()
        names = [k for k in idata.posterior.data_vars]
        with warnings.catch_warnings():  # constant draws (observed-out discrete sites) give 0/0 in ESS, shown as NaN
            warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
            return az.summary(idata, var_names=names, **kwargs)

    def _attempt(self, step: str, write) -> bool:
        """Run one post-fit step; a failure is kept in ``errors`` (and in ``metrics.json``), not raised."""
        try:
            write()
            return True
        except Exception as e:  # noqa: BLE001 - the fit has spent its time: keep what can be kept
            record_failure(self.errors, step, e, f"{step} not written")
            return False

    def _prior_check(self) -> None:
        """The prior predictive for the run folder's ``prior_ppc.png``; a model with an improper prior
        has none, which ``diagnostics["prior_predictive"]`` says."""
        from ppgen.errors import NotApplicableError

        try:
            self.prior_predictive(PRIOR_DRAWS)
        except NotApplicableError as e:
            self.diagnostics["prior_predictive"] = f"not drawn: {e}"

    def _write_netcdf(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            self.to_arviz().to_netcdf(str(tmp))

    def _write_summary(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            self.summary().to_csv(tmp)

    def metrics(self) -> dict:
        return {
            "format": FORMAT,
            "method": self.method,
            "model": self.model_name,
            "seconds": self.seconds,
            "num_chains": self.num_chains,
            "num_draws": int(next(iter(self.chains.values())).shape[1]) if self.chains else 0,
            "log_evidence": self.log_evidence,
            "final_loss": self.losses[-1] if self.losses else None,
            "diagnostics": self.diagnostics,
            "errors": self.errors,
        }

    def save(self, folder: str | Path, plots: bool = True, checks: bool = False) -> Path:
        """Write a run folder: ``config.json``, ``posterior.nc`` (netCDF), ``summary.csv``, ``losses.csv``,
        ``trace.png``, ``rank.png``, ``params.pt`` (learned params) and ``metrics.json`` (written last: its
        presence marks a complete folder). ``checks`` adds the prior predictive draws, ``ppc.png`` /
        ``prior_ppc.png`` and the model's graph ``model.svg`` (``ppgen fit`` writes them). A step that fails
        is named in ``errors``."""
        from ppgen import graph
        from ppgen import plots as ppgen_plots

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {**self.config, "versions": versions(), "command": " ".join(sys.argv)}
        write_json(folder / "config.json", config)
        if checks and self.problem is not None:
            self._attempt("model.svg", lambda: graph.write(self.problem, folder / "model.svg"))
        if self.chains:
            if checks and self.problem is not None and "prior" not in self.groups:
                self._attempt("prior_predictive", self._prior_check)
            if not self._attempt("posterior.nc", lambda: self._write_netcdf(folder / "posterior.nc")):
                write_torch(folder / "draws.pt", {k: v.detach().cpu() for k, v in self.chains.items()})
            self._attempt("summary.csv", lambda: self._write_summary(folder / "summary.csv"))
            if plots:
                self._attempt("trace.png", lambda: ppgen_plots.trace_and_rank(self.to_arviz(), folder))
            if checks:
                self._attempt("ppc.png", lambda: ppgen_plots.predictive_checks(self.to_arviz(), folder))
        if self.losses:
            with atomic_path(folder / "losses.csv") as tmp:
                np.savetxt(tmp, np.asarray(self.losses), header="loss", comments="")
            if plots:
                from ppgen import plots as ppgen_plots

                ppgen_plots.loss_curve(self.losses, folder / "loss.png")
        if self.params:
            write_torch(folder / "params.pt", {k: v.detach().cpu() for k, v in self.params.items()})
        write_json(folder / "metrics.json", self.metrics())
        return folder


def _flat(grouped: dict) -> dict:
    """``{site: (chain, draw, ...)}`` as ``{site: (chain * draw, ...)}``."""
    return {k: v.reshape((-1,) + tuple(v.shape[2:])) for k, v in grouped.items()}


def load(folder: str | Path) -> Fit:
    """Load a run folder written by :meth:`Fit.save`."""
    from ppgen.arviz_bridge import az
    from ppgen.errors import RunFolderError

    folder = Path(folder)
    metrics = read_json(folder / "metrics.json")
    check_format(metrics, folder)
    config = read_json(folder / "config.json")
    chains, idata = {}, None
    if (folder / "posterior.nc").exists():
        try:
            idata = az.from_netcdf(str(folder / "posterior.nc"))
            chains = {k: torch.as_tensor(np.asarray(v.values)) for k, v in idata.posterior.data_vars.items()}
        except Exception as e:  # netCDF/HDF5 readers raise many types for a damaged file
            raise RunFolderError(f"{str(folder / 'posterior.nc')!r} is truncated or not a netCDF posterior "
                                 f"({e})") from None
    elif (folder / "draws.pt").exists():  # the draws of a fit whose ArviZ conversion failed
        chains = read_torch(folder / "draws.pt", "a file of posterior draws")
    losses, params = None, None
    if (folder / "losses.csv").exists():
        losses = np.loadtxt(folder / "losses.csv", skiprows=1, ndmin=1).tolist()
    if (folder / "params.pt").exists():
        params = read_torch(folder / "params.pt", "a file of learned params")
    return Fit(method=metrics["method"], model_name=metrics["model"], chains=chains, seconds=metrics["seconds"],
               losses=losses, params=params, log_evidence=metrics.get("log_evidence"),
               diagnostics=metrics.get("diagnostics", {}), config=config, errors=metrics.get("errors", {}),
               _idata=idata)


def versions() -> dict:
    import pyro

    out = {"python": platform.python_version(), "torch": torch.__version__, "pyro": pyro.__version__}
    for name in ("numpyro", "jax", "arviz"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            pass
    return out
