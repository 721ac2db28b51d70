"""Every kind of bad input ppgen catches before fitting, and the message each one gets.

    python examples/bad_inputs.py
"""
import numpy as np

import ppgen

SCHOOLS = ppgen.data.load_eight_schools()
y_nan = SCHOOLS["y"].copy()
y_nan[3] = np.nan
FAITHFUL = {"x": ppgen.data.load_faithful(standardize=True), "K": 2}


def counts(x):
    from pyroapi import distributions as dist
    from pyroapi import pyro

    rate = pyro.sample("rate", dist.Gamma(2.0, 1.0))
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Poisson(rate), obs=x)


def coin(y):
    from pyroapi import distributions as dist
    from pyroapi import pyro

    z = pyro.sample("z", dist.Bernoulli(0.3), infer={"enumerate": "parallel"})
    with pyro.plate("data", len(y)):
        pyro.sample("y", dist.Normal(2.0 * z, 1.0), obs=y)


CASES = [
    ("missing data key", dict(model="eight_schools", data={"J": 8, "y": SCHOOLS["y"]})),
    ("observation left out", dict(model="eight_schools", data={"J": 8, "sigma": SCHOOLS["sigma"]})),
    ("extra data key", dict(model="eight_schools", data={**SCHOOLS, "sigmas": SCHOOLS["sigma"]})),
    ("wrong shape", dict(model="eight_schools", data={**SCHOOLS, "y": SCHOOLS["y"][:7]})),
    ("shape that broadcasts wrongly", dict(model="eight_schools",
                                           data={**SCHOOLS, "sigma": SCHOOLS["sigma"][:, None]})),
    ("NaN in observed data", dict(model="eight_schools", data={**SCHOOLS, "y": y_nan})),
    ("string for an array", dict(model="eight_schools", data={**SCHOOLS, "y": "28, 8, -3"})),
    ("ragged list", dict(model="eight_schools", data={**SCHOOLS, "sigma": [[15, 10], [16]]})),
    ("negative count for a Poisson", dict(model=counts, data={"x": np.array([1.0, 2.0, -3.0])})),
    ("fractional count for a Poisson", dict(model=counts, data={"x": np.array([1.0, 2.5])})),
    ("non-binary pixels for a Bernoulli decoder", dict(model="vae",
                                                       data={"x": np.full((10, 64), 0.5, dtype=np.float32)})),
    ("wrong image size", dict(model="vae", data={"x": np.ones((10, 63), dtype=np.float32)})),
    ("non-binary data for a binary RBM", dict(model="rbm", data={"x": np.full((5, 64), 2.0)}, method="map")),
    ("1-D data for a 2-D mixture", dict(model="gmm", data={"x": FAITHFUL["x"][:, 0], "K": 2})),
    ("unknown model", dict(model="eight_school")),
    ("unknown method", dict(model="eight_schools", method="nutz")),
    ("unknown option", dict(model="eight_schools", method="svi", lrr=0.1)),
    ("learning rate <= 0", dict(model="eight_schools", method="svi", lr=-0.1)),
    ("negative number of draws", dict(model="eight_schools", num_samples=-1)),
    ("zero chains", dict(model="eight_schools", num_chains=0)),
    ("unknown guide", dict(model="eight_schools", method="svi", guide="flowz")),
    ("enum on continuous latents", dict(model="eight_schools", method="enum")),
    ("NUTS on a model with only discrete latents", dict(model=coin, data={"y": [1.5, 0.3]}, method="nuts")),
    ("a Pyro-only program on NumPyro", dict(model="vae", method="numpyro-nuts")),
    ("CUDA asked for, none present", dict(model="eight_schools", device="cuda:3")),
]


def main() -> None:
    for title, case in CASES:
        case = dict(case)
        model, data = case.pop("model"), case.pop("data", None)
        settings = {"method": "svi", "steps": 2, "num_samples": 2, "num_warmup": 2, "progress": False, **case}
        try:
            ppgen.fit(model, data, **settings)
            print(f"- {title}: (accepted)")
        except ppgen.PPGenError as e:
            print(f"- {title}: `{type(e).__name__}`: {e}")


if __name__ == "__main__":
    main()
