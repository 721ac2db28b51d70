r"""Variational autoencoders (Lectures 5 and 7): an infinite mixture fit with an amortized guide.

Generative story, for each image ``n`` (``D`` pixels, ``Z`` latents, optional class ``c_n``)::

    z_n ~ N(0, I_Z)                                  # prior                    (B, Z)
    x_n | z_n ~ Bernoulli(sigmoid(f_theta(z_n, c_n)))   # binary pixels         (B, D)
             or N(mu_theta(z_n, c_n), diag sigma_theta(z_n, c_n)^2)   # grey levels

The graphical model, and the guide's arrow (dashed) beside it::

    +-----------------------+
    |   z_n  <- - - - - +   |
    |    |   q_phi(z|x) |   |
    |    v              |   |
    |   x_n  - - - - - -+   |  N (the "data" plate, subsampled)
    +-----------------------+
        theta (decoder), phi (encoder): networks, shared by every n

Guide (amortized inference): one encoder network outputs the variational parameters of every point,
``q_phi(z_n | x_n, c_n) = N(m_phi(x_n, c_n), diag s_phi(x_n, c_n)^2)``, so

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z)) <= log p(x).

Both programs subsample the same ``"data"`` plate, so Pyro scales the minibatch log-likelihood by
``N / B``. The conditional VAE is the same pair of networks with the one-hot class concatenated to
their inputs (``num_classes > 0``). ``conv=True`` swaps the MLP feature extractor of the encoder and
the last layers of the decoder for two (transposed) stride-2 convolutions.

Registered models: ``vae`` and ``cvae`` on the binarized 8x8 digits, as factories: each fit builds a
:class:`VAE` sized for its data and hands ``svi`` its ``model`` and ``guide``, so ``ppgen.fit("vae",
method="svi", lr=1e-3)`` trains the encoder and decoder together (the trained networks are
``fit.problem.instance``). They use every image at each step unless the
data carry a ``batch_size`` (then guide draws of ``z`` cover a random minibatch only: pass
``num_samples=0``).
"""
from __future__ import annotations

import math
import weakref
from typing import Callable, Sequence

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from ppgen.data.images import load_digits
from ppgen.errors import DataError
from ppgen.models import register
from ppgen.nets import GaussianHead, ModuleParams, mlp

__all__ = ["VAE", "AmortizedELBO", "Encoder", "Decoder", "vae", "cvae", "check_images", "check_labels", "SeenTensors",
           "data_plate"]

LIKELIHOODS = ("bernoulli", "gaussian")
LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))  # as torch's Normal.log_prob writes the constant


# ---------------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------------
def _cat(h: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """Concatenate a condition ``c`` (..., C) to features ``h`` (..., F), broadcasting batch dims."""
    if c is None:
        return h
    batch = torch.broadcast_shapes(h.shape[:-1], c.shape[:-1])
    return torch.cat([h.expand(*batch, h.shape[-1]), c.expand(*batch, c.shape[-1])], dim=-1)


def _check_conv_shape(image_shape: Sequence[int] | None) -> tuple[int, int]:
    if image_shape is None or len(image_shape) != 2 or any(s % 4 for s in image_shape):
        raise ValueError(f"the conv VAE needs image_shape=(rows, cols), both divisible by 4; got {image_shape}")
    return int(image_shape[0]), int(image_shape[1])


class ConvFeatures(nn.Module):
    """Pixels (..., H*W) -> features (..., 2c * H/4 * W/4): two stride-2 convolutions."""

    def __init__(self, image_shape: Sequence[int], channels: int = 16):
        super().__init__()
        self.image_shape = _check_conv_shape(image_shape)
        c = channels
        self.net = nn.Sequential(nn.Conv2d(1, c, 4, 2, 1), nn.ReLU(), nn.Conv2d(c, 2 * c, 4, 2, 1), nn.ReLU(),
                                 nn.Flatten())
        self.out_features = 2 * c * (self.image_shape[0] // 4) * (self.image_shape[1] // 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(-1, 1, *self.image_shape)).reshape(*x.shape[:-1], self.out_features)


class ConvPixels(nn.Module):
    """Features (..., n_in) -> pixels (..., k * H*W), ``k`` channels: a linear map to a
    (2c, H/4, W/4) grid, then two stride-2 transposed convolutions."""

    def __init__(self, n_in: int, image_shape: Sequence[int], out_channels: int = 1, channels: int = 16):
        super().__init__()
        h, w = _check_conv_shape(image_shape)
        self.grid = (2 * channels, h // 4, w // 4)
        self.linear = nn.Linear(n_in, math.prod(self.grid))
        self.net = nn.Sequential(
            nn.ReLU(), nn.ConvTranspose2d(2 * channels, channels, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(channels, out_channels, 4, 2, 1), nn.Flatten(),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.net(self.linear(h).reshape(-1, *self.grid))
        return out.reshape(*h.shape[:-1], out.shape[-1])


class Encoder(nn.Module):
    """q(z | x, c): pixels x (..., D) and optional condition c (..., C) -> loc, scale (..., Z)."""

    def __init__(self, x_dim: int, z_dim: int, hidden: Sequence[int] = (256,), cond_dim: int = 0,
                 conv_image_shape: Sequence[int] | None = None):
        super().__init__()
        self.features = ConvFeatures(conv_image_shape) if conv_image_shape else nn.Identity()
        n_features = self.features.out_features if conv_image_shape else x_dim
        self.head = GaussianHead(n_features + cond_dim, hidden, z_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(_cat(self.features(x), c))


class Decoder(nn.Module):
    """p(x | z, c): latents z (..., Z) and optional condition c (..., C) -> a distribution over
    pixels (..., D) with event dim 1. ``net`` outputs the raw parameters: Bernoulli logits (..., D)
    or Gaussian (loc, pre-softplus scale) (..., 2D)."""

    def __init__(self, z_dim: int, x_dim: int, hidden: Sequence[int] = (256,), cond_dim: int = 0,
                 likelihood: str = "bernoulli", conv_image_shape: Sequence[int] | None = None, min_scale: float = 0.05):
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, not {likelihood!r}")
        self.likelihood, self.min_scale = likelihood, min_scale
        k = 1 if likelihood == "bernoulli" else 2
        if conv_image_shape:
            self.net = nn.Sequential(mlp([z_dim + cond_dim, *hidden]), ConvPixels(hidden[-1], conv_image_shape, k))
        else:
            self.net = mlp([z_dim + cond_dim, *hidden, k * x_dim])

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> dist.Distribution:
        out = self.net(_cat(z, c))
        if self.likelihood == "bernoulli":
            return dist.Bernoulli(logits=out).to_event(1)
        loc, raw_scale = out.chunk(2, dim=-1)
        return dist.Normal(loc, F.softplus(raw_scale) + self.min_scale).to_event(1)

    def mean(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z, c] (pixel probabilities for Bernoulli)."""
        return self(z, c).mean


# ---------------------------------------------------------------------------------------------
# the model and its amortized guide
# ---------------------------------------------------------------------------------------------
class VAE(nn.Module):
    """A VAE as a model/guide pair of Pyro programs sharing one ``nn.Module`` of networks.

    :param x_dim: pixels per image ``D`` (images may also be given as ``(n, *image_shape)``).
    :param z_dim: latent size ``Z``.
    :param hidden: hidden widths of the encoder and decoder MLPs.
    :param likelihood: ``"bernoulli"`` (binary pixels) or ``"gaussian"`` (real-valued pixels).
    :param image_shape: ``(rows, cols)``; required for ``conv=True``, used to check inputs.
    :param conv: convolutional encoder features and decoder output layers.
    :param num_classes: ``C > 0`` makes it a conditional VAE: ``model(x, y)``, ``y`` in ``0..C-1``.
    :param name: prefix of the networks' names in Pyro's param store.
    """

    def __init__(self, x_dim: int = 64, z_dim: int = 2, hidden: Sequence[int] = (256,), likelihood: str = "bernoulli",
                 image_shape: Sequence[int] | None = None, conv: bool = False, num_classes: int = 0, name: str = "vae"):
        super().__init__()
        if image_shape is not None and math.prod(image_shape) != x_dim:
            raise ValueError(f"image_shape {tuple(image_shape)} has {math.prod(image_shape)} pixels, x_dim is {x_dim}")
        conv_shape = image_shape if conv else None
        if conv:
            _check_conv_shape(image_shape)
        self.x_dim, self.z_dim, self.num_classes, self.name = x_dim, z_dim, num_classes, name
        self.image_shape = tuple(image_shape) if image_shape is not None else None
        self.likelihood = likelihood
        self.encoder = Encoder(x_dim, z_dim, hidden, num_classes, conv_shape)
        self.decoder = Decoder(z_dim, x_dim, hidden, num_classes, likelihood, conv_shape)
        self._seen = SeenTensors()

    # -- the two programs ---------------------------------------------------------------------
    def model(self, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int | None = None) -> None:
        """p(x, z | c) = N(z; 0, I) p_theta(x | z, c) over a (sub)sampled plate of images."""
        x, c = self.inputs(x, y)                                                 # (N, D), (N, C) | None
        pyro.module(f"{self.name}.decoder", self.decoder)
        with data_plate("data", x, batch_size) as idx:
            xb, cb = x[idx], None if c is None else c[idx]                       # (B, D)
            z = pyro.sample("z", dist.Normal(xb.new_zeros(()), 1.0).expand([len(idx), self.z_dim]).to_event(1))
            pyro.sample("x", self.decoder(z, cb), obs=xb)                        # z: (B, Z)

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int | None = None) -> None:
        """q_phi(z | x, c) = N(m_phi(x, c), diag s_phi(x, c)^2), the same plate and subsample."""
        x, c = self.inputs(x, y)
        pyro.module(f"{self.name}.encoder", self.encoder)
        with data_plate("data", x, batch_size) as idx:
            loc, scale = self.encoder(x[idx], None if c is None else c[idx])   # (B, Z) each
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def objective(self) -> AmortizedELBO | None:
        """The direct objective of :meth:`model` and :meth:`guide` (``None`` where a subclass replaces
        either program, whose objective is then only known to Pyro's ELBO)."""
        cls = type(self)
        if cls.model is VAE.model and cls.guide is VAE.guide:
            return AmortizedELBO(self)
        return None

    # -- uses of the trained networks ---------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Variational parameters (loc, scale), each (N, Z)."""
        x, c = self.inputs(x, y)
        return self.encoder(x, c)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z = m_phi(x)]: (N, D)."""
        x, c = self.inputs(x, y)
        return self.decoder.mean(self.encoder(x, c)[0], c)

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Pixel means E[x | z] of ``n`` draws z ~ N(0, I) (only the decoder is used): (n, D)."""
        p = next(self.decoder.parameters())
        z = torch.randn(n, self.z_dim, device=p.device, dtype=p.dtype, generator=generator)
        return self.decoder.mean(z, self._one_hot(y, p) if y is not None else None)

    @torch.no_grad()
    def traverse(self, values: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """Latent traversals: move one axis of z at a time over ``values`` (V,) from ``base`` (Z,)
        (default 0), decode. Returns (Z, V, D): row ``k`` varies ``z_k``."""
        base = values.new_zeros(self.z_dim) if base is None else base
        z = base.expand(self.z_dim, len(values), self.z_dim).clone()
        axes = torch.arange(self.z_dim, device=values.device)
        z[axes, :, axes] = values
        return self.decoder.mean(z)

    # -- inputs --------------------------------------------------------------------------------
    def inputs(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Flatten images to (N, D), check them once per tensor, one-hot the labels."""
        if not isinstance(x, torch.Tensor):
            raise DataError(f"site 'x': expected a tensor of images, got {type(x).__name__}")
        given = x
        if self.image_shape is not None and tuple(x.shape[1:]) == self.image_shape:
            x = x.reshape(x.shape[0], -1)                                        # (N, D)
        if given not in self._seen:
            check_images(x, self.x_dim, self.likelihood, self.image_shape)
            self._seen.add(given)
        if not self.num_classes:
            if y is not None:
                raise DataError("site 'y': this VAE is unconditional (num_classes=0) but labels were given")
            return x, None
        if y is None:
            raise DataError(f"site 'y': the conditional VAE needs labels in 0..{self.num_classes - 1}, got none")
        if y not in self._seen:
            check_labels(y, x.shape[0], self.num_classes)
            self._seen.add(y)
        return x, self._one_hot(y, x)

    def _one_hot(self, y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.one_hot(y.long(), self.num_classes).to(like.dtype)


class AmortizedELBO:
    r"""The single-draw ELBO of a :class:`VAE`'s model and guide, for ppgen's training loop (it takes
    the place of a Pyro ELBO: ``loss_and_grads(model, guide, **data)``). On a minibatch ``b`` of ``B``
    of the ``N`` images (``randperm(N)[:B]``, all of them without ``batch_size``)::

        z_n = m_phi(x_n) + s_phi(x_n) eps_n,  eps_n ~ N(0, I)                     # (B, Z)
        ELBO_b = N/B sum_{n in b} [log p(z_n) + log p_theta(x_n | z_n) - log q_phi(z_n | x_n)]

    The log densities are written out as torch's ``Normal`` and ``Bernoulli`` compute them, so these
    are the numbers ``Trace_ELBO`` computes for the two programs, site by site in its order (the
    prior, the likelihood, less the guide), from the same random draws: bit for bit on the CPU
    (``tests/test_svi_overheads.py``), without tracing both programs, replaying one into the other and
    copying the traces at every step, nor building distribution objects. The networks' parameters
    are registered as the programs register them (:class:`~ppgen.nets.ModuleParams`).
    """

    def __init__(self, vae: VAE):
        self.vae = vae
        # the guide's trace comes first: the encoder is registered first
        self.registered = ModuleParams((f"{vae.name}.encoder", vae.encoder), (f"{vae.name}.decoder", vae.decoder))

    def loss_and_grads(self, model, guide, x: torch.Tensor, y: torch.Tensor | None = None,
                       batch_size: int | None = None) -> float:
        v = self.vae
        if model != v.model or guide != v.guide:
            raise ValueError(f"this objective is {v.name!r}'s own: it trains {v.name}.model and {v.name}.guide only")
        self.registered.register()
        x, c = v.inputs(x, y)                                                    # (N, D), (N, C) | None
        n = len(x)
        subsampled = batch_size is not None and batch_size < n
        idx = (torch.randperm(n, device=x.device)[:batch_size].clone() if subsampled  # as the "data" plate draws it
               else torch.arange(n, device=x.device))
        xb, cb = x[idx], None if c is None else c[idx]                           # (B, D)
        loc, scale = v.encoder(xb, cb)                                           # (B, Z) each
        z = loc + torch.empty_like(loc).normal_() * scale                        # q's rsample, (B, Z)
        log_likelihood = self._likelihood(z, cb)  # the decoder runs first, as in the model, before any density
        weight = n / len(idx)
        log_pz, log_px, log_q = ((t * weight if subsampled else t).sum() for t in (  # in the order Pyro takes them
            (-(z**2) / 2 - LOG_SQRT_2PI).sum(-1),                                # N(z; 0, I)
            log_likelihood(xb),                                                  # p_theta(x | z, c)
            (-((z - loc) ** 2) / (2 * scale**2) - scale.log() - LOG_SQRT_2PI).sum(-1)))   # q_phi(z | x, c)
        elbo = 0.0 + log_pz.item() + log_px.item() - log_q.item()
        (-(log_pz + log_px - log_q)).backward()
        return -elbo

    def _likelihood(self, z: torch.Tensor, c: torch.Tensor | None) -> Callable:
        """x -> log p_theta(x | z, c) per image, (B,): for binary pixels as ``Bernoulli(logits).log_prob``
        computes it."""
        decoder = self.vae.decoder
        if decoder.likelihood != "bernoulli":
            return decoder(z, c).log_prob
        logits = decoder.net(_cat(z, c))                                         # (B, D)
        return lambda x: (-F.binary_cross_entropy_with_logits(logits, x, reduction="none")).sum(-1)


def data_plate(name: str, x: torch.Tensor, batch_size: int | None) -> pyro.plate:
    """The plate over the rows of ``x``, subsampled to ``batch_size`` rows per call unless that is
    all of them (Pyro then scales the log-likelihood by N / B)."""
    subsample = None if batch_size is None or batch_size >= len(x) else int(batch_size)
    return pyro.plate(name, len(x), subsample_size=subsample, device=x.device)


class SeenTensors:
    """Remembers tensors by identity (weakly): data is checked once per tensor, not once per step,
    so that training never waits on a host sync for a check."""

    def __init__(self):
        self._refs: dict[int, weakref.ref] = {}

    def __contains__(self, t: torch.Tensor) -> bool:
        ref = self._refs.get(id(t))
        return ref is not None and ref() is t

    def add(self, t: torch.Tensor) -> None:
        self._refs = {k: r for k, r in self._refs.items() if r() is not None}
        self._refs[id(t)] = weakref.ref(t)


def check_images(x: torch.Tensor, x_dim: int, likelihood: str, image_shape: Sequence[int] | None = None,
                 site: str = "x") -> None:
    """Raise :class:`DataError` naming ``site`` unless ``x`` is (N, x_dim), finite, and binary
    for a Bernoulli decoder."""
    shape = f"(n, {x_dim})" + (f" or (n, {', '.join(map(str, image_shape))})" if image_shape else "")
    if x.dim() != 2 or x.shape[1] != x_dim:
        raise DataError(f"site {site!r}: expected images of shape {shape}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise DataError(f"site {site!r}: expected floating-point pixels, got {x.dtype} (convert with .float())")
    if not torch.isfinite(x).all():
        raise DataError(f"site {site!r}: the images contain NaN or infinite values")
    if likelihood == "bernoulli":
        bad = (x != 0) & (x != 1)
        if bad.any():
            raise DataError(
                f"site {site!r}: the Bernoulli decoder needs binary pixels in {{0, 1}}, got {int(bad.sum())} "
                f"other values (e.g. {x[bad][0].item():.4g}); binarize (x > 0.5) or use likelihood='gaussian'"
            )


def check_labels(y: torch.Tensor, n: int, num_classes: int, site: str = "y") -> None:
    """Raise :class:`DataError` naming ``site`` unless ``y`` is (n,) integers in 0..num_classes-1."""
    if y.shape != (n,):
        raise DataError(f"site {site!r}: expected {n} labels (one per image), got shape {tuple(y.shape)}")
    if y.is_floating_point() and not torch.equal(y, y.round()):
        raise DataError(f"site {site!r}: labels must be integers 0..{num_classes - 1}")
    if n and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"site {site!r}: labels must lie in 0..{num_classes - 1}, got {int(y.min())}..{int(y.max())}")


# ---------------------------------------------------------------------------------------------
# registered models: factories building the networks for the data, once per fit
# ---------------------------------------------------------------------------------------------
def _digits_data(labels: bool = False):
    def data() -> dict:
        split = load_digits(binarize=True)
        return {"x": split.x_train, "y": split.y_train} if labels else {"x": split.x_train}
    return data


def _pixels(x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = getattr(x, "dtype", type(x).__name__)
        raise DataError(f"site 'x': expected a floating-point tensor of pixels, got {got}")
    return x


@register("vae", factory=True, data=_digits_data(), default_method="svi", tags=("latent",),
          description="VAE on binarized 8x8 digits: Bernoulli decoder, amortized encoder guide")
def vae(x, latent_dim: int = 2, hidden: Sequence[int] = (256,), likelihood: str = "bernoulli", conv: bool = False,
        image_shape: Sequence[int] = (8, 8)) -> VAE:
    """VAE on binarized 8x8 digits: z ~ N(0, I), x | z ~ Bernoulli(decoder(z)); guide: its encoder."""
    x = _pixels(x)
    return VAE(name="vae",
               **_config(latent_dim, hidden, likelihood, conv, image_shape)).to(device=x.device, dtype=x.dtype)


@register("cvae", factory=True, data=_digits_data(labels=True), default_method="svi", tags=("latent",),
          description="conditional VAE on binarized 8x8 digits given their class, amortized encoder guide")
def cvae(x, latent_dim: int = 2, hidden: Sequence[int] = (256,), likelihood: str = "bernoulli", conv: bool = False,
         image_shape: Sequence[int] = (8, 8), num_classes: int = 10) -> VAE:
    """Conditional VAE: z ~ N(0, I), x | z, y ~ Bernoulli(decoder(z, onehot(y))); guide q(z | x, y)."""
    x = _pixels(x)
    config = _config(latent_dim, hidden, likelihood, conv, image_shape)
    return VAE(name="cvae", num_classes=num_classes, **config).to(device=x.device, dtype=x.dtype)


def _config(latent_dim, hidden, likelihood, conv, image_shape) -> dict:
    image_shape = tuple(int(s) for s in image_shape)
    return dict(x_dim=math.prod(image_shape), z_dim=int(latent_dim), hidden=tuple(int(h) for h in hidden),
                likelihood=likelihood, image_shape=image_shape, conv=bool(conv))
