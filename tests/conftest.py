"""Test-wide settings: nothing is written under ~, plots never need a display, JAX on the CPU."""
import os
import tempfile

_CACHE = os.path.join(tempfile.gettempdir(), "ppgen-test-cache")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("XDG_CACHE_HOME", _CACHE)
os.environ.setdefault("MPLCONFIGDIR", os.path.join(_CACHE, "matplotlib"))
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402
import torch  # noqa: E402

# the tests' tensors are small: one thread avoids oversubscribing CI's two cores (measured ~3x faster)
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fresh_pyro_state():
    """Every test starts from seed 0 (torch, numpy and Python's random: ``pyro.set_rng_seed``) with an
    empty param store, so no test depends on what ran before it (pytest-randomly shuffles the order)."""
    import pyro

    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()
