"""Eight schools, one pyroapi program, fit by Pyro NUTS and NumPyro NUTS, against posteriordb's
reference posterior (Stan, 10k draws): every parameter's mean within 0.15 reference sd and sd
within 15%."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ppgen
from ppgen.data import stan_to_python_index

SHARED = Path(__file__).resolve().parents[2] / "shared" / "posteriordb"
POSTERIOR = "eight_schools-eight_schools_noncentered"


@pytest.fixture(scope="module")
def reference():
    summaries = SHARED / "reference_summaries.json"
    if summaries.exists():
        params = json.loads(summaries.read_text())[POSTERIOR]["params"]
        return {stan_to_python_index(k): v for k, v in params.items()}
    from ppgen.data import eight_schools_reference  # the bundled copy of the same summary

    return eight_schools_reference()


def _value(samples, name):
    base, _, idx = name.partition("[")
    x = samples[base]
    return x[:, int(idx[:-1])] if idx else x


def _assert_matches(fit, reference):
    samples = {k: v.double() for k, v in fit.samples.items()}
    for name, ref in reference.items():
        draws = _value(samples, name)
        mean_err = abs(draws.mean().item() - ref["mean"]) / ref["sd"]
        sd_ratio = draws.std().item() / ref["sd"]
        assert mean_err < 0.15, f"{fit.method}: {name} mean off by {mean_err:.3f} reference sd"
        assert abs(sd_ratio - 1) < 0.15, f"{fit.method}: {name} sd ratio {sd_ratio:.3f}"


@pytest.mark.slow
def test_pyro_nuts_matches_posteriordb(reference):
    # 1000 draws: over seeds 1-5 the worst parameter is 0.08 reference sd off in its mean and 9% in its
    # sd, both about half the tolerance (2000 draws, seed 1: 0.03 and 7%)
    fit = ppgen.fit("eight_schools", method="nuts", num_samples=1000, num_warmup=500, seed=1, progress=False, jit=True)
    assert fit.diagnostics["divergences"] < 20
    _assert_matches(fit, reference)


@pytest.mark.slow
def test_numpyro_nuts_matches_posteriordb(reference):
    fit = ppgen.fit("eight_schools", method="numpyro-nuts", num_samples=4000, num_warmup=1000, num_chains=2,
                    seed=2, progress=False)
    assert fit.get_samples(group_by_chain=True)["mu"].shape == (2, 4000)
    _assert_matches(fit, reference)


def test_log_joint_agrees_across_backends():
    """The same program's log joint under Pyro and NumPyro at the same values (1e-5)."""
    import jax.numpy as jnp
    import pyro.poutine as poutine
    from numpyro.infer.util import log_density

    from ppgen.backend import numpyro_backend, to_jax
    from ppgen.models.eight_schools import eight_schools

    data = ppgen.data.load_eight_schools()
    rng = np.random.default_rng(0)
    for _ in range(5):
        values = {"mu": rng.normal(0, 5), "tau": abs(rng.standard_cauchy()) + 0.1, "theta_trans": rng.normal(size=8)}
        torch_data = {"J": 8, "sigma": torch.tensor(data["sigma"], dtype=torch.float64),
                      "y": torch.tensor(data["y"], dtype=torch.float64)}
        tv = {k: torch.tensor(v, dtype=torch.float64) for k, v in values.items()}
        lp_pyro = poutine.trace(poutine.condition(eight_schools, tv)).get_trace(**torch_data).log_prob_sum().item()
        with numpyro_backend():
            lp_numpyro, _ = log_density(eight_schools, (), to_jax(data),
                                        {k: jnp.asarray(v, dtype=jnp.float32) for k, v in values.items()})
        assert abs(lp_pyro - float(lp_numpyro)) < 1e-5 * max(1.0, abs(lp_pyro)), (lp_pyro, float(lp_numpyro))
