r"""Normalizing flows as density models (lecture 7).

A flow is a VAE whose decoder is deterministic and invertible: :math:`x = f(z)`, :math:`z \sim N(0, I)`,
with :math:`z` and :math:`x` of the same dimension and no inference network. With :math:`h = f^{-1}`
the change of variables gives the exact density

.. math:: \log p_X(x) = \log p_Z(h(x)) + \log \left|\det \frac{\partial h(x)}{\partial x}\right|,

and :math:`h` is a composition :math:`h = h_K \circ \dots \circ h_1` whose log-determinants add. The
design problem is an invertible network with a cheap inverse and a cheap (triangular) Jacobian::

    kind      one layer of h (x -> z)                                   log p(x)   sample
    nice      coupling, z_b = x_b + t(x_a); then a diagonal scaling     1 pass     1 pass
    realnvp   coupling, z_b = x_b exp(s(x_a)) + t(x_a)                  1 pass     1 pass
    maf       autoregressive, z_i = x_i exp(s_i(x_<i)) + t_i(x_<i)      1 pass     D passes
    iaf       inverse of a MAF layer, x_i = z_i exp(s_i(z_<i)) + t_i(z_<i)   D passes   1 pass
    spline    coupling with monotonic rational-quadratic splines (NSF)  1 pass     1 pass

The layers come from zuko (maintained, and bridged into Pyro by ``pyro.contrib.zuko``; Pyro's own
``pyro.distributions.transforms`` flows are no longer developed). ppgen wraps a zuko transform in
:class:`FlowTransform`, a torch ``Transform`` from base to data that computes value and
log-determinant together and keeps them, so a flow is a plain Pyro ``TransformedDistribution``: it has
``log_prob`` and ``rsample``, sits in any ``pyro.sample`` statement, and its transform is what
``AutoContinuous`` guides and NeuTra need (:mod:`ppgen.inference.flow_guides`), which
``pyro.contrib.zuko.ZukoToPyro`` (a wrapped distribution, no transform) cannot give. The layer
lists are zuko's own ``NICE``, ``RealNVP`` and ``MAF`` flows (the spline flow is zuko's coupling
``NICE`` with spline layers), so ppgen writes no layer loop of its own.

References:
    | Lecture 7 (normalizing flows), ``shared/LECTURES.md``.
    | NICE: Non-linear Independent Components Estimation (Dinh et al., 2014), https://arxiv.org/abs/1410.8516
    | Density estimation using Real NVP (Dinh et al., 2017), https://arxiv.org/abs/1605.08803
    | Masked Autoregressive Flow for Density Estimation (Papamakarios et al., 2017), https://arxiv.org/abs/1705.07057
    | Improved Variational Inference with Inverse Autoregressive Flow (Kingma et al., 2016), https://arxiv.org/abs/1606.04934
    | Neural Spline Flows (Durkan et al., 2019), https://arxiv.org/abs/1906.04032
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch.distributions import Transform

from ppgen.errors import ConfigError, UnknownNameError
from ppgen.models import register
from ppgen.models.density import DensityModel
from ppgen.nets import import_zuko

import_zuko()
import zuko.flows  # noqa: E402
from zuko.lazy import LazyComposedTransform, LazyTransform, UnconditionalTransform  # noqa: E402
from zuko.transforms import AdditiveTransform, DependentTransform, MonotonicAffineTransform, MonotonicRQSTransform  # noqa: E402

__all__ = ["KINDS", "Flow", "FlowTransform", "LinearTransform", "build_transform"]


class FlowTransform(Transform):
    """The base-to-data map :math:`f = h^{-1}` of a zuko transform ``h`` (data to base, zuko's direction).

    ``log_prob`` of data computes :math:`h(x)` and its log-determinant in one pass (zuko's
    ``call_and_ladj``). Drawing with gradients on (``rsample`` in a guide, whose ``log_prob`` follows)
    does the same for :math:`f(z)`; drawing without them (``sample``) skips the log-determinant. Both
    are kept for the next :meth:`log_abs_det_jacobian` call on the same tensors.
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, h: Transform):
        super().__init__(cache_size=1)
        self.h = h
        self._last = None  # (z, x, log|det df/dz|)

    def _call(self, z):
        if not torch.is_grad_enabled():
            self._last = None
            return self.h.inv(z)
        x, ladj = self.h.inv.call_and_ladj(z)
        self._last = (z, x, ladj)
        return x

    def _inverse(self, x):
        z, ladj = self.h.call_and_ladj(x)
        self._last = (z, x, -ladj)
        return z

    def log_abs_det_jacobian(self, z, x):
        if self._last is not None and self._last[0] is z and self._last[1] is x:
            return self._last[2]
        return -self.h.log_abs_det_jacobian(x, z)


class LinearTransform(Transform):
    """:math:`x = A z` for a fixed square matrix: the lecture's parallelotope of volume :math:`|\\det A|`,
    so :math:`p_X(x) = p_Z(A^{-1} x) / |\\det A|`. A singular ``A`` is refused."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, A: torch.Tensor):
        super().__init__()
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ConfigError(f"a linear flow needs a square matrix A, got shape {tuple(A.shape)}")
        sign, logabsdet = torch.linalg.slogdet(A)
        if sign == 0 or not torch.isfinite(logabsdet) or torch.linalg.cond(A) > 1 / torch.finfo(A.dtype).eps:
            raise ConfigError(f"A is singular (|det A| = {float(logabsdet.exp()):.3g}, condition number "
                             f"{float(torch.linalg.cond(A)):.3g}): x = A z is not invertible, so it defines no density")
        self.A, self.logabsdet = A, logabsdet

    def _call(self, z):
        return z @ self.A.T

    def _inverse(self, x):
        return torch.linalg.solve(self.A, x.unsqueeze(-1)).squeeze(-1)

    def log_abs_det_jacobian(self, z, x):
        return self.logabsdet.expand(z.shape[:-1])


# --- the layers (zuko's direction: data -> base), from zuko's own flow classes -------------------
def _elementwise_affine(shift, log_scale):
    return DependentTransform(MonotonicAffineTransform(shift, log_scale), 1)


def _nice(features, context, transforms, hidden, slope, bins):
    """NICE (Dinh et al., 2014): additive couplings on alternating halves, then a diagonal scaling."""
    flow = zuko.flows.NICE(features, context, transforms, univariate=AdditiveTransform, shapes=[()],
                           hidden_features=hidden)
    scaling = UnconditionalTransform(_elementwise_affine, torch.zeros(features), torch.zeros(features))
    return [*flow.transform.transforms, scaling]


def _realnvp(features, context, transforms, hidden, slope, bins):
    """RealNVP (Dinh et al., 2017): affine couplings on alternating halves."""
    affine = partial(MonotonicAffineTransform, slope=slope)
    return list(zuko.flows.RealNVP(features, context, transforms, univariate=affine,
                                   hidden_features=hidden).transform.transforms)


def _maf(features, context, transforms, hidden, slope, bins):
    """MAF (Papamakarios et al., 2017): affine autoregressive layers, the order reversed between layers."""
    affine = partial(MonotonicAffineTransform, slope=slope)
    return list(zuko.flows.MAF(features, context, transforms, univariate=affine,
                               hidden_features=hidden).transform.transforms)


def _iaf(features, context, transforms, hidden, slope, bins):
    """IAF (Kingma et al., 2016): the inverse of a MAF, fast to sample, slow to evaluate."""
    return [layer.inv for layer in reversed(_maf(features, context, transforms, hidden, slope, bins))]


def _spline(features, context, transforms, hidden, slope, bins):
    """Neural spline flow (Durkan et al., 2019), coupling form: rational-quadratic splines on alternating halves."""
    rqs = partial(MonotonicRQSTransform, slope=slope)
    return list(zuko.flows.NICE(features, context, transforms, univariate=rqs, shapes=[(bins,), (bins,), (bins - 1,)],
                                hidden_features=hidden).transform.transforms)


KINDS: dict[str, Callable] = {"nice": _nice, "realnvp": _realnvp, "maf": _maf, "iaf": _iaf, "spline": _spline}
"""Flow kinds: name -> builder of its layers."""
_COUPLING = ("nice", "realnvp", "spline")


def build_transform(kind: str, features: int, *, context: int = 0, transforms: int = 4,
                    hidden: Sequence[int] = (64, 64), slope: float = 1e-3, bins: int = 8) -> LazyTransform:
    """The lazy transform ``h`` (data -> base) of a flow ``kind`` over ``features`` numbers, optionally
    conditioned on ``context`` numbers; ``h(c)`` gives the torch transform for context ``c``.

    :param slope: the smallest derivative an affine or spline layer may take; it must be positive,
        or a layer can flatten (zero Jacobian determinant) and stop being invertible.
    :param bins: spline bins (``kind="spline"``).
    """
    if kind not in KINDS:
        raise UnknownNameError(f"unknown flow kind {kind!r}; kinds: {', '.join(KINDS)}")
    if not isinstance(features, int) or features < 1:
        raise ConfigError(f"features must be a positive integer, got {features!r}")
    if kind in _COUPLING and features < 2:
        raise ConfigError(f"a {kind!r} flow is a coupling flow: it splits x into a half that conditions and a half "
                         f"that is transformed, and features={features} leaves one half empty; use 'maf' or 'iaf'")
    if not slope > 0:
        raise ConfigError(f"slope must be > 0, got {slope}: with a zero minimum slope a layer can be flat, its "
                         f"Jacobian determinant 0 and the flow not invertible")
    if transforms < 1:
        raise ConfigError(f"a flow needs at least one transform, got transforms={transforms}")
    if kind == "spline" and bins < 2:
        raise ConfigError(f"a spline layer needs at least 2 bins, got bins={bins}")
    return LazyComposedTransform(*KINDS[kind](features, context, transforms, tuple(hidden), slope, bins))


class Flow(DensityModel):
    r"""A flow density :math:`p(x) = N(h(x); 0, I)\,|\det \partial h / \partial x|` over ``features``
    real numbers; ``kind`` is one of :data:`KINDS`. ``flow.distribution()`` is a Pyro
    ``TransformedDistribution``; fit it with :meth:`fit` (maximum likelihood through ppgen's training
    loop), evaluate it with :meth:`log_prob`/:meth:`score`, draw with :meth:`sample`.
    """

    def __init__(self, features: int, kind: str = "realnvp", transforms: int = 4, hidden: Sequence[int] = (64, 64),
                 slope: float = 1e-3, bins: int = 8, name: str | None = None):
        super().__init__(features, name)
        self.kind = kind
        self.transform = build_transform(kind, features, transforms=transforms, hidden=hidden, slope=slope, bins=bins)
        self.register_buffer("loc", torch.zeros(features))
        self.register_buffer("scale", torch.ones(features))

    def base(self) -> dist.TorchDistribution:
        return dist.Normal(self.loc, self.scale).to_event(1)

    def distribution(self) -> dist.TransformedDistribution:
        return dist.TransformedDistribution(self.base(), FlowTransform(self.transform()))


# --- registered program -------------------------------------------------------------------------
def _moons() -> dict:
    from ppgen.data import toy2d

    return {"x": toy2d.sample("moons", 1024, seed=0)}


@register("flow_moons", factory=True, data=_moons, default_method="map",
          description="normalizing flow (RealNVP by default) on two moons, exact likelihood")
def flow_moons(x, kind: str = "realnvp", transforms: int = 4, hidden: int = 64) -> Flow:
    return Flow(x.shape[-1], kind, transforms, (hidden, hidden), name="flow_moons").to(x.device, x.dtype)
