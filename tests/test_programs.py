"""A corpus of model programs written the way Pyro's and NumPyro's own tutorials and examples write
them (``tests/programs/*.py``), each fit with every method that applies and checked against its
own reference answer; the methods that cannot apply must refuse with a clear message.

Each program module defines ``model`` (a function, an object with ``model``/``guide`` methods, or a
``PyroModule``), ``data``, ``METHODS`` (method -> small ``ppgen.fit`` options), ``REFUSED`` (method ->
a substring of the ``NotApplicableError`` message), ``check(fit)``, and optionally ``guide``,
``LOO_VAR`` (the observed site for ``az.loo`` when there are several), ``PREDICT`` with
``check_predict(pred, fit)``. Modules are loaded from their paths (``tests/programs`` is not a
package), afresh for every fit, so a program's networks start from the same weights whatever ran before.
"""
from __future__ import annotations

import importlib.util
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pyro
import pytest

import ppgen

PROGRAMS = Path(__file__).parent / "programs"
FULL = os.environ.get("PPGEN_FULL_CORPUS") == "1"  # also the methods a program marks SLOW_METHODS (minutes each)
NAMES = sorted(p.stem for p in PROGRAMS.glob("*.py") if not p.stem.startswith("_"))


def load_program(name: str):
    """Import ``tests/programs/NAME.py`` from its path, seeded, as a fresh module."""
    pyro.set_rng_seed(0)
    spec = importlib.util.spec_from_file_location(f"ppgen_program_{name}", PROGRAMS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tables() -> dict:
    """Each program's METHODS, REFUSED and whether it has PREDICT (one import per program at collection)."""
    out = {}
    for name in NAMES:
        module = load_program(name)
        methods = {**module.METHODS, **(getattr(module, "SLOW_METHODS", {}) if FULL else {})}
        out[name] = {"METHODS": methods, "REFUSED": dict(getattr(module, "REFUSED", {})),
                     "PREDICT": hasattr(module, "PREDICT")}
    return out


TABLES = _tables()


def _declared(attr: str) -> list:
    return [pytest.param(name, m, id=f"{name}-{m}") for name in NAMES for m in TABLES[name][attr]]


CASES = _declared("METHODS")
REFUSALS = _declared("REFUSED")
# (program, method) -> (module, fit) or the exception the fit raised: fit once, checked by several tests
_FITS: dict = {}


def fitted(name: str, method: str):
    """The program's module and its fit by ``method`` (fit on first use, in whatever test asks first)."""
    key = (name, method)
    if key not in _FITS:
        module = load_program(name)
        options = dict(TABLES[name]["METHODS"][method])
        if getattr(module, "guide", None) is not None and method == "svi":
            options.setdefault("guide", module.guide)
        pyro.clear_param_store()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = ppgen.fit(module.model, module.data, method=method, seed=0, progress=False, **options)
            try:  # the posterior converted while the fit's own param store is still in place
                fit.to_arviz()
            except Exception:
                pass  # test_arviz_loo reports it
            _FITS[key] = (module, fit)
        except Exception as e:
            _FITS[key] = e
    found = _FITS[key]
    if isinstance(found, Exception):
        raise found
    return found


def _latent_scalars(fit) -> int:
    problem = fit.problem
    count = 0
    for name, site in problem.sites.items():
        if site.kind in ("latent", "discrete", "deterministic") and name in fit.samples:
            count += int(np.prod(site.shape)) if site.shape else 1
    return count


@pytest.mark.parametrize("name,method", CASES)
def test_fit_matches_reference(name, method):
    module, fit = fitted(name, method)
    assert fit.method == method
    module.check(fit)


@pytest.mark.parametrize("name,method", CASES)
def test_summary_has_a_row_per_scalar(name, method):
    module, fit = fitted(name, method)
    table = fit.summary()
    assert len(table) > 0
    continuous = [n for n, s in fit.problem.sites.items() if s.kind == "latent"]
    for n in continuous:  # every continuous latent has its rows: "n" or "n[i, j]"
        site = fit.problem.sites[n]
        rows = [r for r in table.index if r == n or r.startswith(n + "[")]
        assert len(rows) == (int(np.prod(site.shape)) if site.shape else 1), (n, site.shape, len(rows))


@pytest.mark.parametrize("name,method", CASES)
def test_arviz_loo(name, method):
    from ppgen.arviz_bridge import az

    module, fit = fitted(name, method)
    idata = fit.to_arviz()
    assert "posterior" in idata.groups() and "log_likelihood" in idata.groups()
    observed = list(idata.log_likelihood.data_vars)
    var_name = getattr(module, "LOO_VAR", None)
    if var_name is None:
        assert len(observed) == 1, f"several observed sites {observed}: the program should name LOO_VAR"
        var_name = observed[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto-k warnings on few draws are expected
        loo = az.loo(idata, var_name=var_name)
    assert np.isfinite(loo.elpd_loo), loo


@pytest.mark.parametrize("name,method", CASES)
def test_save_load_round_trip(name, method, tmp_path):
    module, fit = fitted(name, method)
    fit.save(tmp_path / "run", plots=False)
    back = ppgen.load(tmp_path / "run")
    assert back.method == method
    assert (tmp_path / "run" / "metrics.json").exists()
    for k, v in fit.samples.items():
        assert k in back.samples, k
        np.testing.assert_allclose(back.samples[k].double().numpy(), v.double().numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,method", REFUSALS)
def test_refuses_with_a_clear_message(name, method):
    module = load_program(name)
    expected = module.REFUSED[method]
    with pytest.raises(ppgen.NotApplicableError, match=expected):
        ppgen.fit(module.model, module.data, method=method, seed=0, progress=False,
                  num_samples=10, num_warmup=10, steps=5)


def _predict_methods(name: str) -> list[str]:
    """Predictions from a sampler's draws (nuts, else the first method listed) and from NumPyro's guide."""
    methods = TABLES[name]["METHODS"]
    first = "nuts" if "nuts" in methods else next(iter(methods))
    return [first] + [m for m in ("numpyro-svi",) if m in methods and m != first]


PREDICTS = [pytest.param(n, m, id=f"{n}-{m}") for n in NAMES if TABLES[n]["PREDICT"] for m in _predict_methods(n)]


@pytest.mark.parametrize("name,method", PREDICTS)
def test_predict_new_inputs(name, method):
    module = load_program(name)
    _, fit = fitted(name, method)
    if not hasattr(fit, "predict"):
        pytest.skip("Fit.predict is not there yet (a requested feature)")
    pred = fit.predict(module.PREDICT)
    module.check_predict(pred, fit)


def _cheapest(module) -> tuple[str, list[str]]:
    methods = module.METHODS
    for m in ("map", "svi"):
        if m in methods:
            return m, ["--steps", "30", "--num-samples", "20"]  # the command's path, not the fit, is checked
    for m in ("numpyro-nuts", "nuts", "hmc"):
        if m in methods:
            return m, ["--num-warmup", "30", "--num-samples", "30"]
    raise AssertionError(f"no method for {module}")


@pytest.mark.parametrize("name", NAMES)
def test_cli_fit(name, tmp_path, capsys):
    """``ppgen fit path/to/file.py:model`` with the file's own ``data`` (in this process: the same
    command line, without a new interpreter's start-up per program)."""
    from ppgen.cli import main

    module = load_program(name)
    method, extra = _cheapest(module)
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["fit", f"{PROGRAMS / (name + '.py')}:model", "--method", method, "--out", str(out), "--no-progress",
                   "--device", "cpu", *extra])
    assert rc == 0, capsys.readouterr()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == method and not metrics["errors"], metrics["errors"]
