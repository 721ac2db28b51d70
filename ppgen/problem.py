"""A model and its data, checked against each other before any compute is spent.

:func:`prepare` takes the model as :func:`ppgen.spec.spec_of` does (a callable, an object with
``model``/``guide``, a factory's spec, or ``"path/file.py:function"``), moves the data to the device once,
and runs the program once under a prior trace with Pyro's
argument validation on. That trace tells every engine what it needs (latent, discrete, observed and
deterministic sites, their shapes and plates, ``max_plate_nesting``) and is where bad data is caught:
a missing or unexpected key, a NaN, a value outside a site's support or a shape that does not match
the plates raises one :class:`~ppgen.errors.DataError` naming the site, the expected and the actual.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import config_enumerate
from pyro.infer.autoguide.initialization import InitMessenger
from pyro.util import check_site_shape

from ppgen.device import placement, resolve_device
from ppgen.errors import DataError
from ppgen.handlers import is_plate_index
from ppgen.handlers.dependent_support import TRANSFORMED, DependentSupport, dependent_sites
from ppgen.handlers.full_data import FullData
from ppgen.handlers.site_tracker import SiteTracker
from ppgen.init import init_to_median, init_to_unconstrained_uniform
from ppgen.spec import check_keys, signature, spec_of

__all__ = ["Problem", "RunConfig", "SiteInfo", "prepare"]


@dataclass(frozen=True)
class SiteInfo:
    """What one prior trace says about a sample or deterministic site."""

    name: str
    shape: tuple[int, ...]  # the value's shape (batch + event)
    event_dim: int
    plates: tuple[tuple[str, int, int], ...]  # (name, dim, size) of the vectorized plates around it
    kind: str  # "latent" | "discrete" | "observed" | "factor" | "deterministic"

    def dim_names(self) -> list[str]:
        """Names for the value's axes: a plate's name where the axis is a plate's, else ``site_dim_i``."""
        batch_ndim = len(self.shape) - self.event_dim
        by_dim = {dim: name for name, dim, _ in self.plates}
        names = []
        for i in range(len(self.shape)):
            neg = i - batch_ndim  # negative batch dim of axis i (only meaningful for batch axes)
            names.append(by_dim[neg] if i < batch_ndim and neg in by_dim else f"{self.name}_dim_{i}")
        return names


@dataclass
class RunConfig:
    """Settings every engine reads; ``options`` holds method-specific keyword arguments."""

    method: str
    guide: Any = None
    num_samples: int = 1000
    num_warmup: int = 1000
    num_chains: int = 1
    steps: int = 2000
    seed: int = 0
    progress: bool = True
    options: dict = field(default_factory=dict)
    checkpoint_dir: str | Path | None = None  # where long runs save state and resume from


@dataclass
class Problem:
    """A validated model with its data on ``device``. Built by :func:`prepare`.

    ``program`` is the user's program as written; ``model`` is what Pyro's engines run: the program
    with each site whose support depends on another latent sampled on its unconstrained space
    (:class:`~ppgen.handlers.dependent_support.DependentSupport`, names in ``dependent``). ``full_model`` and
    ``full_program`` see every row of a subsampled plate (``subsampled``): MCMC and every post-fit
    step use them, SVI fits the minibatches.
    """

    name: str
    model: Callable
    data: dict
    device: torch.device
    dtype: torch.dtype
    backends: tuple[str, ...]
    sites: dict[str, SiteInfo]
    max_plate_nesting: int
    observed: dict[str, torch.Tensor]  # each observed site's value on all rows
    guide: Callable | str | None = None  # the model's own guide (e.g. an amortized encoder), if it has one
    program: Callable | None = None
    dependent: tuple[str, ...] = ()
    subsampled: bool = False
    cache: dict = field(default_factory=dict, repr=False)  # what posterior.py probes once per problem
    instance: Any = None  # the object a registered factory built (its networks hold the trained weights)

    def __post_init__(self):
        if self.program is None:
            self.program = self.model

    def names(self, *kinds: str) -> list[str]:
        return [n for n, s in self.sites.items() if s.kind in kinds]

    @property
    def has_discrete(self) -> bool:
        return bool(self.names("discrete"))

    def enumerated(self, program: Callable) -> Callable:
        """``program`` with every discrete latent marked for parallel enumeration."""
        return config_enumerate(program, default="parallel") if self.has_discrete else program

    @cached_property
    def enum_model(self) -> Callable:
        """The model with every discrete latent marked for parallel enumeration."""
        return self.enumerated(self.model)

    @cached_property
    def full_model(self) -> Callable:
        """The model on every row of its subsampled plates."""
        return FullData()(self.model) if self.subsampled else self.model

    @cached_property
    def full_program(self) -> Callable:
        """The program as written, on every row of its subsampled plates."""
        return FullData()(self.program) if self.subsampled else self.program

    @cached_property
    def continuous_model(self) -> Callable:
        """The model with its discrete latents hidden: what an autoguide should cover."""
        return poutine.block(self.enum_model, hide=self.names("discrete")) if self.has_discrete else self.model

    def placement(self):
        return placement(self.device, self.dtype)


def to_tensors(data: dict, device: torch.device, dtype: torch.dtype) -> dict:
    """Arrays, lists and tensors to tensors on ``device`` (floats in ``dtype`` unless already torch
    tensors); Python scalars and ``None`` pass through unchanged."""
    if not isinstance(data, dict):
        raise DataError(f"data must be a dict of name -> array, got {type(data).__name__}")
    out = {}
    for key, value in data.items():
        if value is None or isinstance(value, (bool, int, float, str)):
            out[key] = value
            continue
        if isinstance(value, torch.Tensor):
            out[key] = value.to(device)
            continue
        try:
            arr = np.asarray(value)
        except ValueError as e:
            raise DataError(f"data[{key!r}] is not a rectangular array ({e})") from None
        if arr.dtype.kind == "f":
            out[key] = torch.as_tensor(arr, dtype=dtype, device=device)
        elif arr.dtype.kind in "iub":
            out[key] = torch.as_tensor(arr.astype(np.int64) if arr.dtype.kind != "b" else arr, device=device)
        else:
            raise DataError(f"data[{key!r}] must be numeric, got an array of dtype {arr.dtype}")
    return out


def _check_finite(data: dict) -> None:
    for key, value in data.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            bad = ~torch.isfinite(value)
            if bad.any():
                idx = tuple(int(i) for i in bad.nonzero()[0])
                raise DataError(f"data[{key!r}] has {int(bad.sum())} NaN/inf value(s), the first at index {idx}; "
                                f"drop or impute them before fitting")


_MODEL_ERRORS = (ValueError, RuntimeError, IndexError, TypeError, AssertionError, AttributeError, KeyError)


def _failure(name: str, where: str, e: Exception) -> DataError:
    message = str(e).split("\nTrace Shapes:")[0]
    return DataError(f"model {name!r} fails on this data ({where}): {type(e).__name__}: {message}")


def _trace(name: str, model: Callable, data: dict) -> poutine.Trace:
    tracker = SiteTracker()
    try:
        with pyro.validation_enabled(True), poutine.block(), tracker:
            return poutine.trace(model).get_trace(**data)
    except DataError as e:  # the model's own check, already naming the site; Pyro appended trace shapes
        raise DataError(str(e).split("\nTrace Shapes:")[0].strip()) from None
    except _MODEL_ERRORS as e:
        where = f"after site {tracker.last!r}" if tracker.last else "before its first sample site"
        raise _failure(name, where, e) from e


def _site_kind(site) -> str:
    fn = site["fn"]
    if site["infer"].get(TRANSFORMED):
        return "deterministic"  # sampled on its unconstrained space by DependentSupport
    if site["is_observed"]:
        if type(fn).__name__ == "Unit" or isinstance(fn, pyro.distributions.Unit):
            return "factor"
        if site["infer"].get("_deterministic"):
            return "deterministic"
        return "observed"
    if getattr(fn, "has_enumerate_support", False) and site["infer"].get("enumerate", "parallel") is not None:
        return "discrete"
    return "latent"


def _check_observed(name: str, site) -> None:
    value, fn = site["value"], site["fn"]
    if not isinstance(value, torch.Tensor):
        raise DataError(f"observed site {site['name']!r} of model {name!r} must be an array, "
                        f"got {type(value).__name__}")
    if value.is_floating_point() and not torch.isfinite(value).all():
        raise _NoFit(f"observed site {site['name']!r} of model {name!r} has NaN/inf values")
    expected = tuple(fn.batch_shape + fn.event_shape)
    padded = (1,) * (len(expected) - value.dim()) + tuple(value.shape)
    if padded != expected:
        raise DataError(f"observed site {site['name']!r} of model {name!r}: expected shape {expected} "
                        f"(from its plates and distribution), got {tuple(value.shape)}; check the shapes of the "
                        f"observed array and of the arrays its distribution is built from")
    ok = fn.support.check(value)
    if not bool(ok.all()):
        first = value[~ok.expand(value.shape)][0] if ok.shape == value.shape else value.flatten()[0]
        raise _NoFit(f"observed site {site['name']!r} of model {name!r}: values must lie in the support "
                        f"{fn.support} of {type(fn).__name__}, got e.g. {first.item()!r}")


def _describe(tr: poutine.Trace) -> tuple[dict[str, SiteInfo], int]:
    sites, dims = {}, []
    for site in tr.nodes.values():
        if site["type"] != "sample" or site["name"].startswith("_"):
            continue
        if is_plate_index(site["fn"]):
            continue
        plates = tuple((f.name, f.dim, f.size) for f in site["cond_indep_stack"] if f.vectorized)
        dims += [f.dim for f in site["cond_indep_stack"] if f.vectorized]
        shape, kind = tuple(getattr(site["value"], "shape", ())), _site_kind(site)
        event_dim = site["fn"].event_dim
        if kind == "deterministic" and _plates_cover(shape, plates):
            event_dim = 0  # pyro.deterministic marks every dim as event; inside plates they are the plates'
        sites[site["name"]] = SiteInfo(site["name"], shape, event_dim, plates, kind)
    return sites, (-min(dims) if dims else 0)


def _plates_cover(shape: tuple, plates: tuple) -> bool:
    """Whether every axis of ``shape`` lines up with a plate (same size, or 1)."""
    sizes = {dim: size for _, dim, size in plates}
    return all(-i in sizes and shape[-i] in (sizes[-i], 1) for i in range(1, len(shape) + 1))


def prepare(model, data: dict | None, device="auto", dtype: torch.dtype | None = None,
            require_observed: bool = True) -> Problem:
    """Move ``data`` to ``device`` and validate it with ``model`` (see module doc): a
    :class:`~ppgen.spec.ModelSpec` or anything :func:`~ppgen.spec.spec_of` takes (registered names are
    resolved by :func:`ppgen.prepare`). ``require_observed=False`` accepts data that observes nothing
    (inputs to predict at)."""
    spec = spec_of(model)
    name, backends = spec.name, spec.backends
    if data is None:
        if spec.data is None:
            raise DataError(f"model {name!r} has no bundled data: pass data=... (a dict of name -> array)")
        data = spec.data()
    dev = resolve_device(device)
    dtype = dtype or torch.get_default_dtype()
    tensors = to_tensors(data, dev, dtype)
    _check_finite(tensors)
    with placement(dev, dtype):
        built = spec.build(tensors)
    program, tensors = built.program, built.data
    check_keys(name, signature(program).parameters, tensors)
    with placement(dev, dtype):
        full = FullData()
        tr = _valid_trace(name, full(program), tensors)
        latent = [n for n, s in tr.nodes.items() if s["type"] == "sample" and not s["is_observed"]
                  and not is_plate_index(s["fn"]) and not s["fn"].support.is_discrete]
        dependent = (tuple(dependent_sites(tr, _valid_trace(name, full(program), tensors, first=1), latent))
                     if latent else ())
        model = DependentSupport(dependent)(program) if dependent else program
        if dependent:
            tr = _valid_trace(name, FullData()(model), tensors)
    sites, max_plate_nesting = _describe(tr)
    observed = [s for s in tr.nodes.values() if s["type"] == "sample" and sites.get(s["name"])
                and sites[s["name"]].kind == "observed"]
    if require_observed and not observed and not any(s.kind == "factor" for s in sites.values()):
        params = signature(program).parameters
        unused = [p for p in params if p not in tensors and params[p].kind is not inspect.Parameter.VAR_KEYWORD]
        hint = f"; arguments not given: {', '.join(unused)}" if unused else ""
        raise DataError(f"model {name!r} observes nothing with the data given ({', '.join(tensors) or 'none'}){hint}: "
                        f"without observed data the posterior is the prior")
    return Problem(name, model, tensors, dev, dtype, backends, sites, max_plate_nesting,
                   {site["name"]: site["value"] for site in observed}, built.guide, program=program,
                   dependent=dependent, subsampled=bool(full.subsampled), instance=built.instance)


ATTEMPTS = 10  # initial values tried before data that fits no value of the latents is refused


class _NoFit(DataError):
    """The data does not fit the model at these values of the latents (another value may fit)."""


def _valid_trace(name: str, program: Callable, data: dict, first: int = 0) -> poutine.Trace:
    """A checked trace of ``program`` at latent values valid by construction: the prior median where
    the prior can be sampled (else Stan's uniform(-2, 2) on the unconstrained space), then Stan's
    rule at up to ``ATTEMPTS`` random points, until the observed data lies in its support with a
    finite log density (a shape error is final at once). ``first`` skips the first attempts."""
    error = None
    for attempt in range(first, first + ATTEMPTS):
        strategy = init_to_median if attempt == 0 else init_to_unconstrained_uniform
        try:
            return _checked_trace(name, InitMessenger(strategy)(program), data)
        except _NoFit as e:
            error = error or e
    raise DataError(str(error)) from None


def _checked_trace(name: str, program: Callable, data: dict) -> poutine.Trace:
    tr = _trace(name, program, data)
    sites, _ = _describe(tr)
    for site in tr.nodes.values():
        if site["type"] == "sample" and site["name"] in sites and sites[site["name"]].kind == "observed":
            _check_observed(name, site)
    try:
        with pyro.validation_enabled(True):
            tr.compute_log_prob()
        for site in tr.nodes.values():
            if site["type"] == "sample" and site["name"] in sites:
                check_site_shape(site, math.inf)  # the log density's shape must match the plates, all of it
    except _MODEL_ERRORS as e:
        raise _failure(name, "computing its log density", e) from e
    bad = [n for n in sites if (sites[n].kind == "observed" and not torch.isfinite(tr.nodes[n]["log_prob"]).all())
           or (sites[n].kind == "factor" and torch.isnan(tr.nodes[n]["log_prob"]).any())]  # a factor may be -inf
    if bad:
        raise _NoFit(f"model {name!r}: the log density of {', '.join(map(repr, bad))} is not finite at any of "
                     f"{ATTEMPTS} initial values of its latents; check the data against the model's supports")
    return tr
