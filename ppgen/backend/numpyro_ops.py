"""The ``ops`` module of the ``"ppgen-numpyro"`` backend: ``jax.numpy`` under torch's meanings.

On Pyro, ``pyroapi.ops`` is ``torch``; NumPyro's own ``numpyro.compat.ops`` is ``jax.numpy`` plus
``tensor``/``randn``/``ones``/``zeros``, and many names it shares with torch mean something else there
(``zeros`` returns ones; ``std``/``var`` are biased; ``max(x, 1)``/``sort`` return no indices; ``median``
averages; ``split(x, 2)`` counts sections; ``sum(x, 1, True)`` takes ``True`` for a dtype; ``tril_indices(n, m)``
takes ``m`` for an offset; ``select`` is ``np.select``; ``meshgrid`` defaults to ``"xy"``; no ``dim=``/``keepdim=``).
Here every name torch and ``jax.numpy`` share takes torch's arguments and returns torch's values (as JAX
arrays); a few common torch-only names are added; what cannot be matched raises ``NotImplementedError``.
Random ops (``randn``, ``rand``, ...) draw from NumPyro's ``prng_key()`` when a seed handler is active
(they never give torch's numbers).
"""
from __future__ import annotations

import builtins
from collections import namedtuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.numpy import *  # noqa: F401, F403
from jax.scipy import special as _special

_builtin_max, _builtin_min, _builtin_all = builtins.max, builtins.min, builtins.all
values_indices = namedtuple("values_indices", ["values", "indices"])
histogram_result = namedtuple("histogram", ["hist", "bin_edges"])


def _unsupported(name, why):
    def op(*args, **kwargs):
        raise NotImplementedError(f"ops.{name} is not available on the NumPyro backend: {why}")
    op.__name__ = name
    return op


def _ax(dim, axis=None):
    dim = axis if dim is None else dim
    return tuple(dim) if isinstance(dim, list) else dim


def _kd(keepdim, keepdims):
    return builtins.bool(keepdims) if keepdims is not None else builtins.bool(keepdim)


_TORCH_ONLY = {"device", "requires_grad", "layout", "pin_memory", "generator", "memory_format"}


def _ignore(kwargs):
    """torch's device/autograd keywords mean nothing to JAX; anything else is a mistake."""
    unknown = set(kwargs) - _TORCH_ONLY
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {', '.join(sorted(unknown))}")


def _sizes(sizes):
    """torch's ``*size``: ``f(2, 3)``, ``f((2, 3))``, ``f([2, 3])``, ``f(torch.Size(...))``."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    if not _builtin_all(isinstance(s, (int, np.integer)) and not isinstance(s, builtins.bool) for s in sizes):
        raise ValueError(f"sizes must be integers, got {sizes!r}")
    return tuple(int(s) for s in sizes)


# --- creation ---------------------------------------------------------------------------------------------
def tensor(data, dtype=None, device=None, requires_grad=False, pin_memory=False):
    return jnp.array(data, dtype=dtype)


as_tensor = tensor


def zeros(*size, dtype=None, **_torch_only):
    _ignore(_torch_only)
    return jnp.zeros(_sizes(size), dtype=dtype)


def ones(*size, dtype=None, **_torch_only):
    _ignore(_torch_only)
    return jnp.ones(_sizes(size), dtype=dtype)


empty = zeros


def arange(start=0, end=None, step=1, *, dtype=None, **_torch_only):
    _ignore(_torch_only)
    return jnp.arange(start, end, step, dtype=dtype)


def linspace(start, end, steps, *, dtype=None, **_torch_only):
    _ignore(_torch_only)
    return jnp.linspace(start, end, steps, dtype=dtype)


def logspace(start, end, steps, base=10.0, *, dtype=None, **_torch_only):
    _ignore(_torch_only)
    return jnp.logspace(start, end, steps, base=base, dtype=dtype)


def tril_indices(row, col, offset=0, **_torch_only):
    _ignore(_torch_only)
    return jnp.stack(jnp.tril_indices(row, k=offset, m=col))


def triu_indices(row, col, offset=0, **_torch_only):
    _ignore(_torch_only)
    return jnp.stack(jnp.triu_indices(row, k=offset, m=col))


def meshgrid(*tensors, indexing="ij"):
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tensors[0]
    return tuple(jnp.meshgrid(*tensors, indexing=indexing))


# --- random (values never match torch's; shapes and distributions do) -----------------------------------------
def _key():
    from numpyro.primitives import prng_key

    return prng_key()


def _draw(jax_fn, np_fn, shape, dtype):
    key = _key()
    if key is None:  # no seed handler: NumPy's global generator, as numpyro.compat.ops does
        return jnp.asarray(np_fn(shape), dtype=dtype or jnp.float32)
    return jax_fn(key, shape, dtype=dtype or jnp.float32)


def randn(*size, dtype=None, **_torch_only):
    _ignore(_torch_only)
    return _draw(jax.random.normal, lambda s: np.random.standard_normal(s), _sizes(size), dtype)


def rand(*size, dtype=None, **_torch_only):
    _ignore(_torch_only)
    return _draw(jax.random.uniform, lambda s: np.random.random_sample(s), _sizes(size), dtype)


def randint(low, high=None, size=None, *, dtype=None, **_torch_only):
    _ignore(_torch_only)
    if size is None:  # randint(high, size)
        low, high, size = 0, low, high
    key = _key()
    shape = _sizes((size,))
    if key is None:
        return jnp.asarray(np.random.randint(low, high, shape), dtype=dtype or jnp.int32)
    return jax.random.randint(key, shape, low, high, dtype=dtype or jnp.int32)


def randperm(n, *, dtype=None, **_torch_only):
    _ignore(_torch_only)
    key = _key()
    perm = np.random.permutation(n) if key is None else jax.random.permutation(key, n)
    return jnp.asarray(perm, dtype=dtype or jnp.int32)


# --- reductions: dim/keepdim, torch's defaults ----------------------------------------------------------
def _reduction(fn, has_dtype=True):
    def op(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
        kwargs = {"dtype": dtype} if has_dtype and dtype is not None else {}
        return fn(input, axis=_ax(dim, axis), keepdims=_kd(keepdim, keepdims), **kwargs)
    op.__name__ = fn.__name__
    return op


sum, mean, prod, nansum, nanmean = (_reduction(f) for f in (jnp.sum, jnp.mean, jnp.prod, jnp.nansum, jnp.nanmean))
all, any, amax, amin, argmax, argmin = (_reduction(f, False) for f in (jnp.all, jnp.any, jnp.amax, jnp.amin,
                                                                       jnp.argmax, jnp.argmin))
logsumexp = _reduction(_special.logsumexp, False)


def count_nonzero(input, dim=None):
    return jnp.count_nonzero(input, axis=_ax(dim))


def _minmax(reduce, arg, binary):
    def op(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
        dim = _ax(dim, axis)
        if dim is None:
            return reduce(input)
        if not isinstance(dim, (int, np.integer)):  # max(input, other): elementwise
            return binary(input, dim)
        keep = _kd(keepdim, keepdims)
        return values_indices(reduce(input, axis=dim, keepdims=keep), arg(input, axis=dim, keepdims=keep))
    op.__name__ = reduce.__name__
    return op


max = _minmax(jnp.max, jnp.argmax, jnp.maximum)
min = _minmax(jnp.min, jnp.argmin, jnp.minimum)


def _moment(fn):
    def op(input, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
        if isinstance(dim, builtins.bool):  # std(input, unbiased)
            dim, unbiased = None, dim
        ddof = correction if correction is not None else (0 if unbiased is False else 1)
        return fn(input, axis=_ax(dim, axis), ddof=ddof, keepdims=_kd(keepdim, keepdims))
    op.__name__ = fn.__name__
    return op


std, var = _moment(jnp.std), _moment(jnp.var)


def _median(ignore_nan):
    def op(input, dim=None, keepdim=False):
        """torch's median: the lower of the two middle values, with its index when ``dim`` is given."""
        x = jnp.asarray(input)
        axis = -1 if dim is None else dim
        if dim is None:
            x = x.reshape(-1)
        nan = jnp.isnan(x) if jnp.issubdtype(x.dtype, jnp.inexact) else jnp.zeros(x.shape, bool)
        order = jnp.argsort(x, axis=axis, stable=True)  # NaN sorts last
        count = jnp.sum(~nan, axis=axis, keepdims=True) if ignore_nan else x.shape[axis]
        kept = x.shape[:axis % x.ndim] + (1,) + x.shape[axis % x.ndim + 1:]
        pos = jnp.broadcast_to(jnp.maximum((jnp.asarray(count) - 1) // 2, 0), kept)
        idx = jnp.take_along_axis(order, pos, axis=axis)
        val = jnp.take_along_axis(x, idx, axis=axis)
        if not ignore_nan:  # any NaN: the median is NaN, at the first NaN
            has_nan = jnp.any(nan, axis=axis, keepdims=True)
            val = jnp.where(has_nan, jnp.nan, val)
            idx = jnp.where(has_nan, jnp.argmax(nan, axis=axis, keepdims=True), idx)
        if dim is None:
            return val.reshape(())
        if not keepdim:
            val, idx = jnp.squeeze(val, axis), jnp.squeeze(idx, axis)
        return values_indices(val, idx)
    return op


median, nanmedian = _median(False), _median(True)


def _q(q):
    return jnp.asarray(q, dtype=jnp.result_type(q, jnp.float32))


def quantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    return jnp.quantile(input, _q(q), axis=dim, keepdims=keepdim, method=interpolation)


def nanquantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    return jnp.nanquantile(input, _q(q), axis=dim, keepdims=keepdim, method=interpolation)


def cumsum(input, dim, *, dtype=None):
    return jnp.cumsum(input, axis=dim, dtype=dtype)


def cumprod(input, dim, *, dtype=None):
    return jnp.cumprod(input, axis=dim, dtype=dtype)


def cov(input, *, correction=1, fweights=None, aweights=None):
    return jnp.cov(input, ddof=correction, fweights=fweights, aweights=aweights)


def diff(input, n=1, dim=-1, prepend=None, append=None):
    return jnp.diff(input, n=n, axis=dim, prepend=prepend, append=append)


def trapezoid(y, x=None, *, dx=None, dim=-1):
    return jnp.trapezoid(y, x, dx=1.0 if dx is None else dx, axis=dim)


def gradient(input, *, spacing=1, dim=None, edge_order=1):
    if edge_order != 1:
        raise NotImplementedError("ops.gradient on the NumPyro backend supports edge_order=1 only")
    spacing = spacing if isinstance(spacing, (list, tuple)) else (spacing,)
    out = jnp.gradient(input, *spacing, axis=_ax(dim))
    return tuple(out) if isinstance(out, (list, tuple)) else (out,)


def histogram(input, bins=100, *, range=None, weight=None, density=False):
    return histogram_result(*jnp.histogram(input, bins=bins, range=range, weights=weight, density=density))


# --- sorting, searching -----------------------------------------------------------------------------------
def sort(input, dim=-1, descending=False, stable=False):
    idx = jnp.argsort(input, axis=dim, descending=descending, stable=True)
    return values_indices(jnp.take_along_axis(input, idx, axis=dim), idx)


def argsort(input, dim=-1, descending=False, stable=False):
    return jnp.argsort(input, axis=dim, descending=descending, stable=True)


def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    return jnp.unique(input, return_inverse=return_inverse, return_counts=return_counts, axis=dim)


def nonzero(input, *, as_tuple=False):
    idx = jnp.nonzero(input)
    return idx if as_tuple else jnp.stack(idx, axis=-1)


def searchsorted(sorted_sequence, input, *, out_int32=False, right=False, side=None, sorter=None):
    side = side or ("right" if right else "left")
    dtype = jnp.int32 if out_int32 else None
    seq, values = jnp.asarray(sorted_sequence), jnp.asarray(input)
    if seq.ndim <= 1:
        out = jnp.searchsorted(seq, values, side=side, sorter=sorter)
        return out if dtype is None else out.astype(dtype)
    fn = lambda s, v: jnp.searchsorted(s, v, side=side)  # noqa: E731
    out = jax.vmap(fn)(seq.reshape(-1, seq.shape[-1]), values.reshape(-1, values.shape[-1]))
    out = out.reshape(values.shape)
    return out if dtype is None else out.astype(dtype)


def equal(input, other):
    """torch's ``equal``: one bool, True when shapes and all elements agree (an array under ``jit``)."""
    a, b = jnp.asarray(input), jnp.asarray(other)
    if a.shape != b.shape:
        return False
    out = jnp.all(a == b)
    try:
        return builtins.bool(out)
    except jax.errors.ConcretizationTypeError:
        return out


# --- shapes, indexing --------------------------------------------------------------------------------------
def cat(tensors, dim=None, *, axis=None):
    dim = _ax(dim, axis)
    return jnp.concatenate(tensors, axis=0 if dim is None else dim)


concat = concatenate = cat


def stack(tensors, dim=None, *, axis=None):
    dim = _ax(dim, axis)
    return jnp.stack(tensors, axis=0 if dim is None else dim)


def squeeze(input, dim=None):
    x = jnp.asarray(input)
    if dim is None:
        return jnp.squeeze(x)
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    return jnp.squeeze(x, axis=tuple(d for d in dims if x.shape[d] == 1))  # torch ignores non-1 dims


def unsqueeze(input, dim):
    return jnp.expand_dims(input, dim)


def transpose(input, dim0, dim1):
    return jnp.swapaxes(input, dim0, dim1)


def t(input):
    return jnp.asarray(input) if jnp.ndim(input) < 2 else jnp.swapaxes(input, 0, 1)


def flatten(input, start_dim=0, end_dim=-1):
    x = jnp.asarray(input)
    if x.ndim == 0:
        return x.reshape(1)
    start, end = start_dim % x.ndim, end_dim % x.ndim
    return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:])


movedim = jnp.moveaxis


def split(tensor, split_size_or_sections, dim=0):
    n = jnp.shape(tensor)[dim]
    if isinstance(split_size_or_sections, (int, np.integer)):
        cuts = list(builtins.range(int(split_size_or_sections), n, int(split_size_or_sections)))
    else:
        cuts = np.cumsum(split_size_or_sections)[:-1].tolist()
    return tuple(jnp.split(tensor, cuts, axis=dim))


def chunk(input, chunks, dim=0):
    return split(input, -(-jnp.shape(input)[dim] // chunks), dim)


def flip(input, dims):
    return jnp.flip(input, axis=_ax(dims))


def roll(input, shifts, dims=None):
    return jnp.roll(input, shifts, axis=_ax(dims))


def rot90(input, k=1, dims=(0, 1)):
    return jnp.rot90(input, k, axes=tuple(dims))


def diagonal(input, offset=0, dim1=0, dim2=1):
    return jnp.diagonal(input, offset, dim1, dim2)


def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    if (offset, dim1, dim2) != (0, -2, -1):
        raise NotImplementedError("ops.diag_embed on the NumPyro backend supports the default offset and dims only")
    x = jnp.asarray(input)
    return x[..., None] * jnp.eye(x.shape[-1], dtype=x.dtype)


def select(input, dim, index):
    return jnp.take(input, index, axis=dim)


def index_select(input, dim, index):
    return jnp.take(input, index, axis=dim)


def gather(input, dim, index):
    return jnp.take_along_axis(input, index, axis=dim)


def narrow(input, dim, start, length):
    return jax.lax.slice_in_dim(input, start, start + length, axis=dim)


def masked_fill(input, mask, value):
    return jnp.where(mask, value, input)


def put(input, index, source, accumulate=False):
    flat = jnp.ravel(input)
    flat = flat.at[jnp.ravel(index)].add(source) if accumulate else flat.at[jnp.ravel(index)].set(source)
    return flat.reshape(jnp.shape(input))


def repeat_interleave(input, repeats, dim=None):
    return jnp.repeat(input, repeats, axis=dim)


def broadcast_tensors(*tensors):
    return tuple(jnp.broadcast_arrays(*tensors))


def numel(input):
    return jnp.size(input)


def is_tensor(obj):
    return isinstance(obj, jax.Array)


# --- math --------------------------------------------------------------------------------------------------
def tensordot(a, b, dims=2):
    return jnp.tensordot(a, b, axes=dims)


def einsum(equation, *operands):
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = operands[0]
    return jnp.einsum(equation, *operands)


def cross(input, other, dim=None):
    if dim is None:  # torch: the first dimension of size 3
        shape = jnp.broadcast_shapes(jnp.shape(input), jnp.shape(other))
        dim = next(i for i, s in enumerate(shape) if s == 3)
    return jnp.cross(input, other, axis=dim)


def ldexp(input, other):
    return input * jnp.exp2(other)


def clamp(input, min=None, max=None):
    return jnp.clip(input, min, max)


clip = clamp


def softmax(input, dim, dtype=None):
    return jax.nn.softmax(jnp.asarray(input, dtype=dtype), axis=dim)


def log_softmax(input, dim, dtype=None):
    return jax.nn.log_softmax(jnp.asarray(input, dtype=dtype), axis=dim)


def logit(input, eps=None):
    return _special.logit(input if eps is None else jnp.clip(input, eps, 1 - eps))


def cdist(x1, x2, p=2.0):
    d = jnp.abs(jnp.asarray(x1)[..., :, None, :] - jnp.asarray(x2)[..., None, :, :])
    return jnp.max(d, -1) if p == np.inf else jnp.sum(d ** p, -1) ** (1.0 / p)


def cholesky(input, upper=False):
    low = jnp.linalg.cholesky(input)
    return jnp.swapaxes(low, -1, -2) if upper else low


def _floating(fn):
    def op(input, *args):  # torch promotes integer inputs to float
        return fn(jnp.asarray(input, dtype=jnp.result_type(input, jnp.float32)), *args)
    op.__name__ = fn.__name__
    return op


sigmoid, erf, erfc, erfinv, lgamma, digamma = (_floating(f) for f in (jax.nn.sigmoid, _special.erf, _special.erfc,
                                                                    _special.erfinv, _special.gammaln,
                                                                    _special.digamma))
relu, xlogy = jax.nn.relu, _special.xlogy
inverse, det, slogdet = jnp.linalg.inv, jnp.linalg.det, jnp.linalg.slogdet
mm = bmm = mv = jnp.matmul


rsqrt = _floating(jax.lax.rsqrt)


def logdet(input):
    sign, logabs = jnp.linalg.slogdet(input)
    return jnp.where(sign > 0, logabs, jnp.where(sign == 0, -jnp.inf, jnp.nan))


# --- torch names that would mean something else here --------------------------------------------------------
save = _unsupported("save", "torch.save(obj, f) and numpy's save(file, arr) take their arguments the other way")
load = _unsupported("load", "torch.load reads torch's pickles, not NumPy files")
histogramdd = _unsupported("histogramdd", "torch's and NumPy's bins and return values differ")
frombuffer = _unsupported("frombuffer", "torch.frombuffer and numpy.frombuffer take different arguments")
set_printoptions = _unsupported("set_printoptions", "use numpy.set_printoptions")
