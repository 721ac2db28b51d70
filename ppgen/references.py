"""Reference posteriors: what :func:`ppgen.compare` measures every method against.

A :class:`Reference` holds, per scalar parameter (ArviZ's names: ``mu``, ``theta[0]``,
``beta[0, 1]``), the posterior mean and sd, and where it has them, draws and ``log p(data)``.
From the best source to the weakest:

- :func:`exact`: enumeration of a model whose latents are all discrete (moments from the exact
  marginals, exact log evidence);
- :func:`gaussian` / :func:`linear_gaussian`: a conjugate closed form. For
  ``z ~ N(m0, S0)``, ``y_i ~ N(A z, R)`` (i = 1..n) the posterior is ``N(m, S)`` with

      S^-1 = S0^-1 + n A^T R^-1 A,    m = S (S0^-1 m0 + A^T R^-1 sum_i y_i),

  and ``log p(y)`` is a Gaussian density in the stacked ``y``;
- :func:`from_draws_file`: a posteriordb ``*.draws.json.zip`` (Stan's reference draws; Stan's
  1-based indices become Python's 0-based ones);
- :func:`from_summary` / :func:`from_summary_file`: ``{param: {"mean": ..., "sd": ...}}`` (a
  registered model's ``reference``);
- :func:`from_fit`: any fit, e.g. the longest NUTS run when nothing better exists.
"""
from __future__ import annotations

import json
import math
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ppgen import inference
from ppgen.api import fit as run_fit
from ppgen.errors import DataError, PPGenWarning, UnknownNameError

__all__ = ["Reference", "resolve", "from_runs", "coerce", "exact", "gaussian", "linear_gaussian", "from_draws_file",
           "from_summary", "from_summary_file", "from_draws", "from_fit", "exact_moments", "scalar_names", "flatten",
           "canonical"]


@dataclass
class Reference:
    """A reference posterior, per scalar parameter.

    :ivar source: where it comes from, in words (shown in tables and reports).
    :ivar kind: ``"exact"``, ``"closed form"``, ``"draws"``, ``"summary"`` or ``"run"``.
    :ivar mean, sd: ``{param: float}``.
    :ivar draws: ``{param: 1-D array}`` where the reference has draws (plots show their histogram).
    :ivar log_evidence: ``log p(data)`` where known exactly.
    :ivar method: the compared run that serves as reference (kind ``"run"``), if any.
    """

    source: str
    kind: str
    mean: dict[str, float]
    sd: dict[str, float]
    draws: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    log_evidence: float | None = None
    method: str | None = None

    @property
    def params(self) -> list[str]:
        return list(self.mean)

    def lookup(self, name: str) -> str | None:
        """The reference's own key for a parameter name spelled either ``beta[0, 1]`` or ``beta[0,1]``."""
        return self._canonical.get(canonical(name))

    @property
    def _canonical(self) -> dict[str, str]:
        return {canonical(k): k for k in self.mean}


def canonical(name: str) -> str:
    return name.replace(" ", "")


def scalar_names(site: str, shape: tuple) -> list[str]:
    """``site`` for a scalar, ``site[i]``, ``site[i, j]`` ... in C order otherwise (ArviZ's spelling)."""
    if not shape:
        return [site]
    return [f"{site}[{', '.join(map(str, idx))}]" for idx in np.ndindex(*shape)]


def flatten(chains: dict) -> tuple[list[str], np.ndarray]:
    """Draws ``{site: (chain, draw, *shape)}`` as names and one float array ``(chain, draw, P)``."""
    names, columns = [], []
    for site, value in chains.items():
        arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        c, d = arr.shape[:2]
        names += scalar_names(site, arr.shape[2:])
        columns.append(arr.reshape(c, d, -1).astype(np.float64))
    if not columns:
        return [], np.zeros((1, 0, 0))
    return names, np.concatenate(columns, axis=-1)


def from_summary(params: dict, source: str = "summary") -> Reference:
    """From ``{param: {"mean": m, "sd": s, ...}}`` (further keys such as quantiles are ignored)."""
    missing = [k for k, v in params.items() if not {"mean", "sd"} <= set(v)]
    if missing:
        raise DataError(f"reference summary entries need 'mean' and 'sd'; {', '.join(missing[:5])} lack them")
    return Reference(source, "summary", {k: float(v["mean"]) for k, v in params.items()},
                     {k: float(v["sd"]) for k, v in params.items()})


def from_summary_file(path: str | Path) -> Reference:
    """A JSON file ``{param: {"mean": m, "sd": s}}``, or one entry of posteriordb's
    ``reference_summaries.json`` (``{"params": {...}}``, Stan's indices)."""
    from ppgen.data import stan_to_python_index

    path = Path(path)
    try:
        loaded = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"reference summary {str(path)!r} cannot be read as JSON ({e})") from None
    if not isinstance(loaded, dict):
        raise DataError(f"reference summary {str(path)!r} must hold a JSON object, got {type(loaded).__name__}")
    if "params" in loaded:
        loaded = {stan_to_python_index(k): v for k, v in loaded["params"].items()}
    return from_summary(loaded, source=f"summary ({path.name})")


def from_draws(draws: dict, source: str = "draws", kind: str = "draws") -> Reference:
    """From ``{param: 1-D draws}``."""
    draws = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in draws.items()}
    return Reference(source, kind, {k: float(v.mean()) for k, v in draws.items()},
                     {k: float(v.std(ddof=1)) for k, v in draws.items()}, draws)


def from_draws_file(path: str | Path) -> Reference:
    """A posteriordb draws file: a zipped JSON list of chains, each ``{"param[i]": [draws]}`` (Stan's
    1-based indices), as in ``posteriordb/posterior_database/reference_posteriors/draws``."""
    from ppgen.data import stan_to_python_index

    path = Path(path)
    if not path.exists():
        raise DataError(f"reference draws file {str(path)!r} does not exist")
    try:
        with zipfile.ZipFile(path) as z:
            members = [n for n in z.namelist() if n.endswith(".json")]
            if len(members) != 1:
                raise DataError(f"{str(path)!r} should hold exactly one .json file, it holds {z.namelist()}")
            chains = json.loads(z.read(members[0]))
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"reference draws file {str(path)!r} is not a zipped JSON file ({e})") from None
    if not isinstance(chains, list) or not chains or not all(isinstance(c, dict) for c in chains):
        raise DataError(f"{str(path)!r}: expected a list of chains, each a dict 'param' -> draws")
    draws = {stan_to_python_index(k): np.concatenate([np.asarray(c[k], dtype=np.float64) for c in chains])
             for k in chains[0]}
    return from_draws(draws, source=f"posteriordb draws ({path.name}, {len(chains)} chains)")


def from_fit(fit, source: str | None = None) -> Reference:
    """From a :class:`~ppgen.results.Fit`: exact moments where the fit has exact marginals
    (``enum``), moments of its draws elsewhere."""
    names, draws = flatten(fit.chains)
    flat = draws.reshape(-1, draws.shape[-1])
    ref = from_draws(dict(zip(names, flat.T)), source=source or f"{fit.method} run ({flat.shape[0]} draws)", kind="run")
    ref.method = fit.method
    for name, (mean, sd) in exact_moments(fit).items():
        ref.mean[name], ref.sd[name] = mean, sd
    return ref


def exact_moments(fit) -> dict[str, tuple[float, float]]:
    """``{param: (mean, sd)}`` of the discrete sites whose exact marginals the fit carries (``enum``)."""
    out = {}
    for site, probs in (fit.extras or {}).get("marginals", {}).items():
        probs = probs.detach().cpu().double().numpy() if hasattr(probs, "detach") else np.asarray(probs, float)
        shape = tuple(fit.chains[site].shape[2:]) if site in fit.chains else probs.shape[:-1]
        if probs.shape[:-1] != shape:
            continue  # marginals not laid out like the site's values: the draws' moments stand
        k = np.arange(probs.shape[-1], dtype=np.float64)
        mean = (probs * k).sum(-1)
        sd = np.sqrt(np.clip((probs * k**2).sum(-1) - mean**2, 0.0, None))
        for name, m, s in zip(scalar_names(site, shape), mean.ravel(), sd.ravel()):
            out[name] = (float(m), float(s))
    return out


def exact(model, data: dict | None = None, num_samples: int = 2000, seed: int = 0, **fit_kwargs) -> Reference:
    """Exact enumeration (``method="enum"``): raises :class:`~ppgen.NotApplicableError` when the model
    has continuous latents. Deterministic sites get their moments from ``num_samples`` exact draws."""
    fit = run_fit(model, data, method="enum", num_samples=num_samples, seed=seed, progress=False, **fit_kwargs)
    ref = from_fit(fit, source="exact enumeration")
    ref.kind, ref.method, ref.log_evidence = "exact", None, fit.log_evidence
    return ref


def gaussian(mean, cov, site: str, log_evidence: float | None = None, source: str = "closed form") -> Reference:
    """A Gaussian posterior ``N(mean, cov)`` of site ``site`` (``mean`` a scalar or a vector)."""
    mean = np.asarray(mean, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64).reshape(mean.size, mean.size)
    names = scalar_names(site, mean.shape)
    return Reference(source, "closed form", dict(zip(names, mean.ravel().tolist())),
                     dict(zip(names, np.sqrt(np.diag(cov)).tolist())), log_evidence=log_evidence)


def linear_gaussian(y, A, noise_cov, prior_mean, prior_cov, site: str) -> Reference:
    """The conjugate posterior of ``z ~ N(prior_mean, prior_cov)``, ``y_i ~ N(A z, noise_cov)``
    for the rows ``y_i`` of ``y`` (shape ``(n, d_y)``; 1-D ``y`` means ``d_y = 1``), with the exact
    log evidence. ``z`` is scalar when ``prior_mean`` is."""
    m0 = np.asarray(prior_mean, dtype=np.float64)
    d = m0.size
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    n, dy = y.shape
    A = np.asarray(A, dtype=np.float64).reshape(dy, d)
    R = np.asarray(noise_cov, dtype=np.float64).reshape(dy, dy)
    S0 = np.asarray(prior_cov, dtype=np.float64).reshape(d, d)
    R_inv, S0_inv = np.linalg.inv(R), np.linalg.inv(S0)
    S = np.linalg.inv(S0_inv + n * A.T @ R_inv @ A)
    m = S @ (S0_inv @ m0.ravel() + A.T @ R_inv @ y.sum(0))
    # log p(y): the stacked y is Gaussian with mean 1 (x) A m0 and covariance 1 1^T (x) A S0 A^T + I (x) R
    big_cov = np.kron(np.ones((n, n)), A @ S0 @ A.T) + np.kron(np.eye(n), R)
    resid = y.ravel() - np.tile(A @ m0.ravel(), n)
    _, logdet = np.linalg.slogdet(big_cov)
    log_evidence = -0.5 * (resid @ np.linalg.solve(big_cov, resid) + logdet + n * dy * np.log(2 * np.pi))
    return gaussian(m.reshape(m0.shape), S, site, log_evidence=float(log_evidence),
                    source="closed form (linear-Gaussian conjugate)")


# ------------------------------------------------------------------------ resolution for compare
def resolve(spec, problem, model_spec, labels: list[str], device, dtype) -> Reference | str | None:
    """The reference :func:`ppgen.compare` measures against: a :class:`Reference`, or the label of the
    run (or ``"longest"``) that will serve as one (:func:`from_runs` then picks it)."""
    from ppgen.results import Fit

    if spec is None or (isinstance(spec, str) and spec == "auto"):
        if model_spec.reference is not None:
            return coerce(model_spec.reference(), f"the reference registered with model {problem.name!r}")
        if not problem.names("latent") and problem.has_discrete:
            return exact(problem.model, problem.data, device=device, dtype=dtype)
        return "longest"
    if isinstance(spec, (Reference, Fit, dict)) or callable(spec):
        return coerce(spec() if callable(spec) else spec, "the given reference")
    if isinstance(spec, str) and spec in labels + ["longest"]:
        return spec
    if spec in ("exact", "enum"):
        return exact(problem.model, problem.data, device=device, dtype=dtype)
    if spec == "model":
        if model_spec.reference is None:
            raise UnknownNameError(f"model {problem.name!r} has no registered reference; choose another reference")
        return coerce(model_spec.reference(), f"the reference registered with model {problem.name!r}")
    path = Path(spec)
    if path.suffix == ".zip" and path.exists():
        return from_draws_file(path)
    if path.suffix == ".json" and path.exists():
        return from_summary_file(path)
    raise UnknownNameError(f"unknown reference {spec!r}: use 'auto', 'exact', 'model', 'longest', a run label "
                           f"({', '.join(labels)}), a *.draws.json.zip or summary .json file that exists, a dict, "
                           f"a Reference or a Fit")


def coerce(obj, source: str) -> Reference:
    """A Reference from a Reference, a Fit, a summary dict or a draws dict."""
    from ppgen.results import Fit

    if isinstance(obj, Reference):
        return obj
    if isinstance(obj, Fit):
        return from_fit(obj)
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        return from_summary(obj, source=source)
    if isinstance(obj, dict) and obj:
        return from_draws(obj, source=source)
    raise DataError(f"cannot use {type(obj).__name__} as a reference posterior: give a Reference, a Fit, "
                    f"{{param: {{'mean': m, 'sd': s}}}} or {{param: draws}}")


def from_runs(which: str, fits: dict, runs: list) -> Reference | None:
    """The run ``which`` (or the longest MCMC run among ``runs``) as the reference."""
    if which != "longest":
        if which not in fits or not fits[which].chains:
            warnings.warn(f"reference run {which!r} gave no draws; the comparison has no reference", PPGenWarning)
            return None
        ref = from_fit(fits[which], source=f"the {which} run")
        ref.method = which
        return ref
    mcmc = [r.label for r in runs
            if r.label in fits and fits[r.label].chains and inference.get(r.method).family == "mcmc"]
    if not mcmc:
        return None
    longest = max(mcmc, key=lambda label: math.prod(next(iter(fits[label].chains.values())).shape[:2]))
    ref = from_fit(fits[longest], source=f"the longest MCMC run ({longest}); nothing better was known")
    ref.method = longest
    return ref
