"""Every ``Example:`` in a docstring runs and prints what it says (doctest), so the examples stay true."""
import doctest
import importlib
import pkgutil

import pytest

import ppgen


def _modules() -> list[str]:
    names = []
    for package in (ppgen, ppgen.models, ppgen.inference):
        names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return sorted({n for n in names if ">>>" in (importlib.util.find_spec(n).loader.get_source(n) or "")})


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples fail"
