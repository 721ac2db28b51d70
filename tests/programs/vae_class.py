"""A variational autoencoder written as Pyro's examples/vae/vae.py writes it: a ``VAE(nn.Module)``
holding an encoder and a decoder, with ``model(self, x)`` (registers the decoder with
``pyro.module``, z ~ N(0, I), x ~ Bernoulli(decoder(z))) and ``guide(self, x)`` (registers the
encoder, z ~ N(encoder(x))). The object itself is passed to ``ppgen.fit``: its ``model`` and
``guide`` methods are the program and its amortized guide.

Data: the first 200 of scikit-learn's 8x8 digits (bundled with scikit-learn, no download),
binarized at 8/16.
Answer: the ELBO improves over training, and the trained model explains the images better than the
best model without a latent (independent pixels at their empirical frequencies, log-likelihood
BASELINE_LL per image; the VAE's ELBO per image, a lower bound, must beat it; a raw Pyro run of the
same program reaches about RAW_ELBO per image in 1500 steps; the test's 800 reach about -13.8).
"""
import numpy as np
import pyro
import pyro.distributions as dist
import torch
from sklearn.datasets import load_digits
from torch import nn

_images = (load_digits().images[:200].reshape(200, 64) > 8).astype(float)
data = {"x": _images.tolist()}
_freq = _images.mean(0).clip(1e-3, 1 - 1e-3)
BASELINE_LL = float((_images * np.log(_freq) + (1 - _images) * np.log1p(-_freq)).sum(1).mean())
RAW_ELBO = -12.26  # per image (first 50 steps: -25.0), raw Pyro, 1500 steps Adam(lr=0.01), seed 0 (tests/programs/_references.py)


class Encoder(nn.Module):
    def __init__(self, z_dim, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(64, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, z_dim)
        self.fc22 = nn.Linear(hidden_dim, z_dim)
        self.softplus = nn.Softplus()

    def forward(self, x):
        hidden = self.softplus(self.fc1(x))
        return self.fc21(hidden), torch.exp(self.fc22(hidden))


class Decoder(nn.Module):
    def __init__(self, z_dim, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(z_dim, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, 64)
        self.softplus = nn.Softplus()
        self.sigmoid = nn.Sigmoid()

    def forward(self, z):
        hidden = self.softplus(self.fc1(z))
        return self.sigmoid(self.fc21(hidden))


class VAE(nn.Module):
    def __init__(self, z_dim=4, hidden_dim=64):
        super().__init__()
        self.encoder = Encoder(z_dim, hidden_dim)
        self.decoder = Decoder(z_dim, hidden_dim)
        self.z_dim = z_dim

    def model(self, x):
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", x.shape[0]):
            z_loc = x.new_zeros(torch.Size((x.shape[0], self.z_dim)))
            z_scale = x.new_ones(torch.Size((x.shape[0], self.z_dim)))
            z = pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))
            loc_img = self.decoder(z)
            pyro.sample("obs", dist.Bernoulli(loc_img, validate_args=False).to_event(1), obs=x)

    def guide(self, x):
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            z_loc, z_scale = self.encoder(x)
            pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))


model = VAE()

METHODS = {
    "svi": dict(steps=800, num_samples=50, lr=0.01),  # last/first loss 0.55 (< 0.8), ELBO -13.8 (> -21.3)
}
REFUSED = {"enum": "continuous", "numpyro-nuts": "Pyro only", "numpyro-svi": "Pyro only"}


def check(fit):
    losses = np.asarray(fit.losses)
    first, last = losses[:50].mean(), losses[-100:].mean()
    assert last < 0.8 * first, (first, last)
    elbo_per_image = -last / 200
    assert elbo_per_image > BASELINE_LL + 2.0, (elbo_per_image, BASELINE_LL)
    z = fit.samples["latent"]
    assert tuple(z.shape[1:]) == (200, 4), z.shape
