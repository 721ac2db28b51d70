"""How the REFERENCE constants of the programs were computed: raw NumPyro / raw Pyro, not ppgen.

    python tests/programs/_references.py NAME      (arma, garch, baseball, horseshoe, hier_logistic, vae, ssvae, hmm)

Each prints the numbers pasted into the program's file. Not collected by the tests.
"""
import importlib.util
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def load(name):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def numpyro_run(model, data, warmup, draws, chains=4, **kw):
    import jax
    import numpyro
    from numpyro.infer import MCMC, NUTS

    mcmc = MCMC(NUTS(model, **kw), num_warmup=warmup, num_samples=draws, num_chains=chains,
                chain_method="sequential", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), **data)
    mcmc.print_summary(exclude_deterministic=False)
    return {k: np.asarray(v) for k, v in mcmc.get_samples().items()}


def summarize(samples, names):
    out = {}
    for n in names:
        if "[" in n:
            base, j = n[:-1].split("[")
            d = samples[base][:, int(j)]
        else:
            d = samples[n]
        out[n] = (round(float(d.mean()), 4), round(float(d.std()), 4))
    return out


def arma():
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    m = load("arma_cauchy")
    y = jnp.asarray(m.data["y"])

    def model(y):
        mu = numpyro.sample("mu", dist.Cauchy(0, 10))
        phi = numpyro.sample("phi", dist.Cauchy(0, 2))
        theta = numpyro.sample("theta", dist.Cauchy(0, 2))
        sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
        nu = [mu + phi * mu]
        err = y[0] - nu[0]
        for t in range(1, y.shape[0]):
            nu.append(mu + phi * y[t - 1] + theta * err)
            err = y[t] - nu[t]
        numpyro.sample("obs", dist.Normal(jnp.stack(nu), sigma), obs=y)

    s = numpyro_run(model, {"y": y}, 1000, 5000)
    print(summarize(s, ["mu", "phi", "theta", "sigma"]))


def garch():
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    m = load("garch_dependent_bound")
    y = jnp.asarray(m.Y)

    def model(y, sigma1):
        mu = numpyro.sample("mu", dist.Normal(0, 100))
        alpha0 = numpyro.sample("alpha0", dist.HalfNormal(100))
        alpha1 = numpyro.sample("alpha1", dist.Uniform(0, 1))
        beta1 = numpyro.sample("beta1", dist.Uniform(0, 1 - alpha1))
        numpyro.factor("flat_triangle", jnp.log(1 - alpha1))
        sigma = [sigma1 * jnp.ones_like(mu)]
        for t in range(1, y.shape[0]):
            sigma.append(jnp.sqrt(alpha0 + alpha1 * (y[t - 1] - mu) ** 2 + beta1 * sigma[t - 1] ** 2))
        numpyro.sample("obs", dist.Normal(mu, jnp.stack(sigma)), obs=y)

    s = numpyro_run(model, {"y": y, "sigma1": 0.5}, 1000, 3000)
    print("raw numpyro:", summarize(s, ["mu", "alpha0", "alpha1", "beta1"]))
    print("stan       :", m.REFERENCE)


def baseball():
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    m = load("baseball")

    def model(at_bats, hits=None):
        loc = numpyro.sample("loc", dist.Normal(-1, 1))
        scale = numpyro.sample("scale", dist.HalfCauchy(1))
        with numpyro.plate("num_players", at_bats.shape[0]):
            alpha = numpyro.sample("alpha", dist.Normal(loc, scale))
            numpyro.sample("obs", dist.Binomial(at_bats, logits=alpha), obs=hits)

    s = numpyro_run(model, {"at_bats": jnp.asarray(m.data["at_bats"]), "hits": jnp.asarray(m.data["hits"])},
                    2000, 5000, target_accept_prob=0.9)
    print(summarize(s, ["loc", "scale"] + [f"alpha[{j}]" for j in (0, 5, 10, 17)]))


def horseshoe():
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    m = load("horseshoe_regression")

    def model(X, y):
        tau = numpyro.sample("tau", dist.HalfCauchy(1.0))
        with numpyro.plate("features", X.shape[1]):
            lam = numpyro.sample("lambda", dist.HalfCauchy(1.0))
            beta = numpyro.sample("beta", dist.Normal(0.0, tau * lam))
        sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
        with numpyro.plate("data", X.shape[0]):
            numpyro.sample("obs", dist.Normal(X @ beta, sigma), obs=y)

    s = numpyro_run(model, {"X": jnp.asarray(m.data["X"]), "y": jnp.asarray(m.data["y"])}, 1000, 4000,
                    target_accept_prob=0.95)
    print("beta_mean", s["beta"].mean(0).round(4).tolist())
    print("beta_sd", s["beta"].std(0).round(4).tolist())


def hier_logistic():
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    m = load("hier_logistic")

    def model(num_groups, group, x, y):
        mu_a = numpyro.sample("mu_a", dist.Normal(0, 2))
        sigma_a = numpyro.sample("sigma_a", dist.HalfNormal(1))
        b = numpyro.sample("b", dist.Normal(0, 2))
        with numpyro.plate("groups", num_groups):
            a_raw = numpyro.sample("a_raw", dist.Normal(0, 1))
            a = numpyro.deterministic("a", mu_a + sigma_a * a_raw)
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("obs", dist.Bernoulli(logits=a[group] + b * x), obs=y)

    d = m.data
    s = numpyro_run(model, {"num_groups": d["num_groups"], "group": jnp.asarray(d["group"]),
                            "x": jnp.asarray(d["x"]), "y": jnp.asarray(d["y"])}, 1000, 4000)
    print(summarize(s, ["mu_a", "sigma_a", "b"] + [f"a[{g}]" for g in range(m.G)]))
    print("true a", m.TRUE_A.round(3), "b", m.TRUE_B)



def hmm():
    import pyro
    import torch
    from pyro.infer import MCMC, NUTS

    m = load("hmm_example")
    pyro.set_rng_seed(0)
    seqs = torch.tensor(m.data["sequences"])
    mcmc = MCMC(NUTS(m.model, max_plate_nesting=2, jit_compile=False), warmup_steps=300, num_samples=500,
                disable_progbar=True)
    mcmc.run(sequences=seqs)
    s = mcmc.get_samples()
    py, px = s["probs_y"], s["probs_x"]
    swap = py[:, 0, 0] < py[:, 1, 0]
    perm = torch.tensor([1, 0])
    py = torch.where(swap[:, None, None], py[:, perm], py)
    px = torch.where(swap[:, None, None], px[:, perm][:, :, perm], px)
    print("probs_y_mean", py.mean(0).numpy().round(3).tolist())
    print("probs_x_diag_mean", torch.diagonal(px, dim1=-2, dim2=-1).mean(0).numpy().round(3).tolist())
    print("swapped fraction", swap.float().mean().item())


def vae():
    import pyro
    import torch
    from pyro.infer import SVI, Trace_ELBO
    from pyro.optim import Adam

    m = load("vae_class")
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    vae = m.VAE()
    x = torch.tensor(m.data["x"], dtype=torch.float32)
    svi = SVI(vae.model, vae.guide, Adam({"lr": 0.01}), Trace_ELBO())
    losses = [svi.step(x) for _ in range(1500)]
    print("RAW_ELBO per image", -np.mean(losses[-100:]) / 200, "first", -np.mean(losses[:50]) / 200,
          "BASELINE_LL", m.BASELINE_LL)


def ssvae():
    import pyro
    import torch
    from pyro.infer import SVI, TraceEnum_ELBO
    from pyro.optim import Adam

    m = load("ssvae_m2")
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    net = m.SSVAE()
    d = {"x_sup": torch.tensor(m.data["x_sup"], dtype=torch.float32), "y_sup": torch.tensor(m.data["y_sup"]),
         "x_unsup": torch.tensor(m.data["x_unsup"], dtype=torch.float32)}
    svi = SVI(net.model, net.guide, Adam({"lr": 0.01}), TraceEnum_ELBO(max_plate_nesting=1))
    losses = [svi.step(**d) for _ in range(1500)]
    print("first", np.mean(losses[:50]), "last", np.mean(losses[-100:]),
          "RAW_ACCURACY", net.accuracy(m._x[60:], m.UNSUP_LABELS))



def hmm_numpyro():
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.contrib.funsor import markov

    m = load("hmm_example")
    seqs = jnp.asarray(m.data["sequences"])

    def model(sequences):
        num_sequences, length, data_dim = sequences.shape
        with numpyro.plate("hidden_state", m.H):
            probs_x = numpyro.sample("probs_x", dist.Dirichlet(0.9 * jnp.eye(m.H) + 0.1))
            probs_y = numpyro.sample("probs_y", dist.Beta(0.5, 0.5).expand([data_dim]).to_event(1))
        tones = numpyro.plate("tones", data_dim, dim=-1)
        with numpyro.plate("sequences", num_sequences, dim=-2):
            x = 0
            for t in markov(range(length)):
                x = numpyro.sample(f"x_{t}", dist.Categorical(probs_x[x]), infer={"enumerate": "parallel"})
                with tones:
                    numpyro.sample(f"y_{t}", dist.Bernoulli(probs_y[x.squeeze(-1)]), obs=sequences[:, t])

    s = numpyro_run(model, {"sequences": seqs}, 1000, 2000, chains=2)
    py, px = s["probs_y"], s["probs_x"]
    swap = py[:, 0, 0] < py[:, 1, 0]
    py = np.where(swap[:, None, None], py[:, ::-1], py)
    px = np.where(swap[:, None, None], px[:, ::-1][:, :, ::-1], px)
    print("probs_y_mean", py.mean(0).round(3).tolist())
    print("probs_x_diag_mean", np.diagonal(px, axis1=-2, axis2=-1).mean(0).round(3).tolist(), "swapped", swap.mean())


if __name__ == "__main__":
    globals()[sys.argv[1]]()
