"""Every registered model runs under its default method on its bundled data, and in float64:
every draw and every learned parameter comes out float64, which catches tensors created without
reference to the data (the same bug that breaks CUDA) on a CPU-only machine."""
import pytest
import torch

import ppgen

SPECS = {spec.name: spec for spec in ppgen.models.specs()}
QUICK = dict(num_samples=4, num_warmup=4, steps=3, progress=False)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_registered_model_fits_in_float64(name):
    spec = SPECS[name]
    fit = ppgen.fit(name, method=spec.default_method, dtype=torch.float64, device="cpu", seed=0, **QUICK)
    assert fit.model_name == name
    for site, value in fit.samples.items():
        if value.is_floating_point():
            assert value.dtype == torch.float64, f"{name}: draws of {site!r} are {value.dtype}"
            assert torch.isfinite(value).all(), f"{name}: draws of {site!r} are not finite"
    for param, value in (fit.params or {}).items():
        if value.is_floating_point():
            assert value.dtype == torch.float64, f"{name}: param {param!r} is {value.dtype}"
    if fit.losses:
        assert all(map(lambda v: v == v, fit.losses)), f"{name}: NaN loss"


def test_registries_are_described():
    assert {"svi", "map", "nuts", "hmc", "numpyro-nuts", "enum"} <= set(ppgen.inference.names())
    for spec in ppgen.inference.specs():
        assert spec.family in ppgen.inference.FAMILIES and spec.description
    for spec in SPECS.values():
        assert spec.description, f"model {spec.name!r} has no description"
        assert spec.data is not None, f"model {spec.name!r} has no bundled data"
        assert spec.default_method in ppgen.inference.names()
