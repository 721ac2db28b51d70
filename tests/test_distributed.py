"""Data-parallel SVI (gloo, two processes on the CPU) against one process on all the data, and the
memory-mapped data path.

The identity behind it: with rows split into shards R_r (n_r of N) and every site of process r
scaled by n_r / N, the data sites once more by N / n_r by their plate, the losses of the processes
sum to the full-data -ELBO, and so do their gradients. With point-mass guides (MAP) nothing is
random, so the sum is exact and a two-process run retraces one process step for step.

This file is also the worker script: ``torchrun --standalone --nproc_per_node 2 tests/test_distributed.py OUT DATA``.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoDelta

import ppgen
from ppgen import handlers
from ppgen.data import stream
from ppgen.errors import ConfigError
from ppgen.inference.distributed import DataParallel
from ppgen.inference.svi import train
from ppgen.problem import prepare

N, D, NOISE = 63, 3, 0.5  # 63 rows: the two shards differ in size (31 and 32)
MAP_STEPS, SVI_STEPS, STREAM_STEPS, BATCH = 60, 400, 600, 8


def regression(x, y):
    """w ~ N(0, I), y_i ~ N(x_i . w, 0.5^2): only global latents; its MAP is ridge regression."""
    w = pyro.sample("w", dist.Normal(x.new_zeros(()), 1.0).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", len(x)) as idx:
        pyro.sample("y", dist.Normal((x[idx] * w).sum(-1), NOISE), obs=y[idx])


def random_effects(x, y):
    """mu ~ N(0, 5^2), tau ~ LogNormal(0, 1), b_i ~ N(0, tau^2), y_i ~ N(mu + b_i + x_i . w, 0.5^2)."""
    mu = pyro.sample("mu", dist.Normal(x.new_zeros(()), 5.0))
    tau = pyro.sample("tau", dist.LogNormal(x.new_zeros(()), 1.0))
    w = pyro.sample("w", dist.Normal(x.new_zeros(()), 1.0).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", len(x)) as idx:
        b = pyro.sample("b", dist.Normal(mu, tau))
        pyro.sample("y", dist.Normal(b + (x[idx] * w).sum(-1), NOISE), obs=y[idx])


def minibatch_regression(x, y, batch_size=BATCH):
    """:func:`regression` on ``batch_size`` rows per step, read from wherever ``x`` and ``y`` live."""
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    w = pyro.sample("w", dist.Normal(zero, 1.0).expand([x.shape[1]]).to_event(1))
    with pyro.plate("data", len(x), subsample_size=batch_size) as idx:
        pyro.sample("y", dist.Normal((x[idx] * w).sum(-1), NOISE), obs=y[idx])


def make_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=g, dtype=torch.float64)
    noise = NOISE * torch.randn(N, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) + 0.3 + noise
    return x, y


def ridge(x, y):
    """The exact MAP of :func:`regression`: (X'X / s^2 + I)^-1 X'y / s^2."""
    return torch.linalg.solve(x.T @ x / NOISE**2 + torch.eye(x.shape[1], dtype=x.dtype), x.T @ y / NOISE**2)


def write_memmaps(folder: Path) -> None:
    x, y = make_data()
    for name, value in (("x", x), ("y", y)):
        out = stream.create_memmap(folder / f"{name}.npy", tuple(value.shape), np.float64)
        for start in range(0, N, 20):  # written in chunks, as data too big for memory would be
            out[start:start + 20] = value[start:start + 20].numpy()
        out.flush()


def fit_minibatch(x, y, parallel=None):
    """MAP of :func:`minibatch_regression` by Adam, with the plate fed by shuffled epochs (of this
    process's rows under ``parallel``); returns the losses."""
    model = minibatch_regression
    if parallel is None:
        feed = handlers.epochs("data")
        model, guide = feed(model), feed(AutoDelta(model))
        return train(model, guide, {"x": x, "y": y}, steps=STREAM_STEPS, lr=0.05, seed=0, progress=False)
    model = parallel.shard(model)
    guide = parallel.shard(AutoDelta(model))
    parallel.synchronize(model, guide, {"x": x, "y": y}, seed=0)
    return train(model, guide, {"x": x, "y": y}, steps=STREAM_STEPS, lr=0.05, seed=0, progress=False,
                 reduce=parallel.reduce)


# ------------------------------------------------------------------------------------------ worker

def worker(out: Path, data: Path) -> None:
    """One of two processes: the same three fits as the tests' single process, results to ``out``.
    On the CPU (gloo) unless ``PPGEN_TEST_DEVICE=cuda`` (NCCL, one GPU per process: tests/test_gpu.py)."""
    import torch.distributed as torch_dist

    rank = int(os.environ["RANK"])
    device = "cuda:" + os.environ["LOCAL_RANK"] if os.environ.get("PPGEN_TEST_DEVICE") == "cuda" else "cpu"
    x, y = make_data()
    results = {}
    common = dict(dtype=torch.float64, device=device, seed=0, progress=False)
    fit = ppgen.fit(regression, {"x": x, "y": y}, method="map", steps=MAP_STEPS, num_samples=2, lr=0.05, **common)
    results["map"] = {"losses": fit.losses, "params": on_cpu(fit.params)}
    fit = ppgen.fit(random_effects, {"x": x, "y": y}, method="svi", steps=SVI_STEPS, num_samples=50, lr=0.05, **common)
    results["svi"] = {"losses": fit.losses, "params": on_cpu(fit.params), "b": fit.samples["b"].cpu()}
    xs, ys = (stream.open_memmap(data / f"{name}.npy", device, torch.float64) for name in ("x", "y"))
    pyro.clear_param_store()
    parallel = DataParallel("data", len(xs), rank, int(os.environ["WORLD_SIZE"]))
    results["stream"] = {"losses": fit_minibatch(xs, ys, parallel),
                         "params": on_cpu(dict(pyro.get_param_store().items()))}
    gathered = [None, None]
    torch_dist.all_gather_object(gathered, results)
    if rank == 0:
        torch.save(gathered, out / "results.pt")


def on_cpu(tensors: dict) -> dict:
    return {k: v.detach().cpu() for k, v in tensors.items()}


def run_workers(out: Path, data: Path, device: str = "cpu") -> list:
    """Both processes' results of :func:`worker`, run by torchrun."""
    write_memmaps(data)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "JAX_PLATFORMS": "cpu", "PYTHONWARNINGS": "ignore",
           "PPGEN_TEST_DEVICE": device}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", __file__,
           str(out), str(data)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return torch.load(out / "results.pt", weights_only=False)


# ------------------------------------------------------------------------------------------- tests

@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """Both processes' results of :func:`worker`, run once by torchrun (gloo), and the data folder."""
    data = tmp_path_factory.mktemp("data")
    return run_workers(tmp_path_factory.mktemp("out"), data), data


def single(method, model, steps, device="cpu", **kwargs):
    """The same fit in this one process, on all the data."""
    x, y = make_data()
    return ppgen.fit(model, {"x": x, "y": y}, method=method, steps=steps, dtype=torch.float64, device=device, seed=0,
                     progress=False, lr=0.05, **kwargs)


def test_map_two_processes_retrace_one_process_step_for_step(two_processes):
    (rank0, rank1), _ = two_processes
    reference = single("map", regression, MAP_STEPS, num_samples=2)
    for rank in (rank0, rank1):  # each process reports the summed (full-data) loss
        np.testing.assert_allclose(rank["map"]["losses"], reference.losses, rtol=1e-9)
        for name, value in reference.params.items():
            torch.testing.assert_close(rank["map"]["params"][name], value, rtol=1e-7, atol=1e-9)


def test_svi_two_processes_match_one_process_within_noise(two_processes):
    (rank0, rank1), _ = two_processes
    reference = single("svi", random_effects, SVI_STEPS, num_samples=50)
    for name in reference.params:  # the same step on every process: identical parameters
        torch.testing.assert_close(rank0["svi"]["params"][name], rank1["svi"]["params"][name], rtol=0, atol=0)
    ours, theirs = np.asarray(rank0["svi"]["losses"]), np.asarray(reference.losses)
    tail = slice(-150, None)  # after convergence: the losses scatter around the same -ELBO
    se = np.sqrt(ours[tail].var() / 30 + theirs[tail].var() / 30)  # ~30 effective draws in 150 correlated steps
    assert abs(ours[tail].mean() - theirs[tail].mean()) < 4 * se, (ours[tail].mean(), theirs[tail].mean(), se)
    assert abs(ours[0] - theirs[0]) < 0.5 * abs(theirs[0] - theirs[-1])  # the same starting point, the same descent
    w_ours, w_ref = rank0["svi"]["params"]["AutoNormal.locs.w"], reference.params["AutoNormal.locs.w"]
    assert (w_ours - w_ref).abs().max() < 0.1, (w_ours, w_ref)
    assert rank0["svi"]["b"].shape == reference.samples["b"].shape == (50, N)  # draws over all rows, not a shard


def test_memmap_minibatches_in_two_processes_find_the_exact_map(two_processes):
    (rank0, rank1), data = two_processes
    x, y = make_data()
    exact = ridge(x, y)
    for rank in (rank0, rank1):
        w = rank["stream"]["params"]["AutoDelta.w"]
        # Adam at lr 0.05 on batches of 8: the iterate jitters around the optimum by a few hundredths
        assert (w - exact).abs().max() < 0.1, (w, exact)
    torch.testing.assert_close(rank0["stream"]["params"]["AutoDelta.w"], rank1["stream"]["params"]["AutoDelta.w"],
                               rtol=0, atol=0)


# ------------------------------------------------------------------------------- in one process

def test_shard_losses_and_gradients_sum_to_the_full_data_ones():
    """The identity itself, exactly, with local latents and uneven shards, at equal (point-mass) draws."""
    x, y = make_data()
    problem = prepare(random_effects, {"x": x, "y": y}, device="cpu", dtype=torch.float64)
    pyro.set_rng_seed(0)
    full_guide = AutoDelta(random_effects)
    full = Trace_ELBO().loss_and_grads(random_effects, full_guide, x=x, y=y)
    store = pyro.get_param_store()
    expected = {k: v.unconstrained().grad.clone() for k, v in store.items()}
    for v in store.values():
        v.unconstrained().grad = None
    total, rows = 0.0, []
    for rank in range(3):
        parallel = DataParallel.for_problem(problem, rank=rank, world_size=3)
        rows.append((parallel.rows.start, parallel.rows.stop))
        model = parallel.shard(random_effects)
        total += Trace_ELBO().loss_and_grads(model, parallel.shard(AutoDelta(model)), x=x, y=y)  # reads the same params
    assert rows == [(0, 21), (21, 42), (42, 63)]
    assert total == pytest.approx(full, rel=1e-12)
    for name, grad in expected.items():
        torch.testing.assert_close(store[name].unconstrained().grad, grad, rtol=1e-10, atol=1e-12)


def test_shard_selects_its_rows_and_scales_the_sites():
    x, y = make_data()
    problem = prepare(regression, {"x": x, "y": y}, device="cpu", dtype=torch.float64)
    parallel = DataParallel.for_problem(problem, rank=1, world_size=2)
    trace = pyro.poutine.trace(parallel.shard(regression)).get_trace(x, y)
    assert trace.nodes["data"]["value"].tolist() == list(range(31, 63))
    assert trace.nodes["w"]["scale"] == pytest.approx(32 / 63)
    assert trace.nodes["y"]["scale"] == pytest.approx(1.0)  # 32/63 times the plate's 63/32


def test_a_model_that_ignores_the_plate_indices_is_refused_before_fitting():
    def unindexed(x, y):
        w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([x.shape[1]]).to_event(1))
        with pyro.plate("data", len(x)):
            pyro.sample("y", dist.Normal((x * w).sum(-1), NOISE), obs=y)

    x, y = make_data()
    problem = prepare(unindexed, {"x": x, "y": y}, device="cpu", dtype=torch.float64)
    with pytest.raises(ConfigError, match=r"plate 'data'.*rows 0\.\.30 of 63.*pyro.subsample"):
        DataParallel.for_problem(problem, rank=0, world_size=2)


def test_a_batch_larger_than_the_shard_is_refused():
    x, y = make_data()
    parallel = DataParallel("data", N, 0, 2)
    model = parallel.shard(lambda x, y: minibatch_regression(x, y, batch_size=40))
    with pytest.raises(ConfigError, match="asks for 40 rows per step, but this process holds 31"):
        pyro.poutine.trace(model).get_trace(x, y)


def test_memmap_rows_feed_training_exactly_like_the_tensor(tmp_path):
    write_memmaps(tmp_path)
    x, y = make_data()
    xs, ys = stream.open_memmap(tmp_path / "x.npy"), stream.open_memmap(tmp_path / "y.npy")
    assert xs.shape == x.shape and len(xs) == N and xs[torch.tensor([5, 1])].dtype == torch.get_default_dtype()
    torch.testing.assert_close(xs.to(dtype=torch.float64)[torch.tensor([40, 2, 17])], x[[40, 2, 17]], rtol=0, atol=0)
    from_tensor = fit_minibatch(x, y)
    w_tensor = pyro.param("AutoDelta.w").detach().clone()
    pyro.clear_param_store()
    from_disk = fit_minibatch(xs.to(dtype=torch.float64), ys.to(dtype=torch.float64))
    assert from_disk == from_tensor
    torch.testing.assert_close(pyro.param("AutoDelta.w").detach(), w_tensor, rtol=0, atol=0)
    assert (w_tensor - ridge(x, y)).abs().max() < 0.1


def test_epochs_visit_every_row_once_per_epoch_in_sorted_batches():
    feed = handlers.epochs("data")

    def model():
        with pyro.plate("data", 10, subsample_size=5) as idx:
            return idx

    batches = [feed(model)().tolist() for _ in range(6)]  # three epochs of two batches
    assert all(b == sorted(b) for b in batches)
    epochs = [sorted(batches[i] + batches[i + 1]) for i in (0, 2, 4)]
    assert epochs == [list(range(10))] * 3
    assert batches[0] != batches[2] or batches[2] != batches[4]  # reshuffled between epochs


def test_pyro_subsample_reads_a_streamed_array(tmp_path):
    write_memmaps(tmp_path)
    xs = stream.open_memmap(tmp_path / "x.npy", dtype=torch.float64)
    with pyro.plate("data", N, subsample=torch.tensor([3, 60])):
        rows = pyro.subsample(xs, event_dim=1)
    torch.testing.assert_close(rows, make_data()[0][[3, 60]], rtol=0, atol=0)


if __name__ == "__main__":
    torch.set_num_threads(1)
    worker(Path(sys.argv[1]), Path(sys.argv[2]))
