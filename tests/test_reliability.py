"""Long runs survive: checkpoints resume bit-identically, finished MCMC chains are kept, a NaN stops
SVI with the last good parameters saved, damaged files are refused, one seed fixes everything."""
import numpy as np
import pyro
import pytest
import torch

import ppgen
from ppgen.inference import checkpoint as checkpointing

SCHOOLS = dict(method="svi", steps=60, num_samples=20, progress=False, seed=3)


def _params():
    return {k: v.detach().clone() for k, v in pyro.get_param_store().items()}


def test_svi_resume_is_bit_identical(tmp_path):
    full = ppgen.fit("eight_schools", **SCHOOLS)
    pyro.clear_param_store()
    ppgen.fit("eight_schools", **{**SCHOOLS, "steps": 25}, checkpoint_dir=tmp_path)  # stops at step 25
    pyro.clear_param_store()
    resumed = ppgen.fit("eight_schools", **SCHOOLS, checkpoint_dir=tmp_path)  # a fresh guide, resumed at 25
    assert resumed.losses == full.losses
    assert full.params.keys() == resumed.params.keys()
    for name in full.params:
        assert torch.equal(full.params[name], resumed.params[name]), name
    for site in full.samples:
        assert torch.equal(full.samples[site], resumed.samples[site]), site


def test_mcmc_resumes_at_the_next_chain(tmp_path):
    kwargs = dict(method="numpyro-nuts", num_samples=50, num_warmup=50, num_chains=2, progress=False)
    first = ppgen.fit("eight_schools", **kwargs, checkpoint_dir=tmp_path)
    assert checkpointing.chain_path(tmp_path, 0).exists() and checkpointing.chain_path(tmp_path, 1).exists()
    checkpointing.chain_path(tmp_path, 1).unlink()  # as if killed during chain 1
    chain0 = torch.load(checkpointing.chain_path(tmp_path, 0), weights_only=False)
    chain0["samples"]["mu"] += 1000.0  # a marker: a resumed run must load chain 0, not rerun it
    torch.save(chain0, checkpointing.chain_path(tmp_path, 0))
    resumed = ppgen.fit("eight_schools", **kwargs, checkpoint_dir=tmp_path)
    mu_first, mu_resumed = first.get_samples(True)["mu"], resumed.get_samples(True)["mu"]
    assert torch.equal(mu_resumed[0], mu_first[0] + 1000.0)
    assert torch.equal(mu_resumed[1], mu_first[1])  # chain 1 rerun with its own seed: the same draws


def _exploding(x):
    w = pyro.param("w", torch.tensor(1.0))
    pyro.sample("x", pyro.distributions.Normal(w * 1e20 * w, 1.0).expand([len(x)]).to_event(1), obs=x)


def test_nan_loss_stops_with_the_step_and_keeps_last_good_params(tmp_path):
    from ppgen.inference.svi import train

    x = torch.randn(5)
    pyro.set_rng_seed(0)
    with pytest.raises(ppgen.NumericalError) as info:
        train(_exploding, lambda x: None, {"x": x}, steps=50, lr=1e30, progress=False,
              checkpoint=tmp_path / "ckpt.pt", checkpoint_every=1)
    assert "step" in str(info.value) and info.value.step >= 0
    state = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert state["step"] == info.value.step
    saved = state["param_store"]["params"]["w"]
    assert torch.isfinite(saved).all()


def test_damaged_checkpoint_is_refused(tmp_path):
    ppgen.fit("eight_schools", **{**SCHOOLS, "steps": 5}, checkpoint_dir=tmp_path)
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(ppgen.RunFolderError, match="truncated"):
        ppgen.fit("eight_schools", **SCHOOLS, checkpoint_dir=tmp_path)
    torch.save({"format": "something-else"}, ckpt)
    with pytest.raises(ppgen.RunFolderError, match="not a ppgen-svi-checkpoint"):
        ppgen.fit("eight_schools", **SCHOOLS, checkpoint_dir=tmp_path)


def test_no_temporary_files_left(tmp_path):
    fit = ppgen.fit("eight_schools", **{**SCHOOLS, "steps": 5}, checkpoint_dir=tmp_path)
    fit.save(tmp_path / "run", plots=False)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("method", ["svi", "nuts", "numpyro-nuts"])
def test_same_seed_same_draws(method):
    kwargs = dict(method=method, num_samples=30, num_warmup=30, steps=30, progress=False, seed=11)
    a = ppgen.fit("eight_schools", **kwargs).samples
    torch.manual_seed(12345)  # unrelated global state must not leak into the fit
    np.random.seed(999)
    b = ppgen.fit("eight_schools", **kwargs).samples
    for site in a:
        assert torch.equal(a[site], b[site]), site


def test_run_folder_files_are_readable_by_others(tmp_path):
    """Atomic writes go through mkstemp (owner-only 0600); renamed into place they get 0666 & ~umask."""
    import os
    import stat

    old = os.umask(0o022)
    os.umask(old)
    fit = ppgen.fit("eight_schools", **{**SCHOOLS, "steps": 5})
    fit.save(tmp_path / "run", plots=False)
    for path in (tmp_path / "run").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~old, path.name


def test_damaged_params_file_is_refused(tmp_path):
    fit = ppgen.fit("eight_schools", **{**SCHOOLS, "steps": 5})
    fit.save(tmp_path / "run", plots=False)
    assert torch.equal(ppgen.load(tmp_path / "run").params["AutoNormal.locs.mu"], fit.params["AutoNormal.locs.mu"])
    params = tmp_path / "run" / "params.pt"
    params.write_bytes(params.read_bytes()[:40])
    with pytest.raises(ppgen.RunFolderError, match="params.pt.*truncated or not a file of learned params"):
        ppgen.load(tmp_path / "run")
