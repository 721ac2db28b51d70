"""The NumPyro backend gives Pyro's values: every op, distribution, handler and primitive it exposes
runs the same pyroapi snippet on ``"pyro"`` and on ppgen's NumPyro backend and must agree."""
import numpy as np
import pyroapi
import pytest
import torch
from pyroapi import distributions as dist
from pyroapi import handlers, infer, ops, pyro

import ppgen
from ppgen.backend import numpyro_backend

R = np.random.default_rng(0)
X = R.normal(size=(3, 4)).astype(np.float32)
Y = R.normal(size=(3, 4)).astype(np.float32)
P = (np.abs(X) + 0.5).astype(np.float32)
V = np.array([3.0, 1.0, 2.0, 4.0, 2.0], dtype=np.float32)
I = np.array([[1, 2, 3, 1], [5, 0, 7, 0], [1, 1, 2, 3]])  # noqa: E741  (integers, beside X, Y, P, V)
A3 = R.normal(size=(2, 3, 4)).astype(np.float32)
SPD = (X[:, :3].T @ X[:, :3] + np.eye(3)).astype(np.float32)


@pytest.fixture(autouse=True)
def _fresh_numpyro_param_store():
    from numpyro.compat.pyro import clear_param_store

    clear_param_store()
    yield
    clear_param_store()


def to_np(v):
    if isinstance(v, (tuple, list)):
        return [to_np(x) for x in v]
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    return np.asarray(v)


def both(fn):
    with pyroapi.pyro_backend("pyro"):
        a = to_np(fn())
    with numpyro_backend():
        b = to_np(fn())
    return a, b


def assert_same(a, b, atol=1e-5):
    if isinstance(a, list) or isinstance(b, list):
        assert isinstance(a, list) and isinstance(b, list) and len(a) == len(b), (a, b)
        for x, y in zip(a, b):
            assert_same(x, y, atol)
        return
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a.astype(float), b.astype(float), atol=atol, rtol=1e-5)


t = lambda a: ops.tensor(a)  # noqa: E731
OPS = {
    # creation (ops.zeros returned ones in numpyro.compat)
    "zeros": lambda: ops.zeros(2, 3), "zeros_tuple": lambda: ops.zeros((2, 3)), "zeros_1": lambda: ops.zeros(4),
    "zeros_npint": lambda: ops.zeros(np.int64(3)), "zeros_dtype": lambda: ops.zeros(2, dtype=ops.float32),
    "ones": lambda: ops.ones(2, 3), "ones_list": lambda: ops.ones([3]), "ones_npint": lambda: ops.ones(np.int64(2)),
    "empty_shape": lambda: ops.empty(2, 3).shape, "full": lambda: ops.full((2, 3), 1.5),
    "zeros_like": lambda: ops.zeros_like(t(X)), "ones_like": lambda: ops.ones_like(t(X)),
    "full_like": lambda: ops.full_like(t(X), 2.0), "eye": lambda: ops.eye(3), "eye2": lambda: ops.eye(2, 3),
    "tensor": lambda: ops.tensor([1.0, 2.0]), "tensor_int": lambda: ops.tensor(3), "as_tensor": lambda: ops.as_tensor(X),
    "arange": lambda: ops.arange(5), "arange2": lambda: ops.arange(1.0, 4.0), "arange3": lambda: ops.arange(0, 1, 0.25),
    "linspace": lambda: ops.linspace(0, 1, 5), "logspace": lambda: ops.logspace(0, 2, 3),
    "tril_indices": lambda: ops.tril_indices(3, 4), "triu_indices": lambda: ops.triu_indices(3, 3, 1),
    "meshgrid": lambda: ops.meshgrid(ops.arange(2), ops.arange(3), indexing="ij"),
    # elementwise
    "exp": lambda: ops.exp(t(X)), "log": lambda: ops.log(t(P)), "log1p": lambda: ops.log1p(t(P)),
    "expm1": lambda: ops.expm1(t(X)), "sqrt": lambda: ops.sqrt(t(P)), "abs": lambda: ops.abs(t(X)),
    "sin": lambda: ops.sin(t(X)), "tanh": lambda: ops.tanh(t(X)), "sign": lambda: ops.sign(t(X)),
    "floor": lambda: ops.floor(t(X)), "round": lambda: ops.round(t(X * 3)), "square": lambda: ops.square(t(X)),
    "sigmoid": lambda: ops.sigmoid(t(X)), "sigmoid_int": lambda: ops.sigmoid(t(I)), "logit": lambda: ops.logit(t(P / 3)),
    "erf": lambda: ops.erf(t(X)), "lgamma": lambda: ops.lgamma(t(P)), "digamma": lambda: ops.digamma(t(P)),
    "rsqrt": lambda: ops.rsqrt(t(P)), "relu": lambda: ops.relu(t(X)),
    "add": lambda: ops.add(t(X), t(Y)), "mul_op": lambda: t(X) * t(Y), "pow": lambda: ops.pow(t(P), 2.5),
    "maximum": lambda: ops.maximum(t(X), t(Y)), "where": lambda: ops.where(t(X) > 0, t(X), t(Y)),
    "clamp": lambda: ops.clamp(t(X), -0.5, 0.5), "clamp_kw": lambda: ops.clamp(t(X), min=0.0),
    "clip": lambda: ops.clip(t(X), -0.5, 0.5), "remainder": lambda: ops.remainder(t(X), 0.7),
    "fmod": lambda: ops.fmod(t(X), 0.7), "floor_divide": lambda: ops.floor_divide(t(X), 0.7),
    "ldexp": lambda: ops.ldexp(t(X), t(Y)), "logaddexp": lambda: ops.logaddexp(t(X), t(Y)),
    "xlogy": lambda: ops.xlogy(t(P), t(P)), "isclose": lambda: ops.isclose(t(X), t(X) + 1e-9),
    "equal": lambda: ops.equal(t(X), t(X)), "equal_not": lambda: ops.equal(t(X), t(Y)),
    "equal_shape": lambda: ops.equal(t(X), t(X[:2])), "allclose": lambda: ops.allclose(t(X), t(X)),
    # reductions: torch's dim/keepdim, its positional order, its defaults
    "sum": lambda: ops.sum(t(X)), "sum_dim": lambda: ops.sum(t(X), 1), "sum_kw": lambda: ops.sum(t(X), dim=1),
    "sum_keepdim": lambda: ops.sum(t(X), 1, True), "sum_axis": lambda: ops.sum(t(X), axis=-1),
    "sum_dims": lambda: ops.sum(t(A3), (0, 2)), "mean": lambda: ops.mean(t(X), dim=0, keepdim=True),
    "prod": lambda: ops.prod(t(X), 1), "nansum": lambda: ops.nansum(t(X), dim=0),
    "all": lambda: ops.all(t(X) > -5, dim=1), "any": lambda: ops.any(t(X) > 1, 0),
    "amax": lambda: ops.amax(t(X), dim=1), "amin": lambda: ops.amin(t(X), 0),
    "argmax": lambda: ops.argmax(t(X), dim=1), "argmin": lambda: ops.argmin(t(X), 1, keepdim=True),
    "logsumexp": lambda: ops.logsumexp(t(X), 1), "logsumexp_kd": lambda: ops.logsumexp(t(X), dim=0, keepdim=True),
    "count_nonzero": lambda: ops.count_nonzero(t(I), dim=1),
    "max": lambda: ops.max(t(X)), "max_dim": lambda: ops.max(t(X), 1), "max_kw": lambda: ops.max(t(X), dim=0, keepdim=True),
    "max_binary": lambda: ops.max(t(X), t(Y)), "min": lambda: ops.min(t(X)), "min_dim": lambda: ops.min(t(X), 0),
    "max_values": lambda: ops.max(t(X), 1).values, "max_indices": lambda: ops.max(t(X), 1).indices,
    "std": lambda: ops.std(t(X)), "std_dim": lambda: ops.std(t(X), 1), "std_biased": lambda: ops.std(t(X), 1, False),
    "std_unbiased_flag": lambda: ops.std(t(X), False), "std_correction": lambda: ops.std(t(X), dim=0, correction=0),
    "var": lambda: ops.var(t(X)), "var_dim": lambda: ops.var(t(X), dim=1, keepdim=True),
    "median": lambda: ops.median(t(V[:4])), "median_odd": lambda: ops.median(t(V)),
    "median_dim": lambda: ops.median(t(X), 1), "median_kd": lambda: ops.median(t(X), dim=0, keepdim=True),
    "median_nan": lambda: ops.median(t(np.array([1.0, np.nan, 2.0], np.float32))),
    "nanmedian": lambda: ops.nanmedian(t(np.array([1.0, np.nan, 2.0, 3.0], np.float32))),
    "quantile": lambda: ops.quantile(t(X), 0.3, dim=1), "quantile_q": lambda: ops.quantile(t(V), t(np.float32([0.2, 0.7]))),
    "cumsum": lambda: ops.cumsum(t(X), 1), "cumsum_kw": lambda: ops.cumsum(t(X), dim=0),
    "cumprod": lambda: ops.cumprod(t(X), dim=1), "diff": lambda: ops.diff(t(X), dim=0),
    "cov": lambda: ops.cov(t(X)), "cov_corr": lambda: ops.cov(t(X), correction=0), "corrcoef": lambda: ops.corrcoef(t(X)),
    "trapezoid": lambda: ops.trapezoid(t(X)), "trapezoid_dim": lambda: ops.trapezoid(t(X), dim=0),
    "gradient": lambda: ops.gradient(t(V)), "gradient_dim": lambda: ops.gradient(t(X), dim=1),
    "histogram": lambda: ops.histogram(t(V), 4), "histogram_default": lambda: ops.histogram(t(V)),
    # sorting, searching
    "sort": lambda: ops.sort(t(X)), "sort_dim": lambda: ops.sort(t(X), 0, descending=True),
    "sort_values": lambda: ops.sort(t(V)).values, "argsort": lambda: ops.argsort(t(X), dim=0),
    "unique": lambda: ops.unique(t(I)), "unique_sorted_pos": lambda: ops.unique(t(I), True),
    "unique_counts": lambda: ops.unique(t(I), return_counts=True),
    "nonzero": lambda: ops.nonzero(t(I)), "nonzero_tuple": lambda: ops.nonzero(t(I), as_tuple=True),
    "searchsorted": lambda: ops.searchsorted(t(np.float32([1, 2, 3])), t(np.float32([0.5, 2.0, 2.5]))),
    "searchsorted_right": lambda: ops.searchsorted(t(np.float32([1, 2, 3])), t(np.float32([2.0])), right=True),
    "searchsorted_nd": lambda: ops.searchsorted(ops.sort(t(X)).values, t(Y)),
    # shapes, indexing
    "cat": lambda: ops.cat([t(X), t(Y)]), "cat_dim": lambda: ops.cat([t(X), t(Y)], dim=1),
    "concatenate": lambda: ops.concatenate([t(X), t(Y)], 1), "stack": lambda: ops.stack([t(X), t(Y)], dim=-1),
    "stack0": lambda: ops.stack([t(X), t(Y)]), "hstack": lambda: ops.hstack([t(X), t(Y)]),
    "reshape": lambda: ops.reshape(t(X), (4, 3)), "ravel": lambda: ops.ravel(t(X)),
    "flatten": lambda: ops.flatten(t(A3), 1), "squeeze": lambda: ops.squeeze(t(X[None])),
    "squeeze_dim_not1": lambda: ops.squeeze(t(X), 1), "squeeze_dim": lambda: ops.squeeze(t(X[:, None]), 1),
    "unsqueeze": lambda: ops.unsqueeze(t(X), 1), "transpose": lambda: ops.transpose(t(A3), 0, 2),
    "swapaxes": lambda: ops.swapaxes(t(A3), 0, 1), "t": lambda: ops.t(t(X)), "movedim": lambda: ops.movedim(t(A3), 0, -1),
    "moveaxis": lambda: ops.moveaxis(t(A3), 0, -1), "split": lambda: ops.split(t(V), 2),
    "split_sizes": lambda: ops.split(t(V), [1, 4]), "split_dim": lambda: ops.split(t(X), 3, dim=1),
    "chunk": lambda: ops.chunk(t(V), 2), "vsplit": lambda: ops.vsplit(t(X[:2]), 2), "hsplit": lambda: ops.hsplit(t(X), 2),
    "flip": lambda: ops.flip(t(X), [0]), "flip_int": lambda: ops.flip(t(X), (0, 1)), "roll": lambda: ops.roll(t(X), 1, 1),
    "roll_flat": lambda: ops.roll(t(X), 2), "rot90": lambda: ops.rot90(t(X), 1, [0, 1]), "tile": lambda: ops.tile(t(X), (2, 1)),
    "diag": lambda: ops.diag(t(V)), "diag_off": lambda: ops.diag(t(X), 1), "diagonal": lambda: ops.diagonal(t(A3), 0, 1, 2),
    "diag_embed": lambda: ops.diag_embed(t(X)), "tril": lambda: ops.tril(t(X), -1), "triu": lambda: ops.triu(t(X)),
    "trace": lambda: ops.trace(t(X)), "select": lambda: ops.select(t(X), 1, 2), "index_select": lambda: ops.index_select(
        t(X), 1, ops.tensor([0, 2])), "gather": lambda: ops.gather(t(X), 1, ops.tensor([[0], [1], [3]])),
    "take": lambda: ops.take(t(X), ops.tensor([0, 5])), "narrow": lambda: ops.narrow(t(X), 1, 1, 2),
    "masked_fill": lambda: ops.masked_fill(t(X), t(X) > 0, 0.0), "put": lambda: ops.put(t(X), ops.tensor([0, 1]),
                                                                                    ops.tensor([9.0, 8.0])),
    "put_acc": lambda: ops.put(t(X), ops.tensor([0, 0]), ops.tensor([1.0, 1.0]), accumulate=True),
    "repeat_interleave": lambda: ops.repeat_interleave(t(V), 2), "broadcast_to": lambda: ops.broadcast_to(t(V), (2, 5)),
    "broadcast_tensors": lambda: ops.broadcast_tensors(t(V), t(V[:, None])), "atleast_2d": lambda: ops.atleast_2d(t(V)),
    "numel": lambda: ops.numel(t(X)), "bincount": lambda: ops.bincount(ops.tensor([0, 1, 1, 3])),
    "isin": lambda: ops.isin(t(I), ops.tensor([1, 2])),
    # linear algebra, contractions
    "matmul": lambda: ops.matmul(t(X), t(Y.T)), "mm": lambda: ops.mm(t(X), t(Y.T)), "dot": lambda: ops.dot(t(V), t(V)),
    "outer": lambda: ops.outer(t(V), t(V)), "inner": lambda: ops.inner(t(X), t(Y)), "kron": lambda: ops.kron(t(X), t(Y)),
    "einsum": lambda: ops.einsum("ij,kj->ik", t(X), t(Y)), "einsum_list": lambda: ops.einsum("ij,kj->ik", [t(X), t(Y)]),
    "tensordot": lambda: ops.tensordot(t(X), t(Y), dims=([1], [1])), "cross": lambda: ops.cross(t(X[:, :3]), t(Y[:, :3])),
    "cross_dim": lambda: ops.cross(t(X[:, :3]), t(Y[:, :3]), dim=1), "cholesky": lambda: ops.cholesky(t(SPD)),
    "inverse": lambda: ops.inverse(t(SPD)), "det": lambda: ops.det(t(SPD)), "logdet": lambda: ops.logdet(t(SPD)),
    "slogdet": lambda: ops.slogdet(t(SPD)), "linalg_cholesky": lambda: ops.linalg.cholesky(t(SPD)),
    "cdist": lambda: ops.cdist(t(X), t(Y)), "softmax": lambda: ops.softmax(t(X), -1),
    "log_softmax": lambda: ops.log_softmax(t(X), dim=0),
    # constants
    "pi": lambda: ops.pi, "inf": lambda: ops.inf, "e": lambda: ops.e,
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_agrees(name):
    a, b = both(OPS[name])
    assert_same(a, b)


def test_zeros_is_zeros():
    with numpyro_backend():
        assert np.all(np.asarray(ops.zeros(3)) == 0)


@pytest.mark.parametrize("name, call", [
    ("randn", lambda: ops.randn(2, 3)), ("randn_tuple", lambda: ops.randn((2, 3))), ("rand", lambda: ops.rand(4)),
    ("randint", lambda: ops.randint(0, 5, (3,))), ("randint_high", lambda: ops.randint(5, (3,))),
    ("randperm", lambda: ops.randperm(5)),
])
def test_random_op_shapes_and_support(name, call):
    a, b = both(call)
    assert a.shape == b.shape and a.dtype.kind == b.dtype.kind
    if name.startswith("randint"):
        assert b.min() >= 0 and b.max() < 5
    if name == "randperm":
        assert sorted(b.tolist()) == list(range(5))
    with numpyro_backend():  # seeded by pyro_backend's seed handler: reproducible, and not constant
        first = to_np(call())
    with numpyro_backend():
        assert_same(to_np(call()), first)


def test_randn_draws_are_standard_normal():
    with numpyro_backend():
        draws = to_np(ops.randn(20000))
    assert abs(draws.mean()) < 0.05 and abs(draws.std() - 1) < 0.05


@pytest.mark.parametrize("call", [lambda: ops.save(ops.zeros(1), "f"), lambda: ops.histogramdd(ops.zeros(2, 2)),
                                  lambda: ops.manual_seed(0), lambda: ops.gradient(ops.zeros(3), edge_order=2)],
                         ids=["save", "histogramdd", "manual_seed", "gradient_edge_order"])
def test_unmappable_ops_raise(call):
    with numpyro_backend(), pytest.raises(NotImplementedError):
        call()


# --- distributions: same parameters, same log densities ------------------------------------------------------
DISTS = [
    ("Normal", (0.5, 2.0), {}, 1.3), ("LogNormal", (0.1, 0.7), {}, 1.3), ("HalfNormal", (2.0,), {}, 1.3),
    ("HalfCauchy", (2.0,), {}, 1.3), ("Cauchy", (0.0, 2.0), {}, 1.3), ("StudentT", (3.0, 0.5, 2.0), {}, 1.3),
    ("Gamma", (2.0, 3.0), {}, 1.3), ("InverseGamma", (2.0, 3.0), {}, 1.3), ("Exponential", (2.0,), {}, 1.3),
    ("Beta", (2.0, 3.0), {}, 0.3), ("Uniform", (0.0, 2.0), {}, 1.3), ("Laplace", (0.5, 2.0), {}, 1.3),
    ("Gumbel", (0.5, 2.0), {}, 1.3), ("Weibull", (2.0, 1.5), {}, 1.3), ("Pareto", (1.0, 2.0), {}, 1.3),
    ("Chi2", (3.0,), {}, 1.3), ("VonMises", (0.5, 2.0), {}, 1.3), ("Logistic", (0.5, 2.0), {}, 1.3),
    ("Kumaraswamy", (2.0, 3.0), {}, 0.3), ("AsymmetricLaplace", (0.5, 2.0, 1.5), {}, 1.3),
    ("Bernoulli", (0.3,), {}, 1.0), ("Bernoulli", (), {"logits": -0.4}, 1.0), ("Binomial", (10, 0.3), {}, 4.0),
    ("Poisson", (2.5,), {}, 4.0), ("Geometric", (0.3,), {}, 4.0), ("NegativeBinomial", (5.0, 0.3), {}, 4.0),
    ("NegativeBinomial", (5.0,), {"logits": 0.2}, 4.0), ("BetaBinomial", (2.0, 3.0, 10), {}, 4.0),
    ("GammaPoisson", (2.0, 3.0), {}, 4.0), ("Categorical", ([0.2, 0.3, 0.5],), {}, 2),
    ("Categorical", (), {"logits": [0.2, 0.3, 0.5]}, 2), ("Multinomial", (4, [0.2, 0.3, 0.5]), {}, [1.0, 1.0, 2.0]),
    ("Dirichlet", ([1.0, 2.0, 3.0],), {}, [0.2, 0.3, 0.5]), ("DirichletMultinomial", ([1.0, 2.0, 3.0], 4), {},
                                                                  [1.0, 1.0, 2.0]),
    ("MultivariateNormal", ([0.0, 1.0], [[2.0, 0.5], [0.5, 1.0]]), {}, [0.3, 0.4]),
    ("MultivariateNormal", ([0.0, 1.0],), {"scale_tril": [[2.0, 0.0], [0.5, 1.0]]}, [0.3, 0.4]),
    ("LowRankMultivariateNormal", ([0.0, 1.0], [[1.0], [0.5]], [1.0, 2.0]), {}, [0.3, 0.4]),
    ("MultivariateStudentT", (3.0, [0.0, 1.0], [[2.0, 0.0], [0.5, 1.0]]), {}, [0.3, 0.4]),
    ("LKJCholesky", (2, 2.0), {}, [[1.0, 0.0], [0.6, 0.8]]), ("LKJCholesky", (), {"dim": 2, "concentration": 2.0},
                                                              [[1.0, 0.0], [0.6, 0.8]]),
    ("LKJ", (2, 2.0), {}, [[1.0, 0.6], [0.6, 1.0]]), ("Wishart", (3.0, [[2.0, 0.5], [0.5, 1.0]]), {},
                                                      [[1.0, 0.2], [0.2, 1.5]]),
    ("Wishart", (3.0,), {"precision_matrix": [[2.0, 0.5], [0.5, 1.0]]}, [[1.0, 0.2], [0.2, 1.5]]),
    ("ZeroInflatedPoisson", (2.5,), {"gate": 0.3}, 0.0), ("ZeroInflatedPoisson", (2.5,), {"gate": 0.3}, 2.0),
    ("ZeroInflatedPoisson", (), {"rate": 2.5, "gate_logits": -0.5}, 0.0), ("Delta", (1.3,), {}, 1.3),
    ("Unit", (-1.5,), {"has_rsample": False}, ()),
]


def _arg(v):
    return ops.tensor(v) if isinstance(v, (list, float)) else v


@pytest.mark.parametrize("name, args, kwargs, value", DISTS, ids=[f"{d[0]}-{i}" for i, d in enumerate(DISTS)])
def test_distribution_log_prob_agrees(name, args, kwargs, value):
    def snippet():
        d = getattr(dist, name)(*map(_arg, args), **{k: _arg(v) for k, v in kwargs.items()})
        x = ops.zeros(()) if value == () else ops.tensor(value)
        return [d.log_prob(x), d.batch_shape, d.event_shape]
    a, b = both(snippet)
    assert_same(a, b, atol=1e-4)


def test_mixture_and_independent_take_pyros_keywords():
    def snippet():
        mix = dist.MixtureSameFamily(mixture_distribution=dist.Categorical(ops.tensor([0.3, 0.7])),
                                     component_distribution=dist.Normal(ops.tensor([0.0, 2.0]), 1.0))
        ind = dist.Independent(base_distribution=dist.Normal(ops.zeros(3), 1.0), reinterpreted_batch_ndims=1)
        return [mix.log_prob(ops.tensor(1.2)), ind.log_prob(ops.tensor([0.1, 0.2, 0.3])),
                dist.Normal(0.0, 1.0).expand([3]).to_event(1).log_prob(ops.ones(3)),
                dist.Normal(0.0, 1.0).mask(False).log_prob(ops.ones(2))]
    a, b = both(snippet)
    assert_same(a, b)


# --- primitives and handlers --------------------------------------------------------------------------------
def _sites(tr):
    """Sample and param site names (Pyro also records a plate's subsample as a sample site; NumPyro as a plate)."""
    return sorted(k for k, v in tr.nodes.items()
                  if v["type"] in ("sample", "param") and type(v["fn"]).__name__ != "_Subsample")


def _joint(model, data=None, *, seed=0, **kwargs):
    """log p of one seeded, conditioned run and its sample/param site names, on both backends."""
    def snippet():
        values = {k: ops.tensor(v) for k, v in (data or {}).items()}
        args = {k: ops.tensor(v) for k, v in kwargs.items()}  # numpy in, this backend's arrays
        tr = handlers.trace(handlers.seed(handlers.condition(model, data=values), rng_seed=seed)).get_trace(**args)
        return [tr.log_prob_sum(), *[ops.tensor(float(tr.nodes[k]["value"] is not None)) for k in _sites(tr)]], _sites(tr)
    with pyroapi.pyro_backend("pyro"):
        (a, names_a) = snippet()
    with numpyro_backend():
        (b, names_b) = snippet()
    assert names_a == names_b
    assert_same(to_np(a), to_np(b), atol=1e-4)


def test_sample_and_condition():
    def model(y=None):
        mu = pyro.sample("mu", dist.Normal(ops.zeros(()), 1.0))
        pyro.sample("y", dist.Normal(mu, 2.0), obs=y)
    _joint(model, {"mu": 0.3}, y=np.float32([0.5, 1.5]))


def test_sample_shape_keyword():
    def snippet():
        return handlers.seed(lambda: pyro.sample("x", dist.Normal(0.0, 1.0), sample_shape=(4, 2)), rng_seed=0)().shape
    a, b = both(snippet)
    assert_same(a, b)


def test_deterministic_takes_event_dim():
    def snippet():
        def model():
            mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
            return pyro.deterministic("two_mu", 2 * mu, event_dim=0)
        tr = handlers.trace(handlers.condition(model, data={"mu": ops.tensor(0.4)})).get_trace()
        return [tr.nodes["two_mu"]["value"], tr.log_prob_sum()]
    assert_same(*both(snippet))


def test_factor_takes_has_rsample():
    def model():
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        pyro.factor("tilt", -0.5 * mu ** 2, has_rsample=True)
    _joint(model, {"mu": 0.7})


def test_plate_broadcasts_and_scales():
    def model(y=None):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", 4, dim=-1):
            pyro.sample("y", dist.Normal(mu, 1.0), obs=y)
    _joint(model, {"mu": 0.2}, y=np.float32([0.1, 0.2, 0.3, 0.4]))


def test_plate_subsample_size_scales_the_likelihood():
    # every observation equal: the subsampled likelihood does not depend on which indices are drawn
    def model(y=None):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", 10, subsample_size=3) as idx:
            pyro.sample("y", dist.Normal(mu, 1.0), obs=y[idx])
    _joint(model, {"mu": 0.2}, y=np.full(10, 0.5, np.float32))


def test_plate_subsample_gives_indices_in_range():
    def snippet():
        def model():
            with pyro.plate("data", 10, subsample_size=4) as idx:
                return idx
        return handlers.seed(model, rng_seed=0)()
    a, b = both(snippet)
    assert a.shape == b.shape == (4,) and len(set(b.tolist())) == 4 and 0 <= b.min() and b.max() < 10


def test_sequential_plate():
    def model(y=None):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        for i in pyro.plate("seq", 3):
            pyro.sample(f"y_{i}", dist.Normal(mu, 1.0), obs=y[i])
    _joint(model, {"mu": 0.2}, y=np.float32([0.1, 0.2, 0.3]))


def test_sequential_plate_subsampled_scales():
    def model(y=None):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        total = 0
        for i in pyro.plate("seq", 6, subsample_size=2):
            pyro.sample(f"y_{i}", dist.Normal(mu, 1.0), obs=y[i])
            total += 1
        assert total == 2
    def snippet():  # site names depend on the drawn indices; the scaled log density does not
        tr = handlers.trace(handlers.seed(handlers.condition(model, data={"mu": ops.tensor(0.2)}), rng_seed=0)).get_trace(
            y=ops.ones(6) * 0.5)
        return tr.log_prob_sum()
    assert_same(*both(snippet), atol=1e-4)


def test_markov():
    def model(y=None):
        z = pyro.sample("z_init", dist.Normal(0.0, 1.0))
        for t in pyro.markov(range(3), history=1, dim=None, name=None):
            z = pyro.sample(f"z_{t}", dist.Normal(z, 1.0))
            pyro.sample(f"y_{t}", dist.Normal(z, 0.5), obs=y[t])
    _joint(model, {"z_init": 0.0, "z_0": 0.1, "z_1": 0.2, "z_2": 0.3}, y=np.float32([0.0, 0.5, 1.0]))


def test_subsample():
    def snippet():
        def model():
            with pyro.plate("data", 10, subsample_size=10):
                return pyro.subsample(ops.arange(10.0), event_dim=0)
        return handlers.seed(model, rng_seed=0)()
    assert_same(*both(snippet))


def test_param_values_and_store():
    def snippet():
        def model():
            a = pyro.param("a", ops.tensor([0.5, 1.5]))
            b = pyro.param("b", lambda: ops.ones(2), constraint=dist.constraints.positive)
            s = pyro.param("s", ops.tensor([0.2, 0.3, 0.5]), constraint=dist.constraints.simplex, event_dim=1)
            return [a, b, s]
        first = model()
        return [*first, pyro.param("a"), pyro.param("s")]  # read back without an init value
    assert_same(*both(snippet))


def test_param_store_value_wins_over_init():
    def snippet():
        pyro.param("c", ops.tensor(1.0))
        return pyro.param("c", ops.tensor(5.0))
    assert_same(*both(snippet))


def test_module_with_a_torch_module_raises():
    with numpyro_backend(), pytest.raises(NotImplementedError, match="nn.Module"):
        pyro.module("net", torch.nn.Linear(2, 2))


def test_plate_with_explicit_subsample_raises():
    with numpyro_backend(), pytest.raises(NotImplementedError, match="subsample"):
        pyro.plate("data", 10, subsample=ops.arange(3))


@pytest.mark.parametrize("kwargs", [{}, {"hide": ["mu"]}, {"expose": ["mu"]}, {"hide_types": ["observe"]},
                                    {"expose_types": ["sample"]}, {"hide_all": False, "expose_all": True},
                                    {"expose_fn": lambda msg: msg["name"] == "y"}])
def test_block(kwargs):
    def model():
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        pyro.sample("y", dist.Normal(mu, 1.0), obs=ops.tensor(0.5))

    def snippet():
        tr = handlers.trace(handlers.block(handlers.seed(model, rng_seed=0), **kwargs)).get_trace()
        return _sites(tr)
    a, b = both(snippet)
    assert a == b


def test_substitute_scale_mask_do_uncondition():
    def model(y=None):
        loc = pyro.param("loc", ops.tensor(0.0))
        mu = pyro.sample("mu", dist.Normal(loc, 1.0))
        with handlers.scale(scale=3.0):
            pyro.sample("y", dist.Normal(mu, 1.0), obs=y)
        with handlers.mask(mask=ops.tensor([True, False])):
            pyro.sample("w", dist.Normal(mu, 1.0), obs=ops.tensor([0.1, 9.0]))
        return loc, mu

    def snippet():
        fixed = handlers.condition(model, data={"mu": ops.tensor(0.25)})
        sub = handlers.substitute(fixed, data={"loc": ops.tensor(0.5)})
        done = handlers.do(model, data={"mu": ops.tensor(0.25)})
        unc = handlers.uncondition(fixed)
        tr = handlers.trace(handlers.seed(sub, rng_seed=0)).get_trace(y=ops.tensor(0.5))
        _, mu_do = handlers.seed(done, rng_seed=0)()  # the intervened value flows on
        # Pyro's substitute replaces params only: a sample site named in its data is still drawn
        loc, mu = handlers.seed(handlers.substitute(model, data={"mu": ops.tensor(0.25)}), rng_seed=0)()
        _, mu_unc = handlers.seed(unc, rng_seed=0)()
        return [tr.log_prob_sum(), tr.nodes["loc"]["value"], mu_do,
                ops.tensor(float(mu != 0.25)), ops.tensor(float(mu_unc != 0.25))]
    assert_same(*both(snippet), atol=1e-5)


def test_trace_param_only():
    def model():
        pyro.param("p", ops.tensor(1.0))
        pyro.sample("x", dist.Normal(0.0, 1.0))

    def snippet():
        tr = handlers.trace(handlers.seed(model, rng_seed=0), param_only=True).get_trace()
        return sorted(k for k, v in tr.nodes.items() if v["type"] in ("sample", "param"))
    a, b = both(snippet)
    assert a == b == ["p"]


def test_config_enumerate():
    def model():
        pyro.sample("z", dist.Categorical(ops.tensor([0.3, 0.7])))
        pyro.sample("x", dist.Normal(0.0, 1.0))

    def snippet():
        tr = handlers.trace(handlers.seed(infer.config_enumerate(model), rng_seed=0)).get_trace()
        return [tr.nodes[k]["infer"].get("enumerate") for k in ("z", "x")]
    with pyroapi.pyro_backend("pyro"):
        a = snippet()
    with numpyro_backend():
        b = snippet()
    assert a == b == ["parallel", None]


def test_unmapped_handlers_raise():
    with numpyro_backend(), pytest.raises(NotImplementedError):
        handlers.queue
    with numpyro_backend(), pytest.raises(NotImplementedError):
        pyro.set_rng_seed(0)


# --- model level: the ops.zeros regression --------------------------------------------------------------------
def zero_mean_model(y):
    mu = pyro.sample("mu", dist.Normal(ops.zeros(2), 1.0).to_event(1))
    with pyro.plate("obs", y.shape[0]):
        pyro.sample("y", dist.Normal(mu, 1.0).to_event(1), obs=y)


def test_zero_prior_mean_posterior_on_numpyro():
    # mu ~ N(0, I), y_i ~ N(mu, I), n = 2: posterior N(sum(y)/3, I/3); a prior mean of ones would shift it by 1/3
    y = np.array([[1.0, -0.5], [0.4, 1.2]], dtype=np.float32)
    exact = y.sum(0) / (len(y) + 1)
    fit = ppgen.fit(zero_mean_model, {"y": y}, method="numpyro-nuts", num_warmup=200, num_samples=300, progress=False)
    mean = fit.samples["mu"].double().mean(0).numpy()
    np.testing.assert_allclose(mean, exact, atol=0.15)
