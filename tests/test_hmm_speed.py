"""The fast HMM routes against the slow exact ones: the direct forward algorithm of ``HMM.log_evidence``
(and Viterbi) against Pyro's enumeration of the same program and brute force over all paths; and a
``pyroapi`` HMM under ``numpyro-nuts``, whose potential energy must be minus the exact log joint with
the states summed out (by the forward algorithm)."""
import itertools
import logging
import time

import numpy as np
import pytest
import torch
from pyroapi import distributions as dist
from pyroapi import ops, pyro

import ppgen
from ppgen.backend import numpyro_backend, to_jax, vindex
from ppgen.inference.exact import infer_values
from ppgen.models import hmm as hmm_module
from ppgen.models.hmm import HMM, forward


def simplex(*shape):
    return torch.distributions.Dirichlet(torch.ones(*shape, dtype=torch.float64)).sample()


def random_hmm(seed: int, gaussian: bool, k: int = 3, v: int = 4) -> HMM:
    torch.manual_seed(seed)
    if gaussian:
        return HMM(simplex(k), simplex(k, k), loc=2 * torch.randn(k, dtype=torch.float64),
                   scale=0.5 + torch.rand(k, dtype=torch.float64))
    return HMM(simplex(k), simplex(k, k), simplex(k, v))


def brute_force(hmm: HMM, y: torch.Tensor):
    paths = torch.tensor(list(itertools.product(range(hmm.num_states), repeat=len(y))))
    log_p = hmm.initial.log()[paths[:, 0]] + hmm.emit(paths).log_prob(y).sum(-1)
    log_p = log_p + sum(hmm.transition.log()[paths[:, t - 1], paths[:, t]] for t in range(1, len(y)))
    return paths, log_p


@pytest.mark.parametrize("gaussian", [False, True], ids=["categorical", "gaussian"])
@pytest.mark.parametrize("length", [1, 7, 100])
@pytest.mark.parametrize("num_sequences", [None, 3])
def test_log_evidence_equals_the_pyro_enumeration_route(gaussian, length, num_sequences):
    hmm = random_hmm(length, gaussian)
    _, y = hmm.sample(length, num_sequences, seed=length)
    expected = float(hmm.log_evidence_enumerated(y))
    assert float(hmm.log_evidence(y)) == pytest.approx(expected, abs=1e-8)
    plain = hmm._log_evidence(hmm._sequences(y), tree=False)  # the recursion used for many states
    assert float(plain) == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize("gaussian", [False, True], ids=["categorical", "gaussian"])
def test_log_evidence_equals_brute_force(gaussian):
    hmm = random_hmm(11, gaussian)
    _, y = hmm.sample(5, 2, seed=11)
    expected = sum(float(brute_force(hmm, seq)[1].logsumexp(0)) for seq in y)
    assert float(hmm.log_evidence(y)) == pytest.approx(expected, abs=1e-9)


def test_the_tree_block_by_block_and_many_states(monkeypatch):
    """A chain longer than one block of the tree, and a 20-state HMM (the plain recursion), agree with
    the enumeration route; so do the marginals (autograd through either)."""
    hmm = random_hmm(3, gaussian=False)
    _, y = hmm.sample(100, 2, seed=3)
    expected = float(hmm.log_evidence_enumerated(y))
    marginals = hmm.marginals(y)
    monkeypatch.setattr(hmm_module, "TREE_BLOCK", 2 * 27 * 7)  # blocks of 7 steps
    assert float(hmm.log_evidence(y)) == pytest.approx(expected, abs=1e-8)
    torch.testing.assert_close(hmm.marginals(y), marginals, atol=1e-10, rtol=0)
    big = random_hmm(4, gaussian=True, k=20)
    _, y = big.sample(30, seed=4)
    assert float(big.log_evidence(y)) == pytest.approx(float(big.log_evidence_enumerated(y)), abs=1e-8)
    log_b = torch.randn(1, 30, 20, dtype=torch.float64)
    log_a = simplex(20, 20).log()
    assert float(forward(log_a[0], log_a, log_b, tree=True)) == pytest.approx(
        float(forward(log_a[0], log_a, log_b, tree=False)), abs=1e-9)


def test_far_apart_gaussian_states_do_not_underflow():
    hmm = HMM([0.5, 0.5], [[0.9, 0.1], [0.1, 0.9]], loc=[-50.0, 50.0], scale=[0.5, 0.5])
    y = torch.tensor([-50.0, 50.0, -50.0, 50.0] * 5)
    value = float(hmm.log_evidence(y))
    assert np.isfinite(value)
    assert value == pytest.approx(float(hmm.log_evidence_enumerated(y)), abs=1e-8)


@pytest.mark.parametrize("num_sequences", [None, 2])
def test_viterbi_equals_max_product_enumeration_and_brute_force(num_sequences):
    hmm = random_hmm(5, gaussian=False)
    _, y = hmm.sample(60, num_sequences, seed=5)
    batch = y if num_sequences else y[None]
    values = infer_values(hmm.program, batch, temperature=0, first_available_dim=-2)
    expected = torch.stack([values[f"z_{t}"].reshape(-1) for t in range(60)], -1)
    path = hmm.viterbi(y)
    assert path.shape == y.shape and path.dtype == torch.int64
    assert torch.equal(path if num_sequences else path[None], expected)
    short = hmm.sample(5, seed=6)[1]
    paths, log_p = brute_force(hmm, short)
    assert hmm.viterbi(short).tolist() == paths[log_p.argmax()].tolist()


def test_log_evidence_is_cheap():
    """No fixed setup per call: at T=100 the direct route is many times faster than enumeration."""
    hmm = random_hmm(7, gaussian=False)
    y = hmm.sample(100, seed=7)[1]

    def seconds(fn):
        fn()
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    assert seconds(lambda: hmm.log_evidence(y)) < seconds(lambda: hmm.log_evidence_enumerated(y)) / 5


# --- numpyro-nuts on a pyroapi HMM ---------------------------------------------------------------------------
def pyroapi_hmm(y, num_states: int = 2, num_categories: int = 3):
    trans = pyro.sample("trans", dist.Dirichlet(ops.ones((num_states, num_states))).to_event(1))
    emit = pyro.sample("emit", dist.Dirichlet(ops.ones((num_states, num_categories))).to_event(1))
    z = 0
    for t in pyro.markov(range(y.shape[0])):
        z = pyro.sample(f"z_{t}", dist.Categorical(vindex(trans)[..., z, :]), infer={"enumerate": "parallel"})
        pyro.sample(f"y_{t}", dist.Categorical(vindex(emit)[..., z, :]), obs=y[t])


def exact_log_joint(trans: torch.Tensor, emit: torch.Tensor, y: torch.Tensor) -> float:
    """log p(trans, emit, y), the states summed out by the forward algorithm (z_0 ~ trans[0])."""
    prior = (torch.distributions.Dirichlet(torch.ones_like(trans)).log_prob(trans).sum()
             + torch.distributions.Dirichlet(torch.ones_like(emit)).log_prob(emit).sum())
    return float(prior + HMM(trans[0], trans, emit).log_evidence(y))


def test_numpyro_potential_is_minus_the_exact_log_joint():
    """NumPyro's potential energy of the program, as numpyro-nuts builds it (and as NumPyro's NUTS
    wraps it: ``enum`` left of the plates), at random points: minus the log joint with the states
    summed out, plus the simplex transforms' Jacobian."""
    import jax
    import jax.numpy as jnp
    from numpyro.contrib.funsor import enum
    from numpyro.distributions import constraints
    from numpyro.distributions.transforms import biject_to
    from numpyro.infer.util import potential_energy

    from ppgen.inference.numpyro_nuts import numpyro_mcmc
    from ppgen.problem import RunConfig

    torch.manual_seed(0)
    y = torch.randint(0, 3, (30,))
    problem = ppgen.prepare(pyroapi_hmm, {"y": y}, device="cpu")
    model = numpyro_mcmc(problem, RunConfig("numpyro-nuts", num_samples=1, num_warmup=1), 1).sampler.model
    model = enum(model, -problem.max_plate_nesting - 1)
    data, to_simplex = to_jax(problem.data), biject_to(constraints.simplex)
    with numpyro_backend():
        energy = jax.jit(lambda u: potential_energy(model, (), data, u, enum=True))
        for seed in range(3):
            rng = np.random.default_rng(seed)
            u = {"trans": jnp.asarray(rng.normal(size=(2, 1)), jnp.float32),
                 "emit": jnp.asarray(rng.normal(size=(2, 2)), jnp.float32)}
            x = {k: to_simplex(v) for k, v in u.items()}
            jacobian = sum(float(to_simplex.log_abs_det_jacobian(u[k], x[k]).sum()) for k in u)
            as_torch = {k: torch.as_tensor(np.array(v), dtype=torch.float64) for k, v in x.items()}
            as_torch = {k: v / v.sum(-1, keepdim=True) for k, v in as_torch.items()}
            expected = -(exact_log_joint(as_torch["trans"], as_torch["emit"], y) + jacobian)
            assert float(energy(u)) == pytest.approx(expected, abs=2e-3, rel=1e-5)


def test_the_numpyro_check_compiles_nothing(caplog):
    """The check that a program runs on NumPyro traces it abstractly: a 200-step chain compiles nothing
    of the program (an eager trace compiles a few hundred operations; placing the data may compile one)."""
    import jax

    from ppgen.inference.numpyro_nuts import check_runs_on_numpyro

    problem = ppgen.prepare(pyroapi_hmm, {"y": torch.randint(0, 3, (200,))}, device="cpu")
    jax.random.PRNGKey(0).block_until_ready()  # JAX's seeding compiles once per process, whichever test seeds first
    with caplog.at_level(logging.WARNING, logger="jax"), jax.log_compiles():
        check_runs_on_numpyro(problem)
    compiled = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Compiling")]
    assert len(compiled) <= 2 and not any("trace_once" in m for m in compiled), compiled


def test_numpyro_nuts_fits_a_pyroapi_hmm_and_completes_the_states():
    truth = HMM([1.0, 0.0], [[0.9, 0.1], [0.1, 0.9]], emission=[[0.9, 0.05, 0.05], [0.05, 0.05, 0.9]])
    y = truth.sample(30, seed=1)[1]
    fit = ppgen.fit(pyroapi_hmm, {"y": y}, method="numpyro-nuts", num_samples=60, num_warmup=60, seed=0,
                    progress=False)
    assert not fit.errors
    assert fit.samples["trans"].shape == (60, 2, 2) and fit.samples["emit"].shape == (60, 2, 3)
    torch.testing.assert_close(fit.samples["trans"].sum(-1), torch.ones(60, 2), atol=1e-4, rtol=0)
    for t in range(30):  # every state drawn from its exact conditional, on the Pyro side
        assert fit.samples[f"z_{t}"].shape == (60,)
        assert set(fit.samples[f"z_{t}"].unique().tolist()) <= {0, 1}
    # the states follow the draws: z_t = the state that emits y_t more probably, most of the time
    emit = fit.samples["emit"]
    likely = torch.stack([emit[:, :, int(y[t])].argmax(-1) for t in range(30)], -1)
    drawn = torch.stack([fit.samples[f"z_{t}"] for t in range(30)], -1)
    assert float((likely == drawn).double().mean()) > 0.6
    idata = fit.to_arviz()
    assert {"posterior", "sample_stats", "log_likelihood"} <= set(idata.groups())
    summary = fit.summary()
    assert {"trans[0, 0]", "emit[1, 2]", "z_0"} <= set(summary.index)


def test_numpyro_nuts_starts_chains_with_summed_out_states_off_the_symmetric_point():
    """The prior median of exchangeable states is the point where all states are alike: programs with
    discrete latents start at NumPyro's init_to_uniform; others at the median; the option decides if given."""
    from numpyro.infer import init_to_median, init_to_sample, init_to_uniform

    from ppgen.inference.numpyro_nuts import numpyro_mcmc
    from ppgen.problem import RunConfig

    def normal_mean(y):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        pyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    chain = ppgen.prepare(pyroapi_hmm, {"y": torch.randint(0, 3, (5,))}, device="cpu")
    plain = ppgen.prepare(normal_mean, {"y": torch.tensor(0.3)}, device="cpu")

    def strategy(problem, **options):
        config = RunConfig("numpyro-nuts", num_samples=1, num_warmup=1, options=options)
        return numpyro_mcmc(problem, config, 1).sampler._init_strategy

    assert strategy(chain) is init_to_uniform and strategy(plain) is init_to_median
    assert strategy(chain, init_strategy=init_to_sample) is init_to_sample
