"""SVI as NumPyro shapes it: an explicit state, init/update/run, and a run resumed by passing its state
back, bit-identical on the CPU to a run that was never stopped."""
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer.autoguide import AutoNormal

from ppgen.inference.svi import SVI, SVIState


def model(x, y):
    w = pyro.sample("w", dist.Normal(torch.zeros(3), 1.0).to_event(1))
    with pyro.plate("rows", len(y), subsample_size=16) as i:
        pyro.sample("y", dist.Normal(x[i] @ w, 0.5), obs=y[i])


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    return {"x": x, "y": x @ torch.tensor([1.0, -1.0, 0.5]) + 0.5 * torch.randn(64, generator=g)}


def _params() -> dict:
    return {k: v.detach().clone() for k, v in pyro.get_param_store().items()}


def _fresh() -> SVI:
    pyro.clear_param_store()
    return SVI(model, AutoNormal(model), lr=0.05)


def test_a_run_resumed_from_its_state_is_the_run_never_stopped(data):
    whole = _fresh().run(data, 40, seed=3, progress=False)
    expected = _params()
    svi = _fresh()
    half = svi.run(data, 15, seed=3, progress=False)
    resumed = svi.run(data, 40, state=half, progress=False)
    assert resumed.step == 40 and resumed.losses == whole.losses
    assert all(torch.equal(expected[k], v) for k, v in _params().items())


def test_an_older_state_passed_back_is_restored(data, tmp_path):
    svi = _fresh()
    early = svi.run(data, 10, seed=1, progress=False)
    early.save(tmp_path / "early.pt")
    after_early = svi.run(data, 30, state=early, progress=False)
    at_30 = _params()
    svi.run(data, 50, state=after_early, progress=False)                # moves on past 30
    again = _fresh().run(data, 30, state=SVIState.load(tmp_path / "early.pt"), progress=False)   # a new process
    assert again.losses == after_early.losses
    assert all(torch.equal(at_30[k], v) for k, v in _params().items())


def test_update_steps_the_live_state(data):
    svi = _fresh()
    state = svi.init(seed=0)
    for _ in range(3):
        state, loss = svi.update(state, data)
    assert state.step == 3 and len(state.losses) == 3 and state.snapshot is None
    with pytest.raises(ValueError, match="live state"):
        state.save("unused.pt")
    assert svi.snapshot(state).snapshot["param_store"]["params"]
