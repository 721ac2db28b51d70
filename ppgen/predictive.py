"""Draws that land in ArviZ's ``prior``, ``prior_predictive`` and ``predictions`` groups.

- :func:`prior_predictive`: every site drawn from the prior, data included (the prior predictive
  check: does the model, before seeing the data, put mass where the data lies?);
- :func:`predictions`: the posterior predictive at new inputs: for ``def model(x, y=None)``,
  ``fit.predict({"x": new_x})`` runs the model on ``new_x`` once per posterior draw, conditioned
  on that draw, and samples ``y`` (and any other site the posterior does not fix).

Both re-run the program through :func:`ppgen.posterior.over_draws` (vectorized where it
broadcasts, draw by draw otherwise), so they work for any program and for fits from either backend.
"""
from __future__ import annotations

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer.autoguide.initialization import InitMessenger

from ppgen import posterior
from ppgen.errors import NotApplicableError
from ppgen.handlers import is_plate_index
from ppgen.init import can_sample, init_to_median
from ppgen.problem import Problem, prepare
from ppgen.spec import ModelSpec

__all__ = ["prior_predictive", "prior_groups", "predictions"]


def prior_predictive(model, data: dict | None = None, num_samples: int = 500, seed: int = 0, device="auto",
                     dtype: torch.dtype | None = None):
    """An ArviZ ``InferenceData`` with the ``prior``, ``prior_predictive`` and ``observed_data`` groups:
    ``num_samples`` draws of every site from the prior, the observed sites replicated. ``model`` is
    anything :func:`ppgen.problem.prepare` takes (:func:`ppgen.prior_predictive` also takes names)."""
    from ppgen.arviz_bridge import to_inference_data

    problem = prepare(model, data, device=device, dtype=dtype)
    pyro.set_rng_seed(seed)
    return to_inference_data(problem, {}, groups=prior_groups(problem, num_samples),
                             attrs={"ppgen_model": problem.name})


def prior_groups(problem: Problem, num_samples: int) -> dict:
    """``{"prior": {site: (1, n, ...)}, "prior_predictive": {observed site: (1, n, ...)}}``."""
    improper = _improper_sites(problem)
    if improper:
        raise NotApplicableError(f"model {problem.name!r} has no proper prior to draw from at site(s) "
                                 f"{', '.join(map(repr, improper))} (an improper density such as ImproperUniform): "
                                 f"give them a proper prior for a prior predictive check")
    draws = posterior.prior_draws(problem, num_samples)
    observed = set(problem.names("observed"))
    return {"prior": {k: v.unsqueeze(0) for k, v in draws.items() if k not in observed},
            "prior_predictive": {k: v.unsqueeze(0) for k, v in draws.items() if k in observed}}


def predictions(problem: Problem, chains: dict, data: dict, sites: list[str] | None = None) -> dict:
    """``{site: (chain, draw, ...)}``: the model run on ``data`` (new inputs) once per posterior draw.

    The draws condition every latent site whose shape is the same on the new data (global
    parameters); the others (observed sites left out of ``data``, local latents of new rows) are
    sampled. ``sites`` picks the outputs (default: every site not conditioned)."""
    spec = ModelSpec(problem.name, problem.program, backends=problem.backends)  # the fitted program, as it is
    new = prepare(spec, data, device=problem.device, dtype=problem.dtype, require_observed=False)
    num_chains = next(iter(chains.values())).shape[0]
    flat = {k: v.reshape((-1,) + tuple(v.shape[2:])).to(problem.device) for k, v in chains.items()}
    given = {k: v for k, v in flat.items() if k in new.sites and new.sites[k].kind in ("latent", "discrete")
             and new.sites[k].shape == tuple(v.shape[1:])}
    outputs = sites or [k for k, s in new.sites.items() if k not in given and s.kind != "factor"]
    unknown = [k for k in outputs if k not in new.sites]
    if unknown:
        raise NotApplicableError(f"model {problem.name!r} has no site(s) {', '.join(map(repr, unknown))} on this data; "
                                 f"its sites: {', '.join(new.sites)}")
    drawn = posterior.sites_over_draws(new, given, outputs)
    return {k: v.reshape((num_chains, -1) + tuple(v.shape[1:])) for k, v in drawn.items()}


def _improper_sites(problem: Problem) -> list[str]:
    with torch.no_grad(), problem.placement(), poutine.block():
        trace = poutine.trace(InitMessenger(init_to_median)(problem.full_model)).get_trace(**problem.data)
    return [name.removesuffix("_unconstrained") if name.removesuffix("_unconstrained") in problem.dependent else name
            for name, site in trace.nodes.items() if site["type"] == "sample" and not site["is_observed"]
            and not is_plate_index(site["fn"]) and not can_sample(getattr(site["fn"], "base", site["fn"]))]
