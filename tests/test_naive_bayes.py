"""Naive Bayes: scikit-learn as the peer, the conjugate posterior as an identity, a quadrature check of
the Student-t predictive, and the lecture's generative-vs-discriminative contrasts."""
import numpy as np
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from scipy import stats
from sklearn.naive_bayes import BernoulliNB, CategoricalNB

from ppgen.data.images import load_digits
from ppgen.errors import DataError
from ppgen.models.logistic_regression import LogisticRegression
from ppgen.models.naive_bayes import BernoulliNaiveBayes, CategoricalNaiveBayes, GaussianNaiveBayes


def smoothed_class_prior(y, num_classes, concentration=1.0):
    """Our class predictive (N_c + beta) / (N + C beta), handed to scikit-learn as its class_prior."""
    return (np.bincount(y, minlength=num_classes) + concentration) / (len(y) + num_classes * concentration)


def test_bernoulli_equals_scikit_learn_on_binarized_digits():
    d = load_digits(binarize=True)
    ours = BernoulliNaiveBayes(alpha=0.5).fit(d.x_train, d.y_train)
    theirs = BernoulliNB(alpha=0.5, binarize=None, class_prior=smoothed_class_prior(d.y_train, 10))
    theirs.fit(d.x_train.astype(np.float64), d.y_train)
    x_test = d.x_test.astype(np.float64)
    np.testing.assert_array_equal(ours.predict(d.x_test).numpy(), theirs.predict(x_test))
    np.testing.assert_allclose(ours.predict_proba(d.x_test).numpy(), theirs.predict_proba(x_test), atol=1e-10)
    assert ours.score(d.x_test, d.y_test) == pytest.approx(theirs.score(x_test, d.y_test))
    np.testing.assert_allclose(ours.predict_proba(d.x_test[:1]).numpy(), theirs.predict_proba(x_test[:1]), atol=1e-10)


def test_categorical_equals_scikit_learn_on_grey_level_digits():
    d = load_digits(binarize=False)
    x_train, x_test = np.round(d.x_train * 16), np.round(d.x_test * 16)  # 17 grey levels
    ours = CategoricalNaiveBayes(alpha=1.0, num_categories=17).fit(x_train, d.y_train)
    theirs = CategoricalNB(alpha=1.0, min_categories=17, class_prior=smoothed_class_prior(d.y_train, 10))
    theirs.fit(x_train, d.y_train)
    np.testing.assert_array_equal(ours.predict(x_test).numpy(), theirs.predict(x_test))
    np.testing.assert_allclose(ours.predict_proba(x_test).numpy(), theirs.predict_proba(x_test), atol=1e-10)


def test_gaussian_predictive_equals_quadrature_of_the_posterior():
    """p(y | x*, D) with (mu, tau) integrated numerically against prior x likelihood on a grid."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0.0, 1.0, 6), rng.normal(1.5, 0.5, 4)])[:, None]
    y = np.array([0] * 6 + [1] * 4)
    prior = dict(loc=0.5, kappa=2.0, shape=1.5, rate=0.8)
    ours = GaussianNaiveBayes(**prior).fit(x, y)

    mu = np.linspace(-6, 6, 1201)[:, None]
    log_tau = np.linspace(-8, 5, 1301)[None, :]
    tau = np.exp(log_tau)

    def predictive_density(xs, x_new):
        log_post = (stats.gamma.logpdf(tau, prior["shape"], scale=1 / prior["rate"]) + log_tau  # d tau = tau d log tau
                    + stats.norm.logpdf(mu, prior["loc"], 1 / np.sqrt(prior["kappa"] * tau))
                    + sum(stats.norm.logpdf(xi, mu, 1 / np.sqrt(tau)) for xi in xs))
        weights = np.exp(log_post - log_post.max())
        likelihood = stats.norm.pdf(x_new, mu, 1 / np.sqrt(tau))
        return (weights * likelihood).sum() / weights.sum()

    x_new = np.array([[-0.4], [0.9], [2.2]])
    class_probs = smoothed_class_prior(y, 2)
    joint = np.array([[class_probs[c] * predictive_density(x[y == c, 0], xn[0]) for c in (0, 1)] for xn in x_new])
    np.testing.assert_allclose(ours.predict_proba(x_new).numpy(), joint / joint.sum(1, keepdims=True), atol=1e-5)


@pytest.mark.parametrize("family", ["bernoulli", "categorical", "gaussian"])
def test_fit_is_the_exact_posterior_of_the_pyro_program(family):
    """log p(params, x, y) from the program minus the closed-form log posterior is the same constant
    (log p(x, y)) at every posterior draw: the conjugate update is the posterior of the program."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 40)
    x = {"bernoulli": (rng.random((40, 4)) < 0.3 + 0.2 * y[:, None]).astype(float),
         "categorical": rng.integers(0, 3, (40, 4)).astype(float),
         "gaussian": rng.normal(y[:, None], 1.0, (40, 4))}[family]
    nb = {"bernoulli": BernoulliNaiveBayes(alpha=2.0), "categorical": CategoricalNaiveBayes(alpha=2.0),
          "gaussian": GaussianNaiveBayes(loc=0.3, kappa=2.0, shape=2.0, rate=1.5)}[family].fit(x, y)
    x, y = torch.as_tensor(x), torch.as_tensor(y)

    def log_posterior(params):
        total = nb.posterior_["pi"].log_prob(params["pi"])
        if family == "gaussian":
            total = total + nb.posterior_["precision"].to_event(2).log_prob(params["precision"])
            scale = (nb.kappa_ * params["precision"]).rsqrt()
            return total + dist.Normal(nb.loc_, scale).to_event(2).log_prob(params["mu"])
        return total + nb.posterior_["theta"].to_event(2).log_prob(params["theta"])

    gaps = []
    for _ in range(3):
        params = {"pi": nb.posterior_["pi"].sample()}
        if family == "gaussian":
            params["precision"] = nb.posterior_["precision"].sample()
            params["mu"] = dist.Normal(nb.loc_, (nb.kappa_ * params["precision"]).rsqrt()).sample()
        else:
            params["theta"] = nb.posterior_["theta"].sample()
        trace = poutine.trace(poutine.condition(nb.model, params)).get_trace(x, y)
        gaps.append(float(trace.log_prob_sum() - log_posterior(params)))
    assert max(gaps) - min(gaps) < 1e-8


def test_missing_features_are_marginalized():
    """Only the generative model can drop an input: NaN in feature 2 gives the same p(y | x) as a
    model fit without feature 2."""
    d = load_digits(binarize=True)
    full = BernoulliNaiveBayes().fit(d.x_train, d.y_train)
    keep = [j for j in range(64) if j != 20]
    reduced = BernoulliNaiveBayes().fit(d.x_train[:, keep], d.y_train)
    x = d.x_test[:50].astype(np.float64)
    x[:, 20] = np.nan
    np.testing.assert_allclose(full.predict_proba(x).numpy(), reduced.predict_proba(x[:, keep]).numpy(), atol=1e-12)


def test_sample_draws_from_the_posterior_predictive():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    x = (rng.random((200, 3)) < np.where(y[:, None] == 1, 0.8, 0.2)).astype(float)
    nb = BernoulliNaiveBayes().fit(x, y)
    n = 20000
    xs, ys = nb.sample(n, seed=0)
    assert xs.shape == (n, 3) and ys.shape == (n,)
    freq = torch.bincount(ys, minlength=2).double() / n
    assert bool(((freq - nb.class_probs_).abs() < 5 * (0.25 / n) ** 0.5).all())
    for c in (0, 1):
        expected = nb.posterior_["theta"].mean[c]
        observed = xs[ys == c].mean(0)
        assert bool(((observed - expected).abs() < 5 * (0.25 / (ys == c).sum()) ** 0.5).all())


def test_duplicated_feature_makes_naive_bayes_overconfident_but_not_logistic_regression():
    """Lecture 2: copying a feature 4 more times adds its log-odds 4 more times to naive Bayes;
    logistic regression's predictions barely move (the copies share one weight)."""
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 2, n)
    x = np.stack([rng.random(n) < np.where(y == 1, 0.8, 0.3),
                  rng.random(n) < np.where(y == 1, 0.6, 0.4)], 1).astype(float)
    copies = lambda a: np.concatenate([a, np.repeat(a[:, :1], 4, 1)], 1)  # noqa: E731
    test = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])

    nb, nb_dup = BernoulliNaiveBayes().fit(x, y), BernoulliNaiveBayes().fit(copies(x), y)
    logit = lambda p: torch.log(p[:, 1] / p[:, 0])  # noqa: E731
    theta = nb.posterior_["theta"].mean[:, 0]
    on, off = torch.log(theta[1] / theta[0]), torch.log((1 - theta[1]) / (1 - theta[0]))
    extra = 4 * torch.as_tensor([on, off, on])  # feature 0 is on, off, on in the three test rows
    torch.testing.assert_close(logit(nb_dup.predict_proba(copies(test))), logit(nb.predict_proba(test)) + extra)
    assert float((nb_dup.predict_proba(copies(test)) - nb.predict_proba(test)).abs().max()) > 0.3

    options = dict(prior_scale=10.0, steps=400, lr=0.05)
    lr, lr_dup = LogisticRegression(**options).fit(x, y), LogisticRegression(**options).fit(copies(x), y)
    assert float((lr_dup.predict_proba(copies(test)) - lr.predict_proba(test)).abs().max()) < 0.02


def test_bad_input_is_named():
    with pytest.raises(DataError, match="binary features"):
        BernoulliNaiveBayes().fit(np.array([[0.0, 2.0]]), [0])
    with pytest.raises(DataError, match="shape"):
        BernoulliNaiveBayes().fit(np.zeros(5), np.zeros(5, dtype=int))
    with pytest.raises(DataError, match="NaN"):
        GaussianNaiveBayes().fit(np.array([[np.nan, 1.0], [0.0, 1.0]]), [0, 1])
    nb = BernoulliNaiveBayes().fit(np.eye(3), [0, 1, 1])
    with pytest.raises(DataError, match="X has 2 features; the classifier was fit with 3"):
        nb.predict(np.zeros((1, 2)))
