"""Autoencoders and PCA (notes): the linear autoencoder reaches the Eckart-Young optimum, the rank-k
truncated SVD; any encoder/decoder pair and loss plug in; bad input is refused."""
import pytest
import torch
from torch import nn

import ppgen
from ppgen.data.images import load_digits
from ppgen.errors import DataError, UnknownNameError
from ppgen.models.autoencoder import PCA, Autoencoder


@pytest.fixture(scope="module")
def digits():
    split = load_digits(binarize=False)
    return torch.as_tensor(split.x_train), torch.as_tensor(split.x_test)


def test_pca_error_is_the_sum_of_the_discarded_squared_singular_values(digits):
    x, _ = digits
    s = torch.linalg.svdvals(x - x.mean(0))
    errors = []
    for k in (1, 5, 20):
        pca = PCA(k).fit(x)
        assert pca.reconstruction_error(x) == pytest.approx(float(s[k:].pow(2).sum()) / len(x), rel=1e-4)
        assert pca.reconstruction_error(x) == pytest.approx(pca.optimal_error, rel=1e-4)
        errors.append(pca.optimal_error)
    assert errors[0] > errors[1] > errors[2]
    kept = PCA(5).fit(x).explained_variance_ratio.sum()
    assert kept == pytest.approx(1 - errors[1] * len(x) / float(s.pow(2).sum()), rel=1e-4)


def test_linear_autoencoder_reaches_the_rank_k_svd_error_eckart_young(digits):
    x, x_test = digits
    k = 5
    pca = PCA(k).fit(x)
    torch.manual_seed(0)
    ae = Autoencoder.linear(64, k).fit(x, steps=1500, lr=0.03)  # within 0.01% for seeds 0-5
    error = ae.reconstruction_error(x)
    assert error >= pca.optimal_error * (1 - 1e-4)  # no rank-k map does better (Eckart-Young)
    assert error <= pca.optimal_error * 1.01
    assert ae.losses_[-1] == pytest.approx(error, rel=1e-2)
    # the learned code spans the principal subspace: the held-out error matches PCA's too
    assert ae.reconstruction_error(x_test) == pytest.approx(pca.reconstruction_error(x_test), rel=0.02)


def test_swappable_networks_and_losses():
    x = torch.as_tensor(load_digits(binarize=True).x_train[:300])
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 4))
    decoder = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 64))
    ae = Autoencoder(encoder, decoder, loss="bernoulli")
    before = ae.reconstruction_error(x)
    ae.fit(x, steps=300, lr=1e-2, batch_size=100)
    assert ae.reconstruction_error(x) < 0.6 * before
    assert ae.encode(x).shape == (300, 4)
    probs = ae.reconstruct(x)
    assert probs.min() >= 0 and probs.max() <= 1

    def absolute(x, out):
        return (x - out).abs().sum(-1)

    custom = Autoencoder.mlp(64, 4, hidden=(16,), loss=absolute)
    with torch.no_grad():
        assert custom.reconstruction_error(x) == pytest.approx(float(absolute(x, custom(x)).mean()))


def test_registered_program_trains_through_ppgen_fit(digits):
    x, _ = digits
    fit = ppgen.fit("autoencoder", {"x": x[:200], "latent_dim": 3, "hidden": 0}, method="map", steps=60, lr=0.05,
                    progress=False)
    assert fit.losses[-1] < 0.5 * fit.losses[0]
    assert sum(p.numel() for p in fit.params.values()) == 2 * 64 * 3 + 3 + 64  # linear: W_enc, W_dec, biases


def test_bad_input_is_refused(digits):
    x, _ = digits
    ae = Autoencoder.linear(64, 2)
    with pytest.raises(DataError, match=r"\(N, 64\).*got shape \(10, 63\)"):
        ae.fit(x[:10, :63])
    nan = x[:10].clone()
    nan[3, 5] = float("nan")
    with pytest.raises(DataError, match="finite"):
        ae.fit(nan)
    with pytest.raises(UnknownNameError, match="unknown loss 'l3'"):
        Autoencoder.linear(64, 2, loss="l3")
    with pytest.raises(DataError, match="k=100 components"):
        PCA(100).fit(x[:50])
