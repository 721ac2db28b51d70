"""On a CUDA device: every registered model and every method fits with its data, parameters and
draws on the GPU, in the dtype asked for, and agrees with the CPU where the answer is exact.

Skipped without CUDA (the ``gpu`` marker, see conftest.py). The same checks in float64 on the CPU
(tests/test_registry.py) catch most tensors created without reference to the data.
"""
import os

import numpy as np
import pyro
import pytest
import torch

import ppgen
from ppgen.data import stream

pytestmark = pytest.mark.gpu

DEVICE = torch.device(os.environ.get("PPGEN_GPU_TEST_DEVICE", "cuda"))  # "cpu" to run these checks without a GPU
SPECS = {spec.name: spec for spec in ppgen.models.specs()}
QUICK = dict(num_samples=4, num_warmup=4, steps=3, progress=False)


def assert_on_device(fit, dtype=None):
    for site, value in fit.samples.items():
        assert value.device.type == DEVICE.type, f"draws of {site!r} are on {value.device}"
        if value.is_floating_point():
            assert torch.isfinite(value).all(), f"draws of {site!r} are not finite"
            assert dtype is None or value.dtype == dtype, f"draws of {site!r} are {value.dtype}"
    for name, value in (fit.params or {}).items():
        assert value.device.type == DEVICE.type, f"param {name!r} is on {value.device}"
        assert dtype is None or not value.is_floating_point() or value.dtype == dtype, \
            f"param {name!r} is {value.dtype}"
    assert all(np.isfinite(fit.losses or [0.0]))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_registered_model_fits_on_the_gpu(name):
    fit = ppgen.fit(name, method=SPECS[name].default_method, device=DEVICE, seed=0, **QUICK)
    assert fit.config["device"].startswith(DEVICE.type)
    assert_on_device(fit)


@pytest.mark.parametrize("method", ["svi", "map", "nuts", "hmc", "numpyro-nuts"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_method_keeps_eight_schools_on_the_gpu(method, dtype):
    fit = ppgen.fit("eight_schools", method=method, device=DEVICE, dtype=dtype, seed=0, **QUICK)
    assert_on_device(fit, dtype)
    idata = fit.to_arviz()  # log-likelihood and predictive draws are computed on the device, then leave it
    assert np.isfinite(idata.log_likelihood["y"].values).all()


def test_exact_enumeration_on_the_gpu_gives_the_cpu_answer():
    data = {"x": ppgen.data.load_faithful(standardize=True), "K": 2, "weights": np.array([0.35, 0.65]),
            "locs": np.array([[-1.3, -1.2], [0.7, 0.65]]), "scales": np.array([[0.3, 0.4], [0.4, 0.4]])}
    on_gpu = ppgen.fit("gmm", data, method="enum", device=DEVICE, dtype=torch.float64, num_samples=10, progress=False)
    on_cpu = ppgen.fit("gmm", data, method="enum", device="cpu", dtype=torch.float64, num_samples=10, progress=False)
    assert on_gpu.log_evidence == pytest.approx(on_cpu.log_evidence, rel=1e-10)
    assert on_gpu.extras["marginals"]["z"].device.type == DEVICE.type
    torch.testing.assert_close(on_gpu.extras["marginals"]["z"].cpu(), on_cpu.extras["marginals"]["z"])
    assert_on_device(on_gpu)


def test_compiled_elbo_trains_on_the_gpu():
    fit = ppgen.fit("eight_schools", method="svi", elbo="jit", device=DEVICE, steps=50, num_samples=10, progress=False)
    assert_on_device(fit)
    assert np.mean(fit.losses[-10:]) < np.mean(fit.losses[:10])


def test_streamed_rows_arrive_on_the_gpu_and_train_there(tmp_path):
    from test_distributed import fit_minibatch, make_data, ridge, write_memmaps

    write_memmaps(tmp_path)
    xs, ys = (stream.open_memmap(tmp_path / f"{n}.npy", DEVICE, torch.float64) for n in ("x", "y"))
    rows = xs[torch.tensor([4, 1], device=DEVICE)]
    assert rows.device.type == DEVICE.type and rows.dtype == torch.float64
    fit_minibatch(xs, ys)
    w = pyro.param("AutoDelta.w")
    assert w.device.type == DEVICE.type
    assert (w.detach().cpu() - ridge(*make_data())).abs().max() < 0.1


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="data-parallel NCCL needs two GPUs")
def test_two_gpus_retrace_one_gpu(tmp_path):
    """Two processes, one GPU each (NCCL), against one GPU: MAP step for step, SVI within noise."""
    from test_distributed import MAP_STEPS, regression, run_workers, single

    rank0, rank1 = run_workers(tmp_path / "out", tmp_path / "data", device="cuda")
    reference = single("map", regression, MAP_STEPS, device="cuda:0", num_samples=2)
    for rank in (rank0, rank1):
        np.testing.assert_allclose(rank["map"]["losses"], reference.losses, rtol=1e-9)
    for name in rank0["svi"]["params"]:
        torch.testing.assert_close(rank0["svi"]["params"][name], rank1["svi"]["params"][name], rtol=0, atol=0)
