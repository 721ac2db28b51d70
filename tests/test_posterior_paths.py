"""Re-evaluating a model on draws gives one answer whichever way it runs: vectorized (one run under
a plate of draws) and draw by draw; the probe picks the vectorized path only where the two agree.
Every registered model and every program of ``tests/programs/`` is checked."""
import importlib.util
import warnings
from pathlib import Path

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer.autoguide.initialization import InitMessenger

from ppgen import models, posterior
from ppgen.api import prepare
from ppgen.init import init_to_unconstrained_uniform

PROGRAMS = Path(__file__).parent / "programs"
CORPUS = sorted(p.stem for p in PROGRAMS.glob("*.py") if not p.stem.startswith("_"))


def _corpus_program(name: str):
    spec = importlib.util.spec_from_file_location(f"ppgen_paths_{name}", PROGRAMS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = module.data() if callable(module.data) else module.data
    return module.model, data


def _draws(problem, n: int = 3) -> dict:
    """``n`` draws of the continuous latents at Stan's initial values (valid by construction); of the
    discrete ones, drawn by the program, where there are no continuous latents (as a fit's draws hold)."""
    traces = []
    with torch.no_grad(), problem.placement(), poutine.block():
        for _ in range(n):
            traces.append(poutine.trace(InitMessenger(init_to_unconstrained_uniform)(problem.full_model))
                          .get_trace(**problem.data))
    names = problem.names("latent") or problem.names("discrete")
    return {k: torch.stack([tr.nodes[k]["value"] for tr in traces]) for k in names}


def _evaluate(problem, draws: dict, vectorized: bool) -> dict:
    problem.cache["broadcasts"] = vectorized
    out = dict(posterior.pointwise_log_likelihood(problem, draws)) if problem.names("observed") else {}
    if problem.names("deterministic"):
        completed = posterior.complete(problem, draws, num_draws=3)
        out.update({k: completed[k] for k in problem.names("deterministic")})
    return out


def _check(problem) -> None:
    pyro.set_rng_seed(0)
    draws = _draws(problem)
    one = _evaluate(problem, draws, vectorized=False)
    problem.cache.clear()
    if posterior.broadcasts(problem):
        both = _evaluate(problem, draws, vectorized=True)
        assert set(both) == set(one)
        for name in one:
            torch.testing.assert_close(both[name].double(), one[name].double(), rtol=1e-4, atol=1e-4, equal_nan=True)
    else:  # the probe said no: the vectorized run must indeed fail or disagree
        try:
            both = _evaluate(problem, draws, vectorized=True)
        except Exception:
            return
        assert any(both[k].shape != one[k].shape or not torch.allclose(both[k].double(), one[k].double(), rtol=1e-4,
                                                                       atol=1e-5, equal_nan=True) for k in one)


@pytest.mark.parametrize("name", models.names())
def test_registered_model_gives_one_answer_both_ways(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        problem = prepare(name, None, device="cpu")
    _check(problem)


@pytest.mark.parametrize("name", CORPUS)
def test_corpus_program_gives_one_answer_both_ways(name):
    model, data = _corpus_program(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        problem = prepare(model, data, device="cpu")
    _check(problem)
