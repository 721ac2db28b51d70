"""Everything computed from draws by re-running the model: one mechanism, two ways to run it.

- :func:`complete` adds deterministic sites and samples discrete latents from their exact
  conditional posterior given the draws (``infer_discrete``), so every engine reports every site;
- :func:`pointwise_log_likelihood` gives ``log p(y_i | draw)`` per observed site and data point,
  with local discrete latents summed out;
- :func:`posterior_predictive` draws replicated data for every observed site;
- :func:`prior_draws` draws every site from the prior (the prior predictive check).

Each one is an *evaluation*: a function of a conditioned program and the dim left free for draws.
:func:`over_draws` runs it

- **vectorized**: once per block of draws, under a ``pyro.plate`` of draws placed left of all the
  model's plates (as ``pyro.infer.Predictive(parallel=True)`` does): one model evaluation, not N;
- **draw by draw**: once per draw, with nothing assumed about broadcasting (as
  ``Predictive(parallel=False)`` does), with a progress bar when it is long.

A program broadcasts over a leading draws dimension only if it is written for it: plain indexing
(``locs[assignment]``), ``PyroModule`` layers and ``x[idx] @ beta`` are not. :func:`broadcasts`
probes that once per problem, on two draws, comparing the vectorized log-likelihoods and
deterministic sites with the draw-by-draw ones; the vectorized path is used only where they agree.
Every evaluation sees all rows of a subsampled plate (:class:`~ppgen.handlers.full_data.FullData`).
"""
from __future__ import annotations

import math
from typing import Callable

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import infer_discrete
from pyro.infer.autoguide.initialization import InitMessenger
from tqdm.auto import tqdm

from ppgen.errors import record_failure
from ppgen.handlers.replicate import Replicate
from ppgen.init import init_to_unconstrained_uniform
from ppgen.problem import Problem

__all__ = ["complete", "completed", "pointwise_log_likelihood", "posterior_predictive", "prior_draws",
           "sites_over_draws", "guide_draws", "over_draws", "broadcasts"]

_DRAWS = "_ppgen_draws"
VECTOR_BUDGET = 2**24  # data elements times draws evaluated at once on the vectorized path
PROGRESS_AFTER = 200  # draw-by-draw runs longer than this show a progress bar

# an evaluation: (program conditioned on draws, the draws dim or None for one draw) -> {name: value}
Evaluation = Callable[[Callable, "int | None"], dict]


def count(draws: dict) -> int:
    """How many draws ``{site: (draws, ...)}`` holds."""
    sizes = {v.shape[0] for v in draws.values()}
    if len(sizes) > 1:
        raise ValueError(f"draws disagree on their number: {sorted(sizes)}")
    return sizes.pop() if sizes else 1


def over_draws(problem: Problem, evaluate: Evaluation, draws: dict, n: int, shapes: dict,
               program: Callable | None = None, vectorized: bool | None = None) -> dict:
    """``{name: (n, *shape)}``: ``evaluate`` on ``program`` (default: the model on all its rows)
    conditioned on each of the ``n`` draws, vectorized where the program broadcasts.

    ``shapes`` gives each output's ``(shape, event_dim)`` for one draw."""
    program = program or problem.full_model
    if vectorized is None:
        vectorized = n >= 2 and broadcasts(problem)
    if vectorized:
        block = max(1, min(n, VECTOR_BUDGET // _data_size(problem)))
        parts = [_vectorized_block(problem, evaluate, program, _take(draws, i, i + block), min(block, n - i), shapes)
                 for i in range(0, n, block)]
    else:
        steps = tqdm(range(n), desc="re-running the model draw by draw", leave=False, mininterval=1.0,
                     disable=None if n > PROGRESS_AFTER else True)
        parts = [_one_draw(problem, evaluate, program, {k: v[i] for k, v in draws.items()}, shapes) for i in steps]
    return {k: torch.cat([p[k] for p in parts]) for k in shapes}


def broadcasts(problem: Problem) -> bool:
    """Whether the program gives the same log densities (discrete latents enumerated) and
    deterministic sites (in a model without discrete latents, whose draws would differ) vectorized
    over two draws as run on each alone: probed once per problem, at two of Stan's initial values
    (valid by construction, drawn without touching the caller's RNG); an error means no."""
    if "broadcasts" not in problem.cache:
        probe = _probe_draws(problem)
        names = problem.names("observed", "factor")
        # with no continuous latent the discrete draws are conditioned on, not enumerated (as
        # pointwise_log_likelihood does): enumerating a whole Bayes net would build its joint table
        conditioned = problem.has_discrete and not problem.names("latent")
        checks = [(_log_densities(problem, names), _batch_shapes(problem, names),
                   problem.full_model if conditioned else problem.enumerated(problem.full_model))]
        if not problem.has_discrete and problem.names("deterministic"):
            deterministic = problem.names("deterministic")
            checks.append((_values(deterministic), _shapes(problem, deterministic), problem.full_model))
        agree = True
        for evaluate, shapes, program in checks:
            try:
                one = over_draws(problem, evaluate, probe, 2, shapes, program=program, vectorized=False)
                both = over_draws(problem, evaluate, probe, 2, shapes, program=program, vectorized=True)
            except Exception:  # noqa: BLE001 - any failure of the probe means: run it draw by draw
                agree = False
                break
            agree = agree and all(_agree(one[k], both[k]) for k in shapes)
        problem.cache["broadcasts"] = agree
    return problem.cache["broadcasts"]


def complete(problem: Problem, draws: dict, temperature: int = 1, num_draws: int | None = None) -> dict:
    """Draws of every latent, discrete and deterministic site, from draws of the continuous latents.

    With ``temperature=0`` discrete sites take their jointly most probable values (MAP). For a model
    with no continuous latents, ``draws`` is empty and ``num_draws`` says how many to make.
    """
    wanted = problem.names("latent", "discrete", "deterministic")
    if set(wanted) <= set(draws):
        return dict(draws)
    n = count(draws) if draws else num_draws
    model = problem.enumerated(problem.full_model)
    mpn = problem.max_plate_nesting

    def evaluate(program, dim):
        if problem.has_discrete:
            first = (dim if dim is not None else -mpn) - 1
            program = infer_discrete(program, first_available_dim=first, temperature=temperature)
        return _values(wanted)(program, dim)

    out = over_draws(problem, evaluate, draws, n, _shapes(problem, wanted), program=model)
    return {**out, **{k: v for k, v in draws.items() if k in wanted}}


def completed(problem: Problem, draws: dict, errors: dict, **options) -> dict:
    """:func:`complete`, or ``draws`` as they are where completing fails: a fit that has spent its
    time keeps its draws, and ``errors["complete"]`` says what failed."""
    try:
        return complete(problem, draws, **options)
    except Exception as e:  # noqa: BLE001 - whatever the program raises, the draws are kept
        record_failure(errors, "complete", e, "deterministic and discrete sites could not be added to the draws")
        return dict(draws)


def pointwise_log_likelihood(problem: Problem, draws: dict) -> dict:
    """``{observed site: (N, *batch_shape)}``: the log-likelihood of each data point under each draw.

    Discrete latents are enumerated and summed out of each observed site's term (exact for local
    latents such as mixture assignments; chains of discrete latents are not factorized per point).
    A program whose latents are all discrete has nothing left to vary by draw once they are summed
    out, so there each term is ``log p(x_i | the discrete latents drawn)``.
    """
    names = problem.names("observed")
    continuous = {k: v for k, v in draws.items() if problem.sites[k].kind == "latent"}
    if not continuous:  # summed out, every draw would give the same terms: condition on the discrete draws
        given = {k: v for k, v in draws.items() if problem.sites[k].kind == "discrete"}
        return over_draws(problem, _log_densities(problem, names), given, count(draws),
                          _batch_shapes(problem, names), program=problem.full_model)
    return over_draws(problem, _log_densities(problem, names), continuous, count(draws),
                      _batch_shapes(problem, names), program=problem.enumerated(problem.full_model))


def posterior_predictive(problem: Problem, draws: dict) -> dict:
    """``{observed site: (N, *shape)}``: replicated data, one set per draw."""
    names = problem.names("observed")
    given = {k: v for k, v in draws.items() if problem.sites[k].kind in ("latent", "discrete")}
    return over_draws(problem, _values(names), given, count(draws), _shapes(problem, names),
                      program=Replicate(names)(problem.full_model))


def prior_draws(problem: Problem, num_samples: int) -> dict:
    """``{site: (num_samples, *shape)}`` for every latent, deterministic and observed site, all drawn
    from the prior (on all rows; observed sites replicated; a dependent bound's unconstrained site is
    drawn through the site's own distribution, so the prior is the program's)."""
    names = problem.names("latent", "discrete", "deterministic", "observed")
    program = Replicate(problem.names("observed"))(problem.full_model)
    return over_draws(problem, _values(names), {}, num_samples, _shapes(problem, names), program=program)


def sites_over_draws(problem: Problem, draws: dict, names) -> dict:
    """``{site: (N, *shape)}``: the named sites of the model on all its rows, conditioned on each draw."""
    return over_draws(problem, _values(names), draws, count(draws), _shapes(problem, names))


def guide_draws(problem: Problem, guide: Callable, names, num_samples: int) -> dict:
    """``{site: (num_samples, *shape)}`` drawn from ``guide``: vectorized in blocks, or draw by draw
    for a guide that does not broadcast over a leading draws dimension (its draws are random, so
    the probe is whether it runs vectorized into the sites' shapes)."""
    shapes = _shapes(problem, names)
    try:
        return over_draws(problem, _values(names), {}, num_samples, shapes, program=guide, vectorized=True)
    except Exception:  # noqa: BLE001 - any failure of a guide run vectorized means: run it draw by draw
        return over_draws(problem, _values(names), {}, num_samples, shapes, program=guide, vectorized=False)


# ----------------------------------------------------------------------------------------- evaluations

def _values(names) -> Evaluation:
    """Each named site's value."""

    def run(program, dim):
        return {name: site["value"] for name, site in _trace(program).nodes.items() if name in names}

    return run


def _log_densities(problem: Problem, names) -> Evaluation:
    """Each named site's log density, with enumerated discrete latents that share its enumeration
    dims summed out (log-sum-exp over them)."""
    mpn = problem.max_plate_nesting

    def run(program, dim):
        lead = mpn + (dim is not None)  # the model's plates, and the draws plate if vectorized
        if problem.has_discrete:
            program = poutine.enum(program, first_available_dim=-lead - 1)
        tr = _trace(program)
        tr.compute_log_prob()
        discrete = [tr.nodes[k]["log_prob"] for k in problem.names("discrete")]
        out = {}
        for name in names:
            lp = tr.nodes[name]["log_prob"]
            if discrete:
                lp = sum((d for d in discrete if _enum_dims(d, lead) & _enum_dims(lp, lead)), lp)
                while lp.dim() > lead:
                    lp = lp.logsumexp(0)
            out[name] = lp
        return out

    return run


# ----------------------------------------------------------------------------------------- mechanics

def _trace(program) -> poutine.Trace:
    return poutine.trace(program).get_trace()


def _vectorized_block(problem, evaluate, program, draws, n, shapes) -> dict:
    mpn = problem.max_plate_nesting
    reshaped = {}
    for name, value in draws.items():
        info = problem.sites[name]
        batch_ndim = len(info.shape) - info.event_dim
        reshaped[name] = value.reshape((n,) + (1,) * (mpn - batch_ndim) + tuple(info.shape))

    def vectorized(**data):
        with pyro.plate(_DRAWS, n, dim=-mpn - 1):
            return program(**data)

    values = _run(problem, evaluate, poutine.condition(vectorized, reshaped), -mpn - 1)
    return {k: _flatten(k, values[k], n, *shapes[k], lead=mpn + 1) for k in shapes}


def _one_draw(problem, evaluate, program, draw, shapes) -> dict:
    values = _run(problem, evaluate, poutine.condition(program, draw), None)
    return {k: _flatten(k, values[k], 1, *shapes[k], lead=problem.max_plate_nesting) for k in shapes}


def _run(problem, evaluate, program, dim) -> dict:
    data = problem.data
    with torch.no_grad(), problem.placement(), poutine.block():
        return evaluate(lambda: program(**data), dim)


def _flatten(name: str, value, n: int, shape: tuple, event_dim: int, lead: int) -> torch.Tensor:
    """``(n, *shape)`` from a site's value laid out as the model sees it: ``lead`` batch dims (the
    model's plates, and the draws plate left of them when vectorized) then ``event_dim`` event dims,
    every dim left of the site's own of size 1 but the draws dim (up to broadcasting)."""
    value = torch.as_tensor(value)
    want = lead + event_dim
    if value.dim() < want:
        value = value.reshape((1,) * (want - value.dim()) + tuple(value.shape))
    outer = value.shape[: value.dim() - len(shape)]
    if value.dim() > want or math.prod(outer) not in (1, n):
        raise ValueError(f"site {name!r}: a value of shape {tuple(value.shape)} does not fit {n} draw(s) "
                         f"of shape {shape}")
    return value.reshape((-1,) + tuple(value.shape[len(outer):])).expand((n,) + tuple(shape))


def _probe_draws(problem: Problem) -> dict:
    """Two draws of the continuous latents at Stan's initial values (of the discrete ones, from the
    program, where there are no continuous latents)."""
    program = InitMessenger(init_to_unconstrained_uniform)(problem.full_model)
    with torch.random.fork_rng(devices=[problem.device] if problem.device.type == "cuda" else []):
        traces = [_run(problem, lambda p, dim: _trace(p), program, None) for _ in range(2)]
    names = problem.names("latent") or problem.names("discrete")
    return {k: torch.stack([tr.nodes[k]["value"] for tr in traces]) for k in names}


def _take(draws: dict, start: int, stop: int) -> dict:
    return {k: v[start:stop] for k, v in draws.items()}


def _data_size(problem: Problem) -> int:
    return sum(v.numel() for v in problem.data.values() if torch.is_tensor(v)) or 1


def _shapes(problem: Problem, names) -> dict:
    return {k: (problem.sites[k].shape, problem.sites[k].event_dim) for k in names}


def _batch_shapes(problem: Problem, names) -> dict:
    return {k: (problem.sites[k].shape[: len(problem.sites[k].shape) - problem.sites[k].event_dim], 0) for k in names}


def _enum_dims(t: torch.Tensor, lead: int) -> set[int]:
    """The enumeration dims (left of the plates, and of the draws plate) along which ``t`` varies."""
    return {d for d in range(-t.dim(), -lead) if t.shape[d] > 1}


def _agree(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape:
        return False
    if not a.is_floating_point():
        return bool((a == b).all())
    return bool(torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-5, equal_nan=True))
